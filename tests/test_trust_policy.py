"""Trust rules (issue #10): every doubt fails closed, on every forge.

The same scenarios on plain git, the fake GitHub and the fake GitLab (real HTTP, real
bare repos), through the real CLI. Setup commits go straight into the bare repo; what
an attacker (or a careless user) does to the config repo is a real ``git push``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from promoter import promote
from promoter.errors import ConfigError
from promoter.forges.base import Snapshot
from tests.test_e2e import CONFIG, Harness, _harness, cli, deploy

API = "ghcr.io/acme/api"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


@pytest.fixture(params=["git", "github", "gitlab", "gitea", "azure", "bitbucket"])
def h(request: pytest.FixtureRequest, tmp_path: Path,
      monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    yield from _harness(request.param, tmp_path, monkeypatch)


def checks(result: dict[str, object]) -> dict[str, str]:
    policy = result["policy"]
    assert isinstance(policy, dict)
    return {c["name"]: c["status"] for c in policy["checks"]}


def reasons(result: dict[str, object]) -> dict[str, str]:
    policy = result["policy"]
    assert isinstance(policy, dict)
    return {c["name"]: c["reason"] for c in policy["checks"]}


def git_push(h: Harness, work: Path, change: Callable[[Path], None], message: str,
             branch: str = "main") -> str:
    """Clone the config repo, let ``change`` edit the work tree, commit and push it:
    what anyone with push access does. Returns the pushed commit."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "mallory", "GIT_AUTHOR_EMAIL": "m@example.com",
           "GIT_COMMITTER_NAME": "mallory", "GIT_COMMITTER_EMAIL": "m@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(work.parent)}

    def git(*args: str, cwd: Path = work) -> str:
        proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True,
                              check=True)
        return proc.stdout.decode().strip()

    if not work.exists():
        git("clone", "-q", str(h.bare.path), str(work), cwd=work.parent)
    git("fetch", "-q", "origin")
    git("checkout", "-q", "-B", branch, f"origin/{branch}")
    change(work)
    git("add", "-A")
    git("commit", "-q", "-m", message)
    git("push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    return git("rev-parse", "HEAD")


def unchanged(h: Harness, before: dict[str, str]) -> None:
    """Nothing was written anywhere: same refs, no request."""
    assert dict(h.bare.list_refs("refs/heads/")) == before
    assert h.open_requests() == []


# --- hole 4: a promotion names a version; what cannot be judged fails ---------------------


def test_an_untagged_image_is_refused_before_anything_is_written(
        h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    before = dict(h.bare.list_refs("refs/heads/"))
    code, result = cli(h, capsys, "--env", "dev", "--image", API)
    assert code == 2
    assert "no tag or digest" in result["error"]
    assert "latest" in result["error"]
    code, result = cli(h, capsys, "--env", "dev", "--image", f"{API}:1.0.1",
                       "--marker", f"flux-system:api={API}")
    assert code == 2
    assert "--marker" in result["error"]
    unchanged(h, before)
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.0.0")


def test_a_digest_only_promotion_is_proposed_but_never_auto_merged(
        h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    tagged = CONFIG.replace(b"  wait_for_checks: false\n",
                            b"  wait_for_checks: false\n  allowed_tags: ['^\\d+\\.\\d+\\.\\d+$']\n")
    h.bare.commit_files("main", {".promoter.yaml": tagged}, "policy: release tags only")
    code, result = cli(h, capsys, "--env", "dev", "--image", f"{API}@{DIGEST_A}")
    assert code == 0, result
    assert result["merged"] is False
    assert result["status"] == "proposed"
    found = checks(result)
    assert found["allowed_tags"] == "fail"  # configured, and a digest has no tag to match
    assert found["semver_bump"] == "fail"  # the step cannot be measured
    assert found["no_downgrade"] == "fail"  # nor ordered (but not refused: a human may merge)
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.0.0")
    assert len(h.open_requests()) == 1


def test_history_and_rollback_still_take_a_bare_name(
        h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(h, capsys, "--env", "dev", "--image", f"{API}:1.1.0")[0] == 0
    code, hist = cli(h, capsys, "--history", "--env", "dev", "--image", API)
    assert code == 0
    assert [e["images"] for e in hist["history"]] == [[f"{API}:1.1.0"]]
    code, back = cli(h, capsys, "--rollback", "--env", "dev", "--image", API)
    assert code == 0, back
    assert back["images"] == [f"{API}:1.0.0"]


# --- hole 5: every written value is judged by its own new value ----------------------------


MARKED = b"""\
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker}
spec:
  template:
    spec:
      containers:
      - name: api
        image: ghcr.io/acme/api:1.0.0 # {"$imagepolicy": "flux-system:api"}
"""


def test_a_marker_cannot_smuggle_another_version_of_the_image(
        h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    h.bare.commit_files("main", {"envs/dev/marked.yaml": MARKED}, "a flux marker")
    before = dict(h.bare.list_refs("refs/heads/"))
    code, result = cli(h, capsys, "--env", "dev", "--image", f"{API}:1.0.1",
                       "--marker", f"flux-system:api={API}:9.9.9-evil")
    assert code == 2
    assert "two versions" in result["error"]
    unchanged(h, before)
    assert h.main_file("envs/dev/marked.yaml") == MARKED


def test_a_marker_value_is_judged_by_what_it_writes(
        h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    h.bare.commit_files("main", {"envs/dev/marked.yaml": MARKED}, "a flux marker")
    code, result = cli(h, capsys, "--env", "dev", "--marker",
                       f"flux-system:api={API}:9.9.9")
    assert code == 0, result
    assert checks(result)["semver_bump"] == "fail"
    assert "1.0.0 → 9.9.9 is a major step" in reasons(result)["semver_bump"]
    assert result["merged"] is False
    assert h.main_file("envs/dev/marked.yaml") == MARKED


def test_a_set_value_that_is_no_image_reference_never_auto_merges(
        h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    code, result = cli(h, capsys, "--env", "dev", "--set",
                       "envs/dev/deploy.yaml:spec.template.spec.containers[0].name=evil")
    assert code == 0, result
    assert result["merged"] is False
    assert "is not an image reference" in reasons(result)["semver_bump"]


def test_a_set_reference_is_judged_as_an_image(h: Harness,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # a whole reference replacing the same repository's reference is judged as one
    code, result = cli(h, capsys, "--env", "dev", "--set",
                       f"envs/dev/deploy.yaml:spec.template.spec.containers[0].image={API}:1.0.1")
    assert code == 0, result
    assert checks(result)["semver_bump"] == "pass"
    assert result["merged"] is True


def test_a_set_reference_that_swaps_the_repository_never_auto_merges(
        h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    code, result = cli(h, capsys, "--env", "dev", "--set",
                       "envs/dev/deploy.yaml:spec.template.spec.containers[0].image="
                       "ghcr.io/evil/api:1.0.2")
    assert code == 0, result
    assert result["merged"] is False
    assert checks(result)["allowed_tags"] in ("skip", "fail")
    assert checks(result)["semver_bump"] == "fail"


# --- hole 7: require_upstream keeps the upstream's digest ----------------------------------


def pinned(tag: str, digest: str) -> bytes:
    return deploy(tag).replace(f"api:{tag}".encode(), f"api:{tag}@{digest}".encode())


def test_a_tag_only_promotion_cannot_drop_the_upstream_digest(
        h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    h.bare.commit_files("main", {"envs/dev/deploy.yaml": pinned("1.1.0", DIGEST_A)},
                        "dev runs a pinned 1.1.0")
    code, result = cli(h, capsys, "--env", "staging", "--image", f"{API}:1.1.0", "--dry-run")
    assert code == 0, result
    assert checks(result)["require_upstream"] == "fail"
    assert "would drop the pin" in reasons(result)["require_upstream"]
    assert f"{API}:1.1.0@{DIGEST_A}" in reasons(result)["require_upstream"]
    # the same tag with the upstream's digest passes, and so does --from (it carries it)
    code, result = cli(h, capsys, "--env", "staging", "--image", f"{API}:1.1.0@{DIGEST_A}",
                       "--dry-run")
    assert checks(result)["require_upstream"] == "pass"
    code, result = cli(h, capsys, "--env", "staging", "--image", f"{API}:1.1.0@{DIGEST_B}",
                       "--dry-run")
    assert checks(result)["require_upstream"] == "fail"
    code, result = cli(h, capsys, "--env", "staging", "--from", "dev", "--image", API,
                       "--dry-run")
    assert result["images"] == [f"{API}:1.1.0@{DIGEST_A}"]
    assert checks(result)["require_upstream"] == "pass"


# --- hole 11: --history needs no image; --rollback says what it needs ----------------------


def test_history_without_an_image_lists_every_promotion(
        h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(h, capsys, "--env", "dev", "--image", f"{API}:1.1.0")[0] == 0
    code, hist = cli(h, capsys, "--history", "--env", "dev")
    assert code == 0, hist
    assert hist["status"] == "history"
    assert [e["images"] for e in hist["history"]] == [[f"{API}:1.1.0"]]
    code, hist = cli(h, capsys, "--history")
    assert code == 0, hist


def test_rollback_without_an_image_says_so(h: Harness,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, result = cli(h, capsys, "--rollback", "--env", "dev")
    assert code == 2
    assert "--rollback needs --image NAME" in result["error"]
    code, result = cli(h, capsys, "--rollback", "--image", API)
    assert code == 2
    assert "--rollback needs --env" in result["error"]


# --- hole 6: rollback is idempotent, per image, and its guard holds ------------------------


WORKER = "ghcr.io/acme/worker"


def worker(tag: str) -> bytes:
    return deploy(tag).replace(b"acme/api", b"acme/worker").replace(b"name: api", b"name: worker")


def human_merge(h: Harness, branch: str) -> None:
    """A reviewer merges the open request of ``branch`` as it stands (squash, keeping
    the promotion commit's message and so its trailers)."""
    forge = h.forge()
    try:
        head = forge.read_head(branch)
        assert head is not None
        pr = forge.find_request(branch, "main")
        assert pr is not None
        assert forge.merge(pr, "squash", head.sha, head.message).merged
    finally:
        close = getattr(forge, "close", None)
        if close is not None:
            close()


def test_a_second_rollback_is_a_no_op(h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(h, capsys, "--env", "dev", "--image", f"{API}:1.1.0")[0] == 0
    assert cli(h, capsys, "--env", "dev", "--image", f"{API}:1.2.0")[0] == 0
    code, back = cli(h, capsys, "--rollback", "--env", "dev", "--image", API)
    assert code == 0, back
    assert back["merged"] is True
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.1.0")
    # the real policy is reported: dev has allow_downgrade: false, a rollback is exempt
    no_downgrade = reasons(back)["no_downgrade"]
    assert "allow_downgrade: false" in no_downgrade
    assert "allow_downgrade: true" not in no_downgrade
    code, again = cli(h, capsys, "--rollback", "--env", "dev", "--image", API)  # CI retried
    assert code == 0, again
    assert again["status"] == "up-to-date"
    assert again["images"] == [f"{API}:1.1.0"]
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.1.0")  # never flips back
    assert h.open_requests() == []


def test_a_rollback_of_two_images_arms_the_guard_for_each(
        h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    h.bare.commit_files("main", {"envs/dev/worker.yaml": worker("2.0.0")}, "a worker")
    code, result = cli(h, capsys, "--env", "dev", "--image", f"{API}:1.1.0",
                       "--image", f"{WORKER}:2.1.0")
    assert code == 0, result
    assert result["merged"] is True
    code, back = cli(h, capsys, "--rollback", "--env", "dev", "--image", API,
                     "--image", WORKER)
    assert code == 0, back
    assert sorted(back["images"]) == [f"{API}:1.0.0", f"{WORKER}:2.0.0"]
    code, hist = cli(h, capsys, "--history", "--env", "dev")
    assert sorted(hist["history"][0]["rollback_of"]) == [f"{API}:1.1.0", f"{WORKER}:2.1.0"]
    message = h.bare.log("main", 1)[0]["message"]
    assert f"Promote-Rollback-Of: {API}:1.1.0\n" in message
    assert f"Promote-Rollback-Of: {WORKER}:2.1.0\n" in message
    for image in (f"{API}:1.1.0", f"{WORKER}:2.1.0"):
        code, again = cli(h, capsys, "--env", "dev", "--image", image, "--dry-run")
        assert checks(again)["rollback_guard"] == "fail", image


def test_the_rollback_guard_lifts_only_above_the_rolled_back_version(
        h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(h, capsys, "--env", "dev", "--image", f"{API}:1.1.0")[0] == 0
    assert cli(h, capsys, "--env", "dev", "--image", f"{API}:1.2.0")[0] == 0
    assert cli(h, capsys, "--rollback", "--env", "dev", "--image", API)[0] == 0
    # 1.1.5 is at or below 1.2.0: it waits for a human, who merges it
    code, lower = cli(h, capsys, "--env", "dev", "--image", f"{API}:1.1.5")
    assert code == 0, lower
    assert lower["merged"] is False
    assert checks(lower)["rollback_guard"] == "fail"
    human_merge(h, "promote/dev/api")
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.1.5")
    # the human merge of a LOWER version does not lift the guard for 1.2.0
    code, bad = cli(h, capsys, "--env", "dev", "--image", f"{API}:1.2.0")
    assert code == 0, bad
    assert checks(bad)["rollback_guard"] == "fail"
    assert bad["merged"] is False
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.1.5")
    # a version above the rolled-back one lands (the guard lets it through), and lifts it
    human_merge(h, "promote/dev/api")  # a human decides 1.2.0 is fine after all
    code, above = cli(h, capsys, "--env", "dev", "--image", f"{API}:1.2.1")
    assert code == 0, above
    assert checks(above)["rollback_guard"] == "pass"
    assert above["merged"] is True
    code, later = cli(h, capsys, "--env", "dev", "--image", f"{API}:1.2.2")
    assert "nothing was rolled back" in reasons(later)["rollback_guard"]


# --- hole 3: the policy file is read as a blob, or the run stops ---------------------------


def _link(work: Path, path: str, target: str) -> None:
    (work / path).unlink()
    (work / path).symlink_to(target)


def test_a_policy_file_that_is_a_symlink_stops_the_run(
        h: Harness, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def relink(work: Path) -> None:  # the policy moves; the root keeps a link to it
        (work / "policy").mkdir()
        (work / "policy/real.yaml").write_bytes(CONFIG)
        _link(work, ".promoter.yaml", "policy/real.yaml")

    git_push(h, tmp_path / "work", relink, "policy: keep it under policy/")
    before = dict(h.bare.list_refs("refs/heads/"))
    # with the policy ignored, --auto-merge on the built-in policy would merge into prod
    code, result = cli(h, capsys, "--file", "envs/prod/deploy.yaml",
                       "--image", f"{API}:1.0.1", "--auto-merge")
    assert code == 2, result
    assert ".promoter.yaml on the base branch is a symbolic link to 'policy/real.yaml'" \
        in result["error"]
    assert "regular file" in result["error"]
    unchanged(h, before)
    assert h.main_file("envs/prod/deploy.yaml") == deploy("1.0.0")


def test_a_policy_path_that_is_a_directory_stops_the_run(
        h: Harness, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def into_dir(work: Path) -> None:
        (work / ".promoter.yaml").unlink()
        (work / ".promoter.yaml").mkdir()
        (work / ".promoter.yaml/policy.yaml").write_bytes(CONFIG)

    git_push(h, tmp_path / "work", into_dir, "policy: a directory")
    code, result = cli(h, capsys, "--file", "envs/prod/deploy.yaml",
                       "--image", f"{API}:1.0.1", "--auto-merge")
    assert code == 2, result
    assert ".promoter.yaml on the base branch is a directory" in result["error"]
    assert h.main_file("envs/prod/deploy.yaml") == deploy("1.0.0")


def test_a_policy_file_left_out_of_the_archive_is_still_read(
        h: Harness, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def hide(work: Path) -> None:  # archives (GitHub tarball, GitLab archive) drop it
        (work / ".gitattributes").write_text(".promoter.yaml export-ignore\n"
                                             ".gitattributes export-ignore\n")

    git_push(h, tmp_path / "work", hide, "chore: slimmer archives")
    code, result = cli(h, capsys, "--file", "envs/prod/deploy.yaml",
                       "--image", f"{API}:1.0.1", "--auto-merge")
    assert code == 0, result
    assert result["merged"] is False  # prod's own policy: no auto-merge
    assert "environment prod has auto_merge: false" in \
        reasons(result)["auto_merge_enabled"]
    assert h.main_file("envs/prod/deploy.yaml") == deploy("1.0.0")


def test_a_policy_file_rewritten_in_the_archive_is_read_as_committed(
        h: Harness, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # export-subst expands $Format:...$ in archives: %n turns a comment into a key, so
    # the archived policy would let prod auto-merge; the committed blob does not
    subst = CONFIG.replace(b"  prod:\n", b"  prod:\n    # $Format:%n    auto_merge: true$\n")

    def rewrite(work: Path) -> None:
        (work / ".promoter.yaml").write_bytes(subst)
        (work / ".gitattributes").write_text(".promoter.yaml export-subst\n")

    git_push(h, tmp_path / "work", rewrite, "policy: a note")
    code, result = cli(h, capsys, "--env", "prod", "--image", f"{API}:1.0.1", "--dry-run")
    assert code == 0, result
    assert checks(result)["auto_merge_enabled"] == "fail"
    assert "environment prod has auto_merge: false" in reasons(result)["auto_merge_enabled"]


@pytest.fixture
def github(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    yield from _harness("github", tmp_path, monkeypatch)


def test_a_policy_file_too_large_for_the_archive_is_still_read(
        github: Harness, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    h = github
    padded = CONFIG + b"# " + b"x" * (10 * 1024 * 1024) + b"\n"  # over the tarball cap

    def grow(work: Path) -> None:
        (work / ".promoter.yaml").write_bytes(padded)

    git_push(h, tmp_path / "work", grow, "policy: a long comment")
    code, result = cli(h, capsys, "--file", "envs/prod/deploy.yaml",
                       "--image", f"{API}:1.0.1", "--auto-merge")
    assert code in (0, 2), result  # read (prod's policy holds) or refused as too large
    if code == 0:
        assert result["merged"] is False
        assert checks(result)["auto_merge_enabled"] == "fail"
    assert h.main_file("envs/prod/deploy.yaml") == deploy("1.0.0")


# --- hole 8: a link makes a file belong to every environment that reaches it ---------------


def assert_dev_cannot_merge_what_prod_reads(h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    """envs/prod/deploy.yaml links to dev's file: a dev promotion fails paths_only."""
    code, result = cli(h, capsys, "--env", "dev", "--image", f"{API}:1.0.1")
    assert code == 0, result
    assert checks(result)["paths_only"] == "fail"
    assert "envs/prod/deploy.yaml (a link to envs/dev/deploy.yaml) is outside environment " \
           "dev's paths" in reasons(result)["paths_only"]
    assert result["merged"] is False
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.0.0")


def test_a_prod_link_to_a_dev_file_keeps_dev_from_auto_merging_it(
        h: Harness, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    git_push(h, tmp_path / "work",
             lambda work: _link(work, "envs/prod/deploy.yaml", "../dev/deploy.yaml"),
             "prod follows dev")
    assert_dev_cannot_merge_what_prod_reads(h, capsys)
    # without --env the change belongs to dev and prod at once: refused outright
    code, result = cli(h, capsys, "--file", "envs/dev/deploy.yaml",
                       "--image", f"{API}:1.0.2", "--auto-merge")
    assert code == 2, result
    assert "spans several environments" in result["error"]


def test_a_directory_link_makes_every_file_under_it_an_alias(
        h: Harness, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def alias_dir(work: Path) -> None:
        for name in ("deploy.yaml",):
            (work / "envs/prod" / name).unlink()
        (work / "envs/prod").rmdir()
        (work / "envs/prod").symlink_to("dev")

    git_push(h, tmp_path / "work", alias_dir, "prod is dev")
    code, result = cli(h, capsys, "--env", "dev", "--image", f"{API}:1.0.1")
    assert code == 0, result
    assert checks(result)["paths_only"] == "fail"
    assert "envs/prod/deploy.yaml (a link to envs/dev/deploy.yaml)" in \
        reasons(result)["paths_only"]
    assert result["merged"] is False
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.0.0")


def test_every_forge_snapshot_knows_the_links_and_refuses_a_linked_policy(
        h: Harness, tmp_path: Path) -> None:
    def links(work: Path) -> None:
        _link(work, "envs/prod/deploy.yaml", "../dev/deploy.yaml")
        (work / "policy.yaml").write_bytes(CONFIG)

    git_push(h, tmp_path / "work", links, "links")
    forge = h.forge()
    try:
        snap = forge.snapshot(None)
        assert snap.links == {"envs/prod/deploy.yaml": "../dev/deploy.yaml"}
        assert "envs/prod/deploy.yaml" not in snap.files
        assert snap.files[".promoter.yaml"] == h.main_file(".promoter.yaml")
        git_push(h, tmp_path / "work", lambda work: _link(work, ".promoter.yaml",
                                                          "policy.yaml"), "linked policy")
        with pytest.raises(ConfigError, match=r"is a symbolic link to 'policy\.yaml'") as info:
            forge.snapshot(None)
        assert info.value.code == 2
        assert info.value.file == ".promoter.yaml"
    finally:
        close = getattr(forge, "close", None)
        if close is not None:
            close()


def test_the_run_refuses_a_snapshot_whose_policy_file_is_a_link() -> None:
    # whatever a forge does, the orchestrator never reads a linked policy as "no policy"
    snap = Snapshot("main", "0" * 40, {"policy.yaml": CONFIG},
                    links={".promoter.yaml": "policy.yaml"})
    with pytest.raises(ConfigError, match="symbolic link"):
        promote.policy_file(snap)
    assert promote.policy_file(Snapshot("main", "0" * 40, {})) is None


@pytest.mark.parametrize(
    ("links", "aliases"),
    [
        ({"envs/prod/deploy.yaml": "../dev/deploy.yaml"}, ("envs/prod/deploy.yaml",)),
        ({"envs/prod": "dev"}, ("envs/prod/deploy.yaml",)),
        ({"envs/prod": "dev", "envs/qa": "prod"}, ("envs/prod/deploy.yaml",
                                                   "envs/qa/deploy.yaml")),  # a chain
        ({"envs/loop": "."}, ("envs/loop/dev/deploy.yaml",)),  # a loop ends at once
        ({"all": "."}, ("all/envs/dev/deploy.yaml",)),  # the root
        ({"out": "../../etc/passwd", "abs": "/etc/passwd", "other": "envs/staging"}, ()),
    ],
)
def test_link_aliases(links: dict[str, str], aliases: tuple[str, ...]) -> None:
    from promoter.paths import link_aliases

    found = link_aliases(["envs/dev/deploy.yaml"], links)
    assert found.get("envs/dev/deploy.yaml", ()) == aliases


# --- the archive is proved to be the tree: .gitattributes cannot hide or rewrite ------------
# git archive obeys export-ignore, export-subst and eol attributes; every forge that reads
# the base through an archive checks it against the tree: by object ids (GitHub, GitLab,
# Gitea, Bitbucket Data Center), by kinds, sizes and .gitattributes (Bitbucket Cloud).


@pytest.fixture(params=["git", "github", "gitlab", "gitea", "azure", "bitbucket",
                        "bitbucket-dc"])
def proved(request: pytest.FixtureRequest, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    yield from _harness(request.param, tmp_path, monkeypatch)


def test_a_link_hidden_from_the_archive_is_still_an_alias(
        proved: Harness, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def hide_alias(work: Path) -> None:
        _link(work, "envs/prod/deploy.yaml", "../dev/deploy.yaml")
        (work / ".gitattributes").write_text("envs/prod/** export-ignore\n"
                                             ".gitattributes export-ignore\n")

    h = proved
    git_push(h, tmp_path / "work", hide_alias, "prod follows dev, quietly")
    assert_dev_cannot_merge_what_prod_reads(h, capsys)


def test_a_file_the_archive_expands_is_committed_as_it_is(
        proved: Harness, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # export-subst: %n would add a line to the archive's copy, which the commit would keep
    stamped = deploy("1.0.0").replace(b"# the api\n", b"# the api $Format:%n  replicas: 0$\n")

    def stamp(work: Path) -> None:
        (work / "envs/dev/deploy.yaml").write_bytes(stamped)
        (work / ".gitattributes").write_text("envs/** export-subst\n")

    h = proved
    git_push(h, tmp_path / "work", stamp, "dev: stamp the archive")
    code, result = cli(h, capsys, "--env", "dev", "--image", f"{API}:1.0.1")
    assert code == 0, result
    assert result["merged"] is True
    assert h.main_file("envs/dev/deploy.yaml") == stamped.replace(b":1.0.0", b":1.0.1")


def test_line_ends_the_archive_converts_are_committed_as_they_are(
        proved: Harness, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def crlf(work: Path) -> None:
        (work / ".gitattributes").write_text("*.yaml text eol=crlf\n")

    h = proved
    git_push(h, tmp_path / "work", crlf, "yaml checks out with CRLF")
    code, result = cli(h, capsys, "--env", "dev", "--image", f"{API}:1.0.1")
    assert code == 0, result
    assert result["merged"] is True
    assert h.main_file("envs/dev/deploy.yaml") == deploy("1.0.1")  # LF, one line changed
