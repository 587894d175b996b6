"""The fake forges as test_faults, test_races and test_secrets use them: one small
harness per forge (the fake server, a forge client pointed at it, what the server
holds), and the promotions those tests run.

Sleeps are recorded, never slept: the forge gets ``sleep=Sleeps()``, the orchestration
an ``Effects`` with a fake clock. Only the client timeout test waits for real (about a
second).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from promoter import promote
from promoter.forges.azure import AzureForge
from promoter.forges.base import Forge
from promoter.forges.bitbucket import BitbucketForge
from promoter.forges.bitbucket_server import BitbucketServerForge
from promoter.forges.git import GitForge
from promoter.forges.gitea import GiteaForge
from promoter.forges.github import GitHubForge
from promoter.forges.gitlab import GitLabForge
from promoter.images import parse
from tests.fakes.azure import FakeAzure
from tests.fakes.bitbucket import FakeBitbucket
from tests.fakes.bitbucket_server import FakeBitbucketServer
from tests.fakes.gitea import FakeGitea
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.gitrepo import BareRepo

SLUG = "acme/config"
TOKEN = "ghp_FAKEfaultToken0123456789abcdefABCDEF"
GL_TOKEN = "glpat-FAKEfaultToken-0123456789"
GT_TOKEN = "gitea-FAKEfaultToken-0123456789abcdef"
BB_TOKEN = "bbat-FAKEfaultToken-0123456789abcdef"
AZ_TOKEN = "azure-FAKEfaultToken-0123456789abcdef"
TUESDAY = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)

# prod: labels, reviewers, waits for checks, merges by itself: every endpoint of a run
MERGING = b"""\
version: 1
environments:
  prod:
    paths: ["envs/prod/**"]
    auto_merge: true
    wait_for_checks: true
    labels: [prod]
    reviewers: [sre-lead]
"""
# the same, left for review: a second run updates the branch and the request
REVIEWED = MERGING.replace(b"auto_merge: true", b"auto_merge: false")


def deploy(tag: str) -> bytes:
    return (b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n"
            b"  template:\n    spec:\n      containers:\n      - name: api\n"
            b"        image: ghcr.io/acme/api:" + tag.encode() + b"  # promoted by CI\n")


def files(config: bytes) -> dict[str, bytes]:
    return {".promoter.yaml": config, "envs/prod/deploy.yaml": deploy("1.0.0"),
            "envs/dev/deploy.yaml": deploy("1.0.0"), "README.md": b"# config\n"}


class Sleeps(list[float]):
    """A ``sleep`` that only remembers how long it was asked to sleep."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def effects() -> promote.Effects:
    ticks = iter(range(1_000_000))
    return promote.Effects(now=lambda: TUESDAY, sleep=lambda _: None,
                           monotonic=lambda: float(next(ticks)))


def request(tag: str, env: str = "prod", **kw: Any) -> promote.Request:
    return promote.Request(images=(parse(f"ghcr.io/acme/api:{tag}"),), env=env, **kw)


def promote_once(forge: Forge, tag: str, env: str = "prod", **kw: Any) -> dict[str, Any]:
    return promote.run(forge, request(tag, env, **kw), {}, [], effects()).to_json()


@dataclass(frozen=True)
class Change:
    """A pull / merge request as the server holds it."""

    number: int
    state: str  # open | merged | closed
    branch: str


class Harness(Protocol):
    kind: str
    bare: BareRepo
    token: str
    url: str

    def forge(self, sleep: Sleeps | None = None, timeout: float = 15) -> Forge: ...

    def fail(self, method: str, path: str, status: int, *, times: int = 1,
             headers: Mapping[str, str] | None = None, body: Any = None,
             apply_then_fail: bool = False, drop: bool = False, reset_before: bool = False,
             delay: float = 0.0) -> None: ...

    def changes(self) -> list[Change]: ...

    def requests(self) -> list[tuple[str, str, int]]: ...

    def reset_counts(self) -> None: ...

    def request_text(self, number: int) -> str: ...


