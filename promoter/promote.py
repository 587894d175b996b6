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

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from promoter import config as config_mod
from promoter import policy as policy_mod
from promoter import proof
from promoter.edit import SetOp, Targets
from promoter.errors import (
    BranchExists,
    ConflictError,
    NotFound,
    PolicyRefused,
    PromoteError,
    UsageError,
)
from promoter.forges.base import (
    LINK_MODE,
    ChecksState,
    Forge,
    Head,
    PullRequest,
    RequestSpec,
    Snapshot,
    check_policy_entry,
)
from promoter.identity import Identity
from promoter.images import ImageRef, Version, parse_name, parse_version, try_parse
from promoter.paths import CONFIG_FILE, glob_match, safe_relative
from promoter.plan import Plan, make_plan
from promoter.report import (
    TRAILER_ENV,
    TRAILER_FINGERPRINT,
    TRAILER_IMAGE,
    TRAILER_PREVIOUS,
    TRAILER_ROLLBACK,
    changes_json,
    image_changes,
    skips_json,
    texts,
    trailers,
)

MAX_RACE_ATTEMPTS = 5
POLL_INTERVAL = 10.0
NONE_GRACE = 15.0  # seconds "no checks" must last before it counts as "no CI here"


@dataclass(frozen=True)
class Request:
    """What the caller asked for, already validated."""

    images: tuple[ImageRef, ...] = ()
    markers: Mapping[str, ImageRef] = field(default_factory=dict)
    sets: tuple[SetOp, ...] = ()
    files: tuple[str, ...] = ()
    path: str = ""
    env: str | None = None
    from_env: str | None = None
    base: str | None = None
    dry_run: bool = False
    auto_merge: bool = False
    require_merge: bool = False
    merge_timeout: float = 0.0
    labels: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()
    assignees: tuple[str, ...] = ()
    draft: bool = False
    # set by rollback_request(): the references being rolled back (one per image)
    rollback_of: tuple[str, ...] = ()
    author: Identity | None = None  # --author; else author: of the config; else the forge's
    sign: bool = False  # --sign (signing: true in the config asks for it too)


@dataclass(frozen=True)
class Effects:
    """The outside world, injected so tests run with a fake clock."""

    now: Callable[[], datetime]
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    log: Callable[[str], None] = lambda _: None  # --verbose: one line per step


# --- selection ----------------------------------------------------------------------------


def selector(request: Request, env: config_mod.EnvPolicy | None) -> Callable[[str], bool]:
    globs = tuple(safe_relative(g, "--file") for g in request.files)
    sub = safe_relative(request.path, "--path") if request.path else ""
    env_paths = tuple(env.paths) if env is not None and env.paths else ()

    def select(path: str) -> bool:
        if globs and not any(glob_match(g, path) for g in globs):
            return False
        if sub and not (path == sub or path.startswith(sub + "/")):
            return False
        return not env_paths or any(glob_match(g, path) for g in env_paths)

    return select


def targets_for(request: Request, config: config_mod.Config) -> Targets:
    marker_map = dict(request.markers)
    for policy_name, repo in config.markers.items():
        for ref in request.images:
            if ref.name == _name(repo) and policy_name not in marker_map:
                marker_map[policy_name] = ref
    return Targets(request.images, marker_map, request.sets)


def _name(repo: str) -> str:
    domain, path = parse_name(repo)
    return f"{domain}/{path}"


def branch_name(request: Request) -> str:
    scope = request.env or "all"
    if len(request.images) == 1:
        leaf = request.images[0].short
    else:
        leaf = "-".join(sorted({r.short for r in request.images}))[:60] or "set"
    safe = re.sub(r"[^A-Za-z0-9._/-]", "-", f"promote/{scope}/{leaf}")
    return safe.rstrip(".").replace("..", ".")


# --- the run ------------------------------------------------------------------------------


def run(forge: Forge, request: Request, provenance: Mapping[str, Any],
        provenance_trailers: Sequence[tuple[str, str]], effects: Effects) -> dict[str, Any]:
    """Promote, and return the JSON-able result. Raises PromoteError subclasses."""
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


