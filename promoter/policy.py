"""Plan + policy + context -> Verdict: each check passes, fails or is skipped, and why.

Pure: no network, no clock (``now`` is passed in), no environment reads.

    auto_merge_enabled  the policy allows auto-merge and a merge is wanted
    allowed_tags        every new tag fully matches one allowed_tags pattern
    semver_bump         the step from the running tag to the new one <= max_auto_merge_bump
    no_downgrade        no lower semver than what runs (else REFUSED outright)
    require_upstream    the upstream environment already runs the same tag (and digest)
    freeze              ``now`` is outside every freeze window
    paths_only          every changed file lies inside the environment's paths
    rollback_guard      after a rollback away from X, nothing <= X merges by itself
    checks_green        added later by the orchestrator with ``Verdict.with_check``

Each check is one function ``(Facts) -> Finding`` and one row of ``RULES``; ``evaluate``
builds ``Facts`` once (the version steps parsed once) and runs the rows in order.

``allows_merge`` = a merge was wanted and no check failed. ``refused`` = a proven
downgrade the policy does not allow: do not even propose it (whether or not a merge was
wanted). Any other failing check only means a human merges.

Fail closed: each written value (every change of the plan) is judged by its own new
value, never by another reference's. A check that applies but cannot tell (no tag to
match, a step or an order that cannot be measured, a ``--set`` value that is no image
reference) FAILS; SKIP only means the policy makes the check not apply here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, get_args

from promoter.config import BUILTIN, EnvPolicy
from promoter.errors import PromoteError
from promoter.images import (
    Bump,
    ImageRef,
    Version,
    bump,
    leading_zero,
    order_version,
    parse_version,
    try_parse,
    valid_digest,
)
from promoter.jsontypes import JSONObject
from promoter.plan import Found, Plan
from promoter.redact import redact
from promoter.text import md

Status = Literal["pass", "fail", "skip"]
PASS: Status = "pass"  # noqa: S105 - a check status, not a password
FAIL: Status = "fail"
SKIP: Status = "skip"
STATUSES: tuple[Status, ...] = get_args(Status)

_STEP_NAMES = {
    Bump.NONE: "no",
    Bump.PRERELEASE: "a prerelease",
    Bump.PATCH: "a patch",
    Bump.MINOR: "a minor",
    Bump.MAJOR: "a major",
}
_BUMP_WORDS = {Bump.PATCH: "patch", Bump.MINOR: "minor", Bump.MAJOR: "major"}


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    reason: str
    refuses: bool = False  # a failure that refuses the promotion outright (not in the JSON)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise PromoteError(
                f"internal error: check status {self.status!r} is not one of {', '.join(STATUSES)}"
            )
        if self.refuses and self.status != FAIL:
            raise PromoteError(f"internal error: check {self.name} refuses but did not fail")

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "reason": self.reason}


@dataclass(frozen=True)
class Verdict:
    checks: tuple[Check, ...]
    refused: bool  # refused outright: do not even propose
    allows_merge: bool  # a merge was wanted and every check passed or was skipped
    want_merge: bool = True

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.failed)

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def with_check(self, check: Check) -> Verdict:
        """This verdict with ``check`` added (or replacing one of the same name), e.g. the
        orchestrator's ``checks_green``; allows_merge is recomputed."""
        names = [c.name for c in self.checks]
        if check.name in names:
            checks = tuple(check if c.name == check.name else c for c in self.checks)
        else:
            checks = (*self.checks, check)
        allows = self.want_merge and not self.refused and not any(c.failed for c in checks)
        return replace(self, checks=checks, allows_merge=allows)

    def to_json(self) -> JSONObject:
        return {
            "allows_merge": self.allows_merge,
            "refused": self.refused,
            "want_merge": self.want_merge,
            "checks": [c.to_json() for c in self.checks],
        }


# --- evaluation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One image moving from what runs to what is promoted (deduplicated across files)."""

    key: str  # canonical repository name
    shown: str  # familiar name for messages
    old_tag: str | None
    old_digest: str | None
    new_tag: str | None
    new_digest: str | None
    opaque: bool = False  # a --set value that is no image reference: nothing can judge it


