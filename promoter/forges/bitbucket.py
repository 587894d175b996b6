"""The Bitbucket Cloud forge: a small client on ``requests`` against the REST API 2.0.

Client: a small one here. ``atlassian-python-api`` (the issue's suggestion) was read
(atlassian/rest_client.py, atlassian/bitbucket/cloud/): it retries inside its own
``requests`` calls with ``time.sleep`` (its own backoff and ``Retry-After`` reading,
not injectable, so ``promoter.retry`` would no longer own the one retry policy); it
follows redirects with plain ``requests`` (no cross-origin refusal); its Cloud classes
wrap no ``POST /src`` (the one multi-file commit) and no capped download; and it is not
among the packages this project may install here. The few endpoints are called here
directly, as ``promoter.forges.gitea`` does.

Bitbucket Data Center (REST 1.0) is ``promoter.forges.bitbucket_server``; ``connect``
picks it for an ``--api-url`` that is not Bitbucket Cloud's API
(``https://api.bitbucket.org``, or a URL whose path ends in ``/2.0``). This class itself
refuses such a URL (exit 2) before any request.

Requests of a first promotion (base given, no reviewers, no checks)::

    snapshot       GET refs/branches/{base}, GET {web}/{ws}/{repo}/get/{sha}.tar.gz
                   (the archive, on the web host), GET src/{sha}/?max_depth=…&pagelen=100
                   (the whole tree: one per 100 entries; + GET src/{sha}/{path} per
                   .gitattributes; + GET the repository when the base is its main branch)
    read_head      GET refs/branches/{branch}        (404: none; the tip's message and
                   parents come with it)
    write_commit   POST src (form: one field per file, message, branch, parents, author),
                   GET refs/branches/{base} (still the snapshot? else planned again)
    open_request   POST pullrequests (+ GET workspaces/{ws}/members once, to turn
                   reviewer nicknames into account ids)
    checks         GET commit/{sha}/statuses
    merge          GET pullrequests/{id}, GET refs/branches/{branch} (the head, right
                   before), POST pullrequests/{id}/merge

The archive is proved to be the tree (``promoter.forges.archive.prove_by_size``):
``git archive`` obeys ``.gitattributes`` (export-ignore, export-subst, eol), and the
``src`` API lists no object ids to compare with. So the whole tree is listed every run
(``commit_file``: path, size, attributes link / executable / subrepository; paged by
``next``; a directory deeper than ``MAX_DEPTH`` is listed on its own), every
``.gitattributes`` is read, and read from the tree (``src/{sha}/{path}``, the bytes as
stored) is each file the archive lacks or holds with another kind or size, and each file
a ``.gitattributes`` line setting export-subst, ident, filter or working-tree-encoding
may match (those can rewrite a file to the same size; eol / text only add bytes); at
most ``archive.MAX_REPAIRS`` (exit 5 past it). The policy file's entry is in that
listing; its bytes are the proved ones.

The commit: ``POST /2.0/repositories/{ws}/{repo}/src`` with ``branch`` (the promotion
branch, new) and ``parents`` (the snapshot's commit): Bitbucket creates the branch and
the commit directly on that parent, whatever the main branch is now, so the commit is
on the snapshot by construction; the base is read right after, and when it moved (another
run may have merged this very promotion) the new branch is deleted and the run planned
again, as the other forges do. On a branch that exists, ``parents`` is a
compare-and-swap: "it is asserted that the parent is the branch's tip/HEAD at the time
the request is made. When this is not the case, a 409 is returned" (API reference).

Replacing promoter's own tip (a base that moved): Bitbucket Cloud has no API that moves
a branch (refs/branches creates and deletes only), and a commit on the existing branch
must have its tip as parent. So the branch is read (it must still be ``replace``), deleted
and made again by ``POST src`` on the new base; a push that lands in the one round trip
between the read and the delete is lost from the branch (never merged: the next read
proves the tip). Restrict pushes to ``promote/*`` to the bot (docs/ci.md).

``changed_files``: the commit (parents, cached), its diffstat against its only parent
(statuses ``added``/``modified`` only: removed, renamed and conflict entries prove
nothing), and per changed file its ``format=meta`` (attributes: a link or submodule, or
an executable bit that differs from the parent's, is not a plain edit) and its bytes,
whose git blob id is computed here (Bitbucket reports none): 2 + 2-3 requests per file.
Every file read from the tree is streamed and capped at ``MAX_FILE_BYTES`` (exit 5).

Merging and the trust rule "merge exactly what was proved": Bitbucket's merge endpoint
takes no expected head (``pullrequest_merge_parameters``: type, message,
close_source_branch, merge_strategy). So promoter reads the pull request and the branch
right before merging and merges only when both are the proved commit, then checks the
merged pull request's source commit: a head that moved in between is reported (exit 5),
never claimed as merged. Bitbucket's own auto-merge ("merge when builds pass") has no
REST API and would merge whatever the head then is: promoter never schedules it. It
merges at once when the checks are already green, and otherwise leaves the request open
(exit 4 with --require-merge): give --merge-timeout so promoter waits for the checks
and merges itself. Labels do not exist on Bitbucket: asked-for labels are a warning.

Tokens: ``Authorization: Bearer`` (repository / project / workspace access tokens), or
HTTP Basic with a user name (app passwords, Atlassian API tokens). Sent to the
``--api-url`` origin and to the web origin that serves archives (``bitbucket.org`` for
``api.bitbucket.org``; the API's own origin otherwise), nowhere else: a redirect of an
API call to another origin stops the run; an archive redirected elsewhere (a CDN's
pre-signed link) is fetched there without any credential; a pagination ``next`` link
to another origin stops the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace as dc_replace
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests

from promoter import __version__, retry
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
    origin,
    read_capped,
    refuse_cleartext_proxy,
    refuse_cross_origin,
    said,
    same_origin,
)
from promoter.forges.http import session as http_session
from promoter.forges.ownwrite import OwnWrite, Remake
from promoter.forges.registry import Setup
from promoter.forges.rest import HttpFailure, split_repo
from promoter.identity import Identity
from promoter.limits import MAX_ARCHIVE_BYTES
from promoter.paths import CONFIG_FILE
from promoter.redact import redact, register

CLOUD_API = "https://api.bitbucket.org"
CLOUD_WEB = "https://bitbucket.org"
PAGE = 50  # pull requests, statuses, members: Bitbucket's pagelen maximum is 50 (100 some)
DIFFSTAT_PAGE = 500
MAX_PAGES = 20
SRC_PAGE = 100  # entries per page of a directory listing (the src API's maximum)
MAX_DEPTH = 10  # directory levels per listing; a deeper directory is listed on its own
MAX_REDIRECTS = 3
MAX_BODY = 65_000
MAX_MESSAGE = 128 * 1024  # Bitbucket's limit on a merge commit message
MAX_FILE_BYTES = MAX_ARCHIVE_BYTES  # one file's bytes (the policy file, a changed file)

AUTH_HINT = ("set PROMOTE_TOKEN / BITBUCKET_TOKEN to a repository access token with the "
             "repository:write and pullrequest:write scopes (or an app password / API "
             "token with BITBUCKET_USERNAME set to its user)")
REDIRECT_HINT = f"check --api-url: give {CLOUD_API}"

_STATES = {"SUCCESSFUL": ChecksState.SUCCESS, "INPROGRESS": ChecksState.PENDING,
           "FAILED": ChecksState.FAILURE, "STOPPED": ChecksState.FAILURE}
_STRATEGIES = {"merge": "merge_commit", "squash": "squash", "rebase": "fast_forward"}


def _message(response: requests.Response) -> str:
    return said(response, _error_text)


def _error_text(data: Any) -> str:
    """Bitbucket's error body: ``{"type": "error", "error": {"message", "detail"}}``."""
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            text = str(error.get("message") or "")
            detail = error.get("detail")
            if detail:
                text = f"{text} ({detail})" if text else str(detail)
            return text[:500]
        return str(data.get("message") or data)[:500]
    return str(data)[:200]


