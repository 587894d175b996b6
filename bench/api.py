"""API cost of one promotion: HTTP requests and bytes, counted by the fake GitHub and
GitLab servers (``tests/fakes``), for a 1-file and a 10-file change, in a 100-file and
a 10,000-file config repo, through ``promoter.promote.run``.

    python bench/run.py api [--quick]

Each (forge, repo size, change) gets a fresh fake repo holding the generated tree and
runs this sequence, each step a new forge client (as a CI job would):

    new       promote ghcr.io/acme/api:1.5.0  -> branch, commit, PR/MR, labels, auto-merge
    update    promote 1.5.1 (same target)     -> new commit on the branch, PR/MR updated
    re-run    promote 1.5.1 again             -> nothing to write (PR/MR still open)
    merged    the fake's CI turns green, auto-merge merges; promote 1.5.1 again
              -> already up to date

The config repo's CI is simulated the way ``tests/test_e2e.py`` does it: every commit
promoter pushes gets a pending check (set on the fake directly, not over HTTP), so
auto-merge is enabled and the PR/MR stays open until the step ``merged``.

Bytes are HTTP bodies (request bodies in, response bodies out), headers excluded.
Then the wall time of a new 10-file promotion with latency added to every answer.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import common, gen_repo

SLUG = "acme/config"
TOKEN = "bench-token-0123456789"  # noqa: S105 - the fakes' test token
CONFIG = b"""\
# The API benchmark's policy: auto-merge with labels; a CI check on every commit.
version: 1
defaults:
  auto_merge: true
  wait_for_checks: true
  merge_method: squash
  labels: [promotion]
environments:
  one:   # exactly one file holds the target here
    paths: ["apps/api/overlays/dev/**"]
  all:   # the whole repo: ten files hold the target
    paths: ["**"]
"""
CHANGES = {1: "one", 10: "all"}
STEPS = (("new", "1.5.0"), ("update", "1.5.1"), ("re-run", "1.5.1"), ("merged", "1.5.1"))
TARGETS = {"github": {"new": 6, "no-op": 3}, "gitlab": {"new": 4, "no-op": 2}}


@dataclass(frozen=True)
class Traffic:
    requests: int
    bytes_in: int  # request bodies
    bytes_out: int  # response bodies
    calls: tuple[str, ...]  # "GET /repos/{repo}/git/ref/..." in order

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out, "calls": list(self.calls)}


_SHA = re.compile(r"\b[0-9a-f]{40}\b")
_NUM = re.compile(r"/\d+(?=/|$)")


def shape(method: str, path: str) -> str:
    """A request as a readable template: shas and numbers replaced."""
    path = path.replace("acme%2Fconfig", "{project}").replace("/repos/acme/config", "/{repo}")
    path = _NUM.sub("/{n}", _SHA.sub("{sha}", path))
    return f"{method} {path}"


def load_tree(bare: Any, src: Path, extra: dict[str, bytes]) -> str:
    """Make ``main`` of ``bare`` (a tests.fakes.gitrepo.BareRepo) one commit holding the
    files of ``src`` plus ``extra``: one ``git add`` instead of a process per file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, LC_ALL="C",
               GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@example.com")
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        env["GIT_INDEX_FILE"] = str(Path(tmp) / "index")
        git = ["git", f"--git-dir={bare.path}", f"--work-tree={src}"]
        subprocess.run([*git, "add", "-A", "."], cwd=src, env=env, check=True)
        for path, data in extra.items():
            blob = subprocess.run([*git, "hash-object", "-w", "--stdin"], input=data,
                                  env=env, check=True, capture_output=True).stdout.decode()
            subprocess.run([*git, "update-index", "--add", "--cacheinfo",
                            f"100644,{blob.strip()},{path}"], env=env, check=True)
        tree = subprocess.run([*git, "write-tree"], env=env, check=True,
                              capture_output=True).stdout.decode().strip()
        sha = subprocess.run([*git, "commit-tree", tree, "-m", "config repo"], env=env,
                             check=True, capture_output=True).stdout.decode().strip()
        subprocess.run([*git, "update-ref", "refs/heads/main", sha], env=env, check=True)
    return sha