Upstream = Mapping[str, Set[tuple[str | None, str | None]]]


@dataclass(frozen=True)
class Facts:
    """Everything a check may read: one value, the same for every check (see ``evaluate``
    for what each field means). ``steps`` are built once from the plan."""

    plan: Plan
    steps: tuple[Step, ...]
    policy: EnvPolicy
    now: datetime
    want_merge: bool
    upstream: Upstream | None = None
    rolled_back: Mapping[str, str] = field(default_factory=dict)
    rollback: bool = False


@dataclass(frozen=True)
class Finding:
    """What a check function says: pass, fail or skip, and why. ``refuses``: the failure
    refuses the promotion outright (nothing is proposed), not only its merge."""

    status: Status
    reason: str
    refuses: bool = False


@dataclass(frozen=True)
class Rule:
    """One row of ``RULES``: a check's name (in reports and JSON) and its function."""

    name: str
    judge: Callable[[Facts], Finding]

    def run(self, facts: Facts) -> Check:
        found = self.judge(facts)
        return Check(self.name, found.status, found.reason, found.refuses)


def evaluate(
    plan: Plan,
    policy: EnvPolicy | None,
    *,
    images: Sequence[ImageRef],
    now: datetime,
    want_merge: bool,
    upstream: Upstream | None = None,
    rolled_back: Mapping[str, str] | None = None,
    rollback: bool = False,
) -> Verdict:
    """Judge ``plan`` under ``policy``: every row of ``RULES``, in order.

    ``policy``: the environment's policy (``Config.env`` / ``select``, possibly
    ``tighten``-ed), ``config.defaults``, or None when there is no .promoter.yaml (the
    built-in policy). ``images``: the new references (``promoter.images.ImageRef``) being
    promoted. ``now``: timezone-aware. ``want_merge``: the policy's auto_merge or the
    caller's ``--auto-merge``; a wish the policy does not grant fails
    ``auto_merge_enabled`` (flags only tighten). ``upstream``: image name -> the
    (tag, digest) pairs the ``require_upstream`` environment runs (None: not read).
    ``rolled_back``: image name -> the version (``ImageRef.version``) a rollback in
    this environment moved away from. ``rollback``: the plan is a rollback, a deliberate
    return to an earlier version, which no_downgrade does not stop (the policy itself,
    allow_downgrade included, is reported as it is)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise PromoteError("internal error: evaluate() needs a timezone-aware 'now'")
    facts = Facts(plan, _steps(plan, images), policy if policy is not None else BUILTIN,
                  now, want_merge, upstream, rolled_back or {}, rollback)
    checks = tuple(rule.run(facts) for rule in RULES)
    refused = any(c.refuses for c in checks)
    allows = want_merge and not refused and not any(c.failed for c in checks)
    return Verdict(checks, refused, allows, want_merge)


def _steps(plan: Plan, images: Sequence[ImageRef]) -> tuple[Step, ...]:
    """One step per written value, judged by that value's own new version (never by
    another reference's: a ``--marker`` or ``--set`` value is checked for what it writes).
    ``images`` only give familiar names for messages."""
    shown_as = {ref.name: ref.familiar for ref in images}
    out: dict[Step, None] = {}
    for found in plan.changes:
        if found.format == "set":
            out[_set_step(found)] = None
            continue
        tag, digest = found.new_tag, found.new_digest
        if tag is None and digest is None:  # a Found made without them: read the value
            tag, digest = _read_new(found.new, found.image)
        shown = shown_as.get(found.image, found.image)
        out[Step(found.image, shown, found.old_tag, found.old_digest, tag, digest)] = None
    return tuple(out)


def _set_step(found: Found) -> Step:
    """A ``--set`` value: judged as an image only when it is a whole reference with a tag
    or digest (and so is the value it replaces); anything else is opaque, and every
    image check fails closed on it."""
    new, old = try_parse(found.new), try_parse(found.old)
    where = f"--set {found.file}:{found.field}"
    if new is None or not (new.tag or new.digest) or (old is not None and old.name != new.name):
        return Step(where, where, None, None, None, None, opaque=True)
    old_tag = old.tag if old is not None else None
    old_digest = old.digest if old is not None else None
    return Step(new.name, new.familiar, old_tag, old_digest, new.tag, new.digest)


def _read_new(value: str, image: str) -> tuple[str | None, str | None]:
    """The new (tag, digest) from a whole reference to ``image``, or a bare digest."""
    if valid_digest(value):
        return None, value
    ref = try_parse(value)
    if ref is not None and ref.name == image:
        return ref.tag, ref.digest
    return None, None


def _desc(policy: EnvPolicy) -> str:
    return policy.describe()


def _combine(parts: list[tuple[Status, str]], *, refuses: bool = False) -> Finding:
    """Fold per-image results into one finding: any fail fails (and only the failures are
    told), else any pass passes."""
    statuses = {status for status, _ in parts}
    status = FAIL if FAIL in statuses else PASS if PASS in statuses else SKIP
    reasons = [r for s, r in parts if status != FAIL or s == FAIL]
    return Finding(status, "; ".join(dict.fromkeys(reasons)) or "nothing changes", refuses)


def _q(text: str) -> str:
    """Quote a value for a reason, as written (no doubled backslashes), on one line."""
    return "'" + "".join(c if c.isprintable() else "?" for c in text) + "'"


def _label(step: Step, many: bool) -> str:
    return f"{step.shown}: " if many else ""


def _many(steps: Iterable[Step]) -> bool:
    return len({s.key for s in steps}) > 1


def _ver(tag: str | None, digest: str | None) -> str:
    short = None
    if digest:
        algo, _, hexpart = digest.partition(":")
        short = f"{algo}:{hexpart[:12]}" if len(hexpart) > 12 else digest
    if tag and short:
        return f"{tag}@{short}"
    return tag or short or "(untagged)"


def _auto_merge_enabled(facts: Facts) -> Finding:
    policy, want = facts.policy, facts.want_merge
    if policy.draft:
        return Finding(FAIL, "the request opens as a draft; a human merges")
    if not policy.configured:
        if want:
            return Finding(PASS, "no .promoter.yaml; the caller asked for auto-merge")
        return Finding(FAIL, "no .promoter.yaml and auto-merge not asked for; a human merges")
    desc = _desc(policy)
    if policy.auto_merge and want:
        return Finding(PASS, f"{desc} allows auto-merge (auto_merge: true)")
    if policy.auto_merge:
        return Finding(FAIL, "auto-merge was turned off for this promotion; a human merges")
    if want:
        return Finding(
            FAIL,
            f"auto-merge was asked for, but {desc} has auto_merge: false and flags cannot "
            "loosen the policy; a human merges",
        )
    return Finding(FAIL, f"{desc} has auto_merge: false; a human merges")


_OPAQUE = "is not an image reference, so no image check can judge it; a human merges"


def _allowed_tags(facts: Facts) -> Finding:
    policy, steps = facts.policy, facts.steps
    if policy.allowed_tags is None:
        return Finding(SKIP, f"{_desc(policy)} sets no allowed_tags; any tag may be proposed")
    if not steps:
        return Finding(SKIP, "nothing changes")
    many = _many(steps)
    shown = ", ".join(_q(p.pattern) for p in policy.allowed_tags)
    parts: list[tuple[Status, str]] = []
    for step in {(s.key, s.new_tag, s.new_digest): s for s in steps}.values():
        label = _label(step, many)
        tag = step.new_tag
        if step.opaque:
            parts.append((FAIL, f"{step.shown} {_OPAQUE}"))
            continue
        if tag is None:
            parts.append((FAIL, f"{label}{_ver(None, step.new_digest)} carries no tag, and "
                          f"{_desc(policy)} allows only tags matching {shown}; a human merges"))
            continue
        hit = next((p for p in policy.allowed_tags if p.fullmatch(tag)), None)
        if hit is not None:
            parts.append((PASS, f"{label}tag {_q(tag)} matches {_q(hit.pattern)}"))
        else:
            parts.append((FAIL, f"{label}tag {_q(tag)} matches none of allowed_tags ({shown})"))
    return _combine(parts)


def _semver_bump(facts: Facts) -> Finding:
    policy, steps = facts.policy, facts.steps
    if not steps:
        return Finding(SKIP, "nothing changes")
    limit = policy.max_auto_merge_bump
    who = "this environment" if policy.configured else "without .promoter.yaml, a promotion"
    many = _many(steps)
    parts: list[tuple[Status, str]] = []
    for step in steps:
        label = _label(step, many)
        if step.opaque:
            parts.append((FAIL, f"{step.shown} {_OPAQUE}"))
            continue
        if step.new_tag is None:
            parts.append((FAIL, f"{label}{_ver(None, step.new_digest)} carries no tag, so the "
                          "version step cannot be measured; a human merges"))
            continue
        if step.old_tag is None:
            parts.append(
                (
                    FAIL,
                    f"{label}no tag is set now"
                    + (f" (only {_ver(None, step.old_digest)})" if step.old_digest else "")
                    + f", so the step to {step.new_tag} cannot be measured; a human merges",
                )
            )
            continue
        old, new = parse_version(step.old_tag), parse_version(step.new_tag)
        arrow = f"{step.old_tag} → {step.new_tag}"
        if old is None or new is None:
            zeros = [t for t in (step.old_tag, step.new_tag) if leading_zero(t)]
            why = (f" ({zeros[0]} has a leading zero, which semantic versioning forbids)"
                   if zeros else "")
            parts.append((FAIL, f"{label}{arrow} is not a semantic version step{why}; "
                                "a human merges"))
            continue
        step_kind = bump(old, new)
        if step_kind == Bump.NONE:
            parts.append((PASS, f"{label}{arrow}: the same version"))
            continue
        what = f"{label}{arrow} is {_STEP_NAMES[step_kind]} step" + (" down" if new < old else "")
        if step_kind <= limit:
            parts.append((PASS, f"{what}; at most {_BUMP_WORDS[limit]} steps merge by themselves"))
        else:
            parts.append(
                (FAIL, f"{what}; {who} merges at most {_BUMP_WORDS[limit]} steps by itself")
            )
    return _combine(parts)


def _no_downgrade(facts: Facts) -> Finding:
    """A proven downgrade the policy does not allow refuses the promotion outright.
    Versions that cannot be ordered fail the check for auto-merge but are proposed for
    a human."""
    policy, steps = facts.policy, facts.steps
    if not steps:
        return Finding(SKIP, "nothing changes")
    if facts.rollback:
        allowed = "true" if policy.allow_downgrade else "false"
        return Finding(SKIP, "a rollback restores an earlier version on purpose; "
                       f"no_downgrade does not apply to it ({_desc(policy)} has "
                       f"allow_downgrade: {allowed})")
    many = _many(steps)
    parts: list[tuple[Status, str]] = []
    proven = False
    for step in steps:
        label = _label(step, many)
        if step.opaque:
            parts.append((FAIL, f"{step.shown} {_OPAQUE}"))
            continue
        # ordered also with leading zeros (01.0.0), so a downgrade cannot hide behind them
        old, new = order_version(step.old_tag), order_version(step.new_tag)
        arrow = f"{_ver(step.old_tag, step.old_digest)} → {_ver(step.new_tag, step.new_digest)}"
        if old is None or new is None:
            if step.old_tag is not None and step.old_tag == step.new_tag:
                parts.append((PASS, f"{label}{arrow}: the same tag"))
            elif policy.allow_downgrade:
                parts.append((SKIP, f"{label}{arrow}: not ordered, and downgrades are allowed "
                              "(allow_downgrade: true)"))
            else:
                parts.append((FAIL, f"{label}{arrow}: not semantic versions on both sides, "
                              "so a downgrade cannot be ruled out; a human merges"))
        elif new >= old:
            parts.append((PASS, f"{label}{arrow} is not a downgrade"))
        elif policy.allow_downgrade:
            parts.append((PASS, f"{label}{arrow} is a downgrade, allowed (allow_downgrade: true)"))
        else:
            proven = True
            parts.append(
                (
                    FAIL,
                    f"{label}{step.old_tag} → {step.new_tag} is a downgrade; {_desc(policy)} "
                    "refuses downgrades (allow_downgrade: false), so nothing is proposed",
                )
            )
    return _combine(parts, refuses=proven)


def _require_upstream(facts: Facts) -> Finding:
    """Passes when the upstream environment runs the new tag and digest. A tag-only
    promotion of a tag the upstream runs pinned to a digest fails: it would drop the pin
    (promote ``repo:tag@digest``, or ``--from``, which carries the digest over)."""
    policy, steps, upstream = facts.policy, facts.steps, facts.upstream
    env = policy.require_upstream
    if env is None:
        return Finding(SKIP, f"{_desc(policy)} requires no upstream environment")
    if not steps:
        return Finding(SKIP, "nothing changes")
    if upstream is None:
        return Finding(FAIL, f"what {env} runs was not read; a human merges")
    many = _many(steps)
    parts: list[tuple[Status, str]] = []
    for step in {(s.key, s.new_tag, s.new_digest): s for s in steps}.values():
        label = _label(step, many)
        wanted = _ver(step.new_tag, step.new_digest)
        running = upstream.get(step.key) or set()
        same = [(tag, digest) for tag, digest in running
                if (step.new_tag is None or tag == step.new_tag)
                and (step.new_digest is None or digest == step.new_digest)]
        if step.opaque:
            parts.append((FAIL, f"{step.shown} {_OPAQUE}"))
        elif step.new_tag is None and step.new_digest is None:
            parts.append((FAIL, f"{label}no tag or digest to look for in {env}"))
        elif not running:
            parts.append(
                (FAIL, f"{label}{env} does not run {step.shown}; promote {wanted} there first")
            )
        elif any(step.new_digest is not None or digest is None for _, digest in same):
            parts.append((PASS, f"{label}{env} already runs {wanted}"))
        elif same:
            pinned = sorted((str(t), str(d)) for t, d in same)
            shown = ", ".join(_ver(t, d) for t, d in pinned)
            tag, digest = pinned[0]
            parts.append((FAIL, f"{label}{env} runs {shown}, pinned to a digest; {wanted} "
                          f"without it would drop the pin: promote {step.shown}:{tag}@{digest} "
                          f"(or --from {env}, which carries the digest over)"))
        else:
            there = ", ".join(sorted(_ver(t, d) for t, d in running))
            parts.append(
                (FAIL, f"{label}{env} runs {there}, not {wanted}; promote it to {env} first")
            )
    return _combine(parts)


def _freeze(facts: Facts) -> Finding:
    policy = facts.policy
    if not policy.freeze:
        return Finding(SKIP, f"{_desc(policy)} has no freeze windows")
    for window in policy.freeze:
        if window.contains(facts.now):
            return Finding(FAIL, f"inside the freeze window {window.describe()}; a human merges")
    # no clock in any reason: the PR/MR body must not change between re-runs (a time
    # in it made every re-run during a freeze update the request)
    count = len(policy.freeze)
    plural = "the freeze window" if count == 1 else f"all {count} freeze windows"
    return Finding(PASS, f"outside {plural}")


def _paths_only(facts: Facts) -> Finding:
    policy, plan = facts.policy, facts.plan
    if not policy.paths:
        return Finding(SKIP, f"{_desc(policy)} owns no paths")
    files = list(dict.fromkeys([*(f.file for f in plan.changes), *plan.touched]))
    if not files:
        return Finding(SKIP, "nothing changes")
    globs = ", ".join(policy.paths)
    through = {alias: path for path, aliases in plan.aliases.items() for alias in aliases}
    outside = [f"{f} (a link to {through[f]})" if f in through else f
               for f in files if not policy.matches(f)]
    if outside:
        shown = ", ".join(outside[:5]) + (
            f" and {len(outside) - 5} more" if len(outside) > 5 else ""
        )
        verb = "is" if len(outside) == 1 else "are"
        return Finding(FAIL, f"{shown} {verb} outside {_desc(policy)}'s paths ({globs})")
    count = "the changed file is" if len(files) == 1 else f"all {len(files)} changed files are"
    return Finding(PASS, f"{count} inside {_desc(policy)}'s paths ({globs})")


def _split_version(text: str) -> tuple[str | None, str | None]:
    tag, at, digest = text.partition("@")
    if at:
        return tag or None, digest or None
    if valid_digest(text):
        return None, text
    return text, None


def _rollback_guard(facts: Facts) -> Finding:
    steps, rolled_back = facts.steps, facts.rolled_back
    hits = [s for s in steps if s.key in rolled_back]
    if not hits:
        return Finding(PASS, f"nothing was rolled back in {_desc(facts.policy)}")
    many = _many(steps)
    parts: list[tuple[Status, str]] = []
    for step in {(s.key, s.new_tag, s.new_digest): s for s in hits}.values():
        label = _label(step, many)
        away = rolled_back[step.key]
        bad_tag, bad_digest = _split_version(away)
        new = _ver(step.new_tag, step.new_digest)
        newer = _newer(step.new_tag, step.new_digest, bad_tag, bad_digest)
        if newer:
            parts.append((PASS, f"{label}{new} is newer than {away}, which was rolled back"))
        else:
            why = "is not newer than" if newer is False else "cannot be ordered against"
            parts.append(
                (
                    FAIL,
                    f"{label}{step.shown} was rolled back away from {away}; {new} {why} it, "
                    "so it waits until a human merges",
                )
            )
    return _combine(parts)


def _newer(
    tag: str | None, digest: str | None, bad_tag: str | None, bad_digest: str | None
) -> bool | None:
    """True when (tag, digest) is provably newer than the rolled-back version, False when
    provably not, None when they cannot be ordered."""
    if digest is not None and digest == bad_digest:
        return False
    new: Version | None = order_version(tag)
    old: Version | None = order_version(bad_tag)
    if new is not None and old is not None:
        return new > old
    if tag is not None and tag == bad_tag:
        return False
    return None


# --- the checks: a new one is its function above, one row here, and its config key ---------

RULES: tuple[Rule, ...] = (
    Rule("auto_merge_enabled", _auto_merge_enabled),
    Rule("allowed_tags", _allowed_tags),
    Rule("semver_bump", _semver_bump),
    Rule("no_downgrade", _no_downgrade),
    Rule("require_upstream", _require_upstream),
    Rule("freeze", _freeze),
    Rule("paths_only", _paths_only),
    Rule("rollback_guard", _rollback_guard),
)
CHECKS = tuple(rule.name for rule in RULES)  # in report and JSON order


# --- rendering --------------------------------------------------------------------------

_MARKS = {PASS: "✅ pass", FAIL: "❌ fail", SKIP: "⏭️ skip"}


def headline(verdict: Verdict) -> str:
    failed = [c.name for c in verdict.failed]
    if verdict.refused:
        return "refused: " + ", ".join(failed)
    if verdict.allows_merge:
        return "merge allowed"
    if not verdict.want_merge:
        return "a human merges (auto-merge not wanted)"
    return "a human merges: " + ", ".join(failed)


def render_markdown(verdict: Verdict) -> str:
    """A Markdown table for a PR/MR body; every cell is escaped, so a hostile tag or
    pattern cannot inject Markdown or HTML."""
    lines = [
        f"**Policy:** {md_escape(headline(verdict))}",
        "",
        "| Check | Result | Why |",
        "|---|---|---|",
    ]
    for c in verdict.checks:
        result = _MARKS.get(c.status, md_escape(c.status))
        lines.append(f"| {md_escape(c.name)} | {result} | {md_escape(c.reason)} |")
    return redact("\n".join(lines)) + "\n"


# what the policy table escapes: Markdown's own marks (the text is redacted afterwards,
# so a secret's other punctuation must stay as it is for redaction to find it)
_MD_PUNCT = frozenset("\\`*_[]!|~$")


def md_escape(text: str) -> str:
    """Text safe inside a Markdown table cell (``promoter.text.md``)."""
    return md(text, _MD_PUNCT)
