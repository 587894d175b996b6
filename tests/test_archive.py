"""forges/archive.py: the unpacked ``git archive`` is hashed as git hashes trees, and an
archive that is not the tree (``.gitattributes``) is repaired from the tree's blobs or
refused. Real git makes every archive and every expected object id here."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from promoter.errors import ForgeError
from promoter.forges import archive
from promoter.forges.archive import (
    BLOB,
    Listed,
    Sized,
    gitattributes_may_rewrite,
    looks_like_link,
    prove,
    prove_by_size,
    root_entries,
    tree_ids,
    unpack_archive,
)
from promoter.forges.base import git_blob_sha

ENV = {**os.environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@example.com",
       "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@example.com",
       "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


class Repo:
    """A work tree with one commit, read back as a forge would list it."""

    def __init__(self, path: Path, files: Mapping[str, bytes | str], *,
                 executable: tuple[str, ...] = (), links: Mapping[str, str] | None = None
                 ) -> None:
        self.path = path
        self.reads: list[str] = []  # the blobs read one by one
        self.git("init", "-q", str(path), cwd=path.parent)
        for name, content in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            data = content.encode() if isinstance(content, str) else content
            (path / name).write_bytes(data)
        for name in executable:
            (path / name).chmod(0o755)
        for name, target in (links or {}).items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).symlink_to(target)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "one")

    def git(self, *args: str, cwd: Path | None = None) -> bytes:
        return subprocess.run(["git", *args], cwd=cwd or self.path, env=ENV, check=True,
                              capture_output=True).stdout

    def archive(self) -> bytes:
        return self.git("archive", "--format=tar.gz", "--prefix=repo-abc/", "HEAD")

    def listed(self, recursive: bool = False) -> list[Listed]:
        out = self.git("ls-tree", "-z", *(["-r"] if recursive else []), "HEAD")
        entries = []
        for record in out.split(b"\0"):
            if record:
                meta, _, path = record.partition(b"\t")
                mode, _kind, oid = meta.split()
                entries.append(Listed(path.decode("utf-8", "surrogateescape"), int(mode, 8),
                                      oid.decode()))
        return entries

    def blob(self, oid: str) -> bytes:
        self.reads.append(oid)
        return self.git("cat-file", "blob", oid)

    def modeless(self, recursive: bool = False) -> list[Listed]:
        """As Bitbucket Data Center lists: ids, and no mode for a blob (``BLOB``)."""
        return [Listed(e.path, BLOB, e.oid) if e.mode not in (archive.TREE, archive.GITLINK)
                else e for e in self.listed(recursive)]

    def sized(self) -> list[Sized]:
        """As Bitbucket Cloud lists: every blob's kind and size, no ids."""
        out = self.git("ls-tree", "-r", "-l", "-z", "HEAD")
        entries = []
        for record in out.split(b"\0"):
            if record:
                meta, _, path = record.partition(b"\t")
                mode, _kind, _oid, size = meta.split()
                entries.append(Sized(path.decode(), int(mode, 8),
                                     int(size) if size != b"-" else 0))
        return entries

    def read(self, path: str) -> bytes:
        self.reads.append(path)
        return self.git("cat-file", "blob", f"HEAD:{path}")


def repo(tmp_path: Path, files: Mapping[str, bytes | str], *,
         executable: tuple[str, ...] = (), links: Mapping[str, str] | None = None) -> Repo:
    return Repo(tmp_path / "r", files, executable=executable, links=links)


def no_listing() -> list[Listed]:
    raise AssertionError("an archive equal to the tree needs no listing")


def test_tree_ids_are_gits_for_names_modes_and_links(tmp_path: Path) -> None:
    # git sorts a tree's name as if it ended in "/": "a-b" < "a.b" < "a/" < "a0"; plain
    # byte order would put "a" first and give the directory d another id
    r = repo(tmp_path, {"d/a/x.yaml": "x: 1\n", "d/a-b": "1\n", "d/a.b": "2\n", "d/a0": "3\n",
                        "a/b/c/deep.yaml": "d\n", "envs/dev/api.yaml": "image: api:1\n",
                        "run.sh": "#!/bin/sh\n", "ünïcode name.yaml": "u: 1\n",
                        "empty": ""},
             executable=("run.sh",), links={"envs/prod": "dev", "top": "d/a/x.yaml"})
    unpacked = unpack_archive(r.archive())
    assert unpacked.links == {"envs/prod": "dev", "top": "d/a/x.yaml"}
    assert unpacked.executable == {"run.sh"}
    expected = {e.path: (e.mode, e.oid) for e in r.listed()}
    assert root_entries(unpacked.entries()) == expected
    prove(unpacked, r.listed(), no_listing, r.blob, "r")
    assert r.reads == []


