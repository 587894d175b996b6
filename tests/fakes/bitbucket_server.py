"""A fake Bitbucket Data Center REST API (1.0) over real HTTP, backed by real bare repos.

Shapes from Atlassian's Bitbucket Data Center 9.2 OpenAPI document: paged lists
(``values``, ``isLastPage``, ``nextPageStart``), errors ``{"errors": [{"message",
"exceptionName"}]}``, the file edit ``PUT …/browse/{path}`` (multipart ``content``,
``message``, ``branch``, ``sourceBranch``, ``sourceCommitId``; 409 when the file changed
since ``sourceCommitId``), branch deletion with ``endPoint`` (a compare-and-swap), pull
requests with a ``version`` that every update and every rescope (a push to the source
branch) increments, merges refused (409) on an out-of-date version or a merge check::

    with FakeBitbucketServer(tmp_path) as dc:
        repo = dc.add_repo("OPS/config", {...}); dc.add_token("t"); dc.add_user("alice")
        BitbucketServerForge("OPS/config", api_url=dc.url, token="t")

Deleting a branch declines its open pull requests. ``ci_after_push``: a build that
registers INPROGRESS a moment after each file edit and ends later. Faults, hooks,
recording and the lifecycle: ``tests/fakes/server.py``, as every fake.
"""

from __future__ import annotations

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

__all__ = ["FakeBitbucketServer", "Fault", "HTTPError", "Pull", "Repo", "Seen"]

STRATEGIES = {"no-ff": "merge", "squash": "squash"}


def _errors(message: str, exception: str = "com.atlassian.bitbucket.ServiceException",
            **extra: Any) -> dict[str, Any]:
    return {"errors": [{"context": None, "message": message, "exceptionName": exception,
                        **extra}]}


class HTTPError(server.HTTPError):
    def __init__(self, status: int, message: str = "", exception: str = "",
                 headers: Mapping[str, str] | None = None, body: Any = None) -> None:
        super().__init__(status, body if body is not None else _errors(
            message or REASONS.get(status, ""), exception or "com.atlassian.bitbucket."
            "ServiceException"), headers)


@dataclass
class Pull:
    id: int
    title: str
    description: str
    source: str
    target: str
    author: str
    reviewers: list[str] = field(default_factory=list)
    state: str = "OPEN"
    draft: bool = False
    version: int = 0
    seen_head: str = ""
    merge_commit: str | None = None
    comments: list[str] = field(default_factory=list)


@dataclass
class Repo:
    full_name: str  # PROJECT/slug
    bare: BareRepo
    default: str = "main"
    required_builds: int = 0  # merge check: minimum successful builds
    # CI on every commit made through the API: (seconds until its build registers as
    # INPROGRESS, seconds more until it ends, the end state)
    ci_after_push: tuple[float, float, str] | None = None
    pulls: dict[int, Pull] = field(default_factory=dict)
    builds: dict[str, dict[str, str]] = field(default_factory=dict)
    next_id: int = 1


