"""Everything promoter writes for people and machines, built as strings from values.

Commit messages (with machine-readable trailers that history and rollback read back),
PR/MR titles and bodies (Markdown, values escaped so a hostile tag cannot inject
Markdown or HTML, the diff truncated to the forge's limit), the terminal report and the
JSON result. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from promoter.images import ImageRef
from promoter.jsontypes import JSONObject
from promoter.plan import Found, Plan
from promoter.templates import Templates, one_line
from promoter.text import code, md

TRAILER_IMAGE = "Promoted-Image"
TRAILER_PREVIOUS = "Previous-Image"
TRAILER_ENV = "Environment"
TRAILER_FINGERPRINT = "Promote-Fingerprint"
TRAILER_ROLLBACK = "Promote-Rollback-Of"
GITHUB_BODY_LIMIT = 65_536

_TRAILER_RE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*): (.+)$")


@dataclass(frozen=True)
class ImageChange:
    """One image of a promotion, summarised: what ran before, what runs after."""

    name: str
    before: tuple[str, ...]  # versions found before (deduplicated, in order)
    after: str

    def ref(self, version: str) -> str:
        """``name:tag``, ``name:tag@sha256:…`` or ``name@sha256:…``."""
        sep = "@" if version.startswith("sha256:") else ":"
        return f"{self.name}{sep}{version}"


def image_changes(plan: Plan, targets: Sequence[ImageRef]) -> list[ImageChange]:
    """Per targeted image: the versions that ran and the one that will run."""
    out = []
    for ref in targets:
        before: list[str] = []
        for f in plan.found:
            if f.image == ref.name:
                version = _version(f)
                if version not in before:
                    before.append(version)
        out.append(ImageChange(ref.name, tuple(before), ref.version))
    return out


def _version(f: Found) -> str:
    parts = [p for p in (f.old_tag, f.old_digest) if p]
    return "@".join(parts) if parts else "latest"


def fingerprint(files: Mapping[str, bytes]) -> str:
    """Identifies a promotion's content: re-running it finds the same fingerprint."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    return digest.hexdigest()[:16]


def title(changes: Sequence[ImageChange], env: str | None, rollback: bool = False) -> str:
    scope = f"({env})" if env else ""
    verb = "rollback" if rollback else "promote"
    if len(changes) == 1:
        c = changes[0]
        old = ", ".join(c.before) or "?"
        return f"{verb}{scope}: {_short(c.name)} {old} → {c.after}"
    names = ", ".join(f"{_short(c.name)} {c.after}" for c in changes)
    return f"{verb}{scope}: {names}"


def _short(name: str) -> str:
    return name.removeprefix("docker.io/library/").removeprefix("docker.io/")


def commit_message(
    changes: Sequence[ImageChange],
    plan: Plan,
    env: str | None,
    provenance: Iterable[tuple[str, str]],
    *,
    rollback_of: str | Sequence[str] | None = None,
    head: str | None = None,
) -> str:
    """Title and change list (or ``head``, a rendered ``templates.commit``), then the
    trailers: always the last paragraph, whatever ``head`` says. ``rollback_of``: the
    reference(s) a rollback moves away from, one trailer each, so each parses back on
    its own (``Promote-Rollback-Of: ghcr.io/acme/api:1.2.0``)."""
    away = (rollback_of,) if isinstance(rollback_of, str) else tuple(rollback_of or ())
    if head is not None and head.strip():
        lines = [head.strip("\n"), ""]
    else:
        lines = [title(changes, env, rollback=bool(away)), ""]
        lines.extend(_change_lines(plan))
        lines.append("")
    for c in changes:
        lines.append(f"{TRAILER_IMAGE}: {c.ref(c.after)}")
        lines.extend(f"{TRAILER_PREVIOUS}: {c.ref(before)}" for before in c.before)
    if env:
        lines.append(f"{TRAILER_ENV}: {env}")
    for key, value in provenance:
        lines.append(f"{key}: {value}")
    lines.extend(f"{TRAILER_ROLLBACK}: {ref}" for ref in away)
    lines.append(f"{TRAILER_FINGERPRINT}: {fingerprint(plan.files)}")
    return "\n".join(lines) + "\n"


