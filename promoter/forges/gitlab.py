"""The GitLab forge: python-gitlab against the REST API v4.

One promotion is one commit, made by one ``POST /projects/:id/repository/commits`` with
``branch``, ``start_sha`` (the base commit) and an ``update``/``create`` action per file:
GitLab creates the branch and the commit together, however many files change.

Requests of a first promotion (base given, no reviewers, pipeline pending)::

    snapshot       GET archive.tar.gz?sha=refs/heads/<base> (the full name: a tag named
                   like the branch comes first for git), GET repository/tree?ref=<commit> (is
                   .promoter.yaml there, as which blob?) (+ GET project when the base is
                   the default branch; + GET its raw blob when the archive's copy
                   differs: export-ignore / export-subst)
    read_head      GET branches/:branch                              (404: none yet)
    write_commit   POST commits                                      (+ GET branch when
                   replacing: the branch must still be at the commit we replace)
    find_request   GET merge_requests?source_branch=&target_branch=&state=opened
    open_request   POST merge_requests                               (+ GET users?username=
                   per reviewer / assignee)
    checks         GET merge_requests/:iid (its head_pipeline)       (+ GET commit statuses
                   when no pipeline ran for the sha: external CI)
    enable_auto_merge / merge   PUT merge_requests/:iid/merge

Retries belong to ``promoter.retry`` (tenacity), never to python-gitlab: the client is
built with ``retry_transient_errors=False``, and a requests response hook turns every 429
and 5xx answer into ``_Transient`` before python-gitlab sees it, so python-gitlab's own
429 loop (which reads ``Retry-After`` with ``int()`` only and sleeps for real) never runs,
and our policy gets the headers (``Retry-After`` as seconds or HTTP-date). A write is
retried only after checking whether the failed attempt took effect (the connection can
drop after GitLab applied it): a commit whose parent, message and files are ours, an open
merge request for the branch, a merged merge request, a note already posted.

Known limits: GitLab has no compare-and-swap for ``force``; the branch is checked to be
at the commit being replaced right before the forced commit, which leaves a window of one
request. The archive is ``git archive`` output, so a config repo whose
``.gitattributes`` uses ``export-ignore`` / ``export-subst`` is seen filtered; the
policy file alone is always read from the tree itself.

Merge methods: GitLab's merge method (merge commit, semi-linear, fast-forward) is a
project setting, not a per-request choice. ``squash`` asks for ``squash=true``; ``merge``
and ``rebase`` merge by the project's method without squashing -- a promotion branch is
one commit on its base, so a fast-forward or semi-linear project gives the same linear
history a rebase merge would. promoter never calls ``/rebase`` (asynchronous, and it
would move the head the ``sha`` guard names).

Auto-merge: ``PUT .../merge`` with ``auto_merge=true`` (GitLab >= 17.11) and the
deprecated ``merge_when_pipeline_succeeds=true`` (older servers) in the same request.
Right after the merge request is created GitLab can answer 405/406/422 because the
pipeline does not exist yet; promoter waits and asks again a bounded number of times,
and when no pipeline ever appears (a project without CI) merges directly.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import gitlab
import gitlab.exceptions as glexc
import requests

from promoter import __version__, retry
from promoter.errors import (
    AuthError,
    BranchExists,
    ConfigError,
    ForgeError,
    PromoteError,
    UsageError,
)
from promoter.forges import archive
from promoter.forges.base import (
    ChecksState,
    Head,
    LoggedCommit,
    MergeMethod,
    MergeOutcome,
    PullRequest,
    RequestSpec,
    Snapshot,
    cap_text,
    check_branch,
    refuse_signing,
)
from promoter.forges.http import (
    CrossOriginRedirect,
    collect,
    job_token_stays_home,
    refuse_cleartext_proxy,
    refuse_cross_origin,
    said,
    session,
    tls_failure,
)
from promoter.forges.ownwrite import OwnWrite
from promoter.forges.registry import Setup, api_root
from promoter.forges.steps import Steps
from promoter.identity import Identity
from promoter.limits import MAX_ARCHIVE_BYTES
from promoter.proof import blob_sha
from promoter.redact import redact, register

T = TypeVar("T")

MAX_DESCRIPTION = 1_000_000  # GitLab refuses longer merge request descriptions
MAX_TITLE = 255
WRITE_FIRST_BYTES = 64 * 1024  # a new branch is written before it is read up to this size
AUTO_MERGE_WAITS = (1.0, 2.0, 4.0, 8.0)  # seconds between auto-merge attempts
MAX_LISTED = 1000  # changed files of one commit that promoter will read to prove it
LOG_PAGE = 100

AUTH_HINT = (
    "set PROMOTE_TOKEN / GITLAB_TOKEN to a project or group access token with the api "
    "scope and at least the Developer role in the config project"
)
CI_JOB_HINT = (
    "CI_JOB_TOKEN cannot create commits or merge requests in another project; set "
    "PROMOTE_TOKEN (or GITLAB_TOKEN) to a project or group access token of the config "
    "project with the api scope and at least the Developer role"
)

_PENDING = {"created", "waiting_for_resource", "preparing", "pending", "running",
            "scheduled", "manual"}
_FAILED = {"failed", "canceled", "canceling"}
# detailed_merge_status values that mean "a pipeline must pass first"
_CI_COMING = {"ci_must_pass", "ci_still_running"}
# detailed_merge_status values that waiting does not fix
_REFUSED = {"not_open", "draft_status", "conflict", "need_rebase", "not_approved",
            "discussions_not_resolved", "blocked_status", "requested_changes",
            "merge_request_blocked", "jira_association_missing", "security_policy_violations",
            "locked_paths", "locked_lfs_files", "title_regex"}


@dataclass(frozen=True)
class _Refusal:
    """GitLab would not merge (405/406/422) or the head moved (409)."""

    status: int
    message: str


def _why(mr: Mapping[str, Any]) -> str:
    """Why a merge request is not merged, in GitLab's words."""
    pipeline = mr.get("head_pipeline") or {}
    if str(pipeline.get("status")) in _FAILED:
        return f"pipeline {pipeline.get('status')}"
    return str(mr.get("detailed_merge_status") or mr.get("merge_status") or mr.get("state")
               or "not mergeable")


