"""`.promoter.yaml`: loading, every validation error at its line and column, helpers."""

from __future__ import annotations

import textwrap
from dataclasses import fields
from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promoter import config
from promoter.config import (
    BUILTIN,
    AbsoluteFreeze,
    Config,
    EnvPolicy,
    WeeklyFreeze,
    load,
    loader,
    select,
    tighten,
)
from promoter.errors import ConfigError, PromoteError, UsageError
from promoter.images import Bump

EXAMPLE = textwrap.dedent(
    """\
    version: 1
    defaults:                       # every environment inherits these
      auto_merge: false
      merge_method: squash
      allowed_tags: ['^v?\\d+\\.\\d+\\.\\d+$']
      max_auto_merge_bump: minor
      allow_downgrade: false
      wait_for_checks: true
      labels: []
      reviewers: []
      assignees: []
      draft: false
    environments:
      dev:     {paths: ["envs/dev/**"], auto_merge: true}
      staging: {paths: ["envs/staging/**"], auto_merge: true, require_upstream: dev}
      prod:
        paths: ["envs/prod/**"]
        require_upstream: staging
        reviewers: [sre-lead]
        labels: [prod]
        freeze:
          - {days: [fri, sat, sun], from: "15:00", to: "23:59", tz: Europe/Berlin}
          - {start: "2026-12-20T00:00:00+01:00", end: "2027-01-04T00:00:00+01:00"}
    markers:
      "flux-system:podinfo": ghcr.io/stefanprodan/podinfo
    """
)


def y(text: str) -> bytes:
    return textwrap.dedent(text).encode()


# --- a valid file ---------------------------------------------------------------------


def test_the_documented_example_loads_with_every_value() -> None:
    cfg = load(EXAMPLE.encode())
    assert cfg.present
    assert list(cfg.environments) == ["dev", "staging", "prod"]
    dev, staging, prod = (cfg.env(n) for n in ("dev", "staging", "prod"))
    assert (dev.auto_merge, staging.auto_merge, prod.auto_merge) == (True, True, False)
    assert staging.require_upstream == "dev"
    assert prod.require_upstream == "staging"
    assert dev.require_upstream is None
    assert prod.paths == ("envs/prod/**",)
    assert prod.reviewers == ("sre-lead",)
    assert prod.labels == ("prod",)
    assert dev.labels == ()
    for env in (dev, staging, prod):
        assert env.merge_method == "squash"
        assert env.max_auto_merge_bump == Bump.MINOR
        assert env.allow_downgrade is False
        assert env.wait_for_checks is True
        assert env.draft is False
        assert env.allowed_tags is not None
        assert [p.pattern for p in env.allowed_tags] == [r"^v?\d+\.\d+\.\d+$"]
    weekly, absolute = prod.freeze
    assert weekly == WeeklyFreeze(frozenset({4, 5, 6}), time(15, 0), time(23, 59), "Europe/Berlin")
    assert isinstance(absolute, AbsoluteFreeze)
    assert absolute.start == datetime(2026, 12, 19, 23, 0, tzinfo=timezone.utc)
    assert absolute.end == datetime(2027, 1, 3, 23, 0, tzinfo=timezone.utc)
    assert cfg.markers == {"flux-system:podinfo": "ghcr.io/stefanprodan/podinfo"}
    assert cfg.defaults.name == "defaults"
    assert cfg.defaults.configured


def test_no_file_gives_the_builtin_policy() -> None:
    cfg = load(None)
    assert not cfg.present
    assert cfg.environments == {}
    assert cfg.markers == {}
    assert cfg.defaults == BUILTIN
    assert BUILTIN.auto_merge is False
    assert BUILTIN.allow_downgrade is False
    assert BUILTIN.max_auto_merge_bump == Bump.MINOR
    assert BUILTIN.wait_for_checks is True
    assert BUILTIN.allowed_tags is None


