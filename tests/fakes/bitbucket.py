"""A fake Bitbucket Cloud REST API (2.0) over real HTTP, backed by real bare git repositories.

It answers the endpoints promoter's Bitbucket forge uses, with Bitbucket's status codes,
error bodies (``{"type": "error", "error": {"message": ...}}``), pagination (``values``,
``pagelen``, ``next`` as a full URL) and the archive on the "web" side
(``/{workspace}/{repo}/get/{sha}.tar.gz``, no ``/2.0``; the same server here)::

    with FakeBitbucket(tmp_path) as bb:
        repo = bb.add_repo("acme/config", {"envs/dev/app.yaml": b"image: a:1\\n"})
        bb.add_token("bb-secret")                     # Authorization: Bearer ...
        bb.add_token("app-pass", user="alice")        # Basic alice:app-pass
        bb.add_member("sre-lead")                     # a workspace member (nickname)
        forge = BitbucketForge("acme/config", api_url=bb.api, token="bb-secret")
        bb.count("POST", r"/src$")                    # requests since reset_counts()

Commits, trees and refs live in a ``BareRepo``; pull requests, comments and commit
statuses in memory. ``set_status(sha, state)`` is a build status (SUCCESSFUL, FAILED,
INPROGRESS, STOPPED). ``required_builds`` is the "minimum successful builds" merge check:
a merge is refused (400) while fewer builds passed or any is in progress or failed.
``ci_after_push``: a build that registers INPROGRESS a moment after each API commit and
ends later, as Pipelines does. A pull request follows its source branch by name (its
``source.commit`` is the branch's tip, 12 characters, as Bitbucket reports it).

Faults (``fail``), hooks (``before``), recording and the lifecycle: ``tests/fakes/server.py``.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.parser
import email.policy
import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import server
from .gitrepo import ZERO, BareRepo, full_ref
from .server import REASONS, Fault, Reply, Request, Seen

__all__ = ["FakeBitbucket", "Fault", "HTTPError", "Pull", "Repo", "Seen", "User"]

API = "/2.0"
STATES = ("SUCCESSFUL", "FAILED", "INPROGRESS", "STOPPED")
STRATEGIES = {"merge_commit": "merge", "squash": "squash"}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _error(message: str, detail: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message}
    if detail:
        error["detail"] = detail
    return {"type": "error", "error": error}


class HTTPError(server.HTTPError):
    def __init__(self, status: int, message: str = "", headers: Mapping[str, str] | None = None,
                 body: Any = None) -> None:
        super().__init__(status, body if body is not None else _error(
            message or REASONS.get(status, "")), headers)


@dataclass
class Pull:
    id: int
    title: str
    description: str
    source: str
    destination: str
    author: str
    reviewers: list[str] = field(default_factory=list)  # account ids
    state: str = "OPEN"  # OPEN | MERGED | DECLINED
    draft: bool = False
    close_source_branch: bool = False
    last_head: str = ""
    merge_commit: str | None = None
    merged_head: str | None = None
    merge_message: str | None = None
    comments: list[str] = field(default_factory=list)
    created_on: str = field(default_factory=_now)


@dataclass
class Repo:
    full_name: str
    bare: BareRepo
    mainbranch: str = "main"
    required_builds: int = 0  # merge check: minimum successful builds
    # deleting a branch declines its open pull requests (Bitbucket Cloud is not known to;
    # Data Center does): promoter must cope either way
    decline_on_branch_delete: bool = False
    # CI on every commit made through the API: (seconds until its build registers as
    # INPROGRESS, seconds more until it ends, the end state)
    ci_after_push: tuple[float, float, str] | None = None
    pulls: dict[int, Pull] = field(default_factory=dict)
    statuses: dict[str, dict[str, str]] = field(default_factory=dict)  # sha -> key -> state
    next_id: int = 1


@dataclass(frozen=True)
class User:
    nickname: str
    account_id: str
    uuid: str


class FakeBitbucket(server.FakeServer):
    server_version = "FakeBitbucket/1.0"
    json_type = "application/json; charset=utf-8"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.repos: dict[str, Repo] = {}
        self.members: dict[str, User] = {}
        self.tokens: dict[str, str] = {}  # value -> nickname
        self.basic: dict[str, str] = {}  # "user:secret" -> nickname
        self.read_only: set[str] = set()
        self.auth_seen: list[str] = []  # every Authorization header received
        self.archive_redirect: str | None = None  # answer the archive with 302 there
        self.api = self.url + API  # what --api-url names: a Cloud-compatible API root
        self.add_member("promoter-bot")

    # set-up and controls

    def add_member(self, nickname: str) -> User:
        number = len(self.members) + 1
        user = User(nickname, f"557058:{number:08d}-0000-4000-8000-{number:012d}",
                    f"{{{number:08d}-aaaa-4bbb-8ccc-{number:012d}}}")
        self.members[nickname] = user
        return user

    def add_token(self, value: str, user: str = "promoter-bot", write: bool = True) -> None:
        """An access token (Bearer) of ``user``; also an app password of ``user`` (Basic)."""
        if user not in self.members:
            self.add_member(user)
        self.tokens[value] = user
        self.basic[f"{user}:{value}"] = user
        if not write:
            self.read_only.add(value)

    def add_repo(self, full_name: str, files: Mapping[str, bytes], mainbranch: str = "main",
                 **options: Any) -> Repo:
        bare = self.bare_repo(full_name, files, mainbranch)
        repo = Repo(full_name, bare, mainbranch, **options)
        self.repos[full_name.lower()] = repo
        return repo

    def repo(self, full_name: str) -> Repo:
        return self.repos[full_name.lower()]

    def set_status(self, full_name: str, sha: str, state: str, key: str = "ci") -> None:
        assert state in STATES, state
        with self.lock:
            self.repo(full_name).statuses.setdefault(sha, {})[key] = state

    def pulls(self, full_name: str) -> list[Pull]:
        return sorted(self.repo(full_name).pulls.values(), key=lambda p: p.id)

    def nickname(self, account_id: str) -> str:
        return next((u.nickname for u in self.members.values() if u.account_id == account_id),
                    "?")

    # JSON shapes

    def _user(self, nickname: str) -> dict[str, Any]:
        user = self.members[nickname]
        return {"type": "user", "display_name": nickname.title(), "nickname": nickname,
                "account_id": user.account_id, "uuid": user.uuid}

    def _head(self, repo: Repo, pull: Pull) -> str:
        if pull.merged_head:
            return pull.merged_head
        tip = repo.bare.resolve(full_ref(pull.source))
        if tip is not None and pull.state == "OPEN":
            pull.last_head = tip
        return pull.last_head

    def _pull_json(self, repo: Repo, pull: Pull) -> dict[str, Any]:
        base = repo.bare.resolve(full_ref(pull.destination)) or ""
        side = {"full_name": repo.full_name, "type": "repository"}
        return {
            "type": "pullrequest", "id": pull.id, "title": pull.title,
            "description": pull.description, "state": pull.state, "draft": pull.draft,
            "author": self._user(pull.author),
            "reviewers": [self._user(self.nickname(r)) for r in pull.reviewers],
            "close_source_branch": pull.close_source_branch,
            "source": {"branch": {"name": pull.source},
                       "commit": {"hash": self._head(repo, pull)[:12], "type": "commit"},
                       "repository": side},
            "destination": {"branch": {"name": pull.destination},
                            "commit": {"hash": base[:12], "type": "commit"},
                            "repository": side},
            "merge_commit": {"hash": pull.merge_commit[:12]} if pull.merge_commit else None,
            "links": {"html": {"href": f"https://bitbucket.org/{repo.full_name}/pull-requests/"
                                       f"{pull.id}"}},
            "created_on": pull.created_on, "updated_on": _now(),
        }

    def _commit_json(self, info: Mapping[str, Any]) -> dict[str, Any]:
        return {"type": "commit", "hash": info["sha"], "message": info["message"] + "\n",
                "date": info["author_date"],
                "author": {"type": "author",
                           "raw": f"{info['author_name']} <{info['author_email']}>"},
                "parents": [{"hash": p, "type": "commit"} for p in info["parents"]]}

    def _page(self, values: list[Any], query: Mapping[str, str], path: str) -> dict[str, Any]:
        size = max(1, min(int(query.get("pagelen") or 10), 100))
        page = max(1, int(query.get("page") or 1))
        chunk = values[(page - 1) * size: page * size]
        out: dict[str, Any] = {"pagelen": size, "size": len(values), "page": page,
                               "values": chunk}
        if page * size < len(values):
            following = {**query, "page": str(page + 1)}
            out["next"] = f"{self.url}{path}?{urllib.parse.urlencode(following)}"
        return out

    # routing

    def respond(self, request: Request) -> Reply:
        try:
            return Reply(*self.handle(request.method, request.path, request.query, request.body,
                                      request.headers))
        except ValueError:
            return Reply(400, _error("invalid request body"))

    def fault_body(self, status: int) -> Any:
        return _error(REASONS.get(status, "error"))

    def handle(self, method: str, path: str, query: Mapping[str, str], raw: bytes,
               headers: Mapping[str, str]) -> tuple[int, Any, dict[str, str]]:
        auth = headers.get("Authorization") or headers.get("authorization") or ""
        self.auth_seen.append(auth)
        user, token = None, ""
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() == "bearer" and value in self.tokens:
                user, token = self.tokens[value], value
            elif scheme.lower() == "basic":
                pair = base64.b64decode(value).decode("utf-8", "replace")
                user = self.basic.get(pair)
                token = pair.partition(":")[2]
            if user is None:
                raise HTTPError(401, "Token is invalid or not supported for this endpoint.")
        if method != "GET" and token in self.read_only:
            raise HTTPError(403, "Your credentials lack one or more required privilege "
                                 "scopes.", body=_error("Your credentials lack one or more "
                                 "required privilege scopes.", "repository:write"))
        if not path.startswith(API + "/"):
            return self._web(method, path, user)
        parts = [urllib.parse.unquote(p) for p in path[len(API) + 1:].split("/")]
        if parts[:1] == ["workspaces"] and len(parts) == 3 and parts[2] == "members":
            if user is None:
                raise HTTPError(401, "This API is only accessible with the following "
                                     "authentication types: apppassword, session, api_token")
            values = [{"type": "workspace_membership", "user": self._user(n)}
                      for n in sorted(self.members)]
            return 200, self._page(values, query, path), {}
        if parts[:1] != ["repositories"] or len(parts) < 3:
            raise HTTPError(404, "Resource not found")
        repo = self.repos.get(f"{parts[1]}/{parts[2]}".lower())
        if repo is None or user is None:
            raise HTTPError(404, "You may not have access to this repository or it no longer "
                                 "exists in this workspace.")
        return self._route(repo, method, parts[3:], query, raw, headers, user, path)

    def _web(self, method: str, path: str, user: str | None) -> tuple[int, Any, dict[str, str]]:
        found = re.fullmatch(r"/([^/]+)/([^/]+)/get/([0-9a-f]{40})\.tar\.gz", path)
        if method != "GET" or found is None:
            raise HTTPError(404, "not found")
        repo = self.repos.get(f"{found[1]}/{found[2]}".lower())
        if repo is None or user is None:
            raise HTTPError(404, "not found")
        if self.archive_redirect is not None:
            return 302, b"", {"Location": self.archive_redirect + path}
        prefix = f"{found[1]}-{found[2]}-{found[3][:12]}/"
        return 200, repo.bare.archive_tar_gz(found[3], prefix=prefix), {}

    def _route(self, repo: Repo, method: str, rest: list[str], query: Mapping[str, str],
               raw: bytes, headers: Mapping[str, str], user: str,
               path: str) -> tuple[int, Any, dict[str, str]]:
        bare = repo.bare
        body: Any = None
        if raw and "json" in (headers.get("Content-Type") or ""):
            body = json.loads(raw)
        if not rest and method == "GET":
            return 200, {"type": "repository", "full_name": repo.full_name,
                         "mainbranch": {"type": "branch", "name": repo.mainbranch},
                         "is_private": True}, {}
        head = rest[0]
        if head == "refs" and rest[1:2] == ["branches"] and len(rest) >= 3:
            name = "/".join(rest[2:])
            sha = bare.resolve(full_ref(name))
            if sha is None or bare.list_refs(full_ref(name)).get(full_ref(name)) is None:
                raise HTTPError(404, f"Branch \"{name}\" not found")
            if method == "GET":
                info = bare.commit(sha) or {}
                return 200, {"type": "branch", "name": name,
                             "target": self._commit_json(info)}, {}
            if method == "DELETE":
                if name == repo.mainbranch:
                    raise HTTPError(400, "You can't delete the main branch")
                bare.delete_ref(full_ref(name))
                for pull in repo.pulls.values():
                    if repo.decline_on_branch_delete and pull.source == name \
                            and pull.state == "OPEN":
                        pull.last_head, pull.state = sha, "DECLINED"
                return 204, None, {}
        if head == "src" and method == "POST" and len(rest) == 1:
            return self._src(repo, raw, headers, user)
        if head == "src" and method == "GET" and len(rest) >= 3:
            return self._read_src(repo, rest[1], "/".join(rest[2:]), query)
        if head == "commit" and len(rest) == 2 and method == "GET":
            info = bare.commit(rest[1]) if re.fullmatch(r"[0-9a-f]{40}", rest[1]) else None
            if info is None:
                raise HTTPError(404, f"Commit not found: {rest[1]}")
            return 200, self._commit_json(info), {}
        if head == "commit" and rest[2:] == ["statuses"] and method == "GET":
            found = repo.statuses.get(rest[1], {})
            values = [{"type": "build", "key": k, "state": s, "name": k,
                       "url": "https://ci.example/1", "refname": None}
                      for k, s in sorted(found.items())]
            return 200, self._page(values, query, path), {}
        if head == "diffstat" and len(rest) == 2 and method == "GET":
            return 200, self._page(self._diffstat(repo, rest[1]), query, path), {}
        if head == "commits" and len(rest) == 2 and method == "GET":
            # a name resolves as git resolves it, a tag before a branch of the same name
            # (what Bitbucket does with an ambiguous name is not documented: the worst)
            tip = bare.resolve(f"refs/tags/{rest[1]}") or bare.resolve(rest[1])
            if tip is None:
                raise HTTPError(404, f"Revision not found: {rest[1]}")
            values = [self._commit_json(c) for c in bare.log(tip, 1000)]
            return 200, self._page(values, query, path), {}
        if head == "pullrequests":
            return self._pulls(repo, method, rest[1:], query, body or {}, user, path)
        raise HTTPError(404, "Resource not found")

    def _read_src(self, repo: Repo, rev: str, path: str,
                  query: Mapping[str, str]) -> tuple[int, Any, dict[str, str]]:
        bare = repo.bare
        sha = bare.resolve(rev)
        if sha is None:
            raise HTTPError(404, f"Commit not found: {rev}")
        tree = bare.read_tree(sha)
        entry = tree.get(path)
        if entry is None:
            if not path.strip("/") or any(p.startswith(path.rstrip("/") + "/") for p in tree):
                if query.get("format") == "meta":
                    return 200, {"type": "commit_directory", "path": path}, {}
                return 200, self._page(self._listing(repo, sha, path.strip("/"), query),
                                       query, f"{API}/repositories/{repo.full_name}/src/"
                                              f"{rev}/{path}"), {}
            raise HTTPError(404, f"No such file or directory: {path}")
        mode, obj = entry
        if query.get("format") == "meta":
            attributes = {"120000": ["link"], "100755": ["executable"],
                          "160000": ["subrepository"]}.get(mode, [])
            return 200, {"type": "commit_file", "path": path, "attributes": attributes,
                         "commit": {"hash": sha}, "size": 0}, {}
        return 200, bare.read_blob(obj), {}

    def _listing(self, repo: Repo, sha: str, top: str,
                 query: Mapping[str, str]) -> list[dict[str, Any]]:
        """A directory's entries down to ``max_depth`` levels (default 1), from ``git
        ls-tree -r -t -l``: ``commit_directory`` and ``commit_file`` (path from the root,
        size, attributes link / executable / subrepository); no object ids."""
        depth = max(1, int(query.get("max_depth") or 1))
        out = repo.bare.git("ls-tree", "-r", "-t", "-l", "-z", "--full-tree", sha).stdout
        values: list[dict[str, Any]] = []
        for record in out.decode("utf-8").split("\0"):
            if not record:
                continue
            meta, path = record.split("\t", 1)
            mode, kind, _oid, size = meta.split()
            if top and not path.startswith(top + "/"):
                continue
            if path.count("/") - (top.count("/") + 1 if top else 0) >= depth:
                continue
            commit = {"type": "commit", "hash": sha}
            if kind == "tree":
                values.append({"type": "commit_directory", "path": path, "commit": commit})
                continue
            attributes = {"120000": ["link"], "100755": ["executable"],
                          "160000": ["subrepository"]}.get(mode, [])
            values.append({"type": "commit_file", "path": path, "escaped_path": path,
                           "size": int(size) if size != "-" else 0,
                           "attributes": attributes, "commit": commit})
        return sorted(values, key=lambda v: str(v["path"]))

    def _diffstat(self, repo: Repo, sha: str) -> list[dict[str, Any]]:
        info = repo.bare.commit(sha) if re.fullmatch(r"[0-9a-f]{40}", sha) else None
        if info is None:
            raise HTTPError(404, f"Commit not found: {sha}")
        parent = info["parents"][0] if info["parents"] else None
        if parent is None:
            return []
        out = repo.bare.git("diff-tree", "-r", "-M", "--raw", "-z", parent, sha).stdout
        fields = out.decode("utf-8").split("\0")
        values: list[dict[str, Any]] = []
        i = 0
        while i < len(fields) - 1:
            meta = fields[i]
            if not meta.startswith(":"):
                i += 1
                continue
            status = meta.split()[-1][0]
            if status in "RC":
                old, new = fields[i + 1], fields[i + 2]
                i += 3
            else:
                old = new = fields[i + 1]
                i += 2
            kind = {"A": "added", "D": "removed", "M": "modified", "T": "modified",
                    "R": "renamed", "C": "added"}.get(status, "modified")
            values.append({"type": "diffstat", "status": kind,
                           "old": None if kind == "added" else
                           {"path": old, "type": "commit_file"},
                           "new": None if kind == "removed" else
                           {"path": new, "type": "commit_file"}})
        return values

    def _src(self, repo: Repo, raw: bytes, headers: Mapping[str, str],
             user: str) -> tuple[int, Any, dict[str, str]]:
        kind = headers.get("Content-Type") or ""
        if not kind.startswith("multipart/form-data"):
            raise HTTPError(400, "expected multipart/form-data or x-www-form-urlencoded")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + kind.encode() + b"\r\n\r\n" + raw)
        form: dict[str, bytes] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            form[str(name)] = part.get_payload(decode=True) or b""
        meta = {k: form.pop(k).decode() for k in ("message", "branch", "parents", "author",
                                                  "files") if k in form}
        bare = repo.bare
        with bare.locked():
            branch = meta.get("branch") or repo.mainbranch
            tip = bare.list_refs(full_ref(branch)).get(full_ref(branch))
            parents = [p for p in (meta.get("parents") or "").split(",") if p]
            if parents and bare.commit(parents[0]) is None:
                raise HTTPError(404, f"parent {parents[0]} not found")
            if tip is not None:
                if parents and parents[0] != tip:
                    raise HTTPError(409, f"Cannot create commit on top of {parents[0]}: it "
                                         f"is not the head of branch {branch}")
                start = tip
            else:
                start = parents[0] if parents else bare.resolve(full_ref(repo.mainbranch))
            author = meta.get("author") or f"{user.title()} <{user}@example.com>"
            found = re.fullmatch(r"(.*?)\s*<([^>]*)>", author)
            if found is None:
                raise HTTPError(400, f"invalid author: {author}")
            tree = bare.write_tree_from(start, {p: c for p, c in form.items()})
            sha = bare.commit_tree(tree, [start] if start else [],
                                   meta.get("message") or "Edited online with Bitbucket",
                                   found[1], found[2])
            if not bare.update_ref(full_ref(branch), sha, old=tip or ZERO):
                raise HTTPError(409, f"branch {branch} moved")
        if repo.ci_after_push is not None:
            self._ci(repo, sha, *repo.ci_after_push)
        location = f"{self.api}/repositories/{repo.full_name}/commit/{sha}"
        return 201, None, {"Location": location}

    def _ci(self, repo: Repo, sha: str, register: float, run: float, end: str) -> None:
        for delay, state in ((register, "INPROGRESS"), (register + run, end)):
            self.later(delay, self.set_status, repo.full_name, sha, state)

    def _pull_of(self, repo: Repo, index: str) -> Pull:
        try:
            return repo.pulls[int(index)]
        except (KeyError, ValueError):
            raise HTTPError(404, f"Pull request {index} not found") from None

    def _pulls(self, repo: Repo, method: str, tail: list[str], query: Mapping[str, str],
               body: Mapping[str, Any], user: str, path: str) -> tuple[int, Any, dict[str, str]]:
        if not tail and method == "GET":
            wanted = dict(re.findall(r'([a-z.]+)\s*=\s*"([^"]*)"', query.get("q") or ""))
            states = {"OPEN"} if "state" not in wanted and not query.get("state") else \
                {wanted.get("state") or query.get("state")}
            found = [self._pull_json(repo, p) for p in sorted(repo.pulls.values(),
                                                              key=lambda p: -p.id)
                     if p.state in states
                     and wanted.get("source.branch.name", p.source) == p.source
                     and wanted.get("destination.branch.name", p.destination) == p.destination]
            return 200, self._page(found, query, path), {}
        if not tail and method == "POST":
            return self._create_pull(repo, body, user)
        pull = self._pull_of(repo, tail[0])
        sub = tail[1:]
        if not sub and method == "GET":
            return 200, self._pull_json(repo, pull), {}
        if not sub and method == "PUT":
            if pull.state != "OPEN":
                raise HTTPError(400, "Only open pull requests can be updated")
            if "title" in body:
                pull.title = str(body["title"])
            if "description" in body:
                pull.description = str(body["description"])
            return 200, self._pull_json(repo, pull), {}
        if sub == ["comments"] and method == "POST":
            pull.comments.append(str((body.get("content") or {}).get("raw") or ""))
            return 201, {"type": "pullrequest_comment", "id": len(pull.comments),
                         "content": {"raw": pull.comments[-1]}}, {}
        if sub == ["comments"] and method == "GET":
            values = [{"type": "pullrequest_comment", "id": i + 1, "content": {"raw": c}}
                      for i, c in enumerate(pull.comments)]
            return 200, self._page(values, query, path), {}
        if sub == ["decline"] and method == "POST":
            if pull.state == "OPEN":
                self._head(repo, pull)
                pull.state = "DECLINED"
            return 200, self._pull_json(repo, pull), {}
        if sub == ["merge"] and method == "POST":
            return self._merge(repo, pull, body)
        raise HTTPError(404, "Resource not found")

    def _create_pull(self, repo: Repo, body: Mapping[str, Any],
                     user: str) -> tuple[int, Any, dict[str, str]]:
        source = str(((body.get("source") or {}).get("branch") or {}).get("name") or "")
        destination = str(((body.get("destination") or {}).get("branch") or {}).get("name")
                          or repo.mainbranch)
        if not str(body.get("title") or "").strip():
            raise HTTPError(400, "title: This field is required.")
        if repo.bare.resolve(full_ref(source)) is None:
            raise HTTPError(400, "source: Branch not found", body=_error(
                "Bad request", f"source: branch {source} not found"))
        for other in repo.pulls.values():
            if other.state == "OPEN" and other.source == source \
                    and other.destination == destination:
                raise HTTPError(400, "Only one pull request may be open for a given source "
                                     "and target branch")
        reviewers = []
        ids = {u.account_id: u for u in self.members.values()}
        uuids = {u.uuid: u for u in self.members.values()}
        for given in body.get("reviewers") or []:
            member = ids.get(str(given.get("account_id"))) or uuids.get(str(given.get("uuid")))
            if member is None:
                raise HTTPError(400, "reviewers: malformed reviewers list")
            if member.nickname == user:
                raise HTTPError(400, f"{member.nickname} is the author and cannot be included "
                                     "as a reviewer.")
            reviewers.append(member.account_id)
        pull = Pull(repo.next_id, str(body["title"]), str(body.get("description") or ""),
                    source, destination, user, reviewers=reviewers,
                    draft=bool(body.get("draft")),
                    close_source_branch=bool(body.get("close_source_branch")))
        repo.next_id += 1
        repo.pulls[pull.id] = pull
        return 201, self._pull_json(repo, pull), {}

    def _merge(self, repo: Repo, pull: Pull,
               body: Mapping[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if pull.state != "OPEN":
            raise HTTPError(400, f"You can't merge a pull request that is {pull.state.lower()}")
        if pull.draft:
            raise HTTPError(400, "You can't merge a draft pull request")
        bare = repo.bare
        head = bare.resolve(full_ref(pull.source)) or ""
        if not head:
            raise HTTPError(400, "The source branch no longer exists")
        builds = repo.statuses.get(head, {})
        passed = sum(1 for s in builds.values() if s == "SUCCESSFUL")
        if repo.required_builds and (passed < repo.required_builds or any(
                s != "SUCCESSFUL" for s in builds.values())):
            raise HTTPError(400, "Unable to merge: merge checks failed", body=_error(
                "You can't merge until you resolve all merge checks.",
                f"{repo.required_builds} successful build(s) required, {passed} found"))
        strategy = str(body.get("merge_strategy") or "merge_commit")
        message = str(body.get("message") or
                      f"Merged in {pull.source} (pull request #{pull.id})")
        if strategy == "fast_forward":
            base = bare.resolve(full_ref(pull.destination)) or ""
            if not bare.is_ancestor(base, head) or not bare.update_ref(
                    pull.destination, head, old=base):
                raise HTTPError(400, "Unable to merge: fast-forward not possible")
            merged: str | None = head
        elif strategy in STRATEGIES:
            merged = bare.merge(pull.destination, head, STRATEGIES[strategy], message)
        else:
            raise HTTPError(400, f"merge_strategy: {strategy} is not a valid choice")
        if merged is None:
            raise HTTPError(409, "Merge conflict", body=_error(
                "There are merge conflicts that must be resolved before merging"))
        pull.state, pull.merge_commit, pull.merged_head = "MERGED", merged, head
        pull.merge_message = message
        if body.get("close_source_branch", pull.close_source_branch):
            bare.delete_ref(full_ref(pull.source), old=head)
        return 200, self._pull_json(repo, pull), {}
