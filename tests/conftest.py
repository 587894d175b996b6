"""Shared fixtures: a scrubbed environment, so the CI running the tests never leaks
GITHUB_* / GITLAB_* / CI_* / PROMOTE_* into them, and no secret outlives a test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from promoter import redact

_LEAKY = ("GITHUB_", "GITLAB_", "CI_", "PROMOTE_", "RUNNER_", "NO_COLOR")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(_LEAKY) or name in ("CI", "GITLAB_CI", "GITHUB_ACTIONS"):
            monkeypatch.delenv(name, raising=False)
    redact.clear()
    yield
    redact.clear()
