"""One harness for every test (and benchmark) that starts a fake forge and runs promoter
against it: the fake server, a forge client pointed at it, the CLI arguments that name
it, and what the server holds, read back the same way for every forge.

    with harness("gitlab", tmp_path, files) as h:     # git | github | gitlab | gitea |
        h.forge()                                     #  azure | bitbucket | bitbucket-dc
        cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.0.1")
        h.open_requests(), h.changes(), h.set_checks(sha, "success")
        h.fail("POST", r"/merge$", 502)                # the fake's fault injection
        h.fake, h.repo, h.bare                        # the fake, its repo, the bare repo

``kind`` is the ``--forge`` value (Bitbucket Data Center is ``bitbucket``, told apart by
its URL); ``name`` is the harness's own key. Sleeps are recorded, never slept (``Sleeps``);
the fakes listen on 127.0.0.1, so the caller removes any proxy from the environment.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promoter.cli import run
from promoter.forges.azure import AzureForge
from promoter.forges.base import Forge
from promoter.forges.bitbucket import BitbucketForge
from promoter.forges.bitbucket_server import BitbucketServerForge
from promoter.forges.git import GitForge
from promoter.forges.gitea import GiteaForge
from promoter.forges.github import GitHubForge
from promoter.forges.gitlab import GitLabForge
from tests.fakes.azure import FakeAzure
from tests.fakes.bitbucket import FakeBitbucket
from tests.fakes.bitbucket_server import FakeBitbucketServer
from tests.fakes.gitea import FakeGitea
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.gitrepo import BareRepo
from tests.fakes.server import FakeServer

if TYPE_CHECKING:
    import pytest

SLUG = "acme/config"
AZURE_SLUG = "acme/platform/config"  # ORG/PROJECT/REPO, against the server root
KINDS = ("git", "github", "gitlab", "gitea", "azure", "bitbucket", "bitbucket-dc")
TOKENS = {"git": "", "github": "ghp_FAKEfaultToken0123456789abcdefABCDEF",
          "gitlab": "glpat-FAKEfaultToken-0123456789",
          "gitea": "gitea-FAKEfaultToken-0123456789abcdef",
          "azure": "azure-FAKEfaultToken-0123456789abcdef",
          "bitbucket": "bbat-FAKEfaultToken-0123456789abcdef",
          "bitbucket-dc": "bbat-FAKEfaultToken-0123456789abcdef"}


class Sleeps(list[float]):
    """A ``sleep`` that only remembers how long it was asked to sleep."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@dataclass(frozen=True)
class Change:
    """A pull / merge request as the server holds it."""

    number: int
    state: str  # open | merged | closed
    branch: str


@dataclass
class Open:
    """An open request, as the forge shows it."""

    number: int
    branch: str
    title: str
    body: str
    labels: list[str]
    reviewers: list[str]


class Harness:
    """A forge holding one config repo; subclasses know their fake."""

    name: str  # the harness key (KINDS)
    kind: str  # the --forge value
    fake: Any = None  # the fake server (None for plain git)
    repo: Any = None  # the fake's repository object
    bare: BareRepo
    token: str
    slug: str = SLUG
    url: str = ""  # the --api-url value
    head: str = ""  # the last commit CIOnPush saw

    def forge(self, sleep: Callable[[float], None] | None = None,
              timeout: float = 15) -> Forge:
        raise NotImplementedError

    def args(self) -> list[str]:
        """The CLI arguments that name this forge and repo."""
        return ["--repo", self.slug, "--forge", self.kind, "--api-url", self.url]

    def changes(self) -> list[Change]:
        raise NotImplementedError

    def open_requests(self) -> list[Open]:
        raise NotImplementedError

    def request_text(self, number: int) -> str:
        raise NotImplementedError

    def set_checks(self, sha: str, state: str) -> None:
        """A check on ``sha`` as the forge's CI reports it: pending | success | failure."""
        raise NotImplementedError

    def on_commit(self, sha: str) -> None:
        """The config repo's CI: every commit promoter pushes starts a pending check."""
        self.head = sha
        self.set_checks(sha, "pending")

    def fail(self, method: str, path: str, status: int, *, times: int = 1,
             headers: Mapping[str, str] | None = None, body: Any = None,
             apply_then_fail: bool = False, drop: bool = False, reset_before: bool = False,
             delay: float = 0.0) -> None:
        assert isinstance(self.fake, FakeServer), "plain git has no HTTP faults here"
        self.fake.fail(method, path, status, times=times, headers=headers, body=body,
                       apply_then_fail=apply_then_fail, drop=drop, reset_before=reset_before,
                       delay=delay)

    def requests(self) -> list[tuple[str, str, int]]:
        if self.fake is None:
            return []
        return [(r.method, r.path, r.status) for r in list(self.fake.requests)]

    def reset_counts(self) -> None:
        if self.fake is not None:
            self.fake.reset_counts()

    def main_file(self, path: str) -> bytes:
        data = self.bare.read_file(self.bare.resolve("main") or "", path)
        assert data is not None
        return data

    def branch(self, name: str) -> str | None:
        return self.bare.resolve(f"refs/heads/{name}")

    def close(self) -> None:
        if self.fake is not None:
            self.fake.stop()