@dataclass
class GitHubHarness:
    fake: FakeGitHub
    bare: BareRepo
    kind: str = "github"
    token: str = TOKEN
    url: str = ""

    @classmethod
    def start(cls, fake: FakeGitHub, content: Mapping[str, bytes]) -> GitHubHarness:
        fake.add_token(TOKEN)
        bare = fake.create_repo(SLUG, content).bare
        return cls(fake, bare, url=fake.url)

    def forge(self, sleep: Sleeps | None = None, timeout: float = 15) -> Forge:
        return GitHubForge(SLUG, api_url=self.fake.url, token=TOKEN,
                           sleep=sleep if sleep is not None else Sleeps(),
                           timeout=max(1, int(timeout)))

    def fail(self, method: str, path: str, status: int, *, times: int = 1,
             headers: Mapping[str, str] | None = None, body: Any = None,
             apply_then_fail: bool = False, drop: bool = False, reset_before: bool = False,
             delay: float = 0.0) -> None:
        self.fake.fail(method, path, status, times=times, headers=headers, body=body,
                       apply_then_fail=apply_then_fail, drop=drop, reset_before=reset_before,
                       delay=delay)

    def changes(self) -> list[Change]:
        return [Change(p.number, "merged" if p.merged else p.state, p.head)
                for p in self.fake.pulls(SLUG, "all")]

    def requests(self) -> list[tuple[str, str, int]]:
        return [(r.method, r.path, r.status) for r in list(self.fake.requests)]

    def reset_counts(self) -> None:
        self.fake.reset_counts()

    def request_text(self, number: int) -> str:
        pull = self.fake.pull(SLUG, number)
        return f"{pull.get('title', '')}\n{pull.get('body') or ''}"


@dataclass
class GitLabHarness:
    fake: FakeGitLab
    bare: BareRepo
    kind: str = "gitlab"
    token: str = GL_TOKEN
    url: str = ""

    @classmethod
    def start(cls, fake: FakeGitLab, content: Mapping[str, bytes]) -> GitLabHarness:
        fake.add_token(GL_TOKEN)
        fake.add_user("sre-lead")
        bare = fake.add_project(SLUG, content).repo
        return cls(fake, bare, url=fake.url)

    def forge(self, sleep: Sleeps | None = None, timeout: float = 15) -> Forge:
        return GitLabForge(SLUG, api_url=self.fake.url, token=GL_TOKEN,
                           sleep=sleep if sleep is not None else Sleeps(), timeout=timeout)

    def fail(self, method: str, path: str, status: int, *, times: int = 1,
             headers: Mapping[str, str] | None = None, body: Any = None,
             apply_then_fail: bool = False, drop: bool = False, reset_before: bool = False,
             delay: float = 0.0) -> None:
        self.fake.fail(method, path, 0 if drop else status, times=times, headers=headers,
                       body=body, apply_then_fail=apply_then_fail, reset_before=reset_before,
                       delay=delay)

    def changes(self) -> list[Change]:
        states = {"opened": "open", "merged": "merged", "closed": "closed"}
        return [Change(mr["iid"], states.get(mr["state"], mr["state"]), mr["source_branch"])
                for mr in self.fake.merge_requests(SLUG)]

    def requests(self) -> list[tuple[str, str, int]]:
        return [(r.method, r.path, r.status) for r in list(self.fake.requests)]

    def reset_counts(self) -> None:
        self.fake.reset_counts()

    def request_text(self, number: int) -> str:
        mr = self.fake.merge_request(SLUG, number)
        return f"{mr.get('title', '')}\n{mr.get('description') or ''}"


@dataclass
class GiteaHarness:
    fake: FakeGitea
    bare: BareRepo
    kind: str = "gitea"
    token: str = GT_TOKEN
    url: str = ""

    @classmethod
    def start(cls, fake: FakeGitea, content: Mapping[str, bytes]) -> GiteaHarness:
        fake.add_token(GT_TOKEN)
        fake.add_user("sre-lead")
        bare = fake.add_repo(SLUG, content).bare
        fake.add_label(SLUG, "prod")
        return cls(fake, bare, url=fake.url)

    def forge(self, sleep: Sleeps | None = None, timeout: float = 15) -> Forge:
        return GiteaForge(SLUG, api_url=self.fake.url, token=GT_TOKEN,
                          sleep=sleep if sleep is not None else Sleeps(), timeout=timeout)

    def fail(self, method: str, path: str, status: int, *, times: int = 1,
             headers: Mapping[str, str] | None = None, body: Any = None,
             apply_then_fail: bool = False, drop: bool = False, reset_before: bool = False,
             delay: float = 0.0) -> None:
        self.fake.fail(method, path, 0 if drop else status, times=times, headers=headers,
                       body=body, apply_then_fail=apply_then_fail, reset_before=reset_before,
                       delay=delay)

    def changes(self) -> list[Change]:
        return [Change(p.number, "merged" if p.merged else p.state, p.head)
                for p in self.fake.pulls(SLUG)]

    def requests(self) -> list[tuple[str, str, int]]:
        return [(r.method, r.path, r.status) for r in list(self.fake.requests)]

    def reset_counts(self) -> None:
        self.fake.reset_counts()

    def request_text(self, number: int) -> str:
        pull = self.fake.repo(SLUG).pulls[number]
        return f"{pull.title}\n{pull.body}"


