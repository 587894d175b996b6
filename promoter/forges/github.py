"""The GitHub forge: PyGithub over the REST API, and GraphQL where it saves requests.

One promotion is one atomic commit, then a pull request:

    snapshot      POST graphql (the run query: base tip and tree, default branch,
                  repository and label node ids, the promotion branch's tip and its open
                  pull requests, the root tree's entries), GET tarball (302) + GET the
                  archive it points to (at most promoter.limits.MAX_ARCHIVE_BYTES,
                  unpacking to at most MAX_UNPACKED_BYTES: else exit 5); GET the blob of
                  .promoter.yaml only when the archive's copy is not the tree's
                  (export-ignore/-subst, too large)
    read_head     answered by the run query (once); else GET branch    (0-1 request)
    write_commit  new branch: POST graphql with createRef + createCommitOnBranch
                  (expectedHeadOid = the base; atomic; GitHub signs the commit, shown
                  as Verified)                                          (1 request)
                  a change to an executable file (the mutation sets no modes), or
                  replace: POST tree, POST commit, POST ref / GET ref + PATCH ref
    find_request  answered by the run query (once); else GET pulls     (0-1 request)
    open_request  POST pulls, then labels, reviewers, assignees        (1-4 requests)
                  (labels go with the auto-merge mutation when it follows)
    checks        GET combined status, GET check runs                 (2 requests)
    merge         PUT merge with the head sha as guard                (1 request)
    enable_auto_merge  POST graphql (addLabelsToLabelable + enablePullRequestAutoMerge
                  pinned to the head); "clean status" -> merge; nothing when it is
                  already on for that head and method
    disable_auto_merge  POST graphql (disablePullRequestAutoMerge), only when the
                  run query or the REST pull says it is on          (0-1 request)

The client is built with ``retry=None`` and no throttling: ``promoter.retry`` owns every
retry (5xx, 429, secondary rate limits, dropped connections), honouring Retry-After.
A write is retried only by code that first looks whether the earlier attempt took
effect (the ref already points at our commit, the pull request exists, the pull
request is merged, the comment is there). GitHub's ref PATCH has no compare-and-swap,
so moving a branch first reads it and refuses (ConflictError) when it moved.

The constructor never reads the environment and makes no request; the first call
builds the client (for a GitHub App: finds the repository's installation and mints an
installation token, which is registered with ``redact`` like every other secret).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import tarfile
import time
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import quote

import requests
from github import (
    Auth,
    Github,
    GithubException,
    GithubIntegration,
    InputGitAuthor,
    InputGitTreeElement,
)
from github.GitCommit import GitCommit
from github.GithubObject import NotSet
from github.GitRef import GitRef
from github.PullRequest import PullRequest as GhPull
from github.Repository import Repository

from promoter import proof, retry
from promoter.errors import AuthError, ConflictError, ForgeError, PromoteError, UsageError
from promoter.forges import archive
from promoter.forges import github_gql as gql
from promoter.forges.base import (
    ChecksState,
    Head,
    LoggedCommit,
    MergeMethod,
    MergeOutcome,
    PullRequest,
    RequestSpec,
    Snapshot,
    check_branch,
    check_method,
    check_write,
    refuse_signing,
    says_conflict,
)
from promoter.forges.http import (
    OddAnswer,
    StatusGuard,
    cross_host_301,
    origin,
    read_capped,
    refuse_cleartext_proxy,
    session,
    tls_failure,
)
from promoter.forges.registry import Setup, api_root
from promoter.identity import Identity
from promoter.limits import MAX_ARCHIVE_BYTES, ArchiveTooLarge
from promoter.redact import redact, register

T = TypeVar("T")

DEFAULT_API_URL: Final = "https://api.github.com"
MAX_BODY: Final = 65_536  # GitHub's limit for a pull request body (and a comment)
MAX_TITLE: Final = 256
MAX_FILE: Final = 10 * 1024 * 1024  # larger files are left out of a snapshot
PER_PAGE: Final = 100
MAX_LISTED: Final = 300  # files GitHub lists for one commit on the first page
FAILED_CONCLUSIONS: Final = frozenset(
    {"failure", "timed_out", "cancelled", "action_required", "startup_failure", "stale"})
TRUNCATED_NOTE: Final = ("\n\n---\n*promoter: the rest of this description was cut: GitHub "
                         "allows at most 65,536 characters in a pull request body.*\n")

CONTENTS: Final = "contents:write"
PULLS: Final = "pull-requests:write"
READ: Final = "contents:read"
CHECKS: Final = "checks:read and statuses:read"


class _Unhandled:
    """What a ``recover`` hook returns when it leaves the error to the translation."""


UNHANDLED: Final = _Unhandled()


class _DownloadFailed(Exception):
    """The archive download answered an HTTP error (or sent a broken archive)."""

    def __init__(self, status: int | None, headers: Mapping[str, str] | None = None,
                 reason: str = "") -> None:
        super().__init__(reason or f"HTTP {status}")
        self.status = status
        self.headers = dict(headers or {})
        self.reason = reason


def classify(exc: BaseException) -> retry.Transient | None:
    """Which failures are worth another try (see ``promoter.retry``)."""
    if isinstance(exc, GithubException):
        return retry.status_transient(exc.status, exc.headers, _body_text(exc))
    if isinstance(exc, _DownloadFailed):
        if exc.status is None:
            return retry.Transient()
        return retry.status_transient(exc.status, exc.headers)
    if isinstance(exc, requests.exceptions.SSLError):
        return None  # a certificate that does not verify will not verify next time
    if isinstance(exc, (requests.ConnectionError, requests.Timeout,
                        requests.exceptions.ChunkedEncodingError)):
        return retry.Transient()
    return None


def _body_text(exc: GithubException) -> str:
    try:
        return json.dumps(exc.data) if exc.data is not None else ""
    except (TypeError, ValueError):
        return str(exc.data)


def github_message(exc: GithubException) -> str:
    """GitHub's own words: ``message`` plus each entry of ``errors`` (REST or GraphQL)."""
    data = exc.data
    parts: list[str] = []
    if isinstance(data, dict):
        if isinstance(data.get("message"), str):
            parts.append(data["message"])
        for err in data.get("errors") or []:
            if isinstance(err, dict) and isinstance(err.get("message"), str):
                parts.append(err["message"])
            elif isinstance(err, dict) and err.get("field"):
                parts.append(f"{err.get('field')} {err.get('code', 'invalid')}")
            elif isinstance(err, str):
                parts.append(err)
    elif isinstance(data, str):
        parts.append(data)
    return "; ".join(parts) or (exc.message or "")