class FakeBitbucketServer(server.FakeServer):
    json_type = "application/json;charset=UTF-8"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.repos: dict[str, Repo] = {}
        self.users: set[str] = {"promoter-bot"}
        self.tokens: dict[str, str] = {}
        self.read_only: set[str] = set()
        self.auth_seen: list[str] = []
    # set-up and controls

    def add_token(self, value: str, user: str = "promoter-bot", write: bool = True) -> None:
        self.users.add(user)
        self.tokens[value] = user
        if not write:
            self.read_only.add(value)

    def add_user(self, name: str) -> None:
        self.users.add(name)

    def add_repo(self, full_name: str, files: Mapping[str, bytes], default: str = "main",
                 **options: Any) -> Repo:
        bare = self.bare_repo(full_name, files, default)
        repo = Repo(full_name, bare, default, **options)
        self.repos[full_name.lower()] = repo
        return repo

    def repo(self, full_name: str) -> Repo:
        return self.repos[full_name.lower()]

    def set_build(self, full_name: str, sha: str, state: str, key: str = "ci") -> None:
        with self.lock:
            self.repo(full_name).builds.setdefault(sha, {})[key] = state

    def pulls(self, full_name: str) -> list[Pull]:
        return sorted(self.repo(full_name).pulls.values(), key=lambda p: p.id)

    # shapes

    def _page(self, values: list[Any], query: Mapping[str, str]) -> dict[str, Any]:
        start, limit = int(query.get("start") or 0), int(query.get("limit") or 25)
        chunk = values[start:start + limit]
        last = start + limit >= len(values)
        out: dict[str, Any] = {"size": len(chunk), "limit": limit, "start": start,
                               "isLastPage": last, "values": chunk}
        if not last:
            out["nextPageStart"] = start + limit
        return out

    def _commit(self, info: Mapping[str, Any]) -> dict[str, Any]:
        return {"id": info["sha"], "displayId": info["sha"][:11],
                "message": info["message"],
                "author": {"name": info["author_name"], "emailAddress": info["author_email"]},
                "authorTimestamp": 1_700_000_000_000,
                "parents": [{"id": p, "displayId": p[:11]} for p in info["parents"]]}

    def _tip(self, repo: Repo, name: str) -> str | None:
        return repo.bare.list_refs(full_ref(name)).get(full_ref(name))

    def _rescope(self, repo: Repo, pull: Pull) -> str:
        """The pull request's source commit; a moved branch bumps its version (rescope)."""
        if pull.state != "OPEN":
            return pull.seen_head
        head = self._tip(repo, pull.source) or pull.seen_head
        if head != pull.seen_head:
            pull.seen_head = head
            pull.version += 1
        return head

    def _ref(self, repo: Repo, name: str, sha: str) -> dict[str, Any]:
        return {"id": f"refs/heads/{name}", "displayId": name, "latestCommit": sha,
                "type": "BRANCH", "repository": {"slug": repo.full_name.split("/")[1]}}

    def _pull_json(self, repo: Repo, pull: Pull) -> dict[str, Any]:
        head = self._rescope(repo, pull)
        return {"id": pull.id, "version": pull.version, "title": pull.title,
                "description": pull.description, "state": pull.state,
                "open": pull.state == "OPEN", "closed": pull.state != "OPEN",
                "draft": pull.draft, "author": {"user": {"name": pull.author}},
                "fromRef": self._ref(repo, pull.source, head),
                "toRef": self._ref(repo, pull.target, self._tip(repo, pull.target) or ""),
                "reviewers": [{"user": {"name": r}, "approved": False} for r in pull.reviewers],
                "properties": {"mergeCommit": {"id": pull.merge_commit}}
                if pull.merge_commit else {},
                "links": {"self": [{"href": f"{self.url}/projects/{repo.full_name.split('/')[0]}"
                                            f"/repos/{repo.full_name.split('/')[1]}/pull-"
                                            f"requests/{pull.id}"}]}}

    # routing

    def respond(self, request: Request) -> Reply:
        query = request.query
        paths = urllib.parse.parse_qs(request.query_string).get("path")
        if paths:  # the archive's path= repeats: every value, NUL-separated
            query["path"] = "\0".join(paths)
        return Reply(*self.handle(request.method, request.path, query, request.body,
                                  request.headers))

    def fault_body(self, status: int) -> Any:
        return _errors(REASONS.get(status, "error"))

    def handle(self, method: str, path: str, query: Mapping[str, str], raw: bytes,
               headers: Mapping[str, str]) -> tuple[int, Any]:
        auth = headers.get("Authorization") or ""
        self.auth_seen.append(auth)
        scheme, _, token = auth.partition(" ")
        user = self.tokens.get(token) if scheme == "Bearer" else None
        if user is None:
            raise HTTPError(401, "Authentication failed. Please check your credentials and "
                                 "try again.", "com.atlassian.bitbucket.auth."
                                               "IncorrectPasswordAuthenticationException")
        if method != "GET" and token in self.read_only:
            raise HTTPError(401, "You are not permitted to access this resource",
                            "com.atlassian.bitbucket.AuthorisationException")
        found = re.fullmatch(r"/rest/(api|branch-utils)/1\.0/projects/([^/]+)/repos/([^/]+)"
                             r"(/.*)?", path)
        builds = re.fullmatch(r"/rest/build-status/1\.0/commits/([0-9a-f]{40})", path)
        if builds is not None and method == "GET":
            states = {}
            for repo in self.repos.values():
                states.update(repo.builds.get(builds[1], {}))
            values = [{"key": k, "state": s, "url": "https://ci.example/1"}
                      for k, s in sorted(states.items())]
            return 200, self._page(values, query)
        if found is None:
            raise HTTPError(404, "not found")
        repo = self.repos.get(f"{found[2]}/{found[3]}".lower())
        if repo is None:
            raise HTTPError(404, f"Repository {found[2]}/{found[3]} does not exist.",
                            "com.atlassian.bitbucket.repository.NoSuchRepositoryException")
        rest = urllib.parse.unquote(found[4] or "")
        body = json.loads(raw) if raw and "json" in (headers.get("Content-Type") or "") else {}
        if found[1] == "branch-utils":
            return self._branch_utils(repo, method, rest, body)
        return self._route(repo, method, rest, query, raw, headers, body, user)

    def _branch_utils(self, repo: Repo, method: str, rest: str,
                      body: Mapping[str, Any]) -> tuple[int, Any]:
        if rest != "/branches" or method != "DELETE":
            raise HTTPError(404, "not found")
        name = str(body.get("name") or "").removeprefix("refs/heads/")
        if name == repo.default:
            raise HTTPError(400, "The default branch cannot be deleted")
        tip = self._tip(repo, name)
        if tip is None:
            return 204, None
        expected = body.get("endPoint")
        if expected and expected != tip:
            raise HTTPError(400, f"Branch {name} is not at {expected}",
                            "com.atlassian.bitbucket.repository.RefChangedException")
        with repo.bare.locked():
            if not repo.bare.delete_ref(full_ref(name), old=tip):
                raise HTTPError(409, f"Branch {name} changed")
        for pull in repo.pulls.values():
            if pull.source == name and pull.state == "OPEN":
                self._rescope(repo, pull)
                pull.state = "DECLINED"
                pull.version += 1
        return 204, None

    def _route(self, repo: Repo, method: str, rest: str, query: Mapping[str, str], raw: bytes,
               headers: Mapping[str, str], body: Any, user: str) -> tuple[int, Any]:
        bare = repo.bare
        if rest == "/branches/default" and method == "GET":
            tip = self._tip(repo, repo.default)
            return 200, {**self._ref(repo, repo.default, tip or ""), "isDefault": True}
        if rest == "/branches" and method == "GET":
            text = query.get("filterText") or ""
            names = sorted(r.removeprefix("refs/heads/")
                           for r in bare.list_refs("refs/heads/") if text in r)
            names.sort(key=lambda n: n != text)  # boostMatches: the exact match first
            values = [self._ref(repo, n, self._tip(repo, n) or "") for n in names]
            return 200, self._page(values, query)
        if rest == "/archive" and method == "GET":
            at = query.get("at") or ""
            if bare.commit(at) is None:
                raise HTTPError(404, f"Commit {at} does not exist")
            prefix = (query.get("prefix") or "").rstrip("/") + "/" if query.get("prefix") else ""
            paths = [p for p in (query.get("path") or "").split("\0") if p]
            out = bare.git("archive", "--format=tar.gz", f"--prefix={prefix}", at,
                           *(["--", *paths] if paths else [])).stdout
            return 200, out
        if (rest == "/browse" or rest.startswith("/browse/")) and method == "GET" \
                and not query.get("type"):
            return 200, self._browse(repo, query, rest.removeprefix("/browse").strip("/"))
        if rest.startswith("/browse/") and method == "GET":
            tree = bare.read_tree(query.get("at") or repo.default)
            path = rest.removeprefix("/browse/")
            if path in tree:
                kind = "SUBMODULE" if tree[path][0] == "160000" else "FILE"
            elif any(p.startswith(path + "/") for p in tree):
                kind = "DIRECTORY"
            else:
                raise HTTPError(404, f"The path \"{path}\" does not exist at revision",
                                "com.atlassian.bitbucket.content.NoSuchPathException")
            return 200, {"type": kind}
        if rest.startswith("/browse/") and method == "PUT":
            return self._edit(repo, rest.removeprefix("/browse/"), raw, headers, user)
        if rest.startswith("/raw/") and method == "GET":
            data = bare.read_file(query.get("at") or repo.default, rest.removeprefix("/raw/"))
            if data is None:
                raise HTTPError(404, "The path does not exist")
            return 200, data
        if rest == "/commits" and method == "GET":
            tip = bare.resolve(query.get("until") or repo.default)
            if tip is None:
                raise HTTPError(404, "no such commit")
            return 200, self._page([self._commit(c) for c in bare.log(tip, 1000)], query)
        commit = re.fullmatch(r"/commits/([0-9a-f]{40})(/changes)?", rest)
        if commit is not None and method == "GET":
            info = bare.commit(commit[1])
            if info is None:
                raise HTTPError(404, f"Commit {commit[1]} does not exist")
            if commit[2] is None:
                return 200, self._commit(info)
            return 200, self._page(self._changes(repo, query.get("since") or
                                                 (info["parents"] or [ZERO])[0], commit[1]),
                                   query)
        if rest.startswith("/pull-requests"):
            return self._pulls(repo, method, rest.removeprefix("/pull-requests"), query, body,
                               user)
        raise HTTPError(404, "not found")

    def _browse(self, repo: Repo, query: Mapping[str, str], path: str) -> dict[str, Any]:
        """A directory's children (``git ls-tree -l``): ``path`` relative to the directory,
        ``type`` FILE / DIRECTORY / SUBMODULE, ``contentId`` (the blob's or tree's id),
        ``size`` for files; paged with ``start`` / ``limit``. A file: its lines."""
        at = query.get("at") or repo.default
        target = f"{at}:{path}" if path else at
        found = repo.bare.object_type(target)
        if found is None:
            raise HTTPError(404, f"The path \"{path}\" does not exist at revision {at}",
                            "com.atlassian.bitbucket.content.NoSuchPathException")
        if found == "blob":
            text = (repo.bare.read_file(at, path) or b"").decode("utf-8", "replace")
            return self._page([{"text": line} for line in text.splitlines()], query)
        listed = repo.bare.git("ls-tree", "-l", "-z", target)
        values: list[dict[str, Any]] = []
        for record in listed.stdout.decode("utf-8").split("\0"):
            if not record:
                continue
            meta, name = record.split("\t", 1)
            _mode, kind, oid, size = meta.split()
            child: dict[str, Any] = {
                "path": {"components": [name], "parent": path, "name": name,
                         "toString": name},
                "contentId": oid,
                "type": {"tree": "DIRECTORY", "commit": "SUBMODULE"}.get(kind, "FILE")}
            if kind == "blob":
                child["size"] = int(size)
            values.append(child)
        components = path.split("/") if path else []
        return {"path": {"components": components, "name": components[-1] if path else "",
                         "toString": path},
                "revision": at, "children": self._page(values, query)}

    def _changes(self, repo: Repo, since: str, until: str) -> list[dict[str, Any]]:
        out = repo.bare.git("diff-tree", "-r", "-M", "--raw", "-z", "--no-abbrev", since,
                            until).stdout.decode().split("\0")
        values: list[dict[str, Any]] = []
        i = 0
        while i < len(out) - 1:
            meta = out[i]
            if not meta.startswith(":"):
                i += 1
                continue
            old_mode, new_mode, old_id, new_id, status = meta[1:].split()
            if status[0] in "RC":
                path, i = out[i + 2], i + 3
            else:
                path, i = out[i + 1], i + 2
            kind = {"A": "ADD", "D": "DELETE", "M": "MODIFY", "T": "MODIFY", "R": "MOVE",
                    "C": "COPY"}.get(status[0], "UNKNOWN")
            node = "SUBMODULE" if "160000" in (old_mode, new_mode) else "FILE"
            values.append({"type": kind, "nodeType": node, "contentId": new_id,
                           "fromContentId": old_id, "path": {"toString": path},
                           "executable": new_mode == "100755",
                           "srcExecutable": old_mode == "100755"})
        return values

    def _edit(self, repo: Repo, path: str, raw: bytes, headers: Mapping[str, str],
              user: str) -> tuple[int, Any]:
        kind = headers.get("Content-Type") or ""
        if not kind.startswith("multipart/form-data"):
            raise HTTPError(415, "multipart/form-data expected")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + kind.encode() + b"\r\n\r\n" + raw)
        form = {str(p.get_param("name", header="content-disposition")):
                p.get_payload(decode=True) or b"" for p in message.iter_parts()}
        if "content" not in form or "branch" not in form:
            raise HTTPError(400, "The branch and content parameters are required")
        branch = form["branch"].decode()
        source = form.get("sourceBranch", b"").decode() or branch
        since = form.get("sourceCommitId", b"").decode() or None
        bare = repo.bare
        with bare.locked():
            tip = self._tip(repo, branch)
            if source != branch:
                if tip is not None:
                    raise HTTPError(409, f"Branch '{branch}' already exists",
                                    "com.atlassian.bitbucket.repository."
                                    "DuplicateRefException")
                start = self._tip(repo, source)
            else:
                start = tip
            if start is None:
                raise HTTPError(404, f"Branch '{source}' does not exist")
            now = bare.read_file(start, path)
            if since is None and now is not None:
                raise HTTPError(409, f"The file '{path}' already exists",
                                "com.atlassian.bitbucket.content.FileAlreadyExistsException")
            if since is not None and (now is None or bare.read_file(since, path) != now):
                raise HTTPError(409, f"The file '{path}' has been changed since {since[:11]}",
                                "com.atlassian.bitbucket.content.FileOutOfDateException")
            if now == form["content"]:
                raise HTTPError(409, "The content does not modify the file",
                                "com.atlassian.bitbucket.content.EditNoChangesException")
            tree = bare.write_tree_from(start, {path: form["content"]})
            sha = bare.commit_tree(tree, [start], form.get("message", b"").decode() or
                                   f"{path} edited online with Bitbucket", user,
                                   f"{user}@example.com")
            if not bare.update_ref(full_ref(branch), sha, old=tip or ZERO):
                raise HTTPError(409, f"Branch '{branch}' changed")
        if repo.ci_after_push is not None:
            register, run, end = repo.ci_after_push
            for delay, state in ((register, "INPROGRESS"), (register + run, end)):
                self.later(delay, self.set_build, repo.full_name, sha, state)
        return 200, self._commit(bare.commit(sha) or {})

    def _pulls(self, repo: Repo, method: str, rest: str, query: Mapping[str, str],
               body: Mapping[str, Any], user: str) -> tuple[int, Any]:
        if not rest and method == "GET":
            at = (query.get("at") or "").removeprefix("refs/heads/")
            state = query.get("state") or "OPEN"
            found = [self._pull_json(repo, p) for p in sorted(repo.pulls.values(),
                                                              key=lambda p: -p.id)
                     if (state == "ALL" or p.state == state)
                     and (not at or (p.source if query.get("direction") == "OUTGOING"
                                     else p.target) == at)]
            return 200, self._page(found, query)
        if not rest and method == "POST":
            source = str((body.get("fromRef") or {}).get("id") or "").removeprefix(
                "refs/heads/")
            target = str((body.get("toRef") or {}).get("id") or "").removeprefix("refs/heads/")
            if self._tip(repo, source) is None or self._tip(repo, target) is None:
                raise HTTPError(404, "Repository or branch does not exist")
            for other in repo.pulls.values():
                if other.state == "OPEN" and other.source == source and other.target == target:
                    raise HTTPError(409, "Only one pull request may be open for a given source "
                                         "and target branch", "com.atlassian.bitbucket.pull."
                                         "DuplicatePullRequestException")
            reviewers = [str((r.get("user") or {}).get("name")) for r in
                         body.get("reviewers") or []]
            unknown = [r for r in reviewers if r not in self.users or r == user]
            if unknown:
                raise HTTPError(409, f"Errors encountered while adding some reviewers: "
                                     f"{', '.join(unknown)}")
            pull = Pull(repo.next_id, str(body.get("title") or ""),
                        str(body.get("description") or ""), source, target, user,
                        reviewers, draft=bool(body.get("draft")),
                        seen_head=self._tip(repo, source) or "")
            repo.next_id += 1
            repo.pulls[pull.id] = pull
            return 201, self._pull_json(repo, pull)
        found = re.fullmatch(r"/(\d+)(/[a-z]+)?", rest)
        if found is None or int(found[1]) not in repo.pulls:
            raise HTTPError(404, f"Pull request {rest} does not exist")
        pull = repo.pulls[int(found[1])]
        sub = found[2] or ""
        self._rescope(repo, pull)
        out_of_date = HTTPError(409, "You are attempting to modify a pull request based on "
                                     "out-of-date information.", "com.atlassian.bitbucket."
                                     "pull.PullRequestOutOfDateException")
        if not sub and method == "GET":
            return 200, self._pull_json(repo, pull)
        if not sub and method == "PUT":
            if body.get("version") != pull.version:
                raise out_of_date
            pull.title = str(body.get("title", pull.title))
            pull.description = str(body.get("description", pull.description))
            pull.reviewers = [str((r.get("user") or {}).get("name"))
                              for r in body.get("reviewers") or []]
            pull.version += 1
            return 200, self._pull_json(repo, pull)
        if sub == "/comments" and method == "POST":
            pull.comments.append(str(body.get("text") or ""))
            return 201, {"id": len(pull.comments), "text": pull.comments[-1]}
        if sub in ("/decline", "/merge") and method == "POST":
            if str(pull.version) != query.get("version"):
                raise out_of_date
            if pull.state != "OPEN":
                raise HTTPError(409, f"The pull request is {pull.state.lower()}")
            if sub == "/decline":
                pull.state, pull.version = "DECLINED", pull.version + 1
                return 200, self._pull_json(repo, pull)
            return self._merge(repo, pull, body)
        raise HTTPError(404, "not found")

    def _merge(self, repo: Repo, pull: Pull, body: Mapping[str, Any]) -> tuple[int, Any]:
        head = pull.seen_head
        builds = repo.builds.get(head, {})
        passed = sum(1 for s in builds.values() if s == "SUCCESSFUL")
        if repo.required_builds and (passed < repo.required_builds or any(
                s != "SUCCESSFUL" for s in builds.values())):
            raise HTTPError(409, "Merging the pull request has been vetoed.",
                            "com.atlassian.bitbucket.pull.PullRequestMergeVetoedException")
        strategy = str(body.get("strategyId") or "no-ff")
        message = str(body.get("message") or f"Merge pull request #{pull.id}")
        bare = repo.bare
        base = self._tip(repo, pull.target) or ""
        if strategy == "rebase-ff-only":
            if not bare.is_ancestor(base, head) or not bare.update_ref(pull.target, head,
                                                                       old=base):
                raise HTTPError(409, "Unable to rebase")
            merged: str | None = head
        elif strategy in STRATEGIES:
            merged = bare.merge(pull.target, head, STRATEGIES[strategy], message)
        else:
            raise HTTPError(400, f"Unknown merge strategy {strategy}")
        if merged is None:
            raise HTTPError(409, "The pull request has conflicts")
        pull.state, pull.merge_commit, pull.version = "MERGED", merged, pull.version + 1
        return 200, self._pull_json(repo, pull)
