"""A fake GitHub REST (and a sliver of GraphQL) API over real HTTP, for forge tests.

A ``ThreadingHTTPServer`` on 127.0.0.1 (ephemeral port) that answers the request and
response shapes PyGithub 2.10 sends and reads. Commits, trees and refs are real objects
in bare git repos (``gitrepo.BareRepo``); pull requests, labels, comments, statuses and
check runs live in memory.

    with FakeGitHub(tmp_path) as gh:
        gh.add_token("t0ken", "write")
        repo = gh.create_repo("acme/config", {"envs/dev/app.yaml": b"..."})
        forge = GitHubForge("acme/config", api_url=gh.url, token="t0ken")
        ...
        repo.bare.log("main", 5)          # what really landed
        gh.pull("acme/config", 1)          # a PR's state, as a dict

Test controls (the shared ones from ``tests/fakes/server.py``):
    requests          every request: Seen(method, path, query, status, bytes_in,
                      bytes_out); status 0 = the connection was dropped; GraphQL is
                      recorded (and faulted) as ``/graphql#Operation``
    reset_counts()    forget recorded requests
    latency           seconds added before every answer (default 0)
    count(method, path_regex)  how many recorded requests match
    fail(...)         fault injection (statuses, Retry-After, dropped connections,
                      writes that apply and then fail, delays)
    before(...)       someone else acts right before a matching request
    set_checks(repo, sha, state, name=..., kind="check_run"|"status")
                      a check run or legacy status on a commit; a green result merges
                      open PRs whose auto-merge waits for that commit
    add_token(token, permission="write"|"read", login=..., repos=None)
    add_app(app_id, public_key_pem, repos) -> installation id (JWT RS256 checked)

Faithful where it matters to the forge: 401 "Bad credentials", 403 for a token without
push ("Resource not accessible by personal access token"), 404 {"message":"Not Found"},
"Branch not found", 422 "Reference already exists" / "Update is not a fast forward" /
"Reference does not exist", 422 "A pull request already exists for acme:branch.",
422 body too long (65536), 405 "Pull Request is not mergeable", 409 "Head branch was
modified", GraphQL "Pull request Pull request is in clean status". The ``head`` filter
of ``GET /pulls`` is ignored without ``owner:``, as on GitHub. A combined status with
no statuses says ``pending`` with ``total_count`` 0, as on GitHub.

Not modelled: forks, teams, reviews, branch protection beyond ``required_checks``,
sub-tree entries (``type: tree``) in ``POST /git/trees``, ETags, the search API.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jwt

from . import server
from .gitrepo import ZERO, BareRepo
from .server import Fault, Reply, Request, Seen

__all__ = ["FakeGitHub", "FakePull", "FakeRepo", "Fault", "RequestRecord", "Response", "Seen"]

DOCS = "https://docs.github.com/rest"
MAX_BODY = 65536
FAILED_CONCLUSIONS = {"failure", "timed_out", "cancelled", "action_required",
                      "startup_failure", "stale"}


RequestRecord = Seen  # the name this fake's tests knew it by
Response = Reply


@dataclass
class TokenInfo:
    login: str
    permission: str  # write | read
    repos: frozenset[str] | None  # None = every repo
    app_id: int | None = None


@dataclass
class App:
    app_id: int
    public_key: str
    installation_id: int
    repos: frozenset[str]


@dataclass
class FakePull:
    number: int
    title: str
    body: str | None
    head: str
    base: str
    user: str
    head_sha: str
    draft: bool = False
    state: str = "open"
    merged: bool = False
    merged_at: str | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    closed_at: str | None = None
    labels: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)
    auto_merge: dict[str, Any] | None = None
    created_at: str = ""
    updated_at: str = ""


@dataclass
class FakeRepo:
    full_name: str
    bare: BareRepo
    id: int
    default_branch: str = "main"
    private: bool = True
    allow_auto_merge: bool = True
    allow_merge_commit: bool = True
    allow_squash_merge: bool = True
    allow_rebase_merge: bool = True
    delete_branch_on_merge: bool = False
    required_checks: tuple[str, ...] = ()
    # The repo's CI, as GitHub Actions behaves in time: a moment after a branch is
    # written through the API, check run "ci" registers (pending), then finishes.
    # (seconds until it registers, seconds until it completes, its conclusion)
    ci_after_push: tuple[float, float, str] | None = None
    collaborators: set[str] | None = None
    pulls: dict[int, FakePull] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    check_runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def owner(self) -> str:
        return self.full_name.split("/")[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/")[1]


class ApiError(Exception):
    """Raised by a handler: becomes a GitHub-shaped JSON error response."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = dict(headers or {})


@dataclass
class Ctx:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: Mapping[str, str]
    who: TokenInfo | App | None = None


def now_iso(offset: float = 0.0) -> str:
    when = datetime.now(timezone.utc) + timedelta(seconds=offset)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _validation(message: str | None = None, **error: str) -> ApiError:
    entry: dict[str, Any] = dict(error)
    if message:
        entry["message"] = message
    return ApiError(422, "Validation Failed", errors=[entry])


def checks_state(statuses: Sequence[Mapping[str, Any]],
                 runs: Sequence[Mapping[str, Any]]) -> str:
    """none | pending | success | failure, the way the forge is meant to read them."""
    states = [s["state"] for s in statuses]
    for run in runs:
        if run["status"] != "completed":
            states.append("pending")
        elif run["conclusion"] in FAILED_CONCLUSIONS:
            states.append("failure")
        else:
            states.append("success")
    if not states:
        return "none"
    if any(s in ("failure", "error") for s in states):
        return "failure"
    if "pending" in states:
        return "pending"
    return "success"


