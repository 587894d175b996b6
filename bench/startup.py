"""Start-up: ``promote --version`` and ``promote --help`` against ``python -c pass`` and
``python -c "import click"``, as subprocesses (median of ``runs``, one warm-up), and a
``python -X importtime`` check that neither imports PyGithub, python-gitlab,
ruamel.yaml (or requests, which the forges pull in).

    python bench/run.py startup [--quick]
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import common

# top-level packages that must not be imported for --version / --help
HEAVY = {"github": "PyGithub", "gitlab": "python-gitlab", "ruamel": "ruamel.yaml",
         "requests": "requests", "urllib3": "urllib3", "tenacity": "tenacity"}

ENTRY = "import sys; from promoter.cli import main; sys.argv[0] = 'promote'; main()"


@dataclass(frozen=True)
class ImportProfile:
    modules: tuple[str, ...]  # every module imported, in order
    cumulative_us: dict[str, int]  # top-level imports (as listed) -> cumulative microseconds

    def heavy(self) -> list[str]:
        found = {m.split(".", 1)[0] for m in self.modules}
        return sorted(HEAVY[name] for name in found if name in HEAVY)

    def top(self, n: int) -> list[tuple[str, int]]:
        return sorted(self.cumulative_us.items(), key=lambda kv: -kv[1])[:n]


def parse_importtime(stderr: str) -> ImportProfile:
    """Read ``-X importtime`` lines: ``import time: self | cumulative | name``."""
    modules: list[str] = []
    cumulative: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue  # the header line
        name = parts[2].rstrip()
        modules.append(name.strip())
        depth = (len(name) - len(name.lstrip())) // 2
        if depth <= 1:  # imported by the entry point itself, or one level down
            cumulative[name.strip()] = int(parts[1])
    return ImportProfile(tuple(modules), cumulative)


def import_profile(args: Sequence[str]) -> ImportProfile:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", ENTRY, *args],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"promote {' '.join(args)} exited {proc.returncode}: "
                           f"{proc.stderr[-1000:]}")
    return parse_importtime(proc.stderr)


def commands() -> dict[str, list[str]]:
    promote = common.promote_argv()
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        'python -c "import click"': [sys.executable, "-c", "import click"],
        "promote --version": [*promote, "--version"],
        "promote --help": [*promote, "--help"],
    }


def run(*, runs: int = 10, results: Path = common.RESULTS) -> dict[str, Any]:
    print("startup ...", file=sys.stderr, flush=True)
    timings = {name: common.repeat(lambda argv=argv: common.measure(argv), runs)
               for name, argv in commands().items()}
    base = timings["python -c pass"]
    rows = [[name, t.wall * 1000, t.cpu * 1000, t.maxrss_mb,
             common.ratio(t.wall, base.wall), f"+{(t.wall - base.wall) * 1000:.0f} ms"]
            for name, t in timings.items()]
    first = common.table(["command", "median wall ms", "CPU ms", "max RSS MB",
                          "vs python -c pass", "over python"], rows)
    profiles = {" ".join(a): import_profile(a) for a in (["--version"], ["--help"])}
    checks = []
    for args, prof in profiles.items():
        top = ", ".join(f"{name} {us / 1000:.0f} ms" for name, us in prof.top(4))
        checks.append([f"promote {args}", len(prof.modules), ", ".join(prof.heavy()) or "none",
                       top])
    second = common.table(["command", "modules imported", "heavy imports", "largest imports "
                           "(cumulative)"], checks)
    text = first + "\n\n" + second
    print(text)
    data = {
        "runs": runs,
        "timings": {k: v.to_json() for k, v in timings.items()},
        "imports": {k: {"modules": len(p.modules), "heavy": p.heavy(),
                        "top": p.top(10), "all": list(p.modules)}
                    for k, p in profiles.items()},
        "ok": all(not p.heavy() for p in profiles.values()),
        "tables": text,
    }
    common.write_result("startup", data, results)
    return data