def _pull(data: Mapping[str, Any]) -> PullRequest:
    source = data.get("source") or {}
    destination = data.get("destination") or {}
    state = {"OPEN": "open", "MERGED": "merged"}.get(str(data.get("state")), "closed")
    return PullRequest(
        number=int(data["id"]),
        url=str(((data.get("links") or {}).get("html") or {}).get("href") or ""),
        branch=str((source.get("branch") or {}).get("name") or ""),
        base=str((destination.get("branch") or {}).get("name") or ""),
        title=str(data.get("title") or ""), body=str(data.get("description") or ""),
        head_sha=str((source.get("commit") or {}).get("hash") or ""), state=state)


def _same_commit(short: str, full: str) -> bool:
    """Bitbucket reports a pull request's commits by a 12-character prefix."""
    return len(short) >= 7 and full.startswith(short)


def _logged(sha: str, item: Mapping[str, Any]) -> LoggedCommit:
    raw = str((item.get("author") or {}).get("raw") or "")
    return LoggedCommit(sha=sha, message=str(item.get("message") or ""),
                        author=raw.split(" <")[0], date=str(item.get("date") or ""))


def is_cloud_api(url: str) -> bool:
    """Bitbucket Cloud's API: ``api.bitbucket.org``, or any URL whose path ends in
    ``/2.0`` (a Cloud-compatible endpoint). Anything else is taken for Data Center."""
    parts = urlsplit(url.strip().rstrip("/"))
    return (parts.hostname or "").lower() == "api.bitbucket.org" or parts.path.endswith("/2.0")


