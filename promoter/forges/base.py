"""The Forge protocol: what promoter needs from GitHub, GitLab or plain git.

Every method is one idempotent step of a promotion; the orchestration (``promote.py``)
composes them the same way for every forge, so idempotency, clean-up and races are
handled once. Implementations own their retries (``promoter.retry``) and raise only
``promoter.errors`` exceptions (ForgeError, AuthError, ConflictError, UsageError) with
messages that never contain a token.

A plain-git forge has no pull requests: there the promotion branch itself is the
request (number 0, url = the branch), and merging is a merge pushed to the base.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal, Protocol, get_args

from promoter.errors import ConfigError, ConflictError, UsageError
from promoter.identity import Identity
from promoter.paths import CONFIG_FILE

MergeMethod = Literal["merge", "squash", "rebase"]
MERGE_METHODS: tuple[MergeMethod, ...] = get_args(MergeMethod)

REGULAR_MODES = ("100644", "100755")
LINK_MODE = "120000"
_KINDS = {LINK_MODE: "a symbolic link", "040000": "a directory", "40000": "a directory",
          "160000": "a submodule"}
_REF_BAD = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|/\.|\.lock(?:/|$)")


def check_method(method: str) -> None:
    """Refuse (exit 2) a merge method that is none of ``MERGE_METHODS``."""
    if method not in MERGE_METHODS:
        raise UsageError(f"unknown merge method {method!r}",
                         hint=f"use one of: {', '.join(MERGE_METHODS)}")


def check_branch(name: str) -> None:
    """Refuse (exit 2) a branch name git would refuse, or one that could be read as an
    option or a refspec (``-x``, ``a:b``, ``+x``): every forge checks each branch name
    before it goes into a URL, a query or a git command line."""
    if (not name or name.startswith(("-", "/", ".", "+")) or name.endswith(("/", ".", ".lock"))
            or name == "@" or _REF_BAD.search(name)):
        raise UsageError(f"{name!r} is not a valid branch name",
                         hint="use letters, digits, '-', '_', '.' and '/' separators")


def check_path(path: str) -> None:
    """Refuse (exit 2) a file path that is not a plain relative path inside the
    repository: every forge checks each path it writes."""
    parts = path.split("/")
    if (not path or "\x00" in path or "\\" in path or any(p in ("", ".", "..") for p in parts)
            or any(p.lower() == ".git" for p in parts)):
        raise UsageError(f"{path!r} is not a relative path inside the repository",
                         hint="paths are relative to the repo root, with '/' separators")



def check_write(branch: str, paths: Iterable[str]) -> None:
    """``check_branch`` and ``check_path`` on all that one commit names."""
    check_branch(branch)
    for path in paths:
        check_path(path)

@dataclass(frozen=True)
class Snapshot:
    """The base branch at one commit, with the files promoter may read.

    ``files``: every regular file (the policy file always, whatever its size or
    export attributes: forges read it from the tree itself). ``links``: every symbolic
    link of the tree, path -> target as stored, so a change to a file is also seen as
    a change to each path that links to it."""

    branch: str
    commit: str
    files: Mapping[str, bytes]
    links: Mapping[str, str] = field(default_factory=dict)


def git_blob_sha(data: bytes) -> str:
    """The id git gives ``data`` as a blob (SHA-1 object format)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def check_policy_entry(mode: str, target: str | None = None) -> None:
    """The base tree holds ``.promoter.yaml`` with ``mode``: fine when a regular file;
    anything else stops the run (exit 2), never a silent fall-back to the built-in
    policy."""
    if mode in REGULAR_MODES:
        return
    what = _KINDS.get(mode, f"a tree entry of mode {mode}")
    if target is not None:
        what += f" to {target!r}"
    raise ConfigError(
        f"{CONFIG_FILE} on the base branch is {what}; promoter reads its policy only from a "
        "regular file, and will not run without it", file=CONFIG_FILE,
        hint=f"commit the policy itself as {CONFIG_FILE} (a regular file) on the base branch")


@dataclass(frozen=True)
class Head:
    """The tip of a branch: enough to tell whether it is promoter's own commit."""

    sha: str
    message: str
    parents: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestSpec:
    """What a pull / merge request should say and carry."""

    title: str
    body: str
    labels: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()
    assignees: tuple[str, ...] = ()
    draft: bool = False


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    branch: str
    base: str
    title: str = ""
    body: str = ""
    head_sha: str = ""
    state: str = "open"  # open | closed | merged
    labels: tuple[str, ...] = field(default=())
    # the merge method the forge's auto-merge is already set to (None: not set, or not
    # known); enable_auto_merge leaves one set for this very head and method alone
    auto_merge: str | None = None
    # the base's tip as the forge reported it with the request ("": it did not say); on
    # a request just opened, the base as it was then
    base_sha: str = ""