@dataclass
class AzureHarness:
    """Azure DevOps: SLUG is PROJECT/REPO under the organisation URL ``{fake}/org`` (as
    with a Server collection URL); ``sre-lead`` is a member of a team of the project."""

    fake: FakeAzure
    bare: BareRepo
    kind: str = "azure"
    token: str = AZ_TOKEN
    url: str = ""

    @classmethod
    def start(cls, fake: FakeAzure, content: Mapping[str, bytes]) -> AzureHarness:
        fake.add_token(AZ_TOKEN)
        fake.add_team(f"org/{SLUG.split('/')[0]}", "SRE", ["sre-lead"])
        repo = fake.add_repo(f"org/{SLUG}", content)
        repo.force_pushers.add("promoter-bot")  # "Force push" on promote/*, as docs/ci.md says
        return cls(fake, repo.bare, url=f"{fake.url}/org")

    def forge(self, sleep: Sleeps | None = None, timeout: float = 15) -> Forge:
        return AzureForge(SLUG, api_url=self.url, token=AZ_TOKEN,
                          sleep=sleep if sleep is not None else Sleeps(), timeout=timeout)

    def fail(self, method: str, path: str, status: int, *, times: int = 1,
             headers: Mapping[str, str] | None = None, body: Any = None,
             apply_then_fail: bool = False, drop: bool = False, reset_before: bool = False,
             delay: float = 0.0) -> None:
        self.fake.fail(method, path, 0 if drop else status, times=times, headers=headers,
                       body=body, apply_then_fail=apply_then_fail, reset_before=reset_before,
                       delay=delay)

    def changes(self) -> list[Change]:
        states = {"active": "open", "completed": "merged", "abandoned": "closed"}
        return [Change(p.number, states[p.status], p.source.removeprefix("refs/heads/"))
                for p in self.fake.pulls(f"org/{SLUG}")]

    def requests(self) -> list[tuple[str, str, int]]:
        return [(r.method, r.path, r.status) for r in list(self.fake.requests)]

    def reset_counts(self) -> None:
        self.fake.reset_counts()

    def request_text(self, number: int) -> str:
        pull = self.fake.repo(f"org/{SLUG}").pulls[number]
        return f"{pull.title}\n{pull.description}"


@dataclass
class BitbucketHarness:
    fake: FakeBitbucket
    bare: BareRepo
    kind: str = "bitbucket"
    token: str = BB_TOKEN
    url: str = ""

    @classmethod
    def start(cls, fake: FakeBitbucket, content: Mapping[str, bytes]) -> BitbucketHarness:
        fake.add_token(BB_TOKEN)
        fake.add_member("sre-lead")
        bare = fake.add_repo(SLUG, content).bare
        return cls(fake, bare, url=fake.api)

    def forge(self, sleep: Sleeps | None = None, timeout: float = 15) -> Forge:
        return BitbucketForge(SLUG, api_url=self.fake.api, token=BB_TOKEN,
                              sleep=sleep if sleep is not None else Sleeps(), timeout=timeout)

    def fail(self, method: str, path: str, status: int, *, times: int = 1,
             headers: Mapping[str, str] | None = None, body: Any = None,
             apply_then_fail: bool = False, drop: bool = False, reset_before: bool = False,
             delay: float = 0.0) -> None:
        self.fake.fail(method, path, 0 if drop else status, times=times, headers=headers,
                       body=body, apply_then_fail=apply_then_fail, reset_before=reset_before,
                       delay=delay)

    def changes(self) -> list[Change]:
        states = {"OPEN": "open", "MERGED": "merged", "DECLINED": "closed"}
        return [Change(p.id, states[p.state], p.source) for p in self.fake.pulls(SLUG)]

    def requests(self) -> list[tuple[str, str, int]]:
        return [(r.method, r.path, r.status) for r in list(self.fake.requests)]

    def reset_counts(self) -> None:
        self.fake.reset_counts()

    def request_text(self, number: int) -> str:
        pull = self.fake.repo(SLUG).pulls[number]
        return f"{pull.title}\n{pull.description}"


