"""Image references: the OCI distribution / Docker reference grammar, and semver.

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component ( "/" path-component )*
    domain     := host [ ":" port ]          (a first component with "." or ":", or "localhost")
    path-comp  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" encoded       (sha256: 64 lowercase hex)

A name without a domain lives on ``docker.io``; a single path component there gets
``library/``. So ``nginx``, ``docker.io/nginx`` and ``index.docker.io/library/nginx``
are one repository, and ``ghcr.io/acme/api2`` is not ``ghcr.io/acme/api``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

from promoter.errors import InvalidReference

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAINS = frozenset({"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
OFFICIAL_PREFIX = "library/"
MAX_NAME_LENGTH = 255

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
TAG_PATTERN = r"[\w][\w.-]{0,127}"
_DIGEST = r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}"

_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_RE = re.compile(_DOMAIN)
_TAG_RE = re.compile(TAG_PATTERN, re.ASCII)
_DIGEST_RE = re.compile(_DIGEST)
_SHA256_RE = re.compile(r"sha256:[a-f0-9]{64}")


@dataclass(frozen=True)
class ImageRef:
    """A parsed reference. ``written`` keeps the name exactly as it was spelled."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None
    written: str = ""

    @property
    def name(self) -> str:
        """The canonical repository: ``docker.io/library/nginx``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar(self) -> str:
        """The short form people write: ``nginx``, ``acme/api``, ``ghcr.io/acme/api``.
        It parses back to the same repository: ``library/`` goes only before a single
        component, and ``docker.io/`` stays when the path would read as a registry."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        short = self.path.removeprefix(OFFICIAL_PREFIX)
        if "/" not in short:
            return short
        first = self.path.split("/", 1)[0]
        if "." in first or ":" in first or first == "localhost":
            return self.name
        return self.path

    @property
    def short(self) -> str:
        """The last path component, used in branch names and byte searches."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def version(self) -> str:
        """What the reference pins, for messages: ``1.4.2``, ``1.4.2@sha256:…``."""
        parts = []
        if self.tag:
            parts.append(self.tag)
        if self.digest:
            parts.append(self.digest)
        return "@".join(parts) if parts else "latest"

    def with_version(self, tag: str | None, digest: str | None) -> str:
        """The reference with the name as written and the given tag/digest."""
        text = self.written or self.familiar
        if tag:
            text += f":{tag}"
        if digest:
            text += f"@{digest}"
        return text

    def __str__(self) -> str:
        return self.with_version(self.tag, self.digest)


def _fail(text: str, why: str) -> InvalidReference:
    shown = text if len(text) <= 80 and text.isprintable() else repr(text[:80])
    return InvalidReference(
        f"invalid image reference {shown}: {why}",
        hint="expected [registry[:port]/]path[:tag][@sha256:digest], lowercase path",
    )


def parse_name(text: str) -> tuple[str, str]:
    """Split a repository name into (domain, path), applying Docker's defaults."""
    if not text:
        raise _fail(text, "the name is empty")
    if len(text) > MAX_NAME_LENGTH:
        raise _fail(text, f"the name is longer than {MAX_NAME_LENGTH} characters")
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN_RE.fullmatch(first):
            raise _fail(text, f"{first!r} is not a valid registry host")
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, text
    if domain in LEGACY_DOMAINS:
        domain = DEFAULT_DOMAIN
    if not _PATH_RE.fullmatch(path):
        if path.lower() != path and _PATH_RE.fullmatch(path.lower()):
            raise _fail(text, "repository paths must be lowercase")
        raise _fail(text, f"{path!r} is not a valid repository path")
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def parse(text: str) -> ImageRef:
    """Parse ``[registry[:port]/]path[:tag][@digest]``; raise InvalidReference."""
    if not isinstance(text, str) or not text:
        raise _fail(str(text), "the reference is empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise _fail(text, "it contains white space or a line break")
    rest, at, digest = text.partition("@")
    if at:
        if not _DIGEST_RE.fullmatch(digest):
            raise _fail(text, f"{digest!r} is not a valid digest")
        if digest.startswith("sha256:") and not _SHA256_RE.fullmatch(digest):
            raise _fail(text, "a sha256 digest is 64 lowercase hex characters")
    tag: str | None = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise _fail(text, f"tag {tag!r} must match {TAG_PATTERN} (at most 128 characters)")
    domain, path = parse_name(rest)
    return ImageRef(domain, path, tag, digest or None, written=rest)


def try_parse(text: str) -> ImageRef | None:
    try:
        return parse(text)
    except InvalidReference:
        return None


def valid_digest(digest: str) -> bool:
    if not _DIGEST_RE.fullmatch(digest):
        return False
    return not digest.startswith("sha256:") or bool(_SHA256_RE.fullmatch(digest))


# --- semver -------------------------------------------------------------------------------

_SEMVER_RE = re.compile(
    r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)


class Bump(IntEnum):
    """How far apart two versions are; ordered so that ``bump <= allowed`` reads right."""

    NONE = 0
    PRERELEASE = 1
    PATCH = 2
    MINOR = 3
    MAJOR = 4


@dataclass(frozen=True, order=False)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()

    def key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        # A release sorts after its prereleases; numeric identifiers before alphanumeric.
        pre = tuple((0, int(p)) if p.isdigit() else (1, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: Version) -> bool:
        return self.key() < other.key()

    def __le__(self, other: Version) -> bool:
        return self.key() <= other.key()

    def __gt__(self, other: Version) -> bool:
        return self.key() > other.key()

    def __ge__(self, other: Version) -> bool:
        return self.key() >= other.key()


def parse_version(tag: str | None) -> Version | None:
    """A semantic version read from a tag (``1.2.3``, ``v1.2.3-rc.1``), else None."""
    if not tag:
        return None
    m = _SEMVER_RE.fullmatch(tag)
    if not m:
        return None
    pre = tuple(m.group(4).split(".")) if m.group(4) else ()
    return Version(int(m.group(1)), int(m.group(2)), int(m.group(3)), pre)


_LOOSE_RE = re.compile(
    r"v?(\d+)\.(\d+)\.(\d+)"
    r"(?:-([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?", re.ASCII)


def order_version(tag: str | None) -> Version | None:
    """A version to ORDER ``tag`` by, also when it is not strict semver because a number
    has leading zeros (``01.0.0`` orders as 1.0.0): the default release pattern
    ``^v?\\d+\\.\\d+\\.\\d+$`` lets such tags through, and a downgrade must not hide
    behind them. Whether a step may merge by itself still needs ``parse_version``."""
    if not tag:
        return None
    m = _LOOSE_RE.fullmatch(tag)
    if not m:
        return None
    pre = tuple(p.lstrip("0") or "0" if p.isdigit() else p
                for p in m.group(4).split(".")) if m.group(4) else ()
    return Version(int(m.group(1)), int(m.group(2)), int(m.group(3)), pre)


def leading_zero(tag: str | None) -> bool:
    """True when ``tag`` reads as a version only with leading zeros (``01.0.0``)."""
    return parse_version(tag) is None and order_version(tag) is not None


def bump(old: Version, new: Version) -> Bump:
    if old.major != new.major:
        return Bump.MAJOR
    if old.minor != new.minor:
        return Bump.MINOR
    if old.patch != new.patch:
        return Bump.PATCH
    if old.prerelease != new.prerelease:
        return Bump.PRERELEASE
    return Bump.NONE
