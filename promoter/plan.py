"""Request + files -> Plan: the edits, the places already up to date, the diff.

Pure: takes bytes and values, returns values. The forges and the CLI feed it.
"""

from __future__ import annotations

import difflib
import posixpath
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from promoter.edit.engine import Targets, edit_file
from promoter.edit.kustomize import images_set_over
from promoter.edit.results import Found, Skip
from promoter.errors import EditError, ParseError, UsageError
from promoter.images import ImageRef, try_parse
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


@runtime_checkable
class Searchable(Protocol):
    """A file map that can tell, without Python reading each file, which paths hold any
    of some byte strings (a working tree asks grep): a superset of the files the byte
    pre-filter passes, or None when it cannot tell."""

    def holding(self, needles: Sequence[bytes]) -> Collection[str] | None: ...


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
    # files that hold no needle's bytes cannot pass may_mention: not even read
    holding = files.holding(tuple(targets.needles())) if isinstance(files, Searchable) \
        else None
    set_files = {op.file for op in targets.sets}
    for name in sorted(set_files):
        if name not in files:
            raise UsageError("--set names a file that does not exist", file=name,
                             hint="paths are relative to the config repo root")
    found: list[Found] = []
    skips: list[Skip] = []
    new_files: dict[str, bytes] = {}
    originals: dict[str, bytes] = {}
    charts = chart_dirs(files)
    overlays: dict[str, dict[str, str]] | None = None  # read on first need
    for path in sorted(files):
        if not is_manifest(path) or not select(path):
            continue
        if holding is not None and path not in holding and path not in set_files:
            continue
        data = files[path]
        if path not in set_files and not may_mention(pattern, data):
            continue
        if path not in set_files and in_chart_templates(path, charts):
            skips.append(_template_skip(path, data, targets))
            continue
        if overlays is None and _untagged(data, targets):
            overlays = images_set_over(files, {ref.name for ref in targets.images})
        try:
            result = edit_file(path, data, targets, (overlays or {}).get(path, {}))
        except EditError as exc:
            if exc.hint is None and exc.line is None:
                raise
            if isinstance(exc, ParseError) and not _mentions(data, targets):
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


# --- files that are not YAML: Helm chart templates, broken files ------------------------

CHART_FILE = "Chart.yaml"


def chart_dirs(files: Iterable[str]) -> frozenset[str]:
    """Folders holding a Helm chart: a ``Chart.yaml`` (its ``templates/`` are Go
    templates, not YAML; its values files stay in scope)."""
    return frozenset(posixpath.dirname(p) for p in files
                     if posixpath.basename(p) == CHART_FILE)


def in_chart_templates(path: str, charts: frozenset[str]) -> bool:
    parts = path.split("/")
    for i, part in enumerate(parts[:-1]):
        if part == "templates" and "/".join(parts[:i]) in charts:
            return True
    return False


_TOKEN_CHARS = re.compile(rb"[\w.:/@-]*")


def _references(data: bytes, targets: Targets) -> Iterator[tuple[int, ImageRef]]:
    """Byte offsets and parsed values of the tokens of ``data`` that name a targeted
    image (``ghcr.io/acme/api:1.4.0``, ``redis``), never one glued to a template action
    (``ghcr.io/acme/api:{{ .Values.tag }}``). Only the places where a targeted name
    occurs are looked at."""
    names = {ref.name for ref in targets.images}
    if not names:
        return
    needle = needle_pattern(tuple({ref.short.encode() for ref in targets.images}))
    last = -1
    for m in needle.finditer(data):
        start = m.start()
        while start > 0 and _TOKEN_CHARS.fullmatch(data, start - 1, start):
            start -= 1
        if start <= last:
            continue  # the same token, met again
        token_end = _TOKEN_CHARS.match(data, start)
        end = token_end.end() if token_end else m.end()
        last = end
        if data[start - 1 : start] in (b"{", b"}", b"$") or data[end : end + 1] in (b"{", b"}"):
            continue
        ref = try_parse(data[start:end].decode("ascii", "replace"))
        if ref is not None and ref.name in names:
            yield start, ref


def full_reference(data: bytes, targets: Targets) -> tuple[int, str] | None:
    """The first line (1-based) and text of a whole reference to a targeted image in
    ``data``, read as bytes: ``ghcr.io/acme/api:1.4.0``, ``redis:7.2``,
    ``ghcr.io/acme/api``; never a bare word (``redis``)."""
    for start, ref in _references(data, targets):
        if ref.tag or ref.digest or "/" in ref.written:
            return data.count(b"\n", 0, start) + 1, str(ref)
    return None


def _template_skip(path: str, data: bytes, targets: Targets) -> Skip:
    """A chart template is never read as a manifest: a Skip, or a refusal when its
    bytes hold a reference promoter would have changed in a manifest."""
    held = full_reference(data, targets)
    if held is not None:
        line, text = held
        raise EditError(f"a Helm chart template holds the image {text} itself; promoter "
                        "edits values files, not Go templates", file=path, line=line,
                        hint="move the reference into the chart's values.yaml, or leave the "
                             "file out with --file/--path")
    line = next((data.count(b"\n", 0, m.start()) + 1
                 for m in needle_pattern(targets.needles()).finditer(data)), 0)
    names = ", ".join(sorted(ref.familiar for ref in targets.images)) or "the marker targets"
    return Skip(path, line, "", f"Helm chart template (Go template, not YAML): not read for "
                                f"{names}; the chart's values files are")


def _untagged(data: bytes, targets: Targets) -> bool:
    """Whether ``data`` may hold an untagged reference to a targeted image (then the
    kustomizations that might include it are worth reading)."""
    return any(ref.tag is None and ref.digest is None for _, ref in _references(data, targets))


def _mentions(data: bytes, targets: Targets) -> bool:
    return full_reference(data, targets) is not None or b"$imagepolicy" in data


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