def _change_lines(plan: Plan) -> list[str]:
    return [f"- {f.file}:{f.line} {f.field}: {f.old or '(empty)'} -> {f.new or '(empty)'}"
            for f in plan.changes]


@dataclass(frozen=True)
class Texts:
    """What a promotion says: the PR/MR title and body, and the commit message."""

    title: str
    body: str
    message: str


def texts(
    templates: Templates,
    changes: Sequence[ImageChange],
    plan: Plan,
    env: str | None,
    provenance: Mapping[str, str | None],
    provenance_trailers: Iterable[tuple[str, str]],
    policy_markdown: str,
    policy_lines: Sequence[str],
    *,
    rollback_of: Sequence[str] = (),
    limit: int = GITHUB_BODY_LIMIT,
) -> Texts:
    """The title, body and commit message: the config's templates where it has them,
    promoter's own otherwise; the commit's trailers are appended after either."""
    rollback = bool(rollback_of)
    plain = template_fields(changes, plan, env, provenance, policy_lines, rollback=rollback,
                            markdown=False)
    the_title = title(changes, env, rollback=rollback)
    if templates.title is not None:
        the_title = one_line(templates.title.render(plain)) or the_title
    if templates.body is not None:
        rich = template_fields(changes, plan, env, provenance, policy_lines, rollback=rollback,
                               markdown=True, policy_markdown=policy_markdown)
        body = _capped(templates.body.render(rich) + _FOOTER, limit)
    else:
        body = pr_body(changes, plan, env, provenance, policy_markdown, limit=limit)
    head = templates.commit.render(plain) if templates.commit is not None else None
    message = commit_message(changes, plan, env, provenance_trailers, rollback_of=rollback_of,
                             head=head)
    return Texts(the_title, body, message)


def template_fields(changes: Sequence[ImageChange], plan: Plan, env: str | None,
                    provenance: Mapping[str, str | None], policy_lines: Sequence[str], *,
                    rollback: bool, markdown: bool, policy_markdown: str = ""
                    ) -> dict[str, str]:
    """The values of the template fields (``promoter.templates.FIELDS``). For a body
    (``markdown``), text values are escaped and block values are Markdown already."""
    text = {
        "env": env or "",
        "images": ", ".join(c.ref(c.after) for c in changes),
        "names": ", ".join(_short(c.name) for c in changes),
        "old": ", ".join(v for c in changes for v in c.before),
        "new": ", ".join(c.after for c in changes),
        "action": "rollback" if rollback else "promote",
        "source_url": str(provenance.get("source_url") or ""),
        "source_commit": str(provenance.get("source_commit") or ""),
        "pipeline_url": str(provenance.get("pipeline_url") or ""),
        "actor": str(provenance.get("actor") or ""),
    }
    if not markdown:
        return text | {"changes": "\n".join(_change_lines(plan)),
                       "policy": "\n".join(policy_lines), "diff": plan.diff.rstrip("\n")}
    fence = "```"
    while fence in plan.diff:
        fence += "`"
    table = ["| file | line | old | new |", "|---|---|---|---|"] + [
        f"| {code(f.file)} | {f.line} | {code(f.old or '(empty)')} | {code(f.new or '(empty)')} |"
        for f in plan.changes]
    return {k: md(v) for k, v in text.items()} | {
        "changes": "\n".join(table), "policy": policy_markdown.rstrip("\n"),
        "diff": f"{fence}diff\n{plan.diff}{fence}"}


_FOOTER = ("\n\n<sub>Opened by promoter. Re-running the same promotion updates this "
           "request.</sub>\n")


def _capped(body: str, limit: int) -> str:
    if len(body) <= limit:
        return body
    note = "\n\n_Cut here: the body is longer than the forge takes; see the commit._\n"
    cut = body.rfind("\n", 0, limit - len(note)) + 1
    return body[:cut] + note


