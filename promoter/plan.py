"""Request + files -> Plan: the edits, the places already up to date, the diff.

Pure: takes bytes and values, returns values. The forges and the CLI feed it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Found:
    """One place in the repo that sets a targeted image (whether or not it changes)."""

    file: str
    line: int  # 1-based
    column: int  # 1-based
    image: str  # canonical repository name, e.g. ghcr.io/acme/api
    field: str  # where in the document, e.g. spec.template.spec.containers[0].image
    format: str  # workload | kustomize | helm | argocd | marker | set
    old: str  # the scalar's value as it is
    new: str  # the scalar's value after the promotion (== old when up to date)
    old_tag: str | None = None
    old_digest: str | None = None

    @property
    def changes(self) -> bool:
        return self.old != self.new


@dataclass(frozen=True)
class Skip:
    """A place the engine saw but will not change, and why."""

    file: str
    line: int
    image: str
    reason: str


@dataclass(frozen=True)
class Plan:
    found: tuple[Found, ...]
    skips: tuple[Skip, ...] = ()
    files: dict[str, bytes] = field(default_factory=dict)  # new content of changed files
    originals: dict[str, bytes] = field(default_factory=dict)  # old content of those files
    diff: str = ""

    @property
    def changes(self) -> tuple[Found, ...]:
        return tuple(f for f in self.found if f.changes)

    @property
    def noop(self) -> bool:
        return not self.files
