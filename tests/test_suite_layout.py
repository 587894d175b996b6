"""The suite's own layout: one import root (``tests.fakes``, ``tests.hostile``), so no
fake's module state (its classes, its locks) is loaded twice."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECOND_ROOTS = {"fakes", "hostile", "harness"}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_module_imports_the_fakes_by_a_second_root() -> None:
    offenders = {str(path.relative_to(ROOT)): sorted(_imported_roots(path) & SECOND_ROOTS)
                 for folder in ("tests", "bench") for path in (ROOT / folder).rglob("*.py")
                 if _imported_roots(path) & SECOND_ROOTS}
    assert offenders == {}


def test_the_collected_suite_loaded_no_second_copy() -> None:
    import tests.harness  # noqa: F401 - the harness every end-to-end test goes through

    assert not SECOND_ROOTS & {name.split(".")[0] for name in sys.modules}
    assert "tests.fakes.github" in sys.modules


def test_importing_fakes_as_a_top_level_package_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, 'tests'); import fakes.gitrepo"],
        cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "import it as tests.fakes" in done.stderr
