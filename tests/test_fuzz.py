"""Fuzzing with hypothesis, bounded for CI (a few seconds each).

(a) Image references: ``parse`` raises nothing but InvalidReference whatever it is
    given; a valid reference survives parse -> str -> parse unchanged, spelled as it was
    written; two names are the same repository exactly when Docker's defaults make them
    one (a model written here, independently of promoter's), and a non-ASCII look-alike
    is never accepted.
(b) The YAML edit: documents are generated together with the exact character spans of
    the values that carry the targeted image (helm strings and repository/tag maps,
    registry + repository, workload containers in block and flow style, kustomize
    images; plain, single- and double-quoted; comments that mention the image; indented
    and indentless sequences; CRLF; a BOM; several documents; other images whose names
    share a prefix). The edit must leave every character outside those spans as it was,
    write each span on one line in the same quote style, re-load to exactly the intended
    values (the rest of the data equal), and a second edit must find nothing to do.

A crash found here becomes a regression case in tests/hostile/corpus.py.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from promoter.edit.engine import Targets, edit_file
from promoter.errors import InvalidReference
from promoter.images import ImageRef, parse, try_parse

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
EDIT = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --- (a) image references -----------------------------------------------------------------

LEGACY = {"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
LOOKALIKES = "\u0430\u0435\u043e\u0440\u0441\u0455\u0456\u03bf\uff1a\uff0f\uff20\u2010\u00b7\u0131"

_component = st.from_regex(r"[a-z0-9]{1,6}(?:(?:\.|_|__|-{1,2})[a-z0-9]{1,6}){0,2}",
                           fullmatch=True)
# a first component without a host must not read as one (no "." or ":", not localhost)
_first = st.from_regex(r"[a-z0-9]{1,6}(?:(?:_|__|-{1,2})[a-z0-9]{1,6}){0,2}",
                       fullmatch=True).filter(lambda c: c != "localhost")
_host = st.one_of(
    st.sampled_from(["ghcr.io", "docker.io", "index.docker.io", "registry-1.docker.io",
                     "quay.io", "localhost", "localhost:5000", "registry.example.com:443",
                     "[::1]:5000", "my-registry.local", "Registry.Example.COM", "10.0.0.1:80"]),
    st.from_regex(r"[a-z0-9]{1,5}(?:\.[a-z0-9]{1,5}){1,2}(?::[0-9]{1,5})?", fullmatch=True),
)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}", fullmatch=True)
_digest = st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)


@st.composite
def names(draw: st.DrawFn) -> str:
    host = draw(st.none() | _host)
    first = draw(_component if host else _first)
    path = "/".join([first, *draw(st.lists(_component, max_size=2))])
    return f"{host}/{path}" if host else path


@st.composite
def references(draw: st.DrawFn) -> str:
    text = draw(names())
    if draw(st.booleans()):
        text += ":" + draw(_tag)
    if draw(st.integers(0, 3)) == 0:
        text += "@" + draw(_digest)
    return text


def canonical(name: str) -> str:
    """Docker's defaults, as the reference grammar documents them."""
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = "docker.io", name
    if domain in LEGACY:
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    return f"{domain}/{path}"


_alphabet = st.sampled_from("abcz019:/@._-+ \t\n\r\x00$`'\"{}[]<>#|*&!%^~\\" + LOOKALIKES)


@FUZZ
@given(text=st.one_of(st.text(max_size=300), st.text(_alphabet, max_size=80), references()))
def test_parse_raises_only_invalid_reference(text: str) -> None:
    try:
        ref = parse(text)
    except InvalidReference as exc:
        message = str(exc)  # one line, printable: nothing to inject into a log
        ref = None
    if ref is None:
        assert message.isprintable()
        return
    assert isinstance(ref, ImageRef)
    assert text.isascii() and text.isprintable() and text.strip() == text


@FUZZ
@given(text=references())
def test_round_trip(text: str) -> None:
    try:
        ref = parse(text)
    except InvalidReference:
        assert len(text.split("@")[0].rsplit(":", 1)[0]) > 255  # only the length limit
        return
    assert str(ref) == text  # spelled as written
    again = parse(str(ref))
    assert again == ref
    assert parse(ref.name).name == ref.name
    assert parse(ref.familiar).name == ref.name
    assert ref.name == canonical(ref.written)


