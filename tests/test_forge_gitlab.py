"""The GitLab forge against the fake GitLab server: real HTTP, real bare repos."""

from __future__ import annotations

import email.utils
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from promoter import retry
from promoter.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    ForgeError,
    PromoteError,
    UsageError,
)
from promoter.forges.base import ChecksState, Head, PullRequest, RequestSpec, Snapshot
from promoter.forges.gitlab import AUTO_MERGE_WAITS, MAX_DESCRIPTION, GitLabForge
from tests.fakes.gitlab import FakeGitLab, Project

TOKEN = "glpat-very-secret-token-0123"
JOB_TOKEN = "glcbt-job-token-secret-4567"
READ_TOKEN = "glpat-read-only-secret-89ab"

DEV = b"apiVersion: apps/v1\r\nkind: Deployment\r\nspec:\r\n  image: ghcr.io/acme/api:1.0.0\r\n"
PROD = b"\xef\xbb\xbfimage:\n  repository: ghcr.io/acme/api\n  tag: \"1.0.0\"   # pinned\n"
FILES = {
    "envs/dev/app.yaml": DEV,
    "envs/prod/values.yaml": PROD,
    "README.md": b"# config\n",
    "bin/blob.dat": bytes(range(256)),
    "deep/a/b/c/d.yaml": b"x: 1\n",
}
BRANCH = "promote/dev/api"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback only: a proxy from the machine's environment must not see the fake."""
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name)


@pytest.fixture
def gl(tmp_path: Path) -> Iterator[FakeGitLab]:
    with FakeGitLab(tmp_path) as server:
        server.add_token(TOKEN)
        server.add_token(READ_TOKEN, username="reader", scopes=("read_api",))
        server.add_token(JOB_TOKEN, kind="job", username="ci-user", project="acme/app")
        server.add_user("alice")
        server.add_user("bob")
        yield server


@pytest.fixture
def project(gl: FakeGitLab) -> Project:
    project = gl.add_project("acme/config", FILES)
    repo = project.repo
    main = repo.resolve("main")
    assert main is not None
    # one symlink inside the tree and one leaving it: neither is a file to edit
    tree = repo.write_tree_entries(main, {
        "envs/link.yaml": ("120000", repo.write_blob(b"dev/app.yaml")),
        "escape.yaml": ("120000", repo.write_blob(b"../../etc/passwd")),
    })
    sha = repo.commit_tree(tree, [main], "Add links")
    assert repo.update_ref("main", sha, old=main)
    gl.reset_counts()
    return project


class Sleeps:
    """The injected sleep: records each wait, runs an optional action, never sleeps."""

    def __init__(self, action: Callable[[int], None] | None = None) -> None:
        self.waits: list[float] = []
        self.action = action

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.action is not None:
            self.action(len(self.waits))


@pytest.fixture
def make(gl: FakeGitLab) -> Iterator[Callable[..., GitLabForge]]:
    made: list[GitLabForge] = []

    def factory(repo: str = "acme/config", **kwargs: Any) -> GitLabForge:
        if "job_token" not in kwargs:
            kwargs.setdefault("token", TOKEN)
        kwargs.setdefault("sleep", Sleeps())
        forge = GitLabForge(repo, api_url=gl.url, **kwargs)
        made.append(forge)
        return forge

    yield factory
    for forge in made:
        forge.close()


@pytest.fixture
def forge(make: Callable[..., GitLabForge]) -> GitLabForge:
    return make()


def _secret_free(err: BaseException) -> None:
    for secret in (TOKEN, JOB_TOKEN, READ_TOKEN):
        assert secret not in str(err)
        assert secret not in repr(err.args)


def _commit(forge: GitLabForge, snap: Snapshot, message: str = "Promote api to 1.1.0",
            replace: Head | None = None) -> str:
    files = {"envs/dev/app.yaml": DEV.replace(b"1.0.0", b"1.1.0"),
             "envs/prod/values.yaml": PROD.replace(b"1.0.0", b"1.1.0"),
             "envs/dev/new.yaml": b"created: true\n"}
    return forge.write_commit(BRANCH, snap, files, message, replace=replace)


def _opened(forge: GitLabForge, **spec: Any) -> tuple[PullRequest, str]:
    snap = forge.snapshot("main")
    sha = _commit(forge, snap)
    pr = forge.open_request(BRANCH, "main", RequestSpec(title="Promote api", body="diff",
                                                        **spec))
    return pr, sha


# -- reading --------------------------------------------------------------------------


