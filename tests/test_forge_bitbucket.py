"""The Bitbucket Cloud forge against the fake Bitbucket server: real HTTP, real bare repos.

Someone else's moves (a push to the base or the promotion branch) are real git commits
in the bare repo, made at the moment a given request arrives (``FakeBitbucket.before``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from promoter import context, promote
from promoter.cli import run
from promoter.errors import AuthError, ConfigError, ConflictError, ForgeError, UsageError
from promoter.forges import bitbucket
from promoter.forges.base import ChecksState, Head, PullRequest, RequestSpec, Snapshot, git_blob_sha
from promoter.forges.bitbucket import BitbucketForge
from tests.fakes.bitbucket import FakeBitbucket, Repo
from tests.fakes.githttp import Recorder

TOKEN = "bb-very-secret-token-0123456789"
READ_TOKEN = "bb-read-only-token-abcdef012345"
SLUG = "acme/config"
DEV = b"apiVersion: apps/v1\r\nkind: Deployment\r\nspec:\r\n  image: ghcr.io/acme/api:1.0.0\r\n"
PROD = b"\xef\xbb\xbfimage:\n  tag: \"1.0.0\"   # pinned\n"
FILES = {".promoter.yaml": b"version: 1\n", "envs/dev/app.yaml": DEV,
         "envs/prod/values.yaml": PROD, "README.md": b"# config\n",
         "bin/blob.dat": bytes(range(256))}
BRANCH = "promote/dev/api"
NEW = {"envs/dev/app.yaml": DEV.replace(b"1.0.0", b"1.1.0"),
       "envs/prod/values.yaml": PROD.replace(b"1.0.0", b"1.1.0")}
MESSAGE = "Promote ghcr.io/acme/api:1.1.0\n\nPromoted-Image: ghcr.io/acme/api:1.1.0"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name)


@pytest.fixture
def bb(tmp_path: Path) -> Iterator[FakeBitbucket]:
    with FakeBitbucket(tmp_path) as server:
        server.add_token(TOKEN)
        server.add_token(READ_TOKEN, user="reader", write=False)
        server.add_member("alice")
        yield server


@pytest.fixture
def repo(bb: FakeBitbucket) -> Repo:
    repo = bb.add_repo(SLUG, FILES)
    main = repo.bare.resolve("main") or ""
    tree = repo.bare.write_tree_entries(main, {
        "envs/link.yaml": ("120000", repo.bare.write_blob(b"dev/app.yaml"))})
    sha = repo.bare.commit_tree(tree, [main], "Add a link")
    assert repo.bare.update_ref("main", sha, old=main)
    bb.reset_counts()
    return repo


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def fresh(bb: FakeBitbucket, **kw: object) -> BitbucketForge:
    return BitbucketForge(SLUG, api_url=bb.api, token=TOKEN, sleep=Sleeps(), **kw)  # type: ignore[arg-type]


@pytest.fixture
def forge(bb: FakeBitbucket, repo: Repo) -> Iterator[BitbucketForge]:
    made = fresh(bb)
    yield made
    made.close()


def counts(bb: FakeBitbucket) -> list[tuple[str, str]]:
    prefix = f"/2.0/repositories/{SLUG}"
    return [(r.method, r.path.removeprefix(prefix)) for r in bb.requests]


def propose(forge: BitbucketForge, snap: Snapshot, files: dict[str, bytes] | None = None) -> str:
    return forge.write_commit(BRANCH, snap, files or NEW, MESSAGE, replace=None)


# --- reading ------------------------------------------------------------------------------


def test_snapshot_is_every_file_byte_for_byte(bb: FakeBitbucket, repo: Repo,
                                              forge: BitbucketForge) -> None:
    snap = forge.snapshot(None)
    assert snap.branch == "main" and snap.commit == repo.bare.resolve("main")
    assert dict(snap.files) == FILES
    assert snap.links == {"envs/link.yaml": "dev/app.yaml"}
    assert [p for _, p in counts(bb)] == [
        "", "/refs/branches/main", f"/acme/config/get/{snap.commit}.tar.gz",
        f"/src/{snap.commit}/"]
    bb.reset_counts()
    forge.snapshot("main")
    assert len(bb.requests) == 3  # branch, archive, the tree's listing (proves the archive)


def test_a_deep_tree_is_listed_directory_by_directory(
        bb: FakeBitbucket, repo: Repo, forge: BitbucketForge,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory below ``MAX_DEPTH`` levels is listed on its own (git has no empty
    directories: a directory with nothing listed below it was not reached)."""
    monkeypatch.setattr(bitbucket, "MAX_DEPTH", 1)
    snap = forge.snapshot("main")
    assert dict(snap.files) == FILES and snap.links == {"envs/link.yaml": "dev/app.yaml"}
    listings = sorted(p for _, p in counts(bb) if p.startswith("/src/") and p.endswith("/"))
    assert listings == [f"/src/{snap.commit}/{d}" for d in
                        ("", "bin/", "envs/", "envs/dev/", "envs/prod/")]


