"""Loopback HTTP servers for the hardening tests: ``git http-backend`` behind Basic auth,
and a server that only redirects (to record what a client sends where).

    with GitServer(root, user="bot", token="s3cret") as git_server:   # tls=(cert, key): https
        url = git_server.url("config.git")            # http://bot:s3cret@127.0.0.1:PORT/...
        git_server.delay = 5.0                         # a slow server (per request)
        git_server.hold = threading.Event()            # ... until the test sets it
        git_server.arrived.wait(20)                    # a request is being held
        git_server.redirect_to = "http://127.0.0.1:9/"  # answer 302 there instead
        git_server.seen                               # (method, path, headers) received

    with Recorder() as other:                          # answers 404, records every request
        other.root_url, other.seen

Both run a ``ThreadingHTTPServer`` on 127.0.0.1 with an ephemeral port: a different port
is a different origin, so a redirect from one to the other is a cross-origin redirect.
"""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Seen = tuple[str, str, dict[str, str]]


class _Server:
    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.port = 0
        self.tls = tls  # (certificate, key): serve HTTPS

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        raise NotImplementedError

    def start(self) -> _Server:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                body = _body(self)
                with fake.lock:
                    fake.seen.append((self.command, self.path, dict(self.headers.items())))
                fake.handle(self, body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def root_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def headers_seen(self) -> str:
        """Everything received, as one text to search for a secret."""
        with self.lock:
            return "\n".join(f"{m} {p} {h!r}" for m, p, h in self.seen)


class Recorder(_Server):
    """Answers every request with 404 and records it."""

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        reply(handler, 404, {}, b"not here\n")


class GitServer(_Server):
    """``git http-backend`` for the repositories under ``root``, with Basic auth."""

    def __init__(self, root: Path, user: str = "bot", token: str = "tok",  # noqa: S107
                 tls: tuple[Path, Path] | None = None) -> None:
        super().__init__(tls)
        self.root = root
        self.user = user
        self.token = token
        self.delay = 0.0  # seconds before answering each request
        self.redirect_to: str | None = None  # answer 302 to this URL (+ the path)
        self.hold: threading.Event | None = None  # set: requests wait until it is set
        self.arrived = threading.Event()  # a request is waiting on ``hold``

    def url(self, repo: str) -> str:
        return f"{self.scheme}://{self.user}:{self.token}@127.0.0.1:{self.port}/{repo}"

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        if self.delay:
            time.sleep(self.delay)
        if self.hold is not None:  # a slow server, for as long as the test wants
            self.arrived.set()
            self.hold.wait(60)
        if self.redirect_to is not None:
            return reply(handler, 302, {"Location": self.redirect_to + handler.path}, b"")
        expected = base64.b64encode(f"{self.user}:{self.token}".encode()).decode()
        if handler.headers.get("Authorization") != f"Basic {expected}":
            return reply(handler, 401, {"WWW-Authenticate": 'Basic realm="git"'}, b"")
        path, _, query = handler.path.partition("?")
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(self.root),
               "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path, "QUERY_STRING": query,
               "REQUEST_METHOD": handler.command, "REMOTE_USER": self.user,
               "REMOTE_ADDR": "127.0.0.1", "CONTENT_LENGTH": str(len(body)),
               "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
               "GIT_CONFIG_NOSYSTEM": "1", "HOME": os.environ.get("HOME", "/")}
        for header, variable in (("Content-Encoding", "HTTP_CONTENT_ENCODING"),
                                 ("Git-Protocol", "GIT_PROTOCOL")):
            if handler.headers.get(header):
                env[variable] = handler.headers[header]
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True, check=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, {}
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(": ")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers[name] = value
        return reply(handler, status, headers, payload)


def _body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0], 16)
            chunk = handler.rfile.read(size)
            handler.rfile.readline()
            if not size:
                return b"".join(chunks)
            chunks.append(chunk)
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def reply(handler: BaseHTTPRequestHandler, status: int, headers: Mapping[str, str],
          payload: bytes) -> None:
    try:
        handler.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client went away (a test killed it): nothing to answer
