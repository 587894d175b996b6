"""Local fake forges over real HTTP, backed by real bare git repos.

One import root: ``from tests.fakes.github import FakeGitHub``. Importing this package as
``fakes`` (with ``tests/`` on ``sys.path``) would load a second copy of every fake's
module state (locks, classes), so it is refused here.
"""

from __future__ import annotations

if __name__ != "tests.fakes":
    raise ImportError(f"tests/fakes imported as {__name__!r}: import it as tests.fakes "
                      "(pytest runs with pythonpath = ['.'] at the repository root)")
