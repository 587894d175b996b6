"""The plain-git forge against real repositories: bare repos and a normal repo in tmp
dirs, reached by path, by file:// URL and over smart HTTP (``git http-backend`` behind
a local server on 127.0.0.1, which can ask for a password, fail or refuse pushes)."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from promoter.errors import AuthError, ConflictError, ForgeError, UsageError
from promoter.forges.base import ChecksState, Forge, Head, PullRequest, RequestSpec
from promoter.forges.git import GitForge, check_branch, check_path, strip_userinfo
from promoter.forges.gitclone import url_secrets
from tests.fakes.githttp import GitServer

TOKEN = "tok-3f9a7c1e5b2d"  # a fake credential; must never appear in a message

SEED: dict[str, bytes] = {
    "README.md": b"# config\n",
    "envs/dev/deploy.yaml": b"kind: Deployment\nimage: ghcr.io/acme/api:1.0.0\n",
    "envs/prod/deploy.yaml": b"kind: Deployment\r\nimage: ghcr.io/acme/api:0.9.0\r\n",
    "envs/prod/values.yaml": b"replicas: 3\n",
    "deep/a/b/c/d.yaml": b"x: 1\n",
    "bin/logo.png": bytes(range(256)) * 4 + b"\x00\r\n\x00",
    "scripts/run.sh": b"#!/bin/sh\necho hi\n",
}


@pytest.fixture(autouse=True)
def scrubbed_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CI or git variables of the machine, and an empty HOME (no ~/.gitconfig)."""
    for key in list(os.environ):
        if key.startswith(("GIT_", "GITHUB_", "GITLAB_", "CI_", "PROMOTE_")) or key in (
                "CI", "SSH_AUTH_SOCK", "EMAIL") or key.lower().endswith("_proxy"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir()
    # only a git identity: plain git commits need an author (promoter.identity)
    (home / ".gitconfig").write_text("[user]\n\tname = Tester\n\temail = tester@example.com\n")
    monkeypatch.setenv("HOME", str(home))


def _env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Someone Else",
            "GIT_AUTHOR_EMAIL": "else@example.com", "GIT_COMMITTER_NAME": "Someone Else",
            "GIT_COMMITTER_EMAIL": "else@example.com", **extra}


def git(cwd: Path, *args: str, input: bytes | None = None, **env: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, env=_env(**env), input=input,
                            capture_output=True, check=True)
    return result.stdout.decode().strip()