def test_snapshot_is_every_file_byte_for_byte_in_three_requests(
        gl: FakeGitLab, project: Project, forge: GitLabForge) -> None:
    snap = forge.snapshot(None)

    assert snap.branch == "main"
    assert snap.commit == project.repo.resolve("main")
    assert dict(snap.files) == FILES  # CRLF, BOM, binary kept; both symlinks left out
    assert gl.count() == 3  # the project (default branch), then the archive of main,
    assert gl.count("GET", r"/projects/acme%2Fconfig$") == 1  # whose pax header names
    assert gl.count("GET", r"/repository/archive\.tar\.gz$") == 1  # the commit, then
    assert gl.count("GET", r"/repository/tree$") == 1  # the root tree: .promoter.yaml?


def test_snapshot_of_a_named_base_skips_the_project_request(
        gl: FakeGitLab, project: Project, forge: GitLabForge) -> None:
    other = project.repo.commit_files("release", {"README.md": b"release\n"}, "release")

    snap = forge.snapshot("release")

    assert (snap.branch, snap.commit) == ("release", other)
    assert snap.files["README.md"] == b"release\n"
    assert gl.count("GET", r"/projects/acme%2Fconfig$") == 0, gl.requests
    assert gl.count("GET", r"/repository/archive\.tar\.gz$") == 1, gl.requests


def test_snapshot_of_a_missing_base_is_a_usage_error(project: Project,
                                                    forge: GitLabForge) -> None:
    with pytest.raises(UsageError, match="base branch 'nope' does not exist") as info:
        forge.snapshot("nope")
    assert info.value.code == 2


def test_a_project_addressed_by_id(gl: FakeGitLab, project: Project,
                                   make: Callable[..., GitLabForge]) -> None:
    snap = make(str(project.id)).snapshot("main")
    assert dict(snap.files) == FILES
    assert snap.commit == project.repo.resolve("main")
    assert gl.count("GET", rf"/projects/{project.id}/repository/archive\.tar\.gz$") == 1


def test_read_head_and_log(gl: FakeGitLab, project: Project, forge: GitLabForge) -> None:
    assert forge.read_head(BRANCH) is None
    tip = project.repo.commit_files("main", {"README.md": b"2\n"}, "Second\n\nbody")
    head = forge.read_head("main")
    assert head is not None
    assert head.sha == tip
    assert head.message == "Second\n\nbody"
    assert head.parents == (project.repo.log("main")[1]["sha"],)

    log = forge.log("main", 2)
    assert [c.sha for c in log] == [e["sha"] for e in project.repo.log("main", 2)]
    assert (log[0].message, log[0].author) == ("Second\n\nbody", "Someone Else")
    assert log[0].date.startswith("20")


def test_log_pages_through_long_histories(gl: FakeGitLab, project: Project,
                                          forge: GitLabForge) -> None:
    repo = project.repo
    tip = repo.resolve("main")
    assert tip is not None
    tree = repo.tree_of(tip)
    for n in range(105):
        tip = repo.commit_tree(tree, [tip], f"commit {n}")
    assert repo.update_ref("main", tip)
    gl.reset_counts()

    log = forge.log("main", 103)

    assert len(log) == 103
    assert [c.message for c in log[:2]] == ["commit 104", "commit 103"]
    assert gl.count("GET", r"/repository/commits$") == 2


# -- the commit -----------------------------------------------------------------------


def test_one_commit_touching_several_files(gl: FakeGitLab, project: Project,
                                           forge: GitLabForge) -> None:
    snap = forge.snapshot("main")
    gl.reset_counts()

    sha = _commit(forge, snap)

    repo = project.repo
    assert repo.resolve(BRANCH) == sha
    log = repo.log(BRANCH, 5)
    assert log[0]["sha"] == sha and log[0]["parents"] == [snap.commit]
    assert log[0]["message"] == "Promote api to 1.1.0"
    assert log[1]["sha"] == snap.commit
    assert repo.read_file(sha, "envs/dev/app.yaml") == DEV.replace(b"1.0.0", b"1.1.0")
    assert repo.read_file(sha, "envs/prod/values.yaml") == PROD.replace(b"1.0.0", b"1.1.0")
    assert repo.read_file(sha, "envs/dev/new.yaml") == b"created: true\n"
    before, after = repo.read_tree(snap.commit), repo.read_tree(sha)
    untouched = set(before) - {"envs/dev/app.yaml", "envs/prod/values.yaml"}
    assert {p: after[p] for p in untouched} == {p: before[p] for p in untouched}
    assert set(after) == set(before) | {"envs/dev/new.yaml"}
    assert gl.count("POST") == 1  # one write (a slow machine may add a read-back GET)
    assert gl.count("POST", r"/repository/commits$") == 1


def test_an_existing_branch_is_a_conflict_not_overwritten(
        gl: FakeGitLab, project: Project, forge: GitLabForge) -> None:
    snap = forge.snapshot("main")
    theirs = project.repo.commit_files(BRANCH, {"README.md": b"mine\n"}, "Someone's work")

    with pytest.raises(ConflictError, match="already exists") as info:
        _commit(forge, snap)

    assert info.value.code == 5
    assert project.repo.resolve(BRANCH) == theirs


