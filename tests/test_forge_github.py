"""The GitHub forge through real HTTP to the fake GitHub (tests/fakes/github.py), whose
commits and refs live in real bare git repos: what the forge writes is checked with git."""

from __future__ import annotations

import email.utils
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from promoter import redact
from promoter.errors import AuthError, ConflictError, ForgeError, UsageError
from promoter.forges.base import ChecksState, Forge, Head, RequestSpec, Snapshot
from promoter.forges.github import MAX_BODY, TRUNCATED_NOTE, GitHubForge, cap_body
from promoter.identity import Identity
from tests.fakes.github import FakeGitHub
from tests.fakes.gitrepo import BareRepo

TOKEN = "ghp_fake0token0for0tests0x7k2"  # must never appear in a message
READ_TOKEN = "ghp_read0only0token0for0tests0q9"
SLUG = "acme/config"
SEED: dict[str, bytes] = {
    "README.md": b"# config\n",
    "envs/dev/deploy.yaml": b"kind: Deployment\nimage: ghcr.io/acme/api:1.0.0\n",
    "envs/prod/deploy.yaml": b"kind: Deployment\r\nimage: ghcr.io/acme/api:0.9.0\r\n",
    "envs/prod/values.yaml": b"\xef\xbb\xbfreplicas: 3  \n",
    "deep/a/b/c/d.yaml": b"x: 1\n",
    "bin/logo.png": bytes(range(256)) * 4,
}
SPEC = RequestSpec(title="Promote api to 1.1.0", body="the diff", labels=("promotion",),
                   reviewers=("sre-lead",), assignees=("ops",))


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(key)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(tmp_path) as gh:
        gh.add_token(TOKEN, "write")
        gh.add_token(READ_TOKEN, "read")
        repo = gh.create_repo(SLUG, SEED)
        script = repo.bare.write_blob(b"#!/bin/sh\necho hi\n")
        repo.bare.update_ref("main", repo.bare.commit_tree(
            repo.bare.write_tree_entries(repo.bare.resolve("main"),
                                         {"scripts/run.sh": ("100755", script)}),
            [repo.bare.resolve("main") or ""], "add a script"))
        yield gh


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def forge(fake: FakeGitHub, sleeps: list[float]) -> Iterator[GitHubForge]:
    with GitHubForge(SLUG, api_url=fake.url, token=TOKEN, sleep=sleeps.append) as f:
        yield f


def bare(fake: FakeGitHub, slug: str = SLUG) -> BareRepo:
    return fake.repos[slug].bare


def git_log(repo: BareRepo, ref: str) -> list[str]:
    """``git log --format=%H`` of the bare repo, the ground truth."""
    return repo.git("log", "--format=%H", ref).stdout.decode().split()


def promote(forge: GitHubForge, branch: str = "promote/dev/api",
            files: dict[str, bytes] | None = None) -> tuple[Snapshot, str]:
    snap = forge.snapshot("main")
    changes = files or {"envs/dev/deploy.yaml":
                        b"kind: Deployment\nimage: ghcr.io/acme/api:1.1.0\n"}
    sha = forge.write_commit(branch, snap, changes, "Promote api to 1.1.0", replace=None)
    return snap, sha


EXECUTABLE = {"scripts/run.sh": b"#!/bin/sh\necho 2\n"}  # takes the Git Data API


def test_the_forge_satisfies_the_protocol(forge: GitHubForge) -> None:
    implementation: Forge = forge
    assert implementation.name == "github"


# --- snapshot -------------------------------------------------------------------------------


def test_snapshot_returns_every_file_byte_for_byte(fake: FakeGitHub,
                                                   forge: GitHubForge) -> None:
    snap = forge.snapshot("main")
    assert snap.branch == "main"
    assert snap.commit == bare(fake).resolve("main")
    assert dict(snap.files) == {**SEED, "scripts/run.sh": b"#!/bin/sh\necho hi\n"}
    # one GraphQL query (tip, tree, the root tree's entries: is .promoter.yaml there, as
    # which blob?), the tarball link, the archive: never one request per file
    assert [(r.method, r.path, r.status) for r in fake.requests] == [
        ("POST", "/graphql#PromoterRun", 200),
        ("GET", f"/repos/{SLUG}/tarball/{snap.commit}", 302),
        ("GET", f"/_codeload/{SLUG}/legacy.tar.gz/{snap.commit}", 200)]
    assert fake.count("GET", r"/git/trees/") == 0


def test_snapshot_of_the_default_branch(fake: FakeGitHub, tmp_path: Path) -> None:
    fake.create_repo("acme/trunk", {"a.yaml": b"a: 1\n"}, default_branch="trunk")
    with GitHubForge("acme/trunk", api_url=fake.url, token=TOKEN) as forge:
        snap = forge.snapshot(None)
    assert (snap.branch, dict(snap.files)) == ("trunk", {"a.yaml": b"a: 1\n"})
    assert fake.count() == 3  # the default branch comes with the same query


def test_snapshot_skips_symlinks_and_huge_files(fake: FakeGitHub, forge: GitHubForge) -> None:
    repo = bare(fake)
    tip = repo.resolve("main") or ""
    tree = repo.write_tree_entries(tip, {
        "link-out": ("120000", repo.write_blob(b"../../../etc/passwd")),
        "envs/link-in": ("120000", repo.write_blob(b"dev/deploy.yaml")),
        "huge.bin": ("100644", repo.write_blob(b"\0" * (10 * 1024 * 1024 + 1))),
    })
    repo.update_ref("main", repo.commit_tree(tree, [tip], "links"), old=tip)
    files = forge.snapshot("main").files
    assert "link-out" not in files
    assert "envs/link-in" not in files
    assert "huge.bin" not in files
    assert files["envs/dev/deploy.yaml"] == SEED["envs/dev/deploy.yaml"]