def _sleep(sleep: Callable[[float], None] | None) -> Callable[[float], None]:
    return sleep if sleep is not None else Sleeps()


class GitHarness(Harness):
    """Plain git: a bare repo; the promotion branches are the requests."""

    name = kind = "git"

    def __init__(self, root: Path, content: Mapping[str, bytes], token: str) -> None:
        self.bare = BareRepo.init(root / "config.git", content)
        self.token = token

    def forge(self, sleep: Callable[[float], None] | None = None,
              timeout: float = 15) -> Forge:
        return GitForge(str(self.bare.path), sleep=_sleep(sleep))

    def args(self) -> list[str]:
        return ["--repo", str(self.bare.path), "--forge", "git"]

    def changes(self) -> list[Change]:
        return [Change(0, "open", ref.removeprefix("refs/heads/"))
                for ref in self.bare.list_refs("refs/heads/promote/")]

    def open_requests(self) -> list[Open]:
        return [Open(0, c.branch, "", "", [], []) for c in self.changes()]

    def request_text(self, number: int) -> str:
        return ""

    def set_checks(self, sha: str, state: str) -> None:
        """Plain git has no checks: nothing to set."""


class GitHubHarness(Harness):
    name = kind = "github"

    def __init__(self, fake: FakeGitHub, content: Mapping[str, bytes], token: str) -> None:
        self.fake, self.token = fake, token
        fake.add_token(token)
        self.repo = fake.create_repo(SLUG, content)
        self.bare = self.repo.bare
        self.url = fake.url

    def forge(self, sleep: Callable[[float], None] | None = None,
              timeout: float = 15) -> Forge:
        return GitHubForge(SLUG, api_url=self.fake.url, token=self.token, sleep=_sleep(sleep),
                           timeout=max(1, int(timeout)))

    def changes(self) -> list[Change]:
        return [Change(p.number, "merged" if p.merged else p.state, p.head)
                for p in self.fake.pulls(SLUG, "all")]

    def open_requests(self) -> list[Open]:
        return [Open(p.number, p.head, p.title, p.body or "", list(p.labels), list(p.reviewers))
                for p in self.fake.pulls(SLUG, "open")]

    def request_text(self, number: int) -> str:
        pull = self.fake.pull(SLUG, number)
        return f"{pull.get('title', '')}\n{pull.get('body') or ''}"

    def set_checks(self, sha: str, state: str) -> None:
        self.fake.set_checks(SLUG, sha, state)


class GitLabHarness(Harness):
    name = kind = "gitlab"

    def __init__(self, fake: FakeGitLab, content: Mapping[str, bytes], token: str) -> None:
        self.fake, self.token = fake, token
        fake.add_token(token)
        fake.add_user("sre-lead")
        self.repo = fake.add_project(SLUG, content)
        self.bare = self.repo.repo
        self.url = fake.url

    def forge(self, sleep: Callable[[float], None] | None = None,
              timeout: float = 15) -> Forge:
        return GitLabForge(SLUG, api_url=self.fake.url, token=self.token, sleep=_sleep(sleep),
                           timeout=timeout)

    def changes(self) -> list[Change]:
        states = {"opened": "open", "merged": "merged", "closed": "closed"}
        return [Change(mr["iid"], states.get(mr["state"], mr["state"]), mr["source_branch"])
                for mr in self.fake.merge_requests(SLUG)]

    def open_requests(self) -> list[Open]:
        users = {u.id: u.username for u in self.fake.users.values()}
        return [Open(mr["iid"], mr["source_branch"], mr["title"], mr["description"] or "",
                     list(mr["labels"]), [users.get(r["id"], "?") for r in mr["reviewers"]])
                for mr in self.fake.merge_requests(SLUG) if mr["state"] == "opened"]

    def request_text(self, number: int) -> str:
        mr = self.fake.merge_request(SLUG, number)
        return f"{mr.get('title', '')}\n{mr.get('description') or ''}"

    def set_checks(self, sha: str, state: str) -> None:
        self.repo.ci = True
        self.fake.set_pipeline(sha, {"pending": "running", "failure": "failed"}.get(state, state),
                               project=SLUG)


