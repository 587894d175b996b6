"""Secrets never leave the process: the token (GitHub, GitLab, CI job token, a token in
a git URL) and a GitHub App's private key appear nowhere promoter writes.

Every run goes through the real CLI, on success and on the error paths (a bad token, a
token without write access, a job token, a server that answers 500 until the retries
run out, a server that echoes the token back in its error message, an App key the
server does not know, an unreachable remote whose URL carries the token). Each run is
scanned, in full:

- stdout and stderr, with ``--verbose``, in text and JSON;
- every log record at DEBUG level, from every logger (PyGithub, python-gitlab,
  urllib3, requests included);
- the CI outputs: ``$GITHUB_OUTPUT``, ``$GITHUB_STEP_SUMMARY``, the ``--dotenv`` file,
  and the workflow annotations printed in GitHub Actions;
- everything the server holds afterwards: every object of the bare repository,
  reachable or not (commit messages, trees, file contents), and every pull/merge
  request's title, body and comments;

for each secret: the tokens (also base64-encoded, as in Basic auth), the PEM key and
each of its lines, the installation tokens the fake GitHub minted for the App; and,
everywhere but third-party DEBUG logs, the pre-signed archive links it handed out.
Exceptions raised to an API caller are checked too, as a traceback would show them.

Also: a token in a git URL is never on the argv of a ``git`` child (a shim on PATH
records every call), never followed through a redirect; an API that redirects to a
second server sends it nothing; a manifest deep enough to crash the YAML composer ends
in exit 2, not a core dump.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import socket
import subprocess
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from promoter import redact
from promoter.cli import run
from promoter.errors import PromoteError
from promoter.forges.github import GitHubForge
from promoter.forges.gitlab import GitLabForge
from tests.fakes.githttp import GitServer, Recorder
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.gitrepo import BareRepo
from tests.hostile.forges import MERGING, SLUG, files

GH_TOKEN = "ghp_SECRETsecretSECRET0123456789abcdefGH"
GL_TOKEN = "glpat-SECRETsecret-0123456789abcd"
GT_TOKEN = "gitea-SECRETsecret-0123456789abcdef"
BB_TOKEN = "bbat-SECRETsecret-0123456789abcdef"
JOB_TOKEN = "glcbt-64_SECRETjobTOKEN0123456789"
READ_TOKEN = "ghp_READonlyREADonly0123456789abcdefRE"
GL_READ_TOKEN = "glpat-READonlyREAD-0123456789ab"
BAD_TOKEN = "ghp_BADbadBADbad0123456789abcdefBADbad"
APP_ID = 4242
IMAGE = "ghcr.io/acme/api:1.0.1"


def _key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _public(pem: str) -> str:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


APP_KEY = _key()
OTHER_KEY = _key()


def forms(secret: str) -> set[str]:
    """The secret, its long lines (a PEM), and what Basic auth would send."""
    out = {secret}
    out |= {line.strip() for line in secret.splitlines() if len(line.strip()) >= 16}
    for user in ("x-access-token", "oauth2", "git", "promoter"):
        out.add(base64.b64encode(f"{user}:{secret}".encode()).decode())
    return out


@dataclass
class Scan:
    """Everything a run left behind, to search for secrets."""

    texts: dict[str, str] = field(default_factory=dict)

    def add(self, where: str, text: str | bytes | None) -> None:
        if text is None:
            return
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        self.texts[where] = self.texts.get(where, "") + text

    def leaks(self, secrets: set[str]) -> list[str]:
        found = []
        for secret in secrets:
            for variant in forms(secret):
                for where, text in self.texts.items():
                    if variant in text:
                        found.append(f"{variant[:12]}... in {where}")
        return found


def all_objects(bare: BareRepo) -> bytes:
    """Every object of the repository, reachable or not."""
    proc = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch"],
                          cwd=bare.path, capture_output=True, check=True, input=b"")
    return proc.stdout


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    # only a git identity: plain git commits need an author (promoter.identity)
    (home / ".gitconfig").write_text("[user]\n\tname = Tester\n\temail = tester@example.com\n")
    monkeypatch.setenv("HOME", str(home))


class Runner:
    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
        self.tmp = tmp
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        self.caplog = caplog
        self.scan = Scan()
        self.ci = tmp / "ci"
        self.ci.mkdir()

    def github_actions(self) -> None:
        env = {"GITHUB_ACTIONS": "true", "CI": "true", "GITHUB_OUTPUT": str(self.ci / "out"),
               "GITHUB_STEP_SUMMARY": str(self.ci / "summary"),
               "GITHUB_REPOSITORY": "acme/app", "GITHUB_SHA": "a" * 40,
               "GITHUB_RUN_ID": "7", "GITHUB_SERVER_URL": "https://github.com",
               "GITHUB_WORKFLOW": "build", "GITHUB_ACTOR": "dev"}
        for key, value in env.items():
            self.monkeypatch.setenv(key, value)

    def cli(self, *args: str) -> int:
        self.caplog.set_level(logging.DEBUG)
        dotenv = self.ci / "promote.env"
        code = run([*args, "--verbose", "--dotenv", str(dotenv)])
        out, err = self.capsys.readouterr()
        self.scan.add("stdout", out)
        self.scan.add("stderr", err)
        self.scan.add("logs", "\n".join(
            f"{r.name} {r.getMessage()} {r.args!r} {r.exc_text or ''}"
            for r in self.caplog.records))
        self.caplog.clear()
        for path in self.ci.iterdir():
            self.scan.add(f"ci file {path.name}", path.read_bytes())
        assert "Traceback" not in out + err, err
        return code


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           caplog: pytest.LogCaptureFixture) -> Runner:
    return Runner(tmp_path, monkeypatch, capsys, caplog)


# --- GitHub ---------------------------------------------------------------------------------


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(tmp_path / "gh") as fake:
        fake.add_token(GH_TOKEN)
        fake.add_token(READ_TOKEN, "read")
        fake.create_repo(SLUG, files(MERGING))
        fake.add_app(APP_ID, _public(APP_KEY), [SLUG])
        yield fake


def github_secrets(fake: FakeGitHub) -> set[str]:
    minted = {t for t in fake.tokens if t.startswith("ghs_")}  # App installation tokens
    return {GH_TOKEN, READ_TOKEN, BAD_TOKEN, APP_KEY, OTHER_KEY} | minted


def download_links(fake: FakeGitHub) -> set[str]:
    """The pre-signed archive links the fake handed out. urllib3 itself logs request
    URLs at DEBUG level, so a host application that turns DEBUG logging on sees these
    (short-lived, read-only, one archive); promoter's own output never shows them."""
    return set(fake._downloads)


