"""The Bitbucket Data Center forge against the fake Data Center server: real HTTP, real
bare repos; someone else's moves are real commits in the bare repo (``before``)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from promoter.cli import run
from promoter.errors import ConfigError, ConflictError, ForgeError, UsageError
from promoter.forges.base import ChecksState, Head, PullRequest, RequestSpec, Snapshot, git_blob_sha
from promoter.forges.bitbucket import connect
from promoter.forges.bitbucket_server import BitbucketServerForge
from tests.fakes.bitbucket_server import FakeBitbucketServer, Repo
from tests.fakes.githttp import Recorder

TOKEN = "bbdc-very-secret-token-0123456789"
SLUG = "OPS/config"
DEV = b"image: ghcr.io/acme/api:1.0.0\n"
FILES = {".promoter.yaml": b"version: 1\n", "envs/dev/app.yaml": DEV,
         "envs/prod/app.yaml": DEV, "README.md": b"# config\n"}
BRANCH = "promote/dev/api"
NEW = {"envs/dev/app.yaml": DEV.replace(b"1.0.0", b"1.1.0")}
MESSAGE = "Promote ghcr.io/acme/api:1.1.0\n\nPromoted-Image: ghcr.io/acme/api:1.1.0"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name)


@pytest.fixture
def dc(tmp_path: Path) -> Iterator[FakeBitbucketServer]:
    with FakeBitbucketServer(tmp_path) as server:
        server.add_token(TOKEN)
        server.add_user("alice")
        yield server


@pytest.fixture
def repo(dc: FakeBitbucketServer) -> Repo:
    repo = dc.add_repo(SLUG, FILES)
    main = repo.bare.resolve("main") or ""
    tree = repo.bare.write_tree_entries(main, {
        "envs/link.yaml": ("120000", repo.bare.write_blob(b"dev/app.yaml"))})
    assert repo.bare.update_ref("main", repo.bare.commit_tree(tree, [main], "link"), old=main)
    dc.reset_counts()
    return repo


def fresh(dc: FakeBitbucketServer, **kw: object) -> BitbucketServerForge:
    made = connect(SLUG, api_url=dc.url, token=TOKEN, sleep=lambda _: None, **kw)
    assert isinstance(made, BitbucketServerForge)
    return made


@pytest.fixture
def forge(dc: FakeBitbucketServer, repo: Repo) -> BitbucketServerForge:
    return fresh(dc)


def calls(dc: FakeBitbucketServer) -> list[str]:
    return [f"{r.method} {r.path.split('/repos/config')[-1]}" for r in dc.requests]


def propose(forge: BitbucketServerForge, snap: Snapshot) -> str:
    return forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=None)


def test_snapshot_is_every_file_byte_for_byte(dc: FakeBitbucketServer, repo: Repo,
                                              forge: BitbucketServerForge) -> None:
    snap = forge.snapshot("main")
    assert snap.commit == repo.bare.resolve("main") and dict(snap.files) == FILES
    assert snap.links == {"envs/link.yaml": "dev/app.yaml"}
    # the root listing proves the archive (and holds the policy file's entry)
    assert calls(dc) == ["GET /branches", "GET /archive", "GET /browse"]
    assert forge.snapshot(None).branch == "main"  # the default branch


def test_only_the_directories_the_archive_misstates_are_browsed(
        dc: FakeBitbucketServer, repo: Repo, forge: BitbucketServerForge) -> None:
    """The archive leaves envs/prod out: envs and envs/prod are browsed (their ids
    differ), envs/dev is not (its id is the archive's), and the one file read is checked
    against its contentId."""
    repo.bare.commit_files("main", {".gitattributes": b"envs/prod/** export-ignore\n"}, "h")
    snap = forge.snapshot("main")
    assert dict(snap.files) == {**FILES, ".gitattributes": b"envs/prod/** export-ignore\n"}
    assert calls(dc) == ["GET /branches", "GET /archive", "GET /browse", "GET /browse/envs",
                         "GET /browse/envs/prod", "GET /raw/envs/prod/app.yaml"]


def test_a_file_read_as_other_bytes_than_its_id_stops_the_run(
        dc: FakeBitbucketServer, repo: Repo, forge: BitbucketServerForge) -> None:
    repo.bare.commit_files("main", {".gitattributes": b"envs/prod/** export-ignore\n"}, "h")
    dc.fail("GET", r"/raw/envs/prod/app\.yaml$", 200, body=b"image: evil:6.6.6\n")
    with pytest.raises(ForgeError, match="not the blob") as caught:
        forge.snapshot("main")
    assert caught.value.code == 5


def test_a_root_of_many_entries_is_listed_page_by_page(
        dc: FakeBitbucketServer, repo: Repo, forge: BitbucketServerForge) -> None:
    many = {f"n{i:03}.yaml": f"n: {i}\n".encode() for i in range(150)}
    repo.bare.commit_files("main", many, "many files")
    snap = forge.snapshot("main")
    assert dict(snap.files) == {**FILES, **many}
    assert calls(dc).count("GET /browse") == 2  # 100 + the rest, and nothing else browsed
    assert len(calls(dc)) == 4


def test_directories_listed_without_ids_are_browsed_not_trusted(
        dc: FakeBitbucketServer, repo: Repo, forge: BitbucketServerForge) -> None:
    """Should a server list directories without ``contentId``, each is browsed and its
    files compared by id: more requests, the same proof."""
    repo.bare.commit_files("main", {".gitattributes": b"envs/prod/** export-ignore\n"}, "h")
    main = repo.bare.resolve("main") or ""
    root = [{"path": {"toString": path}, "type": "DIRECTORY" if mode == "040000" else "FILE",
             **({} if mode == "040000" else {"contentId": oid})}
            for path, (mode, oid) in (
                (line.split("\t")[1], tuple(line.split("\t")[0].split()[::2]))
                for line in repo.bare.git("ls-tree", main).stdout.decode().splitlines())]
    dc.fail("GET", r"/repos/config/browse$", 200,
            body={"children": {"isLastPage": True, "values": root}})
    snap = forge.snapshot("main")
    assert dict(snap.files) == {**FILES, ".gitattributes": b"envs/prod/** export-ignore\n"}
    assert snap.links == {"envs/link.yaml": "dev/app.yaml"}
    assert calls(dc) == ["GET /branches", "GET /archive", "GET /browse", "GET /browse/envs",
                         "GET /browse/envs/prod", "GET /raw/envs/prod/app.yaml"]


def test_a_linked_or_filtered_policy_file(dc: FakeBitbucketServer, repo: Repo,
                                          forge: BitbucketServerForge) -> None:
    # left out of the archive, a blob listed without its mode may be a link (whose target
    # may be any text): refused, with what to do
    repo.bare.commit_files("main", {".gitattributes": b".promoter.yaml export-ignore\n"}, "h")
    with pytest.raises(ConfigError, match="cannot tell a regular file from a symbolic "
                                          "link") as info:
        forge.snapshot("main")
    assert info.value.code == 2 and "remove export-ignore" in (info.value.hint or "")
    main = repo.bare.resolve("main") or ""
    tree = repo.bare.write_tree_entries(main, {
        ".promoter.yaml": ("120000", repo.bare.write_blob(b"README.md")),
        ".gitattributes": None})
    repo.bare.update_ref("main", repo.bare.commit_tree(tree, [main], "link"), old=main)
    with pytest.raises(ConfigError, match="symbolic link"):
        forge.snapshot("main")


def test_log_follows_first_parents_and_stops_at_the_root(dc: FakeBitbucketServer, repo: Repo,
                                                         forge: BitbucketServerForge) -> None:
    snap = forge.snapshot("main")
    sha = propose(forge, snap)
    repo.bare.merge("main", sha, "merge", "Merge promotion")
    dc.reset_counts()
    history = forge.log("main", 10)
    assert [c.message.splitlines()[0] for c in history] == [
        "Merge promotion", "link", "Initial commit"]  # not the branch's own commit
    assert [c.split()[0] for c in calls(dc)] == ["GET"]  # one page, the root reached
    assert history[0].author and history[0].date.endswith("Z")
    assert [c.sha for c in forge.log("main", 2)] == [c.sha for c in history[:2]]


def test_one_file_is_one_commit_on_the_snapshot(dc: FakeBitbucketServer, repo: Repo,
                                                forge: BitbucketServerForge) -> None:
    snap = forge.snapshot("main")
    dc.reset_counts()
    sha = propose(forge, snap)
    assert calls(dc) == ["PUT /browse/envs/dev/app.yaml"]
    assert (repo.bare.commit(sha) or {})["parents"] == [snap.commit]
    assert fresh(dc).changed_files(sha) == {p: git_blob_sha(d) for p, d in NEW.items()}
    head = fresh(dc).read_head(BRANCH)
    assert head == Head(sha, MESSAGE, (snap.commit,))


def test_several_files_are_refused_before_anything_is_written(
        dc: FakeBitbucketServer, repo: Repo, forge: BitbucketServerForge) -> None:
    snap = forge.snapshot("main")
    dc.reset_counts()
    with pytest.raises(UsageError, match="refuses rather than split") as caught:
        forge.write_commit(BRANCH, snap, {**NEW, "envs/prod/app.yaml": b"x\n"}, MESSAGE,
                           replace=None)
    assert caught.value.code == 2 and dc.requests == []


def test_a_base_that_moved_is_taken_back_and_planned_again(
        dc: FakeBitbucketServer, repo: Repo, forge: BitbucketServerForge) -> None:
    """Data Center commits on the base as it is: a parent that is not the snapshot is a
    conflict, and the branch just made is deleted (compare-and-swap on it)."""
    snap = forge.snapshot("main")
    dc.before("PUT", r"/browse/", lambda: repo.bare.commit_files(
        "main", {"README.md": b"moved\n"}, "someone else"))
    with pytest.raises(ConflictError, match="moved"):
        propose(forge, snap)
    assert repo.bare.resolve(f"refs/heads/{BRANCH}") is None


def test_a_file_changed_on_the_base_is_refused(dc: FakeBitbucketServer, repo: Repo,
                                               forge: BitbucketServerForge) -> None:
    snap = forge.snapshot("main")
    repo.bare.commit_files("main", {"envs/dev/app.yaml": b"theirs\n"}, "hotfix")
    with pytest.raises(ConflictError, match="changed under the promotion"):
        propose(forge, snap)
    assert repo.bare.resolve(f"refs/heads/{BRANCH}") is None


def test_an_existing_branch_is_not_overwritten(dc: FakeBitbucketServer, repo: Repo,
                                               forge: BitbucketServerForge) -> None:
    snap = forge.snapshot("main")
    theirs = repo.bare.commit_files(BRANCH, {"README.md": b"mine\n"}, "someone's")
    with pytest.raises(ConflictError, match="already exists"):
        propose(forge, snap)
    assert repo.bare.resolve(f"refs/heads/{BRANCH}") == theirs


def test_the_same_commit_by_another_run_is_not_taken_as_this_runs(
        dc: FakeBitbucketServer, repo: Repo, forge: BitbucketServerForge) -> None:
    snap = forge.snapshot("main")
    bare = repo.bare

    def other_run() -> None:
        tree = bare.write_tree_from(snap.commit, NEW)
        bare.update_ref(BRANCH, bare.commit_tree(tree, [snap.commit], MESSAGE), old="0" * 40)

    dc.before("PUT", r"/browse/", other_run)
    with pytest.raises(ConflictError, match="already exists"):
        propose(forge, snap)


def test_a_commit_whose_answer_was_lost_is_not_repeated(dc: FakeBitbucketServer, repo: Repo,
                                                        forge: BitbucketServerForge) -> None:
    snap = forge.snapshot("main")
    dc.fail("PUT", r"/browse/", 0, apply_then_fail=True)
    sha = propose(forge, snap)
    assert repo.bare.resolve(f"refs/heads/{BRANCH}") == sha
    assert dc.count("PUT") == 1


def replaced(dc: FakeBitbucketServer, repo: Repo,
             forge: BitbucketServerForge) -> tuple[Snapshot, Head]:
    propose(forge, forge.snapshot("main"))
    repo.bare.commit_files("main", {"README.md": b"newer\n"}, "someone else")
    head = forge.read_head(BRANCH)
    assert head is not None
    return forge.snapshot("main"), head


def test_replace_deletes_with_a_compare_and_swap(dc: FakeBitbucketServer, repo: Repo,
                                                 forge: BitbucketServerForge) -> None:
    snap, head = replaced(dc, repo, forge)
    dc.reset_counts()
    sha = forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=head)
    assert [c.split()[0] for c in calls(dc)] == ["GET", "DELETE", "PUT"]
    assert (repo.bare.commit(sha) or {})["parents"] == [snap.commit]


def test_replace_refuses_a_branch_someone_pushed_to(dc: FakeBitbucketServer, repo: Repo,
                                                   forge: BitbucketServerForge) -> None:
    snap, head = replaced(dc, repo, forge)
    theirs = repo.bare.commit_files(BRANCH, {"README.md": b"x\n"}, "a push")
    with pytest.raises(ConflictError, match="moved"):
        forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=head)
    assert repo.bare.resolve(f"refs/heads/{BRANCH}") == theirs
    assert dc.count("DELETE") == 0


def test_replace_never_deletes_someone_elses_push(dc: FakeBitbucketServer, repo: Repo,
                                                  forge: BitbucketServerForge) -> None:
    snap, head = replaced(dc, repo, forge)
    pushed: list[str] = []
    dc.before("DELETE", r"/branches$", lambda: pushed.append(repo.bare.commit_files(
        BRANCH, {"README.md": b"x\n"}, "a push")))
    with pytest.raises(ConflictError, match="moved"):
        forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=head)
    assert repo.bare.resolve(f"refs/heads/{BRANCH}") == pushed[0]  # endPoint held


def test_changed_files_proves_only_plain_edits(dc: FakeBitbucketServer, repo: Repo,
                                               forge: BitbucketServerForge) -> None:
    bare = repo.bare
    main = bare.resolve("main") or ""

    def commit(entries: dict[str, tuple[str, str] | None], parents: list[str]) -> str:
        return bare.commit_tree(bare.write_tree_entries(main, entries), parents, "x")

    blob = bare.write_blob(b"new\n")
    edit = commit({"README.md": ("100644", blob)}, [main])
    assert forge.changed_files(edit) == {"README.md": blob}
    assert forge.changed_files(commit({"README.md": None}, [main])) is None
    assert forge.changed_files(commit({"README.md": ("100755", blob)}, [main])) is None
    assert forge.changed_files(commit({"README.md": None, "R.md": (
        "100644", bare.read_tree(main)["README.md"][1])}, [main])) is None
    assert forge.changed_files(commit({"README.md": ("100644", blob)}, [main, edit])) is None


def test_requests_open_find_update_close(dc: FakeBitbucketServer, repo: Repo) -> None:
    notes: list[str] = []
    forge = fresh(dc, warn=notes.append)
    propose(forge, forge.snapshot("main"))
    dc.reset_counts()
    spec = RequestSpec("Promote", "body", labels=("prod",), reviewers=("alice",))
    pr = forge.open_request(BRANCH, "main", spec)
    assert calls(dc) == ["POST /pull-requests"] and "no labels" in notes[0]
    assert dc.pulls(SLUG)[0].reviewers == ["alice"]
    found = forge.find_request(BRANCH, "main")
    assert found is not None and found.number == pr.number
    forge.update_request(found, RequestSpec("Promote 2", "new"))
    pull = dc.pulls(SLUG)[0]
    assert (pull.title, pull.reviewers) == ("Promote 2", ["alice"])  # reviewers kept
    again = fresh(dc).open_request(BRANCH, "main", RequestSpec("Promote 3", "b"))
    assert again.number == pr.number and len(dc.pulls(SLUG)) == 1
    forge.close_request(again, "superseded")
    assert pull.state == "DECLINED" and pull.comments == ["superseded"]
    with pytest.raises(ConfigError, match="nobody"):
        forge.open_request(BRANCH, "main", RequestSpec("t", "b", reviewers=("nobody",)))


def opened(forge: BitbucketServerForge) -> tuple[str, PullRequest]:
    sha = propose(forge, forge.snapshot("main"))
    return sha, forge.open_request(BRANCH, "main", RequestSpec("t", "b"))


def test_checks_are_the_build_statuses(dc: FakeBitbucketServer, repo: Repo,
                                       forge: BitbucketServerForge) -> None:
    sha, pr = opened(forge)
    assert forge.checks(pr, sha) is ChecksState.NONE
    dc.set_build(SLUG, sha, "INPROGRESS")
    assert forge.checks(pr, sha) is ChecksState.PENDING
    dc.set_build(SLUG, sha, "SUCCESSFUL")
    assert forge.checks(pr, sha) is ChecksState.SUCCESS
    dc.set_build(SLUG, sha, "CANCELLED", "lint")
    assert forge.checks(pr, sha) is ChecksState.FAILURE


def test_merge_is_pinned_by_the_version_read_with_the_proved_head(
        dc: FakeBitbucketServer, repo: Repo, forge: BitbucketServerForge) -> None:
    """A push between the read and the merge rescopes the pull request (a new version):
    the merge with the old version is refused, main is untouched."""
    sha, pr = opened(forge)
    main = repo.bare.resolve("main")
    pushed: list[str] = []

    def push() -> None:  # once, at the first request after promoter read the version
        if not pushed:
            pushed.append(repo.bare.commit_files(BRANCH, {"envs/prod/app.yaml": b"evil\n"},
                                                 "a push"))

    def arm() -> None:
        dc.before("GET", r"/pull-requests/\d+$", push)
        dc.before("POST", r"/pull-requests/\d+/merge$", push)

    dc.before("GET", r"/pull-requests/\d+$", arm)  # the read of the proved head
    with pytest.raises(ConflictError, match="moved"):
        forge.merge(pr, "merge", sha)
    assert pushed and repo.bare.resolve("main") == main


def test_merge_refuses_a_head_that_moved_before(dc: FakeBitbucketServer, repo: Repo,
                                                forge: BitbucketServerForge) -> None:
    sha, pr = opened(forge)
    repo.bare.commit_files(BRANCH, {"envs/prod/app.yaml": b"evil\n"}, "a push")
    dc.reset_counts()
    with pytest.raises(ConflictError, match="moved"):
        forge.merge(pr, "merge", sha)
    assert dc.count("POST") == 0


def test_a_request_merged_elsewhere_at_another_head_is_reported(
        dc: FakeBitbucketServer, repo: Repo, forge: BitbucketServerForge) -> None:
    """Someone pushed and merged it by hand: promoter never reports that as its merge."""
    import requests

    sha, pr = opened(forge)
    repo.bare.commit_files(BRANCH, {"envs/prod/app.yaml": b"evil\n"}, "a push")
    api = f"{dc.url}/rest/api/1.0/projects/OPS/repos/config/pull-requests/{pr.number}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    version = requests.get(api, headers=auth, timeout=5).json()["version"]
    assert requests.post(f"{api}/merge", params={"version": version}, headers=auth, json={},
                         timeout=5).status_code == 200
    with pytest.raises(ForgeError, match="not at the commit promoter proved"):
        forge.merge(pr, "merge", sha)


def test_merge_with_promoters_message_and_merge_checks(dc: FakeBitbucketServer, repo: Repo,
                                                       forge: BitbucketServerForge) -> None:
    repo.required_builds = 1
    sha, pr = opened(forge)
    outcome = forge.merge(pr, "squash", sha, "Promote\n\nPromoted-Image: x")
    assert not outcome.merged and "vetoed" in outcome.reason
    dc.set_build(SLUG, sha, "SUCCESSFUL")
    dc.reset_counts()
    assert forge.merge(pr, "squash", sha, "Promote\n\nPromoted-Image: x").merged
    assert calls(dc) == ["GET /pull-requests/1", "POST /pull-requests/1/merge"]
    assert (repo.bare.commit(repo.bare.resolve("main") or "") or {})["message"] == \
        "Promote\n\nPromoted-Image: x"


def test_auto_merge_is_never_scheduled(dc: FakeBitbucketServer, repo: Repo,
                                       forge: BitbucketServerForge) -> None:
    sha, pr = opened(forge)
    dc.set_build(SLUG, sha, "INPROGRESS")
    outcome = forge.enable_auto_merge(pr, "merge", sha)
    assert not outcome.merged and not outcome.auto_merge and "--merge-timeout" in outcome.reason


def test_the_token_goes_only_to_the_server(dc: FakeBitbucketServer, repo: Repo,
                                           forge: BitbucketServerForge) -> None:
    with Recorder() as other:
        dc.fail("GET", r"/branches$", 302, headers={"Location": f"{other.root_url}/x"})
        with pytest.raises(ForgeError, match="redirect") as caught:
            forge.snapshot("main")
        assert not other.seen and TOKEN not in str(caught.value)


def test_the_cli_picks_data_center_from_the_api_url(
        dc: FakeBitbucketServer, repo: Repo, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BITBUCKET_TOKEN", TOKEN)
    repo.bare.commit_files("main", {"k8s/deploy.yaml": (
        b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n"
        b"    spec:\n      containers:\n      - name: api\n"
        b"        image: ghcr.io/acme/api:1.0.0\n")}, "a deployment")
    # every file that sets the image: three files, refused before anything is written
    before = repo.bare.list_refs()
    code = run(["--repo", SLUG, "--forge", "bitbucket", "--api-url", dc.url, "--image",
                "ghcr.io/acme/api:1.2.0", "--output", "json"])
    out, err = capsys.readouterr()
    assert code == 2 and "refuses rather than split" in err
    assert repo.bare.list_refs() == before
    code = run(["--repo", SLUG, "--forge", "bitbucket", "--api-url",
                dc.url + "/rest/api/1.0", "--image", "ghcr.io/acme/api:1.1.0",
                "--file", "k8s/*.yaml", "--output", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "proposed" and result["pull_request"]["created"] is True
    assert TOKEN not in out + err
    assert [p.source for p in dc.pulls(SLUG)] == [result["branch"]]