def test_an_environment_key_overrides_the_default_as_a_whole() -> None:
    cfg = load(
        y(
            """\
            version: 1
            defaults:
              labels: [promotion, bot]
              merge_method: rebase
              max_auto_merge_bump: patch
              allow_downgrade: true
              wait_for_checks: false
              draft: true
              assignees: [ops]
            environments:
              a: {paths: [a], labels: [only-a], max_auto_merge_bump: major, draft: false}
              b: {paths: [b]}
            """
        )
    )
    a, b = cfg.env("a"), cfg.env("b")
    assert a.labels == ("only-a",)
    assert b.labels == ("promotion", "bot")
    assert (a.max_auto_merge_bump, b.max_auto_merge_bump) == (Bump.MAJOR, Bump.PATCH)
    assert a.merge_method == b.merge_method == "rebase"
    assert a.allow_downgrade
    assert b.allow_downgrade
    assert not a.wait_for_checks
    assert (a.draft, b.draft) == (False, True)
    assert a.assignees == ("ops",)
    assert a.allowed_tags is None


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\n",
        "version: 1\ndefaults:\nenvironments:\nmarkers:\n",
        "\ufeffversion: 1\n",
        "# comment\nversion: 1  # trailing\n",
        "version: 1\r\nenvironments: {}\r\n",
    ],
    ids=["minimal", "empty-sections", "bom", "comments", "crlf"],
)
def test_minimal_files_load(text: str) -> None:
    cfg = load(text.encode())
    assert cfg.present
    assert cfg.environments == {}
    assert cfg.defaults == EnvPolicy(name="defaults")


def test_freeze_window_spellings() -> None:
    cfg = load(
        y(
            """\
            version: 1
            environments:
              prod:
                paths: [prod]
                freeze:
                  - {from: 22:00, to: 06:30}
                  - {days: [Friday, SAT], from: "9:05", to: "10:00", tz: UTC}
                  - {start: 2026-12-20T00:00:00+01:00, end: 2027-01-04T00:00:00Z}
                  - {start: "2026-12-24", end: "2026-12-27", tz: Europe/Berlin}
                  - {start: "2026-12-31T18:00:00", end: "2027-01-01T06:00", tz: America/New_York}
            """
        )
    )
    every, weekend, offset, dates, naive = cfg.env("prod").freeze
    assert every == WeeklyFreeze(frozenset(range(7)), time(22, 0), time(6, 30), "UTC")
    assert weekend == WeeklyFreeze(frozenset({4, 5}), time(9, 5), time(10, 0), "UTC")
    assert offset == AbsoluteFreeze(
        datetime(2026, 12, 19, 23, tzinfo=timezone.utc), datetime(2027, 1, 4, tzinfo=timezone.utc)
    )
    berlin = ZoneInfo("Europe/Berlin")
    assert dates == AbsoluteFreeze(
        datetime(2026, 12, 24, tzinfo=berlin), datetime(2026, 12, 27, tzinfo=berlin)
    )
    assert isinstance(naive, AbsoluteFreeze)
    assert naive.start == datetime(2026, 12, 31, 23, tzinfo=timezone.utc)
    assert naive.end == datetime(2027, 1, 1, 11, tzinfo=timezone.utc)


def test_markers_are_stored_as_canonical_repository_names() -> None:
    cfg = load(
        y(
            """\
            version: 1
            markers:
              "flux-system:nginx": nginx
              "apps:api": ghcr.io/acme/api
              "apps:web": index.docker.io/acme/web
            """
        )
    )
    assert cfg.markers == {
        "flux-system:nginx": "docker.io/library/nginx",
        "apps:api": "ghcr.io/acme/api",
        "apps:web": "docker.io/acme/web",
    }


def test_paths_are_normalised() -> None:
    cfg = load(y('version: 1\nenvironments:\n  dev: {paths: ["./envs/dev/", "**/dev.yaml"]}\n'))
    assert cfg.env("dev").paths == ("envs/dev", "**/dev.yaml")


# --- every error names its line and column ----------------------------------------------

