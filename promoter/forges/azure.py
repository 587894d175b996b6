"""The Azure DevOps Repos forge: a small client on ``requests`` against the Git REST API
(``api-version=7.1``; branch policy configurations and evaluations and pull request
labels ``7.1-preview.1``; a project's teams ``7.0``).

Client: a small one here. Microsoft's ``azure-devops`` package (7.1.0b4, a beta last
released in 2023) stands on ``msrest``, which is deprecated; every area it calls first
sends ``OPTIONS {collection}/_apis`` to learn resource locations and caches the answer
in a file under the user's home (``azure/devops/_file_cache.py``); requests go through
msrest's own sender and retry configuration, redirects are followed, not refused; a 401
error carries the request URL; a blob zip comes back as an unbounded stream. None of that
goes through ``promoter.retry`` or ``promoter.forges.http``. The few endpoints promoter
needs are called here directly.

``repo`` is ``ORG/PROJECT/REPO`` (``api_url`` ``https://dev.azure.com``, the default) or
``PROJECT/REPO`` when ``api_url`` already names the organisation or, on Azure DevOps
Server, the collection (``https://ado.example.com/tfs/DefaultCollection``).

Requests of a first promotion (base given, no reviewers, no checks)::

    snapshot       GET refs?filter=heads/{base}, GET commits/{sha} (its tree id),
                   GET trees/{tree}?recursive=true (every path, mode and blob id),
                   POST blobs (every blob as one zip, Accept: application/zip)
                   (+ GET repository when the base is the default branch)
    write_commit   POST pushes (the branch and its commit together: refUpdates
                   oldObjectId = the snapshot's commit, which becomes the parent)
    open_request   POST pullrequests (labels and reviewer ids ride along; a reviewer
                   named, not given by id, costs GET teams + GET members per team, once)
    checks         GET commits/{sha}/statuses, GET pullrequests/{id}/statuses,
                   GET policy/evaluations (+ GET repository and GET policy/configurations
                   once: which blocking policies the base has, so one that has not
                   reported yet reads as pending, never as passed)
    merge          PATCH pullrequests/{id} status=completed, lastMergeSourceCommit

The snapshot is exact: the tree says which path is a regular file, a link or a
submodule, and each blob from the zip is checked against its git id (so
``.promoter.yaml`` is read as the blob the base tree holds, or the run stops).
``changed_files`` compares the recursive trees of the commit and its parent (modes
and blob ids; ``commits/{id}/changes`` gives blob ids but no modes).

Replacing promoter's own branch tip: the new commit is pushed to a scratch branch
``<branch>-next-<base8>`` (its parent the base), ``POST refs`` moves the promotion
branch from the old tip to it -- Azure's ref update is a compare-and-swap on
``oldObjectId`` -- and the scratch branch is deleted: 3 requests. Moving a branch to a
commit that is not a descendant needs the Git "Force push" permission on that branch,
which Azure Repos grants the identity that created the branch: promoter's own branches.

Merging pins the head: ``lastMergeSourceCommit`` (Azure refuses to complete a pull
request whose source moved since). Azure's auto-complete (``autoCompleteSetBy``) takes
no commit and completes whatever the source then holds -- at once when the policies
already pass -- so a push between promoter's proof and Azure's completion would be
merged unproved. promoter therefore never sets it (trust rule 2, fail closed): it waits
for the branch policies itself within ``--merge-timeout`` and completes the proved
commit; past that the pull request stays open, and a re-run completes it.

Retries belong to ``promoter.retry``; a write is retried only after checking whether
the failed attempt took effect. Tokens: a personal access token as HTTP basic auth
with an empty user name, or Azure Pipelines' ``System.AccessToken`` as a bearer token;
sent to the ``--api-url`` origin only.
"""

from __future__ import annotations

import base64
import io
import re
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import requests

from promoter import retry
from promoter.errors import (
    BranchExists,
    ConfigError,
    ForgeError,
    UsageError,
)
from promoter.forges.base import (
    LINK_MODE,
    REGULAR_MODES,
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
    check_policy_entry,
    git_blob_sha,
    plain_edits,
    refuse_signing,
    says_conflict,
)
from promoter.forges.http import (
    job_token_stays_home,
    read_capped,
    refuse_cleartext_proxy,
    refuse_cross_origin,
)
from promoter.forges.ownwrite import OwnWrite
from promoter.forges.registry import Setup
from promoter.forges.rest import HttpFailure, RestClient
from promoter.identity import Identity
from promoter.limits import MAX_ARCHIVE_BYTES, MAX_UNPACKED_BYTES, ArchiveTooLarge
from promoter.paths import CONFIG_FILE
from promoter.redact import register

API = "7.1"
PREVIEW = "7.1-preview.1"
CORE = "7.0"  # teams and their members (released at 7.0; 7.1 has them in preview)
ZERO = "0" * 40
NOBODY = "00000000-0000-0000-0000-000000000000"  # autoCompleteSetBy of nobody: not set
PAGE = 100
MAX_PAGES = 20
MAX_TITLE = 400  # Azure DevOps' limits for a pull request
MAX_BODY = 4000
MAX_COMMENT = 150_000
DEFAULT_API = "https://dev.azure.com"
COMPLETION_READS = 5  # reads of a pull request whose completion Azure has queued
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