class Side:
    """One fake forge, seen from the benchmark: the tests' harness (``tests/harness.py``)
    holding acme/config with the generated tree, and what the fake recorded (every
    request, with its body sizes)."""

    def __init__(self, name: str, tmp: Path, src: Path, extra: dict[str, bytes] | None = None,
                 ci: bool = True) -> None:
        from tests.harness import start

        self.name = name
        self.h = start(name, tmp, {"README.md": b"config\n"}, token=TOKEN)
        self.fake = self.h.fake
        self.bare = self.h.bare
        if name == "github":
            self.h.repo.labels["promotion"] = 1  # the config repo has its label already
        else:
            self.h.repo.ci = ci  # pipelines run on every commit (set by on_commit)
        load_tree(self.bare, src, extra or {".promoter.yaml": CONFIG})
        self._latency: Any = None

    def forge(self) -> Any:
        return self.h.forge()

    def on_commit(self, sha: str) -> None:
        self.h.on_commit(sha)

    def turn_green(self) -> None:
        self.h.set_checks(self.h.head, "success")

    def set_latency(self, seconds: float) -> None:
        if self.name == "gitlab":
            self.fake.latency = seconds
            return
        if self._latency is not None:
            self._latency.times = 0
        self._latency = (self.fake.fail("*", ".", status=None, delay=seconds, times=10**9)
                         if seconds else None)

    def mark(self) -> int:
        return len(self.fake.requests)

    def traffic(self, since: int) -> Traffic:
        seen = self.fake.requests[since:]
        return Traffic(len(seen), sum(r.bytes_in for r in seen), sum(r.bytes_out for r in seen),
                       tuple(shape(r.method, r.path) for r in seen))

    def main_file(self, path: str) -> bytes | None:
        data: bytes | None = self.bare.read_file(self.bare.resolve("main") or "", path)
        return data

    def open_requests(self) -> int:
        return len(self.open_titles())

    def open_titles(self) -> list[str]:
        return [o.title for o in self.h.open_requests()]

    def stop(self) -> None:
        self.h.close()


def GitHubSide(tmp: Path, src: Path, extra: dict[str, bytes] | None = None) -> Side:
    return Side("github", tmp, src, extra)


def GitLabSide(tmp: Path, src: Path, extra: dict[str, bytes] | None = None,
               ci: bool = True) -> Side:
    return Side("gitlab", tmp, src, extra, ci)


SIDES: dict[str, Callable[[Path, Path], Any]] = {"github": GitHubSide, "gitlab": GitLabSide}


@contextmanager
def no_proxy() -> Iterator[None]:
    """Loopback traffic must not go through a proxy of the machine."""
    saved = {k: os.environ.pop(k) for k in list(os.environ)
             if k.lower() in ("http_proxy", "https_proxy", "all_proxy")}
    try:
        yield
    finally:
        os.environ.update(saved)


@dataclass(frozen=True)
class Step:
    name: str
    tag: str
    status: str
    wall: float
    traffic: Traffic
    created: bool | None

    def to_json(self) -> dict[str, Any]:
        return {"step": self.name, "tag": self.tag, "status": self.status,
                "wall": self.wall, "created": self.created, **self.traffic.to_json()}


def promote_once(side: Any, env: str, tag: str) -> tuple[dict[str, Any], Traffic, float]:
    from promoter import context, promote
    from promoter.images import parse
    from tests.harness import CIOnPush

    ctx = context.detect({})
    request = promote.Request(images=(parse(f"{gen_repo.TARGET}:{tag}"),), env=env)
    effects = promote.Effects(now=lambda: datetime.now(timezone.utc))
    mark = side.mark()
    start = time.perf_counter()
    forge = side.forge()
    try:
        result = promote.run(CIOnPush(forge, side.h), request,
                             context.provenance_dict(ctx), context.trailers(ctx),
                             effects).to_json()
    finally:
        close = getattr(forge, "close", None)
        if close is not None:
            close()
    wall = time.perf_counter() - start
    return result, side.traffic(mark), wall


