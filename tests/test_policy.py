"""Policy checks: every check's pass / fail / skip, the verdict, and its rendering."""

from __future__ import annotations

import re
import textwrap
from dataclasses import replace
from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promoter import policy
from promoter.config import BUILTIN, EnvPolicy, WeeklyFreeze, load, tighten
from promoter.errors import PromoteError
from promoter.images import Bump, ImageRef, parse
from promoter.plan import Found, Plan
from promoter.policy import Check, Verdict, evaluate, render_markdown

API = "ghcr.io/acme/api"
WEB = "ghcr.io/acme/web"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
# Thursday 2026-05-07 10:00 UTC: outside every window used below.
THURSDAY = datetime(2026, 5, 7, 10, 0, tzinfo=timezone.utc)

CONFIG = textwrap.dedent(
    """\
    version: 1
    defaults:
      allowed_tags: ['^v?\\d+\\.\\d+\\.\\d+$']
    environments:
      dev:     {paths: ["envs/dev/**"], auto_merge: true}
      staging: {paths: ["envs/staging/**"], auto_merge: true, require_upstream: dev}
      prod:
        paths: ["envs/prod/**"]
        auto_merge: true
        require_upstream: staging
        freeze:
          - {days: [fri, sat, sun], from: "15:00", to: "23:59", tz: Europe/Berlin}
          - {start: "2026-12-20T00:00:00+01:00", end: "2027-01-04T00:00:00+01:00"}
      manual: {paths: ["envs/manual/**"]}
    """
)
CFG = load(CONFIG.encode())


def found(old_tag: str | None, new: str = "", *, image: str = API, file: str = "envs/dev/app.yaml",
          old_digest: str | None = None) -> Found:
    old = f"{image}:{old_tag}" if old_tag else f"{image}@{old_digest}" if old_digest else image
    return Found(file, 7, 16, image, "spec.template.spec.containers[0].image", "workload", old,
                 new or old + "-changed", old_tag, old_digest)


def plan_of(*items: Found) -> Plan:
    return Plan(found=items, files={f.file: b"changed" for f in items if f.changes})


def ev(old_tag: str | None, new_ref: str, env: EnvPolicy | None = None, *, want: bool = True,
       file: str = "envs/dev/app.yaml", old_digest: str | None = None,
       now: datetime = THURSDAY, **kw: object) -> Verdict:
    ref = parse(new_ref)
    item = found(old_tag, str(ref), image=ref.name, file=file, old_digest=old_digest)
    return evaluate(plan_of(item), CFG.env("dev") if env is None else env, images=[ref],
                    now=now, want_merge=want, **kw)  # type: ignore[arg-type]


def status(verdict: Verdict, name: str) -> str:
    check = verdict.check(name)
    assert check is not None, name
    return check.status


def reason(verdict: Verdict, name: str) -> str:
    check = verdict.check(name)
    assert check is not None, name
    return check.reason


# --- the verdict as a whole -------------------------------------------------------------


def test_a_clean_minor_promotion_in_dev_merges() -> None:
    v = ev("1.4.2", f"{API}:1.5.0")
    assert [c.name for c in v.checks] == list(policy.CHECKS)
    assert {c.name: c.status for c in v.checks} == {
        "auto_merge_enabled": "pass",
        "allowed_tags": "pass",
        "semver_bump": "pass",
        "no_downgrade": "pass",
        "require_upstream": "skip",
        "freeze": "skip",
        "paths_only": "pass",
        "rollback_guard": "pass",
    }
    assert v.allows_merge
    assert not v.refused


def test_a_major_bump_is_not_auto_merged() -> None:
    v = ev("1.4.2", f"{API}:2.0.0")
    assert status(v, "semver_bump") == "fail"
    assert reason(v, "semver_bump") == (
        "1.4.2 → 2.0.0 is a major step; this environment merges at most minor steps by itself"
    )
    assert not v.allows_merge
    assert not v.refused  # a human may still merge it: the PR is proposed


def test_a_downgrade_is_refused_outright_even_without_a_merge_wish() -> None:
    for want in (True, False):
        v = ev("1.5.0", f"{API}:1.4.9", want=want)
        assert v.refused
        assert not v.allows_merge
        assert status(v, "no_downgrade") == "fail"
        assert "1.5.0 → 1.4.9 is a downgrade" in reason(v, "no_downgrade")
        assert "allow_downgrade: false" in reason(v, "no_downgrade")


def test_an_allowed_downgrade_is_proposed_but_the_step_still_counts() -> None:
    env = replace(CFG.env("dev"), allow_downgrade=True)
    v = ev("1.5.0", f"{API}:1.4.9", env)
    assert not v.refused
    assert status(v, "no_downgrade") == "pass"
    assert "allowed (allow_downgrade: true)" in reason(v, "no_downgrade")
    assert v.allows_merge  # 1.5.0 -> 1.4.9 is a minor step down
    v = ev("2.0.0", f"{API}:1.9.0", env)
    assert not v.refused
    assert reason(v, "semver_bump").startswith("2.0.0 → 1.9.0 is a major step down")
    assert not v.allows_merge


def test_want_merge_false_never_allows_a_merge() -> None:
    v = ev("1.4.2", f"{API}:1.4.3", want=False)
    assert not v.allows_merge
    assert status(v, "auto_merge_enabled") == "fail"
    assert not v.want_merge


