"""Reading ``.promoter.yaml`` (see ``promoter.config``): every key is validated, and the
first problem is a ``ConfigError`` naming the file, line and column, with a hint and a
did-you-mean for a misspelt key or value."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from typing import TypeVar
from zoneinfo import ZoneInfoNotFoundError, available_timezones

import regex
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from promoter import identity
from promoter import templates as tpl
from promoter.config.freeze import DAYS, AbsoluteFreeze, Freeze, WeeklyFreeze, zone
from promoter.config.model import BUILTIN, DEFAULT_FILE, Config, EnvPolicy
from promoter.errors import ConfigError, InvalidReference
from promoter.forges.base import MERGE_METHODS as ALL_METHODS
from promoter.forges.base import MergeMethod
from promoter.identity import Identity
from promoter.images import Bump, parse_name
from promoter.limits import MAX_CONFIG_DEPTH, TagPattern, yaml_depth
from promoter.templates import Templates

MERGE_METHODS: dict[str, MergeMethod] = {method: method for method in ALL_METHODS}
BUMPS: dict[str, Bump] = {"patch": Bump.PATCH, "minor": Bump.MINOR, "major": Bump.MAJOR}

_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_STR = "tag:yaml.org,2002:str"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"

_ENV_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9])?")
_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})")
# Flux: namespace (DNS label) ":" ImagePolicy name (DNS subdomain).
_MARKER_RE = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?:[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?")


# --- loading ----------------------------------------------------------------------------

_WEEKLY_KEYS = ("days", "from", "to", "tz")
_ABSOLUTE_KEYS = ("start", "end", "tz")

T = TypeVar("T")


def load(text: bytes | str | None, file: str = DEFAULT_FILE) -> Config:
    """Parse and validate ``.promoter.yaml``; None (no file) gives the built-in policy."""
    if text is None:
        return Config(environments={}, defaults=BUILTIN, file=file)
    return _Loader(file).load(text)


def _show(text: str) -> str:
    """A value from the file, quoted for a message (short, printable)."""
    if len(text) > 60:
        text = text[:57] + "..."
    if text.isprintable() and "'" not in text:
        return f"'{text}'"  # as written: a regex's backslashes are not doubled
    return repr(text)


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return {
        _STR: "a string",
        _BOOL: "a boolean",
        _INT: "a number",
        "tag:yaml.org,2002:float": "a number",
        _NULL: "nothing (null)",
        _TIMESTAMP: "a timestamp",
    }.get(str(node.tag), f"a value tagged {node.tag}")


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


Entry = tuple[str, ScalarNode, Node]


class _Loader:
    def __init__(self, file: str) -> None:
        self.file = file
        # An empty value (``key:`` and nothing) is marked where the next token starts;
        # errors about it point at its key instead.
        self.key_of_empty: dict[int, Node] = {}
        self.text = ""

    def error(self, node: Node, message: str, hint: str | None = None) -> ConfigError:
        mark = self.key_of_empty.get(id(node), node).start_mark
        return ConfigError(
            message, file=self.file, line=mark.line + 1, column=mark.column + 1, hint=hint
        )

    # -- document

    def load(self, data: bytes | str) -> Config:
        text = self.decode(data)
        self.text = text
        deep = yaml_depth(text, MAX_CONFIG_DEPTH, pure=True)
        if deep is not None:
            raise ConfigError(
                f"the config file is nested more than {MAX_CONFIG_DEPTH} levels deep",
                file=self.file,
                line=deep.line,
                column=deep.column,
                hint="a .promoter.yaml needs a handful of levels; fix the file",
            )
        try:
            root = YAML(typ="safe", pure=True).compose(text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "invalid YAML"
            raise ConfigError(
                f"cannot parse YAML: {problem}",
                file=self.file,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
                hint="fix the YAML syntax",
            ) from None
        except ReaderError as exc:
            line, column = _position(text, exc.position)
            raise ConfigError(
                f"cannot read YAML: character {exc.character!r} is not allowed",
                file=self.file,
                line=line,
                column=column,
                hint="remove control characters",
            ) from None
        except YAMLError as exc:
            raise ConfigError(f"cannot parse YAML: {exc}", file=self.file) from None
        if root is None:
            raise ConfigError(
                "the config file is empty",
                file=self.file,
                line=1,
                column=1,
                hint="write 'version: 1', or delete the file to use the built-in policy",
            )
        return self.document(root)

    def decode(self, data: bytes | str) -> str:
        if isinstance(data, str):
            return data.removeprefix("\ufeff")
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            before = data[: exc.start]
            line = before.count(b"\n") + 1
            column = exc.start - (before.rfind(b"\n") + 1) + 1
            raise ConfigError(
                "the config file is not UTF-8",
                file=self.file,
                line=line,
                column=column,
                hint="save it as UTF-8",
            ) from None

    def document(self, root: Node) -> Config:
        entries = self.mapping(root, "the top level")
        self.known_keys(entries, tuple(TOP_KEYS), "the top level")
        by_key = {key: value for key, _, value in entries}
        config = Config(environments={}, file=self.file,
                        defaults=replace(BUILTIN, name="defaults", configured=True))
        # in the table's order, not the file's: defaults before the environments
        for key, row in TOP_KEYS.items():
            node = by_key.get(key)
            if node is None:
                if row.required is not None:
                    raise self.error(root, f"missing {key!r}", hint=row.required)
                continue
            if not (row.null_is_absent and self.is_null(node)):
                config = row.read(self, node, config)
        return config

    def version(self, node: Node) -> None:
        if not (isinstance(node, ScalarNode) and node.tag == _INT and node.value == "1"):
            raise self.error(
                node,
                f"unsupported version {_show(str(getattr(node, 'value', '')))}",
                hint="this promoter reads 'version: 1'",
            )

    def templates(self, node: Node) -> Templates:
        entries = self.mapping(node, "templates")
        self.known_keys(entries, tpl.TARGETS, "templates")
        parsed: dict[str, tpl.Template] = {}
        for key, _, value in entries:
            text = self.string(value, f"templates.{key}")
            try:
                parsed[key] = tpl.parse(text, key)
            except tpl.TemplateProblem as exc:
                line, column = self.inside(value, text, exc.offset)
                raise ConfigError(f"templates.{key}: {exc.message}", file=self.file,
                                  line=line, column=column,
                                  hint="fields: " + ", ".join("{" + f + "}" for f in tpl.FIELDS)
                                  + "; {{ and }} are literal braces") from None
        return Templates(**parsed)

    def inside(self, node: Node, value: str, offset: int) -> tuple[int, int]:
        """Line and column (1-based) in the file of character ``offset`` of a scalar's
        value: exact for plain, quoted (without escapes) and block scalars."""
        mark = node.start_mark
        before = value[:offset]
        row = before.count("\n")
        in_line = offset - (before.rfind("\n") + 1)
        style = getattr(node, "style", None)
        if style in ("|", ">"):  # the value starts on the line after the indicator
            lines = self.text.splitlines()
            index = mark.line + 1 + row
            wanted = value.splitlines()[row] if row < len(value.splitlines()) else ""
            source = lines[index] if index < len(lines) else ""
            start = source.find(wanted) if wanted else len(source) - len(source.lstrip())
            return index + 1, max(start, 0) + in_line + 1
        if row == 0:
            return mark.line + 1, mark.column + 1 + in_line + (1 if style in ("'", '"') else 0)
        return mark.line + 1 + row, in_line + 1
    def author(self, node: Node) -> Identity:
        text = self.string(node, "author")
        why = identity.problem(text)
        if why is not None:
            raise self.error(node, f"author {_show(text)}: {why}",
                             hint=f"e.g. author: {identity.EXAMPLE}")
        return identity.parse(text, "author")

    def environments(self, node: Node, defaults: EnvPolicy) -> dict[str, EnvPolicy]:
        envs: dict[str, EnvPolicy] = {}
        upstream_nodes: dict[str, Node] = {}
        folded: dict[str, str] = {}
        pattern_owner: dict[str, str] = {}
        for name, knode, value in self.mapping(node, "environments"):
            if not _ENV_NAME_RE.fullmatch(name) or ".." in name or name.endswith(".lock"):
                raise self.error(
                    knode,
                    f"invalid environment name {_show(name)}",
                    hint="use letters, digits, '-', '_' and '.', starting and ending with a "
                    "letter or digit, at most 64 characters",
                )
            if name.lower() in folded:
                raise self.error(
                    knode,
                    f"environment {name!r} overlaps environment {folded[name.lower()]!r} "
                    "(names differ only in case)",
                    hint="give each environment a distinct name",
                )
            folded[name.lower()] = name
            where = f"environments.{name}"
            if not isinstance(value, MappingNode):
                raise self.error(
                    value,
                    f"{where} must be a mapping, not {_kind(value)}",
                    hint='give it at least paths: ["envs/' + name + '/**"]',
                )
            policy = self.policy(value, where, replace(defaults, name=name), env=True)
            if not policy.paths:
                raise self.error(
                    knode,
                    f"environment {name!r} has no paths",
                    hint=f'add paths: ["envs/{name}/**"] (the files this environment owns)',
                )
            for pattern in policy.paths:
                other = pattern_owner.setdefault(pattern, name)
                if other != name:
                    raise self.error(
                        value,
                        f"path {pattern!r} belongs to both {other!r} and {name!r}",
                        hint="each file must belong to one environment",
                    )
            for key, _, val in self.mapping(value, where):
                if key == "require_upstream":
                    upstream_nodes[name] = val
            envs[name] = policy
        self.check_upstreams(envs, upstream_nodes)
        return envs

    def check_upstreams(self, envs: Mapping[str, EnvPolicy], nodes: Mapping[str, Node]) -> None:
        for name, env in envs.items():
            up = env.require_upstream
            if up is None:
                continue
            if up not in envs:
                raise self.error(
                    nodes[name],
                    f"require_upstream of {name!r} names {up!r}, which is not an "
                    f"environment{_suggest(up, envs)}",
                    hint="known environments: " + ", ".join(envs),
                )
            chain = [name]
            current: str | None = up
            while current is not None:
                if current in chain:
                    loop = " -> ".join([*chain[chain.index(current) :], current])
                    raise self.error(
                        nodes[name],
                        f"require_upstream makes a cycle: {loop}",
                        hint="an environment cannot require itself, directly or not",
                    )
                chain.append(current)
                current = envs[current].require_upstream

    def markers(self, node: Node) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, knode, value in self.mapping(node, "markers"):
            if not _MARKER_RE.fullmatch(key):
                raise self.error(
                    knode,
                    f"marker {_show(key)} is not NAMESPACE:POLICY",
                    hint='write it as in the Flux marker, e.g. "flux-system:podinfo"',
                )
            text = self.string(value, f"markers.{key}")
            if "@" in text or ":" in text.rsplit("/", 1)[-1]:
                raise self.error(
                    value,
                    f"markers.{key} must be an image repository without tag or digest, "
                    f"got {_show(text)}",
                    hint="e.g. ghcr.io/stefanprodan/podinfo",
                )
            try:
                domain, path = parse_name(text)
            except InvalidReference as exc:
                raise self.error(value, f"markers.{key}: {exc.message}", exc.hint) from None
            out[key] = f"{domain}/{path}"
        return out

    # -- policy keys

    def policy(self, node: Node, where: str, base: EnvPolicy, *, env: bool) -> EnvPolicy:
        entries = self.mapping(node, where)
        for key, knode, _ in entries:
            if not env and key in ENV_KEYS:
                raise self.error(
                    knode,
                    f"{key!r} cannot be set under defaults",
                    hint="set it in each environment",
                )
        readers = POLICY_KEYS | ENV_KEYS if env else POLICY_KEYS
        self.known_keys(entries, tuple(readers), where)
        policy = base
        for key, _, value in entries:
            policy = readers[key](self, value, f"{where}.{key}", policy)
        return policy

    def names(self, node: Node, where: str) -> tuple[str, ...]:
        return tuple(self.nonempty(n, s, where) for n, s in self.strings(node, where))

    def freezes(self, node: Node, where: str) -> tuple[Freeze, ...]:
        return tuple(self.freeze(item, f"{where}[{i}]")
                     for i, item in enumerate(self.seq(node, where)))

    def paths(self, node: Node, where: str) -> tuple[str, ...]:
        return tuple(self.path(n, s, where) for n, s in self.strings(node, where))

    def upstream(self, node: Node, where: str) -> str:
        return self.nonempty(node, self.string(node, where), where)

    def patterns(self, node: Node, where: str) -> tuple[TagPattern, ...]:
        items = self.strings(node, where)
        if not items:
            raise self.error(
                node,
                f"{where} is empty, which would refuse every tag",
                hint="list at least one pattern, or remove the key to allow any tag",
            )
        out = []
        for item, text in items:
            mark = item.start_mark
            try:
                out.append(TagPattern(text, self.file, mark.line + 1, mark.column + 1))
            except regex.error as exc:
                raise self.error(
                    item,
                    f"{where}: {_show(text)} is not a valid regular expression "
                    f"({getattr(exc, 'msg', exc)})",
                    hint="use Python re syntax; the pattern must match the whole tag",
                ) from None
        return tuple(out)

    def path(self, node: ScalarNode, text: str, where: str) -> str:
        def bad(why: str) -> ConfigError:
            return self.error(
                node,
                f"{where}: {_show(text)} {why}",
                hint='paths are globs relative to the repo root, e.g. "envs/prod/**"',
            )

        if not text:
            raise bad("is empty")
        if any(not c.isprintable() for c in text):
            raise bad("contains control characters")
        if "\\" in text:
            raise bad("contains a backslash; separate directories with '/'")
        if text.startswith("/") or re.match(r"[A-Za-z]:", text) or text.startswith("~"):
            raise bad("is absolute; it must stay inside the repo")
        clean = text
        while clean.startswith("./"):
            clean = clean[2:]
        clean = clean.rstrip("/")
        segments = clean.split("/")
        if ".." in segments:
            raise bad("leaves the repo ('..'); it must stay inside the repo")
        if not clean or "" in segments or "." in segments:
            raise bad("has an empty or '.' segment")
        if "[" in clean or "]" in clean:
            raise bad("uses '[' or ']'; character classes are not supported in paths")
        if any("**" in s and s != "**" for s in segments):
            raise bad("uses '**' inside a segment; '**' must be a whole segment, e.g. a/**/b.yaml")
        return clean

    def freeze(self, node: Node, where: str) -> Freeze:
        entries = self.mapping(node, where)
        self.known_keys(entries, tuple(dict.fromkeys(_WEEKLY_KEYS + _ABSOLUTE_KEYS)), where)
        by_key = {key: value for key, _, value in entries}
        absolute = [k for k in entries if k[0] in ("start", "end")]
        weekly = [k for k in entries if k[0] in ("days", "from", "to")]
        if absolute and weekly:
            raise self.error(
                weekly[0][1],
                f"{where} mixes a weekly window (days/from/to) with an absolute one (start/end)",
                hint="write them as two windows",
            )
        tz = "UTC"
        if "tz" in by_key:
            tz = self.timezone(by_key["tz"], f"{where}.tz")
        if absolute:
            for key in ("start", "end"):
                if key not in by_key:
                    raise self.error(node, f"{where} has no {key!r}", hint="give start and end")
            start = self.instant(by_key["start"], f"{where}.start", tz if "tz" in by_key else None)
            end = self.instant(by_key["end"], f"{where}.end", tz if "tz" in by_key else None)
            if end <= start:
                raise self.error(
                    by_key["end"], f"{where}: end is not after start", hint="swap them"
                )
            return AbsoluteFreeze(start, end)
        for key in ("from", "to"):
            if key not in by_key:
                raise self.error(
                    node,
                    f"{where} has no {key!r}",
                    hint='a weekly window needs from and to, e.g. from: "15:00", to: "23:59"; '
                    "an absolute one needs start and end",
                )
        days = frozenset(range(7))
        if "days" in by_key:
            days = frozenset(
                self.day(n, s, f"{where}.days")
                for n, s in self.strings(by_key["days"], f"{where}.days")
            )
            if not days:
                raise self.error(
                    by_key["days"],
                    f"{where}.days is empty",
                    hint="list days, or remove the key for every day",
                )
        start_t = self.clock(by_key["from"], f"{where}.from")
        end_t = self.clock(by_key["to"], f"{where}.to")
        return WeeklyFreeze(days, start_t, end_t, tz)

    def day(self, node: ScalarNode, text: str, where: str) -> int:
        low = text.lower()
        if low in DAYS:
            return DAYS.index(low)
        if low in _FULL_DAYS:
            return _FULL_DAYS.index(low)
        raise self.error(
            node,
            f"{where}: unknown day {_show(text)}{_suggest(low, DAYS + _FULL_DAYS)}",
            hint="days are " + ", ".join(DAYS),
        )

    def clock(self, node: Node, where: str) -> time:
        # The raw text: an unquoted 15:00 is a string in YAML 1.2 but a number in 1.1.
        text = str(node.value) if isinstance(node, ScalarNode) else ""
        m = _TIME_RE.fullmatch(text)
        if not isinstance(node, ScalarNode) or not m or int(m[1]) > 23 or int(m[2]) > 59:
            raise self.error(
                node,
                f"{where} must be a time HH:MM between 00:00 and 23:59, got "
                + (_show(text) if isinstance(node, ScalarNode) else _kind(node)),
                hint='quote it, e.g. "15:00"; "to" is inclusive, so 23:59 ends the day',
            )
        return time(int(m[1]), int(m[2]))

    def timezone(self, node: Node, where: str) -> str:
        name = self.string(node, where)
        try:
            zone(name)
        except (ZoneInfoNotFoundError, ValueError):
            suggestion = _suggest(name, sorted(available_timezones()))
            raise self.error(
                node,
                f"{where}: unknown time zone {_show(name)}{suggestion}",
                hint="use an IANA zone name such as Europe/Berlin or UTC",
            ) from None
        return name

    def instant(self, node: Node, where: str, tz: str | None) -> datetime:
        if not isinstance(node, ScalarNode) or node.tag not in (_STR, _TIMESTAMP):
            raise self.error(node, f"{where} must be an ISO 8601 date-time, not {_kind(node)}")
        text = str(node.value).strip()
        iso = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
        try:
            if len(iso) == 10:
                value = datetime.combine(date.fromisoformat(iso), time())
            else:
                value = datetime.fromisoformat(iso)
        except ValueError:
            raise self.error(
                node,
                f"{where}: {_show(text)} is not an ISO 8601 date-time",
                hint='e.g. "2026-12-20T00:00:00+01:00" or "2026-12-20" with tz',
            ) from None
        if value.tzinfo is not None and tz is not None:
            raise self.error(
                node,
                f"{where} has a UTC offset and the window also has tz",
                hint="give either the offset or tz, not both",
            )
        if value.tzinfo is None:
            if tz is None:
                raise self.error(
                    node,
                    f"{where}: {_show(text)} has no UTC offset",
                    hint="add one (e.g. +01:00) or give the window a tz",
                )
            value = value.replace(tzinfo=zone(tz))
        return value

    # -- node readers

    def is_null(self, node: Node) -> bool:
        return isinstance(node, ScalarNode) and node.tag == _NULL

    def mapping(self, node: Node, where: str) -> list[Entry]:
        if not isinstance(node, MappingNode):
            raise self.error(node, f"{where} must be a mapping, not {_kind(node)}")
        seen: dict[str, int] = {}
        out: list[Entry] = []
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.tag == _MERGE:
                raise self.error(
                    key,
                    f"merge keys ('<<') are not supported in {where}",
                    hint="write the keys out; 'defaults' already applies to every environment",
                )
            if not isinstance(key, ScalarNode) or key.tag != _STR:
                raise self.error(
                    key, f"keys in {where} must be strings, not {_kind(key)}", hint="quote the key"
                )
            name = str(key.value)
            if name in seen:
                raise self.error(
                    key,
                    f"duplicate key {_show(name)} in {where} (first at line {seen[name]})",
                    hint="keep only one of them",
                )
            seen[name] = key.start_mark.line + 1
            if self.is_null(value) and not value.value:
                self.key_of_empty[id(value)] = key
            out.append((name, key, value))
        return out

    def known_keys(self, entries: list[Entry], allowed: tuple[str, ...], where: str) -> None:
        for key, knode, _ in entries:
            if key not in allowed:
                raise self.error(
                    knode,
                    f"unknown key {_show(key)} in {where}{_suggest(key, allowed)}",
                    hint="known keys: " + ", ".join(allowed),
                )

    def seq(self, node: Node, where: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise self.error(
                node, f"{where} must be a list, not {_kind(node)}", hint="write [] for none"
            )
        return list(node.value)

    def string(self, node: Node, where: str) -> str:
        if not isinstance(node, ScalarNode) or node.tag != _STR:
            raise self.error(
                node, f"{where} must be a string, not {_kind(node)}", hint="quote the value"
            )
        return str(node.value)

    def nonempty(self, node: Node, text: str, where: str) -> str:
        if not text.strip():
            raise self.error(node, f"{where} has an empty value", hint="remove it")
        return text

    def strings(self, node: Node, where: str) -> list[tuple[ScalarNode, str]]:
        out = []
        for i, item in enumerate(self.seq(node, where)):
            if not isinstance(item, ScalarNode) or item.tag != _STR:
                raise self.error(
                    item,
                    f"{where}[{i}] must be a string, not {_kind(item)}",
                    hint="quote the value",
                )
            out.append((item, str(item.value)))
        return out

    def boolean(self, node: Node, where: str) -> bool:
        # Only true/false: under a %YAML 1.1 directive yes/no/on/off are booleans too,
        # and reading them by hand is how a guard gets silently turned off.
        if (
            not isinstance(node, ScalarNode)
            or node.tag != _BOOL
            or str(node.value).lower() not in ("true", "false")
        ):
            shown = _show(str(node.value)) if isinstance(node, ScalarNode) else _kind(node)
            raise self.error(node, f"{where} must be true or false, got {shown}")
        return str(node.value).lower() == "true"

    def choice(self, node: Node, where: str, choices: Mapping[str, T]) -> T:
        text = self.string(node, where)
        if text not in choices:
            raise self.error(
                node,
                f"{where}: unknown value {_show(text)}{_suggest(text, choices)}",
                hint="one of " + ", ".join(choices),
            )
        return choices[text]


# --- the keys: each one and its reader, which sets the field of the same name ----------

# (loader, the value's node, where it is for messages, the policy so far) -> the policy
PolicyReader = Callable[[_Loader, Node, str, EnvPolicy], EnvPolicy]

POLICY_KEYS: dict[str, PolicyReader] = {
    "auto_merge": lambda ld, node, at, p: replace(p, auto_merge=ld.boolean(node, at)),
    "merge_method":
        lambda ld, node, at, p: replace(p, merge_method=ld.choice(node, at, MERGE_METHODS)),
    "allowed_tags": lambda ld, node, at, p: replace(p, allowed_tags=ld.patterns(node, at)),
    "max_auto_merge_bump":
        lambda ld, node, at, p: replace(p, max_auto_merge_bump=ld.choice(node, at, BUMPS)),
    "allow_downgrade": lambda ld, node, at, p: replace(p, allow_downgrade=ld.boolean(node, at)),
    "wait_for_checks": lambda ld, node, at, p: replace(p, wait_for_checks=ld.boolean(node, at)),
    "freeze": lambda ld, node, at, p: replace(p, freeze=ld.freezes(node, at)),
    "labels": lambda ld, node, at, p: replace(p, labels=ld.names(node, at)),
    "reviewers": lambda ld, node, at, p: replace(p, reviewers=ld.names(node, at)),
    "assignees": lambda ld, node, at, p: replace(p, assignees=ld.names(node, at)),
    "draft": lambda ld, node, at, p: replace(p, draft=ld.boolean(node, at)),
}
# the keys only an environment has (never under defaults)
ENV_KEYS: dict[str, PolicyReader] = {
    "paths": lambda ld, node, at, p: replace(p, paths=ld.paths(node, at)),
    "require_upstream": lambda ld, node, at, p: replace(p, require_upstream=ld.upstream(node, at)),
}


@dataclass(frozen=True)
class TopKey:
    """A top-level key: its reader, (loader, node, the config so far) -> the config."""

    read: Callable[[_Loader, Node, Config], Config]
    null_is_absent: bool = False  # ``key:`` with nothing keeps the default
    required: str | None = None  # the hint when the key is missing (None: optional)


def _version(loader: _Loader, node: Node, config: Config) -> Config:
    loader.version(node)
    return config


# in the order they are read: ``defaults`` before the ``environments`` that inherit them
TOP_KEYS: dict[str, TopKey] = {
    "version": TopKey(_version, required="add 'version: 1' at the top"),
    "defaults": TopKey(lambda ld, node, c: replace(
        c, defaults=ld.policy(node, "defaults", c.defaults, env=False)), null_is_absent=True),
    "environments": TopKey(lambda ld, node, c: replace(
        c, environments=ld.environments(node, c.defaults)), null_is_absent=True),
    "markers": TopKey(lambda ld, node, c: replace(c, markers=ld.markers(node)),
                       null_is_absent=True),
    "author": TopKey(lambda ld, node, c: replace(c, author=ld.author(node))),
    "templates": TopKey(lambda ld, node, c: replace(c, templates=ld.templates(node)),
                         null_is_absent=True),
    "signing": TopKey(lambda ld, node, c: replace(c, signing=ld.boolean(node, "signing"))),
}


def _position(text: str, index: int) -> tuple[int, int]:
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1
