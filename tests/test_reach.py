"""Reaching a forge from inside an organisation (issue #15): a private CA, a corporate
proxy, and rate limits of big organisations, each through the real CLI.

- TLS: the fake forges (GitHub, GitLab, and ``git http-backend``) serve HTTPS with a
  certificate issued by a private CA made here. Without the CA the run stops with a
  TLS message (exit 5, no retry, no traceback); with ``--ca-bundle`` (or
  PROMOTE_CA_BUNDLE, REQUESTS_CA_BUNDLE, SSL_CERT_FILE) it succeeds. A CA file that is
  missing or holds no certificate is exit 2 naming it.
- Proxy: a loopback proxy records what passes. ``HTTPS_PROXY`` sends the forge traffic
  through it as CONNECT tunnels (the token stays inside TLS); ``NO_PROXY`` keeps it
  away; plain http through a proxy with a token is refused before anything is sent.
- Rate limits: a limit that ends after ``--retry-timeout`` stops the run at once with
  the time it ends; ``--wait-for-rate-limit`` waits (injected sleep and clock, no real
  waiting), a progress line a minute, at most an hour.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from promoter.cli import run
from promoter.forges.git import GitForge
from tests.fakes.githttp import GitServer
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.proxy import Proxy
from tests.tls import private_ca, self_signed

TOKEN = "ghp_ReachTest0123456789abcdefghijklmnopq"  # a fake credential
DEPLOY = (b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n"
          b"  template:\n    spec:\n      containers:\n      - name: api\n"
          b"        image: ghcr.io/acme/api:1.4.1\n")
IMAGE = "ghcr.io/acme/api:1.4.2"
NOW = 1_796_000_000.0  # the injected clock: 2026-11-30 ...
NETWORK_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR",
               "GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "http_proxy", "https_proxy", "no_proxy",
               "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def _no_network_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CA bundle or proxy of the machine running the tests; a HOME without config."""
    for name in NETWORK_ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) of a private CA."""
    return private_ca(tmp_path / "pki")


def promote(capsys: pytest.CaptureFixture[str], *args: str, **effects: object
            ) -> tuple[int, str, str]:
    code = run(list(args), **effects)  # type: ignore[arg-type]
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture
def github(tmp_path: Path, pki: tuple[Path, Path, Path],
           monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    _, cert, key = pki
    monkeypatch.setenv("PROMOTE_TOKEN", TOKEN)
    with FakeGitHub(tmp_path / "gh", prefix="/api/v3", tls=(cert, key)) as fake:
        fake.add_token(TOKEN)
        fake.create_repo("acme/config", {"envs/prod/deploy.yaml": DEPLOY})
        yield fake


@pytest.fixture
def gitlab(tmp_path: Path, pki: tuple[Path, Path, Path],
           monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitLab]:
    _, cert, key = pki
    monkeypatch.setenv("PROMOTE_TOKEN", TOKEN)
    with FakeGitLab(tmp_path / "gl", tls=(cert, key)) as fake:
        fake.add_token(TOKEN)
        fake.add_project("acme/config", {"envs/prod/deploy.yaml": DEPLOY})
        yield fake


def bare_repo(root: Path) -> Path:
    """A bare config repo under ``root`` (served by ``git http-backend``)."""
    work = root / "seed"
    work.mkdir(parents=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(root), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    (work / "envs/prod").mkdir(parents=True)
    (work / "envs/prod/deploy.yaml").write_bytes(DEPLOY)
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "seed"],
                 ["clone", "-q", "--bare", ".", str(root / "config.git")]):
        subprocess.run(["git", *args], cwd=work, env=env, check=True, capture_output=True)
    return root / "config.git"


@pytest.fixture
def git_https(tmp_path: Path, pki: tuple[Path, Path, Path]) -> Iterator[GitServer]:
    _, cert, key = pki
    bare_repo(tmp_path / "srv")
    with GitServer(tmp_path / "srv", user="bot", token=TOKEN, tls=(cert, key)) as server:
        yield server


def github_args(fake: FakeGitHub, *extra: str) -> list[str]:
    return ["--forge", "github", "--repo", "acme/config", "--api-url", fake.root_url,
            "--image", IMAGE, "--output", "json", *extra]


def gitlab_args(fake: FakeGitLab, *extra: str) -> list[str]:
    return ["--forge", "gitlab", "--repo", "acme/config", "--api-url", fake.url,
            "--image", IMAGE, "--output", "json", *extra]


def git_args(server: GitServer, *extra: str) -> list[str]:
    return ["--forge", "git", "--repo", server.url("config.git"), "--image", IMAGE,
            "--author", "Promoter Bot <bot@example.com>", "--output", "json", *extra]


# --- private CA ---------------------------------------------------------------------


def test_github_without_the_private_ca_is_a_tls_error_at_once(
        github: FakeGitHub, capsys: pytest.CaptureFixture[str]) -> None:
    slept: list[float] = []
    code, out, err = promote(capsys, *github_args(github), sleep=slept.append)
    assert code == 5, err
    assert f"the TLS certificate of GitHub at {github.root_url} did not verify" in err
    assert "--ca-bundle" in err
    assert slept == []  # a certificate that does not verify is not retried
    assert json.loads(out)["exit_code"] == 5
    assert TOKEN not in out + err


def test_github_with_ca_bundle_promotes(github: FakeGitHub, pki: tuple[Path, Path, Path],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    ca, _, _ = pki
    code, out, err = promote(capsys, *github_args(github, "--ca-bundle", str(ca)))
    assert code == 0, err
    assert json.loads(out)["pull_request"]["url"] == github.pull("acme/config", 1)["html_url"]


@pytest.mark.parametrize("variable", ["PROMOTE_CA_BUNDLE", "REQUESTS_CA_BUNDLE",
                                      "SSL_CERT_FILE"])
def test_github_takes_the_ca_bundle_from_the_environment(
        github: FakeGitHub, pki: tuple[Path, Path, Path], variable: str,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, str(pki[0]))
    code, out, err = promote(capsys, *github_args(github, "--dry-run"))
    assert code == 0, err
    assert json.loads(out)["changes"][0]["new"] == IMAGE


def test_ca_bundle_wins_over_requests_ca_bundle_for_every_request(
        github: FakeGitHub, pki: tuple[Path, Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """requests lets REQUESTS_CA_BUNDLE replace a session's own ``verify``: the archive
    download (a session of its own) must still verify with --ca-bundle."""
    other, _ = self_signed(tmp_path)  # a valid CA file, but not the one that signed
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))
    code, _, err = promote(capsys, *github_args(github, "--ca-bundle", str(pki[0])))
    assert code == 0, err
    assert github.count("GET", r"/tarball/") == 1


def test_gitlab_without_then_with_the_private_ca(
        gitlab: FakeGitLab, pki: tuple[Path, Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    slept: list[float] = []
    code, _, err = promote(capsys, *gitlab_args(gitlab), sleep=slept.append)
    assert code == 5, err
    assert f"the TLS certificate of GitLab at {gitlab.url} did not verify" in err
    assert "--ca-bundle" in err
    assert slept == []
    code, out, err = promote(capsys, *gitlab_args(gitlab, "--ca-bundle", str(pki[0])))
    assert code == 0, err
    assert json.loads(out)["pull_request"]["url"] == \
        gitlab.merge_request("acme/config", 1)["web_url"]


def test_plain_git_without_then_with_the_private_ca(
        git_https: GitServer, pki: tuple[Path, Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    slept: list[float] = []
    code, _, err = promote(capsys, *git_args(git_https), sleep=slept.append)
    assert code == 5, err
    assert "TLS certificate of https://127.0.0.1" in err
    assert "did not verify" in err and "--ca-bundle" in err
    assert TOKEN not in err
    assert slept == []  # not retried
    code, out, err = promote(capsys, *git_args(git_https, "--ca-bundle", str(pki[0])))
    assert code == 0, err
    commit = json.loads(out)["commit"]
    shown = subprocess.run(["git", "cat-file", "-p", f"{commit}:envs/prod/deploy.yaml"],
                           cwd=tmp_path / "srv" / "config.git", capture_output=True,
                           check=True).stdout
    assert IMAGE.encode() in shown


def test_plain_git_ca_bundle_wins_over_git_ssl_cainfo(
        git_https: GitServer, pki: tuple[Path, Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    other, _ = self_signed(tmp_path)  # git lets GIT_SSL_CAINFO override http.sslCAInfo
    monkeypatch.setenv("GIT_SSL_CAINFO", str(other))
    code, _, err = promote(capsys, *git_args(git_https, "--ca-bundle", str(pki[0]),
                                             "--dry-run"))
    assert code == 0, err


def test_plain_git_gets_the_ca_bundle_through_its_environment_not_argv(
        git_https: GitServer, pki: tuple[Path, Path, Path]) -> None:
    seen: list[tuple[list[str], dict[str, str]]] = []

    def runner(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        env = kwargs["env"]
        assert isinstance(env, dict)
        seen.append((command, env))
        return subprocess.run(command, **kwargs)  # type: ignore[call-overload, no-any-return]

    with GitForge(git_https.url("config.git"), runner=runner, ca_bundle=str(pki[0])) as forge:
        assert forge.snapshot("main").files["envs/prod/deploy.yaml"] == DEPLOY
    fetches = [(c, e) for c, e in seen if "ls-remote" in c or "fetch" in c]
    assert fetches
    for command, env in fetches:
        assert not any(str(pki[0]) in arg or TOKEN in arg for arg in command)
        settings = {env[f"GIT_CONFIG_KEY_{n}"]: env[f"GIT_CONFIG_VALUE_{n}"]
                    for n in range(int(env["GIT_CONFIG_COUNT"]))}
        assert settings["http.sslCAInfo"] == str(pki[0])
        assert settings["http.extraHeader"].startswith("Authorization: Basic ")


@pytest.mark.parametrize("message", [
    "fatal: unable to access 'https://h/c.git/': gnutls_handshake() failed: The certificate "
    "is NOT trusted. The certificate issuer is unknown.",
    "fatal: unable to access 'https://h/c.git/': SSL certificate problem: unable to get "
    "local issuer certificate",
    "fatal: unable to access 'https://h/c.git/': server certificate verification failed. "
    "CAfile: none CRLfile: none",
])
def test_a_git_certificate_failure_is_not_retried(message: str) -> None:
    from promoter.forges.gitclone import GitFailed, classify

    assert classify(GitFailed("fetch", "https://h/c.git", message, 128)) is None


@pytest.mark.parametrize(("option", "env"), [
    (["--ca-bundle", "{missing}"], {}),
    ([], {"PROMOTE_CA_BUNDLE": "{missing}"}),
    ([], {"SSL_CERT_FILE": "{missing}"}),
    ([], {"REQUESTS_CA_BUNDLE": "{missing}"}),
])
def test_a_missing_ca_bundle_is_exit_2_naming_it(
        github: FakeGitHub, tmp_path: Path, option: list[str], env: dict[str, str],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    missing = str(tmp_path / "no-such-ca.pem")
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(missing=missing))
    args = [a.format(missing=missing) for a in option]
    github.reset_counts()
    code, _, err = promote(capsys, *github_args(github, *args))
    assert code == 2, err
    source = "--ca-bundle" if option or "PROMOTE_CA_BUNDLE" in env else next(iter(env))
    assert f"{source} {missing}: no such file" in err
    assert github.requests == []  # nothing was sent


def test_a_stale_ca_variable_does_not_stop_a_local_plain_git_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    bare = bare_repo(tmp_path / "local")
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "gone.pem"))
    code, _, err = promote(capsys, "--forge", "git", "--repo", str(bare), "--image", IMAGE,
                           "--author", "Bot <bot@example.com>", "--dry-run")
    assert code == 0, err


@pytest.mark.parametrize("content", [b"", b"not a certificate\n",
                                     b"-----BEGIN CERTIFICATE-----\nAAAA\n"
                                     b"-----END CERTIFICATE-----\n"])
def test_a_ca_bundle_without_certificates_is_exit_2(
        github: FakeGitHub, tmp_path: Path, content: bytes,
        capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "empty.pem"
    bundle.write_bytes(content)
    code, _, err = promote(capsys, *github_args(github, "--ca-bundle", str(bundle)))
    assert code == 2, err
    assert f"--ca-bundle {bundle}: " in err
    assert "PEM" in err


def test_an_unreadable_ca_bundle_is_exit_2(
        github: FakeGitHub, pki: tuple[Path, Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() == 0:
        bundle = tmp_path / "fifo"  # root reads every file: a FIFO stands in
        os.mkfifo(bundle)
        wanted = "not a file"
    else:
        bundle = tmp_path / "locked.pem"
        bundle.write_bytes(pki[0].read_bytes())
        bundle.chmod(0)
        wanted = "cannot read it"
    code, _, err = promote(capsys, *github_args(github, "--ca-bundle", str(bundle)))
    assert code == 2, err
    assert f"--ca-bundle {bundle}: {wanted}" in err


def test_a_hashed_ca_directory_works_for_github_and_plain_git(
        github: FakeGitHub, git_https: GitServer, pki: tuple[Path, Path, Path],
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "corp.pem").write_bytes(pki[0].read_bytes())
    subprocess.run(["openssl", "rehash", str(certs)], check=True, capture_output=True)
    code, _, err = promote(capsys, *github_args(github, "--ca-bundle", str(certs)))
    assert code == 0, err
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs))  # requests' own form of it
    code, _, err = promote(capsys, *git_args(git_https))
    assert code == 0, err


# --- proxies ------------------------------------------------------------------------


def test_https_proxy_carries_github_traffic_in_tunnels_and_no_proxy_bypasses_it(
        github: FakeGitHub, pki: tuple[Path, Path, Path],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    port = github.root_url.rsplit(":", 1)[1]
    with Proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        code, _, err = promote(capsys, *github_args(github, "--ca-bundle", str(pki[0])))
        assert code == 0, err
        assert proxy.tunnels and set(proxy.tunnels) == {f"127.0.0.1:{port}"}
        assert {m for m, _, _ in proxy.requests} == {"CONNECT"}
        assert TOKEN not in proxy.seen  # the token travelled inside the TLS tunnel only
        assert "Authorization" not in proxy.seen
        before = len(proxy.requests)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        code, _, err = promote(capsys, *github_args(github, "--ca-bundle", str(pki[0]),
                                                    "--dry-run"))
        assert code == 0, err
        assert len(proxy.requests) == before


def test_https_proxy_carries_gitlab_traffic_and_no_proxy_bypasses_it(
        gitlab: FakeGitLab, pki: tuple[Path, Path, Path],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    port = gitlab.url.rsplit(":", 1)[1]
    with Proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        code, _, err = promote(capsys, *gitlab_args(gitlab, "--ca-bundle", str(pki[0])))
        assert code == 0, err
        assert set(proxy.tunnels) == {f"127.0.0.1:{port}"}
        assert TOKEN not in proxy.seen
        before = len(proxy.requests)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        code, _, err = promote(capsys, *gitlab_args(gitlab, "--ca-bundle", str(pki[0]),
                                                    "--dry-run"))
        assert code == 0, err
        assert len(proxy.requests) == before


def test_https_proxy_carries_plain_git_traffic_and_no_proxy_bypasses_it(
        git_https: GitServer, pki: tuple[Path, Path, Path],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with Proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        code, _, err = promote(capsys, *git_args(git_https, "--ca-bundle", str(pki[0])))
        assert code == 0, err
        assert set(proxy.tunnels) == {f"127.0.0.1:{git_https.port}"}
        assert TOKEN not in proxy.seen
        before = len(proxy.requests)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        code, _, err = promote(capsys, *git_args(git_https, "--ca-bundle", str(pki[0]),
                                                 "--dry-run"))
        assert code == 0, err
        assert len(proxy.requests) == before


def test_a_token_is_never_sent_in_clear_to_a_proxy(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMOTE_TOKEN", TOKEN)
    bare_repo(tmp_path / "srv")
    with FakeGitHub(tmp_path / "gh") as fake, FakeGitLab(tmp_path / "gl") as lab, \
            GitServer(tmp_path / "srv", token=TOKEN) as server, Proxy() as proxy:
        fake.add_token(TOKEN)
        fake.create_repo("acme/config", {"envs/prod/deploy.yaml": DEPLOY})
        lab.add_token(TOKEN)
        lab.add_project("acme/config", {"envs/prod/deploy.yaml": DEPLOY})
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        for args in (github_args(fake), gitlab_args(lab), git_args(server)):
            code, _, err = promote(capsys, *args)
            assert code == 2, err
            assert "is plain http and HTTP_PROXY sends it through" in err
            assert "NO_PROXY" in err
        assert proxy.requests == []
        assert fake.requests == [] and lab.requests == [] and server.seen == []
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.0/8")  # then it goes direct
        code, _, err = promote(capsys, *github_args(fake, "--dry-run"))
        assert code == 0, err
        assert proxy.requests == []


# --- rate limits --------------------------------------------------------------------


class Clock:
    """The injected epoch clock and sleep: sleeping moves the clock, nothing waits."""

    def __init__(self) -> None:
        self.now = NOW
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def hhmmss(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%H:%M:%S UTC")


def exhausted(reset: float) -> dict[str, str]:
    return {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(reset))}


@pytest.mark.parametrize(("status", "headers"), [
    (403, exhausted(NOW + 3600)),                 # the primary limit: quota used up
    (429, exhausted(NOW + 3600)),
    (403, {"Retry-After": "3600"}),               # a secondary limit
])
def test_github_rate_limit_past_the_retry_budget_stops_at_once_with_the_reset_time(
        github: FakeGitHub, pki: tuple[Path, Path, Path], status: int,
        headers: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    github.fail("POST", r"/graphql#PromoterRun$", status, headers=headers, times=5)
    clock = Clock()
    code, out, err = promote(capsys, *github_args(github, "--ca-bundle", str(pki[0])),
                             sleep=clock.sleep, clock=clock)
    assert code == 5, err
    assert f"GitHub rate limited until {hhmmss(NOW + 3600)} (in 60 min); rerun then, or " \
           "pass --wait-for-rate-limit" in err
    assert clock.slept == []  # said at once, no sleeping first
    assert github.count("POST", r"/graphql#PromoterRun$") == 1
    assert json.loads(out)["exit_code"] == 5


def test_github_waits_for_a_rate_limit_with_progress_when_asked(
        github: FakeGitHub, pki: tuple[Path, Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    github.fail("POST", r"/graphql#PromoterRun$", 403, headers=exhausted(NOW + 150))
    clock = Clock()
    code, out, err = promote(capsys, *github_args(github, "--ca-bundle", str(pki[0]),
                                                  "--wait-for-rate-limit"),
                             sleep=clock.sleep, clock=clock)
    assert code == 0, err
    assert clock.slept == [60, 60, 30]
    progress = [line for line in err.splitlines() if "rate limited" in line]
    assert progress == [
        f"promote: GitHub rate limited until {hhmmss(NOW + 150)}: waiting, {left} left "
        "(--wait-for-rate-limit)" for left in ("3 min", "2 min", "1 min")]
    assert json.loads(out)["status"] == "proposed"


def test_wait_for_rate_limit_from_the_environment_and_its_maximum(
        github: FakeGitHub, pki: tuple[Path, Path, Path],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMOTE_WAIT_FOR_RATE_LIMIT", "true")
    github.fail("POST", r"/graphql#PromoterRun$", 403, headers=exhausted(NOW + 2 * 3600))
    clock = Clock()
    code, _, err = promote(capsys, *github_args(github, "--ca-bundle", str(pki[0])),
                           sleep=clock.sleep, clock=clock)
    assert code == 5, err
    assert f"GitHub rate limited until {hhmmss(NOW + 7200)} (in 120 min), longer than " \
           "--wait-for-rate-limit waits (60 min at most); rerun then" in err
    assert clock.slept == []
    github.fail("POST", r"/graphql#PromoterRun$", 403, headers=exhausted(NOW + 90))
    code, _, err = promote(capsys, *github_args(github, "--ca-bundle", str(pki[0])),
                           sleep=clock.sleep, clock=clock)
    assert code == 0, err
    assert clock.slept == [60, 30]


@pytest.mark.parametrize("headers", [
    {"Retry-After": "900"},
    {"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(NOW + 900))},
])
def test_gitlab_rate_limit_past_the_retry_budget_stops_at_once(
        gitlab: FakeGitLab, pki: tuple[Path, Path, Path], headers: dict[str, str],
        capsys: pytest.CaptureFixture[str]) -> None:
    gitlab.fail("GET", r"/projects/", 429, headers=headers, times=-1)
    clock = Clock()
    code, _, err = promote(capsys, *gitlab_args(gitlab, "--ca-bundle", str(pki[0])),
                           sleep=clock.sleep, clock=clock)
    assert code == 5, err
    assert f"GitLab rate limited until {hhmmss(NOW + 900)} (in 15 min); rerun then, or " \
           "pass --wait-for-rate-limit" in err
    assert clock.slept == []
    assert gitlab.count("GET") == 1


def test_gitlab_waits_for_a_rate_limit_with_progress_when_asked(
        gitlab: FakeGitLab, pki: tuple[Path, Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    gitlab.fail("GET", r"/projects/", 429, headers={"Retry-After": "125"})
    clock = Clock()
    code, out, err = promote(capsys, *gitlab_args(gitlab, "--ca-bundle", str(pki[0]),
                                                  "--wait-for-rate-limit"),
                             sleep=clock.sleep, clock=clock)
    assert code == 0, err
    assert clock.slept == [60, 60, 5]
    progress = [line for line in err.splitlines() if "rate limited" in line]
    assert len(progress) == 3
    assert progress[0] == (f"promote: GitLab rate limited until {hhmmss(NOW + 125)}: "
                           "waiting, 3 min left (--wait-for-rate-limit)")
    assert json.loads(out)["status"] == "proposed"


def test_a_short_rate_limit_is_retried_within_the_budget_as_before(
        gitlab: FakeGitLab, pki: tuple[Path, Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    gitlab.fail("GET", r"/projects/", 429, headers={"Retry-After": "7"})
    clock = Clock()
    code, _, err = promote(capsys, *gitlab_args(gitlab, "--ca-bundle", str(pki[0])),
                           sleep=clock.sleep, clock=clock)
    assert code == 0, err
    assert len(clock.slept) == 1 and clock.slept[0] >= 7
    assert "rate limited" not in err
