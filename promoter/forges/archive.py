"""A forge's ``.tar.gz`` of a tree (``git archive`` output: GitLab, Gitea), unpacked
within the limits of ``promoter.limits``. Pure: bytes in, values out."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import PurePosixPath

from promoter.limits import gunzip


def unpack_archive(data: bytes) -> tuple[dict[str, bytes], str | None, dict[str, str]]:
    """``{path: content}`` of the regular files of a GitLab ``archive.tar.gz``, the
    commit it was made from (``git archive`` records it in the pax global header), and
    the symlinks (path -> target as stored).

    The archive's single top directory (``<project>-<sha>/``) is dropped. Symlinks are
    never followed, whether they point inside the tree (the target is in the result
    under its own path; editing through the link would replace it with a file) or out
    of it; paths that would leave the tree are skipped."""
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    # decompressed here, at most MAX_UNPACKED_BYTES (ArchiveTooLarge past it)
    with tarfile.open(fileobj=io.BytesIO(gunzip(data)), mode="r:") as tar:
        for member in tar:
            if not (member.isreg() or member.issym()):
                continue
            _top, _, path = member.name.partition("/")
            parts = PurePosixPath(path).parts
            if not path or path.startswith("/") or ".." in parts:
                continue
            if member.issym():
                links[path] = member.linkname
                continue
            handle = tar.extractfile(member)
            if handle is not None:
                files[path] = handle.read()
        comment = tar.pax_headers.get("comment", "")
    commit = comment if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", comment) else None
    return files, commit, links
