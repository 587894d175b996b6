"""One file in, its edits out: find the slots, decide the new values, splice, verify.

    edit_file(file, data, targets) -> FileEdit(found, skips, new bytes or None)

The formats (an explicit table) say where images live; this module matches them
against the targeted images, renders the new values, splices them into the original
text and re-parses the result to prove that only those values changed (and, for a
kustomize digest, that exactly the one new key appeared). An edited value behind a
YAML anchor is proven again on the document with its aliases and merge keys resolved
(anchors.py): every value that changed there must be one the promotion meant to change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from promoter.edit import anchors, argocd, flux, helm, kustomize, markers, workload
from promoter.edit.document import (
    BOM,
    Document,
    column_of,
    decode,
    document_spans,
    duplicate_key,
    flatten,
    get,
    is_null,
    line_of,
    parse,
    parse_spans,
    seq,
    well_formed,
)
from promoter.edit.results import Found, Skip
from promoter.edit.slots import MarkerSlot, PartsSlot, RefSlot, Slot
from promoter.edit.splice import Replacement, apply, insertion, refuse, replacement
from promoter.errors import EditError, UsageError
from promoter.images import ImageRef, parse_name, try_parse
from promoter.paths import safe_relative
from promoter.text import is_clean

Format = tuple[str, Callable[[Document, str], bool], Callable[[Document, str], Iterator[Slot]]]

# Which format reads a document: the first whose ``applies`` says yes.
FORMATS: tuple[Format, ...] = (
    ("argocd", argocd.applies, argocd.slots),
    ("flux", flux.applies, flux.slots),
    ("kustomize", kustomize.applies, kustomize.slots),
    ("workload", workload.applies, workload.slots),
    ("helm", helm.applies, helm.slots),
)

MAX_SET_VALUE = 512
_STR = "tag:yaml.org,2002:str"
_SET_VALUE = re.compile(r"[A-Za-z0-9_.:/@=+-]+")
_KEY_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class SetOp:
    """``--set FILE:dotted.key=VALUE``: write VALUE at that key, whatever the layout."""

    file: str
    key: str
    value: str

    @classmethod
    def parse(cls, text: str) -> SetOp:
        file, colon, rest = text.partition(":")
        key, eq, value = rest.partition("=")
        if not (colon and eq and file and key and value):
            raise UsageError(f"--set {text!r}: expected FILE:dotted.key=VALUE",
                             hint="for example --set values.yaml:image.tag=1.4.2")
        file = safe_relative(file, "--set")  # the same refusal with every forge
        if len(value) > MAX_SET_VALUE:
            raise UsageError(f"--set {file}:{key}: the value has {len(value)} characters, "
                             f"more than the {MAX_SET_VALUE} an image value may have")
        if not _SET_VALUE.fullmatch(value):
            raise UsageError(f"--set {file}:{key}: the value has characters an image value "
                             "never has (white space, quotes, shell characters)",
                             hint="allowed: letters, digits and _ . : / @ = + -")
        if not all(_KEY_PART.fullmatch(p) or p.isdigit() for p in key.split(".")
                   if "[" not in p) or ".." in key:
            raise UsageError(f"--set {file}:{key}: not a dotted key path",
                             hint="for example image.tag or spec.values[0].tag")
        return cls(file, key, value)

    def path(self) -> list[str | int]:
        parts: list[str | int] = []
        for m in _KEY_PART.finditer(self.key):
            parts.append(int(m.group(2)) if m.group(2) is not None else m.group(1))
        return parts


@dataclass(frozen=True)
class Targets:
    """What to promote: images by name, Flux marker policies, explicit key paths."""

    images: tuple[ImageRef, ...] = ()
    markers: Mapping[str, ImageRef] = field(default_factory=dict)
    sets: tuple[SetOp, ...] = ()

    def __post_init__(self) -> None:
        """One version per repository across --image and --marker: two different refs
        for one repository would leave the files disagreeing, and the policy judging one
        of them while the other is written."""
        seen: dict[str, tuple[str, ImageRef]] = {}
        given = [(f"--image {ref}", ref) for ref in self.images]
        given += [(f"--marker {policy}={ref}", ref) for policy, ref in self.markers.items()]
        for what, ref in given:
            first_what, first = seen.setdefault(ref.name, (what, ref))
            if (first.tag, first.digest) != (ref.tag, ref.digest):
                raise UsageError(f"{first_what} and {what} name {ref.familiar} twice, at two "
                                 f"versions ({first.version} and {ref.version}): which one to "
                                 "promote is ambiguous", hint="give each image one version")

    def needles(self) -> tuple[bytes, ...]:
        """Byte strings at least one of which a file must contain to be worth parsing."""
        found = {ref.short.encode() for ref in self.images}
        if self.markers:
            found.add(markers.NEEDLE)
        return tuple(sorted(found))

    def image_for(self, name: str) -> ImageRef | None:
        for ref in self.images:
            if ref.name == name:
                return ref
        return None


@dataclass(frozen=True)
class FileEdit:
    found: tuple[Found, ...] = ()
    skips: tuple[Skip, ...] = ()
    new: bytes | None = None  # None: nothing changes in this file


@dataclass
class _Edit:
    node: Node  # the scalar to rewrite; for an insertion, the mapping that gains a key
    new: str
    found: Found
    insert: tuple[ScalarNode, ScalarNode] | None = None  # (key, value) the new line follows


def edit_file(file: str, data: bytes, targets: Targets,
              overlays: Mapping[str, str] | None = None) -> FileEdit:
    """``overlays``: image name -> the kustomization whose ``images:`` sets that image
    for this file (a kustomize base): an untagged reference to it stays untagged."""
    text = decode(data, file)
    bom = text.startswith(BOM)
    body = text[1:] if bom else text
    sets = [op for op in targets.sets if op.file == file]
    docs, chosen = _compose(body, file, targets, bool(sets))
    marker_at = markers.marker_lines(body) if targets.markers else {}
    edits: dict[int, _Edit] = {}
    skips: list[Skip] = []
    unmatched = set(sets)
    for doc in docs:
        for op in sets:  # first: an explicit --set wins over what a format found
            edit = _set(op, doc, file)
            if edit is not None:
                unmatched.discard(op)
                edits.setdefault(id(edit.node), edit)
        for slot in _slots(doc, file, marker_at):
            for edit in _resolve(slot, targets, file, skips, overlays or {}):
                edits.setdefault(id(edit.node), edit)
    for op in unmatched:
        raise UsageError(f"--set: key {op.key!r} not found", file=file,
                         hint="check the dotted path; sequences are written as name[0]")
    found = tuple(sorted((e.found for e in edits.values()), key=lambda f: (f.line, f.column)))
    changing = [e for e in edits.values() if e.found.changes]
    if not changing:
        return FileEdit(found, tuple(skips))
    _guard(docs, changing, file)
    replacements = [_splice(body, e, file) for e in changing]
    new_body = apply(body, replacements)
    new_docs = verify(docs, body, new_body, replacements,
                      {id(e.node): e.new for e in changing if e.insert is None}, file,
                      [e for e in changing if e.insert is not None], chosen)
    for doc, new_doc in zip(docs, new_docs, strict=True):
        shared = [e for e in changing if id(e.node) in doc.shared]
        if shared:
            _prove_through_aliases(doc, new_doc, shared[0], targets, sets, file, marker_at,
                                   overlays or {})
    new_text = BOM + new_body if bom else new_body
    return FileEdit(found, tuple(skips), new_text.encode("utf-8"))


def _compose(body: str, file: str, targets: Targets, whole: bool
             ) -> tuple[list[Document], Sequence[int] | None]:
    """The documents of ``body`` worth reading, and which of its documents they are (None:
    all of them). In a multi-document file only the documents whose text names a target
    (the planner's byte pre-filter, per document) or may spell one with an escape
    (``_SPELLED``) are composed: the others cannot hold
    a reference to edit (anchors never cross documents). ``whole``: a --set names this
    file (a key anywhere): compose everything."""
    spans = None if whole else document_spans(body)
    if spans is not None and len(spans) > 1 and well_formed(body):
        pattern = _needle_text(targets.needles())
        chosen = [i for i, (start, end) in enumerate(spans)
                  if pattern.search(body, start, end) or _SPELLED.search(body, start, end)]
        docs = parse_spans(body, file, spans, chosen)
        if docs is not None:
            return docs, chosen
    return parse(body, file), None


# A double-quoted scalar can spell a name without holding its text: "\x61pi", "\u0061pi",
# or a "\" that continues the value on the next line. The whole file finds (and edits or
# refuses) such a value once any document names the image: so must the chosen documents.
_SPELLED = re.compile(r"\\(?:[xuU]|\r\n?|[\n\x85\u2028\u2029])")


def _needle_text(needles: Sequence[bytes]) -> re.Pattern[str]:
    """``plan.needle_pattern`` on text: a name as a whole word, or a marker."""
    names = [re.escape(n.decode()) for n in needles if not n.startswith(b"$")]
    others = [re.escape(n.decode()) for n in needles if n.startswith(b"$")]
    alts = [r"(?<![A-Za-z0-9_.-])(?:" + "|".join(names) + r")(?![A-Za-z0-9_.-])"] \
        if names else []
    alts.extend(others)
    return re.compile("|".join(alts) if alts else r"(?!)")


def _slots(doc: Document, file: str, marker_at: dict[int, str]) -> Iterator[Slot]:
    yield from markers.slots(doc, marker_at)  # first: a marker wins over a format
    for _name, applies, slots in FORMATS:
        if applies(doc, file):
            yield from slots(doc, file)
            return


def _splice(body: str, edit: _Edit, file: str) -> Replacement:
    if edit.insert is None:
        return replacement(body, edit.node, edit.new, file)
    key, value = edit.insert
    return insertion(body, key, value, "digest", edit.new, file)


def _guard(docs: list[Document], changing: list[_Edit], file: str) -> None:
    """Refuse what cannot be edited exactly: duplicate keys. (Values behind aliases are
    proven after the splice, by ``_prove_through_aliases``.)"""
    for doc in docs:
        dup = duplicate_key(doc.root)
        if dup is not None:
            key, node = dup
            raise refuse(f"duplicate key {key!r}: which one counts is ambiguous", node, file,
                         "remove the duplicate, then promote again")


def verify(docs: list[Document], body: str, new_body: str, replacements: list[Replacement],
           expected: Mapping[int, str], file: str, inserted: Sequence[_Edit] = (),
           chosen: Sequence[int] | None = None) -> list[Document]:
    """The safety proof of a splice; EditError (a bug, never a silent rewrite) unless

    - the text outside the replaced spans is byte-for-byte the original (comments,
      quotes, keys, white space), each span holds exactly its replacement, and
    - re-parsing the new text gives the same tree except at the edited values, each of
      which now loads as the intended string (``expected``: node id -> new value),
      and each ``inserted`` key loads right after the key its line follows.

    ``chosen``: ``docs`` are these documents of the file only (the others were never
    composed): those are re-parsed, after checking the file still splits into as many
    documents; the text check above proves every other document unchanged.

    Returns the re-parsed documents (the alias proof resolves them).
    """
    _verify_text(body, new_body, replacements, file)
    return _verify_tree(docs, new_body, expected, file, inserted, chosen, body)


def _verify_text(body: str, new_body: str, replacements: list[Replacement], file: str) -> None:
    old_pos = new_pos = 0
    for rep in sorted(replacements, key=lambda r: r.start):
        kept = body[old_pos:rep.start]
        if new_body[new_pos:new_pos + len(kept)] != kept:
            _moved(body, new_body, old_pos, new_pos, kept, file)
        new_pos += len(kept)
        if new_body[new_pos:new_pos + len(rep.text)] != rep.text:
            raise EditError("the edited value is not what was planned (a bug: please report)",
                            file=file, line=body.count("\n", 0, rep.start) + 1)
        new_pos += len(rep.text)
        old_pos = rep.end
    tail = body[old_pos:]
    if new_body[new_pos:] != tail:
        _moved(body, new_body, old_pos, new_pos, tail, file)


def _moved(body: str, new_body: str, old_pos: int, new_pos: int, kept: str, file: str) -> None:
    got = new_body[new_pos:new_pos + len(kept) + 1]
    offset = next((i for i, (a, b) in enumerate(zip(kept, got, strict=False)) if a != b), len(kept))
    line = body.count("\n", 0, old_pos + offset) + 1
    raise EditError("the edit changed text outside the image values (a bug: please report)",
                    file=file, line=line)


def _verify_tree(docs: list[Document], new_body: str, expected: Mapping[int, str],
                 file: str, inserted: Sequence[_Edit], chosen: Sequence[int] | None = None,
                 body: str = "") -> list[Document]:
    """Re-parse the edited text: the trees must match except at the edited values."""
    if chosen is None:
        new_docs = parse(new_body, file)
    else:
        old_spans, new_spans = document_spans(body), document_spans(new_body)
        again = None
        if old_spans is not None and new_spans is not None \
                and len(old_spans) == len(new_spans):
            again = parse_spans(new_body, file, new_spans, chosen)
        if again is None:
            raise EditError("the edit changed the file's documents (a bug: please report)",
                            file=file)
        new_docs = again
    if len(new_docs) != len(docs):
        raise EditError("the edit changed the number of YAML documents (a bug: please report)",
                        file=file)
    for old, new in zip(docs, new_docs, strict=True):
        old_rows = _with_insertions(_rows_with_ids(old.root), inserted)
        new_rows = flatten(new.root)
        if len(old_rows) != len(new_rows):
            raise EditError("the edit changed the document's structure (a bug: please report)",
                            file=file)
        for (path, tag, value, node_id), (npath, ntag, nvalue) in zip(
            old_rows, new_rows, strict=True
        ):
            if path != npath:
                raise EditError(f"the edit moved {path!r} (a bug: please report)", file=file)
            if tag == "alias":  # an alias of an edited anchor: proven on the resolved tree
                if ntag != "alias":
                    raise EditError(f"the edit changed {path!r} too (a bug: please report)",
                                    file=file)
            elif node_id == _INSERTED:
                if (path, tag, value) != (npath, ntag, nvalue):
                    raise EditError(f"the new key {path!r} did not load as {value!r} (a bug: "
                                    "please report)", file=file)
            elif node_id in expected:
                if nvalue != expected[node_id] or ntag != _STR:
                    raise EditError(f"the edit of {path!r} did not produce {expected[node_id]!r}"
                                    " (a bug: please report)", file=file)
            elif (tag, value) != (ntag, nvalue):
                raise EditError(f"the edit changed {path!r} too (a bug: please report)",
                                file=file)
    return new_docs


_ALIAS_HINT = "edit the anchor by hand, or give each use its own value"


def _prove_through_aliases(old: Document, new: Document, edit: _Edit, targets: Targets,
                           sets: list[SetOp], file: str, marker_at: dict[int, str],
                           overlays: Mapping[str, str]) -> None:
    """An edited value is shared through an anchor: resolve every alias and merge key of
    the document before and after the edit, and accept only when each value that changed
    is one the promotion means to change at that place (the formats find an image slot
    there, for a targeted image, whose new value is exactly the new one), and none of
    them changed through a merge key. Otherwise refuse, naming the edited value."""
    try:
        before, after = anchors.expand(old.root), anchors.expand(new.root)
    except anchors.TooLarge:
        raise refuse("the value is shared through a YAML anchor/alias that is used too often "
                     "(or recursively) to prove the edit safe", edit.node, file,
                     _ALIAS_HINT) from None
    resolved = Document(before.root, old.index)
    intended: dict[int, str] = {}
    for op in sets:
        found = _set(op, resolved, file)
        if found is not None:
            intended[id(found.node)] = found.new
    for slot in _slots(resolved, file, marker_at):
        for e in _resolve(slot, targets, file, [], overlays):
            intended.setdefault(id(e.node), e.new)
    old_rows = _rows_with_ids(before.root)
    new_rows = flatten(after.root)
    if [r[0] for r in old_rows] != [r[0] for r in new_rows]:
        raise refuse("the value is shared through a YAML anchor/alias, and the edit changes "
                     "the shape of an aliased map", edit.node, file, _ALIAS_HINT)
    for (path, tag, value, node_id), (_, ntag, nvalue) in zip(old_rows, new_rows,
                                                              strict=True):
        if (tag, value) == (ntag, nvalue):
            continue
        if node_id in before.merged:
            raise refuse(f"the value is shared through a YAML anchor/alias; editing it would "
                         f"change {path!r} through a merge key (<<), which tools read "
                         "differently", edit.node, file, _ALIAS_HINT)
        if intended.get(node_id) != nvalue:
            raise refuse(f"the value is shared through a YAML anchor/alias; editing it would "
                         f"change {path!r} too, which is not a place of the promoted image",
                         edit.node, file, _ALIAS_HINT)


_INSERTED = -1  # the id of a row the edit adds (a new key)
_STR = "tag:yaml.org,2002:str"


def _with_insertions(rows: list[tuple[str, str, str, int]], changing: Sequence[_Edit]
                     ) -> list[tuple[str, str, str, int]]:
    """The rows the edited document must have: each inserted key right after the key
    its line follows, and its mapping one key longer."""
    out = list(rows)
    for e in changing:
        if e.insert is None:
            continue
        _key, after = e.insert
        at = next((i for i, r in enumerate(out) if r[3] == id(after)), None)
        owner = next((i for i, r in enumerate(out) if r[3] == id(e.node)), None)
        if at is None or owner is None:
            continue  # not in this document
        path, tag, count, node_id = out[owner]
        out[owner] = (path, tag, str(int(count) + 1), node_id)
        out.insert(at + 1, (f"{path}.digest" if path else "digest", _STR, e.new, _INSERTED))
    return out


def _rows_with_ids(root: Node) -> list[tuple[str, str, str, int]]:
    rows = flatten(root)
    ids = _scalar_ids(root)
    return [(p, t, v, i) for (p, t, v), i in zip(rows, ids, strict=True)]


def _scalar_ids(root: Node) -> list[int]:
    """Node ids in the same order as ``flatten`` rows."""
    out: list[int] = []
    seen: set[int] = set()

    def visit(node: Node) -> None:
        out.append(id(node))
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node.value, list):
            for item in node.value:
                visit(item[1] if isinstance(item, tuple) else item)

    visit(root)
    return out


# --- matching slots against targets ------------------------------------------------------


def _one_line(value: str, node: Node, file: str) -> str:
    """The value as it is, unless it holds a line break or an invisible/control
    character: such a value would be carried into commit messages (and their trailers,
    which history and rollback read) and PR titles, so the file is refused instead."""
    if not is_clean(value):
        raise refuse(f"the current value {value!r} holds a line break or control "
                     "character", node, file, "fix the value by hand, then promote again")
    return value


def _found(node: Node, file: str, slot_field: str, fmt: str, image: str, new: str,
           old_tag: str | None, old_digest: str | None, target: ImageRef) -> _Edit:
    old = _one_line("" if is_null(node) else str(node.value), node, file)
    for part in (old_tag, old_digest):
        if part:
            _one_line(part, node, file)
    return _Edit(node, new, Found(file, line_of(node), column_of(node), image, slot_field, fmt,
                                  old, new, old_tag, old_digest, target.tag, target.digest))


def _templated(value: str, targets: Targets) -> bool:
    return ("{{" in value or "${" in value) and any(r.short in value for r in targets.images)


# what other tools substitute before deploying: {TAG}, ${TAG}, $TAG, <TAG>, %TAG%, __TAG__
_PLACEHOLDER = re.compile(r"\{\w+\}|\$\{?\w+\}?|<\w+>|%\w+%|__\w+__|@\w+@")


def _placeholder(text: str, targets: Targets) -> str | None:
    """The tag of ``repo:TAG`` when repo is a targeted image and TAG a placeholder."""
    name, colon, tag = text.rpartition(":")
    if not colon or not _PLACEHOLDER.fullmatch(tag):
        return None
    try:
        domain, path = parse_name(name)
    except UsageError:
        return None
    return tag if targets.image_for(f"{domain}/{path}") is not None else None


def _name_in(text: str) -> str:
    """The canonical repository at the front of a templated value, or ''."""
    name = text.rpartition(":")[0] or text
    try:
        domain, path = parse_name(name)
    except UsageError:
        return ""
    return f"{domain}/{path}"


def _resolve(slot: Slot, targets: Targets, file: str, skips: list[Skip],
             overlays: Mapping[str, str]) -> Iterator[_Edit]:
    if isinstance(slot, RefSlot):
        yield from _resolve_ref(slot, targets, file, skips, overlays)
    elif isinstance(slot, PartsSlot):
        yield from _resolve_parts(slot, targets, file, skips)
    else:
        yield from _resolve_marker(slot, targets, file, skips)


def _resolve_ref(slot: RefSlot, targets: Targets, file: str, skips: list[Skip],
                 overlays: Mapping[str, str]) -> Iterator[_Edit]:
    node = slot.node
    if not isinstance(node, ScalarNode) or is_null(node):
        return
    value: str = node.value
    if node.style in ("|", ">"):
        block = try_parse(value.strip())
        if block is not None and targets.image_for(block.name) is not None:
            raise refuse("the image value is a block scalar (| or >); it cannot be edited "
                         "exactly", node, file, "write it as a one-line string")
        return
    prefix, eq, text = value.partition("=") if slot.override and "=" in value else ("", "", value)
    ref = try_parse(text)
    if ref is None:
        if _templated(value, targets):
            if slot.template:
                skips.append(Skip(file, line_of(node), _name_in(text),
                                  f"{slot.field} is templated ({value}): left alone, the "
                                  "generator's parameters set it"))
                return
            raise refuse(f"templated image value {value!r} cannot be promoted", node, file,
                         "use --set on the values it is built from, or leave the file out")
        placeholder = _placeholder(text, targets)
        if placeholder is not None:
            raise refuse(f"placeholder tag {placeholder!r} in {value!r}: promoter cannot tell "
                         "which version it stands for", node, file,
                         "write a real tag there once (promoter keeps it current from then "
                         "on), use --set, or leave the file out with --file/--path")
        return
    target = targets.image_for(ref.name)
    if target is None:
        return
    if ref.tag is None and ref.digest is None and ref.name in overlays:
        skips.append(Skip(file, line_of(node), ref.name, f"{slot.field} is untagged in a "
                          f"kustomize base: {overlays[ref.name]} sets its tag (images:)"))
        return
    # exactly the target's tag and digest: a new tag never keeps an old digest beside it,
    # and a new digest alone never keeps an old tag (both would mislead)
    tag, digest = target.tag, target.digest
    new = prefix + eq + ref.with_version(tag, digest)
    yield _found(node, file, slot.field, slot.format, ref.name, new, ref.tag, ref.digest,
                 ImageRef(ref.domain, ref.path, tag, digest))


def _resolve_parts(slot: PartsSlot, targets: Targets, file: str,
                   skips: list[Skip]) -> Iterator[_Edit]:
    try:
        domain, path = parse_name(slot.name)
    except UsageError:
        if _templated(slot.name, targets):
            raise refuse(f"templated repository {slot.name!r} cannot be promoted",
                         slot.name_node, file, "use --set, or leave the file out") from None
        return
    name = f"{domain}/{path}"
    target = targets.image_for(name)
    if target is None:
        return
    tag_node, digest_node = slot.tag, slot.digest
    old_tag = None if tag_node is None or is_null(tag_node) else str(tag_node.value)
    old_digest = None if digest_node is None or is_null(digest_node) else str(digest_node.value)
    old_digest = old_digest or None
    line = line_of(slot.name_node)
    if old_tag is not None and ("{{" in old_tag or "${" in old_tag):
        if slot.template:
            skips.append(Skip(file, line, name, f"{slot.field}.{slot.tag_key} is templated "
                              f"({old_tag}): left alone, the generator's parameters set it"))
            return
        raise refuse(f"templated tag {old_tag!r} cannot be promoted", tag_node or slot.name_node,
                     file, "use --set on the value it is built from, or leave the file out")
    wrote = False
    if target.tag is not None:
        if tag_node is None and slot.ambiguous:
            skips.append(Skip(file, line, name, f"{slot.field}: several keys beside the "
                              f"repository may hold its tag ({', '.join(slot.ambiguous)}); "
                              "use --set on the right one"))
            return
        if tag_node is None:
            skips.append(Skip(file, line, name, f"{slot.field} has no tag key next to the "
                              "repository; add one, or use --set"))
        else:
            wrote = True
            yield _found(tag_node, file, f"{slot.field}.{slot.tag_key}", slot.format, name,
                         target.tag, old_tag, old_digest, target)
    if target.digest is not None:
        if digest_node is None:
            inserted = _digest_insertion(slot, target, name, old_tag, file)
            if inserted is not None:
                yield inserted
            else:
                skips.append(Skip(file, line, name, f"{slot.field} has no digest key; "
                                  "only the tag was written" if wrote else
                                  f"{slot.field} has no digest key for a digest-only "
                                  "promotion"))
        else:
            yield _found(digest_node, file, f"{slot.field}.{slot.digest_key}", slot.format,
                         name, target.digest, old_tag, old_digest, target)
    elif digest_node is not None and old_digest and wrote:
        # a new tag must not keep a stale digest beside it (the digest would win)
        yield _found(digest_node, file, f"{slot.field}.{slot.digest_key}", slot.format, name,
                     "", old_tag, old_digest, target)


def _digest_insertion(slot: PartsSlot, target: ImageRef, name: str, old_tag: str | None,
                      file: str) -> _Edit | None:
    """A ``digest:`` line under the entry's tag (or name) line, at the same indent, as
    ``kustomize edit set image`` writes it; None when the entry's layout does not allow
    an exact insertion (a flow map, a value spanning lines). The text is known only at
    splice time; here the anchor and the new key are recorded."""
    entry = slot.entry
    if not isinstance(entry, MappingNode) or entry.flow_style:
        return None
    anchor = slot.tag if slot.tag is not None else slot.name_node
    key = next((k for k, v in entry.value if v is anchor), None)
    if not isinstance(key, ScalarNode) or not isinstance(anchor, ScalarNode) \
            or anchor.style in ("|", ">") or key.start_mark.line != anchor.end_mark.line:
        return None
    digest = target.digest or ""
    found = Found(file, anchor.end_mark.line + 2, key.start_mark.column + 1, name,
                  f"{slot.field}.digest", slot.format, "", digest, old_tag, None,
                  target.tag, target.digest)
    return _Edit(entry, digest, found, insert=(key, anchor))


def _resolve_marker(slot: MarkerSlot, targets: Targets, file: str,
                    skips: list[Skip]) -> Iterator[_Edit]:
    target = targets.markers.get(slot.policy)
    if target is None:
        return
    node = slot.node
    value = "" if is_null(node) else str(node.value)
    old = try_parse(value) if slot.role == "ref" else None
    if slot.role == "ref":
        new = old.with_version(target.tag, target.digest) if old and \
            old.name == target.name else str(target)
    elif slot.role == "name":
        new = target.written or target.familiar
    else:
        part = target.tag if slot.role == "tag" else target.digest
        if part is None:
            skips.append(Skip(file, line_of(node), target.name,
                              f"marker {slot.policy}:{slot.role} but the image has no {slot.role}"))
            return
        new = part
    old_tag = old.tag if old else (value if slot.role == "tag" else None)
    old_digest = old.digest if old else (value if slot.role == "digest" else None)
    yield _found(node, file, slot.field, "marker", target.name, new, old_tag, old_digest, target)


def _set(op: SetOp, doc: Document, file: str) -> _Edit | None:
    node: Node | None = doc.root
    for part in op.path():
        if isinstance(part, int):
            items = seq(node)
            node = items[part] if part < len(items) else None
        else:
            node = get(node, part)
        if node is None:
            return None
    if node is None:
        return None
    if not isinstance(node, ScalarNode):
        raise refuse(f"--set: {op.key!r} is not a single value", node, file)
    old = _one_line("" if is_null(node) else str(node.value), node, file)
    return _Edit(node, op.value, Found(file, line_of(node), column_of(node), "", op.key, "set",
                                       old, op.value))
