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


# --- --history: the JSON and the text, pinned byte for byte ------------------------------


def _git(*args: str, cwd: Path, date: str = "2026-05-07T10:00:00+00:00") -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "Rel Bot", "GIT_AUTHOR_EMAIL": "bot@example.com",
           "GIT_COMMITTER_NAME": "Rel Bot", "GIT_COMMITTER_EMAIL": "bot@example.com",
           "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout


HISTORY_COMMITS = [
    ("2026-05-07T10:00:00+00:00", "promote(prod): acme/api 1.4.1 → 1.4.2\n\n"
     "Promoted-Image: ghcr.io/acme/api:1.4.2\nPrevious-Image: ghcr.io/acme/api:1.4.1\n"
     "Environment: prod\nSource-Commit: 0123456789abcdef0123\n"
     "Pipeline: https://ci.example.com/p/7\nPromote-Fingerprint: aaaa\n"),
    ("2026-05-08T11:30:00+00:00", "rollback(prod): acme/api 1.4.2 → 1.4.1\n\n"
     "Promoted-Image: ghcr.io/acme/api:1.4.1\nPrevious-Image: ghcr.io/acme/api:1.4.2\n"
     "Environment: prod\nPromote-Rollback-Of: ghcr.io/acme/api:1.4.2\n"
     "Promote-Fingerprint: bbbb\n"),
]


@pytest.fixture
def history_repo(tmp_path: Path) -> Path:
    work, bare = tmp_path / "seed", tmp_path / "config.git"
    (work / "envs/prod").mkdir(parents=True)
    (work / "envs/prod/deploy.yaml").write_text(DEPLOY)
    _git("init", "-q", "-b", "main", cwd=work)
    _git("add", ".", cwd=work)
    _git("commit", "-q", "-m", "seed", cwd=work)
    for date, message in HISTORY_COMMITS:
        _git("commit", "-q", "--allow-empty", "-m", message, cwd=work, date=date)
    _git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    return bare


ROLLBACK_SHA = "65d002fe0c002d1bcc038957d6e7dfde0954d25f"
PROMOTION_SHA = "0236b625ffdc6a4b33dfb9c523e5e516c2c67dd3"
HISTORY_LINES = (
    f"2026-05-08T11:30:00+00:00  {ROLLBACK_SHA[:12]}  prod  ghcr.io/acme/api:1.4.2 -> "
    "ghcr.io/acme/api:1.4.1  by Rel Bot [rollback]\n"
    f"2026-05-07T10:00:00+00:00  {PROMOTION_SHA[:12]}  prod  ghcr.io/acme/api:1.4.1 -> "
    "ghcr.io/acme/api:1.4.2  by Rel Bot  source 0123456789ab"
)


def test_history_json_and_text_are_pinned(history_repo: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--repo", str(history_repo), "--history", "--env", "prod"]
    code, out, err = _promote([*args, "--output", "json"], capsys)
    assert code == 0, err
    expected = {
        "status": "history", "forge": "git", "env": "prod",
        "history": [
            {"commit": ROLLBACK_SHA, "date": "2026-05-08T11:30:00+00:00", "author": "Rel Bot",
             "env": "prod", "images": ["ghcr.io/acme/api:1.4.1"],
             "previous": ["ghcr.io/acme/api:1.4.2"], "rollback_of": ["ghcr.io/acme/api:1.4.2"],
             "source_commit": None, "pipeline": None,
             "title": "rollback(prod): acme/api 1.4.2 → 1.4.1"},
            {"commit": PROMOTION_SHA, "date": "2026-05-07T10:00:00+00:00", "author": "Rel Bot",
             "env": "prod", "images": ["ghcr.io/acme/api:1.4.2"],
             "previous": ["ghcr.io/acme/api:1.4.1"], "rollback_of": None,
             "source_commit": "0123456789abcdef0123", "pipeline": "https://ci.example.com/p/7",
             "title": "promote(prod): acme/api 1.4.1 → 1.4.2"},
        ],
        "message": HISTORY_LINES,
    }
    assert out == json.dumps(expected, indent=2, ensure_ascii=False) + "\n"  # keys in order
    code, out, err = _promote(args, capsys)
    assert code == 0, err
    assert out == HISTORY_LINES + "\n"
    code, out, err = _promote(["--repo", str(history_repo), "--history", "--env", "dev",
                               "--output", "json"], capsys)
    assert code == 0, err
    assert out == ('{\n  "status": "history",\n  "forge": "git",\n  "env": "dev",\n'
                   '  "history": [],\n  "message": "no promotions"\n}\n')
