"""The first hour of a new user, each rough edge reproduced through the real CLI: the
message says what went wrong, the exit code is the documented one, nothing is left
behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from promoter.cli import run

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  template:
    spec:
      containers:
      - name: api
        image: ghcr.io/acme/api:1.4.2
"""
POLICY = """\
version: 1
defaults: {wait_for_checks: true}
environments:
  dev: {paths: ["envs/dev/**"], auto_merge: true}
  prod: {paths: ["envs/prod/**"]}
"""


def git(*args: str, cwd: Path) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout


def checkout(tmp_path: Path, files: dict[str, str] | None = None) -> Path:
    """A working-tree checkout with main checked out."""
    work = tmp_path / "config"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    for name, text in (files or {"envs/dev/deploy.yaml": DEPLOY,
                                 "envs/prod/deploy.yaml": DEPLOY}).items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "seed", cwd=work)
    return work


def bare_remote(tmp_path: Path, files: dict[str, str] | None = None) -> Path:
    work = checkout(tmp_path, files)
    bare = tmp_path / "config.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    return bare


def promote(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --- --repo -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [[], ["--in-place"], ["--dry-run"], ["--forge", "git"],
                                  ["in GitLab CI"]])
def test_a_mistyped_repo_directory_says_it_does_not_exist(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        mode: list[str]) -> None:
    checkout(tmp_path)
    monkeypatch.chdir(tmp_path)
    if mode == ["in GitLab CI"]:  # not taken for a GitLab project path
        monkeypatch.setenv("GITLAB_CI", "true")
        mode = []
    code, _, err = promote(capsys, "--repo", "./confg", "--image", "ghcr.io/acme/api:1.5.0",
                           *mode)
    assert code == 2
    assert "--repo ./confg: the directory does not exist" in err
    assert "cannot tell which forge" not in err


