"""Parsing a YAML file into located nodes, and the few tree helpers formats need.

ruamel.yaml's composer gives every node a start and end mark (character offsets into
the text, quotes included). We compose with the C parser (ruamel.yaml.clib) when it is
installed: it is an order of magnitude faster than the pure-Python one, and we never
need the round-trip loader, because nothing is ever dumped.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import FileMark, MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.parser import Parser
from ruamel.yaml.resolver import VersionedResolver

from promoter import limits
from promoter.errors import EditError, ParseError
from promoter.limits import yaml_depth

BOM = "\ufeff"
MERGE_KEY = "<<"
MAX_FILE_BYTES = 8 * 1024 * 1024  # larger YAML is refused before parsing (time, memory)
# Deeper is refused, measured before composing (the C composer recurses once per level
# and crashes the process on tens of thousands); the walkers and the verifier recurse too.
MAX_DEPTH = limits.MAX_DEPTH


class _CResolver(VersionedResolver):
    """The C parser never tells the resolver a ``%YAML`` version, so ruamel's resolver
    settles on its default, 1.2, after two failing attribute lookups, for every scalar (a
    tenth of a dry run's time). The same answer, without the lookups."""

    @property
    def processing_version(self) -> Any:
        return self._loader_version if self._loader_version is not None else (1, 2)


def _composer() -> YAML:
    try:
        yaml = YAML(typ="safe", pure=False)
    except ImportError:  # pragma: no cover - clib missing: slower, same results
        return YAML(typ="safe", pure=True)
    if yaml.Parser is not Parser:  # the C parser (its loader is its own resolver)
        yaml.Resolver = _CResolver
    return yaml


_YAML = _composer()


@dataclass
class Document:
    """One YAML document of a file, with what the formats need to know about it."""

    root: Node
    index: int
    shared: set[int] = field(default_factory=set)  # ids of nodes reachable through an alias

    @property
    def kind(self) -> str | None:
        return scalar_value(get(self.root, "kind"))

    @property
    def api_version(self) -> str | None:
        return scalar_value(get(self.root, "apiVersion"))


def decode(data: bytes, file: str) -> str:
    """Bytes to text, strictly UTF-8 (a BOM is kept: callers strip and restore it)."""
    if len(data) > MAX_FILE_BYTES:
        raise ParseError(f"cannot parse YAML: the file has {len(data):,} bytes, more than the "
                        f"{MAX_FILE_BYTES:,} promoter reads", file=file,
                        hint="exclude it with --file/--path, or split it")
    if b"\x00" in data:
        raise EditError("binary content (NUL bytes) in a YAML file", file=file,
                        hint="exclude it with --file/--path, or fix the file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise EditError(f"not valid UTF-8 (byte 0x{data[exc.start]:02x})", file=file, line=line,
                        hint="save the file as UTF-8") from None


def parse(text: str, file: str) -> list[Document]:
    """Compose every document of ``text`` (without a BOM); EditError on bad YAML."""
    too_deep = yaml_depth(text, MAX_DEPTH)
    if too_deep is not None:
        raise ParseError(f"cannot parse YAML: nested more than {MAX_DEPTH} levels deep",
                        file=file, line=too_deep.line, column=too_deep.column,
                        hint="fix the file, or exclude it with --file/--path")
    try:
        roots = [n for n in _YAML.compose_all(text) if n is not None]
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ParseError(f"cannot parse YAML: {problem}", file=file, line=line, column=column,
                         hint="fix the syntax, or exclude the file with --file/--path") from None
    except (YAMLError, RecursionError) as exc:
        raise ParseError(f"cannot parse YAML: {type(exc).__name__}", file=file,
                        hint="fix the syntax, or exclude the file with --file/--path") from None
    # Without an alias ("*") the composed tree nests no deeper than the text, which
    # yaml_depth has bounded; only an alias can reuse a subtree further down.
    for root in roots if "*" in text else ():
        deep = _too_deep(root)
        if deep is not None:
            raise ParseError(f"cannot parse YAML: nested more than {MAX_DEPTH} levels deep",
                            file=file, line=line_of(deep), column=column_of(deep),
                            hint="fix the file, or exclude it with --file/--path")
    docs = [Document(root, i) for i, root in enumerate(roots)]
    for doc in docs:
        doc.shared = _shared_nodes(doc.root)
    return docs


# A document starts at a line beginning "---" (then a space, a tab or the line's end):
# YAML forbids that line inside any scalar, so these are the stream's document
# boundaries. Directives ("%") and document ends ("...") make the split more involved:
# such a file is composed whole.
_DOC_START = re.compile(r"(?m)^---(?=[ \t\r\n]|$)")
# (At a line start after any YAML line break: CR, NEL, LS and PS end a line too, and a
# "%TAG" hidden behind one still applies to the next document.)
_WHOLE_ONLY = re.compile(
    r"(?m)(?:^|(?<=[\r\x85\u2028\u2029]))(?:\.\.\.(?=[ \t\r\n\x85\u2028\u2029]|$)|%)")


def document_spans(text: str) -> list[tuple[int, int]] | None:
    """(start, end) offsets of each document's text in ``text``, or None when the file
    has directives or document-end markers (then it is composed whole)."""
    if _WHOLE_ONLY.search(text):
        return None
    cuts = sorted({0, *(m.start() for m in _DOC_START.finditer(text)), len(text)})
    return list(itertools.pairwise(cuts)) or [(0, 0)]


def well_formed(text: str) -> bool:
    """Whether the whole stream parses (the C parser's events, nothing composed) and
    composes: a file with a broken document anywhere is refused as before (the whole
    file is composed then, for the error's line), not edited around. A stream
    nested too deep is not (measured first: the parser's events take quadratic time on
    a deep "[[[[", and the whole-file path refuses it with its line and column)."""
    if yaml_depth(text, MAX_DEPTH) is not None:
        return False
    # What only the composer (or duplicate_key after it) would refuse is looked for on
    # the events too: an alias to another document's anchor, a repeated scalar key.
    keys: list[set[str] | None] = []  # per open collection: a mapping's keys so far
    at_key: list[bool] = []  # per open collection: the next node is a mapping key
    anchors: dict[str, str | None] = {}  # this document's: the scalar (None: collection)
    value: str | None
    try:
        for event in _YAML.parse(text):
            kind = type(event)  # identity checks: this loop sees every event of the file
            if kind is ScalarEvent:
                value = event.value
                if event.anchor is not None:
                    anchors[event.anchor] = value
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                keys.pop()
                at_key.pop()
                continue
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                value = None
                if event.anchor is not None:
                    anchors[event.anchor] = None
            elif kind is AliasEvent:
                if event.anchor not in anchors:
                    return False
                value = anchors[event.anchor]
            else:
                if kind is DocumentStartEvent:
                    anchors.clear()
                continue
            if keys and (mine := keys[-1]) is not None:
                if at_key[-1]:
                    if value is not None and value != MERGE_KEY:
                        if value in mine:
                            return False
                        mine.add(value)
                    at_key[-1] = False
                else:
                    at_key[-1] = True
            if kind is MappingStartEvent:
                keys.append(set())
                at_key.append(True)
            elif kind is SequenceStartEvent:
                keys.append(None)
                at_key.append(False)
    except (YAMLError, RecursionError):
        return False
    return True


def parse_spans(text: str, file: str, spans: Sequence[tuple[int, int]],
                chosen: Sequence[int]) -> list[Document] | None:
    """Compose only the ``chosen`` documents of ``text`` (by their ``spans``), each on its
    own, with marks (offsets, lines) as in the whole text. None when a chosen span does
    not compose to at most one document on its own (then compose the whole file: it
    also gives the right line for a syntax error)."""
    docs: list[Document] = []
    for i in chosen:
        start, end = spans[i]
        try:
            found = parse(text[start:end], file)
        except EditError:
            return None
        if len(found) > 1:
            return None
        lines = line_breaks(text, start)
        for doc in found:
            _shift_marks(doc.root, start, lines)
            doc.index = i
            docs.append(doc)
    return docs


def line_breaks(text: str, end: int) -> int:
    """Lines before offset ``end`` as the parser counts them (CR LF, CR, LF, and as in
    YAML 1.1 NEL, LS, PS): a document composed alone must get the lines the whole file
    gives it, since Flux markers are matched by line."""
    return (text.count("\n", 0, end) + text.count("\r", 0, end) - text.count("\r\n", 0, end)
            + sum(text.count(ch, 0, end) for ch in ("\x85", "\u2028", "\u2029")))


def _shift_marks(root: Node, offset: int, lines: int) -> None:
    """Marks of a document composed alone, moved to where it sits in the whole text (a
    span starts at a line start: columns stay)."""
    if not offset:
        return
    for node in _iter(root):
        for attr in ("start_mark", "end_mark"):
            mark = getattr(node, attr, None)
            if mark is not None:
                setattr(node, attr, FileMark(mark.name, mark.index + offset, mark.line + lines,
                                             mark.column))


def _too_deep(root: Node) -> Node | None:
    """A node nested deeper than MAX_DEPTH, when there is one. Heights are computed once
    per node (an alias is not expanded again; a recursive alias is cut), then the
    deepest path is followed down to report where it passes the limit."""
    height: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            height[id(node)] = 1 + max((height.get(id(c), 0) for c in children(node)),
                                       default=-1)
            continue
        if id(node) in entered:
            continue
        entered.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in children(node))
    if height[id(root)] <= MAX_DEPTH:
        return None
    node = root
    for _ in range(MAX_DEPTH):
        node = max(children(node), key=lambda c: height.get(id(c), 0))
    return node


