"""Repo-relative paths and globs: what a caller may select, and nothing outside the repo.

``**`` matches any number of directories, ``*`` and ``?`` stay inside one. Globs come
from the config repo too (``paths`` in .promoter.yaml), so they are matched without
backtracking: a pattern like ``envs/*a*a*a*a*a*a*a*a*b`` costs len(pattern) * len(path).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from promoter.errors import UsageError
from promoter.text import is_clean

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
MANIFEST_NAMES = frozenset({"Kustomization"})  # kustomize's extension-less file name
CONFIG_FILE = ".promoter.yaml"


def safe_relative(path: str, what: str) -> str:
    """Normalise a repo-relative path or glob; UsageError when it leaves the repo."""
    if not path or "\x00" in path or any(c in path for c in "\n\r"):
        raise UsageError(f"{what} {path!r} is not a usable path")
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", path):
        raise UsageError(f"{what} {path!r} is absolute; give a path inside the config repo",
                         hint="paths are relative to the repo root")
    norm = posixpath.normpath(path.replace("\\", "/"))
    if norm == ".." or norm.startswith("../") or "/../" in f"/{norm}/":
        raise UsageError(f"{what} {path!r} leaves the config repo",
                         hint="paths are relative to the repo root and may not use ..")
    return "" if norm == "." else norm


# Glob tokens: a literal character, ``?`` (one character but '/'), ``*`` (any run without
# '/'), ``**`` (any run) and ``**/`` (nothing, or any run that ends with '/').
_ONE, _STAR, _ANY, _DIRS = "?", "*", "**", "**/"


@lru_cache(maxsize=256)
def _tokens(pattern: str) -> tuple[str, ...]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        for token in (_DIRS, _ANY, _STAR, _ONE):
            if pattern.startswith(token, i):
                out.append(token)
                i += len(token)
                break
        else:
            out.append(pattern[i])
            i += 1
    return tuple(out)


def _glob_fullmatch(pattern: str, path: str) -> bool:
    """Whether the glob matches the whole path, in time linear in len(pattern) *
    len(path): a set of positions in the pattern advances one character at a time (no
    backtracking, so ``*a*a*a*a*b`` against a long name cannot take exponential time).
    A position is an index into the tokens, or (index, True) inside a ``**/`` run."""
    tokens = _tokens(pattern)
    end = len(tokens)

    def closure(states: set[tuple[int, bool]]) -> set[tuple[int, bool]]:
        todo = list(states)
        while todo:  # stars and **/ may match nothing: skip over them
            i, inside = todo.pop()
            if not inside and i < end and tokens[i] in (_STAR, _ANY, _DIRS):
                nxt = (i + 1, False)
                if nxt not in states:
                    states.add(nxt)
                    todo.append(nxt)
        return states

    states = closure({(0, False)})
    for ch in path:
        moved: set[tuple[int, bool]] = set()
        for i, _inside in states:
            if i == end:
                continue
            token = tokens[i]
            if token == _DIRS:  # (.*/)? : stay inside the run; a '/' may end it
                moved.add((i, True))
                if ch == "/":
                    moved.add((i + 1, False))
            elif token == _ANY:
                moved.add((i, False))
            elif token == _STAR:
                if ch != "/":
                    moved.add((i, False))
            elif token == _ONE:
                if ch != "/":
                    moved.add((i + 1, False))
            elif token == ch:
                moved.add((i + 1, False))
        if not moved:
            return False
        states = closure(moved)
    return (end, False) in states


def glob_match(pattern: str, path: str) -> bool:
    """Whether repo-relative ``path`` matches ``pattern``; a plain directory matches
    everything beneath it."""
    if _glob_fullmatch(pattern, path):
        return True
    return not any(c in pattern for c in "*?") and path.startswith(pattern.rstrip("/") + "/")


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def is_manifest(path: str) -> bool:
    """A YAML/JSON file promoter may read; never one whose name holds a line break or
    control character (git allows them; commit messages and PR bodies would carry it)."""
    name = path[path.rfind("/") + 1:]
    return ((path.endswith(MANIFEST_SUFFIXES) or name in MANIFEST_NAMES)
            and name != CONFIG_FILE
            and is_clean(path))  # is_clean looks at each character only when it must


MAX_ALIASES = 256  # paths a file may be reached by through links (more: exit 2)


def link_target(path: str, target: str) -> str | None:
    """The repo-relative path the symbolic link at ``path`` (whose stored target is
    ``target``) resolves to; None when it points outside the repo. ``""`` is the root."""
    if not target or target.startswith("/") or "\x00" in target:
        return None
    norm = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if norm == ".." or norm.startswith("../"):
        return None
    return "" if norm == "." else norm


MAX_HOPS = 40  # links followed while resolving one path (the kernel's own limit)


def resolve(path: str, links: Mapping[str, str], *,
            crossed: set[str] | None = None) -> str | None:
    """The repo path that ``path`` reaches when every symbolic link on the way (``links``:
    path -> stored target) is followed as the system follows it: one component at a
    time, a link replaced by its target, and ``..`` leaving the directory reached so far,
    not the text before it (``q/../x`` is not ``x`` when ``q`` is a link). None when it
    leaves the repo or loops. ``crossed``, when given, receives each path walked through
    as a directory (the caller may not know all of them to be directories)."""
    todo = path.split("/")[::-1]
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not done:
                return None
            done.pop()
            continue
        here = "/".join([*done, part])
        target = links.get(here)
        if target is None:
            if crossed is not None and todo:
                crossed.add(here)
            done.append(part)
            continue
        hops += 1
        if hops > MAX_HOPS or not target or target.startswith("/") or "\x00" in target:
            return None
        todo.extend(target.split("/")[::-1])  # relative to the link's own directory
    return "/".join(done)


def link_aliases(paths: Iterable[str], links: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """For each of ``paths``, the other repo paths that reach it through symbolic links:
    a link to the file itself, or to a directory above it, followed through chains of
    links as the system follows them (``resolve``). A change to the file is a change at
    each of them too. More than ``MAX_ALIASES`` (link cycles grow without end) is
    UsageError: an alias left uncounted could be another environment's."""
    resolved = [(link, t) for link in sorted(links) if (t := resolve(link, links)) is not None]
    out: dict[str, tuple[str, ...]] = {}
    for path in paths:
        names = {path}
        frontier = [path]
        while frontier:
            name = frontier.pop()
            for link, target in resolved:
                if target and name != target and not name.startswith(target + "/"):
                    continue
                if name.startswith(link + "/"):
                    continue  # already through this link: a link to its own parent loops
                alias = link + name[len(target):] if target else f"{link}/{name}"
                if alias in names:
                    continue
                if len(names) >= MAX_ALIASES:  # the next may be another environment's
                    raise UsageError(
                        f"more than {MAX_ALIASES} paths reach {path} through symbolic "
                        "links; promoter cannot tell which environments the change reaches",
                        file=path,
                        hint="use fewer links to it (a link to a directory above it counts "
                             "for every file below), or promote it by hand")
                names.add(alias)
                frontier.append(alias)
        names.discard(path)
        if names:
            out[path] = tuple(sorted(names))
    return out