class GiteaHarness(Harness):
    name = kind = "gitea"

    def __init__(self, fake: FakeGitea, content: Mapping[str, bytes], token: str) -> None:
        self.fake, self.token = fake, token
        fake.add_token(token)
        fake.add_user("sre-lead")
        self.repo = fake.add_repo(SLUG, content)
        fake.add_label(SLUG, "prod")
        self.bare = self.repo.bare
        self.url = fake.url

    def forge(self, sleep: Callable[[float], None] | None = None,
              timeout: float = 15) -> Forge:
        return GiteaForge(SLUG, api_url=self.fake.url, token=self.token, sleep=_sleep(sleep),
                          timeout=timeout)

    def changes(self) -> list[Change]:
        return [Change(p.number, "merged" if p.merged else p.state, p.head)
                for p in self.fake.pulls(SLUG)]

    def open_requests(self) -> list[Open]:
        return [Open(p.number, p.head, p.title, p.body, self.fake.label_names(SLUG, p),
                     list(p.reviewers))
                for p in self.fake.pulls(SLUG) if p.state == "open"]

    def request_text(self, number: int) -> str:
        pull = self.repo.pulls[number]
        return f"{pull.title}\n{pull.body}"

    def set_checks(self, sha: str, state: str) -> None:
        self.fake.set_status(SLUG, sha, state)


class AzureHarness(Harness):
    """Azure DevOps, in one of its two addressings: ``org_url`` -- the slug PROJECT/REPO
    under the organisation URL ``{fake}/org`` (as with a Server collection URL), the bot
    granted "Force push" on its branches as docs/ci.md advises -- or ORG/PROJECT/REPO
    against the server root. ``sre-lead`` is a member of a team of the project."""

    name = kind = "azure"

    def __init__(self, fake: FakeAzure, content: Mapping[str, bytes], token: str,
                 org_url: bool = True) -> None:
        self.fake, self.token = fake, token
        fake.add_token(token)
        if org_url:
            fake.add_team(f"org/{SLUG.split('/')[0]}", "SRE", ["sre-lead"])
            self.repo = fake.add_repo(f"org/{SLUG}", content)
            self.repo.force_pushers.add("promoter-bot")
            self.url, self.slug, self.full = f"{fake.url}/org", SLUG, f"org/{SLUG}"
        else:
            fake.add_team(AZURE_SLUG.rsplit("/", 1)[0], "SRE", ["sre-lead"])
            self.repo = fake.add_repo(AZURE_SLUG, content)
            self.url, self.slug, self.full = fake.url, AZURE_SLUG, AZURE_SLUG
        self.bare = self.repo.bare

    def forge(self, sleep: Callable[[float], None] | None = None,
              timeout: float = 15) -> Forge:
        return AzureForge(self.slug, api_url=self.url, token=self.token, sleep=_sleep(sleep),
                          timeout=timeout)

    def changes(self) -> list[Change]:
        states = {"active": "open", "completed": "merged", "abandoned": "closed"}
        return [Change(p.number, states[p.status], p.source.removeprefix("refs/heads/"))
                for p in self.fake.pulls(self.full)]

    def open_requests(self) -> list[Open]:
        names = {v: k for k, v in self.fake.ids.items()}
        return [Open(p.number, p.source.removeprefix("refs/heads/"), p.title, p.description,
                     list(p.labels), [names.get(r, r) for r in p.reviewers])
                for p in self.fake.pulls(self.full) if p.status == "active"]

    def request_text(self, number: int) -> str:
        pull = self.repo.pulls[number]
        return f"{pull.title}\n{pull.description}"

    def set_checks(self, sha: str, state: str) -> None:
        if not self.repo.policies:
            self.fake.add_policy(self.full, "ci")  # a required build, as checks imply
        self.fake.set_status(self.full, sha, {"success": "succeeded", "failure": "failed"}.get(
            state, state))


