"""CI outputs of a promotion: GitHub step outputs, job summary and annotations, and
GitLab's dotenv and annotations reports.

Each output is a string built by a pure function from the JSON report (the same dict
``promote --output json`` prints) and written in one small step, ``write_ci_outputs``.
Nothing here trusts the report's strings: outputs use a random heredoc delimiter that
no value contains, Markdown and HTML are escaped, workflow-command properties are
percent-escaped, and dotenv values are kept on one line. Every string also goes
through ``redact`` so a registered token can never reach a CI log or summary.

``python -m promoter.ci_output --result promote.json`` is the entry point the GitHub
Action and the GitLab template call after ``promote``: it writes whatever the
environment asks for, also when ``promote`` failed before printing a report.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from promoter.errors import PromoteError
from promoter.forges.registry import label
from promoter.redact import redact
from promoter.text import md as markdown_text

Result = Mapping[str, Any]

SUMMARY_MAX_ROWS = 200
SUMMARY_MAX_DIFF = 60_000  # a step summary may hold 1 MiB; leave room for the tables
_SAFE_URL = re.compile(r"https?://[A-Za-z0-9][^\s<>()\[\]{}\"'`\\|^]*")

_STATUS_TEXT = {
    "proposed": "pull request opened or updated",
    "merged": "merged",
    "auto-merge": "auto-merge enabled",
    "up-to-date": "already up to date, nothing to do",
    "refused": "merge refused by policy",
    "dry-run": "dry run, nothing was changed",
    "in-place": "files edited in place",
    "failed": "failed",
    "error": "failed",
}


# --- reading the report -------------------------------------------------------------


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return redact(str(value))


def _request(result: Result) -> Mapping[str, Any]:
    pr = result.get("pull_request")
    return pr if isinstance(pr, Mapping) else {}


def _policy(result: Result) -> Mapping[str, Any]:
    policy = result.get("policy")
    return policy if isinstance(policy, Mapping) else {}


def _rows(result: Result, key: str) -> list[Mapping[str, Any]]:
    rows = result.get(key)
    if not isinstance(rows, list):
        return []
    return [row for row in rows if isinstance(row, Mapping)]


def _flag(result: Result, key: str) -> str:
    return "true" if result.get(key) is True else "false"


def _safe_url(value: object) -> str | None:
    text = _text(value)
    return text if _SAFE_URL.fullmatch(text) else None


# --- GitHub Actions -----------------------------------------------------------------


# The values both CIs get: (GitHub Actions output, GitLab dotenv variable, the value)
_OUTPUTS: tuple[tuple[str, str, Callable[[Result], object]], ...] = (
    ("pr-url", "PROMOTE_MR_URL", lambda result: _request(result).get("url")),
    ("pr-number", "PROMOTE_MR_IID", lambda result: _request(result).get("number")),
    ("branch", "PROMOTE_BRANCH", lambda result: result.get("branch")),
    ("commit", "PROMOTE_COMMIT", lambda result: result.get("commit")),
    ("changed", "PROMOTE_CHANGED", lambda result: _flag(result, "changed")),
    ("merged", "PROMOTE_MERGED", lambda result: _flag(result, "merged")),
    ("auto-merge", "PROMOTE_AUTO_MERGE", lambda result: _flag(result, "auto_merge")),
    ("status", "PROMOTE_STATUS", lambda result: result.get("status")),
)


def github_output_values(result: Result) -> dict[str, str]:
    """The action's outputs, by name, as the strings a workflow reads."""
    values = {name: _text(value(result)) for name, _, value in _OUTPUTS}
    values["policy"] = redact(json.dumps(_policy(result), indent=2, sort_keys=True))
    return values


def random_delimiter() -> str:
    return f"promoter_EOF_{secrets.token_hex(16)}"


def github_outputs(
    result: Result,
    delimiter: str | None = None,
    *,
    new_delimiter: Callable[[], str] = random_delimiter,
) -> str:
    """``$GITHUB_OUTPUT`` text: every output in the ``name<<DELIM`` heredoc form, so a
    value may hold newlines or ``=``. The delimiter is random; when a value contains
    it (it never should), a new one is drawn."""
    values = github_output_values(result)
    delim = delimiter or new_delimiter()
    while any(delim in value for value in values.values()):
        delim = new_delimiter()
    return "".join(f"{name}<<{delim}\n{value}\n{delim}\n" for name, value in values.items())


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(error: PromoteError) -> str:
    """A ``::error`` workflow command for ``error``, pointing at its file and line."""
    props: list[str] = []
    if error.file is not None:
        props.append(f"file={_escape_property(redact(error.file))}")
        if error.line is not None:
            props.append(f"line={error.line}")
            if error.column is not None:
                props.append(f"col={error.column}")
    props.append(f"title={_escape_property(f'promote failed (exit {error.code})')}")
    return f"::error {','.join(props)}::{_escape_data(redact(error.render()))}\n"


