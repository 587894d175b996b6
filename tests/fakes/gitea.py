"""A fake Gitea / Forgejo REST API (v1) over real HTTP, backed by real bare git repositories.

It answers the endpoints promoter's Gitea forge uses, with Gitea's status codes and error
bodies (``{"message": ..., "url": ...}``; shapes taken from Gitea's routers/api/v1)::

    with FakeGitea(tmp_path) as gt:
        repo = gt.add_repo("acme/config", {"envs/dev/app.yaml": b"image: a:1\\n"})
        gt.add_token("gitea-secret")                 # Authorization: token ...
        gt.add_label("acme/config", "prod"); gt.add_user("sre-lead")
        forge = GiteaForge("acme/config", api_url=gt.url, token="gitea-secret")
        repo.bare.log("main")                         # real commits
        gt.count("POST", r"/contents$")               # requests since reset_counts()

Commits, trees and refs live in a ``BareRepo``; pull requests, comments, labels,
statuses and scheduled merges in memory. ``set_status(sha, state)`` is a commit status
(as Gitea Actions or another CI posts); a pull request scheduled to merge when checks
succeed merges (whatever its head then is: Gitea's scheduled merge takes no head commit)
when its head's combined status turns ``success``. ``branch_update=False`` answers
``PUT /branches/{name}`` with 404, as servers without it do.

Faults (``fail``), hooks (``before``), recording (``count``, ``requests``) and the
server's lifecycle come from ``tests/fakes/server.py``, as for every fake.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import server
from .gitrepo import ZERO, BareRepo, full_ref
from .server import REASONS, Fault, Reply, Request, Seen

__all__ = ["REASONS", "FakeGitea", "Fault", "HTTPError", "Pull", "Repo", "Seen"]

API = "/api/v1"
ORDER = {"error": 0, "failure": 1, "warning": 2, "pending": 3, "success": 4}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class HTTPError(server.HTTPError):
    def __init__(self, status: int, message: str = "", headers: Mapping[str, str] | None = None,
                 body: Any = None) -> None:
        super().__init__(status, body if body is not None else {
            "message": message or REASONS.get(status, ""),
            "url": "https://gitea.example/api/swagger"}, headers)


@dataclass
class Pull:
    number: int
    title: str
    body: str
    head: str
    base: str
    author: str
    labels: list[int] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    state: str = "open"
    merged: bool = False
    merge_commit_sha: str | None = None
    merged_head: str | None = None
    merge_message: str | None = None
    scheduled: dict[str, Any] | None = None  # Do, message, delete_branch
    comments: list[str] = field(default_factory=list)
    created_at: str = field(default_factory=_now)


@dataclass
class Repo:
    id: int
    full_name: str
    bare: BareRepo
    base_url: str
    default_branch: str = "main"
    branch_update: bool = True  # PUT /branches/{name} (newer Gitea; older servers: 404)
    required_checks: tuple[str, ...] = ()  # branch protection: status contexts to pass
    # CI on every commit made through the API: (seconds until its status registers as
    # pending, seconds more until it ends, the end state), under the context "ci"
    ci_after_push: tuple[float, float, str] | None = None
    pulls: dict[int, Pull] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)
    statuses: dict[str, dict[str, str]] = field(default_factory=dict)  # sha -> context -> state
    next_index: int = 1


class FakeGitea(server.FakeServer):
    server_version = "FakeGitea/1.0"
    json_type = "application/json;charset=utf-8"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.repos: dict[str, Repo] = {}
        self.users: set[str] = {"promoter-bot"}
        self.tokens: dict[str, str] = {}  # value -> user
        self.read_only: set[str] = set()  # tokens without write:repository
        self.auth_seen: list[str] = []  # every Authorization header received
        self._ids = 0
    # set-up and controls

    def next_id(self) -> int:
        with self.lock:
            self._ids += 1
            return self._ids

    def add_token(self, value: str, user: str = "promoter-bot", write: bool = True) -> None:
        self.users.add(user)
        self.tokens[value] = user
        if not write:
            self.read_only.add(value)

    def add_user(self, name: str) -> None:
        self.users.add(name)

    def add_repo(self, full_name: str, files: Mapping[str, bytes], default_branch: str = "main",
                 **options: Any) -> Repo:
        bare = self.bare_repo(full_name, files, default_branch)
        repo = Repo(self.next_id(), full_name, bare, self.url, default_branch, **options)
        self.repos[full_name.lower()] = repo
        return repo

    def repo(self, full_name: str) -> Repo:
        return self.repos[full_name.lower()]

    def add_label(self, full_name: str, name: str) -> int:
        repo = self.repo(full_name)
        label = self.next_id()
        repo.labels[label] = name
        return label

    def set_status(self, full_name: str, sha: str, state: str, context: str = "ci") -> None:
        """A commit status (pending | success | failure | error | warning); a pull request
        scheduled to merge whose head is ``sha`` merges on an all-green combined status."""
        with self.lock:
            repo = self.repo(full_name)
            repo.statuses.setdefault(sha, {})[context] = state
            for pull in repo.pulls.values():
                head = repo.bare.resolve(full_ref(pull.head))
                if pull.scheduled is None or pull.state != "open" or head != sha:
                    continue
                if self._combined(repo, sha)[0] == "success":
                    plan = pull.scheduled
                    pull.scheduled = None
                    with contextlib.suppress(HTTPError):
                        self._merge(repo, pull, plan["Do"], plan["message"],
                                    plan["delete"], None)
                elif state in ("failure", "error"):
                    pull.scheduled = None

    def pulls(self, full_name: str) -> list[Pull]:
        return sorted(self.repo(full_name).pulls.values(), key=lambda p: p.number)

    def label_names(self, full_name: str, pull: Pull) -> list[str]:
        repo = self.repo(full_name)
        return [repo.labels[i] for i in pull.labels if i in repo.labels]

    # JSON shapes

    def _user(self, name: str) -> dict[str, Any]:
        return {"id": abs(hash(name)) % 100000, "login": name, "username": name,
                "full_name": name, "email": f"{name}@noreply.gitea.example"}

    def _combined(self, repo: Repo, sha: str) -> tuple[str, list[dict[str, Any]]]:
        found = repo.statuses.get(sha, {})
        statuses = [{"id": i + 1, "context": c, "status": s, "state": s}
                    for i, (c, s) in enumerate(sorted(found.items()))]
        if not found:
            return "", statuses
        return min(found.values(), key=lambda s: ORDER.get(s, 0)), statuses

    def _pull_json(self, repo: Repo, pull: Pull) -> dict[str, Any]:
        head_sha = pull.merged_head or repo.bare.resolve(full_ref(pull.head)) or ""
        base_sha = repo.bare.resolve(full_ref(pull.base)) or ""
        owner = {"id": repo.id, "full_name": repo.full_name, "name": repo.full_name.split("/")[1]}
        return {
            "id": pull.number + 1000, "number": pull.number, "title": pull.title,
            "body": pull.body, "state": pull.state, "merged": pull.merged,
            "merge_commit_sha": pull.merge_commit_sha, "mergeable": True,
            "html_url": f"{repo.base_url}/{repo.full_name}/pulls/{pull.number}",
            "user": self._user(pull.author),
            "labels": [{"id": i, "name": repo.labels[i], "color": "ededed"}
                       for i in pull.labels if i in repo.labels],
            "requested_reviewers": [self._user(r) for r in pull.reviewers],
            "assignees": [self._user(a) for a in pull.assignees],
            "head": {"ref": pull.head, "label": pull.head, "sha": head_sha, "repo": owner,
                     "repo_id": repo.id},
            "base": {"ref": pull.base, "label": pull.base, "sha": base_sha, "repo": owner,
                     "repo_id": repo.id},
            "created_at": pull.created_at, "updated_at": _now(),
        }

    def _commit_json(self, repo: Repo, info: Mapping[str, Any]) -> dict[str, Any]:
        api = f"{repo.base_url}{API}/repos/{repo.full_name}"
        return {
            "sha": info["sha"], "url": f"{api}/git/commits/{info['sha']}",
            "html_url": f"{repo.base_url}/{repo.full_name}/commit/{info['sha']}",
            "created": info["committer_date"],
            "commit": {"message": info["message"] + "\n",
                       "tree": {"sha": info["tree"], "url": f"{api}/git/trees/{info['tree']}"},
                       "author": {"name": info["author_name"], "email": info["author_email"],
                                  "date": info["author_date"]},
                       "committer": {"name": info["committer_name"],
                                     "email": info["committer_email"],
                                     "date": info["committer_date"]}},
            "parents": [{"sha": p, "url": f"{api}/git/commits/{p}"} for p in info["parents"]],
        }

    # routing

    def respond(self, request: Request) -> Reply:
        try:
            body = json.loads(request.body) if request.body else None
            return Reply(*self.handle(request.method, request.path, request.query, body,
                                      request.headers))
        except ValueError:
            return Reply(400, {"message": "invalid JSON"})

    def fault_body(self, status: int) -> Any:
        return {"message": REASONS.get(status, "error"), "url": ""}

    def handle(self, method: str, path: str, query: Mapping[str, str], body: Any,
               headers: Mapping[str, str]) -> tuple[int, Any]:
        auth = headers.get("Authorization") or headers.get("authorization") or ""
        self.auth_seen.append(auth)
        user = None
        token = ""
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() not in ("token", "bearer") or token not in self.tokens:
                raise HTTPError(401, "user does not exist [uid: 0, name: ]")
            user = self.tokens[token]
        if not path.startswith(API + "/repos/"):
            raise HTTPError(404, "404 page not found")
        parts = [urllib.parse.unquote(p) for p in path[len(API) + 7:].split("/")]
        if len(parts) < 2:
            raise HTTPError(404)
        repo = self.repos.get(f"{parts[0]}/{parts[1]}".lower())
        if repo is None or user is None:
            raise HTTPError(404, "The target couldn't be found.")
        if method != "GET" and token in self.read_only:
            raise HTTPError(403, "token does not have at least one of required scope(s): "
                                 "[write:repository]")
        rest = parts[2:]
        return self._route(repo, method, rest, query, body, user)

    def _route(self, repo: Repo, method: str, rest: list[str], query: Mapping[str, str],
               body: Any, user: str) -> tuple[int, Any]:
        bare = repo.bare
        if not rest and method == "GET":
            return 200, {"id": repo.id, "full_name": repo.full_name,
                         "default_branch": repo.default_branch, "empty": False,
                         "permissions": {"admin": False, "push": True, "pull": True}}
        head, tail = rest[0], rest[1:]
        if head == "branches" and tail:
            return self._branch(repo, method, "/".join(tail), body)
        if head == "archive" and method == "GET" and tail:
            name = "/".join(tail)
            if not name.endswith(".tar.gz"):
                raise HTTPError(400, "unknown format")
            ref = name.removesuffix(".tar.gz")
            if bare.resolve(ref) is None:
                raise HTTPError(404, f"ref {ref} not found")
            return 200, bare.archive_tar_gz(ref, prefix=f"{repo.full_name.split('/')[1]}/")
        if head == "git" and tail[:1] == ["trees"] and method == "GET":
            return 200, self._tree(repo, tail[1], query)
        if head == "git" and tail[:1] == ["blobs"] and method == "GET":
            if bare.object_type(tail[1]) != "blob":
                raise HTTPError(404, "blob not found")
            data = bare.read_blob(tail[1])
            return 200, {"sha": tail[1], "size": len(data), "encoding": "base64",
                         "content": base64.b64encode(data).decode()}
        if head == "git" and tail[:1] == ["commits"] and method == "GET":
            sha = bare.resolve(tail[1]) if len(tail) == 2 else None
            info = bare.commit(sha) if sha else None
            if info is None:
                raise HTTPError(404, f"object does not exist [id: {tail[1:]}]")
            return 200, self._commit_json(repo, info)
        if head == "commits" and not tail and method == "GET":
            ref = query.get("sha") or repo.default_branch
            if bare.resolve(ref) is None:
                raise HTTPError(404, f"ref {ref} not found")
            limit = min(int(query.get("limit") or 30), 50)
            page = int(query.get("page") or 1)
            entries = bare.log(ref, limit * page)[limit * (page - 1):]
            return 200, [self._commit_json(repo, e) for e in entries]
        if head == "commits" and tail[1:] == ["status"] and method == "GET":
            state, statuses = self._combined(repo, tail[0])
            return 200, {"state": state, "sha": tail[0], "total_count": len(statuses),
                         "statuses": statuses}
        if head == "contents" and not tail and method == "POST":
            return self._contents(repo, body or {}, user)
        if head == "labels" and method == "GET":
            labels = [{"id": i, "name": n, "color": "ededed"} for i, n in repo.labels.items()]
            return 200, self._page(labels, query)
        if head == "pulls":
            return self._pulls(repo, method, tail, query, body or {}, user)
        if head == "issues" and len(tail) == 2:
            pull = self._pull_of(repo, tail[0])
            if tail[1] == "comments" and method == "GET":
                return 200, [{"id": i + 1, "body": c, "user": self._user(user)}
                             for i, c in enumerate(pull.comments)]
            if tail[1] == "comments" and method == "POST":
                if not str(body.get("body") or ""):
                    raise HTTPError(422, "[Body]: Required")
                pull.comments.append(str(body["body"]))
                return 201, {"id": len(pull.comments), "body": body["body"]}
            if tail[1] == "labels" and method == "POST":
                for label in body.get("labels") or []:
                    if int(label) not in repo.labels:
                        raise HTTPError(422, f"label does not exist [label_id: {label}]")
                    if int(label) not in pull.labels:
                        pull.labels.append(int(label))
                return 200, [{"id": i, "name": repo.labels[i]} for i in pull.labels]
        raise HTTPError(404, "404 page not found")

    def _page(self, items: list[Any], query: Mapping[str, str]) -> list[Any]:
        limit = min(int(query.get("limit") or 30), 50)
        page = int(query.get("page") or 1)
        return items[limit * (page - 1): limit * page]

    def _tree(self, repo: Repo, sha: str, query: Mapping[str, str]) -> dict[str, Any]:
        bare = repo.bare
        kind = bare.object_type(sha)
        if kind not in ("tree", "commit"):
            raise HTTPError(400, f"sha not found [{sha}]")
        recursive = query.get("recursive") in ("true", "1")
        args = ["ls-tree", "-z", "--full-tree"] + (["-r", "-t"] if recursive else []) + [sha]
        out = bare.git(*args).stdout.decode()
        entries = []
        for record in out.split("\0"):
            if not record:
                continue
            meta, path = record.split("\t", 1)
            mode, typ, obj = meta.split(" ")
            entries.append({"path": path, "mode": mode, "type": typ, "sha": obj, "size": 0})
        per = int(query.get("per_page") or 1000)
        page = int(query.get("page") or 1)
        chunk = entries[per * (page - 1): per * page]
        return {"sha": bare.tree_of(sha), "tree": chunk, "truncated": per * page < len(entries),
                "page": page, "total_count": len(entries)}

    def _branch(self, repo: Repo, method: str, name: str, body: Any) -> tuple[int, Any]:
        bare = repo.bare
        sha = bare.resolve(full_ref(name))
        if method == "GET":
            if sha is None:
                raise HTTPError(404, f"branch does not exist [repo_id: {repo.id} name: {name}]")
            info = bare.commit(sha) or {}
            return 200, {"name": name, "commit": {
                "id": sha, "message": info.get("message", "") + "\n",
                "timestamp": info.get("committer_date")}, "protected": False}
        if method == "DELETE":
            if sha is None:
                raise HTTPError(404, "branch not found")
            if name == repo.default_branch:
                raise HTTPError(403, "can not delete default branch")
            bare.delete_ref(full_ref(name))
            for pull in repo.pulls.values():  # Gitea's CloseBranchPulls
                if pull.state == "open" and name in (pull.head, pull.base):
                    pull.state = "closed"
            return 204, None
        if method == "PUT":
            if not repo.branch_update:
                raise HTTPError(404, "404 page not found")
            if sha is None:
                raise HTTPError(404, "branch not found")
            new = str((body or {}).get("new_commit_id") or "")
            old = (body or {}).get("old_commit_id")
            if bare.object_type(new) != "commit":
                raise HTTPError(404, f"commit {new} not found")
            if old and old != sha:
                raise HTTPError(409, f"branch {name} is at {sha}, not {old}")
            if not (body or {}).get("force") and not bare.is_ancestor(sha, new):
                raise HTTPError(409, "not a fast-forward")
            if not bare.update_ref(full_ref(name), new, old=sha):
                raise HTTPError(409, "branch moved")
            return 204, None
        raise HTTPError(405)

    def _contents(self, repo: Repo, body: Mapping[str, Any], user: str) -> tuple[int, Any]:
        bare = repo.bare
        with bare.locked():
            old = str(body.get("branch") or repo.default_branch)
            new = str(body.get("new_branch") or old)
            tip = bare.resolve(full_ref(old))
            if tip is None:
                raise HTTPError(404, f"branch does not exist [repo_id: {repo.id} name: {old}]")
            if new != old and bare.resolve(full_ref(new)) is not None:
                raise HTTPError(422, f"branch already exists [name: {new}]")
            files = body.get("files") or []
            if not files:
                raise HTTPError(422, "[Files]: Required")
            current = bare.read_tree(tip)
            changes: dict[str, bytes | None] = {}
            for op in files:
                path = str(op.get("path") or "")
                kind = op.get("operation")
                have = current.get(path)
                if kind == "create":
                    if have is not None:
                        raise HTTPError(422, f"repository file already exists [path: {path}]")
                elif kind in ("update", "delete"):
                    if have is None:
                        raise HTTPError(404, f"repository file does not exist [path: {path}]")
                    if not op.get("sha"):
                        raise HTTPError(422, "a SHA or commit ID must be proved when updating "
                                             "a file")
                    if op["sha"] != have[1]:
                        raise HTTPError(422, f"sha does not match [given: {op['sha']}, "
                                             f"expected: {have[1]}]")
                else:
                    raise HTTPError(422, f"[Operation]: invalid {kind}")
                try:
                    content = base64.b64decode(str(op.get("content") or ""), validate=True)
                except binascii.Error:
                    raise HTTPError(422, "illegal base64 data") from None
                changes[path] = None if kind == "delete" else content
            author = body.get("author") or {}
            name = str(author.get("name") or user)
            email = str(author.get("email") or f"{user}@noreply.gitea.example")
            tree = bare.write_tree_from(tip, changes)
            sha = bare.commit_tree(tree, [tip], str(body.get("message") or "Update files"),
                                   name, email)
            if not bare.update_ref(full_ref(new), sha, old=tip if new == old else ZERO):
                raise HTTPError(422, f"branch already exists [name: {new}]")
            info = bare.commit(sha) or {}
            if repo.ci_after_push is not None:
                self._ci(repo, sha, *repo.ci_after_push)
            return 201, {"files": [{"path": p} for p in changes],
                         "commit": self._commit_json(repo, info)}

    def _ci(self, repo: Repo, sha: str, register: float, run: float, end: str) -> None:
        for delay, state in ((register, "pending"), (register + run, end)):
            self.later(delay, self.set_status, repo.full_name, sha, state)

    def _pull_of(self, repo: Repo, index: str) -> Pull:
        try:
            return repo.pulls[int(index)]
        except (KeyError, ValueError):
            raise HTTPError(404, "pull request does not exist") from None

    def _pulls(self, repo: Repo, method: str, tail: list[str], query: Mapping[str, str],
               body: Mapping[str, Any], user: str) -> tuple[int, Any]:
        if not tail and method == "GET":
            state = query.get("state") or "open"
            found = [self._pull_json(repo, p) for p in sorted(repo.pulls.values(),
                                                              key=lambda p: -p.number)
                     if state == "all" or p.state == state]
            return 200, self._page(found, query)
        if not tail and method == "POST":
            return self._create_pull(repo, body, user)
        pull = self._pull_of(repo, tail[0])
        sub = tail[1:]
        if not sub and method == "GET":
            return 200, self._pull_json(repo, pull)
        if not sub and method == "PATCH":
            if "title" in body:
                pull.title = str(body["title"])
            if "body" in body:
                pull.body = str(body["body"])
            if "labels" in body:
                pull.labels = [int(x) for x in body["labels"]]
            if body.get("state") == "closed" and pull.state == "open":
                pull.state = "closed"
                pull.scheduled = None
            return 201, self._pull_json(repo, pull)
        if sub == ["requested_reviewers"] and method == "POST":
            for name in body.get("reviewers") or []:
                if name not in self.users:
                    raise HTTPError(422, f"user does not exist [uid: 0, name: {name}]")
                if name == pull.author:
                    raise HTTPError(422, "review request for the poster of the pull request")
                if name not in pull.reviewers:
                    pull.reviewers.append(name)
            return 201, [{"id": i + 1, "user": self._user(r), "state": "REQUEST_REVIEW"}
                         for i, r in enumerate(pull.reviewers)]
        if sub == ["merge"] and method == "POST":
            return self._merge_endpoint(repo, pull, body)
        if sub == ["merge"] and method == "DELETE":
            if pull.scheduled is None:
                raise HTTPError(404, "The target couldn't be found.")
            pull.scheduled = None
            return 204, None
        raise HTTPError(404, "404 page not found")

    def _create_pull(self, repo: Repo, body: Mapping[str, Any], user: str) -> tuple[int, Any]:
        head, base = str(body.get("head") or ""), str(body.get("base") or "")
        if not str(body.get("title") or "").strip():
            raise HTTPError(422, "[Title]: Required")
        if repo.bare.resolve(full_ref(head)) is None or repo.bare.resolve(full_ref(base)) is None:
            raise HTTPError(404, "The target couldn't be found.")
        if head == base:
            raise HTTPError(422, "Invalid PullRequest: There are no changes between the head "
                                 "and the base")
        for other in repo.pulls.values():
            if other.state == "open" and other.head == head and other.base == base:
                raise HTTPError(409, f"pull request already exists for these targets [id: "
                                     f"{other.number}, issue_id: {other.number}, head_repo_id: "
                                     f"{repo.id}, base_repo_id: {repo.id}, head_branch: {head}, "
                                     f"base_branch: {base}]")
        labels = [int(x) for x in body.get("labels") or []]
        for label in labels:
            if label not in repo.labels:
                raise HTTPError(422, f"label does not exist [label_id: {label}]")
        for name in body.get("assignees") or []:
            if name not in self.users:
                raise HTTPError(422, f"user does not exist [uid: 0, name: {name}]")
        pull = Pull(repo.next_index, str(body["title"]), str(body.get("body") or ""), head,
                    base, user, labels=labels, assignees=list(body.get("assignees") or []))
        repo.next_index += 1
        repo.pulls[pull.number] = pull
        return 201, self._pull_json(repo, pull)

    def _merge_endpoint(self, repo: Repo, pull: Pull, body: Mapping[str, Any]) -> tuple[int, Any]:
        if pull.merged:
            raise HTTPError(405, "PR already merged")
        if pull.state != "open":
            raise HTTPError(404, "The target couldn't be found.")
        if pull.title.upper().startswith(("WIP:", "[WIP]")):
            raise HTTPError(405, "Work in progress PRs cannot be merged")
        style = str(body.get("Do") or "merge")
        if style not in ("merge", "squash", "rebase"):
            raise HTTPError(405, f"{style} is not allowed an allowed merge style for this "
                                 "repository")
        title = str(body.get("MergeTitleField") or "").strip() or \
            f"Merge pull request '{pull.title}' (#{pull.number})"
        extra = str(body.get("MergeMessageField") or "").strip()
        message = title + (f"\n\n{extra}" if extra else "")
        head = repo.bare.resolve(full_ref(pull.head)) or ""
        state, _ = self._combined(repo, head)
        delete = bool(body.get("delete_branch_after_merge"))
        if body.get("merge_when_checks_succeed") and state not in ("", "success"):
            if pull.scheduled is not None:
                raise HTTPError(409, "pull request is already scheduled to auto merge when "
                                     f"checks succeed [pull_id: {pull.number}]")
            if state in ("failure", "error"):
                raise HTTPError(405, "Not all required status checks successful")
            pull.scheduled = {"Do": style, "message": message, "delete": delete}
            return 201, None
        if state not in ("", "success", "warning"):
            raise HTTPError(405, "Please try again later")
        passed = {c for c, st in repo.statuses.get(head, {}).items() if st == "success"}
        if not set(repo.required_checks) <= passed:
            raise HTTPError(405, "Not all required status checks successful")
        self._merge(repo, pull, style, message, delete, body.get("head_commit_id"))
        return 200, None

    def _merge(self, repo: Repo, pull: Pull, style: str, message: str, delete: bool,
               expected: Any) -> None:
        bare = repo.bare
        head = bare.resolve(full_ref(pull.head)) or ""
        if expected and expected != head:
            raise HTTPError(409, "head out of date")
        merged = bare.merge(pull.base, head, style, message)
        if merged is None:
            raise HTTPError(409, body={"message": "Merge Conflict", "StdOut": "", "StdErr": ""})
        pull.merged, pull.state = True, "closed"
        pull.merge_commit_sha, pull.merged_head, pull.merge_message = merged, head, message
        pull.scheduled = None
        if delete:
            bare.delete_ref(full_ref(pull.head), old=head)