# (id, file text, 1-based line, the text the column points at, a fragment of the message)
ERRORS = [
    ("version-2", "version: 2\n", 1, "2", "unsupported version '2'"),
    ("version-string", 'version: "1"\n', 1, '"1"', "unsupported version"),
    ("version-missing", "defaults: {}\n", 1, "defaults", "missing 'version'"),
    ("top-unknown", "version: 1\nenviroments: {}\n", 2, "enviroments",
     "unknown key 'enviroments' in the top level; did you mean 'environments'?"),
    ("top-list", "- version: 1\n", 1, "- version", "the top level must be a mapping"),
    ("defaults-unknown", "version: 1\ndefaults:\n  auto_merg: true\n", 3, "auto_merg",
     "unknown key 'auto_merg' in defaults; did you mean 'auto_merge'?"),
    ("env-unknown", "version: 1\nenvironments:\n  dev: {paths: [d], auto_merg: true}\n", 3,
     "auto_merg", "unknown key 'auto_merg' in environments.dev; did you mean 'auto_merge'?"),
    ("env-unknown-far", "version: 1\nenvironments:\n  dev: {paths: [d], colour: red}\n", 3,
     "colour", "known keys: auto_merge"),
    ("defaults-paths", "version: 1\ndefaults:\n  paths: [x]\n", 3, "paths",
     "'paths' cannot be set under defaults"),
    ("defaults-upstream", "version: 1\ndefaults:\n  require_upstream: dev\n", 3,
     "require_upstream", "'require_upstream' cannot be set under defaults"),
    ("bool-yes", "version: 1\ndefaults:\n  auto_merge: yes\n", 3, "yes",
     "defaults.auto_merge must be true or false, got 'yes'"),
    ("bool-number", "version: 1\ndefaults:\n  draft: 1\n", 3, "1", "defaults.draft must be"),
    ("bool-str-tag", "version: 1\ndefaults:\n  wait_for_checks: !!str true\n", 3, "!!str",
     "must be true or false"),
    ("bool-yaml11", "%YAML 1.1\n---\nversion: 1\ndefaults:\n  wait_for_checks: on\n", 5, "on",
     "must be true or false, got 'on'"),
    ("bool-list", "version: 1\ndefaults:\n  allow_downgrade: [true]\n", 3, "[true]",
     "got a list"),
    ("merge-method", "version: 1\ndefaults:\n  merge_method: squish\n", 3, "squish",
     "unknown value 'squish'; did you mean 'squash'?"),
    ("merge-method-number", "version: 1\ndefaults:\n  merge_method: 3\n", 3, "3",
     "must be a string, not a number"),
    ("bump", "version: 1\ndefaults:\n  max_auto_merge_bump: minr\n", 3, "minr",
     "did you mean 'minor'?"),
    ("bump-none", "version: 1\ndefaults:\n  max_auto_merge_bump: none\n", 3, "none",
     "one of patch, minor, major"),
    ("regex", "version: 1\ndefaults:\n  allowed_tags: ['^v(\\d+$']\n", 3, "'^v(",
     "is not a valid regular expression"),
    ("regex-second", "version: 1\ndefaults:\n  allowed_tags:\n    - ok\n    - '*x'\n", 5, "'*x'",
     "allowed_tags: '*x' is not a valid regular expression"),
    ("regex-empty-list", "version: 1\ndefaults:\n  allowed_tags: []\n", 3, "[]",
     "would refuse every tag"),
    ("regex-scalar", "version: 1\ndefaults:\n  allowed_tags: '^v'\n", 3, "'^v'",
     "must be a list, not a string"),
    ("labels-number", "version: 1\ndefaults:\n  labels: [ok, 7]\n", 3, "7",
     "defaults.labels[1] must be a string, not a number"),
    ("labels-null", "version: 1\ndefaults:\n  labels:\n", 3, "labels:", "must be a list"),
    ("reviewers-blank", "version: 1\ndefaults:\n  reviewers: ['  ']\n", 3, "'  '",
     "empty value"),
    ("day", "version: 1\ndefaults:\n  freeze: [{days: [fri, sonday], from: '1:00', to: '2:00'}]\n",
     3, "sonday", "unknown day 'sonday'; did you mean 'sunday'?"),
    ("days-empty", "version: 1\ndefaults:\n  freeze: [{days: [], from: '1:00', to: '2:00'}]\n", 3,
     "[]", "days is empty"),
    ("time-25", "version: 1\ndefaults:\n  freeze: [{from: '25:00', to: '23:00'}]\n", 3, "'25:00'",
     "defaults.freeze[0].from must be a time HH:MM"),
    ("time-text", "version: 1\ndefaults:\n  freeze:\n    - from: '10:00'\n      to: 3pm\n", 5,
     "3pm", "defaults.freeze[0].to must be a time HH:MM between 00:00 and 23:59, got '3pm'"),
    ("time-24", "version: 1\ndefaults:\n  freeze: [{from: '10:00', to: '24:00'}]\n", 3, "'24:00'",
     "must be a time"),
    ("time-minutes", "version: 1\ndefaults:\n  freeze: [{from: '10:60', to: '11:00'}]\n", 3,
     "'10:60'", "must be a time"),
    ("tz", "version: 1\ndefaults:\n  freeze: [{from: '1:00', to: '2:00', tz: Europe/Berln}]\n", 3,
     "Europe/Berln", "unknown time zone 'Europe/Berln'; did you mean 'Europe/Berlin'?"),
    ("tz-path", "version: 1\ndefaults:\n  freeze: [{from: '1:00', to: '2:00', tz: ../../etc/x}]\n",
     3, "../../etc/x", "unknown time zone"),
    ("tz-number", "version: 1\ndefaults:\n  freeze: [{from: '1:00', to: '2:00', tz: 1}]\n", 3,
     "1}", "must be a string"),
    ("freeze-no-to", "version: 1\ndefaults:\n  freeze:\n    - {from: '1:00'}\n", 4, "{from",
     "has no 'to'"),
    ("freeze-mixed", "version: 1\ndefaults:\n  freeze:\n    - {start: '2026-01-01T00:00Z',"
     " end: '2026-01-02T00:00Z', days: [mon]}\n", 4, "days", "mixes a weekly window"),
    ("freeze-unknown", "version: 1\ndefaults:\n  freeze: [{form: '1:00', to: '2:00'}]\n", 3,
     "form", "unknown key 'form' in defaults.freeze[0]; did you mean 'from'?"),
    ("freeze-scalar", "version: 1\ndefaults:\n  freeze: weekends\n", 3, "weekends",
     "defaults.freeze must be a list"),
    ("freeze-item-scalar", "version: 1\ndefaults:\n  freeze: [weekends]\n", 3, "weekends",
     "defaults.freeze[0] must be a mapping"),
    ("abs-no-offset", "version: 1\ndefaults:\n  freeze:\n    - start: '2026-12-20T00:00:00'\n"
     "      end: '2026-12-21T00:00:00+01:00'\n", 4, "'2026-12-20", "has no UTC offset"),
    ("abs-offset-and-tz", "version: 1\ndefaults:\n  freeze:\n"
     "    - start: '2026-12-20T00:00+01:00'\n      end: '2026-12-21'\n      tz: UTC\n",
     4, "'2026", "not both"),
    ("abs-order", "version: 1\ndefaults:\n  freeze:\n    - start: '2026-12-20T00:00Z'\n"
     "      end: '2026-12-19T00:00Z'\n", 5, "'2026-12-19", "end is not after start"),
    ("abs-bad-date", "version: 1\ndefaults:\n  freeze:\n    - start: '2026-13-20T00:00Z'\n"
     "      end: '2026-12-21T00:00Z'\n", 4, "'2026-13", "is not an ISO 8601 date-time"),
    ("abs-no-end", "version: 1\ndefaults:\n  freeze:\n    - start: '2026-12-20T00:00Z'\n", 4,
     "start", "has no 'end'"),
    ("upstream-missing", "version: 1\nenvironments:\n"
     "  prod: {paths: [p], require_upstream: stagin}\n  staging: {paths: [s]}\n", 3, "stagin",
     "names 'stagin', which is not an environment; did you mean 'staging'?"),
    ("upstream-self", "version: 1\nenvironments:\n  prod: {paths: [p], require_upstream: prod}\n",
     3, "prod}", "require_upstream makes a cycle: prod -> prod"),
    ("upstream-cycle", "version: 1\nenvironments:\n  a: {paths: [a], require_upstream: b}\n"
     "  b: {paths: [b], require_upstream: c}\n  c: {paths: [c], require_upstream: a}\n", 3, "b}",
     "require_upstream makes a cycle: a -> b -> c -> a"),
    ("upstream-number", "version: 1\nenvironments:\n  a: {paths: [a], require_upstream: 1}\n", 3,
     "1}", "must be a string"),
    ("path-absolute", "version: 1\nenvironments:\n  dev: {paths: [/etc/**]}\n", 3, "/etc",
     "'/etc/**' is absolute; it must stay inside the repo"),
    ("path-dotdot", "version: 1\nenvironments:\n  dev: {paths: ['envs/../../secrets/**']}\n", 3,
     "'envs", "leaves the repo"),
    ("path-parent", "version: 1\nenvironments:\n  dev:\n    paths:\n      - envs/dev/**\n"
     "      - ../other-repo/**\n", 6, "../other", "'../other-repo/**' leaves the repo"),
    ("path-drive", "version: 1\nenvironments:\n  dev: {paths: ['C:/x']}\n", 3, "'C:", "absolute"),
    ("path-home", "version: 1\nenvironments:\n  dev: {paths: ['~/x']}\n", 3, "'~", "absolute"),
    ("path-backslash", "version: 1\nenvironments:\n  dev: {paths: ['envs\\dev']}\n", 3, "'envs",
     "backslash"),
    ("path-empty", "version: 1\nenvironments:\n  dev: {paths: ['']}\n", 3, "''", "is empty"),
    ("path-dot-segment", "version: 1\nenvironments:\n  dev: {paths: ['envs/./dev']}\n", 3, "'envs",
     "'.' segment"),
    ("path-double-star", "version: 1\nenvironments:\n  dev: {paths: ['envs/**.yaml']}\n", 3,
     "'envs", "must be a whole segment"),
    ("path-class", "version: 1\nenvironments:\n  dev: {paths: ['envs/[ab]']}\n", 3, "'envs",
     "character classes"),
    ("paths-none", "version: 1\nenvironments:\n  dev: {auto_merge: true}\n", 3, "dev",
     "environment 'dev' has no paths"),
    ("paths-empty", "version: 1\nenvironments:\n  dev: {paths: []}\n", 3, "dev", "has no paths"),
    ("env-null", "version: 1\nenvironments:\n  dev:\n", 3, "dev:",
     "environments.dev must be a mapping, not nothing"),
    ("env-list", "version: 1\nenvironments: [dev]\n", 2, "[dev]",
     "environments must be a mapping, not a list"),
    ("env-name", "version: 1\nenvironments:\n  prod/eu: {paths: [p]}\n", 3, "prod/eu",
     "invalid environment name"),
    ("env-name-number", "version: 1\nenvironments:\n  2024: {paths: [p]}\n", 3, "2024",
     "keys in environments must be strings"),
    ("env-duplicate", "version: 1\nenvironments:\n  dev: {paths: [a]}\n  dev: {paths: [b]}\n", 4,
     "dev", "duplicate key 'dev' in environments (first at line 3)"),
    ("env-case", "version: 1\nenvironments:\n  prod: {paths: [a]}\n  Prod: {paths: [b]}\n", 4,
     "Prod", "overlaps environment 'prod'"),
    ("env-same-path", "version: 1\nenvironments:\n  a: {paths: [envs/**]}\n"
     "  b: {paths: [envs/**]}\n", 4, "{paths", "belongs to both 'a' and 'b'"),
    ("key-duplicate", "version: 1\ndefaults:\n  auto_merge: true\n  draft: false\n"
     "  auto_merge: false\n", 5, "auto_merge", "duplicate key 'auto_merge' in defaults"),
    ("merge-key", "version: 1\nbase: &b {paths: [x]}\n", 2, "base", "unknown key 'base'"),
    ("merge-key-env", "version: 1\nenvironments:\n  dev:\n    <<: {auto_merge: true}\n"
     "    paths: [d]\n", 4, "<<", "merge keys ('<<') are not supported"),
    ("marker-key", "version: 1\nmarkers:\n  podinfo: ghcr.io/x/podinfo\n", 3, "podinfo",
     "marker 'podinfo' is not NAMESPACE:POLICY"),
    ("marker-tag", "version: 1\nmarkers:\n  'ns:p': ghcr.io/x/podinfo:1.0\n", 3, "ghcr",
     "without tag or digest"),
    ("marker-upper", "version: 1\nmarkers:\n  'ns:p': ghcr.io/X/Podinfo\n", 3, "ghcr",
     "repository paths must be lowercase"),
    ("yaml-flow", "version: 1\nenvironments: {dev: {paths: [x]}\n", 3, "", "cannot parse YAML"),
    ("yaml-tab", "version: 1\ndefaults:\n\tdraft: true\n", 3, "\t", "cannot parse YAML"),
    ("yaml-two-docs", "version: 1\n---\nversion: 1\n", 2, "---",
     "cannot parse YAML: but found another document"),
    ("yaml-alias", "version: 1\ndefaults: *nothing\n", 2, "*nothing", "undefined alias"),
    ("yaml-control", "version: 1\ndefaults: \x07\n", 2, "\x07", "is not allowed"),
    ("empty", "", 1, "", "the config file is empty"),
    ("only-comments", "# nothing yet\n", 1, "#", "the config file is empty"),
]


