"""The fake-server base every fake forge stands on (``tests/fakes/server.py``): what a
fault, a hook, a timer and the recording do, seen from a real HTTP client."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.server import FakeServer, HTTPError, Reply, Request


class Counter(FakeServer):
    """``POST /n`` adds one; ``GET /n`` reads it; anything else is 404."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.n = 0

    def respond(self, request: Request) -> Reply:
        if request.path != "/n":
            raise HTTPError(404, {"message": "no such thing"})
        if request.method == "POST":
            self.n += len(request.body) or 1
            return Reply(201, {"n": self.n})
        return Reply(200, {"n": self.n, "q": request.query})


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter]:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with Counter(tmp_path) as made:
        yield made


def call(fake: FakeServer, method: str, path: str, body: bytes = b"",
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        data = answer.read()
        return answer.status, json.loads(data) if data else None
    finally:
        conn.close()


def test_answers_records_and_counts(fake: Counter) -> None:
    assert call(fake, "GET", "/n?x=1") == (200, {"n": 0, "q": {"x": "1"}})
    assert call(fake, "POST", "/n", b"abc") == (201, {"n": 3})
    assert call(fake, "GET", "/nope")[0] == 404
    assert [(r.method, r.path, r.query, r.status, r.bytes_in) for r in fake.requests] == [
        ("GET", "/n", "x=1", 200, 0), ("POST", "/n", "", 201, 3), ("GET", "/nope", "", 404, 0)]
    assert fake.count("GET") == 2 and fake.count(None, r"^/n$") == 2
    fake.reset_counts()
    assert fake.count() == 0


def test_a_fault_answers_without_doing_anything(fake: Counter) -> None:
    fake.fail("POST", r"/n$", 503, times=2)
    assert call(fake, "POST", "/n")[0] == 503
    assert call(fake, "POST", "/n")[0] == 503
    assert call(fake, "POST", "/n") == (201, {"n": 1})
    assert [r.status for r in fake.requests] == [503, 503, 201]


def test_apply_then_fail_does_the_write_and_loses_the_answer(fake: Counter) -> None:
    fake.fail("POST", r"/n$", 0, apply_then_fail=True)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        call(fake, "POST", "/n")
    assert fake.n == 1  # it happened
    assert fake.requests[-1].status == 0  # a dropped connection
    fake.fail("POST", r"/n$", 502, apply_then_fail=True)
    assert call(fake, "POST", "/n")[0] == 502
    assert fake.n == 2


def test_reset_before_drops_the_connection_before_anything(fake: Counter) -> None:
    fake.fail("*", r"/n$", reset_before=True, times=-1)
    for _ in range(3):
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            call(fake, "POST", "/n")
    assert fake.n == 0
    assert [r.status for r in fake.requests] == [0, 0, 0]


def test_a_hook_runs_once_right_before_its_request(fake: Counter) -> None:
    seen: list[int] = []
    fake.before("GET", r"/n$", lambda: seen.append(fake.n))
    call(fake, "POST", "/n")
    assert seen == []
    call(fake, "GET", "/n")
    call(fake, "GET", "/n")
    assert seen == [1]


def test_a_timer_runs_later_and_stop_cancels_it(tmp_path: Path) -> None:
    done = threading.Event()
    with Counter(tmp_path) as fake:
        fake.later(0.01, done.set)
        assert done.wait(10)
        fake.later(60, done.clear)
    for timer in fake._timers:  # stopped: the second was cancelled, it never runs
        timer.join(5)
        assert not timer.is_alive()
    assert done.is_set()


def test_a_chunked_body_is_read_whole(fake: Counter) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    try:
        conn.request("POST", "/n", body=iter([b"ab", b"cde"]),
                     headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
        assert json.loads(conn.getresponse().read()) == {"n": 5}
    finally:
        conn.close()
