"""Argo CD Application and ApplicationSet sources.

For ``spec.source``, ``spec.sources[*]`` (and under ``spec.template`` for an
ApplicationSet):

- ``kustomize.images``: override strings ``[name=]newName[:tag][@digest]``;
- ``helm.parameters``: ``{name: image, value: repo:tag}``, or ``X.repository`` /
  ``X.registry`` / ``X.tag`` / ``X.digest`` parameters sharing a prefix;
- ``helm.valuesObject``: read like a values file.

``helm.values`` is a block of text, not a YAML tree: it is left alone.
"""

from __future__ import annotations

from collections.abc import Iterator

from ruamel.yaml.nodes import Node

from promoter.edit import helm
from promoter.edit.document import Document, get, scalar_value, seq
from promoter.edit.slots import PartsSlot, RefSlot, Slot

KINDS = frozenset({"Application", "ApplicationSet"})


def applies(doc: Document, file: str) -> bool:
    return doc.kind in KINDS and (doc.api_version or "").startswith("argoproj.io/")


def slots(doc: Document, file: str) -> Iterator[Slot]:
    spec = get(doc.root, "spec")
    prefix = "spec"
    if doc.kind == "ApplicationSet":
        spec = get(get(spec, "template"), "spec")
        prefix = "spec.template.spec"
    source = get(spec, "source")
    if source is not None:
        yield from _source(source, f"{prefix}.source")
    for i, src in enumerate(seq(get(spec, "sources"))):
        yield from _source(src, f"{prefix}.sources[{i}]")


def _source(source: Node, path: str) -> Iterator[Slot]:
    kustomize = get(source, "kustomize")
    for i, image in enumerate(seq(get(kustomize, "images"))):
        yield RefSlot(image, f"{path}.kustomize.images[{i}]", "argocd", override=True)
    helm_node = get(source, "helm")
    yield from _parameters(get(helm_node, "parameters"), f"{path}.helm.parameters")
    values = get(helm_node, "valuesObject")
    if values is not None:
        yield from helm.walk(values, f"{path}.helm.valuesObject", "argocd")


def _parameters(params: Node | None, path: str) -> Iterator[Slot]:
    by_name: dict[str, tuple[int, Node]] = {}
    for i, param in enumerate(seq(params)):
        name = scalar_value(get(param, "name"))
        value = get(param, "value")
        if name and value is not None:
            by_name[name] = (i, value)
    for name, (i, value) in by_name.items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf.lower().endswith("image"):
            yield RefSlot(value, f"{path}[{i}].value", "argocd")
        elif leaf == "repository":
            stem = name[: -len("repository")]
            repo = scalar_value(value) or ""
            registry = by_name.get(stem + "registry")
            reg = scalar_value(registry[1]) if registry else None
            full = f"{reg.rstrip('/')}/{repo}" if reg else repo
            tag = by_name.get(stem + "tag")
            digest = by_name.get(stem + "digest")
            yield PartsSlot(full, value, tag[1] if tag else None, digest[1] if digest else None,
                            f"{path}[{i}]", "argocd")
