"""Kustomize ``images:`` entries: name, newName, newTag, digest.

The entry's image is ``newName`` when given, else ``name`` (the name as the base
manifests spell it). Its tag lives in ``newTag`` and its digest in ``digest``; a
digest promotion into a block entry without a ``digest`` key inserts that key under the
tag, as ``kustomize edit set image`` does (the engine proves the new key by re-parsing).

``images_set_over`` reads the kustomization graph (resources, bases, components,
patches; relative paths) from the file map, so that an untagged reference in a base
is left to the overlay whose ``images:`` entry sets its tag.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Iterator, Mapping

from promoter.edit.document import Document, decode, get, parse, scalar_value, seq
from promoter.edit.slots import PartsSlot, Slot
from promoter.errors import EditError, UsageError
from promoter.images import parse_name

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


# --- which files a kustomization's images: entries reach ---------------------------------

_PATH_LISTS = ("resources", "bases", "components", "patchesStrategicMerge")


def is_kustomization(path: str) -> bool:
    return posixpath.basename(path) in FILENAMES


def _kustomization_in(folder: str, files: Collection[str]) -> str | None:
    for name in sorted(FILENAMES):
        candidate = posixpath.join(folder, name) if folder else name
        if candidate in files:
            return candidate
    return None


def _entries(path: str, data: bytes, files: Collection[str]) -> tuple[list[str], set[str]]:
    """What the kustomization at ``path`` includes (repo paths: files, or the
    kustomization files of folders) and the image names its ``images:`` set."""
    try:
        docs = parse(decode(data, path), path)
    except EditError:
        return [], set()
    folder = posixpath.dirname(path)
    included: list[str] = []
    names: set[str] = set()
    for doc in docs:
        refs = [scalar_value(n) for key in _PATH_LISTS for n in seq(get(doc.root, key))]
        refs += [scalar_value(get(p, "path")) for p in seq(get(doc.root, "patches"))]
        for ref in refs:
            if not ref or "://" in ref or ref.startswith(("github.com/", "git@")):
                continue  # a remote base: not in this repo
            target = posixpath.normpath(posixpath.join(folder, ref))
            if target in files:
                included.append(target)
            else:
                nested = _kustomization_in(target, files)
                if nested is not None:
                    included.append(nested)
        for entry in seq(get(doc.root, "images")):
            name = scalar_value(get(entry, "name"))
            try:
                domain, repo = parse_name(name or "")
            except UsageError:
                continue
            names.add(f"{domain}/{repo}")
    return included, names


def images_set_over(files: Mapping[str, bytes], images: Collection[str]
                    ) -> dict[str, dict[str, str]]:
    """For each file a kustomization includes (directly, or through resources, bases,
    components and patches), those of ``images`` (canonical names) that the
    kustomization's ``images:`` sets, each with the kustomization that sets it:
    image name -> kustomization path. Pure: reads only kustomization files of
    ``files``; only those that name one of ``images`` (by a byte search) and the ones
    they include are parsed."""
    paths = frozenset(files)
    shorts = b"|".join(re.escape(name.rsplit("/", 1)[-1].encode()) for name in images)
    named = re.compile(rb"(?<![\w.-])(?:" + shorts + rb")(?![\w.-])" if shorts else rb"(?!)")
    parsed: dict[str, tuple[list[str], set[str]]] = {}

    def read(path: str) -> tuple[list[str], set[str]]:
        if path not in parsed:
            parsed[path] = _entries(path, files[path], paths)
        return parsed[path]

    covered: dict[str, dict[str, str]] = {}
    for top in sorted(p for p in paths if is_kustomization(p)):
        data = files[top]
        if b"images" not in data or not named.search(data):
            continue
        names = read(top)[1] & set(images)
        if not names:
            continue
        seen = {top}
        stack = list(read(top)[0])
        while stack:
            path = stack.pop()
            if path in seen:
                continue
            seen.add(path)
            if is_kustomization(path):
                stack.extend(read(path)[0])
                continue
            for name in sorted(names):
                covered.setdefault(path, {}).setdefault(name, top)
    return covered
