from __future__ import annotations

import pytest

from promoter.errors import InvalidReference
from promoter.images import Bump, bump, parse, parse_version

SHA = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "name", "tag", "digest"),
    [
        ("nginx", "docker.io/library/nginx", None, None),
        ("nginx:1.27", "docker.io/library/nginx", "1.27", None),
        ("docker.io/nginx:1", "docker.io/library/nginx", "1", None),
        ("index.docker.io/library/nginx", "docker.io/library/nginx", None, None),
        ("acme/api:v2", "docker.io/acme/api", "v2", None),
        ("ghcr.io/acme/api:1.4.2", "ghcr.io/acme/api", "1.4.2", None),
        ("registry.local:5000/team/sub/api:2.0", "registry.local:5000/team/sub/api", "2.0", None),
        ("localhost/api", "localhost/api", None, None),
        (f"ghcr.io/acme/api@{SHA}", "ghcr.io/acme/api", None, SHA),
        (f"ghcr.io/acme/api:1.0@{SHA}", "ghcr.io/acme/api", "1.0", SHA),
        ("a/b__c/d-e--f.g:_x", "docker.io/a/b__c/d-e--f.g", "_x", None),
    ],
)
def test_parse(text: str, name: str, tag: str | None, digest: str | None) -> None:
    ref = parse(text)
    assert (ref.name, ref.tag, ref.digest) == (name, tag, digest)
    assert str(ref) == text  # the name stays as it was written


@pytest.mark.parametrize(
    "text",
    [
        "", " nginx", "nginx ", "ghcr.io/Acme/api", "ghcr.io/acme/api:" + "x" * 129,
        "ghcr.io/acme/api:1.0\nevil", "api:$(id)", "api:`id`", "api:1;rm", "api@sha256:abc",
        "api@sha256:" + "A" * 64, "ghcr.io/acme/api:", "-api", "api/", "a//b", "x" * 256,
        "ghcr.io/acme/\u0430pi", "api:1\uff1a2", "api:-1",
    ],
)
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse(text)
    assert info.value.code == 2
    assert "expected" in info.value.render()


def test_same_repository_is_exact() -> None:
    api = parse("ghcr.io/acme/api:1")
    assert api.name == parse("ghcr.io/acme/api").name
    for other in ("ghcr.io/acme/api2", "ghcr.io/acme/api-worker", "ghcr.io/acme/api/sub",
                  "ghcr.io:443/acme/api", "docker.io/acme/api"):
        assert api.name != parse(other).name


def test_semver_ordering_and_bumps() -> None:
    v = parse_version
    assert v("1.2.3") < v("1.2.4") < v("1.3.0") < v("2.0.0")
    assert v("1.0.0-rc.1") < v("1.0.0") and v("1.0.0-alpha") < v("1.0.0-beta")
    assert v("1.0.0-2") < v("1.0.0-10") and v("v1.2.3") == v("1.2.3")
    assert v("latest") is None and v("1.2") is None and v(None) is None
    assert bump(v("1.2.3"), v("1.2.4")) is Bump.PATCH  # type: ignore[arg-type]
    assert bump(v("1.2.3"), v("1.3.0")) is Bump.MINOR  # type: ignore[arg-type]
    assert bump(v("1.2.3"), v("2.0.0")) is Bump.MAJOR  # type: ignore[arg-type]
    assert bump(v("1.2.3"), v("1.2.3")) is Bump.NONE  # type: ignore[arg-type]
