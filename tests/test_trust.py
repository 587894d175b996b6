"""Trust rules 1 and 2 attacked: prove the tree, merge exactly what was proved.

The attacker can push branches to the config repo (as anyone with write access, or a
compromised CI job, can). Their steps are real ``git push``es into the bare repository
that backs plain git, the fake GitHub and the fake GitLab; promoter runs through its
real CLI (or ``promote.run`` where a step must land between two of its forge calls).
Each test fails if the guard it attacks is removed:

- a reused branch tip must be proved (``proof.holds`` in ``promote.ensure_branch``);
- a "newer version" claimed by a trailer counts only when the tip proves it;
- every merge and auto-merge names the commit promoter wrote or proved;
- required checks that have not registered yet are waited for, then the merge is
  handed to the forge's auto-merge, never given up at once.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from promoter import promote, proof
from promoter.cli import run
from promoter.errors import PromoteError
from promoter.forges.azure import AzureForge
from promoter.forges.bitbucket import BitbucketForge
from promoter.forges.bitbucket_server import BitbucketServerForge
from promoter.forges.git import GitForge
from promoter.forges.gitea import GiteaForge
from promoter.forges.github import GitHubForge
from promoter.forges.gitlab import GitLabForge
from promoter.images import parse
from tests.fakes.azure import FakeAzure
from tests.fakes.bitbucket import FakeBitbucket
from tests.fakes.bitbucket_server import FakeBitbucketServer
from tests.fakes.gitea import FakeGitea
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.gitrepo import ZERO, BareRepo
from tests.hostile.forges import (
    AZ_TOKEN,
    BB_TOKEN,
    GL_TOKEN,
    GT_TOKEN,
    SLUG,
    Harness,
    deploy,
    effects,
    files,
    harness,
)
from tests.hostile.forges import TOKEN as GH_TOKEN

KINDS = ["git", "github", "gitlab", "gitea", "azure", "bitbucket", "bitbucket-dc"]
DEV = "envs/dev/deploy.yaml"
PROD = "envs/prod/deploy.yaml"
EVIL = deploy("6.6.6-evil")

# dev merges by itself: straight away, or through the forge's auto-merge (waits for checks)
DIRECT = b"""\
version: 1
defaults: {wait_for_checks: false}
environments:
  dev: {paths: ["envs/dev/**"], auto_merge: true}
  prod: {paths: ["envs/prod/**"]}