def test_replace_recreates_our_branch_on_the_new_base(
        gl: FakeGitLab, project: Project, forge: GitLabForge) -> None:
    first = _commit(forge, forge.snapshot("main"))
    moved = project.repo.commit_files("main", {"README.md": b"moved\n"}, "Base moved")
    head = forge.read_head(BRANCH)
    assert head is not None and head.sha == first
    snap = forge.snapshot("main")
    gl.reset_counts()

    second = _commit(forge, snap, replace=head)

    log = project.repo.log(BRANCH, 3)
    assert [e["sha"] for e in log[:2]] == [second, moved]
    assert project.repo.read_file(second, "README.md") == b"moved\n"
    assert gl.count() == 2  # the branch is still at the commit we replace; the commit
    assert gl.count("POST", r"/repository/commits$") == 1


def test_replace_refuses_when_someone_pushed_meanwhile(
        project: Project, forge: GitLabForge) -> None:
    snap = forge.snapshot("main")
    _commit(forge, snap)
    head = forge.read_head(BRANCH)
    assert head is not None
    theirs = project.repo.commit_files(BRANCH, {"README.md": b"theirs\n"}, "Fix by hand")

    with pytest.raises(ConflictError, match="promoter does not force"):
        _commit(forge, snap, message="Promote api to 1.2.0", replace=head)

    assert project.repo.resolve(BRANCH) == theirs


def test_a_retried_replace_never_forces_over_a_push_made_between_attempts(
        gl: FakeGitLab, project: Project, make: Callable[..., GitLabForge]) -> None:
    """The forced commit of an update fails (502, not applied); before the retry someone
    pushes to the branch. The retry finds a tip that is neither promoter's nor the one it
    replaces: it stops, and the push stays (the forced commit would have dropped it)."""
    forge = make()
    snap = forge.snapshot("main")
    _commit(forge, snap)
    head = forge.read_head(BRANCH)
    assert head is not None
    pushed: list[str] = []

    def push_while_waiting(_seconds: float) -> None:
        pushed.append(project.repo.commit_files(BRANCH, {"README.md": b"theirs\n"}, "By hand"))

    retrying = make(sleep=push_while_waiting)
    gl.fail("POST", r"/repository/commits$", status=502)
    with pytest.raises(ConflictError, match="promoter does not force"):
        _commit(retrying, snap, message="Promote api to 1.2.0", replace=head)
    assert project.repo.resolve(BRANCH) == pushed[0]
    assert gl.count("POST", r"/repository/commits$") == 2  # the first, and the failed one

@pytest.mark.parametrize("status", [0, 502])
def test_a_commit_that_landed_before_the_answer_was_lost_is_not_repeated(
        gl: FakeGitLab, project: Project, forge: GitLabForge, status: int) -> None:
    snap = forge.snapshot("main")
    gl.fail("POST", r"/repository/commits$", status=status, apply_then_fail=True)

    sha = _commit(forge, snap)

    assert project.repo.resolve(BRANCH) == sha
    assert [e["sha"] for e in project.repo.log(BRANCH, 2)] == [sha, snap.commit]
    assert gl.count("POST", r"/repository/commits$") == 1


def test_a_connection_dropped_before_the_commit_is_retried(
        gl: FakeGitLab, project: Project, forge: GitLabForge) -> None:
    snap = forge.snapshot("main")
    gl.fail("POST", r"/repository/commits$", reset_before=True)

    sha = _commit(forge, snap)

    assert [e["sha"] for e in project.repo.log(BRANCH, 2)] == [sha, snap.commit]
    assert gl.count("POST", r"/repository/commits$") == 2


def test_a_read_timeout_is_retried(gl: FakeGitLab, project: Project,
                                   make: Callable[..., GitLabForge]) -> None:
    gl.fail("GET", r"/repository/branches/main$", status=502, delay=0.6)
    forge = make(timeout=0.2)

    assert forge.read_head("main") is not None
    deadline = time.monotonic() + 3  # the slow answer is logged once its delay is over
    while gl.count("GET", r"/repository/branches/main$") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gl.count("GET", r"/repository/branches/main$") == 2