def _conflicts(mr: Mapping[str, Any]) -> bool:
    """The merge request conflicts with its target, or must be rebased onto it (the
    target moved): promote plans again on the new base."""
    return _why(mr) in ("conflict", "need_rebase")


class _Transient(Exception):
    """GitLab answered 429 or 5xx; raised from a requests hook (see the module doc)."""

    def __init__(self, status: int, headers: Mapping[str, str], message: str) -> None:
        self.status = status
        self.headers = dict(headers)
        self.message = message
        super().__init__(f"{status}: {message}")


def _json(data: object) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ForgeError("GitLab answered with something other than a JSON object",
                         hint="check --api-url: it must be the GitLab server root")
    return data


def _server_message(response: requests.Response) -> str:
    def read(data: Any) -> str:
        if isinstance(data, dict):
            for key in ("message", "error"):
                if key in data:
                    return _text(data[key])
        return response.text[:200].strip()

    return said(response, read)


def _raise_transient(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    if response.status_code == 429 or response.status_code >= 500:
        message = _server_message(response)  # reads the body, releasing the connection
        raise _Transient(response.status_code, response.headers, message)


def _classify(exc: BaseException) -> retry.Transient | None:
    if isinstance(exc, _Transient):
        return retry.status_transient(exc.status, exc.headers, exc.message)
    if isinstance(exc, requests.exceptions.SSLError):
        return None
    if isinstance(exc, (requests.ConnectionError, requests.Timeout,
                        requests.exceptions.ChunkedEncodingError)):
        return retry.Transient()
    return None


def _text(value: Any) -> str:
    """GitLab's ``message`` is a string, a list, or a dict of field -> [errors]."""
    if isinstance(value, list):
        return "; ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k} {_text(v)}" for k, v in value.items())
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _status(exc: glexc.GitlabError) -> int | None:
    return exc.response_code


def _message(exc: glexc.GitlabError) -> str:
    return _text(exc.error_message)


def _project_missing(exc: glexc.GitlabError) -> bool:
    return _status(exc) == 404 and "project not found" in _message(exc).lower()


def _pull(mr: Mapping[str, Any]) -> PullRequest:
    state = {"opened": "open", "locked": "open", "merged": "merged"}.get(
        str(mr.get("state")), "closed")
    labels = tuple(x for x in (mr.get("labels") or []) if isinstance(x, str))
    return PullRequest(
        number=int(mr["iid"]),
        url=str(mr.get("web_url") or ""),
        branch=str(mr["source_branch"]),
        base=str(mr["target_branch"]),
        title=str(mr.get("title") or ""),
        body=str(mr.get("description") or ""),
        head_sha=str(mr.get("sha") or ""),
        state=state,
        labels=labels,
        auto_merge=(("squash" if mr.get("squash") else "merge")
                    if mr.get("merge_when_pipeline_succeeds")
                    else None),
    )


def _head(commit: Mapping[str, Any]) -> Head:
    return Head(sha=str(commit["id"]), message=str(commit.get("message") or ""),
                parents=tuple(str(p) for p in commit.get("parent_ids") or ()))