def test_verdict_json_shape() -> None:
    v = ev("1.4.2", f"{API}:1.4.3")
    data = v.to_json()
    assert data["allows_merge"] is True
    assert data["refused"] is False
    assert data["want_merge"] is True
    assert [c["name"] for c in data["checks"]] == list(policy.CHECKS)
    assert all(set(c) == {"name", "status", "reason"} for c in data["checks"])
    assert all(c["status"] in ("pass", "fail", "skip") for c in data["checks"])


def test_with_check_adds_replaces_and_recomputes() -> None:
    v = ev("1.4.2", f"{API}:1.4.3")
    assert v.allows_merge
    red = v.with_check(Check("checks_green", "fail", "a check run failed"))
    assert not red.allows_merge
    assert red.checks[-1].name == "checks_green"
    assert len(red.checks) == len(v.checks) + 1
    green = red.with_check(Check("checks_green", "pass", "all green"))
    assert green.allows_merge
    assert len(green.checks) == len(red.checks)
    assert green.check("checks_green") == Check("checks_green", "pass", "all green")
    assert v.allows_merge  # values are immutable
    refused = ev("1.5.0", f"{API}:1.4.0").with_check(Check("checks_green", "pass", "ok"))
    assert not refused.allows_merge
    assert refused.refused
    unwanted = ev("1.4.2", f"{API}:1.4.3", want=False).with_check(Check("checks_green", "pass", ""))
    assert not unwanted.allows_merge


def test_check_status_is_validated() -> None:
    with pytest.raises(PromoteError, match="status 'ok'"):
        Check("x", "ok", "")


def test_only_a_failing_check_can_refuse() -> None:
    with pytest.raises(PromoteError, match="refuses but did not fail"):
        Check("x", "pass", "", refuses=True)


def test_refused_comes_from_the_check_that_refuses_and_stays_out_of_the_json() -> None:
    v = ev("1.5.0", f"{API}:1.4.9")
    assert [c.name for c in v.checks if c.refuses] == ["no_downgrade"]
    assert all(set(c) == {"name", "status", "reason"} for c in v.to_json()["checks"])
    unordered = ev("abc", f"{API}:1.4.9")  # fails for auto-merge, proposed for a human
    assert status(unordered, "no_downgrade") == "fail"
    assert not any(c.refuses for c in unordered.checks)
    assert not unordered.refused


def test_every_row_of_the_table_is_one_check_in_order() -> None:
    assert tuple(rule.name for rule in policy.RULES) == policy.CHECKS
    v = ev("1.4.2", f"{API}:1.4.3")
    assert tuple(c.name for c in v.checks) == policy.CHECKS


def test_now_must_be_aware() -> None:
    with pytest.raises(PromoteError, match="timezone-aware"):
        ev("1.4.2", f"{API}:1.4.3", now=datetime(2026, 5, 7, 10))


# --- auto_merge_enabled and flags that only tighten ------------------------------------


@pytest.mark.parametrize(
    ("env_auto_merge", "want", "expected", "fragment"),
    [
        (True, True, "pass", "environment dev allows auto-merge (auto_merge: true)"),
        (True, False, "fail", "auto-merge was turned off"),
        (False, True, "fail", "flags cannot loosen the policy"),
        (False, False, "fail", "environment dev has auto_merge: false; a human merges"),
    ],
)
def test_auto_merge_enabled(env_auto_merge: bool, want: bool, expected: str,
                            fragment: str) -> None:
    v = ev("1.4.2", f"{API}:1.4.3", replace(CFG.env("dev"), auto_merge=env_auto_merge), want=want)
    assert status(v, "auto_merge_enabled") == expected
    assert fragment in reason(v, "auto_merge_enabled")
    assert v.allows_merge is (expected == "pass")


def test_caller_auto_merge_on_a_manual_environment_stays_unmerged() -> None:
    manual = CFG.env("manual")
    tightened = tighten(manual, auto_merge=True)
    v = ev("1.4.2", f"{API}:1.4.3", tightened, want=True, file="envs/manual/app.yaml")
    assert status(v, "auto_merge_enabled") == "fail"
    assert "auto-merge was asked for, but environment manual has auto_merge: false" in reason(
        v, "auto_merge_enabled")
    assert not v.allows_merge
    # Even an orchestrator that forgot to tighten cannot loosen the policy.
    v = ev("1.4.2", f"{API}:1.4.3", manual, want=True, file="envs/manual/a.yaml")
    assert not v.allows_merge


def test_a_draft_does_not_auto_merge() -> None:
    v = ev("1.4.2", f"{API}:1.4.3", replace(CFG.env("dev"), draft=True))
    assert status(v, "auto_merge_enabled") == "fail"
    assert "draft" in reason(v, "auto_merge_enabled")


def test_defaults_policy_is_described_as_such() -> None:
    v = ev("1.4.2", f"{API}:1.4.3", CFG.defaults, want=True)
    assert reason(v, "auto_merge_enabled").startswith(
        "auto-merge was asked for, but the defaults of .promoter.yaml has auto_merge: false")
    assert status(v, "paths_only") == "skip"