AUTH_HINT = ("set PROMOTE_TOKEN / AZURE_DEVOPS_TOKEN to a personal access token with the "
             "Code (Read & write) scope of a user who can contribute to the config repo, or "
             "run inside Azure Pipelines with SYSTEM_ACCESSTOKEN mapped into the step; see "
             "docs/ci.md")
REDIRECT_HINT = ("check --api-url: https://dev.azure.com, or the collection URL of your Azure "
                 "DevOps Server")
METHODS = {"merge": "noFastForward", "squash": "squash", "rebase": "rebase"}

_FAIL = {"failed", "error", "rejected", "broken"}
_WAIT = {"pending", "queued", "running", "notset"}
_PASS = {"succeeded", "approved"}


def _failure(response: requests.Response) -> HttpFailure:
    """Azure's error body: ``{"message", "typeName", "typeKey", "errorCode", ...}``."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        return HttpFailure(response.status_code, str(data.get("message") or "")[:500],
                        response.headers, str(data.get("typeKey") or ""))
    text = response.text[:200].strip() or response.reason or ""
    return HttpFailure(response.status_code, text, response.headers)


def _branch(ref: str) -> str:
    return ref.removeprefix("refs/heads/")


def _full(branch: str) -> str:
    return branch if branch.startswith("refs/") else f"refs/heads/{branch}"


@dataclass(frozen=True)
class _Where:
    """Where the repository's API lives."""

    org_url: str  # https://dev.azure.com/acme (or a Server collection URL)
    project: str
    repo: str


def parse_repo(repo: str, api_url: str) -> _Where:
    """``ORG/PROJECT/REPO`` below ``api_url``, or ``PROJECT/REPO`` when ``api_url``
    names the organisation / collection already."""
    parts = [p for p in repo.strip().strip("/").split("/") if p]
    url = api_url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--api-url {url!r} is not an http(s) URL",
                         hint="give https://dev.azure.com, or your Azure DevOps Server "
                              "collection URL (https://ado.example.com/tfs/DefaultCollection)")
    if len(parts) == 3:
        return _Where(f"{url}/{parts[0]}", parts[1], parts[2])
    if len(parts) == 2 and url.rstrip("/") != DEFAULT_API:
        return _Where(url, parts[0], parts[1])
    raise UsageError(f"--repo {repo!r} is not ORG/PROJECT/REPO",
                     hint="give the Azure Repos repository as organisation/project/repo, e.g. "
                          "acme/platform/config (PROJECT/REPO with a collection --api-url)")


