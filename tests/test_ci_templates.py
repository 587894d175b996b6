"""The GitHub Action, the GitLab CI template and the CI examples.

Three layers:
- schema checks with check-jsonschema's vendored schemas (no network needed);
- static checks of what must hold for safety (no ${{ }} in scripts, pinned actions,
  inputs reach scripts only through env / variables);
- the scripts themselves, run with bash/sh the way the runners run them, against a
  real bare git repo (``--forge git``): a small runner emulation reads action.yml,
  evaluates the few expressions it uses, runs each step with its own GITHUB_OUTPUT,
  and processes workflow commands (add-mask, stop-commands, error) from its output.
  Most runs reuse this virtualenv (PROMOTER_PYTHON); one per template does the real
  install (ci/install_promoter.py) from a local wheelhouse, offline.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from promoter.ci_output import github_output_values, gitlab_dotenv_values
from tests.ci_files import parse_github_output
from tests.fakes.githttp import GitServer
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "action.yml"
TEMPLATE = ROOT / ".gitlab-ci-template.yml"
EXAMPLE_WORKFLOW = ROOT / "examples" / "workflows" / "promote.yml"
EXAMPLE_GITLAB = ROOT / "examples" / "gitlab" / ".gitlab-ci.yml"
BIN = Path(sys.executable).parent
TOKEN = "ghp_TestOnly0123456789abcdefSECRET"
APP_KEY = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAtestonlykeyline1AAAA\n"
           "c2VjcmV0LWtleS1saW5lLTItdGVzdC1vbmx5\n-----END RSA PRIVATE KEY-----\n")
JOB_TOKEN = "glcbt-TestOnlyJobToken0123456789"
DEFAULT_TOKEN = "ghs_TestOnlyDefaultWorkflowToken99"  # what ${{ github.token }} gives
SHA = "3f2c1e0d9b8a7f6e5d4c3b2a1908f7e6d5c4b3a2"
DEPLOY = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  template:\n"
    "    spec:\n      containers:\n        - name: api\n"
    "          image: ghcr.io/acme/api:1.4.1  # bumped by promoter\n"
)


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def template_documents() -> list[str]:
    return re.split(r"(?m)^---[ \t]*\n", TEMPLATE.read_text(encoding="utf-8"))


# --- schemas ------------------------------------------------------------------------


def check_schema(schema: str, *files: Path) -> None:
    tool = BIN / "check-jsonschema"
    assert tool.exists(), f"check-jsonschema is not installed next to {sys.executable}"
    proc = subprocess.run([str(tool), "--builtin-schema", f"vendor.{schema}",
                           *map(str, files)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_action_matches_the_github_actions_schema() -> None:
    check_schema("github-actions", ACTION)


def test_example_workflow_matches_the_github_workflows_schema() -> None:
    check_schema("github-workflows", EXAMPLE_WORKFLOW)


def test_each_template_document_and_the_example_match_the_gitlab_ci_schema(
    tmp_path: Path,
) -> None:
    documents = template_documents()
    assert len(documents) == 2
    files = []
    for index, text in enumerate(documents):
        path = tmp_path / f"document-{index}.yml"
        path.write_text(text, encoding="utf-8")
        files.append(path)
    check_schema("gitlab-ci", *files, EXAMPLE_GITLAB)


# --- static properties --------------------------------------------------------------


def test_action_inputs_reach_scripts_only_through_env() -> None:
    action = load_yaml(ACTION)
    used: set[str] = set()
    for step in action["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step["name"]
        for value in (step.get("env") or {}).values():
            used |= set(re.findall(r"inputs\.([a-z-]+)", str(value)))
        for value in (step.get("with") or {}).values():
            used |= set(re.findall(r"inputs\.([a-z-]+)", str(value)))
    assert used == set(action["inputs"]), "every input is used, and only declared ones"
    for name, spec in action["inputs"].items():
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", name)
        assert spec["description"]


def test_action_outputs_are_the_ones_ci_output_writes() -> None:
    action = load_yaml(ACTION)
    assert set(action["outputs"]) == set(github_output_values({}))
    for name, spec in action["outputs"].items():
        assert spec["value"] == f"${{{{ steps.promote.outputs.{name} }}}}"


def test_every_action_is_pinned_by_commit() -> None:
    uses = [step["uses"] for step in load_yaml(ACTION)["runs"]["steps"] if "uses" in step]
    workflow = load_yaml(EXAMPLE_WORKFLOW)
    for job in workflow["jobs"].values():
        uses += [step["uses"] for step in job["steps"] if "uses" in step]
    assert any(use.split("@")[0].endswith("/promoter") for use in uses)
    for use in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", use), use


def test_template_inputs_are_declared_used_and_kept_out_of_scripts() -> None:
    header, body = template_documents()
    declared = set(YAML(typ="safe").load(header)["spec"]["inputs"])
    used = set(re.findall(r"\$\[\[\s*inputs\.([a-z-]+)\s*\]\]", body))
    assert used == declared
    job = YAML(typ="safe").load(body)[".promote"]
    assert all("$[[" not in line for line in job["script"])
    assert set(job["artifacts"]["reports"]) == {"dotenv", "annotations"}
    assert job["artifacts"]["when"] == "always"


def test_template_documents_its_dotenv_names_and_the_token_rule() -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    for name in gitlab_dotenv_values({}):
        assert name in text
    assert "CI_JOB_TOKEN cannot create commits or merge requests in another" in text
    assert "PROMOTE_TOKEN" in text
    assert "`api` scope" in text


def test_lock_pins_exactly_what_the_tests_run_with() -> None:
    pins = lock_pins()
    assert {"click", "ruamel.yaml", "ruamel.yaml.clib", "tenacity", "PyGithub",
            "python-gitlab"} <= set(pins)
    for name, version in pins.items():
        assert metadata.version(name) == version, (
            f"requirements.lock pins {name}=={version} but the tests run with "
            f"{metadata.version(name)}: update the lock, or install the test environment "
            "with `pip install -c requirements.lock -e .[test]`")
    # nothing the runtime needs is missing: every requirement of a pinned package
    # (without extras and markers that apply here) is pinned too
    wanted = {_norm(name) for name in pins}
    for name in pins:
        for requirement in metadata.requires(name) or []:
            dep, _, marker = requirement.partition(";")
            if "extra" in marker or "python_version < \"3.9\"" in marker:
                continue
            dep_name = re.match(r"[A-Za-z0-9_.-]+", dep.strip())
            assert dep_name is not None
            assert _norm(dep_name.group(0)) in wanted, f"{name} needs {dep_name.group(0)}"


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name] = version
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- a GitHub Actions runner, small ---------------------------------------------------


@dataclass
class ActionRun:
    code: int
    outputs: dict[str, str]
    summary: str
    logs: str  # stdout and stderr of every step, as the runner saw them
    masks: list[str] = field(default_factory=list)
    annotations: list[str] = field(default_factory=list)
    steps_run: list[str] = field(default_factory=list)

    def visible_log(self) -> str:
        """The log as a reader sees it: masked values shown as ***."""
        text = "\n".join(line for line in self.logs.splitlines()
                         if not line.startswith("::add-mask::"))
        for secret in sorted(self.masks, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text




_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def _lookup(path: str, ctx: Mapping[str, Any]) -> str:
    root, *rest = path.split(".")
    if root == "inputs":
        return str(ctx["inputs"][rest[0]])  # KeyError: an undeclared input
    if root == "steps":
        step_id, kind, name = rest
        assert kind == "outputs"
        return str(ctx["steps"].get(step_id, {}).get(name, ""))
    if path == "github.token":
        return str(ctx["github_token"])
    raise AssertionError(f"the test runner does not know {path!r}")


def _evaluate(expr: str, ctx: Mapping[str, Any]) -> str | bool:
    compare = re.fullmatch(r"([\w.-]+)\s*(==|!=)\s*'([^']*)'", expr)
    if compare:
        left, op, right = compare.groups()
        return (_lookup(left, ctx) == right) == (op == "==")
    if re.fullmatch(r"[\w.-]+", expr):
        return _lookup(expr, ctx)
    raise AssertionError(f"the test runner does not know the expression {expr!r}")


def _expand(text: str, ctx: Mapping[str, Any]) -> str:
    return _EXPR.sub(lambda m: str(_evaluate(m.group(1), ctx)), text)


def _workflow_commands(text: str, run: ActionRun) -> None:
    """What the runner does with a step's output lines."""
    stop: str | None = None
    for line in text.splitlines():
        if stop is not None:
            if line == f"::{stop}::":
                stop = None
            continue
        command = re.match(r"::([a-z-]+)(?: ([^:]*))?::(.*)$", line)
        if command is None:
            continue
        name, _, data = command.groups()
        data = data.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")
        if name == "add-mask":
            run.masks.append(data)
        elif name == "stop-commands":
            stop = data
        elif name in {"error", "warning", "notice"}:
            run.annotations.append(line)