def test_502s_and_429s_are_survived_with_one_commit_and_one_request(
        gl: FakeGitLab, project: Project, make: Callable[..., GitLabForge]) -> None:
    sleeps = Sleeps()
    forge = make(sleep=sleeps)
    snap = forge.snapshot("main")
    when = email.utils.formatdate(time.time() + 40, usegmt=True)
    gl.fail("POST", r"/repository/commits$", status=502, times=3)
    gl.fail("POST", r"/merge_requests$", status=429, headers={"Retry-After": "7"})
    gl.fail("GET", r"/merge_requests$", status=429, headers={"Retry-After": when})

    sha = _commit(forge, snap)
    pr = forge.open_request(BRANCH, "main", RequestSpec("Promote api", "diff"))
    found = forge.find_request(BRANCH, "main")

    assert [e["sha"] for e in project.repo.log(BRANCH, 2)] == [sha, snap.commit]
    assert len(gl.merge_requests("acme/config")) == 1
    assert found == pr
    assert gl.count("POST", r"/repository/commits$") == 4
    assert len(sleeps.waits) == 5
    assert sleeps.waits[3] >= 7  # Retry-After in seconds
    assert 35 <= sleeps.waits[4] <= 120  # Retry-After as an HTTP-date, about 40 s away


def test_retries_that_run_out_are_a_forge_error_without_the_token(
        gl: FakeGitLab, project: Project, forge: GitLabForge) -> None:
    gl.fail("GET", r"/repository/branches/", status=503, times=-1)

    with pytest.raises(ForgeError) as info:
        forge.read_head("main")

    assert info.value.code == 5
    assert "503" in str(info.value)
    assert "kept failing" in str(info.value)
    _secret_free(info.value)
    assert gl.count("GET", r"/repository/branches/") == retry.MAX_ATTEMPTS


def test_retries_stop_within_the_time_budget(gl: FakeGitLab, project: Project,
                                             make: Callable[..., GitLabForge]) -> None:
    gl.fail("GET", r"/repository/branches/", status=503, times=-1)
    forge = make(retry_timeout=0.0)

    with pytest.raises(ForgeError):
        forge.read_head("main")

    assert gl.count("GET", r"/repository/branches/") == 1


# -- errors ---------------------------------------------------------------------------


def test_a_bad_token_is_an_auth_error_naming_what_to_set(
        project: Project, make: Callable[..., GitLabForge]) -> None:
    forge = make(token="glpat-wrong-secret-token")

    with pytest.raises(AuthError, match="rejected the token") as info:
        forge.snapshot(None)

    assert info.value.code == 5
    assert "PROMOTE_TOKEN" in str(info.value) and "api scope" in str(info.value)
    assert "glpat-wrong-secret-token" not in str(info.value)


def test_a_job_token_can_read_but_not_commit_to_another_project(
        gl: FakeGitLab, project: Project, make: Callable[..., GitLabForge]) -> None:
    forge = make(job_token=JOB_TOKEN)
    snap = forge.snapshot("main")
    assert dict(snap.files) == FILES

    with pytest.raises(AuthError, match="CI_JOB_TOKEN cannot create commits or merge") as info:
        _commit(forge, snap)

    assert "access token" in str(info.value)
    _secret_free(info.value)
    assert project.repo.resolve(BRANCH) is None


def test_a_read_only_token_cannot_commit(project: Project,
                                         make: Callable[..., GitLabForge]) -> None:
    forge = make(token=READ_TOKEN)
    snap = forge.snapshot("main")

    with pytest.raises(AuthError, match="403 insufficient_scope") as info:
        _commit(forge, snap)

    assert "api scope" in str(info.value)
    _secret_free(info.value)


def test_an_unknown_project_is_a_usage_error(project: Project,
                                             make: Callable[..., GitLabForge]) -> None:
    with pytest.raises(UsageError, match="project acme/nope not found") as info:
        make("acme/nope").snapshot(None)

    assert info.value.code == 2
    _secret_free(info.value)


def test_no_token_cannot_see_a_private_project(
        project: Project, make: Callable[..., GitLabForge]) -> None:
    with pytest.raises(UsageError, match="not found"):
        make(token=None).read_head("main")


def test_bad_arguments(gl: FakeGitLab) -> None:
    with pytest.raises(UsageError):
        GitLabForge("acme/config", api_url=gl.url, token=TOKEN, job_token=JOB_TOKEN)
    with pytest.raises(UsageError):
        GitLabForge(" ", api_url=gl.url, token=TOKEN)
    with pytest.raises(UsageError):
        GitLabForge("acme/config", api_url="gitlab.example.com", token=TOKEN)


def test_an_api_url_with_the_api_suffix_still_works(gl: FakeGitLab, project: Project) -> None:
    forge = GitLabForge("acme/config", api_url=gl.url + "/api/v4/", token=TOKEN)
    try:
        assert forge.read_head("main") is not None
    finally:
        forge.close()


# -- merge requests -------------------------------------------------------------------