# --- no config file -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "want", "allows", "refused"),
    [
        ("1.4.2", "1.4.3", False, False, False),  # open a PR, never auto-merge unasked
        ("1.4.2", "1.4.3", True, True, False),  # --auto-merge: patch step merges
        ("1.4.2", "1.9.0", True, True, False),  # minor step merges
        ("1.4.2", "2.0.0", True, False, False),  # major step waits for a human
        ("1.4.2", "1.4.1", True, False, True),  # downgrade refused
        ("1.4.2", "1.4.1", False, False, True),
        ("latest", "1.4.3", True, False, False),  # not semver: a human merges
        ("1.4.2", "anything-goes", True, False, False),
    ],
)
def test_no_config_defaults(old: str, new: str, want: bool, allows: bool, refused: bool) -> None:
    for pol in (None, BUILTIN, tighten(None, auto_merge=want)):
        v = ev(old, f"{API}:{new}", pol, want=want) if pol is not None else evaluate(
            plan_of(found(old, f"{API}:{new}")), None, images=[parse(f"{API}:{new}")],
            now=THURSDAY, want_merge=want)
        assert v.allows_merge is allows
        assert v.refused is refused
        for name in ("allowed_tags", "require_upstream", "freeze", "paths_only"):
            assert status(v, name) == "skip", name
    if not want:
        assert "no .promoter.yaml and auto-merge not asked for" in reason(v, "auto_merge_enabled")
    if (old, new) == ("1.4.2", "2.0.0"):
        assert "without .promoter.yaml, a promotion merges at most minor steps" in reason(
            v, "semver_bump")


# --- allowed_tags -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "expected", "fragment"),
    [
        (f"{API}:1.4.3", "pass", r"tag '1.4.3' matches '^v?\d+\.\d+\.\d+$'"),
        (f"{API}:v1.4.3", "pass", "tag 'v1.4.3' matches"),
        (f"{API}:1.4.3-rc.1", "fail", r"tag '1.4.3-rc.1' matches none of allowed_tags "
                                      r"('^v?\d+\.\d+\.\d+$')"),
        (f"{API}:latest", "fail", "tag 'latest' matches none"),
        # fail closed: allowed_tags applies here and a digest has no tag to match
        (f"{API}@{DIGEST_A}", "fail", "carries no tag, and environment dev allows"),
        (f"{API}:1.4.3@{DIGEST_A}", "pass", "tag '1.4.3' matches"),
    ],
)
def test_allowed_tags(new: str, expected: str, fragment: str) -> None:
    v = ev("1.4.2", new)
    assert status(v, "allowed_tags") == expected
    assert fragment in reason(v, "allowed_tags")


def test_allowed_tags_must_match_fully_and_any_pattern_will_do() -> None:
    cfg = load(b"version: 1\ndefaults:\n  allowed_tags: ['\\d+', 'main-[0-9a-f]{7}']\n")
    assert status(ev("1", f"{API}:2", cfg.defaults), "allowed_tags") == "pass"
    assert status(ev("1", f"{API}:main-abcdef0", cfg.defaults), "allowed_tags") == "pass"
    assert status(ev("1", f"{API}:2x", cfg.defaults), "allowed_tags") == "fail"  # no fullmatch
    assert status(ev("1", f"{API}:xmain-abcdef0", cfg.defaults), "allowed_tags") == "fail"


def test_allowed_tags_skip_without_patterns() -> None:
    v = ev("1.4.2", f"{API}:whatever", replace(CFG.env("dev"), allowed_tags=None))
    assert status(v, "allowed_tags") == "skip"
    assert "any tag may be proposed" in reason(v, "allowed_tags")


# --- semver_bump ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "limit", "expected", "fragment"),
    [
        ("1.4.2", "1.4.3", Bump.PATCH, "pass", "1.4.2 → 1.4.3 is a patch step"),
        ("1.4.2", "1.5.0", Bump.PATCH, "fail", "is a minor step; this environment merges at "
                                              "most patch steps by itself"),
        ("1.4.2", "1.5.0", Bump.MINOR, "pass", "is a minor step"),
        ("1.4.2", "2.0.0", Bump.MINOR, "fail", "is a major step"),
        ("1.4.2", "2.0.0", Bump.MAJOR, "pass", "is a major step; at most major steps"),
        ("v1.4.2", "v1.4.3", Bump.PATCH, "pass", "v1.4.2 → v1.4.3 is a patch step"),
        ("1.4.2", "v1.4.2", Bump.PATCH, "pass", "the same version"),
        ("1.5.0-rc.1", "1.5.0", Bump.PATCH, "pass", "is a prerelease step"),
        ("latest", "1.4.3", Bump.MAJOR, "fail", "latest → 1.4.3 is not a semantic version step"),
        ("1.4.2", "main-abc", Bump.MAJOR, "fail", "is not a semantic version step"),
    ],
)
def test_semver_bump(old: str, new: str, limit: Bump, expected: str, fragment: str) -> None:
    env = replace(CFG.env("dev"), max_auto_merge_bump=limit, allowed_tags=None)
    v = ev(old, f"{API}:{new}", env)
    assert status(v, "semver_bump") == expected
    assert fragment in reason(v, "semver_bump")


