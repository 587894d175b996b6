"""The one retry policy every forge shares (tenacity).

Retried: connection errors, timeouts, 5xx, 429, and GitHub's secondary rate limit
(403 with ``retry-after`` or an exhausted ``x-ratelimit-remaining``). The wait is the
larger of the server's ``Retry-After`` / ``x-ratelimit-reset`` hint and an exponential
backoff with jitter; the whole thing stops before ``timeout`` seconds would be passed
(``stop_before_delay`` never overshoots). Writes are retried only through
``Forge`` code that first checks whether the write already took effect.

Each forge supplies ``classify(exc) -> Transient | None``: None means "do not retry".
A write goes to ``call`` wrapped in ``Write``, which owns the one rule every forge
follows: a failed write is tried again only after asking whether it landed after all.

Rate limits longer than the budget. When a rate limit (429, or GitHub's 403 with an
exhausted quota or a ``Retry-After``) names a wait that does not fit in what is left of
``timeout`` (``Retry-After``, ``x-ratelimit-reset``, GitLab's ``RateLimit-Reset``),
sleeping part of it and then failing helps nobody: ``call`` stops at once with
``RateLimited`` (exit 5, the reset time in UTC, "rerun then, or pass
--wait-for-rate-limit"). With ``Patience(wait=True)`` it waits instead, for at most
``MAX_RATE_LIMIT_WAIT`` seconds in all (one hour), in steps of at most a minute, each
announced through ``Patience.say``; then the retry budget starts afresh. A reset
further away than the maximum is ``RateLimited`` at once as well.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Generic, TypeVar

import tenacity

from promoter.errors import RateLimited

T = TypeVar("T")

DEFAULT_TIMEOUT = 60.0
MAX_ATTEMPTS = 8
MAX_SINGLE_WAIT = 30.0
MAX_RATE_LIMIT_WAIT = 3600.0  # the longest --wait-for-rate-limit waits, in all
PROGRESS_EVERY = 60.0  # seconds between two progress lines while waiting


@dataclass(frozen=True)
class Transient:
    """A retryable failure. ``after`` is the server's own hint in seconds, if any;
    ``reset_at`` the epoch second a rate limit ends, when the server named one (then
    ``after`` was computed from it); ``rate_limited``: the server said "too many"."""

    after: float | None = None
    reset_at: float | None = None
    rate_limited: bool = False

    def delay(self, now: float) -> float | None:
        """Seconds from ``now`` until the server said to come back, if it said."""
        if self.reset_at is not None:
            return max(0.0, self.reset_at - now)
        return self.after


def _no_output(text: str) -> None:
    del text


@dataclass(frozen=True)
class Patience:
    """What to do about a rate limit longer than the retry budget: stop at once
    (``wait=False``) or wait for it, for at most ``maximum`` seconds in all, saying so
    through ``say`` at most once every ``PROGRESS_EVERY`` seconds. ``service`` names
    the forge in messages; ``clock`` is the epoch clock (injected in tests)."""

    wait: bool = False
    maximum: float = MAX_RATE_LIMIT_WAIT
    service: str = "the forge"
    say: Callable[[str], None] = field(default=_no_output)
    clock: Callable[[], float] = field(default=time.time)


Classifier = Callable[[BaseException], "Transient | None"]


def reset_time(headers: Mapping[str, str] | None) -> float | None:
    """The epoch second a rate limit ends, when the headers name one: ``Retry-After`` as
    an HTTP-date, or an exhausted quota's ``x-ratelimit-reset`` (GitHub) /
    ``RateLimit-Reset`` (GitLab)."""
    if not headers:
        return None
    lower = {k.lower(): v.strip() for k, v in headers.items()}
    value = lower.get("retry-after")
    if value is not None and not value.isdigit():
        try:
            return email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return None
    for prefix in ("x-ratelimit-", "ratelimit-"):
        reset = lower.get(prefix + "reset", "")
        if lower.get(prefix + "remaining") == "0" and reset.isdigit():
            return float(reset)
    return None


def retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait according to ``Retry-After`` (seconds or HTTP-date), or
    ``x-ratelimit-reset`` / ``RateLimit-Reset`` (epoch seconds) when the remaining quota
    is zero. ``Retry-After`` in seconds wins over a reset time."""
    if not headers:
        return None
    lower = {k.lower(): v.strip() for k, v in headers.items()}
    value = lower.get("retry-after")
    if value is not None and value.isdigit():
        return float(value)
    reset = reset_time(headers)
    if reset is None:
        return None
    return max(0.0, reset - (time.time() if now is None else now))


def status_transient(status: int | None, headers: Mapping[str, str] | None,
                     body: str = "") -> Transient | None:
    """The HTTP half of classification, shared by the GitHub and GitLab forges."""
    if status is None:
        return None
    hint = retry_after(headers)
    lower = {k.lower(): v.strip() for k, v in (headers or {}).items()}
    reset = None if lower.get("retry-after", "x").isdigit() else reset_time(headers)
    if status == 429:
        return Transient(hint, reset, rate_limited=True)
    if status >= 500:
        return Transient(hint, reset)
    if status == 403:
        secondary = "secondary rate limit" in body.lower() or "retry-after" in lower
        if secondary or lower.get("x-ratelimit-remaining") == "0":
            return Transient(hint, reset, rate_limited=True)
    return None