def _shared_nodes(root: Node) -> set[int]:
    """Ids of nodes used by an alias (anchors met twice), with everything beneath them:
    editing one of those would change the value at every alias."""
    seen: set[int] = set()
    targets: list[Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            targets.append(node)
            continue
        seen.add(id(node))
        stack.extend(children(node))
    shared: set[int] = set()
    while targets:
        node = targets.pop()
        if id(node) not in shared:
            shared.add(id(node))
            targets.extend(children(node))
    return shared


def _iter(root: Node) -> Iterator[Node]:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        stack.extend(children(node))


def children(node: Node) -> Iterator[Node]:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            yield key
            yield value
    elif isinstance(node, SequenceNode):
        yield from node.value


def scalar_value(node: Node | None) -> str | None:
    if isinstance(node, ScalarNode):
        value: str = node.value
        return value
    return None


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and str(node.tag).endswith(":null")


def get(node: Node | None, key: str) -> Node | None:
    """The value of ``key`` in a mapping node (None when absent or not a mapping)."""
    if not isinstance(node, MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return v  # type: ignore[no-any-return]
    return None


def items(node: Node | None) -> Iterator[tuple[str, Node]]:
    """(key, value) pairs of a mapping node with scalar keys; merge keys skipped."""
    if not isinstance(node, MappingNode):
        return
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value != MERGE_KEY:
            yield k.value, v


def seq(node: Node | None) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def line_of(node: Node) -> int:
    line: int = node.start_mark.line
    return line + 1


def column_of(node: Node) -> int:
    column: int = node.start_mark.column
    return column + 1


def duplicate_key(root: Node) -> tuple[str, Node] | None:
    """The first repeated key of any mapping in the document, if there is one."""
    for node in _iter(root):
        if isinstance(node, MappingNode):
            keys: set[Any] = set()
            for k, _ in node.value:
                if isinstance(k, ScalarNode):
                    if k.value == MERGE_KEY:
                        continue
                    if k.value in keys:
                        return k.value, k
                    keys.add(k.value)
    return None


def flatten(root: Node) -> list[tuple[str, str, str]]:
    """The document as (path, node kind, scalar value) rows, in document order.
    Used to prove that an edit changed only the values it meant to."""
    rows: list[tuple[str, str, str]] = []
    seen: set[int] = set()

    def visit(node: Node, path: str, depth: int) -> None:
        if depth > 500:
            raise EditError("document nested more than 500 levels deep")
        if id(node) in seen:  # an alias: compared by position, never expanded
            rows.append((path, "alias", ""))
            return
        seen.add(id(node))
        if isinstance(node, ScalarNode):
            rows.append((path, str(node.tag), node.value))
        elif isinstance(node, MappingNode):
            rows.append((path, "map", str(len(node.value))))
            for i, (k, v) in enumerate(node.value):
                key = k.value if isinstance(k, ScalarNode) else f"<complex key {i}>"
                visit(v, f"{path}.{key}" if path else str(key), depth + 1)
        elif isinstance(node, SequenceNode):
            rows.append((path, "seq", str(len(node.value))))
            for i, v in enumerate(node.value):
                visit(v, f"{path}[{i}]", depth + 1)

    visit(root, "", 0)
    return rows
