"""The engine on single files: refusals, skips, and a property test of the splice."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from promoter.edit import SetOp, Targets, edit_file
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