def _run_once(forge: Forge, request: Request, provenance: Mapping[str, Any],
              provenance_trailers: Sequence[tuple[str, str]], effects: Effects,
              written: set[str]) -> dict[str, Any]:
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
    result: dict[str, Any] = {
        "status": "",
        "forge": forge.name,
        "base": snap.branch,
        "base_commit": snap.commit,
        "env": request.env,
        "images": [str(r) for r in request.images],
        "changes": changes_json(plan),
        "skips": skips_json(plan),
        "diff": plan.diff,
        "changed": not plan.noop,
        "branch": branch,
        "commit": None,
        "verified": None,
        "pull_request": None,
        "merged": False,
        "auto_merge": False,
        "policy": verdict.to_json(),
        "provenance": dict(provenance),
    }
    if plan.noop:
        return _up_to_date(forge, request, snap, plan, branch, result, changes)
    if verdict.refused:
        result["status"] = "refused"
        result["message"] = "policy refused the promotion: " + "; ".join(
            c.reason for c in verdict.checks if c.status == "fail")
        _withdraw(forge, branch, snap.branch, written, result, "the policy now refuses it")
        if request.require_merge:
            raise _with(PolicyRefused(result["message"]), result)
        return result
    if request.dry_run:
        result["status"] = "dry-run"
        result["message"] = f"dry run: would commit {len(plan.files)} file(s) to {branch}"
        return result

    settings = policy
    said = texts(config.templates, changes, plan, request.env, provenance,
                 provenance_trailers, policy_mod.render_markdown(verdict),
                 [f"{c.status} {c.name}: {c.reason}" for c in verdict.checks],
                 rollback_of=request.rollback_of)
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
            lambda refs: _plan_quietly(snap.files, replace(request, images=refs), config, env,
                                       snap.links))
    except _Superseded as newer:
        result["status"] = "superseded"
        result["message"] = (f"a newer promotion is already proposed on {branch} "
                             f"({newer.ref}); nothing to do")
        _withdraw(forge, branch, snap.branch, written, result, f"{newer.ref} supersedes it")
        if request.require_merge:
            raise _with(PolicyRefused(result["message"]), result) from None
        return result
    say(f"branch {branch} at {commit[:12]} ({'new commit' if new_commit else 'reused'})")
    if new_commit:
        written.add(commit)
    result["commit"] = commit
    result["verified"] = forge.commit_verified(commit)
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
    result["pull_request"] = {"url": pr.url, "number": pr.number, "created": created,
                              "updated": updated}
    result["status"] = "proposed"
    verb = "opened" if created else "updated" if updated else "unchanged, already proposed:"
    result["message"] = f"{verb} {pr.url}"
    say(f"request {pr.url}: {'created' if created else 'updated' if updated else 'unchanged'}"
        f"; policy {'allows' if verdict.allows_merge else 'does not allow'} a merge")
    if verdict.allows_merge:
        if created_branch and pr.number != 0:
            _base_unmoved(forge, pr, snap)
        _merge(forge, pr, commit, message, settings, request, verdict, result, effects)
    elif want_merge or request.require_merge:
        failed = ", ".join(c.name for c in verdict.checks if c.status == "fail")
        _say(result, f"left for review (policy: {failed})")
        if request.require_merge:
            raise _with(PolicyRefused(f"policy refused the merge ({failed}); the request "
                                      f"stays open: {pr.url}"), result)
    else:
        _say(result, "left for review")
    return result


def _disarm(forge: Forge, branch: str, base: str) -> PullRequest | None:
    """Take back an auto-merge armed on the open request of ``branch`` before this run
    writes to it: the forges keep it armed across pushes, so one an earlier run armed
    (its policy allowed 1.1.0) would merge what this run leaves to a human (2.0.0).
    Returns that request (ensure_request need not look for it again). A forge that never
    arms an auto-merge (``arms_auto_merge = False``) is not asked."""
    if not getattr(forge, "arms_auto_merge", True):
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


