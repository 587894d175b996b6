"""Hostile repos and hostile servers, through the real CLI (issue #11).

Each test drives ``promote`` (in process, or as a real process where a hang, a signal
or the argv of its children is the point) against real parts started here: bare repos,
the fake GitHub and GitLab servers, ``git http-backend`` behind a loopback server
(``fakes.githttp``), and loopback servers that redirect to a second one and record what
they receive.

- ReDoS: an ``allowed_tags`` pattern or a ``paths`` glob from the config repo never
  hangs the job; a pattern that runs out of time is exit 2 naming its line.
- Workflow-command injection: a forge's error body with ``\n::add-mask::`` never starts
  a line of promoter's output.
- Odd and redirecting forges: a 3xx from the GitHub API, a redirect to another origin
  from GitLab, are exit 5 with a message; no token reaches the other server.
- Archives: a GitHub/GitLab archive over MAX_ARCHIVE_BYTES, or unpacking to more than
  MAX_UNPACKED_BYTES, is exit 5 with a message (a gzip bomb of ~270 KB here).
- Signals: SIGTERM, SIGINT or SIGHUP while git waits for a slow server leave no
  ``promoter-git-*`` clone behind, and the exit is 128 + the signal, not a death by it.
- Tags with leading zeros (``01.0.0``) are ordered: a downgrade written that way is still
  refused, and the step is never one that merges by itself.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from promoter.cli import run
from promoter.forges.gitclone import MAX_MESSAGE, Clone, strip_userinfo
from promoter.limits import MAX_ARCHIVE_BYTES, MAX_UNPACKED_BYTES
from promoter.paths import _glob_fullmatch
from tests.fakes.githttp import GitServer, Recorder
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.gitrepo import BareRepo
from tests.hostile.forges import REVIEWED, SLUG, files

PROMOTE = str(Path(sys.executable).with_name("promote"))
API = "ghcr.io/acme/api"
GH_TOKEN = "ghp_HARDENINGhardening0123456789abcdefGH"
GL_TOKEN = "glpat-HARDENINGhardening-0123456789"


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No git or proxy settings of the machine: a HOME with only a commit identity."""
    for key in list(os.environ):
        if key.startswith("GIT_") or key.lower().endswith("_proxy"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / ".gitconfig").write_text("[user]\n\tname = Tester\n\temail = tester@example.com\n")
    monkeypatch.setenv("HOME", str(home))


def process(*args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    """``promote`` as a real process with a small clean environment."""
    base = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "LC_ALL": "C.UTF-8"}
    return subprocess.run([PROMOTE, *args], capture_output=True, text=True, timeout=timeout,
                          env={**base, **env}, check=False)


# --- ReDoS from the config repo ----------------------------------------------------------------


def policy_repo(tmp_path: Path, config: bytes, files: dict[str, bytes]) -> Path:
    bare = tmp_path / "config.git"
    BareRepo.init(bare, {".promoter.yaml": config, **files})
    return bare


def test_issue_pattern_with_a_long_tag_does_not_hang(tmp_path: Path) -> None:
    """``^v?(\\d+\\.?)+$`` took 15 s on a 28-character tag with ``re``; 48 hung."""
    config = (b"version: 1\ndefaults:\n  allowed_tags: ['^v?(\\d+\\.?)+$']\n"
              b"environments:\n  dev: {paths: [envs/dev], auto_merge: true}\n")
    bare = policy_repo(tmp_path, config, {"envs/dev/a.yaml": b"image: ghcr.io/acme/api:1.0.0\n"})
    tag = "1" * 48 + "x"
    proc = process("--repo", str(bare), "--forge", "git", "--env", "dev", "--dry-run",
                   "--output", "json", "--image", f"{API}:{tag}")
    assert proc.returncode == 0, proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)["policy"]["checks"]}
    assert checks["allowed_tags"]["status"] == "fail"


def test_pattern_that_runs_out_of_time_is_exit_2_with_its_line(tmp_path: Path) -> None:
    config = (b"version: 1\ndefaults:\n  allowed_tags:\n    - '^v\\d+$'\n    - '^(\\d|\\d\\d)+$'\n"
              b"environments:\n  dev: {paths: [envs/dev], auto_merge: true}\n")
    bare = policy_repo(tmp_path, config, {"envs/dev/a.yaml": b"image: ghcr.io/acme/api:1.0.0\n"})
    proc = process("--repo", str(bare), "--forge", "git", "--env", "dev", "--dry-run",
                   "--image", f"{API}:{'1' * 60}x")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: .promoter.yaml:5:7: allowed_tags pattern"), proc.stderr
    assert "took more than" in proc.stderr and "Traceback" not in proc.stderr
    assert BareRepo(bare).list_refs() == {"refs/heads/main": BareRepo(bare).resolve("main")}