@FUZZ
@given(a=names(), b=names())
def test_same_repository_exactly_when_canonical_names_agree(a: str, b: str) -> None:
    try:
        ra, rb = parse(a), parse(b)
    except InvalidReference:
        return
    assert (ra.name == rb.name) == (canonical(a) == canonical(b))


@FUZZ
@given(name=names(), data=st.data())
def test_a_near_miss_is_never_the_same_repository(name: str, data: st.DataObject) -> None:
    try:
        ref = parse(name)
    except InvalidReference:
        return
    mutation = data.draw(st.sampled_from(["append", "prepend", "component", "domain", "swap"]))
    if mutation == "append":
        other = name + data.draw(st.sampled_from(["2", "-x", ".io", "_a", "/sub"]))
    elif mutation == "prepend":
        other = data.draw(st.sampled_from(["x", "my-"])) + name
    elif mutation == "component":
        other = name.rsplit("/", 1)[0] + "/" + "z" + name.rsplit("/", 1)[-1]
    elif mutation == "domain":
        other = "other.example/" + ref.path
    else:
        other = name[::-1]
    assume(canonical(other) != canonical(name))
    other_ref = try_parse(other)
    assert other_ref is None or ref.name != other_ref.name


@FUZZ
@given(text=references(), where=st.integers(0, 400), char=st.sampled_from(LOOKALIKES))
def test_look_alikes_are_refused(text: str, where: int, char: str) -> None:
    where %= len(text) + 1
    bad = text[:where] + char + text[where:]
    with pytest.raises(InvalidReference):
        parse(bad)


# --- (b) the YAML edit --------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    target: str  # what is promoted (name)
    spellings: tuple[str, ...]  # ways of writing the same repository
    decoys: tuple[str, ...]  # other repositories that share a prefix or a last component
    registry_split: tuple[str, str] | None  # (registry, repository) for a helm map


FAMILIES = (
    Family("ghcr.io/acme/api", ("ghcr.io/acme/api",),
           ("ghcr.io/acme/api2", "ghcr.io/acme/api-worker", "ghcr.io/acme/api/sub",
            "ghcr.io/acme/apis", "docker.io/acme/api", "acme/api", "ghcr.io/acme", "api"),
           ("ghcr.io", "acme/api")),
    Family("nginx", ("nginx", "docker.io/nginx", "docker.io/library/nginx", "library/nginx",
                     "index.docker.io/library/nginx"),
           ("nginx-ingress", "bitnami/nginx", "ghcr.io/nginx", "nginx/nginx", "nginx2"), None),
    Family("localhost:5000/team/app", ("localhost:5000/team/app",),
           ("localhost:5001/team/app", "localhost/team/app", "team/app", "app"),
           ("localhost:5000", "team/app")),
)
OLD_TAGS = ("1.0.0", "1.2", "latest", "v3", "2024.01.01")
DIGEST = "sha256:" + "ab" * 32
NEW_TAGS = st.one_of(
    st.sampled_from(["1.10", "1e3", "yes", "no", "on", "off", "true", "null", "NULL", "012",
                     "2024-01-01", "0x1F", "0o17", "1_000", "1.0", "v2", "latest", "_x",
                     "1.0.0"]),
    _tag,
)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    old: str  # the value as it loads before
    new: str  # the value it must load as after
    quote: str  # "", "'" or '"'
    path: tuple[Any, ...]  # where in the loaded data: (doc index, key/index, ...)


@dataclass
class Builder:
    nl: str
    text: str = ""
    spans: list[Span] = field(default_factory=list)

    def put(self, *parts: str) -> None:
        self.text += "".join(parts)

    def line(self, *parts: str) -> None:
        self.put(*parts, self.nl)

    def scalar(self, value: str, quote: str, new: str | None = None,
               path: tuple[Any, ...] = ()) -> None:
        rendered = {"": value, "'": f"'{value}'", '"': f'"{value}"'}[quote]
        start = len(self.text)
        self.put(rendered)
        if new is not None:
            self.spans.append(Span(start, len(self.text), value, new, quote, path))


def plain_safe(value: str) -> bool:
    """Whether ``value`` loads back as this string when written plain."""
    loaded = YAML(typ="safe").load(f"k: {value}")
    return isinstance(loaded, dict) and loaded.get("k") == value