# --- commits and branches -------------------------------------------------------------------


def test_write_commit_makes_one_atomic_commit(fake: FakeGitHub, forge: GitHubForge) -> None:
    repo = bare(fake)
    snap = forge.snapshot("main")
    changes = {
        "envs/dev/deploy.yaml": b"kind: Deployment\nimage: ghcr.io/acme/api:1.1.0\n",
        "envs/prod/deploy.yaml": b"kind: Deployment\r\nimage: ghcr.io/acme/api:1.1.0\r\n",
        "envs/new/deep/values.yaml": b"\xef\xbb\xbftag: 1.1.0\n",
        "scripts/run.sh": b"#!/bin/sh\necho changed\n",
        "bin/other.png": b"\x89PNG\r\n\x1a\n\xff\xfe",
    }
    fake.reset_counts()
    sha = forge.write_commit("promote/dev/api", snap, changes, "Promote api\n\nbody\n",
                             replace=None)
    assert git_log(repo, "promote/dev/api") == [sha, *git_log(repo, "main")]
    info = repo.commit(sha)
    assert info is not None
    assert info["parents"] == [snap.commit]
    assert info["message"] == "Promote api\n\nbody"
    for path, content in changes.items():
        assert repo.read_file(sha, path) == content
    for path in ("README.md", "envs/prod/values.yaml", "deep/a/b/c/d.yaml", "bin/logo.png"):
        assert repo.read_file(sha, path) == SEED[path]
    tree = repo.read_tree(sha)
    assert tree["scripts/run.sh"][0] == "100755"  # the mode survives an edit
    assert len(tree) == len(SEED) + 3
    assert repo.resolve("main") == snap.commit  # nothing else moved
    # one blob (binary content), tree, commit, ref: the base tree came with the snapshot
    assert [r.method for r in fake.requests] == ["POST", "POST", "POST", "POST"]


def test_creating_over_someone_elses_branch_is_a_conflict(fake: FakeGitHub,
                                                          forge: GitHubForge) -> None:
    repo = bare(fake)
    theirs = repo.commit_files("promote/dev/api", {"README.md": b"mine\n"}, "by hand")
    with pytest.raises(ConflictError, match="already exists") as err:
        promote(forge)
    assert err.value.code == 5
    assert repo.resolve("promote/dev/api") == theirs


def test_creating_the_same_commit_again_is_accepted(fake: FakeGitHub,
                                                    forge: GitHubForge) -> None:
    snap, first = promote(forge, files=EXECUTABLE)  # the Git Data API
    again = forge.write_commit("promote/dev/api", snap, EXECUTABLE, "Promote api to 1.1.0",
                               replace=None)
    assert again == first  # same tree on the branch already: that run's commit is kept
    assert bare(fake).resolve("promote/dev/api") == first


def test_a_branch_made_by_another_run_meanwhile_is_a_conflict(fake: FakeGitHub,
                                                              forge: GitHubForge) -> None:
    """createRef refuses a branch that is there; promote then plans again (and reuses
    that commit when it proves), never reporting the other run's branch as its own."""
    snap, first = promote(forge)
    with pytest.raises(ConflictError, match="already exists"):
        forge.write_commit("promote/dev/api", snap, {
            "envs/dev/deploy.yaml": b"kind: Deployment\nimage: ghcr.io/acme/api:1.1.0\n"},
            "Promote api to 1.1.0", replace=None)
    assert bare(fake).resolve("promote/dev/api") == first
    assert first in fake.signed


def test_replace_moves_our_own_branch(fake: FakeGitHub, forge: GitHubForge) -> None:
    repo = bare(fake)
    _, first = promote(forge)
    head = forge.read_head("promote/dev/api")
    assert head == Head(first, "Promote api to 1.1.0", (repo.resolve("main"),))
    repo.commit_files("main", {"README.md": b"moved on\n"}, "meanwhile on main")
    snap = forge.snapshot("main")
    fake.reset_counts()
    second = forge.write_commit("promote/dev/api", snap, {"envs/dev/deploy.yaml": b"v2\n"},
                                "Promote api to 1.2.0", replace=head)
    assert git_log(repo, "promote/dev/api") == [second, *git_log(repo, "main")]
    assert repo.read_file(second, "README.md") == b"moved on\n"
    assert [r.method for r in fake.requests] == ["POST", "POST", "GET", "PATCH"]


def test_replace_refuses_when_someone_else_moved_the_branch(fake: FakeGitHub,
                                                            forge: GitHubForge) -> None:
    repo = bare(fake)
    snap, _ = promote(forge)
    head = forge.read_head("promote/dev/api")
    assert head is not None
    theirs = repo.commit_files("promote/dev/api", {"README.md": b"hotfix\n"}, "hotfix")
    with pytest.raises(ConflictError, match="will not force"):
        forge.write_commit("promote/dev/api", snap, {"a.yaml": b"a\n"}, "again", replace=head)
    assert repo.resolve("promote/dev/api") == theirs