def test_open_find_update_close(gl: FakeGitLab, project: Project, forge: GitLabForge) -> None:
    snap = forge.snapshot("main")
    sha = _commit(forge, snap)
    assert forge.find_request(BRANCH, "main") is None
    gl.reset_counts()

    pr = forge.open_request(BRANCH, "main", RequestSpec(
        "Promote api to 1.1.0", "the diff", labels=("promote", "dev"),
        reviewers=("alice", "@bob"), assignees=("alice",)))

    mr = gl.merge_request("acme/config", pr.number)
    assert (pr.branch, pr.base, pr.head_sha, pr.state) == (BRANCH, "main", sha, "open")
    assert pr.url == mr["web_url"]
    assert mr["labels"] == ["dev", "promote"]
    assert [u["username"] for u in mr["reviewers"]] == ["alice", "bob"]
    assert [u["username"] for u in mr["assignees"]] == ["alice"]
    assert mr["force_remove_source_branch"] is True
    assert gl.count("GET", r"/users$") == 2  # alice once (cached), bob
    assert gl.count("POST", r"/merge_requests$") == 1

    assert forge.find_request(BRANCH, "main") == pr
    assert forge.find_request(BRANCH, "release") is None

    gl.reset_counts()
    same = forge.update_request(pr, RequestSpec("Promote api to 1.1.0", "the diff",
                                                labels=("promote",)))
    assert same == pr and gl.count() == 0  # nothing to change: no request

    project_mr = gl.project("acme/config").merge_requests[pr.number]
    project_mr.labels.append("hold")  # a person adds a label
    updated = forge.update_request(pr, RequestSpec("Promote api to 1.2.0", "new diff",
                                                   labels=("promote", "bump")))
    assert (updated.title, updated.body) == ("Promote api to 1.2.0", "new diff")
    assert set(updated.labels) == {"promote", "dev", "hold", "bump"}

    forge.close_request(updated, "Closed by promoter: already up to date")
    mr = gl.merge_request("acme/config", pr.number)
    assert mr["state"] == "closed"
    assert gl.notes("acme/config", pr.number) == ["Closed by promoter: already up to date"]
    assert forge.find_request(BRANCH, "main") is None


def test_opening_an_existing_request_updates_it(gl: FakeGitLab, project: Project,
                                                forge: GitLabForge) -> None:
    pr, _ = _opened(forge)

    again = forge.open_request(BRANCH, "main", RequestSpec("Promote api to 2.0.0", "other",
                                                           labels=("x",)))

    assert again.number == pr.number
    assert (again.title, again.body, again.labels) == ("Promote api to 2.0.0", "other", ("x",))
    assert len(gl.merge_requests("acme/config")) == 1


def test_a_request_created_before_the_connection_dropped_is_not_duplicated(
        gl: FakeGitLab, project: Project, forge: GitLabForge) -> None:
    _commit(forge, forge.snapshot("main"))
    gl.fail("POST", r"/merge_requests$", status=0, apply_then_fail=True)

    pr = forge.open_request(BRANCH, "main", RequestSpec("Promote api", "diff"))

    assert [m["iid"] for m in gl.merge_requests("acme/config")] == [pr.number]
    assert gl.count("POST", r"/merge_requests$") == 1


def test_a_lost_comment_answer_posts_one_comment(gl: FakeGitLab, project: Project,
                                                 forge: GitLabForge) -> None:
    pr, _ = _opened(forge)
    gl.fail("POST", r"/notes$", status=502, apply_then_fail=True)

    forge.close_request(pr, "bye")

    assert gl.notes("acme/config", pr.number) == ["bye"]
    assert gl.merge_request("acme/config", pr.number)["state"] == "closed"


def test_an_unknown_reviewer_is_a_config_error_and_opens_nothing(
        gl: FakeGitLab, project: Project, forge: GitLabForge) -> None:
    _commit(forge, forge.snapshot("main"))

    with pytest.raises(ConfigError, match="no user 'carol'"):
        forge.open_request(BRANCH, "main", RequestSpec("t", "b", reviewers=("carol",)))

    assert gl.merge_requests("acme/config") == []


def test_a_huge_description_is_capped(gl: FakeGitLab, project: Project,
                                      forge: GitLabForge) -> None:
    _commit(forge, forge.snapshot("main"))
    body = "+ line\n" * 200_000  # 1.4 million characters

    pr = forge.open_request(BRANCH, "main", RequestSpec("Promote api", body))

    description = gl.merge_request("acme/config", pr.number)["description"]
    assert len(description) == MAX_DESCRIPTION
    assert description.startswith("+ line\n")
    assert description.endswith("1,400,000 characters in all)")


def test_a_draft_request(gl: FakeGitLab, project: Project, forge: GitLabForge) -> None:
    pr, _ = _opened(forge, draft=True)
    assert pr.title == "Draft: Promote api"
    assert gl.merge_request("acme/config", pr.number)["draft"] is True


def test_delete_branch_is_idempotent(project: Project, forge: GitLabForge) -> None:
    _commit(forge, forge.snapshot("main"))
    forge.delete_branch(BRANCH)
    assert project.repo.resolve(BRANCH) is None
    forge.delete_branch(BRANCH)


