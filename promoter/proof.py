"""Proving a branch tip is exactly a planned change (trust rule 1), in pure functions.

A commit on a promotion branch is promoter's only by what it holds, never by what its
message says: trailers are data anyone who can push a branch can write. The forges say
which files a commit changed against its only parent and the git blob id of each new
content (``Forge.changed_files``); a plan is proved by a commit when those are exactly
the plan's files with exactly the plan's bytes. Blob ids are content addresses, so equal
ids are equal bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def blob_sha(data: bytes) -> str:
    """The id git gives ``data`` as a blob (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def holds(changed: Mapping[str, str] | None, files: Mapping[str, bytes]) -> bool:
    """Does a commit that changed ``changed`` (path -> new blob id) change exactly
    ``files``, each to exactly these bytes, and nothing else?"""
    if changed is None or not files:
        return False
    return dict(changed) == {path: blob_sha(data) for path, data in files.items()}