def prepare(files: Mapping[str, bytes], request: Request, config: config_mod.Config,
            env: config_mod.EnvPolicy | None, links: Mapping[str, str] | None = None) -> Plan:
    """The plan over the selected files; NotFound when the image is nowhere in them, and
    UsageError when a ``--file`` pattern names no file at all (a typo, not a miss)."""
    unmatched_files(files, request.files)
    plan = make_plan(files, targets_for(request, config), selector(request, env), links)
    if not plan.found:
        where = ", ".join(request.files) or request.path or (
            f"environment {request.env}" if request.env else "the repo")
        names = ", ".join(r.familiar for r in request.images)
        subject = (f"{names} is" if len(request.images) == 1 else f"{names} are" if names
                   else "the --set/--marker targets are")
        raise NotFound(f"{subject} referenced nowhere in {where}",
                       hint="check the image name, or widen --file/--path/--env")
    return plan


def _plan_quietly(files: Mapping[str, bytes], request: Request, config: config_mod.Config,
                  env: config_mod.EnvPolicy | None, links: Mapping[str, str] | None
                  ) -> Plan | None:
    """The plan of ``request`` over ``files``, or None when it cannot be made (the images
    are nowhere, or the refs a branch names are unusable): such a claim proves nothing."""
    try:
        return prepare(files, request, config, env, links)
    except PromoteError:
        return None


def unmatched_files(paths: Iterable[str], patterns: Sequence[str]) -> None:
    """Each ``--file`` glob must match some file of the repo (before --env/--path
    narrow the selection); one that matches nothing is exit 2, like a literal --file
    that names no file."""
    pending = {safe_relative(g, "--file"): g for g in patterns}
    if not pending:
        return
    for path in paths:
        for glob in [g for g in pending if glob_match(g, path)]:
            del pending[glob]
        if not pending:
            return
    shown = ", ".join(pending.values())
    raise UsageError(f"--file {shown}: the glob matched no file in the config repo",
                     hint="--file is relative to the repo root, ** spans directories (e.g. "
                          "--file 'envs/**/*.yaml'), and files are never read through a "
                          "symlink")


def upstream_versions(files: Mapping[str, bytes], request: Request, config: config_mod.Config,
                      policy: config_mod.EnvPolicy
                      ) -> dict[str, set[tuple[str | None, str | None]]] | None:
    """What the policy's upstream environment runs of each image: (tag, digest) pairs."""
    if not policy.require_upstream:
        return None
    up_env = config.env(policy.require_upstream)
    plan = make_plan(files, targets_for(request, config),
                     selector(replace(request, files=(), path=""), up_env))
    running: dict[str, set[tuple[str | None, str | None]]] = {}
    for f in plan.found:
        running.setdefault(f.image, set()).add((f.old_tag, f.old_digest))
    return running


def versions_in(files: Mapping[str, bytes], config: config_mod.Config, request: Request
                ) -> tuple[ImageRef, ...]:
    """``--from ENV``: each --image name at the version ENV runs (one version, or refuse)."""
    source = config.env(request.from_env or "")
    probe = Targets(tuple(ImageRef(r.domain, r.path, "latest", None, r.written)
                          for r in request.images))
    plan = make_plan(files, probe, selector(replace(request, files=(), path=""), source))
    out = []
    for ref in request.images:
        versions = {(f.old_tag, f.old_digest) for f in plan.found if f.image == ref.name}
        if not versions:
            raise NotFound(f"{ref.familiar} is referenced nowhere in environment {source.name}")
        if len(versions) > 1:
            shown = ", ".join(sorted(f"{t}@{d}" if d else str(t) for t, d in versions))
            raise UsageError(f"{source.name} runs several versions of {ref.familiar}: {shown}",
                             hint="promote an explicit --image REF instead")
        tag, digest = versions.pop()
        if not tag and not digest:
            raise UsageError(f"{source.name} runs {ref.familiar} without a tag or digest")
        out.append(ImageRef(ref.domain, ref.path, tag, digest, ref.written))
    return tuple(out)


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
        if not new_branch and opened.number:
            # the other run's merge may have landed between that look and the opening
            # (its request was still open then, so the forge let ours open only after)
            tip = forge.read_head(base)
            if tip is None or tip.sha != snap.commit:
                forge.close_request(opened, f"Closed by promoter: {base} moved while this "
                                            "request was opened; planning again.")
                raise _BaseMoved
        return opened, True, False
    if pr.number == 0:  # plain git: the branch is the request, nothing else to update
        return pr, False, False
    # a forge without labels (Bitbucket: ``has_labels = False``) warns instead; their
    # absence is no reason to update the request on every run
    labels = set(spec.labels) if getattr(forge, "has_labels", True) else set()
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


