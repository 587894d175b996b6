"""Promotions end to end, the same scenarios on every forge.

GitHub and GitLab are the local fake servers over real HTTP, backed by real bare git
repos; plain git is a real bare repo. Scenarios drive the real CLI (exit codes, JSON)
or ``promote.run`` when they need a fake clock (freeze windows, waiting for checks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from promoter import context, promote
from promoter.forges.base import Forge
from promoter.images import parse
from tests.harness import (
    SLUG,
    AzureHarness,
    BitbucketHarness,
    CIOnPush,
    GiteaHarness,
    GitHubHarness,
    GitLabHarness,
    Harness,
    cli,
    harness,
)

__all__ = ["CONFIG", "Harness", "_harness", "cli", "deploy"]  # test_trust_policy

TOKEN = "e2e-secret-token-7f3a9c"
CONFIG = b"""\
version: 1
defaults:
  wait_for_checks: false
environments:
  dev: {paths: ["envs/dev/**"], auto_merge: true}
  staging:
    paths: ["envs/staging/**"]
    auto_merge: true
    require_upstream: dev
    wait_for_checks: true
  prod:
    paths: ["envs/prod/**"]
    require_upstream: staging
    reviewers: [sre-lead]
    labels: [prod]
    freeze:
      - {days: [fri, sat, sun], from: "15:00", to: "23:59", tz: Europe/Berlin}
"""


def deploy(tag: str) -> bytes:
    return f"""\
# the api
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api}}
spec:
  template:
    spec:
      containers:
      - name: api
        image: "ghcr.io/acme/api:{tag}"   # promoted by CI