def trailers(message: str) -> list[tuple[str, str]]:
    """The trailer block of a commit message (its last paragraph), as (key, value)."""
    paragraphs = message.strip().split("\n\n")
    out = []
    for line in paragraphs[-1].splitlines():
        m = _TRAILER_RE.match(line.strip())
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def pr_body(
    changes: Sequence[ImageChange],
    plan: Plan,
    env: str | None,
    provenance: Mapping[str, str | None],
    policy_markdown: str,
    *,
    limit: int = GITHUB_BODY_LIMIT,
) -> str:
    head = ["### Promotion", ""]
    if env:
        head.append(f"Environment: {code(env)}")
        head.append("")
    head += ["| image | before | after |", "|---|---|---|"]
    for c in changes:
        head.append(f"| {code(c.name)} | {code(', '.join(c.before) or '-')} | {code(c.after)} |")
    head += ["", "| file | line | field | old | new |", "|---|---|---|---|---|"]
    for f in plan.changes:
        head.append(f"| {code(f.file)} | {f.line} | {code(f.field)} | {code(f.old or '(empty)')} "
                    f"| {code(f.new or '(empty)')} |")
    if plan.skips:
        head += ["", "Not changed:", ""]
        head += [f"- {code(s.file)}:{s.line} {md(s.reason)}" for s in plan.skips]
    prov = {k: v for k, v in provenance.items() if v}
    if prov:
        head += ["", "### Provenance", ""]
        for key, value in prov.items():
            head.append(f"- {md(key.replace('_', ' '))}: {code(str(value))}")
    if policy_markdown:
        head += ["", "### Policy", "", policy_markdown]
    head += ["", "### Diff", ""]
    tail = ["", "<sub>Opened by promoter. Re-running the same promotion updates this request."
            "</sub>", ""]
    text_head = "\n".join(head) + "\n"
    text_tail = "\n".join(tail)
    diff = plan.diff
    fence = "```"
    while fence in diff:
        fence += "`"
    room = limit - len(text_head) - len(text_tail) - 2 * len(fence) - 16 - 200
    note = ""
    if len(diff) > room:
        cut = diff.rfind("\n", 0, max(room, 0)) + 1
        diff = diff[:cut]
        note = (f"\n_The diff is truncated here ({len(plan.diff):,} characters in all); "
                "see the commit for the whole change._\n")
    return f"{text_head}{fence}diff\n{diff}{fence}\n{note}{text_tail}"


def result_text(result: Mapping[str, Any], color: bool) -> str:
    """The human report of a run, for the terminal."""
    out: list[str] = []
    status = result.get("status", "")
    pr = result.get("pull_request") or {}
    if pr and not pr.get("created") and not pr.get("updated"):
        # a re-run that found its request as it left it: the change was shown then
        return "\n".join([*_policy_lines(result), result.get("message") or status])
    for ch in result.get("changes", []):
        out.append(f"{ch['file']}:{ch['line']}: {ch['old'] or '(empty)'} -> {ch['new']}")
    for skip in result.get("skips", []):
        out.append(f"skipped {skip['file']}:{skip['line']}: {skip['reason']}")
    diff = result.get("diff") or ""
    if diff:
        out.append(colorize(diff.rstrip("\n")) if color else diff.rstrip("\n"))
    out.extend(_policy_lines(result))
    out.append(result.get("message") or status)
    return "\n".join(out)


def _policy_lines(result: Mapping[str, Any]) -> list[str]:
    policy = result.get("policy")
    if not policy or not policy.get("checks"):
        return []
    return ["policy:"] + [f"  {check['status']:<5} {check['name']}: {check['reason']}"
                          for check in policy["checks"]]


def colorize(diff: str) -> str:
    lines = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            lines.append(f"\x1b[1m{line}\x1b[0m")
        elif line.startswith("+"):
            lines.append(f"\x1b[32m{line}\x1b[0m")
        elif line.startswith("-"):
            lines.append(f"\x1b[31m{line}\x1b[0m")
        elif line.startswith("@@"):
            lines.append(f"\x1b[36m{line}\x1b[0m")
        else:
            lines.append(line)
    return "\n".join(lines)


def changes_json(plan: Plan) -> list[JSONObject]:
    return [{"file": f.file, "line": f.line, "old": f.old, "new": f.new, "image": f.image,
             "field": f.field, "format": f.format} for f in plan.changes]


def skips_json(plan: Plan) -> list[JSONObject]:
    return [{"file": s.file, "line": s.line, "image": s.image, "reason": s.reason}
            for s in plan.skips]