def _up_to_date(forge: Forge, request: Request, snap: Snapshot, plan: Plan, branch: str,
                result: dict[str, Any], changes: Sequence[Any]) -> dict[str, Any]:
    result["status"] = "up-to-date"
    versions = ", ".join(f"{c.name}:{c.after}" for c in changes) or "the requested values"
    result["message"] = f"already up to date: {snap.branch} already sets {versions}"
    if not request.dry_run:
        _close_if_pointless(forge, branch, snap, plan, result,
                            f"{snap.branch} already sets {versions}")
    return result


def _withdraw(forge: Forge, branch: str, base: str, written: set[str],
              result: dict[str, Any], why: str) -> None:
    """After a re-plan refused what an earlier attempt of this same run proposed, close
    that request, but only while the branch still holds this run's own commit."""
    if not written:
        return
    head = forge.read_head(branch)
    if head is None or head.sha not in written:
        return
    pr = forge.find_request(branch, base)
    if pr is not None:
        forge.close_request(pr, f"Closed by promoter: {why}.")
        result["closed_pull_request"] = {"url": pr.url, "number": pr.number}
    forge.delete_branch(branch)


def _close_if_pointless(forge: Forge, branch: str, snap: Snapshot, plan: Plan,
                        result: dict[str, Any], why: str) -> None:
    """Close the open request of ``branch`` (and delete the branch) unless it proposes
    something newer than the base runs: that one is another run's work in flight."""
    stale = forge.find_request(branch, snap.branch)
    if stale is None:
        return
    head = forge.read_head(branch)
    if head is not None:
        running = tuple(ImageRef(f.image.partition("/")[0], f.image.partition("/")[2],
                                 f.old_tag) for f in plan.found if f.old_tag)
        if not is_promoter_commit(head) or newer_proposed(head, running, plan) is not None:
            return
    forge.close_request(stale, f"Closed by promoter: {why} (commit {snap.commit[:12]}), so "
                               "this request has nothing left to do.")
    if head is not None:
        forge.delete_branch(branch)
    result["closed_pull_request"] = {"url": stale.url, "number": stale.number}