# -- checks and merging ---------------------------------------------------------------


def test_checks_follow_the_pipelines(gl: FakeGitLab, project: Project,
                                     forge: GitLabForge) -> None:
    pr, sha = _opened(forge)
    assert forge.checks(pr, sha) is ChecksState.NONE
    for status, state in [("pending", ChecksState.PENDING), ("running", ChecksState.PENDING),
                          ("success", ChecksState.SUCCESS), ("failed", ChecksState.FAILURE),
                          ("canceled", ChecksState.FAILURE)]:
        gl.set_pipeline(sha, status)
        assert forge.checks(pr, sha) is state, status
    gl.reset_counts()
    forge.checks(pr, sha)
    assert gl.count() == 1


def test_checks_read_external_statuses_without_a_pipeline(
        gl: FakeGitLab, project: Project, forge: GitLabForge) -> None:
    pr, sha = _opened(forge)
    gl.set_status(sha, "jenkins", "running")
    assert forge.checks(pr, sha) is ChecksState.PENDING
    gl.set_status(sha, "jenkins", "success")
    gl.set_status(sha, "lint", "failed", allow_failure=True)
    assert forge.checks(pr, sha) is ChecksState.SUCCESS
    gl.set_status(sha, "scan", "failed")
    assert forge.checks(pr, sha) is ChecksState.FAILURE


def test_checks_are_pending_while_a_required_pipeline_is_coming(
        gl: FakeGitLab, project: Project, forge: GitLabForge) -> None:
    project.ci = True
    pr, sha = _opened(forge)
    assert forge.checks(pr, sha) is ChecksState.PENDING


@pytest.mark.parametrize(("method", "parents"), [("merge", 2), ("rebase", 2), ("squash", 1)])
def test_merge_makes_a_real_commit_on_main(gl: FakeGitLab, project: Project,
                                           forge: GitLabForge, method: str,
                                           parents: int) -> None:
    pr, sha = _opened(forge)
    base = project.repo.resolve("main")
    gl.reset_counts()

    outcome = forge.merge(pr, method, sha)

    tip = project.repo.resolve("main")
    assert outcome.merged and outcome.sha == tip
    entry = project.repo.log("main", 1)[0]
    assert len(entry["parents"]) == parents and entry["parents"][0] == base
    assert project.repo.tree_of(tip) == project.repo.tree_of(sha)
    assert gl.merge_request("acme/config", pr.number)["state"] == "merged"
    assert project.repo.resolve(BRANCH) is None  # source branch removed
    assert gl.count() == 1


def test_merge_guards_against_a_moved_head(gl: FakeGitLab, project: Project,
                                           forge: GitLabForge) -> None:
    pr, sha = _opened(forge)
    project.repo.commit_files(BRANCH, {"README.md": b"late\n"}, "Late push")
    base = project.repo.resolve("main")

    with pytest.raises(ConflictError, match="moved"):
        forge.merge(pr, "squash", sha)

    assert project.repo.resolve("main") == base


def test_merge_refused_while_the_pipeline_runs(gl: FakeGitLab, project: Project,
                                               forge: GitLabForge) -> None:
    project.ci = True
    pr, sha = _opened(forge)
    gl.set_pipeline(sha, "running")

    outcome = forge.merge(pr, "merge", sha)

    assert not outcome.merged and "ci_still_running" in outcome.reason


def test_a_merge_that_landed_before_the_connection_dropped(
        gl: FakeGitLab, project: Project, forge: GitLabForge) -> None:
    pr, sha = _opened(forge)
    base = project.repo.resolve("main")
    gl.fail("PUT", r"/merge$", status=0, apply_then_fail=True)

    outcome = forge.merge(pr, "squash", sha)

    assert outcome.merged
    assert project.repo.log("main", 2)[1]["sha"] == base  # one squash commit, not two
    assert gl.count("PUT", r"/merge$") == 1


def test_auto_merge_waits_for_the_pipeline_to_exist_then_merges_on_success(
        gl: FakeGitLab, project: Project, make: Callable[..., GitLabForge]) -> None:
    project.ci = True
    sleeps = Sleeps()
    forge = make(sleep=sleeps)
    pr, sha = _opened(forge)
    sleeps.action = lambda n: gl.set_pipeline(sha, "pending") if n == 2 else None
    base = project.repo.resolve("main")
    gl.reset_counts()

    outcome = forge.enable_auto_merge(pr, "squash", pr.head_sha)

    assert outcome.auto_merge and not outcome.merged
    assert sleeps.waits == list(AUTO_MERGE_WAITS[:2])
    assert gl.count("PUT", r"/merge$") == 3
    assert gl.count() == 5  # 3 x PUT merge, 2 x GET the merge request
    assert project.repo.resolve("main") == base
    mr = gl.merge_request("acme/config", pr.number)
    assert mr["merge_when_pipeline_succeeds"] is True

    gl.set_pipeline(sha, "running")
    assert project.repo.resolve("main") == base
    gl.set_pipeline(sha, "success")

    mr = gl.merge_request("acme/config", pr.number)
    assert mr["state"] == "merged"
    tip = project.repo.log("main", 1)[0]
    assert tip["sha"] == mr["squash_commit_sha"] and tip["parents"] == [base]
    assert project.repo.tree_of(tip["sha"]) == project.repo.tree_of(sha)


