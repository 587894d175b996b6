"""Where a promotion was triggered from: GitHub Actions, GitLab CI, Gitea / Forgejo
Actions, Azure Pipelines, Bitbucket Pipelines, or a terminal.

``detect(environ)`` is pure: it reads only the mapping it is given (the CLI passes
``os.environ``), never the process environment, the clock or the network.

Every value from the environment is untrusted. Anyone who can set a variable in the
pipeline (a workflow author, a fork's workflow, a ``.env`` file) could otherwise put a
newline into a commit trailer or Markdown into a PR body. So each value must fit the
shape of what it claims to be (a commit sha is hex, a URL is ``http(s)://`` without
spaces or brackets, an actor is a user name) and must not contain control, format or
line-separator characters; a value that does not fit is dropped (None), never cleaned
up and used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from promoter.text import is_clean

Kind = Literal["github", "gitlab", "gitea", "azure", "bitbucket", "local"]

_SHA = re.compile(r"[0-9a-f]{7,64}")
_SLUG = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+")
_URL = re.compile(r"https?://[A-Za-z0-9][^\s<>()\[\]{}\"'`\\|^]*")
_ACTOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-\[\]]{0,254}")
_NUMBER = re.compile(r"[0-9]{1,18}")
_EVENT = re.compile(r"[a-z_]{1,64}")
_MAX_REF = 255
_NAME = re.compile(r"[^\W_][\w .'-]{0,99}")  # a display name (Azure's BUILD_REQUESTEDFOR)


@dataclass(frozen=True)
class Context:
    kind: Kind
    source_repo: str | None = None  # "acme/api" (GitLab: the full project path)
    source_commit: str | None = None
    ref: str | None = None  # branch or tag that triggered the run
    pipeline_url: str | None = None
    actor: str | None = None
    run_number: int | None = None  # GITHUB_RUN_NUMBER / CI_PIPELINE_IID
    run_attempt: int | None = None  # GitHub only
    server_url: str | None = None  # https://github.com, https://gitlab.example.com
    api_url: str | None = None  # GITHUB_API_URL / CI_API_V4_URL
    event: str | None = None  # push, workflow_dispatch, merge_request_event, ...
    job_token: bool = False  # CI_JOB_TOKEN is present (it cannot write to other projects)
    project_path: str | None = None  # the project running the pipeline
    repo_url: str | None = None  # the source repository's web address, when CI names it

    @property
    def source_url(self) -> str | None:
        """Web address of the source repository, when known."""
        if self.repo_url is not None:
            return self.repo_url
        if self.server_url is None or self.source_repo is None:
            return None
        return f"{self.server_url}/{self.source_repo}"


def detect(environ: Mapping[str, str]) -> Context:
    """The CI context described by ``environ`` (Gitea / Forgejo Actions, which also set
    ``GITHUB_*``, first; then GitHub, then GitLab, then Azure Pipelines, then Bitbucket
    Pipelines, else local)."""
    if gitea_actions(environ):
        return _gitea(environ)
    if environ.get("GITHUB_ACTIONS") == "true":
        return _github(environ)
    if environ.get("GITLAB_CI") == "true":
        return _gitlab(environ)
    if azure_pipelines(environ):
        return _azure(environ)
    if bitbucket_pipelines(environ):
        return _bitbucket(environ)
    return Context(kind="local", actor=_actor(environ.get("USER") or environ.get("LOGNAME")))


def _github(env: Mapping[str, str]) -> Context:
    server = _url(env.get("GITHUB_SERVER_URL")) or "https://github.com"
    repo = _slug(env.get("GITHUB_REPOSITORY"))
    run_id = _number(env.get("GITHUB_RUN_ID"))
    attempt = _number(env.get("GITHUB_RUN_ATTEMPT"))
    pipeline = None
    if repo is not None and run_id is not None:
        pipeline = f"{server}/{repo}/actions/runs/{run_id}"
        if attempt is not None and attempt > 1:
            pipeline += f"/attempts/{attempt}"
    return _workflow_run(env, "github", server, repo, pipeline)


def _workflow_run(env: Mapping[str, str], kind: Kind, server: str | None, repo: str | None,
                  pipeline: str | None) -> Context:
    """The ``GITHUB_*`` variables of a workflow run (GitHub Actions, and Gitea / Forgejo
    Actions, which set the same ones); where the server and the run's page are differs."""
    return Context(
        kind=kind,
        source_repo=repo,
        source_commit=_sha(env.get("GITHUB_SHA")),
        ref=_ref(env.get("GITHUB_REF")),
        pipeline_url=pipeline,
        actor=_actor(env.get("GITHUB_ACTOR")),
        run_number=_number(env.get("GITHUB_RUN_NUMBER")),
        run_attempt=_number(env.get("GITHUB_RUN_ATTEMPT")),
        server_url=server,
        api_url=_url(env.get("GITHUB_API_URL")),
        event=_event(env.get("GITHUB_EVENT_NAME")),
        job_token=False,
        project_path=repo,
    )


