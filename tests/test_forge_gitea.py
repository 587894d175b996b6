"""The Gitea / Forgejo forge against the fake Gitea server: real HTTP, real bare repos.

Someone else's moves (a push to the base or the promotion branch) are real git commits
in the bare repo, made at the moment a given request arrives (``FakeGitea.before``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from promoter import context, identity
from promoter.cli import run
from promoter.errors import AuthError, ConfigError, ConflictError, ForgeError, UsageError
from promoter.forges.base import ChecksState, Head, RequestSpec, Snapshot, git_blob_sha
from promoter.forges.gitea import GiteaForge
from tests.fakes.gitea import FakeGitea, Repo
from tests.fakes.githttp import Recorder

TOKEN = "gitea-very-secret-token-0123456789"
READ_TOKEN = "gitea-read-only-token-abcdef012345"
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
def gt(tmp_path: Path) -> Iterator[FakeGitea]:
    with FakeGitea(tmp_path) as server:
        server.add_token(TOKEN)
        server.add_token(READ_TOKEN, user="reader", write=False)
        server.add_user("alice")
        yield server


@pytest.fixture
def repo(gt: FakeGitea) -> Repo:
    repo = gt.add_repo(SLUG, FILES)
    gt.add_label(SLUG, "prod")
    gt.add_label(SLUG, "promotion")
    main = repo.bare.resolve("main") or ""
    tree = repo.bare.write_tree_entries(main, {
        "envs/link.yaml": ("120000", repo.bare.write_blob(b"dev/app.yaml"))})
    sha = repo.bare.commit_tree(tree, [main], "Add a link")
    assert repo.bare.update_ref("main", sha, old=main)
    gt.reset_counts()
    return repo


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def forge(gt: FakeGitea, repo: Repo) -> Iterator[GiteaForge]:
    made = GiteaForge(SLUG, api_url=gt.url, token=TOKEN, sleep=Sleeps())
    yield made
    made.close()


def fresh(gt: FakeGitea) -> GiteaForge:
    return GiteaForge(SLUG, api_url=gt.url, token=TOKEN, sleep=Sleeps())


def counts(gt: FakeGitea) -> list[tuple[str, str]]:
    prefix = f"/api/v1/repos/{SLUG}"
    return [(r.method, r.path.removeprefix(prefix)) for r in gt.requests]


def propose(forge: GiteaForge, snap: Snapshot, files: dict[str, bytes] | None = None) -> str:
    return forge.write_commit(BRANCH, snap, files or NEW, MESSAGE, replace=None)


# --- reading ------------------------------------------------------------------------------


def test_snapshot_is_every_file_byte_for_byte(gt: FakeGitea, repo: Repo,
                                              forge: GiteaForge) -> None:
    snap = forge.snapshot(None)
    assert snap.branch == "main" and snap.commit == repo.bare.resolve("main")
    assert {k: v for k, v in snap.files.items()} == FILES
    assert snap.links == {"envs/link.yaml": "dev/app.yaml"}
    assert [m for m, _ in counts(gt)] == ["GET"] * 4  # repo, branch, archive, root tree
    gt.reset_counts()
    forge.snapshot("main")
    assert [p.split("/")[1] for _, p in counts(gt)] == ["branches", "archive", "git"]


def test_a_filtered_policy_file_is_read_from_its_blob(gt: FakeGitea, repo: Repo,
                                                      forge: GiteaForge) -> None:
    repo.bare.commit_files("main", {".gitattributes": b".promoter.yaml export-ignore\n"},
                           "hide the policy from archives")
    gt.reset_counts()
    snap = forge.snapshot("main")
    assert snap.files[".promoter.yaml"] == FILES[".promoter.yaml"]
    assert counts(gt)[-1][1].startswith("/git/blobs/")


def test_a_linked_policy_file_stops_the_run(gt: FakeGitea, repo: Repo,
                                            forge: GiteaForge) -> None:
    main = repo.bare.resolve("main") or ""
    tree = repo.bare.write_tree_entries(main, {
        ".promoter.yaml": ("120000", repo.bare.write_blob(b"README.md"))})
    repo.bare.update_ref("main", repo.bare.commit_tree(tree, [main], "link"), old=main)
    with pytest.raises(ConfigError) as caught:
        forge.snapshot("main")
    assert caught.value.code == 2 and "symbolic link" in str(caught.value)


def test_a_missing_base_is_a_usage_error(repo: Repo, forge: GiteaForge) -> None:
    with pytest.raises(UsageError, match="'nope' does not exist"):
        forge.snapshot("nope")


def test_read_head_and_log_follow_first_parents(gt: FakeGitea, repo: Repo,
                                                forge: GiteaForge) -> None:
    assert forge.read_head(BRANCH) is None
    assert counts(gt) == [("GET", f"/branches/{BRANCH}")]
    snap = forge.snapshot("main")
    sha = propose(forge, snap)
    gt.reset_counts()
    head = fresh(gt).read_head(BRANCH)
    assert head == Head(sha, MESSAGE + "\n", (snap.commit,))
    assert len(gt.requests) == 2  # the branch, then its commit for the parents
    repo.bare.merge("main", sha, "merge", "Merge promotion")
    history = forge.log("main", 10)
    assert [c.message.splitlines()[0] for c in history] == [
        "Merge promotion", "Add a link", "Initial commit"]  # not the branch's own commit


# --- the commit ---------------------------------------------------------------------------


def test_one_commit_changes_several_files_in_one_request(gt: FakeGitea, repo: Repo,
                                                         forge: GiteaForge) -> None:
    snap = forge.snapshot("main")
    gt.reset_counts()
    sha = propose(forge, snap)
    assert counts(gt) == [("POST", "/contents")]
    info = repo.bare.commit(sha) or {}
    assert info["parents"] == [snap.commit]
    assert repo.bare.read_file(sha, "envs/dev/app.yaml") == NEW["envs/dev/app.yaml"]
    assert repo.bare.read_file(sha, "bin/blob.dat") == FILES["bin/blob.dat"]
    assert fresh(gt).changed_files(sha) == {p: git_blob_sha(d) for p, d in NEW.items()}


def test_an_existing_branch_is_a_conflict_not_overwritten(gt: FakeGitea, repo: Repo,
                                                          forge: GiteaForge) -> None:
    snap = forge.snapshot("main")
    theirs = repo.bare.commit_files(BRANCH, {"README.md": b"mine\n"}, "someone's branch")
    with pytest.raises(ConflictError, match="already exists"):
        propose(forge, snap)
    assert repo.bare.resolve(BRANCH) == theirs


def test_a_base_that_moved_before_the_write_is_planned_again(gt: FakeGitea, repo: Repo,
                                                             forge: GiteaForge) -> None:
    """Gitea commits on the base as it is: a commit not on the snapshot is a conflict."""
    snap = forge.snapshot("main")
    gt.before("POST", r"/contents$", lambda: repo.bare.commit_files(
        "main", {"README.md": b"moved\n"}, "someone else"))
    with pytest.raises(ConflictError, match="moved"):
        propose(forge, snap)


def test_a_file_changed_on_the_base_is_refused_by_its_blob_sha(gt: FakeGitea, repo: Repo,
                                                               forge: GiteaForge) -> None:
    snap = forge.snapshot("main")
    repo.bare.commit_files("main", {"envs/dev/app.yaml": b"theirs\n"}, "hotfix")
    with pytest.raises(ConflictError, match="changed under the promotion"):
        propose(forge, snap)
    assert repo.bare.resolve(BRANCH) is None


def test_a_commit_whose_answer_was_lost_is_not_repeated(gt: FakeGitea, repo: Repo,
                                                        forge: GiteaForge) -> None:
    snap = forge.snapshot("main")
    gt.fail("POST", r"/contents$", 0, apply_then_fail=True)
    sha = propose(forge, snap)
    assert repo.bare.resolve(BRANCH) == sha
    assert gt.count("POST", r"/contents$") == 1  # the retry found it instead


def replace_setup(gt: FakeGitea, repo: Repo, forge: GiteaForge) -> tuple[Snapshot, Head, int]:
    snap = forge.snapshot("main")
    propose(forge, snap)
    pr = forge.open_request(BRANCH, "main", RequestSpec("Promote", "body"))
    repo.bare.commit_files("main", {"README.md": b"newer\n"}, "someone else")
    head = forge.read_head(BRANCH)
    assert head is not None
    return forge.snapshot("main"), head, pr.number


def test_replace_moves_the_branch_by_compare_and_swap(gt: FakeGitea, repo: Repo,
                                                      forge: GiteaForge) -> None:
    snap, head, number = replace_setup(gt, repo, forge)
    gt.reset_counts()
    sha = forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=head)
    assert [m for m, _ in counts(gt)] == ["GET", "POST", "PUT", "DELETE"]
    assert (repo.bare.commit(sha) or {})["parents"] == [snap.commit]
    assert repo.bare.resolve(BRANCH) == sha
    assert repo.pulls[number].state == "open"  # never deleted under its request
    assert list(repo.bare.list_refs("refs/heads/")) == ["refs/heads/main",
                                                        f"refs/heads/{BRANCH}"]


def test_a_retried_move_stops_at_a_push_made_between_attempts(gt: FakeGitea, repo: Repo,
                                                               forge: GiteaForge) -> None:
    """The compare-and-swap move fails (502, not applied); before the retry someone
    pushes to the branch. The retry sees a tip that is neither the new commit nor the one
    it replaces and stops there: no second move is sent, the push stays."""
    snap, head, _ = replace_setup(gt, repo, forge)
    pushed: list[str] = []

    def push_while_waiting(_seconds: float) -> None:
        pushed.append(repo.bare.commit_files(BRANCH, {"README.md": b"x\n"}, "a push"))

    retrying = GiteaForge(SLUG, api_url=gt.url, token=TOKEN, sleep=push_while_waiting)
    gt.fail("PUT", r"/branches/", 502)
    gt.reset_counts()
    with pytest.raises(ConflictError, match="moved"):
        retrying.write_commit(BRANCH, snap, NEW, MESSAGE, replace=head)
    retrying.close()
    assert repo.bare.resolve(BRANCH) == pushed[0]
    assert gt.count("PUT") == 1

def test_replace_refuses_when_someone_pushed_meanwhile(gt: FakeGitea, repo: Repo,
                                                       forge: GiteaForge) -> None:
    snap, head, _ = replace_setup(gt, repo, forge)
    theirs = repo.bare.commit_files(BRANCH, {"README.md": b"x\n"}, "a push")
    with pytest.raises(ConflictError, match="moved"):
        forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=head)
    assert repo.bare.resolve(BRANCH) == theirs


def test_replace_loses_a_race_at_the_branch_move(gt: FakeGitea, repo: Repo,
                                                 forge: GiteaForge) -> None:
    """A push between the scratch commit and the move: the old_commit_id guard holds."""
    snap, head, _ = replace_setup(gt, repo, forge)
    pushed: list[str] = []
    gt.before("PUT", r"/branches/", lambda: pushed.append(repo.bare.commit_files(
        BRANCH, {"README.md": b"x\n"}, "a push")))
    with pytest.raises(ConflictError, match="moved"):
        forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=head)
    assert repo.bare.resolve(BRANCH) == pushed[0]
    assert list(repo.bare.list_refs("refs/heads/")) == ["refs/heads/main",
                                                        f"refs/heads/{BRANCH}"]


def test_a_branch_deleted_before_the_move_is_a_conflict(gt: FakeGitea, repo: Repo,
                                                         forge: GiteaForge) -> None:
    snap, head, _ = replace_setup(gt, repo, forge)
    gt.before("PUT", r"/branches/", lambda: repo.bare.delete_ref(BRANCH))
    with pytest.raises(ConflictError, match="deleted"):
        forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=head)
    assert list(repo.bare.list_refs("refs/heads/")) == ["refs/heads/main"]


def test_a_server_without_branch_moves_is_refused_not_deleted(gt: FakeGitea, repo: Repo,
                                                              forge: GiteaForge) -> None:
    snap, head, number = replace_setup(gt, repo, forge)
    repo.branch_update = False
    with pytest.raises(ForgeError, match="compare-and-swap") as caught:
        forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=head)
    assert caught.value.code == 5
    assert repo.bare.resolve(BRANCH) == head.sha
    assert repo.pulls[number].state == "open"
    assert len(repo.bare.list_refs("refs/heads/")) == 2  # the scratch branch is gone


def test_a_lost_answer_to_the_branch_move_is_not_repeated(gt: FakeGitea, repo: Repo,
                                                          forge: GiteaForge) -> None:
    snap, head, _ = replace_setup(gt, repo, forge)
    gt.fail("PUT", r"/branches/", 0, apply_then_fail=True)
    sha = forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=head)
    assert repo.bare.resolve(BRANCH) == sha
    assert gt.count("PUT") == 1  # the retry read the branch and found it moved


def test_changed_files_proves_only_plain_edits(gt: FakeGitea, repo: Repo,
                                               forge: GiteaForge) -> None:
    bare = repo.bare
    main = bare.resolve("main") or ""

    def commit(entries: dict[str, tuple[str, str] | None], parents: list[str]) -> str:
        return bare.commit_tree(bare.write_tree_entries(main, entries), parents, "x")

    blob = bare.write_blob(b"new\n")
    edit = commit({"README.md": ("100644", blob)}, [main])
    assert forge.changed_files(edit) == {"README.md": blob}
    assert forge.changed_files(commit({"README.md": None}, [main])) is None  # deletion
    assert forge.changed_files(commit({"README.md": ("100755", blob)}, [main])) is None
    assert forge.changed_files(commit({"README.md": ("120000", blob)}, [main])) is None
    assert forge.changed_files(commit({"new-link": ("120000", blob)}, [main])) is None
    assert forge.changed_files(commit({"README.md": ("100644", blob)}, [main, edit])) is None


# --- pull requests ------------------------------------------------------------------------


def test_open_find_update_close(gt: FakeGitea, repo: Repo, forge: GiteaForge) -> None:
    propose(forge, forge.snapshot("main"))
    gt.reset_counts()
    spec = RequestSpec("Promote api 1.1.0", "the body", labels=("prod",), reviewers=("alice",))
    pr = forge.open_request(BRANCH, "main", spec)
    assert [m + p for m, p in counts(gt)] == [
        "GET/labels", "POST/pulls", f"POST/pulls/{pr.number}/requested_reviewers"]
    pull = repo.pulls[pr.number]
    assert gt.label_names(SLUG, pull) == ["prod"] and pull.reviewers == ["alice"]
    found = forge.find_request(BRANCH, "main")
    assert found is not None and found.number == pr.number and found.labels == ("prod",)
    gt.reset_counts()
    assert forge.update_request(found, spec) == found
    assert gt.requests == []  # nothing to change: no request
    pull.labels.append(gt.add_label(SLUG, "by-a-person"))
    found = forge.find_request(BRANCH, "main")
    assert found is not None
    forge.update_request(found, RequestSpec("Promote api 1.2.0", "new", labels=("promotion",)))
    assert pull.title == "Promote api 1.2.0"
    assert gt.label_names(SLUG, pull) == ["prod", "by-a-person", "promotion"]  # added only
    gt.fail("POST", r"/comments$", 0, apply_then_fail=True)
    forge.close_request(found, "Closed by promoter: superseded.")
    assert pull.state == "closed" and pull.comments == ["Closed by promoter: superseded."]


def test_a_request_whose_answer_was_lost_is_not_opened_twice(gt: FakeGitea, repo: Repo,
                                                             forge: GiteaForge) -> None:
    propose(forge, forge.snapshot("main"))
    gt.fail("POST", r"/pulls$", 502, apply_then_fail=True)
    forge.open_request(BRANCH, "main", RequestSpec("t", "b"))
    assert len(repo.pulls) == 1


def test_an_unknown_label_is_a_config_error(gt: FakeGitea, repo: Repo,
                                            forge: GiteaForge) -> None:
    propose(forge, forge.snapshot("main"))
    with pytest.raises(ConfigError, match="'nope'"):
        forge.open_request(BRANCH, "main", RequestSpec("t", "b", labels=("nope",)))
    assert repo.pulls == {}


def test_a_draft_is_a_wip_title_and_is_not_merged(gt: FakeGitea, repo: Repo,
                                                  forge: GiteaForge) -> None:
    sha = propose(forge, forge.snapshot("main"))
    pr = forge.open_request(BRANCH, "main", RequestSpec("t", "b", draft=True))
    assert pr.title == "WIP: t"
    outcome = forge.merge(pr, "merge", sha)
    assert not outcome.merged and "Work in progress" in outcome.reason


# --- checks and merging -------------------------------------------------------------------


def opened(gt: FakeGitea, forge: GiteaForge) -> tuple[str, object]:
    sha = propose(forge, forge.snapshot("main"))
    return sha, forge.open_request(BRANCH, "main", RequestSpec("t", "b"))


def test_checks_are_the_combined_status(gt: FakeGitea, repo: Repo, forge: GiteaForge) -> None:
    sha, pr = opened(gt, forge)
    assert forge.checks(pr, sha) is ChecksState.NONE  # type: ignore[arg-type]
    gt.set_status(SLUG, sha, "pending", "build")
    assert forge.checks(pr, sha) is ChecksState.PENDING  # type: ignore[arg-type]
    gt.set_status(SLUG, sha, "success", "build")
    gt.set_status(SLUG, sha, "failure", "lint")
    assert forge.checks(pr, sha) is ChecksState.FAILURE  # type: ignore[arg-type]


def test_merge_is_pinned_to_the_proved_head(gt: FakeGitea, repo: Repo,
                                            forge: GiteaForge) -> None:
    sha, pr = opened(gt, forge)
    main = repo.bare.resolve("main")
    gt.before("POST", r"/merge$", lambda: repo.bare.commit_files(
        BRANCH, {"envs/prod/values.yaml": b"evil\n"}, "a push"))
    with pytest.raises(ConflictError, match="moved"):
        forge.merge(pr, "merge", sha, "Merge\n\nPromoted-Image: x")  # type: ignore[arg-type]
    assert repo.bare.resolve("main") == main


def test_merge_uses_promoters_message_and_deletes_the_branch(gt: FakeGitea, repo: Repo,
                                                             forge: GiteaForge) -> None:
    sha, pr = opened(gt, forge)
    gt.reset_counts()
    outcome = forge.merge(pr, "squash", sha, "Promote api\n\nPromoted-Image: x")  # type: ignore[arg-type]
    assert outcome.merged and len(gt.requests) == 1
    tip = repo.bare.commit(repo.bare.resolve("main") or "") or {}
    assert tip["message"] == "Promote api\n\nPromoted-Image: x"
    assert repo.bare.resolve(BRANCH) is None


def test_a_merge_whose_answer_was_lost_is_not_repeated(gt: FakeGitea, repo: Repo,
                                                       forge: GiteaForge) -> None:
    sha, pr = opened(gt, forge)
    gt.fail("POST", r"/merge$", 0, apply_then_fail=True)
    assert forge.merge(pr, "merge", sha).merged  # type: ignore[arg-type]
    assert gt.count("POST", r"/merge$") == 1


def test_auto_merge_is_scheduled_then_gitea_merges_on_green(gt: FakeGitea, repo: Repo,
                                                            forge: GiteaForge) -> None:
    sha, pr = opened(gt, forge)
    gt.set_status(SLUG, sha, "pending")
    gt.reset_counts()
    outcome = forge.enable_auto_merge(pr, "merge", sha, "Promote\n\nX: y")  # type: ignore[arg-type]
    assert outcome.auto_merge and not outcome.merged
    assert [m for m, _ in counts(gt)] == ["POST", "GET"]  # schedule, then check the head
    gt.set_status(SLUG, sha, "success")
    assert repo.pulls[1].merged and repo.pulls[1].merged_head == sha


def test_auto_merge_is_cancelled_when_the_head_moved_while_scheduling(
        gt: FakeGitea, repo: Repo, forge: GiteaForge) -> None:
    """Gitea's scheduled merge takes no head commit: promoter checks the head right after
    scheduling and cancels when it is not the proved one."""
    sha, pr = opened(gt, forge)
    gt.set_status(SLUG, sha, "pending")
    gt.before("GET", r"/pulls/\d+$", lambda: repo.bare.commit_files(
        BRANCH, {"envs/prod/values.yaml": b"evil\n"}, "a push"))
    with pytest.raises(ConflictError, match="moved"):
        forge.enable_auto_merge(pr, "merge", sha)  # type: ignore[arg-type]
    assert repo.pulls[1].scheduled is None
    gt.set_status(SLUG, repo.bare.resolve(BRANCH) or "", "success")
    assert not repo.pulls[1].merged


def test_auto_merge_of_a_mergeable_request_merges_now_pinned(gt: FakeGitea, repo: Repo,
                                                             forge: GiteaForge) -> None:
    sha, pr = opened(gt, forge)
    assert forge.enable_auto_merge(pr, "merge", sha).merged  # type: ignore[arg-type]
    assert repo.pulls[1].merged_head == sha


def test_request_counts_of_the_remaining_steps(gt: FakeGitea, repo: Repo,
                                               forge: GiteaForge) -> None:
    sha, pr = opened(gt, forge)
    other = fresh(gt)
    gt.reset_counts()
    other.changed_files(sha)
    assert [m + p.split("?")[0][:11] for m, p in counts(gt)] == [
        "GET/git/commit", "GET/git/trees/", "GET/git/trees/"]  # the commit, then 2 trees
    gt.reset_counts()
    other.changed_files(sha)
    assert len(gt.requests) == 2  # the commit is cached: it never changes
    for step, expected in (
            (lambda: forge.find_request(BRANCH, "main"), ["GET"]),
            (lambda: forge.checks(pr, sha), ["GET"]),  # type: ignore[arg-type]
            (lambda: forge.close_request(pr, "bye"), ["POST", "PATCH"]),  # type: ignore[arg-type]
            (lambda: forge.delete_branch(BRANCH), ["DELETE"]),
            (lambda: forge.delete_branch(BRANCH), ["DELETE"]),  # already gone: fine
            (lambda: forge.log("main", 5), ["GET"])):
        gt.reset_counts()
        step()
        assert [m for m, _ in counts(gt)] == expected, step


# --- tokens, errors, retries --------------------------------------------------------------


def test_a_bad_token_is_an_auth_error_without_the_token(gt: FakeGitea, repo: Repo) -> None:
    bad = "gitea-wrong-token-999999999999"
    with pytest.raises(AuthError) as caught:
        GiteaForge(SLUG, api_url=gt.url, token=bad, sleep=Sleeps()).read_head("main")
    assert bad not in str(caught.value) and "GITEA_TOKEN" in (caught.value.hint or "")


def test_a_read_only_token_cannot_commit(gt: FakeGitea, repo: Repo) -> None:
    forge = GiteaForge(SLUG, api_url=gt.url, token=READ_TOKEN, sleep=Sleeps())
    with pytest.raises(AuthError, match="403"):
        propose(forge, forge.snapshot("main"))


def test_the_token_goes_only_to_the_api_origin(gt: FakeGitea, repo: Repo,
                                               forge: GiteaForge) -> None:
    with Recorder() as other:
        gt.fail("GET", r"/branches/main$", 302,
                headers={"Location": f"{other.root_url}/steal"})
        with pytest.raises(ForgeError, match="redirect") as caught:
            forge.snapshot("main")
        assert TOKEN not in other.headers_seen() and not other.seen
        assert TOKEN not in str(caught.value)
    assert all(a == f"token {TOKEN}" for a in gt.auth_seen)


def test_5xx_and_429_are_retried_within_the_policy(gt: FakeGitea, repo: Repo) -> None:
    sleeps = Sleeps()
    forge = GiteaForge(SLUG, api_url=gt.url, token=TOKEN, sleep=sleeps)
    gt.fail("GET", r"/archive/", 503, times=2)
    gt.fail("POST", r"/contents$", 429, headers={"Retry-After": "3"})
    propose(forge, forge.snapshot("main"))
    assert len(sleeps) == 3 and max(sleeps) >= 3
    gt.fail("GET", r"/branches/", 500, times=1000)
    with pytest.raises(ForgeError, match="kept failing") as caught:
        GiteaForge(SLUG, api_url=gt.url, token=TOKEN, sleep=Sleeps(),
                   retry_timeout=5).read_head(BRANCH)
    assert TOKEN not in str(caught.value)


def test_bad_arguments_and_the_api_suffix(gt: FakeGitea, repo: Repo) -> None:
    with pytest.raises(UsageError):
        GiteaForge("config", api_url=gt.url, token=TOKEN)
    with pytest.raises(UsageError):
        GiteaForge(SLUG, api_url="gitea.example.com", token=TOKEN)
    forge = GiteaForge(SLUG, api_url=gt.url + "/api/v1/", token=TOKEN)
    assert forge.snapshot(None).branch == "main"


def test_the_fake_answers_with_giteas_error_shapes(gt: FakeGitea, repo: Repo,
                                                   forge: GiteaForge) -> None:
    """{"message", "url"} bodies, with the status codes of Gitea's routers/api/v1."""
    api = f"{gt.url}/api/v1/repos/{SLUG}"
    auth = {"Authorization": f"token {TOKEN}"}
    sha, _ = opened(gt, forge)
    again = requests.post(f"{api}/contents", headers=auth, timeout=5, json={
        "branch": "main", "new_branch": BRANCH, "files": [
            {"operation": "create", "path": "x", "content": ""}]})
    assert again.status_code == 422 and "branch already exists" in again.json()["message"]
    assert set(again.json()) == {"message", "url"}
    twice = requests.post(f"{api}/pulls", headers=auth, timeout=5,
                          json={"head": BRANCH, "base": "main", "title": "t"})
    assert twice.status_code == 409 and "already exists" in twice.json()["message"]
    gt.set_status(SLUG, sha, "pending")
    now = requests.post(f"{api}/pulls/1/merge", headers=auth, timeout=5, json={"Do": "merge"})
    assert now.status_code == 405
    later = requests.post(f"{api}/pulls/1/merge", headers=auth, timeout=5,
                          json={"Do": "merge", "merge_when_checks_succeed": True})
    assert later.status_code == 201 and not later.content  # scheduled
    assert requests.get(f"{api}/branches/nope", headers=auth, timeout=5).status_code == 404
    assert requests.get(api, timeout=5).status_code == 404  # private: no token, no repo


