"""What to promote, and where: the request, the files it selects, and the plan over
them. Pure: files in (a snapshot's or a working tree's), values out; ``promote`` (through
a forge) and ``local`` (a working tree) both plan with these.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from promoter import config as config_mod
from promoter.edit import SetOp, Targets
from promoter.errors import NotFound, PromoteError, UsageError
from promoter.identity import Identity
from promoter.images import ImageRef, parse_name
from promoter.paths import glob_match, safe_relative
from promoter.plan import Plan, make_plan


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


def plan_quietly(files: Mapping[str, bytes], request: Request, config: config_mod.Config,
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
