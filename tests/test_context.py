"""context.detect: GitHub Actions, GitLab CI and local runs, and hostile values."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promoter.context import Context, detect, provenance_dict, trailers

SHA = "3f2c1e0d9b8a7f6e5d4c3b2a1908f7e6d5c4b3a2"

GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_REPOSITORY": "acme/api",
    "GITHUB_SHA": SHA,
    "GITHUB_REF": "refs/tags/v1.4.2",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_API_URL": "https://api.github.com",
    "GITHUB_RUN_ID": "9876543210",
    "GITHUB_RUN_NUMBER": "42",
    "GITHUB_RUN_ATTEMPT": "1",
    "GITHUB_ACTOR": "dependabot[bot]",
    "GITHUB_EVENT_NAME": "push",
}

GITLAB = {
    "GITLAB_CI": "true",
    "CI_PROJECT_PATH": "acme/platform/api",
    "CI_COMMIT_SHA": SHA,
    "CI_COMMIT_REF_NAME": "main",
    "CI_PIPELINE_URL": "https://gitlab.example.com/acme/platform/api/-/pipelines/555",
    "CI_PIPELINE_IID": "77",
    "CI_PIPELINE_SOURCE": "push",
    "GITLAB_USER_LOGIN": "jane.doe",
    "CI_SERVER_URL": "https://gitlab.example.com",
    "CI_API_V4_URL": "https://gitlab.example.com/api/v4",
    "CI_JOB_TOKEN": "glcbt-64_job_token_value",
}


def test_github_actions() -> None:
    ctx = detect(GITHUB)
    assert ctx == Context(
        kind="github",
        source_repo="acme/api",
        source_commit=SHA,
        ref="refs/tags/v1.4.2",
        pipeline_url="https://github.com/acme/api/actions/runs/9876543210",
        actor="dependabot[bot]",
        run_number=42,
        run_attempt=1,
        server_url="https://github.com",
        api_url="https://api.github.com",
        event="push",
        job_token=False,
        project_path="acme/api",
    )
    assert ctx.source_url == "https://github.com/acme/api"


def test_github_rerun_links_the_attempt() -> None:
    ctx = detect({**GITHUB, "GITHUB_RUN_ATTEMPT": "3"})
    assert ctx.pipeline_url == "https://github.com/acme/api/actions/runs/9876543210/attempts/3"
    assert ctx.run_attempt == 3


def test_github_enterprise_server_and_default_server() -> None:
    ghes = detect({**GITHUB, "GITHUB_SERVER_URL": "https://ghe.acme.io/",
                   "GITHUB_API_URL": "https://ghe.acme.io/api/v3"})
    assert ghes.pipeline_url == "https://ghe.acme.io/acme/api/actions/runs/9876543210"
    assert ghes.api_url == "https://ghe.acme.io/api/v3"
    bare = {k: v for k, v in GITHUB.items() if k not in {"GITHUB_SERVER_URL", "GITHUB_API_URL"}}
    assert detect(bare).pipeline_url == "https://github.com/acme/api/actions/runs/9876543210"
    assert detect(bare).api_url is None


def test_gitlab_ci() -> None:
    ctx = detect(GITLAB)
    assert ctx == Context(
        kind="gitlab",
        source_repo="acme/platform/api",
        source_commit=SHA,
        ref="main",
        pipeline_url="https://gitlab.example.com/acme/platform/api/-/pipelines/555",
        actor="jane.doe",
        run_number=77,
        run_attempt=None,
        server_url="https://gitlab.example.com",
        api_url="https://gitlab.example.com/api/v4",
        event="push",
        job_token=True,
        project_path="acme/platform/api",
    )


def test_gitlab_without_job_token() -> None:
    assert detect({**GITLAB, "CI_JOB_TOKEN": ""}).job_token is False
    without = {k: v for k, v in GITLAB.items() if k != "CI_JOB_TOKEN"}
    assert detect(without).job_token is False


def test_local_run() -> None:
    ctx = detect({"USER": "alice", "HOME": "/home/alice"})
    assert ctx == Context(kind="local", actor="alice")
    assert trailers(ctx) == [("Triggered-By", "alice")]
    assert detect({}).actor is None


def test_github_wins_when_both_are_set_and_false_flags_mean_local() -> None:
    assert detect({**GITLAB, **GITHUB}).kind == "github"
    assert detect({**GITHUB, "GITHUB_ACTIONS": "false"}).kind == "local"
    assert detect({**GITLAB, "GITLAB_CI": "1"}).kind == "local"


def test_detect_reads_only_the_mapping_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in GITHUB.items():
        monkeypatch.setenv(name, value)
    assert detect({}).kind == "local"


def test_provenance_and_trailers() -> None:
    ctx = detect(GITHUB)
    assert provenance_dict(ctx) == {
        "ci": "github",
        "source_repo": "acme/api",
        "source_url": "https://github.com/acme/api",
        "source_commit": SHA,
        "ref": "refs/tags/v1.4.2",
        "pipeline_url": "https://github.com/acme/api/actions/runs/9876543210",
        "actor": "dependabot[bot]",
    }
    assert trailers(ctx) == [
        ("Source-Repo", "https://github.com/acme/api"),
        ("Source-Commit", SHA),
        ("Pipeline", "https://github.com/acme/api/actions/runs/9876543210"),
        ("Triggered-By", "dependabot[bot]"),
    ]
    assert provenance_dict(detect({}))["source_commit"] is None


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("GITHUB_ACTOR", "mallory\nSigned-off-by: Linus <l@kernel.org>", "actor"),
        ("GITHUB_ACTOR", "[click](https://evil.example)", "actor"),
        ("GITHUB_ACTOR", "bob\u202egnp.exe", "actor"),
        ("GITHUB_SHA", f"{SHA}\nPipeline: https://evil.example", "source_commit"),
        ("GITHUB_SHA", "not-a-sha", "source_commit"),
        ("GITHUB_REF", "refs/heads/x\rTriggered-By: root", "ref"),
        ("GITHUB_REF", "refs/heads/a\u2028b", "ref"),
        ("GITHUB_REF", "refs/heads/with space", "ref"),
        ("GITHUB_REPOSITORY", "acme/api\n", "source_repo"),
        ("GITHUB_REPOSITORY", "../../etc", "source_repo"),
        ("GITHUB_API_URL", "javascript:alert(1)", "api_url"),
        ("GITHUB_API_URL", "https://api.github.com/x)[y](z", "api_url"),
        ("GITHUB_RUN_NUMBER", "42\n", "run_number"),
        ("GITHUB_EVENT_NAME", "push\x00", "event"),
    ],
)
def test_hostile_values_are_dropped(name: str, value: str, field: str) -> None:
    ctx = detect({**GITHUB, name: value})
    assert getattr(ctx, field) is None
    # the rest of the context is still there
    assert ctx.kind == "github"
    if field != "source_repo":
        assert ctx.source_repo == "acme/api"


def test_hostile_repository_or_run_id_leaves_no_pipeline_url() -> None:
    assert detect({**GITHUB, "GITHUB_REPOSITORY": "acme/api\nX: y"}).pipeline_url is None
    assert detect({**GITHUB, "GITHUB_RUN_ID": "1/../../x"}).pipeline_url is None
    hostile_server = detect({**GITHUB, "GITHUB_SERVER_URL": "https://x.io/<img src=x>"})
    assert hostile_server.server_url == "https://github.com"


def test_hostile_gitlab_values_are_dropped() -> None:
    ctx = detect({**GITLAB, "CI_PIPELINE_URL": "https://gl.example/p\n\nFake-Trailer: 1",
                  "GITLAB_USER_LOGIN": "a b", "CI_SERVER_URL": "ftp://gl.example"})
    assert (ctx.pipeline_url, ctx.actor, ctx.server_url) == (None, None, None)
    assert ctx.source_url is None
    assert ("Source-Repo", "acme/platform/api") in trailers(ctx)


_UNSAFE = {"Cc", "Cf", "Zl", "Zp"}
_KEYS = sorted({*GITHUB, *GITLAB} - {"GITHUB_ACTIONS", "GITLAB_CI"})


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(["GITHUB_ACTIONS", "GITLAB_CI"]),
    values=st.dictionaries(st.sampled_from(_KEYS), st.text(max_size=40), max_size=len(_KEYS)),
)
def test_no_untrusted_character_reaches_trailers_or_provenance(
    kind: str, values: dict[str, str]
) -> None:
    ctx = detect({**values, kind: "true"})
    texts = [value for _, value in trailers(ctx)]
    texts += [value for value in provenance_dict(ctx).values() if value is not None]
    for text in texts:
        assert text
        assert not any(unicodedata.category(ch) in _UNSAFE for ch in text), text
        assert not any(ch.isspace() for ch in text), text