def test_read_head_and_delete_branch(fake: FakeGitHub, forge: GitHubForge) -> None:
    assert forge.read_head("promote/none") is None
    _, sha = promote(forge)
    head = forge.read_head("promote/dev/api")
    assert head is not None
    assert head.sha == sha
    forge.delete_branch("promote/dev/api")
    assert bare(fake).resolve("refs/heads/promote/dev/api") is None
    forge.delete_branch("promote/dev/api")  # already gone: fine
    assert fake.count("DELETE", r"/git/refs/heads/promote/dev/api$") == 2


@pytest.mark.parametrize("path", ["../escape.yaml", "/abs.yaml", "a//b.yaml", ".git/config"])
def test_unsafe_paths_are_refused_before_any_request(fake: FakeGitHub, forge: GitHubForge,
                                                     path: str) -> None:
    snap = Snapshot("main", "0" * 40, {})
    with pytest.raises(UsageError):
        forge.write_commit("promote/x", snap, {path: b"x"}, "m", replace=None)
    assert fake.requests == []


@pytest.mark.parametrize("branch", ["has space", "-flag", "a..b", "x.lock", "a~1", ""])
def test_invalid_branch_names_are_refused_before_any_request(fake: FakeGitHub,
                                                             forge: GitHubForge,
                                                             branch: str) -> None:
    with pytest.raises(UsageError, match="not a valid branch name"):
        forge.read_head(branch)
    assert fake.requests == []


# --- pull requests --------------------------------------------------------------------------


def test_open_find_update_close(fake: FakeGitHub, forge: GitHubForge) -> None:
    promote(forge)
    fake.reset_counts()
    pr = forge.open_request("promote/dev/api", "main", SPEC)
    assert [r.method for r in fake.requests] == ["POST", "POST", "POST", "POST"]
    state = fake.pull(SLUG, pr.number)
    assert (state["title"], state["body"], state["state"]) == (SPEC.title, SPEC.body, "open")
    assert [x["name"] for x in state["labels"]] == ["promotion"]
    assert [x["login"] for x in state["requested_reviewers"]] == ["sre-lead"]
    assert [x["login"] for x in state["assignees"]] == ["ops"]
    assert pr.url == state["html_url"]
    assert pr.labels == ("promotion",)

    fake.reset_counts()
    found = forge.find_request("promote/dev/api", "main")
    assert found == pr
    assert fake.count() == 1
    assert forge.find_request("promote/dev/api", "release") is None
    assert forge.find_request("promote/other", "main") is None

    spec = RequestSpec(title="Promote api to 1.2.0", body="new diff",
                       labels=("promotion", "prod"))
    updated = forge.update_request(pr, spec)
    state = fake.pull(SLUG, pr.number)
    assert (state["title"], state["body"]) == ("Promote api to 1.2.0", "new diff")
    assert [x["name"] for x in state["labels"]] == ["promotion", "prod"]
    assert (updated.title, updated.labels) == ("Promote api to 1.2.0", ("promotion", "prod"))

    forge.close_request(updated, "Closed by promoter: nothing left to do.")
    assert fake.pull(SLUG, pr.number)["state"] == "closed"
    assert fake.comments(SLUG, pr.number) == ["Closed by promoter: nothing left to do."]
    assert forge.find_request("promote/dev/api", "main") is None


def test_opening_an_existing_request_updates_it(fake: FakeGitHub, forge: GitHubForge) -> None:
    promote(forge)
    first = forge.open_request("promote/dev/api", "main", SPEC)
    spec = RequestSpec(title="Promote api to 1.2.0", body="newer", labels=("promotion",))
    second = forge.open_request("promote/dev/api", "main", spec)
    assert second.number == first.number
    assert len(fake.pulls(SLUG)) == 1
    assert fake.pull(SLUG, first.number)["title"] == "Promote api to 1.2.0"


def test_a_huge_body_is_cut_with_a_note(fake: FakeGitHub, forge: GitHubForge) -> None:
    promote(forge)
    body = "```diff\n" + "+ image: ghcr.io/acme/api:1.1.0 ✓\n" * 4000
    pr = forge.open_request("promote/dev/api", "main", RequestSpec("t", body))
    stored = fake.pull(SLUG, pr.number)["body"]
    assert stored.endswith(TRUNCATED_NOTE)
    assert len(stored.encode()) <= MAX_BODY
    assert stored.count("```") % 2 == 0  # the fence is closed
    assert cap_body("short") == "short"


# --- checks, merging, auto-merge ------------------------------------------------------------


def test_checks_combine_statuses_and_check_runs(fake: FakeGitHub, forge: GitHubForge) -> None:
    _, sha = promote(forge)
    pr = forge.open_request("promote/dev/api", "main", RequestSpec("t", "b"))
    assert forge.checks(pr, sha) == ChecksState.NONE
    fake.set_checks(SLUG, sha, "pending", name="build")
    assert forge.checks(pr, sha) == ChecksState.PENDING
    fake.set_checks(SLUG, sha, "success", name="build")
    assert forge.checks(pr, sha) == ChecksState.SUCCESS
    fake.set_checks(SLUG, sha, "pending", name="legacy", kind="status")
    assert forge.checks(pr, sha) == ChecksState.PENDING
    fake.set_checks(SLUG, sha, "success", name="legacy", kind="status")
    assert forge.checks(pr, sha) == ChecksState.SUCCESS
    fake.set_checks(SLUG, sha, "neutral", name="lint")
    assert forge.checks(pr, sha) == ChecksState.SUCCESS
    fake.set_checks(SLUG, sha, "timed_out", name="lint")
    assert forge.checks(pr, sha) == ChecksState.FAILURE
    fake.clear_checks(SLUG, sha)
    fake.set_checks(SLUG, sha, "error", name="legacy", kind="status")
    assert forge.checks(pr, sha) == ChecksState.FAILURE
    fake.reset_counts()
    forge.checks(pr, sha)
    assert fake.count() == 2


