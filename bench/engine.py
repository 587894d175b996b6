"""Engine speed: ``promote --dry-run`` for one image in a generated config repo, against
the floor of reading every file (``grep -rlF``) and the naive way (ruamel.yaml
round-trip load + dump of every YAML file).

    python bench/run.py engine [--quick] [--sizes 1000,10000,100000]

Every tool runs as a child process, measured with ``os.wait4`` (wall, user+sys CPU,
peak RSS). One untimed run warms the page cache; the median of ``runs`` is reported.
The naive way is measured on every k-th file (sorted paths) where the whole tree would
take too long, and extrapolated linearly (times k); the table says so.

Two extra rows explain where the time goes: ``python floor`` is a Python process that
walks the tree, reads every manifest and applies promoter's byte pre-filter — the
least a Python implementation must pay; the in-process breakdown splits promote's own
time into walking, reading + filtering, and parsing + editing the candidate files.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench import common, gen_repo

NEW_TAG = "1.5.0"
REF = f"{gen_repo.TARGET}:{NEW_TAG}"
YAML_SUFFIXES = (".yaml", ".yml")
SKIP_DIRS = {".git"}


def yaml_files(root: Path) -> Iterator[Path]:
    """Every YAML file under ``root``, sorted (the same set for every tool)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        found.extend(Path(dirpath, f) for f in filenames if f.endswith(YAML_SUFFIXES))
    yield from sorted(found)


# --- child workers (run as ``python -m bench.engine naive|floor ...``) ---------------------


def naive(root: Path, every: int, image: str) -> dict[str, Any]:
    """Round-trip every ``every``-th YAML file with ruamel.yaml's default ``YAML()``:
    load all documents, look for ``image`` in the loaded data, dump them again.
    Also counts how many files the dump would rewrite (output != input)."""
    from ruamel.yaml import YAML

    yaml = YAML()
    files = mentions = rewritten = size = 0
    for path in list(yaml_files(root))[::every]:
        data = path.read_bytes()
        size += len(data)
        text = data.decode("utf-8")
        docs = list(yaml.load_all(text))
        if any(_mentions(doc, image) for doc in docs):
            mentions += 1
        out = io.StringIO()
        yaml.dump_all(docs, out)
        rewritten += out.getvalue() != text
        files += 1
    return {"files": files, "bytes": size, "mentions": mentions, "rewritten": rewritten}


def _mentions(node: object, image: str) -> bool:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if image in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def floor(root: Path, ref: str) -> dict[str, Any]:
    """Walk, read every manifest, apply promoter's byte pre-filter; parse nothing."""
    from promoter.edit import Targets
    from promoter.images import parse
    from promoter.plan import needle_pattern

    pattern = needle_pattern(Targets((parse(ref),)).needles())
    files = candidates = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for name in filenames:
            if name.endswith((".yaml", ".yml", ".json")):
                with open(os.path.join(dirpath, name), "rb") as handle:
                    data = handle.read()
                files += 1
                candidates += pattern.search(data) is not None
    return {"files": files, "candidates": candidates}


# --- in-process facts (not timed against the others) -----------------------------------------


def prefilter_facts(root: Path) -> dict[str, Any]:
    """How selective promoter's byte pre-filter is on this tree, and where promote's own
    time goes (one in-process run, perf_counter)."""
    from promoter import plan as plan_mod
    from promoter.edit import Targets
    from promoter.images import parse
    from promoter.local import WorkTree

    ref = parse(REF)
    targets = Targets((ref,))
    pattern = plan_mod.needle_pattern(targets.needles())
    # make_plan's own test for "worth parsing" (a second look at each match, since
    # 19c1fd9); a plain search where it does not exist
    worth = getattr(plan_mod, "may_mention", None)
    exact = re.compile(re.escape(gen_repo.TARGET).encode() + rb"(?![A-Za-z0-9_./-])")
    t0 = time.perf_counter()
    tree = WorkTree(root)
    t1 = time.perf_counter()
    candidates = mentions = 0
    for path in tree:
        data = tree[path]
        if (worth(pattern, data) if worth is not None else pattern.search(data)):
            candidates += 1
        if exact.search(data):
            mentions += 1
    t2 = time.perf_counter()
    plan = plan_mod.make_plan(tree, targets, lambda _path: True)
    t3 = time.perf_counter()
    return {
        "needles": [n.decode() for n in targets.needles()],
        "manifests": len(tree),
        "candidates_parsed": candidates,
        "files_naming_image": mentions,
        "files_changed": len(plan.files),
        "walk_s": t1 - t0,
        "read_filter_s": t2 - t1,
        "plan_s": t3 - t2,
        "parse_edit_s": max(0.0, (t3 - t2) - (t2 - t1)),
    }


# --- the benchmark ---------------------------------------------------------------------------


