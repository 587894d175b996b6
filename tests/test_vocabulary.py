"""One vocabulary for the three entry points: the CLI's option names are the inputs of
the GitHub Action and the GitLab template, and --api-url takes the URL forms people
paste (a GitHub Enterprise Server root as well as its /api/v3 root)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promoter.cli import api_root, run
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.tls import self_signed

TOKEN = "ghp_VocabularyTest0123456789abcdefXYZ"
DEPLOY = (b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n"
          b"  template:\n    spec:\n      containers:\n      - name: api\n"
          b"        image: ghcr.io/acme/api:1.4.1\n")


@pytest.mark.parametrize(("kind", "given", "wanted"), [
    ("github", "https://github.example.com", "https://github.example.com/api/v3"),
    ("github", "https://github.example.com/", "https://github.example.com/api/v3"),
    ("github", "https://github.example.com/api/v3", "https://github.example.com/api/v3"),
    ("github", "https://github.example.com/api/v3/", "https://github.example.com/api/v3"),
    ("github", "https://api.github.com", "https://api.github.com"),
    ("github", "https://github.com", "https://api.github.com"),
    ("github", "http://127.0.0.1:8080", "http://127.0.0.1:8080"),  # http: as given
    ("gitlab", "https://gitlab.example.com", "https://gitlab.example.com"),
])
def test_api_url_forms(kind: str, given: str, wanted: str) -> None:
    assert api_root(kind, given) == wanted


def test_a_github_enterprise_server_root_works_through_the_cli(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setenv("PROMOTE_TOKEN", TOKEN)
    with FakeGitHub(tmp_path / "fake", prefix="/api/v3", tls=(cert, key)) as ghes:
        ghes.add_token(TOKEN)
        ghes.create_repo("acme/config", {"envs/prod/deploy.yaml": DEPLOY})
        assert ghes.root_url.startswith("https://")
        for url in (ghes.root_url, ghes.root_url + "/", ghes.url):
            code = run(["--forge", "github", "--repo", "acme/config", "--api-url", url,
                        "--image", "ghcr.io/acme/api:1.4.2", "--dry-run", "--output", "json"])
            out, err = capsys.readouterr()
            assert code == 0, (url, err)
            assert json.loads(out)["changes"][0]["new"] == "ghcr.io/acme/api:1.4.2"


def test_a_gitlab_api_v4_url_works_through_the_cli(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMOTE_TOKEN", TOKEN)
    with FakeGitLab(tmp_path / "fake") as gl:
        gl.add_token(TOKEN)
        gl.add_project("acme/config", {"envs/prod/deploy.yaml": DEPLOY})
        code = run(["--forge", "gitlab", "--repo", "acme/config", "--api-url",
                    gl.url + "/api/v4", "--image", "ghcr.io/acme/api:1.4.2", "--dry-run",
                    "--output", "json"])
        out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["status"] == "dry-run"