@pytest.mark.parametrize("method", ["merge", "squash", "rebase"])
def test_merge_makes_real_commits_on_main(fake: FakeGitHub, forge: GitHubForge,
                                          method: str) -> None:
    repo = bare(fake)
    snap, sha = promote(forge)
    pr = forge.open_request("promote/dev/api", "main", RequestSpec("Promote api", "b"))
    fake.reset_counts()
    outcome = forge.merge(pr, method, sha)
    assert fake.count() == 1
    assert outcome.merged
    tip = repo.resolve("main")
    assert outcome.sha == tip
    info = repo.commit(tip or "")
    assert info is not None
    assert repo.read_file(tip or "", "envs/dev/deploy.yaml") == (
        b"kind: Deployment\nimage: ghcr.io/acme/api:1.1.0\n")
    expected_parents = {"merge": [snap.commit, sha], "squash": [snap.commit],
                        "rebase": [snap.commit]}[method]
    assert info["parents"] == expected_parents
    if method == "rebase":
        assert info["message"] == "Promote api to 1.1.0"
    if method == "squash":
        assert info["message"].startswith(f"Promote api (#{pr.number})")
    assert fake.pull(SLUG, pr.number)["merged"] is True


@pytest.mark.parametrize("method", ["merge", "squash"])
def test_the_merge_commit_carries_promoters_message(fake: FakeGitHub, forge: GitHubForge,
                                                    method: str) -> None:
    _, sha = promote(forge)
    pr = forge.open_request("promote/dev/api", "main", RequestSpec("t", "b"))
    message = "Promote api to 1.1.0 (#1)\n\nPromoted-Image: ghcr.io/acme/api:1.1.0"
    outcome = forge.merge(pr, method, sha, message)
    info = bare(fake).commit(outcome.sha or "")
    assert info is not None
    assert info["message"] == message


def test_auto_merge_carries_promoters_message(fake: FakeGitHub, forge: GitHubForge) -> None:
    _, sha = promote(forge)
    pr = forge.open_request("promote/dev/api", "main", RequestSpec("t", "b"))
    fake.set_checks(SLUG, sha, "pending")
    message = "Promote api\n\nPromoted-Image: ghcr.io/acme/api:1.1.0"
    assert forge.enable_auto_merge(pr, "squash", pr.head_sha, message).auto_merge
    fake.set_checks(SLUG, sha, "success")
    info = bare(fake).commit("main")
    assert info is not None
    assert info["message"] == message


def test_merge_guards_against_a_moved_head(fake: FakeGitHub, forge: GitHubForge) -> None:
    _, sha = promote(forge)
    pr = forge.open_request("promote/dev/api", "main", RequestSpec("t", "b"))
    bare(fake).commit_files("promote/dev/api", {"README.md": b"sneaky\n"}, "push")
    with pytest.raises(ConflictError, match="moved"):
        forge.merge(pr, "squash", sha)
    assert fake.pull(SLUG, pr.number)["state"] == "open"


def test_a_merge_conflict_leaves_the_request_open(fake: FakeGitHub,
                                                  forge: GitHubForge) -> None:
    _, sha = promote(forge)
    pr = forge.open_request("promote/dev/api", "main", RequestSpec("t", "b"))
    bare(fake).commit_files("main", {"envs/dev/deploy.yaml": b"image: other:9\n"}, "clash")
    outcome = forge.merge(pr, "merge", sha)
    assert not outcome.merged
    assert "conflicts with the base branch" in outcome.reason
    assert fake.pull(SLUG, pr.number)["state"] == "open"


def test_auto_merge_waits_for_green_checks(fake: FakeGitHub, forge: GitHubForge) -> None:
    repo = bare(fake)
    _, sha = promote(forge)
    pr = forge.open_request("promote/dev/api", "main", RequestSpec("Promote api", "b"))
    fake.set_checks(SLUG, sha, "pending")
    fake.reset_counts()
    outcome = forge.enable_auto_merge(pr, "squash", pr.head_sha)
    assert (outcome.merged, outcome.auto_merge) == (False, True)
    # the forge opened this request, so it knows its node id: the GraphQL call alone
    assert [r.method for r in fake.requests] == ["POST"]
    assert fake.pull(SLUG, pr.number)["auto_merge"]["merge_method"] == "squash"
    assert repo.read_file("main", "envs/dev/deploy.yaml") == SEED["envs/dev/deploy.yaml"]
    fake.set_checks(SLUG, sha, "success")
    state = fake.pull(SLUG, pr.number)
    assert state["merged"] is True
    assert repo.resolve("main") == state["merge_commit_sha"]
    assert repo.read_file("main", "envs/dev/deploy.yaml") == (
        b"kind: Deployment\nimage: ghcr.io/acme/api:1.1.0\n")


def test_auto_merge_on_a_clean_request_merges_at_once(fake: FakeGitHub,
                                                      forge: GitHubForge) -> None:
    _, sha = promote(forge)
    pr = forge.open_request("promote/dev/api", "main", RequestSpec("t", "b"))
    fake.set_checks(SLUG, sha, "success")
    outcome = forge.enable_auto_merge(pr, "merge", pr.head_sha)
    assert outcome.merged
    assert outcome.sha == bare(fake).resolve("main")
    assert fake.count("POST", r"/graphql#PromoterAutoMerge$") == 1
    assert fake.count("PUT", r"/merge$") == 1


