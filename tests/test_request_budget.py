"""The request budget of whole promotions, asserted exactly (counts are deterministic).

Through ``promote.run`` against the fake forges: a new request with a label and
auto-merge, a re-run while it is open (auto-merge already on), and a re-run after it
was merged. The config repo's CI reports a pending check on every commit promoter
writes (set at the Forge protocol level), so auto-merge is enabled, not merged at once.
A regression in any forge step shows here as a changed list of requests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from promoter import promote
from promoter.images import parse
from tests.hostile.forges import SLUG, Harness, harness

CONFIG = b"""\
version: 1
defaults:
  auto_merge: true
  wait_for_checks: true
  merge_method: squash
  labels: [promotion]
"""


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


class PendingCI:
    """The config repo's CI: every commit promoter writes gets a pending check."""

    def __init__(self, inner: Any, h: Harness) -> None:
        self.inner = inner
        self.h = h
        self.name = inner.name

    def write_commit(self, *args: Any, **kwargs: Any) -> str:
        sha: str = self.inner.write_commit(*args, **kwargs)
        checks(self.h, sha, "pending")
        return sha

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def checks(h: Harness, sha: str, state: str) -> None:
    if h.kind == "github":
        h.fake.set_checks(SLUG, sha, state)  # type: ignore[attr-defined]
    else:
        h.fake.set_pipeline(sha, "running" if state == "pending" else state,  # type: ignore[attr-defined]
                            project=SLUG)


def calls(h: Harness) -> list[str]:
    """The requests since the last reset, as readable shapes."""
    out = []
    for method, path, _ in h.requests():
        path = re.sub(r"[0-9a-f]{40}", "{sha}", path)
        path = re.sub(r"^/api/v4/projects/acme%2Fconfig", "{p}", path)
        path = re.sub(r"^/repos/acme/config", "{r}", path)
        out.append(f"{method} {re.sub(r'/[0-9]+(?=/|$)', '/{n}', path)}")
    return out


def run(h: Harness, tag: str, base: str | None = "main") -> dict[str, Any]:
    h.reset_counts()
    forge = h.forge()
    request = promote.Request(images=(parse(f"ghcr.io/acme/api:{tag}"),), base=base)
    try:
        return promote.run(PendingCI(forge, h), request, {}, [],
                           promote.Effects(now=lambda: datetime.now(timezone.utc))).to_json()
    finally:
        forge.close()  # type: ignore[attr-defined]