def _graphql_types(exc: GithubException) -> set[str]:
    data = exc.data if isinstance(exc.data, dict) else {}
    return {str(e.get("type")) for e in data.get("errors") or [] if isinstance(e, dict)}


def cap_body(body: str) -> str:
    """``body`` cut to GitHub's 65,536-character limit (counted in UTF-8 bytes, which
    is never fewer than characters), with a note saying so; an open code fence is closed."""
    if len(body.encode("utf-8")) <= MAX_BODY:
        return body
    budget = MAX_BODY - len(TRUNCATED_NOTE.encode("utf-8")) - len("\n```")
    cut = body.encode("utf-8")[:budget].decode("utf-8", "ignore")
    newline = cut.rfind("\n")
    if newline > budget // 2:
        cut = cut[:newline]
    if cut.count("```") % 2:
        cut += "\n```"
    return cut + TRUNCATED_NOTE


def cap_title(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= MAX_TITLE else title[:MAX_TITLE - 1] + "…"


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value or "")


class GitHubForge:
    name = "github"
    body_limit = MAX_BODY
    has_checks = True
    branch_is_request = False
    has_labels = True
    arms_auto_merge = True

    def __init__(
        self,
        repo: str,
        api_url: str = DEFAULT_API_URL,
        token: str | None = None,
        app_id: int | str | None = None,
        app_key: str | None = None,
        retry_timeout: float = retry.DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        timeout: int = 15,
        ca_bundle: str | None = None,
        patience: retry.Patience | None = None,
    ) -> None:
        parts = repo.split("/")
        if len(parts) != 2 or not all(parts) or any(" " in p for p in parts):
            raise UsageError(f"{repo!r} is not a GitHub repository",
                             hint="say --repo OWNER/NAME, e.g. acme/config")
        if app_id is not None and not app_key:
            raise UsageError("a GitHub App id needs the App's private key",
                             hint="pass --github-app-key-file or $PROMOTE_GITHUB_APP_KEY")
        if app_id is None and not token:
            raise UsageError("no GitHub token: set PROMOTE_TOKEN (or GITHUB_TOKEN), or use a "
                             "GitHub App", hint="the token needs contents:write and "
                             "pull-requests:write on " + repo)
        register(token)
        register(app_key)
        self.slug = repo
        self.owner, self.repo_name = parts
        self.api_url = api_url.rstrip("/")
        self._author: Identity | None = None  # use_identity(); None: the token's user
        self.token = token
        self.app_id = app_id
        self.app_key = app_key
        self.retry_timeout = retry_timeout
        self.sleep = sleep
        self.timeout = int(timeout)
        self.ca_bundle = ca_bundle  # CA certificates (PEM) to verify TLS with: --ca-bundle
        self.patience = patience or retry.Patience(service="GitHub")
        self._gh: Github | None = None
        self._repo: Repository | None = None
        self._executable: dict[str, frozenset[str]] = {}
        self._trees: dict[str, str] = {}  # commit sha -> its tree sha, from the snapshot
        self._nodes: dict[int, str] = {}  # pull request number -> node id (GraphQL)
        self._run: gql.RunAnswer | None = None  # the run query's answer (see snapshot)
        self._heads: dict[str, Head | None] = {}  # read with the run query: used once
        self._pulls: dict[str, tuple[gql.OpenPull, ...]] = {}  # likewise
        self._signed: set[str] = set()  # commits GitHub signed (made or seen Verified)
        # labels (name -> node id) to add with the auto-merge mutation of that request
        self._labels_due: dict[int, dict[str, str]] = {}
        self._session = session(ca_bundle)
        # The archive URL is pre-signed: send no credentials, not even from ~/.netrc
        # (requests only reads .netrc when the session has no auth of its own).
        self._session.auth = _no_auth

    def close(self) -> None:
        """Close the HTTP connections (the forge can be used again afterwards)."""
        if self._gh is not None:
            self._gh.close()
        self._gh = self._repo = None
        self._session.close()

    def __enter__(self) -> GitHubForge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------

    def _client_kwargs(self) -> dict[str, Any]:
        # StatusGuard retries nothing (promoter.retry does) and turns answers PyGithub
        # would misread (a redirect, a 202) into OddAnswer (promoter.forges.http)
        # verify: --ca-bundle, else requests' default (REQUESTS_CA_BUNDLE or certifi)
        return {"base_url": self.api_url, "timeout": self.timeout, "retry": StatusGuard(),
                "seconds_between_requests": None, "seconds_between_writes": None,
                "lazy": True, "per_page": PER_PAGE, "verify": self.ca_bundle or True}

    def _client(self) -> tuple[Github, Repository]:
        if self._gh is None or self._repo is None:
            if self.app_id is not None and self.app_key:
                gh = self._app_client(self.app_id, self.app_key)
            else:
                gh = Github(auth=Auth.Token(self.token or ""), **self._client_kwargs())
            self._gh = gh
            self._repo = gh.get_repo(self.slug)
        return self._gh, self._repo

    def _app_client(self, app_id: int | str, app_key: str) -> Github:
        app = Auth.AppAuth(app_id, app_key)
        integration = GithubIntegration(auth=app, **self._client_kwargs())

        def not_installed(exc: GithubException) -> Any:
            if exc.status == 404:
                raise AuthError(
                    f"the GitHub App {app_id} is not installed on {self.slug}",
                    hint="install the App on that repository (or give it access to it)")
            return UNHANDLED

        try:
            installation = self._call(
                "find the GitHub App's installation",
                lambda: integration.get_repo_installation(self.owner, self.repo_name),
                recover=not_installed)
        finally:
            integration.close()
        auth = app.get_installation_auth(installation.id)
        gh = Github(auth=auth, **self._client_kwargs())
        token = self._call("create a GitHub App installation token", lambda: auth.token)
        register(token)
        return gh

    def _call(self, op: str, fn: Callable[[], T], *, need: str = CONTENTS,
              recover: Callable[[GithubException], T | _Unhandled] | None = None) -> T:
        """``fn`` under the shared retry policy; every failure becomes a PromoteError.
        ``recover`` sees a final, non-transient GitHub error first and may answer it."""
        try:
            return retry.call(fn, classify, timeout=self.retry_timeout, sleep=self.sleep,
                              patience=self.patience)
        except PromoteError:
            raise
        except GithubException as exc:
            if recover is not None and classify(exc) is None:
                handled = recover(exc)
                if not isinstance(handled, _Unhandled):
                    return handled
            raise self._translate(op, exc, need) from None
        except OddAnswer as exc:
            raise self._odd_answer(op, exc.status, exc.location) from None
        except RuntimeError as exc:
            if not cross_host_301(exc):
                raise
            raise self._odd_answer(op, 301, None) from None
        except ArchiveTooLarge as exc:
            raise ForgeError(f"could not {op}: {exc.describe()}",
                             hint="a config repo that large is not supported; see "
                                  "SECURITY.md (limits)") from None
        except _DownloadFailed as exc:
            what = exc.reason or f"HTTP {exc.status}"
            raise ForgeError(redact(f"could not {op}: the download failed ({what}), even "
                                    "after retrying"), hint="run again later") from None
        except requests.RequestException as exc:
            tls = tls_failure(exc, "GitHub", self.api_url)
            if tls is not None:
                raise tls from None
            raise ForgeError(
                redact(f"could not reach GitHub at {self.api_url} to {op} "
                       f"({type(exc).__name__}), even after retrying for up to "
                       f"{self.retry_timeout:g}s"),
                hint="check --api-url and the network") from None

    def _write(self, op: str, act: Callable[[], T], already: Callable[[], T | None], *,
               need: str = CONTENTS,
               recover: Callable[[GithubException], T | _Unhandled] | None = None) -> T:
        """A write that is retried only after ``already`` says the earlier attempt did
        not take effect (``already`` returns the result when it did)."""
        return self._call(op, retry.Write(act, already), need=need, recover=recover)

    def _translate(self, op: str, exc: GithubException, need: str) -> PromoteError:
        status = exc.status
        said = github_message(exc) or "no message"
        if classify(exc) is not None:
            return ForgeError(
                redact(f"GitHub kept failing to {op} on {self.slug}: the last answer was "
                       f"{status} ({said}), after retrying for up to "
                       f"{self.retry_timeout:g}s"),
                hint="GitHub may be down or rate-limiting this token; run again later")
        if status == 401:
            if self.app_id is not None:
                return AuthError(redact(
                    f"GitHub rejected the GitHub App credentials ({status} {said}) while "
                    f"trying to {op}: check the App id {self.app_id} and its private key"))
            return AuthError(redact(
                f"GitHub rejected the token ({status} {said}): set PROMOTE_TOKEN to a token "
                f"with contents:write and pull-requests:write on {self.slug}"))
        if status == 403:
            return AuthError(
                redact(f"GitHub refused to {op} on {self.slug} ({status} {said}): the token "
                       f"lacks {need} permission there"),
                hint=f"grant {need} to the token or GitHub App; a workflow's GITHUB_TOKEN "
                     "needs `permissions:` for it and reaches no other repository")
        if status == 404:
            return ForgeError(
                redact(f"GitHub answered 404 ({said}) when trying to {op}: the repository "
                       f"{self.slug} does not exist or the token cannot see it"),
                hint="check --repo and the repositories the token may access")
        return ForgeError(redact(f"GitHub refused to {op} on {self.slug} ({status} {said})"))

    def _odd_answer(self, op: str, status: int, location: str | None) -> PromoteError:
        if status == 202:
            return ForgeError(f"GitHub answered 202 (accepted, still processing) when trying "
                              f"to {op} on {self.slug}", hint="run again later")
        if status == 304:
            said = "304 (not modified, which promoter never asks for)"
        else:
            said = f"{status} (a redirect to {location or 'another address'})"
        return ForgeError(
            redact(f"GitHub answered {said} when trying to {op} on {self.slug}; promoter "
                   f"does not follow redirects of the API, so the token stays with "
                   f"{origin(self.api_url)}"),
            hint="check --api-url: the API root, e.g. https://api.github.com or "
                 "https://HOST/api/v3 for GitHub Enterprise")

    def _missing_branch(self, branch: str) -> PromoteError:
        """A 404 on a branch: the branch is missing, or the whole repository is."""
        gh, _ = self._client()

        def exists() -> bool:
            try:
                gh.get_repo(self.slug).id  # noqa: B018 - completes the lazy object: one GET
            except GithubException as exc:
                if exc.status == 404:
                    return False
                raise
            return True

        if not self._call("read the repository", exists, need=READ):
            return ForgeError(f"the repository {self.slug} does not exist or the token cannot "
                              f"see it (at {self.api_url})",
                              hint="check --repo and the repositories the token may access")
        return UsageError(f"the branch {branch!r} does not exist in {self.slug}",
                          hint="pass --base with an existing branch")

    @staticmethod
    def _is(exc: GithubException, status: int, text: str) -> bool:
        return exc.status == status and text.lower() in github_message(exc).lower()

    # -- reading ----------------------------------------------------------------------

    def snapshot(self, base: str | None, branch: str | None = None) -> Snapshot:
        """One GraphQL query (the base's tip and tree, the repository's node id and labels,
        and, given ``branch``, that branch's tip and open pull requests, which the next
        ``read_head`` / ``find_request`` of it answer from), then the tarball (2 GETs)."""
        gh, repo = self._client()
        if base is not None:
            check_branch(base)
        if branch is not None:
            check_branch(branch)
        document, variables = gql.run_query(base, branch)
        variables.update({"owner": self.owner, "name": self.repo_name})

        def read() -> gql.RunAnswer | None:
            _, data = gh.requester.graphql_query(document, variables)
            return gql.parse_run(data, base)

        answer = self._call("read the repository", read, need=READ)
        if answer is None:
            raise ForgeError(f"the repository {self.slug} does not exist or the token cannot "
                             f"see it (at {self.api_url})",
                             hint="check --repo and the repositories the token may access")
        if answer.base is None:
            if base is None:
                raise UsageError(f"{self.slug} has no default branch (an empty repository?)",
                                 hint="push a first commit, or pass --base")
            raise UsageError(f"the branch {base!r} does not exist in {self.slug}",
                             hint="pass --base with an existing branch")
        self._run = answer
        if branch is not None:
            self._heads[branch] = answer.head
            self._pulls[branch] = answer.pulls
            if answer.head is not None and answer.head_signed:
                self._signed.add(answer.head.sha)
        for found in answer.pulls:
            self._nodes[found.pull.number] = found.node_id
        sha = answer.base.sha
        check_branch(answer.base.branch)
        self._trees[sha] = answer.base.tree
        tree = self._call(f"download {self.slug} at {sha[:12]}",
                          lambda: self._download(repo, sha), need=READ)
        tip = answer.base
        root = [archive.Listed(n, int(m, 8), o)
                for n, m, o in tip.root or self._root(repo, tip.tree)]
        archive.prove(tree, root, lambda: self._list_tree(repo, tip.tree),
                      lambda oid: self._blob(repo, oid), f"{self.slug} at {sha[:12]}")
        archive.policy_file(tree, root, lambda oid: self._blob(repo, oid))
        self._executable[sha] = frozenset(tree.executable)
        return Snapshot(branch=answer.base.branch, commit=sha, files=tree.files,
                        links=tree.links)

    def write_first(self, files: Mapping[str, bytes]) -> bool:
        """No: the run query has already read the branch (no request to save)."""
        return False

    def commit_verified(self, sha: str) -> bool | None:
        """Whether GitHub signed ``sha`` (commits made with ``createCommitOnBranch`` are,
        and show as Verified), from what this forge already knows: no request."""
        return True if sha in self._signed else None

    def _root(self, repo: Repository, tree: str) -> list[tuple[str, str, str]]:
        """The root tree's entries (name, mode, object id): one GET."""
        listed = self._call(f"read the root tree of {self.slug}",
                            lambda: repo.get_git_tree(tree).tree, need=READ)
        return [(e.path, e.mode, e.sha) for e in listed]

    def _list_tree(self, repo: Repository, tree: str) -> list[archive.Listed]:
        """Every entry of ``tree``, recursively: one GET (GitHub lists up to 100,000)."""
        listed = self._call(f"list the tree of {self.slug}",
                            lambda: repo.get_git_tree(tree, recursive=True), need=READ)
        if listed.raw_data.get("truncated"):
            raise ForgeError(f"GitHub cut the listing of the tree of {self.slug} short "
                             "(too many entries)", hint="a config repo that large is not "
                             "supported; see SECURITY.md (limits)")
        return [archive.Listed(e.path, int(e.mode, 8), e.sha) for e in listed.tree]

    def _blob(self, repo: Repository, oid: str) -> bytes:
        blob = self._call(f"read the blob {oid[:12]} of {self.slug}",
                          lambda: repo.get_git_blob(oid), need=READ)
        content = blob.content or ""
        return base64.b64decode(content) if blob.encoding == "base64" \
            else content.encode("utf-8")

    def _download(self, repo: Repository, sha: str) -> archive.Unpacked:
        location = repo.get_archive_link("tarball", sha)
        with self._session.get(location, timeout=self.timeout, stream=True) as response:
            if response.status_code != 200:
                with contextlib.suppress(ArchiveTooLarge):  # read a small error body, so
                    read_capped(response, 1 << 20, "the answer")  # the connection is reused
                raise _DownloadFailed(response.status_code, dict(response.headers))
            data = read_capped(response, MAX_ARCHIVE_BYTES, "the archive")
        try:
            return archive.unpack_archive(data, max_file=MAX_FILE)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise _DownloadFailed(None, reason=f"broken archive ({type(exc).__name__})") \
                from exc

    def read_head(self, branch: str) -> Head | None:
        check_branch(branch)
        if branch in self._heads:  # read moments ago with the run query: once
            return self._heads.pop(branch)
        _, repo = self._client()

        def read() -> Head | None:
            try:
                commit = repo.get_branch(branch).commit
            except GithubException as exc:
                if exc.status == 404:
                    return None
                raise
            return Head(commit.sha, commit.commit.message,
                        tuple(p.sha for p in commit.parents))

        return self._call(f"read branch {branch}", read, need=READ)

    def log(self, branch: str, limit: int) -> list[LoggedCommit]:
        check_branch(branch)
        _, repo = self._client()

        def missing(exc: GithubException) -> Any:
            if exc.status in (404, 422):
                raise self._missing_branch(branch)
            return UNHANDLED

        def walk() -> list[LoggedCommit]:
            out: list[LoggedCommit] = []
            seen: dict[str, Any] = {}
            want: str | None = None
            # from the branch's commit, never its bare name: a tag of the same name would
            # be git's first pick, and its forged trailers read as this branch's history
            start = repo.get_branch(branch).commit.sha
            for commit in repo.get_commits(sha=start):
                seen[commit.sha] = commit
                want = want or commit.sha
                while want in seen and len(out) < limit:
                    cur = seen.pop(want)
                    author = cur.commit.author
                    out.append(LoggedCommit(cur.sha, cur.commit.message, author.name or "",
                                            _iso(author.date)))
                    want = cur.parents[0].sha if cur.parents else None
                if len(out) >= limit or want is None:
                    break
            return out

        if limit <= 0:
            return []
        return self._call(f"read the history of {branch}", walk, need=READ, recover=missing)

    # -- writing ----------------------------------------------------------------------

    def use_identity(self, author: Identity | None, *, sign: bool = False) -> None:
        """``author`` goes to the Git Data API's commit (also as its committer); None
        leaves it to GitHub (the token's user). promoter has no key to sign an API
        commit with, so ``sign`` is refused: nothing unsigned is pushed instead."""
        refuse_signing(sign, "GitHub")
        self._author = author

    def write_commit(self, branch: str, base: Snapshot, files: Mapping[str, bytes],
                     message: str, *, replace: Head | None) -> str:
        check_write(branch, files)
        _, repo = self._client()
        executable = self._executable.get(base.commit, frozenset())
        run = self._run
        if (replace is None and run is not None and run.repository_id and files
                and not executable.intersection(files) and self._author is None):
            # one request, atomic, signed by GitHub (createCommitOnBranch sets no modes
            # and no author: a change to an executable file, or a commit with --author,
            # takes the Git Data API below)
            return self._commit_on_new_branch(repo, run.repository_id, branch, base, files,
                                              message)
        known = self._trees.get(base.commit)
        parent: GitCommit = GitCommit(repo.requester, {}, {
            "sha": base.commit, "tree": {"sha": known}}, completed=True) if known else \
            self._call(f"read commit {base.commit[:12]}",
                       lambda: repo.get_git_commit(base.commit), need=READ)
        elements = []
        for path, data in sorted(files.items()):
            mode = "100755" if path in executable else "100644"
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:  # not text: upload it as a blob first
                blob = self._upload(repo, path, data)
                elements.append(InputGitTreeElement(path, mode, "blob", sha=blob))
                continue
            elements.append(InputGitTreeElement(path, mode, "blob", content=text))
        # Trees and commits are content-addressed objects nothing points at yet: a
        # repeated POST is harmless, so these two are retried as they are.
        tree = self._call("create the tree",
                          lambda: repo.create_git_tree(elements, base_tree=parent.tree))
        # an author given (--author, author:) is also the committer, as GitHub does it;
        # without one, GitHub records the token's user
        author = self._author
        who = {"author": InputGitAuthor(author.name, author.email)} if author else {}
        commit = self._call("create the commit",
                            lambda: repo.create_git_commit(message, tree, [parent], **who))
        if replace is None:
            return self._create_branch(repo, branch, commit.sha, tree.sha, base.commit, message)
        return self._move_branch(repo, branch, replace.sha, commit.sha)

    def _commit_on_new_branch(self, repo: Repository, repository_id: str, branch: str,
                              base: Snapshot, files: Mapping[str, bytes],
                              message: str) -> str:
        """``createRef`` at the base, then ``createCommitOnBranch`` expecting the base: one
        request. When the branch exists already (another run), GitHub refuses one or the
        other and nothing of ours lands (ConflictError: promote plans again), except when
        that branch still sat at the base: then the commit is ours, on the base, as if we
        had made the branch."""
        gh, _ = self._client()
        variables = gql.commit_variables(repository_id, self.slug, branch, base.commit,
                                         files, message)

        def act() -> str:
            _, data = gh.requester.graphql_query(gql.COMMIT, variables)
            oid = gql.committed(data)
            if oid is None:
                raise ForgeError(f"GitHub made no commit on {branch} and said nothing why")
            self._signed.add(oid)
            return oid

        def landed() -> str | None:
            """The branch's tip when it is this very change on the base (an earlier
            attempt, or an identical run: proved by its files), None when the branch is
            missing or still at the base; ConflictError when it holds anything else."""
            ref = self._ref(repo, branch)
            if ref is None or ref.object.sha == base.commit:
                return None
            head = ref.object.sha
            found = repo.get_git_commit(head)
            if ([p.sha for p in found.parents] == [base.commit]
                    and found.message.strip() == gql.as_stored(message).strip()
                    and proof.holds(self.changed_files(head), files)):
                return head
            raise self._taken(branch, head)

        def refused(exc: GithubException) -> str | _Unhandled:
            oid = gql.committed(exc.data if isinstance(exc.data, dict) else {})
            if oid is not None:  # the branch was there already, at the base: ours now
                self._signed.add(oid)
                return oid
            said = github_message(exc)
            if "FORBIDDEN" in _graphql_types(exc):
                raise AuthError(redact(f"GitHub refused to commit to {branch} ({said}): the "
                                       f"token lacks {CONTENTS} on {self.slug}"))
            if "already exists" in said or "expected branch to point to" in said.lower():
                # there before this call: another run's (promote plans again, and reuses
                # it when it proves), or an earlier attempt of this call's (ours)
                same = landed() if write.retried else None
                if same is None:
                    raise self._taken(branch, "")
                return same
            return UNHANDLED

        write = retry.Write(act, landed)
        return self._call(f"commit to branch {branch}", write, recover=refused)

    def _taken(self, branch: str, sha: str) -> ConflictError:
        at = f" at {sha[:12]}" if sha else ""
        return ConflictError(
            f"branch {branch} already exists in {self.slug}{at}, made by another run or by "
            "someone else; promoter will not overwrite it",
            hint="run promote again (it will update the branch if it is promoter's), or "
                 "delete the branch")

    def _upload(self, repo: Repository, path: str, data: bytes) -> str:
        encoded = base64.b64encode(data).decode("ascii")
        blob = self._call(f"upload {path}", lambda: repo.create_git_blob(encoded, "base64"))
        return blob.sha

    def _ref(self, repo: Repository, branch: str) -> GitRef | None:
        """The branch's ref, completed (one GET), or None when it does not exist."""
        ref = repo.get_git_ref(f"heads/{branch}")
        try:
            ref.object  # noqa: B018 - completes the lazy object: one GET
        except GithubException as exc:
            if exc.status == 404:
                return None
            raise
        return ref

    def _existing(self, repo: Repository, branch: str, gone: str) -> GitRef:
        """The branch's ref, read now; none is a ConflictError saying it ``gone``."""
        ref = self._ref(repo, branch)
        if ref is None:
            raise ConflictError(f"branch {branch} {gone}", hint="run promote again")
        return ref

    def _create_branch(self, repo: Repository, branch: str, sha: str, tree: str,
                       parent_sha: str, message: str) -> str:
        def act() -> str:
            repo.create_git_ref(f"refs/heads/{branch}", sha)
            return sha

        def already() -> str | None:
            ref = self._ref(repo, branch)
            return sha if ref is not None and ref.object.sha == sha else None

        def exists(exc: GithubException) -> str | _Unhandled:
            if not self._is(exc, 422, "already exists"):
                return UNHANDLED
            current = self._existing(repo, branch, "appeared and vanished while promoter "
                                                   "was creating it").object.sha
            if current == sha:
                return current  # an earlier attempt of this call already made it
            found = repo.get_git_commit(current)
            if (found.tree.sha == tree and [p.sha for p in found.parents] == [parent_sha]
                    and found.message.rstrip() == message.rstrip()):
                return current  # an identical run made the same commit on the same base
            raise ConflictError(
                f"branch {branch} already exists in {self.slug} at {current[:12]}, made by "
                "another run or by someone else; promoter will not overwrite it",
                hint="run promote again (it will update the branch if it is promoter's), or "
                     "delete the branch")

        return self._write(f"create branch {branch}", act, already, recover=exists)

    def _move_branch(self, repo: Repository, branch: str, old: str, new: str) -> str:
        def move() -> str:
            # Each attempt looks first: PATCH has no compare-and-swap, and an earlier
            # attempt may already have moved the branch.
            ref = self._existing(repo, branch, "was deleted while promoter was updating it")
            current = ref.object.sha
            if current == new:
                return new
            if current != old:
                raise ConflictError(
                    f"branch {branch} moved to {current[:12]} (promoter expected "
                    f"{old[:12]}); promoter will not force over someone else's commit",
                    hint="run promote again, or delete the branch")
            ref.edit(new, force=True)
            return new

        return self._call(f"move branch {branch}", move)

    def changed_files(self, sha: str) -> Mapping[str, str] | None:
        """One GET of the commit: its parents and the files it changed (with their new
        blob shas). GitHub lists at most ``MAX_LISTED`` files of a commit; a commit that
        changes more, or anything but file contents, is never proved."""
        _, repo = self._client()

        def read() -> Mapping[str, str] | None:
            commit = repo.get_commit(sha)
            if len(commit.parents) != 1:
                return None
            files = commit.raw_data.get("files") or []
            if len(files) >= MAX_LISTED:
                return None
            out: dict[str, str] = {}
            for entry in files:
                if entry.get("status") not in ("modified", "added") or not entry.get("sha"):
                    return None  # removed, renamed, copied, mode or type changed
                out[str(entry["filename"])] = str(entry["sha"])
            return out

        return self._call(f"read commit {sha[:12]}", read, need=READ)

    def delete_branch(self, branch: str) -> None:
        check_branch(branch)
        gh, repo = self._client()
        url = f"{repo.url}/git/refs/heads/{quote(branch)}"

        def act() -> bool:
            gh.requester.requestJsonAndCheck("DELETE", url)
            return True

        def already() -> bool | None:
            return True if self._ref(repo, branch) is None else None

        def gone(exc: GithubException) -> bool | _Unhandled:
            return True if self._is(exc, 422, "does not exist") else UNHANDLED

        self._write(f"delete branch {branch}", act, already, recover=gone)

    # -- pull requests ----------------------------------------------------------------

    def _to_pr(self, pull: GhPull) -> PullRequest:
        state = "merged" if pull.merged_at is not None else pull.state
        return PullRequest(
            number=pull.number, url=pull.html_url, branch=pull.head.ref, base=pull.base.ref,
            title=pull.title or "", body=pull.body or "", head_sha=pull.head.sha,
            state=state, labels=tuple(label.name for label in pull.labels),
            auto_merge=_auto_merge_of(pull.auto_merge), base_sha=pull.base.sha or "")

    def _find(self, repo: Repository, branch: str, base: str) -> PullRequest | None:
        page = repo.get_pulls(state="open", head=f"{self.owner}:{branch}",
                              base=base).get_page(0)
        return self._to_pr(page[0]) if page else None

    def find_request(self, branch: str, base: str, *,
                     confirm_none: bool = False) -> PullRequest | None:
        check_branch(branch)
        if branch in self._pulls:  # read moments ago with the run query: once
            found = [p.pull for p in self._pulls.pop(branch)
                     if p.pull.base == base and p.head_repo == self.slug]
            if found or not confirm_none:
                return found[0] if found else None
        _, repo = self._client()
        return self._call(f"list pull requests of {branch}",
                          lambda: self._find(repo, branch, base), need=PULLS)

    def open_request(self, branch: str, base: str, spec: RequestSpec, *,
                     auto_merge_next: bool = False) -> PullRequest:
        """POST pulls, then labels, reviewers, assignees. ``auto_merge_next``: the caller
        enables auto-merge right after, so labels whose node ids the run query read go
        with that mutation (one request fewer)."""
        check_branch(branch)
        _, repo = self._client()
        title, body = cap_title(spec.title), cap_body(spec.body)

        def act() -> tuple[PullRequest, bool]:
            extra: dict[str, Any] = {"draft": True} if spec.draft else {}
            pull = repo.create_pull(base=base, head=branch, title=title, body=body, **extra)
            self._nodes[pull.number] = pull.node_id
            return self._to_pr(pull), True

        def already() -> tuple[PullRequest, bool] | None:
            found = self._find(repo, branch, base)
            return (found, False) if found is not None else None

        def exists(exc: GithubException) -> tuple[PullRequest, bool] | _Unhandled:
            if not self._is(exc, 422, "already exists"):
                return UNHANDLED
            found = self._find(repo, branch, base)
            if found is None:
                return UNHANDLED
            return found, False

        pr, created = self._write(f"open a pull request from {branch}", act, already,
                                  need=PULLS, recover=exists)
        known = self._run.labels if self._run is not None else {}
        if not created or pr.title != title or pr.body != body:
            pr = self.update_request(pr, spec)
        elif auto_merge_next and spec.labels and all(n in known for n in spec.labels):
            self._labels_due[pr.number] = {n: known[n] for n in spec.labels}
            pr = dataclasses.replace(pr, labels=tuple(dict.fromkeys([*pr.labels,
                                                                     *spec.labels])))
        else:
            pr = self._ensure_labels(repo, pr, spec.labels)
        number = pr.number
        if spec.reviewers:
            self._call(f"request reviews on pull request #{number}",
                       lambda: repo.get_pull(number).create_review_request(
                           reviewers=list(spec.reviewers)), need=PULLS)
        if spec.assignees:
            self._call(f"assign pull request #{number}",
                       lambda: repo.get_issue(number).add_to_assignees(*spec.assignees),
                       need=PULLS)
        return pr

    def _ensure_labels(self, repo: Repository, pr: PullRequest,
                       labels: tuple[str, ...]) -> PullRequest:
        missing = [name for name in labels if name not in pr.labels]
        if not missing:
            return pr
        number = pr.number
        self._call(f"label pull request #{number}",
                   lambda: repo.get_issue(number).add_to_labels(*missing), need=PULLS)
        return dataclasses.replace(pr, labels=tuple(dict.fromkeys([*pr.labels, *missing])))

    def update_request(self, pr: PullRequest, spec: RequestSpec) -> PullRequest:
        _, repo = self._client()
        title, body = cap_title(spec.title), cap_body(spec.body)
        number = pr.number
        if pr.title != title or pr.body != body:
            def edit() -> PullRequest:
                pull = repo.get_pull(number)
                pull.edit(title=title, body=body)
                return self._to_pr(pull)

            pr = self._call(f"update pull request #{number}", edit, need=PULLS)
        return self._ensure_labels(repo, pr, spec.labels)

    def close_request(self, pr: PullRequest, comment: str) -> None:
        _, repo = self._client()
        number = pr.number
        text = cap_body(comment)
        if text.strip():
            def act() -> bool:
                repo.get_issue(number).create_comment(text)
                return True

            def already() -> bool | None:
                comments = repo.get_issue(number).get_comments()
                return True if any(c.body == text for c in comments) else None

            self._write(f"comment on pull request #{number}", act, already, need=PULLS)
        self._call(f"close pull request #{number}",
                   lambda: repo.get_pull(number).edit(state="closed"), need=PULLS)

    def checks(self, pr: PullRequest, sha: str) -> ChecksState:
        _, repo = self._client()
        commit = repo.get_commit(sha)
        combined = self._call(f"read the statuses of {sha[:12]}",
                              commit.get_combined_status, need=CHECKS)
        runs = self._call(f"read the check runs of {sha[:12]}",
                          lambda: list(commit.get_check_runs()), need=CHECKS)
        states = [s.state for s in combined.statuses]
        for run in runs:
            if run.status != "completed":
                states.append("pending")
            elif run.conclusion in FAILED_CONCLUSIONS:
                states.append("failure")
            else:
                states.append("success")
        if not states:
            # Nothing reported yet. When the base branch requires checks GitHub calls
            # the request "blocked": they are coming (CI registers a moment after a
            # push), so that is pending, not "no CI here".
            blocked = self._call(f"read pull request #{pr.number}",
                                 lambda: repo.get_pull(pr.number).mergeable_state,
                                 need=PULLS) == "blocked"
            return ChecksState.PENDING if blocked else ChecksState.NONE
        if any(s in ("failure", "error") for s in states):
            return ChecksState.FAILURE
        if any(s != "success" for s in states):
            return ChecksState.PENDING
        return ChecksState.SUCCESS

    def merge(self, pr: PullRequest, method: MergeMethod, sha: str,
              message: str = "") -> MergeOutcome:
        check_method(method)
        _, repo = self._client()
        number = pr.number

        def act() -> MergeOutcome:
            title, _, body = message.strip().partition("\n\n")
            status = repo.get_pull(number).merge(
                merge_method=method, sha=sha, commit_title=title or NotSet,
                commit_message=body or NotSet)
            if status.merged:
                return MergeOutcome(merged=True, sha=status.sha)
            return MergeOutcome(merged=False, reason=status.message or "not merged",
                                conflict=says_conflict(status.message or ""))

        def already() -> MergeOutcome | None:
            pull = repo.get_pull(number)
            return self._merged_at(pull, sha) if pull.merged else None

        def refused(exc: GithubException) -> MergeOutcome | _Unhandled:
            said = github_message(exc)
            if exc.status == 409:
                raise ConflictError(
                    f"pull request #{number}'s branch moved past {sha[:12]}: GitHub says "
                    f"{said!r}", hint="someone pushed to the promotion branch; run promote "
                                      "again")
            if exc.status != 405:
                return UNHANDLED
            pull = repo.get_pull(number)
            if pull.merged:  # merged meanwhile (auto-merge, a person): done, if it was ours
                return self._merged_at(pull, sha)
            why = f"GitHub will not merge #{number}: {said}"
            if pull.mergeable_state == "dirty":
                why += " (it conflicts with the base branch)"
            elif pull.mergeable_state == "behind":
                why += " (the branch is behind the base branch)"
            return MergeOutcome(merged=False, reason=why, conflict=says_conflict(said) or
                                pull.mergeable_state in ("dirty", "behind"))

        return self._write(f"merge pull request #{number}", act, already,
                           need=f"{CONTENTS} and {PULLS}", recover=refused)

    def _merged_at(self, pull: GhPull, sha: str) -> MergeOutcome:
        """A merged pull request: done, when its head was ``sha`` (the proved commit)."""
        if pull.head.sha != sha:
            raise self._merged_elsewhere(pull.number, sha)
        return MergeOutcome(merged=True, sha=pull.merge_commit_sha)

    def _merged_elsewhere(self, number: int, sha: str) -> ConflictError:
        return ConflictError(f"pull request #{number} of {self.slug} was merged at another "
                             f"head than {sha[:12]}", hint="another run merged first; run again")

    def enable_auto_merge(self, pr: PullRequest, method: MergeMethod, sha: str,
                          message: str = "") -> MergeOutcome:
        check_method(method)
        gh, repo = self._client()
        number = pr.number
        if pr.auto_merge == method and pr.head_sha == sha and number not in self._labels_due:
            # already set, by an earlier run, to merge this very commit this way
            return MergeOutcome(merged=False, auto_merge=True)
        # a request this forge opened or the run query found has its node id: no GET
        node = self._nodes.get(number) or self._call(
            f"read pull request #{number}", lambda: repo.get_pull(number).node_id, need=PULLS)
        labels = self._labels_due.pop(number, {})
        document = gql.auto_merge_document(bool(labels))
        variables = gql.auto_merge_variables(node, method, sha, message, list(labels.values()))

        def act() -> MergeOutcome:
            gh.requester.graphql_query(document, variables)
            return MergeOutcome(merged=False, auto_merge=True)

        def declined(exc: GithubException) -> MergeOutcome | _Unhandled:
            if gql.errors_of(exc.data, "addLabelsToLabelable"):
                # a label vanished since the run query: add them by name (REST creates it)
                self._ensure_labels(repo, dataclasses.replace(pr, labels=()), tuple(labels))
                merge_errors = gql.errors_of(exc.data, "enablePullRequestAutoMerge")
                if not merge_errors:
                    return MergeOutcome(merged=False, auto_merge=True)
                exc = GithubException(400, {"errors": merge_errors}, exc.headers)
            said = github_message(exc)
            types = _graphql_types(exc)
            if exc.status != 400 or not types:
                return UNHANDLED
            if "FORBIDDEN" in types:
                raise AuthError(redact(f"GitHub refused to enable auto-merge on #{number} "
                                       f"({said}): the token lacks {CONTENTS} and {PULLS}"))
            if "expected head" in said.lower():
                raise ConflictError(
                    f"pull request #{number}'s branch moved past {sha[:12]}: GitHub "
                    f"says {said!r}", hint="someone pushed to the promotion branch; run "
                                           "promote again")
            if "is closed" in said.lower() or "already merged" in said.lower():
                done = repo.get_pull(number)  # merged meanwhile (another run, a person)?
                if done.merged and done.head.sha != sha:
                    raise self._merged_elsewhere(number, sha)
                if done.merged:
                    return MergeOutcome(merged=True, sha=done.merge_commit_sha)
            if "dirty status" in said.lower():  # a merge conflict with the base branch
                return MergeOutcome(merged=False, reason=(
                    f"GitHub will not auto-merge #{number}: it conflicts with the base branch"),
                    conflict=True)
            if "clean status" in said.lower():
                # Nothing left to wait for: GitHub wants a plain merge (same head guard).
                return self.merge(pr, method, sha, message)
            if "not allowed" in said.lower() or "protected branch rules" in said.lower():
                return MergeOutcome(merged=False, reason=(
                    f"GitHub will not auto-merge #{number} ({said}): allow auto-merge in the "
                    "repository settings and protect the base branch with required checks"))
            return MergeOutcome(merged=False,
                                reason=f"GitHub did not enable auto-merge on #{number}: {said}",
                                conflict=says_conflict(said))

        return self._call(f"enable auto-merge on pull request #{number}", act,
                          need=f"{CONTENTS} and {PULLS}", recover=declined)

    def disable_auto_merge(self, pr: PullRequest) -> None:
        if pr.auto_merge is None:  # the run query / the REST pull says none is armed
            return
        gh, repo = self._client()
        number = pr.number
        node = self._nodes.get(number) or self._call(
            f"read pull request #{number}", lambda: repo.get_pull(number).node_id, need=PULLS)
        self._call(f"disable auto-merge on pull request #{number}",
                   lambda: gh.requester.graphql_query(gql.DISABLE_AUTO_MERGE,
                                                      {"merge": {"pullRequestId": node}}),
                   need=f"{CONTENTS} and {PULLS}")