def test_auto_merge_guards_against_a_moved_head(fake: FakeGitHub, forge: GitHubForge) -> None:
    _, sha = promote(forge)
    pr = forge.open_request("promote/dev/api", "main", RequestSpec("t", "b"))
    assert pr.head_sha == sha
    moved = bare(fake).commit_files("promote/dev/api", {"README.md": b"sneaky\n"}, "push")
    fake.set_checks(SLUG, moved, "pending")
    with pytest.raises(ConflictError, match="moved"):
        forge.enable_auto_merge(pr, "squash", pr.head_sha)
    fake.set_checks(SLUG, moved, "success")
    with pytest.raises(ConflictError, match="moved"):
        forge.enable_auto_merge(pr, "squash", pr.head_sha)  # green checks change nothing
    state = fake.pull(SLUG, pr.number)
    assert (state["state"], state["auto_merge"]) == ("open", None)


def test_auto_merge_switched_off_in_the_repository(fake: FakeGitHub,
                                                   forge: GitHubForge) -> None:
    fake.repos[SLUG].allow_auto_merge = False
    _, sha = promote(forge)
    pr = forge.open_request("promote/dev/api", "main", RequestSpec("t", "b"))
    fake.set_checks(SLUG, sha, "pending")
    outcome = forge.enable_auto_merge(pr, "squash", pr.head_sha)
    assert (outcome.merged, outcome.auto_merge) == (False, False)
    assert "allow auto-merge" in outcome.reason


def test_log_follows_first_parents(fake: FakeGitHub, forge: GitHubForge) -> None:
    repo = bare(fake)
    _, sha = promote(forge)
    pr = forge.open_request("promote/dev/api", "main", RequestSpec("Promote api", "b"))
    forge.merge(pr, "merge", sha)
    fake.reset_counts()
    entries = forge.log("main", 10)
    # the branch, then its commits from that sha: never by the bare name, which a tag of
    # the same name would win (test_trust_archive: a tag named like the base)
    assert fake.count() == 2
    assert [e.sha for e in entries] == repo.git(
        "log", "--first-parent", "--format=%H", "main").stdout.decode().split()
    assert sha not in [e.sha for e in entries]  # the branch commit is a second parent
    assert entries[0].message.startswith("Merge pull request")
    assert entries[0].author == "promoter-bot"
    assert entries[0].date.endswith("+00:00")
    assert [e.sha for e in forge.log("main", 2)] == [e.sha for e in entries[:2]]


# --- the request budget of a whole promotion ----------------------------------------------


def test_a_typical_promotion_costs_eleven_requests(fake: FakeGitHub,
                                                   forge: GitHubForge) -> None:
    spent = []

    def step() -> int:
        n = len(fake.requests)
        fake.reset_counts()
        return n

    snap = forge.snapshot("main", "promote/dev/api")
    spent.append(step())
    assert forge.read_head("promote/dev/api") is None  # answered by the run query
    spent.append(step())
    sha = forge.write_commit("promote/dev/api", snap, {"envs/dev/deploy.yaml": b"v\n"},
                             "Promote", replace=None)
    spent.append(step())
    pr = forge.open_request("promote/dev/api", "main",
                            RequestSpec("t", "b", labels=("promotion",), reviewers=("sre",)))
    spent.append(step())
    assert forge.checks(pr, sha) == ChecksState.NONE
    spent.append(step())
    assert forge.merge(pr, "squash", sha).merged
    spent.append(step())
    # snapshot: query + tarball + archive; the commit: one mutation (createRef +
    # createCommitOnBranch); checks: none reported, so is the PR blocked?
    assert spent == [3, 0, 1, 3, 3, 1]
    assert fake.count() == 0


# --- retries --------------------------------------------------------------------------------


def test_transient_failures_are_survived_with_one_commit_and_one_request(
        fake: FakeGitHub, forge: GitHubForge, sleeps: list[float]) -> None:
    repo = bare(fake)
    fake.fail("POST", r"/graphql#PromoterRun$", 502, times=3)
    fake.fail("POST", r"/graphql#PromoterCommit$", 429, headers={"Retry-After": "5"})
    when = email.utils.formatdate(time.time() + 9, usegmt=True)
    fake.fail("GET", r"/tarball/", 429, headers={"Retry-After": when})
    fake.fail("POST", r"/pulls$", 403, headers={"Retry-After": "7"})
    fake.fail("GET", r"^/_codeload/", 503, times=2)
    snap, sha = promote(forge)
    pr = forge.open_request("promote/dev/api", "main", SPEC)
    assert git_log(repo, "promote/dev/api") == [sha, *git_log(repo, "main")]
    assert git_log(repo, "main")[0] == snap.commit
    assert len(fake.pulls(SLUG)) == 1
    assert fake.pull(SLUG, pr.number)["head"]["sha"] == sha
    assert len(sleeps) == 3 + 1 + 1 + 1 + 2
    assert any(s >= 5 for s in sleeps)  # the Retry-After in seconds
    assert any(s >= 7 for s in sleeps)  # the secondary rate limit's retry-after
    assert max(sleeps) >= 7.5  # the Retry-After as an HTTP date (~9 s ahead)
    assert all(f.hits == f.times for f in fake.faults)


