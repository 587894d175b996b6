"""Big multi-document files: only the documents that name a target are composed and
verified, with the same result as composing the whole file.

The reference is the whole-file path (``document_spans`` answering None, as it does for
a file with directives): every edit, every Found (lines and columns), every skip and
every refusal must be the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import big
from promoter.cli import run
from promoter.edit import Targets, engine
from promoter.edit.engine import edit_file
from promoter.errors import EditError
from promoter.images import parse

API = Targets((parse("ghcr.io/acme/api:2.0.0"),))

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  template:
    spec:
      containers:
      - name: main
        image: {image}
"""
CASES = {
    "three documents": ("---\n".join([
        DEPLOY.format(name="a", image="ghcr.io/acme/api:1.0.0"),
        "kind: ConfigMap\ndata: {x: 'apis, rapid, api-gateway'}\n",
        DEPLOY.format(name="b", image="ghcr.io/acme/other:1.0.0"),
        DEPLOY.format(name="c", image="ghcr.io/acme/api:1.0.0  # pinned by CI"),
    ])),
    "leading comment, empty documents": "# bundle\n---\n---\n" + DEPLOY.format(
        name="a", image="ghcr.io/acme/api:1.0.0") + "---\n",
    "marker at the start of a line": "--- # first\n" + DEPLOY.format(
        name="a", image="ghcr.io/acme/api:1.0.0") + "---\nkind: List\nitems: []\n",
    "anchors inside one document": (
        "kind: ConfigMap\ndata: {a: 1}\n---\n"
        "x-common: &img ghcr.io/acme/api:1.0.0\n"
        "kind: Deployment\nspec: {template: {spec: {containers: [{name: m, image: *img}]}}}\n"),
    "block scalar then a document": (
        "kind: ConfigMap\ndata:\n  script: |\n    echo ghcr.io/acme/api:1.0.0\n"
        "---\n" + DEPLOY.format(name="a", image="ghcr.io/acme/api:1.0.0")),
    "windows line ends": ("---\r\n".join([
        DEPLOY.format(name="a", image="ghcr.io/acme/api:1.0.0").replace("\n", "\r\n"),
        "kind: ConfigMap\r\n"])),
    "an escaped reference": "---\n".join([
        DEPLOY.format(name="a", image="ghcr.io/acme/api:1.0.0"),
        DEPLOY.format(name="b", image='"ghcr.io/acme/\\u0061pi:1.0.0"')]),
    "a reference continued over a line": "---\n".join([
        DEPLOY.format(name="a", image="ghcr.io/acme/api:1.0.0"),
        DEPLOY.format(name="b", image='"ghcr.io/acme/a\\\r\n  pi:1.0.0"')]),
    "the big install file": big.build().decode().replace(
        big.IMAGE + ":", "ghcr.io/acme/api:"),
}


def outcome(text: str, targets: Targets = API) -> Any:
    try:
        result = edit_file("bundle.yaml", text.encode(), targets)
    except EditError as exc:
        return ("refused", exc.render())
    return (result.new, result.found, result.skips)


