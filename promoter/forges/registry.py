"""The forges promoter knows: one row each. Adding a forge is one module (with a
``from_setup(setup) -> Forge`` function) plus one row here; the CLI's ``--forge`` choice,
token variables, default API URL, CI detection and help texts, and the CI outputs'
"pull request" / "merge request" wording are all read from this table.

Light on purpose (no forge module is imported here): ``promote --help`` reads it, and
``FORGES[name].connect(setup)`` imports the forge's module only when it is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from promoter.context import azure_pipelines, bitbucket_pipelines
from promoter.errors import UsageError

if TYPE_CHECKING:
    from promoter.context import Context
    from promoter.forges.base import Forge
    from promoter.retry import Patience


@dataclass(frozen=True)
class Setup:
    """What a forge's ``from_setup`` gets: the values the CLI gathered (flags, the
    environment it was given, the CI context); never ``os.environ`` itself.
    ``api_url``: ``--api-url``, else the row's variable, else its default (None when
    neither). ``token``: PROMOTE_TOKEN, else the row's variables in order; ``job_token``
    only when there is no token."""

    repo: str
    api_url: str | None
    token: str | None
    job_token: str | None
    environ: Mapping[str, str]
    context: Context
    author: str | None
    app_id: str | None
    app_key_file: str | None
    retry_timeout: float
    ca_bundle: str | None
    sleep: Callable[[float], None]
    patience: Callable[[str], Patience]  # the rate-limit patience, given the service name
    warn: Callable[[str], None]  # a warning line for the user (stderr)


@dataclass(frozen=True)
class ForgeSpec:
    """One forge, as the CLI and the reports see it.

    ``tokens``: the variables read for a token after PROMOTE_TOKEN, in order;
    ``job_token``: a CI job token read only when there is none (it cannot do
    everything). ``api_env`` / ``api_default``: where the API URL comes from without
    ``--api-url``. ``ci``: whether ``environ`` is this forge's own CI (rows are asked in
    order, so a CI that imitates another must say it is not that one). ``request`` /
    ``mark``: how a request is named in reports ("merge request !3"; no mark: the
    branch is named instead). ``module``: the module with ``from_setup(setup)``."""

    name: str
    title: str  # for people: "GitHub", "Gitea or Forgejo"
    module: str
    repo_form: str  # what --repo names: "OWNER/NAME"
    tokens: tuple[str, ...] = ()
    job_token: str | None = None
    job_token_in_ci: bool = False  # the job token is read only inside the forge's own CI
    credentials_help: str | None = None  # the --help token text, when more than the variables
    api_env: str | None = None
    api_default: str | None = None
    api_help: str | None = None  # the --api-url help for this forge
    ci: Callable[[Mapping[str, str]], bool] | None = None
    ci_name: str | None = None  # the CI ``ci`` recognises, for --help
    request: str = "pull request"
    mark: str | None = "#"
    api_root: Callable[[str], str] = lambda url: url.strip().rstrip("/")

    def connect(self, setup: Setup) -> Forge:
        module: Any = importlib.import_module(self.module)
        return cast("Forge", module.from_setup(setup))

    def label(self, number: object, branch: object) -> str:
        """How reports name a request: ``pull request #3``, ``branch promote/x``."""
        return f"{self.request} {branch}" if self.mark is None else \
            f"{self.request} {self.mark}{number}"


def _flag(*names: str) -> Callable[[Mapping[str, str]], bool]:
    def inside(environ: Mapping[str, str]) -> bool:
        return any(environ.get(name) == "true" for name in names)
    return inside


def _github_actions(environ: Mapping[str, str]) -> bool:
    # Gitea / Forgejo Actions set GITHUB_ACTIONS too (and GitLab CI comes first)
    return _flag("GITHUB_ACTIONS")(environ) and not _flag(
        "GITEA_ACTIONS", "FORGEJO_ACTIONS", "GITLAB_CI")(environ)