class _Wait(tenacity.wait.wait_base):
    def __init__(self, classify: Classifier) -> None:
        self.classify = classify
        self.backoff = tenacity.wait_random_exponential(multiplier=0.5, max=MAX_SINGLE_WAIT)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        base: float = self.backoff(retry_state)
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        if exc is not None:
            transient = self.classify(exc)
            if transient is not None and transient.after is not None:
                return max(base, min(transient.after, MAX_SINGLE_WAIT * 4))
        return base


def _too_long(classify: Classifier, exc: BaseException, left: float,
              now: float) -> tuple[Transient, float] | None:
    """The rate limit and its wait, when ``exc`` is a rate limit whose wait does not fit
    in the ``left`` seconds of the retry budget."""
    transient = classify(exc)
    if transient is None or not transient.rate_limited:
        return None
    delay = transient.delay(now)
    if delay is None or delay <= left:
        return None
    return transient, delay


def _clock_text(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%H:%M:%S UTC")


def _minutes(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds / 60))} min"


def rate_limited(patience: Patience, delay: float, now: float) -> RateLimited:
    """The error that says how long the rate limit lasts and what to do."""
    until = now + delay
    when = f"{_clock_text(until)} (in {_minutes(delay)})"
    if patience.wait:
        return RateLimited(
            f"{patience.service} rate limited until {when}, longer than "
            f"--wait-for-rate-limit waits ({_minutes(patience.maximum)} at most); rerun "
            "then", until=until)
    return RateLimited(f"{patience.service} rate limited until {when}; rerun then, or pass "
                       "--wait-for-rate-limit", until=until)


class _LongWait(Exception):
    """Raised from the stop condition: wait ``delay`` seconds, then start afresh."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"wait {delay:g}s")
        self.delay = delay


def _wait_out(patience: Patience, delay: float, sleep: Callable[[float], None]) -> None:
    """Sleep ``delay`` seconds in steps of at most a minute, one progress line per step."""
    until = patience.clock() + delay
    left = delay
    while left > 0:
        patience.say(f"{patience.service} rate limited until {_clock_text(until)}: waiting, "
                     f"{_minutes(left)} left (--wait-for-rate-limit)")
        step = min(left, PROGRESS_EVERY)
        sleep(step)
        left -= step


class _StopForLongWait(tenacity.stop.stop_base):
    """Stop at once on a rate limit that does not fit in what is left of the budget:
    ``RateLimited``, or ``_LongWait`` when ``patience`` allows the wait."""

    def __init__(self, classify: Classifier, timeout: float, patience: Patience,
                 start: float, waited: float) -> None:
        self.classify = classify
        self.timeout = timeout
        self.patience = patience
        self.start = start
        self.waited = waited

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        if exc is None:
            return False
        now = self.patience.clock()
        found = _too_long(self.classify, exc, self.timeout - (now - self.start), now)
        if found is None:
            return False
        delay = found[1]
        if not self.patience.wait or self.waited + delay > self.patience.maximum:
            raise rate_limited(self.patience, delay, now)
        raise _LongWait(delay)


def call(
    fn: Callable[[], T],
    classify: Classifier,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = MAX_ATTEMPTS,
    patience: Patience | None = None,
) -> T:
    """Run ``fn``; retry transient failures within ``timeout`` seconds in total.
    When retries run out, the last exception is re-raised for the forge to translate.
    A rate limit longer than what is left of ``timeout`` is ``RateLimited`` at once, or
    waited out when ``patience`` allows (see the module doc)."""
    patience = patience or Patience()
    waited = 0.0
    while True:
        start = patience.clock()

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda e: classify(e) is not None),
            wait=_Wait(classify),
            stop=tenacity.stop_any(_StopForLongWait(classify, timeout, patience, start, waited),
                                   tenacity.stop_before_delay(timeout),
                                   tenacity.stop_after_attempt(attempts)),
            sleep=sleep,
            reraise=True,
        )
        try:
            return retrying(fn)
        except _LongWait as pause:
            _wait_out(patience, pause.delay, sleep)
            waited += pause.delay


class Write(Generic[T]):
    """A write, as the function ``call`` retries: ``act`` makes it; from the second
    attempt on, ``landed`` is asked first whether an earlier attempt took effect after
    all (the connection can drop after the server applied it), and its answer, when not
    None, is the result. So a write that landed is never made twice. ``retried`` tells
    ``act`` and the forge's error handling whether an earlier attempt was made."""

    def __init__(self, act: Callable[[], T], landed: Callable[[], T | None]) -> None:
        self.act = act
        self.landed = landed
        self.attempts = 0

    @property
    def retried(self) -> bool:
        return self.attempts > 1

    def __call__(self) -> T:
        self.attempts += 1
        if self.retried:
            done = self.landed()
            if done is not None:
                return done
        return self.act()
