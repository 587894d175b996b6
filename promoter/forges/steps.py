"""The steps every API forge (GitLab, Gitea, Azure DevOps, Bitbucket Cloud and Data
Center) takes the same way, written once over what each forge supplies: ``_run`` (its
retry loop and error translation), ``_head`` (a branch's tip, no retry) and ``_find``
(the open request of a branch, no retry), and how it names things (``service``,
``request_word``, ``mark``, ``close_verb``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from promoter import retry
from promoter.errors import ConflictError, ForgeError
from promoter.forges.base import Head, LoggedCommit, PullRequest, RequestSpec, check_branch

T = TypeVar("T")


class Steps:
    """``service``: the forge's name in messages; ``request_word``: what it calls a
    request ("pull request", "merge request"); ``mark``: the sign before a request's
    number ("#3", "!3"); ``close_verb``: what a user does to a request to end it
    ("close", "decline", "abandon")."""

    service: str
    repo: str
    request_word = "pull request"
    mark = "#"
    close_verb = "close"

    def _run(self, what: str, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    def _head(self, branch: str) -> Head | None:
        raise NotImplementedError

    def _find(self, branch: str, base: str) -> PullRequest | None:
        raise NotImplementedError

    def update_request(self, pr: PullRequest, spec: RequestSpec) -> PullRequest:
        raise NotImplementedError

    def _log(self, branch: str, limit: int) -> list[LoggedCommit]:
        raise NotImplementedError

    def log(self, branch: str, limit: int) -> list[LoggedCommit]:
        """Newest-first commits of ``branch`` along first parents, at most ``limit``
        (``_log``, under the retry loop)."""
        check_branch(branch)
        if limit <= 0:
            return []
        return self._run(f"read the history of {branch}", lambda: self._log(branch, limit))

    def _write(self, what: str, write: Callable[[], T],
               took_effect: Callable[[], T | None]) -> T:
        """A write retried only after ``took_effect`` says the last attempt did not land."""
        return self._run(what, retry.Write(write, took_effect))

    def read_head(self, branch: str) -> Head | None:
        check_branch(branch)
        return self._run(f"read branch {branch}", lambda: self._head(branch))

    def find_request(self, branch: str, base: str, *,
                     confirm_none: bool = False) -> PullRequest | None:
        check_branch(branch)
        return self._run(f"find the {self.request_word} of {branch}",
                         lambda: self._find(branch, base))

    def _open(self, branch: str, base: str, spec: RequestSpec,
              create: Callable[[], PullRequest | None],
              made: Callable[[PullRequest], None] = lambda _pr: None) -> PullRequest:
        """What ``open_request`` does once its payload is ready: ``create`` the request (a
        retry first looks for the one an earlier attempt opened), then ``made`` of it; or
        (``create`` answers None: the forge said one is open already, another run's) the
        open one, updated to ``spec``."""
        pr = self._write(f"open a {self.request_word} for {branch}", create,
                         lambda: self._find(branch, base))
        if pr is not None:
            made(pr)
            return pr
        found = self.find_request(branch, base)
        if found is None:
            raise ConflictError(
                f"{self.service} says a {self.request_word} for {branch} already exists in "
                f"{self.repo}, but none is open into {base}",
                hint=f"{self.close_verb} the other {self.request_word} of that branch")
        return self.update_request(found, spec)

    def _a_request(self, data: Any, number: int, key: str = "") -> dict[str, Any]:
        """``data``, the JSON the forge answered request ``number`` with, when it is one
        (an object, with ``key`` when given); else a ForgeError."""
        if not isinstance(data, dict) or (key and key not in data):
            raise ForgeError(f"{self.service} answered {self.request_word} {self.mark}{number} "
                             f"with no {self.request_word}")
        return data

    def _moved(self, pr: PullRequest, sha: str, why: str) -> ConflictError:
        """The request's head is no longer ``sha``, the commit promoter proved."""
        return ConflictError(f"{self.request_word} {self.mark}{pr.number} of {self.repo} "
                             f"moved: its head is no longer {sha[:12]} ({why})",
                             hint="someone pushed to the promotion branch; run again")
