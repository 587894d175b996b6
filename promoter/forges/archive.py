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
and each entry that differs read as the blob it is (``prove``).

Bitbucket Data Center lists object ids but no modes (``BLOB``: ids are compared, the
mode is the archive's, and a path the archive left out is taken for a symbolic link when
its bytes can only be one, ``looks_like_link``). Bitbucket Cloud lists no object ids at
all: ``prove_by_size`` compares kinds and sizes, and reads every file whose size or kind
differs, and every file a ``.gitattributes`` could rewrite at the same size."""

from __future__ import annotations

import fnmatch
import hashlib
import io
import posixpath
import re
import tarfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from promoter.errors import ForgeError
from promoter.forges.base import check_policy_entry, git_blob_sha
from promoter.limits import ArchiveTooLarge, gunzip
from promoter.paths import CONFIG_FILE, resolve

FILE, EXECUTABLE, LINK, TREE, GITLINK = 0o100644, 0o100755, 0o120000, 0o040000, 0o160000
BLOB = 0o100000  # a file, executable or link: the forge lists the blob's id, not its mode
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


def download(fetch: Callable[[], bytes], service: str, where: str) -> Unpacked:
    """``fetch()`` the archive of ``where`` (``"main of acme/config"``) and unpack it;
    one too large or unreadable stops the run (exit 5), naming ``service``."""
    try:
        return unpack_archive(fetch())
    except ArchiveTooLarge as exc:
        raise ForgeError(f"could not download the archive of {where}: {exc.describe()}",
                         hint="a config repo that large is not supported; see SECURITY.md "
                              "(limits)") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ForgeError(f"{service} sent an unreadable archive of {where}: {exc}") from exc


def root_entries(blobs: Mapping[str, tuple[int, str]]) -> dict[str, tuple[int, str]]:
    """name -> (mode, object id) of the root tree that holds ``blobs`` (path -> (mode,
    blob id)): git's tree ids, computed bottom up (entries sorted as git sorts them,
    a tree's name as if it ended in ``/``)."""
    return _Dir.holding(blobs).entries()


def tree_ids(blobs: Mapping[str, tuple[int, str]]) -> dict[str, str]:
    """directory path -> git's id of the tree that holds its part of ``blobs`` (path ->
    (mode, blob id)); the root is ``""``."""
    out: dict[str, str] = {}
    pending = [("", _Dir.holding(blobs))]
    while pending:
        where, node = pending.pop()
        out[where] = node.oid()
        pending.extend((f"{where}/{name}" if where else name, child)
                       for name, child in node.dirs.items())
    return out