def _pipeline_state(status: str) -> ChecksState:
    if status == "success":
        return ChecksState.SUCCESS
    if status in _FAILED:
        return ChecksState.FAILURE
    if status == "skipped":
        return ChecksState.NONE
    return ChecksState.PENDING


def _statuses_state(statuses: Iterable[Mapping[str, Any]]) -> ChecksState:
    """Commit statuses (external CI, and the jobs of GitLab pipelines) combined."""
    seen = False
    pending = False
    for status in statuses:
        seen = True
        state = str(status.get("status"))
        if state in _FAILED and not status.get("allow_failure"):
            return ChecksState.FAILURE
        if state in _PENDING:
            pending = True
    if not seen:
        return ChecksState.NONE
    return ChecksState.PENDING if pending else ChecksState.SUCCESS


class GitLabForge(Steps):
    """A config repo on GitLab (gitlab.com or self-managed).

    ``repo`` is the project path (``group/subgroup/project``) or its numeric id;
    ``api_url`` the server root (``https://gitlab.example.com``; a trailing ``/api/v4``
    is accepted). Give ``token`` (a project / group / personal access token, sent as
    ``PRIVATE-TOKEN``) or ``job_token`` (``CI_JOB_TOKEN``, which can read but not write
    another project), not both. Nothing here reads the environment."""

    name = "gitlab"
    service = "GitLab"
    request_word = "merge request"
    mark = "!"
    body_limit = MAX_DESCRIPTION
    has_checks = True
    branch_is_request = False
    has_labels = True
    arms_auto_merge = True

    def __init__(
        self,
        repo: str,
        api_url: str = "https://gitlab.com",
        token: str | None = None,
        job_token: str | None = None,
        retry_timeout: float = retry.DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 15,
        ca_bundle: str | None = None,
        patience: retry.Patience | None = None,
    ) -> None:
        register(token)
        register(job_token)
        repo = repo.strip().strip("/")
        if not repo:
            raise UsageError("--repo is empty", hint="give the GitLab project path, "
                             "e.g. --repo acme/config")
        if token and job_token:
            raise UsageError("give a GitLab token or a CI job token, not both")
        url = api_url.strip().rstrip("/")
        url = url.removesuffix("/api/v4")
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--api-url {url!r} is not an http(s) URL",
                             hint="give the GitLab server root, e.g. https://gitlab.com")
        self.repo = repo
        self.api_url = url
        self._author: Identity | None = None  # use_identity(); None: the token's user
        self.retry_timeout = retry_timeout
        self.sleep = sleep
        self.patience = patience or retry.Patience(service="GitLab")
        self._job_token = bool(job_token) and not token
        http = session(ca_bundle)  # verify: --ca-bundle; proxies: HTTPS_PROXY, NO_PROXY
        http.hooks["response"].append(_raise_transient)
        # requests keeps PRIVATE-TOKEN / JOB-TOKEN on a redirect to another host: refuse
        refuse_cross_origin(http)
        self._gl = gitlab.Gitlab(
            url=url,
            private_token=token or None,
            job_token=job_token or None,
            timeout=timeout,
            retry_transient_errors=False,
            user_agent=f"promoter/{__version__}",
            session=http,
            ssl_verify=ca_bundle or True,
        )
        self._key: str | int = int(repo) if repo.isdigit() else repo
        self._project = self._gl.projects.get(self._key, lazy=True)
        self._user_ids: dict[str, int] = {}

    def close(self) -> None:
        """Close the HTTP connections (the forge is not usable afterwards)."""
        self._gl.session.close()

    # -- plumbing ---------------------------------------------------------------------

    def _run(self, what: str, fn: Callable[[], T]) -> T:
        """``fn`` under the shared retry policy; GitLab failures become our errors."""
        try:
            return retry.call(fn, _classify, timeout=self.retry_timeout, sleep=self.sleep,
                              patience=self.patience)
        except (glexc.GitlabError, requests.RequestException, _Transient) as exc:
            raise self._translate(exc, what) from exc

    def _translate(self, exc: Exception, what: str) -> PromoteError:
        where = f"{self.repo} at {self.api_url}"
        if isinstance(exc, _Transient):
            return ForgeError(
                redact(f"GitLab kept failing to {what} in {where}: {exc.status} "
                       f"{exc.message}"),
                hint=f"gave up after retrying for up to {self.retry_timeout:g}s; "
                     "GitLab may be down or rate-limiting, run again later")
        if isinstance(exc, CrossOriginRedirect):
            return ForgeError(
                redact(f"GitLab at {exc.source} answered {exc.status}, a redirect to "
                       f"{exc.target}, when trying to {what} in {where}; promoter does not "
                       "send the token to another host"),
                hint="check --api-url: give the GitLab server root that serves the API "
                     "itself (e.g. https://gitlab.example.com, not an old or proxy address)")
        if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                            requests.exceptions.InvalidSchema)):
            return UsageError(redact(f"--api-url {self.api_url} is not usable: {exc}"))
        tls = tls_failure(exc, "GitLab", self.api_url)
        if tls is not None:
            return tls
        if isinstance(exc, requests.RequestException):
            return ForgeError(
                redact(f"could not reach GitLab to {what} in {where}: "
                       f"{type(exc).__name__}"),
                hint="check --api-url and the network; retries ran out")
        if not isinstance(exc, glexc.GitlabError):
            return ForgeError(redact(f"GitLab could not {what} in {where}: {exc}"))
        status = _status(exc)
        message = _message(exc)
        if status == 401 or isinstance(exc, glexc.GitlabAuthenticationError):
            if self._job_token:
                return AuthError(redact(f"GitLab rejected the CI job token when trying to "
                                        f"{what} in {where} (401 {message})"),
                                 hint=CI_JOB_HINT)
            given = "the token" if self._gl.private_token else "the request: no token given"
            return AuthError(redact(f"GitLab rejected {given} when trying to {what} in "
                                    f"{where} (401 {message})"), hint=AUTH_HINT)
        if status == 403:
            if self._job_token:
                return AuthError(redact(f"GitLab refused the CI job token when trying to "
                                        f"{what} in {where} (403 {message})"),
                                 hint=CI_JOB_HINT)
            return AuthError(redact(f"GitLab refused to {what} in {where} (403 {message})"),
                             hint=AUTH_HINT + " (Maintainer when the branch is protected)")
        if _project_missing(exc):
            return UsageError(
                redact(f"GitLab project {self.repo} not found at {self.api_url}, or the "
                       "token cannot see it"),
                hint="check --repo (the project path, e.g. group/project) and that the "
                     "token's user or bot is a member of the project")
        return ForgeError(redact(f"GitLab could not {what} in {where}: {status} {message}"))

    @property
    def _base_path(self) -> str:
        return str(self._project.manager.path) + "/" + str(self._project.encoded_id)

    def _mr_path(self, iid: int) -> str:
        return f"{self._base_path}/merge_requests/{iid}"

    def _head(self, branch: str) -> Head | None:
        """One GET, no retry of its own (callers run it under ``_run``)."""
        try:
            found = self._project.branches.get(branch)
        except glexc.GitlabGetError as exc:
            if _status(exc) == 404 and not _project_missing(exc):
                return None
            raise
        return _head(found.attributes["commit"])

    def _raw(self, path: str, ref: str) -> bytes | None:
        try:
            return self._project.files.raw(file_path=path, ref=ref)
        except glexc.GitlabGetError as exc:
            if _status(exc) == 404 and not _project_missing(exc):
                return None
            raise

    def _get_mr(self, iid: int) -> dict[str, Any]:
        return _json(self._gl.http_get(self._mr_path(iid)))

    # -- reading ----------------------------------------------------------------------

    def snapshot(self, base: str | None, branch: str | None = None) -> Snapshot:
        if base is not None:
            check_branch(base)
        if branch is not None:
            check_branch(branch)
        if base is None:
            project = self._run("read the project",
                                lambda: self._gl.projects.get(self._key))
            base = project.attributes.get("default_branch")
            if not base:
                raise UsageError(f"GitLab project {self.repo} has no default branch "
                                 "(empty repository?)", hint="push an initial commit first")
        branch = base

        def download() -> bytes | None:
            try:
                # the full name: git resolves a bare "main" to refs/tags/main before
                # refs/heads/main, and anyone who may push a tag could name the base
                chunks = self._project.repository_archive(
                    sha=f"refs/heads/{branch}", format="tar.gz", streamed=True, iterator=True,
                    chunk_size=1 << 16)
            except glexc.GitlabError as exc:
                if exc.response_code == 404:
                    return None
                raise
            return collect(chunks, MAX_ARCHIVE_BYTES, "the archive")

        def fetch() -> bytes:
            data = self._run(f"download the archive of {branch}", download)
            if data is None:
                raise UsageError(f"base branch {branch!r} does not exist in GitLab project "
                                 f"{self.repo}", hint="check --base")
            return data

        # One request: the archive of the branch names its commit in the pax header.
        tree = archive.download(fetch, "GitLab", f"{branch} of {self.repo}")
        commit = tree.commit
        if commit is None:  # an archive without the header: ask for the branch's tip
            head = self._run(f"read branch {branch}", lambda: self._head(branch))
            if head is None:
                raise UsageError(f"base branch {branch!r} does not exist in GitLab project "
                                 f"{self.repo}", hint="check --base")
            commit = head.sha
        at = commit
        root = self._run(f"read the root tree of {self.repo}", lambda: self._tree(at))
        archive.prove(tree, root, lambda: self._run(f"list the tree of {self.repo}",
                                                    lambda: self._tree(at, recursive=True)),
                      self._blob, f"{self.repo} at {commit[:12]}")
        archive.policy_file(tree, root, self._blob)
        return Snapshot(branch=branch, commit=commit, files=tree.files, links=tree.links)

    def _tree(self, commit: str, *, recursive: bool = False) -> list[archive.Listed]:
        """The root tree's entries at ``commit`` (one GET per 100), or every entry."""
        listing = self._project.repository_tree(ref=commit, recursive=recursive,
                                                per_page=100, get_all=True)
        return [archive.Listed(str(e["path"]), int(str(e["mode"]), 8), str(e["id"]))
                for e in listing]

    def _blob(self, oid: str) -> bytes:
        return self._run(f"read the blob {oid[:12]} of {self.repo}",
                         lambda: self._project.repository_raw_blob(oid))

    def _log(self, branch: str, limit: int) -> list[LoggedCommit]:
        """GitLab lists first parents itself (``first_parent``)."""
        commits: list[LoggedCommit] = []
        page = 1
        per_page = min(LOG_PAGE, limit)
        while len(commits) < limit:
            # the full name: git resolves a bare "main" to a tag of that name first
            batch = self._project.commits.list(ref_name=f"refs/heads/{branch}",
                                               first_parent=True, per_page=per_page,
                                               page=page, get_all=False)
            for item in batch:
                data = item.attributes
                commits.append(LoggedCommit(
                    sha=str(data["id"]), message=str(data.get("message") or ""),
                    author=str(data.get("author_name") or ""),
                    date=str(data.get("committed_date") or data.get("created_at") or "")))
            if len(batch) < per_page:
                break
            page += 1
        return commits[:limit]

    # -- the commit -------------------------------------------------------------------

    def use_identity(self, author: Identity | None, *, sign: bool = False) -> None:
        """``author`` goes to the commits API (author_name, author_email); None leaves
        it to GitLab (the token's user). promoter has no key to sign an API commit with,
        so ``sign`` is refused: nothing unsigned is pushed instead."""
        refuse_signing(sign, "GitLab", "project")
        self._author = author

    def write_commit(self, branch: str, base: Snapshot, files: Mapping[str, bytes],
                     message: str, *, replace: Head | None) -> str:
        actions = [
            {
                "action": "update" if path in base.files else "create",
                "file_path": path,
                "content": base64.b64encode(content).decode("ascii"),
                "encoding": "base64",
            }
            for path, content in sorted(files.items())
        ]
        payload: dict[str, Any] = {
            "branch": branch,
            "commit_message": message,
            "start_sha": base.commit,
            "actions": actions,
        }
        if replace is not None:
            payload["force"] = True
        author = self._author
        if author is not None:  # without it, GitLab records the token's user
            payload["author_name"], payload["author_email"] = author.name, author.email

        # a branch there already: promote reads it and judges it
        guard = OwnWrite(self.repo, branch, base.commit, files, message, replace,
                         self._changed, exists=BranchExists)
        expected = replace.sha if replace is not None else None

        def attempt() -> str:
            if not write.retried and replace is not None:
                head = self._head(branch)
                if (head.sha if head else None) != expected:
                    raise guard.in_the_way(head)
            try:
                created = self._project.commits.create(payload)
            except glexc.GitlabCreateError as exc:
                if (replace is None and _status(exc) == 400
                        and "a branch called" in _message(exc).lower()):
                    if not write.retried:  # it was there before this call: promote looks
                        raise guard.in_the_way(None) from None
                    return guard.settle(self._head(branch), claim=True)
                raise
            return str(created.attributes["id"])

        write = retry.Write(attempt, lambda: guard.landed(self._head(branch)))
        return self._run(f"commit to {branch}", write)

    def changed_files(self, sha: str) -> Mapping[str, str] | None:
        """GET the commit (its parents), GET its diff (paths, modes, flags), then the
        raw new content of each changed file, hashed here as git would: 2 + N requests.
        GitLab's diff carries no blob ids, so the contents themselves are compared."""
        return self._run(f"read commit {sha[:12]}", lambda: self._changed(sha))

    def _changed(self, sha: str) -> Mapping[str, str] | None:
        """``changed_files`` without a retry of its own (callers run it under ``_run``)."""
        commit = self._project.commits.get(sha)
        if len(commit.attributes.get("parent_ids") or []) != 1:
            return None
        diffs = commit.diff(get_all=True)
        if len(diffs) >= MAX_LISTED:
            return None
        paths = []
        for d in diffs:
            same_mode = d.get("new_file") or d.get("a_mode") == d.get("b_mode")
            if (d.get("deleted_file") or d.get("renamed_file") or not same_mode
                    or d.get("b_mode") not in ("100644", "100755")):
                return None
            paths.append(str(d["new_path"]))
        out: dict[str, str] = {}
        for path in paths:
            data = self._raw(path, sha)
            if data is None:
                return None
            out[path] = blob_sha(data)
        return out

    def delete_branch(self, branch: str) -> None:
        check_branch(branch)

        def delete() -> None:
            try:
                self._project.branches.delete(branch)
            except glexc.GitlabDeleteError as exc:
                if _status(exc) == 404 and not _project_missing(exc):
                    return  # already gone: what we wanted
                raise

        self._run(f"delete branch {branch}", delete)

    # -- merge requests ---------------------------------------------------------------

    def _find(self, branch: str, base: str) -> PullRequest | None:
        found = self._project.mergerequests.list(
            source_branch=branch, target_branch=base, state="opened", get_all=False)
        return _pull(found[0].attributes) if found else None

    def _user_id(self, username: str) -> int:
        name = username.strip().removeprefix("@")
        if name not in self._user_ids:
            users = self._run(f"look up user {name}",
                              lambda: self._gl.users.list(username=name, get_all=False))
            match = [u for u in users if str(u.attributes.get("username")) == name]
            if not match:
                raise ConfigError(f"GitLab has no user {name!r} (a reviewer or assignee)",
                                  hint="reviewers and assignees are GitLab usernames; fix "
                                       "them in .promoter.yaml")
            self._user_ids[name] = int(match[0].attributes["id"])
        return self._user_ids[name]

    def _people(self, spec: RequestSpec) -> dict[str, list[int]]:
        people: dict[str, list[int]] = {}
        if spec.reviewers:
            people["reviewer_ids"] = [self._user_id(u) for u in spec.reviewers]
        if spec.assignees:
            people["assignee_ids"] = [self._user_id(u) for u in spec.assignees]
        return people

    @staticmethod
    def _title(spec: RequestSpec) -> str:
        title = spec.title
        if spec.draft and not title.lower().startswith(("draft:", "[draft]", "(draft)")):
            title = f"Draft: {title}"
        return cap_text(title, MAX_TITLE, "title").replace("\n", " ")

    def write_first(self, files: Mapping[str, bytes]) -> bool:
        """POST commits with ``start_sha`` makes branch and commit at once, or answers 400
        when the branch is there: one request saved for a new branch, one spent (with the
        files' bytes) on a re-run. Worth it while the files are small."""
        return sum(len(data) for data in files.values()) <= WRITE_FIRST_BYTES

    def commit_verified(self, sha: str) -> bool | None:
        """Commits made through the API are not signed by GitLab here: unknown."""
        return None

    def open_request(self, branch: str, base: str, spec: RequestSpec, *,
                     auto_merge_next: bool = False) -> PullRequest:
        check_branch(branch)
        people = self._people(spec)
        payload: dict[str, Any] = {
            "source_branch": branch,
            "target_branch": base,
            "title": self._title(spec),
            "description": cap_text(spec.body, MAX_DESCRIPTION, "description"),
            "remove_source_branch": True,
            **people,
        }
        if spec.labels:
            payload["labels"] = ",".join(spec.labels)

        def create() -> PullRequest | None:
            try:
                created = self._project.mergerequests.create(payload)
            except glexc.GitlabCreateError as exc:
                if _status(exc) == 409 and "already exists" in _message(exc):
                    return None  # someone (or a lost earlier attempt) opened it: update it
                raise
            return _pull(created.attributes)

        return self._open(branch, base, spec, create)

    def update_request(self, pr: PullRequest, spec: RequestSpec) -> PullRequest:
        title = self._title(spec)
        body = cap_text(spec.body, MAX_DESCRIPTION, "description")
        people = self._people(spec)
        missing = [label for label in spec.labels if label not in pr.labels]
        if title == pr.title and body == pr.body and not missing and not people:
            return pr  # nothing to change: no request
        payload: dict[str, Any] = {"title": title, "description": body, **people}
        if missing:
            payload["add_labels"] = ",".join(missing)  # keeps labels people added

        def update() -> PullRequest:
            data = self._project.mergerequests.update(pr.number, payload)
            return _pull(data)

        return self._run(f"update merge request !{pr.number}", update)

    def close_request(self, pr: PullRequest, comment: str) -> None:
        mr = self._project.mergerequests.get(pr.number, lazy=True)
        body = cap_text(comment, MAX_DESCRIPTION, "comment")

        def noted() -> bool | None:
            notes = mr.notes.list(sort="desc", order_by="created_at", per_page=20,
                                  get_all=False)
            return True if any(n.attributes.get("body") == body for n in notes) else None

        def note() -> bool:
            mr.notes.create({"body": body})
            return True

        if comment:
            self._write(f"comment on merge request !{pr.number}", note, noted)
        self._run(f"close merge request !{pr.number}",
                  lambda: self._project.mergerequests.update(pr.number,
                                                              {"state_event": "close"}))

    # -- checks and merging -----------------------------------------------------------

    def checks(self, pr: PullRequest, sha: str) -> ChecksState:
        def look() -> ChecksState:
            mr = self._get_mr(pr.number)
            pipeline = mr.get("head_pipeline") or {}
            if pipeline.get("sha") == sha:
                return _pipeline_state(str(pipeline.get("status")))
            commit = self._project.commits.get(sha, lazy=True)
            statuses = commit.statuses.list(per_page=100, get_all=False)
            state = _statuses_state(s.attributes for s in statuses)
            # Nothing ran yet; when the project requires a pipeline, one is coming (GitLab
            # creates it a moment after the push): that is pending, not none.
            coming = (state is ChecksState.NONE and mr.get("state") == "opened"
                      and mr.get("sha") == sha and _why(mr) in _CI_COMING)
            return ChecksState.PENDING if coming else state

        return self._run(f"read the pipeline of merge request !{pr.number}", look)

    def _read_mr(self, pr: PullRequest) -> dict[str, Any]:
        return self._run(f"read merge request !{pr.number}", lambda: self._get_mr(pr.number))

    def _put_merge(self, pr: PullRequest, data: Mapping[str, Any]) -> dict[str, Any] | _Refusal:
        """One ``PUT .../merge``; a lost attempt is retried only when the merge request
        is not merged (or set to auto-merge, when that was asked) yet."""
        path = f"{self._mr_path(pr.number)}/merge"

        def put() -> dict[str, Any] | _Refusal:
            try:
                result = self._gl.http_put(path, post_data=dict(data))
            except glexc.GitlabHttpError as exc:
                status = _status(exc)
                if status in (405, 406, 409, 422):
                    return _Refusal(status, _message(exc))
                raise
            return _json(result)

        def landed() -> dict[str, Any] | _Refusal | None:
            mr = self._get_mr(pr.number)
            if mr.get("state") == "merged":
                if data.get("sha") and mr.get("sha") != data.get("sha"):
                    return _Refusal(409, "merged at another head")  # not our commit
                return mr
            if data.get("auto_merge") and mr.get("merge_when_pipeline_succeeds"):
                return mr
            return None

        return self._write(f"merge merge request !{pr.number}", put, landed)

    @staticmethod
    def _outcome(mr: Mapping[str, Any]) -> MergeOutcome:
        if mr.get("state") == "merged":
            sha = mr.get("merge_commit_sha") or mr.get("squash_commit_sha") or None
            return MergeOutcome(merged=True, sha=str(sha) if sha else None)
        if mr.get("state") == "opened" and (mr.get("merge_when_pipeline_succeeds")
                                            or mr.get("auto_merge_enabled")):
            return MergeOutcome(merged=False, auto_merge=True,
                                reason="GitLab merges it when the pipeline succeeds")
        return MergeOutcome(merged=False, conflict=_conflicts(mr),
                            reason=f"GitLab did not merge !{mr.get('iid')}: {_why(mr)}")

    def _settle(self, pr: PullRequest, sha: str,
                result: dict[str, Any] | _Refusal) -> MergeOutcome | dict[str, Any]:
        """After a merge PUT: its outcome when GitLab answered with the merge request;
        refused, the merge request as it is now. A head that moved past ``sha`` (409, or
        merged meanwhile at another run's commit) is a ConflictError."""
        if isinstance(result, dict):
            return self._outcome(result)
        if result.status == 409:
            raise self._moved(pr, sha, result.message)
        mr = self._read_mr(pr)
        if mr.get("state") == "merged" and mr.get("sha") != sha:
            raise self._moved(pr, sha, "merged at another head")
        return mr

    def merge(self, pr: PullRequest, method: MergeMethod, sha: str,
              message: str = "") -> MergeOutcome:
        data: dict[str, Any] = {"sha": sha, "should_remove_source_branch": True,
                                **_messages(message)}
        if method == "squash":
            data["squash"] = True
        mr = self._settle(pr, sha, self._put_merge(pr, data))
        if isinstance(mr, MergeOutcome):
            return mr
        if mr.get("state") == "merged":
            return self._outcome(mr)
        return MergeOutcome(merged=False, conflict=_conflicts(mr),
                            reason=f"GitLab will not merge !{pr.number} now: {_why(mr)}")

    def enable_auto_merge(self, pr: PullRequest, method: MergeMethod, sha: str,
                          message: str = "") -> MergeOutcome:
        if (pr.auto_merge is not None and pr.head_sha == sha
                and (pr.auto_merge == "squash") == (method == "squash")):
            # already set, by an earlier run, to merge this very commit this way
            return MergeOutcome(merged=False, auto_merge=True)
        data: dict[str, Any] = {"auto_merge": True, "merge_when_pipeline_succeeds": True,
                                "should_remove_source_branch": True, **_messages(message)}
        if method == "squash":
            data["squash"] = True
        data["sha"] = sha  # GitLab refuses (409) when the head moved past the proved commit
        waited = 0.0
        mr: dict[str, Any] = {}
        for wait in (*AUTO_MERGE_WAITS, None):
            settled = self._settle(pr, sha, self._put_merge(pr, data))
            if isinstance(settled, MergeOutcome):
                return settled
            mr = settled
            if mr.get("state") != "opened":
                return self._outcome(mr)
            pipeline = mr.get("head_pipeline") or {}
            if _why(mr) in _REFUSED or str(pipeline.get("status")) in _FAILED:
                return MergeOutcome(merged=False, conflict=_conflicts(mr),
                                    reason=f"GitLab will not merge !{pr.number}: {_why(mr)}")
            if wait is None or waited + wait > self.retry_timeout:
                break
            self.sleep(wait)  # the pipeline may not exist yet: ask again
            waited += wait
        if self.checks(pr, sha) is ChecksState.NONE:
            # No pipeline appeared for the head (a project without CI): merge directly.
            return self.merge(pr, method, sha, message)
        return MergeOutcome(merged=False, conflict=_conflicts(mr),
                            reason=f"GitLab would not enable auto-merge on !{pr.number}: "
                                   f"{_why(mr)}")

    def disable_auto_merge(self, pr: PullRequest) -> None:
        """POST cancel_merge_when_pipeline_succeeds. GitLab answers 201 even when it did
        not cancel (the refusal is only in the body): then the merge request is read, and
        one still set to merge is a ForgeError."""
        if pr.auto_merge is None:  # merge_when_pipeline_succeeds was false when read
            return
        path = f"{self._mr_path(pr.number)}/cancel_merge_when_pipeline_succeeds"
        answer = self._run(f"cancel the auto-merge of !{pr.number}",
                           lambda: _json(self._gl.http_post(path)))
        if answer.get("status") == "success":
            return
        mr = self._read_mr(pr)
        if mr.get("state") == "opened" and mr.get("merge_when_pipeline_succeeds"):
            raise ForgeError(f"GitLab kept auto-merge on !{pr.number} of {self.repo} "
                             f"({answer.get('message') or 'no reason given'}), which this "
                             "run's policy does not allow",
                             hint="cancel it in the merge request, then run promote again")


def _messages(message: str) -> dict[str, str]:
    """The merge and squash commit messages: promoter's own, trailers included."""
    if not message.strip():
        return {}
    return {"merge_commit_message": message, "squash_commit_message": message}


def from_setup(setup: Setup) -> GitLabForge:
    """The GitLab forge the CLI asked for: an access token, or the CI job token (sent
    only to the GitLab that issued it)."""
    api = setup.api_url or "https://gitlab.com"
    token, job = setup.token, setup.job_token
    if not token and not job:
        raise UsageError("no token: set PROMOTE_TOKEN (or GITLAB_TOKEN)",
                         hint="a project or group access token with the api scope")
    if job and not token:
        job_token_stays_home(api, setup.environ.get("CI_SERVER_URL") or "", "CI_JOB_TOKEN",
                             "CI_SERVER_URL")
    refuse_cleartext_proxy(api, setup.environ, "--api-url")
    return GitLabForge(setup.repo, api_url=api_root("gitlab", api), token=token,
                       job_token=job, retry_timeout=setup.retry_timeout,
                       ca_bundle=setup.ca_bundle, sleep=setup.sleep,
                       patience=setup.patience("GitLab"))

