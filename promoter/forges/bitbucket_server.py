"""The Bitbucket Data Center (Server) forge: REST 1.0, a small client on ``requests``.

Chosen by ``promoter.forges.bitbucket.connect`` for an ``--api-url`` that is not
Bitbucket Cloud's (the server root, e.g. ``https://bitbucket.example.com``; a trailing
``/rest/api/1.0`` is accepted). ``--repo`` is ``PROJECT/REPO`` (project key, repository
slug). Endpoint facts are from Atlassian's Bitbucket Data Center 9.2 OpenAPI document.

Data Center has no multi-file commit API: its one commit-making endpoint is the file
edit, ``PUT …/browse/{path}`` (multipart: ``content``, ``message``, ``branch``,
``sourceBranch`` to create ``branch`` from, ``sourceCommitId``: "the commit ID of the
file before it was edited", 409 when the file changed since). So a promotion that
changes one file is one commit; one that changes several is refused (exit 2) before
anything is written, never split into several commits.

Requests of a first promotion (base given, no reviewers, no checks)::

    snapshot       GET branches?filterText={base}, GET archive?at={sha}&format=tar.gz,
                   GET browse?at={sha} (the root directory: one per 100 entries)
    read_head      GET branches?filterText={branch}  (+ GET commits/{sha} when it exists)
    write_commit   PUT browse/{path} (branch, sourceBranch, sourceCommitId)
    open_request   POST pull-requests
    checks         GET /rest/build-status/1.0/commits/{sha}
    merge          GET pull-requests/{id}, POST pull-requests/{id}/merge?version={v}

The new commit's parent is the base branch's tip when Data Center makes it; when that is
not the snapshot's commit (the base moved), the branch just made is deleted with a
compare-and-swap on it and the run is planned again. Replacing promoter's own tip:
``DELETE /rest/branch-utils/1.0/…/branches`` with ``endPoint`` (a compare-and-swap: the
branch is deleted only while it is still at the commit promoter proved), then the file
edit on a new branch. Data Center declines a pull request whose source branch is deleted:
the promotion then opens a new one.

``changed_files``: the commit (parents) and its changes against its only parent
(``commits/{sha}/changes``): each must be a ``MODIFY`` or ``ADD`` of a ``FILE`` whose
executable bit did not change; ``contentId`` is the new blob's git id. Data Center
reports no symbolic-link type here (a link is a FILE with the same blob id), so the
archive of the changed paths at the commit (``archive?path=``, one GET) must hold each as
a regular file with that blob; a path it leaves out (export-ignore) is not proved.

The archive is proved to be the tree (``promoter.forges.archive``): ``browse`` lists a
directory's children (``path``, ``type`` FILE / DIRECTORY / SUBMODULE, ``contentId``: the
git id of the blob or tree; paged), and the root's ids are compared with the unpacked
archive's, hashed as git hashes trees. Equal, nothing more is read (the policy file's
entry is in that listing). When ``.gitattributes`` made them differ (export-ignore,
export-subst, eol), each directory whose id differs is browsed (one GET per 100
entries), down to the files that differ, and each is read (``raw/{path}?at=``) and
checked against its id, at most ``archive.MAX_REPAIRS`` (exit 5 past it). Data Center
lists no modes: the archive's is kept, and a file the archive left out is taken for a
symbolic link when its bytes can only name a path of the tree (``looks_like_link``); a
``.promoter.yaml`` the archive left out stops the run (exit 2): it could be a link.

Merging: ``POST …/merge?version={v}`` fails (409) when the pull request changed since
version ``v`` was read; promoter reads the pull request, merges only when its source
commit is the proved one, and checks the merged pull request's source commit after.
Data Center's own auto-merge is never scheduled (it pins no commit): green or no checks
now, merged now; otherwise the request stays open (use --merge-timeout). Labels do not
exist (a warning); commits are by the token's user (``author`` is not settable through
the file edit: a warning).
"""

from __future__ import annotations

