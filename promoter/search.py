"""Candidate search outside the interpreter: which files of a directory match the
planner's needle pattern, found by GNU grep (``grep -rlZP``, the same regular expression
as PCRE) instead of reading every file in Python.

The answer is a superset of what the planner's byte pre-filter (``plan.may_mention``)
passes: that filter only ever passes a file where the pattern matches, and grep lists
every file where it does (line by line; the pattern never spans a line break, and its
look-arounds see a line's ends as Python sees the line breaks). So a file grep does not
list needs no reading at all. When grep is missing, has no ``-P``, fails on any file
(exit 2: unreadable, vanished), or times out, the answer is None and the caller reads
every file itself, as before.

Side effects (a subprocess) live here; ``plan`` stays pure and only asks the file map.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from promoter.paths import MANIFEST_NAMES, MANIFEST_SUFFIXES

TIMEOUT = 60.0  # seconds; a slower search is abandoned for the Python reader


class GrepSearch:
    """``grep_holding`` started now, answered later: the search runs while the caller
    walks the tree (grep and the walk each take about a tenth of a second at 10,000
    files)."""

    def __init__(self, root: Path, pattern: bytes, skip_dirs: Iterable[str] = ()) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        args = _grep_args(pattern, skip_dirs)
        if args is not None:
            try:
                self._proc = subprocess.Popen(args, cwd=root, stdout=subprocess.PIPE,
                                              stderr=subprocess.DEVNULL, env=_env())
            except OSError:
                self._proc = None

    def result(self) -> frozenset[str] | None:
        if self._proc is None:
            return None
        try:
            out, _ = self._proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.communicate()
            return None
        finally:
            proc, self._proc = self._proc, None
        if proc.returncode not in (0, 1):  # 2: a file could not be read: ask Python
            return None
        return _paths(out)


def _env() -> dict[str, str]:
    env = {**os.environ, "LC_ALL": "C"}  # bytes, not characters: no locale decoding
    env.pop("GREP_OPTIONS", None)
    env.pop("GREP_COLOR", None)
    return env


def _grep_args(pattern: bytes, skip_dirs: Iterable[str]) -> list[str | bytes] | None:
    grep = shutil.which("grep")
    if grep is None or not pattern or b"\n" in pattern or b"\0" in pattern:
        return None
    args: list[str | bytes] = [grep, "-rlZP", "--no-messages"]
    args += [f"--include=*{suffix}" for suffix in MANIFEST_SUFFIXES]
    args += [f"--include={name}" for name in sorted(MANIFEST_NAMES)]
    args += [f"--exclude-dir={name}" for name in sorted(skip_dirs)]
    return [*args, b"-e", pattern, "--", "."]


def _paths(out: bytes) -> frozenset[str]:
    found: set[str] = set()
    for raw in out.split(b"\0"):
        if raw:
            found.add(os.fsdecode(raw[2:] if raw.startswith(b"./") else raw))  # as scandir
    return frozenset(found)


def grep_holding(root: Path, pattern: bytes,
                 skip_dirs: Iterable[str] = ()) -> frozenset[str] | None:
    """Repo-relative paths of the manifests under ``root`` where ``pattern`` (a Python
    ``re`` byte pattern in the subset PCRE reads alike: escapes, classes, look-arounds,
    alternation) matches, or None when the search could not be made completely."""
    return GrepSearch(root, pattern, skip_dirs).result()