# --- CLI and CI context -------------------------------------------------------------------

DEPLOY = (b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n"
          b"    spec:\n      containers:\n      - name: api\n"
          b"        image: ghcr.io/acme/api:1.0.0\n")


def test_the_cli_reads_gitea_and_forgejo_tokens(gt: FakeGitea, repo: Repo,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("PROMOTE_TOKEN", "GITEA_TOKEN", "FORGEJO_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    repo.bare.commit_files("main", {"k8s/deploy.yaml": DEPLOY}, "a deployment")
    args = ["--repo", SLUG, "--forge", "gitea", "--api-url", gt.url,
            "--image", "ghcr.io/acme/api:1.1.0", "--dry-run", "--output", "json"]
    assert run(args) == 2  # no token
    capsys.readouterr()
    for name in ("GITEA_TOKEN", "FORGEJO_TOKEN"):
        monkeypatch.setenv(name, TOKEN)
        assert run(args) == 0
        out, err = capsys.readouterr()
        assert json.loads(out)["status"] == "dry-run" and TOKEN not in out + err
        monkeypatch.delenv(name)


GITEA_ENV = {"GITHUB_ACTIONS": "true", "GITEA_ACTIONS": "true",
             "GITHUB_SERVER_URL": "https://gitea.example.com", "GITHUB_REPOSITORY": "acme/api",
             "GITHUB_SHA": "a" * 40, "GITHUB_RUN_ID": "991", "GITHUB_RUN_NUMBER": "17",
             "GITHUB_ACTOR": "alice", "GITHUB_REF": "refs/heads/main"}


@pytest.mark.parametrize("flag", ["GITEA_ACTIONS", "FORGEJO_ACTIONS"])
def test_gitea_and_forgejo_actions_are_detected(flag: str) -> None:
    env = {k: v for k, v in GITEA_ENV.items() if k != "GITEA_ACTIONS"} | {flag: "true"}
    ctx = context.detect(env)
    assert ctx.kind == "gitea"
    assert ctx.source_url == "https://gitea.example.com/acme/api"
    assert ctx.pipeline_url == "https://gitea.example.com/acme/api/actions/runs/17"
    assert ("Source-Commit", "a" * 40) in context.trailers(ctx)
    assert context.detect({k: v for k, v in env.items() if k != flag}).kind == "github"


def test_a_gitea_actor_gets_no_github_noreply_address() -> None:
    assert identity.from_ci(GITEA_ENV) is None  # plain git falls back to git config
    github = {k: v for k, v in GITEA_ENV.items() if k != "GITEA_ACTIONS"}
    assert identity.from_ci(github) == identity.Identity(
        "alice", "alice@users.noreply.github.com")


def test_inside_gitea_actions_the_forge_and_server_are_defaults(
        gt: FakeGitea, repo: Repo, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in (GITEA_ENV | {"GITHUB_SERVER_URL": gt.url}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GITEA_TOKEN", TOKEN)
    repo.bare.commit_files("main", {"k8s/deploy.yaml": DEPLOY}, "a deployment")
    code = run(["--repo", SLUG, "--image", "ghcr.io/acme/api:1.1.0", "--dry-run",
                "--output", "json"])
    out, _ = capsys.readouterr()
    assert code == 0, out
    assert json.loads(out)["forge"] == "gitea"