class FakeGitHub(server.FakeServer):
    server_version = "FakeGitHub/1.0"
    json_type = "application/json; charset=utf-8"
    null_body = b"null"

    def __init__(self, root: str | Path, prefix: str = "",
                 tls: tuple[Path, Path] | None = None) -> None:
        """``tls`` (certificate, key): serve HTTPS, as a GitHub Enterprise Server."""
        super().__init__(root, tls)
        self.prefix = prefix.rstrip("/")
        self.repos: dict[str, FakeRepo] = {}
        self.tokens: dict[str, TokenInfo] = {}
        self.apps: dict[int, App] = {}
        self.signed: set[str] = set()  # commits made by createCommitOnBranch (Verified)
        self._ids = itertools.count(1000)
        self._downloads: dict[str, tuple[str, str]] = {}

    @property
    def url(self) -> str:
        """The API root to give PyGithub as ``base_url``."""
        return self.root_url + self.prefix

    # -- set-up -----------------------------------------------------------------------

    def create_repo(self, full_name: str, files: Mapping[str, bytes],
                    default_branch: str = "main", **settings: Any) -> FakeRepo:
        owner, name = full_name.split("/")
        bare = BareRepo.init(self.root / "github" / owner / f"{name}.git", files,
                             branch=default_branch)
        repo = FakeRepo(full_name, bare, next(self._ids), default_branch=default_branch)
        for key, value in settings.items():
            if not hasattr(repo, key):
                raise TypeError(f"unknown repo setting {key}")
            setattr(repo, key, value)
        with self.lock:
            self.repos[full_name] = repo
        return repo

    def add_token(self, token: str, permission: str = "write", login: str = "promoter-bot",
                  repos: Sequence[str] | None = None) -> None:
        with self.lock:
            self.tokens[token] = TokenInfo(login, permission,
                                           frozenset(repos) if repos is not None else None)

    def add_app(self, app_id: int, public_key_pem: str, repos: Sequence[str]) -> int:
        installation = next(self._ids)
        with self.lock:
            self.apps[app_id] = App(app_id, public_key_pem, installation, frozenset(repos))
        return installation

    def set_checks(self, full_name: str, sha: str, state: str, *, name: str = "ci",
                   kind: str = "check_run") -> None:
        """Set one check on commit ``sha``: ``state`` is pending | success | failure
        (| error | neutral | skipped ...). ``kind``: check_run (Actions) or status
        (legacy commit status, ``name`` is its context). Replaces a check of that name."""
        with self.lock:
            repo = self.repos[full_name]
            stamp = now_iso()
            if kind == "status":
                entries = repo.statuses.setdefault(sha, [])
                entries[:] = [s for s in entries if s["context"] != name]
                sid = next(self._ids)
                entries.append({
                    "url": f"{self._repo_api(repo)}/statuses/{sha}", "avatar_url": None,
                    "id": sid, "node_id": f"SC_{sid}", "state": state,
                    "description": f"{name} is {state}", "target_url": None,
                    "context": name, "created_at": stamp, "updated_at": stamp,
                })
            elif kind == "check_run":
                runs = repo.check_runs.setdefault(sha, [])
                runs[:] = [r for r in runs if r["name"] != name]
                rid = next(self._ids)
                done = state not in ("pending", "queued", "in_progress")
                runs.append({
                    "id": rid, "head_sha": sha, "node_id": f"CR_{rid}", "external_id": "",
                    "url": f"{self._repo_api(repo)}/check-runs/{rid}",
                    "html_url": f"{self.root_url}/{full_name}/runs/{rid}",
                    "details_url": None,
                    "status": "completed" if done else (
                        "queued" if state == "queued" else "in_progress"),
                    "conclusion": state if done else None,
                    "started_at": stamp, "completed_at": stamp if done else None,
                    "output": {"title": None, "summary": None, "text": None,
                               "annotations_count": 0,
                               "annotations_url": f"{self._repo_api(repo)}/check-runs/"
                                                  f"{rid}/annotations"},
                    "name": name, "check_suite": {"id": rid + 1}, "app": None,
                    "pull_requests": [],
                })
            else:
                raise ValueError(f"unknown check kind {kind!r}")
            self._auto_merge_sweep(repo)

    def clear_checks(self, full_name: str, sha: str) -> None:
        with self.lock:
            repo = self.repos[full_name]
            repo.statuses.pop(sha, None)
            repo.check_runs.pop(sha, None)

    def pull(self, full_name: str, number: int) -> dict[str, Any]:
        """A PR as the API shows it (full representation)."""
        with self.lock:
            repo = self.repos[full_name]
            return self._pull_json(repo, repo.pulls[number], full=True)

    def pulls(self, full_name: str, state: str = "all") -> list[FakePull]:
        with self.lock:
            return [p for p in self.repos[full_name].pulls.values()
                    if state == "all" or p.state == state]

    def comments(self, full_name: str, number: int) -> list[str]:
        with self.lock:
            return [c["body"] for c in self.repos[full_name].comments.get(number, [])]

    # -- representations --------------------------------------------------------------

    def _repo_api(self, repo: FakeRepo) -> str:
        return f"{self.url}/repos/{repo.full_name}"

    def _user(self, login: str, kind: str = "User") -> dict[str, Any]:
        uid = sum(login.encode()) + 10_000
        return {"login": login, "id": uid, "node_id": f"U_{uid}", "type": kind,
                "site_admin": False, "url": f"{self.url}/users/{login}",
                "html_url": f"{self.root_url}/{login}",
                "avatar_url": f"{self.root_url}/avatars/{login}"}

    def _repo_json(self, repo: FakeRepo, who: TokenInfo | App | None = None) -> dict[str, Any]:
        push = isinstance(who, TokenInfo) and who.permission == "write"
        api = self._repo_api(repo)
        return {
            "id": repo.id, "node_id": f"R_{repo.id}", "name": repo.name,
            "full_name": repo.full_name, "owner": self._user(repo.owner, "Organization"),
            "private": repo.private, "visibility": "private" if repo.private else "public",
            "html_url": f"{self.root_url}/{repo.full_name}", "url": api,
            "description": None, "fork": False, "archived": False, "disabled": False,
            "default_branch": repo.default_branch,
            "clone_url": f"{self.root_url}/{repo.full_name}.git",
            "pulls_url": f"{api}/pulls{{/number}}",
            "permissions": {"admin": False, "maintain": False, "push": push,
                            "triage": push, "pull": True},
            "allow_auto_merge": repo.allow_auto_merge,
            "allow_merge_commit": repo.allow_merge_commit,
            "allow_squash_merge": repo.allow_squash_merge,
            "allow_rebase_merge": repo.allow_rebase_merge,
            "delete_branch_on_merge": repo.delete_branch_on_merge,
            "created_at": "2024-01-01T00:00:00Z", "updated_at": now_iso(),
            "pushed_at": now_iso(),
        }

    def _person(self, info: Mapping[str, Any], who: str) -> dict[str, str]:
        return {"name": info[f"{who}_name"], "email": info[f"{who}_email"],
                "date": _utc(info[f"{who}_date"])}

    def _git_commit_json(self, repo: FakeRepo, info: Mapping[str, Any]) -> dict[str, Any]:
        api = self._repo_api(repo)
        sha = info["sha"]
        return {
            "sha": sha, "node_id": f"C_{sha[:12]}", "url": f"{api}/git/commits/{sha}",
            "html_url": f"{self.root_url}/{repo.full_name}/commit/{sha}",
            "author": self._person(info, "author"),
            "committer": self._person(info, "committer"),
            "tree": {"sha": info["tree"], "url": f"{api}/git/trees/{info['tree']}"},
            "message": info["message"],
            "parents": [{"sha": p, "url": f"{api}/git/commits/{p}",
                         "html_url": f"{self.root_url}/{repo.full_name}/commit/{p}"}
                        for p in info["parents"]],
            "verification": {"verified": False, "reason": "unsigned", "signature": None,
                             "payload": None, "verified_at": None},
        }

    def _commit_json(self, repo: FakeRepo, info: Mapping[str, Any],
                     with_files: bool = False) -> dict[str, Any]:
        api = self._repo_api(repo)
        sha = info["sha"]
        git = self._git_commit_json(repo, info)
        data: dict[str, Any] = {
            "sha": sha, "node_id": git["node_id"], "url": f"{api}/commits/{sha}",
            "html_url": git["html_url"], "comments_url": f"{api}/commits/{sha}/comments",
            "commit": {
                "author": git["author"], "committer": git["committer"],
                "message": git["message"], "tree": git["tree"], "url": git["url"],
                "comment_count": 0, "verification": git["verification"],
            },
            "author": None, "committer": None,
            "parents": [{"sha": p, "url": f"{api}/commits/{p}",
                         "html_url": f"{self.root_url}/{repo.full_name}/commit/{p}"}
                        for p in info["parents"]],
        }
        if with_files:
            files = self._changed_files(repo, info)
            data["files"] = files
            data["stats"] = {"additions": 0, "deletions": 0, "total": 0}
        return data

    def _changed_files(self, repo: FakeRepo, info: Mapping[str, Any]) -> list[dict[str, Any]]:
        new = repo.bare.read_tree(info["sha"])
        old = repo.bare.read_tree(info["parents"][0]) if info["parents"] else {}
        files = []
        for path in sorted(set(new) | set(old)):
            if new.get(path) == old.get(path):
                continue
            status = "added" if path not in old else "removed" if path not in new else (
                "changed" if new[path][0] != old[path][0] else "modified")  # mode or type
            blob = (new.get(path) or old[path])[1]
            files.append({"sha": blob, "filename": path, "status": status, "additions": 0,
                          "deletions": 0, "changes": 0,
                          "blob_url": f"{self.root_url}/{repo.full_name}/blob/{info['sha']}/"
                                      f"{path}",
                          "raw_url": f"{self.root_url}/{repo.full_name}/raw/{info['sha']}/"
                                     f"{path}",
                          "contents_url": f"{self._repo_api(repo)}/contents/{path}"})
        return files

    def _ref_json(self, repo: FakeRepo, ref: str, sha: str) -> dict[str, Any]:
        api = self._repo_api(repo)
        kind = repo.bare.object_type(sha) or "commit"
        return {"ref": ref, "node_id": f"REF_{ref}",
                "url": f"{api}/git/{ref}",
                "object": {"type": kind, "sha": sha, "url": f"{api}/git/{kind}s/{sha}"}}

    def _label_json(self, repo: FakeRepo, name: str) -> dict[str, Any]:
        lid = repo.labels.setdefault(name, next(self._ids))
        return {"id": lid, "node_id": f"LA_{lid}",
                "url": f"{self._repo_api(repo)}/labels/{urllib.parse.quote(name)}",
                "name": name, "color": "ededed", "default": False, "description": None}

    def _tree_json(self, repo: FakeRepo, sha: str, recursive: bool = False) -> dict[str, Any]:
        args = ["ls-tree", "-z", "-l"] + (["-r", "-t"] if recursive else []) + [sha]
        out = repo.bare.git(*args).stdout.decode("utf-8")
        api = self._repo_api(repo)
        entries = []
        for record in out.split("\0"):
            if not record:
                continue
            meta, path = record.split("\t", 1)
            mode, kind, obj, size = meta.split()
            entry: dict[str, Any] = {"path": path, "mode": mode, "type": kind, "sha": obj,
                                     "url": f"{api}/git/{kind}s/{obj}"}
            if kind == "blob":
                entry["size"] = int(size)
            entries.append(entry)
        return {"sha": sha, "url": f"{api}/git/trees/{sha}", "tree": entries,
                "truncated": False}

    def _head_sha(self, repo: FakeRepo, pr: FakePull) -> str:
        if pr.state == "open":
            tip = repo.bare.resolve(f"refs/heads/{pr.head}")
            if tip is not None:
                pr.head_sha = tip
        return pr.head_sha

    def _mergeability(self, repo: FakeRepo, pr: FakePull) -> tuple[bool, str]:
        """(mergeable, mergeable_state) as GitHub would compute them."""
        head = self._head_sha(repo, pr)
        base_tip = repo.bare.resolve(f"refs/heads/{pr.base}")
        if base_tip is None:
            return False, "dirty"
        if not repo.bare.is_ancestor(base_tip, head):
            proc = repo.bare.git("merge-tree", "--write-tree", base_tip, head, check=False)
            if proc.returncode != 0:
                return False, "dirty"
        state = self._checks_state(repo, head)
        missing = any(
            checks_state([s for s in repo.statuses.get(head, []) if s["context"] == name],
                         [r for r in repo.check_runs.get(head, []) if r["name"] == name])
            == "none" for name in repo.required_checks)
        if state == "pending" or missing:  # a required check has not reported yet
            return True, "blocked"
        if state == "failure":
            return True, "blocked" if repo.required_checks else "unstable"
        return True, "clean"

    def _checks_state(self, repo: FakeRepo, sha: str) -> str:
        return checks_state(repo.statuses.get(sha, []), repo.check_runs.get(sha, []))

    def _pull_json(self, repo: FakeRepo, pr: FakePull, full: bool) -> dict[str, Any]:
        api = self._repo_api(repo)
        web = f"{self.root_url}/{repo.full_name}"
        head_sha = self._head_sha(repo, pr)
        base_sha = repo.bare.resolve(f"refs/heads/{pr.base}") or ""
        n = pr.number
        repo_json = self._repo_json(repo)
        data: dict[str, Any] = {
            "url": f"{api}/pulls/{n}", "id": repo.id * 100_000 + n,
            "node_id": f"PR_{repo.id}_{n}", "html_url": f"{web}/pull/{n}",
            "diff_url": f"{web}/pull/{n}.diff", "patch_url": f"{web}/pull/{n}.patch",
            "issue_url": f"{api}/issues/{n}", "commits_url": f"{api}/pulls/{n}/commits",
            "review_comments_url": f"{api}/pulls/{n}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{api}/issues/{n}/comments",
            "statuses_url": f"{api}/statuses/{head_sha}",
            "number": n, "state": pr.state, "locked": False, "title": pr.title,
            "user": self._user(pr.user), "body": pr.body,
            "labels": [self._label_json(repo, name) for name in pr.labels],
            "milestone": None, "active_lock_reason": None,
            "created_at": pr.created_at, "updated_at": pr.updated_at,
            "closed_at": pr.closed_at, "merged_at": pr.merged_at,
            "merge_commit_sha": pr.merge_commit_sha,
            "assignee": self._user(pr.assignees[0]) if pr.assignees else None,
            "assignees": [self._user(a) for a in pr.assignees],
            "requested_reviewers": [self._user(r) for r in pr.reviewers],
            "requested_teams": [],
            "head": {"label": f"{repo.owner}:{pr.head}", "ref": pr.head, "sha": head_sha,
                     "user": self._user(repo.owner, "Organization"), "repo": repo_json},
            "base": {"label": f"{repo.owner}:{pr.base}", "ref": pr.base, "sha": base_sha,
                     "user": self._user(repo.owner, "Organization"), "repo": repo_json},
            "_links": {"self": {"href": f"{api}/pulls/{n}"},
                       "html": {"href": f"{web}/pull/{n}"},
                       "issue": {"href": f"{api}/issues/{n}"}},
            "author_association": "MEMBER", "auto_merge": pr.auto_merge, "draft": pr.draft,
        }
        if full:
            mergeable, mstate = (self._mergeability(repo, pr) if pr.state == "open"
                                 else (False, "unknown"))
            data.update({
                "merged": pr.merged, "mergeable": mergeable if pr.state == "open" else None,
                "rebaseable": mergeable, "mergeable_state": mstate,
                "merged_by": self._user(pr.merged_by) if pr.merged_by else None,
                "comments": len(repo.comments.get(n, [])), "review_comments": 0,
                "maintainer_can_modify": False, "commits": 1, "additions": 0,
                "deletions": 0, "changed_files": 0,
            })
        return data

    def _issue_json(self, repo: FakeRepo, pr: FakePull) -> dict[str, Any]:
        api = self._repo_api(repo)
        n = pr.number
        web = f"{self.root_url}/{repo.full_name}"
        return {
            "url": f"{api}/issues/{n}", "repository_url": api,
            "labels_url": f"{api}/issues/{n}/labels{{/name}}",
            "comments_url": f"{api}/issues/{n}/comments",
            "events_url": f"{api}/issues/{n}/events", "html_url": f"{web}/pull/{n}",
            "id": repo.id * 100_000 + n + 50_000, "node_id": f"I_{repo.id}_{n}",
            "number": n, "title": pr.title, "user": self._user(pr.user),
            "labels": [self._label_json(repo, name) for name in pr.labels],
            "state": "closed" if pr.state != "open" else "open", "locked": False,
            "assignee": self._user(pr.assignees[0]) if pr.assignees else None,
            "assignees": [self._user(a) for a in pr.assignees], "milestone": None,
            "comments": len(repo.comments.get(n, [])), "created_at": pr.created_at,
            "updated_at": pr.updated_at, "closed_at": pr.closed_at,
            "author_association": "MEMBER", "body": pr.body,
            "pull_request": {"url": f"{api}/pulls/{n}", "html_url": f"{web}/pull/{n}",
                             "diff_url": f"{web}/pull/{n}.diff",
                             "patch_url": f"{web}/pull/{n}.patch",
                             "merged_at": pr.merged_at},
        }

    # -- pagination -------------------------------------------------------------------

    def _page(self, ctx: Ctx, items: Sequence[Any], total: int | None = None,
              more: bool | None = None) -> tuple[list[Any], dict[str, str]]:
        per_page = max(1, min(100, int(ctx.query.get("per_page", "30"))))
        page = max(1, int(ctx.query.get("page", "1")))
        start = (page - 1) * per_page
        chunk = list(items[start:start + per_page])
        count = len(items) if total is None else total
        has_next = (start + per_page < count) if more is None else more
        last = max(1, -(-count // per_page))
        links = []

        def link(n: int, rel: str) -> str:
            params = dict(ctx.query, page=str(n))
            query = urllib.parse.urlencode(params)
            return f'<{self.root_url}{self.prefix}{ctx.path}?{query}>; rel="{rel}"'

        if has_next:
            links.append(link(page + 1, "next"))
            if more is None:
                links.append(link(last, "last"))
        if page > 1:
            links.append(link(page - 1, "prev"))
            links.append(link(1, "first"))
        return chunk, ({"Link": ", ".join(links)} if links else {})

    # -- auto-merge -------------------------------------------------------------------

    def _auto_merge_sweep(self, repo: FakeRepo) -> None:
        for pr in list(repo.pulls.values()):
            if pr.state != "open" or pr.auto_merge is None:
                continue
            head = self._head_sha(repo, pr)
            if self._checks_state(repo, head) not in ("success", "none"):
                continue
            auto = pr.auto_merge
            self._do_merge(repo, pr, auto["merge_method"], auto.get("commit_title"),
                           auto.get("commit_message"), auto["enabled_by"]["login"])

    def _do_merge(self, repo: FakeRepo, pr: FakePull, method: str, title: str | None,
                  message: str | None, by: str) -> str | None:
        head = self._head_sha(repo, pr)
        if method == "merge":
            text = title or f"Merge pull request #{pr.number} from {repo.owner}/{pr.head}"
            text += "\n\n" + (message if message is not None else pr.title)
        elif method == "squash":
            text = title or f"{pr.title} (#{pr.number})"
            if message:
                text += "\n\n" + message
        else:
            text = ""
        new = repo.bare.merge(pr.base, head, method, text.strip() + "\n", by,
                              f"{by}@users.noreply.github.com")
        if new is None:
            return None
        stamp = now_iso()
        pr.state, pr.merged, pr.merged_at, pr.merged_by = "closed", True, stamp, by
        pr.merge_commit_sha, pr.closed_at, pr.updated_at = new, stamp, stamp
        pr.auto_merge = None
        if repo.delete_branch_on_merge:
            repo.bare.delete_ref(pr.head)
        return new

    # -- request handling -------------------------------------------------------------

    def _authenticate(self, ctx: Ctx) -> None:
        header = ctx.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if not header:
            raise ApiError(401, "Requires authentication")
        if scheme.lower() == "bearer" and credential.count(".") == 2:
            ctx.who = self._verify_jwt(credential)
            return
        if scheme.lower() not in ("token", "bearer"):
            raise ApiError(401, "Bad credentials")
        info = self.tokens.get(credential)
        if info is None:
            raise ApiError(401, "Bad credentials")
        ctx.who = info

    def _verify_jwt(self, token: str) -> App:
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            app = self.apps.get(int(claims["iss"]))
            if app is None:
                raise ApiError(401, "Integration not found")
            jwt.decode(token, app.public_key, algorithms=["RS256"],
                       options={"require": ["exp", "iat", "iss"]})
        except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
            raise ApiError(401, "A JSON web token could not be decoded") from exc
        return app

    def respond(self, request: Request) -> Reply:
        return self.handle(request.method, request.target, request.body,
                           {k.title(): v for k, v in request.headers.items()})

    def label(self, request: Request) -> str:
        path = urllib.parse.unquote(urllib.parse.urlsplit(request.target).path)
        if path.endswith("/graphql"):
            # one endpoint, many operations: recorded and faulted as /graphql#Operation
            path += _operation(request.body)
        return path

    def extra_headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4999",
                "X-RateLimit-Reset": str(int(time.time()) + 3600),
                "X-GitHub-Media-Type": "github.v3; format=json"}

    def fault_body(self, status: int) -> Any:
        if status == 429:
            return {"message": "API rate limit exceeded", "documentation_url": DOCS}
        if status == 403:
            return {"message": "You have exceeded a secondary rate limit. Please wait a few "
                               "minutes before you try again.", "documentation_url": DOCS}
        if status >= 500:
            return {"message": "Server Error"}
        return {"message": "Injected failure"}

    def handle(self, method: str, target: str, body: bytes,
               headers: Mapping[str, str]) -> Response:
        split = urllib.parse.urlsplit(target)
        path = urllib.parse.unquote(split.path)
        query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            return _error(400, "Problems parsing JSON")
        ctx = Ctx(method, path, query, payload, headers)
        try:
            with self.lock:
                return self._route(ctx)
        except ApiError as err:
            return _error(err.status, err.message, err.errors, err.headers)

    def _route(self, ctx: Ctx) -> Response:
        path = ctx.path
        if path.startswith("/_codeload/"):
            return self._codeload(ctx)
        graphql = (self.prefix.rsplit("/v3", 1)[0] if self.prefix.endswith("/v3")
                   else self.prefix) + "/graphql"
        if path == graphql and ctx.method == "POST":
            self._authenticate(ctx)
            return self._graphql(ctx)
        if not path.startswith(self.prefix + "/"):
            raise ApiError(404, "Not Found")
        ctx.path = path = path[len(self.prefix):]
        self._authenticate(ctx)
        m = re.fullmatch(r"/app/installations/(\d+)/access_tokens", path)
        if m and ctx.method == "POST":
            return self._access_token(ctx, int(m.group(1)))
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)(/.*)?", path)
        if not m:
            raise ApiError(404, "Not Found")
        full_name = f"{m.group(1)}/{m.group(2)}"
        rest = m.group(3) or ""
        repo = self.repos.get(full_name)
        if rest == "/installation" and ctx.method == "GET":
            return self._installation(ctx, full_name)
        who = ctx.who
        if isinstance(who, App):
            raise ApiError(403, "A JSON web token cannot be used to access this endpoint")
        assert who is not None
        if repo is None or (who.repos is not None and full_name not in who.repos):
            raise ApiError(404, "Not Found")
        for verb, pattern, handler in _ROUTES:
            if verb != ctx.method:
                continue
            match = re.fullmatch(pattern, rest)
            if match is None:
                continue
            if verb != "GET" and who.permission != "write":
                raise ApiError(403, "Resource not accessible by personal access token")
            return handler(self, ctx, repo, **match.groupdict())
        raise ApiError(404, "Not Found")

    # -- apps -------------------------------------------------------------------------

    def _installation(self, ctx: Ctx, full_name: str) -> Response:
        app = ctx.who
        if not isinstance(app, App):
            raise ApiError(401, "A JSON web token could not be decoded")
        if full_name not in app.repos or full_name not in self.repos:
            raise ApiError(404, "Not Found")
        owner = full_name.split("/")[0]
        iid = app.installation_id
        return Response(200, {
            "id": iid, "app_id": app.app_id, "app_slug": "promoter", "target_id": 1,
            "target_type": "Organization", "account": self._user(owner, "Organization"),
            "access_tokens_url": f"{self.url}/app/installations/{iid}/access_tokens",
            "repositories_url": f"{self.url}/installation/repositories",
            "html_url": f"{self.root_url}/organizations/{owner}/settings/installations/{iid}",
            "repository_selection": "selected",
            "permissions": {"contents": "write", "pull_requests": "write",
                            "checks": "read", "statuses": "read", "metadata": "read"},
            "events": [], "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z", "single_file_name": None,
        })

    def _access_token(self, ctx: Ctx, installation: int) -> Response:
        app = ctx.who
        if not isinstance(app, App):
            raise ApiError(401, "A JSON web token could not be decoded")
        if app.installation_id != installation:
            raise ApiError(404, "Not Found")
        wanted = (ctx.body or {}).get("permissions") or {}
        permission = "write" if not wanted or "write" in wanted.values() else "read"
        token = "ghs_" + secrets.token_hex(18)
        self.tokens[token] = TokenInfo(f"promoter[bot]-{app.app_id}", permission, app.repos,
                                       app_id=app.app_id)
        perms = wanted or {"contents": "write", "pull_requests": "write", "metadata": "read"}
        return Response(201, {"token": token, "expires_at": now_iso(3600),
                              "permissions": perms, "repository_selection": "selected"})

    # -- tarball ----------------------------------------------------------------------

    def _codeload(self, ctx: Ctx) -> Response:
        if ctx.headers.get("Authorization"):
            # Stricter than codeload: the link is pre-signed, so a client that sends its
            # API token along is leaking it to another host.
            raise ApiError(400, "codeload takes no credentials: the link is pre-signed")
        token = ctx.query.get("token", "")
        found = self._downloads.get(token)
        m = re.fullmatch(r"/_codeload/([^/]+)/([^/]+)/legacy\.tar\.gz/([0-9a-f]{40})", ctx.path)
        if found is None or m is None or found != (f"{m.group(1)}/{m.group(2)}", m.group(3)):
            raise ApiError(404, "Not Found")
        full_name, sha = found
        repo = self.repos[full_name]
        prefix = f"{repo.owner}-{repo.name}-{sha[:7]}/"
        data = repo.bare.archive_tar_gz(sha, prefix)
        return Response(200, data, {
            "Content-Type": "application/x-gzip",
            "Content-Disposition": f"attachment; filename={prefix[:-1]}.tar.gz"})

    def _tarball(self, ctx: Ctx, repo: FakeRepo, ref: str = "") -> Response:
        ref = ref or repo.default_branch
        sha = repo.bare.resolve(ref)
        if sha is None:
            raise ApiError(404, "Not Found")
        token = secrets.token_urlsafe(16)
        self._downloads[token] = (repo.full_name, sha)
        location = (f"{self.root_url}/_codeload/{repo.full_name}/legacy.tar.gz/{sha}"
                    f"?token={token}")
        return Response(302, b"", {"Location": location})

    # -- repository, branches, commits ------------------------------------------------

    def _get_repo(self, ctx: Ctx, repo: FakeRepo) -> Response:
        return Response(200, self._repo_json(repo, ctx.who))

    def _get_branch(self, ctx: Ctx, repo: FakeRepo, branch: str) -> Response:
        sha = repo.bare.resolve(f"refs/heads/{branch}")
        if sha is None:
            raise ApiError(404, "Branch not found")
        info = repo.bare.commit(sha)
        assert info is not None
        api = self._repo_api(repo)
        return Response(200, {
            "name": branch, "commit": self._commit_json(repo, info),
            "_links": {"self": f"{api}/branches/{branch}",
                       "html": f"{self.root_url}/{repo.full_name}/tree/{branch}"},
            "protected": bool(repo.required_checks),
            "protection": {"enabled": bool(repo.required_checks),
                           "required_status_checks": {
                               "enforcement_level": "non_admins" if repo.required_checks
                               else "off", "contexts": list(repo.required_checks),
                               "checks": []}},
            "protection_url": f"{api}/branches/{branch}/protection",
        })

    def _resolve_commit(self, repo: FakeRepo, ref: str) -> dict[str, Any]:
        sha = repo.bare.resolve(ref)
        info = repo.bare.commit(sha) if sha else None
        if info is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        return info

    def _list_commits(self, ctx: Ctx, repo: FakeRepo) -> Response:
        ref = ctx.query.get("sha") or repo.default_branch
        # a name resolves as git resolves it: a tag before a branch of the same name (what
        # GitHub does with an ambiguous name is not documented: the fake takes the worst)
        tagged = None if ref.startswith("refs/") else repo.bare.resolve(f"refs/tags/{ref}")
        sha = tagged or repo.bare.resolve(ref)
        if sha is None:
            raise ApiError(404, f"No commit found for SHA: {ref}")
        per_page = max(1, min(100, int(ctx.query.get("per_page", "30"))))
        page = max(1, int(ctx.query.get("page", "1")))
        entries = repo.bare.log(sha, page * per_page + 1, path=ctx.query.get("path") or None)
        more = len(entries) > page * per_page
        items = [self._commit_json(repo, e) for e in entries[:page * per_page]]
        chunk, headers = self._page(ctx, items, more=more)
        return Response(200, chunk, headers)

    def _get_commit(self, ctx: Ctx, repo: FakeRepo, ref: str) -> Response:
        info = self._resolve_commit(repo, ref)
        return Response(200, self._commit_json(repo, info, with_files=True))

    def _combined_status(self, ctx: Ctx, repo: FakeRepo, ref: str) -> Response:
        sha = self._resolve_commit(repo, ref)["sha"]
        statuses = repo.statuses.get(sha, [])
        states = [s["state"] for s in statuses]
        if any(s in ("failure", "error") for s in states):
            state = "failure"
        elif not states or "pending" in states:
            state = "pending"
        else:
            state = "success"
        api = self._repo_api(repo)
        return Response(200, {
            "state": state, "statuses": statuses, "sha": sha, "total_count": len(statuses),
            "repository": {"id": repo.id, "full_name": repo.full_name, "url": api},
            "commit_url": f"{api}/commits/{sha}", "url": f"{api}/commits/{sha}/status",
        })

    def _check_runs(self, ctx: Ctx, repo: FakeRepo, ref: str) -> Response:
        sha = self._resolve_commit(repo, ref)["sha"]
        runs = repo.check_runs.get(sha, [])
        chunk, headers = self._page(ctx, runs)
        return Response(200, {"total_count": len(runs), "check_runs": chunk}, headers)

    def _create_status(self, ctx: Ctx, repo: FakeRepo, sha: str) -> Response:
        body = ctx.body or {}
        if repo.bare.object_type(sha) != "commit":
            raise ApiError(422, f"No commit found for SHA: {sha}")
        context = body.get("context", "default")
        self.set_checks(repo.full_name, sha, body.get("state", "pending"), name=context,
                        kind="status")
        entry = next(s for s in repo.statuses[sha] if s["context"] == context)
        return Response(201, entry)

    # -- git data ---------------------------------------------------------------------

    def _get_ref(self, ctx: Ctx, repo: FakeRepo, ref: str) -> Response:
        full = f"refs/{ref}"
        sha = repo.bare.list_refs(full).get(full)
        if sha is None:
            raise ApiError(404, "Not Found")
        return Response(200, self._ref_json(repo, full, sha))

    def _list_refs(self, ctx: Ctx, repo: FakeRepo, ref: str = "") -> Response:
        prefix = f"refs/{ref}" if ref else "refs/"
        refs = repo.bare.list_refs(prefix)
        exact = refs.get(prefix)
        if exact is not None and ref:
            return Response(200, self._ref_json(repo, prefix, exact))
        if ref and not prefix.endswith("/"):
            refs = {k: v for k, v in refs.items() if k.startswith(prefix + "/")}
        if not refs:
            raise ApiError(404, "Not Found")
        items = [self._ref_json(repo, k, v) for k, v in sorted(refs.items())]
        chunk, headers = self._page(ctx, items)
        return Response(200, chunk, headers)

    def _matching_refs(self, ctx: Ctx, repo: FakeRepo, ref: str) -> Response:
        refs = repo.bare.list_refs(f"refs/{ref}")
        items = [self._ref_json(repo, k, v) for k, v in sorted(refs.items())]
        chunk, headers = self._page(ctx, items)
        return Response(200, chunk, headers)

    def _create_ref(self, ctx: Ctx, repo: FakeRepo) -> Response:
        body = ctx.body or {}
        ref, sha = body.get("ref"), body.get("sha")
        if not isinstance(ref, str) or not isinstance(sha, str):
            raise ApiError(422, "Invalid request.\n\n\"ref\" and \"sha\" are required.")
        if not ref.startswith("refs/") or ref.count("/") < 2:
            raise ApiError(422, "Reference name is invalid")
        if repo.bare.object_type(sha) is None:
            raise ApiError(422, "Object does not exist")
        if ref in repo.bare.list_refs(ref):
            raise ApiError(422, "Reference already exists")
        if not repo.bare.update_ref(ref, sha, old=ZERO):
            raise ApiError(422, "Reference name is invalid")
        self._start_ci(repo, sha)
        return Response(201, self._ref_json(repo, ref, sha))

    def _update_ref(self, ctx: Ctx, repo: FakeRepo, ref: str) -> Response:
        body = ctx.body or {}
        full = f"refs/{ref}"
        sha, force = body.get("sha"), bool(body.get("force", False))
        current = repo.bare.list_refs(full).get(full)
        if current is None:
            raise ApiError(422, "Reference does not exist")
        if not isinstance(sha, str) or repo.bare.object_type(sha) is None:
            raise ApiError(422, "Object does not exist")
        if not force and not repo.bare.is_ancestor(current, sha):
            raise ApiError(422, "Update is not a fast forward")
        if not repo.bare.update_ref(full, sha, old=current):
            raise ApiError(422, "Reference cannot be updated")
        self._start_ci(repo, sha)
        return Response(200, self._ref_json(repo, full, sha))

    def _start_ci(self, repo: FakeRepo, sha: str) -> None:
        if repo.ci_after_push is None:
            return
        register, finish, conclusion = repo.ci_after_push
        for delay, state in ((register, "pending"), (register + finish, conclusion)):
            self.later(delay, self.set_checks, repo.full_name, sha, state)

    def _delete_ref(self, ctx: Ctx, repo: FakeRepo, ref: str) -> Response:
        full = f"refs/{ref}"
        if not repo.bare.delete_ref(full):
            raise ApiError(422, "Reference does not exist")
        if full.startswith("refs/heads/"):
            branch = full[len("refs/heads/"):]
            for pr in repo.pulls.values():
                if pr.state == "open" and pr.head == branch:
                    pr.state, pr.closed_at = "closed", now_iso()
                    pr.auto_merge = None
        return Response(204, b"")

    def _create_blob(self, ctx: Ctx, repo: FakeRepo) -> Response:
        body = ctx.body or {}
        content = body.get("content")
        if not isinstance(content, str):
            raise ApiError(422, "Invalid request.\n\n\"content\" is required.")
        encoding = body.get("encoding", "utf-8")
        if encoding == "base64":
            data = base64.b64decode(content)
        elif encoding in ("utf-8", "utf8"):
            data = content.encode("utf-8")
        else:
            raise ApiError(422, f"encoding {encoding} is not supported")
        sha = repo.bare.write_blob(data)
        return Response(201, {"sha": sha, "url": f"{self._repo_api(repo)}/git/blobs/{sha}"})

    def _get_blob(self, ctx: Ctx, repo: FakeRepo, sha: str) -> Response:
        if repo.bare.object_type(sha) != "blob":
            raise ApiError(404, "Not Found")
        data = repo.bare.read_blob(sha)
        return Response(200, {"sha": sha, "node_id": f"B_{sha[:12]}", "size": len(data),
                              "url": f"{self._repo_api(repo)}/git/blobs/{sha}",
                              "content": base64.encodebytes(data).decode(),
                              "encoding": "base64"})

    def _get_tree(self, ctx: Ctx, repo: FakeRepo, sha: str) -> Response:
        kind = repo.bare.object_type(sha)
        if kind not in ("tree", "commit"):
            raise ApiError(404, "Not Found")
        tree = repo.bare.tree_of(sha) if kind == "commit" else sha
        recursive = ctx.query.get("recursive", "") not in ("", "0", "false")
        return Response(200, self._tree_json(repo, tree, recursive))

    def _create_tree(self, ctx: Ctx, repo: FakeRepo) -> Response:
        body = ctx.body or {}
        entries = body.get("tree")
        if not isinstance(entries, list):
            raise ApiError(422, "Invalid request.\n\n\"tree\" is required.")
        base = body.get("base_tree")
        if base is not None and repo.bare.object_type(base) not in ("tree", "commit"):
            raise ApiError(422, "Invalid tree info")
        changes: dict[str, tuple[str, str] | None] = {}
        for entry in entries:
            path, mode = entry.get("path"), entry.get("mode", "100644")
            kind = entry.get("type", "blob")
            if (not isinstance(path, str) or not path or path.startswith("/")
                    or mode not in ("100644", "100755", "120000", "160000")
                    or kind not in ("blob", "commit")):
                raise ApiError(422, "Invalid tree info")
            if entry.get("content") is not None:
                if "sha" in entry:
                    raise ApiError(422, "Invalid tree info")
                changes[path] = (mode, repo.bare.write_blob(entry["content"].encode("utf-8")))
            elif "sha" in entry:
                sha = entry["sha"]
                if sha is None:
                    changes[path] = None
                elif kind == "blob" and repo.bare.object_type(sha) != "blob":
                    raise ApiError(422, "Invalid tree info")
                else:
                    changes[path] = (mode, sha)
            else:
                raise ApiError(422, "Invalid tree info")
        tree = repo.bare.write_tree_entries(base, changes)
        return Response(201, self._tree_json(repo, tree))

    def _create_commit(self, ctx: Ctx, repo: FakeRepo) -> Response:
        body = ctx.body or {}
        who = ctx.who
        assert isinstance(who, TokenInfo)
        message, tree = body.get("message"), body.get("tree")
        parents = body.get("parents", [])
        if not isinstance(message, str) or not isinstance(tree, str):
            raise ApiError(422, "Invalid request.\n\n\"message\" and \"tree\" are required.")
        if repo.bare.object_type(tree) != "tree":
            raise ApiError(422, "Tree SHA does not exist")
        for parent in parents:
            if repo.bare.object_type(parent) != "commit":
                raise ApiError(422, "Parent SHA does not exist or is not a commit object")
        author = body.get("author") or {}
        committer = body.get("committer") or author
        name = author.get("name", who.login)
        email = author.get("email", f"{who.login}@users.noreply.github.com")
        sha = repo.bare.commit_tree(
            tree, parents, message, name, email, date=author.get("date"),
            committer_name=committer.get("name", name),
            committer_email=committer.get("email", email))
        info = repo.bare.commit(sha)
        assert info is not None
        return Response(201, self._git_commit_json(repo, info))

    def _get_git_commit(self, ctx: Ctx, repo: FakeRepo, sha: str) -> Response:
        info = repo.bare.commit(sha) if re.fullmatch(r"[0-9a-f]{40}", sha) else None
        if info is None:
            raise ApiError(404, "Not Found")
        return Response(200, self._git_commit_json(repo, info))

    # -- pull requests ----------------------------------------------------------------

    def _pull(self, repo: FakeRepo, number: str) -> FakePull:
        pr = repo.pulls.get(int(number))
        if pr is None:
            raise ApiError(404, "Not Found")
        return pr

    def _check_body(self, body: Any) -> None:
        if isinstance(body, str) and len(body) > MAX_BODY:
            raise _validation(f"body is too long (maximum is {MAX_BODY} characters)",
                              resource="Issue", code="custom", field="body")

    def _list_pulls(self, ctx: Ctx, repo: FakeRepo) -> Response:
        state = ctx.query.get("state", "open")
        head = ctx.query.get("head")
        base = ctx.query.get("base")
        chosen = []
        for pr in sorted(repo.pulls.values(), key=lambda p: -p.number):
            if state != "all" and pr.state != state:
                continue
            if head and ":" in head:
                owner, branch = head.split(":", 1)
                if owner != repo.owner or pr.head != branch:
                    continue
            if base and pr.base != base:
                continue
            chosen.append(pr)
        items = [self._pull_json(repo, pr, full=False) for pr in chosen]
        chunk, headers = self._page(ctx, items)
        return Response(200, chunk, headers)

    def _create_pull(self, ctx: Ctx, repo: FakeRepo) -> Response:
        body = ctx.body or {}
        who = ctx.who
        assert isinstance(who, TokenInfo)
        title, head, base = body.get("title"), body.get("head"), body.get("base")
        if not title:
            raise _validation(resource="PullRequest", field="title", code="missing_field")
        if not isinstance(base, str) or repo.bare.resolve(f"refs/heads/{base}") is None:
            raise _validation(resource="PullRequest", field="base", code="invalid")
        if not isinstance(head, str):
            raise _validation(resource="PullRequest", field="head", code="missing_field")
        branch = head
        if ":" in head:
            owner, branch = head.split(":", 1)
            if owner != repo.owner:
                raise _validation(resource="PullRequest", field="head", code="invalid")
        head_sha = repo.bare.resolve(f"refs/heads/{branch}")
        if head_sha is None:
            raise _validation(resource="PullRequest", field="head", code="invalid")
        self._check_body(body.get("body"))
        for pr in repo.pulls.values():
            if pr.state == "open" and pr.head == branch and pr.base == base:
                raise _validation(f"A pull request already exists for {repo.owner}:{branch}.",
                                  resource="PullRequest", code="custom")
        base_sha = repo.bare.resolve(f"refs/heads/{base}")
        assert base_sha is not None
        if repo.bare.is_ancestor(head_sha, base_sha):
            raise _validation(f"No commits between {base} and {branch}",
                              resource="PullRequest", code="custom")
        number = max([0, *repo.pulls]) + 1
        stamp = now_iso()
        pr = FakePull(number, title, body.get("body"), branch, base, who.login, head_sha,
                      draft=bool(body.get("draft", False)), created_at=stamp, updated_at=stamp)
        repo.pulls[number] = pr
        return Response(201, self._pull_json(repo, pr, full=True))

    def _get_pull(self, ctx: Ctx, repo: FakeRepo, number: str) -> Response:
        return Response(200, self._pull_json(repo, self._pull(repo, number), full=True))

    def _update_pull(self, ctx: Ctx, repo: FakeRepo, number: str) -> Response:
        pr = self._pull(repo, number)
        body = ctx.body or {}
        self._check_body(body.get("body"))
        if "title" in body:
            if not body["title"]:
                raise _validation(resource="PullRequest", field="title", code="missing_field")
            pr.title = body["title"]
        if "body" in body:
            pr.body = body["body"]
        if "base" in body:
            if repo.bare.resolve(f"refs/heads/{body['base']}") is None:
                raise _validation(resource="PullRequest", field="base", code="invalid")
            pr.base = body["base"]
        state = body.get("state")
        if state == "closed" and pr.state == "open":
            pr.state, pr.closed_at, pr.auto_merge = "closed", now_iso(), None
        elif state == "open" and pr.state == "closed" and not pr.merged:
            if repo.bare.resolve(f"refs/heads/{pr.head}") is None:
                raise ApiError(422, "state cannot be changed. The head branch was deleted.")
            pr.state, pr.closed_at = "open", None
        pr.updated_at = now_iso()
        return Response(200, self._pull_json(repo, pr, full=True))

    def _merge_pull(self, ctx: Ctx, repo: FakeRepo, number: str) -> Response:
        pr = self._pull(repo, number)
        body = ctx.body or {}
        who = ctx.who
        assert isinstance(who, TokenInfo)
        method = body.get("merge_method", "merge")
        if method not in ("merge", "squash", "rebase"):
            raise _validation(resource="PullRequest", field="merge_method", code="invalid")
        if pr.state != "open":
            raise ApiError(405, "Pull Request is not mergeable")
        allowed = {"merge": (repo.allow_merge_commit, "Merge commits"),
                   "squash": (repo.allow_squash_merge, "Squash merges"),
                   "rebase": (repo.allow_rebase_merge, "Rebase merges")}[method]
        if not allowed[0]:
            raise ApiError(405, f"{allowed[1]} are not allowed on this repository.")
        head = self._head_sha(repo, pr)
        if body.get("sha") and body["sha"] != head:
            raise ApiError(409, "Head branch was modified. Review and try the merge again.")
        for name in repo.required_checks:
            state = checks_state(
                [s for s in repo.statuses.get(head, []) if s["context"] == name],
                [r for r in repo.check_runs.get(head, []) if r["name"] == name])
            if state in ("none", "pending"):
                raise ApiError(405, f'Required status check "{name}" is expected.')
            if state == "failure":
                raise ApiError(405, f'Required status check "{name}" is failing.')
        new = self._do_merge(repo, pr, method, body.get("commit_title"),
                             body.get("commit_message"), who.login)
        if new is None:
            raise ApiError(405, "Pull Request is not mergeable")
        return Response(200, {"sha": new, "merged": True,
                              "message": "Pull Request successfully merged"})

    def _request_reviewers(self, ctx: Ctx, repo: FakeRepo, number: str) -> Response:
        pr = self._pull(repo, number)
        body = ctx.body or {}
        reviewers = list(body.get("reviewers") or [])
        if pr.user in reviewers:
            raise _validation("Review cannot be requested from pull request author.",
                              resource="PullRequest", code="custom")
        if repo.collaborators is not None and not set(reviewers) <= repo.collaborators:
            raise _validation(
                "Reviews may only be requested from collaborators. One or more of the users "
                f"or teams you specified is not a collaborator of the {repo.full_name} "
                "repository.", resource="PullRequest", code="custom")
        for reviewer in reviewers:
            if reviewer not in pr.reviewers:
                pr.reviewers.append(reviewer)
        return Response(201, self._pull_json(repo, pr, full=False))

    # -- issues -----------------------------------------------------------------------

    def _get_issue(self, ctx: Ctx, repo: FakeRepo, number: str) -> Response:
        return Response(200, self._issue_json(repo, self._pull(repo, number)))

    def _label_names(self, body: Any) -> list[str]:
        names = body.get("labels") if isinstance(body, dict) else body
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _validation(resource="Label", field="name", code="invalid")
        return names

    def _add_labels(self, ctx: Ctx, repo: FakeRepo, number: str) -> Response:
        pr = self._pull(repo, number)
        for name in self._label_names(ctx.body):
            if name not in pr.labels:
                pr.labels.append(name)
        return Response(200, [self._label_json(repo, n) for n in pr.labels])

    def _set_labels(self, ctx: Ctx, repo: FakeRepo, number: str) -> Response:
        pr = self._pull(repo, number)
        pr.labels = list(dict.fromkeys(self._label_names(ctx.body)))
        return Response(200, [self._label_json(repo, n) for n in pr.labels])

    def _get_labels(self, ctx: Ctx, repo: FakeRepo, number: str) -> Response:
        pr = self._pull(repo, number)
        chunk, headers = self._page(ctx, [self._label_json(repo, n) for n in pr.labels])
        return Response(200, chunk, headers)

    def _remove_label(self, ctx: Ctx, repo: FakeRepo, number: str, name: str) -> Response:
        pr = self._pull(repo, number)
        if name not in pr.labels:
            raise ApiError(404, "Label does not exist")
        pr.labels.remove(name)
        return Response(200, [self._label_json(repo, n) for n in pr.labels])

    def _add_assignees(self, ctx: Ctx, repo: FakeRepo, number: str) -> Response:
        pr = self._pull(repo, number)
        for login in (ctx.body or {}).get("assignees") or []:
            if login not in pr.assignees and (repo.collaborators is None
                                              or login in repo.collaborators):
                pr.assignees.append(login)
        return Response(201, self._issue_json(repo, pr))

    def _add_comment(self, ctx: Ctx, repo: FakeRepo, number: str) -> Response:
        pr = self._pull(repo, number)
        who = ctx.who
        assert isinstance(who, TokenInfo)
        text = (ctx.body or {}).get("body")
        if not isinstance(text, str) or not text:
            raise _validation(resource="IssueComment", field="body", code="missing_field")
        self._check_body(text)
        cid = next(self._ids)
        api = self._repo_api(repo)
        stamp = now_iso()
        comment = {
            "id": cid, "node_id": f"IC_{cid}", "url": f"{api}/issues/comments/{cid}",
            "html_url": f"{self.root_url}/{repo.full_name}/pull/{pr.number}#issuecomment-{cid}",
            "body": text, "user": self._user(who.login), "created_at": stamp,
            "updated_at": stamp, "issue_url": f"{api}/issues/{pr.number}",
            "author_association": "MEMBER",
        }
        repo.comments.setdefault(pr.number, []).append(comment)
        return Response(201, comment)

    def _list_comments(self, ctx: Ctx, repo: FakeRepo, number: str) -> Response:
        pr = self._pull(repo, number)
        chunk, headers = self._page(ctx, repo.comments.get(pr.number, []))
        return Response(200, chunk, headers)

    # -- graphql ----------------------------------------------------------------------
    # The operations promoter sends, answered field by field the way GitHub's schema
    # does: the run query (repository id, default branch or a named base with its tip
    # and tree, the promotion branch's tip with its parents and signature, its open pull
    # requests, the repository's labels), createRef, createCommitOnBranch (a commit on
    # the branch's head, checked against expectedHeadOid, signed by "GitHub": recorded in
    # ``signed``), addLabelsToLabelable, enablePullRequestAutoMerge and
    # disablePullRequestAutoMerge. Mutations in one
    # document run in order; a failed one answers null with an error and the rest still
    # run, as on GitHub.

    def _graphql(self, ctx: Ctx) -> Response:
        who = ctx.who
        body = ctx.body or {}
        document = str(body.get("query", ""))
        variables = body.get("variables") or {}
        if not isinstance(who, TokenInfo):
            raise ApiError(401, "Bad credentials")
        if re.match(r"\s*query\b", document) or not re.match(r"\s*mutation\b", document):
            return self._graphql_query(who, document, variables)
        data: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for field_name, var in re.findall(r"(\w+)\(input:\s*\$(\w+)\)", document):
            handler = _MUTATIONS.get(field_name)
            arguments = variables.get(var) or {}
            if handler is None:
                errors.append({"message": f"Field '{field_name}' doesn't exist on type "
                                          "'Mutation'", "path": [field_name]})
                continue
            try:
                data[field_name] = handler(self, who, arguments)
            except _GraphQLError as err:
                data[field_name] = None
                errors.append({"type": err.kind, "path": [field_name],
                               "locations": [{"line": 1, "column": 58}],
                               "message": err.message})
        answer: dict[str, Any] = {"data": data}
        if errors:
            answer["errors"] = errors
        return Response(200, answer)

    def _visible(self, who: TokenInfo, repo: FakeRepo | None) -> bool:
        return repo is not None and (who.repos is None or repo.full_name in who.repos)

    def _graphql_query(self, who: TokenInfo, document: str,
                       variables: Mapping[str, Any]) -> Response:
        if "repository(" not in document:
            return Response(200, {"errors": [{"message": "this fake answers only "
                                              "promoter's repository query"}]})
        owner, name = str(variables.get("owner", "")), str(variables.get("name", ""))
        repo = self.repos.get(f"{owner}/{name}")
        if repo is None or not self._visible(who, repo):
            return Response(200, {"data": {"repository": None}, "errors": [
                {"type": "NOT_FOUND", "path": ["repository"],
                 "locations": [{"line": 2, "column": 3}],
                 "message": f"Could not resolve to a Repository with the name "
                            f"'{owner}/{name}'."}]})
        out: dict[str, Any] = {"id": f"R_{repo.id}"}
        if "defaultBranchRef" in document:
            out["defaultBranchRef"] = self._gql_tip(repo, repo.default_branch)
        if re.search(r"\bbase:\s*ref\(", document):
            out["base"] = self._gql_tip(repo, _short(str(variables.get("base", ""))))
        if re.search(r"\bpromotion:\s*ref\(", document):
            branch = _short(str(variables.get("branch", "")))
            sha = repo.bare.resolve(f"refs/heads/{branch}") if branch else None
            info = repo.bare.commit(sha) if sha else None
            out["promotion"] = None if info is None else {"target": {
                "oid": info["sha"], "message": info["message"],
                "parents": {"nodes": [{"oid": p} for p in info["parents"][:2]]},
                "signature": {"isValid": True} if info["sha"] in self.signed else None}}
        if "pullRequests(" in document:
            head = str(variables.get("branchName", ""))
            nodes = [self._gql_pull(repo, pr) for pr in sorted(repo.pulls.values(),
                                                                  key=lambda p: p.number)
                     if pr.state == "open" and pr.head == head][:10]
            out["pullRequests"] = {"nodes": nodes}
        if re.search(r"\blabels\(first:\s*100\)\s*\{\s*nodes\s*\{\s*id", document):
            out["labels"] = {"nodes": [{"id": f"LA_{lid}", "name": label}
                                       for label, lid in sorted(repo.labels.items())][:100]}
        return Response(200, {"data": {"repository": out}})

    def _gql_tip(self, repo: FakeRepo, branch: str) -> dict[str, Any] | None:
        sha = repo.bare.resolve(f"refs/heads/{branch}") if branch else None
        if sha is None:
            return None
        out = repo.bare.git("ls-tree", "-z", sha).stdout.decode("utf-8")
        entries = []
        for record in out.split("\0"):
            if record:
                meta, name = record.split("\t", 1)
                mode, _kind, oid = meta.split()
                entries.append({"name": name, "mode": int(mode, 8), "oid": oid})
        return {"name": branch, "target": {"oid": sha, "tree": {
            "oid": repo.bare.tree_of(sha), "entries": entries}}}

    def _gql_pull(self, repo: FakeRepo, pr: FakePull) -> dict[str, Any]:
        return {"id": f"PR_{repo.id}_{pr.number}", "number": pr.number,
                "url": f"{self.root_url}/{repo.full_name}/pull/{pr.number}",
                "title": pr.title, "body": pr.body or "", "headRefName": pr.head,
                "baseRefName": pr.base, "headRefOid": self._head_sha(repo, pr),
                "state": "MERGED" if pr.merged else pr.state.upper(),
                "headRepository": {"nameWithOwner": repo.full_name},
                "autoMergeRequest": None if pr.auto_merge is None else {
                    "mergeMethod": str(pr.auto_merge["merge_method"]).upper()},
                "labels": {"nodes": [{"name": label} for label in pr.labels]}}

    def _node_repo(self, who: TokenInfo, node: str, prefix: str) -> tuple[FakeRepo, int]:
        m = re.fullmatch(rf"{prefix}_(\d+)(?:_(\d+))?", node)
        repo = next((r for r in self.repos.values() if m and r.id == int(m.group(1))), None)
        if m is None or repo is None or not self._visible(who, repo):
            raise _GraphQLError(f"Could not resolve to a node with the global id of '{node}'",
                                "NOT_FOUND")
        if who.permission != "write":
            raise _GraphQLError("Resource not accessible by personal access token",
                                "FORBIDDEN")
        return repo, int(m.group(2) or 0)

    def _gql_create_ref(self, who: TokenInfo, arguments: Mapping[str, Any]) -> dict[str, Any]:
        repo, _ = self._node_repo(who, str(arguments.get("repositoryId", "")), "R")
        name, oid = str(arguments.get("name", "")), str(arguments.get("oid", ""))
        if not name.startswith("refs/") or name.count("/") < 2:
            raise _GraphQLError(f"Reference name \"{name}\" is invalid")
        if repo.bare.object_type(oid) != "commit":
            raise _GraphQLError(f"Could not resolve to a Commit with the oid '{oid}'",
                                "NOT_FOUND")
        if not repo.bare.update_ref(name, oid, old=ZERO):
            raise _GraphQLError(f"A ref named \"{name}\" already exists in the repository.")
        return {"ref": {"name": _short(name)}}

    def _gql_commit_on_branch(self, who: TokenInfo,
                              arguments: Mapping[str, Any]) -> dict[str, Any]:
        target = arguments.get("branch") or {}
        full_name = str(target.get("repositoryNameWithOwner", ""))
        repo = self.repos.get(full_name)
        if repo is None or not self._visible(who, repo):
            raise _GraphQLError(f"Could not resolve to a Repository with the name "
                                f"'{full_name}'.", "NOT_FOUND")
        if who.permission != "write":
            raise _GraphQLError("Resource not accessible by personal access token",
                                "FORBIDDEN")
        branch = _short(str(target.get("branchName", "")))
        ref = f"refs/heads/{branch}"
        head = repo.bare.resolve(ref)
        if head is None:
            raise _GraphQLError(f"A ref named \"{ref}\" does not exist in the repository.",
                                "NOT_FOUND")
        expected = str(arguments.get("expectedHeadOid", ""))
        if head != expected:
            raise _GraphQLError(f"Expected branch to point to \"{expected}\" but it did "
                                "not. Pull and try again.", "STALE_DATA")
        message = arguments.get("message") or {}
        headline, text = str(message.get("headline", "")), str(message.get("body") or "")
        if not headline or "\n" in headline:
            raise _GraphQLError("A commit message headline is required and must be one line")
        changes = arguments.get("fileChanges") or {}
        existing = repo.bare.read_tree(head)
        entries: dict[str, tuple[str, str] | None] = {}
        for addition in changes.get("additions") or []:
            path = str(addition.get("path", ""))
            try:
                data = base64.b64decode(str(addition.get("contents", "")), validate=True)
            except ValueError:
                raise _GraphQLError("Invalid base64 encoding for file contents") from None
            mode = existing.get(path, ("100644", ""))[0]
            entries[path] = (mode, repo.bare.write_blob(data))
        for deletion in changes.get("deletions") or []:
            entries[str(deletion.get("path", ""))] = None
        tree = repo.bare.write_tree_entries(head, entries)
        full = headline + ("\n\n" + text if text else "")
        sha = repo.bare.commit_tree(
            tree, [head], full, who.login, f"{who.login}@users.noreply.github.com",
            committer_name="GitHub", committer_email="noreply@github.com")
        if not repo.bare.update_ref(ref, sha, old=head):
            raise _GraphQLError(f"Expected branch to point to \"{expected}\" but it did "
                                "not. Pull and try again.", "STALE_DATA")
        self.signed.add(sha)
        self._start_ci(repo, sha)
        return {"commit": {"oid": sha, "url": f"{self.root_url}/{full_name}/commit/{sha}"}}

    def _gql_add_labels(self, who: TokenInfo, arguments: Mapping[str, Any]) -> dict[str, Any]:
        repo, number = self._node_repo(who, str(arguments.get("labelableId", "")), "PR")
        pr = repo.pulls.get(number)
        if pr is None:
            raise _GraphQLError("Could not resolve to a node with the global id of "
                                f"'{arguments.get('labelableId')}'", "NOT_FOUND")
        by_id = {f"LA_{lid}": label for label, lid in repo.labels.items()}
        for node in arguments.get("labelIds") or []:
            if node not in by_id:
                raise _GraphQLError(f"Could not resolve to a node with the global id of "
                                    f"'{node}'", "NOT_FOUND")
        for node in arguments.get("labelIds") or []:
            if by_id[node] not in pr.labels:
                pr.labels.append(by_id[node])
        return {"clientMutationId": arguments.get("clientMutationId")}

    def _gql_auto_merge(self, who: TokenInfo, arguments: Mapping[str, Any]) -> dict[str, Any]:
        node = str(arguments.get("pullRequestId", ""))
        repo, number = self._node_repo(who, node, "PR")
        pr = repo.pulls.get(number)
        if pr is None:
            raise _GraphQLError(f"Could not resolve to a node with the global id of '{node}'",
                                "NOT_FOUND")
        if not repo.allow_auto_merge:
            raise _GraphQLError("Pull request Auto merge is not allowed for this repository")
        if pr.state != "open":
            raise _GraphQLError("Pull request Pull request is closed")
        expected = arguments.get("expectedHeadOid")
        if expected and expected != self._head_sha(repo, pr):
            raise _GraphQLError("Pull request Head sha didn't match expected head sha")
        mergeable, state = self._mergeability(repo, pr)
        if not mergeable:
            raise _GraphQLError("Pull request Pull request is in dirty status")
        if state in ("clean", "unstable"):
            raise _GraphQLError(f"Pull request Pull request is in {state} status")
        method = str(arguments.get("mergeMethod", "MERGE")).lower()
        if method not in ("merge", "squash", "rebase"):
            raise _GraphQLError(f"Argument 'mergeMethod' has an invalid value "
                                f"({method.upper()})")
        pr.auto_merge = {"enabled_by": self._user(who.login), "merge_method": method,
                         "commit_title": arguments.get("commitHeadline"),
                         "commit_message": arguments.get("commitBody")}
        return {"actor": {"avatarUrl": None, "login": who.login,
                          "resourcePath": f"/{who.login}",
                          "url": f"{self.root_url}/{who.login}"},
                "clientMutationId": arguments.get("clientMutationId")}

    def _gql_disable_auto_merge(self, who: TokenInfo,
                                arguments: Mapping[str, Any]) -> dict[str, Any]:
        node = str(arguments.get("pullRequestId", ""))
        repo, number = self._node_repo(who, node, "PR")
        pr = repo.pulls.get(number)
        if pr is None:
            raise _GraphQLError(f"Could not resolve to a node with the global id of '{node}'",
                                "NOT_FOUND")
        if pr.state != "open":
            raise _GraphQLError("Pull request Pull request is closed")
        pr.auto_merge = None
        return {"actor": {"login": who.login},
                "clientMutationId": arguments.get("clientMutationId")}