def test_a_long_listing_follows_next(bb: FakeBitbucket, repo: Repo,
                                     forge: BitbucketForge) -> None:
    many = {f"envs/dev/n{i:03}.yaml": f"n: {i}\n".encode() for i in range(120)}
    repo.bare.commit_files("main", many, "many files")
    snap = forge.snapshot("main")
    assert dict(snap.files) == {**FILES, **many}
    assert sum(1 for _, p in counts(bb) if p.startswith("/src/")) == 2  # 100 + the rest


def test_a_same_size_rewrite_is_read_from_the_tree(bb: FakeBitbucket, repo: Repo,
                                                   forge: BitbucketForge) -> None:
    """export-subst can expand to exactly the size it replaces (40 hex for ``%H`` and one
    ``%`` for each ``%%``): sizes cannot tell, the .gitattributes can."""
    stamped = b"# $Format:%H" + b"%%" * 29 + b"$\n" + DEV
    repo.bare.commit_files("main", {"envs/dev/app.yaml": stamped,
                                    "envs/dev/.gitattributes": b"app.yaml export-subst\n"},
                           "stamp")
    snap = forge.snapshot("main")
    assert snap.files["envs/dev/app.yaml"] == stamped
    assert sorted(p.rsplit("/", 2)[-2:][-1] for _, p in counts(bb)
                  if p.startswith(f"/src/{snap.commit}/envs/")) == [".gitattributes",
                                                                     "app.yaml"]


def test_a_filtered_policy_file_is_read_from_the_tree(bb: FakeBitbucket, repo: Repo,
                                                      forge: BitbucketForge) -> None:
    repo.bare.commit_files("main", {".gitattributes": b".promoter.yaml export-ignore\n"},
                           "hide the policy from archives")
    assert forge.snapshot("main").files[".promoter.yaml"] == FILES[".promoter.yaml"]


def test_a_linked_policy_file_stops_the_run(bb: FakeBitbucket, repo: Repo,
                                            forge: BitbucketForge) -> None:
    main = repo.bare.resolve("main") or ""
    tree = repo.bare.write_tree_entries(main, {
        ".promoter.yaml": ("120000", repo.bare.write_blob(b"README.md"))})
    repo.bare.update_ref("main", repo.bare.commit_tree(tree, [main], "link"), old=main)
    with pytest.raises(ConfigError) as caught:
        forge.snapshot("main")
    assert caught.value.code == 2 and "symbolic link" in str(caught.value)