def test_a_failed_pipeline_does_not_merge(gl: FakeGitLab, project: Project,
                                          forge: GitLabForge) -> None:
    project.ci = True
    pr, sha = _opened(forge)
    gl.set_pipeline(sha, "running")
    base = project.repo.resolve("main")
    assert forge.enable_auto_merge(pr, "merge", pr.head_sha).auto_merge

    gl.set_pipeline(sha, "failed")

    mr = gl.merge_request("acme/config", pr.number)
    assert mr["state"] == "opened" and mr["merge_when_pipeline_succeeds"] is False
    assert project.repo.resolve("main") == base
    again = forge.enable_auto_merge(pr, "merge", pr.head_sha)
    assert not again.merged and not again.auto_merge
    assert "pipeline failed" in again.reason
    assert project.repo.resolve("main") == base


def test_auto_merge_when_the_pipeline_already_passed_merges_now(
        gl: FakeGitLab, project: Project, forge: GitLabForge) -> None:
    project.ci = True
    pr, sha = _opened(forge)
    gl.set_pipeline(sha, "success")

    outcome = forge.enable_auto_merge(pr, "merge", pr.head_sha)

    assert outcome.merged and outcome.sha == project.repo.resolve("main")


def test_auto_merge_without_ci_on_an_old_server_merges_directly(
        gl: FakeGitLab, project: Project, make: Callable[..., GitLabForge]) -> None:
    project.legacy_auto_merge = True  # answers 405 to auto-merge without a pipeline
    sleeps = Sleeps()
    forge = make(sleep=sleeps)
    pr, sha = _opened(forge)
    base = project.repo.resolve("main")

    outcome = forge.enable_auto_merge(pr, "squash", pr.head_sha)

    assert outcome.merged and not outcome.auto_merge
    assert sleeps.waits == list(AUTO_MERGE_WAITS)
    tip = project.repo.log("main", 1)[0]
    assert tip["sha"] == outcome.sha and tip["parents"] == [base]
    assert project.repo.tree_of(tip["sha"]) == project.repo.tree_of(sha)


def test_auto_merge_gives_up_when_a_required_pipeline_never_comes(
        gl: FakeGitLab, project: Project, forge: GitLabForge) -> None:
    project.ci = True
    pr, _ = _opened(forge)
    base = project.repo.resolve("main")

    outcome = forge.enable_auto_merge(pr, "merge", pr.head_sha)

    assert not outcome.merged and not outcome.auto_merge
    assert "ci_must_pass" in outcome.reason
    assert project.repo.resolve("main") == base


def test_a_draft_is_not_merged(gl: FakeGitLab, project: Project, forge: GitLabForge) -> None:
    pr, _ = _opened(forge, draft=True)

    outcome = forge.enable_auto_merge(pr, "merge", pr.head_sha)

    assert not outcome.merged and "draft_status" in outcome.reason


# -- the whole sequence ---------------------------------------------------------------


def test_request_counts_of_a_typical_promotion(gl: FakeGitLab, project: Project,
                                               forge: GitLabForge) -> None:
    """snapshot 3, read_head 1, write_commit 1, open_request 2 (one reviewer), checks 1,
    merge 1: a regression that adds requests fails here."""
    project.pipeline_on_commit = "success"
    snap = forge.snapshot(None)
    assert forge.read_head(BRANCH) is None
    sha = _commit(forge, snap)
    pr = forge.open_request(BRANCH, snap.branch, RequestSpec("Promote api", "diff",
                                                             labels=("promote",),
                                                             reviewers=("alice",)))
    assert forge.checks(pr, sha) is ChecksState.SUCCESS
    assert forge.merge(pr, "squash", sha).merged

    assert [(r.method, r.status) for r in gl.requests] == [
        ("GET", 200), ("GET", 200),  # project, archive (its pax header names the commit)
        ("GET", 200),  # the root tree at that commit: is .promoter.yaml there, as a file?
        ("GET", 404),  # the promotion branch does not exist yet
        ("POST", 201),  # one commit, three files
        ("GET", 200), ("POST", 201),  # reviewer id, the merge request
        ("GET", 200),  # the merge request: its head pipeline
        ("PUT", 200),  # merge
    ]
    assert sum(r.bytes_in for r in gl.requests) < 4_000