""".encode()


FILES = {
    ".promoter.yaml": CONFIG,
    "envs/dev/deploy.yaml": deploy("1.0.0"),
    "envs/staging/deploy.yaml": deploy("1.0.0"),
    "envs/prod/deploy.yaml": deploy("1.0.0"),
    "README.md": b"config repo\n",
}


def _harness(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROMOTE_TOKEN", TOKEN)
    # Azure as ORG/PROJECT/REPO against the server root (the hostile tests use the
    # organisation URL)
    with harness(kind, tmp_path, FILES, token=TOKEN, azure_org_url=False) as h:
        yield h


@pytest.fixture(params=["git", "github", "gitlab", "gitea", "azure", "bitbucket"])
def h(request: pytest.FixtureRequest, tmp_path: Path,
      monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    yield from _harness(request.param, tmp_path, monkeypatch)


@pytest.fixture(params=["github", "gitlab", "gitea", "azure", "bitbucket"])
def api(request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    """The forges that have checks (plain git has none)."""
    yield from _harness(request.param, tmp_path, monkeypatch)


FRIDAY_EVENING = datetime(2026, 11, 27, 16, 30, tzinfo=timezone.utc)  # 17:30 in Berlin
TUESDAY = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)


def run_direct(h: Harness, now: datetime, *images: str, env: str,
               sleep: Callable[[float], None] = lambda _: None, ci: bool = False,
               **kw: Any) -> dict[str, Any]:
    request = promote.Request(images=tuple(parse(i) for i in images), env=env, **kw)
    ticks = iter(range(10_000))
    effects = promote.Effects(now=lambda: now, sleep=sleep, monotonic=lambda: next(ticks) * 1.0)
    ctx = context.detect({})
    forge: Any = CIOnPush(h.forge(), h) if ci else h.forge()
    return promote.run(forge, request, context.provenance_dict(ctx), context.trailers(ctx),
                       effects).to_json()


# --- issue: forges ------------------------------------------------------------------------


def test_open_rerun_update_and_noop(h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    code, first = cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.0.1",
                      "--require-merge")
    assert code == 4  # prod never auto-merges: demanded merge refused, request left open
    code, first = cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.0.1")
    assert code == 0
    assert first["status"] == "proposed"
    assert first["branch"] == "promote/prod/api"
    [opened] = h.open_requests()
    assert opened.branch == "promote/prod/api"
    sha = h.branch("promote/prod/api")
    assert sha == first["commit"]
    # the branch holds exactly the edit, on top of main
    branch_file = h.bare.read_file(sha or "", "envs/prod/deploy.yaml")
    assert branch_file == deploy("1.0.1")
    assert h.bare.log(sha or "", 2)[1]["sha"] == h.bare.resolve("main")
    if h.kind != "git":
        assert '-        image: "ghcr.io/acme/api:1.0.0"   # promoted by CI' in opened.body
        assert "prod" in opened.labels or h.kind == "bitbucket"  # no labels there
        assert opened.reviewers == ["sre-lead"]

    # re-run: same branch tip, one request, no new commit
    code, again = cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.0.1")
    assert code == 0
    assert again["commit"] == first["commit"]
    assert again["pull_request"]["created"] is False
    assert again["pull_request"]["updated"] is False
    assert len(h.open_requests()) == 1

    # a newer tag updates the same request
    code, newer = cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.0.2")
    assert code == 0
    [updated] = h.open_requests()
    assert updated.number == opened.number
    assert newer["pull_request"]["updated"] is True
    assert h.bare.read_file(h.branch("promote/prod/api") or "", "envs/prod/deploy.yaml") == \
        deploy("1.0.2")
    if h.kind != "git":
        assert "1.0.2" in updated.title

    # promoting something lower than the open proposal leaves that proposal alone
    code, lower = cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.0.0")
    assert code == 0
    assert lower["status"] == "up-to-date"
    assert len(h.open_requests()) == 1

    # main gets 1.0.2 some other way: the open request is now pointless, and promoting
    # what main already runs opens nothing and closes it, saying why
    h.bare.commit_files("main", {"envs/prod/deploy.yaml": deploy("1.0.2")}, "hotfix by hand")
    code, noop = cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.0.2")
    assert code == 0
    assert noop["status"] == "up-to-date"
    assert noop["closed_pull_request"]["number"] == updated.number
    assert h.open_requests() == []
    if isinstance(h, GitHubHarness):
        assert any("already sets" in c for c in h.fake.comments(SLUG, updated.number))
    if isinstance(h, GitLabHarness):
        assert any("already sets" in n for n in h.fake.notes(SLUG, updated.number))
    if isinstance(h, (GiteaHarness, BitbucketHarness)):
        assert any("already sets" in c for c in h.fake.repo(SLUG).pulls[updated.number].comments)
    if isinstance(h, AzureHarness):
        assert any("already sets" in c["content"] for t in h.repo.pulls[updated.number].threads
                   for c in t["comments"])
    assert h.branch("promote/prod/api") is None


def test_base_moved_underneath(h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    code, first = cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.0.1")
    assert code == 0
    h.bare.commit_files("main", {"README.md": b"someone else\n"}, "docs: someone else")
    code, second = cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.0.1")
    assert code == 0
    tip = h.branch("promote/prod/api") or ""
    assert second["commit"] == tip != first["commit"]
    assert second["pull_request"]["created"] is False
    assert h.bare.log(tip, 2)[1]["sha"] == h.bare.resolve("main")  # rebuilt on the new base
    assert h.bare.read_file(tip, "README.md") == b"someone else\n"  # nothing lost
    assert len(h.open_requests()) == 1


def test_dev_auto_merges(h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    code, result = cli(h, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:1.1.0",
                       "--require-merge")
    assert code == 0, result
    assert result["merged"] is True
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.1.0")
    assert h.main_file("envs/prod/deploy.yaml") == deploy("1.0.0")
    assert h.open_requests() == []


def test_major_bump_is_left_open(h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    code, result = cli(h, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:2.0.0")
    assert code == 0
    assert result["merged"] is False
    checks = {c["name"]: c["status"] for c in result["policy"]["checks"]}
    assert checks["semver_bump"] == "fail"
    assert len(h.open_requests()) == 1
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.0.0")


def test_downgrade_is_refused(h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    code, result = cli(h, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:0.9.0")
    assert code == 0
    assert result["status"] == "refused"
    assert result["policy"]["refused"] is True
    code, result = cli(h, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:0.9.0",
                       "--require-merge")
    assert code == 4
    assert h.open_requests() == []
    assert h.branch("promote/dev/api") is None


def test_require_upstream(h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    code, result = cli(h, capsys, "--env", "staging", "--image", "ghcr.io/acme/api:1.1.0")
    assert code == 0
    checks = {c["name"]: c["status"] for c in result["policy"]["checks"]}
    assert checks["require_upstream"] == "fail"
    assert result["merged"] is False
    assert cli(h, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:1.1.0")[0] == 0
    code, result = cli(h, capsys, "--env", "staging", "--from", "dev",
                       "--image", "ghcr.io/acme/api")
    assert code == 0
    assert result["images"] == ["ghcr.io/acme/api:1.1.0"]
    checks = {c["name"]: c["status"] for c in result["policy"]["checks"]}
    assert checks["require_upstream"] == "pass"


def test_staging_merges_only_after_checks_are_green(h: Harness) -> None:
    run_direct(h, TUESDAY, "ghcr.io/acme/api:1.1.0", env="dev")
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.1.0")
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the checks finish while promote waits
        slept.append(seconds)
        h.set_checks(h.branch("promote/staging/api") or "", "success")

    result = run_direct(h, TUESDAY, "ghcr.io/acme/api:1.1.0", env="staging", sleep=sleep,
                        merge_timeout=60.0, ci=True)
    assert result["merged"] is True
    assert h.main_file("envs/staging/deploy.yaml") == deploy("1.1.0")
    checks = {c["name"]: c["status"] for c in result["policy"]["checks"]}
    assert checks["checks_green"] == "pass"
    if h.kind != "git":
        assert slept  # it waited for the pending checks


def test_pending_checks_wait_then_merge(api: Harness) -> None:
    h = api
    run_direct(h, TUESDAY, "ghcr.io/acme/api:1.1.0", env="dev")
    seen: list[str] = []

    def sleep(_: float) -> None:
        sha = h.branch("promote/staging/api") or ""
        seen.append(sha)
        h.set_checks(sha, "pending" if len(seen) < 2 else "success")

    result = run_direct(h, TUESDAY, "ghcr.io/acme/api:1.1.0", env="staging", sleep=sleep,
                        merge_timeout=60.0, ci=True)
    assert result["merged"] is True
    assert len(seen) >= 2  # it did wait
    assert h.main_file("envs/staging/deploy.yaml") == deploy("1.1.0")


def test_failed_checks_do_not_merge(api: Harness) -> None:
    h = api
    run_direct(h, TUESDAY, "ghcr.io/acme/api:1.1.0", env="dev")

    def sleep(_: float) -> None:
        h.set_checks(h.branch("promote/staging/api") or "", "failure")

    result = run_direct(h, TUESDAY, "ghcr.io/acme/api:1.1.0", env="staging", sleep=sleep,
                        merge_timeout=60.0, ci=True)
    assert result["merged"] is False
    assert result["auto_merge"] is False
    checks = {c["name"]: c["status"] for c in result["policy"]["checks"]}
    assert checks["checks_green"] == "fail"
    assert h.main_file("envs/staging/deploy.yaml") == deploy("1.0.0")


def test_freeze_window(h: Harness) -> None:
    # a freeze config for dev, read from the base branch
    h.bare.commit_files("main", {".promoter.yaml": CONFIG.replace(
        b'dev: {paths: ["envs/dev/**"], auto_merge: true}',
        b'dev:\n    paths: ["envs/dev/**"]\n    auto_merge: true\n    freeze:\n'
        b'      - {days: [fri], from: "15:00", to: "23:59", tz: Europe/Berlin}')}, "freeze dev")
    frozen = run_direct(h, FRIDAY_EVENING, "ghcr.io/acme/api:1.1.0", env="dev")
    assert frozen["merged"] is False
    assert {c["name"]: c["status"] for c in frozen["policy"]["checks"]}["freeze"] == "fail"
    thawed = run_direct(h, datetime(2026, 11, 27, 13, 0, tzinfo=timezone.utc),
                        "ghcr.io/acme/api:1.1.0", env="dev")
    assert thawed["merged"] is True
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.1.0")


def test_history_and_rollback(h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(h, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:1.1.0")[0] == 0
    assert cli(h, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:1.2.0")[0] == 0
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.2.0")
    code, hist = cli(h, capsys, "--history", "--env", "dev", "--image", "ghcr.io/acme/api")
    assert code == 0
    assert [e["images"] for e in hist["history"]] == [["ghcr.io/acme/api:1.2.0"],
                                                      ["ghcr.io/acme/api:1.1.0"]]
    assert hist["history"][0]["previous"] == ["ghcr.io/acme/api:1.1.0"]
    code, back = cli(h, capsys, "--rollback", "--env", "dev", "--image", "ghcr.io/acme/api")
    assert code == 0, back
    assert back["images"] == ["ghcr.io/acme/api:1.1.0"]
    assert back["branch"] == "promote/dev/api"
    # the rollback is proposed (dev auto-merges, so it lands), then the guard holds 1.2.0
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.1.0")
    code, again = cli(h, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:1.2.0")
    assert code == 0
    assert again["merged"] is False
    assert {c["name"]: c["status"] for c in again["policy"]["checks"]}["rollback_guard"] == \
        "fail"


class HotfixAfterCommit(CIOnPush):
    """Someone lands a conflicting hotfix on main right after promoter's first commit."""

    def __init__(self, forge: Forge, h: Harness) -> None:
        super().__init__(forge, h)
        self.done = False

    def write_commit(self, *args: Any, **kwargs: Any) -> str:
        sha = self.inner.write_commit(*args, **kwargs)
        if not self.done:
            self.done = True
            self.h.bare.commit_files("main", {"envs/dev/deploy.yaml": deploy("1.0.5")},
                                     "hotfix: 1.0.5")
        return sha


