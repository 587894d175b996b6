"""The forge registry: one row per forge, read by the CLI and the CI outputs."""

from __future__ import annotations

import importlib

import pytest

from promoter.forges import registry
from promoter.forges.registry import FORGES


def test_every_row_names_a_module_that_connects() -> None:
    for spec in FORGES.values():
        module = importlib.import_module(spec.module)
        assert callable(module.from_setup), spec.name


@pytest.mark.parametrize(("environ", "forge"), [
    ({"GITHUB_ACTIONS": "true"}, "github"),
    ({"GITLAB_CI": "true"}, "gitlab"),
    ({"GITHUB_ACTIONS": "true", "GITEA_ACTIONS": "true"}, "gitea"),
    ({"GITHUB_ACTIONS": "true", "FORGEJO_ACTIONS": "true"}, "gitea"),
    ({"GITHUB_ACTIONS": "true", "GITLAB_CI": "true"}, "gitlab"),
    ({"TF_BUILD": "True"}, "azure"),
    ({"BITBUCKET_BUILD_NUMBER": "7", "BITBUCKET_COMMIT": "abc"}, "bitbucket"),
    ({}, None),
])
def test_ci_detection(environ: dict[str, str], forge: str | None) -> None:
    assert registry.detect(environ) == forge


def test_tokens_in_order_and_the_job_token_last() -> None:
    gitlab, gitea = FORGES["gitlab"], FORGES["gitea"]
    assert registry.tokens(gitlab, {"CI_JOB_TOKEN": "j"}) == (None, "j")
    assert registry.tokens(gitlab, {"CI_JOB_TOKEN": "j", "GITLAB_TOKEN": "t"}) == ("t", None)
    assert registry.tokens(gitlab, {"GITLAB_TOKEN": "t", "PROMOTE_TOKEN": "p"}) == ("p", None)
    assert registry.tokens(gitea, {"FORGEJO_TOKEN": "f", "GITEA_TOKEN": "g"}) == ("g", None)
    assert registry.tokens(gitea, {"FORGEJO_TOKEN": "f"}) == ("f", None)
    assert registry.tokens(FORGES["github"], {"GITLAB_TOKEN": "t"}) == (None, None)


def test_request_labels() -> None:
    assert registry.label("gitlab", 3, "b") == "merge request !3"
    assert registry.label("github", 3, "b") == "pull request #3"
    assert registry.label("git", 0, "promote/x") == "branch promote/x"
    assert registry.label(None, 3, "b") == "pull request #3"


def test_help_texts_name_every_forge() -> None:
    for spec in FORGES.values():
        assert spec.name in registry.forge_help()
    assert registry.token_help() == (
        "Token: PROMOTE_TOKEN, else GITHUB_TOKEN (github), GITLAB_TOKEN / CI_JOB_TOKEN "
        "(gitlab), GITEA_TOKEN / FORGEJO_TOKEN (gitea), AZURE_DEVOPS_TOKEN / "
        "AZURE_DEVOPS_EXT_PAT, else SYSTEM_ACCESSTOKEN inside Azure Pipelines (azure), "
        "BITBUCKET_TOKEN (bitbucket; with BITBUCKET_USERNAME for an app password or API "
        "token).")


def test_the_azure_job_token_is_read_inside_azure_pipelines_only() -> None:
    azure = FORGES["azure"]
    assert registry.tokens(azure, {"SYSTEM_ACCESSTOKEN": "j"}) == (None, None)
    assert registry.tokens(azure, {"SYSTEM_ACCESSTOKEN": "j", "TF_BUILD": "True"}) == (
        None, "j")