def test_transient_failures_of_the_git_data_api_are_survived(
        fake: FakeGitHub, forge: GitHubForge, sleeps: list[float]) -> None:
    repo = bare(fake)
    fake.fail("POST", r"/git/trees$", 502, times=3)
    fake.fail("POST", r"/git/commits$", 429, headers={"Retry-After": "5"})
    fake.fail("POST", r"/git/refs$", 503, times=2)
    _, sha = promote(forge, files=EXECUTABLE)
    assert git_log(repo, "promote/dev/api") == [sha, *git_log(repo, "main")]
    assert repo.read_tree(sha)["scripts/run.sh"][0] == "100755"  # the mode is kept
    assert fake.count("POST", r"/graphql#PromoterCommit$") == 0
    assert len(sleeps) == 3 + 1 + 2
    assert all(f.hits == f.times for f in fake.faults)


def test_a_commit_made_before_the_connection_dropped_is_not_made_twice(
        fake: FakeGitHub, forge: GitHubForge) -> None:
    fake.fail("POST", r"/graphql#PromoterCommit$", apply_then_fail=True, drop=True)
    snap, sha = promote(forge)
    repo = bare(fake)
    assert repo.resolve("promote/dev/api") == sha
    assert git_log(repo, "promote/dev/api") == [sha, snap.commit, *git_log(repo, "main")[1:]]
    assert fake.count("POST", r"/graphql#PromoterCommit$") == 1  # looked, then stopped
    assert fake.count("GET", r"/git/ref/heads/promote/dev/api$") == 1


def test_a_commit_mutation_reset_before_it_ran_is_sent_again(fake: FakeGitHub,
                                                             forge: GitHubForge) -> None:
    fake.fail("POST", r"/graphql#PromoterCommit$", reset_before=True, times=2)
    _, sha = promote(forge)
    assert bare(fake).resolve("promote/dev/api") == sha
    assert fake.count("POST", r"/graphql#PromoterCommit$") == 3
    assert sha in fake.signed


def test_a_ref_created_before_the_connection_dropped_is_not_created_twice(
        fake: FakeGitHub, forge: GitHubForge) -> None:
    fake.fail("POST", r"/git/refs$", apply_then_fail=True, drop=True)
    _, sha = promote(forge, files=EXECUTABLE)
    assert bare(fake).resolve("promote/dev/api") == sha
    assert fake.count("POST", r"/git/refs$") == 1  # the retry looked first, then stopped
    assert fake.count("GET", r"/git/ref/heads/promote/dev/api$") == 1


def test_a_pull_request_opened_before_a_502_is_not_opened_twice(
        fake: FakeGitHub, forge: GitHubForge) -> None:
    promote(forge)
    fake.fail("POST", r"/pulls$", 502, apply_then_fail=True)
    fake.fail("POST", r"/labels$", apply_then_fail=True, drop=True)
    pr = forge.open_request("promote/dev/api", "main", SPEC)
    assert [p.number for p in fake.pulls(SLUG)] == [pr.number]
    assert fake.count("POST", r"/pulls$") == 1
    assert [x["name"] for x in fake.pull(SLUG, pr.number)["labels"]] == ["promotion"]


def test_a_merge_that_happened_before_the_drop_is_reported_merged(
        fake: FakeGitHub, forge: GitHubForge) -> None:
    _, sha = promote(forge)
    pr = forge.open_request("promote/dev/api", "main", RequestSpec("t", "b"))
    before = bare(fake).resolve("main")
    fake.fail("PUT", r"/merge$", apply_then_fail=True, drop=True)
    outcome = forge.merge(pr, "merge", sha)
    assert outcome.merged
    tip = bare(fake).resolve("main")
    assert outcome.sha == tip
    info = bare(fake).commit(tip or "")
    assert info is not None
    assert info["parents"] == [before, sha]  # merged exactly once
    assert fake.count("PUT", r"/merge$") == 1


def test_a_comment_posted_before_the_drop_is_not_posted_twice(
        fake: FakeGitHub, forge: GitHubForge) -> None:
    promote(forge)
    pr = forge.open_request("promote/dev/api", "main", RequestSpec("t", "b"))
    fake.fail("POST", r"/comments$", apply_then_fail=True, drop=True)
    forge.close_request(pr, "closing")
    assert fake.comments(SLUG, pr.number) == ["closing"]
    assert fake.pull(SLUG, pr.number)["state"] == "closed"


def test_a_connection_reset_before_the_write_is_retried(fake: FakeGitHub,
                                                        forge: GitHubForge) -> None:
    fake.fail("POST", r"/git/commits$", reset_before=True, times=2)
    fake.fail("POST", r"/git/refs$", reset_before=True)
    _, sha = promote(forge, files=EXECUTABLE)
    assert bare(fake).resolve("promote/dev/api") == sha
    assert fake.count("POST", r"/git/refs$") == 2


def test_a_slow_answer_times_out_and_is_retried(fake: FakeGitHub, sleeps: list[float]) -> None:
    fake.fail("POST", r"/graphql#PromoterRun$", None, delay=1.2)
    with GitHubForge(SLUG, api_url=fake.url, token=TOKEN, sleep=sleeps.append,
                     timeout=1) as forge:
        assert forge.snapshot("main").commit == bare(fake).resolve("main")
    assert len(sleeps) == 1


