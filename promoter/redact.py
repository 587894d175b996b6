"""Keep secrets out of every line promoter prints or sends.

The CLI registers each token (and a GitHub App key) the moment it reads one; every
message that leaves the process (stdout, stderr, logs, PR/MR bodies, commit messages,
exception text) goes through ``redact`` first. A secret shorter than 6 characters is
still registered: masking too much beats leaking.
"""

from __future__ import annotations

import re

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


def clear() -> None:
    """For tests only: forget every registered secret."""
    _secrets.clear()


# --- text from outside, on its way to a CI log ------------------------------------------------

_BREAKS = re.compile(r"\r\n|[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_COMMAND = re.compile(r"^(\s*):(?=:)", re.MULTILINE)


def fold(text: str) -> str:
    """``text`` on one line: every line break becomes a visible ``\\n``. For messages
    that carry outside text (a forge's error body, git's stderr, a file's value): a
    line break in them would start a new log line that the CI reads as its own."""
    return _BREAKS.sub(r"\\n", text)


def no_commands(text: str) -> str:
    """``text`` with no line that GitHub Actions reads as a workflow command: a line
    starting (after blanks) with ``::`` gets a space between the colons (``: :``), and
    the legacy ``##[`` prefix becomes ``# #[``. Applied to everything promoter prints;
    its own ``::error`` annotation is written separately."""
    return _COMMAND.sub(r"\1: ", text).replace("##[", "# #[")