class _GraphQLError(Exception):
    def __init__(self, message: str, kind: str = "UNPROCESSABLE") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


def _operation(body: bytes) -> str:
    """``#Name`` of a GraphQL document's named operation, or ""."""
    try:
        document = json.loads(body).get("query", "")
    except (ValueError, AttributeError):
        return ""
    named = re.match(r"\s*(?:query|mutation)\s+(\w+)", str(document))
    return f"#{named.group(1)}" if named else ""


def _short(ref: str) -> str:
    return ref.removeprefix("refs/heads/")


_MUTATIONS: dict[str, Callable[[FakeGitHub, TokenInfo, Mapping[str, Any]], dict[str, Any]]] = {
    "createRef": FakeGitHub._gql_create_ref,
    "createCommitOnBranch": FakeGitHub._gql_commit_on_branch,
    "addLabelsToLabelable": FakeGitHub._gql_add_labels,
    "enablePullRequestAutoMerge": FakeGitHub._gql_auto_merge,
    "disablePullRequestAutoMerge": FakeGitHub._gql_disable_auto_merge,
}


def _error(status: int, message: str, errors: list[dict[str, Any]] | None = None,
           headers: Mapping[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"message": message, "documentation_url": DOCS,
                            "status": str(status)}
    if errors:
        body["errors"] = errors
    return Response(status, body, dict(headers or {}))


Handler = Callable[..., Response]
_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", r"", FakeGitHub._get_repo),
    ("GET", r"/branches/(?P<branch>.+)", FakeGitHub._get_branch),
    ("GET", r"/tarball(?:/(?P<ref>.+))?", FakeGitHub._tarball),
    ("GET", r"/commits", FakeGitHub._list_commits),
    ("GET", r"/commits/(?P<ref>.+)/status", FakeGitHub._combined_status),
    ("GET", r"/commits/(?P<ref>.+)/check-runs", FakeGitHub._check_runs),
    ("GET", r"/commits/(?P<ref>.+)", FakeGitHub._get_commit),
    ("POST", r"/statuses/(?P<sha>[0-9a-f]{40})", FakeGitHub._create_status),
    ("GET", r"/git/ref/(?P<ref>.+)", FakeGitHub._get_ref),
    ("GET", r"/git/refs(?:/(?P<ref>.+))?", FakeGitHub._list_refs),
    ("GET", r"/git/matching-refs/(?P<ref>.*)", FakeGitHub._matching_refs),
    ("POST", r"/git/refs", FakeGitHub._create_ref),
    ("PATCH", r"/git/refs/(?P<ref>.+)", FakeGitHub._update_ref),
    ("DELETE", r"/git/refs/(?P<ref>.+)", FakeGitHub._delete_ref),
    ("POST", r"/git/blobs", FakeGitHub._create_blob),
    ("GET", r"/git/blobs/(?P<sha>[0-9a-f]{40})", FakeGitHub._get_blob),
    ("GET", r"/git/trees/(?P<sha>[0-9a-f]{40})", FakeGitHub._get_tree),
    ("POST", r"/git/trees", FakeGitHub._create_tree),
    ("POST", r"/git/commits", FakeGitHub._create_commit),
    ("GET", r"/git/commits/(?P<sha>[^/]+)", FakeGitHub._get_git_commit),
    ("GET", r"/pulls", FakeGitHub._list_pulls),
    ("POST", r"/pulls", FakeGitHub._create_pull),
    ("GET", r"/pulls/(?P<number>\d+)", FakeGitHub._get_pull),
    ("PATCH", r"/pulls/(?P<number>\d+)", FakeGitHub._update_pull),
    ("PUT", r"/pulls/(?P<number>\d+)/merge", FakeGitHub._merge_pull),
    ("POST", r"/pulls/(?P<number>\d+)/requested_reviewers", FakeGitHub._request_reviewers),
    ("GET", r"/issues/(?P<number>\d+)", FakeGitHub._get_issue),
    ("POST", r"/issues/(?P<number>\d+)/labels", FakeGitHub._add_labels),
    ("PUT", r"/issues/(?P<number>\d+)/labels", FakeGitHub._set_labels),
    ("GET", r"/issues/(?P<number>\d+)/labels", FakeGitHub._get_labels),
    ("DELETE", r"/issues/(?P<number>\d+)/labels/(?P<name>.+)", FakeGitHub._remove_label),
    ("POST", r"/issues/(?P<number>\d+)/assignees", FakeGitHub._add_assignees),
    ("POST", r"/issues/(?P<number>\d+)/comments", FakeGitHub._add_comment),
    ("GET", r"/issues/(?P<number>\d+)/comments", FakeGitHub._list_comments),
]
