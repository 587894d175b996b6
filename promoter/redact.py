"""Keep secrets out of every line promoter prints or sends.

The CLI registers each token (and a GitHub App key) the moment it reads one; every
message that leaves the process (stdout, stderr, logs, PR/MR bodies, commit messages,
exception text) goes through ``redact`` first. A secret shorter than 6 characters is
still registered: masking too much beats leaking.
"""

from __future__ import annotations

MASK = "***"
_secrets: set[str] = set()


def register(secret: str | None) -> None:
    if not secret:
        return
    _secrets.add(secret)
    # A PEM key is also leaked line by line, so mask each long line of it too.
    for line in secret.splitlines():
        if len(line.strip()) >= 16:
            _secrets.add(line.strip())


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def registered() -> frozenset[str]:
    return frozenset(_secrets)


def clear() -> None:
    """For tests only: forget every registered secret."""
    _secrets.clear()
