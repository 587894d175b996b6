"""What every HTTP client of promoter obeys: credentials stay with their origin, odd
answers become messages, and downloads have a size limit.

- ``refuse_cross_origin(session)``: a ``requests`` response hook that stops a redirect to
  another origin (scheme, host, port) before ``requests`` follows it. ``requests``
  drops ``Authorization`` on a host change but keeps every other header, so
  python-gitlab's ``PRIVATE-TOKEN`` / ``JOB-TOKEN`` would travel to the new host.
- ``StatusGuard``: the urllib3 ``Retry`` handed to PyGithub (``retry=``). It retries
  nothing (promoter.retry owns retries); it turns an answer PyGithub would misread into
  ``OddAnswer``: a 3xx other than 301 (PyGithub never follows those from the API; it
  reads the redirect's empty body as the object and fails later with an
  AttributeError), and a 202 on a GET (PyGithub would wait and ask again forever).
  PyGithub follows a 301 only to the same host and scheme, with its headers; a 301 to
  another host is its RuntimeError, translated by ``cross_host_301``.
- ``read_capped(response, limit)`` / ``collect(chunks, limit)``: a streamed body,
  refused past ``limit`` bytes (``promoter.limits.MAX_ARCHIVE_BYTES`` for archives).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from promoter.limits import ArchiveTooLarge


class CrossOriginRedirect(requests.RequestException):
    """A server redirected a request that carries credentials to another origin."""

    def __init__(self, source: str, target: str, status: int) -> None:
        self.source = origin(source)
        self.target = origin(target)
        self.status = status
        super().__init__(f"{status} redirect from {self.source} to {self.target}")


class OddAnswer(Exception):
    """An HTTP status the client would misread (see ``StatusGuard``)."""

    def __init__(self, status: int, method: str, location: str | None) -> None:
        self.status = status
        self.method = method
        self.location = origin(location) if location else None
        where = f" to {self.location}" if self.location else ""
        super().__init__(f"HTTP {status}{where}")


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` (no path, no user information)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme.lower()}://{host.lower()}{port}"


def same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    default = {"http": 80, "https": 443}
    return (pa.scheme.lower() == pb.scheme.lower()
            and (pa.hostname or "").lower() == (pb.hostname or "").lower()
            and (pa.port or default.get(pa.scheme.lower())) ==
            (pb.port or default.get(pb.scheme.lower())))


def _check_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    if not response.is_redirect:
        return
    target = urljoin(response.url, response.headers.get("location", ""))
    if not same_origin(response.url, target):
        response.close()
        raise CrossOriginRedirect(response.url, target, response.status_code)


def refuse_cross_origin(session: requests.Session) -> requests.Session:
    """``session`` with the cross-origin redirect check installed (first, so no other
    hook reads the redirect's body)."""
    session.hooks["response"].insert(0, _check_redirect)
    return session


class StatusGuard(Retry):
    """No retries; an answer PyGithub would misread raises ``OddAnswer`` instead."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("total", 0)
        kwargs.setdefault("read", False)
        kwargs.setdefault("redirect", 0)
        kwargs.setdefault("raise_on_redirect", False)
        kwargs.setdefault("raise_on_status", False)  # MaxRetryError below: hand it back
        super().__init__(**kwargs)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        return _odd(method, status_code) or super().is_retry(method, status_code,
                                                             has_retry_after)

    def increment(self, method: str | None = None, url: str | None = None,
                  response: Any = None, error: Exception | None = None, _pool: Any = None,
                  _stacktrace: Any = None) -> StatusGuard:
        if error is None and response is not None and _odd(method or "", response.status):
            if response.status == 302 and _ARCHIVE_LINK.search(url or ""):
                # the one 302 the API is meant to send: the archive's pre-signed link,
                # which PyGithub reads from the Location header (and never follows)
                raise MaxRetryError(_pool, url or "", None)
            location = response.headers.get("Location")
            response.drain_conn()
            raise OddAnswer(response.status, method or "", location)
        return super().increment(method, url, response, error, _pool, _stacktrace)


_ARCHIVE_LINK = re.compile(r"/repos/[^/?]+/[^/?]+/(?:tarball|zipball)/")


def _odd(method: str, status: int) -> bool:
    if 300 <= status < 400:
        return status != 301
    return status == 202 and method.upper() in ("GET", "HEAD")


def cross_host_301(exc: RuntimeError) -> bool:
    """Whether PyGithub's RuntimeError is its refusal of a 301 to another host/scheme."""
    return str(exc).startswith(("Github server redirected from", "Requested "))


def read_capped(response: requests.Response, limit: int, what: str) -> bytes:
    """The body of a streamed ``response``, at most ``limit`` bytes (ArchiveTooLarge)."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        response.close()
        raise ArchiveTooLarge(f"{what} has", limit)
    try:
        return collect(response.iter_content(chunk_size=1 << 16), limit, what)
    except ArchiveTooLarge:
        response.close()
        raise


def collect(chunks: Iterable[bytes], limit: int, what: str) -> bytes:
    """``chunks`` joined, at most ``limit`` bytes (ArchiveTooLarge past it)."""
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) > limit:
            raise ArchiveTooLarge(f"{what} has", limit)
    return bytes(out)