def gitea_actions(env: Mapping[str, str]) -> bool:
    """Gitea Actions set ``GITEA_ACTIONS=true``, Forgejo Actions ``FORGEJO_ACTIONS=true``
    (both beside the ``GITHUB_*`` variables of the same workflow syntax)."""
    return env.get("GITEA_ACTIONS") == "true" or env.get("FORGEJO_ACTIONS") == "true"


def _gitea(env: Mapping[str, str]) -> Context:
    """The ``GITHUB_*`` variables as Gitea / Forgejo Actions set them: the server is the
    Gitea instance (no default: there is no gitea.com of every job), and a run's page is
    ``/{repo}/actions/runs/{run number}`` (the run's index in its repository)."""
    server = _url(env.get("GITHUB_SERVER_URL"))
    repo = _slug(env.get("GITHUB_REPOSITORY"))
    number = _number(env.get("GITHUB_RUN_NUMBER"))
    pipeline = f"{server}/{repo}/actions/runs/{number}" \
        if server and repo and number is not None else None
    return _workflow_run(env, "gitea", server, repo, pipeline)


def bitbucket_pipelines(env: Mapping[str, str]) -> bool:
    """Bitbucket Pipelines sets ``BITBUCKET_BUILD_NUMBER`` and ``BITBUCKET_COMMIT`` in
    every step (no ``*_CI=true`` flag of its own; ``CI=true`` is everyone's)."""
    return bool(env.get("BITBUCKET_BUILD_NUMBER") and env.get("BITBUCKET_COMMIT"))


BITBUCKET_WEB = "https://bitbucket.org"


def _bitbucket(env: Mapping[str, str]) -> Context:
    """Bitbucket Pipelines (Cloud only: the server is bitbucket.org). A pipeline's page
    is ``/{workspace}/{repo}/pipelines/results/{build number}``; the step's trigger is
    known only by uuid, so there is no actor."""
    repo = _slug(env.get("BITBUCKET_REPO_FULL_NAME"))
    number = _number(env.get("BITBUCKET_BUILD_NUMBER"))
    pipeline = f"{BITBUCKET_WEB}/{repo}/pipelines/results/{number}" \
        if repo and number is not None else None
    return Context(
        kind="bitbucket",
        source_repo=repo,
        source_commit=_sha(env.get("BITBUCKET_COMMIT")),
        ref=_ref(env.get("BITBUCKET_BRANCH") or env.get("BITBUCKET_TAG")),
        pipeline_url=pipeline,
        actor=None,
        run_number=number,
        run_attempt=None,
        server_url=BITBUCKET_WEB,
        api_url=None,
        event=None,
        job_token=False,
        project_path=repo,
    )


def _gitlab(env: Mapping[str, str]) -> Context:
    path = _slug(env.get("CI_PROJECT_PATH"))
    return Context(
        kind="gitlab",
        source_repo=path,
        source_commit=_sha(env.get("CI_COMMIT_SHA")),
        ref=_ref(env.get("CI_COMMIT_REF_NAME")),
        pipeline_url=_url(env.get("CI_PIPELINE_URL")),
        actor=_actor(env.get("GITLAB_USER_LOGIN")),
        run_number=_number(env.get("CI_PIPELINE_IID")),
        run_attempt=None,
        server_url=_url(env.get("CI_SERVER_URL")),
        api_url=_url(env.get("CI_API_V4_URL")),
        event=_event(env.get("CI_PIPELINE_SOURCE")),
        job_token=bool(env.get("CI_JOB_TOKEN")),
        project_path=path,
    )