def test_an_owner_name_outside_ci_still_asks_for_the_forge(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = promote(capsys, "--repo", "acme/config", "--image", "ghcr.io/acme/api:1")
    assert code == 2
    assert "cannot tell which forge holds 'acme/config'" in err and "--forge github" in err


def test_a_checkout_without_in_place_is_refused_and_left_as_it_was(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = checkout(tmp_path)
    git("remote", "add", "origin", "https://git.example.com/acme/config.git", cwd=work)
    before = git("for-each-ref", cwd=work), git("status", "--porcelain", cwd=work)
    code, _, err = promote(capsys, "--repo", str(work), "--image", "ghcr.io/acme/api:1.5.0")
    assert code == 2
    assert "is a working-tree checkout with 'main' checked out" in err
    assert "use --in-place, or give the remote (here: --repo " \
           "https://git.example.com/acme/config.git)" in err
    assert git("branch", "--list", "promote/*", cwd=work) == ""
    assert (git("for-each-ref", cwd=work), git("status", "--porcelain", cwd=work)) == before


def test_a_checkout_accepts_a_base_that_is_not_checked_out(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = checkout(tmp_path)
    git("branch", "release", cwd=work)
    code, out, err = promote(capsys, "--repo", str(work), "--base", "release",
                             "--image", "ghcr.io/acme/api:1.5.0", "--output", "json")
    assert code == 0, err
    assert json.loads(out)["status"] == "proposed"


# --- --file and --image -------------------------------------------------------------


@pytest.mark.parametrize("where", ["checkout", "remote"])
def test_a_file_glob_that_matches_nothing_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    repo = checkout(tmp_path) if where == "checkout" else bare_remote(tmp_path)
    mode = ["--dry-run"] if where == "checkout" else []
    code, _, err = promote(capsys, "--repo", str(repo), "--image", "ghcr.io/acme/api:1.5.0",
                           "--file", "envs/*/deploy.yaml", "--file", "env/**/*.yml", *mode)
    assert code == 2, err
    assert "--file env/**/*.yml: the glob matched no file in the config repo" in err
    assert "referenced nowhere" not in err
    if where == "remote":
        assert git("branch", "--list", "promote/*", cwd=repo) == ""


@pytest.mark.parametrize("mode", [["--from", "dev", "--env", "prod"], ["--history"],
                                  ["--rollback", "--env", "prod"]])
def test_name_only_modes_refuse_a_tag_in_image(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: list[str]) -> None:
    bare = bare_remote(tmp_path, {".promoter.yaml": POLICY, "envs/dev/deploy.yaml": DEPLOY,
                                  "envs/prod/deploy.yaml": DEPLOY})
    code, _, err = promote(capsys, "--repo", str(bare), "--image", "ghcr.io/acme/api:1.5.0",
                           *mode)
    assert code == 2
    assert f"{mode[0]} takes image names without a tag or digest, got --image " \
           "ghcr.io/acme/api:1.5.0 (write --image ghcr.io/acme/api)" in err
    assert git("branch", "--list", "promote/*", cwd=bare) == ""


# --- a preview of the policy on a checkout ---------------------------------------------


def test_in_place_dry_run_on_a_checkout_previews_the_policy(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = checkout(tmp_path, {".promoter.yaml": POLICY, "envs/dev/deploy.yaml": DEPLOY})
    code, out, err = promote(capsys, "--repo", str(work), "--env", "dev", "--in-place",
                             "--dry-run", "--output", "json", "--image",
                             "ghcr.io/acme/api:1.5.0")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "dry-run"
    checks = {c["name"]: c["status"] for c in result["policy"]["checks"]}
    assert checks["auto_merge_enabled"] == "pass" and checks["semver_bump"] == "pass"
    assert checks["rollback_guard"] == "pass"
    assert result["policy"]["allows_merge"] is True
    assert (work / "envs/dev/deploy.yaml").read_text() == DEPLOY  # nothing written
    # a major step: the preview says a human merges
    code, out, _ = promote(capsys, "--repo", str(work), "--env", "dev", "--dry-run",
                           "--output", "json", "--image", "ghcr.io/acme/api:2.0.0")
    assert code == 0
    assert json.loads(out)["policy"]["allows_merge"] is False


def test_the_preview_reads_rollbacks_from_the_checkout_history(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = checkout(tmp_path, {".promoter.yaml": POLICY,
                               "envs/dev/deploy.yaml": DEPLOY.replace("1.4.2", "1.4.1")})
    git("commit", "-q", "--allow-empty", "-m", "rollback(dev): api 1.4.2 → 1.4.1\n\n"
        "Promoted-Image: ghcr.io/acme/api:1.4.1\nPrevious-Image: ghcr.io/acme/api:1.4.2\n"
        "Environment: dev\nPromote-Rollback-Of: ghcr.io/acme/api:1.4.2\n"
        "Promote-Fingerprint: 0123456789abcdef", cwd=work)
    code, out, _ = promote(capsys, "--repo", str(work), "--env", "dev", "--dry-run",
                           "--output", "json", "--image", "ghcr.io/acme/api:1.4.2")
    assert code == 0
    policy = json.loads(out)["policy"]
    guard = next(c for c in policy["checks"] if c["name"] == "rollback_guard")
    assert guard["status"] == "fail" and "rolled back away from 1.4.2" in guard["reason"]
    assert policy["allows_merge"] is False


def test_the_preview_without_git_history_fails_closed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain"
    (plain / "envs/dev").mkdir(parents=True)
    (plain / ".promoter.yaml").write_text(POLICY)
    (plain / "envs/dev/deploy.yaml").write_text(DEPLOY)
    code, out, _ = promote(capsys, "--repo", str(plain), "--env", "dev", "--dry-run",
                           "--output", "json", "--image", "ghcr.io/acme/api:1.5.0")
    assert code == 0
    policy = json.loads(out)["policy"]
    guard = next(c for c in policy["checks"] if c["name"] == "rollback_guard")
    assert guard["status"] == "fail" and policy["allows_merge"] is False


# --- wording ------------------------------------------------------------------------


def test_up_to_date_says_the_branch_already_sets_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = bare_remote(tmp_path)
    code, out, _ = promote(capsys, "--repo", str(bare), "--image", "ghcr.io/acme/api:1.4.2",
                           "--output", "json")
    assert code == 0
    assert json.loads(out)["message"] == \
        "already up to date: main already sets ghcr.io/acme/api:1.4.2"


def test_plain_git_does_not_leave_checks_to_a_forge_it_does_not_have(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = bare_remote(tmp_path, {".promoter.yaml": POLICY, "envs/dev/deploy.yaml": DEPLOY})
    code, out, err = promote(capsys, "--repo", str(bare), "--env", "dev", "--image",
                             "ghcr.io/acme/api:1.5.0", "--output", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["merged"] is True
    check = next(c for c in result["policy"]["checks"] if c["name"] == "checks_green")
    assert check == {"name": "checks_green", "status": "pass",
                     "reason": "no checks are configured on the head commit"}


def test_a_rerun_does_not_print_the_diff_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = bare_remote(tmp_path)
    args = ("--repo", str(bare), "--image", "ghcr.io/acme/api:1.5.0", "--no-color")
    code, first, _ = promote(capsys, *args)
    assert code == 0 and "+        image: ghcr.io/acme/api:1.5.0" in first
    code, again, _ = promote(capsys, *args)
    assert code == 0
    assert "unchanged, already proposed" in again
    assert "+        image:" not in again and "-> ghcr.io/acme/api:1.5.0" not in again


# --- make demo ------------------------------------------------------------------------


def test_the_demo_keeps_what_it_prints(tmp_path: Path) -> None:
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HOME": str(tmp_path), "TMPDIR": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
           "LANG": "C.UTF-8"}
    proc = subprocess.run(["bash", str(ROOT / "examples/demo.sh")], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)
    rerun = out.split("== re-running the same promotion changes nothing")[1].split("\n== ")[0]
    assert "unchanged, already proposed" in rerun
    assert "@@" not in rerun and "+++" not in rerun  # no diff printed again
    assert "left to the forge" not in out
    kept = re.search(r"== kept for you to look at: (\S+)", out)
    assert kept is not None
    for path in re.findall(r"(/\S+?/config\.git)", out):
        assert Path(path).is_dir(), path  # every printed path still exists
    assert Path(kept.group(1)).parent == tmp_path
