"""One promotion, the same way for every forge.

    snapshot(base) -> config (from the BASE branch) -> plan -> verdict
      -> no-op: close a now-pointless request, done
      -> refused (downgrade): report, nothing proposed
      -> dry run: report, nothing written
      -> ensure branch (one commit; none when a tip proves the plan already)
      -> ensure request (open or update; one per branch)
      -> merge / auto-merge when the verdict allows it, redone on a moved base

Idempotency, clean-up and races are handled here once; the forges only do single
steps. Side effects (forge, clock, sleep) are injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from promoter import config as config_mod
from promoter import policy as policy_mod
from promoter import proof
from promoter.errors import (
    BranchExists,
    ConflictError,
    PolicyRefused,
    PromoteError,
)
from promoter.forges.base import (
    LINK_MODE,
    ChecksState,
    Forge,
    Head,
    MergeMethod,
    PullRequest,
    RequestSpec,
    Snapshot,
    check_policy_entry,
)
from promoter.history import HistoryEntry, history, rollback_request, rolled_back_versions
from promoter.images import ImageRef, parse_version, try_parse
from promoter.outcome import Closed, Outcome, Proposed
from promoter.paths import CONFIG_FILE
from promoter.plan import Plan
from promoter.report import (
    TRAILER_ENV,
    TRAILER_FINGERPRINT,
    TRAILER_IMAGE,
    TRAILER_PREVIOUS,
    TRAILER_ROLLBACK,
    ImageChange,
    image_changes,
    texts,
    trailers,
)
from promoter.selection import (
    Request,
    branch_name,
    plan_quietly,
    prepare,
    selector,
    targets_for,
    upstream_versions,
    versions_in,
)

# re-exported: callers of the orchestration use these with it
__all__ = ["Effects", "HistoryEntry", "Request", "branch_name", "ensure_branch",
           "ensure_request", "history", "policy_file", "prepare", "rollback_request",
           "rolled_back_versions", "run", "selector", "targets_for"]

MAX_RACE_ATTEMPTS = 5
POLL_INTERVAL = 10.0
NONE_GRACE = 15.0  # seconds "no checks" must last before it counts as "no CI here"


@dataclass(frozen=True)
class Effects:
    """The outside world, injected so tests run with a fake clock."""

    now: Callable[[], datetime]
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    log: Callable[[str], None] = lambda _: None  # --verbose: one line per step


# --- the run ------------------------------------------------------------------------------


def run(forge: Forge, request: Request, provenance: Mapping[str, str | None],
        provenance_trailers: Sequence[tuple[str, str]], effects: Effects) -> Outcome:
    """Promote, and return what was done. Raises PromoteError subclasses."""
    written: set[str] = set()  # commits this run made, across its attempts
    for attempt in range(1, MAX_RACE_ATTEMPTS + 1):
        try:
            return _run_once(forge, request, provenance, provenance_trailers, effects, written)
        except _BaseMoved:
            if attempt == MAX_RACE_ATTEMPTS:
                raise ConflictError(
                    f"the base branch kept moving; gave up after {attempt} attempts",
                    hint="run the promotion again") from None
    raise AssertionError("unreachable")


class _BaseMoved(Exception):
    """The merge lost a race with another commit on the base: plan again on the new base."""


def _run_once(forge: Forge, request: Request, provenance: Mapping[str, str | None],
              provenance_trailers: Sequence[tuple[str, str]], effects: Effects,
              written: set[str]) -> Outcome:
    say = effects.log
    # the branch name depends on the images' names only, so it is known before the
    # snapshot: a forge may read the branch and its request in the same round trip
    snap = forge.snapshot(request.base, branch_name(request))
    say(f"base {snap.branch} at {snap.commit[:12]}: {len(snap.files)} files")
    config = config_mod.load(policy_file(snap))
    env = config.env(request.env) if request.env else None
    if request.from_env:
        request = replace(request, images=versions_in(snap.files, config, request))
    plan = prepare(snap.files, request, config, env, snap.links)
    # the policy: --env's, else the environment that owns the changed files (a change
    # spanning several is refused), else the defaults; flags only tighten it
    policy = config_mod.tighten(
        config_mod.select(config, env=request.env, files=plan.touched),
        auto_merge=True if request.auto_merge else None, draft=request.draft or None,
        labels=request.labels, reviewers=request.reviewers, assignees=request.assignees)
    upstream = upstream_versions(snap.files, request, config, policy)
    changes = image_changes(plan, request.images)
    say(f"plan: {len(plan.changes)} change(s) in {len(plan.files)} file(s); policy "
        f"{policy.name}")
    want_merge = policy.auto_merge
    now = effects.now()
    rollback = bool(request.rollback_of)  # a deliberate downgrade: no_downgrade says so
    verdict = policy_mod.evaluate(plan, policy, images=list(request.images), now=now,
                                  upstream=upstream, want_merge=want_merge, rollback=rollback)
    if verdict.allows_merge and policy.name in config.environments \
            and not rollback and not plan.noop:
        # the rollback guard reads history: only worth a request when a merge is on
        rolled_back = rolled_back_versions(forge, snap.branch, policy.name, request.images)
        verdict = policy_mod.evaluate(plan, policy, images=list(request.images), now=now,
                                      upstream=upstream, want_merge=want_merge,
                                      rolled_back=rolled_back)
    branch = branch_name(request)
    done = Outcome(forge=forge.name, base=snap.branch, base_commit=snap.commit,
                   env=request.env, images=request.images, plan=plan, branch=branch,
                   verdict=verdict, provenance=provenance)
    if plan.noop:
        return _up_to_date(forge, request, snap, plan, done, changes)
    if verdict.refused:
        done = replace(done, status="refused", message="policy refused the promotion: " +
                       "; ".join(c.reason for c in verdict.checks if c.status == "fail"))
        done = _withdraw(forge, branch, snap.branch, written, done, "the policy now refuses it")
        if request.require_merge:
            raise _with(PolicyRefused(done.message or ""), done)
        return done
    if request.dry_run:
        return replace(done, status="dry-run",
                       message=f"dry run: would commit {len(plan.files)} file(s) to {branch}")

    settings = policy
    said = texts(config.templates, changes, plan, request.env, provenance,
                 provenance_trailers, policy_mod.render_markdown(verdict),
                 [f"{c.status} {c.name}: {c.reason}" for c in verdict.checks],
                 rollback_of=request.rollback_of, limit=forge.body_limit)
    message = said.message
    spec = RequestSpec(
        title=said.title,
        body=said.body,
        labels=settings.labels,
        reviewers=settings.reviewers,
        assignees=settings.assignees,
        draft=settings.draft,
    )
    # who the commits of this run are by, and whether they are signed: refused here,
    # before anything is written, when signing is asked for and not possible
    forge.use_identity(request.author or config.author, sign=request.sign or config.signing)
    known = None if verdict.allows_merge else _disarm(forge, branch, snap.branch)
    try:
        guard = () if rollback else request.images
        commit, created_branch, new_commit = ensure_branch(
            forge, branch, snap, plan, message, guard,
            lambda refs: plan_quietly(snap.files, replace(request, images=refs), config, env,
                                       snap.links))
    except _Superseded as newer:
        done = replace(done, status="superseded",
                       message=f"a newer promotion is already proposed on {branch} "
                               f"({newer.ref}); nothing to do")
        done = _withdraw(forge, branch, snap.branch, written, done,
                         f"{newer.ref} supersedes it")
        if request.require_merge:
            raise _with(PolicyRefused(done.message or ""), done) from None
        return done
    say(f"branch {branch} at {commit[:12]} ({'new commit' if new_commit else 'reused'})")
    if new_commit:
        written.add(commit)
    done = replace(done, commit=commit, verified=forge.commit_verified(commit))
    # straight to the forge's auto-merge after opening (see _merge): labels may ride along
    auto_merge_next = (verdict.allows_merge and settings.wait_for_checks
                       and request.merge_timeout <= 0)
    try:
        # a request found before a new commit may be gone since (a forge that declines it
        # when the rebuild deletes its branch): then it is looked for again
        pr, created, updated = ensure_request(forge, branch, snap, spec, created_branch,
                                              auto_merge_next,
                                              None if new_commit else known)
    except PromoteError as error:
        if created_branch:
            forge.delete_branch(branch)  # leave nothing half-made behind
        if isinstance(error, ConflictError):  # another run's request got in the way:
            raise _BaseMoved from None  # plan again (it may have merged this very change)
        raise
    updated = not created and (updated or new_commit)
    if created or updated:  # auto-merge is (re)armed with this run's commit and message
        pr = replace(pr, auto_merge=None)
    verb = "opened" if created else "updated" if updated else "unchanged, already proposed:"
    done = replace(done, pull_request=Proposed(pr.url, pr.number, created, updated),
                   status="proposed", message=f"{verb} {pr.url}")
    say(f"request {pr.url}: {'created' if created else 'updated' if updated else 'unchanged'}"
        f"; policy {'allows' if verdict.allows_merge else 'does not allow'} a merge")
    if verdict.allows_merge:
        if created_branch and not forge.branch_is_request:
            _base_unmoved(forge, pr, snap)
        return _merge(forge, pr, commit, message, settings, request, done, effects)
    if want_merge or request.require_merge:
        failed = ", ".join(c.name for c in verdict.checks if c.status == "fail")
        done = done.said(f"left for review (policy: {failed})")
        if request.require_merge:
            raise _with(PolicyRefused(f"policy refused the merge ({failed}); the request "
                                      f"stays open: {pr.url}"), done)
        return done
    return done.said("left for review")


def _disarm(forge: Forge, branch: str, base: str) -> PullRequest | None:
    """Take back an auto-merge armed on the open request of ``branch`` before this run
    writes to it: the forges keep it armed across pushes, so one an earlier run armed
    (its policy allowed 1.1.0) would merge what this run leaves to a human (2.0.0).
    Returns that request (ensure_request need not look for it again). A forge that never
    arms an auto-merge (``arms_auto_merge = False``) is not asked."""
    if not forge.arms_auto_merge:
        return None
    pr = forge.find_request(branch, base)
    if pr is None:
        return None
    forge.disable_auto_merge(pr)
    return replace(pr, auto_merge=None)


def policy_file(snap: Snapshot) -> bytes | None:
    """``.promoter.yaml`` of the base, or None when the base tree has no such path. A
    policy file that is a link is refused (exit 2): never run on built-in defaults while
    the repo holds a policy (the forges refuse directories and submodules likewise)."""
    target = snap.links.get(CONFIG_FILE)
    if target is not None:
        check_policy_entry(LINK_MODE, target)
    return snap.files.get(CONFIG_FILE)


def ensure_branch(forge: Forge, branch: str, snap: Snapshot, plan: Plan, message: str,
                  images: Sequence[ImageRef] = (),
                  plan_for: Callable[[tuple[ImageRef, ...]], Plan | None] = lambda _: None,
                  ) -> tuple[str, bool, bool]:
    """One commit holding the plan on ``branch``: (sha, branch created, new commit).

    A tip is reused only when it is proved: its only parent is the base and it changes
    exactly the plan's files to exactly the plan's bytes (``proof.holds``), and its
    message records the same promotion (``same_record``). Trailers prove nothing. A
    tip that proves a higher version of the same image (planned again here from its
    trailers, ``plan_for``) is never replaced by a lower one (_Superseded). A tip on
    this base that says it is a promotion but proves nothing is someone else's commit:
    exit 5 naming it. A promoter-looking tip on an older base is rebuilt on this one.
    When another run wrote the branch between our read and our write, the whole
    promotion is planned again (_BaseMoved), so the highest version wins.
    A forge that ``write_first`` tries to make the branch before reading it: a branch
    that is there already (BranchExists) is then read and judged as above."""
    if forge.write_first(plan.files):
        try:
            sha = forge.write_commit(branch, snap, plan.files, message, replace=None)
        except BranchExists:
            pass  # look at it below
        except ConflictError:
            raise _BaseMoved from None
        else:
            return sha, True, True
    head = forge.read_head(branch)
    if head is not None:
        changed = forge.changed_files(head.sha) if len(head.parents) == 1 else None
        on_base = head.parents == (snap.commit,)
        if proof.holds(changed, plan.files):
            if on_base and same_record(head.message, message):
                return head.sha, False, False
            # the planned change, but on an older base or recorded otherwise (the
            # trailers history and rollback read): written again, by this run
        elif not is_promoter_commit(head):
            raise ConflictError(
                f"branch {branch} has a commit promoter did not make ({head.sha[:12]})",
                hint="someone pushed to the promotion branch; merge or close that request "
                     "by hand, or delete the branch, then promote again")
        else:
            claimed = claimed_images(head)
            theirs = plan_for(claimed) if claimed else None
            if theirs is not None and proof.holds(changed, theirs.files):
                newer = newer_proposed(head, images, plan)
                if newer is not None:
                    raise _Superseded(newer)
            elif on_base:
                raise ConflictError(
                    f"branch {branch} holds {head.sha[:12]}, which says it is a promotion "
                    "but changes something else than what it names; promoter will not reuse, "
                    "merge or overwrite it",
                    hint="someone pushed to the promotion branch: check that commit, then "
                         "delete the branch (or close its request) and promote again")
    try:
        sha = forge.write_commit(branch, snap, plan.files, message, replace=head)
    except ConflictError:
        raise _BaseMoved from None  # another run got there first: look again
    return sha, head is None, True


def claimed_images(head: Head) -> tuple[ImageRef, ...]:
    """The ``Promoted-Image`` trailers of ``head`` that parse: what it says it promotes
    (data to be proved, never evidence)."""
    found = (try_parse(v) for k, v in trailers(head.message) if k == TRAILER_IMAGE)
    return tuple(dict.fromkeys(ref for ref in found if ref is not None))


class _Superseded(Exception):
    def __init__(self, ref: str) -> None:
        super().__init__(ref)
        self.ref = ref


def newer_proposed(head: Head, images: Sequence[ImageRef], plan: Plan) -> str | None:
    """A Promoted-Image on ``head``, still in flight (the base does not run it yet), that
    is a higher semver of one of ``images``."""
    running = {(f.image, f.old_tag) for f in plan.found}
    for key, value in trailers(head.message):
        theirs = try_parse(value) if key == TRAILER_IMAGE else None
        if theirs is None or (theirs.name, theirs.tag) in running:
            continue
        for ours in images:
            if ours.name != theirs.name:
                continue
            a, b = parse_version(theirs.tag), parse_version(ours.tag)
            if a is not None and b is not None and a > b:
                return value
    return None


def is_promoter_commit(head: Head) -> bool:
    """Does ``head`` say it is a promotion? (A claim to be proved, never evidence.)"""
    return any(k == TRAILER_FINGERPRINT for k, _ in trailers(head.message))


# the trailers --history, --rollback and the rollback guard read
_RECORD = (TRAILER_IMAGE, TRAILER_PREVIOUS, TRAILER_ENV, TRAILER_ROLLBACK, TRAILER_FINGERPRINT)


def same_record(theirs: str, ours: str) -> bool:
    """Do two commit messages record the same promotion? A proved tree with another
    record (a forged ``Previous-Image``, say) must not reach the base's history, where
    a rebase merge would put that very commit."""
    def record(message: str) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in trailers(message) if k in _RECORD)

    return record(theirs) == record(ours)


def ensure_request(forge: Forge, branch: str, snap: Snapshot, spec: RequestSpec,
                   new_branch: bool, auto_merge_next: bool = False,
                   known: PullRequest | None = None) -> tuple[PullRequest, bool, bool]:
    """One open request for ``branch``: (request, created, updated). A branch this run
    created cannot have one yet, so no search is spent on it. An existing branch with no
    open request may be one another run has just merged: when the base moved since the
    snapshot, the promotion is planned again instead of proposing it a second time.
    ``auto_merge_next``: auto-merge is enabled right after (labels may ride along).
    ``known``: the open request as this run found it before writing the branch."""
    base = snap.branch
    pr = None if new_branch else known or forge.find_request(branch, base, confirm_none=True)
    if pr is None:
        if not new_branch:
            tip = forge.read_head(base)
            if tip is None or tip.sha != snap.commit:
                raise _BaseMoved
        opened = forge.open_request(branch, base, spec, auto_merge_next=auto_merge_next)
        if not new_branch and not forge.branch_is_request:
            # the other run's merge may have landed between that look and the opening
            # (its request was still open then, so the forge let ours open only after)
            tip = forge.read_head(base)
            if tip is None or tip.sha != snap.commit:
                forge.close_request(opened, f"Closed by promoter: {base} moved while this "
                                            "request was opened; planning again.")
                raise _BaseMoved
        return opened, True, False
    if forge.branch_is_request:  # plain git: nothing else to update
        return pr, False, False
    # a forge without labels (Bitbucket: ``has_labels = False``) warns instead; their
    # absence is no reason to update the request on every run
    labels = set(spec.labels) if forge.has_labels else set()
    if pr.title != spec.title or pr.body != spec.body or not labels <= set(pr.labels):
        return forge.update_request(pr, spec), False, True
    return pr, False, False


def _base_unmoved(forge: Forge, pr: PullRequest, snap: Snapshot) -> None:
    """Before merging a request on a branch this run created: the base must still be
    where the snapshot saw it. The branch was missing, and a forge deletes the branch of
    a request it merges, so another run may have merged this very change a moment ago;
    merging it again would put a second, empty change on the base. The request's own
    record of the base is used when the forge gave one (GitHub, Gitea), else one read."""
    seen = pr.base_sha
    if not seen:
        tip = forge.read_head(snap.branch)
        seen = tip.sha if tip is not None else ""
    if seen != snap.commit:
        raise _BaseMoved


def _up_to_date(forge: Forge, request: Request, snap: Snapshot, plan: Plan, done: Outcome,
                changes: Sequence[ImageChange]) -> Outcome:
    versions = ", ".join(f"{c.name}:{c.after}" for c in changes) or "the requested values"
    done = replace(done, status="up-to-date",
                   message=f"already up to date: {snap.branch} already sets {versions}")
    if request.dry_run:
        return done
    return _close_if_pointless(forge, snap, plan, done, f"{snap.branch} already sets {versions}")


def _withdraw(forge: Forge, branch: str, base: str, written: set[str], done: Outcome,
              why: str) -> Outcome:
    """After a re-plan refused what an earlier attempt of this same run proposed, close
    that request, but only while the branch still holds this run's own commit."""
    if not written:
        return done
    head = forge.read_head(branch)
    if head is None or head.sha not in written:
        return done
    pr = forge.find_request(branch, base)
    if pr is not None:
        forge.close_request(pr, f"Closed by promoter: {why}.")
        done = replace(done, closed=Closed(pr.url, pr.number))
    forge.delete_branch(branch)
    return done


