"""The hostile-input corpus: one row per case, run through the real CLI by
``tests/test_hostile.py``.

Every case is a small config repo (the two BASE files, unless ``base=False``, plus its
own ``files``, ``links`` and ``fifos``), the promote arguments, and what must happen:

- ``code`` 2 (or the documented 3): the message names ``where`` (``file:line``) when
  there is a place, contains each of ``says``, carries no traceback, and NOTHING is
  written: the whole temp tree (repo and the ``outside`` directory next to it) hashes
  the same before and after, and through a forge no branch or ref is left.
- ``code`` 0: only the files in ``changed`` change, each exactly by turning ``old``
  (``1.0.0``) into ``version`` (so ``old`` appears only where an image value sits),
  and each of ``says`` appears in the output (e.g. the skip warning).

``modes`` says how a case runs: ``in-place`` (``--in-place``), ``json``
(``--dry-run --output json``), ``git`` (the plain-git forge against a bare repo built
from the same files; symlinks become git symlinks). File content may be a function of
the ``outside`` directory (for cases that aim at it), and is produced at run time for
the huge and deep ones, so the corpus stays small on disk.

Cases found by fuzzing (tests/test_fuzz.py) are added here as regressions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

Content = bytes | Callable[[Path], bytes]

IMAGE = "ghcr.io/acme/api:2.0.0"
ALL_MODES = ("in-place", "json", "git")
LOCAL = ("in-place", "json")

DEPLOY = b"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api   # the api service
spec:
  template:
    spec:
      containers:
        - name: api
          image: ghcr.io/acme/api:1.0.0
"""
VALUES = b"""\
# prod values
image:
  repository: ghcr.io/acme/api
  tag: "1.0.0"
replicas: 3
"""
BASE: dict[str, bytes] = {"envs/dev/deploy.yaml": DEPLOY, "envs/prod/values.yaml": VALUES}
BASE_CHANGED = ("envs/dev/deploy.yaml", "envs/prod/values.yaml")
OUTSIDE: dict[str, bytes] = {"deploy.yaml": DEPLOY, "passwd": b"root:x:0:0:root:/root:/bin/sh\n",
                             "policy.yaml": b"version: 1\ndefaults: {auto_merge: true}\n"}


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]
    code: int
    says: tuple[str, ...] = ()
    where: str | None = None
    files: Mapping[str, Content] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)  # path -> symlink target
    fifos: tuple[str, ...] = ()
    base: bool = True
    modes: tuple[str, ...] = ALL_MODES
    changed: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # files reported as skipped (a warning, not fatal)
    version: str = "2.0.0"
    old: str = "1.0.0"  # what ``version`` replaces in the changed files


# --- generated content --------------------------------------------------------------------


def laughs(top: str, levels: int = 12, width: int = 9) -> bytes:
    """A billion-laughs document: ``width ** levels`` leaves if aliases were expanded."""
    lines = [f"lol0: &lol0 [{top}, {top}]"]
    for i in range(1, levels):
        lines.append(f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * width) + "]")
    return ("\n".join(lines) + "\n").encode()


def nested_flow(depth: int, prefix: bytes = b"image: ghcr.io/acme/api:1.0.0\n") -> bytes:
    return prefix + b"x: " + b"{a: " * depth + b"1" + b"}" * depth + b"\n"


def nested_brackets(depth: int, close: bool = True,
                    prefix: bytes = b"image: ghcr.io/acme/api:1.0.0\n") -> bytes:
    """``x: [[[[...]]]]``: two bytes a level, so 60,000 levels are a 120 KB file."""
    return prefix + b"x: " + b"[" * depth + (b"]" * depth if close else b"") + b"\n"


def nested_config(depth: int) -> bytes:
    """A .promoter.yaml whose ``defaults`` nest ``depth`` flow mappings deep."""
    return b"version: 1\ndefaults: " + b"{a: " * depth + b"1" + b"}" * depth + b"\n"


def nested_block_workload(depth: int) -> bytes:
    body = b"".join(b"  " * i + b"k:\n" for i in range(1, depth)) + b"  " * depth + b"v: 1\n"
    return (b"apiVersion: v1\nkind: Pod\nspec:\n  containers:\n"
            b"    - image: ghcr.io/acme/api:1.0.0\nextra:\n" + body)


