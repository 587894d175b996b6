"""The plain-git forge: any remote the ``git`` binary can reach, no account, no API.

The remote is a URL (https, ssh, ``file://``, scp-like ``git@host:path``) or a local
path (a bare repository or a normal repository's directory). Everything happens in a
private repository in a temp dir, created on first use and removed by ``close()`` (or
leaving a ``with`` block):

- ``snapshot`` is a shallow single-branch fetch of the base (what
  ``git clone --depth 1 --single-branch --no-tags`` does), then one ``git ls-tree -r``
  and one ``git cat-file --batch`` to read every regular file; symlinks and submodules
  are skipped.
- ``write_commit`` builds the commit with plumbing (a temporary index, ``write-tree``,
  ``commit-tree``), so the commit's parent is exactly the snapshot's commit, and pushes
  it with a lease: ``--force-with-lease=refs/heads/B:`` (must not exist) to create,
  ``--force-with-lease=refs/heads/B:<head.sha>`` to replace. Never a bare force.
- There are no pull requests: the promotion branch IS the request (number 0, url
  ``<remote>#<branch>``); its title and body live in the commit message. Labels,
  reviewers and close comments have nowhere to go and are ignored. ``checks`` is
  always NONE and ``enable_auto_merge`` merges at once (no CI to wait for).
- ``merge`` builds the merge / squash / cherry-picked commits on the base tip and pushes
  the base with a plain push, which only fast-forwards. If the base moved meanwhile the
  merge is redone on the new tip (at most ``MERGE_ATTEMPTS`` times); a content conflict
  is a ConflictError and the base is left alone. The promotion branch is then deleted.

Network commands (ls-remote, fetch) are retried through ``promoter.retry`` when git's
message says the failure was transient; a push is retried only after ``ls-remote``
shows the earlier attempt did not already take effect.

git runs with a clean environment: only PATH, HOME and SSH_AUTH_SOCK are kept (so
``~/.gitconfig``, SSH keys and credential helpers still work), prompts are off, the
identity is the ``author`` given, and ``-c`` overrides switch off hooks, signing, CRLF
conversion and automatic gc in the private repository. Every message promoter emits
has the URL's userinfo (``https://user:TOKEN@host``) stripped and passes ``redact``.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import unquote

from promoter import retry
from promoter.errors import AuthError, ConflictError, ForgeError, PromoteError, UsageError
from promoter.forges.base import (
    ChecksState,
    Head,
    LoggedCommit,
    MergeOutcome,
    PullRequest,
    RequestSpec,
    Snapshot,
)
from promoter.redact import redact

T = TypeVar("T")
Runner = Callable[..., "subprocess.CompletedProcess[bytes]"]

MERGE_METHODS = ("merge", "squash", "rebase")
MERGE_ATTEMPTS = 3
COMMAND_TIMEOUT = 600.0  # seconds for one git process; a hung network call is transient
PASSTHROUGH_ENV = ("PATH", "HOME", "SSH_AUTH_SOCK")

# Settings from the user's or system config that would change what promoter writes or
# run code it did not ask for; the private repository never wants them.
GIT_OVERRIDES = (
    "core.hooksPath=/dev/null",
    "core.autocrlf=false",
    "core.fsmonitor=false",
    "core.askPass=",
    "commit.gpgSign=false",
    "merge.verifySignatures=false",
    "push.gpgSign=false",
    "push.followTags=false",
    "push.recurseSubmodules=no",
    "fetch.recurseSubmodules=false",
    "submodule.recurse=false",
    "rerere.enabled=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "advice.detachedHead=false",
    "init.defaultBranch=main",
)

_AUTH = re.compile(
    r"Authentication failed|Permission denied|permission to \S+ denied|"
    r"returned error: 40[13]|HTTP 40[13]|could not read (?:Username|Password)|"
    r"terminal prompts disabled|insufficient permission|not allowed to (?:push|force)|"
    r"Access denied",
    re.IGNORECASE,
)
_MISSING = re.compile(
    r"does not appear to be a git repository|repository .* not found|"
    r"Repository not found|returned error: 404|HTTP 404|not a git repository|"
    r"Protocol \S+ is not supported|protocol '\S+' is not supported|"
    r"transport '\S+' not allowed",
    re.IGNORECASE,
)
_TRANSIENT = re.compile(
    r"Could not resolve host|Temporary failure in name resolution|Connection reset|"
    r"Connection refused|Connection timed out|Operation timed out|timed out|"
    r"Failed to connect|Couldn't connect|RPC failed|early EOF|unexpected disconnect|"
    r"remote end hung up|returned error: 5\d\d|HTTP 5\d\d|gnutls_handshake|"
    r"SSL_ERROR_SYSCALL|TLS connection|Empty reply from server|"
    r"index-pack failed|the remote end hung up",
    re.IGNORECASE,
)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCP = re.compile(r"^[^/]*:")  # git's rule: a colon before the first slash means ssh
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s'\"]*@")
_REF_BAD = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|/\.|\.lock(?:/|$)")


def strip_userinfo(text: str) -> str:
    """``https://user:TOKEN@host/x`` -> ``https://host/x``, anywhere in ``text``."""
    return _USERINFO.sub(r"\1", text)


