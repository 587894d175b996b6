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
- ``cleartext_proxy(url, environ)``: the proxy a plain ``http://`` request to ``url``
  would go through (``HTTP_PROXY`` / ``ALL_PROXY``, unless ``NO_PROXY`` names the
  host). Such a proxy reads every header, the token's too: the CLI refuses it. Over
  ``https://`` a proxy only sees ``CONNECT host:port``; the request travels inside the
  tunnel's TLS.
- ``session(ca_bundle)``: a ``requests`` session that verifies TLS against
  ``ca_bundle`` (``--ca-bundle``) whatever ``REQUESTS_CA_BUNDLE`` says (plain
  ``requests`` lets that variable override a session's own ``verify``); proxies come
  from ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` as usual. ``check_ca_bundle``
  reads the file first (exit 2 naming it), ``tls_failure`` words a certificate that
  did not verify (exit 5, "pass --ca-bundle").
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from promoter.errors import ForgeError, UsageError
from promoter.limits import ArchiveTooLarge

CA_HINT = ("pass --ca-bundle PATH (or set PROMOTE_CA_BUNDLE) with the CA certificate(s) "
           "that signed the server's certificate, in PEM: your organisation's private CA, "
           "or the TLS-inspecting proxy's")


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


def said(response: requests.Response, read: Callable[[Any], str]) -> str:
    """What a forge's refusal says: ``read`` of its JSON body (each forge words its errors
    its own way), else the start of its text."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason
    return read(data)


def collect(chunks: Iterable[bytes], limit: int, what: str) -> bytes:
    """``chunks`` joined, at most ``limit`` bytes (ArchiveTooLarge past it)."""
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) > limit:
            raise ArchiveTooLarge(f"{what} has", limit)
    return bytes(out)


class _Session(requests.Session):
    """A session whose ``verify`` (a CA bundle) holds for every request: plain
    ``requests`` replaces a session's ``verify`` with ``REQUESTS_CA_BUNDLE`` /
    ``CURL_CA_BUNDLE`` when a request leaves it unset."""

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if isinstance(self.verify, str) and verify in (None, True):
            settings["verify"] = self.verify
        return settings


def session(ca_bundle: str | None = None) -> requests.Session:
    """A ``requests`` session verifying TLS against ``ca_bundle`` (None: the default
    store, or ``REQUESTS_CA_BUNDLE``)."""
    made = _Session()
    if ca_bundle:
        made.verify = ca_bundle
    return made


def check_ca_bundle(path: str, source: str) -> str:
    """``path`` when it is a readable file holding at least one PEM certificate (or a
    readable directory of hashed certificates, as ``c_rehash`` makes);
    UsageError (exit 2) naming ``source`` (``--ca-bundle``, ``SSL_CERT_FILE``, ...) and
    the file otherwise."""
    file = Path(path)
    where = f"{source} {path}"
    if not file.exists():
        raise UsageError(f"{where}: no such file", hint="give the path of a PEM file with "
                         "the CA certificate(s) to trust")
    if file.is_dir():  # a hashed directory (c_rehash), as requests and git accept
        if not os.access(file, os.R_OK | os.X_OK):
            raise UsageError(f"{where}: cannot read the directory",
                             hint="check its permissions")
        return str(file)
    if not file.is_file():
        raise UsageError(f"{where}: not a file", hint="give the path of a PEM file with "
                         "the CA certificate(s) to trust")
    try:
        file.read_bytes()
    except OSError as exc:
        raise UsageError(f"{where}: cannot read it ({exc.strerror})",
                         hint="check the file's permissions") from None
    try:
        ssl.create_default_context().load_verify_locations(cafile=str(file))
    except ssl.SSLError as exc:
        raise UsageError(f"{where}: holds no readable PEM certificate ({exc.reason})",
                         hint="the file must hold CA certificates in PEM "
                              "(-----BEGIN CERTIFICATE-----)") from None
    return str(file)


CA_SOURCES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
"""The variables a CA bundle is read from when ``--ca-bundle`` is not given, in order."""


def ca_bundle(given: str | None, environ: Mapping[str, str]) -> str | None:
    """The CA bundle every forge verifies TLS with: ``--ca-bundle`` /
    ``PROMOTE_CA_BUNDLE``, else the first of ``CA_SOURCES`` set; checked (exit 2)."""
    if given:
        return check_ca_bundle(given, "--ca-bundle")
    for name in CA_SOURCES:
        if environ.get(name):
            return check_ca_bundle(environ[name], name)
    return None


_VERIFY_REASON = re.compile(r"certificate verify failed: ([^(\]'\"]+)", re.IGNORECASE)


def tls_failure(exc: BaseException, service: str, url: str) -> ForgeError | None:
    """The error for a TLS handshake that failed (the server's certificate did not
    verify, or TLS broke), None for any other failure."""
    if not isinstance(exc, requests.exceptions.SSLError):
        return None
    found = _VERIFY_REASON.search(str(exc))
    if found:
        return ForgeError(f"the TLS certificate of {service} at {origin(url)} did not "
                          f"verify ({found.group(1).strip()})", hint=CA_HINT)
    return ForgeError(f"the TLS handshake with {service} at {origin(url)} failed",
                      hint="check --api-url (https to an https server) and any proxy; "
                           + CA_HINT)


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` (comma-separated hosts, ``.domain`` suffixes, ``host:port``,
    IP networks, ``*``) names ``host``."""
    for raw in no_proxy.replace(" ", ",").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and (not entry_port.isdigit() or int(entry_port) != port):
            continue
        name = name.lstrip(".")
        if host == name or host.endswith("." + name):
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(name, strict=False):
                return True
        except ValueError:
            continue
    return False


def cleartext_proxy(url: str, environ: Mapping[str, str]) -> str | None:
    """The proxy (its origin) a plain-http request to ``url`` would be sent to in
    clear, per ``http_proxy`` / ``HTTP_PROXY`` / ``all_proxy`` / ``ALL_PROXY`` and
    ``no_proxy`` / ``NO_PROXY``; None for https or when no proxy applies."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        return None
    proxy = next((environ[name] for name in ("http_proxy", "HTTP_PROXY", "all_proxy",
                                             "ALL_PROXY") if environ.get(name)), None)
    if proxy is None:
        return None
    no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY") or ""
    if _bypassed((parts.hostname or "").lower(), parts.port or 80, no_proxy):
        return None
    return origin(proxy if "://" in proxy else "http://" + proxy)


def refuse_cleartext_proxy(url: str, environ: Mapping[str, str], what: str) -> None:
    """A token never goes to a proxy in clear: over http:// the proxy reads every header
    (over https:// it sees only CONNECT host:port, the request is inside TLS)."""
    proxy = cleartext_proxy(url, environ)
    if proxy is not None:
        raise UsageError(
            f"{what} {origin(url)} is plain http and HTTP_PROXY sends it through {proxy}: "
            "the proxy would read the token in the request headers. Nothing was sent",
            hint=f"use https (a proxy then only sees the tunnel), or add "
                 f"{urlsplit(url).hostname} to NO_PROXY")


def job_token_stays_home(api: str, server: str, variable: str, source: str) -> None:
    """A CI job's own token (GitLab's CI_JOB_TOKEN, Azure Pipelines' SYSTEM_ACCESSTOKEN)
    is issued by the server running the job (``server``, from the variable ``source``):
    it is sent to that origin only, never to another --api-url."""
    if not server or not same_origin(api, server):
        raise UsageError(
            f"{variable} belongs to {origin(server) if server else 'the server of the job'}"
            f" ({source}); promoter does not send it to {origin(api)}",
            hint="for another server, set PROMOTE_TOKEN to an access token issued there")