def test_semver_bump_digest_cases() -> None:
    # fail closed: the step cannot be measured, so no auto-merge; proposed for a human
    digest_only = ev("1.4.2", f"{API}@{DIGEST_A}")
    assert status(digest_only, "semver_bump") == "fail"
    assert "carries no tag, so the version step cannot be measured" in reason(
        digest_only, "semver_bump")
    assert status(digest_only, "no_downgrade") == "fail"
    assert not digest_only.refused
    assert not digest_only.allows_merge
    untagged = ev(None, f"{API}:1.4.3", old_digest=DIGEST_B)
    assert status(untagged, "semver_bump") == "fail"
    assert "no tag is set now (only sha256:bbbbbbbbbbbb)" in reason(untagged, "semver_bump")
    bare = ev(None, f"{API}:1.4.3")  # neither tag nor digest: nothing doubled up
    assert "no tag is set now, so the step to 1.4.3" in reason(bare, "semver_bump")
    assert "((" not in reason(bare, "semver_bump")
    same_tag = ev("1.4.3", f"{API}:1.4.3@{DIGEST_A}", old_digest=DIGEST_B)
    assert status(same_tag, "semver_bump") == "pass"


def test_several_places_and_images_are_judged_together() -> None:
    refs = [parse(f"{API}:1.5.0"), parse(f"{WEB}:3.0.0")]
    plan = plan_of(
        found("1.4.0", f"{API}:1.5.0", file="envs/dev/a.yaml"),
        found("1.5.0", f"{API}:1.5.0", file="envs/dev/b.yaml"),  # already there: no change
        found("1.4.9", f"{API}:1.5.0", file="envs/dev/c.yaml"),
        found("2.1.0", f"{WEB}:3.0.0", image=WEB, file="envs/dev/d.yaml"),
    )
    plan = replace(plan, found=tuple(
        replace(f, new=f.old) if f.file == "envs/dev/b.yaml" else f for f in plan.found))
    v = evaluate(plan, CFG.env("dev"), images=refs, now=THURSDAY, want_merge=True)
    assert status(v, "semver_bump") == "fail"
    # Only the failure is told, with the image it concerns.
    assert reason(v, "semver_bump") == (
        "ghcr.io/acme/web: 2.1.0 → 3.0.0 is a major step; this environment merges at most "
        "minor steps by itself"
    )
    assert status(v, "allowed_tags") == "pass"
    assert "ghcr.io/acme/api: tag '1.5.0'" in reason(v, "allowed_tags")
    assert status(v, "paths_only") == "pass"
    assert "all 3 changed files" in reason(v, "paths_only")


def test_a_set_value_without_a_reference_is_still_judged() -> None:
    # --set FILE:image.tag=VALUE gives no ImageRef; the scalar itself is the new tag.
    item = Found("envs/dev/values.yaml", 3, 8, API, "image.tag", "set", "1.4.2", "2.0.0",
                 "1.4.2", None)
    v = evaluate(plan_of(item), CFG.env("dev"), images=[], now=THURSDAY, want_merge=True)
    assert status(v, "semver_bump") == "fail"
    item = replace(item, new="not a version|<b>")
    v = evaluate(plan_of(item), CFG.env("dev"), images=[], now=THURSDAY, want_merge=True)
    assert status(v, "allowed_tags") == "fail"
    assert status(v, "semver_bump") == "fail"
    assert "is not an image reference" in reason(v, "allowed_tags")
    assert not v.allows_merge
    item = replace(item, old=f"{API}:1.4.2", new=f"{API}:1.4.3")
    v = evaluate(plan_of(item), CFG.env("dev"), images=[], now=THURSDAY, want_merge=True)
    assert status(v, "semver_bump") == "pass"
    assert v.allows_merge


def test_nothing_changes() -> None:
    item = found("1.4.2", f"{API}:1.4.2")
    item = replace(item, new=item.old)
    v = evaluate(Plan(found=(item,)), CFG.env("staging"), images=[parse(f"{API}:1.4.2")],
                 now=THURSDAY, want_merge=True)
    for name in ("allowed_tags", "semver_bump", "no_downgrade", "require_upstream", "paths_only"):
        assert status(v, name) == "skip", name
        assert reason(v, name) == "nothing changes"


# --- no_downgrade ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("1.4.2", "1.4.3", "pass"),
        ("1.4.2", "v1.4.2", "pass"),
        ("1.4.2", "1.4.1", "fail"),
        ("2.0.0", "1.99.99", "fail"),
        ("1.5.0", "1.5.0-rc.2", "fail"),  # a prerelease sorts below its release
        ("1.5.0-rc.2", "1.5.0-rc.10", "pass"),  # numeric identifiers compare as numbers
        ("v1.4.2", "1.4.1", "fail"),
        # cannot be ordered: fails for auto-merge (fail closed), but is still proposed
        ("latest", "1.0.0", "fail?"),
        ("main", "dev", "fail?"),
    ],
)
def test_no_downgrade(old: str, new: str, expected: str) -> None:
    v = ev(old, f"{API}:{new}")
    assert status(v, "no_downgrade") == expected.rstrip("?")
    assert v.refused is (expected == "fail")
    if expected == "fail?":
        assert "a downgrade cannot be ruled out" in reason(v, "no_downgrade")
        assert not v.allows_merge


