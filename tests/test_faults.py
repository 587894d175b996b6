"""Faults through the fake forges, on every read and write endpoint a promotion uses.

For each endpoint (listed per forge and scenario below, and checked against what a
clean run really sends) and each fault: 1-3 consecutive 500/502/503 (one variant per
endpoint, in turn); a rate limit (in turn: 429 with Retry-After in seconds, as an HTTP
date, or GitHub's secondary rate limit, 403 with retry-after, which also hits every
GitHub write); the connection reset before the server acted; and, for writes, the
connection reset or a 502 AFTER the server applied the write. The promotion must end
exactly as a clean run does: one commit, one pull/merge request (merged, or updated in
place), no stray branch; a server's Retry-After is honoured (the recorded sleep is at
least that long). When the faults outlast the retries: ForgeError (exit 5) with a
message that says what to do, no token in it, and nothing half-made left behind.
A response slower than the client timeout is retried like a reset (a write the server
applied late is not applied twice). A few cases run through the CLI as well, with a
real (small) --retry-timeout.

Sleeps are recorded, not slept (``sleep=`` of the forge constructors); only the slow
response tests wait, about a second each.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promoter.cli import run
from promoter.errors import ForgeError
from tests.hostile.forges import (
    MERGING,
    REVIEWED,
    SLUG,
    Harness,
    Sleeps,
    harness,
    one_commit_on,
    outcome,
    promote_once,
)

READ, WRITE = "read", "write"

# (method, path regex, kind) — every request of a clean run matches one of them
ENDPOINTS: dict[tuple[str, str], list[tuple[str, str, str]]] = {
    ("github", "merge"): [
        ("POST", r"^/graphql#PromoterRun$", READ),  # with the root tree: the policy file
        ("GET", r"/tarball/", READ),
        ("GET", r"^/_codeload/", READ),
        ("GET", r"/repos/acme/config/branches/main$", READ),  # history: from the branch
        ("GET", r"/repos/acme/config/commits$", READ),
        ("POST", r"^/graphql#PromoterCommit$", WRITE),
        ("POST", r"/pulls$", WRITE),
        ("POST", r"/issues/\d+/labels$", WRITE),
        ("POST", r"/requested_reviewers$", WRITE),
        ("GET", r"/status$", READ),
        ("GET", r"/check-runs$", READ),
        ("GET", r"/pulls/\d+$", READ),
        ("PUT", r"/merge$", WRITE),
    ],
    ("github", "update"): [
        ("GET", r"/pulls$", READ),  # the request looked for again after a new commit
        ("GET", r"/commits/[0-9a-f]{40}$", READ),
        ("POST", r"/git/trees$", WRITE),
        ("POST", r"/git/commits$", WRITE),
        ("GET", r"/git/ref/heads/promote/", READ),
        ("PATCH", r"/git/refs/heads/promote/", WRITE),
        ("PATCH", r"/pulls/\d+$", WRITE),
    ],
    ("gitlab", "merge"): [
        ("GET", r"/projects/acme%2Fconfig$", READ),
        ("GET", r"/repository/archive\.tar\.gz$", READ),
        ("GET", r"/repository/tree$", READ),  # the root tree: the policy file
        ("GET", r"/repository/commits$", READ),
        ("POST", r"/repository/commits$", WRITE),
        ("GET", r"/api/v4/users$", READ),
        ("POST", r"/merge_requests$", WRITE),
        ("GET", r"/repository/branches/main$", READ),  # the base, before merging
        ("GET", r"/merge_requests/\d+$", READ),
        ("GET", r"/statuses$", READ),
        ("PUT", r"/merge_requests/\d+/merge$", WRITE),
    ],
    ("gitlab", "update"): [
        ("GET", r"/repository/branches/promote", READ),
        ("GET", r"/repository/commits/[0-9a-f]{40}$", READ),
        ("GET", r"/repository/commits/[0-9a-f]{40}/diff$", READ),
        ("GET", r"/repository/files/.+/raw$", READ),
        ("POST", r"/repository/commits$", WRITE),
        ("GET", r"/merge_requests$", READ),
        ("PUT", r"/merge_requests/\d+$", WRITE),
    ],
    ("gitea", "merge"): [
        ("GET", r"^/api/v1/repos/acme/config$", READ),
        ("GET", r"/branches/main$", READ),
        ("GET", r"/archive/[0-9a-f]{40}\.tar\.gz$", READ),
        ("GET", r"/git/trees/[0-9a-f]{40}$", READ),  # the root tree: the policy file
        ("GET", r"/acme/config/commits$", READ),
        ("GET", r"/branches/promote/", READ),
        ("POST", r"/contents$", WRITE),
        ("GET", r"/labels$", READ),
        ("POST", r"/pulls$", WRITE),
        ("POST", r"/requested_reviewers$", WRITE),
        ("GET", r"/commits/[0-9a-f]{40}/status$", READ),
        ("POST", r"/pulls/\d+/merge$", WRITE),
    ],
    ("gitea", "update"): [
        ("DELETE", r"/pulls/\d+/merge$", WRITE),  # no scheduled merge survives a refusal
        ("GET", r"/branches/promote/", READ),
        ("GET", r"/git/commits/[0-9a-f]{40}$", READ),
        ("GET", r"/git/trees/[0-9a-f]{40}$", READ),
        ("POST", r"/contents$", WRITE),
        ("PUT", r"/branches/promote/", WRITE),
        ("DELETE", r"/branches/promote/.*-next-", WRITE),
        ("GET", r"/pulls$", READ),
        ("PATCH", r"/pulls/\d+$", WRITE),
    ],
    ("azure", "merge"): [
        ("GET", r"/_apis/git/repositories/config$", READ),
        ("GET", r"/refs$", READ),
        ("GET", r"/commits/[0-9a-f]{40}$", READ),
        ("GET", r"/trees/[0-9a-f]{40}$", READ),
        ("POST", r"/blobs$", READ),  # a POST that reads: the blob zip
        ("POST", r"/pushes$", WRITE),
        ("GET", r"/_apis/projects/acme/teams$", READ),  # reviewers named: looked up
        ("GET", r"/_apis/projects/acme/teams/[0-9a-f-]{36}/members$", READ),
        ("POST", r"/pullrequests$", WRITE),
        ("GET", r"/commits/[0-9a-f]{40}/statuses$", READ),
        ("GET", r"/pullrequests/\d+/statuses$", READ),
        ("GET", r"/_apis/git/policy/configurations$", READ),
        ("PATCH", r"/pullrequests/\d+$", WRITE),
    ],
    ("azure", "update"): [
        ("GET", r"/refs$", READ),
        ("GET", r"/commits/[0-9a-f]{40}$", READ),
        ("GET", r"/trees/[0-9a-f]{40}$", READ),
        ("POST", r"/pushes$", WRITE),
        ("POST", r"/refs$", WRITE),
        ("GET", r"/pullrequests$", READ),
        ("PATCH", r"/pullrequests/\d+$", WRITE),
    ],
    ("bitbucket", "merge"): [
        ("GET", r"^/2\.0/repositories/acme/config$", READ),  # the main branch
        ("GET", r"/refs/branches/main$", READ),
        ("GET", r"/get/[0-9a-f]{40}\.tar\.gz$", READ),  # the archive, on the web side
        ("GET", r"/src/[0-9a-f]{40}/$", READ),  # the tree's listing: proves the archive
        ("GET", r"/acme/config/commits/[0-9a-f]{40}$", READ),  # history, from the tip
        ("GET", r"/refs/branches/promote", READ),
        ("POST", r"/src$", WRITE),
        ("GET", r"/workspaces/acme/members$", READ),
        ("POST", r"/pullrequests$", WRITE),
        ("GET", r"/statuses$", READ),
        ("GET", r"/pullrequests/\d+$", READ),
        ("POST", r"/pullrequests/\d+/merge$", WRITE),
    ],
    ("bitbucket", "update"): [
        ("GET", r"/commit/[0-9a-f]{40}$", READ),
        ("GET", r"/diffstat/[0-9a-f]{40}$", READ),
        ("GET", r"/src/[0-9a-f]{40}/envs/", READ),
        ("DELETE", r"/refs/branches/promote", WRITE),
        ("POST", r"/src$", WRITE),
        ("GET", r"/pullrequests$", READ),
        ("PUT", r"/pullrequests/\d+$", WRITE),
    ],
    # Bitbucket Data Center (the update scenario differs: Data Center declines a pull
    # request whose branch is deleted, so a rebuilt proposal is a new pull request)
    ("bitbucket-dc", "merge"): [
        ("GET", r"/repos/config/branches/default$", READ),
        ("GET", r"/repos/config/archive$", READ),
        ("GET", r"/repos/config/browse$", READ),  # the root's ids: prove the archive
        ("GET", r"/repos/config/commits$", READ),
        ("GET", r"/repos/config/branches$", READ),
        ("GET", r"/repos/config/commits/[0-9a-f]{40}$", READ),  # the base, before merging
        ("PUT", r"/repos/config/browse/envs/", WRITE),  # the one-file commit
        ("POST", r"/repos/config/pull-requests$", WRITE),
        ("GET", r"/rest/build-status/1\.0/commits/[0-9a-f]{40}$", READ),
        ("GET", r"/pull-requests/\d+$", READ),
        ("POST", r"/pull-requests/\d+/merge$", WRITE),
    ],
}
# endpoints of a clean run that the list of the other scenario covers
SHARED = {("github", "update"): ENDPOINTS[("github", "merge")],
          ("gitlab", "update"): ENDPOINTS[("gitlab", "merge")],
          ("gitea", "update"): ENDPOINTS[("gitea", "merge")],
          ("azure", "update"): ENDPOINTS[("azure", "merge")],
          ("bitbucket", "update"): ENDPOINTS[("bitbucket", "merge")]}

# promote waits for checks itself (it polls statuses and check runs / pipelines, which
# then find nothing pending), so those read endpoints are part of every flow faulted here
WAIT = 30.0


def http_date(seconds: float) -> str:
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


SECONDARY = {"message": "You have exceeded a secondary rate limit. Please wait a few "
                        "minutes before you try again.",
             "documentation_url": "https://docs.github.com/rest/overview/rate-limits"}
GITHUB = "github"
# name -> (options for fail(), only for writes, only for this forge, Retry-After to honour)
FAULTS: dict[str, tuple[dict[str, Any], bool, str | None, float]] = {
    "500x1": ({"status": 500}, False, None, 0),
    "502x2": ({"status": 502, "times": 2}, False, None, 0),
    "503x3": ({"status": 503, "times": 3}, False, None, 0),
    "429-seconds": ({"status": 429, "headers": {"Retry-After": "1"}}, False, None, 1),
    "429-date": ({"status": 429, "headers": {"Retry-After": "@date+3"}}, False, None, 1),
    "403-secondary": ({"status": 403, "headers": {"retry-after": "1"}, "body": SECONDARY},
                      False, GITHUB, 1),
    "reset-before": ({"status": 502, "reset_before": True}, False, None, 0),
    "reset-after": ({"status": 502, "apply_then_fail": True, "drop": True}, True, None, 0),
    "502-after": ({"status": 502, "apply_then_fail": True}, True, None, 0),
}


# Variants of one failure run the same code, so each endpoint gets one variant of a
# group in turn (endpoint i: the i-th applicable one, cyclically); over an endpoint list
# every variant is used. GitHub's secondary rate limit also hits every write: it is
# the limit content creation meets.
ROTATE = (("500x1", "502x2", "503x3"), ("429-seconds", "429-date", "403-secondary"))


def _applies(name: str, kind: str, rw: str) -> bool:
    _, writes_only, only, _ = FAULTS[name]
    return not (writes_only and rw != WRITE) and only in (None, kind)


def _cases() -> Iterator[Any]:
    for (kind, scenario), endpoints in ENDPOINTS.items():
        for i, (method, path, rw) in enumerate(endpoints):
            chosen = {name for name in FAULTS if _applies(name, kind, rw)}
            for group in ROTATE:
                usable = [n for n in group if n in chosen]
                keep = {usable[i % len(usable)]} if usable else set()
                if kind == GITHUB and rw == WRITE and "403-secondary" in group:
                    keep.add("403-secondary")
                chosen -= set(group) - keep
            for name in FAULTS:
                if name in chosen:
                    yield pytest.param(kind, scenario, method, path, name,
                                       id=f"{kind}-{scenario}-{method}-{path}-{name}")


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


def config_for(scenario: str) -> bytes:
    return MERGING if scenario == "merge" else REVIEWED


def inject(h: Harness, method: str, path: str, name: str, **override: Any) -> dict[str, Any]:
    options = dict(FAULTS[name][0])
    options.update(override)
    headers = dict(options.get("headers") or {})
    for key, value in headers.items():
        if value.startswith("@date+"):
            headers[key] = http_date(float(value.removeprefix("@date+")))
    options["headers"] = headers
    h.fail(method, path, **options)
    return options


def fault_fired(h: Harness, method: str, path: str, options: dict[str, Any]) -> bool:
    want = 0 if options.get("drop") or options.get("reset_before") else options["status"]
    return any(m == method and re.search(path, p) and status == want
               for m, p, status in h.requests())


def check_merged(h: Harness, base: str, result: dict[str, Any], tag: str) -> None:
    assert result["status"] == "merged", result
    state = outcome(h)
    assert [c.state for c in state.changes] == ["merged"], state.changes
    assert f"ghcr.io/acme/api:{tag}".encode() in state.main_file
    new = [c for c in state.log if c["sha"] != base]
    assert len(new) == 1 and new[0]["parents"] == [base], "not exactly one commit on main"
    assert set(state.branches) <= {"promote/prod/api"}


def check_updated(h: Harness, base: str, result: dict[str, Any], tag: str) -> None:
    assert result["status"] == "proposed", result
    assert result["pull_request"]["created"] is False
    state = outcome(h)
    assert [c.state for c in state.changes] == ["open"], state.changes
    assert state.main == base
    assert list(state.branches) == ["promote/prod/api"]
    tip = state.branches["promote/prod/api"]
    assert one_commit_on(h, tip, base)
    assert f"ghcr.io/acme/api:{tag}".encode() in (
        h.bare.read_file(tip, "envs/prod/deploy.yaml") or b"")
    assert tag in h.request_text(state.changes[0].number)


@pytest.mark.parametrize(("kind", "scenario", "method", "path", "name"), list(_cases()))
def test_fault_is_survived(kind: str, scenario: str, method: str, path: str, name: str,
                           tmp_path: Path) -> None:
    with harness(kind, tmp_path, config_for(scenario)) as h:
        base = h.bare.resolve("main") or ""
        if scenario == "update":
            first = promote_once(h.forge(), "1.0.1", merge_timeout=WAIT)
            assert first["pull_request"]["created"] is True
        h.reset_counts()
        options = inject(h, method, path, name)
        sleeps = Sleeps()
        tag = "1.0.2" if scenario == "update" else "1.0.1"
        result = promote_once(h.forge(sleeps), tag, merge_timeout=WAIT)
        assert fault_fired(h, method, path, options), "the fault never fired"
        if scenario == "merge":
            check_merged(h, base, result, tag)
        else:
            check_updated(h, base, result, tag)
        honour = FAULTS[name][3]
        if honour:
            assert sleeps and max(sleeps) >= honour, f"Retry-After ignored: slept {sleeps}"
            assert max(sleeps) <= 130, f"slept {sleeps}"


@pytest.mark.parametrize(("kind", "scenario"), list(ENDPOINTS))
def test_the_endpoint_lists_cover_a_clean_run(kind: str, scenario: str,
                                              tmp_path: Path) -> None:
    with harness(kind, tmp_path, config_for(scenario)) as h:
        if scenario == "update":
            promote_once(h.forge(), "1.0.1", merge_timeout=WAIT)
        h.reset_counts()
        promote_once(h.forge(), "1.0.2" if scenario == "update" else "1.0.1",
                     merge_timeout=WAIT)
        listed = ENDPOINTS[(kind, scenario)] + SHARED.get((kind, scenario), [])
        seen = {(m, p) for m, p, _ in h.requests()}
        assert seen
        for method, path in seen:
            assert any(m == method and re.search(rx, path) for m, rx, _ in listed), \
                f"{method} {path} is not covered by the fault matrix"
        # and each endpoint of this scenario's list is really used
        for method, rx, _ in ENDPOINTS[(kind, scenario)]:
            assert any(m == method and re.search(rx, p) for m, p in seen), f"{method} {rx}"


# --- retries exhausted ----------------------------------------------------------------------

EXHAUSTED = [pytest.param(kind, method, path, id=f"{kind}-{method}-{path}")
             for (kind, scenario), endpoints in ENDPOINTS.items() if scenario == "merge"
             for method, path, _ in endpoints]


@pytest.mark.parametrize(("kind", "method", "path"), EXHAUSTED)
def test_exhausted_retries_leave_nothing_half_made(kind: str, method: str, path: str,
                                                   tmp_path: Path) -> None:
    with harness(kind, tmp_path) as h:
        base = h.bare.resolve("main") or ""
        h.fail(method, path, 503, times=1000, headers={"Retry-After": "1"})
        sleeps = Sleeps()
        with pytest.raises(ForgeError) as caught:
            promote_once(h.forge(sleeps), "1.0.1", merge_timeout=WAIT)
        err = caught.value
        assert err.code == 5
        text = str(err)
        assert h.token not in text
        assert "retr" in text or "again" in text, text  # says it retried / what to do
        assert 2 <= len(sleeps) <= 10, f"{len(sleeps)} retries"
        state = outcome(h)
        assert state.main == base, "the base branch moved"
        opened = [c for c in state.changes if c.state == "open"]
        if not state.branches:
            assert not opened, "a request without its branch"
        else:  # the request was opened before the failure: branch and request, both whole
            assert list(state.branches) == ["promote/prod/api"]
            assert [c.branch for c in opened] == ["promote/prod/api"], state.changes
            assert one_commit_on(h, state.branches["promote/prod/api"], base)
        assert not [c for c in state.changes if c.state == "merged"]


# --- slower than the client's timeout ---------------------------------------------------------

# Writes here are those whose late landing (the fake sleeps, then applies) is harmless
# whatever the timing: an unreferenced tree or commit, a merge of a merged request. A
# late POST /pulls landing after the merge would open a second request: no client can
# prevent a write the server applies after the whole run ended.
SLOW = [("github", "POST", r"^/graphql#PromoterRun$"),
        ("github", "POST", r"^/graphql#PromoterCommit$"),
        ("github", "PUT", r"/merge$"),
        ("gitlab", "GET", r"/repository/archive\.tar\.gz$"), ("gitlab", "PUT", r"/merge$"),
        ("gitea", "GET", r"/archive/"), ("gitea", "POST", r"/contents$"),
        ("gitea", "POST", r"/merge$"),
        ("azure", "POST", r"/blobs$"), ("azure", "POST", r"/pushes$"),
        ("azure", "PATCH", r"/pullrequests/\d+$"),
        ("bitbucket", "GET", r"/get/"), ("bitbucket", "POST", r"/src$"),
        ("bitbucket", "POST", r"/merge$")]


@pytest.mark.parametrize(("kind", "method", "path"), SLOW)
def test_a_response_slower_than_the_timeout_is_retried(kind: str, method: str, path: str,
                                                       tmp_path: Path) -> None:
    with harness(kind, tmp_path) as h:
        base = h.bare.resolve("main") or ""
        if kind == "github":  # PyGithub takes whole seconds
            h.fail(method, path, None, delay=1.3)  # type: ignore[arg-type]
            forge = h.forge(Sleeps(), timeout=1)
        else:  # the write lands after the client gave up: it must not land twice
            h.fail(method, path, 0, delay=0.9, apply_then_fail=True, drop=True)
            forge = h.forge(Sleeps(), timeout=0.4)
        started = time.monotonic()
        result = promote_once(forge, "1.0.1", merge_timeout=WAIT)
        assert time.monotonic() - started < 10
        time.sleep(0.4 if kind == "github" else 0.6)  # let the slow request finish
        check_merged(h, base, result, "1.0.1")
        assert sum(1 for m, p, _ in h.requests() if m == method and re.search(path, p)) >= 2


# --- through the CLI ------------------------------------------------------------------------


def cli(h: Harness, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    args = ["--repo", SLUG, "--forge", h.kind, "--api-url", h.url, "--env", "prod",
            "--image", "ghcr.io/acme/api:1.0.1", "--output", "json", *extra]
    code = run(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert h.token not in out + err
    return code, out, err


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea", "azure", "bitbucket"])
def test_cli_survives_server_errors(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    with harness(kind, tmp_path) as h:
        monkeypatch.setenv("PROMOTE_TOKEN", h.token)
        base = h.bare.resolve("main") or ""
        write = {"github": r"/graphql#PromoterCommit$", "gitea": r"/contents$",
                 "azure": r"/pushes$", "bitbucket": r"/src$"}.get(
            kind, r"/repository/commits$")
        h.fail("POST", write, 503, times=2, headers={"Retry-After": "0"})
        h.fail("*", r"/pulls$|/merge_requests$|/pullrequests$", 429,
               headers={"Retry-After": "0"})
        code, out, _ = cli(h, capsys, "--retry-timeout", "5")
        assert code == 0
        check_merged(h, base, json.loads(out), "1.0.1")


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea", "azure", "bitbucket"])
def test_cli_gives_up_with_exit_5(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    with harness(kind, tmp_path) as h:
        monkeypatch.setenv("PROMOTE_TOKEN", h.token)
        base = h.bare.resolve("main") or ""
        write = {"github": r"/graphql#PromoterCommit$", "gitea": r"/contents$",
                 "azure": r"/pushes$", "bitbucket": r"/src$"}.get(
            kind, r"/repository/commits$")
        h.fail("POST", write, 502, times=1000, headers={"Retry-After": "0"})
        started = time.monotonic()
        code, out, err = cli(h, capsys, "--retry-timeout", "0.5")
        assert time.monotonic() - started < 5
        assert code == 5
        assert err.startswith("error: ") and "--verbose" not in err
        report = json.loads(out)
        assert report["status"] == "error" and report["exit_code"] == 5
        state = outcome(h)
        assert state.main == base and not state.branches and not state.changes
