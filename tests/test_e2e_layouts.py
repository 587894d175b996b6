"""One promotion through a whole example config repo laid out like real ones
(tests/example_repo: a Helm chart with its templates, kustomize base and overlays, a
Flux HelmRelease, an Argo CD ApplicationSet, plain manifests), through the real CLI:
``--in-place`` on a working tree, and ``--forge git`` against a real bare repo. Both
must change exactly the same lines, and nothing else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from promoter.cli import run
from tests.fakes.gitrepo import BareRepo

EXAMPLE = Path(__file__).parent / "example_repo"
IMAGES = ("--image", "ghcr.io/acme/shop:2.3.0", "--image", "redis:7.4.1")

# (file, line, the line after the promotion): every line that changes, and only those
CHANGED = {
    ("argocd/shop-previews.yaml", 12, '            shopTag: "2.3.0"'),
    ("argocd/shop-previews.yaml", 14, '            shopTag: "2.3.0"'),
    ("charts/shop/values.yaml", 6, '  tag: "2.3.0"'),
    ("charts/shop/values.yaml", 11, "    tag: 7.4.1"),
    ("clusters/prod/apps/shop.yaml", 30, "      tag: 2.3.0 # values of the chart, overridden here"),
    ("k8s/base/deployment.yaml", 12, "          image: redis:7.4.1"),
    ("k8s/overlays/dev/kustomization.yaml", 8, "    newTag: 2.3.0"),
    ("k8s/overlays/prod/Kustomization", 6, '  newTag: "2.3.0"   # held back'),
    ("manifests/migrate.yaml", 13, '          image: "ghcr.io/acme/shop:2.3.0"'),
}
SKIPPED = {
    ("argocd/shop-previews.yaml", 27),  # the template's {{.shopTag}}: its elements were edited
    ("charts/shop/templates/deployment.yaml", 11),  # a Go template, never read as YAML
    ("k8s/base/deployment.yaml", 10),  # untagged in the base: the overlays set the tag
}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.parts}


def changed_lines(before: dict[str, bytes], after: dict[str, bytes]) -> set[tuple[str, int, str]]:
    """(file, line, new text) of every line that differs; files must keep their line count."""
    assert set(before) == set(after)
    out = set()
    for name in before:
        old, new = before[name].splitlines(), after[name].splitlines()
        assert len(old) == len(new), name
        out |= {(name, i + 1, b.decode()) for i, (a, b) in enumerate(zip(old, new, strict=True))
                if a != b}
    return out


def test_in_place_changes_exactly_these_lines(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "config"
    shutil.copytree(EXAMPLE, repo)
    before = _tree(repo)
    assert run(["--repo", str(repo), *IMAGES, "--in-place", "--output", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert changed_lines(before, _tree(repo)) == CHANGED
    assert {(s["file"], s["line"]) for s in result["skips"]} == SKIPPED
    # every change is reported where it is
    assert {(c["file"], c["line"]) for c in result["changes"]} == {(f, n) for f, n, _ in CHANGED}
    # a second run finds everything up to date and writes nothing
    after = _tree(repo)
    assert run(["--repo", str(repo), *IMAGES, "--in-place", "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "up-to-date"
    assert _tree(repo) == after


def test_git_forge_commits_exactly_these_lines(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    files = _tree(EXAMPLE)
    bare = BareRepo.init(tmp_path / "config.git", files)
    main = bare.resolve("main")
    assert run(["--repo", str(bare.path), "--forge", "git", *IMAGES, "--output", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    commit = result["commit"]
    assert bare.resolve(f"refs/heads/{result['branch']}") == commit
    assert bare.log(commit, 2)[1]["sha"] == main  # one commit on top of main
    assert bare.resolve("main") == main  # no config: nothing merges by itself
    after = {name: bare.read_file(commit, name) or b"" for name in files}
    assert changed_lines(files, after) == CHANGED
    assert {(s["file"], s["line"]) for s in result["skips"]} == SKIPPED
