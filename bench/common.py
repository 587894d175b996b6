"""What every benchmark shares: measuring a child process, the machine, tables, results.

A child is measured with ``os.wait4``, which returns that one child's resource usage:
wall time (perf_counter around spawn..reap), user and system CPU time, and peak
resident memory (``ru_maxrss``, KiB on Linux). Timed runs take the median.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
OUT = BENCH / "out"


@dataclass(frozen=True)
class Measurement:
    wall: float  # seconds
    user: float  # seconds of CPU in user mode (the child and its children)
    sys: float
    maxrss_mb: float
    returncode: int
    stdout: str = ""

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("stdout")
        data["cpu"] = self.cpu
        return data


TIME = Path("/usr/bin/time")


def measure(argv: Sequence[str], *, cwd: Path | None = None,
            env: Mapping[str, str] | None = None, check: bool = True,
            keep_stdout: bool = False) -> Measurement:
    """Run ``argv`` once; its wall time, CPU time and peak memory.

    CPU time comes from ``os.wait4`` (the child and every child it reaped). Peak memory
    is taken from GNU time's ``%M`` when /usr/bin/time exists: a child forked from this
    big Python process inherits its memory high-water mark across exec, so ``wait4``'s
    ``ru_maxrss`` would report at least this process's size; GNU time is small and
    forks the command itself. Without it, ``ru_maxrss`` is an upper bound."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err_file, \
            tempfile.NamedTemporaryFile("r", suffix=".time") as rss_file:
        wrapped = list(argv)
        if TIME.is_file():
            wrapped = [str(TIME), "-f", "%M", "-o", rss_file.name, *wrapped]
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, cwd=cwd, env=dict(env) if env is not None else None,
                                stdout=out, stderr=err_file)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err_file.seek(0)
        err = err_file.read().decode(errors="replace")
        out.seek(0)
        text = out.read().decode(errors="replace") if keep_stdout else ""
        maxrss_kb = float(usage.ru_maxrss)
        if TIME.is_file():
            lines = [ln for ln in rss_file.read().splitlines() if ln.strip().isdigit()]
            if lines:
                maxrss_kb = float(lines[-1])
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err[-2000:]}")
    return Measurement(wall, usage.ru_utime, usage.ru_stime, maxrss_kb / 1024,
                       proc.returncode, text)


@dataclass(frozen=True)
class Summary:
    """The median of timed runs (one untimed warm-up before them)."""

    runs: int
    wall: float
    cpu: float
    user: float
    sys: float
    maxrss_mb: float
    walls: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def scaled(self, factor: float) -> Summary:
        """Linear extrapolation of the times (memory stays: files are read one by one)."""
        return Summary(self.runs, self.wall * factor, self.cpu * factor, self.user * factor,
                       self.sys * factor, self.maxrss_mb,
                       tuple(w * factor for w in self.walls))


def summarise(samples: Sequence[Measurement]) -> Summary:
    return Summary(
        runs=len(samples),
        wall=statistics.median(m.wall for m in samples),
        cpu=statistics.median(m.cpu for m in samples),
        user=statistics.median(m.user for m in samples),
        sys=statistics.median(m.sys for m in samples),
        maxrss_mb=max(m.maxrss_mb for m in samples),
        walls=tuple(round(m.wall, 4) for m in samples),
    )


def repeat(fn: Callable[[], Measurement], runs: int, *, warm: bool = True) -> Summary:
    if warm:
        fn()
    return summarise([fn() for _ in range(runs)])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "loadavg": [round(x, 2) for x in load] if load else None,  # 1, 5, 15 min, when written
    }


def promote_argv() -> list[str]:
    """The installed ``promote`` script of this interpreter, else ``python -c``."""
    script = Path(sys.executable).parent / "promote"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from promoter.cli import main; main()"]


def write_result(name: str, data: Mapping[str, Any], results: Path = RESULTS) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine(), **data}, indent=2)
                    + "\n", encoding="utf-8")
    return path


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (pipes line up, so it also reads well in a terminal)."""
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.3f}" if value < 1 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0 else "n/a"