@pytest.mark.parametrize(
    ("text", "line", "at", "fragment"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
def test_every_error_names_file_line_and_column(text: str, line: int, at: str,
                                                 fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(text.encode(), file="repo/.promoter.yaml")
    err = info.value
    assert fragment in err.message or fragment in str(err)
    assert err.file == "repo/.promoter.yaml"
    assert err.line == line
    if at:
        source_line = text.split("\n")[line - 1]
        assert err.column == source_line.index(at) + 1, str(err)
    assert str(err).startswith(f"repo/.promoter.yaml:{line}")
    assert err.code == 2
    assert isinstance(err, UsageError)


def test_error_says_what_to_do() -> None:
    with pytest.raises(ConfigError) as info:
        load(b"version: 1\nenvironments:\n  dev: {paths: [d], auto_merg: true}\n")
    assert str(info.value).startswith(
        ".promoter.yaml:3:21: unknown key 'auto_merg' in environments.dev; "
        "did you mean 'auto_merge'? (known keys: auto_merge, "
    )
    with pytest.raises(ConfigError) as info:
        load(b"version: 2\n")
    assert "this promoter reads 'version: 1'" in str(info.value)


def test_a_bad_regex_is_shown_as_written_not_double_escaped() -> None:
    with pytest.raises(ConfigError) as info:
        load("version: 1\ndefaults:\n  allowed_tags: ['^v(\\d+\\.\\d+$']\n")
    assert "'^v(\\d+\\.\\d+$' is not a valid regular expression" in info.value.message
    assert "\\\\" not in str(info.value)


def test_not_utf8_names_the_line() -> None:
    with pytest.raises(ConfigError) as info:
        load(b"version: 1\ndefaults:\n  labels: [\xff]\n")
    assert (info.value.line, info.value.column) == (3, 12)
    assert "not UTF-8" in info.value.message


def test_str_input_is_accepted() -> None:
    assert load("version: 1\n").present


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("version:1 \n-[]{}'\"#&*!|>?,@`%\t\\ab0é")),
               max_size=60))