def _merge(forge: Forge, pr: PullRequest, commit: str, message: str,
           settings: config_mod.EnvPolicy, request: Request, verdict: policy_mod.Verdict,
           result: dict[str, Any], effects: Effects) -> None:
    """Merge ``commit`` (the one this run wrote or proved, never the head the forge
    reports) now, or hand it to the forge's auto-merge pinned to the same commit."""
    method = settings.merge_method
    # plain git has no CI statuses: nothing to leave to the forge, the check reads NONE
    forge_checks = getattr(forge, "has_checks", True)
    if settings.wait_for_checks and request.merge_timeout <= 0 and forge_checks:
        # nothing to wait here: the forge's own auto-merge merges once the checks pass
        # (and merges at once when there is nothing to wait for)
        result["policy"] = verdict.with_check(policy_mod.Check(
            "checks_green", "skip", "left to the forge: its auto-merge waits for the checks "
            "(give --merge-timeout to wait here)")).to_json()
        _auto_merge(forge, pr, commit, method, message, request, result, "")
        return
    if settings.wait_for_checks:
        # a forge without checks answers NONE at once: nothing to wait for there
        state = _wait_for_checks(forge, pr, commit,
                                 request.merge_timeout if forge_checks else 0.0, effects)
        check = policy_mod.Check("checks_green", "pass" if state in (
            ChecksState.SUCCESS, ChecksState.NONE) else "fail", _checks_reason(state))
        verdict = verdict.with_check(check)
        result["policy"] = verdict.to_json()
        if state == ChecksState.FAILURE:
            _not_merged(request, result, f"checks failed on {commit[:12]}; left open for review")
            return
        if state == ChecksState.PENDING:
            _auto_merge(forge, pr, commit, method, message, request, result,
                        "checks still running; ")
            return
    try:
        outcome = forge.merge(pr, method, commit, message)
    except ConflictError:
        raise _BaseMoved from None  # re-plan on the new base (bounded in run())
    if outcome.merged:
        result["merged"] = True
        result["status"] = "merged"
        _say(result, "merged")
        return
    if "base" in outcome.reason.lower() or "conflict" in outcome.reason.lower():
        raise _BaseMoved
    # The forge will not merge now (a required check it expects has not reported yet,
    # a review it requires): never give up at once, hand over to its auto-merge.
    _auto_merge(forge, pr, commit, method, message, request, result,
                f"{outcome.reason or 'the forge did not merge now'}; ")


def _with(error: PromoteError, result: dict[str, Any]) -> PromoteError:
    """Attach what was done (request opened, policy verdict) to an exit-4 error, so the
    JSON output and the CI outputs still carry it."""
    error.result = dict(result)
    return error


def _auto_merge(forge: Forge, pr: PullRequest, commit: str, method: str, message: str,
                request: Request, result: dict[str, Any], why: str) -> None:
    try:
        outcome = forge.enable_auto_merge(pr, method, commit, message)
    except ConflictError:
        raise _BaseMoved from None  # the head or the base moved: plan again
    result["auto_merge"] = outcome.auto_merge
    result["merged"] = outcome.merged
    if outcome.merged:
        result["status"] = "merged"
        _say(result, "merged")
    elif outcome.auto_merge:
        result["status"] = "auto-merge"
        _say(result, f"{why}auto-merge enabled: the forge merges once the checks pass")
    elif "base" in outcome.reason.lower() or "conflict" in outcome.reason.lower():
        raise _BaseMoved
    else:
        _not_merged(request, result, f"{why}{outcome.reason}")


def _say(result: dict[str, Any], text: str) -> None:
    result["message"] = f"{result['message']}; {text}" if result.get("message") else text


def _not_merged(request: Request, result: dict[str, Any], why: str) -> None:
    _say(result, why)
    if request.require_merge:
        raise _with(PolicyRefused(f"not merged: {why}"), result)


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


# --- history and rollback -----------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    sha: str
    date: str
    author: str
    env: str | None
    images: tuple[str, ...]
    previous: tuple[str, ...]
    rollback_of: tuple[str, ...]  # one reference per image a rollback moved away from
    source_commit: str | None
    pipeline: str | None
    title: str

    def to_json(self) -> dict[str, Any]:
        return {"commit": self.sha, "date": self.date, "author": self.author, "env": self.env,
                "images": list(self.images), "previous": list(self.previous),
                "rollback_of": list(self.rollback_of) or None,
                "source_commit": self.source_commit, "pipeline": self.pipeline,
                "title": self.title}


