"""A branch's history along first parents, from a forge that lists every commit
reachable from the tip (Gitea, Bitbucket Cloud and Data Center): the list is read only
until the chain is complete (``limit`` commits long, or at a root commit)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from promoter.forges.base import LoggedCommit

Item = Mapping[str, Any]


def first_parents(items: Iterable[Item], limit: int, *, sha_of: Callable[[Item], str],
                  parent_of: Callable[[Item], str | None],
                  logged: Callable[[str, Item], LoggedCommit]) -> list[LoggedCommit]:
    """Newest first along first parents, at most ``limit``: ``items`` are the forge's
    list (newest first, the tip first; a generator that reads pages as it goes),
    ``sha_of`` / ``parent_of`` read a commit's id and first parent, ``logged`` makes the
    entry."""
    seen: dict[str, Item] = {}
    first: str | None = None
    for item in items:
        sha = sha_of(item)
        seen[sha] = item
        first = first or sha
        chain = _walk(first, seen, limit, parent_of, logged)
        if len(chain) >= limit or (chain and parent_of(seen[chain[-1].sha]) is None):
            return chain
    return _walk(first, seen, limit, parent_of, logged)


def _walk(start: str | None, seen: Mapping[str, Item], limit: int,
          parent_of: Callable[[Item], str | None],
          logged: Callable[[str, Item], LoggedCommit]) -> list[LoggedCommit]:
    out: list[LoggedCommit] = []
    sha = start
    while sha is not None and sha in seen and len(out) < limit:
        out.append(logged(sha, seen[sha]))
        sha = parent_of(seen[sha])
    return out
