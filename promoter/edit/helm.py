"""Helm values: image strings and repository/tag maps, nested anywhere.

Recognised shapes (``image`` stands for any key with "image" in its name):

    image: ghcr.io/acme/api:1.4.2              # a whole reference
    image: {repository: ghcr.io/acme/api, tag: "1.4.2", digest: ""}
    image: {registry: ghcr.io, repository: acme/api, tag: 1.4.2}
    image: {name: ghcr.io/acme/api, tag: 1.4.2}   # "name" only under an image key

A values file is any YAML document that is not a Kubernetes object (no apiVersion and
kind). Argo CD's ``helm.valuesObject`` is read with the same walker.
"""

from __future__ import annotations

from collections.abc import Iterator

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from promoter.edit.document import Document, get, items, scalar_value
from promoter.edit.slots import PartsSlot, RefSlot, Slot


def applies(doc: Document, file: str) -> bool:
    return doc.kind is None or doc.api_version is None


def slots(doc: Document, file: str) -> Iterator[Slot]:
    yield from walk(doc.root, "", "helm")


def _imageish(key: str) -> bool:
    return "image" in key.lower()


def parts(node: Node, path: str, fmt: str, under_image_key: bool) -> PartsSlot | None:
    repository = get(node, "repository")
    if repository is None and under_image_key:
        repository = get(node, "name")
    repo = scalar_value(repository)
    if not repo or repository is None:
        return None
    registry = scalar_value(get(node, "registry"))
    name = f"{registry.rstrip('/')}/{repo}" if registry else repo
    return PartsSlot(name, repository, get(node, "tag"), get(node, "digest"), path, fmt)


def walk(node: Node, path: str, fmt: str) -> Iterator[Slot]:
    seen: set[int] = set()
    stack: list[tuple[Node, str, bool]] = [(node, path, False)]
    while stack:
        current, here, under_image = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, MappingNode):
            found = parts(current, here, fmt, under_image)
            if found is not None:
                yield found
            for key, value in items(current):
                sub = f"{here}.{key}" if here else key
                if isinstance(value, ScalarNode):
                    if _imageish(key) and found is None:
                        yield RefSlot(value, sub, fmt)
                else:
                    stack.append((value, sub, _imageish(key)))
        elif isinstance(current, SequenceNode):
            for i, item in enumerate(current.value):
                stack.append((item, f"{here}[{i}]", under_image))