# --- require_upstream ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "running", "expected", "fragment"),
    [
        ("1.4.3", {("1.4.3", None)}, "pass", "dev already runs 1.4.3"),
        # dev pins 1.4.3 to a digest: a tag-only promotion would drop the pin
        ("1.4.3", {("1.4.2", None), ("1.4.3", DIGEST_A)}, "fail",
         f"dev runs 1.4.3@sha256:aaaaaaaaaaaa, pinned to a digest; 1.4.3 without it would "
         f"drop the pin: promote ghcr.io/acme/api:1.4.3@{DIGEST_A} (or --from dev"),
        ("1.4.3", {("1.4.2", None)}, "fail", "dev runs 1.4.2, not 1.4.3; promote it to dev first"),
        ("1.4.3", set(), "fail", "dev does not run ghcr.io/acme/api"),
        (f"1.4.3@{DIGEST_A}", {("1.4.3", DIGEST_A)}, "pass", "dev already runs 1.4.3@sha256:aaa"),
        (f"1.4.3@{DIGEST_A}", {("1.4.3", DIGEST_B)}, "fail", "dev runs 1.4.3@sha256:bbbbbbbbbbbb,"
                                                             " not 1.4.3@sha256:aaaaaaaaaaaa"),
        (f"1.4.3@{DIGEST_A}", {("1.4.3", None)}, "fail", "not 1.4.3@sha256:aaaaaaaaaaaa"),
        (f"@{DIGEST_A}", {(None, DIGEST_A)}, "pass", "dev already runs sha256:aaaaaaaaaaaa"),
        (f"@{DIGEST_A}", {("9.9.9", DIGEST_A)}, "pass", "already runs"),
        (f"@{DIGEST_A}", {("1.4.3", DIGEST_B)}, "fail", "not sha256:aaaaaaaaaaaa"),
    ],
)
def test_require_upstream(new: str, running: set[tuple[str | None, str | None]], expected: str,
                          fragment: str) -> None:
    ref = f"{API}{new}" if new.startswith("@") else f"{API}:{new}"
    upstream = {API: running} if running else {WEB: {("1.4.3", None)}}
    v = ev("1.4.2", ref, CFG.env("staging"), file="envs/staging/a.yaml", upstream=upstream)
    assert status(v, "require_upstream") == expected
    assert fragment in reason(v, "require_upstream")


def test_require_upstream_unknown_or_not_configured() -> None:
    v = ev("1.4.2", f"{API}:1.4.3", CFG.env("staging"), file="envs/staging/a.yaml")
    assert status(v, "require_upstream") == "fail"
    assert "what dev runs was not read" in reason(v, "require_upstream")
    v = ev("1.4.2", f"{API}:1.4.3", upstream={})
    assert status(v, "require_upstream") == "skip"
    assert "requires no upstream environment" in reason(v, "require_upstream")


def test_prod_needs_staging_to_run_the_image_first() -> None:
    prod, now = CFG.env("prod"), THURSDAY
    kwargs = {"file": "envs/prod/api.yaml", "now": now}
    bad = ev("1.4.2", f"{API}:1.5.0", prod, upstream={API: {("1.4.2", None)}}, **kwargs)
    good = ev("1.4.2", f"{API}:1.5.0", prod, upstream={API: {("1.5.0", None)}}, **kwargs)
    assert not bad.allows_merge
    assert good.allows_merge


# --- freeze -------------------------------------------------------------------------------


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("now", "frozen"),
    [
        # Berlin is UTC+2 in May (CEST): Fri 15:00 local = 13:00 UTC.
        (utc(2026, 5, 8, 12, 59), False),
        (utc(2026, 5, 8, 13, 0), True),
        (utc(2026, 5, 8, 13, 30), True),
        (utc(2026, 5, 7, 13, 30), False),  # a Thursday
        (utc(2026, 5, 10, 21, 59), True),  # Sun 23:59 local, inclusive minute
        (utc(2026, 5, 10, 22, 0), False),  # Mon 00:00 local
        (utc(2026, 5, 8, 22, 30), False),  # Sat 00:30 local: before Saturday's 15:00
        (utc(2026, 5, 9, 13, 0), True),  # Sat 15:00 local
        # Berlin is UTC+1 in January (CET): 13:30 UTC is 14:30 local, outside.
        (utc(2026, 1, 9, 13, 30), False),
        (utc(2026, 1, 9, 14, 30), True),
        # The absolute window, 2026-12-20 00:00 +01:00 to 2027-01-04 00:00 +01:00.
        (utc(2026, 12, 17, 10, 0), False),  # a Thursday before it
        (utc(2026, 12, 29, 10, 0), True),  # a Tuesday: only the absolute window applies
        (utc(2027, 1, 3, 23, 0), False),  # Mon 00:00 local: both windows are over
        (datetime(2026, 5, 8, 15, 30, tzinfo=ZoneInfo("Europe/Berlin")), True),
        (datetime(2026, 5, 8, 9, 30, tzinfo=ZoneInfo("America/New_York")), True),
    ],
)
def test_prod_freeze_windows(now: datetime, frozen: bool) -> None:
    v = ev("1.4.2", f"{API}:1.4.3", CFG.env("prod"), file="envs/prod/a.yaml", now=now,
           upstream={API: {("1.4.3", None)}})
    assert status(v, "freeze") == ("fail" if frozen else "pass")
    assert v.allows_merge is not frozen