class BitbucketForge(BitbucketClient):
    """A config repo on Bitbucket Cloud (API 2.0).

    ``repo`` is ``workspace/slug``; ``api_url`` the API (``https://api.bitbucket.org``, a
    trailing ``/2.0`` accepted); ``token`` an access token (Bearer), or with
    ``username`` an app password / API token (Basic); ``web_url`` where archives are
    served (default: ``https://bitbucket.org`` for the Cloud API, else the API's own
    origin); ``warn`` receives notes (labels asked for, which Bitbucket has not). Nothing
    here reads the environment."""

    name = "bitbucket"
    service = "Bitbucket"
    auth_hint = AUTH_HINT
    redirect_hint = REDIRECT_HINT
    url_hint = f"check --api-url: give {CLOUD_API}"
    body_limit = MAX_BODY
    pulls = "/pullrequests"
    commits = "/commit"
    id_key = "hash"
    _said = staticmethod(_message)
    _logged = staticmethod(_logged)

    def __init__(self, repo: str, api_url: str = CLOUD_API, token: str | None = None,
                 username: str | None = None, web_url: str | None = None,
                 retry_timeout: float = retry.DEFAULT_TIMEOUT,
                 sleep: Callable[[float], None] = time.sleep, timeout: float = 15,
                 ca_bundle: str | None = None, patience: retry.Patience | None = None,
                 warn: Callable[[str], None] = lambda _text: None) -> None:
        register(token)
        repo, workspace, slug = split_repo(repo, "WORKSPACE/REPOSITORY",
                                           "give the Bitbucket repository as workspace/slug, "
                                           "e.g. acme/config")
        url = api_url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--api-url {url!r} is not an http(s) URL",
                             hint=f"give the Bitbucket Cloud API, {CLOUD_API}")
        if not is_cloud_api(url):
            raise UsageError(
                f"--api-url {origin(url)}{urlsplit(url).path} is not Bitbucket Cloud's API "
                "(Bitbucket Data Center is promoter.forges.bitbucket_server)",
                hint=f"for Bitbucket Cloud give {CLOUD_API} (or leave --api-url out)")
        url = url.removesuffix("/2.0")
        parts = urlsplit(url)
        self.repo = repo
        self.workspace = workspace
        self.api_url = url
        self.web_url = (web_url or (CLOUD_WEB if (parts.hostname or "") == "api.bitbucket.org"
                                    else origin(url))).rstrip("/")
        self.warn = warn
        self._root = (f"{url}/2.0/repositories/{quote(workspace, safe='')}/"
                      f"{quote(slug, safe='')}")
        self._slug = slug
        self._author: Identity | None = None
        self._members: dict[str, str] | None = None
        session = self._prepare(token, retry_timeout=retry_timeout, sleep=sleep,
                                timeout=timeout, patience=patience, ca_bundle=ca_bundle)
        if token and username:
            session.auth = (username, token)
        elif token:
            session.headers["Authorization"] = f"Bearer {token}"
        # the archive's web origin: the same credentials, redirects handled in _archive
        self._web = http_session(ca_bundle)
        self._web.headers.update(session.headers)
        self._web.auth = session.auth
        self._session = refuse_cross_origin(session)  # the token stays with its host
        self._bare = http_session(ca_bundle)  # no credentials: a CDN's pre-signed link
        self._bare.headers["User-Agent"] = f"promoter/{__version__}"

    def close(self) -> None:
        """Close the HTTP connections (the forge is not usable afterwards)."""
        super().close()
        self._web.close()
        self._bare.close()

    # -- plumbing ---------------------------------------------------------------------

    def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
              body: Any = None, files: Any = None, ok: tuple[int, ...] = (200, 201, 202, 204),
              missing: bool = False, raw: bool = False, url: str | None = None) -> Any:
        """One request to the API; ``missing``: a 404 is None; ``raw``: the body's bytes.
        Other statuses raise ``HttpFailure``."""
        target = url or f"{self._root}{path}"
        if not same_origin(target, self.api_url):
            raise ForgeError(redact(f"Bitbucket sent a link to {origin(target)}, not to "
                                    f"{origin(self.api_url)}; promoter does not send the "
                                    "token there"), hint="check --api-url")
        response = self._session.request(method, target, params=params, json=body,
                                         files=files, timeout=self.timeout,
                                         allow_redirects=True, stream=raw)
        return self._answer(response, method, path, ok=ok, missing=missing,
                            raw=MAX_FILE_BYTES if raw else 0)

    def _pages(self, path: str, params: Mapping[str, Any],
               url: str | None = None) -> Iterator[dict[str, Any]]:
        """Every value of a paginated list, following ``next`` (same origin only)."""
        data = self._call("GET", path, params=params, url=url)
        for _ in range(MAX_PAGES):
            for value in (data or {}).get("values") or []:
                if isinstance(value, dict):
                    yield value
            following = (data or {}).get("next")
            if not following:
                return
            data = self._call("GET", "", url=str(following))
        raise ForgeError(f"Bitbucket listed more than {MAX_PAGES} pages of {path} in "
                         f"{self.repo}", hint="report it; promoter reads at most that many")

    @staticmethod
    def _ref(name: str) -> str:
        return quote(name, safe="")

    def _head(self, branch: str) -> Head | None:
        """GET the branch: its tip, message and parents in one answer; no retry."""
        data = self._call("GET", f"/refs/branches/{self._ref(branch)}", missing=True)
        if data is None:
            return None
        target = data.get("target") or {}
        sha = str(target.get("hash") or "")
        if len(sha) < 40:
            raise ForgeError(f"Bitbucket answered branch {branch} with no commit")
        return Head(sha=sha, message=str(target.get("message") or ""),
                    parents=self._parents(target))

    # -- reading ----------------------------------------------------------------------

    def snapshot(self, base: str | None, branch: str | None = None) -> Snapshot:
        if base is not None:
            check_branch(base)
        if branch is not None:
            check_branch(branch)
        if base is None:
            data = self._run("read the repository", lambda: self._call("GET", "",
                                                                       missing=True))
            if data is None:
                raise UsageError(f"Bitbucket repository {self.repo} not found, or the token "
                                 "cannot see it", hint="check --repo (workspace/slug) and "
                                 "the token's access to it")
            base = str((data.get("mainbranch") or {}).get("name") or "")
            if not base:
                raise UsageError(f"Bitbucket repository {self.repo} has no main branch "
                                 "(empty repository?)", hint="push an initial commit first")
        name = base
        tip = self._run(f"read branch {name}", lambda: self._head(name))
        if tip is None:
            raise UsageError(f"base branch {name!r} does not exist in Bitbucket repository "
                             f"{self.repo}", hint="check --base (and --repo)")
        commit = tip.sha
        tree = archive.download(lambda: self._run(f"download the archive of {name}",
                                                  lambda: self._archive(commit)),
                                "Bitbucket", f"{name} of {self.repo}")
        listing, directories = self._run(f"list the tree of {self.repo}",
                                         lambda: self._list(commit))

        def read(path: str) -> bytes:
            data: bytes = self._run(f"read {path} of {self.repo}", lambda: self._call(
                "GET", f"/src/{commit}/{quote(path)}", raw=True))
            return data

        archive.prove_by_size(tree, listing, read, f"{self.repo} at {commit[:12]}")
        self._policy_file(listing, directories, tree.files, tree.links)
        return Snapshot(branch=name, commit=commit, files=tree.files, links=tree.links)

    def _list(self, commit: str) -> tuple[list[archive.Sized], set[str]]:
        """Every file (with its kind and size) and every directory of the tree at
        ``commit``: ``src/{commit}/?max_depth=MAX_DEPTH``, then each directory whose
        entries that listing did not reach (git has no empty directories)."""
        files: list[archive.Sized] = []
        directories: set[str] = set()
        pending = [""]
        for _ in range(archive.MAX_REPAIRS):
            if not pending:
                return files, directories
            top = pending.pop()
            found: list[str] = []
            for value in self._pages(f"/src/{commit}/{quote(top)}/" if top else
                                     f"/src/{commit}/",
                                     {"max_depth": MAX_DEPTH, "pagelen": SRC_PAGE}):
                path = str(value.get("path") or "")
                if not path or (top and not path.startswith(top + "/")):
                    raise ForgeError(f"Bitbucket listed {top or 'the root'} of {self.repo} "
                                     f"with an entry outside it ({path!r})", hint="report it")
                found.append(path)
                if value.get("type") == "commit_directory":
                    directories.add(path)
                    continue
                mode = int(self._mode(value), 8)
                size = value.get("size", 0 if mode == archive.GITLINK else None)
                if value.get("type") != "commit_file" or not isinstance(size, int):
                    raise ForgeError(f"Bitbucket listed {path} of {self.repo} without a "
                                     "size", hint="report it")
                files.append(archive.Sized(path, mode, size))
            pending += [d for d in found if d in directories
                        and not any(p.startswith(d + "/") for p in found)]
        raise ForgeError(f"the tree of {self.repo} at {commit[:12]} is more than "
                         f"{archive.MAX_REPAIRS} listings deep", hint="a config repo that "
                         "large is not supported; see SECURITY.md (limits)")

    def _archive(self, commit: str) -> bytes:
        """``{web}/{ws}/{repo}/get/{sha}.tar.gz``: credentials to the web origin only; a
        redirect elsewhere is followed with none (a pre-signed link)."""
        url = f"{self.web_url}/{quote(self.workspace, safe='')}/{quote(self._slug, safe='')}" \
              f"/get/{commit}.tar.gz"
        session = self._web
        for _ in range(MAX_REDIRECTS + 1):
            with session.get(url, stream=True, timeout=self.timeout,
                             allow_redirects=False) as response:
                if response.is_redirect:
                    target = urljoin(url, response.headers.get("location", ""))
                    if not same_origin(target, url):
                        session = self._bare  # the token stays home
                    url = target
                    continue
                if response.status_code != 200:
                    raise HttpFailure(response.status_code, _message(response), response.headers)
                return read_capped(response, MAX_ARCHIVE_BYTES, "the archive")
        raise ForgeError(f"Bitbucket redirected the archive of {self.repo} more than "
                         f"{MAX_REDIRECTS} times")

    def _meta(self, commit: str, path: str) -> dict[str, Any] | None:
        data = self._call("GET", f"/src/{commit}/{quote(path)}", params={"format": "meta"},
                          missing=True)
        return data if isinstance(data, dict) else None

    @staticmethod
    def _mode(meta: Mapping[str, Any]) -> str:
        attributes = set(meta.get("attributes") or [])
        if meta.get("type") == "commit_directory":
            return "040000"
        if "subrepository" in attributes:
            return "160000"
        if "link" in attributes:
            return "120000"
        return "100755" if "executable" in attributes else "100644"

    def _policy_file(self, listing: list[archive.Sized], directories: set[str],
                     files: dict[str, bytes], links: dict[str, str]) -> None:
        """``files`` holds ``.promoter.yaml`` as the base tree does (proved): its entry is
        in the tree's listing. A link, directory or submodule at the path stops the run
        (exit 2)."""
        entry = next((e for e in listing if e.path == CONFIG_FILE), None)
        if CONFIG_FILE in directories:
            mode = "040000"
        elif entry is None:
            files.pop(CONFIG_FILE, None)
            links.pop(CONFIG_FILE, None)
            return
        else:
            mode = format(entry.mode, "06o")
        check_policy_entry(mode, links.get(CONFIG_FILE))

    def _reachable(self, branch: str) -> Iterator[dict[str, Any]]:
        """From the branch's tip (GET refs/branches), never the bare name: a tag of the
        same name would be git's first pick, its forged trailers read as this history."""
        head = self._head(branch)
        if head is None:
            raise UsageError(f"the branch {branch!r} does not exist in Bitbucket repository "
                             f"{self.repo}", hint="check --base")
        return self._pages(f"/commits/{head.sha}", {"pagelen": PAGE})

    # -- the commit -------------------------------------------------------------------

    def use_identity(self, author: Identity | None, *, sign: bool = False) -> None:
        """``author`` goes to ``POST src`` as ``author`` ("Name <email>"); None leaves it
        to Bitbucket (the token's user). Signing is refused: promoter has no key for an
        API commit."""
        refuse_signing(sign, "Bitbucket")
        self._author = author

    def write_first(self, files: Mapping[str, bytes]) -> bool:
        """No: the branch is read first (one GET, which also carries the tip's parents)."""
        return False

    def commit_verified(self, sha: str) -> bool | None:
        """Unknown: Bitbucket does not sign API commits."""
        return None

    def _post_src(self, branch: str, parent: str, files: Mapping[str, bytes],
                  message: str) -> str:
        """One ``POST src``: the commit with ``parent`` on ``branch``; its sha."""
        form: list[tuple[str, Any]] = [("message", (None, message)), ("branch", (None, branch)),
                                       ("parents", (None, parent))]
        if self._author is not None:
            form.append(("author", (None, f"{self._author.name} <{self._author.email}>")))
        form += [(path, (path, content)) for path, content in sorted(files.items())]
        response = self._session.post(f"{self._root}/src", files=form, timeout=self.timeout)
        if response.status_code not in (200, 201):
            raise HttpFailure(response.status_code, _message(response), response.headers)
        location = response.headers.get("Location", "")
        sha = location.rstrip("/").rsplit("/", 1)[-1]
        if len(sha) < 40:  # no commit named: read the branch
            head = self._head(branch)
            if head is None:
                raise ForgeError(f"Bitbucket made no branch {branch} in {self.repo}")
            sha = head.sha
        return sha

    def write_commit(self, branch: str, base: Snapshot, files: Mapping[str, bytes],
                     message: str, *, replace: Head | None) -> str:
        guard = OwnWrite(self.repo, branch, base.commit, files, message, replace,
                         self._changed)
        # no API moves a branch: delete it (while it is still promoter's tip), then
        # make it again on the new base
        remake = Remake(guard, lambda: self._head(branch),
                        lambda head: self._call(
                            "DELETE", f"/refs/branches/{self._ref(branch)}", missing=True))

        def attempt() -> str:
            remake.clear()
            try:
                sha = self._post_src(branch, base.commit, files, message)
            except HttpFailure as exc:
                if exc.status == 409:  # the branch exists and its tip is not our parent
                    # another run made it meanwhile (or, on a retry, our own lost attempt
                    # did): only a retry may take it as ours; a first attempt leaves it to
                    # the caller to plan again
                    return guard.settle(self._head(branch), claim=write.retried)
                if exc.status == 404 and "parent" in exc.message.lower():
                    raise ConflictError(f"the base commit {base.commit[:12]} of {self.repo} "
                                        "is gone", hint="run again") from None
                raise
            # The commit sits on the snapshot whatever the base is now; a base that moved
            # meanwhile (another run merged this very promotion, say) is planned again,
            # and the branch just made goes
            now = self._head(base.branch)
            if now is None or now.sha != base.commit:
                self._call("DELETE", f"/refs/branches/{self._ref(branch)}", missing=True)
                raise ConflictError(f"the base {base.branch} of {self.repo} moved from "
                                    f"{base.commit[:12]} while promoting", hint="run again")
            return sha

        write = retry.Write(attempt, remake.landed)
        return self._run(f"commit to {branch}", write)

    def changed_files(self, sha: str) -> Mapping[str, str] | None:
        """The commit (cached), its diffstat, then per file its meta (+ the parent's) and
        bytes: see the module docstring."""
        return self._run(f"read commit {sha[:12]}", lambda: self._changed(sha))

    def _changed(self, sha: str) -> Mapping[str, str] | None:
        parents = self._parents(self._commit(sha))
        if len(parents) != 1:
            return None
        entries = list(self._pages(f"/diffstat/{sha}", {"pagelen": DIFFSTAT_PAGE}))
        out: dict[str, str] = {}
        for entry in entries:
            status = entry.get("status")
            new = entry.get("new") or {}
            path = str(new.get("path") or "")
            if status not in ("added", "modified") or not path:
                return None  # removed, renamed, a conflict: not a plain edit
            if status == "modified" and str((entry.get("old") or {}).get("path")) != path:
                return None
            after = self._meta(sha, path)
            if after is None or self._mode(after) not in ("100644", "100755"):
                return None  # a link or a submodule written
            if status == "modified":
                before = self._meta(parents[0], path)
                if before is None or self._mode(before) != self._mode(after):
                    return None  # a mode or type change
            data = self._call("GET", f"/src/{sha}/{quote(path)}", raw=True)
            out[path] = git_blob_sha(data)
        return out

    def delete_branch(self, branch: str) -> None:
        check_branch(branch)
        self._run(f"delete branch {branch}", lambda: self._call(
            "DELETE", f"/refs/branches/{self._ref(branch)}", missing=True))

    # -- pull requests ----------------------------------------------------------------

    def _find(self, branch: str, base: str) -> PullRequest | None:
        query = (f'source.branch.name = "{branch}" AND destination.branch.name = "{base}" '
                 'AND state = "OPEN"')
        for item in self._pages("/pullrequests", {"q": query, "pagelen": PAGE}):
            pr = _pull(item)
            source_repo = str(((item.get("source") or {}).get("repository") or {})
                              .get("full_name") or self.repo)
            if pr.branch == branch and pr.base == base and pr.state == "open" \
                    and source_repo.lower() == self.repo.lower():
                return pr
        return None

    def _reviewer_ids(self, names: tuple[str, ...]) -> list[dict[str, str]]:
        """Reviewers by uuid (``{...}``) or account id (``557058:...``) as given; a
        nickname or display name is looked up among the workspace's members."""
        out: list[dict[str, str]] = []
        unknown: list[str] = []
        for raw in names:
            name = raw.removeprefix("@")
            if name.startswith("{") and name.endswith("}"):
                out.append({"uuid": name})
                continue
            if ":" in name:
                out.append({"account_id": name})
                continue
            if self._members is None:
                def fetch() -> dict[str, str]:
                    found: dict[str, str] = {}
                    members = (f"{self.api_url}/2.0/workspaces/"
                               f"{quote(self.workspace, safe='')}/members")
                    for item in self._pages("/members", {"pagelen": PAGE}, url=members):
                        user = item.get("user") or {}
                        account = str(user.get("account_id") or "")
                        for key in ("nickname", "display_name"):
                            if user.get(key) and account:
                                found.setdefault(str(user[key]), account)
                    return found

                self._members = self._run(f"list the members of {self.workspace}", fetch)
            account = self._members.get(name)
            if account is None:
                unknown.append(name)
            else:
                out.append({"account_id": account})
        if unknown:
            raise ConfigError(f"Bitbucket workspace {self.workspace} has no member "
                              f"{', '.join(map(repr, unknown))}", file=CONFIG_FILE,
                              hint="name reviewers by Bitbucket nickname, account id or "
                                   "{uuid} in .promoter.yaml / --reviewer")
        return out

    def open_request(self, branch: str, base: str, spec: RequestSpec, *,
                     auto_merge_next: bool = False) -> PullRequest:
        title, body = self._texts(spec, branch)
        payload: dict[str, Any] = {
            "title": title, "description": body,
            "source": {"branch": {"name": branch}},
            "destination": {"branch": {"name": base}},
            "close_source_branch": True, "draft": spec.draft}
        reviewers = self._reviewer_ids(spec.reviewers)
        if reviewers:
            payload["reviewers"] = reviewers

        def create() -> PullRequest | None:
            try:
                data = self._call("POST", "/pullrequests", body=payload)
            except HttpFailure as exc:
                text = exc.message.lower()
                if exc.status in (400, 409) and ("already" in text or "only one" in text):
                    return None  # one is open (a lost earlier attempt, or another run)
                raise
            return _pull(data)

        return self._open(branch, base, spec, create)

    def update_request(self, pr: PullRequest, spec: RequestSpec) -> PullRequest:
        title, body = self._texts(spec)
        if title == pr.title and body == pr.body:
            return pr  # nothing to change: no request
        data = self._run(f"update pull request #{pr.number}", lambda: self._call(
            "PUT", f"/pullrequests/{pr.number}", body={"title": title, "description": body}))
        return _pull(data) if isinstance(data, dict) else dc_replace(pr, title=title, body=body)

    def close_request(self, pr: PullRequest, comment: str) -> None:
        body = cap_text(comment, MAX_BODY, "comment")

        def noted() -> bool | None:
            for item in self._pages(f"/pullrequests/{pr.number}/comments", {"pagelen": PAGE}):
                if (item.get("content") or {}).get("raw") == body:
                    return True
            return None

        def note() -> bool:
            self._call("POST", f"/pullrequests/{pr.number}/comments",
                       body={"content": {"raw": body}})
            return True

        if comment:
            self._write(f"comment on pull request #{pr.number}", note, noted)
        self._run(f"decline pull request #{pr.number}", lambda: self._call(
            "POST", f"/pullrequests/{pr.number}/decline"))

    # -- checks and merging -----------------------------------------------------------

    def checks(self, pr: PullRequest, sha: str) -> ChecksState:
        def look() -> ChecksState:
            statuses = self._pages(f"/commit/{sha}/statuses", {"pagelen": PAGE})
            return worst_state(_STATES.get(str(s.get("state")), ChecksState.PENDING)
                               for s in statuses)

        return self._run(f"read the statuses of {sha[:12]}", look)

    def _merged_at(self, pr: PullRequest, sha: str, data: Mapping[str, Any]) -> MergeOutcome:
        """A merged pull request: its source commit must be the proved one."""
        head = str(((data.get("source") or {}).get("commit") or {}).get("hash") or "")
        if not _same_commit(head, sha):
            raise ForgeError(
                f"Bitbucket merged pull request #{pr.number} of {self.repo} at {head or '?'}, "
                f"not at the commit promoter proved ({sha[:12]}): someone pushed to "
                f"{pr.branch} while it was merged",
                hint=f"review what reached {pr.base} now; restrict pushes to promote/* to "
                     "the bot (docs/ci.md)")
        merged = str((data.get("merge_commit") or {}).get("hash") or "") or None
        return MergeOutcome(merged=True, sha=merged)

    def merge(self, pr: PullRequest, method: MergeMethod, sha: str,
              message: str = "") -> MergeOutcome:
        """Merge only a request whose head is ``sha`` right now (the API takes no
        expected head): read the pull request and the branch, merge, check the merged
        source commit."""
        data, done = self._state(pr, sha)
        if done is not None:
            return done
        head = str(((data.get("source") or {}).get("commit") or {}).get("hash") or "")
        tip = self.read_head(pr.branch)
        if not _same_commit(head, sha) or tip is None or tip.sha != sha:
            raise self._moved(pr, sha, f"now {tip.sha[:12] if tip else 'deleted'}")
        if data.get("draft"):
            return MergeOutcome(merged=False, reason=f"pull request #{pr.number} is a draft")
        body: dict[str, Any] = {"type": "pullrequest_merge_parameters",
                                "merge_strategy": _STRATEGIES.get(method, "merge_commit"),
                                "close_source_branch": True}
        if message.strip():
            body["message"] = cap_text(message, MAX_MESSAGE, "message")

        def post() -> dict[str, Any] | str:
            try:
                answer = self._call("POST", f"/pullrequests/{pr.number}/merge", body=body)
            except HttpFailure as exc:
                if exc.status in (400, 409, 555):
                    return exc.message or f"HTTP {exc.status}"
                raise
            return answer if isinstance(answer, dict) else self._get_pull(pr.number)

        def landed() -> dict[str, Any] | str | None:
            now = self._get_pull(pr.number)
            return now if now.get("state") == "MERGED" else None

        answer = self._write(f"merge pull request #{pr.number}", post, landed)
        if isinstance(answer, str):
            return MergeOutcome(merged=False,
                                reason=f"Bitbucket will not merge #{pr.number} now: {answer}",
                                conflict=says_conflict(str(answer)))
        if answer.get("state") != "MERGED":  # 202: merging in the background
            answer = self._run(f"read pull request #{pr.number}",
                               lambda: self._get_pull(pr.number))
            if answer.get("state") != "MERGED":
                return MergeOutcome(merged=False, reason="Bitbucket is still merging it")
        return self._merged_at(pr, sha, answer)

    def _unpinned(self, sha: str, state: ChecksState) -> str:
        """Bitbucket Cloud's "merge when builds pass" has no API either."""
        return ("Bitbucket Cloud has no auto-merge that can be pinned to the commit promoter "
                f"proved, and the checks on {sha[:12]} are {state.value}; give "
                "--merge-timeout SECONDS so promoter waits for them and merges itself")



