"""Races, on plain git, the fake GitHub and the fake GitLab.

- the base branch advanced by someone else between promoter's read and its write (or
  its merge): on another file, on the same file, on the very line promoter edits;
- two runs of the same promotion at once (held together at the same step);
- two different promotions touching the same file at once;
- an outside commit on the promotion branch, before a run and during one.

Always: no update lost (the other commit stays in the history, its change in the
file), nothing forced over a foreign commit, at most one commit and one request per
promotion, and a clear outcome for each run (a result, or a PromoteError with exit 5
that names the branch). Runs are interleaved deterministically by a thin wrapper at
the Forge protocol level that does something (wait at a barrier, push someone else's
commit) right before one step; the forges and their HTTP clients are untouched.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from promoter import promote
from promoter.cli import run
from promoter.errors import PromoteError
from promoter.images import parse
from tests.hostile.forges import (
    MERGING,
    REVIEWED,
    SLUG,
    Harness,
    deploy,
    effects,
    harness,
    outcome,
)

KINDS = ["git", "github", "gitlab", "gitea", "azure", "bitbucket", "bitbucket-dc"]
BRANCH = "promote/prod/api"


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"  # plain git: no ~/.gitconfig of the machine
    home.mkdir()
    # only a git identity: plain git commits need an author (promoter.identity)
    (home / ".gitconfig").write_text("[user]\n\tname = Tester\n\temail = tester@example.com\n")
    monkeypatch.setenv("HOME", str(home))


class Before:
    """A Forge that runs ``action`` right before the first call of ``step``."""

    def __init__(self, inner: Any, step: str, action: Callable[[], None]) -> None:
        self.inner = inner
        self.step = step
        self.action: Callable[[], None] | None = action
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        merging = self.step == "merge" and name == "enable_auto_merge"  # either merges
        if name != self.step and not merging:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.action is not None:
                action, self.action = self.action, None
                action()
            return attr(*args, **kwargs)

        return call


def run_closed(forge: Any, tag: str, env: str = "prod", image: str = "api") -> dict[str, Any]:
    req = promote.Request(images=(parse(f"ghcr.io/acme/{image}:{tag}"),), env=env)
    try:
        return promote.run(forge, req, {}, [], effects()).to_json()
    finally:
        inner = getattr(forge, "inner", forge)
        close = getattr(inner, "close", None)
        if close is not None:
            close()


class Rendezvous:
    """Holds each run at its step until every run has arrived there or finished (a run
    that never reaches the step must not hold the others)."""

    def __init__(self, runs: int) -> None:
        self.left = runs
        self.cond = threading.Condition()

    def arrive(self, wait: bool = True) -> None:
        with self.cond:
            self.left -= 1
            self.cond.notify_all()
            if wait:
                self.cond.wait_for(lambda: self.left <= 0, timeout=30)


def at_once(h: Harness, step: str, images: list[tuple[str, str]]) -> list[Any]:
    """Run promotions in threads, held together at ``step``; each outcome is the result
    dict or the PromoteError raised (anything else fails the test)."""
    meet = Rendezvous(len(images))
    outcomes: list[Any] = [None] * len(images)

    def worker(i: int, image: str, tag: str) -> None:
        arrived = threading.Event()

        def hold() -> None:
            arrived.set()
            meet.arrive()

        forge = Before(h.forge(), step, hold)
        req = promote.Request(images=(parse(f"ghcr.io/acme/{image}:{tag}"),), env="prod")
        try:
            outcomes[i] = promote.run(forge, req, {}, [], effects()).to_json()
        except PromoteError as exc:
            outcomes[i] = exc
        except Exception as exc:  # reported by the test, not lost in a thread
            outcomes[i] = AssertionError(f"run {i} crashed: {type(exc).__name__}: {exc}")
        finally:
            if not arrived.is_set():
                meet.arrive(wait=False)
            close = getattr(forge.inner, "close", None)
            if close is not None:
                close()

    threads = [threading.Thread(target=worker, args=(i, image, tag))
               for i, (image, tag) in enumerate(images)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a run hung"
    return outcomes


def clear(outcome_: Any) -> None:
    """A run ended clearly: a result, or exit 5 whose message names what was in the way."""
    assert not isinstance(outcome_, AssertionError), outcome_
    if isinstance(outcome_, PromoteError):
        assert outcome_.code == 5, outcome_
        text = str(outcome_)
        assert "promote/prod/" in text or "main" in text or "base" in text, text
    else:
        assert isinstance(outcome_, dict), outcome_
        assert outcome_["status"] in ("merged", "up-to-date", "proposed", "superseded"), \
            outcome_


# --- the base moved ---------------------------------------------------------------------

LABELLED = deploy("1.0.0").replace(b"metadata: {name: api}", b"metadata: {name: api, "
                                                              b"labels: {team: a}}")
ELSEWHERE = {"other file": {"README.md": b"# config, edited by a human\n"},
             "same file": {"envs/prod/deploy.yaml": LABELLED}}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("step", ["write_commit", "open_request", "merge"])
@pytest.mark.parametrize("where", list(ELSEWHERE))
def test_base_moved_elsewhere_is_kept(kind: str, step: str, where: str,
                                      tmp_path: Path) -> None:
    with harness(kind, tmp_path) as h:
        base = h.bare.resolve("main") or ""
        pushed: list[str] = []
        change = ELSEWHERE[where]
        result = run_closed(Before(h.forge(), step, lambda: pushed.append(
            h.bare.commit_files("main", change, "a human's commit"))), "1.0.1")
        assert result["status"] == "merged", result
        state = outcome(h)
        assert h.bare.is_ancestor(pushed[0], state.main), "the other commit was lost"
        assert b"ghcr.io/acme/api:1.0.1" in state.main_file
        if where == "same file":
            assert b"labels: {team: a}" in state.main_file, "the other change was lost"
        else:
            assert h.bare.read_file(state.main, "README.md") == change["README.md"]
        promoted = [c for c in state.log if "Promote-Fingerprint" in c["message"]]
        assert len({c["sha"] for c in promoted}) >= 1
        assert base in {c["sha"] for c in state.log}
        assert not [c for c in state.changes if c.state == "open"]


@pytest.mark.parametrize("kind", KINDS)
def test_base_moved_on_the_same_line_upward(kind: str, tmp_path: Path) -> None:
    """Someone set 1.0.5 by hand while promoter proposed 1.1.0: the merge conflicts,
    promoter plans again on the new base and merges 1.1.0 on top of 1.0.5."""
    with harness(kind, tmp_path) as h:
        pushed: list[str] = []
        result = run_closed(Before(h.forge(), "merge", lambda: pushed.append(
            h.bare.commit_files("main", {"envs/prod/deploy.yaml": deploy("1.0.5")},
                                "hotfix by hand"))), "1.1.0")
        assert result["status"] == "merged", result
        state = outcome(h)
        assert h.bare.is_ancestor(pushed[0], state.main)
        assert state.main_file == deploy("1.1.0")
        assert not [c for c in state.changes if c.state == "open"]
        assert len([c for c in state.changes if c.state == "merged"]) <= 1


@pytest.mark.parametrize("kind", KINDS)
def test_base_moved_on_the_same_line_to_a_higher_version(kind: str, tmp_path: Path) -> None:
    """Someone set 1.0.5 by hand while promoter proposed 1.0.1: the new base already
    runs more than promoter brings, so the run is refused (downgrade) and the hand-made
    1.0.5 stays."""
    with harness(kind, tmp_path) as h:
        pushed: list[str] = []
        result = run_closed(Before(h.forge(), "merge", lambda: pushed.append(
            h.bare.commit_files("main", {"envs/prod/deploy.yaml": deploy("1.0.5")},
                                "hotfix by hand"))), "1.0.1")
        assert result["status"] in ("refused", "superseded"), result
        state = outcome(h)
        assert state.main == pushed[0], "the base moved again"
        assert state.main_file == deploy("1.0.5")


@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_redo_leaves_no_request_open(kind: str, tmp_path: Path) -> None:
    """The request the first attempt opened is withdrawn when the re-plan is refused
    (it was left open, while the result said 'nothing is proposed', until d9e945f)."""
    with harness(kind, tmp_path) as h:
        result = run_closed(Before(h.forge(), "merge", lambda: h.bare.commit_files(
            "main", {"envs/prod/deploy.yaml": deploy("1.0.5")}, "hotfix by hand")), "1.0.1")
        assert result["status"] == "refused"
        state = outcome(h)
        assert not [c for c in state.changes if c.state == "open"], state.changes
        assert not state.branches, state.branches


# --- the same promotion twice at once -------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("step", ["snapshot", "write_commit", "open_request", "merge"])
def test_same_promotion_twice_at_once(kind: str, step: str, tmp_path: Path) -> None:
    with harness(kind, tmp_path) as h:
        base = h.bare.resolve("main") or ""
        outcomes = at_once(h, step, [("api", "1.0.1"), ("api", "1.0.1")])
        for o in outcomes:
            clear(o)
        assert any(isinstance(o, dict) for o in outcomes), outcomes
        state = outcome(h)
        assert state.main_file == deploy("1.0.1")
        new = [c for c in state.log if c["sha"] != base]
        assert len(new) == 1 and new[0]["parents"] == [base], "not one commit on main"
        assert len([c for c in state.changes if c.state == "merged"]) <= 1, state.changes
        assert not [c for c in state.changes if c.state == "open"], state.changes


@pytest.mark.parametrize("kind", ["github", "gitlab", "bitbucket"])
def test_a_branch_whose_request_was_merged_meanwhile_gets_no_second_request(
        kind: str, tmp_path: Path) -> None:
    """The branch holds the proved promotion but no request is open: another run may
    have merged it (squash) a moment ago. Opening a new request for that commit would
    merge the change a second time, so the base is looked at first and the run plans
    again when it moved (then: already up to date)."""
    with harness(kind, tmp_path, REVIEWED) as h:
        first = run_closed(h.forge(), "1.0.1")
        forge = h.forge()
        pr = forge.find_request(BRANCH, "main")
        assert pr is not None
        forge.close_request(pr, "")  # the branch stays, its request is gone
        h.bare.commit_files("main", {".promoter.yaml": MERGING}, "merge from now on")
        landed: list[str] = []
        result = run_closed(Before(h.forge(), "find_request", lambda: landed.append(
            h.bare.commit_files("main", {"envs/prod/deploy.yaml": deploy("1.0.1")},
                                "the other run's squash merge"))), "1.0.1")
        assert result["status"] == "up-to-date", result
        state = outcome(h)
        assert state.main == landed[0], "a second merge of the same change"
        assert not [c for c in state.changes if c.state == "open"], state.changes
        assert first["commit"] not in [c["sha"] for c in state.log]


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea"])
def test_a_merge_landing_between_the_base_check_and_the_new_request_is_not_merged_again(
        kind: str, tmp_path: Path) -> None:
    """As above, but the other run's merge lands after the base was looked at and before
    the new request is opened (GitLab's write-first makes the second of two identical
    runs take this path: test_same_promotion_twice_at_once failed now and then). The
    request opened for a change the base already has is closed, and the run plans
    again instead of merging it a second time."""
    with harness(kind, tmp_path, REVIEWED) as h:
        first = run_closed(h.forge(), "1.0.1")
        forge = h.forge()
        pr = forge.find_request(BRANCH, "main")
        assert pr is not None
        forge.close_request(pr, "")  # the branch stays, its request is gone
        h.bare.commit_files("main", {".promoter.yaml": MERGING}, "merge from now on")
        landed: list[str] = []
        result = run_closed(Before(h.forge(), "open_request", lambda: landed.append(
            h.bare.commit_files("main", {"envs/prod/deploy.yaml": deploy("1.0.1")},
                                "the other run's squash merge"))), "1.0.1")
        assert result["status"] == "up-to-date", result
        state = outcome(h)
        assert state.main == landed[0], "a second merge of the same change"
        assert not [c for c in state.changes if c.state == "open"], state.changes
        assert first["commit"] not in [c["sha"] for c in state.log]


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea", "azure"])
def test_a_change_merged_and_its_branch_deleted_meanwhile_is_not_merged_again(
        kind: str, tmp_path: Path) -> None:
    """Another run of the same promotion merged it and the forge deleted its branch
    between this run's snapshot and its write: this run finds no branch, writes a fresh
    one on the old base and opens a request. Merging that would put the same change on
    the base a second time (an empty change); the run sees the base moved and plans
    again: already up to date, its request closed and its branch gone."""
    with harness(kind, tmp_path, MERGING) as h:
        landed: list[str] = []
        result = run_closed(Before(h.forge(), "open_request", lambda: landed.append(
            h.bare.commit_files("main", {"envs/prod/deploy.yaml": deploy("1.0.1")},
                                "the other run's squash merge"))), "1.0.1")
        assert result["status"] == "up-to-date", result
        state = outcome(h)
        assert state.main == landed[0], "the same change merged a second time"
        assert not [c for c in state.changes if c.state in ("open", "merged")], state.changes
        assert h.bare.resolve(f"refs/heads/{BRANCH}") is None


# --- two promotions, one file ------------------------------------------------------------------

TWO = b"""\
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  template:
    spec:
      containers:
      - name: api
        image: ghcr.io/acme/api:1.0.0
        ports: [{containerPort: 8080}]
        resources: {limits: {memory: 1Gi}}
        env:
        - {name: MODE, value: prod}
      - name: web
        image: ghcr.io/acme/web:1.0.0