def _py(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.engine", *args]


def bench_size(size: int, *, seed: int, runs: int, naive_every: int, naive_runs: int,
               out: Path) -> dict[str, Any]:
    root = out / f"repo-{size}"
    t0 = time.perf_counter()
    stats = gen_repo.generate(root, size, seed)
    gen_s = time.perf_counter() - t0
    promote = [*common.promote_argv(), "--repo", str(root), "--image", REF, "--dry-run",
               "--output", "json"]
    check = common.measure(promote, keep_stdout=True)  # also warms the page cache
    result = json.loads(check.stdout)
    if result.get("status") != "dry-run":
        raise RuntimeError(f"promote did not plan a change: {check.stdout[:500]}")
    rows: dict[str, Any] = {}
    rows["grep"] = common.repeat(
        lambda: common.measure(["grep", "-rlF", gen_repo.TARGET, str(root)]), runs)
    rows["floor"] = common.repeat(
        lambda: common.measure(_py("floor", str(root), REF), cwd=common.ROOT), runs)
    rows["promote"] = common.repeat(lambda: common.measure(promote), runs, warm=False)
    naive_run = common.measure(_py("naive", str(root), "--every", str(naive_every)),
                               cwd=common.ROOT, keep_stdout=True)
    naive_info = json.loads(naive_run.stdout)
    naive = common.summarise(
        [naive_run] + [common.measure(_py("naive", str(root), "--every", str(naive_every)),
                                      cwd=common.ROOT) for _ in range(naive_runs - 1)])
    rows["naive"] = naive.scaled(naive_every) if naive_every > 1 else naive
    facts = prefilter_facts(root)
    return {
        "files": size,
        "bytes": stats["bytes"],
        "lines": stats["lines"],
        "largest_file_lines": stats["largest_lines"],
        "generate_s": round(gen_s, 2),
        "changes": len(result["changes"]),
        "changed_files": len({c["file"] for c in result["changes"]}),
        "tools": {k: v.to_json() for k, v in rows.items()},
        "naive": {"every": naive_every, "runs": naive_runs, "measured": naive.to_json(),
                  "extrapolated": naive_every > 1, **naive_info},
        "prefilter": facts,
    }


def tables(results: Sequence[dict[str, Any]]) -> str:
    speed = []
    for r in results:
        tools = r["tools"]
        grep, naive = tools["grep"], tools["naive"]
        n = r["naive"]
        label = {
            "grep": "grep -rlF (floor)",
            "floor": "python read+filter",
            "promote": "promote --dry-run",
            "naive": "naive rt load+dump" + (
                f" (1 in {n['every']} files, x{n['every']})" if n["extrapolated"] else ""),
        }
        for key in ("grep", "floor", "promote", "naive"):
            t = tools[key]
            speed.append([
                f"{r['files']:,}", f"{r['bytes'] / 1e6:.0f}", label[key], t["wall"], t["cpu"],
                t["maxrss_mb"], common.ratio(t["wall"], grep["wall"]),
                common.ratio(t["cpu"], grep["cpu"]),
                common.ratio(naive["wall"], t["wall"]) if key == "promote" else "",
            ])
    first = common.table(
        ["files", "MB", "tool", "wall s", "CPU s", "max RSS MB", "wall / grep",
         "CPU / grep", "naive / promote"], speed)
    facts = []
    for r in results:
        f = r["prefilter"]
        facts.append([f"{r['files']:,}", f["manifests"], f["candidates_parsed"],
                      f["files_naming_image"], f["files_changed"], f["walk_s"],
                      f["read_filter_s"], f["parse_edit_s"],
                      f"{r['naive']['rewritten']}/{r['naive']['files']}"])
    second = common.table(
        ["files", "manifests", "parsed (pass pre-filter)", "name the image", "changed",
         "walk s", "read+filter s", "parse+edit s", "naive dump rewrites"], facts)
    return first + "\n\n" + second


def naive_plan(size: int, runs: int, quick: bool) -> tuple[int, int]:
    """(every k-th file, timed runs) for the naive way: whole trees up to 10,000 files
    (one run above 1,000, where a run takes most of a minute), else a sample of about
    1,000 files extrapolated linearly."""
    if quick:
        return max(1, -(-size // 1_000)), 1
    if size <= 1_000:
        return 1, runs
    if size <= 10_000:
        return 1, 1
    return -(-size // 1_000), runs


def run(sizes: Sequence[int], *, seed: int = 1, runs: int = 3, quick: bool = False,
        out: Path = common.OUT, results: Path = common.RESULTS) -> dict[str, Any]:
    """Measure every size, print the tables, write ``results/engine.json``."""
    per_size = []
    for size in sizes:
        every, naive_runs = naive_plan(size, runs, quick)
        print(f"engine: {size:,} files ...", file=sys.stderr, flush=True)
        per_size.append(bench_size(size, seed=seed, runs=runs, naive_every=every,
                                   naive_runs=naive_runs, out=out))
    text = tables(per_size)
    print(text)
    data = {"ref": REF, "seed": seed, "runs": runs, "quick": quick, "sizes": per_size,
            "targets": {"wall_vs_grep_max": 3.0, "naive_vs_promote_min": 100.0},
            "tables": text}
    common.write_result("engine", data, results)
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_naive = sub.add_parser("naive", help="(worker) round-trip every k-th YAML file")
    p_naive.add_argument("root", type=Path)
    p_naive.add_argument("--every", type=int, default=1)
    p_floor = sub.add_parser("floor", help="(worker) read + pre-filter every manifest")
    p_floor.add_argument("root", type=Path)
    p_floor.add_argument("ref")
    args = parser.parse_args(argv)
    if args.cmd == "naive":
        print(json.dumps(naive(args.root, args.every, gen_repo.TARGET)))
    else:
        print(json.dumps(floor(args.root, args.ref)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
