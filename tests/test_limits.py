"""promoter.limits on its own: the depth bound is sound, gunzip stops at its limit."""

from __future__ import annotations

import gzip
import itertools
import zlib

import pytest

from promoter.limits import ArchiveTooLarge, TooDeep, _walk, gunzip, yaml_depth

LIMIT = 4


def shapes() -> list[str]:
    """Small documents nesting block mappings, compact sequences, flow collections,
    explicit keys and quoted brackets in every order."""
    pieces = ("a:\n", "  b:\n", "- ", "[", "{k: ", "'[[['", "? ", "\"{{\"", "x")
    out = []
    for n in range(1, 5):
        for combo in itertools.product(pieces, repeat=n):
            text = "".join(combo)
            text += "]" * text.count("[") + "}" * text.count("{k: ")
            out.append(text + "\n")
    for depth in range(1, 2 * LIMIT):  # the tightest layouts: one column per level
        out.append("".join(" " * i + f"k{i}:\n" for i in range(depth)) + " " * depth + "v\n")
        out.append("".join(" " * i + f"k{i}:\n" for i in range(depth - 1))
                   + " " * (depth - 1) + "last: v\n")  # depth == widest prefix + 1
        out.append("- " * depth + "x\n")
        out.append("? " * depth + "x\n")
        out.append("- " * depth + "[" * depth + "]" * depth + "\n")
    return out


def test_the_byte_bound_never_misses_what_the_parser_sees() -> None:
    """Whenever the parser's events pass the limit, so does yaml_depth (the fast path
    from the bytes may only answer None when the exact walk would too)."""
    missed = [t for t in shapes()
              if _walk(t, LIMIT) is not None and yaml_depth(t, LIMIT) is None]
    assert missed == []


def test_depth_reports_where_the_limit_is_passed() -> None:
    text = "a: 1\nb:\n  c: [[[[[x]]]]]\n"
    assert yaml_depth(text, 4) == TooDeep(4, 3, 8)
    assert yaml_depth(text, 7) is None


def test_broken_yaml_is_left_to_the_composer() -> None:
    assert yaml_depth("a: [1, 2\nb: ]]]\n" + "[" * 500, 1000) is None
    assert yaml_depth("x: " + "[" * 500, 400) == TooDeep(400, 1, 403)


def test_gunzip_reads_every_member_and_stops_at_the_limit() -> None:
    member = gzip.compress(b"x" * 1000)
    assert gunzip(member * 3, limit=3000) == b"x" * 3000
    with pytest.raises(ArchiveTooLarge, match="unpacks to more than 2,999 bytes"):
        gunzip(member * 3, limit=2999)
    with pytest.raises(zlib.error):
        gunzip(member[:-9], limit=3000)
