"""Concurrency: many ``promote`` processes against one config repo at once, through the
fake GitHub and GitLab, with a policy that auto-merges without waiting for checks.

    python bench/run.py concurrency [--quick]

Two scenarios, each on a fresh fake repo (the generated 1,000-file tree as ballast):

    fan-in   20 promotions of 20 different images, all started at once:
             are all 20 merged, and does the final tree hold all 20 new tags?
    race     10 promotions of the same image with increasing versions, started at
             once in a shuffled order: is the final version the highest, and did the
             base ever go down a version on the way?

Each promotion is a real ``promote`` CLI process (as 20 CI jobs would be), so start-up,
the snapshot download and planning run in parallel on the machine's cores. What
happened is reported as found, including failures: a refused downgrade (exit 4), a
race lost after the orchestrator's retries (exit 5), a request left open.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import common, gen_repo
from bench.api import SLUG, TOKEN, GitHubSide, GitLabSide, no_proxy

ENV = "all"
CONFIG = b"""\
version: 1
defaults:
  auto_merge: true
  wait_for_checks: false
  merge_method: squash
environments:
  all:
    paths: ["**"]
    auto_merge: true
    wait_for_checks: false
"""
RACE_IMAGE = "ghcr.io/acme/race"


def deployment(name: str, image: str) -> bytes:
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n"
            f"  template:\n    spec:\n      containers:\n        - name: {name}\n"
            f"          image: {image}   # promoted by CI\n").encode()


def fan_in_files(n: int) -> dict[str, bytes]:
    return {f"apps/conc-{i:02d}/deployment.yaml":
            deployment(f"conc-{i:02d}", f"ghcr.io/acme/conc-{i:02d}:1.0.0") for i in range(n)}


def race_files() -> dict[str, bytes]:
    return {"apps/race/deployment.yaml": deployment("race", f"{RACE_IMAGE}:1.0.0")}


@dataclass(frozen=True)
class Outcome:
    image: str
    code: int
    status: str
    merged: bool
    wall: float
    message: str  # the error, or the result's message

    def to_json(self) -> dict[str, Any]:
        return {"image": self.image, "exit": self.code, "status": self.status,
                "merged": self.merged, "wall": round(self.wall, 3), "message": self.message}


def clean_env() -> dict[str, str]:
    """The machine's environment without CI, forge or proxy variables; our token."""
    drop = ("GITHUB_", "GITLAB_", "CI_", "PROMOTE_", "RUNNER_")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(drop) and k.lower() not in ("http_proxy", "https_proxy",
                                                           "all_proxy")
           and k not in ("CI", "GITLAB_CI", "GITHUB_ACTIONS")}
    env["PROMOTE_TOKEN"] = TOKEN
    return env


def launch(kind: str, url: str, images: Sequence[str]) -> tuple[list[Outcome], float]:
    """Start one ``promote`` process per image at once; wait for all of them."""
    env = clean_env()
    with tempfile.TemporaryDirectory(prefix="bench-procs-") as tmp_dir:
        tmp = Path(tmp_dir)
        procs = []
        start = time.perf_counter()
        for i, image in enumerate(images):
            argv = [*common.promote_argv(), "--repo", SLUG, "--forge", kind, "--api-url", url,
                    "--env", ENV, "--image", image, "--output", "json",
                    "--retry-timeout", "30"]
            with open(tmp / f"{i}.out", "wb") as out, open(tmp / f"{i}.err", "wb") as err:
                procs.append((i, image, subprocess.Popen(argv, stdout=out, stderr=err,
                                                         env=env), time.perf_counter()))
        outcomes = []
        for i, image, proc, began in procs:
            code = proc.wait()
            wall = time.perf_counter() - began
            text = (tmp / f"{i}.out").read_text(errors="replace")
            problem = (tmp / f"{i}.err").read_text(errors="replace").strip()
            try:
                result = json.loads(text)
            except ValueError:
                result = {"status": "no-json", "error": problem[-300:]}
            message = str(result.get("error") or result.get("message") or "")[:300]
            outcomes.append(Outcome(image, code, str(result.get("status")),
                                    bool(result.get("merged")), wall, message))
        return outcomes, time.perf_counter() - start


def make_side(kind: str, tmp: Path, ballast: Path, extra: dict[str, bytes]) -> Any:
    files = {".promoter.yaml": CONFIG, **extra}
    if kind == "github":
        return GitHubSide(tmp, ballast, files)  # no checks unless a test sets them
    return GitLabSide(tmp, ballast, files, ci=False)


def bare_of(side: Any) -> Any:
    return side.bare


def tag_in(data: bytes | None) -> str | None:
    if data is None:
        return None
    text = data.decode()
    marker = "image: "
    line = next(ln for ln in text.splitlines() if marker in ln)
    ref = line.split(marker, 1)[1].split()[0]
    return ref.rsplit(":", 1)[1]


def fan_in(kind: str, tmp: Path, ballast: Path, n: int) -> dict[str, Any]:
    files = fan_in_files(n)
    side = make_side(kind, tmp, ballast, files)
    try:
        images = [f"ghcr.io/acme/conc-{i:02d}:1.1.0" for i in range(n)]
        outcomes, wall = launch(kind, side.fake.url, images)
        bare = bare_of(side)
        main = bare.resolve("main")
        landed = sum(1 for path in files if tag_in(bare.read_file(main, path)) == "1.1.0")
        return {"forge": kind, "promotions": n, "wall": wall,
                "merged": sum(o.merged for o in outcomes), "final_tree_new_tags": landed,
                "open_requests": side.open_requests(),
                "statuses": dict(Counter(f"{o.status} (exit {o.code})" for o in outcomes)),
                "slowest": max(o.wall for o in outcomes),
                "outcomes": [o.to_json() for o in outcomes]}
    finally:
        side.stop()


