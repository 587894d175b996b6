"""Locating and rewriting image references, byte-exactly. See engine.py."""

from __future__ import annotations

from promoter.edit.engine import FORMATS, FileEdit, SetOp, Targets, edit_file

__all__ = ["FORMATS", "FileEdit", "SetOp", "Targets", "edit_file"]
