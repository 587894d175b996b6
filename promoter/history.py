"""Promotion history and rollback, read from the trailers promoter writes into the
commits of the base branch: nothing but the forge's ``log`` is needed (a working tree's
``git log`` will do as well).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from promoter.errors import NotFound, UsageError
from promoter.forges.base import Forge
from promoter.images import ImageRef, Version, parse_version, try_parse
from promoter.jsontypes import JSONObject
from promoter.report import (
    TRAILER_ENV,
    TRAILER_FINGERPRINT,
    TRAILER_IMAGE,
    TRAILER_PREVIOUS,
    TRAILER_ROLLBACK,
    trailers,
)
from promoter.selection import Request


@dataclass(frozen=True)
class HistoryEntry:
    sha: str
    date: str
    author: str
    env: str | None
    images: tuple[str, ...]
    previous: tuple[str, ...]
    rollback_of: tuple[str, ...]  # one reference per image a rollback moved away from
    source_commit: str | None
    pipeline: str | None
    title: str

    def to_json(self) -> JSONObject:
        return {"commit": self.sha, "date": self.date, "author": self.author, "env": self.env,
                "images": list(self.images), "previous": list(self.previous),
                "rollback_of": list(self.rollback_of) or None,
                "source_commit": self.source_commit, "pipeline": self.pipeline,
                "title": self.title}

    def line(self) -> str:
        """One line of the ``--history`` text: date, commit, environment, before -> after,
        who, and whether it was a rollback."""
        prev = ", ".join(self.previous) or "?"
        now = ", ".join(self.images)
        tag = " [rollback]" if self.rollback_of else ""
        return f"{self.date}  {self.sha[:12]}  {self.env or '-'}  {prev} -> {now}  " \
               f"by {self.author}{tag}" + (f"  source {self.source_commit[:12]}"
                                           if self.source_commit else "")


def history(forge: Forge, base: str | None, env: str | None,
            images: Sequence[ImageRef] = (), limit: int = 500) -> list[HistoryEntry]:
    """Promotions recorded in the base branch's commits (newest first), read from the
    trailers promoter writes; nothing but git is needed."""
    branch = base or forge.snapshot(None).branch
    names = {r.name for r in images}
    out = []
    seen_fingerprints: set[str] = set()
    for c in forge.log(branch, limit):
        tr = trailers(c.message)
        keys = dict(tr)
        if TRAILER_IMAGE not in keys:
            continue
        fp = keys.get(TRAILER_FINGERPRINT, c.sha)
        if fp in seen_fingerprints:  # a merge commit and its branch commit: one promotion
            continue
        seen_fingerprints.add(fp)
        if env is not None and keys.get(TRAILER_ENV) != env:
            continue
        promoted = tuple(v for k, v in tr if k == TRAILER_IMAGE)
        if names and not any(_ref_name(p) in names for p in promoted):
            continue
        away = tuple(ref.strip() for k, v in tr if k == TRAILER_ROLLBACK
                     for ref in v.split(", "))  # ", ": trailers older promoters wrote
        out.append(HistoryEntry(
            c.sha, c.date, c.author, keys.get(TRAILER_ENV), promoted,
            tuple(v for k, v in tr if k == TRAILER_PREVIOUS), away,
            keys.get("Source-Commit"), keys.get("Pipeline"),
            c.message.splitlines()[0] if c.message else ""))
    return out


def _ref_name(text: str) -> str:
    ref = try_parse(text)
    return ref.name if ref else text


def _of(refs: Sequence[str], name: str) -> list[ImageRef]:
    """The parsed references among ``refs`` that name the repository ``name``."""
    parsed = (try_parse(r) for r in refs)
    return [r for r in parsed if r is not None and r.name == name]


def rolled_back_versions(forge: Forge, base: str, env: str,
                         images: Sequence[ImageRef]) -> dict[str, str]:
    """image name -> the version a rollback in ``env`` moved away from, while the guard is
    armed: until a promotion ABOVE that version lands (a human merges it; nothing at or
    below it merges by itself). A later promotion of a lower or unordered version keeps
    the guard armed. With several armed rollbacks, the highest version counts."""
    out: dict[str, str] = {}
    for ref in images:
        highest_since: Version | None = None  # the highest version promoted after
        armed: tuple[Version | None, str] | None = None
        for entry in history(forge, base, env, [ref], limit=200):  # newest first
            for bad in _of(entry.rollback_of, ref.name):
                bad_version = parse_version(bad.tag)
                lifted = highest_since is not None and bad_version is not None \
                    and highest_since > bad_version
                if not lifted and (armed is None or _above(bad_version, armed[0])):
                    armed = (bad_version, bad.version)
            for promoted in _of(entry.images, ref.name):
                version = parse_version(promoted.tag)
                if version is not None and (highest_since is None or version > highest_since):
                    highest_since = version
        if armed is not None:
            out[ref.name] = armed[1]
    return out


def _above(version: Version | None, than: Version | None) -> bool:
    return version is not None and (than is None or version > than)


def rollback_request(forge: Forge, request: Request) -> Request:
    """The request that restores the previous image of ``request.env``: taken from the
    newest promotion of each image in the history. When that newest promotion is itself
    a rollback, the request restores what it restored: a re-run is a no-op, never a flip
    back to the bad version."""
    if not request.images:
        raise UsageError("--rollback needs --image NAME (which image to roll back)")
    restored: list[ImageRef] = []
    rolled_from: list[str] = []
    for ref in request.images:
        entries = history(forge, request.base, request.env, [ref], limit=500)
        if not entries:
            raise NotFound(f"no promotion of {ref.familiar} recorded in "
                           f"{'environment ' + request.env if request.env else 'the base'}",
                           hint="history is read from commits promoter made (their trailers)")
        last = entries[0]
        if _of(last.rollback_of, ref.name):  # already rolled back: keep it so
            kept = _of(last.images, ref.name)
            if not kept:
                raise NotFound(f"the last rollback of {ref.familiar} records no image")
            restored.append(kept[0])
            rolled_from.extend(str(r) for r in _of(last.rollback_of, ref.name))
            continue
        previous = _of(last.previous, ref.name)
        if not previous:
            raise NotFound(f"the last promotion of {ref.familiar} records no previous image")
        restored.append(previous[0])
        rolled_from.extend(str(r) for r in _of(last.images, ref.name))
    return replace(request, images=tuple(restored), rollback_of=tuple(rolled_from))
