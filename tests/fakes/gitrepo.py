"""A tiny library over a real bare git repository, for the fake forges.

The fake GitHub and GitLab servers keep pull/merge requests in memory but store every
commit, tree and ref in a real bare repo through this module, so a commit made through
the API is a commit that ``git log`` shows.

    repo = BareRepo.init(tmp_path / "config.git", {"a.yaml": b"x: 1\\n"})
    tip = repo.resolve("main")
    tree = repo.write_tree_from(tip, {"envs/dev/a.yaml": b"y\\n", "old.txt": None})
    sha = repo.commit_tree(tree, [tip], "msg", "Bot", "bot@example.com")
    assert repo.update_ref("refs/heads/main", sha, old=tip)

Ref names: a name starting with ``refs/`` is used as is; any other name is a branch
(``main`` -> ``refs/heads/main``). ``resolve`` accepts anything git can resolve.

Every call runs ``git`` with a clean environment (no global or system config, a fixed
identity), so it works on a machine without ``git config user.name``. One lock per
repository path serialises the calls of a threaded server.

Importing: pytest runs with ``pythonpath = ["."]``, so test modules write
``from tests.fakes.gitrepo import BareRepo``; modules inside ``tests/fakes/`` use relative
imports (``from .gitrepo import BareRepo``). ``from fakes.gitrepo import ...`` is refused
(tests/fakes/__init__.py): it would load a second copy of the module.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ZERO = "0" * 40
FILE_MODE = "100644"
DEFAULT_NAME = "Someone Else"
DEFAULT_EMAIL = "someone@example.com"

_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()


class GitError(RuntimeError):
    """A git command failed; ``stderr`` says why."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"git {' '.join(args)} failed ({returncode}): {stderr.strip()}")


def _lock_for(path: Path) -> threading.RLock:
    key = str(path.resolve())
    with _locks_guard:
        return _locks.setdefault(key, threading.RLock())


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_AUTHOR_NAME=DEFAULT_NAME,
        GIT_AUTHOR_EMAIL=DEFAULT_EMAIL,
        GIT_COMMITTER_NAME=DEFAULT_NAME,
        GIT_COMMITTER_EMAIL=DEFAULT_EMAIL,
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
    )
    return env


def full_ref(name: str) -> str:
    return name if name.startswith("refs/") else f"refs/heads/{name}"