class AzureForge(RestClient):
    """A config repo in Azure DevOps Repos (Services or Server). Nothing here reads the
    environment: the CLI passes the token (``bearer``: an Azure Pipelines job token)."""

    name = "azure"
    service = "Azure DevOps"
    mark = "!"
    close_verb = "abandon"
    auth_hint = AUTH_HINT
    redirect_hint = REDIRECT_HINT
    busy = "may be down or throttling"
    url_hint = "check --api-url: https://dev.azure.com or the collection URL"
    body_limit = MAX_BODY
    has_checks = True
    branch_is_request = False
    has_labels = True

    def __init__(self, repo: str, api_url: str = DEFAULT_API, token: str | None = None,
                 *, bearer: bool = False, retry_timeout: float = retry.DEFAULT_TIMEOUT,
                 sleep: Callable[[float], None] = time.sleep, timeout: float = 15,
                 ca_bundle: str | None = None, patience: retry.Patience | None = None
                 ) -> None:
        register(token)
        where = parse_repo(repo, api_url)
        self.where = where
        self.repo = f"{where.project}/{where.repo}"
        self.api_url = where.org_url
        project = quote(where.project, safe="")
        self._project_root = f"{where.org_url}/{project}/_apis"
        self._root = f"{self._project_root}/git/repositories/{quote(where.repo, safe='')}"
        self._web = f"{where.org_url}/{project}/_git/{quote(where.repo, safe='')}"
        self._author: Identity | None = None
        self._trees: dict[str, dict[str, tuple[str, str]]] = {}  # tree id -> entries
        self._repository: dict[str, Any] | None = None
        self._required: list[dict[str, Any]] | None = None  # blocking policies of the base
        self._people: dict[str, str] | None = None  # reviewer name -> identity id
        session = self._prepare(token, retry_timeout=retry_timeout, sleep=sleep,
                                timeout=timeout, patience=patience, ca_bundle=ca_bundle)
        # without it, a rejected credential is a 203/302 to the sign-in page, not a 401
        session.headers["X-TFS-FedAuthRedirect"] = "Suppress"
        if token and bearer:
            session.headers["Authorization"] = f"Bearer {token}"
        elif token:
            basic = base64.b64encode(f":{token}".encode()).decode("ascii")
            register(basic)
            session.headers["Authorization"] = f"Basic {basic}"
        self._session = refuse_cross_origin(session)  # the token stays with its host

    # -- plumbing ---------------------------------------------------------------------

    def _call(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
              body: Any = None, version: str = API, ok: tuple[int, ...] = (200, 201, 204),
              missing: bool = False) -> Any:
        """One request (``api-version`` always); ``missing``: a 404 is None. Other
        statuses raise ``HttpFailure``; an answer that is not JSON is a ForgeError."""
        query = {**(params or {}), "api-version": version}
        response = self._session.request(method, url, params=query, json=body,
                                         timeout=self.timeout, allow_redirects=True)
        if response.status_code == 203 or (response.status_code in ok and "json" not in
                                           response.headers.get("Content-Type", "json")):
            # Azure's sign-in page: the credential was not accepted
            raise HttpFailure(401, "the sign-in page came back (203)", response.headers)
        if response.status_code in ok:
            return self._decoded(response, f"{method} {_path(url)}")
        if missing and response.status_code == 404:
            return None
        raise _failure(response)

    def _repo_info(self) -> dict[str, Any]:
        if self._repository is None:
            data = self._run("read the repository", lambda: self._call(
                "GET", self._root, missing=True))
            if not isinstance(data, dict):
                raise UsageError(f"Azure Repos repository {self.repo} not found at "
                                 f"{self.api_url}, or the token cannot see it",
                                 hint="check --repo (ORG/PROJECT/REPO) and the token's access")
            if data.get("isDisabled"):
                raise UsageError(f"Azure Repos repository {self.repo} is disabled",
                                 hint="enable it in Project settings > Repositories")
            self._repository = data
        return self._repository

    def _ref(self, branch: str) -> str | None:
        """The commit ``branch`` points at (``refs?filter`` matches a prefix: the exact
        name is picked), or None; no retry of its own."""
        full = _full(branch)
        data = self._call("GET", f"{self._root}/refs",
                          params={"filter": full.removeprefix("refs/"), "$top": 1000}) or {}
        for item in data.get("value") or []:
            if isinstance(item, dict) and item.get("name") == full:
                return str(item.get("objectId") or "") or None
        return None

    def _commit(self, sha: str) -> dict[str, Any]:
        """The commit JSON (treeId, parents, comment); cached: a commit never changes."""
        if sha not in self._commits:
            data = self._call("GET", f"{self._root}/commits/{sha}")
            if not isinstance(data, dict) or data.get("commitId") != sha:
                raise ForgeError(f"Azure DevOps answered the commit {sha[:12]} with no commit")
            self._commits[sha] = data
        return self._commits[sha]

    def _head(self, branch: str) -> Head | None:
        sha = self._ref(branch)
        if sha is None:
            return None
        commit = self._commit(sha)
        return Head(sha=sha, message=str(commit.get("comment") or ""),
                    parents=tuple(str(p) for p in commit.get("parents") or []))

    def _tree(self, tree: str) -> dict[str, tuple[str, str]]:
        """``{path: (mode, object id)}`` of every entry under ``tree``: blobs, links,
        submodules and directories (``040000``) (one GET, cached)."""
        if tree not in self._trees:
            data = self._call("GET", f"{self._root}/trees/{tree}",
                              params={"recursive": "true"}) or {}
            entries: dict[str, tuple[str, str]] = {}
            for e in data.get("treeEntries") or []:
                if not isinstance(e, dict):
                    continue
                mode = str(e.get("mode") or "").rjust(6, "0")
                entries[str(e.get("relativePath") or "").lstrip("/")] = (
                    mode, str(e.get("objectId") or ""))
            self._trees[tree] = entries
        return self._trees[tree]

    def snapshot(self, base: str | None, branch: str | None = None) -> Snapshot:
        if base is not None:
            check_branch(base)
        if branch is not None:
            check_branch(branch)
        if base is None:
            default = str(self._repo_info().get("defaultBranch") or "")
            if not default:
                raise UsageError(f"Azure Repos repository {self.repo} has no default branch "
                                 "(empty repository?)", hint="push an initial commit first")
            base = _branch(default)
        name = base
        sha = self._run(f"read branch {name}", lambda: self._ref(name))
        if sha is None:
            raise UsageError(f"base branch {name!r} does not exist in Azure Repos repository "
                             f"{self.repo}", hint="check --base (and --repo)")
        commit = self._run(f"read commit {sha[:12]}", lambda: self._commit(sha))
        entries = self._run(f"read the tree of {name}",
                            lambda: self._tree(str(commit.get("treeId") or "")))
        policy = entries.get(CONFIG_FILE)
        wanted = {obj for mode, obj in entries.values()
                  if mode in REGULAR_MODES or mode == LINK_MODE}
        blobs = self._blobs(wanted, name)
        files: dict[str, bytes] = {}
        links: dict[str, str] = {}
        for path, (mode, obj) in entries.items():
            if mode in REGULAR_MODES:
                files[path] = blobs[obj]
            elif mode == LINK_MODE:
                links[path] = blobs[obj].decode("utf-8", "surrogateescape")
        if policy is not None:
            check_policy_entry(policy[0], links.get(CONFIG_FILE))
        return Snapshot(branch=name, commit=sha, files=files, links=links)

    def _blobs(self, wanted: set[str], branch: str) -> dict[str, bytes]:
        """Every blob of ``wanted`` from one ``POST blobs`` zip (at most
        MAX_ARCHIVE_BYTES down, MAX_UNPACKED_BYTES unpacked), each checked against its
        git id."""
        if not wanted:
            return {}
        ids = sorted(wanted)

        def download() -> bytes:
            url = f"{self._root}/blobs"
            with self._session.post(url, params={"api-version": API}, json=ids, stream=True,
                                    headers={"Accept": "application/zip"},
                                    timeout=self.timeout) as response:
                if response.status_code != 200:
                    raise _failure(response)
                return read_capped(response, MAX_ARCHIVE_BYTES, "the blob zip")

        try:
            data = self._run(f"download the files of {branch}", download)
            found = _unzip(data)
        except ArchiveTooLarge as exc:
            raise ForgeError(f"could not download the files of {branch} of {self.repo}: "
                             f"{exc.describe()}", hint="a config repo that large is not "
                             "supported; see SECURITY.md (limits)") from None
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise ForgeError(f"Azure DevOps sent an unreadable blob zip of {branch} of "
                             f"{self.repo}: {exc}") from None
        missing = [i for i in ids if i not in found]
        if missing:
            raise ForgeError(f"Azure DevOps left {len(missing)} blob(s) of {branch} out of the "
                             f"zip (e.g. {missing[0][:12]}), or sent other content",
                             hint="run again; report it if it persists")
        return found

    def write_first(self, files: Mapping[str, bytes]) -> bool:
        """Yes: one POST pushes makes the branch with its commit, and fails cleanly
        (BranchExists) when the branch is there."""
        return True

    def commit_verified(self, sha: str) -> bool | None:
        """Unknown: Azure Repos does not sign the commits its push API makes."""
        return None

    def _log(self, branch: str, limit: int) -> list[LoggedCommit]:
        """Along first parents (each commit's parents, read per commit and cached):
        ``commits?searchCriteria`` lists every commit reachable, side branches too."""
        out: list[LoggedCommit] = []
        sha = self._ref(branch)
        while sha and len(out) < limit:
            commit = self._commit(sha)
            author = commit.get("author") or {}
            out.append(LoggedCommit(sha=sha, message=str(commit.get("comment") or ""),
                                    author=str(author.get("name") or ""),
                                    date=str(author.get("date") or "")))
            parents = commit.get("parents") or []
            sha = str(parents[0]) if parents else None
        return out

    # -- the commit -------------------------------------------------------------------

    def use_identity(self, author: Identity | None, *, sign: bool = False) -> None:
        """``author`` goes to the push as the commit's author and committer; None leaves
        it to Azure (the token's identity). Signing is refused: promoter has no key for
        a commit Azure makes."""
        refuse_signing(sign, "Azure DevOps")
        self._author = author

    def _push_body(self, ref: str, old: str, base: Snapshot, files: Mapping[str, bytes],
                   message: str) -> dict[str, Any]:
        changes = [{"changeType": "edit" if path in base.files else "add",
                    "item": {"path": "/" + path},
                    "newContent": {"content": base64.b64encode(content).decode("ascii"),
                                   "contentType": "base64encoded"}}
                   for path, content in sorted(files.items())]
        commit: dict[str, Any] = {"comment": message, "changes": changes}
        if self._author is not None:
            who = {"name": self._author.name, "email": self._author.email}
            commit["author"] = who
            commit["committer"] = who
        return {"refUpdates": [{"name": ref, "oldObjectId": old}], "commits": [commit]}

    def _push_new(self, base: Snapshot, files: Mapping[str, bytes], message: str,
                  guard: OwnWrite) -> str:
        """POST pushes creating ``guard.branch`` at a new commit whose parent is the base
        commit (refUpdates oldObjectId = the base commit: Azure's way to branch off)."""
        target = guard.branch
        body = self._push_body(_full(target), base.commit, base, files, message)

        def attempt() -> str:
            try:
                data = self._call("POST", f"{self._root}/pushes", body=body)
            except HttpFailure as exc:
                if exc.status == 409 and not write.retried:
                    # the branch was there before this call: never claim it as written
                    # now; the caller reads and judges it (BranchExists)
                    raise guard.in_the_way(None) from None
                if exc.status == 409:
                    return guard.settle(self._head(target), claim=True)
                raise
            updates = (data or {}).get("refUpdates") or [{}]
            sha = str(updates[0].get("newObjectId") or "")
            if not sha:
                raise ForgeError(f"Azure DevOps answered the push to {target} with no commit")
            return sha

        write = retry.Write(attempt, lambda: guard.landed(self._head(target)))
        return self._run(f"commit to {target}", write)

    def write_commit(self, branch: str, base: Snapshot, files: Mapping[str, bytes],
                     message: str, *, replace: Head | None) -> str:
        guard = OwnWrite(self.repo, branch, base.commit, files, message, replace,
                         self._changed, exists=BranchExists)
        if replace is None:
            return self._push_new(base, files, message, guard)
        return self._replace(branch, base, files, message, replace, guard)

    def _update_ref(self, name: str, old: str, new: str) -> dict[str, Any]:
        """One ``POST refs`` (a compare-and-swap on ``old``); the update's result."""
        try:
            data = self._call("POST", f"{self._root}/refs",
                              body=[{"name": _full(name), "oldObjectId": old,
                                     "newObjectId": new}])
        except HttpFailure as exc:
            if exc.status not in (400, 403, 409):
                raise
            return {"success": False, "updateStatus": exc.type_key or str(exc.status),
                    "customMessage": exc.message}
        results = (data or {}).get("value") or [{}]
        return dict(results[0])

    def _replace(self, branch: str, base: Snapshot, files: Mapping[str, bytes], message: str,
                 replace: Head, guard: OwnWrite) -> str:
        """Commit on a scratch branch from the base, move ``branch`` to it with a
        compare-and-swap on ``replace.sha``, delete the scratch branch."""
        scratch = f"{branch}-next-{base.commit[:8]}"
        sha = self._push_new(base, files, message, guard.scratch(scratch))
        try:
            def move() -> str:
                result = self._update_ref(branch, replace.sha, sha)
                if result.get("success"):
                    return sha
                now = self._head(branch)
                if now is not None and now.sha == sha:
                    return sha
                status = str(result.get("updateStatus") or "")
                if status.lower() in ("forcepushrequired", "gitforcepushrequired") or \
                        "ForcePush" in str(result.get("customMessage") or ""):
                    raise ForgeError(
                        f"Azure DevOps refused to move branch {branch} of {self.repo} to the "
                        f"new promotion commit: the token's identity lacks the Git 'Force "
                        f"push' permission on it ({result.get('customMessage') or status})",
                        hint="Azure grants it to whoever created the branch: delete the "
                             "branch (or let the bot own it), or allow 'Force push' on "
                             "promote/* for the bot; see docs/ci.md")
                raise guard.in_the_way(now)

            return self._write(f"move branch {branch}", move,
                               lambda: guard.moved(self._head(branch), sha))
        finally:
            self._run(f"delete branch {scratch}", lambda: self._update_ref(scratch, sha, ZERO))

    def changed_files(self, sha: str) -> Mapping[str, str] | None:
        """The commit (cached), its parent's tree and its own (1 GET each, cached; the
        base's tree is known from the snapshot): 1-4 requests."""
        return self._run(f"read commit {sha[:12]}", lambda: self._changed(sha))

    def _changed(self, sha: str) -> Mapping[str, str] | None:
        commit = self._commit(sha)
        parents = [str(p) for p in commit.get("parents") or []]
        if len(parents) != 1:
            return None
        new = _no_dirs(self._tree(str(commit.get("treeId") or "")))
        old = _no_dirs(self._tree(str(self._commit(parents[0]).get("treeId") or "")))
        return plain_edits(old, new)

    def delete_branch(self, branch: str) -> None:
        check_branch(branch)

        def delete() -> None:
            sha = self._ref(branch)
            if sha is not None:
                self._update_ref(branch, sha, ZERO)

        self._run(f"delete branch {branch}", delete)

    # -- pull requests ----------------------------------------------------------------

    def _pull(self, data: Mapping[str, Any]) -> PullRequest:
        status = str(data.get("status") or "active")
        state = {"active": "open", "completed": "merged", "abandoned": "closed"}.get(status,
                                                                                   status)
        labels = tuple(str(x.get("name")) for x in data.get("labels") or []
                       if isinstance(x, dict) and x.get("active", True))
        number = int(data["pullRequestId"])
        auto = None
        if (data.get("autoCompleteSetBy") or {}).get("id") not in (None, "", NOBODY):
            strategy = str((data.get("completionOptions") or {}).get("mergeStrategy") or "")
            auto = next((m for m, s in METHODS.items() if s == strategy), strategy or None)
        return PullRequest(number=number, url=f"{self._web}/pullrequest/{number}",
                           branch=_branch(str(data.get("sourceRefName") or "")),
                           base=_branch(str(data.get("targetRefName") or "")),
                           title=str(data.get("title") or ""),
                           body=str(data.get("description") or ""),
                           head_sha=str((data.get("lastMergeSourceCommit") or {}).get(
                               "commitId") or ""), state=state, labels=labels, auto_merge=auto)

    def _find(self, branch: str, base: str) -> PullRequest | None:
        for page in range(MAX_PAGES):
            data = self._call("GET", f"{self._root}/pullrequests", params={
                "searchCriteria.sourceRefName": _full(branch),
                "searchCriteria.targetRefName": _full(base),
                "searchCriteria.status": "active", "$top": PAGE, "$skip": page * PAGE}) or {}
            batch = data.get("value") or []
            for item in batch:
                if isinstance(item, dict) and not item.get("forkSource") \
                        and item.get("sourceRefName") == _full(branch):
                    return self._pull(item)
            if len(batch) < PAGE:
                return None
        return None

    def _directory(self) -> dict[str, str]:
        """The project's teams and their members, lower-cased name -> identity id (team
        names, members' display and unique names): ``GET {org}/_apis/projects/{project}/
        teams`` and one ``…/teams/{id}/members`` per team, read once, only when a
        reviewer is named rather than given by id. (The identity service itself is
        another host on Azure DevOps Services: the token does not go there.)"""
        if self._people is None:
            root = f"{self.api_url}/_apis/projects/{quote(self.where.project, safe='')}/teams"

            def pages(url: str) -> list[dict[str, Any]]:
                found: list[dict[str, Any]] = []
                for page in range(MAX_PAGES):
                    data = self._call("GET", url, params={"$top": PAGE, "$skip": page * PAGE},
                                      version=CORE) or {}
                    batch = [x for x in data.get("value") or [] if isinstance(x, dict)]
                    found += batch
                    if len(batch) < PAGE:
                        break
                return found

            def read() -> dict[str, str]:
                people: dict[str, str] = {}
                for team in pages(root):
                    people.setdefault(str(team.get("name") or "").lower(), str(team["id"]))
                    for member in pages(f"{root}/{quote(str(team['id']), safe='')}/members"):
                        who = member.get("identity") or {}
                        for key in ("uniqueName", "displayName"):
                            if who.get(key) and who.get("id"):
                                people.setdefault(str(who[key]).lower(), str(who["id"]))
                return people

            self._people = self._run(f"read the teams of project {self.where.project}", read)
        return self._people

    def _reviewers(self, spec: RequestSpec) -> list[dict[str, str]]:
        """Reviewer ids: a GUID as given, a name looked up among the project's teams and
        their members (ConfigError naming the ones not found)."""
        out: list[dict[str, str]] = []
        unknown: list[str] = []
        for given in spec.reviewers:
            name = given.strip().removeprefix("@")
            if _GUID.fullmatch(name):
                out.append({"id": name})
                continue
            found = self._directory().get(name.lower())
            if found is None:
                unknown.append(given)
            elif {"id": found} not in out:
                out.append({"id": found})
        if unknown:
            raise ConfigError(
                f"Azure DevOps project {self.where.project} has no team or team member "
                f"{', '.join(map(repr, unknown))}", file=CONFIG_FILE,
                hint="name a team of the project, or a member by display or unique name "
                     "(user@example.com), or give the identity id (a GUID)")
        return out

    def open_request(self, branch: str, base: str, spec: RequestSpec, *,
                     auto_merge_next: bool = False) -> PullRequest:
        check_branch(branch)
        payload: dict[str, Any] = {
            "sourceRefName": _full(branch), "targetRefName": _full(base),
            "title": cap_text(spec.title, MAX_TITLE, "title").replace("\n", " "),
            "description": cap_text(spec.body, MAX_BODY, "description"),
            "isDraft": spec.draft}
        reviewers = self._reviewers(spec)
        if reviewers:
            payload["reviewers"] = reviewers
        if spec.labels:
            payload["labels"] = [{"name": label} for label in spec.labels]

        def create() -> PullRequest | None:
            try:
                data = self._call("POST", f"{self._root}/pullrequests", body=payload)
            except HttpFailure as exc:
                if exc.status == 409:
                    return None  # one is active (a lost earlier attempt, or another run)
                raise
            return self._pull(data)

        return self._open(branch, base, spec, create)

    def update_request(self, pr: PullRequest, spec: RequestSpec) -> PullRequest:
        title = cap_text(spec.title, MAX_TITLE, "title").replace("\n", " ")
        body = cap_text(spec.body, MAX_BODY, "description")
        missing = tuple(label for label in spec.labels if label not in pr.labels)
        if title == pr.title and body == pr.body and not missing:
            return pr  # nothing to change: no request
        updated = pr
        if title != pr.title or body != pr.body:
            data = self._run(f"update pull request !{pr.number}", lambda: self._call(
                "PATCH", f"{self._root}/pullrequests/{pr.number}",
                body={"title": title, "description": body}))
            updated = self._pull(data)
        for label in missing:  # added, never replacing labels people put on it
            self._label(pr.number, label)
        if missing:
            updated = replace(updated, labels=tuple(dict.fromkeys(updated.labels + missing)))
        return updated

    def _label(self, number: int, label: str) -> None:
        self._run(f"label pull request !{number}", lambda: self._call(
            "POST", f"{self._root}/pullrequests/{number}/labels", body={"name": label},
            version=PREVIEW))

    def close_request(self, pr: PullRequest, comment: str) -> None:
        text = cap_text(comment, MAX_COMMENT, "comment")
        url = f"{self._root}/pullrequests/{pr.number}/threads"

        def noted() -> bool | None:
            data = self._call("GET", url) or {}
            for thread in data.get("value") or []:
                for item in thread.get("comments") or []:
                    if item.get("content") == text:
                        return True
            return None

        def note() -> bool:
            self._call("POST", url, body={"comments": [{"parentCommentId": 0,
                                                        "content": text, "commentType": 1}],
                                          "status": "closed"})
            return True

        def abandon() -> None:
            where = f"{self._root}/pullrequests/{pr.number}"
            try:
                self._call("PATCH", where, body={"status": "abandoned"})
            except HttpFailure as exc:  # 409 TF401181: completed or abandoned meanwhile
                if exc.status != 409 or (self._call("GET", where) or {}).get("status") \
                        not in ("completed", "abandoned"):
                    raise

        if comment:
            self._write(f"comment on pull request !{pr.number}", note, noted)
        self._run(f"abandon pull request !{pr.number}", abandon)

    # -- checks and merging -----------------------------------------------------------

    def _blocking(self, base: str) -> list[dict[str, Any]]:
        """The enabled, blocking branch policies that apply to ``base`` (read once)."""
        if self._required is None:
            repo_id = str(self._repo_info().get("id") or "")
            data = self._call("GET", f"{self._project_root}/git/policy/configurations",
                              params={"repositoryId": repo_id, "refName": _full(base),
                                      "$top": 1000}, version=PREVIEW) or {}
            self._required = [c for c in data.get("value") or [] if isinstance(c, dict)
                              and c.get("isEnabled") and c.get("isBlocking")
                              and not c.get("isDeleted")]
        return self._required

    def checks(self, pr: PullRequest, sha: str) -> ChecksState:
        """Commit statuses of ``sha``, the pull request's statuses, and the evaluations of
        its blocking branch policies; a blocking policy with no evaluation yet, or one
        still queued / running, is PENDING (never passed)."""
        def look() -> ChecksState:
            states: list[str] = []
            commit = self._call("GET", f"{self._root}/commits/{sha}/statuses",
                                params={"latestOnly": "true"}) or {}
            states += [str(s.get("state") or "").lower() for s in commit.get("value") or []]
            pull = self._call("GET", f"{self._root}/pullrequests/{pr.number}/statuses") or {}
            states += [str(s.get("state") or "").lower() for s in pull.get("value") or []]
            required = self._blocking(pr.base)
            if required:
                project = str((self._repo_info().get("project") or {}).get("id") or "")
                data = self._call("GET", f"{self._project_root}/policy/evaluations", params={
                    "artifactId": f"vstfs:///CodeReview/CodeReviewId/{project}/{pr.number}",
                    "includeNotApplicable": "true"}, version=PREVIEW) or {}
                seen: dict[int, str] = {}
                for e in data.get("value") or []:
                    config = e.get("configuration") or {}
                    status = str(e.get("status") or "").lower()
                    if (e.get("context") or {}).get("isExpired"):
                        status = "queued"  # a build for an older source commit
                    seen[int(config.get("id") or 0)] = status
                for config in required:
                    states.append(seen.get(int(config.get("id") or 0), "queued"))
            states = [s for s in states if s and s != "notapplicable"]
            if not states:
                return ChecksState.NONE
            if any(s in _FAIL for s in states):
                return ChecksState.FAILURE
            if any(s not in _PASS for s in states):
                return ChecksState.PENDING
            return ChecksState.SUCCESS

        return self._run(f"read the checks of !{pr.number}", look)

    def _get_pull(self, number: int) -> dict[str, Any]:
        return self._a_request(self._call("GET", f"{self._root}/pullrequests/{number}"), number)

    def _options(self, method: str, message: str) -> dict[str, Any]:
        if method not in METHODS:
            raise UsageError(f"merge method {method!r} is not one Azure DevOps knows",
                             hint="merge, squash or rebase")
        options: dict[str, Any] = {"mergeStrategy": METHODS[method], "deleteSourceBranch": True,
                                   "transitionWorkItems": False}
        if message.strip():
            options["mergeCommitMessage"] = message
        return options

    def _patch(self, pr: PullRequest, sha: str, body: Mapping[str, Any],
               what: str) -> tuple[dict[str, Any] | None, str]:
        """One PATCH of the pull request; a refusal is (None, message) after reading the
        pull request: a moved source raises. A lost attempt is retried only while the
        pull request is not completed."""
        def patch() -> tuple[dict[str, Any] | None, str]:
            try:
                return self._call("PATCH", f"{self._root}/pullrequests/{pr.number}",
                                  body=dict(body)), ""
            except HttpFailure as exc:
                if exc.status not in (400, 409):
                    raise
                data = self._get_pull(pr.number)
                if data.get("status") == "completed":
                    return data, ""
                head = str((data.get("lastMergeSourceCommit") or {}).get("commitId") or "")
                if head != sha:
                    raise self._moved(pr, sha, exc.message) from None
                if data.get("mergeStatus") == "conflicts":  # Azure's test merge failed
                    return None, f"conflict with its target ({exc.message})"
                return None, exc.message

        def landed() -> tuple[dict[str, Any] | None, str] | None:
            data = self._get_pull(pr.number)
            return (data, "") if data.get("status") == "completed" else None

        return self._write(what, patch, landed)

    def _completed(self, pr: PullRequest, sha: str, data: Mapping[str, Any]) -> MergeOutcome:
        head = str((data.get("lastMergeSourceCommit") or {}).get("commitId") or "")
        if head != sha:
            raise self._moved(pr, sha, "completed at another source commit")
        merged = (data.get("lastMergeCommit") or {}).get("commitId")
        return MergeOutcome(merged=True, sha=str(merged) if merged else None)

    def merge(self, pr: PullRequest, method: MergeMethod, sha: str,
              message: str = "") -> MergeOutcome:
        body = {"status": "completed", "lastMergeSourceCommit": {"commitId": sha},
                "completionOptions": self._options(method, message)}
        data, refused = self._patch(pr, sha, body, f"complete pull request !{pr.number}")
        if data is None:
            return MergeOutcome(merged=False, reason=f"Azure DevOps will not complete "
                                                     f"!{pr.number} now: {refused}",
                                conflict=says_conflict(str(refused)))
        for wait in range(1, COMPLETION_READS + 1):
            if data.get("status") == "completed":
                return self._completed(pr, sha, data)
            if data.get("status") != "active" or data.get("mergeStatus") == "conflicts":
                break
            # Azure queues the completion and answers before it lands: read it again
            self.sleep(float(wait))
            data = self._run(f"read pull request !{pr.number}",
                             lambda: self._get_pull(pr.number))
        if data.get("status") == "completed":
            return self._completed(pr, sha, data)
        if data.get("mergeStatus") == "conflicts":
            return MergeOutcome(merged=False, reason=f"conflict: !{pr.number} does not merge "
                                                     "into its target cleanly", conflict=True)
        return MergeOutcome(merged=False, reason=f"Azure DevOps did not complete !{pr.number} "
                                                 f"yet (merge status {data.get('mergeStatus')})",
                            conflict=says_conflict(str(data.get("mergeStatus"))))

    arms_auto_merge = False  # promote need not look for an armed one to take back

    def disable_auto_merge(self, pr: PullRequest) -> None:
        """Azure's auto-complete is never set by promoter (it pins no commit): no earlier
        run's can be armed, so there is nothing to take back."""

    def enable_auto_merge(self, pr: PullRequest, method: MergeMethod, sha: str,
                          message: str = "") -> MergeOutcome:
        """Complete now, pinned, when Azure allows it; otherwise leave the pull request
        open. Azure's auto-complete (``autoCompleteSetBy``) takes no commit: it completes
        whatever the source branch holds once the policies pass (at once, when they
        already do), so a push landing before or after it is set would be merged
        unproved. Trust rule 2 (merge exactly what was proved, fail closed): promoter
        never sets it. It waits for the policies itself (``--merge-timeout``); a later
        run completes exactly the proved commit."""
        outcome = self.merge(pr, method, sha, message)
        if outcome.merged or outcome.conflict:
            return outcome
        return MergeOutcome(
            merged=False, auto_merge=False,
            reason=f"{outcome.reason}; Azure DevOps' auto-complete is not pinned to a commit, "
                   "so promoter does not set it: the pull request stays open until promote "
                   "runs again after its policies pass (or give a longer --merge-timeout)")