"""
AUTO = DIRECT.replace(b"defaults: {wait_for_checks: false}",
                      b"defaults: {wait_for_checks: true}")


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"  # plain git: no ~/.gitconfig of the machine, an identity
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Tester\n\temail = tester@example.com\n")
    monkeypatch.setenv("HOME", str(home))


@pytest.fixture(params=KINDS)
def h(request: pytest.FixtureRequest, tmp_path: Path,
      monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(request.param, tmp_path, DIRECT) as found:
        if found.token:
            monkeypatch.setenv("PROMOTE_TOKEN", found.token)
        yield found


def cli(h: Harness, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    where = (["--repo", str(h.bare.path), "--forge", "git"] if h.kind == "git" else
             ["--repo", SLUG, "--forge", h.kind, "--api-url", h.url])
    code = run([*where, *args])
    out, err = capsys.readouterr()
    return code, out + err


def main_file(h: Harness, path: str) -> bytes:
    return h.bare.read_file(h.bare.resolve("main") or "", path) or b""


_pushes = itertools.count()


def attacker_push(h: Harness, tmp: Path, branch: str, parent: str,
                  changes: dict[str, bytes], message: str) -> str:
    """A real clone, a commit on ``parent`` and a forced ``git push`` of ``branch``."""
    work = tmp / f"attacker-{next(_pushes)}"
    env = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp),
           "GIT_AUTHOR_NAME": "mallory", "GIT_AUTHOR_EMAIL": "m@example.com",
           "GIT_COMMITTER_NAME": "mallory", "GIT_COMMITTER_EMAIL": "m@example.com",
           "PATH": "/usr/bin:/bin:/usr/local/bin"}

    def git(*args: str, cwd: Path | None = work) -> str:
        return subprocess.run(["git", *args], cwd=cwd, env=env, check=True,
                              capture_output=True).stdout.decode().strip()

    git("clone", "-q", str(h.bare.path), str(work), cwd=None)
    git("checkout", "-q", parent)
    for path, data in changes.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(data)
    git("add", "-A")
    (tmp / "msg").write_text(message)
    git("commit", "-q", "--allow-empty", "-F", str(tmp / "msg"))
    git("push", "-q", "--force", "origin", f"HEAD:refs/heads/{branch}")
    return git("rev-parse", "HEAD")


def legit_message(tmp: Path, capsys: pytest.CaptureFixture[str], env: str, tag: str) -> str:
    """The message promoter itself writes for this promotion (the attacker runs the same
    open-source promoter against a copy of the repo)."""
    scratch = BareRepo.init(tmp / f"scratch-{next(_pushes)}.git",
                            files(DIRECT.replace(b"auto_merge: true", b"auto_merge: false")))
    code = run(["--repo", str(scratch.path), "--forge", "git", "--env", env,
                "--image", f"ghcr.io/acme/api:{tag}"])
    capsys.readouterr()
    assert code == 0
    tip = scratch.resolve(f"refs/heads/promote/{env}/api")
    assert tip is not None
    info = scratch.commit(tip)
    assert info is not None
    return str(info["message"])


# --- rule 1: prove the tree, not the message ---------------------------------------------


def test_pre_placed_forged_tip_is_not_merged(h: Harness, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The attacker pushes promote/dev/api first: promoter's exact message and trailers,
    the planned dev change, and a prod change riding along. dev auto-merges."""
    message = legit_message(tmp_path, capsys, "dev", "1.1.0")
    base = h.bare.resolve("main") or ""
    forged = attacker_push(h, tmp_path, "promote/dev/api", base,
                           {DEV: deploy("1.1.0"), PROD: EVIL}, message)
    code, out = cli(h, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:1.1.0")
    assert code == 5, out
    assert forged[:12] in out
    assert main_file(h, PROD) == deploy("1.0.0")
    assert main_file(h, DEV) == deploy("1.0.0")
    assert h.bare.resolve("main") == base


def test_amended_open_proposal_is_not_reused(h: Harness, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """promoter proposes prod 1.1.0; the attacker amends the tip (same message, same
    parent) to also loosen .promoter.yaml; the re-run must not call it "unchanged"."""
    code, _ = cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.1.0")
    assert code == 0
    ours = h.bare.resolve("refs/heads/promote/prod/api") or ""
    info = h.bare.commit(ours)
    assert info is not None
    amended = attacker_push(
        h, tmp_path, "promote/prod/api", info["parents"][0],
        {PROD: deploy("1.1.0"),
         ".promoter.yaml": DIRECT.replace(b'prod: {paths: ["envs/prod/**"]}',
                                          b'prod: {paths: ["envs/prod/**"], auto_merge: true}')},
        str(info["message"]))
    code, out = cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.1.0",
                    "--output", "json")
    assert code == 5, out
    assert amended[:12] in out
    assert "unchanged" not in out
    assert h.bare.resolve("refs/heads/promote/prod/api") == amended  # not overwritten either


def test_forged_higher_trailer_on_an_old_base_does_not_block(
        h: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tip that only *says* it promotes 99.0.0 (its tree changes the README) used to
    make every later promotion "superseded": a silent denial of service."""
    message = legit_message(tmp_path, capsys, "dev", "1.1.0").replace("1.1.0", "99.0.0")
    old_base = h.bare.resolve("main") or ""
    h.bare.commit_files("main", {"README.md": b"# config, edited\n"}, "docs")
    attacker_push(h, tmp_path, "promote/dev/api", old_base, {"README.md": b"pwned\n"},
                  message)
    code, out = cli(h, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:1.1.0",
                    "--output", "json")
    assert code == 0, out
    result = json.loads(out)
    assert result["status"] == "merged"
    assert main_file(h, DEV) == deploy("1.1.0")
    assert main_file(h, "README.md") == b"# config, edited\n"


def test_forged_higher_trailer_on_the_base_is_named(
        h: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    message = legit_message(tmp_path, capsys, "dev", "1.1.0").replace("1.1.0", "99.0.0")
    forged = attacker_push(h, tmp_path, "promote/dev/api", h.bare.resolve("main") or "",
                           {"README.md": b"pwned\n"}, message)
    code, out = cli(h, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:1.1.0")
    assert code == 5, out
    assert forged[:12] in out
    assert "superseded" not in out
    assert main_file(h, DEV) == deploy("1.0.0")


def test_a_proved_higher_proposal_still_wins(h: Harness, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    """The proof keeps the honest case: a real 1.2.0 proposal is not replaced by 1.1.0."""
    code, _ = cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.2.0")
    assert code == 0
    tip = h.bare.resolve("refs/heads/promote/prod/api")
    code, out = cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.1.0",
                    "--output", "json")
    assert code == 0, out
    assert json.loads(out)["status"] == "superseded"
    assert h.bare.resolve("refs/heads/promote/prod/api") == tip


def test_rerun_reuses_a_proved_tip(h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    """Idempotency survives the proof: the second run writes no commit."""
    assert cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.1.0")[0] == 0
    tip = h.bare.resolve("refs/heads/promote/prod/api")
    code, out = cli(h, capsys, "--env", "prod", "--image", "ghcr.io/acme/api:1.1.0",
                    "--output", "json")
    assert code == 0
    assert json.loads(out)["pull_request"]["updated"] is False
    assert h.bare.resolve("refs/heads/promote/prod/api") == tip


def test_a_proved_tree_with_a_forged_record_never_reaches_history(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The attacker pre-places exactly the planned change, but with a message whose
    Previous-Image names an old, vulnerable tag. With rebase merges that very commit
    would land on main, and --rollback would later restore the attacker's choice."""
    rebase = DIRECT.replace(b"defaults: {wait_for_checks: false}",
                            b"defaults: {wait_for_checks: false, merge_method: rebase}")
    for kind in KINDS:
        with harness(kind, tmp_path / kind, rebase) as h:
            if h.token:
                monkeypatch.setenv("PROMOTE_TOKEN", h.token)
            message = legit_message(tmp_path / kind, capsys, "dev", "1.1.0")
            assert "Previous-Image: ghcr.io/acme/api:1.0.0" in message
            forged = message.replace("Previous-Image: ghcr.io/acme/api:1.0.0",
                                     "Previous-Image: ghcr.io/acme/api:0.0.1-vulnerable")
            attacker_push(h, tmp_path / kind, "promote/dev/api", h.bare.resolve("main") or "",
                          {DEV: deploy("1.1.0")}, forged)
            code, out = cli(h, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:1.1.0")
            assert code == 0, out
            assert main_file(h, DEV) == deploy("1.1.0"), kind
            history = "\n".join(e["message"] for e in h.bare.log("main", 10))
            assert "0.0.1-vulnerable" not in history, kind
            assert "Previous-Image: ghcr.io/acme/api:1.0.0" in history, kind


def test_a_set_only_promotion_reruns_as_a_no_op(h: Harness,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A --set promotion records no Promoted-Image; its re-run is proved by its tree."""
    args = ("--env", "prod", "--set", "envs/prod/deploy.yaml:metadata.name=api-v2")
    assert cli(h, capsys, *args)[0] == 0
    tip = h.bare.resolve("refs/heads/promote/prod/set")
    assert tip is not None
    code, out = cli(h, capsys, *args)
    assert code == 0, out
    assert h.bare.resolve("refs/heads/promote/prod/set") == tip


def test_blob_ids_match_git() -> None:
    path = Path(__file__)
    expected = subprocess.run(["git", "hash-object", str(path)], capture_output=True,
                              check=True).stdout.decode().strip()
    assert proof.blob_sha(path.read_bytes()) == expected
    assert not proof.holds({"a": proof.blob_sha(b"x")}, {"a": b"x", "b": b"y"})
    assert not proof.holds(None, {"a": b"x"})
    assert proof.holds({"a": proof.blob_sha(b"x")}, {"a": b"x"})


# --- rule 2: merge exactly what was proved ------------------------------------------------


class Before:
    """A Forge that runs ``action`` right before the first call of ``step``."""

    def __init__(self, inner: Any, actions: dict[str, Any]) -> None:
        self.inner = inner
        self.actions = dict(actions)
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self.actions:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            action = self.actions.pop(name, None)
            if action is not None:
                action()
            return attr(*args, **kwargs)

        return call


def test_a_push_after_the_write_is_never_merged(tmp_path: Path) -> None:
    """After promoter writes its commit and before it opens the request, the attacker
    pushes a commit on top (prod change). The auto-merge must name promoter's commit."""
    for kind in KINDS:
        with harness(kind, tmp_path / kind, AUTO) as h:
            def push(h: Harness = h) -> None:
                tip = h.bare.resolve("refs/heads/promote/dev/api") or ""
                h.bare.commit_files("promote/dev/api", {PROD: EVIL}, "fix: bump")
                assert h.bare.resolve("refs/heads/promote/dev/api") != tip

            forge = Before(h.forge(), {"open_request": push})
            req = promote.Request(images=(parse("ghcr.io/acme/api:1.1.0"),), env="dev")
            with pytest.raises(PromoteError) as caught:
                promote.run(forge, req, {}, [], effects())
            assert caught.value.code == 5, kind
            assert main_file(h, PROD) == deploy("1.0.0"), kind
            assert main_file(h, DEV) == deploy("1.0.0"), kind


def test_a_proposal_another_run_just_merged_is_not_proposed_again(tmp_path: Path) -> None:
    """Rule 6 under a race: this run snapshots, then the same promotion runs to the end
    elsewhere (merged); this run finds the branch proved but no open request. It must
    plan again (nothing left to do), not open a second request and merge it again.
    (GitLab and Gitea delete a merged source branch, so there the run meets no branch,
    writes a new one and merges an empty change: open, see the closing note of #10.)"""
    for kind in ("git", "github"):
        with harness(kind, tmp_path / kind, DIRECT) as h:
            base = h.bare.resolve("main") or ""
            req = promote.Request(images=(parse("ghcr.io/acme/api:1.1.0"),), env="dev")

            def other(h: Harness = h, req: promote.Request = req) -> None:
                promote.run(h.forge(), req, {}, [], effects())

            forge = Before(h.forge(), {"read_head": other})
            result = promote.run(forge, req, {}, [], effects()).to_json()
            # plain git deletes a merged branch: there the run merges nothing new
            assert result["status"] in ("up-to-date", "merged"), (kind, result["message"])
            new = [c for c in h.bare.log("main", 20, first_parent=True) if c["sha"] != base]
            assert len(new) == 1, (kind, [c["message"].splitlines()[0] for c in new])
            assert main_file(h, DEV) == deploy("1.1.0"), kind


# --- property: whatever is pushed between promoter's steps, main gets base + plan or nothing


STEPS = ["read_head", "changed_files", "write_commit", "open_request", "find_request",
         "checks", "merge", "enable_auto_merge"]
ACTIONS = ["amend", "on_top", "forged_plan", "forged_higher", "delete", "nothing"]


def _act(bare: BareRepo, action: str, message: str) -> None:
    branch = "promote/dev/api"
    tip = bare.resolve(f"refs/heads/{branch}")
    main = bare.resolve("refs/heads/main") or ""
    if action == "amend" and tip is not None:
        info = bare.commit(tip)
        assert info is not None
        tree = bare.write_tree_from(tip, {PROD: EVIL})
        bare.update_ref(branch, bare.commit_tree(tree, info["parents"], info["message"]),
                        old=tip)
    elif action == "on_top" and tip is not None:
        bare.commit_files(branch, {PROD: EVIL}, "more")
    elif action in ("forged_plan", "forged_higher"):  # promoter's message, plan + more
        tree = bare.write_tree_from(main, {DEV: deploy("1.1.0"), PROD: EVIL})
        said = message if action == "forged_plan" else message.replace("1.1.0", "9.0.0")
        bare.update_ref(branch, bare.commit_tree(tree, [main], said), old=tip or ZERO)
    elif action == "delete" and tip is not None:
        bare.delete_ref(branch, old=tip)


@pytest.mark.parametrize("kind", KINDS)
def test_foreign_pushes_between_steps_never_reach_main(
        kind: str, tmp_path_factory: pytest.TempPathFactory,
        capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path_factory.mktemp(f"prop-{kind}")
    message = legit_message(root, capsys, "dev", "1.1.0")
    servers: dict[str, Any] = {}
    if kind == "github":
        servers["gh"] = FakeGitHub(root).start()
    elif kind == "gitlab":
        servers["gl"] = FakeGitLab(root).start()
    elif kind == "gitea":
        servers["gt"] = FakeGitea(root).start()
    elif kind == "azure":
        servers["az"] = FakeAzure(root).start()
    elif kind == "bitbucket":
        servers["bb"] = FakeBitbucket(root).start()
    elif kind == "bitbucket-dc":
        servers["dc"] = FakeBitbucketServer(root).start()
    counter = itertools.count()

    @settings(max_examples=12, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @example({"read_head": "forged_plan"}, False)  # pre-placed before the run
    @example({"open_request": "amend"}, True)  # between the write and the auto-merge
    @example({"merge": "on_top"}, False)  # between the request and the merge
    @example({"checks": "amend", "enable_auto_merge": "forged_plan"}, True)
    @given(st.dictionaries(st.sampled_from(STEPS), st.sampled_from(ACTIONS), max_size=3),
           st.booleans())
    def check(plan: dict[str, str], auto: bool) -> None:
        n = next(counter)
        content = files(AUTO if auto else DIRECT)
        h = _fresh(kind, root / f"r{n}", servers, n, content)
        bare, forge = h
        base = bare.resolve("main") or ""
        wrapped = Before(forge, {step: (lambda a=action: _act(bare, a, message))
                                 for step, action in plan.items()})
        req = promote.Request(images=(parse("ghcr.io/acme/api:1.1.0"),), env="dev")
        failed = 0  # a run may stop (exit 5 naming the foreign commit); nothing else
        try:
            promote.run(wrapped, req, {}, [], effects())
        except PromoteError as error:
            failed = error.code
        finally:
            close = getattr(forge, "close", None)
            if close is not None:
                close()
        after = bare.read_tree(bare.resolve("main") or "")
        before = bare.read_tree(base)
        planned = dict(before)
        planned[DEV] = (before[DEV][0], proof.blob_sha(deploy("1.1.0")))
        # the base plus the plan, or the base as it was: never anything else
        assert after in (before, planned), plan
        assert failed in (0, 5), plan

    try:
        check()
    finally:
        for server in servers.values():
            server.stop()


def _fresh(kind: str, path: Path, servers: dict[str, Any], n: int,
           content: dict[str, bytes]) -> tuple[BareRepo, Any]:
    """A new config repo for one example: a bare repo, or one more repository on the
    test's fake server, and a forge client for it."""
    if kind == "git":
        bare = BareRepo.init(path, content)
        return bare, GitForge(str(bare.path), sleep=lambda _: None)
    slug = f"acme/config{n}"
    if kind == "bitbucket-dc":
        dc: FakeBitbucketServer = servers["dc"]
        dc.add_token(BB_TOKEN)
        return dc.add_repo(slug, content).bare, BitbucketServerForge(
            slug, api_url=dc.url, token=BB_TOKEN, sleep=lambda _: None)
    if kind == "bitbucket":
        bb: FakeBitbucket = servers["bb"]
        bb.add_token(BB_TOKEN)
        return bb.add_repo(slug, content).bare, BitbucketForge(
            slug, api_url=bb.api, token=BB_TOKEN, sleep=lambda _: None)
    if kind == "github":
        gh: FakeGitHub = servers["gh"]
        gh.add_token(GH_TOKEN)
        return gh.create_repo(slug, content).bare, GitHubForge(
            slug, api_url=gh.url, token=GH_TOKEN, sleep=lambda _: None)
    if kind == "gitea":
        gt: FakeGitea = servers["gt"]
        gt.add_token(GT_TOKEN)
        return gt.add_repo(slug, content).bare, GiteaForge(
            slug, api_url=gt.url, token=GT_TOKEN, sleep=lambda _: None)
    if kind == "azure":
        az: FakeAzure = servers["az"]
        az.add_token(AZ_TOKEN)
        made = az.add_repo(f"org/{slug}", content)
        made.force_pushers.add("promoter-bot")
        return made.bare, AzureForge(
            slug, api_url=f"{az.url}/org", token=AZ_TOKEN, sleep=lambda _: None)
    gl: FakeGitLab = servers["gl"]
    gl.add_token(GL_TOKEN)
    return gl.add_project(slug, content).repo, GitLabForge(
        slug, api_url=gl.url, token=GL_TOKEN, sleep=lambda _: None)


# --- checks that register a moment after the push -----------------------------------------


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea", "azure", "bitbucket",
                                  "bitbucket-dc"])
def test_required_checks_not_yet_registered_are_waited_for(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The base requires check "ci"; CI registers it 0.3 s after the push and passes
    0.5 s later. With --merge-timeout promoter waits and merges; it neither merges at
    once nor leaves the request open."""
    with harness(kind, tmp_path, AUTO) as h:
        monkeypatch.setenv("PROMOTE_TOKEN", h.token)
        if kind == "github":
            repo = h.fake.repos[SLUG]  # type: ignore[attr-defined]
            repo.required_checks = ("ci",)
            repo.ci_after_push = (0.3, 0.5, "success")
        elif kind == "gitea":
            gitea = h.fake.repo(SLUG)  # type: ignore[attr-defined]
            gitea.required_checks = ("ci",)
            gitea.ci_after_push = (0.3, 0.5, "success")
        elif kind == "azure":  # a required status policy, evaluated a moment after opening
            azure = h.fake.repo(f"org/{SLUG}")  # type: ignore[attr-defined]
            h.fake.add_policy(f"org/{SLUG}", "ci")  # type: ignore[attr-defined]
            azure.evaluation_delay = 0.2
            azure.ci_after_push = (0.3, 0.5, "succeeded")
        elif kind.startswith("bitbucket"):  # the "minimum successful builds" merge check
            bitbucket = h.fake.repo(SLUG)  # type: ignore[attr-defined]
            bitbucket.required_builds = 1
            bitbucket.ci_after_push = (0.3, 0.5, "SUCCESSFUL")
        else:
            project = h.fake.project(SLUG)  # type: ignore[attr-defined]
            project.ci = True
            project.pipeline_delay = (0.3, 0.5)
        code, out = cli(h, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:1.1.0",
                        "--merge-timeout", "30", "--output", "json")
        assert code == 0, out
        result = json.loads(out)
        assert result["merged"] is True, result["message"]
        checks = {c["name"]: c["status"] for c in result["policy"]["checks"]}
        assert checks["checks_green"] == "pass"
        assert main_file(h, DEV) == deploy("1.1.0")


def _ci_pending_on_push(h: Harness) -> None:
    """The base requires a check that CI reports later: the forge's auto-merge waits."""
    if h.kind == "github":
        h.fake.repos[SLUG].required_checks = ("ci",)  # type: ignore[attr-defined]
    elif h.kind == "gitea":
        repo = h.fake.repo(SLUG)  # type: ignore[attr-defined]
        repo.required_checks = ("ci",)
        repo.ci_after_push = (0.0, 3600.0, "success")  # pending at once; _ci_passes ends it
    else:
        project = h.fake.project(SLUG)  # type: ignore[attr-defined]
        project.ci = True
        project.pipeline_on_commit = "running"


def _ci_passes(h: Harness, sha: str) -> None:
    if h.kind == "github":
        h.fake.set_checks(SLUG, sha, "success")  # type: ignore[attr-defined]
    elif h.kind == "gitea":
        h.fake.set_status(SLUG, sha, "success")  # type: ignore[attr-defined]
    else:
        h.fake.set_pipeline(sha, "success", project=SLUG)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea"])
def test_an_auto_merge_armed_by_an_earlier_run_never_merges_a_refused_change(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Run 1 (1.1.0, a minor step) arms the forge's auto-merge while CI runs. Run 2
    (2.0.0, a major step the policy leaves to a human) replaces the branch's commit
    before CI is done. The forges keep an auto-merge armed when someone with write
    access pushes, so unless promoter takes it back, the forge merges 2.0.0 as soon as
    its checks pass, although run 2 said "left for review"."""
    with harness(kind, tmp_path, AUTO) as h:
        monkeypatch.setenv("PROMOTE_TOKEN", h.token)
        _ci_pending_on_push(h)
        code, out = cli(h, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:1.1.0",
                        "--output", "json")
        assert code == 0, out
        assert json.loads(out)["auto_merge"] is True, out
        code, out = cli(h, capsys, "--env", "dev", "--image", "ghcr.io/acme/api:2.0.0",
                        "--output", "json")
        assert code == 0, out
        result = json.loads(out)
        assert result["auto_merge"] is False and "left for review" in result["message"]
        head = h.bare.resolve("refs/heads/promote/dev/api")
        assert head is not None
        _ci_passes(h, head)
        assert main_file(h, DEV) == deploy("1.0.0")  # a human decides on 2.0.0
        assert [c.state for c in h.changes()] == ["open"]
