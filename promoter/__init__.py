"""promoter: hand a freshly built container image to a GitOps config repo."""

from __future__ import annotations

__version__ = "0.1.0"
