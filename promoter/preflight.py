"""Checks on what the caller named, made before anything is read from or written to a
forge, so a first-hour mistake gets a message about the mistake itself:

- ``--repo ./confg`` (a typo): the directory does not exist, rather than "cannot tell
  which forge holds it";
- ``--repo ./config`` naming a working-tree checkout without ``--in-place``: promoting
  through plain git would push a ``promote/…`` branch into the user's checkout and then
  fail on git's "refusing to update checked out branch"; refuse first, so nothing is
  left behind, and say to use ``--in-place`` or give the remote.

Shell code: runs ``git`` read-only in the named directory (``rev-parse``,
``symbolic-ref``, ``config --get``), never writes.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from promoter.errors import UsageError
from promoter.forges.gitclone import is_url

GIT_TIMEOUT = 30.0


def looks_like_path(repo: str) -> bool:
    """A ``--repo`` that can only be a local path: ``./x``, ``../x``, ``/x``, ``~/x``,
    or a single name (``OWNER/NAME`` always has a slash)."""
    return repo.startswith((".", "/", "~")) or "/" not in repo.strip("/")


def missing_directory(repo: str) -> UsageError:
    return UsageError(f"--repo {repo}: the directory does not exist",
                      hint="check the path (a local checkout or bare repo), or give a git "
                           "URL, or OWNER/NAME with --forge github / --forge gitlab")


@dataclass(frozen=True)
class Checkout:
    """A local non-bare repository: its checked-out branch (None when detached), and
    whether a push to that branch would update the working tree (updateInstead)."""

    branch: str | None
    update_instead: bool
    origin: str | None


def _git(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["LC_ALL"] = "C"
    return subprocess.run(["git", "-C", str(directory), *args], capture_output=True,
                          text=True, check=False, env=env, timeout=GIT_TIMEOUT)


def checkout(directory: Path) -> Checkout | None:
    """The checkout at ``directory`` (its top level), or None when it is a bare
    repository or not a repository at all."""
    if not (directory / ".git").exists():
        return None
    bare = _git(directory, "rev-parse", "--is-bare-repository")
    if bare.returncode != 0 or bare.stdout.strip() != "false":
        return None
    head = _git(directory, "symbolic-ref", "-q", "--short", "HEAD")
    deny = _git(directory, "config", "--get", "receive.denyCurrentBranch")
    origin = _git(directory, "config", "--get", "remote.origin.url")
    branch = head.stdout.strip() if head.returncode == 0 else ""
    url = origin.stdout.strip() if origin.returncode == 0 else ""
    return Checkout(branch=branch or None, update_instead=deny.stdout.strip() == "updateInstead",
                    origin=url or None)


def check_git_remote(repo: str, base: str | None, *, writes: bool) -> None:
    """Before a plain-git run: a local ``--repo`` must exist, and a run that writes must
    not target the branch checked out in a working tree (git refuses that push)."""
    if is_url(repo) and not Path(repo).exists():
        return
    path = Path(repo)
    if not path.exists():
        raise missing_directory(repo)
    if not writes:
        return
    found = checkout(path)
    if found is None or found.update_instead or found.branch is None:
        return
    if base is not None and base != found.branch:
        return  # the base is not checked out: git accepts pushes to it
    remote = f" (here: --repo {found.origin})" if found.origin else ""
    raise UsageError(
        f"--repo {repo} is a working-tree checkout with {found.branch!r} checked out; "
        "promoting through git would push into it, and git refuses to update a checked-out "
        "branch. Nothing was written",
        hint=f"use --in-place, or give the remote{remote}")