import tarfile
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

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
    check_policy_entry,
    git_blob_sha,
    refuse_signing,
    says_conflict,
    worst_state,
)
from promoter.forges.bitbucket_common import BitbucketClient
from promoter.forges.http import (
    read_capped,
    refuse_cross_origin,
    said,
)
from promoter.forges.ownwrite import OwnWrite, Remake
from promoter.forges.rest import HttpFailure, split_repo
from promoter.identity import Identity
from promoter.limits import MAX_ARCHIVE_BYTES
from promoter.paths import CONFIG_FILE
from promoter.redact import register

PAGE = 100
MAX_PAGES = 20
MAX_BODY = 32_000  # Data Center's default description limit (32 KiB)
MAX_FILE_BYTES = MAX_ARCHIVE_BYTES

AUTH_HINT = ("set PROMOTE_TOKEN / BITBUCKET_TOKEN to a Data Center HTTP access token with "
             "repository write permission (or a password / token with BITBUCKET_USERNAME)")

_STATES = {"SUCCESSFUL": ChecksState.SUCCESS, "INPROGRESS": ChecksState.PENDING,
           "FAILED": ChecksState.FAILURE, "CANCELLED": ChecksState.FAILURE,
           "UNKNOWN": ChecksState.PENDING}
_MODES = {"FILE": archive.BLOB, "DIRECTORY": archive.TREE, "SUBMODULE": archive.GITLINK}
_STRATEGIES = {"merge": "no-ff", "squash": "squash", "rebase": "rebase-ff-only"}


def _message(response: requests.Response) -> str:
    return said(response, _error_text)


def _error_text(data: Any) -> str:
    """Data Center's error body: ``{"errors": [{"message", "exceptionName"}]}``."""
    if isinstance(data, dict) and isinstance(data.get("errors"), list):
        return "; ".join(str(e.get("message") or "") for e in data["errors"]
                         if isinstance(e, dict))[:500]
    return str(data)[:200]


def _pull(data: Mapping[str, Any]) -> PullRequest:
    source = data.get("fromRef") or {}
    target = data.get("toRef") or {}
    state = {"OPEN": "open", "MERGED": "merged"}.get(str(data.get("state")), "closed")
    link = next((str(x.get("href")) for x in ((data.get("links") or {}).get("self") or [])
                 if isinstance(x, dict)), "")
    return PullRequest(number=int(data["id"]), url=link,
                       branch=str(source.get("displayId") or ""),
                       base=str(target.get("displayId") or ""),
                       title=str(data.get("title") or ""),
                       body=str(data.get("description") or ""),
                       head_sha=str(source.get("latestCommit") or ""), state=state)


def _logged(sha: str, item: Mapping[str, Any]) -> LoggedCommit:
    stamp = item.get("authorTimestamp")
    date = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(stamp) / 1000))
            if isinstance(stamp, int) else "")
    return LoggedCommit(sha=sha, message=str(item.get("message") or ""),
                        author=str((item.get("author") or {}).get("name") or ""), date=date)


