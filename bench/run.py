"""Run promoter's benchmarks: ``make bench`` (or ``python bench/run.py``).

    python bench/run.py                       # all five, full sizes (under 10 minutes)
    python bench/run.py --quick               # a fast pass (about 2 minutes)
    python bench/run.py engine startup        # some of them
    python bench/run.py engine --sizes 1000,10000

Generated config repos are kept in bench/out/ (git-ignored) and reused while the
generator and its arguments are unchanged. Results: bench/results/<name>.json (with
the machine) and bench/results/summary.md (the latest tables of every benchmark);
--quick writes to bench/results/quick/ instead, never over a full run's results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import api, big, common, concurrency, engine, startup

NAMES = ("engine", "big", "startup", "api", "concurrency")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"which benchmarks ({', '.join(NAMES)}; default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer runs")
    parser.add_argument("--sizes", help="engine repo sizes, comma-separated "
                        "(default 1000,10000,100000; --quick 1000,10000)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    args = parser.parse_args(argv)
    names = args.names or list(NAMES)
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    quick = args.quick
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    else:
        sizes = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
    results = common.RESULTS / "quick" if quick else common.RESULTS  # never over a full run
    started = time.perf_counter()
    sections: list[tuple[str, str, float]] = []
    for name in names:
        t0 = time.perf_counter()
        if name == "engine":
            data = engine.run(sizes, seed=args.seed, runs=1 if quick else 3, quick=quick,
                              results=results)
        elif name == "big":
            data = big.run(runs=3 if quick else 5, results=results)
        elif name == "startup":
            data = startup.run(runs=5 if quick else 10, results=results)
        elif name == "api":
            data = api.run(sizes=(100, 1_000 if quick else 10_000), seed=args.seed,
                           latency_runs=1 if quick else 2, results=results)
        else:
            data = concurrency.run(fan=10 if quick else 20, racers=5 if quick else 10,
                                   seed=args.seed, trials=1 if quick else 3, results=results)
        sections.append((name, data["tables"], time.perf_counter() - t0))
        print(f"[{name}: {time.perf_counter() - t0:.0f} s]\n", flush=True)
    total = time.perf_counter() - started
    write_summary(sections, total, quick, results)
    print(f"all done in {total:.0f} s; results in {results}")
    return 0


def write_summary(sections: list[tuple[str, str, float]], total: float, quick: bool,
                  results: Path) -> Path:
    """``results/summary.md``: the tables of this run, then the latest results of the
    benchmarks this run left out (each with its own date), from ``results/*.json``."""
    m = common.machine()
    ran = {name for name, _, _ in sections}
    lines = [
        "# promoter benchmarks: latest results", "",
        f"- this run: {m['date']}{' (--quick)' if quick else ''}, "
        f"{', '.join(n for n, _, _ in sections)}, {total:.0f} s",
        f"- machine: {m['nproc']} CPUs, {m['cpu_model']}, {m['platform']}",
        f"- Python {m['python']} ({m['implementation']}); load average at the end: "
        f"{m['loadavg']}", "",
    ]
    for name, text, seconds in sections:
        lines += [f"## {name} ({seconds:.0f} s, this run)", "", text, ""]
    for name in NAMES:
        path = results / f"{name}.json"
        if name in ran or not path.is_file():
            continue
        old = json.loads(path.read_text(encoding="utf-8"))
        lines += [f"## {name} (earlier run: {old['machine']['date']}"
                  f"{', --quick' if old.get('quick') else ''})", "", old["tables"], ""]
    results.mkdir(parents=True, exist_ok=True)
    path = results / "summary.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.exit(main())
