"""The local command end to end: exit codes, JSON contract, nothing written on error."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from promoter import __version__
from promoter.cli import run

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  template:
    spec:
      containers:
      - name: api
        image: ghcr.io/acme/api:1.4.2  # app
"""


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file() and not p.is_symlink():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "config"
    (root / "envs/dev").mkdir(parents=True)
    (root / "envs/prod").mkdir(parents=True)
    (root / "envs/dev/deploy.yaml").write_text(DEPLOY)
    (root / "envs/prod/deploy.yaml").write_text(DEPLOY)
    return root


def _promote(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_dry_run_json_contract(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _tree_hash(repo)
    code, out, _ = _promote(["--repo", str(repo), "--image", "ghcr.io/acme/api:1.5.0",
                             "--dry-run", "--output", "json"], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["status"] == "dry-run"
    assert [(c["file"], c["line"], c["old"], c["new"]) for c in result["changes"]] == [
        ("envs/dev/deploy.yaml", 9, "ghcr.io/acme/api:1.4.2", "ghcr.io/acme/api:1.5.0"),
        ("envs/prod/deploy.yaml", 9, "ghcr.io/acme/api:1.4.2", "ghcr.io/acme/api:1.5.0"),
    ]
    assert "-        image: ghcr.io/acme/api:1.4.2  # app\n" in result["diff"]
    assert "+        image: ghcr.io/acme/api:1.5.0  # app\n" in result["diff"]
    assert _tree_hash(repo) == before


def test_in_place_with_path_and_file(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _promote(["--repo", str(repo), "--image", "ghcr.io/acme/api:1.5.0",
                             "--path", "envs/dev", "--in-place", "--no-color"], capsys)
    assert code == 0 and "edited 1 file(s)" in out
    assert (repo / "envs/dev/deploy.yaml").read_text() == DEPLOY.replace("1.4.2", "1.5.0")
    assert (repo / "envs/prod/deploy.yaml").read_text() == DEPLOY
    code, out, _ = _promote(["--repo", str(repo), "--image", "ghcr.io/acme/api:1.5.0",
                             "--file", "envs/dev/*.yaml", "--in-place"], capsys)
    assert code == 0 and "already up to date" in out


def test_exit_3_when_referenced_nowhere(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _promote(["--repo", str(repo), "--image", "ghcr.io/acme/other:1",
                             "--dry-run"], capsys)
    assert code == 3 and "referenced nowhere" in err


@pytest.mark.parametrize(
    "extra",
    [
        ["--file", "../../etc/passwd"],
        ["--file", "/etc/passwd"],
        ["--path", "../"],
        ["--file", "envs/missing.yaml"],
        ["--image", "ghcr.io/acme/api:1.5.0\nevil"],
        ["--image", "ghcr.io/Acme/api:1"],
        ["--set", "envs/dev/deploy.yaml:spec=$(id)"],
        ["--marker", "no-colon=ghcr.io/acme/api:1"],
    ],
)
def test_bad_input_is_exit_2_and_writes_nothing(repo: Path, extra: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    before = _tree_hash(repo)
    code, out, err = _promote(["--repo", str(repo), "--image", "ghcr.io/acme/api:1.5.0",
                               *extra, "--in-place"], capsys)
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err + out
    assert _tree_hash(repo) == before


def test_symlink_out_of_the_repo(repo: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(DEPLOY)
    (repo / "envs/dev/link.yaml").symlink_to(outside)
    code, _, err = _promote(["--repo", str(repo), "--image", "ghcr.io/acme/api:1.5.0",
                             "--file", "envs/dev/link.yaml", "--in-place"], capsys)
    assert code == 2 and "outside" in err
    code, _, _ = _promote(["--repo", str(repo), "--image", "ghcr.io/acme/api:1.5.0",
                           "--in-place"], capsys)
    assert code == 0
    assert outside.read_text() == DEPLOY  # never written through the link


def test_one_bad_file_means_no_file_written(repo: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "envs/prod/broken.yaml").write_text("image: ghcr.io/acme/api:1\nx: [\n")
    before = _tree_hash(repo)
    code, out, err = _promote(["--repo", str(repo), "--image", "ghcr.io/acme/api:1.5.0",
                               "--in-place", "--output", "json"], capsys)
    assert code == 2
    assert json.loads(out)["error"].startswith("envs/prod/broken.yaml:3:")
    assert "envs/prod/broken.yaml:3:" in err
    assert _tree_hash(repo) == before


def test_env_variables_configure_options(repo: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMOTE_IMAGE", "ghcr.io/acme/api:1.6.0")
    monkeypatch.setenv("PROMOTE_PATH", "envs/prod")
    code, _, _ = _promote(["--repo", str(repo), "--in-place"], capsys)
    assert code == 0
    assert "1.6.0" in (repo / "envs/prod/deploy.yaml").read_text()
    assert "1.4.2" in (repo / "envs/dev/deploy.yaml").read_text()


def test_console_script_version_and_help() -> None:
    exe = Path(sys.executable).with_name("promote")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMOTE_")}
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert out.strip() == f"promote, version {__version__}"
    helptext = subprocess.run([str(exe), "--help"], capture_output=True, text=True, env=env,
                              check=True).stdout
    assert "Exit codes:" in helptext and "4  policy refused" in helptext
    # start-up stays light: no forge client or YAML library for --version
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; from promoter import cli; "
         "print(sorted(m for m in ('github','gitlab','ruamel.yaml') if m in sys.modules))"],
        capture_output=True, text=True, env=env, check=True).stdout
    assert probe.strip() == "[]"