def base_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": f"{BIN}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def run_action(tmp_path: Path, inputs: Mapping[str, str], extra_env: Mapping[str, str],
               *, github_token: str = DEFAULT_TOKEN) -> ActionRun:
    action = load_yaml(ACTION)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    summary = tmp_path / "step-summary.md"
    summary.touch()
    ctx: dict[str, Any] = {"inputs": {}, "steps": {}, "github_token": github_token}
    for name, spec in action["inputs"].items():
        ctx["inputs"][name] = _expand(str(spec.get("default", "")), ctx)
    assert set(inputs) <= set(ctx["inputs"]), "unknown input"
    ctx["inputs"].update(inputs)
    env = base_env(tmp_path) | {
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTION_PATH": str(ROOT),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_REPOSITORY": "acme/api",
        "GITHUB_SHA": SHA,
        "GITHUB_REF": "refs/tags/v1.4.2",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_ACTOR": "jane",
        "RUNNER_TEMP": str(runner_temp),
    } | dict(extra_env)
    run = ActionRun(code=0, outputs={}, summary="", logs="")
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    for index, step in enumerate(action["runs"]["steps"]):
        condition = step.get("if")
        if condition is not None and not _evaluate(condition, ctx):
            continue
        assert "uses" not in step, f"the test runner cannot run {step['uses']}"
        assert step["shell"] == "bash"
        output = tmp_path / f"github-output-{index}"
        output.touch()
        step_env = env | {k: _expand(str(v), ctx) for k, v in (step.get("env") or {}).items()}
        step_env["GITHUB_OUTPUT"] = str(output)
        script = tmp_path / f"step-{index}.sh"
        script.write_text(step["run"], encoding="utf-8")
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                              env=step_env, cwd=workspace, capture_output=True, text=True,
                              timeout=240)
        run.steps_run.append(step["name"])
        run.logs += proc.stdout + proc.stderr
        _workflow_commands(proc.stdout, run)
        _workflow_commands(proc.stderr, run)
        if "id" in step:
            ctx["steps"][step["id"]] = parse_github_output(output.read_text(encoding="utf-8"))
        if proc.returncode != 0:
            run.code = proc.returncode
            break
    run.outputs = {name: _expand(spec["value"], ctx) for name, spec in action["outputs"].items()}
    run.summary = summary.read_text(encoding="utf-8")
    return run


# --- config repos -------------------------------------------------------------------


def git(*args: str, cwd: Path) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout


def config_repo(tmp_path: Path, files: Mapping[str, str] | None = None) -> Path:
    """A bare repo whose main branch holds ``files`` (a prod deployment by default)."""
    work = tmp_path / "seed"
    bare = tmp_path / "config.git"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    git("init", "-q", "-b", "main", str(work), cwd=tmp_path)
    for name, text in (files or {"envs/prod/deploy.yaml": DEPLOY}).items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text, encoding="utf-8")
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "seed", cwd=work)
    git("push", "-q", str(bare), "main", cwd=work)
    return bare


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
        for line in secret.splitlines():
            if len(line) >= 16 and "-----" not in line:
                assert line not in text


# --- the action, run ----------------------------------------------------------------


def fast(tmp_path: Path) -> dict[str, str]:
    """Skip the install: use promoter from the virtualenv running the tests."""
    return {"PROMOTER_PYTHON": sys.executable}


def test_action_proposes_through_plain_git(tmp_path: Path) -> None:
    bare = config_repo(tmp_path)
    run = run_action(tmp_path, {"repo": str(bare), "forge": "git", "token": TOKEN,
                                "image": "ghcr.io/acme/api:1.4.2\n"}, fast(tmp_path))
    assert run.code == 0, run.logs
    assert run.steps_run == ["Mask credentials", "Install promoter", "Promote"]
    out = run.outputs
    assert out["status"] == "proposed"
    assert out["changed"] == "true"
    assert out["merged"] == out["auto-merge"] == "false"
    assert out["branch"].startswith("promote/")
    assert out["pr-number"] == "0"
    assert re.fullmatch(r"[0-9a-f]{40}", out["commit"])
    policy = json.loads(out["policy"])
    assert policy["allows_merge"] is False
    assert {check["name"] for check in policy["checks"]} >= {"semver_bump", "no_downgrade"}
    # the commit is real, on the promotion branch, with the new tag and the provenance
    landed = git("show", f"{out['commit']}:envs/prod/deploy.yaml", cwd=bare)
    assert landed == DEPLOY.replace("1.4.1", "1.4.2")
    assert git("rev-parse", out["branch"], cwd=bare).strip() == out["commit"]
    assert SHA in git("log", "-1", "--format=%B", out["commit"], cwd=bare)
    # the summary
    assert run.summary.startswith("## promote: pull request opened or updated\n")
    assert "ghcr\\.io\\/acme\\/api\\:1\\.4\\.1" in run.summary
    assert "ghcr\\.io\\/acme\\/api\\:1\\.4\\.2" in run.summary
    assert "### Policy: merge needs a human" in run.summary
    # the token: masked before anything printed, and nowhere else
    assert run.masks[0] == TOKEN
    assert run.logs.startswith(f"::add-mask::{TOKEN}\n")
    everything = run.visible_log() + run.summary + json.dumps(run.outputs)
    assert_no_secret(everything, TOKEN)
    # the JSON report is in the log, with workflow commands off
    assert '"status": "proposed"' in run.logs
    assert run.annotations == []