def _auto_merge_of(auto: Any) -> str | None:
    if not isinstance(auto, dict) or not auto.get("merge_method"):
        return None
    return str(auto["merge_method"]).lower()


def from_setup(setup: Setup) -> GitHubForge:
    """The GitHub forge the CLI asked for: a token, or a GitHub App (its key from
    ``--github-app-key-file`` or $PROMOTE_GITHUB_APP_KEY)."""
    api = setup.api_url or "https://api.github.com"
    key = setup.environ.get("PROMOTE_GITHUB_APP_KEY")
    if setup.app_key_file:
        try:
            key = Path(setup.app_key_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the GitHub App key: {exc.strerror}",
                             file=setup.app_key_file) from None
    register(key)
    if setup.app_id and not key:
        raise UsageError("--github-app-id needs --github-app-key-file or "
                         "$PROMOTE_GITHUB_APP_KEY")
    if not setup.token and not setup.app_id:
        raise UsageError("no token: set PROMOTE_TOKEN (or GITHUB_TOKEN), or use a GitHub App",
                         hint="the token needs contents:write and pull-requests:write")
    refuse_cleartext_proxy(api, setup.environ, "--api-url")
    return GitHubForge(setup.repo, api_url=api_root("github", api), token=setup.token,
                       app_id=setup.app_id, app_key=key if setup.app_id else None,
                       retry_timeout=setup.retry_timeout, ca_bundle=setup.ca_bundle,
                       sleep=setup.sleep, patience=setup.patience("GitHub"))
