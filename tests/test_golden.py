"""Golden files: each case under tests/golden/ is a small config repo, its promote
arguments, and the files it must become, byte for byte (expected/). A file with no
expected copy must come out untouched."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from promoter.cli import run

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "args").is_file())


def _inputs(case: Path) -> list[Path]:
    return [p for p in case.rglob("*") if p.is_file() and p.name != "args"
            and "expected" not in p.relative_to(case).parts]


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str, tmp_path: Path) -> None:
    case = GOLDEN / name
    repo = tmp_path / "repo"
    for src in _inputs(case):
        dest = repo / src.relative_to(case)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    args = shlex.split((case / "args").read_text())
    assert run(["--repo", str(repo), *args, "--in-place"]) == 0
    for src in _inputs(case):
        rel = src.relative_to(case)
        expected = case / "expected" / rel
        want = expected.read_bytes() if expected.exists() else src.read_bytes()
        assert (repo / rel).read_bytes() == want, f"{name}/{rel} differs from its golden copy"
    # a second run is a no-op: the files already hold the promoted values
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    assert run(["--repo", str(repo), *args, "--in-place"]) == 0
    assert {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()} == before


def test_every_case_changes_something() -> None:
    for name in CASES:
        assert any((GOLDEN / name / "expected").rglob("*.*")), name