def connect(repo: str, api_url: str = CLOUD_API, **options: Any) -> Any:
    """The Bitbucket forge ``api_url`` names: Cloud (``api.bitbucket.org``, or a ``/2.0``
    API root) or Data Center (any other server root; ``/rest/api/1.0`` accepted)."""
    if is_cloud_api(api_url):
        return BitbucketForge(repo, api_url=api_url, **options)
    from promoter.forges.bitbucket_server import BitbucketServerForge

    return BitbucketServerForge(repo, api_url=api_url, **options)


def from_setup(setup: Setup) -> Any:
    """The Bitbucket forge the CLI asked for: Cloud or Data Center, from ``--api-url``."""
    api = setup.api_url or CLOUD_API
    if not setup.token:
        raise UsageError("no token: set PROMOTE_TOKEN (or BITBUCKET_TOKEN)",
                         hint="a repository access token with the repository:write and "
                              "pullrequest:write scopes (an app password / API token: "
                              "also set BITBUCKET_USERNAME)")
    refuse_cleartext_proxy(api, setup.environ, "--api-url")
    return connect(setup.repo, api_url=api, token=setup.token,
                   username=setup.environ.get("BITBUCKET_USERNAME") or None,
                   retry_timeout=setup.retry_timeout, ca_bundle=setup.ca_bundle,
                   sleep=setup.sleep, patience=setup.patience("Bitbucket"), warn=setup.warn)