def _close_if_pointless(forge: Forge, snap: Snapshot, plan: Plan, done: Outcome,
                        why: str) -> Outcome:
    """Close the open request of the promotion branch (and delete the branch) unless it
    proposes something newer than the base runs: that one is another run's work in
    flight."""
    branch = done.branch
    stale = forge.find_request(branch, snap.branch)
    if stale is None:
        return done
    head = forge.read_head(branch)
    if head is not None:
        running = tuple(ImageRef(f.image.partition("/")[0], f.image.partition("/")[2],
                                 f.old_tag) for f in plan.found if f.old_tag)
        if not is_promoter_commit(head) or newer_proposed(head, running, plan) is not None:
            return done
    forge.close_request(stale, f"Closed by promoter: {why} (commit {snap.commit[:12]}), so "
                               "this request has nothing left to do.")
    if head is not None:
        forge.delete_branch(branch)
    return replace(done, closed=Closed(stale.url, stale.number))


def _merge(forge: Forge, pr: PullRequest, commit: str, message: str,
           settings: config_mod.EnvPolicy, request: Request, done: Outcome,
           effects: Effects) -> Outcome:
    """Merge ``commit`` (the one this run wrote or proved, never the head the forge
    reports) now, or hand it to the forge's auto-merge pinned to the same commit."""
    method = settings.merge_method
    # plain git has no CI statuses: nothing to leave to the forge, the check reads NONE
    forge_checks = forge.has_checks
    if settings.wait_for_checks and request.merge_timeout <= 0 and forge_checks:
        # nothing to wait here: the forge's own auto-merge merges once the checks pass
        # (and merges at once when there is nothing to wait for)
        done = replace(done, verdict=done.verdict.with_check(policy_mod.Check(
            "checks_green", "skip", "left to the forge: its auto-merge waits for the checks "
            "(give --merge-timeout to wait here)")))
        return _auto_merge(forge, pr, commit, method, message, request, done, "")
    if settings.wait_for_checks:
        # a forge without checks answers NONE at once: nothing to wait for there
        state = _wait_for_checks(forge, pr, commit,
                                 request.merge_timeout if forge_checks else 0.0, effects)
        check = policy_mod.Check("checks_green", "pass" if state in (
            ChecksState.SUCCESS, ChecksState.NONE) else "fail", _checks_reason(state))
        done = replace(done, verdict=done.verdict.with_check(check))
        if state == ChecksState.FAILURE:
            return _not_merged(request, done,
                               f"checks failed on {commit[:12]}; left open for review")
        if state == ChecksState.PENDING:
            return _auto_merge(forge, pr, commit, method, message, request, done,
                               "checks still running; ")
    try:
        outcome = forge.merge(pr, method, commit, message)
    except ConflictError:
        raise _BaseMoved from None  # re-plan on the new base (bounded in run())
    if outcome.merged:
        return replace(done, merged=True, status="merged").said("merged")
    if outcome.conflict:
        raise _BaseMoved
    # The forge will not merge now (a required check it expects has not reported yet,
    # a review it requires): never give up at once, hand over to its auto-merge.
    return _auto_merge(forge, pr, commit, method, message, request, done,
                       f"{outcome.reason or 'the forge did not merge now'}; ")


