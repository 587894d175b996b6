"""A forge's ``.tar.gz`` of a tree (``git archive`` output: GitHub, GitLab, Gitea,
Bitbucket), unpacked within the limits of ``promoter.limits``, and proved to be the
tree. Pure: bytes and listings in, values out; reading a blob is the caller's callable.

An archive is not the tree. ``git archive`` obeys the tree's ``.gitattributes``:
``export-ignore`` leaves paths out, ``export-subst`` expands ``$Format:…$`` in a file,
``text eol=crlf`` rewrites line ends. Edited from such an archive, a promotion would
commit the expanded or rewritten bytes, and a symbolic link left out (``envs/prod`` ->
``../dev``) would hide an alias from the policy's ``paths_only``. So the unpacked
archive is hashed as git hashes a tree (blob ids, modes, sorted entries) and compared
with the root entries the forge lists; only when they differ is the whole tree listed
and each entry that differs read as the blob it is."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from promoter.errors import ForgeError
from promoter.forges.base import git_blob_sha
from promoter.limits import gunzip

FILE, EXECUTABLE, LINK, TREE, GITLINK = 0o100644, 0o100755, 0o120000, 0o040000, 0o160000
MAX_REPAIRS = 200  # entries read one by one when the archive is not the tree


@dataclass
class Unpacked:
    """The tree as the archive shows it. ``files``: regular files (path -> bytes);
    ``links``: symbolic links (path -> target as stored); ``executable``: the files of
    mode 100755; ``oversize``: files left out of ``files`` for their size (path -> blob
    id); ``commit``: the commit ``git archive`` recorded in its pax header, if any."""

    files: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    executable: set[str] = field(default_factory=set)
    oversize: dict[str, str] = field(default_factory=dict)
    commit: str | None = None

    def entries(self) -> dict[str, tuple[int, str]]:
        """path -> (mode, blob id) of every blob, as git would store it."""
        blobs = {path: git_blob_sha(data) for path, data in self.files.items()}
        blobs.update(self.oversize)
        out = {path: (EXECUTABLE if path in self.executable else FILE, oid)
               for path, oid in blobs.items()}
        out.update((path, (LINK, git_blob_sha(_raw(target))))
                   for path, target in self.links.items())
        return out


@dataclass(frozen=True)
class Listed:
    """One entry of a tree as the forge lists it: its path, git mode and object id."""

    path: str
    mode: int
    oid: str


def unpack_archive(data: bytes, max_file: int | None = None) -> Unpacked:
    """The regular files, symbolic links and executable bits of ``git archive`` output
    (gzipped tar), and the commit its pax header names.

    The archive's single top directory (``<project>-<sha>/``) is dropped. Symlinks are
    never followed, whether they point inside the tree (the target is in the result
    under its own path; editing through the link would replace it with a file) or out
    of it; paths that would leave the tree are skipped. Files over ``max_file`` bytes
    are left out of ``files`` (their blob ids kept in ``oversize``)."""
    out = Unpacked()
    # decompressed here, at most MAX_UNPACKED_BYTES (ArchiveTooLarge past it)
    with tarfile.open(fileobj=io.BytesIO(gunzip(data)), mode="r:") as tar:
        for member in tar:
            if not (member.isreg() or member.issym()):
                continue  # directories, hard links, devices
            _top, _, path = member.name.partition("/")
            parts = PurePosixPath(path).parts
            if not path or path.startswith("/") or ".." in parts:
                continue
            if member.issym():
                out.links[path] = member.linkname
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            content = handle.read()
            if member.mode & 0o111:
                out.executable.add(path)
            if max_file is not None and len(content) > max_file:
                out.oversize[path] = git_blob_sha(content)
            else:
                out.files[path] = content
        comment = tar.pax_headers.get("comment", "")
    out.commit = comment if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", comment) else None
    return out


def root_entries(blobs: Mapping[str, tuple[int, str]]) -> dict[str, tuple[int, str]]:
    """name -> (mode, object id) of the root tree that holds ``blobs`` (path -> (mode,
    blob id)): git's tree ids, computed bottom up (entries sorted as git sorts them,
    a tree's name as if it ended in ``/``)."""
    root = _Dir()
    for path, entry in blobs.items():
        *dirs, name = path.split("/")
        node = root
        for part in dirs:
            node = node.dirs.setdefault(part, _Dir())
        node.blobs[name] = entry
    return root.entries()


