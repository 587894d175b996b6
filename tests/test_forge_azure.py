"""The Azure DevOps forge against the fake Azure DevOps server: real HTTP, real bare repos.

Someone else's moves (a push to the base or the promotion branch) are real git commits
in the bare repo, made at the moment a given request arrives (``FakeAzure.before``).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from promoter.errors import (
    AuthError,
    BranchExists,
    ConfigError,
    ConflictError,
    ForgeError,
    UsageError,
)
from promoter.forges.azure import AzureForge
from promoter.forges.base import ChecksState, Head, RequestSpec, Snapshot, git_blob_sha
from tests.fakes.azure import FakeAzure, Repo
from tests.fakes.githttp import Recorder

TOKEN = "azure-pat-very-secret-0123456789abcdef"
JOB = "azure-job-token-0123456789abcdef0123"
READ_TOKEN = "azure-read-only-pat-abcdef0123456789"
SLUG = "acme/platform/config"
DEV = b"apiVersion: apps/v1\r\nkind: Deployment\r\nspec:\r\n  image: ghcr.io/acme/api:1.0.0\r\n"
PROD = b"\xef\xbb\xbfimage:\n  tag: \"1.0.0\"   # pinned\n"
FILES = {".promoter.yaml": b"version: 1\n", "envs/dev/app.yaml": DEV,
         "envs/prod/values.yaml": PROD, "README.md": b"# config\n",
         "bin/blob.dat": bytes(range(256))}
BRANCH = "promote/dev/api"
NEW = {"envs/dev/app.yaml": DEV.replace(b"1.0.0", b"1.1.0"),
       "envs/prod/values.yaml": PROD.replace(b"1.0.0", b"1.1.0")}
MESSAGE = "Promote ghcr.io/acme/api:1.1.0\n\nPromoted-Image: ghcr.io/acme/api:1.1.0"
PREFIX = "/acme/platform/_apis/git/repositories/config"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name)


@pytest.fixture
def az(tmp_path: Path) -> Iterator[FakeAzure]:
    with FakeAzure(tmp_path) as server:
        server.add_token(TOKEN)
        server.add_token(JOB, user="build-service", bearer=True)
        server.add_token(READ_TOKEN, user="reader", write=False)
        yield server


@pytest.fixture
def repo(az: FakeAzure) -> Repo:
    repo = az.add_repo(SLUG, FILES)
    main = repo.bare.resolve("main") or ""
    tree = repo.bare.write_tree_entries(main, {
        "envs/link.yaml": ("120000", repo.bare.write_blob(b"dev/app.yaml"))})
    sha = repo.bare.commit_tree(tree, [main], "Add a link")
    assert repo.bare.update_ref("main", sha, old=main)
    az.reset_counts()
    return repo


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def fresh(az: FakeAzure, token: str = TOKEN, **kw: object) -> AzureForge:
    return AzureForge(SLUG, api_url=az.url, token=token, sleep=Sleeps(), **kw)  # type: ignore[arg-type]


@pytest.fixture
def forge(az: FakeAzure, repo: Repo) -> Iterator[AzureForge]:
    made = fresh(az)
    yield made
    made.close()


def counts(az: FakeAzure) -> list[tuple[str, str]]:
    out = []
    for r in az.requests:
        path = r.path.removeprefix(PREFIX)
        out.append((r.method, path.split("/")[1] if path.startswith("/") and path != "/"
                    else path))
    return out


def propose(forge: AzureForge, snap: Snapshot, files: dict[str, bytes] | None = None) -> str:
    return forge.write_commit(BRANCH, snap, files or NEW, MESSAGE, replace=None)


# --- reading ------------------------------------------------------------------------------


def test_snapshot_is_every_file_byte_for_byte(az: FakeAzure, repo: Repo,
                                              forge: AzureForge) -> None:
    snap = forge.snapshot(None)
    assert snap.branch == "main" and snap.commit == repo.bare.resolve("main")
    assert dict(snap.files) == FILES
    assert snap.links == {"envs/link.yaml": "dev/app.yaml"}
    assert counts(az) == [("GET", ""), ("GET", "refs"), ("GET", "commits"), ("GET", "trees"),
                          ("POST", "blobs")]
    assert all("api-version=7.1" in r.query for r in az.requests)
    az.reset_counts()
    fresh(az).snapshot("main")
    assert [p for _, p in counts(az)] == ["refs", "commits", "trees", "blobs"]


def test_a_linked_policy_file_stops_the_run(az: FakeAzure, repo: Repo,
                                            forge: AzureForge) -> None:
    main = repo.bare.resolve("main") or ""
    tree = repo.bare.write_tree_entries(main, {
        ".promoter.yaml": ("120000", repo.bare.write_blob(b"README.md"))})
    repo.bare.update_ref("main", repo.bare.commit_tree(tree, [main], "link"), old=main)
    with pytest.raises(ConfigError) as caught:
        forge.snapshot("main")
    assert caught.value.code == 2 and "symbolic link" in str(caught.value)


def test_a_blob_zip_with_other_content_is_refused(az: FakeAzure, repo: Repo,
                                                  forge: AzureForge) -> None:
    """Each blob is checked against its git id: a zip holding something else (a proxy's
    page, a tampered file) never becomes the snapshot."""
    import io
    import zipfile
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:  # every blob under its id, one forged
        for content in [*FILES.values(), b"dev/app.yaml"]:
            forged = b"version: 1\nforged: 1\n" if content == FILES[".promoter.yaml"] else b""
            archive.writestr(git_blob_sha(content), forged or content)
    az.fail("POST", r"/blobs$", 200, body=data.getvalue())
    with pytest.raises(ForgeError, match=r"left .* blob"):
        forge.snapshot("main")


def test_a_blob_zip_past_the_limit_is_refused(az: FakeAzure, repo: Repo, forge: AzureForge,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import promoter.forges.azure as azure
    monkeypatch.setattr(azure, "MAX_UNPACKED_BYTES", 300)
    with pytest.raises(ForgeError, match="unpacks to more than 300 bytes") as caught:
        forge.snapshot("main")
    assert caught.value.code == 5


def test_a_missing_base_is_a_usage_error(repo: Repo, forge: AzureForge) -> None:
    with pytest.raises(UsageError, match="'nope' does not exist"):
        forge.snapshot("nope")


def test_read_head_picks_the_exact_branch_and_log_follows_first_parents(
        az: FakeAzure, repo: Repo, forge: AzureForge) -> None:
    repo.bare.commit_files(BRANCH + "-other", {"README.md": b"x\n"}, "a longer name")
    assert forge.read_head(BRANCH) is None  # refs?filter is a prefix: not that one
    assert counts(az) == [("GET", "refs")]
    snap = forge.snapshot("main")
    sha = propose(forge, snap)
    az.reset_counts()
    head = fresh(az).read_head(BRANCH)
    assert head == Head(sha, MESSAGE, (snap.commit,))
    assert len(az.requests) == 2  # the ref, then its commit for the parents
    repo.bare.merge("main", sha, "merge", "Merge promotion")
    history = forge.log("main", 10)
    assert [c.message.splitlines()[0] for c in history] == [
        "Merge promotion", "Add a link", "Initial commit"]


# --- the commit ---------------------------------------------------------------------------


def test_one_push_makes_the_branch_and_its_commit_on_the_snapshot(
        az: FakeAzure, repo: Repo, forge: AzureForge) -> None:
    snap = forge.snapshot("main")
    repo.bare.commit_files("main", {"README.md": b"moved\n"}, "the base moves on")
    az.reset_counts()
    sha = propose(forge, snap)
    assert counts(az) == [("POST", "pushes")]
    assert (repo.bare.commit(sha) or {})["parents"] == [snap.commit]  # the snapshot, pinned
    assert repo.bare.read_file(sha, "envs/dev/app.yaml") == NEW["envs/dev/app.yaml"]
    assert repo.bare.read_file(sha, "bin/blob.dat") == FILES["bin/blob.dat"]
    assert fresh(az).changed_files(sha) == {p: git_blob_sha(d) for p, d in NEW.items()}


def test_an_existing_branch_is_branch_exists_not_overwritten(az: FakeAzure, repo: Repo,
                                                             forge: AzureForge) -> None:
    snap = forge.snapshot("main")
    theirs = repo.bare.commit_files(BRANCH, {"README.md": b"mine\n"}, "someone's branch")
    with pytest.raises(BranchExists, match="already exists"):
        propose(forge, snap)
    assert repo.bare.resolve(BRANCH) == theirs


def test_a_push_whose_answer_was_lost_is_not_repeated(az: FakeAzure, repo: Repo,
                                                      forge: AzureForge) -> None:
    snap = forge.snapshot("main")
    az.fail("POST", r"/pushes$", 0, apply_then_fail=True)
    sha = propose(forge, snap)
    assert repo.bare.resolve(BRANCH) == sha
    assert az.count("POST", r"/pushes$") == 1  # the retry found it instead


def replace_setup(az: FakeAzure, repo: Repo, forge: AzureForge) -> tuple[Snapshot, Head, int]:
    snap = forge.snapshot("main")
    propose(forge, snap)
    pr = forge.open_request(BRANCH, "main", RequestSpec("Promote", "body"))
    repo.bare.commit_files("main", {"README.md": b"newer\n"}, "someone else")
    head = forge.read_head(BRANCH)
    assert head is not None
    return forge.snapshot("main"), head, pr.number


def test_replace_moves_the_branch_by_compare_and_swap(az: FakeAzure, repo: Repo,
                                                      forge: AzureForge) -> None:
    snap, head, number = replace_setup(az, repo, forge)
    az.reset_counts()
    sha = forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=head)
    assert counts(az) == [("POST", "pushes"), ("POST", "refs"), ("POST", "refs")]
    assert (repo.bare.commit(sha) or {})["parents"] == [snap.commit]
    assert repo.bare.resolve(BRANCH) == sha
    assert repo.pulls[number].status == "active"
    assert list(repo.bare.list_refs("refs/heads/")) == ["refs/heads/main",
                                                        f"refs/heads/{BRANCH}"]


def test_replace_refuses_when_someone_pushed_meanwhile(az: FakeAzure, repo: Repo,
                                                       forge: AzureForge) -> None:
    snap, head, _ = replace_setup(az, repo, forge)
    theirs = repo.bare.commit_files(BRANCH, {"README.md": b"x\n"}, "a push")
    with pytest.raises(ConflictError, match="moved"):
        forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=head)
    assert repo.bare.resolve(BRANCH) == theirs
    assert len(repo.bare.list_refs("refs/heads/")) == 2  # the scratch branch is gone


def test_replace_loses_a_race_at_the_branch_move(az: FakeAzure, repo: Repo,
                                                 forge: AzureForge) -> None:
    """A push between the scratch commit and the move: oldObjectId holds it off."""
    snap, head, _ = replace_setup(az, repo, forge)
    pushed: list[str] = []
    az.before("POST", r"/refs$", lambda: pushed.append(repo.bare.commit_files(
        BRANCH, {"README.md": b"x\n"}, "a push")))
    with pytest.raises(ConflictError, match="moved"):
        forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=head)
    assert repo.bare.resolve(BRANCH) == pushed[0]
    assert list(repo.bare.list_refs("refs/heads/")) == ["refs/heads/main",
                                                        f"refs/heads/{BRANCH}"]


def test_replace_of_someone_elses_branch_needs_force_push(az: FakeAzure, repo: Repo,
                                                          forge: AzureForge) -> None:
    """Azure gives "Force push" to a branch's creator only: a branch the bot did not
    create is never rewritten; the message says which permission."""
    snap = forge.snapshot("main")
    other = fresh(az, JOB, bearer=True)
    other.write_commit(BRANCH, snap, NEW, MESSAGE, replace=None)  # created by another identity
    head = forge.read_head(BRANCH)
    assert head is not None
    repo.bare.commit_files("main", {"README.md": b"newer\n"}, "someone else")
    with pytest.raises(ForgeError, match="Force push") as caught:
        forge.write_commit(BRANCH, forge.snapshot("main"), NEW, MESSAGE, replace=head)
    assert caught.value.code == 5
    assert repo.bare.resolve(BRANCH) == head.sha


def test_a_lost_answer_to_the_branch_move_is_not_repeated(az: FakeAzure, repo: Repo,
                                                          forge: AzureForge) -> None:
    snap, head, _ = replace_setup(az, repo, forge)
    az.fail("POST", r"/refs$", 0, apply_then_fail=True)
    sha = forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=head)
    assert repo.bare.resolve(BRANCH) == sha


def test_changed_files_proves_only_plain_edits(az: FakeAzure, repo: Repo,
                                               forge: AzureForge) -> None:
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


def opened(az: FakeAzure, forge: AzureForge, **spec: object) -> tuple[str, object]:
    sha = propose(forge, forge.snapshot("main"))
    pr = forge.open_request(BRANCH, "main", RequestSpec("Promote api", "body", **spec))  # type: ignore[arg-type]
    return sha, pr


def test_open_find_update_close(az: FakeAzure, repo: Repo, forge: AzureForge) -> None:
    reviewer = az.identity("sre-lead")
    az.reset_counts()
    sha, pr = opened(az, forge, labels=("prod",), reviewers=(reviewer,))  # an id: no lookup
    assert pr.branch == BRANCH and pr.base == "main" and pr.head_sha == sha  # type: ignore[attr-defined]
    assert pr.url.endswith("/acme/platform/_git/config/pullrequest/1")  # type: ignore[attr-defined]
    made = az.pulls(SLUG)[0]
    assert made.labels == ["prod"] and made.reviewers == [reviewer]
    assert counts(az)[-1] == ("POST", "pullrequests")  # labels and reviewers ride along
    found = forge.find_request(BRANCH, "main")
    assert found == pr
    az.reset_counts()
    updated = forge.update_request(found, RequestSpec("Promote api", "new body",  # type: ignore[arg-type]
                                                      labels=("prod", "promotion")))
    assert [m for m, _ in counts(az)] == ["PATCH", "POST"]  # description, one new label
    assert updated.body == "new body" and made.labels == ["prod", "promotion"]
    az.fail("PATCH", r"/pullrequests/1$", 502)  # the comment is not posted twice
    forge.close_request(updated, "superseded")
    assert made.status == "abandoned"
    assert [c["content"] for t in made.threads for c in t["comments"]] == ["superseded"]
    assert forge.find_request(BRANCH, "main") is None


def test_reviewers_by_name_are_found_among_the_projects_teams(az: FakeAzure, repo: Repo,
                                                               forge: AzureForge) -> None:
    az.add_team("acme/platform", "SRE", ["sre-lead", "alice"])
    az.add_team("acme/platform", "Web", ["bob"])
    propose(forge, forge.snapshot("main"))
    az.reset_counts()
    pr = forge.open_request(BRANCH, "main", RequestSpec("t", "b", reviewers=(
        "sre-lead@example.com", "Bob", "sre", az.identity("carol"))))
    made = az.pulls(SLUG)[0]
    assert made.reviewers == [az.identity("sre-lead"), az.identity("bob"),
                              az.identity("team:SRE"), az.identity("carol")]
    assert [r.path.rsplit("/", 1)[-1] for r in az.requests] == [
        "teams", "members", "members", "pullrequests"]  # once, then the request
    assert pr.number == made.number


def test_an_unknown_reviewer_is_a_config_error(az: FakeAzure, repo: Repo,
                                               forge: AzureForge) -> None:
    az.add_team("acme/platform", "SRE", ["sre-lead"])
    propose(forge, forge.snapshot("main"))
    with pytest.raises(ConfigError, match="no team or team member 'nobody'") as caught:
        forge.open_request(BRANCH, "main", RequestSpec("t", "b", reviewers=("nobody",)))
    assert caught.value.file == ".promoter.yaml" and not az.pulls(SLUG)


def test_a_long_description_is_capped_at_azures_limit(az: FakeAzure, repo: Repo,
                                                      forge: AzureForge) -> None:
    propose(forge, forge.snapshot("main"))
    pr = forge.open_request(BRANCH, "main", RequestSpec("t", "x" * 10_000))
    assert len(pr.body) == 4000 and "truncated by promoter" in pr.body


def test_a_request_whose_answer_was_lost_is_not_opened_twice(az: FakeAzure, repo: Repo,
                                                             forge: AzureForge) -> None:
    propose(forge, forge.snapshot("main"))
    az.fail("POST", r"/pullrequests$", 0, apply_then_fail=True)
    forge.open_request(BRANCH, "main", RequestSpec("t", "b"))
    assert len(az.pulls(SLUG)) == 1


# --- checks and merging -------------------------------------------------------------------


def test_checks_read_statuses_and_blocking_policies(az: FakeAzure, repo: Repo,
                                                    forge: AzureForge) -> None:
    sha, pr = opened(az, forge)
    assert forge.checks(pr, sha) is ChecksState.NONE  # type: ignore[arg-type]
    az.set_status(SLUG, sha, "pending")
    assert forge.checks(pr, sha) is ChecksState.PENDING  # type: ignore[arg-type]
    az.set_status(SLUG, sha, "succeeded")
    assert forge.checks(pr, sha) is ChecksState.SUCCESS  # type: ignore[arg-type]
    az.set_status(SLUG, sha, "failed")
    assert forge.checks(pr, sha) is ChecksState.FAILURE  # type: ignore[arg-type]


def test_a_required_policy_that_has_not_reported_is_pending(az: FakeAzure, repo: Repo) -> None:
    """Azure evaluates branch policies a moment after the pull request opens: until then
    the pull request has no evaluation record. That is pending, never passed."""
    az.add_policy(SLUG, "ci")
    repo.evaluation_delay = 3600
    forge = fresh(az)
    sha, pr = opened(az, forge)
    az.set_status(SLUG, sha, "succeeded", context="lint")  # an unrelated status is green
    assert forge.checks(pr, sha) is ChecksState.PENDING  # type: ignore[arg-type]
    repo.evaluation_delay = 0
    assert forge.checks(pr, sha) is ChecksState.PENDING  # type: ignore[arg-type]  # queued
    az.set_status(SLUG, sha, "succeeded")
    assert forge.checks(pr, sha) is ChecksState.SUCCESS  # type: ignore[arg-type]


def test_an_expired_policy_approval_is_pending(az: FakeAzure, repo: Repo) -> None:
    """A build policy approved for an older source commit (Azure marks the evaluation
    expired after a push) has not passed for this one."""
    policy = az.add_policy(SLUG, "ci")
    forge = fresh(az)
    sha, pr = opened(az, forge)
    az.set_status(SLUG, sha, "succeeded")
    policy.expired = True
    assert forge.checks(pr, sha) is ChecksState.PENDING  # type: ignore[arg-type]
    policy.expired = False
    assert forge.checks(pr, sha) is ChecksState.SUCCESS  # type: ignore[arg-type]


def test_closing_a_request_another_run_just_completed_is_done(
        az: FakeAzure, repo: Repo, forge: AzureForge) -> None:
    # two runs at once: one completes the request, the other closes it as pointless
    sha, pr = opened(az, forge)
    assert forge.merge(pr, "squash", sha, MESSAGE).merged  # type: ignore[arg-type]
    forge.close_request(pr, "nothing left to do")  # type: ignore[arg-type]
    assert az.pulls(SLUG)[0].status == "completed"


def test_merge_is_pinned_to_the_proved_source_commit(az: FakeAzure, repo: Repo,
                                                     forge: AzureForge) -> None:
    sha, pr = opened(az, forge)
    theirs = repo.bare.commit_files(BRANCH, {"envs/prod/values.yaml": b"evil\n"}, "a push")
    with pytest.raises(ConflictError, match="moved"):
        forge.merge(pr, "squash", sha)  # type: ignore[arg-type]
    assert repo.bare.read_file("main", "envs/prod/values.yaml") == PROD
    assert repo.bare.resolve(BRANCH) == theirs


def test_merge_completes_with_promoters_message_and_deletes_the_branch(
        az: FakeAzure, repo: Repo, forge: AzureForge) -> None:
    sha, pr = opened(az, forge)
    az.reset_counts()
    outcome = forge.merge(pr, "squash", sha, MESSAGE)  # type: ignore[arg-type]
    assert outcome.merged and counts(az) == [("PATCH", "pullrequests")]
    tip = repo.bare.commit("main") or {}
    assert tip["message"] == MESSAGE and len(tip["parents"]) == 1
    assert repo.bare.resolve(BRANCH) is None


def test_a_queued_completion_is_read_until_it_lands(az: FakeAzure, repo: Repo) -> None:
    """Azure may answer the completion before it has merged (the pull request still
    active): promoter reads it again, waiting with the injected sleep, a bounded number
    of times."""
    repo.completion_reads = 3
    sleeps = Sleeps()
    forge = AzureForge(SLUG, api_url=az.url, token=TOKEN, sleep=sleeps)
    sha, pr = opened(az, forge)
    az.reset_counts()
    outcome = forge.merge(pr, "squash", sha, MESSAGE)  # type: ignore[arg-type]
    assert outcome.merged and outcome.sha == repo.bare.resolve("main")
    assert [m for m, _ in counts(az)] == ["PATCH", "GET", "GET", "GET"]
    assert sleeps == [1.0, 2.0, 3.0]
    repo.completion_reads = 100
    sha2 = forge.write_commit("promote/other", forge.snapshot("main"), NEW, MESSAGE,
                              replace=None)
    other = forge.open_request("promote/other", "main", RequestSpec("t", "b"))
    late = forge.merge(other, "squash", sha2)
    assert not late.merged and "did not complete" in late.reason
    assert len(sleeps) == 3 + 5  # bounded


def test_merge_is_refused_while_a_blocking_policy_waits(az: FakeAzure, repo: Repo) -> None:
    az.add_policy(SLUG, "ci")
    forge = fresh(az)
    sha, pr = opened(az, forge)
    outcome = forge.merge(pr, "merge", sha)  # type: ignore[arg-type]
    assert not outcome.merged and "required policy" in outcome.reason
    assert az.pulls(SLUG)[0].status == "active"


def test_a_draft_is_not_completed(az: FakeAzure, repo: Repo, forge: AzureForge) -> None:
    sha, pr = opened(az, forge, draft=True)
    assert az.pulls(SLUG)[0].is_draft
    assert not forge.merge(pr, "merge", sha).merged  # type: ignore[arg-type]


def test_auto_merge_never_sets_azures_unpinned_auto_complete(az: FakeAzure,
                                                             repo: Repo) -> None:
    """Azure's auto-complete takes no commit: once the policies pass it completes whatever
    the source holds. promoter never sets it; it completes the proved commit itself."""
    az.add_policy(SLUG, "ci")
    forge = fresh(az)
    sha, pr = opened(az, forge)
    az.reset_counts()
    outcome = forge.enable_auto_merge(pr, "squash", sha, MESSAGE)  # type: ignore[arg-type]
    assert not outcome.merged and not outcome.auto_merge
    assert "not pinned" in outcome.reason and "required policy" in outcome.reason
    assert [m for m, _ in counts(az)] == ["PATCH", "GET"]  # refused, then read: not moved
    assert az.pulls(SLUG)[0].auto_complete is None
    theirs = repo.bare.commit_files(BRANCH, {"envs/prod/values.yaml": b"evil\n"}, "a push")
    az.set_status(SLUG, theirs, "succeeded")
    assert az.pulls(SLUG)[0].status == "active"  # nothing set that would complete it
    assert repo.bare.read_file("main", "envs/prod/values.yaml") == PROD
    with pytest.raises(ConflictError, match="moved"):
        forge.enable_auto_merge(pr, "squash", sha)  # type: ignore[arg-type]


def test_the_fakes_auto_complete_is_unpinned_as_azures(az: FakeAzure, repo: Repo) -> None:
    """Why: set by anyone, auto-complete completes the source as it is when the policies
    pass, a push made after it was set included."""
    az.add_policy(SLUG, "ci")
    forge = fresh(az)
    sha, _ = opened(az, forge)
    api = f"{az.url}{PREFIX}/pullrequests/1"
    auth = {"Authorization": "Basic " + base64.b64encode(f":{TOKEN}".encode()).decode()}
    requests.patch(api, params={"api-version": "7.1"}, headers=auth, timeout=5, json={
        "autoCompleteSetBy": {"id": az.identity("promoter-bot")},
        "lastMergeSourceCommit": {"commitId": sha}}).raise_for_status()
    theirs = repo.bare.commit_files(BRANCH, {"envs/prod/values.yaml": b"evil\n"}, "a push")
    az.set_status(SLUG, theirs, "succeeded")
    assert az.pulls(SLUG)[0].status == "completed"
    assert repo.bare.read_file("main", "envs/prod/values.yaml") == b"evil\n"


def test_auto_complete_of_a_mergeable_request_completes_now(az: FakeAzure, repo: Repo,
                                                            forge: AzureForge) -> None:
    sha, pr = opened(az, forge)
    outcome = forge.enable_auto_merge(pr, "merge", sha)  # type: ignore[arg-type]
    assert outcome.merged and outcome.sha == repo.bare.resolve("main")


def test_auto_complete_of_a_conflicting_request_says_conflict(az: FakeAzure, repo: Repo,
                                                              forge: AzureForge) -> None:
    """Azure's test merge conflicts: auto-complete would never complete; promoter is told
    "conflict" and plans again on the new base."""
    az.add_policy(SLUG, "ci")
    sha, pr = opened(az, forge)
    repo.bare.commit_files("main", {"envs/dev/app.yaml": b"hotfix\n"}, "by hand")
    outcome = forge.enable_auto_merge(pr, "squash", sha)  # type: ignore[arg-type]
    assert not outcome.merged and not outcome.auto_merge and "conflict" in outcome.reason


def test_request_counts_of_the_remaining_steps(az: FakeAzure, repo: Repo,
                                               forge: AzureForge) -> None:
    sha, pr = opened(az, forge)
    other = fresh(az)
    az.reset_counts()
    other.changed_files(sha)
    assert [p for _, p in counts(az)] == ["commits", "trees", "commits", "trees"]
    az.reset_counts()
    other.changed_files(sha)
    assert az.requests == []  # commits and trees never change: cached
    for step, expected in (
            (lambda: forge.find_request(BRANCH, "main"), ["GET"]),
            (lambda: forge.checks(pr, sha), ["GET", "GET", "GET", "GET"]),  # type: ignore[arg-type]
            (lambda: forge.checks(pr, sha), ["GET", "GET"]),  # type: ignore[arg-type]
            (lambda: forge.close_request(pr, "bye"), ["POST", "PATCH"]),  # type: ignore[arg-type]
            (lambda: forge.delete_branch(BRANCH), ["GET", "POST"]),
            (lambda: forge.delete_branch(BRANCH), ["GET"]),  # already gone: fine
            (lambda: forge.log("main", 2), ["GET", "GET"])):
        az.reset_counts()
        step()
        assert [m for m, _ in counts(az)] == expected, step


# --- tokens, errors, retries --------------------------------------------------------------


def test_a_pat_is_basic_auth_and_a_job_token_is_bearer(az: FakeAzure, repo: Repo) -> None:
    fresh(az).read_head("main")
    fresh(az, JOB, bearer=True).read_head("main")
    basic = base64.b64encode(f":{TOKEN}".encode()).decode()
    assert az.auth_seen == [f"Basic {basic}"] * 2 + [f"Bearer {JOB}"] * 2


def test_a_bad_token_is_an_auth_error_without_the_token(az: FakeAzure, repo: Repo) -> None:
    bad = "azure-wrong-token-999999999999"
    with pytest.raises(AuthError) as caught:
        fresh(az, bad).read_head("main")
    assert bad not in str(caught.value) and "Code (Read & write)" in (caught.value.hint or "")


def test_a_sign_in_page_is_an_auth_error(az: FakeAzure, repo: Repo, forge: AzureForge) -> None:
    az.fail("GET", r"/refs$", 203, body=b"<html>Sign in</html>")
    with pytest.raises(AuthError, match="sign-in page"):
        forge.read_head("main")


def test_a_read_only_token_cannot_push(az: FakeAzure, repo: Repo) -> None:
    forge = fresh(az, READ_TOKEN)
    with pytest.raises(AuthError, match="403"):
        propose(forge, forge.snapshot("main"))


def test_the_token_goes_only_to_the_api_origin(az: FakeAzure, repo: Repo,
                                               forge: AzureForge) -> None:
    with Recorder() as other:
        az.fail("GET", r"/refs$", 302, headers={"Location": f"{other.root_url}/steal"})
        with pytest.raises(ForgeError, match="redirect") as caught:
            forge.snapshot("main")
        assert not other.seen and TOKEN not in str(caught.value)
    basic = base64.b64encode(f":{TOKEN}".encode()).decode()
    assert basic not in str(caught.value)


def test_5xx_and_429_are_retried_within_the_policy(az: FakeAzure, repo: Repo) -> None:
    sleeps = Sleeps()
    forge = AzureForge(SLUG, api_url=az.url, token=TOKEN, sleep=sleeps)
    az.fail("POST", r"/blobs$", 503, times=2)
    az.fail("POST", r"/pushes$", 429, headers={"Retry-After": "3"})
    propose(forge, forge.snapshot("main"))
    assert len(sleeps) == 3 and max(sleeps) >= 3
    az.fail("GET", r"/refs$", 500, times=1000)
    with pytest.raises(ForgeError, match="kept failing") as caught:
        fresh(az, retry_timeout=5).read_head(BRANCH)
    assert TOKEN not in str(caught.value)


def test_repo_and_api_url_forms(az: FakeAzure, repo: Repo) -> None:
    with pytest.raises(UsageError):
        AzureForge("config", api_url=az.url, token=TOKEN)
    with pytest.raises(UsageError):
        AzureForge("platform/config", token=TOKEN)  # dev.azure.com needs the organisation
    with pytest.raises(UsageError):
        AzureForge(SLUG, api_url="dev.azure.com", token=TOKEN)
    collection = AzureForge("platform/config", api_url=f"{az.url}/acme/", token=TOKEN)
    assert collection.snapshot(None).branch == "main"


def test_the_fake_answers_with_azures_shapes(az: FakeAzure, repo: Repo,
                                             forge: AzureForge) -> None:
    api = f"{az.url}{PREFIX}"
    auth = {"Authorization": "Basic " + base64.b64encode(f":{TOKEN}".encode()).decode()}
    sha, _ = opened(az, forge)
    bare = requests.get(f"{api}/refs", headers=auth, timeout=5)
    assert bare.status_code == 400 and bare.json()["typeKey"] == \
        "VssVersionNotSpecifiedException"
    v = {"api-version": "7.1"}
    twice = requests.post(f"{api}/pullrequests", params=v, headers=auth, timeout=5, json={
        "sourceRefName": f"refs/heads/{BRANCH}", "targetRefName": "refs/heads/main",
        "title": "t"})
    assert twice.status_code == 409 and twice.json()["message"].startswith("TF401179")
    assert {"$id", "message", "typeKey", "typeName", "errorCode"} <= set(twice.json())
    stale = requests.post(f"{api}/pushes", params=v, headers=auth, timeout=5, json={
        "refUpdates": [{"name": f"refs/heads/{BRANCH}", "oldObjectId": "0" * 40}],
        "commits": [{"comment": "x", "changes": []}]})
    assert stale.status_code == 409 and "TF401028" in stale.json()["message"]
    done = requests.patch(f"{api}/pullrequests/1", params=v, headers=auth, timeout=5, json={
        "status": "completed", "lastMergeSourceCommit": {"commitId": "1" * 40}})
    assert done.status_code == 409 and done.json()["typeKey"] == "GitPullRequestStaleException"
    assert requests.get(f"{api}/refs", params=v, timeout=5).status_code == 401
    assert sha


# --- CLI and CI context -------------------------------------------------------------------

DEPLOY = (b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n"
          b"    spec:\n      containers:\n      - name: api\n"
          b"        image: ghcr.io/acme/api:1.0.0\n")
TOKEN_VARS = ("PROMOTE_TOKEN", "AZURE_DEVOPS_TOKEN", "AZURE_DEVOPS_EXT_PAT", "SYSTEM_ACCESSTOKEN",
              "TF_BUILD", "SYSTEM_COLLECTIONURI", "GITHUB_ACTIONS", "GITLAB_CI")


def test_the_cli_reads_azure_tokens(az: FakeAzure, repo: Repo, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from promoter.cli import run
    for name in TOKEN_VARS:
        monkeypatch.delenv(name, raising=False)
    repo.bare.commit_files("main", {"k8s/deploy.yaml": DEPLOY}, "a deployment")
    args = ["--repo", SLUG, "--forge", "azure", "--api-url", az.url,
            "--image", "ghcr.io/acme/api:1.1.0", "--dry-run", "--output", "json"]
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", JOB)
    monkeypatch.setenv("SYSTEM_COLLECTIONURI", f"{az.url}/acme/")
    assert run(args) == 2  # no token: the job token counts only inside Azure Pipelines
    assert "no token" in capsys.readouterr().err and az.auth_seen == []
    basic = base64.b64encode(f":{TOKEN}".encode()).decode()
    for name in ("PROMOTE_TOKEN", "AZURE_DEVOPS_TOKEN", "AZURE_DEVOPS_EXT_PAT"):
        monkeypatch.setenv(name, TOKEN)
        az.auth_seen.clear()
        assert run(args) == 0
        out, err = capsys.readouterr()
        assert json.loads(out)["status"] == "dry-run" and TOKEN not in out + err
        assert set(az.auth_seen) == {f"Basic {basic}"}
        monkeypatch.delenv(name)
    monkeypatch.setenv("TF_BUILD", "True")
    monkeypatch.setenv("SYSTEM_COLLECTIONURI", f"{az.url}/acme/")
    az.auth_seen.clear()
    assert run(args) == 0, capsys.readouterr()
    assert set(az.auth_seen) == {f"Bearer {JOB}"}
    capsys.readouterr()
    monkeypatch.setenv("SYSTEM_COLLECTIONURI", "https://dev.azure.com/acme/")
    az.auth_seen.clear()
    assert run(args) == 2  # the job's token stays with its own collection
    assert "SYSTEM_ACCESSTOKEN belongs to https://dev.azure.com" in capsys.readouterr().err
    assert az.auth_seen == []


AZURE_ENV = {"TF_BUILD": "True", "SYSTEM_COLLECTIONURI": "https://dev.azure.com/acme/",
             "SYSTEM_TEAMPROJECT": "Platform Team", "BUILD_REPOSITORY_NAME": "api",
             "BUILD_REPOSITORY_PROVIDER": "TfsGit", "BUILD_BUILDID": "4711",
             "BUILD_SOURCEVERSION": "a" * 40, "BUILD_SOURCEBRANCH": "refs/heads/main",
             "BUILD_REQUESTEDFOR": "Jane Doe", "BUILD_REASON": "IndividualCI",
             "BUILD_REPOSITORY_URI": "https://acme@dev.azure.com/acme/Platform%20Team/_git/api"}


def test_azure_pipelines_is_detected_for_provenance() -> None:
    from promoter import context, identity
    ctx = context.detect(AZURE_ENV)
    assert ctx.kind == "azure" and ctx.source_repo == "Platform Team/api"
    assert ctx.pipeline_url == \
        "https://dev.azure.com/acme/Platform%20Team/_build/results?buildId=4711"
    assert ctx.source_url == "https://dev.azure.com/acme/Platform%20Team/_git/api"  # no user
    assert context.trailers(ctx) == [
        ("Source-Repo", "https://dev.azure.com/acme/Platform%20Team/_git/api"),
        ("Source-Commit", "a" * 40),
        ("Pipeline", "https://dev.azure.com/acme/Platform%20Team/_build/results?buildId=4711"),
        ("Triggered-By", "Jane Doe")]
    hostile = context.detect(AZURE_ENV | {"BUILD_REQUESTEDFOR": "Eve\nSigned-off-by: x",
                                          "SYSTEM_TEAMPROJECT": "p\u202e"})
    assert hostile.actor is None and hostile.pipeline_url is None
    assert identity.from_ci(AZURE_ENV) is None  # no GitHub noreply address invented
    assert context.detect({k: v for k, v in AZURE_ENV.items() if k != "TF_BUILD"}).kind \
        == "local"


def test_inside_azure_pipelines_the_forge_is_the_default(
        az: FakeAzure, repo: Repo, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from promoter.cli import run
    for name in TOKEN_VARS:
        monkeypatch.delenv(name, raising=False)
    for key, value in (AZURE_ENV | {"SYSTEM_COLLECTIONURI": f"{az.url}/acme/",
                                    "SYSTEM_ACCESSTOKEN": JOB}).items():
        monkeypatch.setenv(key, value)
    repo.bare.commit_files("main", {"k8s/deploy.yaml": DEPLOY}, "a deployment")
    code = run(["--repo", SLUG, "--api-url", az.url, "--image", "ghcr.io/acme/api:1.1.0",
                "--dry-run", "--output", "json"])
    out, _ = capsys.readouterr()
    assert code == 0, out
    assert json.loads(out)["forge"] == "azure"


# --- whole promotions ---------------------------------------------------------------------

REVIEWED_CONFIG = b"""\
version: 1
defaults: {auto_merge: false, labels: [promotion]}
"""
MERGING_CONFIG = b"""\
version: 1
defaults: {auto_merge: true, wait_for_checks: true, merge_method: squash}
"""


def promotion(az: FakeAzure, tag: str) -> tuple[dict[str, object], list[str]]:
    import itertools
    from datetime import datetime, timezone

    from promoter import promote
    from promoter.images import parse
    ticks = itertools.count()
    az.reset_counts()
    forge = fresh(az)
    try:
        result = promote.run(forge, promote.Request(images=(parse(f"ghcr.io/acme/api:{tag}"),),
                                                    base="main"), {}, [],
                             promote.Effects(now=lambda: datetime.now(timezone.utc),
                                             sleep=lambda _: None,
                                             monotonic=lambda: float(next(ticks)))
                             ).to_json()
    finally:
        forge.close()
    return result, [f"{method} {path}" for method, path in counts(az)]


def test_a_whole_promotion_costs_exactly(az: FakeAzure) -> None:
    """New request 6, re-run 9 (the push is tried first; the branch is then proved by its
    tree), re-planned on a moved base and merged 16, after the merge 5."""
    snapshot = ["GET refs", "GET commits", "GET trees", "POST blobs"]
    repo = az.add_repo(SLUG, {".promoter.yaml": REVIEWED_CONFIG, "k8s/deploy.yaml": DEPLOY})
    first, used = promotion(az, "1.1.0")
    assert first["status"] == "proposed"
    assert used == [*snapshot, "POST pushes", "POST pullrequests"]
    again, used = promotion(az, "1.1.0")
    assert again["commit"] == first["commit"] and again["pull_request"]["created"] is False  # type: ignore[index]
    assert used == [*snapshot, "POST pushes", "GET refs", "GET commits", "GET trees",
                    "GET pullrequests"]
    repo.bare.commit_files("main", {".promoter.yaml": MERGING_CONFIG}, "let it merge")
    merged, used = promotion(az, "1.1.0")
    assert merged["status"] == "merged", merged
    assert used == [*snapshot, "POST pushes", "GET refs", "GET commits", "GET trees",
                    "GET commits", "GET trees",  # the old tip's parent: the old base
                    "POST pushes", "POST refs", "POST refs",  # scratch, move, delete
                    "GET pullrequests", "PATCH pullrequests", "PATCH pullrequests"]
    done, used = promotion(az, "1.1.0")
    assert done["status"] == "up-to-date"
    assert used == [*snapshot, "GET pullrequests"]