@dataclass
class BitbucketServerHarness:
    """Bitbucket Data Center: ``kind`` is the --forge value; the fake's URL (no /2.0)
    makes the CLI choose Data Center."""

    fake: FakeBitbucketServer
    bare: BareRepo
    kind: str = "bitbucket"
    token: str = BB_TOKEN
    url: str = ""

    @classmethod
    def start(cls, fake: FakeBitbucketServer,
              content: Mapping[str, bytes]) -> BitbucketServerHarness:
        fake.add_token(BB_TOKEN)
        fake.add_user("sre-lead")
        bare = fake.add_repo(SLUG, content).bare
        return cls(fake, bare, url=fake.url)

    def forge(self, sleep: Sleeps | None = None, timeout: float = 15) -> Forge:
        return BitbucketServerForge(SLUG, api_url=self.fake.url, token=BB_TOKEN,
                                    sleep=sleep if sleep is not None else Sleeps(),
                                    timeout=timeout)

    def fail(self, method: str, path: str, status: int, *, times: int = 1,
             headers: Mapping[str, str] | None = None, body: Any = None,
             apply_then_fail: bool = False, drop: bool = False, reset_before: bool = False,
             delay: float = 0.0) -> None:
        self.fake.fail(method, path, 0 if drop else status, times=times, headers=headers,
                       body=body, apply_then_fail=apply_then_fail, reset_before=reset_before)

    def changes(self) -> list[Change]:
        states = {"OPEN": "open", "MERGED": "merged", "DECLINED": "closed"}
        return [Change(p.id, states[p.state], p.source) for p in self.fake.pulls(SLUG)]

    def requests(self) -> list[tuple[str, str, int]]:
        return [(r.method, r.path, r.status) for r in list(self.fake.requests)]

    def reset_counts(self) -> None:
        self.fake.reset_counts()

    def request_text(self, number: int) -> str:
        pull = self.fake.repo(SLUG).pulls[number]
        return f"{pull.title}\n{pull.description}"


@dataclass
class GitHarness:
    """Plain git: a bare repo; the promotion branches are the requests."""

    bare: BareRepo
    kind: str = "git"
    token: str = ""
    url: str = ""

    def forge(self, sleep: Sleeps | None = None, timeout: float = 15) -> Forge:
        return GitForge(str(self.bare.path), sleep=sleep if sleep is not None else Sleeps())

    def fail(self, method: str, path: str, status: int, *, times: int = 1,
             headers: Mapping[str, str] | None = None, body: Any = None,
             apply_then_fail: bool = False, drop: bool = False, reset_before: bool = False,
             delay: float = 0.0) -> None:
        raise NotImplementedError("plain git has no HTTP faults here (see test_forge_git)")

    def changes(self) -> list[Change]:
        return [Change(0, "open", ref.removeprefix("refs/heads/"))
                for ref in self.bare.list_refs("refs/heads/promote/")]

    def requests(self) -> list[tuple[str, str, int]]:
        return []

    def reset_counts(self) -> None:
        """Nothing is counted for plain git."""

    def request_text(self, number: int) -> str:
        return ""


@contextlib.contextmanager
def harness(kind: str, root: Path, config: bytes = MERGING,
            extra: Mapping[str, bytes] | None = None) -> Iterator[Harness]:
    """A forge holding acme/config (``extra`` files added); the fakes listen on
    127.0.0.1, so the caller removes any proxy from the environment first."""
    content = {**files(config), **(extra or {})}
    if kind == "git":
        yield GitHarness(BareRepo.init(root / "config.git", content))
    elif kind == "github":
        with FakeGitHub(root) as gh:
            yield GitHubHarness.start(gh, content)
    elif kind == "gitea":
        with FakeGitea(root) as gt:
            yield GiteaHarness.start(gt, content)
    elif kind == "bitbucket":
        with FakeBitbucket(root) as bb:
            yield BitbucketHarness.start(bb, content)
    elif kind == "bitbucket-dc":  # Bitbucket Data Center (--forge bitbucket, a DC URL)
        with FakeBitbucketServer(root) as dc:
            yield BitbucketServerHarness.start(dc, content)
    elif kind == "azure":
        with FakeAzure(root) as az:
            yield AzureHarness.start(az, content)
    else:
        with FakeGitLab(root) as gl:
            # Accepted sockets inherit TCP_NODELAY from the listening one (Linux). The
            # fake writes headers and body apart, so without it each answer waits ~40 ms
            # for a delayed ACK. (A one-line fix in tests/fakes/gitlab.py is reported.)
            with contextlib.suppress(OSError, AttributeError):
                gl._server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            yield GitLabHarness.start(gl, content)


# --- what the server holds ----------------------------------------------------------------


@dataclass
class Outcome:
    """The server's state after a run, reduced to what the invariants talk about."""

    main: str
    main_file: bytes
    branches: dict[str, str]  # promotion branches -> tip
    changes: list[Change]
    log: list[dict[str, Any]] = field(default_factory=list)


def outcome(h: Harness, path: str = "envs/prod/deploy.yaml") -> Outcome:
    main = h.bare.resolve("main") or ""
    data = h.bare.read_file(main, path) or b""
    branches = {ref.removeprefix("refs/heads/"): sha
                for ref, sha in h.bare.list_refs("refs/heads/").items()
                if ref != "refs/heads/main"}
    return Outcome(main, data, branches, h.changes(), h.bare.log("main", 50))


def one_commit_on(h: Harness, branch_tip: str, base: str) -> bool:
    """The branch holds exactly one commit over ``base``."""
    info = h.bare.commit(branch_tip)
    return info is not None and list(info["parents"]) == [base]