def test_files_left_out_for_their_size_still_hash(tmp_path: Path) -> None:
    r = repo(tmp_path, {"big/values.yaml": "x" * 5000, "big/run.sh": "#" * 5000,
                        "small.yaml": "s: 1\n"}, executable=("big/run.sh",))
    unpacked = unpack_archive(r.archive(), max_file=1000)
    assert unpacked.oversize == {"big/values.yaml": git_blob_sha(b"x" * 5000),
                                 "big/run.sh": git_blob_sha(b"#" * 5000)}
    prove(unpacked, r.listed(), no_listing, r.blob, "r")
    assert set(unpacked.files) == {"small.yaml"}


def test_a_submodule_needs_no_listing(tmp_path: Path) -> None:
    r = repo(tmp_path, {"a.yaml": "a: 1\n"})
    sub = "1" * 40
    r.git("update-index", "--add", "--cacheinfo", f"160000,{sub},vendor")
    r.git("commit", "-q", "-m", "submodule")
    unpacked = unpack_archive(r.archive())
    assert any(e.mode == archive.GITLINK for e in r.listed())
    prove(unpacked, r.listed(), no_listing, r.blob, "r")


def test_hidden_expanded_and_converted_entries_are_read_from_the_tree(tmp_path: Path) -> None:
    stamped = b"# $Format:%H$\nimage: api:1\n"
    r = repo(tmp_path, {
        "envs/dev/api.yaml": "image: api:1\n",
        "envs/dev/stamp.yaml": stamped,
        "envs/dev/crlf.yaml": "a: 1\nb: 2\n",
        "untouched.yaml": "u: 1\n",
        ".gitattributes": "envs/prod/** export-ignore\nenvs/dev/stamp.yaml export-subst\n"
                          "envs/dev/crlf.yaml text eol=crlf\n.gitattributes export-ignore\n",
    }, links={"envs/prod/api.yaml": "../dev/api.yaml"})
    unpacked = unpack_archive(r.archive())
    assert "envs/prod/api.yaml" not in unpacked.links  # what the archive shows
    assert unpacked.files["envs/dev/stamp.yaml"] != stamped
    assert unpacked.files["envs/dev/crlf.yaml"] == b"a: 1\r\nb: 2\r\n"
    prove(unpacked, r.listed(), lambda: r.listed(recursive=True), r.blob, "r")
    assert unpacked.links == {"envs/prod/api.yaml": "../dev/api.yaml"}
    assert unpacked.files["envs/dev/stamp.yaml"] == stamped
    assert unpacked.files["envs/dev/crlf.yaml"] == b"a: 1\nb: 2\n"
    assert ".gitattributes" in unpacked.files
    assert len(r.reads) == 4  # the link, the stamp, the CRLF file, .gitattributes
    assert root_entries(unpacked.entries()) == {e.path: (e.mode, e.oid) for e in r.listed()}


def test_a_path_the_tree_does_not_hold_is_dropped(tmp_path: Path) -> None:
    r = repo(tmp_path, {"a.yaml": "a: 1\n"})
    unpacked = unpack_archive(r.archive())
    unpacked.files["smuggled.yaml"] = b"image: evil:1\n"
    prove(unpacked, r.listed(), lambda: r.listed(recursive=True), r.blob, "r")
    assert set(unpacked.files) == {"a.yaml"}


def test_a_blob_that_is_not_the_listed_one_stops_the_run(tmp_path: Path) -> None:
    r = repo(tmp_path, {"a.yaml": "a: 1\n", ".gitattributes": "a.yaml export-ignore\n"})
    unpacked = unpack_archive(r.archive())
    with pytest.raises(ForgeError, match=r"sent a\.yaml of r as bytes that are not the blob") \
            as info:
        prove(unpacked, r.listed(), lambda: r.listed(recursive=True),
              lambda oid: b"a: 2\n", "r")
    assert info.value.code == 5


def test_too_many_differences_stop_the_run_naming_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "MAX_REPAIRS", 2)
    r = repo(tmp_path, {"a.yaml": "a\n", "b.yaml": "b\n", "c.yaml": "c\n",
                        ".gitattributes": "*.yaml export-ignore\n"})
    unpacked = unpack_archive(r.archive())
    with pytest.raises(ForgeError, match=r"differs from its tree in 3 files \(a\.yaml, "
                                         r"b\.yaml, c\.yaml, …\).*export-ignore") as info:
        prove(unpacked, r.listed(), lambda: r.listed(recursive=True), r.blob, "r")
    assert info.value.code == 5
    assert r.reads == []  # refused before reading any