def _is_url(remote: str) -> bool:
    return bool(_URL.match(remote)) or bool(_SCP.match(remote))


def _secrets_of(remote: str) -> tuple[str, ...]:
    """The password (raw and %-decoded) in a URL's userinfo, to mask wherever it shows."""
    match = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/]*)@", remote)
    if not match:
        return ()
    userinfo = match.group(1)
    found = {userinfo}
    if ":" in userinfo:
        found.add(userinfo.split(":", 1)[1])
    found |= {unquote(s) for s in found}
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


def check_branch(name: str) -> None:
    """Refuse a branch name git would refuse, or one that could be read as an option
    or a refspec (``-x``, ``a:b``, ``+x``)."""
    if (not name or name.startswith(("-", "/", ".", "+")) or name.endswith(("/", ".", ".lock"))
            or name == "@" or _REF_BAD.search(name)):
        raise UsageError(f"{name!r} is not a valid branch name",
                         hint="use letters, digits, '-', '_', '.' and '/' separators")


def check_path(path: str) -> None:
    """Refuse a file path that is not a plain relative path inside the repository."""
    parts = path.split("/")
    bad = (not path or "\x00" in path or any(p in ("", ".", "..") for p in parts)
           or any(p.lower() == ".git" for p in parts))
    if bad:
        raise UsageError(f"{path!r} is not a relative path inside the repository",
                         hint="paths are relative to the repo root, with '/' separators")


@dataclass(frozen=True)
class _Commit:
    """A raw commit object, parsed."""

    sha: str
    tree: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    author_date: str  # "<epoch> <+hhmm>", as git stores it
    message: str

    @property
    def iso_date(self) -> str:
        epoch, _, offset = self.author_date.partition(" ")
        sign = -1 if offset.startswith("-") else 1
        digits = offset.lstrip("+-") or "0000"
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4]))
        return datetime.fromtimestamp(int(epoch), timezone(sign * delta)).isoformat()


def _parse_commit(sha: str, raw: bytes) -> _Commit:
    header, _, body = raw.partition(b"\n\n")
    tree = ""
    parents: list[str] = []
    name = email = date = ""
    for line in header.decode("utf-8", "replace").split("\n"):
        key, _, value = line.partition(" ")
        if key == "tree":
            tree = value
        elif key == "parent":
            parents.append(value)
        elif key == "author":
            who, _, when = value.rpartition("> ")
            name, _, email = who.partition(" <")
            date = when
    return _Commit(sha, tree, tuple(parents), name, email, date,
                   body.decode("utf-8", "replace"))


@dataclass(frozen=True)
class _TreeEntry:
    mode: str
    kind: str  # blob | tree | commit
    sha: str
    path: str


class _GitFailed(ForgeError):
    """A git process failed; ``stderr`` is already cleaned of credentials."""

    def __init__(self, verb: str, remote: str, stderr: str, returncode: int) -> None:
        self.verb = verb
        self.stderr = stderr
        self.returncode = returncode
        detail = stderr.strip() or f"exit status {returncode}"
        super().__init__(f"git {verb} failed for {remote}: {detail}")


def _classify(exc: BaseException) -> retry.Transient | None:
    """Retry a failed git network command when its message says the network flaked."""
    if not isinstance(exc, _GitFailed):
        return None
    if _AUTH.search(exc.stderr) or _MISSING.search(exc.stderr):
        return None
    return retry.Transient() if _TRANSIENT.search(exc.stderr) else None


