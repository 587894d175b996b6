"""The plain-git forge: any remote the ``git`` binary can reach, no account, no API.

The remote is a URL (https, ssh, ``file://``, scp-like ``git@host:path``) or a local
path (a bare repository, or a normal repository's directory). The work happens in a
private clone (``gitclone.Clone``) that ``close()`` or leaving a ``with`` block removes.

- ``snapshot``: a shallow single-branch fetch of the base (what ``git clone --depth 1
  --single-branch --no-tags`` does), then one ``ls-tree -r`` and one ``cat-file --batch``
  read every regular file; symlinks and submodules are skipped.
- ``write_commit``: one commit whose parent is exactly the snapshot's commit, built with
  plumbing, pushed with a lease: ``--force-with-lease=refs/heads/B:`` (must not exist)
  to create, ``--force-with-lease=refs/heads/B:<head.sha>`` to replace. Never a bare
  force. A branch that already holds the same tree on the same parent is reused.
- No pull requests in plain git: the promotion branch IS the request (number 0, url
  ``<remote>#<branch>``). Its title and body are the commit message; labels, reviewers
  and close comments have nowhere to go and are ignored. ``checks`` is always NONE,
  ``enable_auto_merge`` merges at once (no CI to wait for), ``close_request`` deletes
  the branch.
- ``merge``: the merge commit (``--no-ff``), squash commit or cherry-picks are built on
  the base tip and the base is pushed with a plain push, which only fast-forwards. If
  the base moved meanwhile, the merge is redone on its new tip (at most
  ``MERGE_ATTEMPTS`` times); a content conflict is a ConflictError and the base is left
  as it was. Then the promotion branch is deleted (unless someone moved it).
  When the branch already sits on the base tip, squash (of one commit) and rebase
  simply fast-forward the base to it, as ``git rebase`` would.

A local non-bare repository refuses pushes to its checked-out branch unless it has
``receive.denyCurrentBranch updateInstead``; promoter says so rather than work around it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from promoter import identity, retry
from promoter.errors import ConflictError, ForgeError, UsageError
from promoter.forges.base import (
    LINK_MODE,
    MERGE_METHODS,
    REGULAR_MODES,
    ChecksState,
    Head,
    LoggedCommit,
    MergeMethod,
    MergeOutcome,
    PullRequest,
    RequestSpec,
    Snapshot,
    check_branch,
    check_method,
    check_path,
    check_policy_entry,
)
from promoter.forges.gitclone import (
    Clone,
    GitFailed,
    Runner,
    strip_userinfo,
    url_secrets,
)
from promoter.forges.http import refuse_cleartext_proxy
from promoter.forges.registry import Setup
from promoter.identity import EXAMPLE, Identity
from promoter.paths import CONFIG_FILE
from promoter.redact import register

if TYPE_CHECKING:
    from promoter.forges.base import Forge

__all__ = ["MERGE_ATTEMPTS", "MERGE_METHODS", "GitForge", "check_branch", "check_path",
           "strip_userinfo"]

MERGE_ATTEMPTS = 3
_MOVED = ("fetch first", "non-fast-forward", "stale info")


def _listing(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


class GitForge:
    """promoter's Forge for a plain git remote. Use it as a context manager, or call
    ``close()``, so the private clone is removed. ``runner`` and ``sleep`` are there to
    be replaced in tests."""

    name = "git"
    body_limit = 65_536  # no request body (the branch is the request): any will do
    has_checks = False  # no CI statuses: promote does not leave checks "to the forge"
    branch_is_request = True
    has_labels = False  # no request, nothing to label

    def __init__(
        self,
        remote: str,
        workdir: Path | None = None,
        author: Identity | tuple[str, str] | None = None,
        runner: Runner = subprocess.run,
        *,
        sleep: Callable[[float], None] = time.sleep,
        retry_timeout: float = retry.DEFAULT_TIMEOUT,
        ca_bundle: str | None = None,
    ) -> None:
        if isinstance(author, Identity):
            author = (author.name, author.email)
        # the default author (the CI user); None: the git config's user.name / user.email
        self._clone = Clone(remote, workdir=workdir, author=author, runner=runner,
                            sleep=sleep, retry_timeout=retry_timeout, ca_bundle=ca_bundle)
        self.remote = self._clone.remote  # the URL without credentials, or the path
        self._heads: dict[str, str] = {}  # branch tips read_head saw -> their branch

    def __repr__(self) -> str:
        return f"GitForge({self.remote!r})"

    def __enter__(self) -> GitForge:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Remove the private clone (the forge clones afresh if used again)."""
        self._clone.close()

    @property
    def path(self) -> Path | None:
        """The private clone, while there is one."""
        return self._clone.path

    # -- reading ------------------------------------------------------------------------

    def snapshot(self, base: str | None, branch: str | None = None) -> Snapshot:
        clone = self._clone
        refs, head = clone.ls_remote("HEAD", "refs/heads/*", symref=True)
        branches = sorted(r[len("refs/heads/"):] for r in refs if r.startswith("refs/heads/"))
        if not branches:
            raise UsageError(f"{self.remote} has no branches yet",
                             hint="push an initial commit to the config repository first")
        branch = base if base is not None else head
        if branch is None:
            raise UsageError(f"{self.remote} does not say which branch is its default (HEAD)",
                             hint=f"pass --base; branches: {_listing(branches)}")
        check_branch(branch)
        if branch not in branches:
            raise UsageError(f"base branch {branch!r} does not exist in {self.remote}",
                             hint=f"branches that exist: {_listing(branches)}; pass --base")
        commit = clone.fetch([branch], depth=1)[branch]
        tree = clone.ls_tree(commit)
        entries = [e for e in tree if e.mode in REGULAR_MODES]
        links = [e for e in tree if e.mode == LINK_MODE]
        blobs = clone.cat_batch(e.sha for e in [*entries, *links])
        targets = {e.path: blobs[e.sha].decode("utf-8", "surrogateescape") for e in links}
        for entry in tree:  # the policy file in any form but a regular file stops the run
            if entry.path == CONFIG_FILE:
                check_policy_entry(entry.mode, targets.get(CONFIG_FILE))
            elif entry.path.startswith(CONFIG_FILE + "/"):
                check_policy_entry("040000")
        return Snapshot(branch=branch, commit=commit,
                        files={e.path: blobs[e.sha] for e in entries}, links=targets)

    def read_head(self, branch: str) -> Head | None:
        check_branch(branch)
        sha = self._clone.remote_sha(branch)
        if sha is None:
            return None
        if not self._clone.has_commit(sha):
            sha = self._clone.fetch([branch], depth=2)[branch]  # with its parent
        self._heads[sha] = branch
        commit = self._clone.commit(sha)
        return Head(sha=sha, message=commit.message, parents=commit.parents)

    def changed_files(self, sha: str) -> Mapping[str, str] | None:
        """``git diff-tree`` of a tip ``read_head`` returned against its only parent."""
        clone = self._clone
        if not clone.has_commit(sha):
            return None
        parents = clone.commit(sha).parents
        if len(parents) != 1:
            return None
        if not clone.has_commit(parents[0]) and sha in self._heads:
            clone.fetch([self._heads[sha]], depth="--deepen=1")
        if not clone.has_commit(parents[0]):
            return None
        return clone.changed_blobs(parents[0], sha)

    def log(self, branch: str, limit: int) -> list[LoggedCommit]:
        """Newest first, first parent only, at most ``limit``. ``author`` is the author's
        name, ``date`` the author date in ISO 8601. A missing branch has no commits."""
        check_branch(branch)
        if limit <= 0 or self._clone.remote_sha(branch) is None:
            return []
        tip = self._clone.fetch([branch], depth=limit)[branch]
        out = self._clone.git("rev-list", "--first-parent", f"--max-count={limit}", tip,
                              verb="rev-list")
        return [LoggedCommit(sha=c.sha, message=c.message, author=c.author_name,
                             date=c.iso_date)
                for c in self._clone.commits(out.decode().split())]

    # -- writing ------------------------------------------------------------------------

    def use_identity(self, author: Identity | None, *, sign: bool = False) -> None:
        """``author`` (--author, or author: in the config) is the author and committer of
        every commit this forge writes from now on, merge commits included; ``sign``
        signs them all with the user's git signing key (refused, before anything is
        written, when git cannot sign)."""
        self._use_identity(author)
        if sign and not self._clone.sign:
            self._clone.enable_signing()

    def write_commit(self, branch: str, base: Snapshot, files: Mapping[str, bytes],
                     message: str, *, replace: Head | None) -> str:
        check_branch(branch)
        clone = self._clone
        self._use_identity(None)
        self._ensure_commit(base)
        tree = clone.build_tree(base.commit, files)
        if replace is not None and self._same_change(replace.sha, branch, tree, base.commit,
                                                     message):
            return replace.sha  # the branch already holds exactly this commit
        sha = clone.commit_tree(tree, (base.commit,), message)
        reason = clone.push(f"refs/heads/{branch}", sha,
                            lease=replace.sha if replace is not None else "")
        if reason is None:
            return sha
        current = clone.remote_sha(branch)
        if current is not None and self._same_change(current, branch, tree, base.commit,
                                                     message):
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

    def _use_identity(self, author: Identity | None) -> None:
        """Who the commits are by: ``author``, else the default given to the forge (the
        CI user), else the git config; none of them is exit 2 before anything is
        written (a made-up address is what push rules reject)."""
        if author is not None:
            self._clone.identity = (author.name, author.email)
        if self._clone.identity is None:
            self._clone.identity = self._clone.config_identity()
        if self._clone.identity is None:
            raise UsageError(
                "no commit author for plain git: neither --author, author: in "
                ".promoter.yaml, a CI user, nor git's user.name and user.email is set",
                hint=f"e.g. --author {EXAMPLE}, or git config --global user.email …")

    def _ensure_commit(self, base: Snapshot) -> None:
        """Have the snapshot's commit in the clone (a Snapshot from another instance)."""
        if self._clone.has_commit(base.commit):
            return
        check_branch(base.branch)
        self._clone.fetch([base.branch], depth=1)
        if not self._clone.has_commit(base.commit):
            raise ConflictError(
                f"base commit {base.commit[:12]} is no longer the tip of {base.branch!r} in "
                f"{self.remote}", hint="re-run promote to start from the current base")

    def _same_change(self, sha: str, branch: str, tree: str, parent: str,
                     message: str) -> bool:
        """Is ``sha`` a commit with exactly this tree on exactly this parent, and this
        message (whose trailers history and rollback read: a forged record on a proved
        tree is not the same commit)?"""
        if not self._clone.has_commit(sha):
            self._clone.fetch([branch], depth=1)
            if not self._clone.has_commit(sha):
                return False
        commit = self._clone.commit(sha)
        if self._clone.sign and not self._clone.is_signed(sha):
            return False  # signing asked for: an unsigned commit is not the same change
        return (commit.tree == tree and commit.parents == (parent,)
                and commit.message.rstrip() == message.rstrip())

    def delete_branch(self, branch: str) -> None:
        """Delete the remote branch; a branch that is already gone is fine."""
        check_branch(branch)
        if self._clone.remote_sha(branch) is None:
            return
        reason = self._clone.push(f"refs/heads/{branch}", None, lease=None)
        if reason is not None and self._clone.remote_sha(branch) is not None:
            raise ForgeError(f"could not delete branch {branch!r} in {self.remote}: {reason}")

    # -- requests: the branch is the request --------------------------------------------

    def find_request(self, branch: str, base: str, *,
                     confirm_none: bool = False) -> PullRequest | None:
        head = self.read_head(branch)
        if head is None:
            return None
        title, _, body = head.message.partition("\n")
        return PullRequest(number=0, url=f"{self.remote}#{branch}", branch=branch, base=base,
                           title=title.strip(), body=body.strip("\n"), head_sha=head.sha)

    def write_first(self, files: Mapping[str, bytes]) -> bool:
        """A push is cheap to refuse, but the clone must be fetched first anyway."""
        return False

    def commit_verified(self, sha: str) -> bool | None:
        """Plain git signs nothing promoter pushes (no key here): unknown."""
        return None

    def open_request(self, branch: str, base: str, spec: RequestSpec, *,
                     auto_merge_next: bool = False) -> PullRequest:
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
        reason = self._clone.push(f"refs/heads/{pr.branch}", None, lease=pr.head_sha or None)
        if reason is not None and self._clone.remote_sha(pr.branch) is not None:
            raise ConflictError(
                f"branch {pr.branch!r} in {self.remote} moved past {pr.head_sha[:12]}; "
                "not deleting someone else's commit", hint="delete it by hand if it is stale")

    arms_auto_merge = False  # promote need not look for an armed one to take back

    def disable_auto_merge(self, pr: PullRequest) -> None:
        """Plain git has no auto-merge: promoter merges itself or not at all."""

    def checks(self, pr: PullRequest, sha: str) -> ChecksState:
        """Plain git has no CI statuses."""
        return ChecksState.NONE

    # -- merging --------------------------------------------------------------------------

    def enable_auto_merge(self, pr: PullRequest, method: MergeMethod, sha: str,
                          message: str = "") -> MergeOutcome:
        """No CI to wait for in plain git: merge ``sha`` now."""
        return self.merge(pr, method, sha, message)

    def merge(self, pr: PullRequest, method: MergeMethod, sha: str,
              message: str = "") -> MergeOutcome:
        """Merge ``sha`` into the base and push. ``message`` is the merge or squash
        commit's message; without it, squash uses the promotion commit's own message and
        merge "Merge branch 'B' into BASE" followed by that message. Rebase keeps each
        commit's own message (promoter's commit already carries its trailers)."""
        check_method(method)
        check_branch(pr.branch)
        check_branch(pr.base)
        self._use_identity(None)  # a merge commit has an author too
        for _attempt in range(MERGE_ATTEMPTS):
            base_tip, tip = self._merge_tips(pr)
            if tip != sha:
                raise ConflictError(
                    f"branch {pr.branch!r} is at {tip[:12]}, not at the checked commit "
                    f"{sha[:12]}; not merging", hint="re-run promote")
            new = self._merged(method, pr, base_tip, tip, message)
            if new is None:
                note = self._delete_merged(pr.branch, tip)
                return MergeOutcome(merged=True, sha=base_tip,
                                    reason=f"{pr.base} already contains the change{note}")
            reason = self._clone.push(f"refs/heads/{pr.base}", new, lease=None)
            if reason is None:
                return MergeOutcome(merged=True, sha=new,
                                    reason=self._delete_merged(pr.branch, tip).lstrip("; "))
            if not any(word in reason for word in _MOVED):
                raise ForgeError(f"{self.remote} rejected the push to {pr.base!r}: {reason}")
        raise ConflictError(
            f"{pr.base!r} in {self.remote} kept moving; gave up after {MERGE_ATTEMPTS} "
            "attempts to merge on its new tip", hint="re-run promote")

    def _merge_tips(self, pr: PullRequest) -> tuple[str, str]:
        """Fetch the base and the promotion branch; their tips."""
        base_ref, branch_ref = f"refs/heads/{pr.base}", f"refs/heads/{pr.branch}"
        refs, _ = self._clone.ls_remote(base_ref, branch_ref)
        if branch_ref not in refs:
            raise ConflictError(f"promotion branch {pr.branch!r} no longer exists in "
                                f"{self.remote}", hint="re-run promote")
        if base_ref not in refs:
            raise UsageError(f"base branch {pr.base!r} does not exist in {self.remote}")
        # A clone that has nothing yet starts shallow; otherwise fetch only what is new.
        fresh = not self._clone.has_commit(refs[base_ref]) and self._clone.is_empty()
        tips = self._clone.fetch([pr.base, pr.branch], depth=1 if fresh else None)
        return tips[pr.base], tips[pr.branch]

    def _merged(self, method: MergeMethod, pr: PullRequest, base_tip: str, tip: str,
                message: str) -> str | None:
        """The commit the base should move to, or None when it already has the change."""
        merge_base = self._merge_base(base_tip, tip, (pr.base, pr.branch))
        if merge_base == tip:
            return None
        tip_commit = self._clone.commit(tip)
        signed = not self._clone.sign or self._clone.is_signed(tip)
        if signed and merge_base == base_tip and (method == "rebase" or (
                method == "squash" and tip_commit.parents == (base_tip,)
                and message.strip() in ("", tip_commit.message.strip()))):
            return tip  # already on the base tip: fast-forward, as git rebase would
        self._checkout(base_tip)
        try:
            if method == "rebase":
                return self._cherry_pick_all(base_tip, tip)
            self._apply("merge", "--no-ff", "--no-commit", "-q", tip)
            tree = self._clone.git("write-tree", verb="write-tree").decode().strip()
            if method == "squash":
                if tree == self._clone.commit(base_tip).tree:
                    return None
                return self._clone.commit_tree(tree, (base_tip,),
                                               message or tip_commit.message)
            default = f"Merge branch '{pr.branch}' into {pr.base}\n\n{tip_commit.message}"
            return self._clone.commit_tree(tree, (base_tip, tip), message or default)
        finally:
            self._clone.git("reset", "-q", "--hard", verb="reset")

    def _merge_base(self, a: str, b: str, branches: Sequence[str]) -> str:
        """The merge base of two commits, deepening the shallow clone until it shows."""
        for deepen in ("--deepen=64", "--unshallow", None):
            result = self._clone.run("merge-base", a, b, verb="merge-base")
            if result.returncode == 0:
                return result.stdout.decode().strip()
            if deepen is None or not self._clone.is_shallow():
                break
            self._clone.fetch(branches, depth=deepen)
        raise ConflictError(f"{branches[1]!r} and {branches[0]!r} share no history in "
                            f"{self.remote}", hint="delete the promotion branch and re-run")

    def _cherry_pick_all(self, base_tip: str, tip: str) -> str | None:
        """Replay the branch's commits on the base tip, keeping author, date and message;
        a commit whose change the base already has is dropped."""
        out = self._clone.git("rev-list", "--reverse", "--no-merges", f"{base_tip}..{tip}",
                              verb="rev-list")
        head = base_tip
        head_tree = self._clone.commit(base_tip).tree
        for picked in self._clone.commits(out.decode().split()):
            self._apply("cherry-pick", "--no-commit", picked.sha)
            tree = self._clone.git("write-tree", verb="write-tree").decode().strip()
            if tree == head_tree:
                continue
            author = {"GIT_AUTHOR_NAME": picked.author_name,
                      "GIT_AUTHOR_EMAIL": picked.author_email,
                      "GIT_AUTHOR_DATE": picked.author_date}
            head = self._clone.commit_tree(tree, (head,), picked.message, env=author)
            head_tree = tree
            self._checkout(head)
        return None if head == base_tip else head

    def _apply(self, *args: str) -> None:
        """Run a merge or cherry-pick into the index; a content conflict is a
        ConflictError naming the files."""
        result = self._clone.run(*args, verb=args[0])
        if result.returncode == 0:
            return
        unmerged = self._clone.git("diff", "--name-only", "--diff-filter=U", "-z", verb="diff")
        files = sorted({p.decode("utf-8", "replace") for p in unmerged.split(b"\x00") if p})
        if files:
            raise ConflictError(
                f"the promotion conflicts with changes on the base branch in "
                f"{', '.join(files)}; nothing was merged",
                file=files[0], hint="re-run promote to redo the edit on the current base")
        detail = self._clone.clean((result.stdout + result.stderr).decode("utf-8", "replace"))
        raise GitFailed(args[0], self.remote, detail, result.returncode)

    def _checkout(self, sha: str) -> None:
        """The clone's work tree at ``sha``, with nothing else in it."""
        self._clone.git("reset", "-q", "--hard", verb="reset", ok=(0, 128))  # 128: no HEAD yet
        self._clone.git("checkout", "-q", "-f", "--detach", sha, verb="checkout")
        self._clone.git("clean", "-q", "-f", "-d", "-x", verb="clean")

    def _delete_merged(self, branch: str, tip: str) -> str:
        """Delete the merged promotion branch unless it moved; say what happened."""
        try:
            reason = self._clone.push(f"refs/heads/{branch}", None, lease=tip)
        except ForgeError as exc:
            return f"; the branch {branch!r} was not deleted: {exc.message}"
        if reason is not None:
            return f"; the branch {branch!r} was not deleted: it moved ({reason})"
        return ""


if TYPE_CHECKING:
    def _is_a_forge(forge: GitForge) -> Forge:  # mypy checks GitForge against the protocol
        return forge


def from_setup(setup: Setup) -> GitForge:
    """The plain-git forge the CLI asked for. Its default author: ``--author``, else the
    CI user (``author:`` of the config, read later, comes with each commit); merge
    commits use it too. A token in the URL is masked everywhere."""
    secrets = url_secrets(setup.repo)
    for secret in secrets:
        register(secret)
    author = identity.parse(setup.author) if setup.author else identity.from_ci(setup.environ)
    if secrets:
        refuse_cleartext_proxy(setup.repo, setup.environ, "--repo")
    return GitForge(setup.repo, author=author, retry_timeout=setup.retry_timeout,
                    ca_bundle=setup.ca_bundle, sleep=setup.sleep)
