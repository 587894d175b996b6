"""Smoke test of the benchmarks (bench/): the generator and every benchmark function run
on tiny inputs, so the benchmark code cannot rot. No timing is asserted anywhere; the
benchmarks themselves run by hand (``make bench``)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"bench.{name}")


gen_repo = _load("gen_repo")
common = _load("common")
engine = _load("engine")
startup = _load("startup")
api = _load("api")
concurrency = _load("concurrency")

SMALL = 60


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-out")
    gen_repo.generate(out / f"repo-{SMALL}", SMALL, 7)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_generator_is_deterministic_and_places_the_target(tmp_path: Path) -> None:
    a = gen_repo.generate(tmp_path / "a", 200, 3)
    gen_repo.generate(tmp_path / "b", 200, 3)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert a["manifests"] == 200
    assert len(list((tmp_path / "a").rglob("*.yaml"))) == 201  # + .promoter.yaml
    assert len(a["target_files"]) == gen_repo.TARGET_FILES
    assert gen_repo.TARGET_ONE_FILE in a["target_files"]
    text = b"".join(_files(tmp_path / "a").values())
    for _, image, _ in gen_repo.NEIGHBOURS:  # prefix-sharing names are really there
        assert "/".join(image.split("/")[-2:]).encode() in text
    again = gen_repo.generate(tmp_path / "a", 200, 3)  # kept on disk: not regenerated
    assert again == a
    other = gen_repo.generate(tmp_path / "c", 200, 4)
    assert _files(tmp_path / "c") != _files(tmp_path / "a")
    assert other["target_files"] == a["target_files"]


def test_engine_benchmark_runs(tiny: Path) -> None:
    result = engine.bench_size(SMALL, seed=7, runs=1, naive_every=20, naive_runs=1, out=tiny)
    assert result["changes"] == gen_repo.TARGET_FILES
    assert result["prefilter"]["files_changed"] == gen_repo.TARGET_FILES
    assert result["prefilter"]["files_naming_image"] == gen_repo.TARGET_FILES
    assert result["prefilter"]["candidates_parsed"] >= gen_repo.TARGET_FILES
    assert set(result["tools"]) == {"grep", "floor", "promote", "naive"}
    assert result["naive"]["extrapolated"] is True
    assert result["naive"]["files"] == len(range(0, SMALL + 1, 20))
    text = engine.tables([result])
    assert "promote --dry-run" in text
    assert "1 in 20 files" in text


def test_naive_worker_counts_rewrites(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("x:   1\nl:\n- 'q'\n", encoding="utf-8")
    (tmp_path / "b.yml").write_text("image: ghcr.io/acme/api:1\n", encoding="utf-8")
    info = engine.naive(tmp_path, 1, "ghcr.io/acme/api")
    assert info == {"files": 2, "bytes": 42, "mentions": 1, "rewritten": 1}


def test_measure_reports_the_child() -> None:
    m = common.measure([sys.executable, "-c", "print('hi')"], keep_stdout=True)
    assert m.returncode == 0
    assert m.stdout.strip() == "hi"
    assert m.maxrss_mb > 0
    with pytest.raises(RuntimeError, match="exited 3"):
        common.measure([sys.executable, "-c", "raise SystemExit(3)"])


def test_startup_benchmark_runs(tmp_path: Path) -> None:
    data = startup.run(runs=1, results=tmp_path)
    assert set(data["timings"]) == set(startup.commands())
    assert (tmp_path / "startup.json").is_file()
    for args in ("--version", "--help"):
        imports = data["imports"][args]
        assert imports["modules"] > 0
        assert "promoter.cli" in imports["all"]
    assert data["ok"] == (not data["imports"]["--version"]["heavy"]
                          and not data["imports"]["--help"]["heavy"])


def test_importtime_parser() -> None:
    sample = ("import time: self [us] | cumulative | imported package\n"
              "import time:       100 |        100 |   encodings\n"
              "import time:      5000 |       9000 | ruamel.yaml\n"
              "import time:        10 |         10 |     github.Auth\n")
    prof = startup.parse_importtime(sample)
    assert prof.modules == ("encodings", "ruamel.yaml", "github.Auth")
    assert prof.heavy() == ["PyGithub", "ruamel.yaml"]
    assert prof.top(1) == [("ruamel.yaml", 9000)]


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_api_benchmark_sequence(kind: str, tiny: Path, tmp_path: Path) -> None:
    with api.no_proxy():
        steps = api.sequence(kind, tiny / f"repo-{SMALL}", 10, tmp_path)
    by = {s.name: s for s in steps}
    assert by["new"].created is True
    assert by["update"].created is False
    assert by["merged"].status == "up-to-date"
    writes = [c for c in by["re-run"].traffic.calls if c.startswith(("POST", "PATCH"))
              and ("commits" in c or "trees" in c)]
    # a re-run writes no commit (GitLab may try a small change's branch first: 400)
    assert writes in ([], ["POST /api/v4/projects/{project}/repository/commits"])
    assert kind == "gitlab" or writes == []
    assert all(s.traffic.requests > 0 for s in steps)
    assert "requests in order" in api.tables({"sequences": [
        {"forge": kind, "repo_files": SMALL, "changed_files": 10,
         "steps": [s.to_json() for s in steps]}], "latency": []})


def test_api_latency_run(tiny: Path, tmp_path: Path) -> None:
    with api.no_proxy():
        result = api.latency_run("gitlab", tiny / f"repo-{SMALL}", tmp_path, 0.001, 1)
    assert result["requests"] > 0
    assert len(result["walls"]) == 1


def test_concurrency_scenarios(tiny: Path, tmp_path: Path) -> None:
    ballast = tiny / f"repo-{SMALL}"
    with api.no_proxy():
        fan = concurrency.fan_in("github", tmp_path / "fan", ballast, 2)
        race = concurrency.races("gitlab", tmp_path / "race", ballast, 2, seed=1, trials=1)
    assert fan["merged"] == 2
    assert fan["final_tree_new_tags"] == 2
    assert race["landed_sequence"][0] == "1.0.0"
    assert sorted(race["start_order"]) == ["1.0.1", "1.0.2"]
    assert len(race["outcomes"]) == 2
    assert len(race["trials"]) == 1
    assert set(race["merged_but_not_landed"]) <= {"1.0.1", "1.0.2"}
    text = concurrency.tables({"fan_in": [fan], "race": [race]})
    assert "final = highest" in text


def test_big_file_benchmark_runs(tmp_path: Path) -> None:
    from bench import big

    data = big.run(runs=1, results=tmp_path)
    assert data["documents"] == big.DOCUMENTS and data["uses"] == big.USES
    assert 1_700_000 < data["bytes"] < 2_100_000
    assert "| 1.8" in data["tables"] and (tmp_path / "big.json").is_file()