"""
ADJACENT = b"""\
# values: the two image lines touch, so a merge of one over the other conflicts
api: {image: "ghcr.io/acme/api:1.0.0"}
web: {image: "ghcr.io/acme/web:1.0.0"}
"""


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("step", ["write_commit", "merge"])
@pytest.mark.parametrize("layout", ["apart", "adjacent"])
def test_two_promotions_of_one_file_at_once(kind: str, step: str, layout: str,
                                            tmp_path: Path) -> None:
    """Both land, each run by itself: the one that lost the race plans again on the new
    base (bounded), so nothing is lost and no run needs repeating."""
    text = TWO if layout == "apart" else ADJACENT
    with harness(kind, tmp_path, extra={"envs/prod/deploy.yaml": text}) as h:
        images = [("api", "1.0.1"), ("web", "1.0.1")]
        outcomes = at_once(h, step, images)
        for o in outcomes:
            clear(o)
            assert not isinstance(o, PromoteError), o  # a lost race is planned again
            assert o["status"] == "merged", o
        state = outcome(h)
        assert b"ghcr.io/acme/api:1.0.1" in state.main_file, "the api update was lost"
        assert b"ghcr.io/acme/web:1.0.1" in state.main_file, "the web update was lost"
        assert state.main_file == text.replace(b"api:1.0.0", b"api:1.0.1").replace(
            b"web:1.0.0", b"web:1.0.1")
        assert not [c for c in state.changes if c.state == "open"]


# --- someone else's commit on the promotion branch --------------------------------------------


def foreign_commit(h: Harness) -> str:
    return h.bare.commit_files(BRANCH, {"envs/prod/notes.txt": b"a human was here\n"},
                               "a human's commit on the promotion branch")


@pytest.mark.parametrize("kind", KINDS)
def test_foreign_commit_on_the_branch_is_never_forced(kind: str, tmp_path: Path) -> None:
    with harness(kind, tmp_path, REVIEWED) as h:
        first = run_closed(h.forge(), "1.0.1")
        assert first["status"] == "proposed"
        theirs = foreign_commit(h)
        with pytest.raises(PromoteError) as caught:
            run_closed(h.forge(), "1.0.2")
        assert caught.value.code == 5
        assert BRANCH in str(caught.value) and "did not make" in str(caught.value)
        state = outcome(h)
        assert state.branches[BRANCH] == theirs, "the foreign commit was overwritten"
        assert state.main_file == deploy("1.0.0")


@pytest.mark.parametrize("kind", KINDS)
def test_foreign_commit_racing_the_branch_update(kind: str, tmp_path: Path) -> None:
    """The foreign commit lands after promoter read the branch and before it moved it:
    the compare-and-swap on the ref must fail, and the run must say so."""
    with harness(kind, tmp_path, REVIEWED) as h:
        run_closed(h.forge(), "1.0.1")
        pushed: list[str] = []
        with pytest.raises(PromoteError) as caught:
            run_closed(Before(h.forge(), "write_commit",
                              lambda: pushed.append(foreign_commit(h))), "1.0.2")
        assert caught.value.code == 5
        assert BRANCH in str(caught.value)
        state = outcome(h)
        assert state.branches[BRANCH] == pushed[0], "the foreign commit was overwritten"
        assert state.main_file == deploy("1.0.0")


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea", "azure"])
def test_foreign_commit_through_the_cli(kind: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with harness(kind, tmp_path, REVIEWED) as h:
        monkeypatch.setenv("PROMOTE_TOKEN", h.token)
        args = ["--repo", SLUG, "--forge", kind, "--api-url", h.url, "--env", "prod",
                "--output", "json"]
        assert run([*args, "--image", "ghcr.io/acme/api:1.0.1"]) == 0
        capsys.readouterr()
        theirs = foreign_commit(h)
        assert run([*args, "--image", "ghcr.io/acme/api:1.0.2"]) == 5
        out, err = capsys.readouterr()
        assert "Traceback" not in err and h.token not in out + err
        assert json.loads(out)["exit_code"] == 5
        assert BRANCH in err
        assert outcome(h).branches[BRANCH] == theirs