# --- without modes (Bitbucket Data Center) ------------------------------------------------


def test_tree_ids_are_gits_for_every_directory(tmp_path: Path) -> None:
    r = repo(tmp_path, {"envs/dev/a.yaml": "a\n", "envs/prod/b.yaml": "b\n", "c": "c\n"},
             executable=("c",), links={"envs/stage": "dev"})
    ids = tree_ids(unpack_archive(r.archive()).entries())
    for directory in ("envs", "envs/dev", "envs/prod"):
        assert ids[directory] == r.git("rev-parse", f"HEAD:{directory}").decode().strip()
    assert ids[""] == r.git("rev-parse", "HEAD^{tree}").decode().strip()


def test_ids_without_modes_prove_the_archive(tmp_path: Path) -> None:
    r = repo(tmp_path, {"a.yaml": "a: 1\n", "run.sh": "#!/bin/sh\n", "d/x": "x\n"},
             executable=("run.sh",), links={"top": "a.yaml"})
    unpacked = unpack_archive(r.archive())
    prove(unpacked, r.modeless(), no_listing, r.blob, "r")
    assert unpacked.links == {"top": "a.yaml"} and unpacked.executable == {"run.sh"}


def test_a_hidden_link_without_its_mode_is_known_by_its_bytes(tmp_path: Path) -> None:
    r = repo(tmp_path, {"envs/dev/api.yaml": "image: api:1\n", "envs/prod/note": "../dev",
                        ".gitattributes": "envs/prod/** export-ignore\n"},
             links={"envs/prod/api.yaml": "../dev/api.yaml", "envs/prod/all": "../dev",
                    "envs/prod/nowhere": "../gone.yaml"})
    unpacked = unpack_archive(r.archive())
    assert not any(p.startswith("envs/prod/") for p in unpacked.entries())
    prove(unpacked, r.modeless(), lambda: r.modeless(recursive=True), r.blob, "r")
    # links to a file and to a directory of the tree; a file that says "../dev" without a
    # newline reads as one too (fail closed); a link to nothing stays a file (aliases
    # nothing)
    assert unpacked.links == {"envs/prod/api.yaml": "../dev/api.yaml", "envs/prod/all": "../dev",
                              "envs/prod/note": "../dev"}
    assert unpacked.files["envs/prod/nowhere"] == b"../gone.yaml"
    assert len(r.reads) == 4


@pytest.mark.parametrize(("data", "expected"), [
    (b"../dev/api.yaml", True), (b"../dev", True), (b"..", True), (b"api.yaml", False),
    (b"../dev/api.yaml\n", False), (b"/etc/passwd", False), (b"../../out", False),
    (b"", False), (b"../dev\0", False), (b"\xff", False),
    (b"./" * 3000 + b"../dev/api.yaml", True),  # longer than any link git makes: still one
])
def test_what_reads_as_a_link(data: bytes, expected: bool) -> None:
    assert looks_like_link("envs/prod/api.yaml", data, ["envs/dev/api.yaml"]) is expected


# --- without ids (Bitbucket Cloud) --------------------------------------------------------

SAME_SIZE = "# $Format:%H" + "%%" * 29 + "$\nimage: api:1\n"  # 40 hex and 29 % : same size


def test_sizes_kinds_and_attributes_repair_the_archive(tmp_path: Path) -> None:
    r = repo(tmp_path, {
        "envs/dev/api.yaml": "image: api:1\n", "envs/dev/stamp.yaml": SAME_SIZE,
        "envs/dev/crlf.yaml": "a: 1\nb: 2\n", "untouched.yaml": "u: 1\n",
        ".gitattributes": "envs/prod/** export-ignore\n*.yaml -export-subst\n"
                          "envs/dev/crlf.yaml text eol=crlf\n.gitattributes export-ignore\n",
        "envs/dev/.gitattributes": "stamp.yaml export-subst\n",
    }, links={"envs/prod/api.yaml": "../dev/api.yaml"})
    unpacked = unpack_archive(r.archive())
    assert unpacked.files["envs/dev/stamp.yaml"] != SAME_SIZE.encode()
    assert len(unpacked.files["envs/dev/stamp.yaml"]) == len(SAME_SIZE)  # sizes cannot tell
    prove_by_size(unpacked, r.sized(), r.read, "r")
    assert unpacked.links == {"envs/prod/api.yaml": "../dev/api.yaml"}
    assert unpacked.files["envs/dev/stamp.yaml"] == SAME_SIZE.encode()
    assert unpacked.files["envs/dev/crlf.yaml"] == b"a: 1\nb: 2\n"
    assert root_entries(unpacked.entries()) == {e.path: (e.mode, e.oid) for e in r.listed()}
    # both .gitattributes, the link, the stamp (same size), the CRLF file (larger)
    assert sorted(r.reads) == [".gitattributes", "envs/dev/.gitattributes",
                               "envs/dev/crlf.yaml", "envs/dev/stamp.yaml",
                               "envs/prod/api.yaml"]