def test_action_rerun_is_up_to_date_after_merge(tmp_path: Path) -> None:
    bare = config_repo(tmp_path, {"envs/prod/deploy.yaml": DEPLOY.replace("1.4.1", "1.4.2")})
    run = run_action(tmp_path, {"repo": str(bare), "forge": "git", "token": TOKEN,
                                "image": "ghcr.io/acme/api:1.4.2"}, fast(tmp_path))
    assert run.code == 0, run.logs
    assert run.outputs["status"] == "up-to-date"
    assert run.outputs["changed"] == "false"
    assert run.outputs["pr-url"] == ""
    assert "No file needed a change." in run.summary


def test_action_dry_run_with_lists_and_flags(tmp_path: Path) -> None:
    bare = config_repo(tmp_path, {
        "envs/prod/deploy.yaml": DEPLOY,
        "envs/prod/worker.yaml": DEPLOY.replace("acme/api", "acme/worker"),
        "envs/dev/deploy.yaml": DEPLOY,
    })
    run = run_action(tmp_path, {
        "repo": str(bare), "forge": "git", "dry-run": "TRUE",
        "image": " ghcr.io/acme/api:2.0.0\n\tghcr.io/acme/worker:1.5.0  ",
        "path": "envs/prod", "labels": "prod, needs review\n", "reviewers": "a, b c",
    }, fast(tmp_path))
    assert run.code == 0, run.logs
    assert run.outputs["status"] == "dry-run"
    assert run.outputs["commit"] == ""
    assert "envs\\/prod\\/deploy\\.yaml" in run.summary
    assert "envs\\/prod\\/worker\\.yaml" in run.summary
    assert "envs\\/dev" not in run.summary
    assert git("branch", "--list", "promote/*", cwd=bare) == ""


def test_action_failure_annotates_and_still_writes_outputs(tmp_path: Path) -> None:
    bare = config_repo(tmp_path)
    run = run_action(tmp_path, {"repo": str(bare), "forge": "git", "token": TOKEN,
                                "image": "ghcr.io/acme/nowhere:1.0.0"}, fast(tmp_path))
    assert run.code == 3, run.logs
    assert run.outputs["status"] in {"failed", "error"}
    assert run.outputs["changed"] == "false"
    assert run.summary.startswith("## promote: failed (exit 3)\n")
    assert any(note.startswith("::error ") for note in run.annotations), run.logs
    assert_no_secret(run.visible_log() + run.summary, TOKEN)


def test_action_rejects_a_bad_boolean_before_running(tmp_path: Path) -> None:
    run = run_action(tmp_path, {"repo": "acme/config", "image": "ghcr.io/acme/api:1",
                                "auto-merge": "yes please"}, fast(tmp_path))
    assert run.code == 2
    assert run.annotations == [
        "::error title=promoter action::input for --auto-merge must be true or false, "
        "not 'yes please'"
    ]


def test_action_masks_every_line_of_the_app_key(tmp_path: Path) -> None:
    bare = config_repo(tmp_path)
    run = run_action(tmp_path, {"repo": str(bare), "forge": "git",
                                "image": "ghcr.io/acme/api:1.4.2",
                                "github-app-id": "12345", "github-app-key": APP_KEY},
                     fast(tmp_path))
    key_lines = [line for line in APP_KEY.splitlines() if line]
    assert run.masks[: 1 + len(key_lines)] == [DEFAULT_TOKEN, *key_lines]
    assert_no_secret(run.visible_log() + run.summary, APP_KEY)


def test_action_hostile_inputs_stay_data(tmp_path: Path) -> None:
    bare = config_repo(tmp_path)
    marker = tmp_path / "pwned"
    run = run_action(tmp_path, {"repo": str(bare), "forge": "git",
                                "image": f"ghcr.io/acme/api:1.4.2 $(touch {marker}) *",
                                "base": f"main; touch {marker}"}, fast(tmp_path))
    assert not marker.exists()
    assert run.code == 2, run.logs


def test_action_opens_a_pull_request_on_github(tmp_path: Path) -> None:
    with FakeGitHub(tmp_path / "fake") as gh:
        gh.add_token(TOKEN)
        gh.create_repo("acme/config", {"envs/prod/deploy.yaml": DEPLOY.encode()})
        run = run_action(tmp_path, {"repo": "acme/config", "api-url": gh.url, "token": TOKEN,
                                    "image": "ghcr.io/acme/api:1.4.2", "labels": "prod"},
                         fast(tmp_path))
        assert run.code == 0, run.logs
        out = run.outputs
        assert (out["status"], out["pr-number"], out["changed"]) == ("proposed", "1", "true")
        pull = gh.pull("acme/config", 1)
        assert out["pr-url"] == pull["html_url"]
        assert out["branch"] == pull["head"]["ref"]
        assert out["commit"] == pull["head"]["sha"]
        assert [label["name"] for label in pull["labels"]] == ["prod"]
        # the provenance of this (emulated) workflow run reaches the pull request
        assert "https://github.com/acme/api/actions/runs/4242" in pull["body"]
        assert f"[pull request \\#1]({pull['html_url']}) (opened)" in run.summary
        assert_no_secret(run.visible_log() + run.summary + json.dumps(out) + pull["body"],
                         TOKEN)


def test_action_merges_on_github_when_policy_allows(tmp_path: Path) -> None:
    policy = (b"version: 1\ndefaults: {wait_for_checks: false}\n"
              b"environments:\n  prod: {paths: ['envs/prod/**'], auto_merge: true}\n")
    with FakeGitHub(tmp_path / "fake") as gh:
        gh.add_token(TOKEN)
        gh.create_repo("acme/config", {".promoter.yaml": policy,
                                       "envs/prod/deploy.yaml": DEPLOY.encode()})
        run = run_action(tmp_path, {"repo": "acme/config", "api-url": gh.url, "token": TOKEN,
                                    "image": "ghcr.io/acme/api:1.4.2", "env": "prod",
                                    "auto-merge": "true", "require-merge": "true"},
                         fast(tmp_path))
        assert run.code == 0, run.logs
        assert run.outputs["status"] == "merged"
        assert run.outputs["merged"] == "true"
        assert json.loads(run.outputs["policy"])["allows_merge"] is True
        assert gh.pull("acme/config", 1)["merged"] is True
        assert "### Policy: merge allowed" in run.summary


def test_action_refusal_exits_4_with_outputs(tmp_path: Path) -> None:
    with FakeGitHub(tmp_path / "fake") as gh:
        gh.add_token(TOKEN)
        gh.create_repo("acme/config", {"envs/prod/deploy.yaml": DEPLOY.encode()})
        run = run_action(tmp_path, {"repo": "acme/config", "api-url": gh.url, "token": TOKEN,
                                    "image": "ghcr.io/acme/api:1.4.2", "require-merge": "true"},
                         fast(tmp_path))
        assert run.code == 4, run.logs
        assert run.outputs["merged"] == "false"
        assert run.outputs["status"] == "refused"
        assert gh.pull("acme/config", 1)["state"] == "open"  # left for a human
        assert run.summary.startswith("## promote: ")
        assert any(note.startswith("::error ") for note in run.annotations), run.logs
        assert_no_secret(run.visible_log() + run.summary, TOKEN)