class Remote:
    """A repository playing the config repo, and the people who commit to it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str, input: bytes | None = None, **env: str) -> str:
        return git(self.path, *args, input=input, **env)

    def sha(self, branch: str) -> str | None:
        result = subprocess.run(["git", "rev-parse", "--verify", "-q", f"refs/heads/{branch}"],
                                cwd=self.path, env=_env(), capture_output=True, check=False)
        return result.stdout.decode().strip() or None

    def commit(self, branch: str, files: Mapping[str, bytes], message: str,
               *, start: str | None = None) -> str:
        """Someone else's commit on ``branch`` (from ``start``'s tip when it is new)."""
        parent = self.sha(start or branch)
        index = self.path / "tmp-index"
        env = {"GIT_INDEX_FILE": str(index)}
        self.git("read-tree", *([parent] if parent else ["--empty"]), **env)
        staged = self.path / "tmp-blobs"
        staged.mkdir()
        for n, data in enumerate(files.values()):
            (staged / str(n)).write_bytes(data)
        blobs = self.git("hash-object", "-w", "--stdin-paths", "--no-filters",
                         input="".join(f"{staged / str(n)}\n" for n in range(len(files)))
                         .encode()).split()
        shutil.rmtree(staged)
        entries = b"".join(f"100644 {blob}\t".encode() + os.fsencode(path) + b"\x00"
                           for path, blob in zip(files, blobs, strict=True))
        self.git("update-index", "-z", "--index-info", input=entries, **env)
        tree = self.git("write-tree", **env)
        index.unlink()
        sha = self.git("commit-tree", tree, *(["-p", parent] if parent else []), "-m", message)
        self.git("update-ref", f"refs/heads/{branch}", sha)
        return sha

    def show(self, ref: str, path: str) -> bytes:
        return subprocess.run(["git", "show", f"{ref}:{path}"], cwd=self.path, env=_env(),
                              capture_output=True, check=True).stdout

    def parents(self, ref: str) -> list[str]:
        return self.git("rev-list", "--parents", "-n", "1", ref).split()[1:]

    def message(self, ref: str) -> str:
        return self.git("log", "-1", "--format=%B", ref)

    def branches(self) -> list[str]:
        return self.git("for-each-ref", "--format=%(refname:short)", "refs/heads").split()

    def count(self, ref: str) -> int:
        return int(self.git("rev-list", "--count", ref))


def make_remote(root: Path, files: Mapping[str, bytes] = SEED, *, name: str = "config.git",
                branch: str = "main") -> Remote:
    path = root / name
    path.mkdir(parents=True)
    git(path, "init", "-q", "--bare", "-b", branch)
    remote = Remote(path)
    remote.commit(branch, files, "seed")
    return remote


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return make_remote(tmp_path / "remotes")


@pytest.fixture
def forges(tmp_path: Path) -> Iterator[Callable[..., GitForge]]:
    """Forges that are closed at the end of the test, with retries that do not sleep."""
    made: list[GitForge] = []

    def make(remote: str | Path, **kwargs: Any) -> GitForge:
        kwargs.setdefault("sleep", lambda _s: None)
        kwargs.setdefault("workdir", tmp_path / "work")
        forge = GitForge(str(remote), **kwargs)
        made.append(forge)
        return forge

    yield make
    for forge in made:
        forge.close()
    work = tmp_path / "work"
    assert not work.exists() or list(work.iterdir()) == []  # no private clone left behind


def promote(forge: GitForge, remote: Remote, tag: str = "1.1.0", *,
            branch: str = "promote/dev/api") -> tuple[str, PullRequest]:
    """Snapshot, write the promotion commit and find it as the request."""
    snap = forge.snapshot("main")
    new = snap.files["envs/dev/deploy.yaml"].replace(b"1.0.0", tag.encode())
    sha = forge.write_commit(branch, snap, {"envs/dev/deploy.yaml": new},
                             f"Promote api to {tag}\n\nenv: dev\n", replace=None)
    pr = forge.find_request(branch, "main")
    assert pr is not None
    return sha, pr


# -- snapshot --------------------------------------------------------------------------


def test_snapshot_returns_exact_bytes_of_every_regular_file(remote: Remote, forges: Any) -> None:
    forge = forges(remote.path)
    snap = forge.snapshot("main")
    assert snap.branch == "main"
    assert snap.commit == remote.sha("main")
    assert dict(snap.files) == SEED
    assert snap.files["envs/prod/deploy.yaml"].count(b"\r\n") == 2


def test_snapshot_skips_symlinks_and_submodules(tmp_path: Path, forges: Any) -> None:
    work = tmp_path / "work-repo"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "real.yaml").write_bytes(b"a: 1\n")
    (work / "link.yaml").symlink_to("real.yaml")
    git(work, "add", "real.yaml", "link.yaml")
    git(work, "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},vendor/sub")
    git(work, "commit", "-q", "-m", "with a symlink and a submodule")
    bare = tmp_path / "r.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    snap = forges(bare).snapshot(None)
    assert dict(snap.files) == {"real.yaml": b"a: 1\n"}


def test_snapshot_without_base_uses_the_remote_default_branch(tmp_path: Path,
                                                              forges: Any) -> None:
    remote = make_remote(tmp_path, {"a.yaml": b"on trunk\n"}, branch="trunk")
    remote.commit("other", {"a.yaml": b"on other\n"}, "other", start="trunk")
    snap = forges(remote.path).snapshot(None)
    assert (snap.branch, snap.files["a.yaml"]) == ("trunk", b"on trunk\n")
    other = forges(remote.path).snapshot("other")
    assert other.files["a.yaml"] == b"on other\n"


def test_snapshot_of_a_missing_remote_is_a_usage_error_naming_it(tmp_path: Path,
                                                                 forges: Any) -> None:
    missing = tmp_path / "nope.git"
    with pytest.raises(UsageError) as info:
        forges(missing).snapshot("main")
    assert str(missing) in str(info.value)
    assert "not a git repository" in str(info.value)
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    with pytest.raises(UsageError, match="plain"):
        forges(plain_dir).snapshot("main")


def test_missing_base_branch_lists_the_branches_that_exist(remote: Remote,
                                                           forges: Any) -> None:
    remote.commit("staging", {"x": b"1"}, "x", start="main")
    with pytest.raises(UsageError) as info:
        forges(remote.path).snapshot("production")
    message = str(info.value)
    assert "'production'" in message
    assert "main, staging" in message
    assert info.value.code == 2


def test_empty_remote_says_to_push_a_first_commit(tmp_path: Path, forges: Any) -> None:
    bare = tmp_path / "empty.git"
    bare.mkdir()
    git(bare, "init", "-q", "--bare")
    with pytest.raises(UsageError, match="no branches"):
        forges(bare).snapshot(None)


def test_non_ascii_and_non_utf8_paths_round_trip(tmp_path: Path, forges: Any) -> None:
    latin1 = os.fsdecode(b"envs/caf\xe9.yaml")  # not UTF-8: kept as surrogate escapes
    remote = make_remote(tmp_path, {"envs/ümlaut/straße.yaml": b"a: 1\n", latin1: b"b: 2\n"})
    forge = forges(remote.path)
    snap = forge.snapshot("main")
    assert dict(snap.files) == {"envs/ümlaut/straße.yaml": b"a: 1\n", latin1: b"b: 2\n"}
    sha = forge.write_commit("b", snap, {latin1: b"b: 3\n", "envs/ümlaut/straße.yaml": b"a: 2\n"},
                             "m", replace=None)
    changed = subprocess.run(["git", "show", "--format=", "--name-only", "-z", sha],
                             cwd=remote.path, env=_env(), capture_output=True,
                             check=True).stdout.split(b"\x00")
    assert sorted(p for p in changed if p) == [b"envs/caf\xe9.yaml",
                                               "envs/ümlaut/straße.yaml".encode()]


def test_close_and_context_manager_remove_the_private_clone(remote: Remote,
                                                            tmp_path: Path) -> None:
    with GitForge(str(remote.path), workdir=tmp_path / "w") as forge:
        forge.snapshot("main")
        clone = forge.path
        assert clone is not None
        assert (clone / ".git").is_dir()
    assert not clone.exists()
    assert list((tmp_path / "w").iterdir()) == []


# -- write_commit --------------------------------------------------------------------


def test_write_commit_makes_one_commit_touching_several_files(remote: Remote,
                                                              forges: Any) -> None:
    forge = forges(remote.path)
    snap = forge.snapshot("main")
    remote.commit("main", {"README.md": b"moved on\n"}, "main moves after the snapshot")
    files = {
        "envs/dev/deploy.yaml": b"kind: Deployment\nimage: ghcr.io/acme/api:1.1.0\n",
        "envs/prod/deploy.yaml": b"kind: Deployment\r\nimage: ghcr.io/acme/api:1.1.0\r\n",
        "envs/new/dir/file.yaml": b"fresh: true\n",
        "scripts/run.sh": b"#!/bin/sh\necho changed\n",
    }
    sha = forge.write_commit("promote/all/api", snap, files, "Promote api to 1.1.0\n",
                             replace=None)
    assert remote.sha("promote/all/api") == sha
    assert remote.parents(sha) == [snap.commit]
    assert remote.message(sha) == "Promote api to 1.1.0"
    changed = remote.git("show", "--format=", "--name-only", sha).split()
    assert sorted(changed) == sorted(files)
    for path, data in files.items():
        assert remote.show(sha, path) == data
    for path in set(SEED) - set(files):
        assert remote.show(sha, path) == SEED[path]
    mode = remote.git("ls-tree", sha, "scripts/run.sh").split()[0]
    assert mode == "100644"  # the seed's mode is kept
    author = remote.git("log", "-1", "--format=%an <%ae>|%cn <%ce>", sha)
    # no CI user and no --author: the git config's user.name / user.email
    assert author == "Tester <tester@example.com>|Tester <tester@example.com>"


def test_write_commit_keeps_an_executable_bit(tmp_path: Path, forges: Any) -> None:
    work = tmp_path / "work-repo"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "run.sh").write_bytes(b"#!/bin/sh\n")
    (work / "run.sh").chmod(0o755)
    git(work, "add", "run.sh")
    git(work, "commit", "-q", "-m", "exec")
    bare = tmp_path / "r.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    forge = forges(bare, author=("Bot", "bot@example.com"))
    snap = forge.snapshot("main")
    sha = forge.write_commit("b", snap, {"run.sh": b"#!/bin/sh\nexit 0\n"}, "m", replace=None)
    remote = Remote(bare)
    assert remote.git("ls-tree", sha, "run.sh").split()[0] == "100755"
    assert remote.git("log", "-1", "--format=%an <%ae>", sha) == "Bot <bot@example.com>"


def test_create_over_someone_elses_branch_is_a_conflict(remote: Remote, forges: Any) -> None:
    foreign = remote.commit("promote/dev/api", {"README.md": b"mine\n"}, "theirs",
                            start="main")
    forge = forges(remote.path)
    snap = forge.snapshot("main")
    with pytest.raises(ConflictError, match="already exists") as info:
        forge.write_commit("promote/dev/api", snap, {"README.md": b"promoted\n"}, "ours",
                           replace=None)
    assert info.value.code == 5
    assert remote.sha("promote/dev/api") == foreign


def test_create_when_the_same_change_is_already_there_returns_it(remote: Remote,
                                                                 forges: Any) -> None:
    first, _ = promote(forges(remote.path), remote)
    again, _ = promote(forges(remote.path), remote)  # another run, another clone
    assert again == first
    assert remote.sha("promote/dev/api") == first
    assert remote.count("promote/dev/api") == 2


def test_replace_moves_our_own_branch(remote: Remote, forges: Any) -> None:
    forge = forges(remote.path)
    first, _ = promote(forge, remote, "1.1.0")
    head = forge.read_head("promote/dev/api")
    assert head == Head(sha=first, message="Promote api to 1.1.0\n\nenv: dev\n",
                        parents=(remote.sha("main"),))
    snap = forge.snapshot("main")
    new = snap.files["envs/dev/deploy.yaml"].replace(b"1.0.0", b"1.2.0")
    second = forge.write_commit("promote/dev/api", snap, {"envs/dev/deploy.yaml": new},
                                "Promote api to 1.2.0\n", replace=head)
    assert second != first
    assert remote.sha("promote/dev/api") == second
    assert remote.parents(second) == [snap.commit]  # replaced, not stacked
    assert remote.show(second, "envs/dev/deploy.yaml").endswith(b"api:1.2.0\n")
    head2 = forge.read_head("promote/dev/api")
    assert head2 is not None
    unchanged = forge.write_commit("promote/dev/api", snap, {"envs/dev/deploy.yaml": new},
                                   "Promote api to 1.2.0\n", replace=head2)
    assert unchanged == second  # the same change again pushes nothing


def test_replace_refuses_when_someone_else_moved_the_branch(remote: Remote,
                                                            forges: Any) -> None:
    forge = forges(remote.path)
    promote(forge, remote)
    head = forge.read_head("promote/dev/api")
    assert head is not None
    theirs = remote.commit("promote/dev/api", {"README.md": b"a human fix\n"}, "human fix")
    snap = forge.snapshot("main")
    with pytest.raises(ConflictError, match="does not force") as info:
        forge.write_commit("promote/dev/api", snap, {"README.md": b"x\n"}, "again",
                           replace=head)
    assert theirs[:12] in str(info.value)
    assert remote.sha("promote/dev/api") == theirs  # nothing forced


def test_replace_refuses_when_the_branch_was_deleted(remote: Remote, forges: Any) -> None:
    forge = forges(remote.path)
    promote(forge, remote)
    head = forge.read_head("promote/dev/api")
    assert head is not None
    remote.git("update-ref", "-d", "refs/heads/promote/dev/api")
    with pytest.raises(ConflictError, match="was deleted"):
        forge.write_commit("promote/dev/api", forge.snapshot("main"), {"README.md": b"x\n"},
                           "again", replace=head)
    assert remote.sha("promote/dev/api") is None


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "a/../../x", ".git/config",
                                  "a//b", "", "sub/.GIT/hooks/x"])
def test_write_commit_refuses_paths_outside_the_repo(remote: Remote, forges: Any,
                                                     path: str) -> None:
    forge = forges(remote.path)
    snap = forge.snapshot("main")
    with pytest.raises(UsageError):
        forge.write_commit("b", snap, {path: b"x"}, "m", replace=None)
    assert remote.branches() == ["main"]


def test_write_commit_refuses_file_directory_clashes(remote: Remote, forges: Any) -> None:
    forge = forges(remote.path)
    snap = forge.snapshot("main")
    for path in ("envs/dev", "README.md/x"):
        with pytest.raises(UsageError, match="clashes"):
            forge.write_commit("b", snap, {path: b"x"}, "m", replace=None)


@pytest.mark.parametrize("name", ["-f", "a:b", "a..b", "x.lock", "a b", "+x", "a/", "@",
                                  "a@{1}", "", "a\\b", "~x", ".hidden"])
def test_bad_branch_names_are_refused(name: str) -> None:
    with pytest.raises(UsageError):
        check_branch(name)


def test_good_branch_names_and_paths_pass() -> None:
    check_branch("promote/prod/ghcr.io-acme-api")
    check_path("envs/prod/values.yaml")


# -- requests: the branch is the request ------------------------------------------------


def test_request_verbs_map_onto_the_branch(remote: Remote, forges: Any) -> None:
    forge: Forge = forges(remote.path)
    assert forge.find_request("promote/dev/api", "main") is None
    assert forge.read_head("promote/dev/api") is None
    sha, pr = promote(forges(remote.path), remote)
    spec = RequestSpec(title="Promote api to 1.1.0", body="env: dev", labels=("dev",))
    opened = forge.open_request("promote/dev/api", "main", spec)
    assert opened == pr
    assert opened.number == 0
    assert opened.url == f"{remote.path}#promote/dev/api"
    assert (opened.title, opened.body, opened.head_sha) == ("Promote api to 1.1.0",
                                                            "env: dev", sha)
    assert forge.update_request(opened, spec) == opened
    assert forge.checks(opened, sha) is ChecksState.NONE
    forge.close_request(opened, "superseded (ignored: plain git has no comments)")
    assert remote.sha("promote/dev/api") is None
    assert forge.find_request("promote/dev/api", "main") is None
    forge.delete_branch("promote/dev/api")  # already gone: fine
    with pytest.raises(ForgeError, match="does not exist"):
        forge.open_request("promote/dev/api", "main", spec)


def test_close_request_leaves_a_branch_someone_moved(remote: Remote, forges: Any) -> None:
    forge = forges(remote.path)
    _, pr = promote(forge, remote)
    theirs = remote.commit("promote/dev/api", {"README.md": b"x\n"}, "theirs")
    with pytest.raises(ConflictError):
        forge.close_request(pr, "")
    assert remote.sha("promote/dev/api") == theirs


def test_delete_branch(remote: Remote, forges: Any) -> None:
    remote.commit("old", {"x": b"1"}, "x", start="main")
    forges(remote.path).delete_branch("old")
    assert remote.branches() == ["main"]


# -- merge ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["merge", "squash", "rebase"])
def test_merge_lands_on_main_with_each_method(remote: Remote, forges: Any,
                                              method: str) -> None:
    forge = forges(remote.path)
    sha, pr = promote(forge, remote)
    before = remote.sha("main")
    outcome = forge.merge(pr, method, sha)
    assert outcome.merged
    assert not outcome.auto_merge
    tip = remote.sha("main")
    assert outcome.sha == tip
    assert remote.show("main", "envs/dev/deploy.yaml").endswith(b"api:1.1.0\n")
    assert remote.show("main", "bin/logo.png") == SEED["bin/logo.png"]
    assert remote.sha("promote/dev/api") is None  # the request is closed by merging
    if method == "merge":
        assert remote.parents("main") == [before, sha]
        assert remote.message("main").startswith("Merge branch 'promote/dev/api' into main")
        assert "Promote api to 1.1.0" in remote.message("main")
    elif method == "squash":
        assert remote.parents("main") == [before]
        assert remote.message("main") == "Promote api to 1.1.0\n\nenv: dev"
        assert tip == sha  # one commit on the unmoved base: the base fast-forwards to it
    else:
        assert remote.parents("main") == [before]
        assert tip == sha  # the base had not moved: the pick is the same commit


@pytest.mark.parametrize("method", ["merge", "squash", "rebase"])
def test_merge_onto_a_base_that_moved_on(remote: Remote, forges: Any, method: str) -> None:
    forge = forges(remote.path)
    sha, pr = promote(forge, remote)
    other = remote.commit("main", {"envs/prod/values.yaml": b"replicas: 5\n"}, "scale prod")
    outcome = forge.merge(pr, method, sha)
    assert outcome.merged
    assert remote.show("main", "envs/dev/deploy.yaml").endswith(b"api:1.1.0\n")
    assert remote.show("main", "envs/prod/values.yaml") == b"replicas: 5\n"
    assert remote.parents("main")[0] == other
    if method == "rebase":
        author = remote.git("log", "-1", "--format=%an|%ad|%B", "main", "--date=raw")
        original = remote.git("log", "-1", "--format=%an|%ad|%B", sha, "--date=raw")
        assert author == original  # author, date and message carried over


@pytest.mark.parametrize("method", ["merge", "squash", "rebase"])
def test_merge_is_redone_when_main_moves_during_the_push(remote: Remote, forges: Any,
                                                         method: str) -> None:
    pushes: list[list[str]] = []

    def runner(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        if "push" in command and command[-1].endswith(":refs/heads/main"):
            pushes.append(command)
            if len(pushes) == 1:  # someone lands a commit right before our first push
                remote.commit("main", {"envs/prod/values.yaml": b"replicas: 9\n"}, "race")
        return subprocess.run(command, **kwargs)

    forge = forges(remote.path, runner=runner)
    sha, pr = promote(forge, remote)
    outcome = forge.merge(pr, method, sha)
    assert outcome.merged
    assert len(pushes) == 2
    assert remote.show("main", "envs/prod/values.yaml") == b"replicas: 9\n"
    assert remote.show("main", "envs/dev/deploy.yaml").endswith(b"api:1.1.0\n")
    assert remote.message("main~1") == "race"


def test_merge_gives_up_when_main_keeps_moving(remote: Remote, forges: Any) -> None:
    def runner(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        if "push" in command and command[-1].endswith(":refs/heads/main"):
            n = len(remote.git("log", "--format=%s", "main").split())
            remote.commit("main", {f"busy/{n}": b"x\n"}, f"busy {n}")
        return subprocess.run(command, **kwargs)

    forge = forges(remote.path, runner=runner)
    sha, pr = promote(forge, remote)
    with pytest.raises(ConflictError, match="kept moving"):
        forge.merge(pr, "merge", sha)
    assert not remote.show("main", "envs/dev/deploy.yaml").endswith(b"api:1.1.0\n")
    assert remote.sha("promote/dev/api") == sha


@pytest.mark.parametrize("method", ["merge", "squash", "rebase"])
def test_conflicting_change_on_main_is_a_conflict_and_main_is_untouched(
        remote: Remote, forges: Any, method: str) -> None:
    forge = forges(remote.path)
    sha, pr = promote(forge, remote)
    theirs = remote.commit("main", {"envs/dev/deploy.yaml": b"kind: Deployment\n"
                                    b"image: ghcr.io/acme/api:7.0.0\n"}, "hotfix")
    with pytest.raises(ConflictError, match=r"envs/dev/deploy\.yaml") as info:
        forge.merge(pr, method, sha)
    assert info.value.file == "envs/dev/deploy.yaml"
    assert remote.sha("main") == theirs
    assert remote.sha("promote/dev/api") == sha
    # the private clone is clean again: the next promotion, on the new base, lands
    snap = forge.snapshot("main")
    new = snap.files["envs/dev/deploy.yaml"].replace(b"7.0.0", b"7.1.0")
    sha2 = forge.write_commit("promote/dev/api", snap, {"envs/dev/deploy.yaml": new},
                              "Promote api to 7.1.0\n", replace=forge.read_head(pr.branch))
    pr2 = forge.find_request("promote/dev/api", "main")
    assert pr2 is not None
    assert forge.merge(pr2, method, sha2).merged
    assert remote.show("main", "envs/dev/deploy.yaml").endswith(b"api:7.1.0\n")
    assert remote.parents("main")[0] == theirs


def test_merge_refuses_a_branch_that_moved_past_the_checked_sha(remote: Remote,
                                                                forges: Any) -> None:
    forge = forges(remote.path)
    sha, pr = promote(forge, remote)
    remote.commit("promote/dev/api", {"README.md": b"sneaky\n"}, "sneaky")
    before = remote.sha("main")
    with pytest.raises(ConflictError, match="not at the checked commit"):
        forge.merge(pr, "squash", sha)
    assert remote.sha("main") == before


def test_merge_of_a_change_already_on_main_merges_nothing(remote: Remote,
                                                          forges: Any) -> None:
    forge = forges(remote.path)
    sha, pr = promote(forge, remote)
    landed = remote.commit("main", {"envs/dev/deploy.yaml": b"kind: Deployment\n"
                                    b"image: ghcr.io/acme/api:1.1.0\n"}, "same by hand")
    outcome = forge.merge(pr, "squash", sha)
    assert outcome.merged
    assert outcome.sha == landed
    assert "already contains" in outcome.reason
    assert remote.sha("main") == landed
    assert remote.sha("promote/dev/api") is None


@pytest.mark.parametrize("moved", [False, True])
@pytest.mark.parametrize("method", ["merge", "squash"])
def test_merge_uses_the_message_it_is_given(remote: Remote, forges: Any, method: str,
                                            moved: bool) -> None:
    forge = forges(remote.path)
    sha, pr = promote(forge, remote)
    if moved:
        remote.commit("main", {"README.md": b"moved\n"}, "moved")
    message = "Promote api to 1.1.0 (#0)\n\nPromoted-By: promoter\n"
    assert forge.merge(pr, method, sha, message).merged
    assert remote.git("log", "-1", "--format=%B", "main") == message.strip()
    assert remote.show("main", "envs/dev/deploy.yaml").endswith(b"api:1.1.0\n")


def test_enable_auto_merge_merges_now(remote: Remote, forges: Any) -> None:
    forge = forges(remote.path)
    _, pr = promote(forge, remote)
    outcome = forge.enable_auto_merge(PullRequest(0, pr.url, pr.branch, "main"), "rebase",
                                      pr.head_sha)
    assert outcome.merged
    assert not outcome.auto_merge
    assert remote.show("main", "envs/dev/deploy.yaml").endswith(b"api:1.1.0\n")


def test_unknown_merge_method_is_a_usage_error(remote: Remote, forges: Any) -> None:
    forge = forges(remote.path)
    sha, pr = promote(forge, remote)
    with pytest.raises(UsageError, match="fast-forward"):
        forge.merge(pr, "fast-forward", sha)


def test_merge_with_a_fresh_forge_deepens_the_shallow_history(remote: Remote,
                                                              forges: Any) -> None:
    sha, pr = promote(forges(remote.path), remote)
    for n in range(5):
        remote.commit("main", {f"other/{n}.yaml": b"n\n"}, f"other {n}")
    outcome = forges(remote.path).merge(pr, "merge", sha)  # knows nothing yet
    assert outcome.merged
    assert remote.parents("main")[1] == sha
    assert remote.show("main", "other/4.yaml") == b"n\n"


def test_a_server_hook_refusing_the_push_for_permissions_is_an_auth_error(
        remote: Remote, forges: Any) -> None:
    hook = remote.path / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'GitLab: You are not allowed to push code to "
                    "protected branches on this project.' >&2\nexit 1\n")
    hook.chmod(0o755)
    forge = forges(remote.path)
    snap = forge.snapshot("main")
    with pytest.raises(AuthError, match="not allowed to push"):
        forge.write_commit("b", snap, {"README.md": b"x"}, "m", replace=None)
    assert remote.branches() == ["main"]


# -- log ------------------------------------------------------------------------------


def test_log_lists_first_parent_commits_with_messages(remote: Remote, forges: Any) -> None:
    forge = forges(remote.path)
    for n in range(3):
        remote.commit("main", {"README.md": f"v{n}\n".encode()}, f"change {n}\n\nbody {n}")
    sha, pr = promote(forge, remote)
    forge.merge(pr, "merge", sha)
    log = forge.log("main", 3)
    assert [c.message.partition("\n")[0] for c in log] == [
        "Merge branch 'promote/dev/api' into main", "change 2", "change 1"]
    assert log[1].message == "change 2\n\nbody 2\n"
    assert log[0].sha == remote.sha("main")
    assert log[0].author == "Tester"  # git config identity (tests home)
    assert log[1].author == "Someone Else"
    assert log[0].date[:2] == "20"
    assert "T" in log[0].date
    full = forge.log("main", 50)
    assert [c.message.partition("\n")[0] for c in full][-1] == "seed"
    assert len(full) == 5
    assert forge.log("nope", 5) == []
    assert forge.log("main", 0) == []


# -- other kinds of remotes -------------------------------------------------------------


def test_file_url_remote(remote: Remote, forges: Any) -> None:
    url = remote.path.as_uri()
    assert url.startswith("file:///")
    forge = forges(url)
    assert dict(forge.snapshot("main").files) == SEED
    sha, pr = promote(forge, remote)
    assert pr.url == f"{url}#promote/dev/api"
    assert forge.merge(pr, "rebase", sha).merged
    assert remote.show("main", "envs/dev/deploy.yaml").endswith(b"api:1.1.0\n")


def test_relative_path_remote(remote: Remote, forges: Any, monkeypatch: pytest.MonkeyPatch,
                              ) -> None:
    monkeypatch.chdir(remote.path.parent)
    forge = forges(remote.path.name)
    assert forge.remote == str(remote.path)
    assert dict(forge.snapshot("main").files) == SEED


def _non_bare(tmp_path: Path) -> Remote:
    work = tmp_path / "checkout"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    for path, data in SEED.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(data)
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "seed")
    return Remote(work)


def test_non_bare_repository_path(tmp_path: Path, forges: Any) -> None:
    repo = _non_bare(tmp_path)
    repo.git("config", "receive.denyCurrentBranch", "updateInstead")
    forge = forges(repo.path)
    assert dict(forge.snapshot(None).files) == SEED
    sha, pr = promote(forge, repo)
    assert forge.merge(pr, "squash", sha).merged
    assert repo.show("main", "envs/dev/deploy.yaml").endswith(b"api:1.1.0\n")
    # updateInstead moved the checked-out files too
    assert (repo.path / "envs/dev/deploy.yaml").read_bytes().endswith(b"api:1.1.0\n")
    assert repo.git("status", "--porcelain") == ""


def test_non_bare_repository_refusing_its_checked_out_branch(tmp_path: Path,
                                                             forges: Any) -> None:
    repo = _non_bare(tmp_path)
    forge = forges(repo.path)
    sha, pr = promote(forge, repo)  # pushing the promotion branch is fine
    before = repo.sha("main")
    with pytest.raises(ForgeError, match="checked out") as info:
        forge.merge(pr, "merge", sha)
    assert "receive.denyCurrentBranch updateInstead" in str(info.value)
    assert repo.sha("main") == before


# -- smart HTTP, credentials and retries ------------------------------------------------


@pytest.fixture
def http(tmp_path: Path) -> Iterator[GitServer]:
    """``git http-backend`` behind Basic auth, with the fakes' faults."""
    root = tmp_path / "served"
    make_remote(root)
    with GitServer(root, user="bot", token=TOKEN) as server:
        yield server