class ChecksState(str, Enum):
    NONE = "none"  # no checks configured on the head commit
    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"


@dataclass(frozen=True)
class MergeOutcome:
    merged: bool
    auto_merge: bool = False  # the forge will merge by itself once checks pass
    sha: str | None = None
    reason: str = ""
    # not merged because the change conflicts with the base or the base moved ahead of
    # it: promote plans again on the new base (never read from ``reason``)
    conflict: bool = False


def cap_text(text: str, limit: int, what: str) -> str:
    """``text`` cut to ``limit`` characters, with a note saying so (``what`` was cut): the
    last resort of a forge before a body or comment it would refuse."""
    if len(text) <= limit:
        return text
    note = f"\n\n... ({what} truncated by promoter: {len(text):,} characters in all)"
    return text[: limit - len(note)] + note


def landed_on_new_branch(head: Head | None, ours: Callable[[Head | None], str | None],
                         in_the_way: Callable[[Head | None], ConflictError]) -> str | None:
    """For ``retry.Write``: the sha of an earlier attempt that made the new branch
    (``ours`` proves it from ``head``), None when the branch is still missing; a branch
    anyone else made is in the way."""
    done = ours(head)
    if done is None and head is not None:
        raise in_the_way(head)
    return done



def plain_edits(old: Mapping[str, tuple[str, str]],
                new: Mapping[str, tuple[str, str]]) -> dict[str, str] | None:
    """What a commit changed, from its parent's tree ``old`` and its own ``new`` (path ->
    (mode, blob sha), directories left out): path -> blob sha of each file it modified
    or added; None when it also deletes a file, writes a link or submodule, or changes a
    mode (``Forge.changed_files``)."""
    out: dict[str, str] = {}
    for path in old.keys() | new.keys():
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        if after is None or after[0] not in REGULAR_MODES:
            return None  # a deletion, or a link / submodule written
        if before is not None and before[0] != after[0]:
            return None  # a mode change
        out[path] = after[1]
    return out

def refuse_signing(sign: bool, service: str, repo_word: str = "repository") -> None:
    """Refuse (exit 2, before anything is written) ``sign`` on a forge whose commits the
    API makes: promoter has no key to sign them, and pushes nothing unsigned instead."""
    if sign:
        raise UsageError(
            "signing (--sign, or signing: true in .promoter.yaml) is for plain git: "
            f"promoter cannot sign a commit it makes through the {service} API",
            hint=f"promote through --forge git with the {repo_word}'s git URL, where your "
                 "git signing key is used, or leave signing off")


def worst_state(states: Iterable[ChecksState]) -> ChecksState:
    """The combined state of the checks on a commit: none when there are none, else the
    worst of them (a failure, then one still pending), else success."""
    seen = set(states)
    if not seen:
        return ChecksState.NONE
    for worst in (ChecksState.FAILURE, ChecksState.PENDING):
        if worst in seen:
            return worst
    return ChecksState.SUCCESS


def says_conflict(said: str) -> bool:
    """Whether a forge's own refusal message (the server's words, where the API gives no
    field for it) says the base moved or the change conflicts with it."""
    lowered = said.lower()
    return "base" in lowered or "conflict" in lowered


@dataclass(frozen=True)
class LoggedCommit:
    sha: str
    message: str
    author: str
    date: str  # ISO 8601