def azure_pipelines(env: Mapping[str, str]) -> bool:
    """Azure Pipelines sets ``TF_BUILD=True`` in every job."""
    return env.get("TF_BUILD", "").lower() == "true"


def _azure(env: Mapping[str, str]) -> Context:
    """Azure Pipelines: the collection (``SYSTEM_COLLECTIONURI``, e.g.
    ``https://dev.azure.com/acme/``) is the server; a run's page is
    ``{collection}{project}/_build/results?buildId={BUILD_BUILDID}``. The project name
    may hold spaces (it is quoted in the URL); the repository's address is
    ``BUILD_REPOSITORY_URI`` without the user name Azure puts in it."""
    collection = _url(env.get("SYSTEM_COLLECTIONURI"))
    project = _plain(env.get("SYSTEM_TEAMPROJECT"))
    repo = _plain(env.get("BUILD_REPOSITORY_NAME"))
    build = _number(env.get("BUILD_BUILDID"))
    pipeline = f"{collection}/{quote(project, safe='')}/_build/results?buildId={build}" \
        if collection and project and build is not None else None
    provider = env.get("BUILD_REPOSITORY_PROVIDER", "")
    source = repo if provider.lower() != "tfsgit" or not project else f"{project}/{repo}"
    reason = _plain(env.get("BUILD_REASON"))
    return Context(
        kind="azure",
        source_repo=source if repo else None,
        source_commit=_sha(env.get("BUILD_SOURCEVERSION")),
        ref=_ref(env.get("BUILD_SOURCEBRANCH")),
        pipeline_url=pipeline,
        actor=_matching(_NAME, env.get("BUILD_REQUESTEDFOR")),
        run_number=build,
        run_attempt=_number(env.get("SYSTEM_JOBATTEMPT")),
        server_url=collection,
        api_url=collection,
        event=_event(reason.lower()) if reason else None,
        job_token=bool(env.get("SYSTEM_ACCESSTOKEN")),
        project_path=f"{project}/{repo}" if project and repo else None,
        repo_url=_no_user(_url(env.get("BUILD_REPOSITORY_URI"))),
    )


def _plain(value: str | None) -> str | None:
    """A name (project, repository): clean, no slash-only tricks, at most 255 characters."""
    if not value or len(value) > _MAX_REF or not is_clean(value) or value.strip() != value:
        return None
    if value in (".", "..") or "\\" in value:
        return None
    return value


def _no_user(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")).rstrip("/")


def provenance_dict(ctx: Context) -> dict[str, str | None]:
    """The ``provenance`` object of the JSON report."""
    return {
        "ci": ctx.kind,
        "source_repo": ctx.source_repo,
        "source_url": ctx.source_url,
        "source_commit": ctx.source_commit,
        "ref": ctx.ref,
        "pipeline_url": ctx.pipeline_url,
        "actor": ctx.actor,
    }


def trailers(ctx: Context) -> list[tuple[str, str]]:
    """Commit-message trailers naming where the image came from (only known values)."""
    pairs: list[tuple[str, str | None]] = [
        ("Source-Repo", ctx.source_url or ctx.source_repo),
        ("Source-Commit", ctx.source_commit),
        ("Pipeline", ctx.pipeline_url),
        ("Triggered-By", ctx.actor),
    ]
    return [(key, value) for key, value in pairs if value is not None]


# --- validation of untrusted values -------------------------------------------------


def _matching(pattern: re.Pattern[str], value: str | None) -> str | None:
    if not value or not is_clean(value) or pattern.fullmatch(value) is None:
        return None
    return value


def _sha(value: str | None) -> str | None:
    return _matching(_SHA, value)


def _slug(value: str | None) -> str | None:
    found = _matching(_SLUG, value)
    if found is None or any(part in {".", ".."} for part in found.split("/")):
        return None
    return found


def _url(value: str | None) -> str | None:
    found = _matching(_URL, value)
    return found.rstrip("/") if found else None


def _actor(value: str | None) -> str | None:
    return _matching(_ACTOR, value)


def _event(value: str | None) -> str | None:
    return _matching(_EVENT, value)


def _number(value: str | None) -> int | None:
    found = _matching(_NUMBER, value)
    return int(found) if found is not None else None


def _ref(value: str | None) -> str | None:
    if not value or len(value) > _MAX_REF or not is_clean(value):
        return None
    if any(ch.isspace() for ch in value):
        return None
    return value
