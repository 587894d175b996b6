"""Flux image-automation markers: ``# {"$imagepolicy": "ns:name[:tag|:name|:digest]"}``.

The marker is a comment after a scalar on the same line; it names the ImagePolicy
whose latest image should be written there, whole or in part. Repos already set up
for Flux image automation work unchanged: ``--marker ns:name=REF`` (or a ``markers``
mapping in .promoter.yaml) says which image a policy stands for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from promoter.edit.document import Document, items
from promoter.edit.slots import MarkerSlot, Slot

NEEDLE = b"$imagepolicy"
MARKER_RE = re.compile(r"#\s*\{\s*\"\$imagepolicy\"\s*:\s*\"([^\"]+)\"\s*\}")
ROLES = ("tag", "name", "digest")


def split_policy(text: str) -> tuple[str, str]:
    """``ns:name:tag`` -> (``ns:name``, ``tag``); ``ns:name`` -> (``ns:name``, ``ref``)."""
    parts = text.split(":")
    if len(parts) == 3 and parts[2] in ROLES:
        return f"{parts[0]}:{parts[1]}", parts[2]
    return text, "ref"


def marker_lines(text: str) -> dict[int, str]:
    """0-based line number -> policy text, for every line that carries a marker."""
    if "$imagepolicy" not in text:
        return {}
    found: dict[int, str] = {}
    for number, line in enumerate(text.splitlines()):
        m = MARKER_RE.search(line)
        if m:
            found[number] = m.group(1)
    return found


def slots(doc: Document, lines: dict[int, str]) -> Iterator[Slot]:
    if not lines:
        return
    stack: list[tuple[Node, str]] = [(doc.root, "")]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for key, value in items(node):
                stack.append((value, f"{path}.{key}" if path else key))
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                stack.append((item, f"{path}[{i}]"))
        elif isinstance(node, ScalarNode) and path:
            line = node.end_mark.line
            if line in lines and node.start_mark.line == line:
                policy, role = split_policy(lines[line])
                yield MarkerSlot(node, policy, role, path)
