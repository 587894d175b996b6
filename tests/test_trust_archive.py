"""Attacks on the archive proof and the link aliases (issue #10, second round), through
the real CLI on every forge that reads the base through an archive (and plain git and
Azure DevOps, which read objects: the same attack must fail there too). What the
attacker commits to the config repo is a real ``git push`` of a harmless-looking change.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from promoter.forges.archive import gitattributes_may_rewrite, looks_like_link
from promoter.paths import resolve
from tests.hostile.forges import Harness as TrustHarness
from tests.hostile.forges import deploy as trust_deploy
from tests.hostile.forges import harness
from tests.test_e2e import Harness, _harness, cli, deploy
from tests.test_trust import DEV, DIRECT, KINDS, legit_message, main_file
from tests.test_trust import cli as trust_cli
from tests.test_trust_policy import API, _link, checks, git_push, reasons

# "$Format:%H" plus 29 "%%" in a comment: the archive's copy holds 40 hex digits and 29
# "%", the same number of bytes; only the bytes tell the two apart (Bitbucket Cloud lists
# sizes, no ids)
STAMPED = deploy("1.0.0").replace(b"# the api\n",
                                  b"# the api $Format:%H" + b"%%" * 29 + b"$\n")


@pytest.fixture(params=["git", "github", "gitlab", "gitea", "azure", "bitbucket",
                        "bitbucket-dc"])
def proved(request: pytest.FixtureRequest, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    yield from _harness(request.param, tmp_path, monkeypatch)


@pytest.mark.parametrize("attributes", [
    # git splits an attributes line at spaces, tabs and carriage returns, never elsewhere
    b"envs/dev/*.yaml\rexport-subst\n",
    # a macro may be used before it is defined: git expands macros after reading them all
    b"[attr]slim stamp\n[attr]stamp export-subst\nenvs/dev/*.yaml slim\n",
], ids=["carriage-return", "macro-defined-after-use"])
def test_a_same_size_rewrite_is_found_however_the_attributes_are_written(
        proved: Harness, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        attributes: bytes) -> None:
    def stamp(work: Path) -> None:
        (work / "envs/dev/deploy.yaml").write_bytes(STAMPED)
        (work / ".gitattributes").write_bytes(attributes)

    h = proved
    git_push(h, tmp_path / "work", stamp, "dev: slimmer archives")
    code, result = cli(h, capsys, "--env", "dev", "--image", f"{API}:1.0.1")
    assert code == 0, result
    assert result["merged"] is True
    # the commit holds the tree's bytes plus the planned edit, never the archive's
    assert h.main_file("envs/dev/deploy.yaml") == STAMPED.replace(b":1.0.0", b":1.0.1")


@pytest.mark.parametrize(("rules", "files", "expected"), [
    ({".gitattributes": b"*.yaml\rexport-subst\n"}, ["a.yaml"], {"a.yaml"}),
    ({".gitattributes": b"[attr]b a\n[attr]a c\n[attr]c ident\n*.yaml b\n"}, ["a.yaml"],
     {"a.yaml"}),  # macros through macros, each defined after its use
    ({"envs/.gitattributes": b"[attr]m export-subst\n", ".gitattributes": b"*.yaml m\n"},
     ["a.yaml"], {"a.yaml"}),  # git takes [attr] only from the root: counted anyway
    ({".gitattributes": b"\xef\xbb\xbf*.yaml export-subst\n"}, ["a.yaml"], {"a.yaml"}),
    # a non-breaking space, a vertical tab, invalid UTF-8: part of the pattern for git
    ({".gitattributes": b"api\xc2\xa0* export-subst\n"}, ["api\xa0v2.yaml", "api"],
     {"api\xa0v2.yaml"}),
    ({".gitattributes": b"api\x0b* export-subst\n"}, ["api\x0bv2.yaml"], {"api\x0bv2.yaml"}),
    ({".gitattributes": b"api\xff* export-subst\n"}, ["api\udcffv2.yaml"], {"api\udcffv2.yaml"}),
    ({".gitattributes": b"*.yaml\x0bexport-subst\n"}, ["a.yaml"], set()),  # no separator
])
def test_attribute_lines_are_read_as_git_reads_them(
        rules: dict[str, bytes], files: list[str], expected: set[str]) -> None:
    assert gitattributes_may_rewrite(rules, files) == expected


def test_a_hidden_link_through_another_link_is_still_an_alias(
        proved: Harness, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # envs/dev/same -> . (an alias inside dev's own paths), and envs/prod/deploy.yaml ->
    # ../dev/same/deploy.yaml: prod reads dev's file. The prod link is left out of the
    # archive; Data Center lists no modes, so only its bytes can say it is a link, and
    # they name a path below another link, not a path of the tree
    def hide_alias(work: Path) -> None:
        (work / "envs/dev/same").symlink_to(".")
        _link(work, "envs/prod/deploy.yaml", "../dev/same/deploy.yaml")
        (work / ".gitattributes").write_text("envs/prod/** export-ignore\n"
                                             ".gitattributes export-ignore\n")

    h = proved
    git_push(h, tmp_path / "work", hide_alias, "prod follows dev, quietly")
    code, result = cli(h, capsys, "--env", "dev", "--image", f"{API}:1.0.1")
    assert code == 0, result
    assert checks(result)["paths_only"] == "fail"
    assert "envs/prod/deploy.yaml" in reasons(result)["paths_only"]
    assert result["merged"] is False
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.0.0")


@pytest.mark.parametrize(("data", "tree", "links", "expected"), [
    (b"../dev/same/api.yaml", ["envs/dev/api.yaml", "envs/dev/same"], {"envs/dev/same": "."},
     True),
    # through a blob the archive left out too (a link whose mode is not known either)
    (b"../dev/same/api.yaml", ["envs/dev/api.yaml", "envs/dev/same"], {}, True),
    (b"../q/../api.yaml", ["envs/dev/api.yaml", "envs/dev/sub/README"], {"envs/q": "dev/sub"},
     True),
    (b"../q/../api.yaml", ["envs/dev/api.yaml", "envs/dev/sub/README"], {}, False),
    (b"../dev/api.yaml/x", ["envs/dev/api.yaml"], {}, True),  # a file as a directory: fail closed
])
def test_a_hidden_link_is_followed_through_other_links(
        data: bytes, tree: list[str], links: dict[str, str], expected: bool) -> None:
    assert looks_like_link("envs/prod/api.yaml", data, tree, links) is expected


def test_a_link_that_climbs_out_of_another_link_is_still_an_alias(
        proved: Harness, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # envs/q -> dev/sub; envs/prod/deploy.yaml -> ../q/../deploy.yaml. The system resolves
    # envs/q first, so ".." leaves envs/dev/sub: prod reads envs/dev/deploy.yaml. Read as
    # text, the target is envs/deploy.yaml, which does not exist
    def climb(work: Path) -> None:
        (work / "envs/dev/sub").mkdir()
        (work / "envs/dev/sub/README").write_text("kept for the link\n")
        (work / "envs/q").symlink_to("dev/sub")
        _link(work, "envs/prod/deploy.yaml", "../q/../deploy.yaml")

    h = proved
    git_push(h, tmp_path / "work", climb, "prod: share the dev manifest")
    work = tmp_path / "work"
    assert (work / "envs/prod/deploy.yaml").read_bytes() == deploy("1.0.0")
    assert (work / "envs/prod/deploy.yaml").resolve() == (work / "envs/dev/deploy.yaml")
    code, result = cli(h, capsys, "--env", "dev", "--image", f"{API}:1.0.1")
    assert code == 0, result
    assert checks(result)["paths_only"] == "fail"
    assert result["merged"] is False
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.0.0")


LINKS = {"envs/q": "dev/sub", "envs/prod/a.yaml": "../q/../a.yaml", "envs/qa": "prod",
         "envs/up": "../envs/q/..", "envs/dev/sub/back": "../../prod", "loop": "loop2",
         "loop2": "loop", "out": "../..", "envs/dot": "./../envs/./dev//"}


@pytest.mark.parametrize("path", ["envs/prod/a.yaml", "envs/qa/a.yaml", "envs/up/a.yaml",
                                  "envs/q/back/a.yaml", "envs/q/../a.yaml", "envs/dot/a.yaml",
                                  "envs/q/back/../qa/../dev/a.yaml"])
def test_links_resolve_as_the_system_resolves_them(tmp_path: Path, path: str) -> None:
    (tmp_path / "envs/dev/sub").mkdir(parents=True)
    (tmp_path / "envs/dev/a.yaml").write_text("dev\n")
    (tmp_path / "envs/dev/sub/README").write_text("r\n")
    (tmp_path / "envs/prod").mkdir()
    for link, target in LINKS.items():
        (tmp_path / link).symlink_to(target)
    real = (tmp_path / path).resolve(strict=True).relative_to(tmp_path.resolve())
    assert resolve(path, LINKS) == real.as_posix()


@pytest.mark.parametrize("path", ["loop", "loop2/x", "out", "out/x", "../x", "envs/../.."])
def test_a_link_that_loops_or_leaves_the_repo_resolves_to_nothing(path: str) -> None:
    assert resolve(path, LINKS) is None


def test_a_policy_link_left_out_of_the_archive_stops_the_run(
        proved: Harness, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # a symbolic link's target may be any text, a policy too; left out of the archive, its
    # kind is known only from a listing with modes (Data Center lists none): "could not
    # tell" is no regular file
    loose = "{version: 1, defaults: {auto_merge: true, wait_for_checks: false}, " \
            "environments: {prod: {paths: ['**']}}}"

    def hide(work: Path) -> None:
        (work / ".promoter.yaml").unlink()
        (work / ".promoter.yaml").symlink_to(loose)
        (work / ".gitattributes").write_text(".promoter.yaml export-ignore\n")

    h = proved
    git_push(h, tmp_path / "work", hide, "policy: slimmer archives")
    before = dict(h.bare.list_refs("refs/heads/"))
    code, result = cli(h, capsys, "--env", "prod", "--file", "envs/prod/deploy.yaml",
                       "--image", f"{API}:1.0.1")
    assert code == 2, result
    assert ".promoter.yaml" in result["error"]
    assert dict(h.bare.list_refs("refs/heads/")) == before
    assert h.main_file("envs/prod/deploy.yaml") == deploy("1.0.0")


def test_more_aliases_than_promoter_counts_stop_the_run(
        proved: Harness, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # 300 harmless links inside dev's own paths come first (sorted), then the prod link:
    # counting stopped at 256 aliases and never reached it, so paths_only passed and dev
    # auto-merged a change prod reads
    def many(work: Path) -> None:
        for i in range(300):
            (work / f"envs/dev/a{i:03}.yaml").symlink_to("deploy.yaml")
        _link(work, "envs/prod/deploy.yaml", "../dev/deploy.yaml")

    h = proved
    git_push(h, tmp_path / "work", many, "dev: aliases for the old names")
    before = dict(h.bare.list_refs("refs/heads/"))
    code, result = cli(h, capsys, "--env", "dev", "--image", f"{API}:1.0.1")
    assert code == 2, result
    assert "more than 256 paths reach envs/dev/deploy.yaml through symbolic links" \
        in result["error"]
    assert dict(h.bare.list_refs("refs/heads/")) == before
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.0.0")


# --- a base read by its name: a tag may share it -----------------------------------------

LOOSE = b"""\
version: 1
defaults: {wait_for_checks: false, auto_merge: true}
environments:
  dev: {paths: ["envs/dev/**"]}
  staging: {paths: ["envs/staging/**"]}
  prod: {paths: ["envs/prod/**"]}
