"""The HTTP plumbing every fake forge shares: lifecycle, recording, faults, hooks, latency,
timers and dropped connections. A fake keeps only its API's routes and facts.

    class FakeThing(FakeServer):
        server_version = "FakeThing/1.0"

        def respond(self, request: Request) -> Reply:      # under ``self.lock``
            if request.path != "/api/ping":
                raise HTTPError(404, {"message": "Not Found"})
            return Reply(200, {"pong": True})

    with FakeThing(tmp_path) as fake:                      # tls=(cert, key): HTTPS
        fake.url                                          # http://127.0.0.1:PORT
        fake.fail("POST", r"/pulls$", 502)                 # the next matching request
        fake.fail("*", r"/merge$", 0, apply_then_fail=True)  # do it, then drop the line
        fake.before("PUT", r"/merge$", push_elsewhere)     # someone acts just before
        fake.later(0.2, fake.set_status, ...)              # a CI run, a moment later
        fake.count("GET", r"/archive")                     # requests since reset_counts()
        fake.requests                                     # every Seen, in order

Faults (``fail``): ``method`` (``*`` any) and a regex searched in the recorded path; the
next ``times`` matches (``-1``: all) answer ``status`` without doing anything, with the
fake's own error body (``fault_body``) unless ``body`` is given. ``reset_before`` drops the
connection before anything is done; ``apply_then_fail`` does the request, then answers
``status`` instead (``drop=True`` or status 0: drops the connection). ``delay`` sleeps
first (with ``status=None``, then answers normally: a slow server). Status 0 always means
a dropped connection.

Every request is recorded (``Seen``) before its answer is written, so a test counting
right after a call never races the server thread; a dropped connection is status 0.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from .gitrepo import BareRepo

REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 302: "Found",
           400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 422: "Unprocessable Entity",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable"}

Self = TypeVar("Self", bound="FakeServer")


class HTTPError(Exception):
    """Raised by a fake's routes: answered with ``status``, ``body`` and ``headers``.
    Each fake subclasses it to build its forge's error body."""

    def __init__(self, status: int, body: Any = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        super().__init__(f"{status}: {body}")


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query, as received
    path: str  # the raw path, without the query
    query_string: str
    body: bytes
    headers: dict[str, str]

    @property
    def query(self) -> dict[str, str]:
        """The query parameters (the last value of each)."""
        return {k: v[-1] for k, v in urllib.parse.parse_qs(self.query_string).items()}


@dataclass
class Reply:
    status: int
    body: Any = None  # a JSON value, bytes (sent as they are), or None (no body)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Seen:
    """One request the fake answered (status 0: the connection was dropped)."""

    method: str
    path: str  # as the fake labels it (``label``): the raw path, without the query
    query: str
    status: int
    bytes_in: int = 0  # request body
    bytes_out: int = 0  # response body
    headers: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int | None
    times: int  # -1: every matching request
    headers: dict[str, str]
    body: Any
    apply_then_fail: bool
    drop: bool
    reset_before: bool
    delay: float
    hits: int = 0

    def live(self) -> bool:
        return self.times < 0 or self.hits < self.times


class FakeServer:
    """A ``ThreadingHTTPServer`` on 127.0.0.1 (an ephemeral port) and what every fake
    forge does with it; subclasses implement ``respond``."""

    server_version = "FakeForge/1.0"
    json_type = "application/json"
    null_body = b""  # what a None body is sent as (204 is always empty)
    serialize = True  # ``respond`` runs under ``self.lock`` (False: concurrently)

    def __init__(self, root: str | Path = ".", tls: tuple[Path, Path] | None = None) -> None:
        self.root = Path(root)
        self.tls = tls  # (certificate, key): serve HTTPS
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.requests: list[Seen] = []
        # (method, path regex, action): run once, right before a matching request is
        # handled, as someone else acting at that moment (a real git push to the repo)
        self.hooks: list[tuple[str, re.Pattern[str], Callable[[], None]]] = []
        self.latency = 0.0  # seconds added before every answer (benchmarks)
        self._timers: list[threading.Timer] = []
        self._thread: threading.Thread | None = None
        self._server: ThreadingHTTPServer | None = self._bind()

    # lifecycle

    def _bind(self) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.block_on_close = False
        server.fake = self  # type: ignore[attr-defined]
        # accepted sockets inherit it (Linux); _Handler.setup sets it again
        with contextlib.suppress(OSError):
            server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._port = int(server.server_address[1])
        return server

    def start(self: Self) -> Self:
        if self._server is None:
            self._server = self._bind()
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self: Self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens (or, once stopped, listened) on."""
        return self._port

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def root_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.root_url

    # set-up

    def bare_repo(self, name: str, files: Mapping[str, bytes], branch: str = "main") -> BareRepo:
        """A real bare repository for ``name`` (``owner/repo``, any depth) under ``root``."""
        return BareRepo.init(self.root / f"{name.replace('/', '__')}.git", files, branch=branch)

    # test controls

    def fail(self, method: str, path_regex: str, status: int | None = 502, times: int = 1,
             headers: Mapping[str, str] | None = None, body: Any = None,
             apply_then_fail: bool = False, drop: bool = False, reset_before: bool = False,
             delay: float = 0.0) -> Fault:
        """A fault on the next ``times`` requests matching ``method`` and ``path_regex``
        (see the module docstring)."""
        fault = Fault(method.upper(), re.compile(path_regex), status, times,
                      dict(headers or {}), body, apply_then_fail, drop, reset_before, delay)
        with self.lock:
            self.faults.append(fault)
        return fault

    def before(self, method: str, path_regex: str, action: Callable[[], None]) -> None:
        """Run ``action`` once, right before the next matching request is handled."""
        with self.lock:
            self.hooks.append((method.upper(), re.compile(path_regex), action))

    def later(self, delay: float, action: Callable[..., None], *args: Any,
              **kwargs: Any) -> None:
        """Run ``action(*args, **kwargs)`` after ``delay`` seconds (cancelled by ``stop``):
        a CI run that registers a moment after a push."""
        timer = threading.Timer(delay, action, args, kwargs)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def reset_counts(self) -> None:
        with self.lock:
            self.requests.clear()

    def count(self, method: str | None = None, pattern: str | None = None) -> int:
        """How many requests matched ``method`` and the ``pattern`` regex (searched in the
        recorded path)."""
        with self.lock:
            return sum(1 for r in self.requests
                       if (method is None or r.method == method.upper())
                       and (pattern is None or re.search(pattern, r.path)))

    # what a fake implements or adjusts

    def respond(self, request: Request) -> Reply:
        """Answer one request (called under ``self.lock``); raise ``HTTPError``."""
        raise NotImplementedError

    def label(self, request: Request) -> str:
        """The path recorded, matched by faults and hooks."""
        return request.path

    def fault_body(self, status: int) -> Any:
        """The error body an injected fault answers with."""
        return {"message": REASONS.get(status, "error")}

    def extra_headers(self) -> dict[str, str]:
        """Headers on every answer (a reply's own headers win)."""
        return {}

    # the handler's side

    def answer(self, request: Request, path: str) -> Reply:
        """The hooks due, then ``respond`` (under the lock when ``serialize``)."""
        if not self.serialize:
            return self._answer(request, path)
        with self.lock:
            return self._answer(request, path)

    def _answer(self, request: Request, path: str) -> Reply:
        with self.lock:
            due = [hook for hook in self.hooks
                   if hook[0] == request.method and hook[1].search(path)]
            for hook in due:
                self.hooks.remove(hook)
        for hook in due:
            hook[2]()
        try:
            return self.respond(request)
        except HTTPError as err:
            return Reply(err.status, err.body, err.headers)

    def fault_for(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.live() and fault.method in ("*", method) and fault.pattern.search(path):
                    fault.hits += 1
                    return fault
        return None

    def fault_reply(self, fault: Fault) -> Reply:
        status = fault.status or 502
        body = fault.body if fault.body is not None else self.fault_body(status)
        return Reply(status, body, dict(fault.headers))

    def record(self, seen: Seen) -> None:
        with self.lock:
            self.requests.append(seen)

    def encode(self, reply: Reply) -> tuple[bytes, str]:
        if isinstance(reply.body, bytes):
            return reply.body, reply.headers.get("Content-Type", "application/octet-stream")
        if reply.status == 204:
            return b"", "application/json"
        if reply.body is None:
            return self.null_body, "application/json"
        return json.dumps(reply.body).encode("utf-8"), self.json_type


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def fake(self) -> FakeServer:
        fake: FakeServer = self.server.fake  # type: ignore[attr-defined]
        return fake

    def version_string(self) -> str:
        return self.fake.server_version

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; without this, Nagle + delayed ACK add
        # ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``fake.requests`` instead."""

    def _dispatch(self) -> None:
        fake = self.fake
        body = self._body()
        raw_path, _, query = self.path.partition("?")
        request = Request(self.command, self.path, raw_path, query, body, dict(self.headers))
        path = fake.label(request)

        def record(status: int, sent: int) -> None:
            fake.record(Seen(self.command, path, query, status, len(body), sent, request.headers))

        if fake.latency:
            time.sleep(fake.latency)
        fault = fake.fault_for(self.command, path)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and (fault.reset_before or (fault.status == 0
                                  and not fault.apply_then_fail)):
            record(0, 0)
            self._drop()
            return
        if fault is not None and fault.status is not None and not fault.apply_then_fail:
            reply = fake.fault_reply(fault)
        else:
            try:
                reply = fake.answer(request, path)
            except Exception:
                record(500, 0)
                raise
            if fault is not None and fault.apply_then_fail:
                if fault.drop or not fault.status:
                    record(0, 0)
                    self._drop()
                    return
                reply = fake.fault_reply(fault)
        self._send(reply, record)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # git pushes
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunk = self.rfile.read(size)
                self.rfile.readline()
                if not size:
                    return b"".join(chunks)
                chunks.append(chunk)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, reply: Reply, record: Callable[[int, int], None]) -> None:
        data, content_type = self.fake.encode(reply)
        headers = {"Content-Type": content_type, **self.fake.extra_headers()}
        headers.update((k, v) for k, v in reply.headers.items()
                       if k.lower() not in ("content-type", "content-length"))
        record(reply.status, len(data))
        try:
            self.send_response(reply.status, REASONS.get(reply.status))
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
            self.close_connection = True

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
