"""Commit messages, titles and PR/MR bodies: the strings people and history read."""

from __future__ import annotations

from promoter.images import parse
from promoter.plan import Found, Plan
from promoter.report import (
    GITHUB_BODY_LIMIT,
    code,
    commit_message,
    image_changes,
    pr_body,
    title,
    trailers,
)

FOUND = Found("envs/prod/deploy.yaml", 9, 16, "ghcr.io/acme/api", "spec.containers[0].image",
              "workload", "ghcr.io/acme/api:1.4.1", "ghcr.io/acme/api:1.4.2", "1.4.1", None)


def _plan(diff: str = "--- a/x\n+++ b/x\n") -> Plan:
    return Plan((FOUND,), files={"envs/prod/deploy.yaml": b"new\n"},
                originals={"envs/prod/deploy.yaml": b"old\n"}, diff=diff)


def test_commit_message_trailers_read_back() -> None:
    plan = _plan()
    changes = image_changes(plan, [parse("ghcr.io/acme/api:1.4.2")])
    message = commit_message(changes, plan, "prod", [("Source-Commit", "abc123")],
                             rollback_of="ghcr.io/acme/api:1.5.0")
    assert message.splitlines()[0] == "rollback(prod): ghcr.io/acme/api 1.4.1 → 1.4.2"
    keys = dict(trailers(message))
    assert keys["Promoted-Image"] == "ghcr.io/acme/api:1.4.2"
    assert keys["Previous-Image"] == "ghcr.io/acme/api:1.4.1"
    assert keys["Environment"] == "prod"
    assert keys["Source-Commit"] == "abc123"
    assert keys["Promote-Rollback-Of"] == "ghcr.io/acme/api:1.5.0"
    assert len(keys["Promote-Fingerprint"]) == 16


def test_digest_only_trailer_uses_at() -> None:
    digest = "sha256:" + "c" * 64
    changes = image_changes(_plan(), [parse(f"ghcr.io/acme/api@{digest}")])
    assert changes[0].ref(changes[0].after) == f"ghcr.io/acme/api@{digest}"
    assert title(changes, None) == f"promote: ghcr.io/acme/api 1.4.1 → {digest}"


def test_code_spans_survive_backticks_and_pipes() -> None:
    assert code("a`b") == "``a`b``"
    assert code("x|y") == "`x\\|y`"
    assert code("line\nbreak") == "`line break`"


def test_huge_diff_is_truncated_with_a_note() -> None:
    plan = _plan("".join(f"+line {i}\n" for i in range(100_000)))
    changes = image_changes(plan, [parse("ghcr.io/acme/api:1.4.2")])
    body = pr_body(changes, plan, "prod", {"source_commit": "abc"}, "policy table")
    assert len(body) <= GITHUB_BODY_LIMIT
    assert "The diff is truncated here" in body
    assert body.count("```") == 2  # the fence is closed
    small = pr_body(changes, _plan(), "prod", {}, "")
    assert "truncated" not in small
    assert "| `envs/prod/deploy.yaml` | 9 |" in small