"""


@pytest.fixture(params=["gitlab", "gitea", "github", "bitbucket"])
def named(request: pytest.FixtureRequest, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    yield from _harness(request.param, tmp_path, monkeypatch)


def test_a_tag_named_like_the_base_branch_is_not_the_base(
        named: Harness, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # git (and so GitLab's archive of ?sha=main) takes refs/tags/main before
    # refs/heads/main: a tag anyone may push would be planned from, its loose policy obeyed
    # and its commit merged under the promotion
    def loosen(work: Path) -> None:
        (work / ".promoter.yaml").write_bytes(LOOSE)
        (work / "envs/prod/evil.yaml").write_text("kind: ConfigMap\n")

    h = named
    work = tmp_path / "work"
    git_push(h, work, lambda w: (w / "README.md").write_text("config\n"), "docs: README")
    env = {**os.environ, "GIT_AUTHOR_NAME": "mallory", "GIT_AUTHOR_EMAIL": "m@example.com",
           "GIT_COMMITTER_NAME": "mallory", "GIT_COMMITTER_EMAIL": "m@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)}
    loosen(work)
    forged = f"prod: tidy\n\nPromoted-Image: {API}:6.6.6\nEnvironment: prod\n"
    for args in (["add", "-A"], ["commit", "-q", "-m", forged],
                 ["push", "-q", "origin", "HEAD:refs/tags/main"]):
        subprocess.run(["git", *args], cwd=work, env=env, check=True, capture_output=True)
    for base in ([], ["--base", "main"]):  # the snapshot's tip, or the branch read by name
        code, result = cli(h, capsys, "--history", "--env", "prod", "--image", API, *base)
        assert code == 0, result
        assert result["history"] == []  # the branch's history, not the tag's
    base = h.bare.resolve("refs/heads/main")
    code, result = cli(h, capsys, "--env", "prod", "--image", f"{API}:1.0.1")
    assert code == 0, result
    assert result["base_commit"] == base
    assert checks(result)["require_upstream"] == "fail"  # the base's policy, not the tag's
    assert result["merged"] is False
    assert h.bare.read_file(h.bare.resolve("refs/heads/main") or "", "envs/prod/evil.yaml") \
        is None


# --- a tip is proved by its tree: modes too ------------------------------------------------


@pytest.fixture(params=KINDS)
def th(request: pytest.FixtureRequest, tmp_path: Path,
       monkeypatch: pytest.MonkeyPatch) -> Iterator[TrustHarness]:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Tester\n\temail = t@example.com\n")
    monkeypatch.setenv("HOME", str(home))
    with harness(request.param, tmp_path, DIRECT) as found:
        if found.token:
            monkeypatch.setenv("PROMOTE_TOKEN", found.token)
        yield found


@pytest.mark.parametrize("mode", ["120000", "100755"], ids=["link", "executable"])
def test_the_planned_bytes_written_as_a_link_are_not_the_plan(
        th: TrustHarness, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        mode: str) -> None:
    # the attacker pre-places promote/dev/api: promoter's own message, the base as parent,
    # and envs/dev/deploy.yaml holding the planned blob, but as a symbolic link (its
    # target is the YAML text: a link to nowhere). Same blob id; only the mode differs.
    # Data Center's change list calls both a FILE: merged, dev would deploy a dead link
    message = legit_message(tmp_path, capsys, "dev", "1.1.0")
    base = th.bare.resolve("main") or ""
    work = tmp_path / "mallory"
    env = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path),
           "GIT_AUTHOR_NAME": "mallory", "GIT_AUTHOR_EMAIL": "m@example.com",
           "GIT_COMMITTER_NAME": "mallory", "GIT_COMMITTER_EMAIL": "m@example.com",
           "PATH": os.environ["PATH"]}

    def git(*args: str, data: bytes | None = None, cwd: Path | None = work) -> str:
        return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, input=data,
                              capture_output=True).stdout.decode().strip()

    git("clone", "-q", str(th.bare.path), str(work), cwd=None)
    git("checkout", "-q", base)
    blob = git("hash-object", "-w", "--stdin", data=trust_deploy("1.1.0"))
    git("update-index", "--cacheinfo", f"{mode},{blob},{DEV}")
    (tmp_path / "msg").write_text(message)
    git("commit", "-q", "-F", str(tmp_path / "msg"))
    git("push", "-q", "--force", "origin", "HEAD:refs/heads/promote/dev/api")
    forged = git("rev-parse", "HEAD")
    code, out = trust_cli(th, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:1.1.0")
    assert code == 5, out
    assert forged[:12] in out
    assert main_file(th, DEV) == trust_deploy("1.0.0")
    assert th.bare.resolve("main") == base