def test_any_text_loads_or_raises_config_error(text: str) -> None:
    outcome: Config | ConfigError
    try:
        outcome = load(text.encode())
    except ConfigError as exc:
        outcome = exc
    if isinstance(outcome, ConfigError):
        assert outcome.file == ".promoter.yaml"
        assert outcome.line is None or outcome.line >= 1
    else:
        assert outcome.present


# --- helpers ---------------------------------------------------------------------------


@pytest.fixture
def cfg() -> Config:
    return load(EXAMPLE.encode())


def test_env_unknown_lists_the_known_ones(cfg: Config) -> None:
    with pytest.raises(UsageError) as info:
        cfg.env("prdo")
    text = str(info.value)
    assert "unknown environment 'prdo'; did you mean 'prod'?" in text
    assert "known environments: dev, staging, prod" in text
    assert info.value.code == 2


def test_env_without_config_file_says_to_add_one() -> None:
    with pytest.raises(UsageError, match=r"--env prod needs a \.promoter\.yaml"):
        load(None).env("prod")
    with pytest.raises(UsageError, match="defines no environments"):
        load(b"version: 1\n").env("prod")


@pytest.mark.parametrize(
    ("path", "env"),
    [
        ("envs/dev/a/b.yaml", "dev"),
        ("envs/dev/app.yaml", "dev"),
        ("envs/staging/deep/er/x.yml", "staging"),
        ("envs/prod/values.yaml", "prod"),
        ("envs/production/values.yaml", None),
        ("envs/dev.yaml", None),
        ("other/envs/dev/a.yaml", None),
        ("README.md", None),
    ],
)
def test_env_for_path(cfg: Config, path: str, env: str | None) -> None:
    found = cfg.env_for_path(path)
    assert (found.name if found else None) == env


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("envs/dev/**", "envs/dev/a/b/c.yaml", True),
        ("envs/dev", "envs/dev/a/b.yaml", True),
        ("envs/dev", "envs/devel/a.yaml", False),
        ("envs/*/values.yaml", "envs/eu/values.yaml", True),
        ("envs/*/values.yaml", "envs/eu/x/values.yaml", False),
        ("**/prod.yaml", "a/b/prod.yaml", True),
        ("**/prod.yaml", "prod.yaml", True),
        ("apps/**/prod/*.yaml", "apps/x/y/prod/a.yaml", True),
        ("apps/**/prod/*.yaml", "apps/prod/a.yaml", True),
        ("apps/**/prod/*.yaml", "apps/x/prod/sub/a.yaml", False),
        ("app?.yaml", "app1.yaml", True),
        ("app?.yaml", "app/.yaml", False),
    ],
)
def test_path_globs(pattern: str, path: str, hit: bool) -> None:
    cfg = load(f"version: 1\nenvironments:\n  e: {{paths: ['{pattern}']}}\n".encode())
    assert cfg.env("e").matches(path) is hit
    assert config.path_matches([pattern], path) is hit