def race(kind: str, tmp: Path, ballast: Path, n: int, seed: int) -> dict[str, Any]:
    side = make_side(kind, tmp, ballast, race_files())
    try:
        versions = [f"1.0.{i}" for i in range(1, n + 1)]
        order = versions[:]
        random.Random(seed).shuffle(order)
        outcomes, wall = launch(kind, side.fake.url, [f"{RACE_IMAGE}:{v}" for v in order])
        bare = bare_of(side)
        path = "apps/race/deployment.yaml"
        history = [tag_in(bare.read_file(c["sha"], path))
                   for c in reversed(bare.log("main", 200, path=path, first_parent=True))]
        seq = [v for v in history if v is not None]
        key = [tuple(int(x) for x in v.split(".")) for v in seq]
        downgrades = [f"{seq[i - 1]} -> {seq[i]}" for i in range(1, len(seq))
                      if key[i] < key[i - 1]]
        final = seq[-1] if seq else None
        # a run that says "merged" although its version never reached main
        phantom = [o.image.rsplit(":", 1)[1] for o in outcomes
                   if o.merged and o.image.rsplit(":", 1)[1] not in seq]
        return {"forge": kind, "promotions": n, "start_order": order, "wall": wall,
                "final": final, "highest": versions[-1],
                "final_is_highest": final == versions[-1], "landed_sequence": seq,
                "downgrades": downgrades, "open_requests": side.open_requests(),
                "open_titles": side.open_titles(), "merged_but_not_landed": phantom,
                "merged": sum(o.merged for o in outcomes),
                "statuses": dict(Counter(f"{o.status} (exit {o.code})" for o in outcomes)),
                "outcomes": [o.to_json() for o in outcomes]}
    finally:
        side.stop()


def races(kind: str, tmp: Path, ballast: Path, n: int, seed: int,
          trials: int) -> dict[str, Any]:
    """``race`` ``trials`` times (seeds seed, seed+1, ...: different start orders); the
    first trial in full, and for every trial its final version and downgrades."""
    runs = [race(kind, tmp / f"trial-{i}", ballast, n, seed + i) for i in range(trials)]
    first = dict(runs[0])
    first["trials"] = [{"start_order": r["start_order"], "final": r["final"],
                        "final_is_highest": r["final_is_highest"],
                        "landed_sequence": r["landed_sequence"],
                        "downgrades": r["downgrades"], "statuses": r["statuses"],
                        "open_titles": r["open_titles"],
                        "merged_but_not_landed": r["merged_but_not_landed"],
                        "outcomes": r["outcomes"]}
                       for r in runs]
    return first


def run(*, fan: int = 20, racers: int = 10, seed: int = 1, trials: int = 3,
        ballast_files: int = 1_000, out: Path = common.OUT,
        results: Path = common.RESULTS) -> dict[str, Any]:
    if str(common.ROOT) not in sys.path:
        sys.path.insert(0, str(common.ROOT))  # tests.fakes
    ballast = out / f"repo-{ballast_files}"
    gen_repo.generate(ballast, ballast_files, seed)
    data: dict[str, Any] = {"fan_in": [], "race": [], "ballast_files": ballast_files}
    with no_proxy(), tempfile.TemporaryDirectory(prefix="bench-conc-") as tmp_dir:
        tmp = Path(tmp_dir)
        for kind in ("github", "gitlab"):
            print(f"concurrency: {kind}, {fan} images at once ...", file=sys.stderr,
                  flush=True)
            data["fan_in"].append(fan_in(kind, tmp / f"{kind}-fan", ballast, fan))
            print(f"concurrency: {kind}, {racers} versions of one image at once "
                  f"x {trials} ...", file=sys.stderr, flush=True)
            data["race"].append(races(kind, tmp / f"{kind}-race", ballast, racers, seed,
                                      trials))
    text = tables(data)
    print(text)
    data["tables"] = text
    common.write_result("concurrency", data, results)
    return data


def tables(data: dict[str, Any]) -> str:
    fan = [[r["forge"], r["promotions"], r["merged"], r["final_tree_new_tags"],
            r["open_requests"], r["wall"], r["slowest"],
            "; ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))]
           for r in data["fan_in"]]
    first = common.table(["forge", "promotions", "merged", "new tags in final tree",
                          "left open", "total wall s", "slowest process s", "outcomes"], fan)
    rows = [[r["forge"], r["promotions"], r["final"], "yes" if r["final_is_highest"] else "NO",
             " -> ".join(r["landed_sequence"]), ", ".join(r["downgrades"]) or "none",
             r["open_requests"], r["wall"],
             "; ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))]
            for r in data["race"]]
    second = common.table(["forge", "racers", "final", "final = highest", "versions landed "
                           "on main, in order", "downgrades", "left open", "wall s",
                           "outcomes"], rows)
    trials = []
    for r in data["race"]:
        for i, t in enumerate(r.get("trials", [])):
            failed = sum(v for k, v in t["statuses"].items() if "exit 5" in k)
            trials.append([r["forge"], i + 1, " ".join(t["start_order"]), t["final"],
                           "yes" if t["final_is_highest"] else "NO",
                           len(t["downgrades"]), failed,
                           ", ".join(t["merged_but_not_landed"]) or "none",
                           "; ".join(t.get("open_titles", [])) or "none"])
    if trials:
        second += "\n\n" + common.table(["forge", "trial", "start order", "final",
                                          "final = highest", "downgrades", "exit 5",
                                          "said merged, never landed", "left open"], trials)
    return first + "\n\n" + second
