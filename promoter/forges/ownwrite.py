"""Whose commit is at the tip of a branch that one ``write_commit`` call writes: this
call's own (an earlier attempt that landed although its answer was lost), or a
foreign commit in the way.

Every forge that commits through an API asks the same questions of the same facts, so
they are answered here once; the forge passes in how it reads what a commit changed
(``changed``) and which error a new branch found there already is (``BranchExists``
where promote reads and judges it, see ``Forge.write_first``).

A tip is this call's own only when it proves it (trust rule 1): its one parent is the
base, its message is the one written, and what it changes is exactly ``files``. The
message alone is anyone's to copy."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from promoter.errors import ConflictError
from promoter.forges.base import Head, check_write
from promoter.proof import holds


@dataclass(frozen=True)
class OwnWrite:
    """One ``write_commit`` call: ``branch`` of ``repo`` gets a commit on ``base`` (a
    sha) with ``files`` and ``message``, made new (``replace`` None) or moved from
    ``replace``; the branch and every path are checked as the guard is made.
    ``for_update``: this is the scratch branch of an update of that branch (forges that
    commit beside the branch, then move it)."""

    repo: str
    branch: str
    base: str
    files: Mapping[str, bytes]
    message: str
    replace: Head | None
    changed: Callable[[str], Mapping[str, str] | None]
    exists: type[ConflictError] = ConflictError
    for_update: str = ""

    def __post_init__(self) -> None:
        check_write(self.branch, self.files)  # before anything goes into a request

    def scratch(self, name: str) -> OwnWrite:
        """The same commit made new on the scratch branch ``name`` first."""
        return replace(self, branch=name, replace=None, exists=ConflictError,
                       for_update=self.branch)

    def ours(self, head: Head | None) -> str | None:
        """The head's sha when it is the commit this call makes (an earlier attempt)."""
        if head is None or (self.replace is not None and head.sha == self.replace.sha):
            return None
        if head.parents != (self.base,) or head.message.rstrip() != self.message.rstrip():
            return None
        return head.sha if holds(self.changed(head.sha), self.files) else None

    def in_the_way(self, head: Head | None) -> ConflictError:
        """The error for ``head`` (None: the branch is gone, or was not read), a tip this
        call did not make, where it expected none or ``replace``."""
        where = f"branch {self.branch} of {self.repo}"
        if self.for_update:
            return ConflictError(f"{where} is in the way of promoter's update of "
                                 f"{self.for_update}", hint="delete that branch, then run again")
        if self.replace is None:
            found = (f" with a commit promoter did not make for this base ({head.sha[:12]})"
                     if head is not None else "")
            return self.exists(f"{where} already exists{found}",
                               hint="another run or a person created it; run again to "
                                    "update it, or delete the branch")
        now = head.sha[:12] if head else "deleted"
        return ConflictError(
            f"{where} moved from {self.replace.sha[:12]} to {now} while promoting; "
            "promoter does not force over someone else's commit",
            hint="run again to start from the new state")

    def landed(self, head: Head | None) -> str | None:
        """For ``retry.Write``, with the branch's tip read now: the sha of an earlier
        attempt that landed, None when the tip is still where this call expects it (no
        branch, or ``replace``); anything else is in the way."""
        done = self.ours(head)
        expected = self.replace.sha if self.replace is not None else None
        if done is None and (head.sha if head is not None else None) != expected:
            raise self.in_the_way(head)
        return done

    def settle(self, head: Head | None, *, claim: bool) -> str:
        """The forge refused the write because the branch is there (or moved), and
        ``head`` is its tip now: the sha when ``claim`` (a retry: an earlier attempt may
        have made it) and the tip proves to be this call's; else in the way."""
        done = self.ours(head) if claim else None
        if done is None:
            raise self.in_the_way(head)
        return done

    def moved(self, head: Head | None, sha: str) -> str | None:
        """For ``retry.Write`` of a compare-and-swap from ``replace`` to ``sha``: ``sha``
        when the branch is there, None when it is still at ``replace``; anything else
        is in the way."""
        if head is not None and head.sha == sha:
            return sha
        if head is None or self.replace is None or head.sha != self.replace.sha:
            raise self.in_the_way(head)
        return None


class Remake:
    """The write of a forge with no API that moves a branch (Bitbucket): every attempt
    first clears the way (``clear``): the branch is missing, or still at promoter's
    ``replace`` and then deleted (``delete``); any other tip is in the way. A retry asks
    ``landed`` first, and ``clear`` reuses the tip it read (one read per attempt)."""

    def __init__(self, guard: OwnWrite, read: Callable[[], Head | None],
                 delete: Callable[[Head], None]) -> None:
        self.guard = guard
        self.read = read
        self.delete = delete
        self._seen: list[Head | None] = []

    def landed(self) -> str | None:
        self._seen[:] = [self.read()]
        return self.guard.ours(self._seen[0])

    def clear(self) -> None:
        replace = self.guard.replace
        head = self._seen.pop() if self._seen else self.read() if replace is not None else None
        if head is None:
            return
        if replace is None or head.sha != replace.sha:
            raise self.guard.in_the_way(head)
        self.delete(head)
