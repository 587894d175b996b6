"""What one promotion through a forge did, as one value.

``promote.run`` builds it step by step (each step returns a new ``Outcome``); the CLI
prints ``to_json()``. The JSON keys, and their order, are the CLI contract (DESIGN.md)
and are pinned by tests: ``message`` once something was said, ``closed_pull_request``
only when a request was closed, ``repo`` only when the CLI names the repository.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from promoter.history import HistoryEntry
from promoter.images import ImageRef
from promoter.jsontypes import JSONObject
from promoter.plan import Plan
from promoter.policy import Verdict
from promoter.report import changes_json, skips_json
from promoter.selection import Request


@dataclass(frozen=True)
class Proposed:
    """The request this run opened, updated or found as it was."""

    url: str
    number: int
    created: bool
    updated: bool


@dataclass(frozen=True)
class Closed:
    """A request this run closed (it had nothing left to do, or the policy refused it)."""

    url: str
    number: int


@dataclass(frozen=True)
class Outcome:
    forge: str
    base: str
    base_commit: str
    env: str | None
    images: tuple[ImageRef, ...]
    plan: Plan
    branch: str
    verdict: Verdict
    provenance: Mapping[str, str | None]
    status: str = ""
    commit: str | None = None
    verified: bool | None = None
    pull_request: Proposed | None = None
    merged: bool = False
    auto_merge: bool = False
    message: str | None = None
    closed: Closed | None = None
    repo: str | None = None

    def said(self, text: str) -> Outcome:
        """This outcome with ``text`` added to its message."""
        return replace(self, message=f"{self.message}; {text}" if self.message else text)

    def to_json(self) -> JSONObject:
        pr = self.pull_request
        out: JSONObject = {
            "status": self.status,
            "forge": self.forge,
            "base": self.base,
            "base_commit": self.base_commit,
            "env": self.env,
            "images": [str(r) for r in self.images],
            "changes": changes_json(self.plan),
            "skips": skips_json(self.plan),
            "diff": self.plan.diff,
            "changed": not self.plan.noop,
            "branch": self.branch,
            "commit": self.commit,
            "verified": self.verified,
            "pull_request": None if pr is None else {
                "url": pr.url, "number": pr.number, "created": pr.created,
                "updated": pr.updated},
            "merged": self.merged,
            "auto_merge": self.auto_merge,
            "policy": self.verdict.to_json(),
            "provenance": dict(self.provenance),
        }
        if self.message is not None:
            out["message"] = self.message
        if self.closed is not None:
            out["closed_pull_request"] = {"url": self.closed.url, "number": self.closed.number}
        if self.repo is not None:
            out["repo"] = self.repo
        return out


@dataclass(frozen=True)
class Preview:
    """The verdict a promotion of a working tree's change would get (read-only), or why
    there is none (``note``: the change spans environments)."""

    verdict: Verdict | None
    note: str | None = None


@dataclass(frozen=True)
class LocalOutcome:
    """What ``--in-place`` / ``--dry-run`` on a working tree did (no forge)."""

    status: str
    repo: str
    request: Request
    plan: Plan
    message: str
    preview: Preview | None = None

    def to_json(self) -> JSONObject:
        request = self.request
        out: JSONObject = {
            "status": self.status, "forge": None, "repo": self.repo, "env": request.env,
            "images": [str(r) for r in request.images], "changes": changes_json(self.plan),
            "skips": skips_json(self.plan), "diff": self.plan.diff,
            "changed": not self.plan.noop, "message": self.message,
            "targets": [{"files": list(request.files), "path": request.path,
                         "env": request.env}]}
        if self.preview is not None:
            verdict = self.preview.verdict
            out["policy"] = None if verdict is None else verdict.to_json()
            if self.preview.note is not None:
                out["policy_note"] = self.preview.note
        return out


@dataclass(frozen=True)
class HistoryOutcome:
    """What ``--history`` found: the promotions recorded in the base branch, newest first."""

    forge: str
    env: str | None
    entries: tuple[HistoryEntry, ...]

    def to_json(self) -> JSONObject:
        return {"status": "history", "forge": self.forge, "env": self.env,
                "history": [e.to_json() for e in self.entries],
                "message": "\n".join(e.line() for e in self.entries) or "no promotions"}