def md(value: object) -> str:
    """``value`` as literal Markdown text: one line, every ASCII punctuation character
    backslash-escaped (so no link, emphasis, table pipe or mention survives) and
    ``& < >`` as HTML entities (so no tag survives)."""
    return markdown_text(_text(value))


def _code(value: object) -> str:
    text = md(value)
    return f"<code>{text}</code>" if text else ""


def _link(label: str, url: object) -> str:
    safe = _safe_url(url)
    return f"[{md(label)}]({safe})" if safe else md(label)


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _request_label(result: Result, number: object) -> str:
    return label(result.get("forge"), _text(number), _text(result.get("branch")))


def github_summary(result: Result) -> str:
    """Markdown for ``$GITHUB_STEP_SUMMARY``: verdict, link, changes, policy, diff."""
    status = _text(result.get("status")) or "failed"
    heading = _STATUS_TEXT.get(status) or md(status)
    if status in {"failed", "error", "refused"} and result.get("exit_code") is not None:
        heading += f" (exit {md(result.get('exit_code'))})"
    lines = [f"## promote: {heading}", ""]
    if result.get("error"):
        lines += [f"**Error:** {md(result.get('error'))}", ""]

    facts = []
    if result.get("env"):
        facts.append(f"environment {_code(result.get('env'))}")
    if result.get("repo"):
        target = _code(result.get("repo"))
        if result.get("base"):
            target += f" at {_code(result.get('base'))}"
        facts.append(target)
    images = result.get("images")
    if isinstance(images, list) and images:
        facts.append("images " + ", ".join(_code(image) for image in images))
    if facts:
        lines += [" · ".join(facts), ""]

    pr = _request(result)
    if pr.get("url"):
        verb = "opened" if pr.get("created") else "updated" if pr.get("updated") else "open"
        lines += [f"{_link(_request_label(result, pr.get('number')), pr.get('url'))} ({verb})", ""]
    elif result.get("branch"):
        lines += [f"branch {_code(result.get('branch'))}", ""]

    changes = _rows(result, "changes")
    if changes:
        rows = [
            [_code(c.get("file")), md(c.get("line")), _code(c.get("old")), _code(c.get("new"))]
            for c in changes[:SUMMARY_MAX_ROWS]
        ]
        lines += ["### Changes", "", *_table(["File", "Line", "Old", "New"], rows), ""]
        if len(changes) > SUMMARY_MAX_ROWS:
            lines += [f"{len(changes) - SUMMARY_MAX_ROWS} more changes are in the JSON report.", ""]
    elif status not in {"failed", "error"}:
        lines += ["No file needed a change.", ""]

    lines += _policy_lines(_policy(result))
    lines += _skip_lines(_rows(result, "skips"))
    lines += _diff_lines(_text(result.get("diff")))
    return "\n".join(lines).rstrip("\n") + "\n"


def _policy_lines(policy: Mapping[str, Any]) -> list[str]:
    if not policy:
        return []
    if policy.get("allows_merge") is True:
        verdict = "merge allowed"
    elif policy.get("refused") is True:
        verdict = "merge refused"
    else:
        verdict = "merge needs a human"
    lines = [f"### Policy: {md(verdict)}", ""]
    checks = [c for c in policy.get("checks") or [] if isinstance(c, Mapping)]
    if checks:
        marks = {"pass": "✅ pass", "fail": "❌ fail", "skip": "⚪ skip"}
        rows = [
            [md(c.get("name")), marks.get(_text(c.get("status")), md(c.get("status"))),
             md(c.get("reason"))]
            for c in checks
        ]
        lines += [*_table(["Check", "Verdict", "Why"], rows), ""]
    return lines


def _skip_lines(skips: list[Mapping[str, Any]]) -> list[str]:
    if not skips:
        return []
    rows = [
        [_code(s.get("file")), md(s.get("line")), _code(s.get("image")), md(s.get("reason"))]
        for s in skips[:SUMMARY_MAX_ROWS]
    ]
    return [
        f"<details><summary>Left unchanged ({len(skips)})</summary>",
        "",
        *_table(["File", "Line", "Image", "Why"], rows),
        "",
        "</details>",
        "",
    ]