def huge(size: int, line: bytes) -> bytes:
    """About ``size`` bytes of a YAML mapping whose keys are ``k<n>`` and values ``line``."""
    out = bytearray()
    n = 0
    while len(out) < size:
        out += b"k%d: %s\n" % (n, line)
        n += 1
    return bytes(out)


def python_tag(outside: Path) -> bytes:
    """A tag that would run a command under an unsafe loader: it must stay inert text."""
    return (b"hook: !!python/object/apply:os.system ['touch " + str(outside).encode()
            + b"/pwned']\nimage: ghcr.io/acme/api:1.0.0\n")


# --- the corpus ---------------------------------------------------------------------------

CASES: tuple[Case, ...] = (
    # YAML bombs, sizes, depth
    Case("bomb_alias_over_image", (f"--image={IMAGE}",), 2,
         ("anchor/alias",), "bomb.yaml:1",
         files={"bomb.yaml": b"image: &img ghcr.io/acme/api:1.0.0\n" + laughs("*img")}),
    Case("bomb_beside_image", (f"--image={IMAGE}",), 0,
         files={"bomb.yaml": laughs('"lol"') + b"image: ghcr.io/acme/api:1.0.0\n"},
         changed=(*BASE_CHANGED, "bomb.yaml")),
    Case("bomb_image_strings_in_anchor", (f"--image={IMAGE}",), 2, ("anchor/alias",),
         "bomb.yaml:2", files={"bomb.yaml": b"images: &i\n  - image: ghcr.io/acme/api:1.0.0\n"
                                              + laughs("*i")}),
    Case("recursive_alias", (f"--image={IMAGE}",), 0,
         files={"rec.yaml": b"image: ghcr.io/acme/api:1.0.0\na: &x [*x, 1]\nb: &y {k: *y}\n"},
         changed=(*BASE_CHANGED, "rec.yaml")),
    Case("huge_file_mentioning_image", (f"--image={IMAGE}",), 2,
         ("bytes, more than",), "huge.yaml",
         files={"huge.yaml": lambda _: b"image: ghcr.io/acme/api:1.0.0\n"
                + huge(9 << 20, b"padding-padding-padding")}, modes=LOCAL),
    Case("huge_file_elsewhere", (f"--image={IMAGE}",), 0,
         files={"huge.yaml": lambda _: huge(30 << 20, b"nothing-to-see-here")},
         changed=BASE_CHANGED, modes=LOCAL),
    Case("huge_file_short_name_only", (f"--image={IMAGE}",), 0, skipped=("huge.yaml",),
         files={"huge.yaml": lambda _: b"service: api\n" + huge(9 << 20, b"x")},
         changed=BASE_CHANGED, modes=LOCAL),
    Case("deep_flow_10000", (f"--image={IMAGE}",), 2, ("nested more than",), "deep.yaml:2",
         files={"deep.yaml": lambda _: nested_flow(10_000)}),
    Case("deep_block_workload", (f"--image={IMAGE}",), 2, ("nested more than",),
         "deep.yaml", files={"deep.yaml": lambda _: nested_block_workload(1_000)}),
    # deeper than the C composer's stack: refused before composing (was SIGSEGV, exit 139)
    Case("deep_brackets_60000", (f"--image={IMAGE}",), 2, ("nested more than 400",),
         "deep.yaml:2", files={"deep.yaml": lambda _: nested_brackets(60_000)}),
    Case("deep_brackets_60000_unclosed", (f"--image={IMAGE}",), 2, ("nested more than 400",),
         "deep.yaml:2", files={"deep.yaml": lambda _: nested_brackets(60_000, close=False)}),
    # each half within the limit, 500 deep through the alias: refused (the composed tree
    # is what the walkers and the verifier recurse over)
    Case("deep_through_an_alias", (f"--image={IMAGE}",), 2, ("nested more than 400",),
         "deep.yaml:2", files={"deep.yaml": lambda _: b"image: ghcr.io/acme/api:1.0.0\n"
                              + b"a: &x " + b"[" * 250 + b"1" + b"]" * 250 + b"\n"
                              + b"b: " + b"[" * 250 + b"*x" + b"]" * 250 + b"\n"}),
    Case("deep_brackets_unrelated_file_is_skipped", (f"--image={IMAGE}",), 0,
         skipped=("deep.yaml",), changed=BASE_CHANGED,
         files={"deep.yaml": lambda _: nested_brackets(60_000, prefix=b"service: api\n")}),
    Case("deep_brackets_inside_quotes_are_text", (f"--image={IMAGE}",), 0,
         changed=(*BASE_CHANGED, "quoted.yaml"),
         files={"quoted.yaml": b"image: ghcr.io/acme/api:1.0.0\nx: '" + b"[" * 5000
                + b"'\n"}),
    Case("deep_unrelated_file_is_skipped", (f"--image={IMAGE}",), 0, skipped=("deep.yaml",),
         files={"deep.yaml": lambda _: nested_flow(10_000, b"service: api\n")},
         changed=BASE_CHANGED),
    # broken YAML
    Case("duplicate_keys", (f"--image={IMAGE}",), 2, ("duplicate key 'image'",), "dup.yaml:2",
         files={"dup.yaml": b"image: ghcr.io/acme/api:1.0.0\nimage: ghcr.io/acme/api:1.0.0\n"}),
    Case("duplicate_keys_in_container", (f"--image={IMAGE}",), 2, ("duplicate key",),
         "dup.yaml:6", files={"dup.yaml": b"apiVersion: v1\nkind: Pod\nspec:\n  containers:\n"
                                          b"    - image: ghcr.io/acme/api:1.0.0\n"
                                          b"      image: ghcr.io/acme/api:1.0.0\n"}),
    Case("tab_indentation", (f"--image={IMAGE}",), 2, ("cannot parse YAML",), "tabs.yaml:2",
         files={"tabs.yaml": b"spec:\n\timage: ghcr.io/acme/api:1.0.0\n"}),
    Case("invalid_utf8", (f"--image={IMAGE}",), 2, ("not valid UTF-8", "0xff"), "latin.yaml:2",
         files={"latin.yaml": b"# caf\xc3\xa9\nname: caf\xff\nimage: ghcr.io/acme/api:1.0.0\n"}),
    Case("utf16_with_image", (f"--image={IMAGE}",), 2, ("binary content",), "wide.yaml",
         files={"wide.yaml": "image: ghcr.io/acme/api:1.0.0\n# api\n".encode("utf-16-le")
                + b"api"}),
    Case("binary_named_yaml", (f"--image={IMAGE}",), 2, ("binary content",), "logo.yaml",
         files={"logo.yaml": b"\x89PNG\r\n\x1a\n\x00\x00ghcr.io/acme/api:1.0.0\x00\xff"}),
    Case("binary_without_mention_ignored", (f"--image={IMAGE}",), 0,
         files={"blob.yaml": bytes(range(256)) * 64}, changed=BASE_CHANGED),
    Case("parse_error_unrelated_file_is_skipped", (f"--image={IMAGE}",), 0,
         skipped=("broken.yaml",),
         files={"broken.yaml": b"service: api\nroutes: [\n  - a\n"}, changed=BASE_CHANGED),
    Case("parse_error_mentioning_image", (f"--image={IMAGE}",), 2, ("cannot parse YAML",),
         "broken.yaml:3", files={"broken.yaml": b"image: ghcr.io/acme/api:1.0.0\nx: [\n"}),
    Case("python_object_tag_inert", (f"--image={IMAGE}",), 0,
         files={"hook.yaml": python_tag}, changed=(*BASE_CHANGED, "hook.yaml")),
    # values that cannot be edited exactly
    Case("templated_braces", (f"--image={IMAGE}",), 2, ("templated",), "tpl.yaml:1",
         files={"tpl.yaml": b'image: "ghcr.io/acme/api:{{ .Values.tag }}"\n'}),
    Case("templated_dollar", (f"--image={IMAGE}",), 2, ("templated",), "tpl.yaml:2",
         files={"tpl.yaml": b"a: 1\nimage: ghcr.io/acme/api:${TAG}\n"}),
    Case("alias_as_image_value", (f"--image={IMAGE}",), 2, ("anchor/alias",), "alias.yaml:1",
         files={"alias.yaml": b"base: &img ghcr.io/acme/api:1.0.0\nimage: *img\n"}),
    Case("merge_key_over_image", (f"--image={IMAGE}",), 2, ("anchor/alias",), "merge.yaml:2",
         files={"merge.yaml": b"base: &b\n  image: ghcr.io/acme/api:1.0.0\nsvc:\n  <<: *b\n"}),
    Case("block_scalar_literal", (f"--image={IMAGE}",), 2, ("block scalar",), "block.yaml:1",
         files={"block.yaml": b"image: |\n  ghcr.io/acme/api:1.0.0\n"}),
    Case("block_scalar_folded", (f"--image={IMAGE}",), 2, ("block scalar",), "block.yaml:2",
         files={"block.yaml": b"a: 1\nimage: >-\n  ghcr.io/acme/api:1.0.0\n"}),
    Case("multiline_escaped_value", (f"--image={IMAGE}",), 2, ("several lines",),
         "multi.yaml:1", files={"multi.yaml": b'image: "ghcr.io/acme/\\\n  api:1.0.0"\n'}),
    # look-alikes and hostile values already in the repo: never the same repository
    Case("cyrillic_a_in_file", (f"--image={IMAGE}",), 3, ("referenced nowhere",),
         base=False, files={"x.yaml": "image: ghcr.io/acme/\u0430pi:1.0.0\n".encode()}),
    Case("fullwidth_colon_in_file", (f"--image={IMAGE}",), 3, ("referenced nowhere",),
         base=False, files={"x.yaml": "image: ghcr.io/acme/api\uff1a1.0.0\n".encode()}),
    Case("html_in_existing_value", (f"--image={IMAGE}",), 3, ("referenced nowhere",),
         base=False, files={"x.yaml": b'image: "ghcr.io/acme/api:1.0.0<script>x</script>"\n'}),
    Case("shared_prefix_names_untouched", (f"--image={IMAGE}",), 0, base=False,
         files={"x.yaml": b"a:\n  image: ghcr.io/acme/api2:9.9.9\nb:\n  image: ghcr.io/acme/"
                          b"api-x:9.9.9\nc:\n  image: ghcr.io/acme/api:1.0.0\n"},
         changed=("x.yaml",)),
    # symlinks and special files
    Case("symlink_file_outside_named", (f"--image={IMAGE}", "--file=link.yaml"), 2,
         ("outside the config repo",), "link.yaml", links={"link.yaml": "../outside/deploy.yaml"},
         modes=LOCAL),
    Case("symlink_file_outside_found", (f"--image={IMAGE}",), 3, ("referenced nowhere",),
         base=False, links={"link.yaml": "../outside/deploy.yaml"}),
    Case("symlink_dir_outside", (f"--image={IMAGE}", "--path=linkdir"), 2,
         ("outside the config repo",), "linkdir", links={"linkdir": "../outside"}, modes=LOCAL),
    Case("symlink_dir_outside_glob", (f"--image={IMAGE}", "--file=linkdir/*.yaml"), 2,
         ("the glob matched no file", "never read through a symlink"),
         links={"linkdir": "../outside"}),
    Case("symlink_to_etc_passwd", (f"--image={IMAGE}",), 0,
         links={"passwd.yaml": "/etc/passwd"}, changed=BASE_CHANGED),
    Case("symlink_inside_edited_once", (f"--image={IMAGE}",), 0,
         links={"envs/dev/alias.yaml": "deploy.yaml"}, changed=BASE_CHANGED),
    Case("symlinked_policy_file", (f"--image={IMAGE}",), 2, ("not a regular file",),
         ".promoter.yaml", links={".promoter.yaml": "../outside/policy.yaml"}, modes=LOCAL),
    Case("fifo_named_yaml", (f"--image={IMAGE}",), 0, fifos=("pipe.yaml",),
         changed=BASE_CHANGED, modes=LOCAL),
    Case("fifo_named_by_file", (f"--image={IMAGE}", "--file=pipe.yaml"), 2,
         ("not a regular file",), "pipe.yaml", fifos=("pipe.yaml",), modes=LOCAL),
    # --file / --path leaving the repo
    Case("file_dotdot_etc_passwd", (f"--image={IMAGE}", "--file=../../etc/passwd"), 2,
         ("leaves the config repo",)),
    Case("file_absolute", (f"--image={IMAGE}", "--file=/etc/passwd"), 2, ("absolute",)),
    Case("file_absolute_outside_dir", (f"--image={IMAGE}", "--file={outside}/deploy.yaml"), 2,
         ("absolute",)),
    Case("file_glob_dotdot", (f"--image={IMAGE}", "--file=envs/../../*/deploy.yaml"), 2,
         ("leaves the config repo",)),
    Case("file_backslash_dotdot", (f"--image={IMAGE}", "--file=..\\..\\outside\\deploy.yaml"),
         2, ("leaves the config repo",)),
    Case("file_windows_drive", (f"--image={IMAGE}", "--file=C:\\Windows\\x.yaml"), 2,
         ("absolute",)),
    Case("file_newline", (f"--image={IMAGE}", "--file=envs/dev/deploy.yaml\n../x"), 2,
         ("not a usable path",)),
    Case("path_dotdot", (f"--image={IMAGE}", "--path=.."), 2, ("leaves the config repo",)),
    Case("path_absolute", (f"--image={IMAGE}", "--path=/tmp"), 2, ("absolute",)),
    Case("path_sneaky_dotdot", (f"--image={IMAGE}", "--path=envs/../../outside"), 2,
         ("leaves the config repo",)),
    # hostile image references
    Case("tag_newline", ("--image=ghcr.io/acme/api:2.0.0\nrm -rf /",), 2, ("white space",)),
    Case("tag_trailing_newline", ("--image=ghcr.io/acme/api:2.0.0\n",), 2, ("white space",),
         modes=LOCAL),
    Case("tag_backticks", ("--image=ghcr.io/acme/api:`id`",), 2, ("tag",), modes=LOCAL),
    Case("tag_command_substitution", ("--image=ghcr.io/acme/api:$(id)",), 2, ("tag",), modes=LOCAL),
    Case("tag_double_quote", ('--image=ghcr.io/acme/api:2.0.0"',), 2, ("tag",), modes=LOCAL),
    Case("tag_single_quote", ("--image=ghcr.io/acme/api:2.0.0'; rm",), 2, ("white space",),
         modes=LOCAL),
    Case("tag_markdown_link", ("--image=ghcr.io/acme/api:[x](https://evil.example)",), 2,
         ("tag",), modes=LOCAL),
    Case("tag_html", ("--image=ghcr.io/acme/api:<img/src=x/onerror=alert(1)>",), 2, ("tag",),
         modes=LOCAL),
    Case("tag_129_chars", ("--image=ghcr.io/acme/api:" + "a" * 129,), 2, ("at most 128",),
         modes=LOCAL),
    Case("tag_128_chars_is_fine", ("--image=ghcr.io/acme/api:" + "a" * 128,), 0,
         changed=BASE_CHANGED, version="a" * 128),
    Case("tag_unicode_digits", ("--image=ghcr.io/acme/api:\uff11.0.0",), 2, ("tag",), modes=LOCAL),
    Case("name_300_chars", ("--image=ghcr.io/acme/" + "a" * 300 + ":1.0.0",), 2,
         ("longer than 255",), modes=LOCAL),
    Case("name_cyrillic_a", ("--image=ghcr.io/acme/\u0430pi:2.0.0",), 2,
         ("not a valid repository path",), modes=LOCAL),
    Case("name_fullwidth_colon", ("--image=ghcr.io/acme/api\uff1a2.0.0",), 2,
         ("not a valid repository path",), modes=LOCAL),
    Case("name_uppercase", ("--image=ghcr.io/Acme/API:2.0.0",), 2, ("lowercase",), modes=LOCAL),
    Case("name_dotdot", ("--image=ghcr.io/../../etc:2.0.0",), 2,
         ("not a valid repository path",), modes=LOCAL),
    Case("digest_malformed", ("--image=ghcr.io/acme/api@sha256:abc",), 2, ("digest",), modes=LOCAL),
    Case("digest_uppercase", ("--image=ghcr.io/acme/api@sha256:" + "A" * 64,), 2,
         ("64 lowercase hex",), modes=LOCAL),
    Case("image_empty", ("--image=",), 2, ("empty",), modes=LOCAL),
    Case("same_repository_twice", (f"--image={IMAGE}", "--image=ghcr.io/acme/api:3.0.0"), 2,
         ("twice",)),
    # --set
    Case("set_value_command", ("--set=envs/prod/values.yaml:image.tag=$(id)",), 2,
         ("characters an image value never has",)),
    Case("set_value_newline", ("--set=envs/prod/values.yaml:image.tag=1\nx: y",), 2,
         ("characters an image value never has",), modes=LOCAL),
    Case("set_value_quote", ('--set=envs/prod/values.yaml:image.tag=1"',), 2,
         ("characters an image value never has",), modes=LOCAL),
    Case("set_value_yaml_injection", ("--set=envs/prod/values.yaml:image.tag=1 #",), 2,
         ("characters an image value never has",), modes=LOCAL),
    Case("set_value_too_long", ("--set=envs/prod/values.yaml:image.tag=" + "1" * 600,), 2,
         ("600 characters, more than the 512",), modes=LOCAL),
    Case("set_file_dotdot", ("--set=../outside/deploy.yaml:image=1",), 2,
         ("leaves the config repo",)),
    Case("set_file_absolute", ("--set=/etc/passwd:root=1",), 2, ("absolute",)),
    Case("set_file_missing", ("--set=nope.yaml:image.tag=1",), 2, ("does not exist",),
         "nope.yaml"),
    Case("set_key_malformed", ("--set=envs/prod/values.yaml:image..tag=1",), 2,
         ("not a dotted key path",), modes=LOCAL),
    Case("set_key_missing", ("--set=envs/prod/values.yaml:image.nope=1",), 2, ("not found",),
         "envs/prod/values.yaml"),
    Case("set_key_not_scalar", ("--set=envs/prod/values.yaml:image=1",), 2,
         ("not a single value",), "envs/prod/values.yaml:3"),
    Case("set_no_equals", ("--set=envs/prod/values.yaml:image.tag",), 2,
         ("expected FILE:dotted.key=VALUE",), modes=LOCAL),
    # --marker
    Case("marker_no_equals", ("--marker=flux-system:api",), 2, ("expected NS:POLICY=REF",),
         modes=LOCAL),
    Case("marker_too_many_colons", (f"--marker=a:b:c={IMAGE}",), 2, ("expected NS:POLICY=REF",),
         modes=LOCAL),
    Case("marker_empty_namespace", (f"--marker=:api={IMAGE}",), 2, ("expected NS:POLICY=REF",),
         modes=LOCAL),
    Case("marker_hostile_ref", ("--marker=flux-system:api=ghcr.io/acme/api:$(id)",), 2,
         ("tag",)),
    # .promoter.yaml trying to widen itself
    Case("config_paths_dotdot", (f"--image={IMAGE}", "--env=dev"), 2, ("leaves the repo",),
         ".promoter.yaml:3", files={".promoter.yaml": b'version: 1\nenvironments:\n'
                                                      b'  dev: {paths: ["../**"]}\n'}),
    Case("config_paths_absolute", (f"--image={IMAGE}", "--env=dev"), 2, ("absolute",),
         ".promoter.yaml:4", files={".promoter.yaml": b'version: 1\nenvironments:\n  dev:\n'
                                                      b'    paths: ["/etc/**"]\n'}),
    Case("config_paths_inner_dotdot", (f"--image={IMAGE}", "--env=dev"), 2,
         ("leaves the repo",), ".promoter.yaml:3",
         files={".promoter.yaml": b'version: 1\nenvironments:\n'
                                  b'  dev: {paths: ["envs/dev/../../../**"]}\n'}),
    Case("config_paths_home", (f"--image={IMAGE}", "--env=dev"), 2, ("absolute",),
         ".promoter.yaml:3", files={".promoter.yaml": b'version: 1\nenvironments:\n'
                                                      b'  dev: {paths: ["~/**"]}\n'}),
    Case("config_paths_backslash", (f"--image={IMAGE}", "--env=dev"), 2, ("backslash",),
         ".promoter.yaml:3",
         files={".promoter.yaml": b'version: 1\nenvironments:\n'
                                  b'  dev: {paths: ["envs\\\\..\\\\..\\\\x"]}\n'}),
    Case("config_typo_key", (f"--image={IMAGE}", "--env=dev"), 2, ("unknown key 'auto_mrege'",),
         ".promoter.yaml:3", files={".promoter.yaml": b'version: 1\nenvironments:\n'
                                                      b'  dev: {paths: ["envs/dev/**"], '
                                                      b'auto_mrege: true}\n'}),
    Case("config_duplicate_environment", (f"--image={IMAGE}", "--env=dev"), 2,
         ("duplicate key 'dev'",), ".promoter.yaml:4",
         files={".promoter.yaml": b'version: 1\nenvironments:\n  dev: {paths: ["envs/dev/**"]}\n'
                                  b'  dev: {paths: ["**"]}\n'}),
    Case("config_bomb", (f"--image={IMAGE}",), 2, (), ".promoter.yaml",
         files={".promoter.yaml": b"version: 1\n" + laughs('"x"')}),
    # patterns that backtrack: a time limit (allowed_tags) and a linear matcher (paths)
    Case("config_regex_backtracking", ("--image=ghcr.io/acme/api:" + "1" * 60 + "x",), 2,
         ("took more than",), ".promoter.yaml:3", modes=("git",),
         files={".promoter.yaml": b"version: 1\ndefaults:\n  allowed_tags: ['^(\\d|\\d\\d)+$']\n"}),
    Case("config_glob_backtracking", (f"--image={IMAGE}",), 0,
         changed=(*BASE_CHANGED, "envs/" + "a" * 60 + ".yaml"),
         files={".promoter.yaml": b"version: 1\nenvironments:\n"
                                  b"  odd: {paths: ['envs/*a*a*a*a*a*a*a*a*b']}\n",
                "envs/" + "a" * 60 + ".yaml": b"image: ghcr.io/acme/api:1.0.0\n"}),
    # deeper than the pure-Python composer's recursion: was "internal error", exit 1
    Case("config_nested_5000", (f"--image={IMAGE}",), 2, ("nested more than 64",),
         ".promoter.yaml:2", files={".promoter.yaml": lambda _: nested_config(5_000)}),
    Case("config_not_utf8", (f"--image={IMAGE}",), 2, ("UTF-8",), ".promoter.yaml",
         files={".promoter.yaml": b"\xff\xfev\x00"}),
    # values and names that would reach commit messages, trailers and PR bodies
    Case("trailer_injection_in_old_tag", (f"--image={IMAGE}",), 2,
         ("line break or control character",), "inj.yaml:3",
         files={"inj.yaml": b'image:\n  repository: ghcr.io/acme/api\n'
                            b'  tag: "1.0.0\\nPromoted-Image: ghcr.io/evil/x:6.6.6"\n'}),
    Case("bidi_override_in_old_tag", (f"--image={IMAGE}",), 2,
         ("line break or control character",), "bidi.yaml:3",
         files={"bidi.yaml": "image:\n  repository: ghcr.io/acme/api\n"
                             "  tag: \"1.0.0\u202e\"\n".encode()}),
    Case("set_over_a_value_with_a_line_break", ("--set=inj.yaml:a.b=1.2.3",), 2,
         ("line break or control character",), "inj.yaml:2",
         files={"inj.yaml": b'a:\n  b: "x\\n\\nEnvironment: prod"\n'}),
    Case("marker_over_a_value_with_a_line_break",
         (f"--marker=flux-system:api={IMAGE}",), 2, ("line break or control character",),
         "flux.yaml:1", files={"flux.yaml": b'image: "a\\tb" # {"$imagepolicy": '
                                            b'"flux-system:api"}\n'}),
    Case("newline_in_a_file_name_is_never_read", (f"--image={IMAGE}",), 0,
         files={"envs/prod/x\nPromoted-Image: evil.yaml": b"image: ghcr.io/acme/api:1.0.0\n"},
         changed=BASE_CHANGED),
    # regressions found by fuzzing (tests/test_fuzz.py)
    Case("fuzz_familiar_nested_library_from_env",
         ("--image=docker.io/library/team/app", "--from=dev", "--env=prod"), 0, base=False,
         files={".promoter.yaml": b'version: 1\nenvironments:\n  dev: {paths: ["dev/**"]}\n'
                                  b'  prod: {paths: ["prod/**"]}\n',
                "dev/app.yaml": b"image: docker.io/library/team/app:1.0.0\n",
                "prod/app.yaml": b"image: docker.io/library/team/app:0.9.0\n"},
         changed=("prod/app.yaml",), old="0.9.0", version="1.0.0"),
    Case("fuzz_familiar_dotted_namespace_from_env",
         ("--image=docker.io/my.org/app", "--from=dev", "--env=prod"), 0, base=False,
         files={".promoter.yaml": b'version: 1\nenvironments:\n  dev: {paths: ["dev/**"]}\n'
                                  b'  prod: {paths: ["prod/**"]}\n',
                "dev/app.yaml": b"image: docker.io/my.org/app:1.0.0\n",
                "prod/app.yaml": b"image: docker.io/my.org/app:0.9.0\n"},
         changed=("prod/app.yaml",), old="0.9.0", version="1.0.0"),
    Case("env_name_dotdot", (f"--image={IMAGE}", "--env=../../outside"), 2,
         ("unknown environment",),
         files={".promoter.yaml": b'version: 1\nenvironments:\n  dev: {paths: ["envs/dev/**"]}\n'}),
)