def test_retries_run_out_into_a_forge_error(fake: FakeGitHub, forge: GitHubForge,
                                            sleeps: list[float]) -> None:
    fake.fail("POST", r"/graphql#PromoterRun$", 503, times=100)
    with pytest.raises(ForgeError) as err:
        forge.snapshot("main")
    assert err.value.code == 5
    assert "read the repository" in str(err.value)
    assert "503" in str(err.value)
    assert TOKEN not in str(err.value)
    assert 1 <= len(sleeps) < 100


def test_unreachable_github_is_a_forge_error(tmp_path: Path, sleeps: list[float]) -> None:
    with FakeGitHub(tmp_path) as gone:
        url = gone.url
    with GitHubForge(SLUG, api_url=url, token=TOKEN, sleep=sleeps.append,
                     retry_timeout=5) as forge, pytest.raises(ForgeError,
                                                              match="could not reach") as err:
        forge.read_head("main")
    assert err.value.code == 5
    assert TOKEN not in str(err.value)
    assert sleeps


# --- errors ---------------------------------------------------------------------------------


def test_a_bad_token_is_an_auth_error(fake: FakeGitHub) -> None:
    bad = "ghp_wrong0token0abcdef123456"
    redact.register(bad)
    with GitHubForge(SLUG, api_url=fake.url, token=bad) as forge, \
            pytest.raises(AuthError) as err:
        forge.snapshot("main")
    message = str(err.value)
    assert "401 Bad credentials" in message
    assert "PROMOTE_TOKEN" in message
    assert "contents:write" in message
    assert SLUG in message
    assert bad not in message
    assert err.value.code == 5


def test_a_read_only_token_cannot_write(fake: FakeGitHub) -> None:
    with GitHubForge(SLUG, api_url=fake.url, token=READ_TOKEN) as forge:
        snap = forge.snapshot("main")
        with pytest.raises(AuthError, match="contents:write") as err:
            forge.write_commit("promote/x", snap, {"a.yaml": b"a"}, "m", replace=None)
    assert READ_TOKEN not in str(err.value)
    assert bare(fake).resolve("refs/heads/promote/x") is None


@pytest.mark.parametrize("base", ["main", None])
def test_an_unknown_repository(fake: FakeGitHub, base: str | None) -> None:
    with GitHubForge("acme/nope", api_url=fake.url, token=TOKEN) as forge, \
            pytest.raises(ForgeError, match="does not exist or the token cannot see it") as err:
        forge.snapshot(base)
    assert not isinstance(err.value, (AuthError, UsageError))
    assert "acme/nope" in str(err.value)


def test_a_token_limited_to_another_repository(fake: FakeGitHub) -> None:
    fake.add_token("ghp_other0repo0token0zz9", "write", repos=["acme/app"])
    with GitHubForge(SLUG, api_url=fake.url, token="ghp_other0repo0token0zz9") as forge, \
            pytest.raises(ForgeError, match="cannot see it"):
        forge.snapshot("main")


def test_a_missing_base_branch_is_a_usage_error(forge: GitHubForge) -> None:
    with pytest.raises(UsageError, match="'release' does not exist in acme/config") as err:
        forge.snapshot("release")
    assert err.value.code == 2


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(UsageError, match="OWNER/NAME"):
        GitHubForge("just-a-name", token=TOKEN)
    with pytest.raises(UsageError, match="no GitHub token"):
        GitHubForge(SLUG)
    with pytest.raises(UsageError, match="private key"):
        GitHubForge(SLUG, app_id=1)


def test_the_token_is_registered_for_redaction(fake: FakeGitHub) -> None:
    GitHubForge(SLUG, api_url=fake.url, token=TOKEN).close()
    assert redact.redact(f"x {TOKEN} y") == "x *** y"


# --- GitHub Enterprise and GitHub Apps ----------------------------------------------------


def test_github_enterprise_api_prefix(tmp_path: Path) -> None:
    with FakeGitHub(tmp_path, prefix="/api/v3") as ghes:
        ghes.add_token(TOKEN)
        ghes.create_repo(SLUG, SEED)
        assert ghes.url.endswith("/api/v3")
        with GitHubForge(SLUG, api_url=ghes.url, token=TOKEN) as forge:
            snap, sha = promote(forge)
            pr = forge.open_request("promote/dev/api", "main", RequestSpec("t", "b"))
            ghes.set_checks(SLUG, sha, "pending")
            assert forge.enable_auto_merge(pr, "squash", pr.head_sha).auto_merge
        assert ghes.count("POST", r"^/api/graphql#PromoterAutoMerge$") == 1
        assert ghes.count("POST", r"^/api/graphql#PromoterCommit$") == 1
        assert dict(snap.files) == SEED


@pytest.fixture(scope="module")
def app_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


def test_github_app_auth_end_to_end(fake: FakeGitHub, app_key: tuple[str, str]) -> None:
    private, public = app_key
    fake.add_app(4242, public, [SLUG])
    with GitHubForge(SLUG, api_url=fake.url, app_id="4242", app_key=private) as forge:
        _, sha = promote(forge)
        pr = forge.open_request("promote/dev/api", "main", RequestSpec("t", "b"))
    assert fake.pull(SLUG, pr.number)["user"]["login"] == "promoter[bot]-4242"
    assert bare(fake).resolve("promote/dev/api") == sha
    minted = [t for t, info in fake.tokens.items() if info.app_id == 4242]
    assert len(minted) == 1  # one installation token, reused for every call
    assert redact.redact(minted[0]) == redact.MASK
    assert redact.redact(private.splitlines()[1]) == redact.MASK
    assert fake.count("GET", r"/repos/acme/config/installation$") == 1
    assert fake.count("POST", r"/app/installations/\d+/access_tokens$") == 1


