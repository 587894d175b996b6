"""The policy as values: ``EnvPolicy`` (one environment, the defaults, or the built-in
policy), ``Config`` (the whole file), and how a run picks one (``select``) and how
flags may only tighten it (``tighten``)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from promoter.config.freeze import Freeze
from promoter.errors import ConfigError, UsageError
from promoter.forges.base import MergeMethod
from promoter.identity import Identity
from promoter.images import Bump
from promoter.limits import TagPattern
from promoter.paths import glob_match
from promoter.templates import Templates

DEFAULT_FILE = ".promoter.yaml"


def path_matches(patterns: Iterable[str], path: str) -> bool:
    """True when repo-relative ``path`` matches one of ``patterns`` (the same glob rules
    as ``--file``: ``promoter.paths.glob_match``)."""
    return any(glob_match(p, path) for p in patterns)


@dataclass(frozen=True)
class EnvPolicy:
    """The policy of one environment (or of ``defaults``, or the built-in one)."""

    name: str
    paths: tuple[str, ...] = ()
    auto_merge: bool = False
    merge_method: MergeMethod = "squash"
    allowed_tags: tuple[TagPattern, ...] | None = None  # None: any tag
    max_auto_merge_bump: Bump = Bump.MINOR
    allow_downgrade: bool = False
    wait_for_checks: bool = True
    require_upstream: str | None = None
    freeze: tuple[Freeze, ...] = ()
    labels: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()
    assignees: tuple[str, ...] = ()
    draft: bool = False
    configured: bool = True  # False only for the built-in policy (no .promoter.yaml)

    def matches(self, path: str) -> bool:
        return path_matches(self.paths, path)

    def describe(self) -> str:
        if not self.configured:
            return "the built-in policy (no .promoter.yaml)"
        if self.name == "defaults" and not self.paths:
            return "the defaults of .promoter.yaml"
        return f"environment {self.name}"


BUILTIN = EnvPolicy(name="", configured=False)


@dataclass(frozen=True)
class Config:
    environments: dict[str, EnvPolicy]
    defaults: EnvPolicy
    markers: dict[str, str] = field(default_factory=dict)
    file: str = DEFAULT_FILE
    author: Identity | None = None  # who promotion commits are by (--author overrides)
    templates: Templates = field(default_factory=Templates)  # title, body, commit message
    signing: bool = False  # plain git: sign commits with the user's git signing key

    @property
    def present(self) -> bool:
        """False when there was no config file (built-in defaults)."""
        return self.defaults.configured

    def env(self, name: str) -> EnvPolicy:
        try:
            return self.environments[name]
        except KeyError:
            raise _unknown_env(self, name) from None

    def envs_for_path(self, path: str) -> tuple[EnvPolicy, ...]:
        return tuple(e for e in self.environments.values() if e.matches(path))

    def env_for_path(self, path: str) -> EnvPolicy | None:
        """The environment whose paths cover ``path``; ConfigError if several do."""
        found = self.envs_for_path(path)
        if len(found) > 1:
            names = ", ".join(e.name for e in found)
            raise ConfigError(
                f"{path} belongs to several environments ({names})",
                file=self.file,
                hint="make the environments' paths disjoint",
            )
        return found[0] if found else None

    def policy_for(self, files: Iterable[str]) -> EnvPolicy:
        """The policy for a change to ``files`` when no ``--env`` was given: the one
        environment that owns all of them, else ``defaults`` when none owns any. A change
        that spans environments (or mixes owned and unowned files) is a UsageError, so
        leaving out ``--env`` can never dodge an environment's guards."""
        owners: dict[str, list[str]] = {}
        for path in sorted(set(files)):
            env = self.env_for_path(path)
            owners.setdefault(env.name if env else "", []).append(path)
        named = sorted(k for k in owners if k)
        if not named:
            return self.defaults
        if len(owners) == 1:
            return self.environments[named[0]]
        parts = [f"{k or 'no environment'} ({owners[k][0]})" for k in sorted(owners)]
        raise UsageError(
            "the change spans several environments: " + ", ".join(parts),
            hint="promote one environment at a time with --env NAME",
        )


def _unknown_env(config: Config, name: str) -> UsageError:
    known = list(config.environments)
    if not config.present:
        return UsageError(
            f"--env {name} needs a {config.file} on the base branch that defines it",
            hint="add the environment to the config file, or leave out --env",
        )
    if not known:
        return UsageError(f"unknown environment {name!r}: {config.file} defines no environments")
    close = difflib.get_close_matches(name, known, n=1)
    message = f"unknown environment {name!r}" + (f"; did you mean {close[0]!r}?" if close else "")
    return UsageError(message, file=config.file, hint="known environments: " + ", ".join(known))


def select(config: Config | None, *, env: str | None, files: Iterable[str] = ()) -> EnvPolicy:
    """The policy that governs a promotion: ``--env`` when given, else the owner of the
    changed ``files`` (see ``Config.policy_for``), else the built-in policy."""
    if config is None:
        config = Config(environments={}, defaults=BUILTIN)
    if env is not None:
        return config.env(env)
    return config.policy_for(files)


def tighten(
    policy: EnvPolicy | None,
    *,
    auto_merge: bool | None = None,
    wait_for_checks: bool | None = None,
    max_auto_merge_bump: Bump | None = None,
    draft: bool | None = None,
    labels: Iterable[str] = (),
    reviewers: Iterable[str] = (),
    assignees: Iterable[str] = (),
) -> EnvPolicy:
    """Apply the caller's flags; they can only make the policy stricter.

    ``auto_merge``: True asks for auto-merge (granted only if the policy allows it, or
    when there is no config file), False turns it off, None keeps the policy's choice.
    ``wait_for_checks=True`` and ``draft=True`` tighten; False never loosens. A draft
    never auto-merges. ``max_auto_merge_bump`` can only be lowered. Labels, reviewers
    and assignees are added. allowed_tags, downgrades, freezes, upstream and paths have
    no flag at all."""
    base = policy if policy is not None else BUILTIN
    if base.configured:
        merge = base.auto_merge and auto_merge is not False
    else:
        merge = (base.auto_merge or auto_merge is True) and auto_merge is not False
    is_draft = base.draft or draft is True
    bump = base.max_auto_merge_bump
    if max_auto_merge_bump is not None:
        bump = min(bump, max_auto_merge_bump)
    return replace(
        base,
        auto_merge=merge and not is_draft,
        wait_for_checks=base.wait_for_checks or wait_for_checks is True,
        max_auto_merge_bump=bump,
        draft=is_draft,
        labels=_union(base.labels, labels),
        reviewers=_union(base.reviewers, reviewers),
        assignees=_union(base.assignees, assignees),
    )


def _union(first: tuple[str, ...], more: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*first, *more)))
