"""Helm values: image strings and repository/tag maps, nested anywhere.

Recognised shapes (``image`` stands for any key with "image" in its name):

    image: ghcr.io/acme/api:1.4.2              # a whole reference
    image: {repository: ghcr.io/acme/api, tag: "1.4.2", digest: ""}
    image: {registry: ghcr.io, repository: acme/api, tag: 1.4.2}
    image: {name: ghcr.io/acme/api, tag: 1.4.2}   # "name" only under an image key
    image: {registry: registry.k8s.io, image: ingress-nginx/controller, tag: v1.12.0,
            digest: sha256:...}                  # "image" as the repository key
    imageName: ghcr.io/acme/api                  # split keys: the tag lives beside it
    imageTag: "1.4.2"

A repository without a registry of its own takes ``global.imageRegistry`` or
``global.image.registry`` of the same values (the Bitnami and ingress-nginx
convention; the global one wins when set). An untagged repository value gains a tag
only where no sibling key holds the tag (``tag``, ``version``, ``imageTag``, ``*Tag``);
where one does, that key is edited. Keys merged in with ``<<`` count as the map's own.

A values file is any YAML document that is not a Kubernetes object (no apiVersion and
kind). Argo CD's ``helm.valuesObject`` and Flux's HelmRelease ``spec.values`` are read
with the same walker.
"""

from __future__ import annotations

from collections.abc import Iterator

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from promoter.edit.document import MERGE_KEY, Document, get, items, scalar_value
from promoter.edit.slots import PartsSlot, RefSlot, Slot
from promoter.images import try_parse

_NAME_STEMS = ("imagerepository", "imagename", "repository", "image", "name")
_PART_STEMS = ("imagetag", "imageversion", "imagedigest", "tag", "version", "digest")


def applies(doc: Document, file: str) -> bool:
    return doc.kind is None or doc.api_version is None


def slots(doc: Document, file: str) -> Iterator[Slot]:
    yield from walk(doc.root, "", "helm")


def _imageish(key: str) -> bool:
    return "image" in key.lower()


def _role_of(key: str) -> str | None:
    """Which part of an image a sibling key holds: ``tag``, ``digest`` or neither."""
    low = key.lower()
    if low.endswith("digest"):
        return "digest"
    if low in ("version", "imageversion") or low.endswith("tag"):
        return "tag"
    return None


def _stem(key: str, stems: tuple[str, ...]) -> str:
    low = key.lower().replace("_", "").replace("-", "")
    for stem in stems:
        if low.endswith(stem):
            return low[: -len(stem)]
    return low


def keyed(node: Node, seen: frozenset[int] = frozenset()) -> dict[str, Node]:
    """A mapping's scalar keys and values, keys merged in with ``<<`` included (the
    map's own keys win, then earlier merged maps over later ones)."""
    out: dict[str, Node] = {}
    if not isinstance(node, MappingNode) or id(node) in seen:
        return out
    merged: list[Node] = []
    for k, v in node.value:
        if isinstance(k, ScalarNode):
            if k.value == MERGE_KEY:
                merged.extend(v.value if isinstance(v, SequenceNode) else [v])
            else:
                out.setdefault(k.value, v)
    for source in merged:
        for key, value in keyed(source, seen | {id(node)}).items():
            out.setdefault(key, value)
    return out


def sibling(keys: dict[str, Node], name_key: str, role: str
            ) -> tuple[str | None, tuple[str, ...]]:
    """The key beside ``name_key`` that holds the image's ``role`` (tag or digest):
    (key, ()) when one does, (None, ()) when none does, (None, candidates) when
    several could and none is clearly this image's."""
    candidates = [k for k in keys if k != name_key and _role_of(k) == role]
    if role in candidates:
        return role, ()
    if len(candidates) == 1:
        return candidates[0], ()
    stem = _stem(name_key, _NAME_STEMS)
    paired = [k for k in candidates if _stem(k, _PART_STEMS) == stem]
    if len(paired) == 1:
        return paired[0], ()
    return None, tuple(candidates)


def _bare(text: str | None) -> bool:
    """A reference with neither tag nor digest: a repository."""
    ref = try_parse(text) if text else None
    return ref is not None and ref.tag is None and ref.digest is None


def _has_domain(repo: str) -> bool:
    first, sep, _ = repo.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def global_registry(values: Node) -> str | None:
    glob = get(values, "global")
    registry = scalar_value(get(glob, "imageRegistry")) or scalar_value(
        get(get(glob, "image"), "registry"))
    return registry or None


def parts(node: Node, path: str, fmt: str, under_image_key: bool,
          registry_default: str | None = None) -> PartsSlot | None:
    keys = keyed(node)
    name_key = None
    for candidate in ("repository", "name") if under_image_key else ("repository",):
        if scalar_value(keys.get(candidate)):
            name_key = candidate
            break
    if name_key is None and _bare(scalar_value(keys.get("image"))) and (
            "registry" in keys or sibling(keys, "image", "tag")[0] is not None):
        name_key = "image"  # ingress-nginx: registry + image + tag + digest
    if name_key is None:
        return None
    repository = keys[name_key]
    repo = scalar_value(repository) or ""
    registry = scalar_value(keys.get("registry"))
    if registry_default and not _has_domain(repo):
        registry = registry_default
    name = f"{registry.rstrip('/')}/{repo}" if registry else repo
    return _slot(keys, name_key, name, repository, path, fmt)


def _slot(keys: dict[str, Node], name_key: str, name: str, name_node: Node, path: str,
          fmt: str) -> PartsSlot:
    tag_key, ambiguous = sibling(keys, name_key, "tag")
    digest_key, _ = sibling(keys, name_key, "digest")
    return PartsSlot(name, name_node, keys[tag_key] if tag_key else None,
                     keys[digest_key] if digest_key else None, path, fmt,
                     tag_key=tag_key or "tag", digest_key=digest_key or "digest",
                     ambiguous=ambiguous)


def _split(keys: dict[str, Node], key: str, value: ScalarNode, path: str,
           fmt: str) -> PartsSlot | None:
    """``imageName: ghcr.io/acme/api`` beside ``imageTag: 1.4.2``: the repository is
    untagged and a sibling holds the tag (or several might: then nothing is written)."""
    if not _bare(value.value):
        return None
    tag_key, ambiguous = sibling(keys, key, "tag")
    if tag_key is None and not ambiguous:
        return None
    return _slot(keys, key, value.value, value, path, fmt)


def walk(node: Node, path: str, fmt: str) -> Iterator[Slot]:
    registry = global_registry(node)
    seen: set[int] = set()
    stack: list[tuple[Node, str, bool]] = [(node, path, False)]
    while stack:
        current, here, under_image = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, MappingNode):
            found = parts(current, here, fmt, under_image, registry)
            if found is not None:
                yield found
            keys = keyed(current) if found is None else {}
            nested: list[tuple[Node, str, bool]] = []
            for key, value in items(current):
                sub = f"{here}.{key}" if here else key
                if isinstance(value, ScalarNode):
                    if _imageish(key) and found is None:
                        yield _split(keys, key, value, here, fmt) or RefSlot(value, sub, fmt)
                else:
                    nested.append((value, sub, _imageish(key)))
            stack.extend(reversed(nested))  # document order: an anchor before its aliases
        elif isinstance(current, SequenceNode):
            stack.extend(reversed([(item, f"{here}[{i}]", under_image)
                                   for i, item in enumerate(current.value)]))
