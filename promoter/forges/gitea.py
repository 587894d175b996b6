"""The Gitea / Forgejo forge: a small client on ``requests`` against the REST API v1.

Client: a small one here, on ``requests``. Of the Python clients for Gitea/Forgejo,
``giteapy`` (generated from Gitea's Swagger) was last released in January 2020, before
the multi-file contents API and merge-when-checks-succeed existed; ``py-gitea`` wraps
organisations, teams, repositories and users by its own account ("not the full Swagger
API"), not the contents, pull-merge and status endpoints promoter needs; ``pyforgejo``
is generated for Forgejo only. The few endpoints are called here directly, so that
``promoter.retry`` owns every retry and ``promoter.forges.http`` guards the token.

One promotion is one commit, made by one ``POST /repos/{owner}/{repo}/contents``
(ChangeFilesOptions) with ``branch`` (the base), ``new_branch`` (the promotion branch)
and an ``update`` (with the replaced blob's ``sha``: Gitea refuses, 422, when the file
moved) or ``create`` per file: Gitea creates the branch and the commit together. Gitea
takes no start commit, so the commit's parent is checked to be the snapshot's commit;
when the base moved in between, the run is planned again (ConflictError).

Requests of a first promotion (base given, no reviewers, no checks)::

    snapshot       GET branches/{base}, GET archive/{commit}.tar.gz, GET git/trees/{commit}
                   (is .promoter.yaml there, as which blob?) (+ GET repo when the base is
                   the default branch; + GET git/blobs/{sha} when the archive's copy differs)
    read_head      GET branches/{branch}                         (404: none yet)
                   (+ GET git/commits/{sha} for its parents when it exists)
    write_commit   POST contents
    find_request   (none for a new branch)
    open_request   POST pulls (+ GET labels when labels are asked; + POST
                   pulls/{n}/requested_reviewers when reviewers are)
    checks         GET commits/{sha}/status                      (combined: Gitea Actions
                   report commit statuses too)
    merge          POST pulls/{n}/merge with ``head_commit_id`` (Gitea answers 200 with no
                   body: the merge commit is not reported)

Replacing promoter's own branch tip (``replace=head``): Gitea has no force option on the
contents API, and deleting the branch closes its pull request (Gitea's DeleteBranch runs
CloseBranchPulls from its push queue, after the delete returns: it could even close a
request opened from a re-created branch). So the new commit is made on a scratch branch
``<branch>-next-<base8>`` from the base, the promotion branch is moved to it with
``PUT branches/{branch}`` ``{new_commit_id, old_commit_id, force}`` -- a compare-and-swap
on the commit being replaced -- and the scratch branch is deleted: 4 requests, no window.
A server without that endpoint (an older Gitea; a Forgejo without it) answers 404/405:
promoter then stops (exit 5) rather than delete the branch under its open request.

``changed_files`` lists the commit's tree and its parent's (``git/trees?recursive``)
and compares them: every path with its mode and blob id, so deletions, renames, mode
and type changes are seen exactly (Gitea's commit ``files`` carries no blob ids).

Merging pins the head: ``head_commit_id`` (409 "head out of date" when it moved).
Auto-merge is Gitea's ``merge_when_checks_succeed``: when the request is mergeable now,
Gitea merges it at once with the same ``head_commit_id``; otherwise it schedules the
merge (201) -- and a scheduled merge takes no head commit, so promoter reads the pull
request right after scheduling and cancels (``DELETE pulls/{n}/merge``) and re-plans
when its head is not the proved commit. A push to the promotion branch after that and
before the checks finish would be merged by Gitea: protect ``promote/*`` so that only
the bot pushes there (docs/ci.md).

Retries belong to ``promoter.retry``; a write is retried only after checking whether the
failed attempt took effect (a commit that is ours on the branch, an open pull request of
the branch, a merged pull request, a comment already posted, the branch already moved).
Tokens: ``Authorization: token ...``, to the ``--api-url`` origin only.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from promoter import retry
from promoter.errors import (
    ConfigError,
    ConflictError,
    ForgeError,
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
    git_blob_sha,
    plain_edits,
    refuse_signing,
    says_conflict,
)
from promoter.forges.firstparent import first_parents
from promoter.forges.http import read_capped, refuse_cross_origin, said
from promoter.forges.ownwrite import OwnWrite
from promoter.forges.registry import Setup, api_root
from promoter.forges.rest import HttpFailure, RestClient, split_repo
from promoter.identity import Identity
from promoter.limits import MAX_ARCHIVE_BYTES
from promoter.paths import CONFIG_FILE
from promoter.redact import register

PAGE = 50  # Gitea's default maximum page size (MAX_RESPONSE_ITEMS)
TREE_PAGE = 1000
MAX_TREE_PAGES = 20  # a tree listed in more pages is not read to prove a commit
MAX_TITLE = 255
MAX_BODY = 65_000
WIP = "WIP: "  # Gitea's default work-in-progress prefix: a draft pull request

AUTH_HINT = ("set PROMOTE_TOKEN / GITEA_TOKEN / FORGEJO_TOKEN to an access token with the "
             "write:repository scope (and write:issue for labels and comments) of a user "
             "who can write to the config repo")
REDIRECT_HINT = "check --api-url: give the Gitea server root that serves the API itself"

_STATES = {"success": ChecksState.SUCCESS, "warning": ChecksState.SUCCESS,
           "pending": ChecksState.PENDING, "failure": ChecksState.FAILURE,
           "error": ChecksState.FAILURE}


@dataclass(frozen=True)
class _Answer:
    status: int
    data: Any


def _message(response: requests.Response) -> str:
    return said(response, _error_text)


def _error_text(data: Any) -> str:
    """Gitea's error body: ``{"message", "errors": [...]}`` (or ``error``)."""
    if isinstance(data, dict):
        text = data.get("message") or data.get("error") or ""
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            text = f"{text} ({'; '.join(str(e) for e in errors)})".strip()
        return str(text)[:500]
    return str(data)[:200]


