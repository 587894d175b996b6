"""Templates for the PR/MR title, its body and the commit message (``templates:`` in
``.promoter.yaml``), with a fixed set of ``{name}`` fields and nothing else.

    templates:
      title: "deploy({env}): {names} {new}"
      body: |
        Promotes {images} (was {old}) into {env}.
        {policy}
        {diff}
      commit: "deploy({env}): {names} {old} -> {new}"

The substitution is this module's own: ``{name}`` is replaced by the value of a known
field, ``{{`` and ``}}`` are literal braces, and that is all. There is no attribute or
index access, no conversion, no format spec and no code: ``{images.__class__}``,
``{0}`` or ``{env!r}`` is an error when the config is loaded, with its line and column,
as is an unknown field. ``str.format`` never sees a user template.

Fields (values are computed by promoter; in the body, text values are escaped for
Markdown and block values are already Markdown):

    env           the environment ("" without --env)
    images        the new references, comma-separated     ghcr.io/acme/api:1.5.0
    names         the image names, comma-separated        ghcr.io/acme/api
    old           the versions that ran, comma-separated  1.4.1
    new           the versions promoted, comma-separated  1.5.0
    action        "promote" or "rollback"
    source_url    the source repository's URL (CI)        https://github.com/acme/api
    source_commit the source commit (CI)
    pipeline_url  the pipeline or workflow run (CI)
    actor         who ran the pipeline (CI)
    changes       one line per edit: file:line old -> new (body: a table)
    policy        the policy verdict (body: a table)
    diff          the unified diff (body: a fenced diff block)

Trailers are never part of a template: promoter appends them after the rendered commit
message, always, so history and rollback read the same data whatever a template says.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

TARGETS = ("title", "body", "commit")
FIELDS = ("env", "images", "names", "old", "new", "action", "source_url", "source_commit",
          "pipeline_url", "actor", "changes", "policy", "diff")
BLOCK_FIELDS = frozenset({"changes", "policy", "diff"})  # many lines: not in a title
TITLE_LIMIT = 250  # GitHub takes 256 characters, GitLab 255

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"[a-z_]+")


class TemplateProblem(ValueError):
    """What is wrong with a template, and where: ``offset`` in the template text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and field names, in order."""

    parts: tuple[tuple[bool, str], ...]  # (is_field, literal text or field name)

    def fields(self) -> frozenset[str]:
        return frozenset(text for is_field, text in self.parts if is_field)

    def render(self, values: Mapping[str, str]) -> str:
        return "".join(values[text] if is_field else text for is_field, text in self.parts)


@dataclass(frozen=True)
class Templates:
    title: Template | None = None
    body: Template | None = None
    commit: Template | None = None


def parse(text: str, target: str) -> Template:
    """Parse ``text``; TemplateProblem for an unknown or malformed field, a lone brace,
    or a multi-line field or a line break in a title."""
    parts: list[tuple[bool, str]] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        if match.start() > pos:
            parts.append((False, text[pos:match.start()]))
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append((False, token[0]))
        elif match.group(1) is None:
            raise TemplateProblem(f"a lone {token!r}; write {token * 2!r} for a literal brace",
                                  match.start())
        else:
            name = match.group(1)
            if not _NAME.fullmatch(name):
                raise TemplateProblem(
                    f"{token} is not a field: only {{name}} is allowed (no attributes, "
                    "indexes, positions, conversions or format specs)", match.start())
            if name not in FIELDS:
                raise TemplateProblem(f"unknown field {token}", match.start())
            if target == "title" and name in BLOCK_FIELDS:
                raise TemplateProblem(f"{token} spans several lines; a title is one line",
                                      match.start())
            parts.append((True, name))
        pos = match.end()
    if pos < len(text):
        parts.append((False, text[pos:]))
    if target == "title" and "\n" in text.rstrip("\n"):
        raise TemplateProblem("a title is one line", text.index("\n"))
    return Template(tuple(parts))


def one_line(text: str, limit: int = TITLE_LIMIT) -> str:
    """A rendered title: one line, at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


__all__ = ["BLOCK_FIELDS", "FIELDS", "TARGETS", "Template", "TemplateProblem", "Templates",
           "one_line", "parse"]
