"""The hostile-input corpus (tests/hostile/corpus.py) through the real CLI.

Each case runs in each of its modes: ``--in-place`` on a working tree, ``--dry-run
--output json`` on a working tree, and through the plain-git forge against a bare repo
holding the same files. A refused case must exit with its code, name the file and line,
print no traceback, and leave every byte of the temp tree as it was (repo, the
``outside`` directory a case may aim at, and the private clone's temp directory), with
no ref added to the bare repo. An accepted case must change exactly the values it
names. A few cases also run as a real ``promote`` process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from promoter.cli import run
from promoter.report import trailers
from tests.fakes.gitrepo import BareRepo
from tests.hostile.corpus import BASE, CASES, OUTSIDE, Case
from tests.hostile.forges import REVIEWED, harness, promote_once

BY_NAME = {case.name: case for case in CASES}
RUNS = [pytest.param(case, mode, id=f"{case.name}-{mode}") for case in CASES
        for mode in case.modes]


@pytest.fixture(autouse=True)
def _quiet_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No git or proxy settings of the machine; the forge's private clones go to a temp
    directory of the test, which must be empty again afterwards."""
    for key in list(os.environ):
        if key.startswith("GIT_") or key.lower().endswith("_proxy"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir()
    # only a git identity: plain git commits need an author (promoter.identity)
    (home / ".gitconfig").write_text("[user]\n\tname = Tester\n\temail = tester@example.com\n")
    monkeypatch.setenv("HOME", str(home))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    yield scratch
    assert not any(scratch.iterdir()), f"left behind: {sorted(os.listdir(scratch))}"


# --- building a case ----------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    root: Path  # holds repo/ (or repo.git/) and outside/
    repo: Path
    outside: Path
    files: Mapping[str, bytes]


def contents(case: Case, outside: Path) -> dict[str, bytes]:
    files = dict(BASE) if case.base else {}
    for path, content in case.files.items():
        files[path] = content(outside) if callable(content) else content
    return files


def build(case: Case, root: Path, mode: str) -> World:
    outside = root / "outside"
    outside.mkdir(parents=True)
    for name, data in OUTSIDE.items():
        (outside / name).write_bytes(data)
    files = contents(case, outside)
    if mode == "git":
        repo = root / "repo.git"
        bare = BareRepo.init(repo, files)
        if case.links:
            entries = {path: ("120000", bare.write_blob(target.encode()))
                       for path, target in case.links.items()}
            tree = bare.write_tree_entries(bare.resolve("main"), entries)
            tip = bare.resolve("main")
            sha = bare.commit_tree(tree, [tip] if tip else [], "links")
            assert bare.update_ref("main", sha, old=tip)
        return World(root, repo, outside, files)
    repo = root / "repo"
    repo.mkdir()
    for path, data in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_bytes(data)
    for path, target in case.links.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, repo / path)
    for path in case.fifos:
        os.mkfifo(repo / path)
    return World(root, repo, outside, files)