def test_a_policy_file_past_the_size_limit_is_refused(
        bb: FakeBitbucket, repo: Repo, forge: BitbucketForge,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A file read from the tree is streamed and capped like an archive (exit 5)."""
    monkeypatch.setattr(bitbucket, "MAX_FILE_BYTES", 64)
    repo.bare.commit_files("main", {".promoter.yaml": b"version: 1\n" + b"#" * 100,
                                    ".gitattributes": b".promoter.yaml export-ignore\n"},
                           "big, and read from the tree")
    with pytest.raises(ForgeError, match="more than 64 bytes") as caught:
        forge.snapshot("main")
    assert caught.value.code == 5


def test_a_missing_base_is_a_usage_error(repo: Repo, forge: BitbucketForge) -> None:
    with pytest.raises(UsageError, match="'nope' does not exist"):
        forge.snapshot("nope")


def test_read_head_is_one_request_and_log_follows_first_parents(
        bb: FakeBitbucket, repo: Repo, forge: BitbucketForge) -> None:
    assert forge.read_head(BRANCH) is None
    snap = forge.snapshot("main")
    sha = propose(forge, snap)
    bb.reset_counts()
    head = fresh(bb).read_head(BRANCH)
    assert head == Head(sha, MESSAGE + "\n", (snap.commit,))
    assert counts(bb) == [("GET", f"/refs/branches/{BRANCH.replace('/', '%2F')}")]
    repo.bare.merge("main", sha, "merge", "Merge promotion")
    history = forge.log("main", 10)
    assert [c.message.splitlines()[0] for c in history] == [
        "Merge promotion", "Add a link", "Initial commit"]  # not the branch's own commit


# --- the commit ---------------------------------------------------------------------------


def test_one_commit_changes_several_files_in_one_request(bb: FakeBitbucket, repo: Repo,
                                                         forge: BitbucketForge) -> None:
    snap = forge.snapshot("main")
    bb.reset_counts()
    forge.use_identity(None)
    sha = propose(forge, snap)
    assert counts(bb) == [("POST", "/src"), ("GET", "/refs/branches/main")]
    info = repo.bare.commit(sha) or {}
    assert info["parents"] == [snap.commit]
    assert repo.bare.read_file(sha, "envs/dev/app.yaml") == NEW["envs/dev/app.yaml"]
    assert repo.bare.read_file(sha, "bin/blob.dat") == FILES["bin/blob.dat"]
    assert fresh(bb).changed_files(sha) == {p: git_blob_sha(d) for p, d in NEW.items()}


def test_a_base_that_moved_during_the_write_is_planned_again(
        bb: FakeBitbucket, repo: Repo, forge: BitbucketForge) -> None:
    """``parents`` names the snapshot's commit, so the commit never takes in a base that
    moved; the base is read after the write, and a moved one is planned again (the
    branch just made is deleted)."""
    snap = forge.snapshot("main")
    bb.before("POST", r"/src$", lambda: repo.bare.commit_files(
        "main", {"README.md": b"moved\n"}, "someone else"))
    with pytest.raises(ConflictError, match="moved"):
        propose(forge, snap)
    assert repo.bare.resolve(BRANCH) is None


def test_an_existing_branch_is_a_conflict_not_overwritten(bb: FakeBitbucket, repo: Repo,
                                                          forge: BitbucketForge) -> None:
    snap = forge.snapshot("main")
    bb.before("POST", r"/src$", lambda: repo.bare.commit_files(
        BRANCH, {"README.md": b"mine\n"}, "someone's branch"))
    with pytest.raises(ConflictError, match="already exists"):
        propose(forge, snap)
    assert (repo.bare.commit(repo.bare.resolve(BRANCH) or "") or {})["message"] == \
        "someone's branch"


def test_the_same_commit_by_another_run_is_not_taken_as_this_runs(
        bb: FakeBitbucket, repo: Repo, forge: BitbucketForge) -> None:
    """Another run wrote this very promotion a moment earlier: this run's first attempt
    reports the conflict (promote plans again and then reuses the proved tip) instead of
    claiming that commit as one it made itself."""
    snap = forge.snapshot("main")
    bare = repo.bare

    def other_run() -> None:
        tree = bare.write_tree_from(snap.commit, NEW)
        bare.update_ref(BRANCH, bare.commit_tree(tree, [snap.commit], MESSAGE), old="0" * 40)

    bb.before("POST", r"/src$", other_run)
    with pytest.raises(ConflictError, match="already exists"):
        propose(forge, snap)


def test_a_commit_whose_answer_was_lost_is_not_repeated(bb: FakeBitbucket, repo: Repo,
                                                        forge: BitbucketForge) -> None:
    snap = forge.snapshot("main")
    bb.fail("POST", r"/src$", 0, apply_then_fail=True)
    sha = propose(forge, snap)
    assert repo.bare.resolve(BRANCH) == sha
    assert bb.count("POST", r"/src$") == 1  # the retry found it instead


def replace_setup(bb: FakeBitbucket, repo: Repo,
                  forge: BitbucketForge) -> tuple[Snapshot, Head, int]:
    snap = forge.snapshot("main")
    propose(forge, snap)
    pr = forge.open_request(BRANCH, "main", RequestSpec("Promote", "body"))
    repo.bare.commit_files("main", {"README.md": b"newer\n"}, "someone else")
    head = forge.read_head(BRANCH)
    assert head is not None
    return forge.snapshot("main"), head, pr.number


def test_replace_rebuilds_the_branch_on_the_new_base(bb: FakeBitbucket, repo: Repo,
                                                     forge: BitbucketForge) -> None:
    snap, head, number = replace_setup(bb, repo, forge)
    bb.reset_counts()
    sha = forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=head)
    assert [m for m, _ in counts(bb)] == ["GET", "DELETE", "POST", "GET"]
    assert (repo.bare.commit(sha) or {})["parents"] == [snap.commit]
    assert repo.bare.resolve(BRANCH) == sha
    assert repo.pulls[number].state == "OPEN"


def test_a_request_declined_with_its_branch_is_opened_anew(bb: FakeBitbucket, repo: Repo,
                                                          forge: BitbucketForge) -> None:
    """Should Bitbucket decline the pull request when its branch is deleted for the
    rebuild, the promotion still ends with exactly one open request for the new commit."""
    from tests.hostile.forges import effects, request

    repo.decline_on_branch_delete = True
    repo.bare.commit_files("main", {"k8s/deploy.yaml": DEPLOY}, "a deployment")
    first = promote.run(forge, request("1.0.1", env=None), {}, [], effects()).to_json()
    repo.bare.commit_files("main", {"README.md": b"newer\n"}, "someone else")
    again = promote.run(fresh(bb), request("1.0.1", env=None), {}, [], effects()).to_json()
    assert again["status"] == "proposed" and again["commit"] != first["commit"]
    assert [p.state for p in bb.pulls(SLUG)] == ["DECLINED", "OPEN"]
    assert bb.pulls(SLUG)[1].source == first["branch"] == again["branch"]


def test_replace_refuses_when_someone_pushed_meanwhile(bb: FakeBitbucket, repo: Repo,
                                                       forge: BitbucketForge) -> None:
    snap, head, _ = replace_setup(bb, repo, forge)
    theirs = repo.bare.commit_files(BRANCH, {"README.md": b"x\n"}, "a push")
    with pytest.raises(ConflictError, match="moved"):
        forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=head)
    assert repo.bare.resolve(BRANCH) == theirs
    assert bb.count("DELETE") == 0


def test_a_push_between_the_delete_and_the_commit_is_kept(bb: FakeBitbucket, repo: Repo,
                                                          forge: BitbucketForge) -> None:
    """``parents`` on a branch that exists is a compare-and-swap: 409, never forced."""
    snap, head, _ = replace_setup(bb, repo, forge)
    pushed: list[str] = []
    bb.before("POST", r"/src$", lambda: pushed.append(repo.bare.commit_files(
        BRANCH, {"README.md": b"x\n"}, "a push")))
    with pytest.raises(ConflictError, match="moved"):
        forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=head)
    assert repo.bare.resolve(BRANCH) == pushed[0]


def test_changed_files_proves_only_plain_edits(bb: FakeBitbucket, repo: Repo,
                                               forge: BitbucketForge) -> None:
    bare = repo.bare
    main = bare.resolve("main") or ""

    def commit(entries: dict[str, tuple[str, str] | None], parents: list[str]) -> str:
        return bare.commit_tree(bare.write_tree_entries(main, entries), parents, "x")

    blob = bare.write_blob(b"new\n")
    edit = commit({"README.md": ("100644", blob)}, [main])
    assert forge.changed_files(edit) == {"README.md": blob}
    assert forge.changed_files(commit({"README.md": None}, [main])) is None  # deletion
    assert forge.changed_files(commit({"README.md": ("100755", blob)}, [main])) is None
    assert forge.changed_files(commit({"bin/blob.dat": ("100755", bare.write_blob(
        bytes(range(256))))}, [main])) is None  # a mode change alone
    assert forge.changed_files(commit({"README.md": ("120000", blob)}, [main])) is None
    assert forge.changed_files(commit({"new-link": ("120000", blob)}, [main])) is None
    assert forge.changed_files(commit({"README.md": None, "READ.md": (
        "100644", bare.read_tree(main)["README.md"][1])}, [main])) is None  # a rename
    assert forge.changed_files(commit({"README.md": ("100644", blob)}, [main, edit])) is None


# --- pull requests ------------------------------------------------------------------------


def test_open_find_update_close(bb: FakeBitbucket, repo: Repo) -> None:
    notes: list[str] = []
    forge = fresh(bb, warn=notes.append)
    propose(forge, forge.snapshot("main"))
    bb.reset_counts()
    spec = RequestSpec("Promote api 1.1.0", "the body", labels=("prod",), reviewers=("alice",))
    pr = forge.open_request(BRANCH, "main", spec)
    assert [m + p for m, p in counts(bb)] == [
        "GET/2.0/workspaces/acme/members", "POST/pullrequests"]
    assert notes == ["Bitbucket has no labels on pull requests: prod not set"]
    pull = repo.pulls[pr.number]
    assert [bb.nickname(r) for r in pull.reviewers] == ["alice"]
    assert pull.close_source_branch
    bb.reset_counts()
    found = forge.find_request(BRANCH, "main")
    assert found is not None and found.number == pr.number
    assert len(bb.requests) == 1 and "source.branch.name" in bb.requests[0].query
    bb.reset_counts()
    assert forge.update_request(found, spec) == found
    assert bb.requests == []  # nothing to change: no request
    forge.update_request(found, RequestSpec("Promote api 1.2.0", "new"))
    assert pull.title == "Promote api 1.2.0" and pull.description == "new"
    bb.fail("POST", r"/comments$", 0, apply_then_fail=True)
    forge.close_request(found, "Closed by promoter: superseded.")
    assert pull.state == "DECLINED" and pull.comments == ["Closed by promoter: superseded."]


def test_find_follows_pagination(bb: FakeBitbucket, repo: Repo,
                                 forge: BitbucketForge) -> None:
    snap = forge.snapshot("main")
    for i in range(3):
        forge.write_commit(f"other/{i}", snap, NEW, MESSAGE, replace=None)
        forge.open_request(f"other/{i}", "main", RequestSpec(f"other {i}", ""))
    statuses = {"SUCCESSFUL": 60}
    sha = repo.bare.resolve("other/0") or ""
    for i in range(statuses["SUCCESSFUL"]):
        bb.set_status(SLUG, sha, "SUCCESSFUL", key=f"k{i:02d}")
    bb.set_status(SLUG, sha, "FAILED", key="zz-last")  # on the second page
    bb.reset_counts()
    assert forge.checks(PullRequest(1, "", "other/0", "main"), sha) is ChecksState.FAILURE
    assert len(bb.requests) == 2


def test_a_next_link_to_another_host_is_not_followed(bb: FakeBitbucket, repo: Repo,
                                                     forge: BitbucketForge) -> None:
    with Recorder() as other:
        bb.fail("GET", r"/statuses$", 200, body={"values": [], "next": f"{other.root_url}/x"})
        with pytest.raises(ForgeError, match="promoter does not send the token") as caught:
            forge.checks(PullRequest(1, "", BRANCH, "main"), "a" * 40)
        assert not other.seen
    assert TOKEN not in str(caught.value)


def test_a_request_whose_answer_was_lost_is_not_opened_twice(bb: FakeBitbucket, repo: Repo,
                                                             forge: BitbucketForge) -> None:
    propose(forge, forge.snapshot("main"))
    bb.fail("POST", r"/pullrequests$", 502, apply_then_fail=True)
    forge.open_request(BRANCH, "main", RequestSpec("t", "b"))
    assert len(repo.pulls) == 1


def test_an_unknown_reviewer_is_a_config_error(bb: FakeBitbucket, repo: Repo,
                                               forge: BitbucketForge) -> None:
    propose(forge, forge.snapshot("main"))
    with pytest.raises(ConfigError, match="'nobody'"):
        forge.open_request(BRANCH, "main", RequestSpec("t", "b", reviewers=("nobody",)))
    assert repo.pulls == {}


# --- checks and merging -------------------------------------------------------------------


def opened(forge: BitbucketForge) -> tuple[str, PullRequest]:
    sha = propose(forge, forge.snapshot("main"))
    return sha, forge.open_request(BRANCH, "main", RequestSpec("t", "b"))


def test_checks_are_the_build_statuses(bb: FakeBitbucket, repo: Repo,
                                       forge: BitbucketForge) -> None:
    sha, pr = opened(forge)
    assert forge.checks(pr, sha) is ChecksState.NONE
    bb.set_status(SLUG, sha, "INPROGRESS", "build")
    assert forge.checks(pr, sha) is ChecksState.PENDING
    bb.set_status(SLUG, sha, "SUCCESSFUL", "build")
    assert forge.checks(pr, sha) is ChecksState.SUCCESS
    bb.set_status(SLUG, sha, "STOPPED", "lint")
    assert forge.checks(pr, sha) is ChecksState.FAILURE


def test_merge_is_refused_when_the_head_moved_before_it(bb: FakeBitbucket, repo: Repo,
                                                        forge: BitbucketForge) -> None:
    sha, pr = opened(forge)
    main = repo.bare.resolve("main")
    bb.before("GET", r"/pullrequests/\d+$", lambda: repo.bare.commit_files(
        BRANCH, {"envs/prod/values.yaml": b"evil\n"}, "a push"))
    with pytest.raises(ConflictError, match="moved"):
        forge.merge(pr, "merge", sha, "Merge\n\nPromoted-Image: x")
    assert repo.bare.resolve("main") == main
    assert bb.count("POST", r"/merge$") == 0


def test_a_head_that_moved_during_the_merge_is_reported_not_claimed(
        bb: FakeBitbucket, repo: Repo, forge: BitbucketForge) -> None:
    """The API takes no expected head: a push that lands between the read and the merge
    is caught on the merged pull request's source commit (exit 5), never reported as the
    proved commit merged."""
    sha, pr = opened(forge)
    bb.before("POST", r"/merge$", lambda: repo.bare.commit_files(
        BRANCH, {"envs/prod/values.yaml": b"evil\n"}, "a push"))
    with pytest.raises(ForgeError, match="not at the commit promoter proved") as caught:
        forge.merge(pr, "merge", sha)
    assert caught.value.code == 5


def test_merge_uses_promoters_message_and_closes_the_branch(bb: FakeBitbucket, repo: Repo,
                                                            forge: BitbucketForge) -> None:
    sha, pr = opened(forge)
    bb.reset_counts()
    outcome = forge.merge(pr, "squash", sha, "Promote api\n\nPromoted-Image: x")
    assert outcome.merged and [m for m, _ in counts(bb)] == ["GET", "GET", "POST"]
    tip = repo.bare.commit(repo.bare.resolve("main") or "") or {}
    assert tip["message"] == "Promote api\n\nPromoted-Image: x" and tip["parents"] != [sha]
    assert repo.bare.resolve(BRANCH) is None


def test_a_merge_whose_answer_was_lost_is_not_repeated(bb: FakeBitbucket, repo: Repo,
                                                       forge: BitbucketForge) -> None:
    sha, pr = opened(forge)
    bb.fail("POST", r"/merge$", 0, apply_then_fail=True)
    assert forge.merge(pr, "merge", sha).merged
    assert bb.count("POST", r"/merge$") == 1


def test_a_merge_answered_202_is_read_back(bb: FakeBitbucket, repo: Repo,
                                           forge: BitbucketForge) -> None:
    """A long merge answers 202 (task-status link): the pull request is read again."""
    sha, pr = opened(forge)
    bb.fail("POST", r"/merge$", 202, apply_then_fail=True, body={"task_id": "t1"})
    bb.reset_counts()
    assert forge.merge(pr, "merge", sha).merged
    assert [m for m, _ in counts(bb)] == ["GET", "GET", "POST", "GET"]


def test_merge_checks_refuse_until_the_builds_pass(bb: FakeBitbucket, repo: Repo,
                                                  forge: BitbucketForge) -> None:
    repo.required_builds = 1
    sha, pr = opened(forge)
    outcome = forge.merge(pr, "merge", sha)
    assert not outcome.merged and "merge checks" in outcome.reason
    bb.set_status(SLUG, sha, "SUCCESSFUL")
    assert forge.merge(pr, "merge", sha).merged


def test_auto_merge_is_never_scheduled_unpinned(bb: FakeBitbucket, repo: Repo,
                                                forge: BitbucketForge) -> None:
    sha, pr = opened(forge)
    bb.set_status(SLUG, sha, "INPROGRESS")
    bb.reset_counts()
    outcome = forge.enable_auto_merge(pr, "merge", sha)
    assert not outcome.merged and not outcome.auto_merge
    assert "--merge-timeout" in outcome.reason
    assert [m for m, _ in counts(bb)] == ["GET"]  # the statuses; nothing scheduled
    bb.set_status(SLUG, sha, "SUCCESSFUL")
    assert forge.enable_auto_merge(pr, "merge", sha).merged  # green now: merged, pinned


def test_request_counts_of_the_remaining_steps(bb: FakeBitbucket, repo: Repo,
                                               forge: BitbucketForge) -> None:
    sha, pr = opened(forge)
    other = fresh(bb)
    bb.reset_counts()
    other.changed_files(sha)
    # the commit, the diffstat, then per file (2, both modified): meta, parent's meta, bytes
    assert len(bb.requests) == 2 + 2 * 3
    bb.reset_counts()
    other.changed_files(sha)
    assert len(bb.requests) == 1 + 2 * 3  # the commit is cached: it never changes
    for step, expected in (
            (lambda: forge.find_request(BRANCH, "main"), ["GET"]),
            (lambda: forge.checks(pr, sha), ["GET"]),
            (lambda: forge.close_request(pr, "bye"), ["POST", "POST"]),
            (lambda: forge.delete_branch(BRANCH), ["DELETE"]),
            (lambda: forge.delete_branch(BRANCH), ["DELETE"]),  # already gone: fine
            (lambda: forge.log("main", 5), ["GET", "GET"])):
        bb.reset_counts()
        step()
        assert [m for m, _ in counts(bb)] == expected, step


# --- tokens, errors, retries --------------------------------------------------------------


def test_a_bad_token_is_an_auth_error_without_the_token(bb: FakeBitbucket, repo: Repo) -> None:
    bad = "bb-wrong-token-999999999999"
    with pytest.raises(AuthError) as caught:
        BitbucketForge(SLUG, api_url=bb.api, token=bad, sleep=Sleeps()).read_head("main")
    assert bad not in str(caught.value) and "BITBUCKET_TOKEN" in (caught.value.hint or "")


def test_an_app_password_goes_as_basic_auth(bb: FakeBitbucket, repo: Repo) -> None:
    forge = BitbucketForge(SLUG, api_url=bb.api, token=TOKEN, username="promoter-bot",
                           sleep=Sleeps())
    assert forge.read_head("main") is not None
    assert bb.auth_seen[-1].startswith("Basic ")


def test_a_read_only_token_cannot_commit(bb: FakeBitbucket, repo: Repo) -> None:
    forge = BitbucketForge(SLUG, api_url=bb.api, token=READ_TOKEN, sleep=Sleeps())
    with pytest.raises(AuthError, match="403"):
        propose(forge, forge.snapshot("main"))


def test_the_token_goes_only_to_the_api_origin(bb: FakeBitbucket, repo: Repo,
                                               forge: BitbucketForge) -> None:
    with Recorder() as other:
        bb.fail("GET", r"/refs/branches/main$", 302,
                headers={"Location": f"{other.root_url}/steal"})
        with pytest.raises(ForgeError, match="redirect") as caught:
            forge.snapshot("main")
        assert not other.seen
        assert TOKEN not in str(caught.value)
    assert all(a == f"Bearer {TOKEN}" for a in bb.auth_seen)


def test_an_archive_redirected_elsewhere_is_fetched_without_the_token(
        bb: FakeBitbucket, repo: Repo, forge: BitbucketForge) -> None:
    """bitbucket.org may hand the archive to a CDN: that host gets no credential."""
    with Recorder() as cdn:
        bb.archive_redirect = cdn.root_url
        with pytest.raises(ForgeError):
            forge.snapshot("main")
        assert cdn.seen  # followed, as a pre-signed link is
        assert TOKEN not in cdn.headers_seen()
        assert all("authorization" not in {k.lower() for k in h} for _, _, h in cdn.seen)


def test_the_web_host_of_the_cloud_is_bitbucket_org() -> None:
    forge = BitbucketForge(SLUG, token=TOKEN)
    assert (forge.api_url, forge.web_url) == ("https://api.bitbucket.org",
                                              "https://bitbucket.org")


def test_5xx_and_429_are_retried_within_the_policy(bb: FakeBitbucket, repo: Repo) -> None:
    sleeps = Sleeps()
    forge = BitbucketForge(SLUG, api_url=bb.api, token=TOKEN, sleep=sleeps)
    bb.fail("GET", r"/get/", 503, times=2)
    bb.fail("POST", r"/src$", 429, headers={"Retry-After": "3"})
    propose(forge, forge.snapshot("main"))
    assert len(sleeps) == 3 and max(sleeps) >= 3
    bb.fail("GET", r"/refs/branches/", 500, times=1000)
    with pytest.raises(ForgeError, match="kept failing") as caught:
        BitbucketForge(SLUG, api_url=bb.api, token=TOKEN, sleep=Sleeps(),
                       retry_timeout=5).read_head(BRANCH)
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize("url", ["https://bitbucket.example.com",
                                 "https://bitbucket.example.com/rest/api/1.0",
                                 "https://git.corp/bitbucket/rest/api/latest"])
def test_the_cloud_client_refuses_a_data_center_url(url: str) -> None:
    with pytest.raises(UsageError, match="not Bitbucket Cloud's API") as caught:
        BitbucketForge(SLUG, api_url=url, token=TOKEN)
    assert caught.value.code == 2


def test_bad_arguments(bb: FakeBitbucket, repo: Repo) -> None:
    with pytest.raises(UsageError):
        BitbucketForge("config", api_url=bb.api, token=TOKEN)
    with pytest.raises(UsageError):
        BitbucketForge(SLUG, api_url="api.bitbucket.org", token=TOKEN)
    with pytest.raises(UsageError, match="signing"):
        fresh(bb).use_identity(None, sign=True)


def test_the_fake_answers_with_bitbuckets_shapes(bb: FakeBitbucket, repo: Repo,
                                                 forge: BitbucketForge) -> None:
    """Error bodies ``{"type": "error", "error": {"message"}}``, paginated lists, 409 on a
    ``parents`` that is not the branch's tip, 400 on a second open pull request."""
    api = f"{bb.api}/repositories/{SLUG}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    sha, _ = opened(forge)
    again = requests.post(f"{api}/src", headers=auth, timeout=5, files={
        "branch": (None, BRANCH), "parents": (None, repo.bare.resolve("main") or ""),
        "x": ("x", b"y")})
    assert again.status_code == 409 and again.json()["type"] == "error"
    twice = requests.post(f"{api}/pullrequests", headers=auth, timeout=5, json={
        "title": "t", "source": {"branch": {"name": BRANCH}}})
    assert twice.status_code == 400 and "Only one" in twice.json()["error"]["message"]
    listed = requests.get(f"{api}/pullrequests", headers=auth, timeout=5,
                          params={"pagelen": 1}).json()
    assert set(listed) >= {"values", "pagelen", "size", "page"} and "next" not in listed
    assert listed["values"][0]["source"]["commit"]["hash"] == sha[:12]
    assert requests.get(f"{api}/refs/branches/nope", headers=auth, timeout=5).status_code == 404
    assert requests.get(api, timeout=5).status_code == 404  # private: no token, no repo


# --- CLI and CI context -------------------------------------------------------------------

DEPLOY = (b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n"
          b"    spec:\n      containers:\n      - name: api\n"
          b"        image: ghcr.io/acme/api:1.0.0\n")


def test_the_cli_reads_bitbucket_tokens(bb: FakeBitbucket, repo: Repo,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("PROMOTE_TOKEN", "BITBUCKET_TOKEN", "BITBUCKET_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    repo.bare.commit_files("main", {"k8s/deploy.yaml": DEPLOY}, "a deployment")
    args = ["--repo", SLUG, "--forge", "bitbucket", "--api-url", bb.api,
            "--image", "ghcr.io/acme/api:1.1.0", "--dry-run", "--output", "json"]
    assert run(args) == 2  # no token
    capsys.readouterr()
    monkeypatch.setenv("BITBUCKET_TOKEN", TOKEN)
    assert run(args) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["status"] == "dry-run" and TOKEN not in out + err
    monkeypatch.setenv("BITBUCKET_USERNAME", "promoter-bot")  # an app password: Basic
    assert run(args) == 0
    capsys.readouterr()
    assert bb.auth_seen[-1].startswith("Basic ")


@pytest.mark.parametrize(("url", "kind"), [
    ("https://api.bitbucket.org", "BitbucketForge"),
    ("https://api.bitbucket.org/2.0/", "BitbucketForge"),
    ("http://127.0.0.1:9/2.0", "BitbucketForge"),  # a Cloud-compatible API root
    ("https://bitbucket.example.com", "BitbucketServerForge"),
    ("https://git.corp/bitbucket/rest/api/1.0", "BitbucketServerForge")])
def test_the_api_url_chooses_cloud_or_data_center(url: str, kind: str) -> None:
    made = bitbucket.connect(SLUG, api_url=url, token=TOKEN)
    assert type(made).__name__ == kind
    made.close()


PIPELINES_ENV = {"BITBUCKET_BUILD_NUMBER": "17", "BITBUCKET_COMMIT": "a" * 40,
                 "BITBUCKET_REPO_FULL_NAME": "acme/api", "BITBUCKET_BRANCH": "main",
                 "BITBUCKET_WORKSPACE": "acme", "BITBUCKET_REPO_SLUG": "api",
                 "BITBUCKET_PIPELINE_UUID": "{0f0e0d0c-1111-4222-8333-444455556666}",
                 "BITBUCKET_STEP_TRIGGERER_UUID": "{aaaa}", "CI": "true"}


def test_bitbucket_pipelines_is_detected() -> None:
    ctx = context.detect(PIPELINES_ENV)
    assert ctx.kind == "bitbucket"
    assert ctx.source_url == "https://bitbucket.org/acme/api"
    assert ctx.pipeline_url == "https://bitbucket.org/acme/api/pipelines/results/17"
    assert ctx.ref == "main" and ctx.run_number == 17
    assert ("Source-Commit", "a" * 40) in context.trailers(ctx)
    hostile = context.detect(PIPELINES_ENV | {"BITBUCKET_REPO_FULL_NAME": "acme/api\nX: y",
                                              "BITBUCKET_BUILD_NUMBER": "17; rm"})
    assert hostile.source_repo is None and hostile.pipeline_url is None


def test_inside_bitbucket_pipelines_the_forge_is_the_default(
        bb: FakeBitbucket, repo: Repo, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in PIPELINES_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("BITBUCKET_TOKEN", TOKEN)
    repo.bare.commit_files("main", {"k8s/deploy.yaml": DEPLOY}, "a deployment")
    code = run(["--repo", SLUG, "--api-url", bb.api, "--image", "ghcr.io/acme/api:1.1.0",
                "--dry-run", "--output", "json"])
    out, _ = capsys.readouterr()
    assert code == 0, out
    assert json.loads(out)["forge"] == "bitbucket"


def test_labels_asked_for_are_a_warning_through_the_cli(
        bb: FakeBitbucket, repo: Repo, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BITBUCKET_TOKEN", TOKEN)
    repo.bare.commit_files("main", {"k8s/deploy.yaml": DEPLOY}, "a deployment")
    code = run(["--repo", SLUG, "--forge", "bitbucket", "--api-url", bb.api, "--image",
                "ghcr.io/acme/api:1.1.0", "--label", "prod", "--output", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["status"] == "proposed"
    assert "warning: Bitbucket has no labels on pull requests: prod not set" in err