class BareRepo:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock = _lock_for(self.path)

    # -- plumbing ---------------------------------------------------------------------

    def git(self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run ``git --git-dir=<repo> args``; raise GitError on failure when ``check``."""
        full_env = _base_env()
        if env:
            full_env.update(env)
        proc = subprocess.run(
            ["git", f"--git-dir={self.path}", *args],
            input=input, capture_output=True, env=full_env, check=False,
        )
        if check and proc.returncode != 0:
            raise GitError(args, proc.returncode, proc.stderr.decode("utf-8", "replace"))
        return proc

    def _out(self, *args: str, input: bytes | None = None,
             env: Mapping[str, str] | None = None) -> str:
        return self.git(*args, input=input, env=env).stdout.decode("utf-8").strip()

    # -- creation ---------------------------------------------------------------------

    @classmethod
    def init(cls, path: str | os.PathLike[str], files: Mapping[str, bytes],
             branch: str = "main", message: str = "Initial commit") -> BareRepo:
        """A new bare repo whose ``branch`` (also HEAD) holds one commit with ``files``."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["git", "init", "--bare", "-q", f"--initial-branch={branch}", str(target)],
            capture_output=True, env=_base_env(), check=False,
        )
        if proc.returncode != 0:
            raise GitError(["init"], proc.returncode, proc.stderr.decode("utf-8", "replace"))
        repo = cls(target)
        tree = repo.write_tree_from(None, dict(files))
        sha = repo.commit_tree(tree, [], message, DEFAULT_NAME, DEFAULT_EMAIL)
        repo.update_ref(branch, sha, old=ZERO)
        return repo

    # -- reading ----------------------------------------------------------------------

    def resolve(self, ref: str) -> str | None:
        """The commit sha ``ref`` (branch, full ref or sha) points at, or None."""
        with self.lock:
            candidates = [ref] if ref.startswith("refs/") else [f"refs/heads/{ref}", ref]
            for candidate in candidates:
                proc = self.git("rev-parse", "--verify", "-q", f"{candidate}^{{commit}}",
                                check=False)
                if proc.returncode == 0:
                    return proc.stdout.decode().strip()
            return None

    def object_type(self, sha: str) -> str | None:
        """``commit`` / ``tree`` / ``blob`` / ``tag``, or None when there is no such object."""
        proc = self.git("cat-file", "-t", sha, check=False)
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def tree_of(self, commit: str) -> str:
        return self._out("rev-parse", f"{commit}^{{tree}}")

    def commit(self, sha: str) -> dict[str, Any] | None:
        """One commit as a dict (see ``log``), or None when ``sha`` is not a commit."""
        if self.object_type(sha) != "commit":
            return None
        entries = self._log_entries(["-1", "--no-walk", sha])
        return entries[0] if entries else None

    def read_tree(self, sha: str) -> dict[str, tuple[str, str]]:
        """Every blob (and submodule) under a tree or commit: ``{path: (mode, sha)}``."""
        out = self.git("ls-tree", "-r", "-z", "--full-tree", sha).stdout.decode("utf-8")
        result: dict[str, tuple[str, str]] = {}
        for record in out.split("\0"):
            if not record:
                continue
            meta, path = record.split("\t", 1)
            mode, _kind, obj = meta.split(" ")
            result[path] = (mode, obj)
        return result

    def read_blob(self, sha: str) -> bytes:
        return self.git("cat-file", "blob", sha).stdout

    def read_file(self, commit: str, path: str) -> bytes | None:
        proc = self.git("cat-file", "blob", f"{commit}:{path}", check=False)
        return proc.stdout if proc.returncode == 0 else None

    def list_refs(self, prefix: str = "refs/") -> dict[str, str]:
        """``{full ref name: sha}`` of the refs whose name starts with ``prefix``
        (a plain string prefix, like GitHub's matching-refs)."""
        out = self._out("for-each-ref", "--format=%(refname) %(objectname)")
        refs: dict[str, str] = {}
        for line in out.splitlines():
            name, sha = line.split(" ", 1)
            if name.startswith(prefix):
                refs[name] = sha
        return refs

    def log(self, ref: str, limit: int = 30, path: str | None = None,
            first_parent: bool = False) -> list[dict[str, Any]]:
        """Newest-first commits reachable from ``ref`` (optionally touching ``path``).

        Each dict: sha, tree, parents (list), message, author_name, author_email,
        author_date, committer_name, committer_email, committer_date (ISO 8601)."""
        args = [f"--max-count={limit}"]
        if first_parent:
            args.append("--first-parent")
        args.append(ref)
        if path:
            args += ["--", path]
        return self._log_entries(args)

    def _log_entries(self, args: Sequence[str]) -> list[dict[str, Any]]:
        fmt = "%H%x01%T%x01%P%x01%an%x01%ae%x01%aI%x01%cn%x01%ce%x01%cI%x01%B"
        out = self.git("log", "-z", f"--format={fmt}", *args).stdout.decode("utf-8")
        entries = []
        for record in out.split("\0"):
            if not record:
                continue
            (sha, tree, parents, an, ae, ad, cn, ce, cd, message) = record.split("\x01", 9)
            entries.append({
                "sha": sha, "tree": tree, "parents": parents.split(),
                "message": message.rstrip("\n"),
                "author_name": an, "author_email": ae, "author_date": ad,
                "committer_name": cn, "committer_email": ce, "committer_date": cd,
            })
        return entries

    def is_ancestor(self, a: str, b: str) -> bool:
        """True when commit ``a`` is reachable from ``b`` (or equal to it)."""
        proc = self.git("merge-base", "--is-ancestor", a, b, check=False)
        if proc.returncode not in (0, 1):
            raise GitError(["merge-base", a, b], proc.returncode, proc.stderr.decode())
        return proc.returncode == 0

    def archive_tar_gz(self, ref: str, prefix: str | None = None) -> bytes:
        """The tree of ``ref`` as a .tar.gz whose entries sit under ``prefix`` (default
        ``<repo dir name>-<sha7>/``, like GitHub's ``owner-repo-<sha7>/``)."""
        sha = self.resolve(ref)
        if sha is None:
            raise GitError(["archive", ref], 128, f"unknown ref {ref}")
        if prefix is None:
            prefix = f"{self.path.name.removesuffix('.git')}-{sha[:7]}/"
        return self.git("archive", "--format=tar.gz", f"--prefix={prefix}", sha).stdout

    # -- writing ----------------------------------------------------------------------

    def write_blob(self, data: bytes) -> str:
        return self._out("hash-object", "-w", "--stdin", input=data)

    def write_tree_entries(self, base: str | None,
                           entries: Mapping[str, tuple[str, str] | None]) -> str:
        """A tree: ``base`` (tree or commit, None = empty) with each path set to
        ``(mode, object sha)`` or removed (None). Paths may be nested."""
        with tempfile.TemporaryDirectory(prefix="bare-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if base is None:
                self.git("read-tree", "--empty", env=env)
            else:
                self.git("read-tree", base, env=env)
            lines = []
            for path, entry in entries.items():
                if entry is None:
                    lines.append(f"0 {ZERO}\t{path}\0")
                else:
                    lines.append(f"{entry[0]} {entry[1]}\t{path}\0")
            if lines:
                self.git("update-index", "-z", "--index-info",
                         input="".join(lines).encode("utf-8"), env=env)
            return self._out("write-tree", env=env)

    def write_tree_from(self, base: str | None, changes: Mapping[str, bytes | None]) -> str:
        """A tree: ``base`` (tree or commit, None = empty) with each path's content
        replaced (bytes) or the path removed (None). A replaced file keeps its mode."""
        existing = self.read_tree(base) if base is not None else {}
        entries: dict[str, tuple[str, str] | None] = {}
        for path, content in changes.items():
            if content is None:
                entries[path] = None
            else:
                mode = existing.get(path, (FILE_MODE, ""))[0]
                entries[path] = (mode, self.write_blob(content))
        return self.write_tree_entries(base, entries)

    def commit_tree(self, tree: str, parents: Sequence[str], message: str,
                    author_name: str = DEFAULT_NAME, author_email: str = DEFAULT_EMAIL,
                    date: str | None = None, committer_name: str | None = None,
                    committer_email: str | None = None) -> str:
        """A commit object (no ref moves). ``date`` is anything git accepts
        (ISO 8601, ``@epoch +0000``); default now. The committer defaults to the author."""
        env = {
            "GIT_AUTHOR_NAME": author_name,
            "GIT_AUTHOR_EMAIL": author_email,
            "GIT_COMMITTER_NAME": committer_name or author_name,
            "GIT_COMMITTER_EMAIL": committer_email or author_email,
        }
        if date:
            env["GIT_AUTHOR_DATE"] = date
            env["GIT_COMMITTER_DATE"] = date
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        return self._out(*args, input=message.encode("utf-8"), env=env)

    def update_ref(self, name: str, new: str, old: str | None = None) -> bool:
        """Point ``name`` at ``new``. With ``old``, only if the ref is still at ``old``
        (``ZERO`` = only if it does not exist yet). False when that guard failed."""
        args = ["update-ref", full_ref(name), new]
        if old is not None:
            args.append(old)
        with self.lock:
            return self.git(*args, check=False).returncode == 0

    def delete_ref(self, name: str, old: str | None = None) -> bool:
        """Delete ``name``; False when it did not exist (or was not at ``old``)."""
        ref = full_ref(name)
        with self.lock:
            if self.git("show-ref", "--verify", "-q", ref, check=False).returncode != 0:
                return False
            args = ["update-ref", "-d", ref] + ([old] if old else [])
            return self.git(*args, check=False).returncode == 0

    @contextmanager
    def locked(self) -> Iterator[BareRepo]:
        """Hold this repo's lock across several calls (read-check-write sequences)."""
        with self.lock:
            yield self

    # -- merging ----------------------------------------------------------------------

    def _merged_tree(self, ours: str, theirs: str) -> str | None:
        """The tree of a 3-way merge of two commits, or None on a conflict."""
        proc = self.git("merge-tree", "--write-tree", "--allow-unrelated-histories",
                        ours, theirs, check=False)
        if proc.returncode == 1:
            return None
        if proc.returncode != 0:
            raise GitError(["merge-tree", ours, theirs], proc.returncode, proc.stderr.decode())
        return proc.stdout.decode().splitlines()[0].strip()

    def _pick(self, onto: str, commit: dict[str, Any]) -> str | None:
        """Replay ``commit`` on top of ``onto`` (cherry-pick); None on a conflict."""
        parent = commit["parents"][0] if commit["parents"] else None
        if parent is not None and parent == onto:
            tree = commit["tree"]
        else:
            # merge-tree picks the merge base from history, so give it a synthetic
            # commit: onto's tree on top of the picked commit's parent.
            onto_tree = self.tree_of(onto)
            synthetic = self.commit_tree(onto_tree, [parent] if parent else [], "pick base")
            merged = self._merged_tree(synthetic, commit["sha"])
            if merged is None:
                return None
            tree = merged
        return self.commit_tree(
            tree, [onto], commit["message"], commit["author_name"], commit["author_email"],
            date=commit["author_date"], committer_name="GitHub",
            committer_email="noreply@github.com")

    def merge(self, base_branch: str, head_sha: str, method: str, message: str,
              author_name: str = DEFAULT_NAME, author_email: str = DEFAULT_EMAIL) -> str | None:
        """Merge ``head_sha`` into ``base_branch`` the way a forge does and move the
        branch; return the new tip, or None on a conflict (nothing moves).

        ``merge``: a merge commit with two parents (even when a fast-forward is
        possible). ``squash``: one commit with one parent holding the merged tree.
        ``rebase``: each commit of head not in base replayed on the base tip."""
        with self.lock:
            base_tip = self.resolve(full_ref(base_branch))
            if base_tip is None:
                raise GitError(["merge", base_branch], 128, f"no branch {base_branch}")
            if method == "rebase":
                new = base_tip
                picks = self._log_entries(["--reverse", "--topo-order", "--no-merges",
                                           f"{base_tip}..{head_sha}"])
                for entry in picks:
                    picked = self._pick(new, entry)
                    if picked is None:
                        return None
                    new = picked
            else:
                if self.is_ancestor(base_tip, head_sha):
                    tree: str | None = self.tree_of(head_sha)
                else:
                    tree = self._merged_tree(base_tip, head_sha)
                if tree is None:
                    return None
                if method == "merge":
                    parents = [base_tip, head_sha]
                elif method == "squash":
                    parents = [base_tip]
                else:
                    raise ValueError(f"unknown merge method {method!r}")
                new = self.commit_tree(tree, parents, message, author_name, author_email)
            if not self.update_ref(base_branch, new, old=base_tip):
                return None
            return new

    def commit_files(self, branch: str, files: Mapping[str, bytes | None], message: str,
                     author_name: str = DEFAULT_NAME,
                     author_email: str = DEFAULT_EMAIL) -> str:
        """For tests: advance ``branch`` by one commit changing ``files`` (as someone
        else would); create the branch from nothing when it does not exist."""
        with self.lock:
            tip = self.resolve(full_ref(branch))
            tree = self.write_tree_from(tip, files)
            sha = self.commit_tree(tree, [tip] if tip else [], message, author_name,
                                   author_email)
            if not self.update_ref(branch, sha, old=tip or ZERO):
                raise GitError(["update-ref", branch], 1, "branch moved during commit_files")
            return sha