def _no_token(exc: BaseException) -> None:
    assert TOKEN not in str(exc)
    assert TOKEN not in repr(exc.args)
    assert "bot:" not in str(exc)


def test_http_remote_with_credentials_end_to_end(http: GitServer, forges: Any) -> None:
    forge = forges(http.url("config.git"))
    assert TOKEN not in forge.remote
    snap = forge.snapshot(None)
    assert dict(snap.files) == SEED
    remote = Remote(http.root / "config.git")
    sha, pr = promote(forge, remote)
    assert TOKEN not in pr.url
    assert pr.url == f"http://127.0.0.1:{http.port}/config.git#promote/dev/api"
    assert forge.merge(pr, "merge", sha).merged
    assert remote.show("main", "envs/dev/deploy.yaml").endswith(b"api:1.1.0\n")


def test_wrong_token_is_an_auth_error_without_the_token(http: GitServer, forges: Any) -> None:
    with pytest.raises(AuthError) as info:
        forges(http.url("config.git", token=TOKEN[::-1])).snapshot("main")
    _no_token(info.value)
    assert TOKEN[::-1] not in str(info.value)
    assert f"http://127.0.0.1:{http.port}/config.git" in str(info.value)


def test_missing_http_repository_is_a_usage_error_without_the_token(http: GitServer,
                                                                    forges: Any) -> None:
    with pytest.raises(UsageError) as info:
        forges(http.url("missing.git")).snapshot("main")
    _no_token(info.value)
    assert "missing.git" in str(info.value)