class BitbucketHarness(Harness):
    name = kind = "bitbucket"

    def __init__(self, fake: FakeBitbucket, content: Mapping[str, bytes], token: str) -> None:
        self.fake, self.token = fake, token
        fake.add_token(token)
        fake.add_member("sre-lead")
        self.repo = fake.add_repo(SLUG, content)
        self.bare = self.repo.bare
        self.url = fake.api

    def forge(self, sleep: Callable[[float], None] | None = None,
              timeout: float = 15) -> Forge:
        return BitbucketForge(SLUG, api_url=self.fake.api, token=self.token,
                              sleep=_sleep(sleep), timeout=timeout)

    def changes(self) -> list[Change]:
        states = {"OPEN": "open", "MERGED": "merged", "DECLINED": "closed"}
        return [Change(p.id, states[p.state], p.source) for p in self.fake.pulls(SLUG)]

    def open_requests(self) -> list[Open]:
        # Bitbucket has no labels
        return [Open(p.id, p.source, p.title, p.description, [],
                     [self.fake.nickname(r) for r in p.reviewers])
                for p in self.fake.pulls(SLUG) if p.state == "OPEN"]

    def request_text(self, number: int) -> str:
        pull = self.repo.pulls[number]
        return f"{pull.title}\n{pull.description}"

    def set_checks(self, sha: str, state: str) -> None:
        self.fake.set_status(SLUG, sha, {"pending": "INPROGRESS", "failure": "FAILED",
                                         "success": "SUCCESSFUL"}[state])


class BitbucketServerHarness(BitbucketHarness):
    """Bitbucket Data Center: ``kind`` is the --forge value; the fake's URL (no /2.0)
    makes the CLI choose Data Center. Its pull requests read as Cloud's."""

    name, kind = "bitbucket-dc", "bitbucket"

    def __init__(self, fake: FakeBitbucketServer, content: Mapping[str, bytes],
                 token: str) -> None:
        self.fake, self.token = fake, token
        fake.add_token(token)
        fake.add_user("sre-lead")
        self.repo = fake.add_repo(SLUG, content)
        self.bare = self.repo.bare
        self.url = fake.url

    def forge(self, sleep: Callable[[float], None] | None = None,
              timeout: float = 15) -> Forge:
        return BitbucketServerForge(SLUG, api_url=self.fake.url, token=self.token,
                                    sleep=_sleep(sleep), timeout=timeout)

    def open_requests(self) -> list[Open]:
        return [Open(p.id, p.source, p.title, p.description, [], list(p.reviewers))
                for p in self.fake.pulls(SLUG) if p.state == "OPEN"]

    def set_checks(self, sha: str, state: str) -> None:
        self.fake.set_build(SLUG, sha, {"pending": "INPROGRESS", "failure": "FAILED",
                                        "success": "SUCCESSFUL"}[state])


def start(name: str, root: Path, content: Mapping[str, bytes], *, token: str | None = None,
          azure_org_url: bool = True) -> Harness:
    """Start the forge ``name`` (one of KINDS) holding acme/config with ``content``; the
    caller calls ``close()`` (or uses ``harness``)."""
    secret = TOKENS[name] if token is None else token
    if name == "git":
        return GitHarness(root, content, secret)
    fakes: dict[str, Callable[[], Harness]] = {
        "github": lambda: GitHubHarness(FakeGitHub(root).start(), content, secret),
        "gitlab": lambda: GitLabHarness(FakeGitLab(root).start(), content, secret),
        "gitea": lambda: GiteaHarness(FakeGitea(root).start(), content, secret),
        "azure": lambda: AzureHarness(FakeAzure(root).start(), content, secret,
                                      org_url=azure_org_url),
        "bitbucket": lambda: BitbucketHarness(FakeBitbucket(root).start(), content, secret),
        "bitbucket-dc": lambda: BitbucketServerHarness(FakeBitbucketServer(root).start(),
                                                       content, secret),
    }
    return fakes[name]()


@contextlib.contextmanager
def harness(name: str, root: Path, content: Mapping[str, bytes], *, token: str | None = None,
            azure_org_url: bool = True) -> Iterator[Harness]:
    """``start``, stopped again on the way out."""
    h = start(name, root, content, token=token, azure_org_url=azure_org_url)
    try:
        yield h
    finally:
        h.close()


class CIOnPush:
    """The config repo's CI around a forge client: every commit promoter pushes starts a
    pending check (``Harness.on_commit``; the fake's own controls, the client untouched)."""

    def __init__(self, forge: Forge, h: Harness) -> None:
        self.inner = forge
        self.h = h

    def write_commit(self, *args: Any, **kwargs: Any) -> str:
        sha: str = self.inner.write_commit(*args, **kwargs)
        self.h.on_commit(sha)
        return sha

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def cli(h: Harness, capsys: pytest.CaptureFixture[str],
        *args: str) -> tuple[int, dict[str, Any]]:
    """Run the CLI against ``h`` with ``--output json``: the exit code and the JSON; the
    token never shows in the output."""
    code = run([*h.args(), *args, "--output", "json"])
    out, err = capsys.readouterr()
    if h.token:
        assert h.token not in out + err
    return code, json.loads(out)
