"""The one retry policy every forge shares (tenacity).

Retried: connection errors, timeouts, 5xx, 429, and GitHub's secondary rate limit
(403 with ``retry-after`` or an exhausted ``x-ratelimit-remaining``). The wait is the
larger of the server's ``Retry-After`` / ``x-ratelimit-reset`` hint and an exponential
backoff with jitter; the whole thing stops before ``timeout`` seconds would be passed
(``stop_before_delay`` never overshoots). Writes are retried only through
``Forge`` code that first checks whether the write already took effect.

Each forge supplies ``classify(exc) -> Transient | None``: None means "do not retry".
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import tenacity

T = TypeVar("T")

DEFAULT_TIMEOUT = 60.0
MAX_ATTEMPTS = 8
MAX_SINGLE_WAIT = 30.0


@dataclass(frozen=True)
class Transient:
    """A retryable failure; ``after`` is the server's own hint in seconds, if any."""

    after: float | None = None


Classifier = Callable[[BaseException], "Transient | None"]


def retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait according to ``Retry-After`` (seconds or HTTP-date) or
    ``x-ratelimit-reset`` (epoch seconds) when the remaining quota is zero."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    now = time.time() if now is None else now
    value = lower.get("retry-after")
    if value is not None:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - now)
    if lower.get("x-ratelimit-remaining") == "0" and lower.get("x-ratelimit-reset", "").isdigit():
        return max(0.0, float(lower["x-ratelimit-reset"]) - now)
    return None


def status_transient(status: int | None, headers: Mapping[str, str] | None,
                     body: str = "") -> Transient | None:
    """The HTTP half of classification, shared by the GitHub and GitLab forges."""
    if status is None:
        return None
    hint = retry_after(headers)
    if status == 429 or status >= 500:
        return Transient(hint)
    if status == 403:
        lower = {k.lower(): v for k, v in (headers or {}).items()}
        secondary = "secondary rate limit" in body.lower() or "retry-after" in lower
        if secondary or lower.get("x-ratelimit-remaining") == "0":
            return Transient(hint)
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


def call(
    fn: Callable[[], T],
    classify: Classifier,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = MAX_ATTEMPTS,
) -> T:
    """Run ``fn``; retry transient failures within ``timeout`` seconds in total.
    When retries run out, the last exception is re-raised for the forge to translate."""
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda e: classify(e) is not None),
        wait=_Wait(classify),
        stop=tenacity.stop_before_delay(timeout) | tenacity.stop_after_attempt(attempts),
        sleep=sleep,
        reraise=True,
    )
    return retrying(fn)