def test_push_without_write_access_is_an_auth_error(http: GitServer, forges: Any) -> None:
    http.read_only = True
    forge = forges(http.url("config.git"))
    snap = forge.snapshot("main")
    with pytest.raises(AuthError) as info:
        forge.write_commit("b", snap, {"README.md": b"x"}, "m", replace=None)
    _no_token(info.value)
    assert Remote(http.root / "config.git").branches() == ["main"]


def test_server_errors_are_retried_with_the_injected_sleep(http: GitServer,
                                                           forges: Any) -> None:
    sleeps: list[float] = []
    for status in (503, 500, 502):
        http.fail("*", ".", status)
    snap = forges(http.url("config.git"), sleep=sleeps.append).snapshot("main")
    assert dict(snap.files) == SEED
    assert len(sleeps) == 3
    assert all(s >= 0 for s in sleeps)


def test_a_push_that_took_effect_is_not_repeated(http: GitServer, forges: Any) -> None:
    sleeps: list[float] = []
    forge = forges(http.url("config.git"), sleep=sleeps.append)
    snap = forge.snapshot("main")
    http.fail("POST", "git-receive-pack", 502, apply_then_fail=True)  # lands, answer lost
    sha = forge.write_commit("promote/x", snap, {"README.md": b"x\n"}, "m", replace=None)
    remote = Remote(http.root / "config.git")
    assert remote.sha("promote/x") == sha
    posts = [r for r in http.requests if r.method == "POST" and "receive-pack" in r.path]
    assert len(posts) == 1
    assert len(sleeps) == 1


