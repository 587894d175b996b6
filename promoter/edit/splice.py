"""Replacing a scalar's characters in the original text, and nothing else.

The composer's marks give the scalar's span, quotes (and any anchor or tag prefix)
included. We keep the scalar's quote style; a plain scalar gains double quotes only
when the bare new value would load as something other than a string (``1.10`` is a
float, ``yes`` a bool in YAML 1.1, ``2024-01-01`` a timestamp). Block scalars and
multi-line flow scalars are refused: they cannot be rewritten exactly in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ruamel.yaml.nodes import Node, ScalarNode
from ruamel.yaml.resolver import VersionedResolver

from promoter.edit.document import column_of, line_of
from promoter.errors import EditError

_RESOLVERS = (VersionedResolver(version=(1, 1)), VersionedResolver(version=(1, 2)))
_STR = "tag:yaml.org,2002:str"
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_LINE_LEAD = re.compile(r"[ ]*(?:-[ ]+)*")  # indentation, and the dashes of list items


@dataclass(frozen=True)
class Replacement:
    start: int
    end: int
    text: str


def loads_as_string(value: str) -> bool:
    return all(str(r.resolve(ScalarNode, value, (True, False))) == _STR for r in _RESOLVERS)


def plain_ok(value: str) -> bool:
    """Whether ``value`` may be written as a plain scalar and still load as that string."""
    if not value or value != value.strip() or value[0] in _INDICATORS:
        return False
    if ": " in value or " #" in value or any(not c.isprintable() for c in value):
        return False
    return loads_as_string(value)


def double_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def single_quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def refuse(message: str, node: Node, file: str, hint: str | None = None) -> EditError:
    return EditError(message, file=file, line=line_of(node), column=column_of(node), hint=hint)


def replacement(text: str, node: Node, new: str, file: str) -> Replacement:
    """The characters to write in place of ``node``'s value so that it loads as ``new``."""
    if not isinstance(node, ScalarNode):
        raise refuse("the value to change is not a string", node, file)
    start: int = node.start_mark.index
    end: int = node.end_mark.index
    raw = text[start:end]
    style = node.style
    if style in ("|", ">"):
        raise refuse("the image value is a block scalar (| or >); it cannot be edited exactly",
                     node, file, "write it as a one-line string")
    if "\n" in raw or "\r" in raw:
        raise refuse("the image value spans several lines; it cannot be edited exactly",
                     node, file, "write it on one line")
    if style in ('"', "'"):
        quote = raw.find(style)
        if quote < 0 or not raw.endswith(style):
            raise refuse("cannot locate the quoted value", node, file)
        body = double_quoted(new) if style == '"' else single_quoted(new)
        return Replacement(start + quote, end, body)
    body = new if plain_ok(new) else double_quoted(new)
    value: str = node.value
    if raw == "":  # an empty (null) value: `tag:` gains ` 1.2.3`
        before = text[start - 1] if start > 0 else ""
        return Replacement(start, end, body if before in (" ", "\t") else " " + body)
    if not raw.endswith(value) or not value:
        raise refuse("cannot locate the plain value", node, file)
    return Replacement(end - len(value), end, body)


def apply(text: str, replacements: list[Replacement]) -> str:
    """Splice non-overlapping replacements into ``text``."""
    out: list[str] = []
    pos = 0
    for rep in sorted(replacements, key=lambda r: r.start):
        if rep.start < pos:
            raise EditError("two edits overlap in one file (a bug: please report it)")
        out.append(text[pos : rep.start])
        out.append(rep.text)
        pos = rep.end
    out.append(text[pos:])
    return "".join(out)


def insertion(text: str, key: ScalarNode, value: ScalarNode, new_key: str, new_value: str,
              file: str) -> Replacement:
    """A new ``new_key: new_value`` line right after the line of ``key: value`` in a block
    mapping, at the same indent and with the file's line break; nothing else moves."""
    start = text.rfind("\n", 0, key.start_mark.index) + 1
    lead = text[start : key.start_mark.index]
    if not _LINE_LEAD.fullmatch(lead) or "\n" in text[key.start_mark.index : value.end_mark.index]:
        raise refuse(f"cannot insert {new_key!r} exactly beside this key", key, file,
                     f"add a {new_key} key by hand, then promote again")
    body = new_value if plain_ok(new_value) else double_quoted(new_value)
    line = f"{' ' * len(lead)}{new_key}: {body}"
    end = text.find("\n", value.end_mark.index)
    if end < 0:  # the last line, with no line break after it: none after the new one either
        return Replacement(len(text), len(text), ("\r\n" if "\r\n" in text else "\n") + line)
    newline = "\r\n" if text[end - 1 : end] == "\r" else "\n"
    return Replacement(end + 1, end + 1, line + newline)