class GitForge:
    """promoter's Forge for a plain git remote. Use it as a context manager, or call
    ``close()``, so the private clone is removed."""

    name = "git"

    def __init__(
        self,
        remote: str,
        workdir: Path | None = None,
        author: tuple[str, str] = ("promoter", "promoter@localhost"),
        runner: Runner = subprocess.run,
        *,
        sleep: Callable[[float], None] = time.sleep,
        retry_timeout: float = retry.DEFAULT_TIMEOUT,
    ) -> None:
        if not remote or remote.startswith("-"):
            raise UsageError(f"{remote!r} is not a git remote",
                             hint="pass a URL git can clone or the path of a repository")
        if _is_url(remote):
            self._url = remote
        else:
            self._url = str(Path(remote).resolve())
        self.remote = strip_userinfo(self._url)
        self._secrets = _secrets_of(self._url)
        self._workdir = workdir
        self._runner = runner
        self._sleep = sleep
        self._retry_timeout = retry_timeout
        name, email = author
        env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
        env.update({
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_LFS_SKIP_SMUDGE": "1",
            "LC_ALL": "C",
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        })
        self._env = env
        self._dir: Path | None = None
        self._cleanup: weakref.finalize[Any, Any] | None = None

    # -- lifetime ---------------------------------------------------------------

    def __enter__(self) -> GitForge:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Remove the private clone. The forge may be used again afterwards (it clones
        afresh)."""
        if self._cleanup is not None:
            self._cleanup()
        self._cleanup = None
        self._dir = None

    @property
    def path(self) -> Path | None:
        """The private repository, while there is one (for tests and debugging)."""
        return self._dir

    def _repo(self) -> Path:
        if self._dir is None:
            if self._workdir is not None:
                self._workdir.mkdir(parents=True, exist_ok=True)
            path = Path(tempfile.mkdtemp(prefix="promoter-git-", dir=self._workdir))
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(path), True)
            self._dir = path
            self._git("init", "-q", ".", verb="init")
        return self._dir

    # -- running git ------------------------------------------------------------

    def _clean(self, text: str) -> str:
        text = strip_userinfo(text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact(text)

    def _run(self, *args: str, verb: str, input: bytes | None = None,
             env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        cwd = self._repo()
        command = ["git"]
        for setting in GIT_OVERRIDES:
            command += ["-c", setting]
        command += args
        try:
            return self._runner(command, cwd=str(cwd), env={**self._env, **(env or {})},
                                input=input, capture_output=True, check=False,
                                timeout=COMMAND_TIMEOUT)
        except FileNotFoundError:
            raise UsageError("the git command was not found",
                             hint="install git and make sure it is on PATH") from None
        except subprocess.TimeoutExpired:
            # The exception's text holds the command line, URL included: drop it.
            raise _GitFailed(verb, self.remote, f"timed out after {COMMAND_TIMEOUT:.0f}s",
                             -1) from None

    def _git(self, *args: str, verb: str, input: bytes | None = None,
             env: Mapping[str, str] | None = None, ok: Iterable[int] = (0,)) -> bytes:
        result = self._run(*args, verb=verb, input=input, env=env)
        if result.returncode not in tuple(ok):
            stderr = result.stderr.decode("utf-8", "replace")
            raise _GitFailed(verb, self.remote, self._clean(stderr), result.returncode)
        return result.stdout

    def _retrying(self, fn: Callable[[], T]) -> T:
        try:
            return retry.call(fn, _classify, timeout=self._retry_timeout, sleep=self._sleep)
        except _GitFailed as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: _GitFailed) -> PromoteError:
        detail = exc.stderr.strip()
        if _AUTH.search(detail):
            return AuthError(
                f"{self.remote} refused git {exc.verb}: {detail}",
                hint="check the credentials (URL, SSH key or credential helper) and that "
                     "they may write to this repository")
        if _MISSING.search(detail):
            return UsageError(
                f"{self.remote} is not a git repository, or does not exist: {detail}",
                hint="check --repo: a URL git can clone, or the path of a repository")
        return exc

    # -- reading the remote -----------------------------------------------------

    def _ls_remote(self, *patterns: str, symref: bool = False) -> tuple[dict[str, str], str | None]:
        """{ref: sha} for the patterns, and the branch HEAD points to (with symref)."""
        args = ["ls-remote"] + (["--symref"] if symref else []) + ["--", self._url, *patterns]
        out = self._retrying(lambda: self._git(*args, verb="ls-remote"))
        refs: dict[str, str] = {}
        head: str | None = None
        for line in out.decode("utf-8", "replace").splitlines():
            left, _, right = line.partition("\t")
            if left.startswith("ref: ") and right == "HEAD":
                target = left[len("ref: "):]
                if target.startswith("refs/heads/"):
                    head = target[len("refs/heads/"):]
            elif right:
                refs[right] = left
        return refs, head

    def _remote_sha(self, branch: str) -> str | None:
        ref = f"refs/heads/{branch}"
        return self._ls_remote(ref)[0].get(ref)

    def _fetch(self, branches: Sequence[str], *, depth: int | None) -> dict[str, str]:
        """Fetch the branches into refs/remotes/origin/*; return their local tips."""
        args = ["fetch", "-q", "--no-tags", "--no-write-fetch-head"]
        if depth is not None:
            args.append(f"--depth={depth}")
        args += ["--", self._url]
        args += [f"+refs/heads/{b}:refs/remotes/origin/{b}" for b in branches]
        self._retrying(lambda: self._git(*args, verb="fetch"))
        return {b: self._rev(f"refs/remotes/origin/{b}") for b in branches}

    def _rev(self, name: str) -> str:
        return self._git("rev-parse", "--verify", "-q", f"{name}^{{commit}}",
                         verb="rev-parse").decode().strip()

    def _has_commit(self, sha: str) -> bool:
        result = self._run("cat-file", "-e", f"{sha}^{{commit}}", verb="cat-file")
        return result.returncode == 0

    def _is_shallow(self) -> bool:
        out = self._git("rev-parse", "--is-shallow-repository", verb="rev-parse")
        return out.strip() == b"true"

    def _commits(self, shas: Sequence[str]) -> list[_Commit]:
        raw = self._cat_batch(shas)
        return [_parse_commit(sha, raw[sha]) for sha in shas]

    def _commit(self, sha: str) -> _Commit:
        return self._commits([sha])[0]

    def _cat_batch(self, shas: Iterable[str]) -> dict[str, bytes]:
        """Object contents by sha, with one ``git cat-file --batch``."""
        wanted = list(dict.fromkeys(shas))
        if not wanted:
            return {}
        out = self._git("cat-file", "--batch", verb="cat-file",
                        input="".join(f"{s}\n" for s in wanted).encode())
        found: dict[str, bytes] = {}
        pos = 0
        for sha in wanted:
            end = out.index(b"\n", pos)
            header = out[pos:end].decode().split(" ")
            if len(header) != 3:
                raise ForgeError(f"git object {sha} is missing from the clone of {self.remote}",
                                 hint="re-run promote; if it persists, report it")
            size = int(header[2])
            found[sha] = out[end + 1:end + 1 + size]
            pos = end + 1 + size + 1
        return found

    def _ls_tree(self, commit: str) -> list[_TreeEntry]:
        out = self._git("ls-tree", "-r", "-z", "--full-tree", commit, verb="ls-tree")
        entries = []
        for record in out.split(b"\x00"):
            if not record:
                continue
            meta, _, path = record.partition(b"\t")
            mode, kind, sha = meta.decode().split(" ")
            entries.append(_TreeEntry(mode, kind, sha, path.decode("utf-8", "surrogateescape")))
        return entries

    # -- Forge: snapshot and heads ----------------------------------------------

    def snapshot(self, base: str | None) -> Snapshot:
        refs, head = self._ls_remote("HEAD", "refs/heads/*", symref=True)
        branches = sorted(r[len("refs/heads/"):] for r in refs if r.startswith("refs/heads/"))
        if not branches:
            raise UsageError(f"{self.remote} has no branches yet",
                             hint="push an initial commit to the config repository first")
        branch = base if base is not None else head
        if branch is None:
            raise UsageError(f"{self.remote} does not say which branch is its default (HEAD)",
                             hint=f"pass --base; branches: {', '.join(branches)}")
        check_branch(branch)
        if branch not in branches:
            raise UsageError(f"base branch {branch!r} does not exist in {self.remote}",
                             hint=f"branches that exist: {', '.join(branches)}; pass --base")
        commit = self._fetch([branch], depth=1)[branch]
        entries = [e for e in self._ls_tree(commit)
                   if e.kind == "blob" and e.mode in ("100644", "100755")]
        blobs = self._cat_batch(e.sha for e in entries)
        return Snapshot(branch=branch, commit=commit,
                        files={e.path: blobs[e.sha] for e in entries})

    def read_head(self, branch: str) -> Head | None:
        check_branch(branch)
        sha = self._remote_sha(branch)
        if sha is None:
            return None
        if not self._has_commit(sha):
            sha = self._fetch([branch], depth=1)[branch]
        commit = self._commit(sha)
        return Head(sha=sha, message=commit.message, parents=commit.parents)

    # -- Forge: writing ---------------------------------------------------------

    def write_commit(self, branch: str, base: Snapshot, files: Mapping[str, bytes],
                     message: str, *, replace: Head | None) -> str:
        check_branch(branch)
        self._ensure_commit(base)
        tree = self._build_tree(base.commit, files)
        if replace is not None and self._same_change(replace.sha, branch, tree, base.commit):
            return replace.sha  # the branch already holds exactly this change
        sha = self._commit_tree(tree, (base.commit,), message)
        ref = f"refs/heads/{branch}"
        reason = self._push(ref, sha, lease=replace.sha if replace is not None else "")
        if reason is None:
            return sha
        current = self._remote_sha(branch)
        if current is not None and self._same_change(current, branch, tree, base.commit):
            return current  # another run of this same promotion got there first
        if replace is None:
            raise ConflictError(
                f"branch {branch!r} already exists in {self.remote} and holds a different "
                f"commit ({(current or '?')[:12]}); promoter does not overwrite it",
                hint="re-run promote so it reads the branch first, or delete the branch")
        now = f"moved to {current[:12]}" if current else "was deleted"
        raise ConflictError(
            f"branch {branch!r} in {self.remote} {now} since promoter read it at "
            f"{replace.sha[:12]}; promoter does not force over someone else's commit",
            hint="re-run promote to start from the current state")

    def _ensure_commit(self, base: Snapshot) -> None:
        if self._has_commit(base.commit):
            return
        check_branch(base.branch)
        self._fetch([base.branch], depth=1)
        if not self._has_commit(base.commit):
            raise ConflictError(
                f"base commit {base.commit[:12]} is no longer the tip of {base.branch!r} in "
                f"{self.remote}", hint="re-run promote to start from the current base")

    def _same_change(self, sha: str, branch: str, tree: str, parent: str) -> bool:
        """Is ``sha`` a commit with exactly this tree on exactly this parent?"""
        if not self._has_commit(sha):
            self._fetch([branch], depth=1)
            if not self._has_commit(sha):
                return False
        commit = self._commit(sha)
        return commit.tree == tree and commit.parents == (parent,)

    def _build_tree(self, base_commit: str, files: Mapping[str, bytes]) -> str:
        """The base commit's tree with ``files`` replaced or added; returns its sha."""
        existing = {e.path: e for e in self._ls_tree(base_commit)}
        directories = {p.rsplit("/", i)[0] for p in existing for i in range(1, p.count("/") + 1)}
        for path in files:
            check_path(path)
            entry = existing.get(path)
            if entry is not None and (entry.kind != "blob" or entry.mode == "120000"):
                raise UsageError(f"{path} is a symlink or submodule in the config repo; "
                                 "promoter only writes regular files", file=path)
            parents = path.split("/")[:-1]
            clash = path in directories or any(
                "/".join(parents[:i]) in existing for i in range(1, len(parents) + 1))
            if clash:
                raise UsageError(f"{path} clashes with a file or directory of the same name "
                                 "in the config repo", file=path)
        shas = self._hash_blobs(files)
        lines = b"".join(
            f"{existing[p].mode if p in existing else '100644'} {shas[p]}\t".encode()
            + p.encode("utf-8", "surrogateescape") + b"\x00"
            for p in files)
        index = self._repo() / ".git" / "promoter-index"
        env = {"GIT_INDEX_FILE": str(index)}
        try:
            self._git("read-tree", base_commit, verb="read-tree", env=env)
            self._git("update-index", "-z", "--index-info", verb="update-index",
                      input=lines, env=env)
            return self._git("write-tree", verb="write-tree", env=env).decode().strip()
        finally:
            index.unlink(missing_ok=True)

    def _hash_blobs(self, files: Mapping[str, bytes]) -> dict[str, str]:
        """Write every content as a blob with one ``git hash-object`` (no filters:
        the bytes go in exactly as given)."""
        staging = Path(tempfile.mkdtemp(prefix="blobs-", dir=self._repo() / ".git"))
        try:
            names = []
            for n, content in enumerate(files.values()):
                name = staging / str(n)
                name.write_bytes(content)
                names.append(str(name))
            out = self._git("hash-object", "-w", "--no-filters", "--stdin-paths",
                            verb="hash-object", input="".join(f"{n}\n" for n in names).encode())
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return dict(zip(files, out.decode().split(), strict=True))

    def _commit_tree(self, tree: str, parents: Sequence[str], message: str,
                     env: Mapping[str, str] | None = None) -> str:
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        return self._git(*args, verb="commit-tree", input=message.encode(),
                         env=env).decode().strip()

    def _push(self, ref: str, new: str | None, *, lease: str | None) -> str | None:
        """Push ``new`` (None deletes) to ``ref``; with ``lease`` only if the remote ref is
        still at that sha ("" = must not exist), without it only a fast-forward.
        Returns None once the remote ref is ``new``, else git's rejection reason.
        A failed attempt is repeated only after ls-remote shows it did not take effect."""
        attempts = 0
        args = ["push", "--porcelain", "--no-verify"]
        if lease is not None:
            args.append(f"--force-with-lease={ref}:{lease}")
        args += ["--", self._url, f"{new or ''}:{ref}"]

        def once() -> str | None:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                current = self._ls_remote_raw(ref)
                if current == new:
                    return None
            result = self._run(*args, verb="push")
            if result.returncode == 0:
                return None
            stderr = self._clean(result.stderr.decode("utf-8", "replace"))
            for line in result.stdout.decode("utf-8", "replace").splitlines():
                flag, _, rest = line.partition("\t")
                if flag == "!":
                    reason = rest.partition("\t")[2]
                    if reason.startswith("[remote rejected]"):
                        raise self._refused(ref, reason, stderr)
                    return reason
            raise _GitFailed("push", self.remote, stderr, result.returncode)

        return self._retrying(once)

    def _ls_remote_raw(self, ref: str) -> str | None:
        """ls-remote without its own retries (runs inside a retried push)."""
        out = self._git("ls-remote", "--", self._url, ref, verb="ls-remote")
        for line in out.decode("utf-8", "replace").splitlines():
            sha, _, name = line.partition("\t")
            if name == ref:
                return sha
        return None

    def _refused(self, ref: str, reason: str, stderr: str) -> PromoteError:
        detail = f"{reason}; {stderr.strip()}" if stderr.strip() else reason
        if "checked out" in detail:
            return ForgeError(
                f"{self.remote} refused to update {ref}: it is checked out in that non-bare "
                f"repository ({detail})",
                hint="promote into a bare repository, or run `git config "
                     "receive.denyCurrentBranch updateInstead` in it")
        if _AUTH.search(detail) or "protected" in detail.lower():
            return AuthError(f"{self.remote} refused the push to {ref}: {detail}",
                             hint="the credentials in use may not push to this branch")
        return ForgeError(f"{self.remote} refused the push to {ref}: {detail}",
                          hint="a server-side hook or rule declined it; see its message")

    def delete_branch(self, branch: str) -> None:
        """Delete the remote branch; deleting a branch that is gone is fine."""
        check_branch(branch)
        if self._remote_sha(branch) is None:
            return
        reason = self._push(f"refs/heads/{branch}", None, lease=None)
        if reason is not None and self._remote_sha(branch) is not None:
            raise ForgeError(f"could not delete branch {branch!r} in {self.remote}: {reason}")

    # -- Forge: requests (the branch is the request) ------------------------------

    def find_request(self, branch: str, base: str) -> PullRequest | None:
        head = self.read_head(branch)
        if head is None:
            return None
        title, _, body = head.message.partition("\n")
        return PullRequest(number=0, url=f"{self.remote}#{branch}", branch=branch, base=base,
                           title=title.strip(), body=body.strip("\n"), head_sha=head.sha)

    def open_request(self, branch: str, base: str, spec: RequestSpec) -> PullRequest:
        """Nothing to open: the pushed branch is the request. Title and body travel in
        the commit message; labels, reviewers and assignees have no place in plain git."""
        found = self.find_request(branch, base)
        if found is None:
            raise ForgeError(f"branch {branch!r} does not exist in {self.remote}",
                             hint="write the promotion commit before opening the request")
        return found

    def update_request(self, pr: PullRequest, spec: RequestSpec) -> PullRequest:
        """Nothing to update beyond the commit itself; returns the branch as it is."""
        return self.open_request(pr.branch, pr.base, spec)

    def close_request(self, pr: PullRequest, comment: str) -> None:
        """Closing deletes the promotion branch. ``comment`` is ignored: plain git has
        nowhere to put it. A branch someone moved past ``pr.head_sha`` is left alone."""
        check_branch(pr.branch)
        lease = pr.head_sha or None
        reason = self._push(f"refs/heads/{pr.branch}", None, lease=lease)
        if reason is not None and self._remote_sha(pr.branch) is not None:
            raise ConflictError(
                f"branch {pr.branch!r} in {self.remote} moved past {pr.head_sha[:12]}; "
                "not deleting someone else's commit", hint="delete it by hand if it is stale")

    def checks(self, pr: PullRequest, sha: str) -> ChecksState:
        """Plain git has no CI statuses."""
        return ChecksState.NONE

    # -- Forge: merging -----------------------------------------------------------

    def enable_auto_merge(self, pr: PullRequest, method: str) -> MergeOutcome:
        """No CI to wait for in plain git: merge now."""
        sha = pr.head_sha
        if not sha:
            head = self.read_head(pr.branch)
            if head is None:
                raise ConflictError(f"branch {pr.branch!r} no longer exists in {self.remote}",
                                    hint="re-run promote")
            sha = head.sha
        return self.merge(pr, method, sha)

    def merge(self, pr: PullRequest, method: str, sha: str) -> MergeOutcome:
        if method not in MERGE_METHODS:
            raise UsageError(f"unknown merge method {method!r}",
                             hint=f"use one of: {', '.join(MERGE_METHODS)}")
        check_branch(pr.branch)
        check_branch(pr.base)
        for _attempt in range(MERGE_ATTEMPTS):
            base_tip, tip = self._merge_tips(pr)
            if tip != sha:
                raise ConflictError(
                    f"branch {pr.branch!r} is at {tip[:12]}, not at the checked commit "
                    f"{sha[:12]}; not merging", hint="re-run promote")
            merge_base = self._merge_base(base_tip, tip, (pr.base, pr.branch))
            new = None if merge_base == tip else self._build_merge(method, pr, base_tip, tip)
            if new is None:
                note = self._delete_merged(pr.branch, tip)
                return MergeOutcome(merged=True, sha=base_tip,
                                    reason=f"{pr.base} already contains the change{note}")
            reason = self._push(f"refs/heads/{pr.base}", new, lease=None)
            if reason is None:
                return MergeOutcome(merged=True, sha=new,
                                    reason=self._delete_merged(pr.branch, tip).lstrip("; "))
            if not any(word in reason for word in ("fetch first", "non-fast-forward",
                                                   "stale info")):
                raise ForgeError(f"{self.remote} rejected the push to {pr.base!r}: {reason}")
        raise ConflictError(
            f"{pr.base!r} in {self.remote} kept moving; gave up after {MERGE_ATTEMPTS} attempts "
            "to merge on its new tip", hint="re-run promote")

    def _merge_tips(self, pr: PullRequest) -> tuple[str, str]:
        refs, _ = self._ls_remote(f"refs/heads/{pr.base}", f"refs/heads/{pr.branch}")
        if f"refs/heads/{pr.branch}" not in refs:
            raise ConflictError(f"promotion branch {pr.branch!r} no longer exists in "
                                f"{self.remote}", hint="re-run promote")
        if f"refs/heads/{pr.base}" not in refs:
            raise UsageError(f"base branch {pr.base!r} does not exist in {self.remote}")
        fresh = not self._has_commit(refs[f"refs/heads/{pr.base}"]) and self._is_empty()
        tips = self._fetch([pr.base, pr.branch], depth=1 if fresh else None)
        return tips[pr.base], tips[pr.branch]

    def _is_empty(self) -> bool:
        out = self._git("rev-parse", "--all", verb="rev-parse")
        return not out.strip()

    def _merge_base(self, a: str, b: str, branches: Sequence[str]) -> str:
        """The merge base of two commits, deepening a shallow clone until it shows."""
        for deepen in ("--deepen=64", "--unshallow", None):
            result = self._run("merge-base", a, b, verb="merge-base")
            if result.returncode == 0:
                return result.stdout.decode().strip()
            if deepen is None or not self._is_shallow():
                break
            refspecs = [f"+refs/heads/{b}:refs/remotes/origin/{b}" for b in branches]
            self._retrying(functools.partial(
                self._git, "fetch", "-q", "--no-tags", "--no-write-fetch-head", deepen, "--",
                self._url, *refspecs, verb="fetch"))
        raise ConflictError(f"{branches[1]!r} and {branches[0]!r} share no history in "
                            f"{self.remote}", hint="delete the promotion branch and re-run")

    def _build_merge(self, method: str, pr: PullRequest, base_tip: str, tip: str) -> str | None:
        """The new base tip for ``method``, or None when nothing would change."""
        self._checkout(base_tip)
        try:
            if method == "rebase":
                return self._cherry_pick_all(base_tip, tip)
            self._apply("merge", "--no-ff", "--no-commit", "-q", tip)
            tree = self._git("write-tree", verb="write-tree").decode().strip()
            if method == "squash":
                if tree == self._commit(base_tip).tree:
                    return None
                return self._commit_tree(tree, (base_tip,), self._commit(tip).message)
            title = self._commit(tip).message.partition("\n")[0]
            message = f"Merge branch '{pr.branch}' into {pr.base}\n\n{title}\n"
            return self._commit_tree(tree, (base_tip, tip), message)
        finally:
            self._git("reset", "-q", "--hard", verb="reset")

    def _cherry_pick_all(self, base_tip: str, tip: str) -> str | None:
        out = self._git("rev-list", "--reverse", "--no-merges", f"{base_tip}..{tip}",
                        verb="rev-list")
        head = base_tip
        head_tree = self._commit(base_tip).tree
        for picked in self._commits(out.decode().split()):
            self._apply("cherry-pick", "--no-commit", picked.sha)
            tree = self._git("write-tree", verb="write-tree").decode().strip()
            if tree == head_tree:
                continue  # already on the base: drop it, as git rebase does
            author = {"GIT_AUTHOR_NAME": picked.author_name,
                      "GIT_AUTHOR_EMAIL": picked.author_email,
                      "GIT_AUTHOR_DATE": picked.author_date}
            head = self._commit_tree(tree, (head,), picked.message, env=author)
            head_tree = tree
            self._checkout(head)
        return None if head == base_tip else head

    def _apply(self, *args: str) -> None:
        """Run a merge or cherry-pick into the index; a content conflict is a
        ConflictError naming the files."""
        result = self._run(*args, verb=args[0])
        if result.returncode == 0:
            return
        unmerged = self._git("diff", "--name-only", "--diff-filter=U", "-z", verb="diff")
        files = sorted({p.decode("utf-8", "replace") for p in unmerged.split(b"\x00") if p})
        if files:
            raise ConflictError(
                f"the promotion conflicts with changes on the base branch in "
                f"{', '.join(files)}; nothing was merged",
                file=files[0], hint="re-run promote to redo the edit on the current base")
        stderr = self._clean((result.stdout + result.stderr).decode("utf-8", "replace"))
        raise _GitFailed(args[0], self.remote, stderr, result.returncode)

    def _checkout(self, sha: str) -> None:
        self._git("reset", "-q", "--hard", verb="reset", ok=(0, 128))  # 128: nothing yet
        self._git("checkout", "-q", "-f", "--detach", sha, verb="checkout")
        self._git("clean", "-q", "-f", "-d", "-x", verb="clean")

    def _delete_merged(self, branch: str, tip: str) -> str:
        """Delete the merged promotion branch unless it moved; say what happened."""
        try:
            reason = self._push(f"refs/heads/{branch}", None, lease=tip)
        except ForgeError as exc:
            return f"; the branch {branch!r} was not deleted: {exc.message}"
        if reason is not None:
            return f"; the branch {branch!r} was not deleted: it moved ({reason})"
        return ""

    # -- Forge: history -----------------------------------------------------------

    def log(self, branch: str, limit: int) -> list[LoggedCommit]:
        """Newest first, first parent only. The author is the author's name; the date is
        the author date in ISO 8601. A branch that does not exist has no commits."""
        check_branch(branch)
        if limit <= 0 or self._remote_sha(branch) is None:
            return []
        tip = self._fetch([branch], depth=limit)[branch]
        out = self._git("rev-list", "--first-parent", f"--max-count={limit}", tip,
                        verb="rev-list")
        return [LoggedCommit(sha=c.sha, message=c.message, author=c.author_name,
                             date=c.iso_date)
                for c in self._commits(out.decode().split())]