def sequence(kind: str, src: Path, files: int, tmp: Path) -> list[Step]:
    side = SIDES[kind](tmp, src)
    try:
        steps = []
        for name, tag in STEPS:
            if name == "merged":
                side.turn_green()
                if side.open_requests():
                    raise RuntimeError(f"{kind}: auto-merge did not merge on a green check")
            result, traffic, wall = promote_once(side, CHANGES[files], tag)
            pr = result.get("pull_request") or {}
            steps.append(Step(name, tag, result["status"], wall, traffic, pr.get("created")))
        got = side.main_file(gen_repo.TARGET_ONE_FILE) or b""
        if b"1.5.1" not in got:
            raise RuntimeError(f"{kind}: the promotion did not reach main")
        return steps
    finally:
        side.stop()


def latency_run(kind: str, src: Path, tmp: Path, latency: float,
                runs: int) -> dict[str, Any]:
    """Wall time of a new 10-file promotion with ``latency`` before every answer
    (median of ``runs``, each on a fresh fake repo)."""
    walls, requests = [], 0
    for i in range(runs):
        side = SIDES[kind](tmp / f"lat-{latency}-{i}", src)
        try:
            side.set_latency(latency)
            _, traffic, wall = promote_once(side, "all", "1.5.0")
            walls.append(wall)
            requests = traffic.requests
        finally:
            side.stop()
    return {"latency_s": latency, "runs": runs, "wall": statistics.median(walls),
            "walls": walls, "requests": requests}


def run(*, sizes: Sequence[int] = (100, 10_000), seed: int = 1, latency: float = 0.05,
        latency_runs: int = 3, out: Path = common.OUT,
        results: Path = common.RESULTS) -> dict[str, Any]:
    if str(common.ROOT) not in sys.path:
        sys.path.insert(0, str(common.ROOT))  # tests.fakes
    data: dict[str, Any] = {"sequences": [], "latency": [], "targets": TARGETS}
    big = max(sizes)
    with no_proxy(), tempfile.TemporaryDirectory(prefix="bench-api-") as tmp_dir:
        tmp = Path(tmp_dir)
        for size in sizes:
            src = out / f"repo-{size}"
            gen_repo.generate(src, size, seed)
        for kind in SIDES:
            for size in sizes:
                for files in CHANGES:
                    if size != big and files != 10:
                        continue  # repo-size growth is shown on the 10-file change
                    print(f"api: {kind}, {size:,} files, {files}-file change ...",
                          file=sys.stderr, flush=True)
                    steps = sequence(kind, out / f"repo-{size}", files,
                                     tmp / f"{kind}-{size}-{files}")
                    data["sequences"].append({"forge": kind, "repo_files": size,
                                              "changed_files": files,
                                              "steps": [s.to_json() for s in steps]})
            for lat in (0.0, latency):
                print(f"api: {kind}, latency {lat * 1000:.0f} ms ...", file=sys.stderr,
                      flush=True)
                data["latency"].append({"forge": kind, "repo_files": big,
                                        **latency_run(kind, out / f"repo-{big}", tmp / kind,
                                                      lat, latency_runs)})
    text = tables(data)
    print(text)
    data["tables"] = text
    common.write_result("api", data, results)
    return data


def tables(data: dict[str, Any]) -> str:
    rows = []
    for seq in data["sequences"]:
        for step in seq["steps"]:
            rows.append([seq["forge"], f"{seq['repo_files']:,}", seq["changed_files"],
                         step["step"], step["status"], step["requests"],
                         f"{step['bytes_in'] / 1024:.1f}", f"{step['bytes_out'] / 1024:.1f}",
                         step["wall"]])
    first = common.table(["forge", "repo files", "changed files", "step", "status",
                          "requests", "KiB sent", "KiB received", "wall s"], rows)
    lat = [[r["forge"], f"{r['repo_files']:,}", f"{r['latency_s'] * 1000:.0f} ms",
            r["requests"], r["wall"], f"{r['requests'] * r['latency_s']:.2f}"]
           for r in data["latency"]]
    second = common.table(["forge", "repo files", "latency per request", "requests",
                           "wall s (median)", "requests x latency s"], lat)
    calls = []
    for seq in data["sequences"]:
        if seq["repo_files"] == max(s["repo_files"] for s in data["sequences"]) \
                and seq["changed_files"] == 10:
            for step in seq["steps"]:
                calls.append([seq["forge"], step["step"], "<br>".join(step["calls"])])
    third = common.table(["forge", "step", "requests in order"], calls)
    return "\n\n".join([first, second, third])