class Forge(Protocol):
    """One forge. Its class attributes say what it can do, so callers read them instead
    of probing: ``body_limit``, the longest request body (and comment) it takes, in
    characters; ``has_checks``, whether commits carry CI statuses or check runs (plain
    git: none, so nothing is left "to the forge"); ``branch_is_request``, whether the
    promotion branch itself is the request (plain git: there is nothing else to
    update); ``has_labels``, whether requests carry labels (Bitbucket: none, so
    asked-for labels are a warning, never a reason to update the request);
    ``arms_auto_merge``, whether promoter ever arms the forge's own auto-merge (Azure,
    Bitbucket, plain git: never, so there is none to take back)."""

    name: str
    body_limit: int
    has_checks: bool
    branch_is_request: bool
    has_labels: bool
    arms_auto_merge: bool

    def close(self) -> None:
        """Let go of what the forge holds (HTTP connections, a private clone); called
        once the run is over, whatever happened."""
        ...

    def snapshot(self, base: str | None, branch: str | None = None) -> Snapshot:
        """The base branch (default branch when None) with every file of its tree.
        ``branch``: the promotion branch this run will use; a forge may read its tip and
        open request in the same round trip, and answer the next ``read_head`` /
        ``find_request`` of it from that (once)."""
        ...

    def write_first(self, files: Mapping[str, bytes]) -> bool:
        """True: making a new branch with ``files`` costs one request and fails cleanly
        (BranchExists) when the branch is there, cheaply enough to try it before reading
        the branch (promote then reads it only when it is there)."""
        ...

    def commit_verified(self, sha: str) -> bool | None:
        """Whether the forge signed commit ``sha`` (shown as Verified), from what it
        already knows (never a request); None when it does not know."""
        ...

    def read_head(self, branch: str) -> Head | None:
        """The branch's tip, or None when the branch does not exist."""
        ...

    def write_commit(
        self,
        branch: str,
        base: Snapshot,
        files: Mapping[str, bytes],
        message: str,
        *,
        replace: Head | None,
    ) -> str:
        """Make one commit whose parent is ``base.commit`` and whose tree is the base tree
        with ``files`` replaced; point ``branch`` at it; return the commit sha.

        ``replace=None``: the branch must not exist; if another run created it meanwhile,
        raise ConflictError. ``replace=head``: move the branch from ``head.sha`` (a
        promoter commit) to the new commit, only if it is still at ``head.sha``.
        A retried write that had already taken effect is detected, never repeated."""
        ...

    def changed_files(self, sha: str) -> Mapping[str, str] | None:
        """What commit ``sha`` changed against its only parent: path -> git blob sha of
        the new content of each file it modified or added. None when the commit does
        anything else as well (deletes or renames a file, changes a mode or a file's
        type, has several parents, or changes more files than the forge lists): such a
        commit is never proved."""
        ...

    def use_identity(self, author: Identity | None, *, sign: bool = False) -> None:
        """Who every commit this forge writes from now on is by (promotion, merge,
        squash; None: the forge's default), and whether it is signed. Raises UsageError,
        before anything is written, when signing is asked for and not possible."""
        ...

    def delete_branch(self, branch: str) -> None: ...

    def find_request(self, branch: str, base: str, *,
                     confirm_none: bool = False) -> PullRequest | None:
        """The open pull / merge request from ``branch`` into ``base``, if any.
        ``confirm_none``: "none" leads to opening one, so it must be read now, not taken
        from what the snapshot's round trip saw (another run may have opened it since)."""
        ...

    def open_request(self, branch: str, base: str, spec: RequestSpec, *,
                     auto_merge_next: bool = False) -> PullRequest:
        """Open the request. ``auto_merge_next``: the caller enables auto-merge on it right
        after, so a forge may carry some of its parts (labels) in that request."""
        ...

    def update_request(self, pr: PullRequest, spec: RequestSpec) -> PullRequest: ...

    def close_request(self, pr: PullRequest, comment: str) -> None: ...

    def checks(self, pr: PullRequest, sha: str) -> ChecksState:
        """Combined state of statuses and check runs / pipelines on ``sha``."""
        ...

    def merge(self, pr: PullRequest, method: MergeMethod, sha: str,
              message: str = "") -> MergeOutcome:
        """Merge now if the forge allows it; ``sha`` guards against a moved head.
        ``message`` (title, blank line, body) becomes the merge or squash commit's message,
        so the trailers promoter writes reach the base branch whatever the method."""
        ...

    def enable_auto_merge(self, pr: PullRequest, method: MergeMethod, sha: str,
                          message: str = "") -> MergeOutcome:
        """Ask the forge to merge ``sha`` once checks pass (GitHub auto-merge, GitLab
        merge-when-pipeline-succeeds); merge directly when already mergeable. The forge
        is told ``sha``, so a head that moved after promoter proved it is never merged."""
        ...

    def disable_auto_merge(self, pr: PullRequest) -> None:
        """Take back an auto-merge armed on ``pr`` (by an earlier run whose policy allowed
        it, or by anyone): the forges keep it armed when someone with write access pushes,
        so it would merge whatever the branch holds next. Nothing to do when none is armed;
        ForgeError when it stays armed."""
        ...

    def log(self, branch: str, limit: int) -> list[LoggedCommit]:
        """Newest-first commits of ``branch`` (first parent), at most ``limit``."""
        ...
