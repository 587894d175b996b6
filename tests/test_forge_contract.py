"""The Forge contract: the same behaviours, asserted once, against every forge -- the real
forge classes talking HTTP to the real fakes (``tests/harness.py``), plain git against a
real bare repo. What a forge may not do (Bitbucket Data Center writes one file per
commit; Bitbucket has no rebase merge) is a row in a table here, so the difference is
visible, not hidden in a per-forge file.

Someone else's moves (a push to main, a push to the promotion branch) are real commits in
the bare repo behind the fake.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from promoter.errors import ConflictError, UsageError
from promoter.forges.base import Forge, MergeMethod, RequestSpec, Snapshot, git_blob_sha
from tests.harness import KINDS, Harness, harness

BRANCH = "promote/dev/api"
MESSAGE = "Promote ghcr.io/acme/api to 1.0.1\n\nPromoted-Image: ghcr.io/acme/api:1.0.1"
DEV, PROD = "envs/dev/app.yaml", "envs/prod/app.yaml"
FILES = {".promoter.yaml": b"version: 1\n", "README.md": b"# config\n",
         DEV: b"image: ghcr.io/acme/api:1.0.0  # dev\n",
         PROD: b"image: ghcr.io/acme/api:1.0.0  # prod\n"}
ONE = {DEV: b"image: ghcr.io/acme/api:1.0.1  # dev\n"}
TWO = {**ONE, PROD: b"image: ghcr.io/acme/api:1.0.1  # prod\n"}
SPEC = RequestSpec(title="Promote api to 1.0.1", body="the diff")

# what each forge cannot do, and says so before writing anything
ONE_FILE_PER_COMMIT = {"bitbucket-dc"}  # the file edit API: one file, one commit
METHODS: dict[str, tuple[MergeMethod, ...]] = {
    "git": ("merge", "squash", "rebase"), "github": ("merge", "squash", "rebase"),
    "gitlab": ("merge", "squash", "rebase"), "gitea": ("merge", "squash", "rebase"),
    "azure": ("merge", "squash", "rebase"), "bitbucket": ("merge", "squash"),
    "bitbucket-dc": ("merge", "squash")}


@pytest.fixture(params=KINDS)
def h(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
      monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with harness(request.param, tmp_path_factory.mktemp(request.param), FILES) as made:
        yield made


@pytest.fixture
def forge(h: Harness) -> Iterator[Forge]:
    made = h.forge()
    yield made
    made.close()


def write(forge: Forge, snap: Snapshot, files: dict[str, bytes]) -> str:
    return forge.write_commit(BRANCH, snap, files, MESSAGE, replace=None)


def proposed(h: Harness, forge: Forge) -> tuple[str, Snapshot]:
    snap = forge.snapshot("main")
    return write(forge, snap, ONE), snap


# --- commits ------------------------------------------------------------------------------


def test_a_commit_carries_every_file_on_the_snapshot_or_nothing(h: Harness,
                                                               forge: Forge) -> None:
    snap = forge.snapshot("main")
    if h.name in ONE_FILE_PER_COMMIT:
        with pytest.raises(UsageError):
            write(forge, snap, TWO)
        assert h.branch(BRANCH) is None
        return
    sha = write(forge, snap, TWO)
    assert h.branch(BRANCH) == sha
    assert (h.bare.commit(sha) or {})["parents"] == [snap.commit]
    tree = {path: h.bare.read_file(sha, path) for path in FILES}
    assert tree == {**FILES, **TWO}


def test_a_bad_path_among_good_ones_writes_nothing(h: Harness, forge: Forge) -> None:
    snap = forge.snapshot("main")
    h.reset_counts()
    with pytest.raises(UsageError):
        write(forge, snap, {**ONE, "../outside.yaml": b"x: 1\n"})
    assert h.branch(BRANCH) is None
    assert h.requests() == []


def test_changed_files_names_each_new_blob_and_nothing_else(h: Harness, forge: Forge) -> None:
    """As promote asks it: of a tip ``read_head`` returned, by a forge that took the
    snapshot."""
    files = ONE if h.name in ONE_FILE_PER_COMMIT else TWO
    sha = write(forge, forge.snapshot("main"), files)
    other = h.forge()
    other.snapshot("main")
    assert other.read_head(BRANCH) is not None
    assert other.changed_files(sha) == {p: git_blob_sha(d) for p, d in files.items()}
    # a commit that does anything else (here: deletes a file) is never proved
    h.bare.commit_files(BRANCH, {"README.md": None}, "someone deletes a file")
    third = h.forge()
    third.snapshot("main")
    head = third.read_head(BRANCH)
    assert head is not None and head.sha != sha
    assert third.changed_files(head.sha) is None


def test_a_base_that_moved_under_the_write_is_planned_again(h: Harness, forge: Forge) -> None:
    """The forge writes on the snapshot it was given, or says ConflictError: it never
    hands back a commit on a base promoter did not read. (What a refused write leaves on
    the branch differs: Data Center deletes it, Gitea leaves its commit there; the plan
    made again replaces it either way.)"""
    snap = forge.snapshot("main")
    h.bare.commit_files("main", {"README.md": b"moved\n"}, "someone else")
    try:
        sha = write(forge, snap, ONE)
    except ConflictError:
        pass
    else:
        assert (h.bare.commit(sha) or {})["parents"] == [snap.commit]
        assert h.bare.read_file(sha, "README.md") == FILES["README.md"]
    # planned again on the new base, the same promotion lands on it
    again = h.forge()
    fresh = again.snapshot("main")
    assert fresh.files["README.md"] == b"moved\n"
    sha = again.write_commit(BRANCH, fresh, ONE, MESSAGE, replace=again.read_head(BRANCH))
    assert (h.bare.commit(sha) or {})["parents"] == [fresh.commit]
    assert h.branch(BRANCH) == sha


# --- requests -----------------------------------------------------------------------------


def test_a_second_open_finds_and_updates_the_same_request(h: Harness, forge: Forge) -> None:
    proposed(h, forge)
    first = forge.open_request(BRANCH, "main", SPEC)
    found = h.forge().find_request(BRANCH, "main", confirm_none=True)
    assert found is not None and found.number == first.number
    newer = RequestSpec(title="Promote api to 1.0.2", body="the newer diff")
    second = h.forge().open_request(BRANCH, "main", newer)
    assert second.number == first.number
    assert [(c.branch, c.state) for c in h.changes()] == [(BRANCH, "open")]
    if h.name != "git":  # the branch is the request: there is no title
        assert h.request_text(first.number).startswith("Promote api to 1.0.2\n")


# --- merging ------------------------------------------------------------------------------


def test_a_merge_with_a_stale_head_is_refused_and_merges_nothing(h: Harness,
                                                                 forge: Forge) -> None:
    sha, _ = proposed(h, forge)
    pr = forge.open_request(BRANCH, "main", SPEC)
    h.bare.commit_files(BRANCH, {PROD: b"image: evil\n"}, "someone pushes to the branch")
    main = h.bare.resolve("main")
    try:
        outcome = forge.merge(pr, "merge", sha, MESSAGE)
    except ConflictError:
        pass
    else:
        assert not outcome.merged
    assert h.bare.resolve("main") == main
    assert all(c.state != "merged" for c in h.changes())


@pytest.mark.parametrize(("h", "method"), [(kind, method) for kind in KINDS
                                            for method in METHODS[kind]], indirect=["h"])
def test_each_merge_method_the_forge_supports_lands_the_change(h: Harness, forge: Forge,
                                                               method: MergeMethod) -> None:
    sha, snap = proposed(h, forge)
    pr = forge.open_request(BRANCH, "main", SPEC)
    outcome = forge.merge(pr, method, sha, MESSAGE)
    assert outcome.merged, outcome
    main = h.bare.resolve("main") or ""
    assert h.bare.read_file(main, DEV) == ONE[DEV]
    assert h.bare.is_ancestor(snap.commit, main)
    tip = h.bare.commit(main) or {}
    if method == "squash":
        assert tip["parents"] == [snap.commit]
        assert tip["message"].strip() == MESSAGE
    if method == "merge":
        assert h.bare.is_ancestor(sha, main)


# --- lifecycle ----------------------------------------------------------------------------


def test_close_lets_go_and_may_be_called_again(h: Harness) -> None:
    forge = h.forge()
    sha = write(forge, forge.snapshot("main"), ONE)
    forge.close()
    forge.close()
    assert h.forge().read_head(BRANCH) is not None
    assert h.branch(BRANCH) == sha