def _pull(data: Mapping[str, Any]) -> PullRequest:
    head = data.get("head") or {}
    base = data.get("base") or {}
    state = "merged" if data.get("merged") else str(data.get("state") or "open")
    labels = tuple(str(x.get("name")) for x in data.get("labels") or [] if isinstance(x, dict))
    return PullRequest(number=int(data["number"]), url=str(data.get("html_url") or ""),
                       branch=str(head.get("ref") or ""), base=str(base.get("ref") or ""),
                       title=str(data.get("title") or ""), body=str(data.get("body") or ""),
                       head_sha=str(head.get("sha") or ""), state=state, labels=labels,
                       base_sha=str(base.get("sha") or ""))


def _split(message: str) -> dict[str, str]:
    """Gitea's merge title and message fields: promoter's own, trailers included."""
    if not message.strip():
        return {}
    title, _, rest = message.partition("\n")
    return {"MergeTitleField": title, "MergeMessageField": rest.strip("\n")}


def _parent(item: Mapping[str, Any]) -> str | None:
    parents = item.get("parents") or []
    return str(parents[0].get("sha")) if parents else None


def _logged(sha: str, item: Mapping[str, Any]) -> LoggedCommit:
    commit = item.get("commit") or {}
    author = commit.get("author") or {}
    return LoggedCommit(sha=sha, message=str(commit.get("message") or ""),
                        author=str(author.get("name") or ""),
                        date=str(author.get("date") or item.get("created") or ""))