def test_glob_in_paths_does_not_backtrack(tmp_path: Path) -> None:
    """``envs/*a*a*a*a*a*a*a*a*b`` against a 60-character name: C(60, 8) tries with a
    backtracking matcher, a few thousand steps here."""
    config = (b"version: 1\nenvironments:\n  dev: {paths: [envs/dev]}\n"
              b"  odd: {paths: ['envs/*a*a*a*a*a*a*a*a*b']}\n")
    name = "envs/" + "a" * 60 + ".yaml"
    bare = policy_repo(tmp_path, config, {name: b"image: ghcr.io/acme/api:1.0.0\n"})
    proc = process("--repo", str(bare), "--forge", "git", "--dry-run", "--output", "json",
                   "--image", f"{API}:2.0.0")
    assert proc.returncode == 0, proc.stderr
    assert [c["file"] for c in json.loads(proc.stdout)["changes"]] == [name]


# --- tags with leading zeros ----------------------------------------------------------------


LEADING_ZERO_CONFIG = (b"version: 1\ndefaults:\n  allowed_tags: ['^v?\\d+\\.\\d+\\.\\d+$']\n"
                       b"environments:\n  dev: {paths: [envs/dev], auto_merge: true}\n")


def test_leading_zero_downgrade_is_refused(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``01.0.0`` passes the default release pattern; it is still a step down from 2.0.0."""
    bare = policy_repo(tmp_path, LEADING_ZERO_CONFIG,
                       {"envs/dev/a.yaml": b"image: ghcr.io/acme/api:2.0.0\n"})
    code = run(["--repo", str(bare), "--forge", "git", "--env", "dev", "--output", "json",
                "--image", f"{API}:01.0.0"])
    out, err = capsys.readouterr()
    report = json.loads(out)
    checks = {c["name"]: c for c in report["policy"]["checks"]}
    assert checks["no_downgrade"]["status"] == "fail", checks["no_downgrade"]
    assert (code, report["status"]) == (0, "refused"), err
    assert set(BareRepo(bare).list_refs()) == {"refs/heads/main"}  # nothing proposed


def test_leading_zero_upgrade_never_merges_by_itself(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bare = policy_repo(tmp_path, LEADING_ZERO_CONFIG,
                       {"envs/dev/a.yaml": b"image: ghcr.io/acme/api:1.0.0\n"})
    code = run(["--repo", str(bare), "--forge", "git", "--env", "dev", "--output", "json",
                "--image", f"{API}:01.0.1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    checks = {c["name"]: c for c in report["policy"]["checks"]}
    assert checks["no_downgrade"]["status"] == "pass"
    assert checks["semver_bump"]["status"] == "fail"
    assert "leading zero" in checks["semver_bump"]["reason"]
    assert report["merged"] is False


def _backtracking_glob(pattern: str) -> str:
    """The regex the glob rules describe (what paths.py compiled before): the oracle."""
    out = []
    i = 0
    while i < len(pattern):
        for token, regex in (("**/", "(?:.*/)?"), ("**", ".*"), ("*", "[^/]*"), ("?", "[^/]")):
            if pattern.startswith(token, i):
                out.append(regex)
                i += len(token)
                break
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def test_linear_glob_means_what_the_regex_meant() -> None:
    pieces = ("**/", "**", "*", "?", "a", "/", "b")
    patterns = {"".join(p) for n in range(4) for p in itertools.product(pieces, repeat=n)}
    paths = {"".join(p) for n in range(5) for p in itertools.product("ab/", repeat=n)}
    for pattern in patterns:
        oracle = re.compile(_backtracking_glob(pattern))
        for path in paths:
            assert _glob_fullmatch(pattern, path) == bool(oracle.fullmatch(path)), (pattern, path)


# --- workflow-command injection through a forge's error body ----------------------------------

INJECTED = ("Validation Failed\n::add-mask::ghp_everything\n::warning file=x.yaml::pwned\r\n"
            "  ::set-output name=merged::true\u2028##[add-mask]legacy")


def test_forge_error_body_cannot_issue_workflow_commands(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """GitHub Actions reads any output line starting with ``::`` (after blanks) as a
    command: a server's error text must stay one line of data."""
    with FakeGitHub(tmp_path / "gh") as gh:
        gh.add_token(GH_TOKEN)
        gh.create_repo(SLUG, files(REVIEWED))
        gh.fail("POST", r"/pulls$", 422, times=100, body={"message": INJECTED})
        for key, value in {"PROMOTE_TOKEN": GH_TOKEN, "GITHUB_ACTIONS": "true", "CI": "true",
                           "GITHUB_OUTPUT": str(tmp_path / "out"),
                           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary")}.items():
            monkeypatch.setenv(key, value)
        for output in ("text", "json"):
            code = run(["--repo", SLUG, "--forge", "github", "--api-url", gh.url, "--env",
                        "prod", "--image", f"{API}:1.0.1", "--output", output, "--verbose"])
            out, err = capsys.readouterr()
            assert code == 5, err
            assert "pwned" in err  # the server's words are shown...
            commands = [line for line in (out + err).splitlines()
                        if line.strip().startswith("::")]
            assert commands and all(line.startswith("::error ") for line in commands), commands
            assert "%0A::add-mask::" in commands[0]  # ...escaped inside promoter's own one
            assert "##[" not in out + err


# --- odd and redirecting forges --------------------------------------------------------------


def _forge_env(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    monkeypatch.setenv("PROMOTE_TOKEN", token)


def test_github_api_redirect_to_another_server_is_exit_5(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--api-url answering 302 to a second loopback server (another origin): a message and
    exit 5, and the second server never hears from promoter."""
    _forge_env(monkeypatch, GH_TOKEN)
    with Recorder() as other, GitServer(tmp_path) as api:
        api.redirect_to = other.root_url
        code = run(["--repo", SLUG, "--forge", "github", "--api-url", api.root_url, "--image",
                    f"{API}:1.0.1", "--retry-timeout", "0.3"])
        assert other.seen == []
    out, err = capsys.readouterr()
    assert code == 5, err
    assert "answered 302 (a redirect to http://127.0.0.1:" in err and "--api-url" in err
    assert GH_TOKEN not in out + err


@pytest.mark.parametrize(("method", "path", "status"), [
    ("POST", r"/graphql#PromoterRun$", 302), ("POST", r"/graphql#PromoterRun$", 307),
    ("POST", r"/graphql#PromoterRun$", 304), ("POST", r"/graphql#PromoterRun$", 301),
    ("GET", r"/tarball/", 304), ("POST", r"/pulls$", 307),
    ("POST", r"/graphql#PromoterCommit$", 302)])
def test_github_odd_statuses_are_exit_5_with_a_message(
        method: str, path: str, status: int, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Today PyGithub reads a redirect's empty body as the object: 'internal error', exit 1
    (a 301 to another host: its RuntimeError)."""
    _forge_env(monkeypatch, GH_TOKEN)
    with FakeGitHub(tmp_path / "gh") as gh:
        gh.add_token(GH_TOKEN)
        gh.create_repo(SLUG, files(REVIEWED))
        gh.fail(method, path, status, times=100,
                headers={"Location": "http://elsewhere.invalid/x"})
        code = run(["--repo", SLUG, "--forge", "github", "--api-url", gh.url, "--env",
                    "prod", "--image", f"{API}:1.0.1", "--retry-timeout", "0.3"])
    _out, err = capsys.readouterr()
    assert code == 5, err
    assert f"GitHub answered {status} (" in err and "internal error" not in err


def test_gitlab_redirect_to_another_server_keeps_the_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """requests keeps PRIVATE-TOKEN on a redirect to another host: promoter refuses the
    redirect instead, so the second server receives nothing."""
    _forge_env(monkeypatch, GL_TOKEN)
    with Recorder() as other, GitServer(tmp_path) as api:
        api.redirect_to = other.root_url
        code = run(["--repo", SLUG, "--forge", "gitlab", "--api-url", api.root_url, "--image",
                    f"{API}:1.0.1", "--retry-timeout", "0.3"])
        assert GL_TOKEN not in other.headers_seen()
        assert other.seen == []
    _out, err = capsys.readouterr()
    assert code == 5, err
    assert "a redirect to http://127.0.0.1:" in err and "does not send the token" in err


# --- huge and compressed archives -----------------------------------------------------------


def gzip_bomb(unpacked: int) -> bytes:
    """Concatenated gzip members of 1 MiB of zeros each: ~1 KB per MiB unpacked."""
    member = gzip.compress(bytes(1 << 20))
    return member * (unpacked >> 20)


BOMB = gzip_bomb(MAX_UNPACKED_BYTES + (8 << 20))
HUGE = bytes(MAX_ARCHIVE_BYTES + 1)


@pytest.mark.parametrize(("body", "says"), [(BOMB, "unpacks to more than"),
                                            (HUGE, "has more than")], ids=["bomb", "huge"])
def test_github_archive_limits(body: bytes, says: str, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    _forge_env(monkeypatch, GH_TOKEN)
    with FakeGitHub(tmp_path / "gh") as gh:
        gh.add_token(GH_TOKEN)
        gh.create_repo(SLUG, files(REVIEWED))
        gh.fail("GET", r"^/_codeload/", 200, times=100, body=body)
        code = run(["--repo", SLUG, "--forge", "github", "--api-url", gh.url, "--env",
                    "prod", "--image", f"{API}:1.0.1", "--retry-timeout", "0.3"])
        assert gh.count("GET", r"^/_codeload/") == 1  # refused, not retried
    _out, err = capsys.readouterr()
    assert code == 5, err
    assert says in err and "bytes, the most promoter reads" in err


@pytest.mark.parametrize(("body", "says"), [(BOMB, "unpacks to more than"),
                                            (HUGE, "has more than")], ids=["bomb", "huge"])
def test_gitlab_archive_limits(body: bytes, says: str, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    _forge_env(monkeypatch, GL_TOKEN)
    with FakeGitLab(tmp_path / "gl") as gl:
        gl.add_token(GL_TOKEN)
        gl.add_project(SLUG, files(REVIEWED))
        gl.fail("GET", r"/repository/archive", 200, times=100, body=body)
        code = run(["--repo", SLUG, "--forge", "gitlab", "--api-url", gl.url, "--env",
                    "prod", "--image", f"{API}:1.0.1", "--retry-timeout", "0.3"])
    _out, err = capsys.readouterr()
    assert code == 5, err
    assert says in err and "bytes, the most promoter reads" in err


# --- signals ------------------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 128 + 15), (signal.SIGINT, 130),
                                           (signal.SIGHUP, 128 + 1)])
def test_a_signal_leaves_no_private_clone_behind(sig: int, code: int, tmp_path: Path) -> None:
    """promote as a real process, held by a slow git server; the signal arrives while
    git waits for the network. The process exits by itself (no death by signal) with
    128 + the signal, and the promoter-git-* clone is gone."""
    root = tmp_path / "served"
    BareRepo.init(root / "config.git", {"a.yaml": b"image: ghcr.io/acme/api:1.0.0\n"})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with GitServer(root, user="oauth2", token=GH_TOKEN) as server:
        server.hold = threading.Event()
        env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "LC_ALL": "C.UTF-8",
               "TMPDIR": str(scratch)}
        proc = subprocess.Popen([PROMOTE, "--repo", server.url("config.git"), "--forge", "git",
                                 "--image", f"{API}:2.0.0"], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert server.arrived.wait(30), "promote never reached the server"
            assert [p.name[:13] for p in scratch.iterdir()] == ["promoter-git-"]
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=30)
        finally:
            server.hold.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == code, err
    assert "temporary files removed" in err and "Traceback" not in err
    assert list(scratch.iterdir()) == []
    assert GH_TOKEN not in out + err


# --- messages from a hostile remote ----------------------------------------------------------


def test_stripping_user_information_is_linear_and_means_the_same() -> None:
    """git's messages (a server's words) pass through strip_userinfo: the regex it used
    took quadratic time on a long run of letters (a 1 MB message: minutes)."""
    oracle = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s'\"]*@")
    rng = random.Random(11)  # noqa: S311 - test data, not a secret
    for _ in range(20_000):
        text = "".join(rng.choice("a1:/@ '\"x+.-") for _ in range(rng.randint(0, 14)))
        assert strip_userinfo(text) == oracle.sub(r"\1", text), text
    # a process, since a regex holds the GIL: ~45 s for 200 KB with the quadratic regex
    subprocess.run([sys.executable, "-c", "from promoter.forges.gitclone import "
                    "strip_userinfo; strip_userinfo('a' * 200_000)"], check=True, timeout=15)


def test_a_remote_s_long_message_is_cut_after_its_secrets_are_out() -> None:
    """git's messages can carry a lot of a server's words (sideband lines): they are cut
    to MAX_MESSAGE characters before the patterns that classify them, and only after
    the URL's credential is out (a cut never leaves half a token)."""
    clone = Clone(f"https://oauth2:{GH_TOKEN}@127.0.0.1:9/config.git", workdir=None,
                  author=("promoter", "promoter@localhost"), runner=subprocess.run,
                  sleep=lambda _: None, retry_timeout=1)
    half = MAX_MESSAGE // 2 - len(GH_TOKEN) // 2
    text = "x" * half + GH_TOKEN + "y" * 100_000 + f" https://oauth2:{GH_TOKEN}@host/x"
    cleaned = clone.clean(text)
    assert len(cleaned) < MAX_MESSAGE + 100 and "characters cut" in cleaned
    assert GH_TOKEN[:8] not in cleaned and GH_TOKEN[-8:] not in cleaned