@dataclass(frozen=True)
class Gen:
    family: Family
    new_tag: str
    new_digest: str | None

    def ref_new(self, written_name: str) -> str:
        text = f"{written_name}:{self.new_tag}"
        return text + f"@{self.new_digest}" if self.new_digest else text


@st.composite
def quote_for(draw: st.DrawFn, value: str) -> str:
    options = ["'", '"'] + ([""] if plain_safe(value) else [])
    return draw(st.sampled_from(options))


@st.composite
def old_ref(draw: st.DrawFn, name: str) -> str:
    text = f"{name}:{draw(st.sampled_from(OLD_TAGS))}"
    return text + (f"@{DIGEST}" if draw(st.integers(0, 4)) == 0 else "")


def comment(draw: st.DrawFn, fam: Family) -> str:
    return draw(st.sampled_from(["", "  # pinned", f" # was {fam.target}:0.9 before",
                                 '   # {"note": "keep"}', " #"]))


@st.composite
def helm_doc(draw: st.DrawFn, b: Builder, gen: Gen, doc: int) -> None:
    fam = gen.family
    ind = " " * draw(st.sampled_from([2, 4]))
    for i in range(draw(st.integers(1, 5))):
        shape = draw(st.sampled_from(["string", "parts", "registry", "flow", "note"]))
        ours = draw(st.booleans())
        name = draw(st.sampled_from(fam.spellings if ours else fam.decoys))
        key = f"svc{i}"
        if shape == "string":
            value = draw(old_ref(name))
            b.put(f"{key}:", b.nl, ind, "image: ")
            b.scalar(value, draw(quote_for(value)), gen.ref_new(name) if ours else None,
                     (doc, key, "image"))
            b.line(comment(draw, fam))
        elif shape in ("parts", "registry"):
            if shape == "registry" and fam.registry_split is None:
                shape = "parts"
            tag = draw(st.sampled_from(OLD_TAGS))
            b.line(f"{key}:")
            b.line(ind, "image:")
            if shape == "registry" and fam.registry_split is not None:
                registry, repository = fam.registry_split
                if not ours:
                    repository = repository + "-other"
                b.line(ind * 2, f"registry: {registry}")
                b.line(ind * 2, f"repository: {repository}")
            else:
                b.line(ind * 2, f"repository: {name}")
            b.put(ind * 2, "tag: ")
            b.scalar(tag, draw(quote_for(tag)), gen.new_tag if ours else None,
                     (doc, key, "image", "tag"))
            b.line(comment(draw, fam))
            b.line(ind * 2, "pullPolicy: IfNotPresent")
        elif shape == "flow":
            value = draw(old_ref(name))
            b.put(f"{key}: {{image: ")
            b.scalar(value, draw(st.sampled_from(["'", '"'])),
                     gen.ref_new(name) if ours else None, (doc, key, "image"))
            b.line(", replicas: 2}", comment(draw, fam))
        else:  # a value that is not under an image key: never an image slot
            b.put(f"note{i}: ")
            value = draw(old_ref(name))
            b.scalar(value, draw(quote_for(value)))
            b.line()


@st.composite
def workload_doc(draw: st.DrawFn, b: Builder, gen: Gen, doc: int) -> None:
    fam = gen.family
    ind = " " * draw(st.sampled_from([2, 4]))
    seq_ind = draw(st.sampled_from(["", ind]))  # indentless or indented sequences
    kind = draw(st.sampled_from(["Deployment", "StatefulSet", "CronJob", "Pod"]))
    b.line("apiVersion: apps/v1")
    b.line(f"kind: {kind}")
    b.line("metadata:")
    b.line(ind, "name: api  # the api")
    b.line("spec:")
    b.line(ind, "template:")
    b.line(ind * 2, "spec:")
    base = ind * 3
    for lst in draw(st.lists(st.sampled_from(["containers", "initContainers"]), min_size=1,
                             max_size=2, unique=True)):
        b.line(base, f"{lst}:")
        for j in range(draw(st.integers(1, 3))):
            ours = draw(st.booleans())
            name = draw(st.sampled_from(fam.spellings if ours else fam.decoys))
            value = draw(old_ref(name))
            new = gen.ref_new(name) if ours else None
            path = (doc, "spec", "template", "spec", lst, j, "image")
            if draw(st.booleans()):
                b.put(base, seq_ind, f"- {{name: c{j}, image: ")
                b.scalar(value, draw(st.sampled_from(["'", '"'])), new, path)
                b.line("}", comment(draw, fam))
            else:
                b.line(base, seq_ind, f"- name: c{j}")
                b.put(base, seq_ind, "  image: ")
                b.scalar(value, draw(quote_for(value)), new, path)
                b.line(comment(draw, fam))
                b.line(base, seq_ind, "  imagePullPolicy: Always")


