"""Who a promotion commit is by: ``Name <email>``.

Chosen, first match wins:

1. ``--author "Name <email>"`` (or ``PROMOTE_AUTHOR``);
2. ``author:`` in the config repo's ``.promoter.yaml`` (base branch);
3. plain git only: the CI user — GitHub Actions ``GITHUB_ACTOR`` (its noreply address,
   ``ID+login@users.noreply.github.com`` with ``GITHUB_ACTOR_ID``; not under Gitea /
   Forgejo Actions, whose users have no such address), GitLab CI
   ``GITLAB_USER_NAME`` + ``GITLAB_USER_EMAIL``;
4. plain git only: ``user.name`` / ``user.email`` of the git config;

and otherwise the run stops before writing (exit 2). Through the GitHub and GitLab APIs,
without 1 or 2 the forge records the token's own user, as it does for any API commit.

Pure: ``parse`` takes text, ``from_ci`` takes the environment as a mapping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from promoter.errors import UsageError

_IDENT = re.compile(r"(?P<name>[^<>]+?)\s*<(?P<email>[^<>\s]+@[^<>\s]+)>")
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?")
EXAMPLE = '"Release Bot <release-bot@example.com>"'


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


def problem(text: str) -> str | None:
    """Why ``text`` is not ``Name <email>``, or None when it is."""
    if any(not c.isprintable() for c in text):
        return "it contains a control character or line break"
    match = _IDENT.fullmatch(text.strip())
    if match is None:
        return "expected Name <email>"
    if not match["name"].strip():
        return "the name is empty"
    return None


def parse(text: str, what: str = "--author") -> Identity:
    """``Name <email>``; UsageError naming ``what`` otherwise."""
    why = problem(text)
    match = _IDENT.fullmatch(text.strip())
    if why is not None or match is None:
        raise UsageError(f"{what} {text!r}: {why}", hint=f"e.g. {what} {EXAMPLE}")
    return Identity(match["name"].strip(), match["email"])


def from_ci(environ: Mapping[str, str]) -> Identity | None:
    """The user the CI job runs for, when the environment names one properly."""
    gitea = environ.get("GITEA_ACTIONS") == "true" or environ.get("FORGEJO_ACTIONS") == "true"
    if environ.get("GITHUB_ACTIONS") == "true" and not gitea:  # (Gitea also sets it)
        login = environ.get("GITHUB_ACTOR", "")
        if _LOGIN.fullmatch(login):
            user_id = environ.get("GITHUB_ACTOR_ID", "")
            local = f"{user_id}+{login}" if user_id.isdigit() else login
            return Identity(login, f"{local}@users.noreply.github.com")
    if environ.get("GITLAB_CI") == "true":
        name = environ.get("GITLAB_USER_NAME", "").strip()
        email = environ.get("GITLAB_USER_EMAIL", "").strip()
        if name and email and problem(f"{name} <{email}>") is None:
            return Identity(name, email)
    return None