def tree_state(root: Path, skip: str = "scratch") -> dict[str, tuple[object, ...]]:
    """Every entry under ``root``: kind, mode and content hash (or link target); never
    following a symlink or opening a FIFO."""
    state: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != skip or dirpath != str(root)]
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                state[rel] = ("file", st.st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                state[rel] = ("other", st.st_mode)
    return state


def argv(case: Case, world: World, mode: str) -> list[str]:
    args = [a.replace("{outside}", str(world.outside)) for a in case.args]
    head = ["--repo", str(world.repo)]
    if mode == "in-place":
        return [*head, *args, "--in-place"]
    if mode == "json":
        return [*head, *args, "--dry-run", "--output", "json"]
    return [*head, "--forge", "git", *args, "--output", "json"]


# --- the checks ---------------------------------------------------------------------------


def check_refused(case: Case, mode: str, code: int, out: str, err: str) -> None:
    assert code == case.code, f"exit {code}, want {case.code}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in err and "Traceback" not in out
    assert err.startswith("error: "), err
    assert "internal error" not in err
    for text in case.says:
        assert text in err, f"{text!r} not in {err!r}"
    if case.where is not None:
        assert err.startswith(f"error: {case.where}:"), f"{err!r} does not name {case.where}"
    if mode != "in-place":
        report = json.loads(out)
        assert report["status"] == "error"
        assert report["exit_code"] == case.code
        if case.where is not None:
            file, _, line = case.where.partition(":")
            assert report["file"] == file
            if line:
                assert report["line"] == int(line)


def check_changes(case: Case, world: World, mode: str, before: Mapping[str, bytes],
                  after: Mapping[str, bytes]) -> None:
    """Only the ``changed`` files differ, each by ``old`` -> ``version``."""
    assert set(after) == set(before)
    for path, old in before.items():
        new = after[path]
        if path in case.changed:
            assert new == old.replace(case.old.encode(), case.version.encode()), path
            assert new != old, f"{path} should have changed"
        else:
            assert new == old, f"{path} changed but should not have"


def local_files(repo: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _, filenames in os.walk(repo):
        for name in filenames:
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                out[str(path.relative_to(repo))] = path.read_bytes()
    return out


def git_files(bare: BareRepo, ref: str) -> dict[str, bytes]:
    return {path: bare.read_blob(sha) for path, (mode, sha) in bare.read_tree(ref).items()
            if mode != "120000"}


@pytest.mark.parametrize(("case", "mode"), RUNS)
def test_hostile(case: Case, mode: str, tmp_path: Path,
                 capsys: pytest.CaptureFixture[str]) -> None:
    world = build(case, tmp_path / "world", mode)
    state = tree_state(world.root)
    bare = BareRepo(world.repo) if mode == "git" else None
    refs = bare.list_refs() if bare is not None else {}
    code = run(argv(case, world, mode))
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    if case.code != 0:
        check_refused(case, mode, code, out, err)
        assert tree_state(world.root) == state, "something was written"
        if bare is not None:
            assert bare.list_refs() == refs, "a ref was left behind"
        return
    assert code == 0, f"exit {code}\nstdout: {out}\nstderr: {err}"
    for text in case.says:
        assert text in out + err, f"{text!r} not in the output"
    if mode == "in-place":
        for path in case.skipped:
            assert f"skipped {path}:" in out, f"{path} is not reported as skipped"
    else:
        skips = {s["file"] for s in json.loads(out)["skips"]}
        assert set(case.skipped) <= skips, f"{case.skipped} not reported as skipped"
    outside_now = {k: v for k, v in tree_state(world.root).items() if k.startswith("outside")}
    assert outside_now == {k: v for k, v in state.items() if k.startswith("outside")}
    if mode == "json":
        report = json.loads(out)
        assert {c["file"] for c in report["changes"]} == set(case.changed)
        assert tree_state(world.root) == state, "a dry run wrote something"
    elif mode == "in-place":
        now = tree_state(world.root)
        for path, entry in state.items():  # links, FIFOs and untouched files as they were
            rel = path.removeprefix("repo/")
            if rel not in case.changed:
                assert now.get(path) == entry, f"{path} changed"
        check_changes(case, world, mode, world.files, local_files(world.repo))
    else:
        assert bare is not None
        report = json.loads(out)
        new_refs = bare.list_refs()
        assert new_refs["refs/heads/main"] == refs["refs/heads/main"]
        assert set(new_refs) - set(refs) == {f"refs/heads/{report['branch']}"}
        check_changes(case, world, mode, git_files(bare, "main"),
                      git_files(bare, report["branch"]))


def test_corpus_is_big_enough() -> None:
    refused = [c for c in CASES if c.code != 0]
    assert len(CASES) >= 40 and len(refused) >= 40
    assert len(BY_NAME) == len(CASES), "case names must be unique"


# --- the same, as a real process ------------------------------------------------------------

PROMOTE = str(Path(sys.executable).with_name("promote"))
PROCESS_CASES = ("deep_flow_10000", "deep_brackets_60000", "config_nested_5000",
                 "bomb_alias_over_image", "invalid_utf8", "tag_newline",
                 "file_dotdot_etc_passwd", "config_paths_dotdot", "symlink_dir_outside",
                 "fifo_named_by_file")


@pytest.mark.parametrize("name", PROCESS_CASES)
def test_hostile_as_a_process(name: str, tmp_path: Path) -> None:
    case = BY_NAME[name]
    world = build(case, tmp_path / "world", "in-place")
    state = tree_state(world.root)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LC_ALL": "C.UTF-8"}
    proc = subprocess.run([PROMOTE, *argv(case, world, "in-place")],
                          capture_output=True, env=env, timeout=60, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == case.code, err
    assert "Traceback" not in err and err.startswith("error: ")
    assert proc.stdout == b""
    assert tree_state(world.root) == state


# --- file names that try to inject Markdown/HTML into the PR/MR body ----------------------------

HOSTILE_NAMES = ("envs/prod/`x`<img src=x onerror=alert(1)>.yaml",
                 "envs/prod/[click](javascript:alert(1)).yaml",
                 "envs/prod/**bold** _x_ <script>alert(1)</script>.yaml",
                 "envs/prod/```\n.yaml")
CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.DOTALL)


def outside_code(markdown: str) -> str:
    """The Markdown with its fenced blocks and inline code spans removed."""
    fence = re.compile(r"^(`{3,})[^\n]*\n.*?^\1\s*$", re.DOTALL | re.MULTILINE)
    return CODE_SPAN.sub("", fence.sub("", markdown))


def table_rows(markdown: str) -> list[tuple[int, str]]:
    """(number of cells, row) for every table row, splitting on unescaped pipes the way
    GFM does (a pipe inside a code span splits too, unless escaped)."""
    rows = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
            rows.append((len(cells), line))
    return rows


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea", "bitbucket"])
def test_hostile_file_names_stay_inside_code_in_the_request(kind: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    extra = {name: b"image: ghcr.io/acme/api:1.0.0\n" for name in HOSTILE_NAMES}
    with harness(kind, tmp_path, REVIEWED, extra=extra) as h:
        result = promote_once(h.forge(), "1.0.1")
        assert result["status"] == "proposed"
        text = h.request_text(result["pull_request"]["number"])
        files = {c["file"] for c in result["changes"]}
        assert files >= set(HOSTILE_NAMES[:3])  # edited, and named in the body...
        bare = outside_code(text)
        for needle in ("<img", "<script", "](javascript", "**bold**", "onerror"):
            assert needle not in bare, f"{needle!r} escaped its code span"
        widths = {n for n, row in table_rows(text) if row.startswith("| `envs/prod/")}
        assert widths == {5}, table_rows(text)  # ...inside their own table cells
        # the commit: its trailers are exactly promoter's own
        tip = h.bare.resolve(result["branch"]) or ""
        message = (h.bare.commit(tip) or {})["message"]
        keys = [k for k, _ in trailers(message)]
        assert keys.count("Promoted-Image") == 1 and keys[-1] == "Promote-Fingerprint"


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea", "bitbucket"])
def test_a_pipe_in_a_file_name_cannot_break_the_table(kind: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    name = "envs/prod/a|[click](https:evil.example)|<img src=x>.yaml"
    with harness(kind, tmp_path, REVIEWED,
                 extra={name: b"image: ghcr.io/acme/api:1.0.0\n"}) as h:
        result = promote_once(h.forge(), "1.0.1")
        text = h.request_text(result["pull_request"]["number"])
        assert {n for n, row in table_rows(text) if row.startswith("| `envs/prod/")} == {5}


# --- a few refusals through the GitHub and GitLab APIs -----------------------------------------

API_CASES = ("bomb_alias_over_image", "duplicate_keys", "invalid_utf8", "templated_braces",
             "deep_flow_10000", "trailer_injection_in_old_tag", "config_paths_dotdot",
             "file_dotdot_etc_passwd", "tag_newline", "set_value_command")


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea", "bitbucket"])
@pytest.mark.parametrize("name", API_CASES)
def test_hostile_through_the_apis(name: str, kind: str, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before anything is written: no branch, no commit, no request."""
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    case = BY_NAME[name]
    outside = tmp_path / "outside"
    outside.mkdir()
    content = contents(case, outside)
    config = content.pop(".promoter.yaml", b"version: 1\n")
    with harness(kind, tmp_path / "forge", config, extra=content) as h:
        monkeypatch.setenv("PROMOTE_TOKEN", h.token)
        refs = h.bare.list_refs()
        args = [a.replace("{outside}", str(outside)) for a in case.args]
        code = run(["--repo", "acme/config", "--forge", kind, "--api-url", h.url, *args,
                    "--output", "json"])
        out, err = capsys.readouterr()
        check_refused(case, "json", code, out, err)
        assert h.bare.list_refs() == refs, "a branch was left behind"
        assert h.changes() == [], "a request was opened"
        reads = {"GET", "POST /graphql#PromoterRun"}  # the run query reads
        assert not [r for r in h.requests() if r[0] not in reads
                    and f"{r[0]} {r[1]}" not in reads], "something was written"