def scan_github(scan: Scan, fake: FakeGitHub) -> None:
    scan.add("repository objects", all_objects(fake.repos[SLUG].bare))
    for pull in fake.pulls(SLUG, "all"):
        scan.add(f"pull request #{pull.number}", f"{pull.title}\n{pull.body or ''}")
        scan.add(f"comments on #{pull.number}", "\n".join(fake.comments(SLUG, pull.number)))


ECHO = {"message": f"Validation Failed: token {GH_TOKEN} is not allowed here",
        "errors": [{"resource": "PullRequest", "code": "custom",
                    "message": f"Authorization: token {GH_TOKEN}"}]}
# name: (environment, extra arguments, exit code, faults, inside GitHub Actions)
GITHUB_CASES: dict[str, tuple[dict[str, str], list[str], int, Any, bool]] = {
    "ok-json-in-actions": ({"PROMOTE_TOKEN": GH_TOKEN}, [], 0, None, True),
    "ok-text-github-token": ({"GITHUB_TOKEN": GH_TOKEN}, ["--output", "text"], 0, None, False),
    "bad-token": ({"PROMOTE_TOKEN": BAD_TOKEN}, [], 5, None, True),
    "read-only-token": ({"PROMOTE_TOKEN": READ_TOKEN}, [], 5, None, False),
    "server-500s": ({"PROMOTE_TOKEN": GH_TOKEN}, ["--retry-timeout", "0.3"], 5,
                    lambda f: f.fail("POST", r"/graphql#PromoterCommit$", 500, times=1000,
                                     headers={"Retry-After": "0"}), True),
    "error-echoes-token": ({"PROMOTE_TOKEN": GH_TOKEN}, [], 5,
                           lambda f: f.fail("POST", r"/pulls$", 422, times=1000, body=ECHO),
                           True),
    "archive-download-fails": ({"PROMOTE_TOKEN": GH_TOKEN}, ["--retry-timeout", "0.3"], 5,
                               lambda f: f.fail("GET", r"^/_codeload/", 500, times=1000),
                               False),
    "app-key-file": ({}, ["--github-app-id", str(APP_ID), "--github-app-key-file", "@key"], 0,
                     None, True),
    "app-key-env-server-502s": ({"PROMOTE_GITHUB_APP_KEY": APP_KEY},
                                ["--github-app-id", str(APP_ID), "--retry-timeout", "0.3"], 5,
                                lambda f: f.fail("POST", r"/pulls$", 502, times=1000,
                                                 headers={"Retry-After": "0"}), False),
    "app-wrong-key": ({"PROMOTE_GITHUB_APP_KEY": OTHER_KEY}, ["--github-app-id", str(APP_ID)],
                      5, None, True),
}