def test_a_failed_push_that_did_not_land_is_retried(http: GitServer, forges: Any) -> None:
    forge = forges(http.url("config.git"))
    snap = forge.snapshot("main")
    http.fail("*", ".", 502)  # the first request of the push fails before anything happens
    sha = forge.write_commit("promote/x", snap, {"README.md": b"x\n"}, "m", replace=None)
    assert Remote(http.root / "config.git").sha("promote/x") == sha


def test_unreachable_host_is_retried_then_a_forge_error_without_the_token(
        forges: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps: list[float] = []
    forge = forges(f"https://bot:{TOKEN}@127.0.0.1:{port}/config.git", sleep=sleeps.append)
    with pytest.raises(ForgeError) as info:
        forge.snapshot("main")
    _no_token(info.value)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert info.value.code == 5
    assert len(sleeps) >= 2


def test_a_url_credential_is_never_handed_to_a_credential_helper(http: GitServer,
                                                                  forges: Any) -> None:
    home = Path(os.environ["HOME"])
    (home / ".gitconfig").write_text("[credential]\n\thelper = store\n"
                                     "[user]\n\tname = Tester\n\temail = tester@example.com\n")
    forge = forges(http.url("config.git"))
    snap = forge.snapshot("main")
    forge.write_commit("promote/x", snap, {"README.md": b"x\n"}, "m", replace=None)
    assert not (home / ".git-credentials").exists()


def test_url_secrets_are_passwords_and_lone_tokens_not_user_names() -> None:
    assert url_secrets("ssh://git@host/r.git") == ()
    assert url_secrets("git@github.com:o/r.git") == ()
    assert url_secrets("https://oauth2:s%40cret@host/r") == ("oauth2:s%40cret", "oauth2:s@cret",
                                                            "s%40cret", "s@cret")
    token = "ghp_" + "x" * 36
    assert url_secrets(f"https://{token}@github.com/o/r") == (token,)


def test_strip_userinfo_everywhere_in_a_message() -> None:
    text = ("fatal: unable to access 'https://x-access-token:abc@github.com/o/r.git/': 403 "
            "and ssh://git:pw@host:22/r and https://user:p@ss@host/x")
    assert strip_userinfo(text) == ("fatal: unable to access 'https://github.com/o/r.git/': "
                                    "403 and ssh://host:22/r and https://host/x")


def test_git_failures_never_carry_the_url_password(tmp_path: Path, forges: Any) -> None:
    """Even when git prints the password on its own (here: a fake runner that does)."""
    def runner(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        if "ls-remote" in command:
            return subprocess.CompletedProcess(command, 128, b"",
                                               f"fatal: bad password {TOKEN}\n".encode())
        return subprocess.run(command, **kwargs)

    forge = forges(f"https://bot:{TOKEN}@example.invalid/r.git", runner=runner)
    with pytest.raises(ForgeError) as info:
        forge.snapshot("main")
    _no_token(info.value)
    assert "***" in str(info.value)


def test_a_remote_that_looks_like_an_option_is_refused() -> None:
    with pytest.raises(UsageError):
        GitForge("--upload-pack=touch /tmp/x")


def _failing(verb: str, stderr: str, times: int = 1_000) -> tuple[Any, list[str]]:
    """A runner whose ``verb`` commands fail with ``stderr`` (``times`` times) and that
    runs every other command for real; it records the failed calls."""
    failed: list[str] = []

    def runner(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        if verb in command and len(failed) < times:
            failed.append(verb)
            return subprocess.CompletedProcess(command, 128, b"", stderr.encode())
        return subprocess.run(command, **kwargs)

    return runner, failed


@pytest.mark.parametrize(("stderr", "error", "retried"), [
    ("git@host: Permission denied (publickey).\nfatal: Could not read from remote "
     "repository.\n", AuthError, False),
    ("remote: HTTP Basic: Access denied\nfatal: Authentication failed for 'https://h/r/'\n",
     AuthError, False),
    ("ERROR: Repository not found.\nfatal: Could not read from remote repository.\n",
     UsageError, False),
    ("ssh: Could not resolve hostname gitlab.example: Name or service not known\n",
     ForgeError, True),
    ("error: RPC failed; HTTP 502 curl 22 The requested URL returned error: 502\n",
     ForgeError, True),
    ("error: RPC failed; HTTP 403 curl 22 The requested URL returned error: 403\n",
     AuthError, False),
    ("fatal: early EOF\nfatal: index-pack failed\n", ForgeError, True),
    ("fatal: remote error: upload-pack: not our ref 0123\n", ForgeError, False),
])
def test_git_failures_are_classified(remote: Remote, forges: Any, stderr: str,
                                     error: type[Exception], retried: bool) -> None:
    runner, failed = _failing("ls-remote", stderr)
    with pytest.raises(error) as info:
        forges(remote.path, runner=runner).snapshot("main")
    if error is ForgeError:
        assert not isinstance(info.value, (AuthError, ConflictError))
    assert (len(failed) > 1) is retried
    assert stderr.splitlines()[0] in str(info.value)


def test_a_transient_failure_then_success(remote: Remote, forges: Any) -> None:
    runner, failed = _failing("fetch", "fatal: unable to access 'x': Connection reset by peer",
                              times=2)
    sleeps: list[float] = []
    snap = forges(remote.path, runner=runner, sleep=sleeps.append).snapshot("main")
    assert dict(snap.files) == SEED
    assert failed == ["fetch", "fetch"]
    assert len(sleeps) == 2


def test_a_hung_git_is_retried_and_its_command_line_never_shows(remote: Remote,
                                                                forges: Any) -> None:
    calls: list[list[str]] = []
    envs: list[dict[str, str]] = []

    def runner(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        if "ls-remote" in command:
            calls.append(command)
            envs.append(kwargs["env"])
            raise subprocess.TimeoutExpired(command, kwargs["timeout"])
        return subprocess.run(command, **kwargs)

    url = f"https://bot:{TOKEN}@127.0.0.1:9/config.git"
    with pytest.raises(ForgeError, match="timed out") as info:
        forges(url, runner=runner).snapshot("main")
    assert len(calls) > 1
    # git itself does get the credentials, through its environment, never its argv
    assert "https://127.0.0.1:9/config.git" in calls[0]
    assert TOKEN not in " ".join(calls[0])
    basic = base64.b64encode(f"bot:{TOKEN}".encode()).decode()
    assert envs[0]["GIT_CONFIG_VALUE_0"] == f"Authorization: Basic {basic}"
    _no_token(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or TOKEN not in str(info.value.__context__)


def test_git_missing_from_path_is_a_usage_error(remote: Remote, forges: Any,
                                                monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(UsageError, match="git command was not found"):
        forges(remote.path).snapshot("main")