class GiteaForge(RestClient):
    """A config repo on Gitea or Forgejo (API v1).

    ``repo`` is ``owner/name``; ``api_url`` the server root (``https://gitea.example.com``;
    a trailing ``/api/v1`` is accepted); ``token`` an access token. Nothing here reads
    the environment."""

    name = "gitea"
    service = "Gitea"
    auth_hint = AUTH_HINT
    redirect_hint = REDIRECT_HINT
    url_hint = "check --api-url: it must be the Gitea server root"
    body_limit = MAX_BODY
    has_checks = True
    branch_is_request = False
    has_labels = True
    arms_auto_merge = True

    def __init__(self, repo: str, api_url: str, token: str | None = None,
                 retry_timeout: float = retry.DEFAULT_TIMEOUT,
                 sleep: Callable[[float], None] = time.sleep, timeout: float = 15,
                 ca_bundle: str | None = None, patience: retry.Patience | None = None
                 ) -> None:
        register(token)
        repo, owner, name = split_repo(repo, "OWNER/NAME", "give the Gitea repository as "
                                       "owner/name, e.g. acme/config")
        url = api_url.strip().rstrip("/").removesuffix("/api/v1")
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--api-url {url!r} is not an http(s) URL",
                             hint="give the Gitea server root, e.g. https://gitea.example.com")
        self.repo = repo
        self.api_url = url
        self._root = f"{url}/api/v1/repos/{quote(owner, safe='')}/{quote(name, safe='')}"
        self._author: Identity | None = None
        self._labels: dict[str, int] | None = None
        session = self._prepare(token, retry_timeout=retry_timeout, sleep=sleep,
                                timeout=timeout, patience=patience, ca_bundle=ca_bundle)
        if token:
            session.headers["Authorization"] = f"token {token}"
        self._session = refuse_cross_origin(session)  # the token stays with its host

    # -- plumbing ---------------------------------------------------------------------

    def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
              body: Any = None, ok: tuple[int, ...] = (200, 201, 204),
              missing: bool = False) -> _Answer | None:
        """One request; ``missing``: a 404 is None. Other statuses raise ``HttpFailure``."""
        url = f"{self._root}{path}"
        response = self._session.request(method, url, params=params, json=body,
                                         timeout=self.timeout, allow_redirects=True)
        if response.status_code in ok:
            return _Answer(response.status_code, self._decoded(response, f"{method} {path}"))
        message = _message(response)
        if missing and response.status_code == 404:
            return None
        raise HttpFailure(response.status_code, message, response.headers)

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        answer = self._call(method, path, **kw)
        return None if answer is None else answer.data

    @staticmethod
    def _ref(name: str) -> str:
        return quote(name, safe="/")

    def _commit(self, sha: str) -> dict[str, Any]:
        """The commit JSON (parents, message); cached: a commit never changes."""
        if sha not in self._commits:
            data = self._json("GET", f"/git/commits/{sha}",
                              params={"stat": "false", "verification": "false",
                                      "files": "false"})
            if not isinstance(data, dict) or "sha" not in data:
                raise ForgeError(f"Gitea answered the commit {sha[:12]} with no commit")
            self._commits[sha] = data
        return self._commits[sha]

    def _head(self, branch: str) -> Head | None:
        """GET the branch (+ GET its commit); no retry of its own."""
        data = self._json("GET", f"/branches/{self._ref(branch)}", missing=True)
        if data is None:
            return None
        sha = str((data.get("commit") or {}).get("id") or "")
        commit = self._commit(sha)
        return Head(sha=sha, message=str((commit.get("commit") or {}).get("message") or ""),
                    parents=tuple(str(p.get("sha")) for p in commit.get("parents") or []))

    # -- reading ----------------------------------------------------------------------

    def snapshot(self, base: str | None, branch: str | None = None) -> Snapshot:
        if base is not None:
            check_branch(base)
        if branch is not None:
            check_branch(branch)
        if base is None:
            data = self._run("read the repository", lambda: self._json("GET", "", missing=True))
            if data is None:
                raise UsageError(f"Gitea repository {self.repo} not found at {self.api_url}, "
                                 "or the token cannot see it", hint="check --repo (owner/name) "
                                 "and the token's access to it")
            base = str(data.get("default_branch") or "")
            if not base or data.get("empty"):
                raise UsageError(f"Gitea repository {self.repo} has no default branch "
                                 "(empty repository?)", hint="push an initial commit first")
        branch = base
        tip = self._run(f"read branch {branch}", lambda: self._json(
            "GET", f"/branches/{self._ref(branch)}", missing=True))
        if tip is None:
            raise UsageError(f"base branch {branch!r} does not exist in Gitea repository "
                             f"{self.repo}", hint="check --base (and --repo)")
        commit = str((tip.get("commit") or {}).get("id") or "")

        def download() -> bytes:
            url = f"{self._root}/archive/{commit}.tar.gz"
            with self._session.get(url, stream=True, timeout=self.timeout) as response:
                if response.status_code != 200:
                    raise HttpFailure(response.status_code, _message(response), response.headers)
                return read_capped(response, MAX_ARCHIVE_BYTES, "the archive")

        tree = archive.download(lambda: self._run(f"download the archive of {branch}",
                                                  download),
                                "Gitea", f"{branch} of {self.repo}")
        root = self._run(f"read the root tree of {self.repo}", lambda: self._root_tree(commit))
        archive.prove(tree, root, lambda: self._listed(commit), self._blob,
                      f"{self.repo} at {commit[:12]}")
        archive.policy_file(tree, root, self._blob)
        return Snapshot(branch=branch, commit=commit, files=tree.files, links=tree.links)

    def _root_tree(self, commit: str) -> list[archive.Listed]:
        """The root tree's entries at ``commit``: one GET per 1000."""
        entries: list[archive.Listed] = []
        for page in range(1, MAX_TREE_PAGES + 1):
            data = self._json("GET", f"/git/trees/{commit}",
                              params={"page": page, "per_page": TREE_PAGE})
            entries += [archive.Listed(str(e.get("path")), int(str(e.get("mode")), 8),
                                       str(e.get("sha")))
                        for e in data.get("tree") or [] if isinstance(e, dict)]
            if not data.get("truncated"):
                break
        return entries

    def _listed(self, commit: str) -> list[archive.Listed]:
        """Every blob, link and submodule of the tree at ``commit``."""
        tree = self._run(f"list the tree of {self.repo}", lambda: self._tree(commit))
        if tree is None:
            raise ForgeError(f"the tree of {self.repo} at {commit[:12]} is listed in more "
                             f"than {MAX_TREE_PAGES} pages", hint="a config repo that large "
                             "is not supported; see SECURITY.md (limits)")
        return [archive.Listed(path, int(mode, 8), oid) for path, (mode, oid) in tree.items()]

    def _blob(self, oid: str) -> bytes:
        blob = self._run(f"read the blob {oid[:12]} of {self.repo}",
                         lambda: self._json("GET", f"/git/blobs/{oid}"))
        try:
            return base64.b64decode(str(blob.get("content") or ""), validate=False)
        except (binascii.Error, ValueError) as exc:
            raise ForgeError(f"Gitea sent an unreadable blob {oid[:12]}: {exc}") from None

    def _log(self, branch: str, limit: int) -> list[LoggedCommit]:
        """Gitea lists every commit reachable: first parents are followed here through
        each commit's ``parents``."""
        return first_parents(self._commits_of(branch), limit,
                             sha_of=lambda item: str(item["sha"]), parent_of=_parent,
                             logged=_logged)

    def _commits_of(self, branch: str) -> Iterator[dict[str, Any]]:
        """The commits reachable from ``branch``, newest first, page by page (20 at most)."""
        for page in range(1, 21):
            # the full name: Gitea resolves "main" as git does, a tag named like the
            # branch first (anyone who may push a tag would write its history)
            batch = self._json("GET", "/commits", params={
                "sha": f"refs/heads/{branch}", "limit": PAGE, "page": page, "stat": "false",
                "verification": "false", "files": "false"}) or []
            yield from batch
            if len(batch) < PAGE:
                return

    # -- the commit -------------------------------------------------------------------

    def use_identity(self, author: Identity | None, *, sign: bool = False) -> None:
        """``author`` goes to the contents API as author and committer; None leaves it to
        Gitea (the token's user). Signing is refused: promoter has no key for an API
        commit (Gitea signs with its own key only when its instance is set up to)."""
        refuse_signing(sign, "Gitea")
        self._author = author

    def _changes(self, branch: str, base: Snapshot, files: Mapping[str, bytes],
                 message: str) -> dict[str, Any]:
        ops = []
        for path, content in sorted(files.items()):
            op: dict[str, Any] = {"path": path,
                                  "content": base64.b64encode(content).decode("ascii")}
            if path in base.files:
                op["operation"] = "update"
                op["sha"] = git_blob_sha(base.files[path])  # 422 when the file moved
            else:
                op["operation"] = "create"  # 422 when it exists meanwhile
            ops.append(op)
        payload: dict[str, Any] = {"branch": base.branch, "new_branch": branch,
                                   "message": message, "files": ops}
        if self._author is not None:
            who = {"name": self._author.name, "email": self._author.email}
            payload["author"] = who
            payload["committer"] = who
        return payload

    def write_commit(self, branch: str, base: Snapshot, files: Mapping[str, bytes],
                     message: str, *, replace: Head | None) -> str:
        guard = OwnWrite(self.repo, branch, base.commit, files, message, replace,
                         self._changed)
        if replace is None:
            return self._create(base, files, message, guard)
        return self._replace(branch, base, files, message, replace, guard)

    def _create(self, base: Snapshot, files: Mapping[str, bytes], message: str,
                guard: OwnWrite) -> str:
        """POST contents with ``new_branch``: the branch and its one commit together."""
        target = guard.branch
        payload = self._changes(target, base, files, message)

        def attempt() -> str:
            try:
                data = self._json("POST", "/contents", body=payload)
            except HttpFailure as exc:
                if exc.status in (409, 422) and "already exist" in exc.message.lower() \
                        and "branch" in exc.message.lower():
                    # taken as ours when it proves so, even on a first attempt
                    return guard.settle(self._head(target), claim=True)
                if exc.status in (404, 409, 422) and ("sha" in exc.message.lower()
                                                      or "exist" in exc.message.lower()):
                    # a file we change moved on the base (its blob is not the one we
                    # edited), or a file we create appeared: the base moved
                    raise ConflictError(f"the base {base.branch} of {self.repo} changed "
                                        f"under the promotion ({exc.message})",
                                        hint="run again") from None
                raise
            commit = data.get("commit") or {}
            sha = str(commit.get("sha") or "")
            parents = tuple(str(p.get("sha")) for p in commit.get("parents") or [])
            if parents != (base.commit,):
                # Gitea committed on the base as it is now, not on the snapshot: plan again
                if guard.for_update:  # our scratch branch: nothing may point at it, remove it
                    self._call("DELETE", f"/branches/{self._ref(target)}", missing=True)
                raise ConflictError(f"the base {base.branch} of {self.repo} moved from "
                                    f"{base.commit[:12]} while promoting", hint="run again")
            return sha

        return self._run(f"commit to {target}",
                         retry.Write(attempt, lambda: guard.landed(self._head(target))))

    def _replace(self, branch: str, base: Snapshot, files: Mapping[str, bytes], message: str,
                 replace: Head, guard: OwnWrite) -> str:
        """Commit on a scratch branch from the base, then move ``branch`` to it with a
        compare-and-swap on ``replace.sha``; the scratch branch is deleted."""
        head = self.read_head(branch)
        if head is None or head.sha != replace.sha:
            raise guard.in_the_way(head)
        scratch = f"{branch}-next-{base.commit[:8]}"
        sha = self._create(base, files, message, guard.scratch(scratch))
        path = f"/branches/{self._ref(branch)}"
        body = {"new_commit_id": sha, "old_commit_id": replace.sha, "force": True}

        def move() -> str:
            try:
                self._call("PUT", path, body=body)
            except HttpFailure as exc:
                if exc.status in (404, 405):
                    now = self._head(branch)  # a 404 is also "no such branch (any more)"
                    if now is None or now.sha != replace.sha:
                        raise guard.in_the_way(now) from None
                    raise _Unsupported(exc.message) from None
                if exc.status in (409, 422):
                    now = self._head(branch)
                    if now is not None and now.sha == sha:
                        return sha
                    raise guard.in_the_way(now) from None
                raise
            return sha

        try:
            return self._write(f"move branch {branch}", move,
                               lambda: guard.moved(self._head(branch), sha))
        except _Unsupported as exc:
            raise ForgeError(
                f"this Gitea/Forgejo cannot move branch {branch} of {self.repo} with a "
                f"compare-and-swap (PUT branches: {exc}); promoter will not delete the "
                "branch under its open pull request",
                hint="close the pull request and delete the branch, then run again (or "
                     "upgrade to a server with PUT /repos/{owner}/{repo}/branches/{branch})"
            ) from None
        finally:
            self.delete_branch(scratch)

    def changed_files(self, sha: str) -> Mapping[str, str] | None:
        """The commit's parents (GET git/commits, cached), then the recursive trees of the
        commit and its parent (1 GET each per 1000 entries), compared here: 2-3 requests."""
        return self._run(f"read commit {sha[:12]}", lambda: self._changed(sha))

    def _tree(self, sha: str) -> dict[str, tuple[str, str]] | None:
        entries: dict[str, tuple[str, str]] = {}
        for page in range(1, MAX_TREE_PAGES + 1):
            data = self._json("GET", f"/git/trees/{sha}", params={
                "recursive": "true", "page": page, "per_page": TREE_PAGE})
            for e in data.get("tree") or []:
                if isinstance(e, dict) and e.get("type") != "tree":
                    entries[str(e.get("path"))] = (str(e.get("mode")), str(e.get("sha")))
            if not data.get("truncated"):
                return entries
        return None  # too large to prove

    def _changed(self, sha: str) -> Mapping[str, str] | None:
        commit = self._commit(sha)
        parents = [str(p.get("sha")) for p in commit.get("parents") or []]
        if len(parents) != 1:
            return None
        new = self._tree(sha)
        old = self._tree(parents[0]) if new is not None else None
        if new is None or old is None:
            return None
        return plain_edits(old, new)

    def delete_branch(self, branch: str) -> None:
        check_branch(branch)
        self._run(f"delete branch {branch}", lambda: self._call(
            "DELETE", f"/branches/{self._ref(branch)}", missing=True))

    # -- pull requests ----------------------------------------------------------------

    def _find(self, branch: str, base: str) -> PullRequest | None:
        for page in range(1, 41):
            batch = self._json("GET", "/pulls", params={"state": "open", "page": page,
                                                        "limit": PAGE}) or []
            for item in batch:
                head = item.get("head") or {}
                repo = (head.get("repo") or {}).get("full_name")
                if head.get("ref") == branch and (item.get("base") or {}).get("ref") == base \
                        and (repo is None or str(repo).lower() == self.repo.lower()):
                    return _pull(item)
            if len(batch) < PAGE:
                return None
        return None

    def _label_ids(self, names: tuple[str, ...]) -> list[int]:
        if not names:
            return []
        if self._labels is None:
            def fetch() -> dict[str, int]:
                found: dict[str, int] = {}
                for page in range(1, 21):
                    batch = self._json("GET", "/labels", params={"page": page,
                                                                 "limit": PAGE}) or []
                    found.update({str(x["name"]): int(x["id"]) for x in batch})
                    if len(batch) < PAGE:
                        break
                return found

            self._labels = self._run(f"list the labels of {self.repo}", fetch)
        missing = [n for n in names if n not in self._labels]
        if missing:
            raise ConfigError(f"Gitea repository {self.repo} has no label "
                              f"{', '.join(map(repr, missing))}", file=CONFIG_FILE,
                              hint="create the labels in the repository (Issues > Labels), "
                                   "or change labels: in .promoter.yaml")
        return [self._labels[n] for n in names]

    @staticmethod
    def _title(spec: RequestSpec) -> str:
        title = spec.title
        if spec.draft and not title.upper().startswith(("WIP:", "[WIP]")):
            title = WIP + title
        return cap_text(title, MAX_TITLE, "title").replace("\n", " ")

    def write_first(self, files: Mapping[str, bytes]) -> bool:
        """No: the branch is read first (one GET), as before."""
        return False

    def commit_verified(self, sha: str) -> bool | None:
        """Unknown: Gitea's own signing of API commits is not read here."""
        return None

    def open_request(self, branch: str, base: str, spec: RequestSpec, *,
                     auto_merge_next: bool = False) -> PullRequest:
        check_branch(branch)
        payload: dict[str, Any] = {"head": branch, "base": base, "title": self._title(spec),
                                   "body": cap_text(spec.body, MAX_BODY, "description")}
        labels = self._label_ids(spec.labels)
        if labels:
            payload["labels"] = labels
        if spec.assignees:
            payload["assignees"] = [a.removeprefix("@") for a in spec.assignees]

        def create() -> PullRequest | None:
            try:
                data = self._json("POST", "/pulls", body=payload)
            except HttpFailure as exc:
                if exc.status == 409:
                    return None  # it exists (a lost earlier attempt, or another run)
                raise
            return _pull(data)

        return self._open(branch, base, spec, create,
                          made=lambda pr: self._request_reviews(pr, spec))

    def _request_reviews(self, pr: PullRequest, spec: RequestSpec) -> None:
        if not spec.reviewers:
            return
        names = [r.removeprefix("@") for r in spec.reviewers]
        self._run(f"request reviews on pull request #{pr.number}", lambda: self._call(
            "POST", f"/pulls/{pr.number}/requested_reviewers", body={"reviewers": names}))

    def update_request(self, pr: PullRequest, spec: RequestSpec) -> PullRequest:
        title = self._title(spec)
        body = cap_text(spec.body, MAX_BODY, "description")
        missing = tuple(label for label in spec.labels if label not in pr.labels)
        ids = self._label_ids(missing)
        if title == pr.title and body == pr.body and not ids:
            return pr  # nothing to change: no request
        updated = pr
        if title != pr.title or body != pr.body:
            data = self._run(f"update pull request #{pr.number}", lambda: self._json(
                "PATCH", f"/pulls/{pr.number}", body={"title": title, "body": body}))
            updated = _pull(data)
        if ids:  # added, never replacing labels people put on it
            self._run(f"label pull request #{pr.number}", lambda: self._call(
                "POST", f"/issues/{pr.number}/labels", body={"labels": ids}))
            updated = PullRequest(**{**updated.__dict__,
                                     "labels": tuple(dict.fromkeys(updated.labels + missing))})
        return updated

    def close_request(self, pr: PullRequest, comment: str) -> None:
        body = cap_text(comment, MAX_BODY, "comment")

        def noted() -> bool | None:
            items = self._json("GET", f"/issues/{pr.number}/comments") or []
            return True if any(c.get("body") == body for c in items) else None

        def note() -> bool:
            self._call("POST", f"/issues/{pr.number}/comments", body={"body": body})
            return True

        if comment:
            self._write(f"comment on pull request #{pr.number}", note, noted)
        self._run(f"close pull request #{pr.number}", lambda: self._call(
            "PATCH", f"/pulls/{pr.number}", body={"state": "closed"}))

    # -- checks and merging -----------------------------------------------------------

    def checks(self, pr: PullRequest, sha: str) -> ChecksState:
        def look() -> ChecksState:
            data = self._json("GET", f"/commits/{sha}/status") or {}
            if not data.get("total_count") and not data.get("statuses"):
                return ChecksState.NONE
            return _STATES.get(str(data.get("state") or "pending"), ChecksState.PENDING)

        return self._run(f"read the statuses of {sha[:12]}", look)

    def _get_pull(self, number: int) -> dict[str, Any]:
        return self._a_request(self._json("GET", f"/pulls/{number}"), number)

    def _post_merge(self, pr: PullRequest, sha: str, body: Mapping[str, Any]) -> _Answer:
        """One POST pulls/{n}/merge; a lost attempt is retried only when the pull request
        is not merged yet. Refusals come back as answers (status, message)."""
        def post() -> _Answer:
            try:
                answer = self._call("POST", f"/pulls/{pr.number}/merge", body=dict(body))
            except HttpFailure as exc:
                if exc.status in (405, 409, 422):
                    return _Answer(exc.status, exc.message)
                raise
            return answer if answer is not None else _Answer(204, None)

        def landed() -> _Answer | None:
            data = self._get_pull(pr.number)
            if data.get("merged"):
                if str((data.get("head") or {}).get("sha")) != sha:
                    return _Answer(409, "merged at another head")
                return _Answer(200, None)
            return None

        return self._write(f"merge pull request #{pr.number}", post, landed)

    def _merged(self, pr: PullRequest, sha: str) -> MergeOutcome:
        data = self._run(f"read pull request #{pr.number}", lambda: self._get_pull(pr.number))
        if not data.get("merged"):
            return MergeOutcome(merged=False, reason="Gitea did not merge it")
        if str((data.get("head") or {}).get("sha")) != sha:
            raise self._moved(pr, sha, "merged at another head")
        merged = data.get("merge_commit_sha")
        return MergeOutcome(merged=True, sha=str(merged) if merged else None)

    def merge(self, pr: PullRequest, method: MergeMethod, sha: str,
              message: str = "") -> MergeOutcome:
        body = {"Do": method, "head_commit_id": sha, "delete_branch_after_merge": True,
                **_split(message)}
        answer = self._post_merge(pr, sha, body)
        if answer.status == 200:  # merged at head_commit_id: the proved commit
            return MergeOutcome(merged=True)
        if answer.status == 409:
            if "head" in str(answer.data).lower():
                raise self._moved(pr, sha, str(answer.data))
            return MergeOutcome(merged=False, reason=f"conflict: {answer.data}", conflict=True)
        return MergeOutcome(merged=False,
                            reason=f"Gitea will not merge #{pr.number} now: {answer.data}",
                            conflict=says_conflict(str(answer.data)))

    def enable_auto_merge(self, pr: PullRequest, method: MergeMethod, sha: str,
                          message: str = "") -> MergeOutcome:
        body = {"Do": method, "head_commit_id": sha, "delete_branch_after_merge": True,
                "merge_when_checks_succeed": True, **_split(message)}
        answer = self._post_merge(pr, sha, body)
        if answer.status == 200:  # mergeable now: merged at head_commit_id
            return MergeOutcome(merged=True)
        scheduled = answer.status == 201 or (
            answer.status == 409 and "already scheduled" in str(answer.data).lower())
        if not scheduled:
            if answer.status == 409 and "head" in str(answer.data).lower():
                raise self._moved(pr, sha, str(answer.data))
            if answer.status == 409:
                return MergeOutcome(merged=False, reason=f"conflict: {answer.data}",
                                    conflict=True)
            return MergeOutcome(merged=False, reason=f"Gitea would not schedule the merge of "
                                                     f"#{pr.number}: {answer.data}",
                                conflict=says_conflict(str(answer.data)))
        # A scheduled merge takes no head commit: make sure the head is still the proved one.
        data = self._run(f"read pull request #{pr.number}", lambda: self._get_pull(pr.number))
        if data.get("merged"):
            return self._merged(pr, sha)
        head = str((data.get("head") or {}).get("sha"))
        if head != sha:
            self._run(f"cancel the auto-merge of #{pr.number}", lambda: self._call(
                "DELETE", f"/pulls/{pr.number}/merge", missing=True))
            raise self._moved(pr, sha, "it moved while the merge was scheduled")
        return MergeOutcome(merged=False, auto_merge=True,
                            reason="Gitea merges it when the checks succeed")

    def disable_auto_merge(self, pr: PullRequest) -> None:
        """DELETE pulls/{n}/merge: Gitea's pull request does not say whether a merge is
        scheduled, so the cancel is always sent (404: none was)."""
        self._run(f"cancel the auto-merge of #{pr.number}", lambda: self._call(
            "DELETE", f"/pulls/{pr.number}/merge", missing=True))


class _Unsupported(Exception):
    """The server has no compare-and-swap branch update."""


def from_setup(setup: Setup) -> GiteaForge:
    """The Gitea / Forgejo forge the CLI asked for; inside Gitea or Forgejo Actions the
    server running the job is the default ``--api-url``."""
    ctx = setup.context
    api = setup.api_url or (ctx.server_url if ctx.kind == "gitea" else None)
    if not api:
        raise UsageError("--forge gitea needs --api-url (the Gitea/Forgejo server root)",
                         hint="e.g. --api-url https://gitea.example.com")
    if not setup.token:
        raise UsageError("no token: set PROMOTE_TOKEN (or GITEA_TOKEN / FORGEJO_TOKEN)",
                         hint="an access token with the write:repository scope (and "
                              "write:issue for labels and comments)")
    return GiteaForge(setup.repo, api_url=api_root("gitea", api), token=setup.token,
                      retry_timeout=setup.retry_timeout, ca_bundle=setup.ca_bundle,
                      sleep=setup.sleep, patience=setup.patience("Gitea"))