@dataclass
class _Dir:
    dirs: dict[str, _Dir] = field(default_factory=dict)
    blobs: dict[str, tuple[int, str]] = field(default_factory=dict)

    def entries(self) -> dict[str, tuple[int, str]]:
        out = dict(self.blobs)
        out.update((name, (TREE, child.oid())) for name, child in self.dirs.items())
        return out

    def oid(self) -> str:
        """git's id of this tree: ``<mode> <name>\\0<id>`` per entry, sorted by name,
        a tree's name as if it ended in ``/``."""
        named = [(_raw(name), entry) for name, entry in self.entries().items()]
        named.sort(key=lambda item: item[0] + (b"/" if item[1][0] == TREE else b""))
        body = b"".join(b"%o %s\0" % (mode, name) + bytes.fromhex(oid)
                        for name, (mode, oid) in named)
        return hashlib.sha1(b"tree %d\0" % len(body) + body, usedforsecurity=False).hexdigest()


def prove(unpacked: Unpacked, root: Iterable[Listed],
          list_tree: Callable[[], Iterable[Listed]],
          read_blob: Callable[[str], bytes], where: str) -> None:
    """Make ``unpacked`` the tree whose root entries are ``root`` (submodules aside: an
    archive holds none).

    Equal root entries prove the archive is the tree (git's object ids): nothing more is
    read. Otherwise ``list_tree()`` lists every entry and each one the archive lacks or
    holds otherwise is read with ``read_blob(oid)`` (at most ``MAX_REPAIRS``; more stops
    the run, exit 5); paths the tree does not hold are dropped."""
    wanted = {e.path: (e.mode, e.oid) for e in root if e.mode != GITLINK}
    if root_entries(unpacked.entries()) == wanted:
        return
    listed = {e.path: (e.mode, e.oid) for e in list_tree() if e.mode not in (TREE, GITLINK)}
    held = unpacked.entries()
    for path in held.keys() - listed.keys():
        _drop(unpacked, path)
    differ = sorted(path for path, entry in listed.items() if held.get(path) != entry)
    if len(differ) > MAX_REPAIRS:
        raise ForgeError(
            f"the archive of {where} differs from its tree in {len(differ)} files "
            f"({', '.join(differ[:5])}, …): .gitattributes export-ignore, export-subst or "
            "eol/text attributes change what the forge's archive holds, and promoter reads "
            f"at most {MAX_REPAIRS} such files one by one",
            hint="drop those attributes from the files promoter reads (the environments' "
                 "YAML, .promoter.yaml and their symbolic links)")
    for path in differ:
        mode, oid = listed[path]
        data = read_blob(oid)
        if git_blob_sha(data) != oid:
            raise ForgeError(f"the forge sent {path} of {where} as bytes that are not the "
                             f"blob {oid[:12]}", hint="run again; report it if it persists")
        _drop(unpacked, path)
        if mode == LINK:
            unpacked.links[path] = data.decode("utf-8", "surrogateescape")
            continue
        unpacked.files[path] = data
        if mode == EXECUTABLE:
            unpacked.executable.add(path)


def _drop(unpacked: Unpacked, path: str) -> None:
    unpacked.files.pop(path, None)
    unpacked.links.pop(path, None)
    unpacked.oversize.pop(path, None)
    unpacked.executable.discard(path)


def _raw(name: str) -> bytes:
    """A name as git stores it (tarfile decodes names as UTF-8, surrogates kept)."""
    return name.encode("utf-8", "surrogateescape")
