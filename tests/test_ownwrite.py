"""``forges/ownwrite.py`` on every forge that commits through an API (Azure DevOps,
Gitea, GitLab, Bitbucket Cloud and Data Center), against their fakes: real HTTP, real
bare repos. Someone else's push is a real commit in the bare repo, made while the forge
waits to retry (its injected sleep)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from promoter.errors import ConflictError
from promoter.forges.azure import AzureForge
from promoter.forges.bitbucket import BitbucketForge
from promoter.forges.bitbucket_server import BitbucketServerForge
from promoter.forges.gitea import GiteaForge
from promoter.forges.gitlab import GitLabForge
from tests.fakes.azure import FakeAzure
from tests.fakes.bitbucket import FakeBitbucket
from tests.fakes.bitbucket_server import FakeBitbucketServer
from tests.fakes.gitea import FakeGitea
from tests.fakes.gitlab import FakeGitLab

TOKEN = "ownwrite-very-secret-token-0123456789"
DEV = b"image: ghcr.io/acme/api:1.0.0\n"
FILES = {".promoter.yaml": b"version: 1\n", "envs/dev/app.yaml": DEV, "README.md": b"# c\n"}
NEW = {"envs/dev/app.yaml": DEV.replace(b"1.0.0", b"1.1.0")}  # one file: Data Center too
BRANCH = "promote/dev/api"
MESSAGE = "Promote ghcr.io/acme/api:1.1.0\n\nPromoted-Image: ghcr.io/acme/api:1.1.0"


# forge: (its fake, the repository, the forge's class, the request that makes the commit)
FORGES: dict[str, tuple[Any, str, Any, tuple[str, str]]] = {
    "azure": (FakeAzure, "acme/platform/config", AzureForge, ("POST", r"/pushes$")),
    "gitea": (FakeGitea, "acme/config", GiteaForge, ("POST", r"/contents$")),
    "gitlab": (FakeGitLab, "acme/config", GitLabForge, ("POST", r"/repository/commits$")),
    "bitbucket": (FakeBitbucket, "acme/config", BitbucketForge, ("POST", r"/src$")),
    "bitbucket_server": (FakeBitbucketServer, "OPS/config", BitbucketServerForge,
                         ("PUT", r"/browse/")),
}


@dataclass
class Setup:
    fake: Any  # the fake server (its ``fail`` and request counts)
    bare: Any  # the bare repo behind it
    connect: Callable[[Callable[[float], None]], Any]  # the forge, with this sleep
    commit: tuple[str, str]  # the request that makes the commit: method, path pattern


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name)


@pytest.fixture(params=sorted(FORGES))
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    fake_class, slug, forge_class, commit = FORGES[request.param]
    with fake_class(tmp_path) as fake:
        fake.add_token(TOKEN)
        gitlab = isinstance(fake, FakeGitLab)
        bare = fake.add_project(slug, FILES).repo if gitlab else fake.add_repo(slug, FILES).bare
        url = fake.api if isinstance(fake, FakeBitbucket) else fake.url
        yield Setup(fake, bare, lambda sleep: forge_class(slug, api_url=url, token=TOKEN,
                                                          sleep=sleep), commit)


def test_a_retry_never_claims_a_tip_that_copies_only_the_message(setup: Setup) -> None:
    """The first attempt fails (502, nothing written); while the forge waits to retry,
    someone puts a commit on the branch with the very parent and message promoter writes,
    but other content. The retry finds it in the way and never takes it for its own lost
    write: the message is anyone's to copy, only the change proves a commit."""
    forged: list[str] = []

    def push_while_waiting(_seconds: float) -> None:
        if not forged:
            tree = setup.bare.write_tree_from(snap.commit, {"envs/dev/app.yaml": b"evil\n"})
            forged.append(setup.bare.commit_tree(tree, [snap.commit], MESSAGE))
            assert setup.bare.update_ref(BRANCH, forged[0], old="0" * 40)

    forge = setup.connect(push_while_waiting)
    try:
        snap = forge.snapshot("main")
        setup.fake.fail(*setup.commit, 502)
        with pytest.raises(ConflictError, match="already exists"):
            forge.write_commit(BRANCH, snap, NEW, MESSAGE, replace=None)
    finally:
        forge.close()
    assert forged and setup.bare.resolve(BRANCH) == forged[0]