def test_absolute_window_start_is_inclusive_and_end_exclusive() -> None:
    cfg = load(b"version: 1\ndefaults:\n  freeze:\n"
               b"    - {start: '2026-12-21', end: '2027-01-04', tz: Europe/Berlin}\n")
    expected = [
        (utc(2026, 12, 20, 22, 59, 59), "pass"),
        (utc(2026, 12, 20, 23, 0), "fail"),  # Mon 2026-12-21 00:00 in Berlin
        (utc(2027, 1, 3, 22, 59, 59), "fail"),
        (utc(2027, 1, 3, 23, 0), "pass"),
    ]
    for now, outcome in expected:
        assert status(ev("1.4.2", f"{API}:1.4.3", cfg.defaults, now=now), "freeze") == outcome


def test_freeze_reasons_name_the_window_and_hold_no_clock() -> None:
    """The reason goes into the request's body: a time in it made every re-run during a
    freeze update the request (seen as a flaky e2e test on a Friday afternoon)."""
    v = ev("1.4.2", f"{API}:1.4.3", CFG.env("prod"), file="envs/prod/a.yaml",
           now=utc(2026, 5, 8, 14, 12))
    assert reason(v, "freeze") == (
        "inside the freeze window fri, sat, sun 15:00-23:59 Europe/Berlin; a human merges")
    later = ev("1.4.2", f"{API}:1.4.3", CFG.env("prod"), file="envs/prod/a.yaml",
               now=utc(2026, 5, 8, 14, 13))
    assert reason(later, "freeze") == reason(v, "freeze")
    v = ev("1.4.2", f"{API}:1.4.3", CFG.env("prod"), file="envs/prod/a.yaml",
           now=utc(2026, 12, 22, 9, 0))
    assert "inside the freeze window 2026-12-20T00:00:00+01:00 to 2027-01-04T00:00:00+01:00" in (
        reason(v, "freeze"))
    v = ev("1.4.2", f"{API}:1.4.3", CFG.env("prod"), file="envs/prod/a.yaml")
    assert reason(v, "freeze") == "outside all 2 freeze windows"
    assert status(ev("1.4.2", f"{API}:1.4.3"), "freeze") == "skip"


NIGHT = WeeklyFreeze(frozenset({4}), time(22, 0), time(6, 0), "Europe/Berlin")  # Fri night


@pytest.mark.parametrize(
    ("local", "frozen"),
    [
        ((2026, 5, 8, 21, 59), False),  # Fri before it opens
        ((2026, 5, 8, 22, 0), True),
        ((2026, 5, 8, 23, 59), True),
        ((2026, 5, 9, 0, 0), True),  # Sat morning, still Friday's window
        ((2026, 5, 9, 6, 0), True),  # 'to' is inclusive
        ((2026, 5, 9, 6, 1), False),
        ((2026, 5, 9, 23, 0), False),  # Sat night: Saturday is not listed
        ((2026, 5, 7, 23, 0), False),  # Thu night
        ((2026, 5, 8, 3, 0), False),  # Fri early morning belongs to Thursday's window
    ],
)
def test_a_window_that_crosses_midnight(local: tuple[int, ...], frozen: bool) -> None:
    now = datetime(*local, tzinfo=ZoneInfo("Europe/Berlin"))  # type: ignore[misc]
    assert NIGHT.contains(now) is frozen
    env = replace(CFG.env("dev"), freeze=(NIGHT,))
    assert status(ev("1.4.2", f"{API}:1.4.3", env, now=now), "freeze") == (
        "fail" if frozen else "pass")


def test_daylight_saving_transitions() -> None:
    # Sun 2026-10-25: Berlin's clocks go back from 03:00 CEST to 02:00 CET, so the local
    # hour 02:00-02:59 happens twice; both instants are inside a 02:00-02:59 window.
    window = WeeklyFreeze(frozenset({6}), time(2, 0), time(2, 59), "Europe/Berlin")
    assert window.contains(utc(2026, 10, 25, 0, 30))  # 02:30 CEST
    assert window.contains(utc(2026, 10, 25, 1, 30))  # 02:30 CET
    assert not window.contains(utc(2026, 10, 25, 2, 0))  # 03:00 CET
    # Sun 2026-03-29: 02:00 CET jumps to 03:00 CEST; the 02:xx hour never happens.
    spring = WeeklyFreeze(frozenset({6}), time(2, 0), time(2, 59), "Europe/Berlin")
    assert not spring.contains(utc(2026, 3, 29, 0, 59))  # 01:59 CET
    assert not spring.contains(utc(2026, 3, 29, 1, 0))  # 03:00 CEST
    # The same wall-clock window is a different UTC instant in summer and winter.
    five = WeeklyFreeze(frozenset(range(7)), time(17, 0), time(17, 59), "Europe/Berlin")
    assert five.contains(utc(2026, 7, 1, 15, 30))
    assert not five.contains(utc(2026, 12, 1, 15, 30))
    assert five.contains(utc(2026, 12, 1, 16, 30))


# --- paths_only ---------------------------------------------------------------------------


