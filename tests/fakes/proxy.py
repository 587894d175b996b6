"""A loopback HTTP proxy that records what passes through it, as a corporate proxy would
see it: ``CONNECT host:port`` tunnels (the TLS inside stays opaque to it) and plain
``GET http://...`` requests with every header (those it refuses with 502, after
recording them).

    with Proxy() as proxy:
        env HTTPS_PROXY=proxy.url
        proxy.tunnels          # ["127.0.0.1:PORT", ...]: CONNECT targets
        proxy.seen             # every request line and its headers, as text
"""

from __future__ import annotations

import select
import socket
import socketserver
import threading
from typing import Any


class Proxy:
    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            rbufsize = 0  # no read-ahead: what follows CONNECT belongs to the tunnel

            def handle(self) -> None:
                fake._handle(self)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def seen(self) -> str:
        """Every request received (line and headers), as one text to search."""
        with self.lock:
            return "\n".join(f"{m} {t} {h!r}" for m, t, h in self.requests)

    def __enter__(self) -> Proxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, handler: Any) -> None:
        line = handler.rfile.readline(65537).decode("latin-1").strip()
        if not line:
            return
        method, target, _ = [*line.split(" "), "", ""][:3]
        headers: dict[str, str] = {}
        while True:
            header = handler.rfile.readline(65537).decode("latin-1")
            if header in ("\r\n", "\n", ""):
                break
            name, _, value = header.partition(":")
            headers[name.strip()] = value.strip()
        with self.lock:
            self.requests.append((method, target, headers))
        if method != "CONNECT":
            length = int(headers.get("Content-Length") or 0)
            if length:
                handler.rfile.read(length)
            handler.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")
            return
        host, _, port = target.rpartition(":")
        with self.lock:
            self.tunnels.append(target)
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        except OSError:
            handler.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        handler.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        handler.wfile.flush()
        _pipe(handler.connection, upstream)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until one side closes."""
    sockets = [a, b]
    try:
        while True:
            readable, _, _ = select.select(sockets, [], [], 30)
            if not readable:
                return
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                (b if sock is a else a).sendall(data)
    except OSError:
        return
    finally:
        b.close()
