"""The native candidate search (grep) selects what the pure-Python reader selects.

On a generated config repo (bench/gen_repo.py, with the target's look-alikes) plus
awkward files: the plan made with grep's candidates equals the plan made by reading
every file in Python, grep's list holds every file the byte pre-filter passes, and the
files grep rules out are never read. Without grep on PATH the Python reader is used.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import gen_repo
from promoter.edit import Targets
from promoter.images import parse
from promoter.local import SKIP_DIRS, WorkTree
from promoter.paths import is_manifest
from promoter.plan import make_plan, may_mention, needle_pattern
from promoter.search import grep_holding

AWKWARD = {
    "odd name with spaces.yaml": b"image: ghcr.io/acme/api:1.4.0\n",
    "utf8.yaml": "# café\nimage: ghcr.io/acme/api:1.4.0\n".encode(),
    "crlf.yml": b"image: ghcr.io/acme/api:1.4.0\r\nother: x\r\n",
    "deep/a/b/c/d/Kustomization": b"images:\n- name: ghcr.io/acme/api\n  newTag: 1.4.0\n",
    "url-only.yaml": b"endpoint: http://api:8080/v1\n",  # needle bytes, no reference
    "node_modules/pkg/skip.yaml": b"image: ghcr.io/acme/api:1.4.0\n",  # never walked
    ".hidden/kept.yaml": b"image: ghcr.io/acme/api:1.4.0\n",
    "notes.txt": b"ghcr.io/acme/api:1.4.0\n",  # not a manifest
}


class CountingTree(WorkTree):
    def __init__(self, root: Path, native_search: bool = True,
                 prefetch: tuple[bytes, ...] = ()) -> None:
        self.read: list[str] = []
        super().__init__(root, native_search, prefetch)

    def __getitem__(self, key: str) -> bytes:
        self.read.append(key)
        return super().__getitem__(key)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("search") / "repo"
    gen_repo.generate(root, 300, 5)
    for rel, data in AWKWARD.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "linked.yaml").symlink_to(root / "odd name with spaces.yaml")
    return root


TARGETS = Targets((parse("ghcr.io/acme/api:1.5.0"),))


def test_grep_and_python_make_the_same_plan(repo: Path) -> None:
    native, python = CountingTree(repo), CountingTree(repo, native_search=False)
    with_grep = make_plan(native, TARGETS, lambda _: True)
    without = make_plan(python, TARGETS, lambda _: True)
    assert with_grep == without
    assert len(with_grep.files) >= 10  # the generator's ten files, and the awkward ones
    assert "odd name with spaces.yaml" in with_grep.files
    assert "deep/a/b/c/d/Kustomization" in with_grep.files
    assert "utf8.yaml" in with_grep.files and "crlf.yml" in with_grep.files
    assert set(native.read) < set(python.read)  # grep spared the reading
    assert len(set(native.read)) * 3 < len(set(python.read))


def test_grep_lists_every_file_the_prefilter_passes(repo: Path) -> None:
    tree = WorkTree(repo, native_search=False)
    needles = tuple(TARGETS.needles())
    pattern = needle_pattern(needles)
    holding = grep_holding(repo, pattern.pattern, SKIP_DIRS)
    assert holding is not None
    passed = {p for p in tree if may_mention(pattern, tree[p])}
    assert passed <= holding
    assert "url-only.yaml" in holding and "url-only.yaml" not in passed  # a superset
    assert not any(p.startswith("node_modules/") for p in holding)
    assert "notes.txt" not in holding and "linked.yaml" not in holding


def test_without_grep_the_python_reader_is_used(repo: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", os.devnull)
    tree = CountingTree(repo)
    assert tree.holding(tuple(TARGETS.needles())) is None
    plan = make_plan(tree, TARGETS, lambda _: True)
    assert plan == make_plan(WorkTree(repo, native_search=False), TARGETS, lambda _: True)
    assert set(tree.read) == {p for p in tree if is_manifest(p)}  # every one, in Python


def test_a_search_that_cannot_run_falls_back_to_python(tmp_path: Path) -> None:
    assert grep_holding(tmp_path / "vanished", b"api") is None
    (tmp_path / "a.yaml").write_bytes(b"image: ghcr.io/acme/api:1.4.0\n")
    assert grep_holding(tmp_path, b"api") == {"a.yaml"}


def test_patterns_grep_cannot_take_are_left_to_python(repo: Path) -> None:
    assert grep_holding(repo, b"a\nb") is None
    assert grep_holding(repo, b"") is None
    assert grep_holding(repo, b"(?<=a+)b") is None  # PCRE: lookbehind of no fixed length


def test_a_search_started_before_the_walk_answers_for_fewer_needles(repo: Path) -> None:
    """run_local starts grep for the images and the Flux marker while the tree is walked;
    the planner's own needles (a subset) are answered from it: no second grep."""
    from promoter.edit import markers

    tree = CountingTree(repo, prefetch=(*TARGETS.needles(), markers.NEEDLE))
    assert len(tree._holding) == 1
    plan = make_plan(tree, TARGETS, lambda _: True)
    assert len(tree._holding) == 1  # served by the early search
    assert plan == make_plan(WorkTree(repo, native_search=False), TARGETS, lambda _: True)