@pytest.mark.parametrize("name", list(CASES))
def test_composing_the_naming_documents_only_changes_nothing(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = CASES[name]
    chunked = outcome(text)
    monkeypatch.setattr(engine, "document_spans", lambda _text: None)  # the whole file
    assert chunked == outcome(text)


def test_only_documents_naming_the_image_are_composed() -> None:
    text = CASES["three documents"]
    docs, chosen = engine._compose(text, "bundle.yaml", API, whole=False)
    assert chosen == [0, 3]  # not the ConfigMap: api-gateway is another name
    assert [d.kind for d in docs] == ["Deployment", "Deployment"]
    assert docs[1].root.start_mark.line == text[:text.index("name: c")].count("\n") - 2


def test_a_broken_document_elsewhere_still_refuses_the_file() -> None:
    text = CASES["three documents"] + "---\nkind: [unclosed\n"
    with pytest.raises(EditError, match="cannot parse YAML"):
        edit_file("bundle.yaml", text.encode(), API)


def test_a_set_composes_the_whole_file() -> None:
    text = CASES["three documents"]
    docs, chosen = engine._compose(text, "bundle.yaml", API, whole=True)
    assert chosen is None and len(docs) == 4


def test_directives_and_document_ends_compose_the_whole_file() -> None:
    text = "%YAML 1.2\n---\n" + DEPLOY.format(name="a", image="ghcr.io/acme/api:1.0.0") + \
        "...\n---\nkind: ConfigMap\n"
    docs, chosen = engine._compose(text, "bundle.yaml", API, whole=False)
    assert chosen is None and len(docs) == 2
    assert outcome(text)[0] is not None


# --- line breaks other than "\n" before a composed document ------------------------
# YAML counts "\r", NEL, LS and PS as line breaks too. A document composed on its own
# must get the lines the whole file gives it: Flux markers are matched by line, so a
# line off by one would hand a marker to the value on the next line.

VALUES = """---
images:
  api: 1.0.0 # {{"$imagepolicy": "flux-system:api:tag"}}
  worker: 1.0.0
"""
EARLIER = {
    "a line separator in a string": 'kind: ConfigMap\ndata: {note: "a\u2028b"}\n',
    "a next-line character in a string": 'kind: ConfigMap\ndata: {note: "a\u0085b"}\n',
    "an old Mac line end": "kind: ConfigMap\rdata: {}\n",
}


@pytest.mark.parametrize("earlier", list(EARLIER))
def test_a_marker_edits_its_own_line_after_other_line_breaks(
        earlier: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = EARLIER[earlier] + VALUES.format()
    (tmp_path / "values.yaml").write_bytes(text.encode())
    code = run(["--repo", str(tmp_path), "--image", "ghcr.io/acme/api:1.1.0",
                "--marker", "flux-system:api=ghcr.io/acme/api:1.1.0",
                "--in-place", "--output", "json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(c["field"], c["old"], c["new"]) for c in result["changes"]] == \
        [("images.api", "1.0.0", "1.1.0")]
    assert (tmp_path / "values.yaml").read_bytes() == \
        text.replace("api: 1.0.0", "api: 1.1.0").encode()


@pytest.mark.parametrize("earlier", list(EARLIER))
def test_lines_after_other_line_breaks_are_the_whole_files(
        earlier: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = EARLIER[earlier] + "---\n" + DEPLOY.format(name="a", image="ghcr.io/acme/api:1.0.0")
    chunked = outcome(text)
    monkeypatch.setattr(engine, "document_spans", lambda _text: None)  # the whole file
    assert chunked == outcome(text)


# --- a reference spelled with escapes ------------------------------------------------
# A double-quoted scalar can spell the name without its bytes ("\x61pi", or a "\" line
# continuation). The whole file edits (or refuses) such a value once another document
# names the image; composing only the documents that hold the name's bytes would leave it
# behind unnoticed: a Deployment not promoted while the rest of the bundle is.

def test_a_reference_spelled_with_an_escape_is_promoted_with_the_rest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "---\n".join([DEPLOY.format(name="a", image="ghcr.io/acme/api:1.0.0"),
                         DEPLOY.format(name="b", image='"ghcr.io/acme/\\x61pi:1.0.0"')])
    (tmp_path / "bundle.yaml").write_bytes(text.encode())
    code = run(["--repo", str(tmp_path), "--image", "ghcr.io/acme/api:2.0.0",
                "--in-place", "--output", "json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [c["line"] for c in result["changes"]] == [9, 19]
    assert (tmp_path / "bundle.yaml").read_text().count("ghcr.io/acme/api:2.0.0") == 2


def test_a_reference_continued_over_a_line_is_refused_in_a_bundle(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "---\n".join([DEPLOY.format(name="a", image="ghcr.io/acme/api:1.0.0"),
                         DEPLOY.format(name="b", image='"ghcr.io/acme/a\\\n          pi:1.0.0"')])
    (tmp_path / "bundle.yaml").write_bytes(text.encode())
    code = run(["--repo", str(tmp_path), "--image", "ghcr.io/acme/api:2.0.0", "--in-place"])
    assert code == 2
    assert "bundle.yaml:19:16: the image value spans several lines" in capsys.readouterr().err
    assert (tmp_path / "bundle.yaml").read_bytes() == text.encode()


# --- directives after a line break other than "\n" ----------------------------------
# "%TAG !! tag:evil,2000:" after an old Mac line end still applies to the next document:
# there "!!str" is no string. Composed alone, that document would read "!!str" as the
# standard string tag and be edited; the whole file refuses the edit.

HIDDEN_TAG = ("kind: ConfigMap\r...\r%TAG !! tag:evil,2000:\n---\n"
              "image:\n  repository: ghcr.io/acme/api\n  tag: !!str 1.0.0\n")


def test_a_directive_after_another_line_break_composes_the_whole_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "values.yaml").write_bytes(HIDDEN_TAG.encode())
    code = run(["--repo", str(tmp_path), "--image", "ghcr.io/acme/api:1.1.0", "--in-place"])
    assert code == 2
    assert "values.yaml: the edit of 'image.tag' did not produce '1.1.0'" in \
        capsys.readouterr().err
    assert (tmp_path / "values.yaml").read_bytes() == HIDDEN_TAG.encode()


@pytest.mark.parametrize("text", [
    HIDDEN_TAG,
    HIDDEN_TAG.replace("\r", "\u2028"),
    HIDDEN_TAG.replace("\r", "\u0085"),
    "a: 1\r...\r%YAML 1.1\n---\nimage:\n  repository: ghcr.io/acme/api\n  tag: 1.0.0\n",
])
def test_directives_after_other_line_breaks_compose_the_whole_file(text: str) -> None:
    docs, chosen = engine._compose(text, "values.yaml", API, whole=False)
    assert chosen is None and len(docs) == 2


# --- a document nested too deep ------------------------------------------------------
# The whole file refuses it (the depth is measured before any parser runs). The
# per-document path must not run the parser over the whole stream first: events for a
# 60,000-deep "[[[[" document took 20 s (quadratic), and the deep document, never
# composed, was edited around instead of refused.

def test_a_document_nested_too_deep_refuses_the_bundle(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deep = "x: " + "[" * 1000 + "]" * 1000 + "\n"
    text = "---\n".join([DEPLOY.format(name="a", image="ghcr.io/acme/api:1.0.0"), deep,
                         DEPLOY.format(name="b", image="ghcr.io/acme/api:1.0.0")])
    (tmp_path / "bundle.yaml").write_bytes(text.encode())
    code = run(["--repo", str(tmp_path), "--image", "ghcr.io/acme/api:2.0.0", "--in-place"])
    assert code == 2
    assert "bundle.yaml:11:403: cannot parse YAML: nested more than 400 levels deep" in \
        capsys.readouterr().err
    assert (tmp_path / "bundle.yaml").read_bytes() == text.encode()


# --- a document broken only for the composer ----------------------------------------
# A duplicate key, or an alias to another document's anchor: the parser's events are
# fine, the composer (or the duplicate check after it) refuses. The whole file is
# refused for it; composing only the naming documents edited around it.

@pytest.mark.parametrize(("other", "said"), [
    ("y: 1\ny: 2\n", "bundle.yaml:14:1: duplicate key 'y'"),
    ("y: *img\n", "bundle.yaml:13:4: cannot parse YAML: found undefined alias"),
])
def test_a_document_only_the_composer_refuses_refuses_the_bundle(
        other: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "---\n".join([DEPLOY.format(name="a", image="ghcr.io/acme/api:1.0.0"),
                         "z: &img 1\n", other])
    (tmp_path / "bundle.yaml").write_bytes(text.encode())
    code = run(["--repo", str(tmp_path), "--image", "ghcr.io/acme/api:2.0.0", "--in-place"])
    assert code == 2
    assert said in capsys.readouterr().err
    assert (tmp_path / "bundle.yaml").read_bytes() == text.encode()
