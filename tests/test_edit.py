"""The engine on single files: refusals, skips, and a property test of the splice."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from promoter.cli import run
from promoter.edit import SetOp, Targets, edit_file
from promoter.edit.document import _YAML
from promoter.edit.document import parse as compose
from promoter.edit.kustomize import images_set_over
from promoter.errors import EditError, UsageError
from promoter.images import parse
from promoter.plan import make_plan

API = Targets(images=(parse("ghcr.io/acme/api:1.5.0"),))


def _new(text: str, targets: Targets = API, name: str = "f.yaml") -> str:
    result = edit_file(name, text.encode(), targets)
    assert result.new is not None
    return result.new.decode()


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("image: ghcr.io/acme/api:1.0\nimage: ghcr.io/acme/api:1.0\n", "duplicate key", 2),
        ("a: &x ghcr.io/acme/api:1.0\nimage: *x\nb: {image: *x}\n", "anchor/alias", 1),
        ("image: |\n  ghcr.io/acme/api:1.0\n", "block scalar", 1),
        ('image: "ghcr.io/acme/api:{{ .Values.tag }}"\n', "templated", 1),
        ("image:\n  repository: ghcr.io/acme/{{ .Values.name }}\n  tag: '1'\n", None, None),
        ("image: ghcr.io/acme/api:1.0\n  bad: [\n", "cannot parse YAML", 2),
    ],
)
def test_refusals_name_the_line(text: str, message: str | None, line: int | None) -> None:
    if message is None:  # a templated repository that is not ours: nothing to do, no error
        assert edit_file("f.yaml", text.encode(), API).new is None
        return
    with pytest.raises(EditError) as info:
        edit_file("f.yaml", text.encode(), API)
    assert message in info.value.message
    assert info.value.file == "f.yaml" and info.value.line == line
    assert info.value.code == 2


def test_merge_key_template_is_refused_not_rewritten() -> None:
    text = ("base: &base\n  containers:\n  - image: ghcr.io/acme/api:1.0\n"
            "apiVersion: v1\nkind: Pod\nspec:\n  <<: *base\n")
    with pytest.raises(EditError, match="alias"):
        edit_file("f.yaml", text.encode(), API)


def test_text_in_block_scalars_is_left_alone() -> None:
    text = ("apiVersion: v1\nkind: ConfigMap\ndata:\n  script: |\n"
            "    docker run ghcr.io/acme/api:1.0\n")
    assert edit_file("f.yaml", text.encode(), API).found == ()


def test_parts_without_tag_key_is_a_skip() -> None:
    result = edit_file("v.yaml", b"image:\n  repository: ghcr.io/acme/api\n", API)
    assert result.new is None
    assert [s.reason for s in result.skips] == [
        "image has no tag key next to the repository; add one, or use --set"]


def test_digest_only_into_kustomize() -> None:
    digest = "sha256:" + "b" * 64
    text = ("kind: Kustomization\nimages:\n- name: ghcr.io/acme/api\n  newTag: 1.0.0\n"
            "  digest: sha256:" + "a" * 64 + "\n")
    out = _new(text, Targets(images=(parse(f"ghcr.io/acme/api@{digest}"),)))
    assert out == text.replace("a" * 64, "b" * 64)


def test_set_escape_hatch_and_bad_sets() -> None:
    text = "deploy:\n  settings:\n    - version: 1.0.0  # pinned\n"
    out = _new(text, Targets(sets=(SetOp.parse("v.yaml:deploy.settings[0].version=1.1.0"),)),
               name="v.yaml")
    assert out == text.replace("1.0.0", "1.1.0")
    for bad in ("v.yaml:key=$(id)", "v.yaml:key=a b", "nokey=1", "v.yaml:a..b=1"):
        with pytest.raises(UsageError):
            SetOp.parse(bad)
    with pytest.raises(UsageError, match="not found"):
        edit_file("v.yaml", text.encode(), Targets(sets=(SetOp.parse("v.yaml:deploy.x=1"),)))


def test_unparsable_file_that_does_not_mention_the_image_is_skipped() -> None:
    files = {"a.yaml": b"image: ghcr.io/acme/api:1.0\n", "b.yaml": b"api: [\n"}
    plan = make_plan(files, API, lambda _: True)
    assert list(plan.files) == ["a.yaml"]
    assert plan.skips and plan.skips[0].file == "b.yaml"
    files["b.yaml"] = b"image: ghcr.io/acme/api:1.0\nx: [\n"
    with pytest.raises(EditError, match=r"b.yaml:3"):
        make_plan(files, API, lambda _: True)


def test_prefilter_does_not_parse_near_misses() -> None:
    # apiVersion, api2 and my-api never reach the parser: the broken YAML would raise
    files = {"x.yaml": b"apiVersion: v1\nimage: ghcr.io/acme/api2:1\nname: my-api\n  : [\n"}
    assert make_plan(files, API, lambda _: True).found == ()
    # a URL token or a comment cannot hold an image value: not parsed either
    files = {"y.yaml": b"url: http://api:8080/v1  # the api\n# api\nbroken: [\n"}
    assert make_plan(files, API, lambda _: True).skips == ()
    # but a reference after a URL elsewhere on the line, or before a comment, is found
    files = {"z.yaml": b'{url: "http://x", image: "ghcr.io/acme/api:1"}  # api\n'}
    assert [f.old for f in make_plan(files, API, lambda _: True).found] == [
        "ghcr.io/acme/api:1"]
    files = {"m.yaml": b'x: 1 # {"$imagepolicy": "ns:api"}\n'}
    marker = Targets(markers={"ns:api": parse("ghcr.io/acme/api:2")})
    assert [f.new for f in make_plan(files, marker, lambda _: True).found] == [
        "ghcr.io/acme/api:2"]


# --- property: an edit changes exactly the value's characters ---------------------------

_TAGS = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_COMMENTS = st.sampled_from(["", "  # note", " # {x: 1}", "   #"])
_QUOTES = st.sampled_from(["", "'", '"'])


@st.composite
def _documents(draw: st.DrawFn) -> tuple[str, list[int]]:
    """A values file whose ``image`` entries are ghcr.io/acme/api or look-alikes."""
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    indent = draw(st.sampled_from([2, 4]))
    lines = ["# generated" + newline]
    ours = []
    for i in range(draw(st.integers(1, 6))):
        name = draw(st.sampled_from(["ghcr.io/acme/api", "ghcr.io/acme/api2",
                                     "ghcr.io/acme/api-worker", "nginx"]))
        q = draw(_QUOTES)
        tag = draw(_TAGS)
        ref = f"{name}:{tag}"
        lines.append(f"svc{i}:{newline}{' ' * indent}image: {q}{ref}{q}"
                     f"{draw(_COMMENTS)}{newline}")
        if name == "ghcr.io/acme/api":
            ours.append(i)
        if draw(st.booleans()):
            lines.append(f"---{newline}")
    return "".join(lines), ours


@settings(max_examples=150, deadline=None)
@given(doc=_documents(), new_tag=_TAGS)
def test_edit_changes_only_the_value(doc: tuple[str, list[int]], new_tag: str) -> None:
    text, ours = doc
    targets = Targets(images=(parse(f"ghcr.io/acme/api:{new_tag}"),))
    result = edit_file("v.yaml", text.encode(), targets)
    new = result.new.decode() if result.new is not None else text
    # outside the image values, the two texts are identical
    mask = re.compile(r"ghcr\.io/acme/api:[A-Za-z0-9_.-]+")
    assert mask.sub("X", text.replace('"', "").replace("'", "")) == \
        mask.sub("X", new.replace('"', "").replace("'", ""))
    loaded = [d for d in YAML(typ="safe").load_all(new) if d]
    images = [v["image"] for d in loaded for v in d.values()]
    assert images.count(f"ghcr.io/acme/api:{new_tag}") == len(ours)
    assert all(not i.startswith("ghcr.io/acme/api:") or i.endswith(f":{new_tag}")
               for i in images)


# --- issue 12: layouts of real repositories --------------------------------------------

CHART = {
    "charts/api/Chart.yaml": b"apiVersion: v2\nname: api\nversion: 0.1.0\n",
    "charts/api/values.yaml": b"image:\n  repository: ghcr.io/acme/api\n  tag: 1.0.0\n",
    "charts/api/templates/deployment.yaml":
        b"spec:\n  containers:\n    - name: {{ .Chart.Name }}\n"
        b"      image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"\n"
        b"      args: [--name, api]\n",
}


def test_chart_templates_are_skips_not_manifests() -> None:
    plan = make_plan(CHART, API, lambda _: True)
    assert list(plan.files) == ["charts/api/values.yaml"]
    assert [(s.file, s.line) for s in plan.skips] == [("charts/api/templates/deployment.yaml", 5)]
    assert "Helm chart template" in plan.skips[0].reason
    # the same file where no Chart.yaml makes the folder a chart is read (it parses)
    plain = {k.replace("charts/api/", "k8s/"): v for k, v in CHART.items()
             if not k.endswith("Chart.yaml")}
    assert make_plan(plain, API, lambda _: True).skips == ()


def test_chart_template_holding_the_reference_is_refused_with_its_line() -> None:
    files = dict(CHART)
    files["charts/api/templates/job.yaml"] = (b"{{- if .Values.job }}\nspec:\n  containers:\n"
                                              b"    - image: ghcr.io/acme/api:1.0.0\n{{- end }}\n")
    with pytest.raises(EditError) as info:
        make_plan(files, API, lambda _: True)
    assert (info.value.file, info.value.line) == ("charts/api/templates/job.yaml", 4)
    assert "ghcr.io/acme/api:1.0.0" in info.value.message


def test_broken_file_with_a_bare_word_is_a_skip() -> None:
    redis = Targets(images=(parse("redis:7.4.1"),))
    files = {"a.yaml": b"image: redis:7.2\n", "notes.yaml": b"cache: redis\n  broken: [\n"}
    plan = make_plan(files, redis, lambda _: True)
    assert list(plan.files) == ["a.yaml"]
    assert [s.file for s in plan.skips] == ["notes.yaml"]
    files["notes.yaml"] = b"cache: redis:7.2\n  broken: [\n"  # a whole reference: refused
    with pytest.raises(EditError, match="cannot parse YAML"):
        make_plan(files, redis, lambda _: True)


DIGEST = "sha256:" + "c" * 64
PINNED = Targets(images=(parse(f"ghcr.io/acme/api:1.5.0@{DIGEST}"),))


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("images:\r\n- newTag: 1.4.0  # ci\r\n  name: ghcr.io/acme/api\r\n",
         f"images:\r\n- newTag: 1.5.0  # ci\r\n  digest: {DIGEST}\r\n  name: ghcr.io/acme/api\r\n"),
        ("images:\n    -   name: ghcr.io/acme/api\n        newTag: '1.4.0'",
         "images:\n    -   name: ghcr.io/acme/api\n        newTag: '1.5.0'\n"
         f"        digest: {DIGEST}"),
    ],
)
def test_kustomize_digest_is_inserted_byte_exactly(text: str, want: str) -> None:
    assert _new(text, PINNED, "kustomization.yaml") == want


def test_kustomize_flow_entry_keeps_the_skip() -> None:
    text = "images: [{name: ghcr.io/acme/api, newTag: 1.4.0}]\n"
    result = edit_file("kustomization.yaml", text.encode(), PINNED)
    assert result.new == text.replace("1.4.0", "1.5.0").encode()
    assert ["only the tag was written" in s.reason for s in result.skips] == [True]


def test_a_wrong_insertion_is_caught_by_the_reparse(monkeypatch: pytest.MonkeyPatch) -> None:
    from promoter.edit import engine
    from promoter.edit.splice import Replacement

    def misplaced(text: str, key: Any, value: Any, new_key: str, new_value: str,
                  file: str) -> Replacement:  # no indent: the key lands in the root map
        end = text.index("\n", value.end_mark.index) + 1
        return Replacement(end, end, f"{new_key}: {new_value}\n")

    monkeypatch.setattr(engine, "insertion", misplaced)
    text = "images:\n- name: ghcr.io/acme/api\n  newTag: 1.4.0\n"
    with pytest.raises(EditError, match="bug"):
        edit_file("kustomization.yaml", text.encode(), PINNED)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Grafana-style: one anchored image map reused by alias for the same image
        ("loki: &img\n  repository: ghcr.io/acme/api\n  tag: 1.0.0\nread:\n  image: *img\n",
         "loki: &img\n  repository: ghcr.io/acme/api\n  tag: 1.5.0\nread:\n  image: *img\n"),
        # merged into a sidecar that keeps its own tag: both tags are the image's
        ("app: &a\n  repository: ghcr.io/acme/api\n  tag: 1.0.0\nside:\n  <<: *a\n"
         "  tag: 1.0.0-debug\n",
         "app: &a\n  repository: ghcr.io/acme/api\n  tag: 1.5.0\nside:\n  <<: *a\n"
         "  tag: 1.5.0\n"),
        # a whole reference aliased only into image fields
        ("image: &i ghcr.io/acme/api:1.0.0\njobs:\n- image: *i\n",
         "image: &i ghcr.io/acme/api:1.5.0\njobs:\n- image: *i\n"),
    ],
)
def test_edits_through_anchors_when_proven(text: str, expected: str) -> None:
    assert _new(text) == expected


@pytest.mark.parametrize(
    ("text", "line", "place"),
    [
        # the merged value is not overridden: it would change through <<
        ("app: &a\n  repository: ghcr.io/acme/api\n  tag: 1.0.0\nside:\n  <<: *a\n", 3,
         "merge key"),
        # the anchor also sets another image's tag
        ("api: {repository: ghcr.io/acme/api, tag: &v 1.0.0}\n"
         "worker: {repository: ghcr.io/acme/worker, tag: *v}\n", 1, "worker.tag"),
        # the anchor lives at a key that is no image field
        ("versions:\n  api: &v ghcr.io/acme/api:1.0.0\nimage: *v\n", 2, "versions.api"),
        # an image map that holds itself cannot be resolved, so nothing is proven
        ("image: &i\n  repository: ghcr.io/acme/api\n  tag: 1.0.0\n  self: *i\n", 3,
         "recursively"),
    ],
)
def test_edits_through_anchors_refused_otherwise(text: str, line: int, place: str) -> None:
    with pytest.raises(EditError) as info:
        edit_file("v.yaml", text.encode(), API)
    assert "anchor/alias" in info.value.message and place in info.value.message
    assert info.value.line == line


def test_several_tag_keys_leave_the_repository_alone() -> None:
    text = "svc:\n  image: ghcr.io/acme/api\n  apiTag: 1.0.0\n  proxyTag: 2.0.0\n"
    result = edit_file("v.yaml", text.encode(), API)
    assert result.new is None
    assert ["apiTag, proxyTag" in s.reason for s in result.skips] == [True]


def test_templated_tag_is_refused_outside_an_applicationset() -> None:
    text = "image:\n  repository: ghcr.io/acme/api\n  tag: '{{ .Values.global.tag }}'\n"
    with pytest.raises(EditError, match="templated tag") as info:
        edit_file("v.yaml", text.encode(), API)
    assert info.value.line == 3


def test_placeholder_tag_is_refused_naming_it() -> None:
    with pytest.raises(EditError) as info:
        edit_file("pod.yaml", b"kind: Pod\napiVersion: v1\nspec:\n  containers:\n"
                  b"  - image: ghcr.io/acme/api:{GENERATED_TAG}\n", API)
    assert "{GENERATED_TAG}" in info.value.message and info.value.line == 5
    # a valid-looking placeholder tag is a tag: replaced
    assert _new("images:\n- name: ghcr.io/acme/api\n  newTag: CONTAINER_IMAGES_TAG\n",
                name="kustomization.yaml").endswith("newTag: 1.5.0\n")


def test_applicationset_template_values_are_listed() -> None:
    text = ("apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nspec:\n  generators:\n"
            "  - clusters: {}\n  template:\n    spec:\n      source:\n        kustomize:\n"
            "          images: ['ghcr.io/acme/api:{{.metadata.labels.tag}}']\n")
    result = edit_file("set.yaml", text.encode(), API)
    assert result.new is None and result.found == ()
    assert [(s.line, s.image) for s in result.skips] == [(10, "ghcr.io/acme/api")]


def test_kustomization_graph_is_read_from_the_file_map() -> None:
    files = {
        "base/kustomization.yaml": b"resources: [deploy.yaml, ../shared]\n",
        "base/deploy.yaml": b"kind: Deployment\n",
        "shared/Kustomization": b"resources: [cm.yaml]\npatches:\n- path: p.yaml\n",
        "shared/cm.yaml": b"kind: ConfigMap\n",
        "shared/p.yaml": b"kind: Deployment\n",
        "loop/kustomization.yaml": b"resources: [../loop, https://github.com/x/y//base]\n"
                                   b"images: [{name: nginx, newTag: '1'}]\n",
        "dev/kustomization.yaml": b"bases: [../base]\ncomponents: [../comp]\n"
                                  b"images:\n- name: ghcr.io/acme/api\n  newTag: 1.0.0\n",
        "comp/kustomization.yaml": b"kind: Component\npatchesStrategicMerge: [side.yaml]\n",
        "comp/side.yaml": b"kind: Deployment\n",
        "other/deploy.yaml": b"kind: Deployment\n",
    }
    covered = images_set_over(files, {"ghcr.io/acme/api", "docker.io/library/nginx"})
    api = {"ghcr.io/acme/api": "dev/kustomization.yaml"}
    assert covered == {"base/deploy.yaml": api, "shared/cm.yaml": api, "shared/p.yaml": api,
                       "comp/side.yaml": api}


def test_untagged_base_is_left_to_its_overlay() -> None:
    files = {
        "base/kustomization.yaml": b"resources: [deploy.yaml]\n",
        "base/deploy.yaml": b"apiVersion: v1\nkind: Pod\nspec:\n  containers:\n"
                            b"  - image: ghcr.io/acme/api  # tag set by the overlay\n",
        "dev/kustomization.yaml": b"resources: [../base]\nimages:\n- name: ghcr.io/acme/api\n"
                                  b"  newTag: 1.0.0\n",
    }
    plan = make_plan(files, API, lambda _: True)
    assert list(plan.files) == ["dev/kustomization.yaml"]
    assert [(s.file, s.line) for s in plan.skips] == [("base/deploy.yaml", 5)]
    # without an overlay that sets it, the untagged reference gains the tag
    del files["dev/kustomization.yaml"]
    assert list(make_plan(files, API, lambda _: True).files) == ["base/deploy.yaml"]


def test_nothing_found_for_markers_reads_as_english(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text("image: ghcr.io/acme/api:1.0.0\n")
    assert run(["--repo", str(tmp_path), "--marker", "ns:api=ghcr.io/acme/api:2.0.0",
                "--dry-run"]) == 3
    assert "the --set/--marker targets are referenced nowhere" in capsys.readouterr().err


SCALARS = ("yes", "no", "on", "off", "true", "False", "~", "null", "", "0o17", "017", "0x1F",
           "1_000", "1e3", "1.5", ".inf", "-.NaN", "2026-12-04", "12:30:00", "=", "<<",
           "'1.0'", '"yes"', "ghcr.io/acme/api:1.4.2", "1.4", "v1.4.2", "!!str 1", "!!int '7'")


@pytest.mark.parametrize("directive", ["", "%YAML 1.1\n---\n", "%YAML 1.2\n---\n"])
def test_the_composer_tags_every_scalar_as_ruamel_itself_does(directive: str) -> None:
    """promoter's composer skips the resolver's version lookup (the C parser never
    passes one on): every scalar must still get the tag ruamel's own loader gives it."""
    text = directive + "".join(f"k{i}: {value}\n" for i, value in enumerate(SCALARS))
    ours = compose(text, "x.yaml")[0].root
    theirs = YAML(typ="safe", pure=_YAML.Parser is YAML(typ="safe", pure=True).Parser)
    stock = next(iter(theirs.compose_all(text)))
    assert [(k.value, v.tag) for k, v in ours.value] == \
        [(k.value, v.tag) for k, v in stock.value]
    assert {v.tag for _, v in ours.value} >= {"tag:yaml.org,2002:bool",
                                              "tag:yaml.org,2002:int",
                                              "tag:yaml.org,2002:str"}