# --- the GitLab template, run -------------------------------------------------------


def template_job(inputs: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The .promote job's variables (inputs interpolated) and its script."""
    header, body = template_documents()
    spec = YAML(typ="safe").load(header)["spec"]["inputs"]
    values: dict[str, Any] = {name: v.get("default") for name, v in spec.items()}
    values |= dict(inputs)
    missing = [name for name, value in values.items() if value is None]
    assert not missing, f"required inputs: {missing}"

    block = re.compile(r"\$\[\[\s*inputs\.([a-z-]+)\s*\]\]")

    def interpolate(node: Any) -> Any:
        # as GitLab does it: on the parsed YAML; a node that is one block takes the
        # input's value as it is, a block inside a longer string is replaced as text
        if isinstance(node, dict):
            return {interpolate(k): interpolate(v) for k, v in node.items()}
        if isinstance(node, list):
            return [interpolate(item) for item in node]
        if not isinstance(node, str):
            return node
        whole = block.fullmatch(node)
        if whole:
            return values[whole.group(1)]
        return block.sub(lambda m: json.dumps(values[m.group(1)]).strip('"'), node)

    job = interpolate(YAML(typ="safe").load(body))[".promote"]
    variables = {}
    for name, value in job["variables"].items():
        # GitLab turns a boolean variable into "true" / "false"; null would be invalid
        assert isinstance(value, (str, bool)), f"{name}: {value!r}"
        variables[name] = str(value).lower() if isinstance(value, bool) else value
    return variables, "\n".join(job["script"])


def _expand_variables(variables: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """GitLab expands $NAME / ${NAME} in variable values from the job's environment."""
    def one(value: str) -> str:
        return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
                      lambda m: env.get(m.group(1), ""), value)
    return {name: one(value) for name, value in variables.items()}


@dataclass
class JobRun:
    code: int
    log: str
    dotenv: dict[str, str]
    annotations: dict[str, Any]
    report: str


def run_gitlab_job(tmp_path: Path, inputs: Mapping[str, str], extra_env: Mapping[str, str],
                   shell: str = "bash") -> JobRun:
    variables, script = template_job(inputs)
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    env = base_env(tmp_path) | {
        "GITLAB_CI": "true",
        "CI": "true",
        "CI_PROJECT_DIR": str(project),
        "CI_PROJECT_PATH": "acme/api",
        "CI_COMMIT_SHA": SHA,
        "CI_COMMIT_REF_NAME": "main",
        "CI_PIPELINE_URL": "https://gitlab.example.com/acme/api/-/pipelines/7",
        "CI_SERVER_URL": "https://gitlab.example.com",
        "CI_API_V4_URL": "https://gitlab.example.com/api/v4",
        "CI_JOB_TOKEN": JOB_TOKEN,
        "CI_REGISTRY_IMAGE": "ghcr.io/acme/api",
        "CI_COMMIT_TAG": "1.4.2",
        "GITLAB_USER_LOGIN": "jane",
        "GITLAB_USER_NAME": "Jane Doe",
        "GITLAB_USER_EMAIL": "jane@example.com",
    } | dict(extra_env)
    env |= _expand_variables(variables, env)
    # a dotenv report of an earlier job, inherited through needs:, must change nothing
    env |= {"PROMOTE_AUTO_MERGE": "true", "PROMOTE_STATUS": "merged"}
    flags = "-eo pipefail" if shell == "bash" else "-e"
    proc = subprocess.run([shell, *flags.split(), "-c", script], env=env, cwd=project,
                          capture_output=True, text=True, timeout=240)
    dotenv_file = project / "promote.env"
    notes = project / "promote-annotations.json"
    dotenv = {}
    if dotenv_file.exists():
        for line in dotenv_file.read_text(encoding="utf-8").splitlines():
            name, _, value = line.partition("=")
            dotenv[name] = value
    return JobRun(
        code=proc.returncode,
        log=proc.stdout + proc.stderr,
        dotenv=dotenv,
        annotations=json.loads(notes.read_text(encoding="utf-8")) if notes.exists() else {},
        report=(project / "promote.json").read_text(encoding="utf-8")
        if (project / "promote.json").exists() else "",
    )


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_gitlab_job_proposes_and_leaves_the_reports(tmp_path: Path, shell: str) -> None:
    bare = config_repo(tmp_path)
    run = run_gitlab_job(tmp_path, {
        "repo": str(bare), "forge": "git",
        "image": "$CI_REGISTRY_IMAGE:$CI_COMMIT_TAG",
        "labels": "prod, needs review", "reviewers": "a b,c",
    }, {"PROMOTE_TOKEN": TOKEN, "PROMOTER_PYTHON": sys.executable}, shell)
    assert run.code == 0, run.log
    dotenv = run.dotenv
    assert list(dotenv) == list(gitlab_dotenv_values({}))
    assert dotenv["PROMOTE_STATUS"] == "proposed"
    assert dotenv["PROMOTE_CHANGED"] == "true"
    assert dotenv["PROMOTE_AUTO_MERGE"] == "false"  # the inherited PROMOTE_AUTO_MERGE did nothing
    assert dotenv["PROMOTE_MR_IID"] == "0"
    assert dotenv["PROMOTE_BRANCH"].startswith("promote/")
    landed = git("show", f"{dotenv['PROMOTE_COMMIT']}:envs/prod/deploy.yaml", cwd=bare)
    assert "ghcr.io/acme/api:1.4.2" in landed
    assert json.loads(run.report)["status"] == "proposed"
    assert run.annotations == {"promoter": []}  # plain git: no merge request to link
    assert_no_secret(run.log + run.report + str(dotenv), TOKEN, JOB_TOKEN)


def test_gitlab_job_opens_a_merge_request_and_links_it(tmp_path: Path) -> None:
    with FakeGitLab(tmp_path / "fake") as gl:
        gl.add_token(TOKEN)
        gl.add_project("acme/config", {"envs/prod/deploy.yaml": DEPLOY.encode()})
        run = run_gitlab_job(tmp_path, {"repo": "acme/config", "api-url": gl.url,
                                        "image": "$CI_REGISTRY_IMAGE:$CI_COMMIT_TAG"},
                             {"PROMOTE_TOKEN": TOKEN, "PROMOTER_PYTHON": sys.executable})
        assert run.code == 0, run.log
        mr = gl.merge_request("acme/config", 1)
    assert run.dotenv["PROMOTE_MR_IID"] == "1"
    assert run.dotenv["PROMOTE_MR_URL"] == mr["web_url"]
    assert run.dotenv["PROMOTE_BRANCH"] == mr["source_branch"]
    assert run.dotenv["PROMOTE_STATUS"] == "proposed"
    assert run.annotations == {"promoter": [{"external_link": {
        "label": "Merge request !1", "url": mr["web_url"]}}]}
    # the provenance of this (emulated) pipeline reaches the merge request
    assert "https://gitlab.example.com/acme/api/-/pipelines/7" in mr["description"]
    assert_no_secret(run.log + run.report + mr["description"], TOKEN, JOB_TOKEN)


def test_gitlab_job_token_alone_cannot_promote_into_another_project(tmp_path: Path) -> None:
    with FakeGitLab(tmp_path / "fake") as gl:
        gl.add_token(JOB_TOKEN, kind="job", project="acme/api")
        gl.add_project("acme/api", {"README.md": b"app\n"})
        gl.add_project("acme/config", {"envs/prod/deploy.yaml": DEPLOY.encode()})
        # the job runs on this GitLab: the job token may be sent to it (and only to it)
        run = run_gitlab_job(tmp_path, {"repo": "acme/config", "api-url": gl.url,
                                        "image": "ghcr.io/acme/api:1.4.2"},
                             {"PROMOTER_PYTHON": sys.executable, "CI_SERVER_URL": gl.url})
        assert gl.merge_requests("acme/config") == []
    assert run.code == 5, run.log
    assert run.dotenv["PROMOTE_STATUS"] in {"error", "failed"}
    assert "PROMOTE_TOKEN" in run.log  # the error says what to do
    assert JOB_TOKEN not in run.log


def test_gitlab_job_with_a_token_in_the_git_url_keeps_it_out_of_the_artifacts(
        tmp_path: Path) -> None:
    """config-repo is an http URL carrying a token: the promote.json artifact, the
    dotenv report and the job log show the URL without it."""
    config_repo(tmp_path)
    url_token = "glpat-URLtokenURLtoken-0123456789"
    with GitServer(tmp_path, user="oauth2", token=url_token) as server:
        run = run_gitlab_job(tmp_path, {"config-repo": server.url("config.git"),
                                        "forge": "git", "image-ref": "ghcr.io/acme/api:1.4.2"},
                             {"PROMOTER_PYTHON": sys.executable})
    assert run.code == 0, run.log
    assert f"127.0.0.1:{server.port}/config.git" in run.report
    assert_no_secret(run.log + run.report + json.dumps(run.dotenv), url_token)


def test_gitlab_job_failure_still_leaves_the_dotenv(tmp_path: Path) -> None:
    bare = config_repo(tmp_path)
    run = run_gitlab_job(tmp_path, {"repo": str(bare), "forge": "git",
                                    "image": "ghcr.io/acme/nowhere:1.0.0"},
                         {"PROMOTER_PYTHON": sys.executable})
    assert run.code == 3, run.log
    assert run.dotenv["PROMOTE_STATUS"] in {"failed", "error"}
    assert run.dotenv["PROMOTE_CHANGED"] == "false"


def test_gitlab_job_boolean_inputs(tmp_path: Path) -> None:
    bare = config_repo(tmp_path)
    run = run_gitlab_job(tmp_path, {"repo": str(bare), "forge": "git",
                                    "image": "ghcr.io/acme/api:1.4.2", "dry-run": "true"},
                         {"PROMOTER_PYTHON": sys.executable})
    assert run.code == 0, run.log
    assert run.dotenv["PROMOTE_STATUS"] == "dry-run"
    assert git("branch", "--list", "promote/*", cwd=bare) == ""


# --- the real install, offline ------------------------------------------------------


def _repack(name: str, out: Path) -> None:
    """A wheel of an installed distribution, rebuilt from its RECORD (the test venv has
    the exact pinned versions; no network is needed to install them again)."""
    dist = metadata.distribution(name)
    assert dist.version == lock_pins()[name], "see test_lock_pins_exactly_what_the_tests_run_with"
    files = [f for f in dist.files or [] if not str(f).startswith("..")
             and "__pycache__" not in str(f)]
    info_dir = next(str(f).split("/")[0] for f in files if str(f).split("/")[0]
                    .endswith(".dist-info"))
    wheel_meta = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip().split("-") for line in wheel_meta.splitlines()
            if line.startswith("Tag:")]
    tag = "-".join(".".join(dict.fromkeys(t[i] for t in tags)) for i in range(3))
    stem = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    skip = {f"{info_dir}/{n}" for n in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")}
    record = []
    target = out / f"{stem}-{dist.version}-{tag}.whl"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for f in files:
            arcname = str(f)
            if arcname in skip:
                continue
            data = Path(str(dist.locate_file(f))).read_bytes()
            archive.writestr(arcname, data)
            record.append(f"{arcname},,{len(data)}")
        record.append(f"{info_dir}/RECORD,,")
        archive.writestr(f"{info_dir}/RECORD", "\n".join(record) + "\n")


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheelhouse")
    for name in lock_pins():
        _repack(name, out)
    return out


def offline_pip(wheelhouse: Path) -> dict[str, str]:
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse)}