@st.composite
def kustomize_doc(draw: st.DrawFn, b: Builder, gen: Gen, doc: int) -> None:
    fam = gen.family
    b.line("apiVersion: kustomize.config.k8s.io/v1beta1")
    b.line("kind: Kustomization")
    b.line("resources:", b.nl, "- deploy.yaml")
    b.line("images:")
    for j in range(draw(st.integers(1, 3))):
        ours = draw(st.booleans())
        name = draw(st.sampled_from(fam.spellings if ours else fam.decoys))
        tag = draw(st.sampled_from(OLD_TAGS))
        b.line(f"- name: {name}")
        b.put("  newTag: ")
        b.scalar(tag, draw(quote_for(tag)), gen.new_tag if ours else None,
                 (doc, "images", j, "newTag"))
        b.line(comment(draw, fam))


@st.composite
def files(draw: st.DrawFn) -> tuple[bytes, Builder, Gen]:
    fam = draw(st.sampled_from(FAMILIES))
    gen = Gen(fam, draw(NEW_TAGS), None)
    b = Builder(draw(st.sampled_from(["\n", "\r\n"])))
    if draw(st.booleans()):
        b.line("# generated ", fam.target, ":0.0.1 lives here")
    count = draw(st.integers(1, 3))
    for doc in range(count):
        if doc > 0 or draw(st.booleans()):
            b.line("---")
        maker = draw(st.sampled_from([helm_doc, workload_doc, kustomize_doc]))
        draw(maker(b, gen, doc))
        if draw(st.integers(0, 3)) == 0:
            b.line()
    bom = "\ufeff" if draw(st.integers(0, 5)) == 0 else ""
    return (bom + b.text).encode("utf-8"), b, gen


def load_all(text: str) -> list[Any]:
    return [d for d in YAML(typ="safe").load_all(text) if d is not None]


def set_path(data: list[Any], path: tuple[Any, ...], value: str) -> None:
    node: Any = data
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


@EDIT
@given(generated=files())
def test_edit_changes_exactly_the_value_spans(generated: tuple[bytes, Builder, Gen]) -> None:
    data, b, gen = generated
    target = parse(f"{gen.family.target}:{gen.new_tag}")
    result = edit_file("values.yaml", data, Targets(images=(target,)))
    spans = [s for s in b.spans if s.old != s.new]
    event(f"values to change: {min(len(spans), 4)}")
    if not spans:
        assert result.new is None
        return
    assert result.new is not None
    new_text = result.new.decode("utf-8")
    assert new_text.startswith("\ufeff") == data.startswith(b"\xef\xbb\xbf")
    new_text = new_text.removeprefix("\ufeff")
    # outside the spans, every character is where it was
    gaps, pos = [], 0
    for s in sorted(spans, key=lambda s: s.start):
        gaps.append(b.text[pos:s.start])
        pos = s.end
    gaps.append(b.text[pos:])
    pattern = "([^\\r\\n]*?)".join(re.escape(g) for g in gaps)
    m = re.fullmatch(pattern, new_text, re.DOTALL)
    assert m is not None, f"text outside the image values changed:\n{b.text!r}\n{new_text!r}"
    for s, written in zip(sorted(spans, key=lambda s: s.start), m.groups(), strict=True):
        assert YAML(typ="safe").load(f"k: {written}") == {"k": s.new}, written
        if s.quote:
            assert written.startswith(s.quote), f"{s.old!r} lost its {s.quote} quotes"
        else:
            assert written[:1] != "'", f"plain {s.old!r} became single-quoted"
    # the data: the old data with exactly the new values
    expected = copy.deepcopy(load_all(b.text))
    for s in spans:
        set_path(expected, s.path, s.new)
    assert load_all(new_text) == expected
    # and a second run finds it done
    assert edit_file("values.yaml", result.new, Targets(images=(target,))).new is None
