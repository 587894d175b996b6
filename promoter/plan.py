"""Request + files -> Plan: the edits, the places already up to date, the diff.

Pure: takes bytes and values, returns values. The forges and the CLI feed it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from promoter.edit.engine import Targets, edit_file
from promoter.edit.results import Found, Skip
from promoter.errors import EditError, UsageError
from promoter.paths import is_manifest, link_aliases

__all__ = ["Found", "Plan", "Skip", "Targets", "make_plan", "unified_diff"]


@dataclass(frozen=True)
class Plan:
    found: tuple[Found, ...]
    skips: tuple[Skip, ...] = ()
    files: dict[str, bytes] = field(default_factory=dict)  # new content of changed files
    originals: dict[str, bytes] = field(default_factory=dict)  # old content of those files
    diff: str = ""
    # changed file -> the other paths that reach it through symbolic links: a change to
    # the file is a change there too (paths_only and the owning environment see them)
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def touched(self) -> tuple[str, ...]:
        """Every path whose content the plan changes: the files and their link aliases."""
        out = dict.fromkeys(self.files)
        for path in self.files:
            out.update(dict.fromkeys(self.aliases.get(path, ())))
        return tuple(out)

    @property
    def changes(self) -> tuple[Found, ...]:
        return tuple(f for f in self.found if f.changes)

    @property
    def noop(self) -> bool:
        return not self.files


# --- planning -----------------------------------------------------------------------------


Selector = Callable[[str], bool]


def needle_pattern(needles: Iterable[bytes]) -> re.Pattern[bytes]:
    """A byte pattern that finds a repository's last path component as a whole name
    (``api`` but not ``apiVersion``, ``api2`` or ``my-api``), or a marker."""
    names = [re.escape(n) for n in needles if not n.startswith(b"$")]
    others = [re.escape(n) for n in needles if n.startswith(b"$")]
    alts = []
    if names:
        alts.append(rb"(?<![A-Za-z0-9_.-])(?:" + b"|".join(names) + rb")(?![A-Za-z0-9_.-])")
    alts.extend(others)
    return re.compile(b"|".join(alts) if alts else rb"(?!)")


_URL_TOKEN_END = re.compile(rb"[\s'\",\[\]{}]")
_COMMENT = re.compile(rb"(?:^|[ \t])#")


def may_mention(pattern: re.Pattern[bytes], data: bytes) -> bool:
    """Whether ``data`` has a match of ``pattern`` that could be part of an image value.

    Two kinds of match cannot, so they do not make a file worth parsing: one inside a
    URL token (``http://api:8080/x``: a reference never holds ``://``) and one in a
    comment (a ``#`` after white space, with no quote before it on the line). Flux
    markers live in comments and always count."""
    for m in pattern.finditer(data):
        if m.group().startswith(b"$"):
            return True
        start = m.start()
        line = data[data.rfind(b"\n", 0, start) + 1 : start]
        comment = _COMMENT.search(line)
        if comment is not None and b"'" not in line[: comment.start()] \
                and b'"' not in line[: comment.start()]:
            continue
        scheme = line.rfind(b"://")
        if scheme < 0 or _URL_TOKEN_END.search(line, scheme):
            return True
    return False


def make_plan(files: Mapping[str, bytes], targets: Targets, select: Selector,
              links: Mapping[str, str] | None = None) -> Plan:
    """Find and edit every targeted image in the selected manifests of ``files``.
    ``links``: the tree's symbolic links (path -> target), for ``Plan.aliases``.

    Files that cannot contain a match (by a byte search) are never parsed. A file that
    fails to parse is fatal only when it mentions a targeted image; otherwise it is a
    Skip with the parser's message."""
    pattern = needle_pattern(targets.needles())
    set_files = {op.file for op in targets.sets}
    for name in sorted(set_files):
        if name not in files:
            raise UsageError("--set names a file that does not exist", file=name,
                             hint="paths are relative to the config repo root")
    found: list[Found] = []
    skips: list[Skip] = []
    new_files: dict[str, bytes] = {}
    originals: dict[str, bytes] = {}
    for path in sorted(files):
        if not is_manifest(path) or not select(path):
            continue
        data = files[path]
        if path not in set_files and not may_mention(pattern, data):
            continue
        try:
            result = edit_file(path, data, targets)
        except EditError as exc:
            if exc.hint is None and exc.line is None:
                raise
            if "cannot parse YAML" in exc.message and not _mentions(data, targets):
                skips.append(Skip(path, exc.line or 0, "", exc.render()))
                continue
            raise
        found.extend(result.found)
        skips.extend(result.skips)
        if result.new is not None:
            new_files[path] = result.new
            originals[path] = data
    return Plan(tuple(found), tuple(skips), new_files, originals,
                unified_diff(originals, new_files), link_aliases(new_files, links or {}))


def _mentions(data: bytes, targets: Targets) -> bool:
    return any(ref.name.encode() in data or ref.familiar.encode() in data
               for ref in targets.images) or b"$imagepolicy" in data


def unified_diff(before: Mapping[str, bytes], after: Mapping[str, bytes]) -> str:
    """A git-style unified diff of the changed files (3 lines of context)."""
    out: list[str] = []
    for path in sorted(after):
        old = before.get(path, b"").decode("utf-8").splitlines(keepends=True)
        new = after[path].decode("utf-8").splitlines(keepends=True)
        lines = list(difflib.unified_diff(old, new, f"a/{path}", f"b/{path}"))
        for line in lines:
            if line.endswith("\n"):
                out.append(line)
            else:
                out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)

