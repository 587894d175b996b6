"""A fake Azure DevOps Git REST API over real HTTP, backed by real bare git repositories.

It answers the endpoints promoter's Azure forge uses, with Azure's shapes: collections
as ``{"value": [...], "count": n}``, errors as a wrapped exception
``{"$id": "1", "innerException": null, "message": "TF...", "typeName": ..., "typeKey":
..., "errorCode": 0, "eventId": 3000}``, and ``api-version`` required on every call
(400 without it)::

    with FakeAzure(tmp_path) as az:
        repo = az.add_repo("acme/platform/config", {"envs/dev/app.yaml": b"image: a:1\\n"})
        az.add_token("pat-secret")                 # Basic base64(":pat-secret")
        az.add_token("job-token", bearer=True)     # Bearer (System.AccessToken)
        az.add_policy("acme/platform/config", "ci")  # a blocking status policy on main
        forge = AzureForge("acme/platform/config", api_url=az.url, token="pat-secret")
        repo.bare.log("main")                      # real commits

Time as Azure has it: a branch policy is evaluated a moment after a pull request opens
(``evaluation_delay``: before that the pull request has no evaluation record); CI posts
its commit status after a push (``ci_after_push``); completing a pull request is refused
while a blocking policy is not approved, or when ``lastMergeSourceCommit`` is not the
source branch's tip (409); auto-complete (``autoCompleteSetBy``) takes no commit: it
completes whatever the source then is, once the policies pass (the worst case: the forge
must not rely on it being pinned).

Force push: the identity that created a branch may move it to a commit that is not a
descendant, or delete it; anyone else gets ``forcePushRequired`` (TF401027), as Azure
Repos' default branch permissions give "Force push" to the branch's creator, unless
granted it (``Repo.force_pushers``, as docs/ci.md advises for ``promote/*``).

Faults and hooks: ``fail(...)`` and ``before(...)`` as every fake (``tests/fakes/server.py``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import time
import urllib.parse
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .gitea import FakeGitea, HTTPError
from .gitrepo import ZERO, BareRepo, full_ref

STRATEGIES = {"noFastForward": "merge", "squash": "squash", "rebase": "rebase",
              "rebaseMerge": "merge"}
NOBODY = "00000000-0000-0000-0000-000000000000"


def azure_error(status: int, message: str, type_key: str = "InvalidArgumentValueException"
                ) -> HTTPError:
    return HTTPError(status, body={
        "$id": "1", "innerException": None, "message": message,
        "typeName": f"Microsoft.TeamFoundation.Git.Server.{type_key}, "
                    "Microsoft.TeamFoundation.Git.Server",
        "typeKey": type_key, "errorCode": 0, "eventId": 3000})


@dataclass
class Policy:
    id: int
    context: str  # the status (genre/name) this status-check policy requires
    blocking: bool = True
    enabled: bool = True
    branch: str = "main"
    reviewer: bool = False  # a required-reviewer policy: approved only by a vote
    expired: bool = False  # its approval is for an older source commit (a build policy)


@dataclass
class Pull:
    number: int
    title: str
    description: str
    source: str  # refs/heads/...
    target: str
    author: str
    is_draft: bool = False
    labels: list[str] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)
    status: str = "active"  # active | completed | abandoned
    auto_complete: str | None = None  # identity id
    options: dict[str, Any] = field(default_factory=dict)
    merged_head: str | None = None
    merge_commit: str | None = None
    merge_message: str | None = None
    threads: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    approved: bool = False  # a reviewer voted approve
    queued: tuple[int, str | None] | None = None  # (reads left, pinned commit)
    created: float = field(default_factory=time.monotonic)


@dataclass
class Repo:
    id: str
    org: str
    project: str
    project_id: str
    name: str
    bare: BareRepo
    base_url: str
    default_branch: str = "main"
    evaluation_delay: float = 0.0  # seconds until a new pull request's policies report
    completion_reads: int = 0  # completion is queued: it lands on the n-th read after it
    ci_after_push: tuple[float, float, str] | None = None  # (register, run, end state)
    policies: list[Policy] = field(default_factory=list)
    pulls: dict[int, Pull] = field(default_factory=dict)
    statuses: dict[str, dict[str, str]] = field(default_factory=dict)  # sha -> ctx -> state
    creators: dict[str, str] = field(default_factory=dict)  # ref -> identity that made it
    force_pushers: set[str] = field(default_factory=set)  # granted "Force push" on all refs
    next_id: int = 1
    pushes: int = 0

    @property
    def slug(self) -> str:
        return f"{self.org}/{self.project}/{self.name}"


class FakeAzure(FakeGitea):
    """The Azure DevOps fake (on the fake Gitea's token and pull request bookkeeping)."""

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.azure: dict[str, Repo] = {}
        self.bearer: set[str] = set()
        self.ids: dict[str, str] = {}  # user -> identity id
        self.teams: dict[tuple[str, str], dict[str, list[str]]] = {}  # (org, project) -> ...

    # set-up and controls

    def add_token(self, value: str, user: str = "promoter-bot", write: bool = True,
                  bearer: bool = False) -> None:
        super().add_token(value, user, write)
        self.ids.setdefault(user, str(uuid.uuid5(uuid.NAMESPACE_URL, user)))
        if bearer:
            self.bearer.add(value)

    def add_team(self, org_project: str, name: str, members: list[str]) -> str:
        """A team of the project (``org/project``) and its members (user names)."""
        org, project = org_project.lower().split("/")
        self.teams.setdefault((org, project), {})[name] = list(members)
        return self.identity(f"team:{name}")

    def identity(self, user: str) -> str:
        return self.ids.setdefault(user, str(uuid.uuid5(uuid.NAMESPACE_URL, user)))

    def add_repo(self, full_name: str, files: Mapping[str, bytes], default_branch: str = "main",
                 **options: Any) -> Repo:  # type: ignore[override]
        org, project, name = full_name.split("/")
        bare = self.bare_repo(full_name, files, default_branch)
        repo = Repo(str(uuid.uuid4()), org, project, str(uuid.uuid5(uuid.NAMESPACE_DNS, project)),
                    name, bare, self.url, default_branch, **options)
        self.azure[full_name.lower()] = repo
        return repo

    def repo(self, full_name: str) -> Repo:  # type: ignore[override]
        return self.azure[full_name.lower()]

    def add_policy(self, full_name: str, context: str = "ci", **kw: Any) -> Policy:
        repo = self.repo(full_name)
        policy = Policy(len(repo.policies) + 1, context, **kw)
        repo.policies.append(policy)
        return policy

    def set_status(self, full_name: str, sha: str, state: str,  # type: ignore[override]
                   context: str = "ci") -> None:
        """A commit status (notSet | pending | succeeded | failed | error); a pull request
        set to auto-complete whose policies now all pass is completed."""
        with self.lock:
            repo = self.repo(full_name)
            repo.statuses.setdefault(sha, {})[context] = state
            self._auto_complete(repo)

    def approve(self, full_name: str, number: int) -> None:
        with self.lock:
            repo = self.repo(full_name)
            repo.pulls[number].approved = True
            self._auto_complete(repo)

    def pulls(self, full_name: str) -> list[Pull]:  # type: ignore[override]
        return sorted(self.repo(full_name).pulls.values(), key=lambda p: p.number)

    # policies

    def _evaluations(self, repo: Repo, pull: Pull) -> list[tuple[Policy, str]]:
        if time.monotonic() - pull.created < repo.evaluation_delay:
            return []  # not evaluated yet
        head = repo.bare.resolve(pull.source) or ""
        out = []
        for policy in repo.policies:
            if not policy.enabled or full_ref(policy.branch) != pull.target:
                continue
            if policy.reviewer:
                out.append((policy, "approved" if pull.approved else "queued"))
                continue
            state = repo.statuses.get(head, {}).get(policy.context)
            for posted in pull.statuses:
                if posted["context"]["name"] == policy.context:
                    state = posted["state"]
            status = {"succeeded": "approved", "failed": "rejected",
                      "error": "rejected"}.get(state or "", "queued")
            out.append((policy, status))
        return out

    def _blocked(self, repo: Repo, pull: Pull) -> str | None:
        """Why a blocking policy stops completion now (None: none does)."""
        evaluated = {p.id: s for p, s in self._evaluations(repo, pull)}
        for policy in repo.policies:
            if policy.enabled and policy.blocking and full_ref(policy.branch) == pull.target \
                    and evaluated.get(policy.id) != "approved":
                return (f"The pull request cannot be completed: the required policy "
                        f"'{policy.context}' is {evaluated.get(policy.id, 'not evaluated')}")
        return None

    def _auto_complete(self, repo: Repo) -> None:
        for pull in repo.pulls.values():
            if pull.status == "active" and pull.auto_complete and not pull.is_draft \
                    and self._blocked(repo, pull) is None:
                with contextlib.suppress(HTTPError):
                    self._complete(repo, pull, None)

    def _complete(self, repo: Repo, pull: Pull, expected: str | None) -> None:
        bare = repo.bare
        head = bare.resolve(pull.source) or ""
        if expected is not None and expected != head:
            raise azure_error(409, f"TF401181: The pull request cannot be completed because "
                                   f"the source branch was updated (lastMergeSourceCommit "
                                   f"{expected} is not {head}).", "GitPullRequestStaleException")
        options = pull.options
        strategy = STRATEGIES.get(str(options.get("mergeStrategy") or "noFastForward"), "merge")
        message = str(options.get("mergeCommitMessage") or
                      f"Merged PR {pull.number}: {pull.title}")
        merged = bare.merge(_short(pull.target), head, strategy, message)
        if merged is None:
            raise azure_error(409, "TF401183: The pull request has merge conflicts.",
                              "GitPullRequestMergeConflictException")
        pull.status, pull.merged_head, pull.merge_commit = "completed", head, merged
        pull.merge_message = message
        if options.get("deleteSourceBranch"):
            bare.delete_ref(pull.source, old=head)

    # JSON shapes

    def _who(self, user: str) -> dict[str, Any]:
        return {"id": self.identity(user), "displayName": user, "uniqueName": user}

    def _pull_json(self, repo: Repo, pull: Pull) -> dict[str, Any]:  # type: ignore[override]
        head = pull.merged_head or repo.bare.resolve(pull.source) or ""
        data: dict[str, Any] = {
            "pullRequestId": pull.number, "codeReviewId": pull.number, "status": pull.status,
            "title": pull.title, "description": pull.description,
            "sourceRefName": pull.source, "targetRefName": pull.target,
            "isDraft": pull.is_draft, "createdBy": self._who(pull.author),
            "mergeStatus": self._merge_status(repo, pull, head),
            "lastMergeSourceCommit": {"commitId": head},
            "labels": [{"id": str(uuid.uuid5(uuid.NAMESPACE_OID, n)), "name": n, "active": True}
                       for n in pull.labels],
            "reviewers": [{"id": r, "vote": 0} for r in pull.reviewers],
            "repository": {"id": repo.id, "name": repo.name,
                           "project": {"id": repo.project_id, "name": repo.project}},
            "url": f"{repo.base_url}/{repo.org}/{repo.project}/_apis/git/repositories/"
                   f"{repo.id}/pullRequests/{pull.number}",
            "completionOptions": pull.options,
        }
        if pull.auto_complete:
            data["autoCompleteSetBy"] = {"id": pull.auto_complete}
        if pull.merge_commit:
            data["lastMergeCommit"] = {"commitId": pull.merge_commit}
        return data

    @staticmethod
    def _merge_status(repo: Repo, pull: Pull, head: str) -> str:
        """Azure's test merge of the source into the target: conflicts | succeeded."""
        if pull.status != "active":
            return "succeeded"
        bare = repo.bare
        target = bare.resolve(pull.target) or ""
        if not head or not target or bare.is_ancestor(target, head):
            return "succeeded"
        return "succeeded" if bare._merged_tree(target, head) is not None else "conflicts"

    def _commit_json(self, repo: Repo, info: Mapping[str, Any]) -> dict[str, Any]:  # type: ignore[override]
        return {"commitId": info["sha"], "treeId": info["tree"], "parents": info["parents"],
                "comment": info["message"],
                "author": {"name": info["author_name"], "email": info["author_email"],
                           "date": info["author_date"]},
                "committer": {"name": info["committer_name"], "email": info["committer_email"],
                              "date": info["committer_date"]}}

    # routing

    def handle(self, method: str, path: str, query: Mapping[str, str], body: Any,
               headers: Mapping[str, str]) -> tuple[int, Any]:
        auth = headers.get("Authorization") or headers.get("authorization") or ""
        self.auth_seen.append(auth)
        scheme, _, value = auth.partition(" ")
        token = ""
        if scheme == "Basic":
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                token = base64.b64decode(value).decode().partition(":")[2]
        elif scheme == "Bearer" and value in self.bearer:
            token = value
        if token not in self.tokens:
            raise HTTPError(401, body={"message": "TF400813: The user '' is not authorized to "
                                                  "access this resource.",
                                       "typeKey": "UnauthorizedRequestException"})
        user = self.tokens[token]
        if not query.get("api-version"):
            raise azure_error(400, "No api-version was supplied for the \"" + method +
                              "\" request. The version must be supplied either as part of the "
                              "Accept header (e.g. \"application/json; api-version=1.0\") or "
                              "as a query parameter (e.g. \"?api-version=1.0\").",
                              "VssVersionNotSpecifiedException")
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if len(parts) == 3 and parts[1:] == ["_apis", "connectionData"]:
            return 200, {"authenticatedUser": self._who(user),
                         "authorizedUser": self._who(user), "instanceId": str(uuid.uuid4())}
        if len(parts) >= 5 and parts[1:3] == ["_apis", "projects"] and parts[4] == "teams":
            return 200, self._teams(parts[0], parts[3], parts[5:], query)
        if len(parts) < 4 or parts[2] != "_apis":
            raise azure_error(404, "The controller for path was not found.",
                              "HttpException")
        org, project = parts[0], parts[1]
        rest = parts[3:]
        if method != "GET" and token in self.read_only and rest[:2] != ["git", "blobs"]:
            raise azure_error(403, "TF401027: You need the Git 'GenericContribute' permission "
                                   "to perform this action.", "GitNeedsPermissionException")
        if rest[:2] == ["git", "repositories"] and len(rest) >= 3:
            repo = self.azure.get(f"{org}/{project}/{rest[2]}".lower())
            if repo is None:
                raise azure_error(404, f"TF401019: The Git repository with name or identifier "
                                       f"{rest[2]} does not exist or you do not have "
                                       "permissions for the operation you are attempting.",
                                  "GitRepositoryNotFoundException")
            return self._repo_route(repo, method, rest[3:], query, body, user)
        repos = [r for r in self.azure.values()
                 if r.org.lower() == org.lower() and r.project.lower() == project.lower()]
        if rest == ["git", "policy", "configurations"] and method == "GET":
            found = [r for r in repos if r.id == query.get("repositoryId")]
            ref = query.get("refName")
            configs = [self._config(p) for r in found for p in r.policies
                       if ref is None or full_ref(p.branch) == ref]
            return 200, {"value": configs, "count": len(configs)}
        if rest == ["policy", "evaluations"] and method == "GET":
            artifact = query.get("artifactId") or ""
            head, _, number = artifact.rpartition("/")
            for repo in repos:
                if head == f"vstfs:///CodeReview/CodeReviewId/{repo.project_id}" and \
                        number.isdigit() and int(number) in repo.pulls:
                    pull = repo.pulls[int(number)]
                    items = [{"evaluationId": str(uuid.uuid4()), "status": status,
                              "artifactId": artifact, "configuration": self._config(policy),
                              "context": {"isExpired": True} if policy.expired else {}}
                             for policy, status in self._evaluations(repo, pull)]
                    return 200, {"value": items, "count": len(items)}
            raise azure_error(404, f"artifact {artifact} not found", "ArtifactNotFoundException")
        raise azure_error(404, "The controller for path was not found.", "HttpException")

    def _teams(self, org: str, project: str, rest: list[str],
               query: Mapping[str, str]) -> dict[str, Any]:
        teams = self.teams.get((org.lower(), project.lower()), {})
        top, skip = int(query.get("$top") or 100), int(query.get("$skip") or 0)
        if not rest:
            items = [{"id": self.identity(f"team:{n}"), "name": n} for n in sorted(teams)]
        elif rest[1:] == ["members"]:
            named = [n for n in teams if self.identity(f"team:{n}") == rest[0]]
            if not named:
                raise azure_error(404, f"The team with id {rest[0]} does not exist.",
                                  "TeamNotFoundException")
            items = [{"identity": {"id": self.identity(u), "displayName": u.title(),
                                   "uniqueName": f"{u}@example.com"}}
                     for u in teams[named[0]]]
        else:
            raise azure_error(404, "The controller for path was not found.", "HttpException")
        page = items[skip: skip + top]
        return {"value": page, "count": len(page)}

    @staticmethod
    def _config(policy: Policy) -> dict[str, Any]:
        kind = "Minimum number of reviewers" if policy.reviewer else "Status"
        return {"id": policy.id, "isBlocking": policy.blocking, "isEnabled": policy.enabled,
                "isDeleted": False, "type": {"displayName": kind},
                "settings": {"statusName": policy.context,
                             "scope": [{"refName": full_ref(policy.branch), "matchKind": "Exact"}]}}

    def _repo_route(self, repo: Repo, method: str, rest: list[str], query: Mapping[str, str],
                    body: Any, user: str) -> tuple[int, Any]:
        bare = repo.bare
        if not rest and method == "GET":
            return 200, {"id": repo.id, "name": repo.name, "isDisabled": False,
                         "defaultBranch": full_ref(repo.default_branch),
                         "project": {"id": repo.project_id, "name": repo.project},
                         "webUrl": f"{repo.base_url}/{repo.org}/{repo.project}/_git/{repo.name}"}
        head, tail = rest[0], rest[1:]
        if head == "refs" and not tail and method == "GET":
            prefix = "refs/" + (query.get("filter") or "")
            refs = [{"name": n, "objectId": s} for n, s in sorted(bare.list_refs(prefix).items())]
            return 200, {"value": refs, "count": len(refs)}
        if head == "refs" and not tail and method == "POST":
            return 200, self._update_refs(repo, body or [], user)
        if head == "commits" and len(tail) == 1 and method == "GET":
            info = bare.commit(tail[0]) if len(tail[0]) == 40 else None
            if info is None:
                raise azure_error(404, f"TF401175:The version descriptor <Commit: {tail[0]}> "
                                       "could not be resolved to a version in the repository",
                                  "GitUnresolvableToCommitException")
            return 200, self._commit_json(repo, info)
        if head == "commits" and tail[1:] == ["statuses"] and method == "GET":
            found = [{"state": s, "context": {"name": c, "genre": ""}, "description": ""}
                     for c, s in sorted(repo.statuses.get(tail[0], {}).items())]
            return 200, {"value": found, "count": len(found)}
        if head == "trees" and len(tail) == 1 and method == "GET":
            return 200, self._tree(repo, tail[0], query.get("recursive") == "true")
        if head == "blobs" and not tail and method == "POST":
            data = io.BytesIO()
            with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as archive:
                for blob in body or []:
                    if bare.object_type(str(blob)) != "blob":
                        raise azure_error(404, f"TF401174: The item {blob} could not be found.",
                                          "GitItemNotFoundException")
                    archive.writestr(str(blob), bare.read_blob(str(blob)))
            return 200, data.getvalue()
        if head == "pushes" and not tail and method == "POST":
            return 201, self._push(repo, body or {}, user)
        if head == "pullrequests":
            return self._pull_route(repo, method, tail, query, body, user)
        raise azure_error(404, "The controller for path was not found.", "HttpException")

    def _tree(self, repo: Repo, sha: str, recursive: bool) -> dict[str, Any]:
        bare = repo.bare
        if bare.object_type(sha) != "tree":
            raise azure_error(404, f"TF401174: The item {sha} could not be found.",
                              "GitItemNotFoundException")
        args = ["ls-tree", "-z", "--full-tree", "-l"] + (["-r", "-t"] if recursive else []) + [sha]
        entries = []
        for record in bare.git(*args).stdout.decode().split("\0"):
            if not record:
                continue
            meta, path = record.split("\t", 1)
            mode, typ, obj, size = meta.split()
            entries.append({"objectId": obj, "relativePath": path, "mode": mode.lstrip("0"),
                            "gitObjectType": typ, "size": 0 if size == "-" else int(size)})
        return {"objectId": sha, "treeEntries": entries, "size": len(entries)}

    def _update_refs(self, repo: Repo, updates: list[Mapping[str, Any]],
                     user: str) -> dict[str, Any]:
        bare = repo.bare
        results = []
        for update in updates:
            name = str(update.get("name") or "")
            old, new = str(update.get("oldObjectId") or ""), str(update.get("newObjectId") or "")
            result = {"name": name, "oldObjectId": old, "newObjectId": new,
                      "repositoryId": repo.id, "success": False, "customMessage": None}
            with bare.locked():
                current = bare.resolve(name) if bare.list_refs(name).get(name) else None
                rewrite = current is not None and (new == ZERO or bare.object_type(new) != "commit"
                                                   or not bare.is_ancestor(current, new))
                if (current or ZERO) != old:
                    result["updateStatus"] = "staleOldObjectId"
                elif rewrite and repo.creators.get(name) != user \
                        and user not in repo.force_pushers:
                    result["updateStatus"] = "forcePushRequired"
                    result["customMessage"] = ("TF401027: You need the Git 'ForcePush' "
                                               "permission to perform this action.")
                elif new == ZERO:
                    bare.delete_ref(name, old=old)
                    repo.creators.pop(name, None)
                    result.update(success=True, updateStatus="succeeded")
                elif bare.update_ref(name, new, old=old):
                    if current is None:
                        repo.creators[name] = user
                    result.update(success=True, updateStatus="succeeded")
                else:
                    result["updateStatus"] = "staleOldObjectId"
            results.append(result)
        return {"value": results, "count": len(results)}

    def _push(self, repo: Repo, body: Mapping[str, Any], user: str) -> dict[str, Any]:
        bare = repo.bare
        updates = body.get("refUpdates") or []
        commits = body.get("commits") or []
        if len(updates) != 1 or len(commits) != 1:
            raise azure_error(400, "TF401036: one ref update and one commit expected here")
        name = str(updates[0].get("name") or "")
        old = str(updates[0].get("oldObjectId") or "")
        commit = commits[0]
        with bare.locked():
            current = bare.resolve(name) if bare.list_refs(name).get(name) else None
            if current is not None and current != old:
                raise azure_error(409, f"TF401028: The reference '{name}' has already been "
                                       "updated by another client, so you cannot update it. "
                                       "Please try again.", "GitReferenceStaleException")
            parent = None if old == ZERO else old
            if parent is not None and bare.object_type(parent) != "commit":
                raise azure_error(400, f"TF401035: The object '{old}' does not exist.",
                                  "GitObjectDoesNotExistException")
            existing = bare.read_tree(parent) if parent else {}
            changes: dict[str, bytes | None] = {}
            for change in commit.get("changes") or []:
                path = str((change.get("item") or {}).get("path") or "").lstrip("/")
                kind = change.get("changeType")
                if kind == "add" and path in existing:
                    raise azure_error(400, f"TF401174: The item '/{path}' already exists.",
                                      "GitItemAlreadyExistsException")
                if kind in ("edit", "delete") and path not in existing:
                    raise azure_error(400, f"TF401174: The item '/{path}' could not be found.",
                                      "GitItemNotFoundException")
                content = change.get("newContent") or {}
                try:
                    data = base64.b64decode(str(content.get("content") or ""), validate=True) \
                        if content.get("contentType") == "base64encoded" \
                        else str(content.get("content") or "").encode()
                except binascii.Error:
                    raise azure_error(400, "The body of the request contains invalid Json.") \
                        from None
                changes[path] = None if kind == "delete" else data
            who = commit.get("author") or {}
            tree = bare.write_tree_from(parent, changes)
            sha = bare.commit_tree(tree, [parent] if parent else [], str(commit.get("comment")),
                                   str(who.get("name") or user),
                                   str(who.get("email") or f"{user}@example.com"))
            if not bare.update_ref(name, sha, old=current or ZERO):
                raise azure_error(409, f"TF401028: The reference '{name}' has already been "
                                       "updated by another client.", "GitReferenceStaleException")
            if current is None:
                repo.creators[name] = user
        repo.pushes += 1
        if repo.ci_after_push is not None:
            self._ci(repo, sha, *repo.ci_after_push)
        return {"pushId": repo.pushes, "pushedBy": self._who(user),
                "commits": [{"commitId": sha, "comment": commit.get("comment")}],
                "refUpdates": [{"name": name, "oldObjectId": old, "newObjectId": sha}]}

    def _ci(self, repo: Repo, sha: str, register: float, run: float,  # type: ignore[override]
            end: str) -> None:
        for delay, state in ((register, "pending"), (register + run, end)):
            self.later(delay, self.set_status, repo.slug, sha, state)

    def _pull_of(self, repo: Repo, number: str) -> Pull:  # type: ignore[override]
        try:
            return repo.pulls[int(number)]
        except (KeyError, ValueError):
            raise azure_error(404, "TF401180: The requested pull request was not found.",
                              "GitPullRequestNotFoundException") from None

    def _pull_route(self, repo: Repo, method: str, tail: list[str], query: Mapping[str, str],
                    body: Any, user: str) -> tuple[int, Any]:
        if not tail and method == "GET":
            source = query.get("searchCriteria.sourceRefName")
            target = query.get("searchCriteria.targetRefName")
            status = query.get("searchCriteria.status") or "active"
            top, skip = int(query.get("$top") or 101), int(query.get("$skip") or 0)
            found = [self._pull_json(repo, p) for p in sorted(repo.pulls.values(),
                                                              key=lambda p: -p.number)
                     if (status == "all" or p.status == status)
                     and source in (None, p.source) and target in (None, p.target)]
            page = found[skip: skip + top]
            return 200, {"value": page, "count": len(page)}
        if not tail and method == "POST":
            return 201, self._create_pull(repo, body or {}, user)
        pull = self._pull_of(repo, tail[0])
        sub = tail[1:]
        if not sub and method == "GET":
            if pull.queued is not None:
                left, pinned = pull.queued
                pull.queued = (left - 1, pinned) if left > 1 else None
                if left <= 1:
                    self._complete(repo, pull, pinned)
            return 200, self._pull_json(repo, pull)
        if not sub and method == "PATCH":
            return 200, self._update_pull(repo, pull, body or {}, user)
        if sub == ["statuses"] and method == "GET":
            return 200, {"value": pull.statuses, "count": len(pull.statuses)}
        if sub == ["labels"] and method == "POST":
            name = str((body or {}).get("name") or "")
            if name not in pull.labels:
                pull.labels.append(name)
            return 200, {"id": str(uuid.uuid5(uuid.NAMESPACE_OID, name)), "name": name,
                         "active": True}
        if sub == ["threads"] and method == "GET":
            return 200, {"value": pull.threads, "count": len(pull.threads)}
        if sub == ["threads"] and method == "POST":
            thread = {"id": len(pull.threads) + 1, "status": (body or {}).get("status"),
                      "comments": [{"id": i + 1, "content": c.get("content"),
                                    "author": self._who(user)}
                                   for i, c in enumerate((body or {}).get("comments") or [])]}
            pull.threads.append(thread)
            return 200, thread
        raise azure_error(404, "The controller for path was not found.", "HttpException")

    def _create_pull(self, repo: Repo, body: Mapping[str, Any], user: str) -> dict[str, Any]:
        source, target = str(body.get("sourceRefName") or ""), str(body.get("targetRefName") or "")
        if not str(body.get("title") or "").strip():
            raise azure_error(400, "TF401179: The title of the pull request is required.")
        if len(str(body.get("description") or "")) > 4000:
            raise azure_error(400, "The description of the pull request is limited to 4000 "
                                   "characters.")
        for ref in (source, target):
            if repo.bare.resolve(ref) is None or not ref.startswith("refs/heads/"):
                raise azure_error(404, f"TF401398: The pull request cannot be activated because "
                                       f"the source and/or the target branch no longer exists "
                                       f"({ref}).", "GitPullRequestCannotBeActivated")
        for other in repo.pulls.values():
            if other.status == "active" and other.source == source and other.target == target:
                raise azure_error(409, "TF401179: An active pull request for the source and "
                                       "target branch already exists.",
                                  "GitPullRequestExistsException")
        reviewers = [str(r.get("id")) for r in body.get("reviewers") or []]
        for reviewer in reviewers:
            if reviewer not in self.ids.values():
                raise azure_error(400, f"The identity {reviewer} could not be found.",
                                  "IdentityNotFoundException")
        pull = Pull(repo.next_id, str(body["title"]), str(body.get("description") or ""),
                    source, target, user, is_draft=bool(body.get("isDraft")),
                    labels=[str(x.get("name")) for x in body.get("labels") or []],
                    reviewers=reviewers)
        repo.next_id += 1
        repo.pulls[pull.number] = pull
        return self._pull_json(repo, pull)

    def _update_pull(self, repo: Repo, pull: Pull, body: Mapping[str, Any],
                     user: str) -> dict[str, Any]:
        if pull.status != "active" and body.get("status") != pull.status:
            raise azure_error(409, f"TF401181: The pull request cannot be edited due to its "
                                   f"state ({pull.status}).", "GitPullRequestNotEditableException")
        if "title" in body:
            pull.title = str(body["title"])
        if "description" in body:
            pull.description = str(body["description"])
        if "completionOptions" in body:
            pull.options = dict(body["completionOptions"] or {})
        expected = (body.get("lastMergeSourceCommit") or {}).get("commitId")
        if "autoCompleteSetBy" in body:
            who = str((body.get("autoCompleteSetBy") or {}).get("id") or "")
            pull.auto_complete = None if who in ("", NOBODY) else who
            # (Azure takes no commit for auto-complete: lastMergeSourceCommit is ignored)
            self._auto_complete(repo)
        status = body.get("status")
        if status == "abandoned" and pull.status == "active":
            pull.status, pull.auto_complete = "abandoned", None
        elif status == "completed" and pull.status == "active":
            if pull.is_draft:
                raise azure_error(400, "TF401417: A draft pull request cannot be completed.",
                                  "InvalidArgumentValueException")
            head = repo.bare.resolve(pull.source) or ""
            if expected != head:
                raise azure_error(409, f"TF401181: The pull request cannot be completed because "
                                       f"lastMergeSourceCommit {expected} is not the source "
                                       f"branch's tip {head}.", "GitPullRequestStaleException")
            blocked = self._blocked(repo, pull)
            if blocked is not None:
                raise azure_error(409, blocked, "GitPullRequestPolicyRejectedException")
            if repo.completion_reads:  # Azure answers first and completes a moment later
                pull.queued = (repo.completion_reads, expected)
                return self._pull_json(repo, pull)
            self._complete(repo, pull, expected)
        return self._pull_json(repo, pull)


def _short(ref: str) -> str:
    return ref.removeprefix("refs/heads/")


__all__ = ["FakeAzure", "Policy", "Pull", "Repo", "azure_error"]