def test_errors_never_carry_a_token(gl: FakeGitLab, project: Project,
                                    make: Callable[..., GitLabForge]) -> None:
    failures: list[PromoteError] = []
    for kwargs in ({"token": "glpat-nope-nope-nope"}, {"job_token": JOB_TOKEN},
                   {"token": READ_TOKEN}):
        forge = make(**kwargs)
        try:
            snap = forge.snapshot("main")
            _commit(forge, snap)
        except PromoteError as err:
            failures.append(err)
    assert [type(err) for err in failures] == [AuthError, AuthError, AuthError]
    for err in failures:
        _secret_free(err)
        assert "glpat-nope-nope-nope" not in str(err)


# -- the fake itself: GitLab's shapes, spoken over plain HTTP --------------------------


def test_the_fake_answers_with_gitlabs_error_shapes(gl: FakeGitLab, project: Project) -> None:
    api = f"{gl.url}/api/v4/projects/acme%2Fconfig"
    main = project.repo.resolve("main")
    auth = {"PRIVATE-TOKEN": TOKEN}
    with requests.Session() as http:
        def call(method: str, url: str, headers: dict[str, str] | None = None,
                 **kwargs: Any) -> tuple[int, Any]:
            answer = http.request(method, url, headers=auth if headers is None else headers,
                                  timeout=10, **kwargs)
            return answer.status_code, answer.json()

        assert call("GET", f"{gl.url}/api/v4/projects/acme%2Fnope") == (
            404, {"message": "404 Project Not Found"})
        assert call("GET", api, {"PRIVATE-TOKEN": "nope"}) == (
            401, {"message": "401 Unauthorized"})
        assert call("GET", api, {"Authorization": f"Bearer {TOKEN}"})[0] == 401  # not oauth
        gl.add_token("oauth-secret-token", kind="oauth")
        assert call("GET", api, {"Authorization": "Bearer oauth-secret-token"})[1]["id"] == \
            project.id
        assert call("GET", f"{gl.url}/api/v4/projects/{project.id}")[1]["path_with_namespace"] \
            == "acme/config"
        update = {"action": "update", "file_path": "README.md", "content": "x"}
        assert call("POST", f"{api}/repository/commits", json={
            "branch": "main", "commit_message": "m", "start_sha": main, "actions": [update]}) \
            == (400, {"message": "A branch called 'main' already exists. Switch to that "
                                 "branch in order to make changes"})
        assert call("POST", f"{api}/repository/commits", json={
            "branch": "main", "commit_message": "m",
            "actions": [{**update, "file_path": "missing.txt"}]}) == (
            400, {"message": "A file with this name doesn't exist"})
        assert call("POST", f"{api}/repository/commits", json={
            "branch": "main", "commit_message": "m",
            "actions": [{**update, "last_commit_id": "0" * 40}]}) == (
            400, {"message": "You are attempting to update a file that has changed since "
                             "you started editing it."})
        assert call("POST", f"{api}/repository/commits", {"JOB-TOKEN": JOB_TOKEN}, json={
            "branch": "x", "commit_message": "m", "actions": [update]}) == (
            403, {"message": "403 Forbidden"})
        status, _ = call("POST", f"{api}/repository/commits", json={
            "branch": BRANCH, "commit_message": "m", "start_branch": "main",
            "actions": [update]})
        assert status == 201
        mr = {"source_branch": BRANCH, "target_branch": "main", "title": "t"}
        assert call("POST", f"{api}/merge_requests", json=mr)[0] == 201
        assert call("POST", f"{api}/merge_requests", json=mr) == (409, {"message": [
            "Another open merge request already exists for this source branch: !1"]})
        assert call("PUT", f"{api}/merge_requests/1/merge", json={"sha": main}) == (
            409, {"message": f"SHA does not match HEAD of source branch: "
                             f"{project.repo.resolve(BRANCH)}"})
        project.ci = True
        assert call("PUT", f"{api}/merge_requests/1/merge", json={"auto_merge": True}) == (
            405, {"message": "405 Method Not Allowed"})
        answer = http.get(f"{api}/repository/commits", params={"per_page": 1, "page": 2},
                          headers=auth, timeout=10)
        assert (answer.headers["X-Total"], answer.headers["X-Page"],
                answer.headers["X-Next-Page"], answer.headers["X-Prev-Page"]) == \
            ("2", "2", "", "1")
        assert answer.json()[0]["id"] == project.repo.log("main", 2)[1]["sha"]
        assert 'rel="prev"' in answer.headers["Link"]
        gl.set_pipeline(project.repo.resolve(BRANCH) or "", "running")
        status, pipelines = call("GET", f"{api}/merge_requests/1/pipelines")
        assert (status, [p["status"] for p in pipelines]) == (200, ["running"])