def _no_dirs(entries: Mapping[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    return {path: entry for path, entry in entries.items() if entry[0] != "040000"}


def _path(url: str) -> str:
    return url.split("/_apis", 1)[-1]


def _unzip(data: bytes) -> dict[str, bytes]:
    """``{git blob id: content}`` of a blob zip, each keyed by the id of what it holds
    (so a mislabelled entry is never taken for another blob); at most
    MAX_UNPACKED_BYTES unpacked in all."""
    out: dict[str, bytes] = {}
    total = 0
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            if total + info.file_size > MAX_UNPACKED_BYTES:
                raise ArchiveTooLarge("the blob zip unpacks to", MAX_UNPACKED_BYTES)
            with archive.open(info) as handle:  # reads at most info.file_size bytes
                content = handle.read()
            total += len(content)
            out[git_blob_sha(content)] = content
    return out


def from_setup(setup: Setup) -> AzureForge:
    """The Azure DevOps forge the CLI asked for: an access token, or inside Azure
    Pipelines the job's SYSTEM_ACCESSTOKEN (a bearer token, sent only to the job's own
    collection)."""
    api = setup.api_url or DEFAULT_API
    token, job = setup.token, setup.job_token
    if not token and not job:
        raise UsageError("no token: set PROMOTE_TOKEN (or AZURE_DEVOPS_TOKEN), or map "
                         "SYSTEM_ACCESSTOKEN into the Azure Pipelines step",
                         hint="a personal access token with the Code (Read & write) scope")
    if job and not token:  # the job's token goes to its own collection only
        job_token_stays_home(api, setup.environ.get("SYSTEM_COLLECTIONURI") or "",
                             "SYSTEM_ACCESSTOKEN", "SYSTEM_COLLECTIONURI")
    refuse_cleartext_proxy(api, setup.environ, "--api-url")
    return AzureForge(setup.repo, api_url=api, token=token or job, bearer=not token,
                      retry_timeout=setup.retry_timeout, ca_bundle=setup.ca_bundle,
                      sleep=setup.sleep, patience=setup.patience("Azure DevOps"))
