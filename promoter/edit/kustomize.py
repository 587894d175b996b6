"""Kustomize ``images:`` entries: name, newName, newTag, digest.

The entry's image is ``newName`` when given, else ``name`` (the name as the base
manifests spell it). Its tag lives in ``newTag`` and its digest in ``digest``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from promoter.edit.document import Document, get, scalar_value, seq
from promoter.edit.slots import PartsSlot, Slot

FILENAMES = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})


def applies(doc: Document, file: str) -> bool:
    if doc.kind == "Kustomization" or doc.kind == "Component":
        return True
    return doc.kind is None and posixpath.basename(file) in FILENAMES


def slots(doc: Document, file: str) -> Iterator[Slot]:
    yield from entries(get(doc.root, "images"), "images", "kustomize")


def entries(images: object, path: str, fmt: str) -> Iterator[Slot]:
    for i, entry in enumerate(seq(images)):  # type: ignore[arg-type]
        new_name = get(entry, "newName")
        name_node = new_name if scalar_value(new_name) else get(entry, "name")
        name = scalar_value(name_node)
        if not name or name_node is None:
            continue
        yield PartsSlot(
            name=name,
            name_node=name_node,
            tag=get(entry, "newTag"),
            digest=get(entry, "digest"),
            field=f"{path}[{i}]",
            format=fmt,
            tag_key="newTag",
            entry=entry,  # a missing digest key is inserted, as `kustomize edit set image` does
        )