@dataclass
class _Dir:
    dirs: dict[str, _Dir] = field(default_factory=dict)
    blobs: dict[str, tuple[int, str]] = field(default_factory=dict)

    @classmethod
    def holding(cls, blobs: Mapping[str, tuple[int, str]]) -> _Dir:
        """The directory tree of ``blobs`` (path -> (mode, blob id))."""
        root = cls()
        for path, entry in blobs.items():
            *dirs, name = path.split("/")
            node = root
            for part in dirs:
                node = node.dirs.setdefault(part, cls())
            node.blobs[name] = entry
        return root

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
    the run, exit 5); paths the tree does not hold are dropped. An entry listed as
    ``BLOB`` (no mode) matches the archive's by id alone; read, it takes the archive's
    mode, or, left out of the archive, is a link when ``looks_like_link``."""
    wanted = {e.path: (e.mode, e.oid) for e in root if e.mode != GITLINK}
    have = root_entries(unpacked.entries())
    if have.keys() == wanted.keys() and all(_same(have[p], e) for p, e in wanted.items()):
        return
    listed = {e.path: (e.mode, e.oid) for e in list_tree() if e.mode not in (TREE, GITLINK)}
    held = unpacked.entries()
    for path in held.keys() - listed.keys():
        _drop(unpacked, path)
    differ = sorted(path for path, entry in listed.items() if not _same(held.get(path), entry))
    _bound(differ, where)
    for path in differ:
        mode, oid = listed[path]
        data = read_blob(oid)
        if git_blob_sha(data) != oid:
            raise ForgeError(f"the forge sent {path} of {where} as bytes that are not the "
                             f"blob {oid[:12]}", hint="run again; report it if it persists")
        if mode == BLOB:
            mode = held[path][0] if path in held else \
                LINK if looks_like_link(path, data, listed, unpacked.links) else FILE
        _place(unpacked, path, mode, data)


def policy_file(unpacked: Unpacked, root: Iterable[Listed],
                read_blob: Callable[[str], bytes]) -> None:
    """After ``prove``: ``.promoter.yaml`` as the base tree holds it (``root``: the root
    tree's entries, the forge's git modes). A link, directory or submodule at the path
    stops the run (exit 2); a policy left out for its size is read (``read_blob``)."""
    entry = next((e for e in root if e.path == CONFIG_FILE), None)
    if entry is None:
        _drop(unpacked, CONFIG_FILE)
        return
    check_policy_entry(format(entry.mode, "06o"), unpacked.links.get(CONFIG_FILE))
    if CONFIG_FILE in unpacked.oversize:
        data = read_blob(entry.oid)
        if git_blob_sha(data) != entry.oid:
            raise ForgeError(f"the forge sent {CONFIG_FILE} as bytes that are not the blob "
                             f"{entry.oid[:12]}", hint="run again; report it if it persists")
        unpacked.files[CONFIG_FILE] = data


def _same(held: tuple[int, str] | None, listed: tuple[int, str]) -> bool:
    if held is None:
        return False
    if listed[0] == BLOB:
        return held[0] in (FILE, EXECUTABLE, LINK) and held[1] == listed[1]
    return held == listed


def _bound(differ: list[str], where: str) -> None:
    if len(differ) > MAX_REPAIRS:
        raise ForgeError(
            f"the archive of {where} differs from its tree in {len(differ)} files "
            f"({', '.join(differ[:5])}, …): .gitattributes export-ignore, export-subst or "
            "eol/text attributes change what the forge's archive holds, and promoter reads "
            f"at most {MAX_REPAIRS} such files one by one",
            hint="drop those attributes from the files promoter reads (the environments' "
                 "YAML, .promoter.yaml and their symbolic links)")


def _place(unpacked: Unpacked, path: str, mode: int, data: bytes) -> None:
    _drop(unpacked, path)
    if mode == LINK:
        unpacked.links[path] = data.decode("utf-8", "surrogateescape")
        return
    unpacked.files[path] = data
    if mode == EXECUTABLE:
        unpacked.executable.add(path)


def looks_like_link(path: str, data: bytes, tree: Iterable[str],
                    links: Mapping[str, str] | None = None) -> bool:
    """Whether a blob the archive left out, listed without its mode, is to be taken for a
    symbolic link: its bytes, as a link target from ``path`` followed as the system
    follows it through the known ``links`` (``paths.resolve``), name a path of ``tree``
    (every blob's path) or a directory above one, or pass through a blob of ``tree`` as
    if it were a directory (only a link can be passed through: one the archive left out
    too). A regular file that reads so is taken for a link too: that can only add aliases
    for the policy to judge (fail closed), and such a file holds no image to edit; a link
    to nothing in the tree is kept as a file (it aliases nothing)."""
    blobs = set(tree)
    crossed: set[str] = set()
    target = resolve(path, {**(links or {}), path: data.decode("utf-8", "surrogateescape")},
                     crossed=crossed)
    if crossed & blobs:
        return True
    if target is None:
        return False
    return not target or any(p == target or p.startswith(target + "/") for p in blobs)


@dataclass(frozen=True)
class Sized:
    """One blob as Bitbucket Cloud lists it: its path, kind (``FILE``, ``EXECUTABLE``,
    ``LINK``, ``GITLINK``) and size in bytes; no object id."""

    path: str
    mode: int
    size: int


# attributes that make ``git archive`` rewrite a file, possibly to the same size
# (text / eol only add CRs to bare LFs: the size grows, which the sizes catch)
SAME_SIZE_REWRITES = ("export-subst", "ident", "filter", "working-tree-encoding")
ATTRIBUTES = ".gitattributes"


def prove_by_size(unpacked: Unpacked, listing: Iterable[Sized],
                  read_file: Callable[[str], bytes], where: str) -> None:
    """Make ``unpacked`` the tree ``listing`` lists (every blob, no ids: Bitbucket Cloud).

    Paths the tree does not hold are dropped. Read with ``read_file(path)`` (the tree's
    own bytes): every ``.gitattributes`` of the tree, every file the archive lacks or
    holds with another kind or size, and every file of the archive that a
    ``.gitattributes`` line setting ``export-subst``, ``ident``, ``filter`` or
    ``working-tree-encoding`` may match (``gitattributes_may_rewrite``); at most
    ``MAX_REPAIRS`` reads in all, more stops the run (exit 5)."""
    listed = {e.path: e for e in listing if e.mode != GITLINK}
    for path in unpacked.entries().keys() - listed.keys():
        _drop(unpacked, path)
    attributes = sorted(p for p in listed if posixpath.basename(p) == ATTRIBUTES)
    _bound(attributes, where)
    rules = {p: read_file(p) for p in attributes}
    risky = gitattributes_may_rewrite(rules, unpacked.files)
    differ = sorted(p for p, e in listed.items()
                    if p in risky or p in rules or _kind_and_size(unpacked, p) !=
                    (e.mode, e.size))
    _bound(differ, where)
    for path in differ:
        entry = listed[path]
        data = rules[path] if path in rules else read_file(path)
        if len(data) != entry.size:
            raise ForgeError(f"the forge sent {path} of {where} as {len(data)} bytes, but "
                             f"lists it with {entry.size}", hint="run again; report it if "
                                                                 "it persists")
        _place(unpacked, path, entry.mode, data)


def _kind_and_size(unpacked: Unpacked, path: str) -> tuple[int, int] | None:
    if path in unpacked.links:
        return LINK, len(_raw(unpacked.links[path]))
    if path in unpacked.files:
        return (EXECUTABLE if path in unpacked.executable else FILE,
                len(unpacked.files[path]))
    return None


def gitattributes_may_rewrite(rules: Mapping[str, bytes], files: Iterable[str]) -> set[str]:
    """The paths of ``files`` that a line of the ``.gitattributes`` files ``rules`` (path
    -> bytes) may give an attribute of ``SAME_SIZE_REWRITES``. Read as git reads them
    (lines end at LF only, words end at space, tab or CR: ``attr.c``; a macro may be used
    before its definition), and over-approximated, never under: a macro (``[attr]``)
    that sets one, directly or through other macros, makes every use of its name count,
    in any ``.gitattributes``; a leading UTF-8 BOM is skipped; a pattern with ``**``, a
    bracket, a backslash or a quote matches every file below its ``.gitattributes``;
    ``*`` may match across ``/``."""
    macros: list[tuple[str, list[str]]] = []
    lines: list[tuple[str, list[str]]] = []
    for path, data in sorted(rules.items()):
        base = posixpath.dirname(path)
        for raw in data.removeprefix(b"\xef\xbb\xbf").split(b"\n"):
            words = [w for w in re.split(r"[ \t\r]+", _text(raw)) if w]
            if not words or words[0].startswith("#"):
                continue
            if words[0].startswith("[attr]"):
                macros.append((words[0].removeprefix("[attr]"), words[1:]))
            else:
                lines.append((base, words))
    names = set(SAME_SIZE_REWRITES)
    grown = True
    while grown:  # a macro may name a macro defined further down, or in another file
        grown = False
        for name, attrs in macros:
            if name not in names and any(_sets(a, names) for a in attrs):
                names.add(name)
                grown = True
    out: set[str] = set()
    for base, (pattern, *attrs) in lines:
        if not any(_sets(a, names) for a in attrs):
            continue
        below = [p for p in files if not base or p.startswith(base + "/")]
        out.update(p for p in below if _may_match(pattern, p[len(base) + 1:] if base else p))
    return out


def _sets(word: str, names: set[str]) -> bool:
    """``word`` sets (or gives a value to) one of ``names``; ``-name`` / ``!name`` unset."""
    return not word.startswith(("-", "!")) and word.split("=", 1)[0] in names


def _may_match(pattern: str, relative: str) -> bool:
    if any(c in pattern for c in '[\\"') or "**" in pattern:
        return True
    if "/" not in pattern.rstrip("/"):
        return fnmatch.fnmatchcase(posixpath.basename(relative), pattern)
    return fnmatch.fnmatchcase(relative, pattern.lstrip("/"))


def _drop(unpacked: Unpacked, path: str) -> None:
    unpacked.files.pop(path, None)
    unpacked.links.pop(path, None)
    unpacked.oversize.pop(path, None)
    unpacked.executable.discard(path)


def _text(raw: bytes) -> str:
    """Bytes of git's as a name (the inverse of ``_raw``: invalid UTF-8 kept as
    surrogates, as tarfile keeps it in the archive's names)."""
    return raw.decode("utf-8", "surrogateescape")


def _raw(name: str) -> bytes:
    """A name as git stores it (tarfile decodes names as UTF-8, surrogates kept)."""
    return name.encode("utf-8", "surrogateescape")