def test_merge_that_lost_a_race_is_redone_on_the_new_base(h: Harness) -> None:
    request = promote.Request(images=(parse("ghcr.io/acme/api:1.1.0"),), env="dev")
    effects = promote.Effects(now=lambda: TUESDAY, sleep=lambda _: None)
    forge: Any = HotfixAfterCommit(h.forge(), h)
    result = promote.run(forge, request, {}, [], effects).to_json()
    assert result["merged"] is True
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.1.0")
    # the hotfix is in history, under the promotion: nothing was forced over it
    messages = [c["message"] for c in h.bare.log("main", 10)]
    assert any(m.startswith("hotfix: 1.0.5") for m in messages)
    assert result["changes"][0]["old"] == "ghcr.io/acme/api:1.0.5"


def test_a_lower_version_never_replaces_a_higher_proposal(
        h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.0.10")[0] == 0
    tip = h.branch("promote/prod/api")
    code, late = cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.0.9")
    assert code == 0
    assert late["status"] == "superseded"
    assert "ghcr.io/acme/api:1.0.10" in late["message"]
    assert h.branch("promote/prod/api") == tip  # untouched
    code, _ = cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.0.9",
                  "--require-merge")
    assert code == 4


def test_dry_run_through_a_forge_writes_nothing(h: Harness,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    before = dict(h.bare.list_refs("refs/"))
    code, result = cli(h, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:1.1.0",
                       "--dry-run")
    assert code == 0
    assert result["status"] == "dry-run"
    assert result["branch"] == "promote/dev/api"
    assert [(c["file"], c["new"]) for c in result["changes"]] == [
        ("envs/dev/deploy.yaml", "ghcr.io/acme/api:1.1.0")]
    assert '+        image: "ghcr.io/acme/api:1.1.0"   # promoted by CI' in result["diff"]
    assert dict(h.bare.list_refs("refs/")) == before
    assert h.open_requests() == []
    if isinstance(h, (GitHubHarness, GitLabHarness, GiteaHarness, AzureHarness,
                      BitbucketHarness)):
        # the run query is a POST to /graphql that reads, and so is Azure's blob zip;
        # nothing else may be sent
        writes = h.fake.count("POST") - h.fake.count("POST", r"/graphql#PromoterRun$") \
            - h.fake.count("POST", r"/blobs$")
        assert writes + h.fake.count("PUT") + h.fake.count("PATCH") == 0


def test_request_body_is_cut_at_the_forge_s_own_limit(
        api: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    """The body is built for the forge in use: GitLab takes a million characters, so a
    diff longer than GitHub's 65,536 reaches the merge request whole; GitHub and Gitea
    get it cut, with a note saying so."""
    values = "".join(f'svc{i:04d}:\n  image: "ghcr.io/acme/api:1.0.0"\n' for i in range(1500))
    api.bare.commit_files("main", {"envs/prod/values.yaml": values.encode()}, "many services")
    code, result = cli(api, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.0.1")
    assert code == 0, result
    assert len(result["diff"]) > 70_000
    [opened] = api.open_requests()
    limit = {"github": 65_536, "gitlab": 1_000_000, "gitea": 65_000, "azure": 4_000,
             "bitbucket": 65_000}[api.kind]
    assert len(opened.body) <= limit
    if api.kind == "gitlab":
        assert result["diff"] in opened.body
        assert "truncated" not in opened.body
    else:
        assert result["diff"] not in opened.body
        assert "truncated" in opened.body or "was cut" in opened.body


@pytest.mark.parametrize("base", ["main..x", "-main", "main:x", "ma in"])
def test_every_forge_refuses_a_bad_branch_name_before_sending_anything(
        api: Harness, capsys: pytest.CaptureFixture[str], base: str) -> None:
    code, result = cli(api, capsys, "--base", base, "--env", "prod",
                       "--image", "ghcr.io/acme/api:1.0.1")
    assert code == 2, result
    assert "not a valid branch name" in result["error"]
    assert api.fake.count() == 0  # type: ignore[attr-defined]


def test_auto_merge_switched_off_leaves_the_request_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """GitHub refuses auto-merge (switched off in the repository): the request stays
    open with the reason, and the run is not mistaken for one that lost a race with the
    base (its reason names "the base branch"; the forge says whether it conflicts)."""
    for h in _harness("github", tmp_path, monkeypatch):
        assert isinstance(h, GitHubHarness)
        h.fake.repos[SLUG].allow_auto_merge = False
        code, result = cli(h, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:1.0.1")
        assert (code, result["status"]) == (0, "merged")
        code, result = cli(h, capsys, "--env", "staging", "--image", "ghcr.io/acme/api:1.0.1")
        assert code == 0, result
        assert result["status"] == "proposed"
        assert "allow auto-merge" in result["message"]
        assert [o.branch for o in h.open_requests()] == ["promote/staging/api"]
