""".promoter.yaml: the config repo's own policy, read from the BASE branch.

    version: 1
    defaults:                  # every environment inherits these (each key may be overridden)
      auto_merge: false        # may a promotion merge without a human?
      merge_method: squash     # merge | squash | rebase
      allowed_tags: ['^v?\\d+\\.\\d+\\.\\d+$']   # a new tag must re.fullmatch one of them
      max_auto_merge_bump: minor   # patch | minor | major
      allow_downgrade: false   # a lower semver than what runs is refused outright
      wait_for_checks: true    # merge only after the PR/MR's checks pass
      labels: []               # added to the PR/MR
      reviewers: []
      assignees: []
      draft: false             # open the PR/MR as a draft (a draft never auto-merges)
      freeze: []               # windows without auto-merge, see below
    environments:
      prod:
        paths: ["envs/prod/**"]        # required; relative globs inside the repo
        require_upstream: staging      # the new image must already run in staging
        freeze:
          - {days: [fri, sat, sun], from: "15:00", to: "23:59", tz: Europe/Berlin}
          - {start: "2026-12-20T00:00:00+01:00", end: "2027-01-04T00:00:00+01:00"}
    markers:                           # Flux image-policy markers -> image repository
      "flux-system:podinfo": ghcr.io/stefanprodan/podinfo
    author: "Release Bot <release-bot@example.com>"   # who promotion commits are by
    templates:                         # title, body, commit: {name} fields only, see
      title: "deploy({env}): {names} {new}"   # promoter.templates; trailers always follow
    signing: false                     # plain git: sign with your git signing key (or exit 2)

Rules worth knowing:

- Everything is validated; the first problem raises ``ConfigError`` naming the file,
  line and column and what to do. Unknown keys are errors (a typo must never silently
  disable a guard), and so are duplicate keys, YAML merge keys (``<<``) and tags.
- An environment key overrides the same key of ``defaults`` as a whole (lists too).
  ``paths`` and ``require_upstream`` exist only per environment.
- ``allowed_tags`` absent means any tag; an empty list is an error (it would refuse
  every tag). Patterns use Python ``re`` syntax and must match the whole tag; they are
  matched with the ``regex`` package under a time limit (``promoter.limits.TagPattern``),
  so a pattern that backtracks catastrophically is an error naming its line, not a hang.
- Paths are globs relative to the repo root, matched like ``--file`` globs
  (``promoter.paths.glob_match``): ``*`` and ``?`` stay inside one path segment, ``**``
  (a whole segment) spans any depth, and a plain directory covers everything below it,
  so ``envs/dev`` and ``envs/dev/**`` both cover ``envs/dev/a/b.yaml``. Absolute paths,
  ``..``, backslashes and ``[`` classes are refused: a config cannot reach outside its
  own repo, and every pattern means what it says.
- Weekly freeze windows: ``days`` (mon..sun, default every day), ``from`` and ``to``
  as HH:MM, both minutes inclusive (``15:00``-``23:59`` ends at 23:59:59), ``tz`` an
  IANA zone (default UTC). ``from`` later than ``to`` crosses midnight: the window opens
  on a listed day and closes on the next morning. Absolute windows: ``start`` (inclusive)
  and ``end`` (exclusive), ISO 8601 datetimes or dates; without a UTC offset they need
  ``tz``.
- Marker values are stored as canonical repository names (``docker.io/library/nginx``).

CLI flags only tighten a policy: see ``tighten``. Without a config file the built-in
policy applies: open a PR/MR, auto-merge only when the caller asks, and then only if no
downgrade, a semver step of at most minor, and green checks.
"""

from __future__ import annotations

from promoter.config.freeze import DAYS, AbsoluteFreeze, Freeze, WeeklyFreeze, zone
from promoter.config.loader import load
from promoter.config.model import (
    BUILTIN,
    DEFAULT_FILE,
    Config,
    EnvPolicy,
    path_matches,
    select,
    tighten,
)
from promoter.forges.base import MergeMethod

__all__ = [
    "BUILTIN",
    "DAYS",
    "DEFAULT_FILE",
    "AbsoluteFreeze",
    "Config",
    "EnvPolicy",
    "Freeze",
    "MergeMethod",
    "WeeklyFreeze",
    "load",
    "path_matches",
    "select",
    "tighten",
    "zone",
]
