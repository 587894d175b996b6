"""The safety proof of the splice (``engine.verify``): after replacing an image value,
only that value may differ. Each test corrupts the spliced text the way a splice bug
would, and expects a refusal; disabling the proof makes every one of them fail."""

from __future__ import annotations

import pytest
from ruamel.yaml.nodes import Node

from promoter.edit import engine
from promoter.edit.document import get, parse, seq
from promoter.edit.engine import Targets, edit_file, verify
from promoter.edit.splice import Replacement, apply, replacement
from promoter.errors import EditError
from promoter.images import parse as parse_ref

FILE = "envs/dev/deploy.yaml"
TEXT = """\
# the api
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, labels: {tier: "web"}}
spec:
  template:
    spec:
      containers:
      - name: api
        image: "ghcr.io/acme/api:1.0.0"   # promoted by CI
        env:
        - {name: TAG, value: 1.0.0}
      - name: sidecar
        image: 'ghcr.io/acme/proxy:2.0.0'
"""
NEW = "ghcr.io/acme/api:1.0.1"


def _image_node(text: str) -> tuple[list[object], Node]:
    docs = parse(text, FILE)
    containers = seq(get(get(get(get(docs[0].root, "spec"), "template"), "spec"), "containers"))
    node = get(containers[0], "image")
    assert node is not None
    return docs, node


def _splice(text: str = TEXT) -> tuple[list[object], Node, list[Replacement], str]:
    docs, node = _image_node(text)
    reps = [replacement(text, node, NEW, FILE)]
    return docs, node, reps, apply(text, reps)


def test_the_honest_splice_passes_the_proof() -> None:
    docs, node, reps, after = _splice()
    verify(docs, TEXT, after, reps, {id(node): NEW}, FILE)  # type: ignore[arg-type]
    assert after == TEXT.replace("api:1.0.0", "api:1.0.1")


@pytest.mark.parametrize(
    ("what", "old", "new", "line"),
    [
        ("a neighbouring value", "proxy:2.0.0", "proxy:6.6.6", 14),
        ("a value on the next line", "value: 1.0.0", "value: 1.0.1", 12),
        ("a comment", "# promoted by CI", "# promoted by me", 10),
        ("a key", "- name: sidecar", "- nome: sidecar", 13),
        ("a quote", "'ghcr.io/acme/proxy:2.0.0'", '"ghcr.io/acme/proxy:2.0.0"', 14),
        ("a quote in a flow map", '{tier: "web"}', "{tier: web}", 4),
        ("the line end", "kind: Deployment\n", "kind: Deployment\r\n", 3),
    ],
)
def test_a_change_outside_the_value_is_refused(what: str, old: str, new: str,
                                               line: int) -> None:
    docs, node, reps, after = _splice()
    assert old in after, what
    corrupted = after.replace(old, new, 1)
    with pytest.raises(EditError, match="outside the image values") as caught:
        verify(docs, TEXT, corrupted, reps, {id(node): NEW}, FILE)  # type: ignore[arg-type]
    assert caught.value.file == FILE
    assert caught.value.line == line


def test_a_value_that_is_not_the_planned_one_is_refused() -> None:
    docs, node, reps, after = _splice()
    corrupted = after.replace("api:1.0.1", "api:9.9.9")
    with pytest.raises(EditError, match="not what was planned"):
        verify(docs, TEXT, corrupted, reps, {id(node): NEW}, FILE)  # type: ignore[arg-type]


def test_a_replacement_that_changes_the_tree_is_refused() -> None:
    # a splice whose own text adds a key: consistent bytes, but the re-parse differs
    docs, node = _image_node(TEXT)
    honest = replacement(TEXT, node, NEW, FILE)
    sneaky = Replacement(honest.start, honest.end,
                         f'"{NEW}"\n        command: ["sh", "-c", "evil"]')
    after = apply(TEXT, [sneaky])
    with pytest.raises(EditError, match="structure"):
        verify(docs, TEXT, after, [sneaky], {id(node): NEW}, FILE)  # type: ignore[arg-type]


def test_a_replacement_that_loads_as_another_type_is_refused() -> None:
    text = "image:\n  repository: ghcr.io/acme/api\n  tag: 1.0.0\n"
    docs = parse(text, FILE)
    node = get(get(docs[0].root, "image"), "tag")
    assert node is not None
    bare = Replacement(node.start_mark.index, node.end_mark.index, "1.10")  # a float
    with pytest.raises(EditError, match=r"did not produce '1\.10'"):
        verify(docs, text, apply(text, [bare]), [bare], {id(node): "1.10"},  # type: ignore[arg-type]
               FILE)
    quoted = replacement(text, node, "1.10", FILE)
    verify(docs, text, apply(text, [quoted]), [quoted], {id(node): "1.10"},  # type: ignore[arg-type]
           FILE)


@pytest.mark.parametrize(
    ("old", "new"),
    [("# promoted by CI", "# promoted by me"), ("proxy:2.0.0", "proxy:6.6.6"),
     ("- name: sidecar", "- nome: sidecar"), ('{tier: "web"}', "{tier: web}")],
)
def test_the_engine_refuses_a_splice_that_touched_anything_else(
        monkeypatch: pytest.MonkeyPatch, old: str, new: str) -> None:
    """Through ``edit_file``: a splice step that corrupts its output (our own splice,
    replaced by a buggy one) is caught by the proof and nothing is returned."""
    targets = Targets((parse_ref(NEW),))
    honest = edit_file(FILE, TEXT.encode(), targets)
    assert honest.new == TEXT.replace("api:1.0.0", "api:1.0.1").encode()

    def buggy(text: str, replacements: list[Replacement]) -> str:
        return apply(text, replacements).replace(old, new, 1)

    monkeypatch.setattr(engine, "apply", buggy)
    with pytest.raises(EditError, match="a bug: please report") as caught:
        edit_file(FILE, TEXT.encode(), targets)
    assert caught.value.file == FILE