def _diff_lines(diff: str) -> list[str]:
    if not diff:
        return []
    note = ""
    if len(diff) > SUMMARY_MAX_DIFF:
        diff = diff[:SUMMARY_MAX_DIFF]
        note = "The diff is truncated; the full diff is in the pull request."
    fence = _fence(diff)
    lines = ["<details><summary>Diff</summary>", "", f"{fence}diff", diff.rstrip("\n"), fence, ""]
    if note:
        lines += [note, ""]
    return [*lines, "</details>", ""]


# --- GitLab CI ----------------------------------------------------------------------


def _one_line(value: object) -> str:
    text = _text(value)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in {"Cc", "Zl", "Zp"})
    return text.strip()


def gitlab_dotenv_values(result: Result) -> dict[str, str]:
    return {name: _one_line(value(result)) for _, name, value in _OUTPUTS}


def gitlab_dotenv(result: Result) -> str:
    """The ``artifacts:reports:dotenv`` file: ``KEY=value`` lines, each value on one line
    (GitLab's dotenv has no multi-line values, comments or escapes)."""
    return "".join(f"{key}={value}\n" for key, value in gitlab_dotenv_values(result).items())


def gitlab_annotations(result: Result) -> str:
    """The ``artifacts:reports:annotations`` JSON: a link to the merge request on the
    job page (an empty section when there is none)."""
    links: list[dict[str, dict[str, str]]] = []
    pr = _request(result)
    url = _safe_url(pr.get("url"))
    if url is not None:
        label = _request_label(result, pr.get("number"))
        links.append({"external_link": {"label": label[0].upper() + label[1:], "url": url}})
    return json.dumps({"promoter": links}, indent=2) + "\n"


# --- writing ------------------------------------------------------------------------


def write_ci_outputs(
    result: Result,
    environ: Mapping[str, str],
    *,
    dotenv_path: str | None = None,
    annotations_path: str | None = None,
) -> None:
    """Append to ``$GITHUB_OUTPUT`` and ``$GITHUB_STEP_SUMMARY`` when they are set, and
    write the GitLab dotenv / annotations files when their paths are given."""
    output = environ.get("GITHUB_OUTPUT")
    if output:
        _append(output, github_outputs(result))
    summary = environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        _append(summary, github_summary(result))
    if dotenv_path:
        _write(dotenv_path, gitlab_dotenv(result))
    if annotations_path:
        _write(annotations_path, gitlab_annotations(result))


def _append(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def load_result(text: str, exit_code: int | None) -> dict[str, object]:
    """The report ``promote`` printed: the first JSON object of ``text`` (lines after it,
    such as a ``::error`` workflow command, are ignored). When there is none (promote
    failed before printing one), a minimal ``failed`` report with the exit code."""
    start = text.find("{")
    loaded: object = None
    if start >= 0:
        try:
            loaded, _ = json.JSONDecoder().raw_decode(text, start)
        except json.JSONDecodeError:
            loaded = None
    if not isinstance(loaded, dict):
        return {"status": "failed", "exit_code": exit_code, "changed": False}
    if exit_code == 4 and loaded.get("status") == "error":
        loaded["status"] = "refused"  # the policy refused what the caller demanded
    if exit_code and loaded.get("status") in {None, "", "ok"}:
        loaded["status"] = "failed"
    if exit_code and loaded.get("exit_code") is None:
        loaded["exit_code"] = exit_code
    return loaded


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m promoter.ci_output",
        description="Write CI outputs from the JSON report of `promote --output json`.",
    )
    parser.add_argument("--result", required=True, help="file holding promote's stdout")
    parser.add_argument("--exit-code", type=int, default=None, help="promote's exit code")
    parser.add_argument("--dotenv", default=None, help="write a GitLab dotenv report here")
    parser.add_argument("--annotations", default=None,
                        help="write a GitLab annotations report here")
    args = parser.parse_args(argv)
    try:
        with open(args.result, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        text = ""
    result = load_result(text, args.exit_code)
    write_ci_outputs(result, os.environ if environ is None else environ,
                     dotenv_path=args.dotenv, annotations_path=args.annotations)
    return 0


if __name__ == "__main__":
    sys.exit(main())
