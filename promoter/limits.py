"""Bounds on hostile input, checked before the expensive step. Pure: values in, values out.

Every limit here is an exit code with a message, never a signal or a hang:

    MAX_DEPTH            400 levels   a manifest nested deeper is refused (exit 2, file:line)
    MAX_CONFIG_DEPTH      64 levels   the same for .promoter.yaml (exit 2, file:line)
    MAX_ARCHIVE_BYTES    64 MiB       a forge archive (compressed) larger is refused (exit 5)
    MAX_UNPACKED_BYTES  256 MiB       ... and one that unpacks to more (exit 5)
    REGEX_TIMEOUT       0.25 s        one allowed_tags match; longer is refused (exit 2)

Depth is measured before the composer runs: ruamel.yaml's C composer recurses once per
level and a few tens of thousands of ``[`` crash the process (SIGSEGV); the pure-Python
one raises RecursionError. ``yaml_depth`` first bounds the depth from the bytes alone
(every flow bracket counted, plus the widest run of indentation and ``- ``/``? ``/``: ``
indicators starting a line, which each block level needs at least one column of); only
when that bound passes the limit are the parser's events counted, exactly. libyaml's
parser is a state machine with its own stack, so walking its events cannot overflow.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

import regex

from promoter.errors import ConfigError

MAX_DEPTH = 400
MAX_CONFIG_DEPTH = 64
MAX_ARCHIVE_BYTES = 64 * 1024 * 1024
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
REGEX_TIMEOUT = 0.25


@dataclass(frozen=True)
class TooDeep:
    """Where a YAML text first passes the depth limit (1-based line and column)."""

    limit: int
    line: int
    column: int


def yaml_depth(text: str, limit: int, *, pure: bool = False) -> TooDeep | None:
    """None when ``text`` nests at most ``limit`` collections deep (as far as it parses),
    else where the first collection beyond the limit starts. ``pure``: walk with the
    parser the composer will use (the pure-Python one for .promoter.yaml), so both stop
    at the same syntax error."""
    brackets = text.count("[") + text.count("{")
    room = limit - brackets - 2
    if room > 0 and not re.search(rf"(?m)^[ \t?:-]{{{room}}}", text):
        return None  # the bound from the bytes alone is within the limit
    return _walk(text, limit, pure)


def _walk(text: str, limit: int, pure: bool = False) -> TooDeep | None:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

    try:
        loader = YAML(typ="safe", pure=pure)  # the C parser (ruamel.yaml.clib) by default
    except ImportError:  # pragma: no cover - clib missing: the pure parser, same events
        loader = YAML(typ="safe", pure=True)
    depth = 0
    try:
        for event in loader.parse(text):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > limit:
                    mark = event.start_mark
                    return TooDeep(limit, mark.line + 1, mark.column + 1)
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except YAMLError:
        # Broken YAML: the composer stops at the same event, no deeper than seen here,
        # and reports the problem with its own message.
        return None
    return None


@dataclass(frozen=True)
class TagPattern:
    """One ``allowed_tags`` pattern from the config repo, matched with a time limit.

    Compiled with the ``regex`` package (Python ``re`` syntax), whose matcher gives up
    after ``timeout`` seconds: a pattern such as ``^v?(\\d+\\.?)+$`` would otherwise take
    exponential time on a long tag. A match that runs out of time raises ConfigError
    (exit 2) naming the pattern's file and line, so a hostile policy is a message, not a
    hung job."""

    pattern: str
    file: str = ".promoter.yaml"
    line: int | None = None
    column: int | None = None
    timeout: float = REGEX_TIMEOUT
    compiled: regex.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", regex.compile(self.pattern))

    def fullmatch(self, text: str) -> bool:
        try:
            return self.compiled.fullmatch(text, timeout=self.timeout) is not None
        except TimeoutError:
            raise ConfigError(
                f"allowed_tags pattern {self.pattern!r} took more than {self.timeout:g}s on "
                f"a tag of {len(text)} characters (catastrophic backtracking)",
                file=self.file, line=self.line, column=self.column,
                hint="rewrite it without nested repetition, e.g. '^v?\\d+(\\.\\d+)*$'",
            ) from None


class ArchiveTooLarge(Exception):
    """An archive (or what it unpacks to) is larger than its limit. ``what``: "the
    archive has" or "the archive unpacks to"."""

    def __init__(self, what: str, limit: int) -> None:
        self.what = what
        self.limit = limit
        super().__init__(self.describe())

    def describe(self) -> str:
        return (f"{self.what} more than {self.limit:,} bytes, the most promoter reads "
                "from a forge")


def gunzip(data: bytes, limit: int = MAX_UNPACKED_BYTES) -> bytes:
    """``data`` (gzip, one or more members) decompressed, never more than ``limit``
    bytes: ArchiveTooLarge past it, zlib.error when it is not gzip."""
    out = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        chunk = inflater.decompress(rest, limit + 1 - len(out))
        out += chunk
        while inflater.unconsumed_tail and len(out) <= limit:
            out += inflater.decompress(inflater.unconsumed_tail, limit + 1 - len(out))
        if len(out) > limit:
            raise ArchiveTooLarge("the archive unpacks to", limit)
        if not inflater.eof:
            raise zlib.error("truncated gzip stream")
        rest = inflater.unused_data.lstrip(b"\x00")  # members may be zero-padded
    return bytes(out)
