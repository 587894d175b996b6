"""A fake GitLab REST API (v4) over real HTTP, backed by real bare git repositories.

It speaks the shapes python-gitlab 8.6 sends and reads, with GitLab's status codes and
error bodies (checked against GitLab's ``lib/api`` sources and the REST docs)::

    with FakeGitLab(tmp_path) as gl:
        project = gl.add_project("acme/config", {"envs/dev/app.yaml": b"image: a:1\\n"})
        gl.add_token("glpat-secret")                  # PRIVATE-TOKEN, api scope
        forge = GitLabForge("acme/config", api_url=gl.url, token="glpat-secret")
        ...
        project.repo.log("main")                      # real commits (tests.fakes.gitrepo)
        gl.count("POST", r"/repository/commits$")     # requests seen since reset_counts()

Projects are addressed by id or URL-encoded path (``acme%2Fconfig``). Commits, trees
and refs live in a ``BareRepo``; merge requests, notes, pipelines, statuses and users in
memory. Pipelines are driven by the test: ``set_pipeline(sha, status)``; a merge request
set to auto-merge merges when its head's pipeline turns ``success``.

Auth: ``PRIVATE-TOKEN``, ``JOB-TOKEN`` or ``Authorization: Bearer``. An unknown token is
401 ``{"message": "401 Unauthorized"}``; no token: 404 for reads of a private project,
401 for writes; a ``read_api`` token writing is 403 ``insufficient_scope``; a job token
writing to another project than its own is 403 ``{"message": "403 Forbidden"}``.

Faults (``fail``) are matched on method and a regex searched in the raw request path
(``/api/v4/projects/acme%2Fconfig/repository/commits``): answer ``status`` with
``headers``/``body`` without applying the request; with ``reset_before`` drop the
connection before applying it; with ``apply_then_fail`` apply it, then answer ``status``
(or drop the connection when ``status`` is 0). ``delay`` sleeps before answering.
``latency`` (seconds, default 0) delays every answer, for benchmarks of a slow network.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import server
from .gitrepo import ZERO, BareRepo, full_ref
from .server import Fault, Reply, Request, Seen

__all__ = ["FakeGitLab", "Fault", "HTTPError", "MergeRequest", "Project", "Seen", "Token",
           "User"]

API = "/api/v4"
ACTIVE = {"created", "waiting_for_resource", "preparing", "pending", "running", "scheduled"}
FAILED = {"failed", "canceled"}
REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 406: "Not Acceptable", 409: "Conflict",
           422: "Unprocessable Entity", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout"}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes", "on")


def _labels(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(x).strip() for x in items if str(x).strip()]


def _ids(value: Any) -> list[int]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [int(x) for x in items]


def _message(status: int) -> dict[str, Any]:
    return {"message": f"{status} {REASONS.get(status, '')}".strip()}


class HTTPError(server.HTTPError):
    """Raised inside a route: the answer GitLab would give."""

    def __init__(self, status: int, body: Any = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status, _message(status) if body is None else body, headers)


def _revision(repo: BareRepo, ref: str) -> str | None:
    """The commit a revision names as Gitaly resolves it, which is git's own order: a tag
    before a branch of the same name (``main`` is ``refs/tags/main`` when both exist)."""
    if not ref.startswith("refs/"):
        tagged = repo.resolve(f"refs/tags/{ref}")
        if tagged is not None:
            return tagged
    return repo.resolve(ref)


def _not_found(what: str) -> HTTPError:
    return HTTPError(404, {"message": f"404 {what} Not Found"})


def _bad(message: Any) -> HTTPError:
    return HTTPError(400, {"message": message})


# -- the state ------------------------------------------------------------------------


@dataclass
class User:
    id: int
    username: str
    name: str

    def json(self, base: str) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "name": self.name,
                "state": "active", "locked": False, "avatar_url": None,
                "web_url": f"{base}/{self.username}"}


@dataclass
class Token:
    value: str
    kind: str = "private"  # private (PRIVATE-TOKEN) | job (JOB-TOKEN) | oauth (Bearer)
    username: str = "promoter-bot"
    scopes: frozenset[str] = frozenset({"api"})
    project: str | None = None  # a job token's own project
    maintainer: bool = False  # may push to protected branches


@dataclass
class Pipeline:
    id: int
    sha: str
    ref: str
    status: str
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)

    def json(self, project: Project) -> dict[str, Any]:
        return {"id": self.id, "iid": self.id, "project_id": project.id, "sha": self.sha,
                "ref": self.ref, "status": self.status, "source": "push",
                "created_at": self.created_at, "updated_at": self.updated_at,
                "web_url": f"{project.web_url}/-/pipelines/{self.id}"}


@dataclass
class Status:
    id: int
    sha: str
    name: str
    status: str
    ref: str | None = None
    allow_failure: bool = False
    target_url: str | None = None


@dataclass
class Note:
    id: int
    body: str
    author: str
    system: bool = False
    created_at: str = field(default_factory=_now)


@dataclass
class MergeRequest:
    id: int
    iid: int
    title: str
    description: str
    source_branch: str
    target_branch: str
    author: str
    labels: list[str] = field(default_factory=list)
    reviewer_ids: list[int] = field(default_factory=list)
    assignee_ids: list[int] = field(default_factory=list)
    state: str = "opened"
    remove_source_branch: bool = False
    squash: bool = False
    auto_merge: bool = False  # merge_when_pipeline_succeeds
    auto_merge_squash: bool = False
    merge_message: str | None = None  # merge_commit_message / squash_commit_message
    merge_commit_sha: str | None = None
    squash_commit_sha: str | None = None
    merged_by: str | None = None
    merged_at: str | None = None
    closed_at: str | None = None
    heads: list[str] = field(default_factory=list)  # every head the source branch had
    notes: list[Note] = field(default_factory=list)
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)

    @property
    def sha(self) -> str | None:
        return self.heads[-1] if self.heads else None

    @property
    def draft(self) -> bool:
        return bool(re.match(r"^\s*(\[draft\]|\(draft\)|draft:|draft\s-\s)", self.title,
                             re.IGNORECASE))


@dataclass
class Project:
    id: int
    path: str  # group/project
    repo: BareRepo
    base_url: str
    default_branch: str = "main"
    ci: bool = False  # CI configured: merges wait for a pipeline of the head
    pipelines_must_succeed: bool = True
    legacy_auto_merge: bool = False  # an old server: no auto-merge without a pipeline
    pipeline_on_commit: str | None = None  # status of a pipeline made for API commits
    # as GitLab behaves in time: the pipeline of an API commit exists only this many
    # seconds after the commit (then ``pipeline_on_commit``), and succeeds after more
    pipeline_delay: tuple[float, float] | None = None
    protected: set[str] = field(default_factory=set)
    merge_requests: dict[int, MergeRequest] = field(default_factory=dict)
    pipelines: dict[str, Pipeline] = field(default_factory=dict)  # latest per sha
    statuses: list[Status] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def web_url(self) -> str:
        return f"{self.base_url}/{self.path}"


# -- the server -----------------------------------------------------------------------


class FakeGitLab(server.FakeServer):
    server_version = "FakeGitLab/1.0"
    null_body = b"null"

    def __init__(self, root: str | Path, tls: tuple[Path, Path] | None = None) -> None:
        """``tls`` (certificate, key): serve HTTPS, as a self-managed GitLab with a
        certificate from a private CA does."""
        super().__init__(root, tls)
        self.projects: dict[int, Project] = {}
        self.users: dict[str, User] = {}
        self.tokens: dict[str, Token] = {}
        self._ids = 0
    # set-up

    def next_id(self) -> int:
        with self.lock:
            self._ids += 1
            return self._ids

    def add_user(self, username: str, name: str | None = None) -> User:
        with self.lock:
            if username not in self.users:
                self.users[username] = User(self.next_id(), username, name or username)
            return self.users[username]

    def add_token(self, value: str, kind: str = "private", username: str = "promoter-bot",
                  scopes: Iterable[str] = ("api",), project: str | None = None,
                  maintainer: bool = False) -> Token:
        self.add_user(username)
        token = Token(value, kind, username, frozenset(scopes), project, maintainer)
        self.tokens[value] = token
        return token

    def add_project(self, path: str, files: Mapping[str, bytes], default_branch: str = "main",
                    **options: Any) -> Project:
        repo = self.bare_repo(path, files, default_branch)
        project = Project(self.next_id(), path, repo, self.url, default_branch, **options)
        self.projects[project.id] = project
        return project

    def project(self, ref: str | int) -> Project:
        for project in self.projects.values():
            if project.path == ref or str(project.id) == str(ref):
                return project
        raise KeyError(ref)

    def set_pipeline(self, sha: str, status: str, project: str | int | None = None,
                     ref: str | None = None) -> None:
        """The latest pipeline of ``sha``: none | created | pending | running | success |
        failed | canceled | skipped | manual. A merge request set to auto-merge whose head
        is ``sha`` merges on ``success`` and drops auto-merge on a failure."""
        with self.lock:
            proj = self._project_of(sha) if project is None else self.project(project)
            if status == "none":
                proj.pipelines.pop(sha, None)
                return
            current = proj.pipelines.get(sha)
            rerun = status in ("created", "pending") and current is not None and \
                current.status not in ACTIVE
            if current is None or rerun:
                proj.pipelines[sha] = Pipeline(self.next_id(), sha,
                                               ref or self._ref_of(proj, sha), status)
            else:
                current.status = status
                current.updated_at = _now()
            for mr in proj.merge_requests.values():
                self._refresh(proj, mr)
                if mr.state != "opened" or not mr.auto_merge or mr.sha != sha:
                    continue
                if status == "success":
                    try:
                        self._merge(proj, mr, mr.auto_merge_squash,
                                    mr.merged_by or "promoter-bot",
                                    remove_source=mr.remove_source_branch)
                    except HTTPError:  # a conflict: GitLab leaves it open
                        mr.auto_merge = False
                elif status in FAILED:
                    mr.auto_merge = False
                    mr.notes.append(Note(self.next_id(), "aborted the automatic merge because "
                                         "the pipeline failed", "promoter-bot", system=True))

    def set_status(self, sha: str, name: str, status: str, project: str | int | None = None,
                   allow_failure: bool = False) -> None:
        """An external commit status (``POST /statuses/:sha`` as another CI would)."""
        with self.lock:
            proj = self._project_of(sha) if project is None else self.project(project)
            proj.statuses = [s for s in proj.statuses if not (s.sha == sha and s.name == name)]
            proj.statuses.append(Status(self.next_id(), sha, name, status,
                                        allow_failure=allow_failure))

    def merge_request(self, project: str | int, iid: int) -> dict[str, Any]:
        """A merge request as ``GET /projects/:id/merge_requests/:iid`` shows it."""
        with self.lock:
            proj = self.project(project)
            return self._mr_json(proj, proj.merge_requests[iid], detail=True)

    def merge_requests(self, project: str | int) -> list[dict[str, Any]]:
        with self.lock:
            proj = self.project(project)
            return [self._mr_json(proj, mr, detail=True)
                    for mr in proj.merge_requests.values()]

    def notes(self, project: str | int, iid: int) -> list[str]:
        with self.lock:
            return [n.body for n in self.project(project).merge_requests[iid].notes]

    # helpers

    def _project_of(self, sha: str) -> Project:
        for project in self.projects.values():
            if project.repo.object_type(sha) == "commit":
                return project
        raise KeyError(sha)

    @staticmethod
    def _ref_of(project: Project, sha: str) -> str:
        for ref, tip in project.repo.list_refs("refs/heads/").items():
            if tip == sha:
                return ref.removeprefix("refs/heads/")
        return project.default_branch

    def _refresh(self, project: Project, mr: MergeRequest) -> None:
        """Record the source branch's head (GitLab updates the MR on every push)."""
        if mr.state != "opened":
            return
        head = project.repo.resolve(full_ref(mr.source_branch))
        if head is not None and (not mr.heads or mr.heads[-1] != head):
            mr.heads.append(head)

    # JSON shapes

    def _commit_json(self, project: Project, entry: Mapping[str, Any],
                     detail: bool = False) -> dict[str, Any]:
        message = entry["message"]
        data: dict[str, Any] = {
            "id": entry["sha"], "short_id": entry["sha"][:8],
            "created_at": entry["committer_date"], "parent_ids": list(entry["parents"]),
            "title": message.split("\n", 1)[0], "message": message,
            "author_name": entry["author_name"], "author_email": entry["author_email"],
            "authored_date": entry["author_date"], "committer_name": entry["committer_name"],
            "committer_email": entry["committer_email"],
            "committed_date": entry["committer_date"], "trailers": {},
            "extended_trailers": {},
            "web_url": f"{project.web_url}/-/commit/{entry['sha']}",
        }
        if detail:
            pipeline = project.pipelines.get(entry["sha"])
            data.update({"stats": {"additions": 0, "deletions": 0, "total": 0},
                         "status": pipeline.status if pipeline else None,
                         "project_id": project.id,
                         "last_pipeline": pipeline.json(project) if pipeline else None})
        return data

    def _branch_json(self, project: Project, name: str, sha: str) -> dict[str, Any]:
        entry = project.repo.commit(sha)
        assert entry is not None
        return {"name": name, "merged": False, "protected": name in project.protected,
                "default": name == project.default_branch, "developers_can_push": False,
                "developers_can_merge": False, "can_push": True,
                "web_url": f"{project.web_url}/-/tree/{name}",
                "commit": self._commit_json(project, entry)}

    def _project_json(self, project: Project) -> dict[str, Any]:
        namespace = project.path.rsplit("/", 1)[0] if "/" in project.path else ""
        return {
            "id": project.id, "name": project.name, "path": project.name,
            "path_with_namespace": project.path,
            "name_with_namespace": project.path.replace("/", " / "),
            "default_branch": project.default_branch, "visibility": "private",
            "web_url": project.web_url, "http_url_to_repo": f"{project.web_url}.git",
            "namespace": {"id": 1, "name": namespace, "path": namespace,
                          "full_path": namespace, "kind": "group"},
            "archived": False, "empty_repo": False,
            "only_allow_merge_if_pipeline_succeeds": project.ci and
            project.pipelines_must_succeed,
            "merge_method": "merge", "squash_option": "default_off",
            "jobs_enabled": project.ci, "ci_config_path": "",
        }

    def _user_ref(self, username: str | None) -> dict[str, Any] | None:
        if username is None:
            return None
        return self.add_user(username).json(self.url)

    def _users_by_id(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        by_id = {u.id: u for u in self.users.values()}
        return [by_id[i].json(self.url) for i in ids if i in by_id]

    def _detailed_status(self, project: Project, mr: MergeRequest) -> str:
        if mr.state != "opened":
            return "not_open"
        if mr.draft:
            return "draft_status"
        if self._conflicts(project, mr):
            return "conflict"
        pipeline = project.pipelines.get(mr.sha or "")
        if project.ci and project.pipelines_must_succeed:
            if pipeline is None or pipeline.status in FAILED:
                return "ci_must_pass"
            if pipeline.status != "success":
                return "ci_still_running"
        return "mergeable"

    @staticmethod
    def _conflicts(project: Project, mr: MergeRequest) -> bool:
        """Whether merging the MR's head into its target would conflict (3-way)."""
        target = project.repo.resolve(mr.target_branch)
        if mr.state != "opened" or mr.sha is None or target is None:
            return False
        return project.repo._merged_tree(target, mr.sha) is None

    def _mr_json(self, project: Project, mr: MergeRequest, detail: bool) -> dict[str, Any]:
        self._refresh(project, mr)
        pipeline = project.pipelines.get(mr.sha or "")
        data: dict[str, Any] = {
            "id": mr.id, "iid": mr.iid, "project_id": project.id, "title": mr.title,
            "description": mr.description, "state": mr.state,
            "created_at": mr.created_at, "updated_at": mr.updated_at,
            "merged_by": self._user_ref(mr.merged_by), "merge_user": self._user_ref(mr.merged_by),
            "merged_at": mr.merged_at, "closed_at": mr.closed_at,
            "target_branch": mr.target_branch, "source_branch": mr.source_branch,
            "author": self._user_ref(mr.author),
            "assignees": self._users_by_id(mr.assignee_ids),
            "assignee": (self._users_by_id(mr.assignee_ids[:1]) or [None])[0],
            "reviewers": self._users_by_id(mr.reviewer_ids),
            "source_project_id": project.id, "target_project_id": project.id,
            "labels": sorted(mr.labels), "draft": mr.draft, "work_in_progress": mr.draft,
            "milestone": None, "merge_when_pipeline_succeeds": mr.auto_merge,
            "merge_status": "can_be_merged" if mr.state == "opened" else "cannot_be_merged",
            "detailed_merge_status": self._detailed_status(project, mr),
            "sha": mr.sha, "merge_commit_sha": mr.merge_commit_sha,
            "squash_commit_sha": mr.squash_commit_sha, "discussion_locked": None,
            "should_remove_source_branch": None,
            "force_remove_source_branch": mr.remove_source_branch, "squash": mr.squash,
            "squash_on_merge": mr.squash, "has_conflicts": self._conflicts(project, mr),
            "web_url": f"{project.web_url}/-/merge_requests/{mr.iid}",
            "references": {"short": f"!{mr.iid}", "relative": f"!{mr.iid}",
                           "full": f"{project.path}!{mr.iid}"},
            "user_notes_count": sum(1 for n in mr.notes if not n.system),
        }
        if detail:
            data["head_pipeline"] = pipeline.json(project) if pipeline else None
            data["pipeline"] = data["head_pipeline"]
            data["diff_refs"] = {"base_sha": None, "head_sha": mr.sha, "start_sha": None}
        return data

    # merging

    def _merge(self, project: Project, mr: MergeRequest, squash: bool, username: str,
               remove_source: bool) -> None:
        head = mr.sha
        if head is None:
            raise HTTPError(405)
        if mr.merge_message:
            message = mr.merge_message
        elif squash:
            message = mr.title
        else:
            message = (f"Merge branch '{mr.source_branch}' into '{mr.target_branch}'\n\n"
                       f"{mr.title}\n\nSee merge request {project.path}!{mr.iid}")
        user = self.add_user(username)
        new = project.repo.merge(mr.target_branch, head, "squash" if squash else "merge",
                                 message, user.name, f"{user.username}@example.com")
        if new is None:  # GitLab: 406 Not Acceptable, "Branch cannot be merged"
            raise HTTPError(406, {"message": "Branch cannot be merged"})
        mr.state = "merged"
        mr.auto_merge = False
        mr.merged_by = username
        mr.merged_at = mr.updated_at = _now()
        if squash:
            mr.squash_commit_sha = new
        else:
            mr.merge_commit_sha = new
        if remove_source:
            project.repo.delete_ref(mr.source_branch)

    # routing

    def respond(self, request: Request) -> Reply:
        return Reply(*self.handle(request.method, request.path, dict(request.query),
                                  _parse_body(request.body), request.headers))

    def fault_body(self, status: int) -> Any:
        return _message(status)

    def handle(self, method: str, raw_path: str, query: dict[str, Any], body: Any,
               headers: Mapping[str, str]) -> tuple[int, Any, dict[str, str]]:
        """One request -> (status, JSON value or bytes, headers). Called under the lock."""
        if not raw_path.startswith(API + "/"):
            raise HTTPError(404, {"error": "404 Not Found"})
        segments = [urllib.parse.unquote(s) for s in raw_path[len(API) + 1:].split("/")]
        params: dict[str, Any] = dict(query)
        if isinstance(body, dict):
            params.update(body)
        token = self._authenticate(headers)
        if segments == ["users"] and method == "GET":
            if token is None:
                raise HTTPError(401)
            users = [u.json(self.url) for u in self.users.values()
                     if "username" not in params or u.username == params["username"]]
            return self._page(users, params, raw_path)
        if segments[0] != "projects" or len(segments) < 2:
            raise HTTPError(404, {"error": "404 Not Found"})
        project = self._find_project(segments[1], token, method)
        rest = segments[2:]
        self._authorize(project, token, method)
        return self._route(project, method, rest, params, token, raw_path)

    def _authenticate(self, headers: Mapping[str, str]) -> Token | None:
        lower = {k.lower(): v for k, v in headers.items()}
        value = lower.get("private-token") or lower.get("job-token")
        kind = "private" if "private-token" in lower else "job"
        if value is None and lower.get("authorization", "").lower().startswith("bearer "):
            value, kind = lower["authorization"][7:].strip(), "oauth"
        if value is None:
            return None
        token = self.tokens.get(value)
        if token is None or token.kind != kind:
            raise HTTPError(401)
        return token

    def _find_project(self, ref: str, token: Token | None, method: str) -> Project:
        for project in self.projects.values():
            if project.path == ref or str(project.id) == ref:
                if token is None and method != "GET":
                    raise HTTPError(401)
                if token is None:
                    break  # private: invisible without a token
                return project
        if token is None and method != "GET":
            raise HTTPError(401)
        raise _not_found("Project")

    @staticmethod
    def _authorize(project: Project, token: Token | None, method: str) -> None:
        if method == "GET" or token is None:
            return
        if token.kind == "job" and token.project != project.path:
            raise HTTPError(403)
        if "api" not in token.scopes:
            raise HTTPError(403, {
                "error": "insufficient_scope",
                "error_description": "The request requires higher privileges than provided "
                                     "by the access token.", "scope": "api"})

    def _page(self, items: list[Any], params: Mapping[str, Any],
              raw_path: str) -> tuple[int, Any, dict[str, str]]:
        per_page = max(1, min(100, int(params.get("per_page") or 20)))
        page = max(1, int(params.get("page") or 1))
        total = len(items)
        pages = max(1, -(-total // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(total),
                   "X-Total-Pages": str(pages),
                   "X-Next-Page": str(page + 1) if page < pages else "",
                   "X-Prev-Page": str(page - 1) if page > 1 else ""}
        keep = {k: v for k, v in params.items() if isinstance(v, (str, int))}

        def link(n: int) -> str:
            q = urllib.parse.urlencode({**keep, "page": n, "per_page": per_page})
            return f"{self.url}{raw_path}?{q}"

        links = [f'<{link(1)}>; rel="first"', f'<{link(pages)}>; rel="last"']
        if page < pages:
            links.insert(0, f'<{link(page + 1)}>; rel="next"')
        if page > 1:
            links.insert(0, f'<{link(page - 1)}>; rel="prev"')
        headers["Link"] = ", ".join(links)
        return 200, chunk, headers

    def _route(self, project: Project, method: str, rest: list[str], params: dict[str, Any],
               token: Token | None, raw_path: str) -> tuple[int, Any, dict[str, str]]:
        user = token.username if token else "anonymous"
        if not rest:
            if method == "GET":
                return 200, self._project_json(project), {}
            raise HTTPError(405)
        head, *tail = rest
        if head == "repository":
            return self._repository(project, method, tail, params, token, raw_path)
        if head == "merge_requests":
            return self._merge_requests(project, method, tail, params, user, raw_path)
        if head == "statuses" and tail and method == "POST":
            self.set_status(tail[0], str(params.get("name") or "default"),
                            str(params["state"]), project.id)
            return 201, {"id": self.next_id(), "sha": tail[0], "status": params["state"]}, {}
        raise HTTPError(404, {"error": "404 Not Found"})

    def _repository(self, project: Project, method: str, rest: list[str],
                    params: dict[str, Any], token: Token | None,
                    raw_path: str) -> tuple[int, Any, dict[str, str]]:
        repo = project.repo
        if not rest:
            raise HTTPError(404, {"error": "404 Not Found"})
        what = rest[0]
        if what == "branches" and len(rest) >= 2:
            name = "/".join(rest[1:])
            sha = repo.resolve(full_ref(name))
            if method == "GET":
                if sha is None:
                    raise _not_found("Branch")
                return 200, self._branch_json(project, name, sha), {}
            if method == "DELETE":
                if sha is None:
                    raise _not_found("Branch")
                if name in project.protected and not (token and token.maintainer):
                    raise HTTPError(403)
                repo.delete_ref(name)
                return 204, b"", {}
            raise HTTPError(405)
        if what in ("archive", "archive.tar.gz") and method == "GET":
            ref = str(params.get("sha") or project.default_branch)
            sha = _revision(repo, ref)
            if sha is None:
                raise _not_found("File")
            safe = re.sub(r"[^A-Za-z0-9._-]", "-", ref)
            data = repo.archive_tar_gz(sha, prefix=f"{project.name}-{safe}-{sha}/")
            return 200, data, {"Content-Type": "application/octet-stream",
                               "Content-Disposition":
                                   f'attachment; filename="{project.name}-{safe}.tar.gz"'}
        if what == "tree" and len(rest) == 1 and method == "GET":
            # GET /repository/tree?ref=&path=&recursive=: the entries of one directory
            # (or all, recursive), with git's mode: a symlink is a blob of mode 120000
            ref = str(params.get("ref") or project.default_branch)
            sha = repo.resolve(ref)
            if sha is None:
                raise _not_found("Tree")
            path = str(params.get("path") or "").strip("/")
            recursive = str(params.get("recursive", "")).lower() in ("true", "1")
            spec = f"{sha}:{path}" if path else sha
            listing = repo.git("ls-tree", "-z", *(["-r", "-t"] if recursive else []),
                               spec, check=False)
            if listing.returncode != 0:
                raise _not_found("Tree")
            entries = []
            for record in listing.stdout.decode("utf-8").split("\0"):
                if record:
                    meta, name = record.split("\t", 1)
                    mode, kind, obj = meta.split(" ")
                    full = f"{path}/{name}" if path else name
                    entries.append({"id": obj, "name": full.rsplit("/", 1)[-1], "type": kind,
                                    "path": full, "mode": mode})
            return self._page(entries, params, raw_path)
        if what == "blobs" and len(rest) == 3 and rest[2] == "raw" and method == "GET":
            if repo.object_type(rest[1]) != "blob":
                raise _not_found("Blob")
            return 200, repo.read_blob(rest[1]), {"Content-Type": "text/plain; charset=utf-8"}
        if what == "files" and len(rest) >= 3 and rest[-1] == "raw" and method == "GET":
            path = "/".join(rest[1:-1])
            ref = str(params.get("ref") or project.default_branch)
            sha = repo.resolve(ref)
            if sha is None:
                raise _not_found("Commit")
            content = repo.read_file(sha, path)
            if content is None:
                raise _not_found("File")
            return 200, content, {"Content-Type": "text/plain; charset=utf-8",
                                  "X-Gitlab-File-Path": path, "X-Gitlab-Commit-Id": sha}
        if what == "commits":
            if len(rest) == 1 and method == "POST":
                return self._create_commit(project, params, token)
            if len(rest) == 1 and method == "GET":
                return self._list_commits(project, params, raw_path)
            sha = repo.resolve(rest[1])
            if sha is None:
                raise _not_found("Commit")
            if len(rest) == 2 and method == "GET":
                entry = repo.commit(sha)
                assert entry is not None
                return 200, self._commit_json(project, entry, detail=True), {}
            if rest[2:] == ["statuses"] and method == "GET":
                return self._page(self._statuses(project, sha), params, raw_path)
            if rest[2:] == ["diff"] and method == "GET":
                return self._page(self._diff(project, sha), params, raw_path)
        raise HTTPError(404, {"error": "404 Not Found"})

    @staticmethod
    def _diff(project: Project, sha: str) -> list[dict[str, Any]]:
        """``GET commits/:sha/diff``: the changes against the first parent, with modes
        and the new/renamed/deleted flags (the diff text is not modelled)."""
        entry = project.repo.commit(sha)
        assert entry is not None
        new = project.repo.read_tree(sha)
        old = project.repo.read_tree(entry["parents"][0]) if entry["parents"] else {}
        out = []
        for path in sorted(set(new) | set(old)):
            if new.get(path) == old.get(path):
                continue
            out.append({"old_path": path, "new_path": path,
                        "a_mode": old[path][0] if path in old else "0",
                        "b_mode": new[path][0] if path in new else "0",
                        "new_file": path not in old, "renamed_file": False,
                        "deleted_file": path not in new, "diff": ""})
        return out

    def _statuses(self, project: Project, sha: str) -> list[dict[str, Any]]:
        found = []
        pipeline = project.pipelines.get(sha)
        if pipeline is not None:  # the pipeline's job, as GitLab lists jobs as statuses
            found.append({"id": pipeline.id, "sha": sha, "ref": pipeline.ref, "name": "test",
                          "status": pipeline.status, "allow_failure": False,
                          "created_at": pipeline.created_at, "target_url": None,
                          "description": None, "author": self._user_ref("promoter-bot")})
        for status in project.statuses:
            if status.sha == sha:
                found.append({"id": status.id, "sha": sha, "ref": status.ref,
                              "name": status.name, "status": status.status,
                              "allow_failure": status.allow_failure,
                              "target_url": status.target_url, "description": None,
                              "created_at": _now(), "author": self._user_ref("promoter-bot")})
        return found

    def _list_commits(self, project: Project, params: Mapping[str, Any],
                      raw_path: str) -> tuple[int, Any, dict[str, str]]:
        ref = str(params.get("ref_name") or project.default_branch)
        sha = _revision(project.repo, ref)
        if sha is None:
            return self._page([], params, raw_path)
        first = _truthy(params.get("first_parent", False))
        path = params.get("path")
        per_page = max(1, min(100, int(params.get("per_page") or 20)))
        page = max(1, int(params.get("page") or 1))
        entries = project.repo.log(sha, limit=per_page * page, path=path, first_parent=first)
        count_args = ["rev-list", "--count"] + (["--first-parent"] if first else []) + [sha]
        if path:
            count_args += ["--", str(path)]
        total = int(project.repo.git(*count_args).stdout.decode().strip())
        padded: list[Any] = [None] * ((page - 1) * per_page) + [
            self._commit_json(project, e) for e in entries[(page - 1) * per_page:]]
        padded += [None] * (total - len(padded))
        return self._page(padded, params, raw_path)

    def _create_commit(self, project: Project, params: Mapping[str, Any],
                       token: Token | None) -> tuple[int, Any, dict[str, str]]:
        repo = project.repo
        for required in ("branch", "commit_message", "actions"):
            if not params.get(required):
                raise _bad(f"{required} is missing")
        branch = str(params["branch"])
        if branch in project.protected and not (token and token.maintainer):
            raise HTTPError(403, {"message": "403 Forbidden - You are not allowed to push "
                                             "into this branch"})
        start_branch = params.get("start_branch")
        start_sha = params.get("start_sha")
        force = _truthy(params.get("force", False))
        if start_branch and start_sha:
            raise _bad("start_branch, start_sha are mutually exclusive")
        if not start_sha:
            start_branch = start_branch or branch
        if start_sha:
            if not re.fullmatch(r"[0-9a-f]{7,40}", str(start_sha)):
                raise _bad(f"Invalid start_sha '{start_sha}'")
            if repo.object_type(str(start_sha)) != "commit":
                raise _bad(f"Cannot find start_sha '{start_sha}'")
            parent = repo.resolve(str(start_sha))
        else:
            parent = repo.resolve(full_ref(str(start_branch)))
            if parent is None:
                raise _bad("You can only create or edit files when you are on a branch")
        current = repo.resolve(full_ref(branch))
        different = start_branch != branch or bool(start_sha)
        if different and current is not None and not force:
            raise _bad(f"A branch called '{branch}' already exists. Switch to that branch in "
                       "order to make changes")
        assert parent is not None
        changes = self._apply_actions(project, parent, params["actions"])
        tree = repo.write_tree_from(parent, changes)
        user = self.add_user(token.username if token else "anonymous")
        entry_author = str(params.get("author_name") or user.name)
        entry_email = str(params.get("author_email") or f"{user.username}@example.com")
        sha = repo.commit_tree(tree, [parent], str(params["commit_message"]), entry_author,
                               entry_email, committer_name=user.name,
                               committer_email=f"{user.username}@example.com")
        old = current if current is not None else ZERO
        if not repo.update_ref(branch, sha, old=old):
            raise _bad("Could not update the branch: it moved (try again)")
        if project.pipeline_delay is not None:
            created, finish = project.pipeline_delay
            for delay, status in ((created, project.pipeline_on_commit or "running"),
                                  (created + finish, "success")):
                self.later(delay, self.set_pipeline, sha, status, project.id, ref=branch)
        elif project.pipeline_on_commit:
            self.set_pipeline(sha, project.pipeline_on_commit, project.id, ref=branch)
        entry = repo.commit(sha)
        assert entry is not None
        return 201, self._commit_json(project, entry, detail=True), {}

    @staticmethod
    def _apply_actions(project: Project, parent: str,
                       actions: Any) -> dict[str, bytes | None]:
        repo = project.repo
        if not isinstance(actions, list) or not actions:
            raise _bad("actions is empty")
        existing = set(repo.read_tree(parent))
        changes: dict[str, bytes | None] = {}

        def exists(path: str) -> bool:
            if path in changes:
                return changes[path] is not None
            return path in existing

        for action in actions:
            kind = action.get("action")
            path = str(action.get("file_path") or "").strip("/")
            if not path:
                raise _bad("You must provide a file path")
            if ".." in path.split("/"):
                raise _bad("Path cannot include directory traversal")
            last = action.get("last_commit_id")
            if last and kind in ("update", "delete", "move"):
                touched = repo.log(parent, limit=1, path=action.get("previous_path") or path)
                if touched and touched[0]["sha"] != last:
                    raise _bad("You are attempting to update a file that has changed since "
                               "you started editing it.")
            content: bytes | None = None
            if "content" in action and action["content"] is not None:
                if action.get("encoding", "text") == "base64":
                    try:
                        content = base64.b64decode(action["content"], validate=True)
                    except (binascii.Error, ValueError):
                        raise _bad("content is not valid base64") from None
                else:
                    content = str(action["content"]).encode("utf-8")
            if kind == "create":
                if exists(path):
                    raise _bad("A file with this name already exists")
                changes[path] = content or b""
            elif kind == "update":
                if not exists(path):
                    raise _bad("A file with this name doesn't exist")
                if content is None:
                    raise _bad("actions[content] is missing")
                changes[path] = content
            elif kind == "delete":
                if not exists(path):
                    raise _bad("A file with this name doesn't exist")
                changes[path] = None
            elif kind == "move":
                previous = str(action.get("previous_path") or "")
                if not exists(previous):
                    raise _bad("A file with this name doesn't exist")
                if exists(path):
                    raise _bad("A file with this name already exists")
                if content is None:
                    content = repo.read_file(parent, previous) or b""
                changes[previous] = None
                changes[path] = content
            else:
                raise _bad("actions[action] does not have a valid value")
        return changes

    def _merge_requests(self, project: Project, method: str, rest: list[str],
                        params: dict[str, Any], user: str,
                        raw_path: str) -> tuple[int, Any, dict[str, str]]:
        if not rest:
            if method == "GET":
                return self._list_mrs(project, params, raw_path)
            if method == "POST":
                return self._create_mr(project, params, user)
            raise HTTPError(405)
        try:
            mr = project.merge_requests[int(rest[0])]
        except (KeyError, ValueError):
            raise _not_found("Merge Request") from None
        self._refresh(project, mr)
        sub = rest[1:]
        if not sub:
            if method == "GET":
                return 200, self._mr_json(project, mr, detail=True), {}
            if method == "PUT":
                return self._update_mr(project, mr, params)
            raise HTTPError(405)
        if sub == ["notes"]:
            if method == "POST":
                if not params.get("body"):
                    raise _bad("body is missing")
                note = Note(self.next_id(), str(params["body"]), user)
                mr.notes.append(note)
                return 201, self._note_json(mr, note), {}
            if method == "GET":
                notes = list(mr.notes)
                if params.get("sort", "desc") == "desc":
                    notes.reverse()
                return self._page([self._note_json(mr, n) for n in notes], params, raw_path)
        if sub == ["pipelines"] and method == "GET":
            pipelines = [project.pipelines[s].json(project) for s in reversed(mr.heads)
                         if s in project.pipelines]
            pipelines.sort(key=lambda p: -int(p["id"]))
            return self._page(pipelines, params, raw_path)
        if sub == ["merge"] and method == "PUT":
            return self._accept(project, mr, params, user)
        if sub == ["cancel_merge_when_pipeline_succeeds"] and method == "POST":
            # GitLab answers 201 either way; a refusal only says so in the body
            if not mr.auto_merge or mr.state != "opened":
                return 201, {"message": "Can't cancel the automatic merge", "status": "error",
                             "http_status": 406}, {}
            mr.auto_merge = False
            mr.notes.append(Note(self.next_id(), "canceled the automatic merge", user,
                                 system=True))
            return 201, {"status": "success"}, {}
        raise HTTPError(404, {"error": "404 Not Found"})

    def _note_json(self, mr: MergeRequest, note: Note) -> dict[str, Any]:
        return {"id": note.id, "body": note.body, "author": self._user_ref(note.author),
                "created_at": note.created_at, "updated_at": note.created_at,
                "system": note.system, "noteable_type": "MergeRequest",
                "noteable_iid": mr.iid, "resolvable": False}

    def _list_mrs(self, project: Project, params: Mapping[str, Any],
                  raw_path: str) -> tuple[int, Any, dict[str, str]]:
        state = str(params.get("state") or "all")
        found = []
        for mr in sorted(project.merge_requests.values(), key=lambda m: -m.iid):
            self._refresh(project, mr)
            if state != "all" and mr.state != state:
                continue
            if params.get("source_branch") and mr.source_branch != params["source_branch"]:
                continue
            if params.get("target_branch") and mr.target_branch != params["target_branch"]:
                continue
            if params.get("labels") and not set(_labels(params["labels"])) <= set(mr.labels):
                continue
            found.append(self._mr_json(project, mr, detail=False))
        return self._page(found, params, raw_path)

    def _create_mr(self, project: Project, params: Mapping[str, Any],
                   user: str) -> tuple[int, Any, dict[str, str]]:
        for required in ("title", "source_branch", "target_branch"):
            if not params.get(required):
                raise _bad(f"{required} is missing")
        source = str(params["source_branch"])
        target = str(params["target_branch"])
        errors = []
        if source == target:
            errors.append("You can't use same project/branch for source and target")
        if project.repo.resolve(full_ref(source)) is None:
            errors.append(f'Source branch "{source}" does not exist')
        if project.repo.resolve(full_ref(target)) is None:
            errors.append(f'Target branch "{target}" does not exist')
        for other in project.merge_requests.values():
            if other.state == "opened" and other.source_branch == source and \
                    other.target_branch == target:
                errors.append("Another open merge request already exists for this source "
                              f"branch: !{other.iid}")
        if errors:
            raise HTTPError(409, {"message": errors})
        description = str(params.get("description") or "")
        if len(description) > 1_000_000:
            raise _bad({"description": ["is too long (maximum is 1000000 characters)"]})
        title = str(params["title"])
        if len(title) > 255:
            raise _bad({"title": ["is too long (maximum is 255 characters)"]})
        iid = max(project.merge_requests, default=0) + 1
        assignees = _ids(params.get("assignee_ids"))
        if not assignees and params.get("assignee_id"):
            assignees = [int(params["assignee_id"])]
        known = {u.id for u in self.users.values()}
        mr = MergeRequest(
            id=self.next_id(), iid=iid, title=title, description=description,
            source_branch=source, target_branch=target, author=user,
            labels=_labels(params.get("labels")),
            reviewer_ids=[i for i in _ids(params.get("reviewer_ids")) if i in known],
            assignee_ids=[i for i in assignees if i in known],
            remove_source_branch=_truthy(params.get("remove_source_branch", False)),
            squash=_truthy(params.get("squash", False)))
        project.merge_requests[iid] = mr
        self._refresh(project, mr)
        return 201, self._mr_json(project, mr, detail=True), {}

    def _update_mr(self, project: Project, mr: MergeRequest,
                   params: Mapping[str, Any]) -> tuple[int, Any, dict[str, str]]:
        allowed = {"title", "description", "labels", "add_labels", "remove_labels",
                   "state_event", "reviewer_ids", "assignee_ids", "assignee_id",
                   "target_branch", "remove_source_branch", "squash", "discussion_locked",
                   "milestone_id"}
        if not allowed & set(params):
            raise _bad("assignee_id, assignee_ids, reviewer_ids, description, labels, "
                       "add_labels, remove_labels, milestone_id, remove_source_branch, "
                       "state_event, target_branch, title, discussion_locked, squash are "
                       "missing, at least one parameter must be provided")
        known = {u.id for u in self.users.values()}
        if "title" in params:
            if not str(params["title"]).strip():
                raise _bad("title is empty")
            mr.title = str(params["title"])
        if "description" in params:
            description = str(params["description"] or "")
            if len(description) > 1_000_000:
                raise _bad({"description": ["is too long (maximum is 1000000 characters)"]})
            mr.description = description
        if "labels" in params:
            mr.labels = _labels(params["labels"])
        for label in _labels(params.get("add_labels")):
            if label not in mr.labels:
                mr.labels.append(label)
        remove = set(_labels(params.get("remove_labels")))
        mr.labels = [label for label in mr.labels if label not in remove]
        if "reviewer_ids" in params:
            mr.reviewer_ids = [i for i in _ids(params["reviewer_ids"]) if i in known]
        if "assignee_ids" in params:
            mr.assignee_ids = [i for i in _ids(params["assignee_ids"]) if i in known]
        if "target_branch" in params:
            mr.target_branch = str(params["target_branch"])
        if "remove_source_branch" in params:
            mr.remove_source_branch = _truthy(params["remove_source_branch"])
        if "squash" in params:
            mr.squash = _truthy(params["squash"])
        event = params.get("state_event")
        if event == "close" and mr.state == "opened":
            mr.state, mr.closed_at, mr.auto_merge = "closed", _now(), False
        elif event == "reopen" and mr.state == "closed":
            mr.state, mr.closed_at = "opened", None
        mr.updated_at = _now()
        return 200, self._mr_json(project, mr, detail=True), {}

    def _accept(self, project: Project, mr: MergeRequest, params: Mapping[str, Any],
                user: str) -> tuple[int, Any, dict[str, str]]:
        if mr.state != "opened" or mr.draft or mr.sha is None:
            raise HTTPError(405)
        if params.get("sha") and params["sha"] != mr.sha:
            raise HTTPError(409, {"message": "SHA does not match HEAD of source branch: "
                                             f"{mr.sha}"})
        auto = _truthy(params.get("auto_merge", False)) or \
            _truthy(params.get("merge_when_pipeline_succeeds", False))
        squash = _truthy(params.get("squash", mr.squash))
        chosen = params.get("squash_commit_message" if squash else "merge_commit_message")
        if chosen:
            mr.merge_message = str(chosen)
        remove = _truthy(params.get("should_remove_source_branch",
                                    mr.remove_source_branch))
        pipeline = project.pipelines.get(mr.sha)
        must = project.pipelines_must_succeed
        if project.ci and pipeline is None:
            if auto or must:  # the pipeline is not there yet: GitLab answers 405
                raise HTTPError(405)
        elif pipeline is not None and pipeline.status in ACTIVE | {"manual"}:
            if auto:
                mr.auto_merge = True
                mr.auto_merge_squash = squash
                mr.remove_source_branch = remove
                mr.merged_by = user
                mr.squash = squash
                mr.updated_at = _now()
                return 200, self._mr_json(project, mr, detail=True), {}
            if must:
                raise HTTPError(405)
        elif pipeline is not None and pipeline.status in FAILED:
            if must:
                raise HTTPError(405)
        elif pipeline is None and auto and project.legacy_auto_merge:
            raise HTTPError(405)
        mr.squash = squash
        self._merge(project, mr, squash, user, remove_source=remove)
        return 200, self._mr_json(project, mr, detail=True), {}


def _parse_body(raw: bytes) -> Any:
    """A JSON body, or a form (python-gitlab sends some requests form-encoded)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"))
        return {k: v[-1] for k, v in form.items()}
