"""What the engine reports for each place it looked at: Found (a value it sets) or Skip."""

from __future__ import annotations

from dataclasses import dataclass


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
    # the version this write sets (from the reference that chose it: --image, --marker);
    # None for both when the value is no image version (--set) and policy reads ``new``
    new_tag: str | None = None
    new_digest: str | None = None

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