def test_github_app_not_installed_or_wrong_key(fake: FakeGitHub,
                                               app_key: tuple[str, str]) -> None:
    private, public = app_key
    fake.add_app(7, public, ["acme/elsewhere"])
    with GitHubForge(SLUG, api_url=fake.url, app_id=7, app_key=private) as forge, \
            pytest.raises(AuthError, match="not installed on acme/config"):
        forge.snapshot("main")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()).decode()
    fake.add_app(8, public, [SLUG])
    with GitHubForge(SLUG, api_url=fake.url, app_id=8, app_key=other) as forge, \
            pytest.raises(AuthError, match="App credentials") as err:
        forge.snapshot("main")
    assert other.splitlines()[1] not in str(err.value)


# --- the shared bare-repo helper ------------------------------------------------------------


def test_bare_repo_merges_like_a_forge(tmp_path: Path) -> None:
    repo = BareRepo.init(tmp_path / "r.git", {"a": b"1\n", "b": b"1\n"})
    base = repo.resolve("main") or ""
    repo.update_ref("topic", base)
    head = repo.commit_files("topic", {"a": b"2\n"}, "change a")
    repo.commit_files("main", {"b": b"2\n"}, "change b")  # diverged: a real 3-way merge
    merged = repo.merge("main", head, "rebase", "unused")
    assert merged is not None
    assert repo.read_file(merged, "a") == b"2\n"
    assert repo.read_file(merged, "b") == b"2\n"
    assert repo.is_ancestor(base, merged)
    assert not repo.is_ancestor(head, merged)  # rebased: new commits
    clash = repo.commit_files("main", {"a": b"3\n"}, "clash")
    assert repo.merge("main", head, "squash", "m") is None  # conflict: nothing moves
    assert repo.resolve("main") == clash
    assert repo.update_ref("main", head, old=base) is False  # compare-and-swap


# --- the fake speaks GitHub's error shapes (as PyGithub reads them) ---------------------


def test_the_fake_answers_with_githubs_error_shapes(fake: FakeGitHub) -> None:
    from github import Auth, Github, GithubException, UnknownObjectException

    gh = Github(base_url=fake.url, auth=Auth.Token(TOKEN), retry=None, lazy=True,
                seconds_between_requests=None, seconds_between_writes=None)
    repo = gh.get_repo(SLUG)
    main = repo.get_branch("main").commit.sha
    side = bare(fake).commit_files("side", {"x": b"x"}, "side")

    def failure(call: Callable[[], object]) -> tuple[int, str]:
        with pytest.raises(GithubException) as err:
            call()
        data = err.value.data
        errors = [e.get("message", e.get("field")) for e in data.get("errors", [])]
        return err.value.status, "; ".join([data["message"], *errors])

    assert failure(lambda: repo.create_git_ref("refs/heads/main", main)) == (
        422, "Reference already exists")
    ref = repo.get_git_ref("heads/side")
    assert ref.object.sha == side
    assert failure(lambda: ref.edit(main)) == (422, "Update is not a fast forward")
    assert failure(lambda: repo.get_branch("nope")) == (404, "Branch not found")
    with pytest.raises(UnknownObjectException):
        repo.get_git_ref("heads/nope").object  # noqa: B018
    repo.create_pull(base="main", head="side", title="t")
    assert failure(lambda: repo.create_pull(base="main", head="side", title="t")) == (
        422, "Validation Failed; A pull request already exists for acme:side.")
    assert failure(lambda: repo.create_pull(base="main", head="main", title="t"))[0] == 422
    status, said = failure(lambda: repo.create_pull(base="main", head="side", title="t",
                                                    body="x" * (MAX_BODY + 1)))
    assert (status, said.endswith("(maximum is 65536 characters)")) == (422, True)
    assert failure(lambda: gh.get_repo("acme/nope").id) == (404, "Not Found")
    bad = Github(base_url=fake.url, auth=Auth.Token("nope"), retry=None)
    assert failure(lambda: bad.get_repo(SLUG).id) == (401, "Bad credentials")
    gh.close()
    bad.close()


def test_a_given_author_takes_the_git_data_api(fake: FakeGitHub, forge: GitHubForge) -> None:
    """createCommitOnBranch cannot set an author: with one, the commit is made with the
    Git Data API (unsigned), under that author."""
    forge.use_identity(Identity("Release Bot", "release@example.com"))
    _, sha = promote(forge)
    info = bare(fake).commit(sha)
    assert info is not None
    assert (info["author_name"], info["author_email"]) == ("Release Bot", "release@example.com")
    assert fake.count("POST", r"/graphql#PromoterCommit$") == 0
    assert sha not in fake.signed and forge.commit_verified(sha) is None


def test_a_commit_made_with_the_mutation_is_verified(fake: FakeGitHub,
                                                     forge: GitHubForge) -> None:
    _, sha = promote(forge)
    info = bare(fake).commit(sha)
    assert info is not None
    assert info["message"] == "Promote api to 1.1.0"
    assert (info["committer_name"], info["committer_email"]) == ("GitHub", "noreply@github.com")
    assert forge.commit_verified(sha) is True
    # a later run learns it from the run query (the head's signature)
    with GitHubForge(SLUG, api_url=fake.url, token=TOKEN) as later:
        later.snapshot("main", "promote/dev/api")
        assert later.read_head("promote/dev/api") is not None
        assert later.commit_verified(sha) is True