@pytest.mark.parametrize("name", list(GITHUB_CASES))
def test_github_runs_leak_nothing(name: str, gh: FakeGitHub, runner: Runner,
                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    environ, extra, code, faults, actions = GITHUB_CASES[name]
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    if actions:
        runner.github_actions()
    key_file = tmp_path / "app.pem"
    key_file.write_text(APP_KEY)
    extra = [str(key_file) if a == "@key" else a for a in extra]
    if faults is not None:
        faults(gh)
    got = runner.cli("--repo", SLUG, "--forge", "github", "--api-url", gh.url, "--env", "prod",
                     "--image", IMAGE, *extra)
    assert got == code, runner.scan.texts.get("stderr")
    scan_github(runner.scan, gh)
    if name.startswith("app-key"):  # the App's installation token really was used
        assert any(t.startswith("ghs_") for t in gh.tokens)
    if code == 0:  # there was something to scan: a request with the promotion in it
        assert "Promoted-Image: ghcr.io/acme/api:1.0.1" in runner.scan.texts[
            "repository objects"]
        assert any("ghcr.io/acme/api" in v for k, v in runner.scan.texts.items()
                   if k.startswith("pull request"))
    if name == "error-echoes-token":  # the server's words are shown, the token masked
        assert redact.MASK in runner.scan.texts["stderr"]
    assert runner.scan.leaks(github_secrets(gh)) == []
    own = Scan({k: v for k, v in runner.scan.texts.items() if k != "logs"})
    assert own.leaks(download_links(gh)) == []


# --- GitLab ---------------------------------------------------------------------------------


@pytest.fixture
def gl(tmp_path: Path) -> Iterator[FakeGitLab]:
    with FakeGitLab(tmp_path / "gl") as fake:
        fake.add_token(GL_TOKEN)
        fake.add_token(GL_READ_TOKEN, username="reader", scopes=("read_api",))
        fake.add_token(JOB_TOKEN, kind="job", username="ci-user", project="acme/app")
        fake.add_user("sre-lead")
        fake.add_project(SLUG, files(MERGING))
        yield fake


GL_ECHO = {"message": {"base": [f"token {GL_TOKEN} may not open this merge request"]}}
GITLAB_CASES: dict[str, tuple[dict[str, str], list[str], int, Any]] = {
    "ok-json": ({"PROMOTE_TOKEN": GL_TOKEN, "CI_JOB_TOKEN": JOB_TOKEN}, [], 0, None),
    "ok-text-gitlab-token": ({"GITLAB_TOKEN": GL_TOKEN}, ["--output", "text"], 0, None),
    "bad-token": ({"PROMOTE_TOKEN": BAD_TOKEN}, [], 5, None),
    "read-api-token": ({"PROMOTE_TOKEN": GL_READ_TOKEN}, [], 5, None),
    "job-token-of-another-project": ({"CI_JOB_TOKEN": JOB_TOKEN}, [], 5, None),
    # the job token is only ever sent to the GitLab that runs the job (CI_SERVER_URL)
    "job-token-to-another-gitlab": ({"CI_JOB_TOKEN": JOB_TOKEN,
                                     "CI_SERVER_URL": "https://gitlab.example.com"}, [], 2,
                                    None),
    "server-500s": ({"PROMOTE_TOKEN": GL_TOKEN}, ["--retry-timeout", "0.3"], 5,
                    lambda f: f.fail("POST", r"/repository/commits$", 500, times=1000,
                                     headers={"Retry-After": "0"})),
    "error-echoes-token": ({"PROMOTE_TOKEN": GL_TOKEN}, [], 5,
                           lambda f: f.fail("POST", r"/merge_requests$", 400, times=1000,
                                            body=GL_ECHO)),
}


@pytest.mark.parametrize("name", list(GITLAB_CASES))
def test_gitlab_runs_leak_nothing(name: str, gl: FakeGitLab, runner: Runner,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    environ, extra, code, faults = GITLAB_CASES[name]
    monkeypatch.setenv("GITLAB_CI", "true")
    monkeypatch.setenv("CI_PROJECT_PATH", "acme/app")
    monkeypatch.setenv("CI_PIPELINE_URL", "https://gitlab.example/acme/app/-/pipelines/1")
    monkeypatch.setenv("CI_SERVER_URL", gl.url)  # the job runs on this GitLab
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    if faults is not None:
        faults(gl)
    got = runner.cli("--repo", SLUG, "--forge", "gitlab", "--api-url", gl.url, "--env",
                     "prod", "--image", IMAGE, *extra)
    assert got == code, runner.scan.texts.get("stderr")
    project = gl.project(SLUG)
    runner.scan.add("repository objects", all_objects(project.repo))
    for mr in gl.merge_requests(SLUG):
        runner.scan.add(f"merge request !{mr['iid']}",
                        f"{mr['title']}\n{mr.get('description') or ''}")
        runner.scan.add(f"notes on !{mr['iid']}", "\n".join(gl.notes(SLUG, mr["iid"])))
    secrets = {GL_TOKEN, GL_READ_TOKEN, JOB_TOKEN, BAD_TOKEN}
    assert runner.scan.leaks(secrets) == []
    if code == 0:
        assert any("ghcr.io/acme/api" in v for k, v in runner.scan.texts.items()
                   if k.startswith("merge request"))
    if name == "error-echoes-token":
        assert redact.MASK in runner.scan.texts["stderr"]
    if name == "job-token-of-another-project":  # and the message says what to do instead
        assert "access token" in runner.scan.texts["stderr"]
    if name == "job-token-to-another-gitlab":  # not a single request reached the server
        assert gl.requests == []
        assert "does not send it to" in runner.scan.texts["stderr"]


# --- plain git: a token in the remote's URL --------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_git_url_credentials_leak_nothing(runner: Runner, gh: FakeGitHub) -> None:
    refused = f"http://oauth2:{GH_TOKEN}@127.0.0.1:{_closed_port()}/acme/config.git"
    not_found = f"http://x-access-token:{GL_TOKEN}@{gh.url.split('//', 1)[1]}/nope.git"
    for remote in (refused, not_found):
        got = runner.cli("--repo", remote, "--forge", "git", "--image", IMAGE,
                         "--output", "json", "--retry-timeout", "0.3")
        assert got == 5, runner.scan.texts.get("stderr")
    assert runner.scan.leaks({GH_TOKEN, GL_TOKEN}) == []


def git_shim(bin_dir: Path, log: Path) -> None:
    """``git`` on PATH that records the argv of every call (NUL-separated, one call a
    line) and runs the real git: what ``ps`` or /proc/<pid>/cmdline would show."""
    real = shutil.which("git")
    assert real is not None
    bin_dir.mkdir()
    shim = bin_dir / "git"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\0" "$@" >> "{log}"\necho >> "{log}"\n'
                    f'exec "{real}" "$@"\n')
    shim.chmod(0o755)


def test_git_url_credentials_on_success_leak_nothing(runner: Runner, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A promotion that works, with the token in --repo: not in the JSON report (GitLab's
    promote.json), the step summary, the outputs, the dotenv, nor on the argv of any
    git child; git gets it through its environment."""
    root = tmp_path / "served"
    BareRepo.init(root / "config.git", files(MERGING))
    log = tmp_path / "git-argv.log"
    git_shim(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    runner.github_actions()
    with GitServer(root, user="oauth2", token=GH_TOKEN) as server:
        got = runner.cli("--repo", server.url("config.git"), "--forge", "git", "--env", "prod",
                         "--image", IMAGE, "--output", "json")
        seen = server.headers_seen()
    assert got == 0, runner.scan.texts.get("stderr")
    assert f"127.0.0.1:{server.port}/config.git" in runner.scan.texts["stdout"]
    assert "'Authorization': 'Basic " in seen  # the server did get the credential
    calls = log.read_bytes()
    assert b"ls-remote" in calls and b"push" in calls
    runner.scan.add("argv of git children", calls)
    runner.scan.add("repository objects", all_objects(BareRepo(root / "config.git")))
    assert runner.scan.leaks({GH_TOKEN}) == []


def test_git_url_credentials_never_follow_a_redirect(runner: Runner, tmp_path: Path) -> None:
    """A remote that answers 302 to another origin: git does not follow it, so the
    other server never sees the credential (or anything)."""
    with Recorder() as other, GitServer(tmp_path, user="oauth2", token=GH_TOKEN) as server:
        server.redirect_to = other.root_url
        got = runner.cli("--repo", server.url("config.git"), "--forge", "git", "--image",
                         IMAGE, "--output", "json", "--retry-timeout", "0.3")
        elsewhere = other.seen
    assert got in (2, 5), runner.scan.texts.get("stderr")
    assert elsewhere == []  # not even a request: curl's own header stripping aside
    assert runner.scan.leaks({GH_TOKEN}) == []


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea", "azure", "bitbucket",
                                  "bitbucket-dc"])
def test_api_redirect_to_another_server_receives_no_token(kind: str, runner: Runner,
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """--api-url answers every request with a 302 to a second loopback server (another
    origin): nothing reaches that server, and the run leaks nothing."""
    token = {"github": GH_TOKEN, "gitea": GT_TOKEN, "azure": GT_TOKEN, "bitbucket": BB_TOKEN,
             "bitbucket-dc": BB_TOKEN}.get(kind, GL_TOKEN)
    monkeypatch.setenv("PROMOTE_TOKEN", token)
    with Recorder() as other, GitServer(tmp_path) as api:
        api.redirect_to = other.root_url
        url = api.root_url + ("/2.0" if kind == "bitbucket" else "")  # a Cloud API root
        forge = kind.removesuffix("-dc")  # Data Center: the same forge, a server root
        got = runner.cli("--repo", SLUG, "--forge", forge, "--api-url", url,
                         "--image", IMAGE, "--retry-timeout", "0.3")
        runner.scan.add("requests to the redirect target", other.headers_seen())
        assert other.seen == []
    assert got == 5, runner.scan.texts.get("stderr")
    assert runner.scan.leaks({token}) == []


def test_a_manifest_deep_enough_to_crash_the_parser_dumps_no_core(tmp_path: Path) -> None:
    """A 60,000-deep manifest used to end in SIGSEGV, and a core dump holds the token of
    the environment and of the URL. Now: exit 2, a message, no core, no token."""
    root = tmp_path / "served"
    deep = b"image: ghcr.io/acme/api:1.0.0\nx: " + b"[" * 60_000 + b"]" * 60_000 + b"\n"
    BareRepo.init(root / "config.git", {**files(MERGING), "envs/prod/deep.yaml": deep})
    work = tmp_path / "cwd"
    work.mkdir()
    promote = str(Path(sys.executable).with_name("promote"))
    with GitServer(root, user="oauth2", token=GH_TOKEN) as server:
        proc = subprocess.run([promote, "--repo", server.url("config.git"), "--forge", "git",
                               "--image", IMAGE, "--output", "json"], cwd=work,
                              capture_output=True, text=True, timeout=60, check=False,
                              env={"PATH": os.environ["PATH"], "HOME": str(tmp_path),
                                   "PROMOTE_TOKEN": GL_TOKEN})
    assert proc.returncode == 2, proc.stderr
    assert "envs/prod/deep.yaml:2" in proc.stderr and "nested more than" in proc.stderr
    assert list(work.iterdir()) == []  # no core file
    assert Scan({"stdout": proc.stdout, "stderr": proc.stderr}).leaks({GH_TOKEN, GL_TOKEN}) == []


# --- exceptions raised to API callers ----------------------------------------------------------


def chain_text(exc: BaseException) -> str:
    """The exception as a traceback shows it (cause and unsuppressed context)."""
    return "".join(traceback.format_exception(exc)) + repr(exc) + repr(exc.args)


def test_exceptions_carry_no_secret(gh: FakeGitHub, gl: FakeGitLab) -> None:
    attempts: list[Any] = [
        lambda: GitHubForge(SLUG, api_url=gh.url, token=BAD_TOKEN,
                            sleep=lambda _: None).snapshot(None),
        lambda: GitHubForge(SLUG, api_url=gh.url, app_id=APP_ID, app_key=OTHER_KEY,
                            sleep=lambda _: None).snapshot(None),
        lambda: GitLabForge(SLUG, api_url=gl.url, token=BAD_TOKEN,
                            sleep=lambda _: None).snapshot(None),
        lambda: GitLabForge(SLUG, api_url=gl.url, job_token=JOB_TOKEN,
                            sleep=lambda _: None).snapshot(None).commit,
    ]
    scan = Scan()
    raised = 0
    for i, attempt in enumerate(attempts):
        try:
            attempt()
        except PromoteError as exc:
            raised += 1
            scan.add(f"exception {i}", chain_text(exc))
    assert raised >= 3
    assert scan.leaks({BAD_TOKEN, OTHER_KEY, JOB_TOKEN}) == []


def test_redact_masks_a_pem_line_by_line() -> None:
    redact.register(APP_KEY)
    body = APP_KEY.splitlines()[3]
    assert body not in redact.redact(f"key line {body} leaked")
    assert redact.redact(APP_KEY) == redact.MASK
