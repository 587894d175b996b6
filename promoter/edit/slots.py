"""Slots: the places in a document where an image is set, as the formats report them.

A format only says *where* an image lives and in which shape; the engine decides
whether a slot matches a targeted image and what its new value is.
"""

from __future__ import annotations

from dataclasses import dataclass

from ruamel.yaml.nodes import Node, ScalarNode


@dataclass(frozen=True)
class RefSlot:
    """One scalar holding a whole reference: ``repo[:tag][@digest]``.
    With ``override`` the value may be ``name=newName[:tag][@digest]`` (Argo CD's
    kustomize image overrides); the reference is the part after ``=``."""

    node: Node
    field: str
    format: str
    override: bool = False
    template: bool = False  # a Go template by design (an ApplicationSet's): templated = left alone


@dataclass(frozen=True)
class PartsSlot:
    """An image split over sibling keys: repository (+ registry), tag, digest."""

    name: str  # the repository as written, registry joined in front when separate
    name_node: Node
    tag: Node | None  # None: the mapping has no tag key
    digest: Node | None  # None: the mapping has no digest key
    field: str
    format: str
    tag_key: str = "tag"  # the keys' names, for messages and fields
    digest_key: str = "digest"
    ambiguous: tuple[str, ...] = ()  # no tag key because several keys might be it
    template: bool = False  # see RefSlot.template
    entry: Node | None = None  # the mapping, when a missing digest key may be inserted


@dataclass(frozen=True)
class MarkerSlot:
    """A scalar followed by a Flux marker ``# {"$imagepolicy": "ns:name[:tag|:name|:digest]"}``."""

    node: ScalarNode
    policy: str  # ns:name
    role: str  # ref | tag | name | digest
    field: str


Slot = RefSlot | PartsSlot | MarkerSlot
