"""Signed commits through plain git: --sign / signing: true use the user's own git
signing setup (here a throwaway SSH key: gpg.format ssh, user.signingkey), every commit
promoter writes is signed and `git verify-commit` accepts it; signing asked for but not
possible is exit 2 before anything is written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from promoter.cli import run
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None,
                                reason="ssh-keygen is needed to make a throwaway SSH key")

TOKEN = "ghp_SigningTest0123456789abcdefABCDEF"
EMAIL = "signer@example.com"
DEPLOY = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n"
          "  template:\n    spec:\n      containers:\n      - name: api\n"
          "        image: ghcr.io/acme/api:1.4.1\n")
MERGING = ("version: 1\ndefaults: {merge_method: merge, wait_for_checks: false}\n"
           "environments:\n  dev: {paths: [envs/dev], auto_merge: true}\n")
IMAGE = "ghcr.io/acme/api:1.4.2"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME with a git identity and nothing else (each test adds its signing set-up)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(f"[user]\n\tname = Signer\n\temail = {EMAIL}\n")
    monkeypatch.setenv("HOME", str(home))
    for name in list(os.environ):
        if name.startswith("GIT_") or name in ("SSH_AUTH_SOCK", "GNUPGHOME"):
            monkeypatch.delenv(name)
    return home


@pytest.fixture
def ssh_key(home: Path) -> Path:
    """A throwaway ed25519 key as the git signing key; returns the allowed-signers file
    that `git verify-commit` checks against."""
    key = home / "signing_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", EMAIL, "-f",
                    str(key)], check=True, capture_output=True)
    with (home / ".gitconfig").open("a") as config:
        config.write(f"[gpg]\n\tformat = ssh\n[user]\n\tsigningkey = {key}\n")
    allowed = home / "allowed_signers"
    allowed.write_text(f"{EMAIL} {key.with_suffix('.pub').read_text().strip()}\n")
    return allowed


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=False, capture_output=True,
                          text=True)


def bare_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    work, bare = tmp_path / "seed", tmp_path / "config.git"
    work.mkdir()
    for args in (("init", "-q", "-b", "main"),):
        git(*args, cwd=work)
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git("add", ".", cwd=work)
    assert git("-c", "commit.gpgSign=false", "commit", "-q", "-m", "seed", cwd=work).returncode == 0
    assert git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path).returncode == 0
    return bare


def verified(bare: Path, rev: str, allowed: Path) -> bool:
    proc = git("-c", f"gpg.ssh.allowedSignersFile={allowed}", "verify-commit", rev, cwd=bare)
    return proc.returncode == 0 and "Good" in proc.stderr


def promote(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object],
                                                                     str]:
    code = run([*args, "--output", "json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {}, err


def test_sign_signs_the_promotion_and_the_merge_commit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], ssh_key: Path) -> None:
    bare = bare_repo(tmp_path, {".promoter.yaml": MERGING, "envs/dev/deploy.yaml": DEPLOY})
    code, result, err = promote(capsys, "--repo", str(bare), "--env", "dev", "--image", IMAGE,
                                "--sign")
    assert code == 0 and result["merged"] is True, err
    assert verified(bare, str(result["commit"]), ssh_key)
    main = git("rev-parse", "main", cwd=bare).stdout.strip()
    assert main != result["commit"]  # a merge commit, made by promoter: signed too
    assert verified(bare, "main", ssh_key)
    # and an unsigned commit does not verify: the check above means something
    assert not verified(bare, "main~1", ssh_key)


def test_signing_true_in_the_config_signs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], ssh_key: Path) -> None:
    bare = bare_repo(tmp_path, {".promoter.yaml": "version: 1\nsigning: true\n",
                                "envs/dev/deploy.yaml": DEPLOY})
    code, result, err = promote(capsys, "--repo", str(bare), "--image", IMAGE)
    assert code == 0 and result["status"] == "proposed", err
    assert verified(bare, str(result["commit"]), ssh_key)


def test_signing_asked_but_impossible_is_exit_2_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], home: Path) -> None:
    # a signing key that does not exist
    with (home / ".gitconfig").open("a") as config:
        config.write(f"[gpg]\n\tformat = ssh\n[user]\n\tsigningkey = {home / 'missing'}\n")
    bare = bare_repo(tmp_path, {".promoter.yaml": "version: 1\nsigning: true\n",
                                "envs/dev/deploy.yaml": DEPLOY})
    refs = git("for-each-ref", cwd=bare).stdout
    code, _, err = promote(capsys, "--repo", str(bare), "--image", IMAGE, "--auto-merge")
    assert code == 2
    assert "signing was asked for" in err and "git cannot sign here" in err
    assert "user.signingkey" in err
    assert git("for-each-ref", cwd=bare).stdout == refs  # no branch, main unchanged


def test_a_reused_unsigned_proposal_is_not_fast_forwarded_unsigned(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], ssh_key: Path) -> None:
    policy = ("version: 1\ndefaults: {wait_for_checks: false}\n"
              "environments:\n  dev: {paths: [envs/dev], auto_merge: true}\n")
    bare = bare_repo(tmp_path, {".promoter.yaml": policy, "envs/dev/deploy.yaml": DEPLOY})
    args = ("--repo", str(bare), "--env", "dev", "--image", IMAGE)
    code, first, err = promote(capsys, *args, "--draft")  # unsigned, proposed only
    assert code == 0 and first["merged"] is False, err
    assert not verified(bare, str(first["commit"]), ssh_key)
    code, result, err = promote(capsys, *args, "--sign")  # squash would fast-forward
    assert code == 0 and result["merged"] is True, err
    assert git("rev-parse", "main", cwd=bare).stdout.strip() != first["commit"]
    assert verified(bare, "main", ssh_key)


def test_sign_through_an_api_is_refused_before_writing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMOTE_TOKEN", TOKEN)
    with FakeGitHub(tmp_path / "fake") as gh:
        gh.add_token(TOKEN)
        gh.create_repo("acme/config", {"envs/dev/deploy.yaml": DEPLOY.encode()})
        code, _, err = promote(capsys, "--forge", "github", "--api-url", gh.url, "--repo",
                               "acme/config", "--image", IMAGE, "--sign")
        # only the run query (a GraphQL read) went out: nothing written
        assert gh.count("POST", r".") == gh.count("POST", r"/graphql#PromoterRun$")
    assert code == 2
    assert "promoter cannot sign a commit it makes through the GitHub API" in err


def test_sign_through_gitlab_is_refused_before_writing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes.gitlab import FakeGitLab

    monkeypatch.setenv("PROMOTE_TOKEN", TOKEN)
    with FakeGitLab(tmp_path / "fake") as gl:
        gl.add_token(TOKEN)
        gl.add_project("acme/config", {".promoter.yaml": b"version: 1\nsigning: true\n",
                                       "envs/dev/deploy.yaml": DEPLOY.encode()})
        code, _, err = promote(capsys, "--forge", "gitlab", "--api-url", gl.url, "--repo",
                               "acme/config", "--image", IMAGE)
        assert gl.merge_requests("acme/config") == []
    assert code == 2
    assert "promoter cannot sign a commit it makes through the GitLab API" in err


def test_signing_must_be_a_boolean() -> None:
    from promoter.config import load
    from promoter.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load("version: 1\nsigning: yes\n")
    assert (info.value.line, info.value.column) == (2, 10)
    assert "signing must be true or false" in info.value.message