class BitbucketServerForge(BitbucketClient):
    """A config repo on Bitbucket Data Center / Server (REST 1.0). Nothing here reads the
    environment."""

    name = "bitbucket"
    service = "Bitbucket Data Center"
    url_hint = "check --api-url: give the server root"
    auth_hint = AUTH_HINT
    redirect_hint = "check --api-url: give the server root that serves the REST API"
    body_limit = MAX_BODY
    pulls = "/pull-requests"
    commits = "/commits"
    id_key = "id"
    _said = staticmethod(_message)
    _logged = staticmethod(_logged)

    def __init__(self, repo: str, api_url: str, token: str | None = None,
                 username: str | None = None, retry_timeout: float = retry.DEFAULT_TIMEOUT,
                 sleep: Callable[[float], None] = time.sleep, timeout: float = 15,
                 ca_bundle: str | None = None, patience: retry.Patience | None = None,
                 warn: Callable[[str], None] = lambda _text: None) -> None:
        register(token)
        repo, project, slug = split_repo(repo, "PROJECT/REPOSITORY",
                                         "give the Data Center repository as project key and "
                                         "slug, e.g. OPS/config")
        url = api_url.strip().rstrip("/")
        for suffix in ("/rest/api/1.0", "/rest/api/latest"):
            url = url.removesuffix(suffix)
        if not url.startswith(("http://", "https://")) or not urlsplit(url).hostname:
            raise UsageError(f"--api-url {url!r} is not an http(s) URL",
                             hint="give the Bitbucket Data Center server root, e.g. "
                                  "https://bitbucket.example.com")
        self.repo = repo
        self.api_url = url
        self.warn = warn
        names = f"projects/{quote(project, safe='')}/repos/{quote(slug, safe='')}"
        self._root = f"{url}/rest/api/1.0/{names}"
        self._branches = f"{url}/rest/branch-utils/1.0/{names}/branches"
        self._builds = f"{url}/rest/build-status/1.0/commits"
        session = self._prepare(token, retry_timeout=retry_timeout, sleep=sleep,
                                timeout=timeout, patience=patience, ca_bundle=ca_bundle)
        session.headers["X-Atlassian-Token"] = "no-check"  # the file edit is multipart
        if token and username:
            session.auth = (username, token)
        elif token:
            session.headers["Authorization"] = f"Bearer {token}"
        self._session = refuse_cross_origin(session)

    # -- plumbing ---------------------------------------------------------------------

    def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
              body: Any = None, files: Any = None, missing: bool = False, raw: bool = False,
              url: str | None = None) -> Any:
        target = url or f"{self._root}{path}"
        response = self._session.request(method, target, params=params, json=body,
                                         files=files, timeout=self.timeout, stream=raw)
        return self._answer(response, method, path, ok=(200, 201, 204), missing=missing,
                            raw=MAX_FILE_BYTES if raw else 0)

    def _pages(self, path: str, params: Mapping[str, Any],
               url: str | None = None) -> Iterator[dict[str, Any]]:
        """Every value of a paged list (``isLastPage`` / ``nextPageStart``)."""
        start = 0
        for _ in range(MAX_PAGES):
            data = self._call("GET", path, params={**params, "start": start, "limit": PAGE},
                              url=url) or {}
            for value in data.get("values") or []:
                if isinstance(value, dict):
                    yield value
            if data.get("isLastPage", True) or data.get("nextPageStart") is None:
                return
            start = int(data["nextPageStart"])
        raise ForgeError(f"Bitbucket Data Center listed more than {MAX_PAGES} pages of "
                         f"{path} in {self.repo}")

    def _tip(self, branch: str) -> str | None:
        """The branch's commit: the exact match among ``filterText`` results."""
        for item in self._pages("/branches", {"filterText": branch, "boostMatches": "true"}):
            if item.get("displayId") == branch or item.get("id") == f"refs/heads/{branch}":
                return str(item.get("latestCommit") or "") or None
        return None

    def _head(self, branch: str) -> Head | None:
        sha = self._tip(branch)
        if sha is None:
            return None
        commit = self._commit(sha)
        return Head(sha=sha, message=str(commit.get("message") or ""),
                    parents=self._parents(commit))

    # -- reading ----------------------------------------------------------------------

    def snapshot(self, base: str | None, branch: str | None = None) -> Snapshot:
        if base is not None:
            check_branch(base)
        if branch is not None:
            check_branch(branch)
        if base is None:
            data = self._run("read the default branch", lambda: self._call(
                "GET", "/branches/default", missing=True))
            if not data:
                raise UsageError(f"Bitbucket Data Center repository {self.repo} has no "
                                 "default branch, or the token cannot see it",
                                 hint="check --repo (PROJECT/REPO) and the token")
            name, commit = str(data.get("displayId") or ""), str(data.get("latestCommit"))
        else:
            name = base
            found = self._run(f"read branch {name}", lambda: self._tip(name))
            if found is None:
                raise UsageError(f"base branch {name!r} does not exist in Bitbucket Data "
                                 f"Center repository {self.repo}", hint="check --base")
            commit = found

        tree = archive.download(lambda: self._run(f"download the archive of {name}",
                                                  lambda: self._archive(commit)),
                                "Bitbucket Data Center", f"{name} of {self.repo}")
        root = self._run(f"read the root directory of {self.repo}",
                         lambda: self._children(commit, ""))
        paths: dict[str, str] = {}  # blob id -> a path that holds it, for reading it

        def listed() -> list[archive.Listed]:
            return self._run(f"list the tree of {self.repo}",
                             lambda: self._walk(commit, root, tree, paths))

        def read(oid: str) -> bytes:
            data: bytes = self._run(f"read {paths[oid]} of {self.repo}", lambda: self._call(
                "GET", f"/raw/{quote(paths[oid])}", params={"at": commit}, raw=True))
            return data

        # a policy file the archive left out has no known mode: a link's target can be
        # any text, a policy too (this listing names no modes)
        unknown = CONFIG_FILE not in tree.files and CONFIG_FILE not in tree.links
        archive.prove(tree, root, listed, read, f"{self.repo} at {commit[:12]}")
        self._policy_file(root, tree.files, tree.links, unknown=unknown)
        return Snapshot(branch=name, commit=commit, files=tree.files, links=tree.links)

    def _archive(self, commit: str, paths: tuple[str, ...] = ()) -> bytes:
        """``archive?at=&format=tar.gz`` (of ``paths`` only, when given)."""
        params: dict[str, Any] = {"at": commit, "format": "tar.gz", "prefix": "repo/"}
        if paths:
            params["path"] = list(paths)
        with self._session.get(f"{self._root}/archive", stream=True, timeout=self.timeout,
                               params=params) as response:
            if response.status_code != 200:
                raise HttpFailure(response.status_code, _message(response), response.headers)
            return read_capped(response, MAX_ARCHIVE_BYTES, "the archive")

    def _children(self, commit: str, directory: str) -> list[archive.Listed]:
        """A directory's entries at ``commit`` (``browse``: one GET per 100), paths from
        the root; a file's mode is not listed (``archive.BLOB``)."""
        path = f"/browse/{quote(directory)}" if directory else "/browse"
        out: list[archive.Listed] = []
        start = 0
        for _ in range(MAX_PAGES):
            data = self._call("GET", path, params={"at": commit, "start": start,
                                                   "limit": PAGE}) or {}
            children = data.get("children") or {}
            for child in children.get("values") or []:
                name = str(((child or {}).get("path") or {}).get("toString") or "")
                mode = _MODES.get(str(child.get("type")))
                oid = str(child.get("contentId") or "")
                # a directory listed without its id is browsed (never taken as proved); a
                # file or submodule without one cannot be proved
                if not name or mode is None or (mode != archive.TREE and len(oid) < 40):
                    raise ForgeError(f"Bitbucket Data Center listed {directory or 'the root'}"
                                     f" of {self.repo} with an entry promoter cannot read "
                                     f"({name or '?'})", hint="report it")
                out.append(archive.Listed(f"{directory}/{name}" if directory else name,
                                          mode, oid))
            if children.get("isLastPage", True) or children.get("nextPageStart") is None:
                return out
            start = int(children["nextPageStart"])
        raise ForgeError(f"Bitbucket Data Center listed more than {MAX_PAGES} pages of "
                         f"{directory or 'the root'} in {self.repo}",
                         hint="a config repo that large is not supported")

    def _walk(self, commit: str, root: list[archive.Listed], tree: archive.Unpacked,
              paths: dict[str, str]) -> list[archive.Listed]:
        """Every blob of the tree: the archive's own entries below each directory whose id
        equals the archive's (proved), the listing of each that differs (browsed)."""
        held = tree.entries()
        ids = archive.tree_ids(held)
        out: list[archive.Listed] = []
        pending = list(root)
        browsed = 0
        while pending:
            entry = pending.pop()
            if entry.mode != archive.TREE:
                out.append(entry)
                paths.setdefault(entry.oid, entry.path)
            elif ids.get(entry.path) == entry.oid:
                out.extend(archive.Listed(p, mode, oid) for p, (mode, oid) in held.items()
                           if p.startswith(entry.path + "/"))
            else:
                browsed += 1
                if browsed > archive.MAX_REPAIRS:
                    raise ForgeError(f"the archive of {self.repo} at {commit[:12]} differs "
                                     f"from its tree in more than {archive.MAX_REPAIRS} "
                                     "directories", hint="drop the .gitattributes "
                                     "export-ignore / export-subst / eol attributes")
                pending.extend(self._children(commit, entry.path))
        return out

    def _policy_file(self, root: list[archive.Listed], files: dict[str, bytes],
                     links: dict[str, str], *, unknown: bool) -> None:
        """The policy file's entry from the root listing (FILE, DIRECTORY, SUBMODULE; a
        link is known from the proved snapshot); its bytes are the proved blob's. A blob
        the archive left out (``unknown``) may be a link: the run stops (exit 2)."""
        entry = next((e for e in root if e.path == CONFIG_FILE), None)
        if entry is None:
            files.pop(CONFIG_FILE, None)
            links.pop(CONFIG_FILE, None)
            return
        if unknown and entry.mode == archive.BLOB:
            raise ConfigError(
                f"{CONFIG_FILE} on the base branch is left out of the archive "
                "(.gitattributes export-ignore), and Bitbucket Data Center lists no file "
                "modes: promoter cannot tell a regular file from a symbolic link, and reads "
                "its policy only from a regular file", file=CONFIG_FILE,
                hint=f"remove export-ignore from {CONFIG_FILE} in .gitattributes on the base "
                     "branch")
        mode = "120000" if CONFIG_FILE in links else format(
            archive.FILE if entry.mode == archive.BLOB else entry.mode, "06o")
        check_policy_entry(mode, links.get(CONFIG_FILE))

    def _reachable(self, branch: str) -> Iterator[dict[str, Any]]:
        return self._pages("/commits", {"until": f"refs/heads/{branch}"})

    # -- the commit -------------------------------------------------------------------

    def use_identity(self, author: Identity | None, *, sign: bool = False) -> None:
        refuse_signing(sign, "Bitbucket")
        if author is not None:
            self.warn(f"Bitbucket Data Center's file edit takes no author: the commit is by "
                      f"the token's user, not {author.name}")

    def write_first(self, files: Mapping[str, bytes]) -> bool:
        return False

    def commit_verified(self, sha: str) -> bool | None:
        return None

    @staticmethod
    def one_file(files: Mapping[str, bytes]) -> tuple[str, bytes]:
        """The only file of a promotion; several are refused (exit 2), never split."""
        if len(files) != 1:
            raise UsageError(
                f"this promotion changes {len(files)} files ({', '.join(sorted(files))}), "
                "and Bitbucket Data Center has no API that commits several files at once; "
                "promoter refuses rather than split it into several commits. Nothing was "
                "written", hint="promote one file at a time (--file, --env), or promote "
                                "through --forge git with the repository's clone URL")
        return next(iter(files.items()))

    def write_commit(self, branch: str, base: Snapshot, files: Mapping[str, bytes],
                     message: str, *, replace: Head | None) -> str:
        guard = OwnWrite(self.repo, branch, base.commit, files, message, replace,
                         self._changed)
        path, content = self.one_file(files)

        form: dict[str, Any] = {"content": (path.rsplit("/", 1)[-1], content),
                                "message": (None, message), "branch": (None, branch),
                                "sourceBranch": (None, base.branch)}
        if path in base.files:
            form["sourceCommitId"] = (None, base.commit)
        remake = Remake(guard, lambda: self._head(branch),
                        lambda head: self._delete(branch, head.sha, guard.in_the_way))

        def attempt() -> str:
            remake.clear()
            try:
                data = self._call("PUT", f"/browse/{quote(path)}", files=form)
            except HttpFailure as exc:
                if exc.status in (400, 409) and "branch" in exc.message.lower():
                    # another run made the branch meanwhile (or, on a retry, our own lost
                    # attempt did): only a retry may take it as ours; a first attempt
                    # leaves it to the caller to plan again
                    return guard.settle(self._head(branch), claim=write.retried)
                if exc.status == 409:
                    raise ConflictError(f"the base {base.branch} of {self.repo} changed "
                                        f"under the promotion ({exc.message})",
                                        hint="run again") from None
                raise
            sha = str((data or {}).get("id") or "")
            if self._parents(data or {}) != (base.commit,):
                # made on the base as it is now, not on the snapshot: take it back
                self._delete(branch, sha, guard.in_the_way)
                raise ConflictError(f"the base {base.branch} of {self.repo} moved from "
                                    f"{base.commit[:12]} while promoting", hint="run again")
            return sha

        write = retry.Write(attempt, remake.landed)
        return self._run(f"commit to {branch}", write)

    def _delete(self, branch: str, expected: str,
                in_the_way: Callable[[Head | None], ConflictError]) -> None:
        """Delete ``branch`` only while it is at ``expected`` (``endPoint``)."""
        try:
            self._call("DELETE", "", url=self._branches,
                       body={"name": f"refs/heads/{branch}", "endPoint": expected})
        except HttpFailure as exc:
            if exc.status in (400, 409):
                raise in_the_way(self._head(branch)) from None
            raise

    def changed_files(self, sha: str) -> Mapping[str, str] | None:
        return self._run(f"read commit {sha[:12]}", lambda: self._changed(sha))

    def _changed(self, sha: str) -> Mapping[str, str] | None:
        parents = self._parents(self._commit(sha))
        if len(parents) != 1:
            return None
        out: dict[str, str] = {}
        for change in self._pages(f"/commits/{sha}/changes", {"since": parents[0],
                                                              "withComments": "false"}):
            kind, node = change.get("type"), change.get("nodeType")
            path = str((change.get("path") or {}).get("toString") or "")
            if kind not in ("ADD", "MODIFY") or node != "FILE" or not path:
                return None
            if kind == "MODIFY" and bool(change.get("executable")) != bool(
                    change.get("srcExecutable")):
                return None
            out[path] = str(change.get("contentId") or "")
        return out if self._regular_files(sha, out) else None

    def _regular_files(self, sha: str, changed: Mapping[str, str]) -> bool:
        """Whether each of ``changed`` (path -> blob id) is a regular file at ``sha``
        holding that blob. ``changes`` calls a symbolic link a FILE too (same blob id:
        the link's target may be the planned bytes), so the archive of those paths says
        which each is; a path it leaves out (export-ignore) cannot be told: no."""
        if not changed:
            return True
        try:
            tree = archive.unpack_archive(self._archive(sha, tuple(sorted(changed))))
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise ForgeError(f"Bitbucket Data Center sent an unreadable archive of "
                             f"{sha[:12]}: {exc}") from exc
        return all(path in tree.files and git_blob_sha(tree.files[path]) == oid
                   for path, oid in changed.items())

    def delete_branch(self, branch: str) -> None:
        check_branch(branch)
        self._run(f"delete branch {branch}", lambda: self._call(
            "DELETE", "", url=self._branches, body={"name": f"refs/heads/{branch}"}))

    # -- pull requests ----------------------------------------------------------------

    def _find(self, branch: str, base: str) -> PullRequest | None:
        for item in self._pages("/pull-requests", {"at": f"refs/heads/{branch}",
                                                   "direction": "OUTGOING", "state": "OPEN"}):
            pr = _pull(item)
            if pr.branch == branch and pr.base == base and pr.state == "open":
                return pr
        return None

    def open_request(self, branch: str, base: str, spec: RequestSpec, *,
                     auto_merge_next: bool = False) -> PullRequest:
        title, body = self._texts(spec, branch)
        payload: dict[str, Any] = {
            "title": title, "description": body,
            "fromRef": {"id": f"refs/heads/{branch}"}, "toRef": {"id": f"refs/heads/{base}"},
            "draft": spec.draft,
            "reviewers": [{"user": {"name": r.removeprefix("@")}} for r in spec.reviewers]}

        def create() -> PullRequest | None:
            try:
                return _pull(self._call("POST", "/pull-requests", body=payload))
            except HttpFailure as exc:
                if exc.status == 409 and "only one pull request" in exc.message.lower():
                    return None
                if exc.status == 409 and "reviewer" in exc.message.lower():
                    raise ConfigError(f"Bitbucket Data Center refused the reviewers "
                                      f"{', '.join(spec.reviewers)} ({exc.message})",
                                      file=CONFIG_FILE, hint="name reviewers by their "
                                      "Bitbucket user name in .promoter.yaml / --reviewer"
                                      ) from None
                raise

        return self._open(branch, base, spec, create)

    def update_request(self, pr: PullRequest, spec: RequestSpec) -> PullRequest:
        title, body = self._texts(spec)
        if title == pr.title and body == pr.body:
            return pr

        def put() -> PullRequest:
            now = self._get_pull(pr.number)  # its version, and its reviewers kept as they are
            return _pull(self._call("PUT", f"/pull-requests/{pr.number}", body={
                "version": now.get("version"), "title": title, "description": body,
                "reviewers": now.get("reviewers") or []}))

        return self._run(f"update pull request #{pr.number}", put)

    def close_request(self, pr: PullRequest, comment: str) -> None:
        text = cap_text(comment, MAX_BODY, "comment")
        if comment:
            self._run(f"comment on pull request #{pr.number}", lambda: self._call(
                "POST", f"/pull-requests/{pr.number}/comments", body={"text": text}))

        def decline() -> None:
            now = self._get_pull(pr.number)
            if now.get("state") == "OPEN":
                self._call("POST", f"/pull-requests/{pr.number}/decline",
                           params={"version": now.get("version")}, body={})

        self._run(f"decline pull request #{pr.number}", decline)

    # -- checks and merging -----------------------------------------------------------

    def checks(self, pr: PullRequest, sha: str) -> ChecksState:
        def look() -> ChecksState:
            return worst_state(_STATES.get(str(s.get("state")), ChecksState.PENDING)
                               for s in self._pages("", {}, url=f"{self._builds}/{sha}"))

        return self._run(f"read the builds of {sha[:12]}", look)

    def _merged_at(self, pr: PullRequest, sha: str, data: Mapping[str, Any]) -> MergeOutcome:
        head = str((data.get("fromRef") or {}).get("latestCommit") or "")
        if head != sha:
            raise ForgeError(
                f"Bitbucket Data Center merged pull request #{pr.number} of {self.repo} at "
                f"{head[:12] or '?'}, not at the commit promoter proved ({sha[:12]})",
                hint=f"review what reached {pr.base} now; restrict pushes to promote/*")
        merge = ((data.get("properties") or {}).get("mergeCommit") or {}).get("id")
        return MergeOutcome(merged=True, sha=str(merge) if merge else None)

    def merge(self, pr: PullRequest, method: MergeMethod, sha: str,
              message: str = "") -> MergeOutcome:
        """Merge with the pull request's ``version`` as read while its source commit was
        the proved one: a pull request that changed since is refused (409)."""
        data, done = self._state(pr, sha)
        if done is not None:
            return done
        head = str((data.get("fromRef") or {}).get("latestCommit") or "")
        if head != sha:
            raise self._moved(pr, sha, f"now {head[:12] or 'unknown'}")
        body: dict[str, Any] = {"strategyId": _STRATEGIES.get(method, "no-ff")}
        if message.strip():
            body["message"] = message
        version = data.get("version")

        def post() -> dict[str, Any] | str:
            try:
                return dict(self._call("POST", f"/pull-requests/{pr.number}/merge",
                                       params={"version": version}, body=body) or {})
            except HttpFailure as exc:
                if exc.status == 409 and "out-of-date" in exc.message.lower():
                    raise self._moved(pr, sha, "it changed since it was read") from None
                if exc.status in (400, 409):
                    return exc.message or f"HTTP {exc.status}"
                raise

        def landed() -> dict[str, Any] | str | None:
            now = self._get_pull(pr.number)
            return now if now.get("state") == "MERGED" else None

        answer = self._write(f"merge pull request #{pr.number}", post, landed)
        if isinstance(answer, str):
            return MergeOutcome(merged=False, reason=f"Bitbucket Data Center will not merge "
                                                     f"#{pr.number} now: {answer}",
                                conflict=says_conflict(str(answer)))
        return self._merged_at(pr, sha, answer)

    def _unpinned(self, sha: str, state: ChecksState) -> str:
        return ("promoter does not schedule Bitbucket Data Center's auto-merge (it is not "
                f"pinned to the proved commit), and the builds on {sha[:12]} are "
                f"{state.value}; give --merge-timeout SECONDS so promoter waits for them "
                "and merges itself")
