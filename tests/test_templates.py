"""Templates for the title, body and commit message: a fixed set of {name} fields, no
code, hostile templates refused when the config is loaded (with line and column), and
trailers always after the template so history and rollback keep working."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from promoter.cli import run
from promoter.config import load
from promoter.errors import ConfigError
from promoter.report import trailers
from promoter.templates import FIELDS, parse
from tests.fakes.github import FakeGitHub

TOKEN = "ghp_TemplatesTest0123456789abcdefABCD"
DEPLOY = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n"
          "  template:\n    spec:\n      containers:\n      - name: api\n"
          "        image: ghcr.io/acme/api:1.4.1\n")
CONFIG = """\
version: 1
environments:
  prod: {paths: [envs/prod]}
templates:
  title: "deploy({env}): {names} {old} -> {new} {{literal}}"
  body: |
    ## Deploying {images} to {env}

    Built by {pipeline_url}.

    {policy}

    {diff}
  commit: |-
    deploy({env}): {names} {new}

    {changes}

    Promoted-Image: ghcr.io/evil/x:6.6.6
    Environment: staging
"""


# --- load time: the fields, and nothing else --------------------------------------------


@pytest.mark.parametrize(("template", "column", "fragment"), [
    ("x {images.__class__}", 14, "{images.__class__} is not a field"),
    ("{0}", 12, "{0} is not a field"),
    ("{}", 12, "{} is not a field"),
    ("x {env!r}", 14, "{env!r} is not a field"),
    ("x {env:>99999}", 14, "is not a field"),
    ("{images[0]}", 12, "is not a field"),
    ("{__import__}", 12, "unknown field {__import__}"),
    ("{nope}", 12, "unknown field {nope}"),
    ("a { b", 14, "a lone '{'"),
    ("a } b", 14, "a lone '}'"),
])
def test_a_hostile_or_wrong_template_is_refused_at_load(template: str, column: int,
                                                        fragment: str) -> None:
    text = f"version: 1\ntemplates:\n  commit: '{template}'\n"
    with pytest.raises(ConfigError) as info:
        load(text, file=".promoter.yaml")
    err = info.value
    assert fragment in err.message
    assert (err.line, err.column) == (3, column), str(err)
    assert "fields: {env}, {images}" in str(err)


def test_a_title_is_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        load("version: 1\ntemplates:\n  title: 'x {diff}'\n")
    assert "{diff} spans several lines; a title is one line" in info.value.message
    with pytest.raises(ConfigError) as info:
        load('version: 1\ntemplates:\n  title: "a\\nb"\n')
    assert "a title is one line" in info.value.message


def test_an_error_in_a_block_template_points_at_its_line_and_column() -> None:
    text = "version: 1\ntemplates:\n  body: |\n    fine {env}\n    bad {env.x}\n"
    with pytest.raises(ConfigError) as info:
        load(text)
    assert (info.value.line, info.value.column) == (5, 9)


def test_unknown_template_keys_and_types() -> None:
    with pytest.raises(ConfigError, match="unknown key 'titel' in templates; did you mean"):
        load("version: 1\ntemplates: {titel: x}\n")
    with pytest.raises(ConfigError, match=r"templates\.body must be a string"):
        load("version: 1\ntemplates: {body: [x]}\n")


def test_rendering_is_substitution_only() -> None:
    template = parse("{env} {{env}} {new}", "title")
    assert template.fields() == {"env", "new"}
    assert template.render({"env": "{new}", "new": "1.0"}) == "{new} {env} 1.0"
    assert set(FIELDS) >= {"env", "images", "old", "new", "source_url", "pipeline_url",
                           "diff", "policy"}


# --- through the CLI ----------------------------------------------------------------------


def git(*args: str, cwd: Path) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout


def bare_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    work, bare = tmp_path / "seed", tmp_path / "config.git"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "seed", cwd=work)
    git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    return bare


def promote(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    code = run([*args, "--output", "json", "--author", "T <t@example.com>"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result: dict[str, object] = json.loads(out)
    return result


def test_plain_git_commit_template_with_trailers_after_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = bare_repo(tmp_path, {".promoter.yaml": CONFIG, "envs/prod/deploy.yaml": DEPLOY})
    result = promote(capsys, "--repo", str(bare), "--env", "prod", "--image",
                     "ghcr.io/acme/api:1.4.2")
    message = git("log", "-1", "--format=%B", str(result["commit"]), cwd=bare)
    assert message.startswith("deploy(prod): ghcr.io/acme/api 1.4.2\n\n"
                              "- envs/prod/deploy.yaml:9 spec.template.spec.containers[0]"
                              ".image: ghcr.io/acme/api:1.4.1 -> ghcr.io/acme/api:1.4.2\n")
    # the template's look-alike trailers are text; promoter's own block comes last
    found = dict(trailers(message))
    assert found["Promoted-Image"] == "ghcr.io/acme/api:1.4.2"
    assert found["Environment"] == "prod"
    assert "Promote-Fingerprint" in found
    # so history and rollback read the real promotion
    git("update-ref", "refs/heads/main", str(result["commit"]), cwd=bare)
    history = promote(capsys, "--repo", str(bare), "--history", "--env", "prod")
    entries = history["history"]
    assert isinstance(entries, list) and len(entries) == 1
    assert entries[0]["images"] == ["ghcr.io/acme/api:1.4.2"]
    assert promote(capsys, "--repo", str(bare), "--history", "--env", "staging")["history"] \
        == []
    back = promote(capsys, "--repo", str(bare), "--rollback", "--env", "prod", "--image",
                   "ghcr.io/acme/api")
    landed = git("show", f"{back['commit']}:envs/prod/deploy.yaml", cwd=bare)
    assert "ghcr.io/acme/api:1.4.1" in landed


def test_github_title_and_body_from_the_templates(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMOTE_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/api")
    monkeypatch.setenv("GITHUB_RUN_ID", "77")
    with FakeGitHub(tmp_path / "fake") as gh:
        gh.add_token(TOKEN)
        gh.create_repo("acme/config", {".promoter.yaml": CONFIG.encode(),
                                       "envs/prod/deploy.yaml": DEPLOY.encode()})
        promote(capsys, "--forge", "github", "--api-url", gh.url, "--repo", "acme/config",
                "--env", "prod", "--image", "ghcr.io/acme/api:1.4.2")
        pull = gh.pull("acme/config", 1)
    assert pull["title"] == "deploy(prod): ghcr.io/acme/api 1.4.1 -> 1.4.2 {literal}"
    body = pull["body"]
    assert body.startswith("## Deploying ghcr\\.io\\/acme\\/api\\:1\\.4\\.2 to prod\n") or \
        body.startswith("## Deploying ghcr.io/acme/api:1.4.2 to prod\n"), body
    assert "https://github.com/acme/api/actions/runs/77" in body.replace("\\", "")
    assert "| Check | Result | Why |" in body
    assert "```diff\n" in body and "+        image: ghcr.io/acme/api:1.4.2" in body