def test_action_installs_promoter_for_real(tmp_path: Path, wheelhouse: Path) -> None:
    bare = config_repo(tmp_path)
    run = run_action(tmp_path, {"repo": str(bare), "forge": "git", "token": TOKEN,
                                "image": "ghcr.io/acme/api:1.4.2"}, offline_pip(wheelhouse))
    assert run.code == 0, run.logs
    venv = tmp_path / "runner-temp" / "promoter-venv"
    version = subprocess.run([str(venv / "bin" / "promote"), "--version"], capture_output=True,
                             text=True, check=True, env={"PATH": "/usr/bin:/bin"}).stdout
    assert version.strip().endswith(metadata.version("promoter"))
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m, json; "
         "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"],
        capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"}).stdout
    installed = {k: v for k, v in json.loads(listed).items() if k not in {"pip", "setuptools"}}
    assert {_norm(k): v for k, v in installed.items()} == {
        **{_norm(k): v for k, v in lock_pins().items()}, "promoter": metadata.version("promoter"),
    }
    assert run.outputs["status"] == "proposed"
    assert_no_secret(run.visible_log() + run.summary, TOKEN)


@contextlib.contextmanager
def archive_server(archive: bytes, project: str, ref: str,
                   tls: tuple[Path, Path] | None = None) -> Iterator[tuple[str, list[str]]]:
    """A local GitLab answering GET /projects/:id/repository/archive.tar.gz?sha=REF
    (over HTTPS with ``tls``: certificate, key)."""
    seen_tokens: list[str] = []
    wanted = f"/api/v4/projects/{project.replace('/', '%2F')}/repository/archive.tar.gz?sha={ref}"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen_tokens.append(self.headers.get("JOB-TOKEN", ""))
            if self.path != wanted:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-gzip")
            self.send_header("Content-Length", str(len(archive)))
            self.end_headers()
            self.wfile.write(archive)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}/api/v4", seen_tokens
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def source_archive(top: str) -> bytes:
    """promoter's source as GitLab's archive endpoint serves it (one top directory)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for rel in ["pyproject.toml", "requirements.lock", "ci/install_promoter.py"]:
            archive.add(ROOT / rel, f"{top}/{rel}")
        for path in sorted((ROOT / "promoter").rglob("*.py")):
            archive.add(path, f"{top}/{path.relative_to(ROOT)}")
    return gzip.compress(buffer.getvalue())


def test_gitlab_job_installs_promoter_for_real(tmp_path: Path, wheelhouse: Path) -> None:
    bare = config_repo(tmp_path)
    job_tmp = tmp_path / "job-tmp"  # /tmp of a shell executor, kept between jobs
    job_tmp.mkdir()
    with archive_server(source_archive(f"promoter-v0.1.0-{SHA}"), "acme/promoter",
                        "v0.1.0") as (api, tokens):
        run = run_gitlab_job(tmp_path, {"repo": str(bare), "forge": "git",
                                        "image": "ghcr.io/acme/api:1.4.2"},
                             {"CI_API_V4_URL": api, "PROMOTE_TOKEN": TOKEN,
                              "TMPDIR": str(job_tmp), **offline_pip(wheelhouse)})
    assert run.code == 0, run.log
    assert list(job_tmp.iterdir()) == []  # the install dir is removed after the job
    assert tokens == [JOB_TOKEN]  # same server: the archive is fetched with the job token
    assert run.dotenv["PROMOTE_STATUS"] == "proposed"
    assert "promoter installed:" in run.log
    assert_no_secret(run.log + run.report, TOKEN, JOB_TOKEN)


def test_gitlab_job_sends_no_job_token_to_another_server(tmp_path: Path) -> None:
    with archive_server(b"not found here", "acme/promoter", "nope") as (api, tokens):
        run = run_gitlab_job(tmp_path, {"repo": "acme/config",
                                        "image": "ghcr.io/acme/api:1.4.2",
                                        "promoter-api-url": api}, {})
    assert run.code != 0
    assert tokens == [""]
    assert "cannot download promoter v0.1.0" in run.log
    assert JOB_TOKEN not in run.log


def test_gitlab_job_token_does_not_follow_a_redirect(tmp_path: Path) -> None:
    """The job's own GitLab answers the archive download with a 302 to another server:
    that server must not receive the job token."""
    seen: list[str] = []

    class Other(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("JOB-TOKEN", ""))
            self.send_error(404, "Not Found")

        def log_message(self, *args: object) -> None:
            pass

    other = ThreadingHTTPServer(("127.0.0.1", 0), Other)
    target = f"http://127.0.0.1:{other.server_address[1]}"

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    own = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (other, own)]
    for thread in threads:
        thread.start()
    try:
        api = f"http://127.0.0.1:{own.server_address[1]}/api/v4"
        run = run_gitlab_job(tmp_path, {"config-repo": "acme/config",
                                        "image-ref": "ghcr.io/acme/api:1.4.2"},
                             {"CI_API_V4_URL": api})
    finally:
        for server in (other, own):
            server.shutdown()
            server.server_close()
    assert run.code != 0
    assert seen == [""]  # the redirect was followed, without the token
    assert JOB_TOKEN not in run.log


def test_install_script_packs_a_reproducible_wheel(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "ci"))
    try:
        import install_promoter
    finally:
        sys.path.remove(str(ROOT / "ci"))
    first = install_promoter.pack_wheel(ROOT, tmp_path / "a")
    second = install_promoter.pack_wheel(ROOT, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    assert first.name == f"promoter-{metadata.version('promoter')}-py3-none-any.whl"
    with zipfile.ZipFile(first) as wheel:
        names = wheel.namelist()
        assert "promoter/cli.py" in names
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        info = f"promoter-{metadata.version('promoter')}.dist-info"
        assert "promote = promoter.cli:main" in wheel.read(f"{info}/entry_points.txt").decode()
        meta = wheel.read(f"{info}/METADATA").decode()
        assert "Requires-Dist: PyGithub>=2.4" in meta
        record = wheel.read(f"{info}/RECORD").decode().splitlines()
        assert len(record) == len(names)
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert install_promoter.read_project(ROOT / "pyproject.toml") == \
        install_promoter._read_project_simply(text)
    shutil.rmtree(tmp_path / "a")


# --- one vocabulary: the CLI's option names -------------------------------------------

# CLI options that make no sense as a CI input: the CI entry points own the output
# format and the reports, and a CI job has no working tree to edit or terminal to colour.
NOT_CI = {"in-place", "output", "dotenv", "no-color", "version", "help",
          "github-app-key-file"}
PLURAL = {"label": "labels", "reviewer": "reviewers", "assignee": "assignees"}


def cli_vocabulary() -> set[str]:
    from promoter.cli import main

    names = set()
    for param in main.params:
        for opt in param.opts:
            if opt.startswith("--"):
                name = opt[2:]
                names.add(PLURAL.get(name, name))
    return names - NOT_CI


def test_the_action_and_the_template_use_the_cli_option_names() -> None:
    wanted = cli_vocabulary()
    assert {"repo", "image", "env", "api-url", "labels", "reviewers", "assignees", "draft",
            "history", "rollback", "auto-merge", "require-merge", "merge-timeout", "file",
            "path", "base"} <= wanted
    action = set(load_yaml(ACTION)["inputs"])
    header, _ = template_documents()
    template = set(YAML(typ="safe").load(header)["spec"]["inputs"])
    github_only = {"github-app-id"}
    assert wanted - action == set(), "inputs the action lacks"
    assert wanted - github_only - template == set(), "inputs the template lacks"
    # and nothing else, but the CI entry points' own inputs
    assert action - wanted == {"token", "github-app-key"}
    assert {"ca-bundle", "wait-for-rate-limit"} <= action & template
    assert template - wanted == {"stage", "job-name", "job-image", "promoter-project",
                                 "promoter-ref", "promoter-api-url",
                                 "config-repo", "image-ref", "environment"}  # deprecated


def test_the_action_pulls_no_nested_action() -> None:
    steps = load_yaml(ACTION)["runs"]["steps"]
    assert [step for step in steps if "uses" in step] == []
    assert "python-version" not in load_yaml(ACTION)["inputs"]


def test_the_template_installs_the_release_it_ships_with() -> None:
    from promoter import __version__

    header, _ = template_documents()
    inputs = YAML(typ="safe").load(header)["spec"]["inputs"]
    assert inputs["promoter-ref"]["default"] == f"v{__version__}"
    assert f"ref: v{__version__}" in TEMPLATE.read_text(encoding="utf-8")


def test_action_without_python3_on_path_says_what_to_do(tmp_path: Path) -> None:
    only_bash = tmp_path / "bin"
    only_bash.mkdir()
    (only_bash / "bash").symlink_to(shutil.which("bash") or "/bin/bash")
    run = run_action(tmp_path, {"repo": "acme/config", "image": "ghcr.io/acme/api:1"},
                     {"PATH": str(only_bash)})
    assert run.code == 2
    assert run.steps_run == ["Mask credentials", "Install promoter"]
    assert any("python3 is not on PATH; set up Python 3.10 or newer in the workflow first"
               in note for note in run.annotations), run.logs


def test_action_draft_and_assignees_reach_the_pull_request(tmp_path: Path) -> None:
    with FakeGitHub(tmp_path / "fake") as gh:
        gh.add_token(TOKEN)
        gh.create_repo("acme/config", {"envs/prod/deploy.yaml": DEPLOY.encode()})
        run = run_action(tmp_path, {"repo": "acme/config", "api-url": gh.url, "token": TOKEN,
                                    "image": "ghcr.io/acme/api:1.4.2", "draft": "true",
                                    "assignees": "jane, joe", "retry-timeout": "5"},
                         fast(tmp_path))
        assert run.code == 0, run.logs
        pull = gh.pull("acme/config", 1)
    assert pull["draft"] is True
    assert [a["login"] for a in pull["assignees"]] == ["jane", "joe"]


def test_action_history_and_rollback_modes(tmp_path: Path) -> None:
    bare = config_repo(tmp_path, {
        ".promoter.yaml": "version: 1\nenvironments:\n  prod: {paths: [envs/prod]}\n",
        "envs/prod/deploy.yaml": DEPLOY})
    first = run_action(tmp_path, {"repo": str(bare), "forge": "git", "env": "prod",
                                  "image": "ghcr.io/acme/api:1.4.2"}, fast(tmp_path))
    assert first.code == 0, first.logs
    git("update-ref", "refs/heads/main", first.outputs["commit"], cwd=bare)  # merged
    history = run_action(tmp_path, {"repo": str(bare), "forge": "git", "env": "prod",
                                    "history": "true", "image": "ghcr.io/acme/api"},
                         fast(tmp_path))
    assert history.code == 0, history.logs
    assert history.outputs["status"] == "history"
    assert "ghcr.io/acme/api:1.4.1 -> ghcr.io/acme/api:1.4.2" in history.logs
    back = run_action(tmp_path, {"repo": str(bare), "forge": "git", "env": "prod",
                                 "rollback": "true", "image": "ghcr.io/acme/api"},
                      fast(tmp_path))
    assert back.code == 0, back.logs
    assert back.outputs["status"] == "proposed"
    landed = git("show", f"{back.outputs['commit']}:envs/prod/deploy.yaml", cwd=bare)
    assert "ghcr.io/acme/api:1.4.1" in landed


def test_action_accepts_a_github_enterprise_server_root(tmp_path: Path) -> None:
    from tests.tls import self_signed

    cert, key = self_signed(tmp_path)
    with FakeGitHub(tmp_path / "fake", prefix="/api/v3", tls=(cert, key)) as ghes:
        ghes.add_token(TOKEN)
        ghes.create_repo("acme/config", {"envs/prod/deploy.yaml": DEPLOY.encode()})
        run = run_action(tmp_path, {"repo": "acme/config", "api-url": ghes.root_url,
                                    "token": TOKEN, "image": "ghcr.io/acme/api:1.4.2"},
                         fast(tmp_path) | {"REQUESTS_CA_BUNDLE": str(cert)})
        assert run.code == 0, run.logs
        assert run.outputs["pr-url"] == ghes.pull("acme/config", 1)["html_url"]


def test_gitlab_job_new_inputs_and_an_api_v4_url(tmp_path: Path) -> None:
    with FakeGitLab(tmp_path / "fake") as gl:
        gl.add_token(TOKEN)
        gl.add_project("acme/config", {"envs/prod/deploy.yaml": DEPLOY.encode(),
                                       "envs/dev/deploy.yaml": DEPLOY.encode()})
        run = run_gitlab_job(tmp_path, {"repo": "acme/config", "api-url": "$CI_API_V4_URL",
                                        "image": "ghcr.io/acme/api:1.4.2", "draft": "true",
                                        "file": "envs/prod/*.yaml", "verbose": "true"},
                             {"PROMOTE_TOKEN": TOKEN, "PROMOTER_PYTHON": sys.executable,
                              "CI_API_V4_URL": f"{gl.url}/api/v4"})
        assert run.code == 0, run.log
        mr = gl.merge_request("acme/config", 1)
    assert mr["draft"] is True
    assert json.loads(run.report)["changes"][0]["file"] == "envs/prod/deploy.yaml"
    assert len(json.loads(run.report)["changes"]) == 1
    assert "promote: " in run.log  # --verbose
    assert "deprecated" not in run.log


def test_gitlab_job_old_input_names_still_work_with_a_warning(tmp_path: Path) -> None:
    bare = config_repo(tmp_path)
    run = run_gitlab_job(tmp_path, {"config-repo": str(bare), "forge": "git",
                                    "image-ref": "ghcr.io/acme/api:1.4.2",
                                    "environment": ""},
                         {"PROMOTER_PYTHON": sys.executable}, "sh")
    assert run.code == 0, run.log
    assert run.dotenv["PROMOTE_STATUS"] == "proposed"
    assert "warning: the input config-repo (PROMOTER_CONFIG_REPO) is deprecated; use repo" \
        in run.log
    assert "warning: the input image-ref (PROMOTER_IMAGE_REF) is deprecated" in run.log
    # the new name wins when both are given
    (tmp_path / "other").mkdir()
    other = config_repo(tmp_path / "other")
    run = run_gitlab_job(tmp_path, {"config-repo": str(other), "repo": str(bare),
                                    "forge": "git", "image": "ghcr.io/acme/api:1.4.2"},
                         {"PROMOTER_PYTHON": sys.executable})
    assert run.code == 0, run.log
    assert git("branch", "--list", "promote/*", cwd=other) == ""


def test_gitlab_job_history_mode(tmp_path: Path) -> None:
    bare = config_repo(tmp_path)
    run = run_gitlab_job(tmp_path, {"repo": str(bare), "forge": "git", "history": "true",
                                    "image": "ghcr.io/acme/api"},
                         {"PROMOTER_PYTHON": sys.executable})
    assert run.code == 0, run.log
    assert json.loads(run.report)["status"] == "history"


def test_action_and_template_author_input(tmp_path: Path) -> None:
    bare = config_repo(tmp_path)
    run = run_action(tmp_path, {"repo": str(bare), "forge": "git",
                                "image": "ghcr.io/acme/api:1.4.2",
                                "author": "Release Bot <release-bot@acme.test>"},
                     fast(tmp_path))
    assert run.code == 0, run.logs
    assert git("log", "-1", "--format=%an <%ae>", run.outputs["commit"], cwd=bare).strip() == \
        "Release Bot <release-bot@acme.test>"
    # without the input, plain git takes the workflow's actor
    again = run_action(tmp_path, {"repo": str(bare), "forge": "git",
                                  "image": "ghcr.io/acme/api:1.4.3"}, fast(tmp_path))
    assert again.code == 0, again.logs
    assert git("log", "-1", "--format=%an <%ae>", again.outputs["commit"], cwd=bare).strip() \
        == "jane <jane@users.noreply.github.com>"
    job = run_gitlab_job(tmp_path, {"repo": str(bare), "forge": "git",
                                    "image": "ghcr.io/acme/api:1.4.4"},
                         {"PROMOTER_PYTHON": sys.executable})
    assert job.code == 0, job.log
    assert git("log", "-1", "--format=%an <%ae>", job.dotenv["PROMOTE_COMMIT"], cwd=bare) \
        .strip() == "Jane Doe <jane@example.com>"
    job = run_gitlab_job(tmp_path, {"repo": str(bare), "forge": "git",
                                    "image": "ghcr.io/acme/api:1.4.5",
                                    "author": "Release Bot <release-bot@acme.test>"},
                         {"PROMOTER_PYTHON": sys.executable})
    assert job.code == 0, job.log
    assert git("log", "-1", "--format=%an <%ae>", job.dotenv["PROMOTE_COMMIT"], cwd=bare) \
        .strip() == "Release Bot <release-bot@acme.test>"


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen for a key")
def test_action_and_template_sign_input(tmp_path: Path) -> None:
    home = tmp_path / "home"  # base_env's HOME: the runner's git config
    home.mkdir()
    key = home / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True,
                   capture_output=True)
    (home / ".gitconfig").write_text(f"[gpg]\n\tformat = ssh\n[user]\n\tsigningkey = {key}\n")
    allowed = home / "allowed"
    allowed.write_text(f"signer {key.with_suffix('.pub').read_text().strip()}\n")
    bare = config_repo(tmp_path)

    def signed(sha: str) -> bool:
        return subprocess.run(["git", "-c", f"gpg.ssh.allowedSignersFile={allowed}",
                               "verify-commit", sha], cwd=bare, capture_output=True,
                              check=False).returncode == 0

    run = run_action(tmp_path, {"repo": str(bare), "forge": "git", "sign": "true",
                                "image": "ghcr.io/acme/api:1.4.2"}, fast(tmp_path))
    assert run.code == 0, run.logs
    assert signed(run.outputs["commit"])
    job = run_gitlab_job(tmp_path, {"repo": str(bare), "forge": "git", "sign": "true",
                                    "image": "ghcr.io/acme/api:1.4.3"},
                         {"PROMOTER_PYTHON": sys.executable})
    assert job.code == 0, job.log
    assert signed(job.dotenv["PROMOTE_COMMIT"])
    unsigned = run_gitlab_job(tmp_path, {"repo": str(bare), "forge": "git",
                                         "image": "ghcr.io/acme/api:1.4.4"},
                              {"PROMOTER_PYTHON": sys.executable})
    assert unsigned.code == 0, unsigned.log
    assert not signed(unsigned.dotenv["PROMOTE_COMMIT"])


# --- issue #15: private CA, proxies, rate limits ------------------------------------


def test_action_ca_bundle_and_wait_for_rate_limit_inputs(tmp_path: Path) -> None:
    from tests.tls import private_ca

    ca, cert, key = private_ca(tmp_path / "pki")
    with FakeGitHub(tmp_path / "fake", prefix="/api/v3", tls=(cert, key)) as ghes:
        ghes.add_token(TOKEN)
        ghes.create_repo("acme/config", {"envs/prod/deploy.yaml": DEPLOY.encode()})
        inputs = {"repo": "acme/config", "api-url": ghes.root_url, "token": TOKEN,
                  "image": "ghcr.io/acme/api:1.4.2"}
        untrusted = run_action(tmp_path, inputs, fast(tmp_path))
        assert untrusted.code == 5, untrusted.logs
        assert "did not verify" in untrusted.logs and "--ca-bundle" in untrusted.logs
        run = run_action(tmp_path, inputs | {"ca-bundle": str(ca)}, fast(tmp_path))
        assert run.code == 0, run.logs
        assert run.outputs["pr-url"] == ghes.pull("acme/config", 1)["html_url"]
        # a rate limit two hours long: more than wait-for-rate-limit waits, said at once
        reset = str(int(time.time()) + 7200)
        ghes.fail("POST", r"/graphql#PromoterRun$", 403, times=3,
                  headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
        limited = run_action(tmp_path, inputs | {"ca-bundle": str(ca), "image":
                                                 "ghcr.io/acme/api:1.4.3",
                                                 "wait-for-rate-limit": "true"},
                             fast(tmp_path))
    assert limited.code == 5, limited.logs
    assert "longer than --wait-for-rate-limit waits (60 min at most)" in limited.logs
    assert limited.outputs["status"] == "error"
    logs = untrusted.logs + run.logs + limited.logs
    assert_no_secret("".join(line for line in logs.splitlines(keepends=True)
                             if not line.startswith("::add-mask::")), TOKEN)


def test_gitlab_job_ca_bundle_and_wait_for_rate_limit_inputs(tmp_path: Path) -> None:
    from tests.tls import private_ca

    ca, cert, key = private_ca(tmp_path / "pki")
    with FakeGitLab(tmp_path / "fake", tls=(cert, key)) as gl:
        gl.add_token(TOKEN)
        gl.add_project("acme/config", {"envs/prod/deploy.yaml": DEPLOY.encode()})
        inputs = {"repo": "acme/config", "api-url": gl.url, "image": "ghcr.io/acme/api:1.4.2"}
        env = {"PROMOTE_TOKEN": TOKEN, "PROMOTER_PYTHON": sys.executable}
        untrusted = run_gitlab_job(tmp_path, inputs, env)
        assert untrusted.code == 5, untrusted.log
        assert "did not verify" in untrusted.log
        run = run_gitlab_job(tmp_path, inputs | {"ca-bundle": str(ca)}, env)
        assert run.code == 0, run.log
        assert run.dotenv["PROMOTE_MR_IID"] == "1"
        gl.fail("GET", r"/projects/", 429, times=3, headers={"Retry-After": "7200"})
        limited = run_gitlab_job(tmp_path, inputs | {"ca-bundle": str(ca),
                                                     "wait-for-rate-limit": "true",
                                                     "image": "ghcr.io/acme/api:1.4.3"}, env)
    assert limited.code == 5, limited.log
    assert "GitLab rate limited until" in limited.log
    assert "longer than --wait-for-rate-limit waits (60 min at most)" in limited.log
    assert limited.dotenv["PROMOTE_STATUS"] == "error"
    assert_no_secret(untrusted.log + run.log + limited.log, TOKEN)


def test_gitlab_job_installer_downloads_through_the_private_ca(tmp_path: Path) -> None:
    from tests.tls import private_ca

    ca, cert, key = private_ca(tmp_path / "pki")
    with archive_server(b"not a tarball", "acme/promoter", "v0.1.0",
                        tls=(cert, key)) as (api, tokens):
        env = {"CI_API_V4_URL": api}
        inputs = {"repo": "acme/config", "image": "ghcr.io/acme/api:1.4.2"}
        untrusted = run_gitlab_job(tmp_path, inputs, env)
        assert untrusted.code != 0
        assert "cannot download promoter v0.1.0" in untrusted.log
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.log
        assert tokens == []  # the TLS handshake failed: no request was made
        trusted = run_gitlab_job(tmp_path, inputs | {"ca-bundle": str(ca)}, env)
        assert trusted.code != 0  # the archive served here is not a tarball ...
        assert "cannot download" not in trusted.log  # ... but it was downloaded
        assert tokens == [JOB_TOKEN]
        missing = run_gitlab_job(tmp_path, inputs | {"ca-bundle": str(tmp_path / "no.pem")},
                                 env)
    assert missing.code == 2
    assert f"ca-bundle {tmp_path / 'no.pem'}: no such readable file" in missing.log