def test_overlapping_globs_make_a_path_ambiguous() -> None:
    cfg = load(b"version: 1\nenvironments:\n  all: {paths: ['envs/**']}\n"
               b"  prod: {paths: ['envs/prod/**']}\n")
    assert cfg.env_for_path("envs/dev/a.yaml") == cfg.env("all")
    with pytest.raises(ConfigError, match=r"belongs to several environments \(all, prod\)"):
        cfg.env_for_path("envs/prod/a.yaml")


def test_policy_for_changed_files(cfg: Config) -> None:
    assert cfg.policy_for(["envs/prod/a.yaml", "envs/prod/b/c.yaml"]).name == "prod"
    assert cfg.policy_for(["apps/x.yaml"]) == cfg.defaults
    assert cfg.policy_for([]) == cfg.defaults
    with pytest.raises(UsageError, match=r"spans several environments: dev \(envs/dev/a\.yaml\)"):
        cfg.policy_for(["envs/dev/a.yaml", "envs/prod/a.yaml"])
    # A prod file next to an unowned one must not fall back to the looser defaults.
    with pytest.raises(UsageError, match="no environment"):
        cfg.policy_for(["apps/x.yaml", "envs/prod/a.yaml"])


def test_select(cfg: Config) -> None:
    assert select(cfg, env="staging").name == "staging"
    assert select(cfg, env=None, files=["envs/dev/x.yaml"]).name == "dev"
    assert select(None, env=None, files=["envs/dev/x.yaml"]) == BUILTIN
    assert select(load(None), env=None) == BUILTIN
    with pytest.raises(UsageError):
        select(None, env="prod")


