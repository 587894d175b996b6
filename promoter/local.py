"""The working-tree mode: ``--in-place`` and ``--dry-run`` on a local directory.

Files are read lazily (a 100,000-file checkout is never held in memory at once), only
regular files (never through a symlink, as with the forges), and written only after
the whole plan succeeded: each file atomically (temp file + rename), its mode kept.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

from promoter import config as config_mod
from promoter import policy as policy_mod
from promoter.edit import Targets, markers
from promoter.errors import UsageError
from promoter.forges.base import LoggedCommit
from promoter.history import rolled_back_versions
from promoter.outcome import LocalOutcome, Preview
from promoter.paths import CONFIG_FILE, is_glob, is_manifest, safe_relative
from promoter.plan import Plan, needle_pattern
from promoter.search import GrepSearch, grep_holding
from promoter.selection import (
    Request,
    prepare,
    selector,
    targets_for,
    upstream_versions,
    versions_in,
)

if TYPE_CHECKING:
    from promoter.forges.base import Forge

SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", ".venv"})


class WorkTree(Mapping[str, bytes]):
    """Repo-relative path -> bytes, for the manifests of a directory (read on access)."""

    def __init__(self, root: Path, native_search: bool = True,
                 prefetch: Sequence[bytes] = ()) -> None:
        """``prefetch``: needles to start grep on before walking (a later ``holding`` of
        any of them is answered from that search)."""
        self.root = root.resolve()
        self._base = str(self.root)
        self._native = native_search
        self._holding: dict[tuple[bytes, ...], frozenset[str] | None] = {}
        early = tuple(sorted(set(prefetch)))
        search = GrepSearch(self.root, needle_pattern(early).pattern, SKIP_DIRS) \
            if native_search and early else None
        self._paths = sorted(self._walk())
        if search is not None:
            self._holding[early] = search.result()

    def holding(self, needles: Sequence[bytes]) -> frozenset[str] | None:
        """The manifests holding any of ``needles``, found by grep (once per needle set,
        or answered by a search for more needles: a superset is still complete); None
        without grep (then the planner reads every file itself)."""
        key = tuple(sorted(set(needles)))
        if not self._native or not key:
            return None
        for searched, found in self._holding.items():
            if found is not None and set(key) <= set(searched):
                return found
        if key not in self._holding:
            self._holding[key] = grep_holding(self.root, needle_pattern(key).pattern, SKIP_DIRS)
        return self._holding[key]

    def _walk(self) -> Iterator[str]:
        """Regular manifest files, never through a symlink. The directory entries' own
        types (``d_type``) decide, so walking costs no ``stat`` per file."""
        pending = [""]
        while pending:
            rel_dir = pending.pop()
            try:
                entries = os.scandir(os.path.join(self._base, rel_dir))
            except OSError:  # unreadable or vanished directory: skipped, as os.walk does
                continue
            with entries:
                for entry in entries:
                    rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name not in SKIP_DIRS:
                            pending.append(rel)
                    elif entry.is_file(follow_symlinks=False) and (
                            is_manifest(rel) or rel == CONFIG_FILE):
                        yield rel

    def regular(self, rel: str) -> bool:
        """A regular file, not a symlink: git stores a symlink as its target's path, so
        the forges never read through one either; a FIFO or device would block or
        never end."""
        return (self.root / rel).is_file() and not (self.root / rel).is_symlink()

    def inside(self, rel: str) -> bool:
        """False for a symlink (or path) that resolves outside the root."""
        real = (self.root / rel).resolve()
        return real == self.root or self.root in real.parents

    def __getitem__(self, key: str) -> bytes:
        if key not in self._paths_set:
            raise KeyError(key)
        with open(os.path.join(self._base, key), "rb") as handle:
            return handle.read()

    @property
    def _paths_set(self) -> frozenset[str]:
        cached: frozenset[str] | None = getattr(self, "_cache", None)
        if cached is None:
            cached = frozenset(self._paths)
            self._cache = cached
        return cached

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)


def check_selection(tree: WorkTree, request: Request) -> None:
    """Literal --file paths and --path must exist and stay inside the repo."""
    for pattern in request.files:
        rel = safe_relative(pattern, "--file")
        if is_glob(rel):
            continue
        full = tree.root / rel
        if not full.exists() and not full.is_symlink():
            raise UsageError("no such file", file=rel, hint="--file is relative to --repo")
        if not tree.inside(rel):
            raise UsageError("the path leads outside the config repo (through a symlink)",
                             file=rel, hint="point --file at files inside the repo")
        if full.is_symlink() or not (full.is_file() or full.is_dir()):
            raise UsageError("not a regular file or directory (a symlink or device)",
                             file=rel, hint="point --file at the file itself")
    if request.path:
        rel = safe_relative(request.path, "--path")
        if rel and not tree.inside(rel):
            raise UsageError("--path leads outside the config repo", file=rel)
        if rel and not (tree.root / rel).is_dir():
            raise UsageError("no such directory", file=rel, hint="--path is relative to --repo")
    for op in request.sets:
        safe_relative(op.file, "--set")


def run_local(root: Path, request: Request, *, write: bool,
              now: datetime | None = None) -> LocalOutcome:
    if not root.is_dir():
        raise UsageError(f"--repo {root} is not a directory")
    # grep for the images' names (and markers) runs while the tree is walked
    tree = WorkTree(root, prefetch=(*Targets(request.images).needles(), markers.NEEDLE))
    check_selection(tree, request)
    config_path = tree.root / CONFIG_FILE
    if (config_path.exists() or config_path.is_symlink()) and not tree.regular(CONFIG_FILE):
        raise UsageError("the policy file is not a regular file (a symlink?); promoter will "
                         "not run without the policy it names", file=CONFIG_FILE,
                         hint="make .promoter.yaml a plain file")
    config_bytes = tree.get(CONFIG_FILE)
    config = config_mod.load(config_bytes)
    env = config.env(request.env) if request.env else None
    if request.from_env:
        request = replace(request, images=versions_in(tree, config, request))
    plan = prepare(tree, request, config, env)
    if write:
        for rel, data in plan.files.items():
            _write_atomic(tree.root / rel, data)
    status = "up-to-date" if plan.noop else ("in-place" if write else "dry-run")
    n = len(plan.files)
    message = {
        "up-to-date": "already up to date: nothing to change",
        "in-place": f"edited {n} file(s) in {root}",
        "dry-run": f"dry run: would edit {n} file(s)",
    }[status]
    done = LocalOutcome(status, str(root), request, plan, message)
    if now is not None and not plan.noop:
        return replace(done, preview=preview_policy(tree, request, config, plan, now, tree.root))
    return done


def preview_policy(files: Mapping[str, bytes], request: Request, config: config_mod.Config,
                   plan: Plan, now: datetime, root: Path) -> Preview:
    """The verdict a promotion of this change would get, read-only, from the checkout's
    own .promoter.yaml, so a pre-merge job can preview it. The rollback guard reads the
    checkout's own history (none: it fails, closed); ``checks_green`` is left to the run
    through the forge."""
    try:
        policy = config_mod.tighten(
            config_mod.select(config, env=request.env, files=plan.files),
            auto_merge=True if request.auto_merge else None, draft=request.draft or None)
    except UsageError as exc:  # the change spans environments: no single policy
        return Preview(None, exc.message)
    upstream = upstream_versions(files, request, config, policy)
    verdict = policy_mod.evaluate(plan, policy, images=list(request.images), now=now,
                                  upstream=upstream, want_merge=policy.auto_merge)
    if verdict.allows_merge and policy.name in config.environments:
        # the rollback guard reads the history: here, the checkout's own commits
        history = CheckoutLog(root)
        if not history.readable():
            return Preview(verdict.with_check(policy_mod.Check(
                "rollback_guard", "fail", "no git history in this directory to read "
                "rollbacks from; a human merges")))
        rolled = rolled_back_versions(cast("Forge", history), "HEAD", policy.name,
                                      request.images)
        verdict = policy_mod.evaluate(plan, policy, images=list(request.images), now=now,
                                      upstream=upstream, want_merge=policy.auto_merge,
                                      rolled_back=rolled)
    return Preview(verdict)


class CheckoutLog:
    """The commits of a local checkout, newest first, read with ``git log``: what
    ``promote.history`` needs (only ``log``) to find rollbacks in a working tree."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _git(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        return subprocess.run(["git", "-C", str(self.root), *args], capture_output=True,
                              check=False, env=env, timeout=60)

    def readable(self) -> bool:
        return self._git("rev-parse", "--verify", "-q", "HEAD").returncode == 0

    def log(self, branch: str, limit: int) -> list[LoggedCommit]:
        out = self._git("log", "--first-parent", f"--max-count={limit}",
                        "--format=%H%x1f%an%x1f%aI%x1f%B%x1e", branch, "--")
        commits = []
        for record in out.stdout.decode("utf-8", "replace").split("\x1e"):
            fields = record.strip("\n").split("\x1f")
            if len(fields) == 4:
                sha, author, date, message = fields
                commits.append(LoggedCommit(sha=sha, message=message, author=author,
                                            date=date))
        return commits


def _write_atomic(path: Path, data: bytes) -> None:
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".promote")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["WorkTree", "run_local", "selector", "targets_for"]
