"""Who a promotion commit is by: --author, author: in .promoter.yaml, the CI user, the
git config — through the real CLI on all three forges (the fakes keep real commits)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from promoter.cli import run
from promoter.config import load
from promoter.errors import ConfigError
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab

TOKEN = "ghp_AuthorTest0123456789abcdefABCDEF"
DEPLOY = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n"
          "  template:\n    spec:\n      containers:\n      - name: api\n"
          "        image: ghcr.io/acme/api:1.4.1\n")
POLICY = """\
version: 1
author: "Config Bot <config-bot@example.com>"
defaults: {wait_for_checks: false}
environments:
  dev: {paths: ["envs/dev/**"], auto_merge: true}
"""
IMAGE = "ghcr.io/acme/api:1.4.2"


@pytest.fixture(autouse=True)
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No git identity of the machine: each test says which one it has."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in list(os.environ):
        if name.startswith("GIT_") or name == "EMAIL":
            monkeypatch.delenv(name)
    return home


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


def who(bare: Path, rev: str) -> str:
    return git("log", "-1", "--format=%an <%ae>|%cn <%ce>", rev, cwd=bare).strip()


def promote(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object],
                                                                     str]:
    code = run([*args, "--output", "json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {}, err


# --- plain git ------------------------------------------------------------------------


def test_plain_git_author_option_config_and_override(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = bare_repo(tmp_path, {".promoter.yaml": POLICY, "envs/dev/deploy.yaml": DEPLOY})
    # author: of the config: the promotion commit and the merge commit on main
    code, result, err = promote(capsys, "--repo", str(bare), "--env", "dev", "--image", IMAGE)
    assert code == 0 and result["merged"] is True, err
    assert who(bare, str(result["commit"])) == \
        "Config Bot <config-bot@example.com>|Config Bot <config-bot@example.com>"
    assert who(bare, "main") == \
        "Config Bot <config-bot@example.com>|Config Bot <config-bot@example.com>"
    # --author overrides it
    code, result, err = promote(capsys, "--repo", str(bare), "--env", "dev", "--image",
                                "ghcr.io/acme/api:1.4.3", "--author", "Jane Doe <jane@acme.test>")
    assert code == 0, err
    assert who(bare, str(result["commit"])) == "Jane Doe <jane@acme.test>|Jane Doe <jane@acme.test>"
    assert who(bare, "main").startswith("Jane Doe <jane@acme.test>")


@pytest.mark.parametrize(("environ", "expected"), [
    ({"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "octocat", "GITHUB_ACTOR_ID": "583231"},
     "octocat <583231+octocat@users.noreply.github.com>"),
    ({"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "octocat"},
     "octocat <octocat@users.noreply.github.com>"),
    ({"GITLAB_CI": "true", "GITLAB_USER_NAME": "Jane Doe",
      "GITLAB_USER_EMAIL": "jane@gitlab.example.com"}, "Jane Doe <jane@gitlab.example.com>"),
])
def test_plain_git_defaults_to_the_ci_user(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        environ: dict[str, str], expected: str) -> None:
    bare = bare_repo(tmp_path, {"envs/dev/deploy.yaml": DEPLOY})
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    code, result, err = promote(capsys, "--repo", str(bare), "--forge", "git", "--image", IMAGE)
    assert code == 0, err
    assert who(bare, str(result["commit"])) == f"{expected}|{expected}"


def test_plain_git_defaults_to_the_git_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], empty_home: Path) -> None:
    (empty_home / ".gitconfig").write_text("[user]\n\tname = Git User\n"
                                           "\temail = git-user@example.com\n")
    bare = bare_repo(tmp_path, {"envs/dev/deploy.yaml": DEPLOY})
    code, result, err = promote(capsys, "--repo", str(bare), "--image", IMAGE)
    assert code == 0, err
    assert who(bare, str(result["commit"])).startswith("Git User <git-user@example.com>|")


def test_plain_git_without_any_identity_stops_before_writing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = bare_repo(tmp_path, {"envs/dev/deploy.yaml": DEPLOY})
    code, _, err = promote(capsys, "--repo", str(bare), "--image", IMAGE)
    assert code == 2
    assert "no commit author for plain git" in err and "--author" in err
    assert "promoter@localhost" not in err
    assert git("branch", "--list", "promote/*", cwd=bare) == ""


def test_a_merge_only_rerun_uses_the_author_too(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = ("version: 1\ndefaults: {merge_method: merge, wait_for_checks: false}\n"
              "environments:\n  dev: {paths: [envs/dev], auto_merge: true}\n")
    bare = bare_repo(tmp_path, {".promoter.yaml": policy, "envs/dev/deploy.yaml": DEPLOY})
    args = ("--repo", str(bare), "--env", "dev", "--image", IMAGE)
    # a draft never merges: proposed only
    code, first, err = promote(capsys, *args, "--draft", "--author", "Jane Doe <jane@acme.test>")
    assert code == 0 and first["merged"] is False, err
    # the same promotion again, not a draft: no new commit, only the merge commit
    code, result, err = promote(capsys, *args, "--author", "Joe Roe <joe@acme.test>")
    assert code == 0 and result["merged"] is True, err
    assert result["commit"] == first["commit"]
    assert who(bare, "main") == "Joe Roe <joe@acme.test>|Joe Roe <joe@acme.test>"
    # with no identity at all, that merge stops before writing (not a git failure)
    again = ("--repo", str(bare), "--env", "dev", "--image", "ghcr.io/acme/api:1.4.3")
    code, _, err = promote(capsys, *again, "--draft", "--author", "Jane Doe <jane@acme.test>")
    assert code == 0, err
    tip = git("rev-parse", "main", cwd=bare)
    code, _, err = promote(capsys, *again)
    assert code == 2 and "no commit author for plain git" in err
    assert git("rev-parse", "main", cwd=bare) == tip


@pytest.mark.parametrize("bad", ["nobody", "Jane <jane>", "<jane@example.com>",
                                 "Jane <jane@example.com>\nEvil: x"])
def test_a_bad_author_option_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       bad: str) -> None:
    bare = bare_repo(tmp_path, {"envs/dev/deploy.yaml": DEPLOY})
    code, _, err = promote(capsys, "--repo", str(bare), "--image", IMAGE, "--author", bad)
    assert code == 2
    assert "--author" in err and 'e.g. --author "Release Bot <release-bot@example.com>"' in err
    assert git("branch", "--list", "promote/*", cwd=bare) == ""


@pytest.mark.parametrize(("text", "line", "column", "fragment"), [
    ("version: 1\nauthor: nobody\n", 2, 9, "author 'nobody': expected Name <email>"),
    ("version: 1\nauthor: 42\n", 2, 9, "author must be a string, not a number"),
    ("version: 1\nauthor: [a]\n", 2, 9, "author must be a string, not a list"),
    ('version: 1\nauthor: "A <a@b.c>\\nEvil: x"\n', 2, 9, "control character or line break"),
])
def test_config_author_errors_name_line_and_column(text: str, line: int, column: int,
                                                   fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(text)
    assert (info.value.line, info.value.column) == (line, column)
    assert fragment in info.value.message


# --- through the APIs ------------------------------------------------------------------


def test_github_commit_carries_the_author(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMOTE_TOKEN", TOKEN)
    with FakeGitHub(tmp_path / "fake") as gh:
        gh.add_token(TOKEN)
        repo = gh.create_repo("acme/config", {"envs/dev/deploy.yaml": DEPLOY.encode()})
        code, result, err = promote(capsys, "--forge", "github", "--api-url", gh.url,
                                    "--repo", "acme/config", "--image", IMAGE,
                                    "--author", "Jane Doe <jane@acme.test>")
        assert code == 0, err
        commit = repo.bare.commit(str(result["commit"]))
        assert commit is not None
        assert (commit["author_name"], commit["author_email"]) == ("Jane Doe", "jane@acme.test")
        # from the config, when no --author is given
        repo.bare.commit_files("main", {".promoter.yaml": POLICY.encode()}, "policy")
        code, result, err = promote(capsys, "--forge", "github", "--api-url", gh.url,
                                    "--repo", "acme/config", "--image", "ghcr.io/acme/api:1.4.3")
        assert code == 0, err
        commit = repo.bare.commit(str(result["commit"]))
        assert commit is not None
        assert commit["author_email"] == "config-bot@example.com"


def test_gitlab_commit_carries_the_author(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMOTE_TOKEN", TOKEN)
    with FakeGitLab(tmp_path / "fake") as gl:
        gl.add_token(TOKEN)
        project = gl.add_project("acme/config", {".promoter.yaml": POLICY.encode(),
                                                 "envs/dev/deploy.yaml": DEPLOY.encode()})
        code, result, err = promote(capsys, "--forge", "gitlab", "--api-url", gl.url,
                                    "--repo", "acme/config", "--image", IMAGE)
        assert code == 0, err
        commit = project.repo.commit(str(result["commit"]))
        assert commit is not None
        assert (commit["author_name"], commit["author_email"]) == \
            ("Config Bot", "config-bot@example.com")
        code, result, err = promote(capsys, "--forge", "gitlab", "--api-url", gl.url,
                                    "--repo", "acme/config", "--image", "ghcr.io/acme/api:1.4.3",
                                    "--author", "Jane Doe <jane@acme.test>")
        assert code == 0, err
        commit = project.repo.commit(str(result["commit"]))
        assert commit is not None
        assert commit["author_email"] == "jane@acme.test"