# --- flags only tighten ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("configured_auto_merge", "flag", "granted"),
    [
        (None, None, False),  # no config: never unless asked
        (None, True, True),  # no config and --auto-merge
        (None, False, False),
        (False, True, False),  # the caller cannot loosen the policy
        (False, None, False),
        (True, None, True),
        (True, True, True),
        (True, False, False),  # but may tighten it
    ],
)
def test_tighten_auto_merge(configured_auto_merge: bool | None, flag: bool | None,
                            granted: bool) -> None:
    policy = None if configured_auto_merge is None else EnvPolicy("prod", ("p",),
                                                                  configured_auto_merge)
    assert tighten(policy, auto_merge=flag).auto_merge is granted


def test_tighten_never_loosens(cfg: Config) -> None:
    prod = cfg.env("prod")
    loose = replace_policy(prod, wait_for_checks=False, max_auto_merge_bump=Bump.PATCH,
                           draft=True, labels=("prod",))
    tight = tighten(loose, wait_for_checks=False, max_auto_merge_bump=Bump.MAJOR, draft=False,
                    labels=["extra", "prod"], reviewers=["me"], assignees=["you"])
    assert tight.wait_for_checks is False  # False never loosens, and it was already off
    assert tight.max_auto_merge_bump == Bump.PATCH  # cannot be raised
    assert tight.draft is True
    assert tight.labels == ("prod", "extra")
    assert tight.reviewers == ("sre-lead", "me")
    assert tight.assignees == ("you",)
    for key in ("allowed_tags", "allow_downgrade", "freeze", "require_upstream", "paths",
                "merge_method", "name", "configured"):
        assert getattr(tight, key) == getattr(prod, key)
    stricter = tighten(loose, wait_for_checks=True, max_auto_merge_bump=Bump.PATCH)
    assert stricter.wait_for_checks is True
    dev = tighten(cfg.env("dev"), auto_merge=True, max_auto_merge_bump=Bump.PATCH)
    assert (dev.auto_merge, dev.max_auto_merge_bump) == (True, Bump.PATCH)


