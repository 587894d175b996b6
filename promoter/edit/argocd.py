"""Argo CD Application and ApplicationSet sources.

For ``spec.source``, ``spec.sources[*]`` (and under ``spec.template`` for an
ApplicationSet):

- ``kustomize.images``: override strings ``[name=]newName[:tag][@digest]``;
- ``helm.parameters``: ``{name: image, value: repo:tag}``, or ``X.repository`` /
  ``X.registry`` / ``X.tag`` / ``X.digest`` parameters sharing a prefix;
- ``helm.valuesObject``: read like a values file.

``helm.values`` is a block of text, not a YAML tree: it is left alone.

An ApplicationSet's template is a Go template: a templated image value there is left
alone (listed as a skip), not refused. The list generators' ``elements`` (also inside
matrix and merge generators) are read like values; a template value ``repo:{{tag}}``,
or a ``{{tag}}`` beside a repository, has its tag edited in each element that sets it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

from ruamel.yaml.nodes import Node, ScalarNode

from promoter.edit import helm
from promoter.edit.document import Document, get, scalar_value, seq
from promoter.edit.slots import PartsSlot, RefSlot, Slot

KINDS = frozenset({"Application", "ApplicationSet"})


def applies(doc: Document, file: str) -> bool:
    return doc.kind in KINDS and (doc.api_version or "").startswith("argoproj.io/")


def slots(doc: Document, file: str) -> Iterator[Slot]:
    spec = get(doc.root, "spec")
    if doc.kind != "ApplicationSet":
        yield from _sources(spec, "spec")
        return
    elements = list(_elements(seq(get(spec, "generators")), "spec.generators"))
    for element, path in elements:
        yield from helm.walk(element, path, "argocd")
    for slot in _sources(get(get(spec, "template"), "spec"), "spec.template.spec"):
        if isinstance(slot, (RefSlot, PartsSlot)):
            yield replace(slot, template=True)
            yield from _from_elements(slot, elements)


def _sources(spec: Node | None, prefix: str) -> Iterator[Slot]:
    source = get(spec, "source")
    if source is not None:
        yield from _source(source, f"{prefix}.source")
    for i, src in enumerate(seq(get(spec, "sources"))):
        yield from _source(src, f"{prefix}.sources[{i}]")


def _elements(generators: list[Node], path: str) -> Iterator[tuple[Node, str]]:
    """The parameter sets of list generators, also inside matrix and merge generators."""
    for i, generator in enumerate(generators):
        here = f"{path}[{i}]"
        for j, element in enumerate(seq(get(get(generator, "list"), "elements"))):
            yield element, f"{here}.list.elements[{j}]"
        for combinator in ("matrix", "merge"):
            nested = seq(get(get(generator, combinator), "generators"))
            yield from _elements(nested, f"{here}.{combinator}.generators")


_PARAM = re.compile(r"\{\{\s*\.?([A-Za-z_][\w.-]*)\s*\}\}")


def _from_elements(slot: RefSlot | PartsSlot, elements: list[tuple[Node, str]]) -> Iterator[Slot]:
    """A template value ``repo:{{tag}}`` (or a parameter/tag key ``{{tag}}`` beside a
    repository) takes its tag from each list element's ``tag``: those are the values
    to edit."""
    if isinstance(slot, RefSlot):
        value = scalar_value(slot.node) or ""
        name, colon, rest = value.rpartition(":")
        m = _PARAM.fullmatch(rest)
        if not colon or m is None or "{{" in name:
            return
    else:
        name = slot.name
        m = _PARAM.fullmatch(scalar_value(slot.tag) or "")
        if m is None:
            return
    for element, path in elements:
        node = _param(element, m.group(1))  # ``values.tag``: the element's values map
        if isinstance(node, ScalarNode):
            yield PartsSlot(name, slot.node if isinstance(slot, RefSlot) else slot.name_node,
                            node, None, path, "argocd", tag_key=m.group(1))


def _param(element: Node | None, dotted: str) -> Node | None:
    node = element
    for part in dotted.split("."):
        node = get(node, part)
    return node


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
                            path, "argocd", tag_key=f"{stem}tag", digest_key=f"{stem}digest")
