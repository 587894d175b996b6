"""ci_output: the strings CI reads (GitHub outputs, summary, annotations; GitLab dotenv
and annotations), their escaping, and the one writer."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from promoter import redact
from promoter.ci_output import (
    github_annotations,
    github_outputs,
    github_summary,
    gitlab_annotations,
    gitlab_dotenv,
    load_result,
    main,
    md,
    random_delimiter,
    write_ci_outputs,
)
from promoter.errors import EditError, ForgeError, PromoteError
from tests.ci_files import parse_github_output

POLICY = {
    "allows_merge": False,
    "refused": True,
    "checks": [
        {"name": "allowed_tags", "status": "pass", "reason": "1.4.2 matches ^v?\\d+"},
        {"name": "max_auto_merge_bump", "status": "fail", "reason": "major bump 1 -> 2"},
        {"name": "freeze", "status": "skip", "reason": "no window"},
    ],
}

RESULT: dict[str, Any] = {
    "status": "proposed",
    "forge": "github",
    "repo": "acme/config",
    "base": "main",
    "base_commit": "a" * 40,
    "env": "prod",
    "images": ["ghcr.io/acme/api:1.4.2"],
    "changes": [
        {"file": "envs/prod/deploy.yaml", "line": 12, "old": "ghcr.io/acme/api:1.4.1",
         "new": "ghcr.io/acme/api:1.4.2", "image": "ghcr.io/acme/api", "field": "image",
         "format": "workload"},
    ],
    "skips": [{"file": "envs/prod/job.yaml", "line": 3, "image": "ghcr.io/acme/api",
               "reason": "digest-pinned, no digest given"}],
    "diff": "--- a/envs/prod/deploy.yaml\n+++ b/envs/prod/deploy.yaml\n@@ -12 +12 @@\n"
            "-  image: ghcr.io/acme/api:1.4.1\n+  image: ghcr.io/acme/api:1.4.2\n",
    "changed": True,
    "branch": "promote/prod/api",
    "commit": "b" * 40,
    "pull_request": {"url": "https://github.com/acme/config/pull/7", "number": 7,
                     "created": True, "updated": False},
    "merged": False,
    "auto_merge": False,
    "policy": POLICY,
    "provenance": {"source_repo": "acme/api", "source_commit": "c" * 40,
                   "pipeline_url": "https://github.com/acme/api/actions/runs/1",
                   "actor": "jane"},
}


# --- $GITHUB_OUTPUT -----------------------------------------------------------------


def test_github_outputs_round_trip() -> None:
    text = github_outputs(RESULT, "DELIM_1")
    values = parse_github_output(text)
    assert values == {
        "pr-url": "https://github.com/acme/config/pull/7",
        "pr-number": "7",
        "branch": "promote/prod/api",
        "commit": "b" * 40,
        "changed": "true",
        "merged": "false",
        "auto-merge": "false",
        "status": "proposed",
        "policy": values["policy"],
    }
    assert "\n" in values["policy"]  # the multi-line form carries pretty JSON
    assert json.loads(values["policy"]) == POLICY
    assert text.startswith("pr-url<<DELIM_1\n")


def test_outputs_of_a_run_without_pull_request() -> None:
    values = parse_github_output(github_outputs({"status": "up-to-date", "changed": False}))
    assert values["pr-url"] == values["pr-number"] == values["branch"] == ""
    assert values["changed"] == "false"
    assert json.loads(values["policy"]) == {}


def test_delimiter_is_random_per_call() -> None:
    first, second = random_delimiter(), random_delimiter()
    assert first != second
    assert re.fullmatch(r"promoter_EOF_[0-9a-f]{32}", first)
    heads = {github_outputs(RESULT).split("\n", 1)[0] for _ in range(3)}
    assert len(heads) == 3


def test_a_value_holding_the_delimiter_gets_another_one() -> None:
    hostile = {**RESULT, "branch": "x\nDELIM_A\nstatus<<DELIM_A\nmerged\nDELIM_A"}
    fresh = iter(["DELIM_A", "DELIM_B"])
    text = github_outputs(hostile, new_delimiter=lambda: next(fresh))
    headers = [line for line in text.splitlines() if line.startswith(("pr-url<<", "branch<<"))]
    assert headers == ["pr-url<<DELIM_B", "branch<<DELIM_B"]
    values = parse_github_output(text)
    assert values["branch"] == hostile["branch"]
    assert values["status"] == "proposed"


def test_a_given_delimiter_that_collides_is_replaced() -> None:
    fresh = itertools.count()
    text = github_outputs({**RESULT, "commit": "EOF"}, "EOF",
                          new_delimiter=lambda: f"D{next(fresh)}")
    assert parse_github_output(text)["commit"] == "EOF"
    assert "<<D0\n" in text


def test_a_newline_in_a_value_cannot_forge_an_output() -> None:
    values = parse_github_output(github_outputs({**RESULT, "branch": "b\nmerged=true"}))
    assert values["merged"] == "false"
    assert values["branch"] == "b\nmerged=true"


def test_outputs_are_redacted() -> None:
    redact.register("ghp_supersecrettoken1234")
    result = {**RESULT, "branch": "leak-ghp_supersecrettoken1234"}
    text = github_outputs(result) + github_summary(result) + gitlab_dotenv(result)
    assert "ghp_supersecrettoken1234" not in text
    assert "leak-***" in parse_github_output(github_outputs(result))["branch"]


# --- annotations --------------------------------------------------------------------


def test_annotation_points_at_file_line_and_column() -> None:
    error = EditError("duplicate key 'image'", file="envs/prod/deploy.yaml", line=12, column=5,
                      hint="remove one of them")
    assert github_annotations(error) == (
        "::error file=envs/prod/deploy.yaml,line=12,col=5,title=promote failed (exit 2)::"
        "envs/prod/deploy.yaml:12:5: duplicate key 'image' (remove one of them)\n"
    )


def test_annotation_escapes_properties_and_data() -> None:
    error = EditError("bad\r\nvalue 100%", file="a,b:c%d.yaml", line=3)
    text = github_annotations(error)
    assert text.startswith("::error file=a%2Cb%3Ac%25d.yaml,line=3,title=promote failed (exit 2)::")
    assert text.endswith("a,b:c%25d.yaml:3: bad%0D%0Avalue 100%25\n")
    assert text.count("\n") == 1


def test_annotation_without_file_and_with_secret() -> None:
    redact.register("glpat-abcdefghijklmnop")
    error = ForgeError("401 for token glpat-abcdefghijklmnop")
    assert github_annotations(error) == (
        "::error title=promote failed (exit 5)::401 for token ***\n"
    )
    unexpected = github_annotations(PromoteError("x"))
    assert unexpected == "::error title=promote failed (exit 1)::x\n"


# --- job summary --------------------------------------------------------------------


def test_summary_shows_changes_policy_and_link() -> None:
    text = github_summary(RESULT)
    assert text.startswith("## promote: pull request opened or updated\n")
    assert "[pull request \\#7](https://github.com/acme/config/pull/7) (opened)" in text
    assert "| File | Line | Old | New |" in text
    assert ("| <code>envs\\/prod\\/deploy\\.yaml</code> | 12 | "
            "<code>ghcr\\.io\\/acme\\/api\\:1\\.4\\.1</code> | "
            "<code>ghcr\\.io\\/acme\\/api\\:1\\.4\\.2</code> |") in text
    assert "### Policy: merge refused" in text
    assert "| max\\_auto\\_merge\\_bump | ❌ fail | major bump 1 \\-&gt; 2 |" in text
    assert "| allowed\\_tags | ✅ pass |" in text
    assert "Left unchanged (1)" in text
    assert "```diff\n--- a/envs/prod/deploy.yaml" in text


def test_summary_escapes_markdown_and_html() -> None:
    hostile = {
        **RESULT,
        "changes": [{"file": "x|y.yaml", "line": 1, "old": "<script>alert(1)</script>",
                     "new": "[pwn](https://evil.example) @admin `code` *b*\n| injected | row |"}],
        "pull_request": {"url": "javascript:alert(1)", "number": 7, "created": True},
    }
    text = github_summary(hostile)
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    assert "[pwn](" not in text
    assert "\\[pwn\\]\\(" in text
    assert "\\@admin" in text
    assert "\\`code\\`" in text
    assert "\\*b\\*" in text
    assert "x\\|y\\.yaml" in text
    assert "(javascript" not in text  # an unsafe URL is shown, never linked
    row = next(line for line in text.splitlines() if "x\\|y" in line)
    assert row.count(" | ") == 3  # still one row of four cells, nothing injected


def test_md_is_plain_text() -> None:
    assert md("a_b*c") == "a\\_b\\*c"
    assert md("1 < 2 & 3 > 2") == "1 &lt; 2 &amp; 3 &gt; 2"
    assert md("line\nbreak\u202e") == "line break"
    assert md(None) == ""
    assert md(True) == "true"


def test_summary_diff_fence_outgrows_backticks_in_the_diff() -> None:
    diff = "+ value: ````` \n- value: ``` \n"
    text = github_summary({**RESULT, "diff": diff})
    assert "``````diff\n" in text
    assert text.count("``````") == 2


def test_summary_of_a_failure() -> None:
    redact.register("ghs_installationtoken0001")
    printed = ('{"status": "error", "exit_code": 5, "error": "403 ghs_installationtoken0001"}\n'
               "::error title=promote failed (exit 5)::403 ***\n")
    result = load_result(printed, 5)
    text = github_summary(result)
    assert text.startswith("## promote: failed (exit 5)\n")
    assert "**Error:** 403 \\*\\*\\*" in text
    assert "ghs_installationtoken0001" not in text
    assert "No file needed a change" not in text


def test_summary_caps_rows_and_diff() -> None:
    changes = [{"file": f"f{i}.yaml", "line": i, "old": "a:1", "new": "a:2"} for i in range(250)]
    text = github_summary({**RESULT, "changes": changes, "diff": "+x\n" * 40_000})
    assert "50 more changes are in the JSON report." in text
    assert "The diff is truncated" in text
    assert len(text) < 100_000


def test_up_to_date_summary() -> None:
    text = github_summary({"status": "up-to-date", "changed": False, "changes": []})
    assert text == "## promote: already up to date, nothing to do\n\nNo file needed a change.\n"


# --- GitLab -------------------------------------------------------------------------


def test_gitlab_dotenv() -> None:
    gl = {**RESULT, "forge": "gitlab", "merged": True,
          "pull_request": {"url": "https://gitlab.example.com/acme/config/-/merge_requests/7",
                           "number": 7, "created": True}}
    assert gitlab_dotenv(gl) == (
        "PROMOTE_MR_URL=https://gitlab.example.com/acme/config/-/merge_requests/7\n"
        "PROMOTE_MR_IID=7\n"
        "PROMOTE_BRANCH=promote/prod/api\n"
        f"PROMOTE_COMMIT={'b' * 40}\n"
        "PROMOTE_CHANGED=true\n"
        "PROMOTE_MERGED=true\n"
        "PROMOTE_AUTO_MERGE=false\n"
        "PROMOTE_STATUS=proposed\n"
    )


def test_gitlab_dotenv_values_stay_on_one_line() -> None:
    text = gitlab_dotenv({"status": "failed\nPROMOTE_MERGED=true", "branch": " b\r\n\u2028x "})
    lines = text.splitlines()
    assert len(lines) == 8
    assert all(re.fullmatch(r"PROMOTE_[A-Z_]+=[^\n]*", line) for line in lines)
    assert "PROMOTE_STATUS=failedPROMOTE_MERGED=true" in lines
    assert "PROMOTE_MERGED=false" in lines
    assert "PROMOTE_BRANCH=bx" in lines


def test_gitlab_annotations_link_the_merge_request() -> None:
    gl = {**RESULT, "forge": "gitlab",
          "pull_request": {"url": "https://gitlab.example.com/acme/config/-/merge_requests/7",
                           "number": 7}}
    assert json.loads(gitlab_annotations(gl)) == {
        "promoter": [{"external_link": {
            "label": "Merge request !7",
            "url": "https://gitlab.example.com/acme/config/-/merge_requests/7"}}],
    }
    assert json.loads(gitlab_annotations({"status": "up-to-date"})) == {"promoter": []}
    bad = {**gl, "pull_request": {"url": "javascript:alert(1)", "number": 7}}
    assert json.loads(gitlab_annotations(bad)) == {"promoter": []}


# --- reading the report and writing -------------------------------------------------


def test_load_result() -> None:
    assert load_result("", 3) == {"status": "failed", "exit_code": 3, "changed": False}
    assert load_result("Traceback ...", 1)["status"] == "failed"
    assert load_result("[1, 2]", 2)["exit_code"] == 2
    assert load_result(json.dumps(RESULT), 0) == RESULT
    refused = load_result(json.dumps({**RESULT, "status": "refused"}), 4)
    assert (refused["status"], refused["exit_code"]) == ("refused", 4)
    error = load_result('{"status": "error", "exit_code": 4, "error": "policy refused"}', 4)
    assert error["status"] == "refused"
    assert github_summary(error).startswith("## promote: merge refused by policy (exit 4)\n")
    assert load_result('{"status": "error", "exit_code": 5}', 5)["status"] == "error"


def test_write_ci_outputs_appends_and_writes(tmp_path: Path) -> None:
    out, summary = tmp_path / "out", tmp_path / "summary"
    out.write_text("earlier=1\n", encoding="utf-8")
    dotenv, notes = tmp_path / "promote.env", tmp_path / "annotations.json"
    env = {"GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)}
    write_ci_outputs(RESULT, env, dotenv_path=str(dotenv), annotations_path=str(notes))
    values = parse_github_output(out.read_text(encoding="utf-8"))
    assert values["earlier"] == "1"
    assert values["pr-number"] == "7"
    assert summary.read_text(encoding="utf-8") == github_summary(RESULT)
    assert dotenv.read_text(encoding="utf-8") == gitlab_dotenv(RESULT)
    assert json.loads(notes.read_text(encoding="utf-8"))["promoter"][0]["external_link"]


def test_write_ci_outputs_writes_nothing_unasked(tmp_path: Path) -> None:
    write_ci_outputs(RESULT, {"GITHUB_OUTPUT": "", "HOME": str(tmp_path)})
    assert list(tmp_path.iterdir()) == []


def test_main_writes_from_a_report_file(tmp_path: Path) -> None:
    report = tmp_path / "promote.json"
    report.write_text(json.dumps(RESULT, indent=2), encoding="utf-8")
    out = tmp_path / "out"
    dotenv = tmp_path / "promote.env"
    code = main(["--result", str(report), "--exit-code", "0", "--dotenv", str(dotenv)],
                {"GITHUB_OUTPUT": str(out)})
    assert code == 0
    assert parse_github_output(out.read_text(encoding="utf-8"))["status"] == "proposed"
    assert "PROMOTE_MR_IID=7\n" in dotenv.read_text(encoding="utf-8")


@pytest.mark.parametrize("content", [None, "", "garbage"])
def test_main_without_a_report_still_writes(tmp_path: Path, content: str | None) -> None:
    report = tmp_path / "promote.json"
    if content is not None:
        report.write_text(content, encoding="utf-8")
    dotenv = tmp_path / "promote.env"
    main(["--result", str(report), "--exit-code", "2", "--dotenv", str(dotenv)], {})
    assert "PROMOTE_STATUS=failed\n" in dotenv.read_text(encoding="utf-8")