def test_an_archive_equal_in_size_and_kind_needs_no_read(tmp_path: Path) -> None:
    r = repo(tmp_path, {"a.yaml": "a: 1\n", "run.sh": "#!/bin/sh\n"}, executable=("run.sh",),
             links={"top": "a.yaml"})
    unpacked = unpack_archive(r.archive())
    unpacked.files["smuggled.yaml"] = b"image: evil:1\n"
    prove_by_size(unpacked, r.sized(), r.read, "r")
    assert r.reads == [] and set(unpacked.files) == {"a.yaml", "run.sh"}


def test_a_file_sent_at_another_size_stops_the_run(tmp_path: Path) -> None:
    r = repo(tmp_path, {"a.yaml": "a: 1\n", ".gitattributes": "a.yaml export-ignore\n"})
    unpacked = unpack_archive(r.archive())
    with pytest.raises(ForgeError, match=r"sent a\.yaml of r as 9 bytes, but lists it "
                                         r"with 5") as info:
        prove_by_size(unpacked, r.sized(),
                      lambda p: b"a: 1\nb: 2" if p == "a.yaml" else r.read(p), "r")
    assert info.value.code == 5


def test_too_many_files_to_read_stop_the_run_before_reading_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "MAX_REPAIRS", 3)
    r = repo(tmp_path, {"a.yaml": "a\n", "b.yaml": "b\n", "c.yaml": "c\n",
                        ".gitattributes": "*.yaml ident\n"})
    unpacked = unpack_archive(r.archive())
    with pytest.raises(ForgeError, match=r"differs from its tree in 4 files") as info:
        prove_by_size(unpacked, r.sized(), r.read, "r")
    assert info.value.code == 5
    assert r.reads == [".gitattributes"]


@pytest.mark.parametrize(("rules", "expected"), [
    ({".gitattributes": b"* text=auto\n*.yaml eol=lf\n"}, set()),
    ({".gitattributes": b"*.yaml export-subst\n"}, {"a.yaml", "envs/dev/b.yaml"}),
    ({".gitattributes": b"*.yaml -export-subst !ident\n"}, set()),
    ({".gitattributes": b"envs/dev/b.yaml ident\n"}, {"envs/dev/b.yaml"}),
    ({".gitattributes": b"/a.yaml filter=lfs\n"}, {"a.yaml"}),
    ({"envs/.gitattributes": b"*.yaml working-tree-encoding=UTF-16\n"}, {"envs/dev/b.yaml"}),
    ({"envs/.gitattributes": b"/b.yaml export-subst\n"}, set()),
    ({".gitattributes": b"[attr]stamp export-subst\n*.md stamp\n"}, {"README.md"}),
    ({".gitattributes": b"**/b.yaml export-subst\n"}, {"a.yaml", "envs/dev/b.yaml",
                                                         "README.md"}),
    ({".gitattributes": b"[ab].yaml export-subst\n"}, {"a.yaml", "envs/dev/b.yaml",
                                                        "README.md"}),
    ({".gitattributes": b"# *.yaml export-subst\n"}, set()),
])
def test_which_files_an_attribute_may_rewrite(rules: dict[str, bytes],
                                              expected: set[str]) -> None:
    files = ["a.yaml", "envs/dev/b.yaml", "README.md"]
    assert gitattributes_may_rewrite(rules, files) == expected


def test_an_unreadable_or_too_large_download_stops_the_run_naming_it() -> None:
    from promoter.limits import ArchiveTooLarge

    with pytest.raises(ForgeError, match=r"^Gitea sent an unreadable archive of main of "
                                         r"acme/config") as info:
        archive.download(lambda: b"\x1f\x8b not a tarball", "Gitea", "main of acme/config")
    assert info.value.code == 5

    def too_large() -> bytes:
        raise ArchiveTooLarge("the archive has", 64)

    with pytest.raises(ForgeError, match=r"could not download the archive of main of "
                                         r"acme/config: the archive has") as info:
        archive.download(too_large, "Gitea", "main of acme/config")
    assert "SECURITY.md (limits)" in (info.value.hint or "")
