"""Golden files: each case under tests/golden/ is a small config repo, its promote
arguments, and the files it must become, byte for byte (expected/). A file with no
expected copy must come out untouched."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from promoter.cli import run

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "args").is_file())


def _inputs(case: Path) -> list[Path]:
    return [p for p in case.rglob("*") if p.is_file() and p.name != "args"
            and "expected" not in p.relative_to(case).parts]


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str, tmp_path: Path) -> None:
    case = GOLDEN / name
    repo = tmp_path / "repo"
    for src in _inputs(case):
        dest = repo / src.relative_to(case)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    args = shlex.split((case / "args").read_text())
    assert run(["--repo", str(repo), *args, "--in-place"]) == 0
    for src in _inputs(case):
        rel = src.relative_to(case)
        expected = case / "expected" / rel
        want = expected.read_bytes() if expected.exists() else src.read_bytes()
        assert (repo / rel).read_bytes() == want, f"{name}/{rel} differs from its golden copy"
    # a second run is a no-op: the files already hold the promoted values
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    assert run(["--repo", str(repo), *args, "--in-place"]) == 0
    assert {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()} == before


def test_every_case_changes_something() -> None:
    for name in CASES:
        assert any((GOLDEN / name / "expected").rglob("*.*")), name


# --- kustomize semantics: what the promoted overlays render ------------------------------

def _load(path: Path) -> list[Any]:
    return [d for d in YAML(typ="safe").load_all(path.read_text()) if d]


def _kustomization(folder: Path) -> Path:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (folder / name).is_file():
            return folder / name
    raise AssertionError(f"no kustomization in {folder}")


def _containers(doc: Any) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return [c for c in spec.get("containers", []) if "image" in c]


def _apply_images(image: str, entries: list[dict[str, Any]]) -> str:
    """kustomize's images transformer on one container image."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = name[colon + 1 :] if colon > slash else ""
    name = name[:colon] if colon > slash else name
    for entry in entries:
        if entry["name"] != name:
            continue
        name = entry.get("newName", name)
        tag = str(entry.get("newTag", tag))
        digest = entry.get("digest", digest if "newTag" not in entry else "")
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def render_images(folder: Path) -> list[str]:
    """The container images ``kustomize build folder`` puts out (resources, bases,
    components and their patches; images transformers applied inner first)."""
    (doc,) = _load(_kustomization(folder))
    images: list[str] = []
    for ref in doc.get("resources", []) + doc.get("bases", []) + doc.get("components", []):
        target = (folder / ref).resolve()
        if target.is_dir():
            images += render_images(target)
        else:
            images += [c["image"] for d in _load(target) for c in _containers(d)]
    for patch in doc.get("patches", []):
        images += [c["image"] for d in _load(folder / patch["path"]) for c in _containers(d)]
    return [_apply_images(i, doc.get("images", [])) for i in images]


def _promoted(name: str, tmp_path: Path) -> Path:
    case = GOLDEN / name
    repo = tmp_path / name
    for src in _inputs(case):
        dest = repo / src.relative_to(case)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    assert run(["--repo", str(repo), *shlex.split((case / "args").read_text()),
                "--in-place"]) == 0
    return repo


def test_kustomize_overlays_render_the_promoted_image(tmp_path: Path) -> None:
    repo = _promoted("kustomize_bases", tmp_path)
    for overlay in ("dev", "staging", "prod"):
        images = render_images(repo / "overlays" / overlay)
        assert images and set(images) == {"ghcr.io/acme/api:1.5.0"}, overlay
    # the base stays untagged: an overlay's tag, not the base's, decides
    base = (repo / "base" / "deployment.yaml").read_text()
    assert "image: ghcr.io/acme/api # tag set by the overlay" in base


def test_kustomize_digest_pin_survives_the_render(tmp_path: Path) -> None:
    repo = _promoted("kustomize_digest", tmp_path)
    (doc,) = _load(repo / "kustomization.yaml")
    _, api, _, worker = shlex.split((GOLDEN / "kustomize_digest" / "args").read_text())
    assert _apply_images("ghcr.io/acme/api", doc["images"]) == api
    assert _apply_images("worker:0.1", doc["images"]) == worker


@pytest.mark.skipif(shutil.which("kustomize") is None, reason="kustomize is not installed")
def test_kustomize_build_agrees(tmp_path: Path) -> None:
    repo = _promoted("kustomize_bases", tmp_path)
    for overlay in ("dev", "staging", "prod"):
        out = subprocess.run(["kustomize", "build", str(repo / "overlays" / overlay)],
                             check=True, capture_output=True, text=True).stdout
        images = [c["image"] for d in YAML(typ="safe").load_all(out) if d
                  for c in _containers(d)]
        assert images and set(images) == {"ghcr.io/acme/api:1.5.0"}, overlay
