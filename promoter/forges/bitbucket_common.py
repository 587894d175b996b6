"""What Bitbucket Cloud (``bitbucket.py``, API 2.0) and Data Center (``bitbucket_server.py``,
REST 1.0) do alike: the ``owner/slug`` form of ``--repo``, answers read the same way,
the commit cache, request texts with no labels, and the merge that is never left to
Bitbucket's own auto-merge (it pins no commit). The two APIs differ in their paths and
field names, given here as class attributes (``pulls``, ``commits``, ``id_key``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import requests

from promoter.errors import ForgeError
from promoter.forges.base import (
    ChecksState,
    LoggedCommit,
    MergeMethod,
    MergeOutcome,
    PullRequest,
    RequestSpec,
    cap_text,
    check_branch,
)
from promoter.forges.firstparent import first_parents
from promoter.forges.rest import HttpFailure, RestClient

MAX_TITLE = 255  # a pull request's title, on both


class BitbucketClient(RestClient):
    """``pulls``: the path of pull requests (``/pullrequests``); ``commits``: of one
    commit by id (``/commit``); ``id_key``: a commit's id in its JSON (``hash``)."""

    body_limit: int
    close_verb = "decline"
    has_labels = False  # Bitbucket pull requests have none: asked-for labels are a warning
    has_checks = True
    branch_is_request = False
    arms_auto_merge = False  # promote need not look for an armed one to take back
    pulls: str
    commits: str
    id_key: str
    warn: Callable[[str], None]
    _call: Callable[..., Any]  # one request: the JSON answered (see each client)

    def _answer(self, response: requests.Response, method: str, path: str, *,
                ok: tuple[int, ...], missing: bool, raw: int) -> Any:
        """What a request answered: JSON (None when empty), the bytes of a file (``raw``:
        at most that many), None for a 404 when ``missing``; else ``HttpFailure``."""
        if response.status_code in ok:
            if raw:
                return self._raw(response, path, raw)
            return self._decoded(response, f"{method} {path}")
        if missing and response.status_code == 404:
            return None
        raise HttpFailure(response.status_code, self._said(response), response.headers)

    @staticmethod
    def _said(response: requests.Response) -> str:
        """The error message of a refused request, as the API words it."""
        raise NotImplementedError

    def _commit(self, sha: str) -> dict[str, Any]:
        """The commit JSON (parents, message); cached: a commit never changes."""
        if sha not in self._commits:
            data = self._call("GET", f"{self.commits}/{sha}")
            if not isinstance(data, dict) or self.id_key not in data:
                raise ForgeError(f"{self.service} answered the commit {sha[:12]} with no "
                                 "commit")
            self._commits[sha] = data
        return self._commits[sha]

    def _parents(self, commit: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(str(p.get(self.id_key)) for p in commit.get("parents") or []
                     if isinstance(p, dict))

    def _reachable(self, branch: str) -> Iterator[dict[str, Any]]:
        """Every commit reachable from ``branch``, newest first, page by page."""
        raise NotImplementedError

    @staticmethod
    def _logged(sha: str, item: Mapping[str, Any]) -> LoggedCommit:
        raise NotImplementedError

    def _log(self, branch: str, limit: int) -> list[LoggedCommit]:
        """Bitbucket lists every reachable commit: first parents are followed here."""
        return first_parents(self._reachable(branch), limit,
                             sha_of=lambda item: str(item.get(self.id_key)),
                             parent_of=lambda item: next(iter(self._parents(item)), None),
                             logged=self._logged)

    def _get_pull(self, number: int) -> dict[str, Any]:
        return self._a_request(self._call("GET", f"{self.pulls}/{number}"), number, "id")

    def _texts(self, spec: RequestSpec, branch: str | None = None) -> tuple[str, str]:
        """The title and description a request gets (cut to Bitbucket's limits); labels
        asked for are a warning. ``branch``: the request's source, checked."""
        if branch is not None:
            check_branch(branch)
        if spec.labels:
            self.warn(f"{self.service} has no labels on pull requests: "
                      f"{', '.join(spec.labels)} not set")
        return (cap_text(spec.title, MAX_TITLE, "title").replace("\n", " "),
                cap_text(spec.body, self.body_limit, "description"))

    def _state(self, pr: PullRequest, sha: str) -> tuple[dict[str, Any], MergeOutcome | None]:
        """The pull request as it is now, and the outcome when it is open no more (merged:
        at ``sha``, the proved commit, or a ForgeError)."""
        data = self._run(f"read pull request #{pr.number}", lambda: self._get_pull(pr.number))
        if data.get("state") == "MERGED":
            return data, self._merged_at(pr, sha, data)
        if data.get("state") != "OPEN":
            return data, MergeOutcome(merged=False, reason=f"pull request #{pr.number} is "
                                                           f"{str(data.get('state')).lower()}")
        return data, None

    def _merged_at(self, pr: PullRequest, sha: str, data: Mapping[str, Any]) -> MergeOutcome:
        raise NotImplementedError

    def merge(self, pr: PullRequest, method: MergeMethod, sha: str,
              message: str = "") -> MergeOutcome:
        raise NotImplementedError

    def checks(self, pr: PullRequest, sha: str) -> ChecksState:
        raise NotImplementedError

    def _unpinned(self, sha: str, state: ChecksState) -> str:
        """Why the request stays open: checks not green, and no auto-merge to leave it to."""
        raise NotImplementedError

    def disable_auto_merge(self, pr: PullRequest) -> None:
        """Bitbucket's auto-merge (merge when builds pass) is never set by promoter (no
        pinned commit): no earlier run's can be armed, so there is nothing to take back."""

    def enable_auto_merge(self, pr: PullRequest, method: MergeMethod, sha: str,
                          message: str = "") -> MergeOutcome:
        """Bitbucket's auto-merge pins no commit: promoter never schedules it. Green (or
        no) checks now: merged now, pinned as ``merge`` does; otherwise the request stays
        open."""
        state = self.checks(pr, sha)
        if state in (ChecksState.SUCCESS, ChecksState.NONE):
            return self.merge(pr, method, sha, message)
        return MergeOutcome(merged=False, reason=self._unpinned(sha, state))