def test_paths_only() -> None:
    ref = parse(f"{API}:1.4.3")
    inside = found("1.4.2", str(ref), file="envs/dev/a/b.yaml")
    outside = found("1.4.2", str(ref), file="envs/prod/b.yaml")
    v = evaluate(plan_of(inside), CFG.env("dev"), images=[ref], now=THURSDAY, want_merge=True)
    assert status(v, "paths_only") == "pass"
    assert reason(v, "paths_only") == (
        "the changed file is inside environment dev's paths (envs/dev/**)")
    v = evaluate(plan_of(inside, outside), CFG.env("dev"), images=[ref], now=THURSDAY,
                 want_merge=True)
    assert status(v, "paths_only") == "fail"
    assert reason(v, "paths_only") == (
        "envs/prod/b.yaml is outside environment dev's paths (envs/dev/**)")
    assert not v.allows_merge
    # A changed file the plan carries without a Found counts too.
    sneaky = Plan(found=(inside,), files={inside.file: b"", ".promoter.yaml": b"widened"})
    v = evaluate(sneaky, CFG.env("dev"), images=[ref], now=THURSDAY, want_merge=True)
    assert status(v, "paths_only") == "fail"
    assert ".promoter.yaml" in reason(v, "paths_only")


def test_paths_only_lists_at_most_five() -> None:
    ref = parse(f"{API}:1.4.3")
    items = [found("1.4.2", str(ref), file=f"elsewhere/{i}.yaml") for i in range(8)]
    v = evaluate(plan_of(*items), CFG.env("dev"), images=[ref], now=THURSDAY, want_merge=True)
    assert reason(v, "paths_only").startswith("elsewhere/0.yaml, elsewhere/1.yaml")
    assert "and 3 more are outside" in reason(v, "paths_only")


# --- rollback_guard -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "rolled_back", "expected", "fragment"),
    [
        ("1.5.1", {}, "pass", "nothing was rolled back in environment dev"),
        ("1.5.1", {WEB: "1.5.0"}, "pass", "nothing was rolled back"),
        ("1.5.1", {API: "1.5.0"}, "pass", "1.5.1 is newer than 1.5.0, which was rolled back"),
        ("1.5.0", {API: "1.5.0"}, "fail", "rolled back away from 1.5.0; 1.5.0 is not newer"),
        ("1.4.9", {API: "1.5.0"}, "fail", "1.4.9 is not newer than it, so it waits until a human"),
        ("1.5.0", {API: f"1.5.0@{DIGEST_A}"}, "fail", "is not newer"),
        ("1.6.0", {API: f"1.5.0@{DIGEST_A}"}, "pass", "is newer"),
        (f"1.6.0@{DIGEST_A}", {API: f"1.5.0@{DIGEST_A}"}, "fail", "is not newer"),
        ("main-2", {API: "main-1"}, "fail", "cannot be ordered against it"),
        ("main-1", {API: "main-1"}, "fail", "is not newer"),
        (f"@{DIGEST_B}", {API: "1.5.0"}, "fail", "cannot be ordered"),
        (f"@{DIGEST_A}", {API: DIGEST_A}, "fail", "is not newer"),
    ],
)
def test_rollback_guard(new: str, rolled_back: dict[str, str], expected: str,
                        fragment: str) -> None:
    ref = f"{API}{new}" if new.startswith("@") else f"{API}:{new}"
    v = ev("1.4.0", ref, rolled_back=rolled_back)
    assert status(v, "rollback_guard") == expected
    assert fragment in reason(v, "rollback_guard")
    if expected == "fail":
        assert not v.allows_merge
        assert not v.refused  # a human may merge it


# --- rendering ----------------------------------------------------------------------------


def test_headline() -> None:
    assert policy.headline(ev("1.4.2", f"{API}:2.0.0")) == "a human merges: semver_bump"
    assert policy.headline(ev("1.4.2", f"{API}:1.4.3")) == "merge allowed"
    assert policy.headline(ev("1.4.2", f"{API}:1.4.1")).startswith("refused: no_downgrade")


def _cells(row: str) -> list[str]:
    """Split a table row on the pipes Markdown would split on (not the escaped ones)."""
    return re.split(r"(?<!\\)\|", row)[1:-1]


def test_render_markdown_table() -> None:
    md = render_markdown(ev("1.4.2", f"{API}:2.0.0"))
    lines = md.splitlines()
    assert lines[0] == "**Policy:** a human merges: semver\\_bump"
    assert lines[2:4] == ["| Check | Result | Why |", "|---|---|---|"]
    rows = lines[4:]
    assert len(rows) == len(policy.CHECKS)
    assert _cells(rows[2]) == [" semver\\_bump ", " ❌ fail ",
                               " 1.4.2 → 2.0.0 is a major step; this environment merges at "
                               "most minor steps by itself "]


def test_hostile_values_cannot_inject_markdown_or_html() -> None:
    hostile = "x|y`z`<img src=x onerror=alert(1)>\n| injected | row |\r\n[link](http://e)*em*$m$"
    cfg = load(f"version: 1\ndefaults:\n  allowed_tags: ['{hostile.replace(chr(10), '')}']\n"
               .replace("\r", "").encode())
    item = Found("envs/a.yaml", 1, 1, API, "image.tag", "set", "1.0.0", "1.0.1|<b>`x`", "1.0.0",
                 None)
    v = evaluate(plan_of(item), cfg.defaults, images=[], now=THURSDAY, want_merge=True)
    v = v.with_check(Check("checks_green", "fail", hostile))
    md = render_markdown(v)
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(v.checks)  # the header and one line per check, no extra rows
    for row in rows:
        assert len(_cells(row)) == 3, row
    assert "<" not in md
    assert ">" not in md
    assert "&lt;img src=x onerror=alert(1)&gt;" in md
    assert re.search(r"(?<!\\)`", md) is None
    assert re.search(r"(?<!\\)\[", md) is None
    assert re.search(r"(?<!\\)\*em", md) is None
    assert "\\|" in md
    assert policy.md_escape("a\rb\nc\u2028d") == "a b c d"