def _harness(kind: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(kind, tmp_path, CONFIG) as made:
        if made.kind == "github":  # the repository has its label (GraphQL needs its id)
            made.fake.repos[SLUG].labels["promotion"] = 7  # type: ignore[attr-defined]
        yield made


@pytest.fixture(params=["github", "gitlab"])
def h(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    yield from _harness(request.param, tmp_path)


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[Harness]:
    yield from _harness("github", tmp_path)


NEW = {
    "github": ["POST /graphql#PromoterRun", "GET {r}/tarball/{sha}",
               "GET /_codeload/acme/config/legacy.tar.gz/{sha}",
               "POST /graphql#PromoterCommit", "POST {r}/pulls",
               "POST /graphql#PromoterAutoMerge"],
    "gitlab": ["GET {p}/repository/archive.tar.gz", "GET {p}/repository/tree",
               "POST {p}/repository/commits",
               "POST {p}/merge_requests",
               # is the base still where the snapshot saw it? (GitHub's answer to the
               # PR's creation says; GitLab's does not reliably)
               "GET {p}/repository/branches/main",
               "PUT {p}/merge_requests/{n}/merge"],
}
RERUN = {  # the request is open with auto-merge on: prove the branch, touch nothing
    "github": ["POST /graphql#PromoterRun", "GET {r}/tarball/{sha}",
               "GET /_codeload/acme/config/legacy.tar.gz/{sha}", "GET {r}/commits/{sha}"],
    "gitlab": ["GET {p}/repository/archive.tar.gz", "GET {p}/repository/tree",
               "POST {p}/repository/commits",
               "GET {p}/repository/branches/promote%2Fall%2Fapi",
               "GET {p}/repository/commits/{sha}", "GET {p}/repository/commits/{sha}/diff",
               "GET {p}/repository/files/envs%2Fdev%2Fdeploy.yaml/raw",
               "GET {p}/repository/files/envs%2Fprod%2Fdeploy.yaml/raw",
               "GET {p}/merge_requests"],  # GitLab's diff has no blob ids: N raw reads
}
MERGED = {
    "github": ["POST /graphql#PromoterRun", "GET {r}/tarball/{sha}",
               "GET /_codeload/acme/config/legacy.tar.gz/{sha}"],
    "gitlab": ["GET {p}/repository/archive.tar.gz", "GET {p}/repository/tree",
               "GET {p}/merge_requests"],
}


def test_new_request_rerun_and_merged_cost_exactly(h: Harness) -> None:
    """GitHub 6 / 4 / 3, GitLab 6 / 9 / 3 (with --base; GitLab reads the root tree for
    the policy file and the base before merging a new request, its re-run proves the
    branch by reading each changed file, and tries the write first)."""
    first = run(h, "1.0.1")
    assert (first["status"], first["auto_merge"]) == ("auto-merge", True), first
    assert calls(h) == NEW[h.kind]
    assert first["verified"] is (True if h.kind == "github" else None)

    again = run(h, "1.0.1")
    assert (again["status"], again["auto_merge"]) == ("auto-merge", True), again
    assert again["commit"] == first["commit"]
    assert calls(h) == RERUN[h.kind]

    checks(h, first["commit"], "success")  # the forge's auto-merge merges it
    assert [c.state for c in h.changes()] == ["merged"]
    done = run(h, "1.0.1")
    assert done["status"] == "up-to-date", done
    assert calls(h) == MERGED[h.kind]


def test_the_default_branch_costs_gitlab_one_request_more(h: Harness) -> None:
    run(h, "1.0.1", base=None)
    extra = [] if h.kind == "github" else ["GET {p}"]  # GitHub: in the run query
    assert calls(h) == extra + NEW[h.kind]


def test_github_labels_ride_with_auto_merge(gh: Harness) -> None:
    h = gh
    run(h, "1.0.1")
    pull = h.fake.pulls(SLUG)[0]  # type: ignore[attr-defined]
    assert pull.labels == ["promotion"]
    assert pull.auto_merge is not None and pull.auto_merge["merge_method"] == "squash"
    assert h.fake.pull(SLUG, pull.number)["head"]["sha"] in h.fake.signed  # type: ignore[attr-defined]


def test_a_label_the_repository_lacks_costs_one_rest_call(gh: Harness) -> None:
    h = gh
    h.fake.repos[SLUG].labels.clear()  # type: ignore[attr-defined]
    run(h, "1.0.1")
    want = list(NEW["github"])
    want.insert(5, "POST {r}/issues/{n}/labels")  # REST creates the label as it adds it
    assert calls(h) == want
    assert h.fake.pulls(SLUG)[0].labels == ["promotion"]  # type: ignore[attr-defined]


def armed_message(h: Harness) -> str:
    """The message the forge's auto-merge will write, as the fake holds it."""
    if h.kind == "github":
        pull = h.fake.pulls(SLUG)[0]  # type: ignore[attr-defined]
        return str((pull.auto_merge or {}).get("commit_title"))
    project = h.fake.project(SLUG)  # type: ignore[attr-defined]
    return str(next(iter(project.merge_requests.values())).merge_message)


def test_an_updated_request_rearms_auto_merge_with_the_new_message(h: Harness) -> None:
    run(h, "1.0.1")
    assert "1.0.1" in armed_message(h)
    second = run(h, "1.0.2")  # a new commit on the same branch, the request updated
    assert second["status"] == "auto-merge" and second["pull_request"]["updated"], second
    assert any(c in calls(h) for c in ("POST /graphql#PromoterAutoMerge",
                                       "PUT {p}/merge_requests/{n}/merge"))
    assert "1.0.2" in armed_message(h)


def test_gitlab_reads_the_branch_first_when_the_change_is_big(tmp_path: Path) -> None:
    """Writing first would send the files' bytes on every re-run only to be refused: over
    WRITE_FIRST_BYTES the branch is read first (one GET) instead."""
    from promoter.forges.gitlab import WRITE_FIRST_BYTES

    filler = b"".join(b"  key%05d: value\n" % i for i in range(WRITE_FIRST_BYTES // 16))
    big_values = b"image: ghcr.io/acme/api:1.0.0\nsettings:\n" + filler
    with harness("gitlab", tmp_path, CONFIG, extra={"envs/prod/values.yaml": big_values}) as h:
        run(h, "1.0.1")
        assert calls(h)[:4] == ["GET {p}/repository/archive.tar.gz", "GET {p}/repository/tree",
                                "GET {p}/repository/branches/promote%2Fall%2Fapi",
                                "POST {p}/repository/commits"]
        again = run(h, "1.0.1")
        assert again["status"] == "auto-merge", again
        assert "POST {p}/repository/commits" not in calls(h)  # no bytes sent to be refused
