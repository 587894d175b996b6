"""What the forges on plain ``requests`` share (Gitea, Azure DevOps, Bitbucket Cloud and
Data Center): the failure an unexpected answer becomes, which failures are worth another
try, the one retry loop around every call, and the error a failure ends as."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests

from promoter import __version__, retry
from promoter.errors import AuthError, ForgeError, PromoteError, UsageError
from promoter.forges.http import CrossOriginRedirect, read_capped
from promoter.forges.http import session as http_session
from promoter.forges.steps import Steps
from promoter.limits import ArchiveTooLarge
from promoter.redact import redact

T = TypeVar("T")

class HttpFailure(Exception):
    """The forge answered ``status``, not one the caller expected. ``type_key``: the
    forge's own name for the error, where it gives one (Azure's ``typeKey``)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str],
                 type_key: str = "") -> None:
        self.status = status
        self.message = message
        self.headers = dict(headers)
        self.type_key = type_key
        super().__init__(f"{status}: {message}")


def classify(exc: BaseException) -> retry.Transient | None:
    """Worth another try: a status the retry policy calls transient, a dropped or slow
    connection. Never a certificate that does not verify, nor a redirect elsewhere."""
    if isinstance(exc, HttpFailure):
        return retry.status_transient(exc.status, exc.headers, exc.message)
    if isinstance(exc, (requests.exceptions.SSLError, CrossOriginRedirect)):
        return None
    if isinstance(exc, (requests.ConnectionError, requests.Timeout,
                        requests.exceptions.ChunkedEncodingError)):
        return retry.Transient()
    return None


def split_repo(repo: str, form: str, hint: str) -> tuple[str, str, str]:
    """``repo`` as ``owner/name`` (a workspace, project key or user, and a repository):
    (repo, owner, name); anything else is exit 2 naming ``form`` (``OWNER/NAME``)."""
    repo = repo.strip().strip("/")
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name:
        raise UsageError(f"--repo {repo!r} is not {form}", hint=hint)
    return repo, owner, name


class RestClient(Steps):
    """The retry loop of a forge client: ``_run`` retries ``fn`` under the one policy and
    turns what is left into the forge's own error (``_translate``: ``translate`` with the
    forge's ``service`` and hints, unless the forge words its own)."""

    retry_timeout: float
    sleep: Callable[[float], None]
    patience: retry.Patience
    timeout: float
    api_url: str
    _token: str | None
    _session: requests.Session
    _commits: dict[str, dict[str, Any]]  # sha -> commit JSON (immutable)
    auth_hint = ""
    redirect_hint = ""
    busy = "may be down or rate-limiting"
    url_hint = "check --api-url"

    def _translate(self, exc: Exception, what: str) -> PromoteError:
        return translate(exc, what, service=self.service,
                         where=f"{self.repo} at {self.api_url}", api_url=self.api_url,
                         retry_timeout=self.retry_timeout, has_token=bool(self._token),
                         auth_hint=self.auth_hint, redirect_hint=self.redirect_hint,
                         busy=self.busy)

    def _prepare(self, token: str | None, *, retry_timeout: float,
                 sleep: Callable[[float], None], timeout: float,
                 patience: retry.Patience | None, ca_bundle: str | None) -> requests.Session:
        """What every client's constructor sets once its arguments are checked: the
        token, the retry budget, the commit cache, and a session that asks for JSON
        (verified with ``--ca-bundle``, proxies from the environment). The forge adds its
        credentials to it, then keeps it with ``refuse_cross_origin``."""
        self._token = token
        self.retry_timeout = retry_timeout
        self.sleep = sleep
        self.timeout = timeout
        self.patience = patience or retry.Patience(service=self.service)
        self._commits = {}
        session = http_session(ca_bundle)
        session.headers["User-Agent"] = f"promoter/{__version__}"
        session.headers["Accept"] = "application/json"
        return session

    def close(self) -> None:
        """Close the HTTP connections (the forge is not usable afterwards)."""
        self._session.close()

    def _decoded(self, response: requests.Response, what: str) -> Any:
        """The JSON of a successful answer to ``what`` (method and path), None when it is
        empty; anything but JSON is a ForgeError (``url_hint``: most likely a wrong
        --api-url that answered with a web page)."""
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ForgeError(f"{self.service} answered {what} with something other than "
                             "JSON", hint=self.url_hint) from None

    def _raw(self, response: requests.Response, path: str, limit: int) -> bytes:
        """The bytes of a file's answer, at most ``limit`` (else a ForgeError)."""
        try:
            return read_capped(response, limit, path)
        except ArchiveTooLarge as exc:
            raise ForgeError(f"{self.service} sent {path} of {self.repo}: {exc.describe()}",
                             hint="see SECURITY.md (limits)") from None

    def _run(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return retry.call(fn, classify, timeout=self.retry_timeout, sleep=self.sleep,
                              patience=self.patience)
        except (HttpFailure, requests.RequestException) as exc:
            raise self._translate(exc, what) from exc


def translate(exc: Exception, what: str, *, service: str, where: str, api_url: str,
              retry_timeout: float, has_token: bool, redirect_hint: str, auth_hint: str,
              busy: str = "may be down or rate-limiting") -> PromoteError:
    """The error a failed call of ``service`` ends as: a redirect elsewhere, an unusable
    --api-url, no answer, retries spent, a token refused, or what the forge said."""
    if isinstance(exc, CrossOriginRedirect):
        return ForgeError(
            redact(f"{service} at {exc.source} answered {exc.status}, a redirect to "
                   f"{exc.target}, when trying to {what} in {where}; promoter does not "
                   "send the token to another host"), hint=redirect_hint)
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema)):
        return UsageError(redact(f"--api-url {api_url} is not usable: {exc}"))
    if isinstance(exc, requests.RequestException):
        return ForgeError(redact(f"could not reach {service} to {what} in {where}: "
                                 f"{type(exc).__name__}"),
                          hint="check --api-url and the network; retries ran out")
    if not isinstance(exc, HttpFailure):
        return ForgeError(redact(f"{service} could not {what} in {where}: {exc}"))
    if retry.status_transient(exc.status, exc.headers, exc.message) is not None:
        return ForgeError(
            redact(f"{service} kept failing to {what} in {where}: {exc.status} "
                   f"{exc.message}"),
            hint=f"gave up after retrying for up to {retry_timeout:g}s; {service} {busy}, "
                 "run again later")
    if exc.status == 401:
        given = "the token" if has_token else "the request: no token given"
        return AuthError(redact(f"{service} rejected {given} when trying to {what} in "
                                f"{where} (401 {exc.message})"), hint=auth_hint)
    if exc.status == 403:
        return AuthError(redact(f"{service} refused to {what} in {where} (403 "
                                f"{exc.message})"), hint=auth_hint)
    return ForgeError(redact(f"{service} could not {what} in {where}: {exc.status} "
                             f"{exc.message}"))