def test_rendering_redacts_secrets() -> None:
    from promoter import redact

    redact.register("s3cr3t-token-value")
    try:
        v = ev("1.4.2", f"{API}:1.4.3").with_check(
            Check("checks_green", "fail", "https://s3cr3t-token-value@ci.example/x failed"))
        assert "s3cr3t" not in render_markdown(v)
    finally:
        redact.clear()


# --- property: semver ordering against a simple model -------------------------------------

_LIMITS = [Bump.PATCH, Bump.MINOR, Bump.MAJOR]
versions = st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3),
                     st.one_of(st.none(), st.integers(0, 2)))


def _tag(v: tuple[int, int, int, int | None], prefix: bool) -> str:
    text = f"{'v' if prefix else ''}{v[0]}.{v[1]}.{v[2]}"
    return text if v[3] is None else f"{text}-rc.{v[3]}"


def _model_key(v: tuple[int, int, int, int | None]) -> tuple[int, int, int, int, int]:
    # A release sorts after each of its prereleases.
    return (v[0], v[1], v[2], 1 if v[3] is None else 0, v[3] or 0)


def _model_step(a: tuple[int, int, int, int | None], b: tuple[int, int, int, int | None]) -> int:
    for rank, i in ((Bump.MAJOR, 0), (Bump.MINOR, 1), (Bump.PATCH, 2), (Bump.PRERELEASE, 3)):
        if a[i] != b[i]:
            return rank
    return Bump.NONE


@settings(max_examples=400, deadline=None)
@given(old=versions, new=versions, limit=st.sampled_from(_LIMITS), allow_downgrade=st.booleans(),
       prefix_old=st.booleans(), prefix_new=st.booleans())
def test_semver_properties(old: tuple[int, int, int, int | None],
                           new: tuple[int, int, int, int | None], limit: Bump,
                           allow_downgrade: bool, prefix_old: bool, prefix_new: bool) -> None:
    env = EnvPolicy("dev", ("envs/dev/**",), auto_merge=True, max_auto_merge_bump=limit,
                    allow_downgrade=allow_downgrade)
    new_tag = _tag(new, prefix_new)
    ref: ImageRef = parse(f"{API}:{new_tag}")
    item = found(_tag(old, prefix_old), str(ref))
    v = evaluate(plan_of(item), env, images=[ref], now=THURSDAY, want_merge=True)
    if not item.changes:  # the same tag, spelled the same: nothing to judge
        assert status(v, "semver_bump") == status(v, "no_downgrade") == "skip"
        return

    downgrade = _model_key(new) < _model_key(old)
    small_enough = _model_step(old, new) <= limit
    assert v.refused is (downgrade and not allow_downgrade)
    assert status(v, "no_downgrade") == ("fail" if downgrade and not allow_downgrade else "pass")
    assert status(v, "semver_bump") == ("pass" if small_enough else "fail")
    assert v.allows_merge is (small_enough and not (downgrade and not allow_downgrade))


def test_each_written_value_is_judged_by_its_own_version() -> None:
    # a marker wrote 9.9.9-evil for the same image an --image promotes at 1.4.3: the
    # verdict judges the written value, not the --image argument
    good = found("1.4.2", f"{API}:1.4.3")
    evil = replace(found("1.4.2", "9.9.9-evil", file="envs/dev/b.yaml"), format="marker",
                   new_tag="9.9.9-evil")
    v = evaluate(plan_of(good, evil), CFG.env("dev"), images=[parse(f"{API}:1.4.3")],
                 now=THURSDAY, want_merge=True)
    assert status(v, "allowed_tags") == "fail"
    assert "'9.9.9-evil' matches none" in reason(v, "allowed_tags")
    assert status(v, "semver_bump") == "fail"
    assert not v.allows_merge
    v = evaluate(plan_of(evil), CFG.env("dev"), images=[parse(f"{API}:1.4.3")], now=THURSDAY,
                 want_merge=True, rolled_back={API: "9.9.9-evil"})
    assert status(v, "rollback_guard") == "fail"
    upstream = {API: {("1.4.3", None)}}
    v = evaluate(plan_of(evil), CFG.env("staging"), images=[parse(f"{API}:1.4.3")],
                 now=THURSDAY, want_merge=True, upstream=upstream)
    assert status(v, "require_upstream") == "fail"


def test_a_rollback_reports_the_real_allow_downgrade() -> None:
    for allowed in (False, True):
        env = replace(CFG.env("dev"), allow_downgrade=allowed)
        v = ev("1.5.0", f"{API}:1.4.9", env, rollback=True)
        assert not v.refused
        assert status(v, "no_downgrade") == "skip"
        assert f"allow_downgrade: {'true' if allowed else 'false'})" in reason(v, "no_downgrade")
        assert v.allows_merge