def _with(error: PromoteError, done: Outcome) -> PromoteError:
    """Attach what was done (request opened, policy verdict) to an exit-4 error, so the
    JSON output and the CI outputs still carry it."""
    error.result = done.to_json()
    return error


def _auto_merge(forge: Forge, pr: PullRequest, commit: str, method: MergeMethod, message: str,
                request: Request, done: Outcome, why: str) -> Outcome:
    try:
        outcome = forge.enable_auto_merge(pr, method, commit, message)
    except ConflictError:
        raise _BaseMoved from None  # the head or the base moved: plan again
    done = replace(done, auto_merge=outcome.auto_merge, merged=outcome.merged)
    if outcome.merged:
        return replace(done, status="merged").said("merged")
    if outcome.auto_merge:
        return replace(done, status="auto-merge").said(
            f"{why}auto-merge enabled: the forge merges once the checks pass")
    if outcome.conflict:
        raise _BaseMoved
    return _not_merged(request, done, f"{why}{outcome.reason}")


def _not_merged(request: Request, done: Outcome, why: str) -> Outcome:
    done = done.said(why)
    if request.require_merge:
        raise _with(PolicyRefused(f"not merged: {why}"), done)
    return done


def _checks_reason(state: ChecksState) -> str:
    return {
        ChecksState.SUCCESS: "every status and check run passed",
        ChecksState.NONE: "no checks are configured on the head commit",
        ChecksState.FAILURE: "a status or check run failed",
        ChecksState.PENDING: "checks are still running",
    }[state]


def _wait_for_checks(forge: Forge, pr: PullRequest, sha: str, timeout: float,
                     effects: Effects) -> ChecksState:
    """Poll the checks of ``sha`` until they settle or ``timeout`` passes. "No checks"
    right after a push is not final: CI registers its checks a moment later, so NONE
    counts only once ``NONE_GRACE`` seconds (within the timeout) have shown none."""
    start = effects.monotonic()
    deadline = start + max(timeout, 0.0)
    grace = start + min(NONE_GRACE, max(timeout, 0.0))
    for delay in _poll_delays():
        state = forge.checks(pr, sha)
        now = effects.monotonic()
        if state in (ChecksState.SUCCESS, ChecksState.FAILURE) or now >= deadline:
            return state
        if state == ChecksState.NONE and now >= grace:
            return state
        effects.sleep(min(delay, max(deadline - now, 0.0)))
    raise AssertionError("unreachable")


def _poll_delays() -> Iterator[float]:
    """1, 2, 4, 8, then every POLL_INTERVAL seconds: quick checks are seen quickly."""
    delay = 1.0
    while True:
        yield min(delay, POLL_INTERVAL)
        delay *= 2


