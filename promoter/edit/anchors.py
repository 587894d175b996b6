"""Documents with their aliases and merge keys resolved, to prove an edit through an
anchor safe.

An edited value that carries an anchor changes at every alias of it. ``expand`` copies
a composed document with every alias replaced by a copy of its anchor's node and every
merge key (``<<``) replaced by the keys it merges in, so the engine can compare the
resolved document before and after an edit, value by value, and ask of each changed
value whether the promotion meant to change it there.

The copy is bounded: a document whose aliases would expand to more than
``MAX_EXPANDED`` nodes (a "billion laughs") is not expanded, and the edit is refused.
Nodes that came in through a merge key are marked: YAML 1.2 has no merge keys and the
tools that read these files differ on them, so a change that reaches a place only
through ``<<`` is never proven safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from promoter.edit.document import MERGE_KEY

MAX_EXPANDED = 50_000


class TooLarge(Exception):
    """The document's aliases expand to more than MAX_EXPANDED nodes."""


@dataclass
class Expanded:
    root: Node
    merged: set[int] = field(default_factory=set)  # ids of copies that came through ``<<``


def expand(root: Node, limit: int = MAX_EXPANDED) -> Expanded:
    out = Expanded(root)
    budget = [limit]
    out.root = _copy(root, False, out.merged, budget, set())
    return out


def _copy(node: Node, via_merge: bool, merged: set[int], budget: list[int],
          inside: set[int]) -> Node:
    budget[0] -= 1
    if budget[0] < 0 or id(node) in inside:  # too many copies, or a recursive alias
        raise TooLarge
    inside.add(id(node))
    try:
        return _copy_of(node, via_merge, merged, budget, inside)
    finally:
        inside.discard(id(node))


def _copy_of(node: Node, via_merge: bool, merged: set[int], budget: list[int],
             inner: set[int]) -> Node:
    copy: Node
    if isinstance(node, ScalarNode):
        copy = ScalarNode(node.tag, node.value, node.start_mark, node.end_mark,
                          style=node.style)
    elif isinstance(node, SequenceNode):
        copy = SequenceNode(node.tag, [_copy(c, via_merge, merged, budget, inner)
                                       for c in node.value],
                            node.start_mark, node.end_mark, flow_style=node.flow_style)
    elif isinstance(node, MappingNode):
        pairs: list[tuple[Node, Node]] = []
        own: set[str] = set()
        sources: list[Node] = []
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == MERGE_KEY:
                sources.extend(v.value if isinstance(v, SequenceNode) else [v])
                continue
            pairs.append((_copy(k, via_merge, merged, budget, inner),
                          _copy(v, via_merge, merged, budget, inner)))
            if isinstance(k, ScalarNode):
                own.add(k.value)
        for source in sources:  # the map's own keys win, then earlier merged maps
            merged_in = _copy(source, True, merged, budget, inner)
            if not isinstance(merged_in, MappingNode):
                continue
            for k, v in merged_in.value:
                if isinstance(k, ScalarNode) and k.value not in own:
                    own.add(k.value)
                    pairs.append((k, v))
        copy = MappingNode(node.tag, pairs, node.start_mark, node.end_mark,
                           flow_style=node.flow_style)
    else:  # pragma: no cover - the composer makes only these three
        raise TypeError(type(node).__name__)
    if via_merge:
        merged.add(id(copy))
    return copy