def test_a_draft_never_auto_merges(cfg: Config) -> None:
    assert tighten(cfg.env("dev"), draft=True).auto_merge is False
    assert tighten(None, auto_merge=True, draft=True).auto_merge is False


def test_tighten_without_config_keeps_the_builtin_guards() -> None:
    policy = tighten(None, auto_merge=True)
    assert not policy.configured
    assert (policy.allow_downgrade, policy.max_auto_merge_bump, policy.wait_for_checks) == (
        False, Bump.MINOR, True,
    )
    assert tighten(policy).auto_merge is True  # idempotent


def replace_policy(policy: EnvPolicy, **changes: object) -> EnvPolicy:
    from dataclasses import replace

    return replace(policy, **changes)  # type: ignore[arg-type]


# --- freeze windows on their own --------------------------------------------------------


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo("Europe/Berlin"))  # type: ignore[misc]


def test_weekly_window_is_inclusive_to_the_last_minute() -> None:
    w = WeeklyFreeze(frozenset({4}), time(15, 0), time(23, 59), "Europe/Berlin")
    assert not w.contains(berlin(2026, 5, 8, 14, 59, 59))
    assert w.contains(berlin(2026, 5, 8, 15, 0))
    assert w.contains(berlin(2026, 5, 8, 23, 59, 59))
    assert not w.contains(berlin(2026, 5, 9, 0, 0))
    assert "fri 15:00-23:59 Europe/Berlin" in w.describe()


def test_naive_now_is_a_bug() -> None:
    w = WeeklyFreeze(frozenset({4}), time(15, 0), time(23, 59))
    with pytest.raises(PromoteError, match="timezone-aware"):
        w.contains(datetime(2026, 5, 8, 16))


# --- the key tables: a key is one row (its reader) plus its model field ------------------

# a value for each policy key that differs from the built-in default
KEY_SAMPLES = {
    "auto_merge": "true",
    "merge_method": "rebase",
    "allowed_tags": "['^x$']",
    "max_auto_merge_bump": "patch",
    "allow_downgrade": "true",
    "wait_for_checks": "false",
    "freeze": "[{from: '01:00', to: '02:00'}]",
    "labels": "[a]",
    "reviewers": "[b]",
    "assignees": "[c]",
    "draft": "true",
    "paths": "[envs/other]",
    "require_upstream": "up",
}


def _changed(before: EnvPolicy, after: EnvPolicy) -> set[str]:
    return {f.name for f in fields(EnvPolicy) if getattr(before, f.name) != getattr(after, f.name)}


@pytest.mark.parametrize("key", list(KEY_SAMPLES))
def test_each_row_sets_the_field_of_its_own_name_and_nothing_else(key: str) -> None:
    assert set(KEY_SAMPLES) == set(loader.POLICY_KEYS) | set(loader.ENV_KEYS)
    envs = "environments:\n  up: {paths: [envs/up]}\n  x:\n    paths: [envs/x]\n"
    plain = load(f"version: 1\n{envs}").env("x")
    line = f"    {key}: {KEY_SAMPLES[key]}\n"
    if key == "paths":
        line, envs = "", envs.replace("[envs/x]", KEY_SAMPLES[key])
    assert _changed(plain, load(f"version: 1\n{envs}{line}").env("x")) == {key}
    if key in loader.POLICY_KEYS:
        defaults = load(f"version: 1\ndefaults:\n  {key}: {KEY_SAMPLES[key]}\n").defaults
        assert _changed(load("version: 1\n").defaults, defaults) == {key}


def test_top_level_keys_are_read_in_table_order_whatever_the_file_order() -> None:
    cfg = load("version: 1\nenvironments:\n  dev: {paths: [d]}\ndefaults:\n  draft: true\n")
    assert cfg.env("dev").draft  # the defaults were read before the environments
    assert list(loader.TOP_KEYS).index("defaults") < list(loader.TOP_KEYS).index("environments")