def history(forge: Forge, base: str | None, env: str | None,
            images: Sequence[ImageRef] = (), limit: int = 500) -> list[HistoryEntry]:
    """Promotions recorded in the base branch's commits (newest first), read from the
    trailers promoter writes; nothing but git is needed."""
    branch = base or forge.snapshot(None).branch
    names = {r.name for r in images}
    out = []
    seen_fingerprints: set[str] = set()
    for c in forge.log(branch, limit):
        tr = trailers(c.message)
        keys = dict(tr)
        if TRAILER_IMAGE not in keys:
            continue
        fp = keys.get(TRAILER_FINGERPRINT, c.sha)
        if fp in seen_fingerprints:  # a merge commit and its branch commit: one promotion
            continue
        seen_fingerprints.add(fp)
        if env is not None and keys.get(TRAILER_ENV) != env:
            continue
        promoted = tuple(v for k, v in tr if k == TRAILER_IMAGE)
        if names and not any(_ref_name(p) in names for p in promoted):
            continue
        away = tuple(ref.strip() for k, v in tr if k == TRAILER_ROLLBACK
                     for ref in v.split(", "))  # ", ": trailers older promoters wrote
        out.append(HistoryEntry(
            c.sha, c.date, c.author, keys.get(TRAILER_ENV), promoted,
            tuple(v for k, v in tr if k == TRAILER_PREVIOUS), away,
            keys.get("Source-Commit"), keys.get("Pipeline"),
            c.message.splitlines()[0] if c.message else ""))
    return out


def _ref_name(text: str) -> str:
    ref = try_parse(text)
    return ref.name if ref else text


def _of(refs: Sequence[str], name: str) -> list[ImageRef]:
    """The parsed references among ``refs`` that name the repository ``name``."""
    parsed = (try_parse(r) for r in refs)
    return [r for r in parsed if r is not None and r.name == name]


def rolled_back_versions(forge: Forge, base: str, env: str,
                         images: Sequence[ImageRef]) -> dict[str, str]:
    """image name -> the version a rollback in ``env`` moved away from, while the guard is
    armed: until a promotion ABOVE that version lands (a human merges it; nothing at or
    below it merges by itself). A later promotion of a lower or unordered version keeps
    the guard armed. With several armed rollbacks, the highest version counts."""
    out: dict[str, str] = {}
    for ref in images:
        highest_since: Version | None = None  # the highest version promoted after
        armed: tuple[Version | None, str] | None = None
        for entry in history(forge, base, env, [ref], limit=200):  # newest first
            for bad in _of(entry.rollback_of, ref.name):
                bad_version = parse_version(bad.tag)
                lifted = highest_since is not None and bad_version is not None \
                    and highest_since > bad_version
                if not lifted and (armed is None or _above(bad_version, armed[0])):
                    armed = (bad_version, bad.version)
            for promoted in _of(entry.images, ref.name):
                version = parse_version(promoted.tag)
                if version is not None and (highest_since is None or version > highest_since):
                    highest_since = version
        if armed is not None:
            out[ref.name] = armed[1]
    return out


def _above(version: Version | None, than: Version | None) -> bool:
    return version is not None and (than is None or version > than)


def rollback_request(forge: Forge, request: Request) -> Request:
    """The request that restores the previous image of ``request.env``: taken from the
    newest promotion of each image in the history. When that newest promotion is itself
    a rollback, the request restores what it restored: a re-run is a no-op, never a flip
    back to the bad version."""
    if not request.images:
        raise UsageError("--rollback needs --image NAME (which image to roll back)")
    restored: list[ImageRef] = []
    rolled_from: list[str] = []
    for ref in request.images:
        entries = history(forge, request.base, request.env, [ref], limit=500)
        if not entries:
            raise NotFound(f"no promotion of {ref.familiar} recorded in "
                           f"{'environment ' + request.env if request.env else 'the base'}",
                           hint="history is read from commits promoter made (their trailers)")
        last = entries[0]
        if _of(last.rollback_of, ref.name):  # already rolled back: keep it so
            kept = _of(last.images, ref.name)
            if not kept:
                raise NotFound(f"the last rollback of {ref.familiar} records no image")
            restored.append(kept[0])
            rolled_from.extend(str(r) for r in _of(last.rollback_of, ref.name))
            continue
        previous = _of(last.previous, ref.name)
        if not previous:
            raise NotFound(f"the last promotion of {ref.familiar} records no previous image")
        restored.append(previous[0])
        rolled_from.extend(str(r) for r in _of(last.images, ref.name))
    return replace(request, images=tuple(restored), rollback_of=tuple(rolled_from))
