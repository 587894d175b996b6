"""Text that crosses a trust line: the one Markdown escaper, inline code, and the one
test for characters no value may smuggle into a commit message, a PR body or a CI
output (control, format such as zero-width and bidi overrides, line and paragraph
separators). Pure: strings in, strings out.
"""

from __future__ import annotations

import unicodedata

UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_BREAKS = frozenset("\r\n\t\u2028\u2029")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
ASCII_PUNCTUATION = frozenset(ch for ch in map(chr, range(128))
                              if not ch.isalnum() and not ch.isspace() and ch.isprintable())


def is_clean(value: str) -> bool:
    """No control (Cc), format (Cf: zero-width, bidi overrides), line or paragraph
    separator (Zl, Zp) characters anywhere in ``value``."""
    return value.isprintable() or not any(
        unicodedata.category(ch) in UNSAFE_CATEGORIES for ch in value)


def md(text: str, escaped: frozenset[str] = ASCII_PUNCTUATION) -> str:
    """``text`` as literal Markdown text, table cells included: one line (breaks become
    spaces, other control and format characters are dropped), ``& < >`` as HTML
    entities (so no tag survives) and the ``escaped`` punctuation backslash-escaped (by
    default every ASCII punctuation character, so no link, emphasis, table pipe or
    mention survives)."""
    out: list[str] = []
    for ch in text:
        if ch in _BREAKS:
            out.append(" ")
        elif unicodedata.category(ch) in UNSAFE_CATEGORIES:
            continue
        elif ch in _ENTITIES:
            out.append(_ENTITIES[ch])
        elif ch in escaped:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def code(text: str) -> str:
    """A value as inline code, safe whatever backticks it holds, and inside a table cell
    too: GFM splits cells at a bare ``|`` even within code, so it is escaped."""
    text = text.replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
