"""Loopback HTTP servers for the hardening tests: ``git http-backend`` behind Basic auth,
and a server that only records (to see what a client sends where). Both are fake
servers (``tests/fakes/server.py``): faults, hooks, latency and recording as every fake.

    with GitServer(root, user="bot", token="s3cret") as git_server:   # tls=(cert, key): https
        url = git_server.url("config.git")            # http://bot:s3cret@127.0.0.1:PORT/...
        git_server.delay = 5.0                         # a slow server (per request)
        git_server.hold = threading.Event()            # ... until the test sets it
        git_server.arrived.wait(20)                    # a request is being held
        git_server.redirect_to = "http://127.0.0.1:9/"  # answer 302 there instead
        git_server.fail("POST", "git-receive-pack", 502, apply_then_fail=True)  # push lands,
        git_server.seen                               # the answer is lost; (method, path,
                                                      # headers) received
    with Recorder() as other:                          # answers 404, records every request
        other.root_url, other.seen

A different port is a different origin, so a redirect from one to the other is a
cross-origin redirect. Requests are recorded (and faults matched) by path *and query*:
``/config.git/info/refs?service=git-receive-pack`` is the start of a push.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from pathlib import Path

from .server import FakeServer, Reply, Request


class _Recording(FakeServer):
    serialize = False  # a held request must not hold up the others

    def label(self, request: Request) -> str:
        return request.target

    @property
    def seen(self) -> list[tuple[str, str, dict[str, str]]]:
        """(method, path with query, headers) of every request, in order."""
        with self.lock:
            return [(r.method, r.path, r.headers) for r in self.requests]

    def headers_seen(self) -> str:
        """Everything received, as one text to search for a secret."""
        return "\n".join(f"{m} {p} {h!r}" for m, p, h in self.seen)


class Recorder(_Recording):
    """Answers every request with 404 and records it."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        super().__init__(tls=tls)

    def respond(self, request: Request) -> Reply:
        return Reply(404, b"not here\n")


class GitServer(_Recording):
    """``git http-backend`` for the repositories under ``root``, with Basic auth."""

    def __init__(self, root: Path, user: str = "bot", token: str = "tok",  # noqa: S107
                 tls: tuple[Path, Path] | None = None) -> None:
        super().__init__(root, tls)
        self.user = user
        self.token = token
        self.redirect_to: str | None = None  # answer 302 to this URL (+ the path)
        self.hold: threading.Event | None = None  # set: requests wait until it is set
        self.arrived = threading.Event()  # a request is waiting on ``hold``
        self.read_only = False  # the credential may fetch, not push (403, after auth)

    @property
    def delay(self) -> float:
        """Seconds before answering each request (the fakes' ``latency``)."""
        return self.latency

    @delay.setter
    def delay(self, seconds: float) -> None:
        self.latency = seconds

    def url(self, repo: str, *, user: str | None = None,  # type: ignore[override]
            token: str | None = None) -> str:
        user = self.user if user is None else user
        token = self.token if token is None else token
        return f"{self.scheme}://{user}:{token}@127.0.0.1:{self.port}/{repo}"

    def respond(self, request: Request) -> Reply:
        if self.hold is not None:  # a slow server, for as long as the test wants
            self.arrived.set()
            self.hold.wait(60)
        if self.redirect_to is not None:
            return Reply(302, b"", {"Location": self.redirect_to + request.target})
        expected = base64.b64encode(f"{self.user}:{self.token}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return Reply(401, b"", {"WWW-Authenticate": 'Basic realm="git"'})
        if self.read_only and "git-receive-pack" in request.target:
            return Reply(403, b"no write access\n")
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(self.root),
               "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": request.path,
               "QUERY_STRING": request.query_string, "REQUEST_METHOD": request.method,
               "REMOTE_USER": self.user, "REMOTE_ADDR": "127.0.0.1",
               "CONTENT_LENGTH": str(len(request.body)),
               "CONTENT_TYPE": request.headers.get("Content-Type", ""),
               "GIT_CONFIG_NOSYSTEM": "1", "HOME": os.environ.get("HOME", "/")}
        for header, variable in (("Content-Encoding", "HTTP_CONTENT_ENCODING"),
                                 ("Git-Protocol", "GIT_PROTOCOL")):
            if request.headers.get(header):
                env[variable] = request.headers[header]
        out = subprocess.run(["git", "http-backend"], input=request.body, env=env,
                             capture_output=True, check=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, {}
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(": ")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers[name] = value
        return Reply(status, payload, headers)