def _github_api(url: str) -> str:
    """GitHub's API root from what users paste: a GitHub Enterprise Server root as in the
    browser (``https://HOST``) is ``https://HOST/api/v3``, and ``https://github.com`` is
    ``https://api.github.com``; anything with a path is the API root it names."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or parts.path or parts.query or host == "api.github.com":
        return url
    if host in ("github.com", "www.github.com"):
        return "https://api.github.com"
    return f"{url}/api/v3"


PLAIN_GIT = "git"

FORGES: dict[str, ForgeSpec] = {spec.name: spec for spec in (
    ForgeSpec("github", "GitHub", "promoter.forges.github", "OWNER/NAME",
              tokens=("GITHUB_TOKEN",), api_env="GITHUB_API_URL",
              api_default="https://api.github.com",
              api_help="GitHub API root (default $GITHUB_API_URL or https://api.github.com)",
              ci=_github_actions, ci_name="GitHub Actions", api_root=_github_api),
    ForgeSpec("gitlab", "GitLab", "promoter.forges.gitlab", "GROUP/PROJECT",
              tokens=("GITLAB_TOKEN",), job_token="CI_JOB_TOKEN",  # noqa: S106 (a name)
              api_env="CI_SERVER_URL",
              api_default="https://gitlab.com",
              api_help="GitLab server root (default $CI_SERVER_URL)",
              ci=_flag("GITLAB_CI"), ci_name="GitLab CI", request="merge request", mark="!"),
    ForgeSpec("gitea", "Gitea or Forgejo", "promoter.forges.gitea", "OWNER/NAME",
              tokens=("GITEA_TOKEN", "FORGEJO_TOKEN"),
              api_help="Gitea/Forgejo server root (default: the instance running "
                       "Gitea/Forgejo Actions)",
              ci=_flag("GITEA_ACTIONS", "FORGEJO_ACTIONS"), ci_name="Gitea/Forgejo Actions"),
    ForgeSpec("azure", "Azure DevOps Repos", "promoter.forges.azure", "ORG/PROJECT/REPO",
              tokens=("AZURE_DEVOPS_TOKEN", "AZURE_DEVOPS_EXT_PAT"),
              job_token="SYSTEM_ACCESSTOKEN", job_token_in_ci=True,  # noqa: S106 (a name)
              credentials_help="AZURE_DEVOPS_TOKEN / AZURE_DEVOPS_EXT_PAT, else "
                               "SYSTEM_ACCESSTOKEN inside Azure Pipelines (azure)",
              api_help="Azure DevOps root (default https://dev.azure.com; Azure DevOps "
                       "Server: the collection URL, with --repo PROJECT/REPO)",
              ci=azure_pipelines, ci_name="Azure Pipelines"),
    ForgeSpec("bitbucket", "Bitbucket Cloud or Data Center", "promoter.forges.bitbucket",
              "WORKSPACE/REPO", tokens=("BITBUCKET_TOKEN",),
              credentials_help="BITBUCKET_TOKEN (bitbucket; with BITBUCKET_USERNAME for an "
                               "app password or API token)",
              api_help="Bitbucket Cloud API (default https://api.bitbucket.org) / Bitbucket "
                       "Data Center server root",
              ci=bitbucket_pipelines, ci_name="Bitbucket Pipelines"),
    ForgeSpec(PLAIN_GIT, "plain git", "promoter.forges.git", "a git URL or path",
              request="branch", mark=None),
)}


def forge_help() -> str:
    kinds = ", ".join(f"{s.name}: {s.title}" for s in FORGES.values())
    inside = ", ".join(f"{s.name} inside {s.ci_name}" for s in FORGES.values() if s.ci_name)
    return (f"Where the config repo lives ({kinds}). Default: {PLAIN_GIT} for a path or git "
            f"URL, {inside}.")


def repo_help() -> str:
    forms: dict[str, list[str]] = {}
    for spec in FORGES.values():
        if spec.name != PLAIN_GIT:
            forms.setdefault(spec.repo_form, []).append(spec.title)
    named = " / ".join(f"{form} ({', '.join(titles)})" for form, titles in forms.items())
    git = FORGES[PLAIN_GIT]
    return f"Config repo: a local DIR, {git.repo_form} ({git.title}), or {named}."


def api_url_help() -> str:
    parts = [s.api_help for s in FORGES.values() if s.api_help]
    return ", ".join(parts[:-1]) + " or " + parts[-1] + "."


def token_help() -> str:
    parts = [s.credentials_help or
             f"{' / '.join(s.tokens + ((s.job_token,) if s.job_token else ()))} ({s.name})"
             for s in FORGES.values() if s.tokens]
    return "Token: PROMOTE_TOKEN, else " + ", ".join(parts) + "."


def label(forge: object, number: object, branch: object) -> str:
    """How reports name the request of a run on ``forge`` (a pull request by default)."""
    spec = FORGES.get(forge) if isinstance(forge, str) else None
    return (spec or FORGES["github"]).label(number, branch)


def detect(environ: Mapping[str, str]) -> str | None:
    """The forge whose CI runs this, if any."""
    return next((s.name for s in FORGES.values() if s.ci is not None and s.ci(environ)), None)


def tokens(spec: ForgeSpec, environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(token, job token) for ``spec``: PROMOTE_TOKEN, else its variables in order; the
    job token only when there is no token."""
    for name in ("PROMOTE_TOKEN", *spec.tokens):
        if environ.get(name):
            return environ[name], None
    inside = spec.ci is not None and spec.ci(environ)
    job = environ.get(spec.job_token) if spec.job_token and (
        inside or not spec.job_token_in_ci) else None
    return None, job or None


def api_root(kind: str, url: str) -> str:
    """The API root the ``kind`` forge's client wants, from what users paste (the
    server root for every forge but GitHub; python-gitlab itself drops a trailing
    ``/api/v4``, the form CI_API_V4_URL has)."""
    return FORGES[kind].api_root(url)


def unknown_forge(repo: str) -> UsageError:
    names = [f"--forge {name}" for name in FORGES]
    return UsageError(f"cannot tell which forge holds {repo!r}: no directory of that name "
                      "exists here, and it is no git URL",
                      hint="say " + ", ".join(names[:-1]) + " or " + names[-1])
