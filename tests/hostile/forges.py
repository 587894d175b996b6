"""The fake forges as test_faults, test_races, test_trust and test_secrets use them: the
shared harness (``tests/harness.py``: the fake server, a forge client pointed at it, what
the server holds) holding a config repo of this module's files, and the promotions those
tests run.

Sleeps are recorded, never slept: the forge gets ``sleep=Sleeps()``, the orchestration
an ``Effects`` with a fake clock. Only the client timeout test waits for real (about a
second).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from promoter import promote
from promoter.forges.base import Forge
from promoter.images import parse
from tests import harness as shared
from tests.harness import SLUG, TOKENS, Change, Harness, Sleeps

__all__ = ["AZ_TOKEN", "BB_TOKEN", "GL_TOKEN", "GT_TOKEN", "MERGING", "REVIEWED", "SLUG",
           "TOKEN", "Change", "Harness", "Outcome", "Sleeps", "deploy", "effects", "files",
           "harness", "one_commit_on", "outcome", "promote_once", "request"]

TOKEN = TOKENS["github"]
GL_TOKEN = TOKENS["gitlab"]
GT_TOKEN = TOKENS["gitea"]
BB_TOKEN = TOKENS["bitbucket"]
AZ_TOKEN = TOKENS["azure"]
TUESDAY = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)

# prod: labels, reviewers, waits for checks, merges by itself: every endpoint of a run
MERGING = b"""\
version: 1
environments:
  prod:
    paths: ["envs/prod/**"]
    auto_merge: true
    wait_for_checks: true
    labels: [prod]
    reviewers: [sre-lead]
"""
# the same, left for review: a second run updates the branch and the request
REVIEWED = MERGING.replace(b"auto_merge: true", b"auto_merge: false")


def deploy(tag: str) -> bytes:
    return (b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n"
            b"  template:\n    spec:\n      containers:\n      - name: api\n"
            b"        image: ghcr.io/acme/api:" + tag.encode() + b"  # promoted by CI\n")


def files(config: bytes) -> dict[str, bytes]:
    return {".promoter.yaml": config, "envs/prod/deploy.yaml": deploy("1.0.0"),
            "envs/dev/deploy.yaml": deploy("1.0.0"), "README.md": b"# config\n"}


def effects() -> promote.Effects:
    ticks = iter(range(1_000_000))
    return promote.Effects(now=lambda: TUESDAY, sleep=lambda _: None,
                           monotonic=lambda: float(next(ticks)))


def request(tag: str, env: str = "prod", **kw: Any) -> promote.Request:
    return promote.Request(images=(parse(f"ghcr.io/acme/api:{tag}"),), env=env, **kw)


def promote_once(forge: Forge, tag: str, env: str = "prod", **kw: Any) -> dict[str, Any]:
    return promote.run(forge, request(tag, env, **kw), {}, [], effects()).to_json()


@contextlib.contextmanager
def harness(kind: str, root: Path, config: bytes = MERGING,
            extra: Mapping[str, bytes] | None = None) -> Iterator[Harness]:
    """A forge holding acme/config (``files(config)``, ``extra`` files added); the fakes
    listen on 127.0.0.1, so the caller removes any proxy from the environment first."""
    with shared.harness(kind, root, {**files(config), **(extra or {})}) as h:
        yield h


# --- what the server holds ----------------------------------------------------------------


@dataclass
class Outcome:
    """The server's state after a run, reduced to what the invariants talk about."""

    main: str
    main_file: bytes
    branches: dict[str, str]  # promotion branches -> tip
    changes: list[Change]
    log: list[dict[str, Any]] = field(default_factory=list)


def outcome(h: Harness, path: str = "envs/prod/deploy.yaml") -> Outcome:
    main = h.bare.resolve("main") or ""
    data = h.bare.read_file(main, path) or b""
    branches = {ref.removeprefix("refs/heads/"): sha
                for ref, sha in h.bare.list_refs("refs/heads/").items()
                if ref != "refs/heads/main"}
    return Outcome(main, data, branches, h.changes(), h.bare.log("main", 50))


def one_commit_on(h: Harness, branch_tip: str, base: str) -> bool:
    """The branch holds exactly one commit over ``base``."""
    info = h.bare.commit(branch_tip)
    return info is not None and list(info["parents"]) == [base]
