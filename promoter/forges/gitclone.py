"""A private clone that talks to one git remote: the plumbing under the plain-git forge.

``Clone`` owns a repository in a temp dir (made on first use, removed by ``close``) and
runs every git command of the forge: reading the remote (ls-remote, shallow fetches),
reading objects in bulk (one ``ls-tree``, one ``cat-file --batch``), writing a commit
with plumbing (temporary index, ``write-tree``, ``commit-tree``) and pushing with a
lease. It knows nothing about promotions; ``git.py`` composes it into the Forge.

git runs with a clean environment: only PATH, HOME and the variables that say how to
reach the network (SSH agent, proxies, CA bundles: ``PASSTHROUGH_ENV``) are kept, so
``~/.gitconfig``, SSH keys and credential helpers still work; prompts are off, the
identity is the ``author`` given, and ``-c`` overrides switch off hooks, signing, CRLF
conversion and automatic gc. When an http(s) URL carries a credential, git never sees
it on its command line (where ``ps`` shows it): the URL is passed without it and the
credential as an ``Authorization`` header through ``GIT_CONFIG_COUNT`` /
``http.extraHeader`` in git's environment; credential helpers are switched off, so
that no helper stores it, and so are redirects (``http.followRedirects=false``), so
that the header never reaches another host. Without a credential in the URL, git
follows a redirect of its first request only (``initial``), never a later one. A CA bundle
(``--ca-bundle``) reaches git the same way, as ``http.sslCAInfo``, and wins over a
``GIT_SSL_CAINFO`` of the environment; a certificate that does not verify is not
retried and says "pass --ca-bundle". (git
drops ``-c`` settings when it starts the other side of a local transport, so a local
remote's own hooks still run.)

Failures: ls-remote and fetch are retried through ``promoter.retry`` when git's message
says the network flaked; a push is retried only after ls-remote shows the earlier
attempt did not take effect. What is left becomes AuthError (access refused),
UsageError (no such repository) or ForgeError (anything else, with git's message).
Every message has the URL's userinfo (``https://user:TOKEN@host``) stripped, the URL's
password masked, and passes ``redact``.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import shutil
import subprocess
import tempfile
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

from promoter import retry
from promoter.errors import AuthError, ConflictError, ForgeError, PromoteError, UsageError
from promoter.forges.base import check_path
from promoter.forges.http import CA_HINT
from promoter.redact import redact

T = TypeVar("T")
Runner = Callable[..., "subprocess.CompletedProcess[bytes]"]
"""``subprocess.run`` or a stand-in: called with the command and ``cwd``, ``env``,
``input``, ``capture_output=True``, ``check=False``, ``timeout``."""

MAX_MESSAGE = 8192  # characters of a git message kept for errors and their classification
COMMAND_TIMEOUT = 600.0  # seconds for one git process; a hung network call is transient
# Kept from the process environment: where git and the user's config live, and how to
# reach the network (SSH agent or command, proxies, CA bundles). Nothing else: no GIT_DIR,
# no tokens, no CI variables.
PASSTHROUGH_ENV = (
    "PATH", "HOME", "SSH_AUTH_SOCK", "GIT_SSH", "GIT_SSH_COMMAND",
    "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
    "GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE",
    "GNUPGHOME",  # where gpg finds the signing key (--sign)
)

# Settings of the user's or system config that would change what promoter writes, or
# run code it did not ask for; the private repository never wants them.
GIT_OVERRIDES = (
    "core.hooksPath=/dev/null",
    "core.autocrlf=false",
    "core.fsmonitor=false",
    "core.askPass=",
    "commit.gpgSign=false",
    "merge.verifySignatures=false",
    "push.gpgSign=false",
    "push.followTags=false",
    "push.recurseSubmodules=no",
    "fetch.recurseSubmodules=false",
    "submodule.recurse=false",
    "rerere.enabled=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "advice.detachedHead=false",
    "init.defaultBranch=main",
)

_AUTH = re.compile(
    r"Authentication failed|Permission denied|permission to \S+ denied|"
    r"returned error: 40[13]|HTTP 40[13]|could not read (?:Username|Password)|"
    r"terminal prompts disabled|insufficient permission|not allowed to (?:push|force)|"
    r"Access denied",
    re.IGNORECASE,
)
_MISSING = re.compile(
    r"does not appear to be a git repository|repository .* not found|"
    r"Repository not found|returned error: 404|HTTP 404|not a git repository|"
    r"protocol '?\S+'? is not supported|transport '\S+' not allowed",
    re.IGNORECASE,
)
_TRANSIENT = re.compile(
    r"Could not resolve host|Temporary failure in name resolution|Connection reset|"
    r"Connection refused|timed out|Failed to connect|Couldn't connect|RPC failed|"
    r"early EOF|unexpected disconnect|remote end hung up|returned error: 5\d\d|"
    r"HTTP 5\d\d|gnutls_handshake|SSL_ERROR_SYSCALL|TLS connection|"
    r"Empty reply from server|index-pack failed",
    re.IGNORECASE,
)
# libcurl's words for a server certificate that did not verify (OpenSSL and GnuTLS)
_TLS = re.compile(
    r"SSL certificate problem|server certificate verification failed|"
    r"certificate verify failed|unable to get local issuer certificate|"
    r"self[- ]signed certificate|SSL peer certificate|certificate is not trusted",
    re.IGNORECASE,
)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCP = re.compile(r"^[^/]*:")  # git's rule: a colon before the first slash means ssh
_SCHEME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+.-")
_AUTHORITY_END = re.compile(r"[/\s'\"]")


def strip_userinfo(text: str) -> str:
    """``https://user:TOKEN@host/x`` -> ``https://host/x``, anywhere in ``text``.

    What ``re.sub(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\\s'\"]*@", r"\\1", text)`` does, in
    linear time: that regex takes quadratic time on a long run of letters, and ``text``
    is often a server's message (a hostile remote can make git print a megabyte)."""
    out: list[str] = []
    last = 0
    for sep in re.finditer("://", text):
        if sep.start() < last:
            continue  # inside user information already removed
        start = sep.start()
        while start > last and text[start - 1] in _SCHEME_CHARS:
            start -= 1
        if not any(c.isascii() and c.isalpha() for c in text[start:sep.start()]):
            continue  # no scheme before it
        stop = _AUTHORITY_END.search(text, sep.end())
        authority = text[sep.end():stop.start() if stop else len(text)]
        at = authority.rfind("@")
        if at >= 0:
            out.append(text[last:sep.end()])
            last = sep.end() + at + 1
    out.append(text[last:])
    return "".join(out)


def split_credential(url: str) -> tuple[str, tuple[str, str] | None]:
    """An http(s) URL without its userinfo, and the (user, password) it carried
    (%-decoded); any other URL or path unchanged, with None."""
    match = re.match(r"^(https?://)([^/@]*)@(.*)$", url, re.IGNORECASE | re.DOTALL)
    if not match:
        return url, None
    user, _, password = match.group(2).partition(":")
    return match.group(1) + match.group(3), (unquote(user), unquote(password))


def credential_env(credential: tuple[str, str] | None,
                   ca_bundle: str | None = None) -> dict[str, str]:
    """Environment that makes git send ``credential`` as Basic auth with every request
    (``http.extraHeader``) and verify TLS with ``ca_bundle`` (``http.sslCAInfo``), both
    through ``GIT_CONFIG_COUNT`` (git 2.31+), so neither is on a command line."""
    settings: list[tuple[str, str]] = []
    if credential is not None:
        user, password = credential
        basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        settings.append(("http.extraHeader", f"Authorization: Basic {basic}"))
    if ca_bundle is not None:  # a file, or a directory of hashed certificates
        key = "http.sslCAPath" if Path(ca_bundle).is_dir() else "http.sslCAInfo"
        settings.append((key, ca_bundle))
    if not settings:
        return {}
    env = {"GIT_CONFIG_COUNT": str(len(settings))}
    for n, (key, value) in enumerate(settings):
        env[f"GIT_CONFIG_KEY_{n}"] = key
        env[f"GIT_CONFIG_VALUE_{n}"] = value
    return env


def is_url(remote: str) -> bool:
    """A URL or an scp-like ``host:path``, as opposed to a local path."""
    return bool(_URL.match(remote)) or bool(_SCP.match(remote))


def url_secrets(remote: str) -> tuple[str, ...]:
    """The credentials in a URL's userinfo (raw and %-decoded), longest first: the
    password, or a long user name standing alone (``https://<token>@host``). A plain
    user name such as ``git`` is no secret."""
    match = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/]*)@", remote)
    if not match:
        return ()
    userinfo = match.group(1)
    user, colon, password = userinfo.partition(":")
    if colon:
        found = {userinfo, password} if password else set()
    else:
        found = {user} if len(user) >= 20 else set()
    found |= {unquote(s) for s in found}
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


@dataclass(frozen=True)
class Commit:
    """A commit object, parsed from its raw bytes."""

    sha: str
    tree: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    author_date: str  # "<epoch> <+hhmm>", as git stores it (and takes in GIT_AUTHOR_DATE)
    message: str

    @property
    def iso_date(self) -> str:
        epoch, _, offset = self.author_date.partition(" ")
        sign = -1 if offset.startswith("-") else 1
        digits = offset.lstrip("+-").ljust(4, "0")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4]))
        return datetime.fromtimestamp(int(epoch), timezone(sign * delta)).isoformat()


def parse_commit(sha: str, raw: bytes) -> Commit:
    header, _, body = raw.partition(b"\n\n")
    tree = ""
    parents: list[str] = []
    name = email = date = ""
    for line in header.decode("utf-8", "replace").split("\n"):
        key, _, value = line.partition(" ")
        if key == "tree":
            tree = value
        elif key == "parent":
            parents.append(value)
        elif key == "author":
            who, _, date = value.rpartition("> ")
            name, _, email = who.partition(" <")
    return Commit(sha, tree, tuple(parents), name, email, date, body.decode("utf-8", "replace"))


@dataclass(frozen=True)
class TreeEntry:
    mode: str  # 100644 | 100755 | 120000 (symlink) | 160000 (submodule)
    kind: str  # blob | commit
    sha: str
    path: str


class GitFailed(ForgeError):
    """A git process failed; ``stderr`` is already cleaned of credentials."""

    def __init__(self, verb: str, remote: str, stderr: str, returncode: int) -> None:
        self.verb = verb
        self.stderr = stderr
        self.returncode = returncode
        detail = stderr.strip() or f"exit status {returncode}"
        super().__init__(f"git {verb} failed for {remote}: {detail}")


def classify(exc: BaseException) -> retry.Transient | None:
    """Retry a failed git network command when its message says the network flaked."""
    if not isinstance(exc, GitFailed):
        return None
    if _AUTH.search(exc.stderr) or _MISSING.search(exc.stderr) or _TLS.search(exc.stderr):
        return None
    return retry.Transient() if _TRANSIENT.search(exc.stderr) else None


class Clone:
    """A private repository for one remote. ``remote`` is what messages show: the URL
    without its userinfo, or the absolute path."""

    def __init__(self, remote: str, *, workdir: Path | None,
                 author: tuple[str, str] | None, runner: Runner,
                 sleep: Callable[[float], None], retry_timeout: float,
                 ca_bundle: str | None = None) -> None:
        if not remote or remote.startswith("-"):
            raise UsageError(f"{remote!r} is not a git remote",
                             hint="pass a URL git can clone or the path of a repository")
        url = remote if is_url(remote) else str(Path(remote).resolve())
        self.remote = strip_userinfo(url)
        self._secrets = url_secrets(url)
        # An http(s) credential never goes on git's command line (``ps`` shows it): git
        # gets the URL without it, and the credential as a header through its
        # environment (``credential_env``). Other schemes keep their user name.
        self._url, credential = split_credential(url) if self._secrets else (url, None)
        # A credential in the URL must not be handed to a helper that stores it, nor
        # follow a redirect to another host.
        self._overrides = GIT_OVERRIDES + (
            ("credential.helper=", "http.followRedirects=false") if self._secrets
            else ("http.followRedirects=initial",))
        self._workdir = workdir
        self._runner = runner
        self._sleep = sleep
        self._retry_timeout = retry_timeout
        # who commits are by: None leaves it to the git config (see config_identity)
        self.identity = author
        self.sign = False  # sign every commit (enable_signing): the user's git signing key
        self._env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
        self._env.update({
            "GIT_TERMINAL_PROMPT": "0", "GIT_LFS_SKIP_SMUDGE": "1", "LC_ALL": "C",
        })
        if ca_bundle is not None:  # git lets these override http.sslCAInfo / sslCAPath
            self._env.pop("GIT_SSL_CAINFO", None)
            self._env.pop("GIT_SSL_CAPATH", None)
        self._env.update(credential_env(credential, ca_bundle))
        self._dir: Path | None = None
        self._cleanup: weakref.finalize[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"Clone({self.remote!r}, path={self._dir})"

    # -- lifetime -------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """The private repository, while there is one."""
        return self._dir

    def close(self) -> None:
        """Remove the private repository; the next command makes a new one."""
        if self._cleanup is not None:
            self._cleanup()
        self._cleanup = None
        self._dir = None

    def _repo(self) -> Path:
        if self._dir is not None:
            return self._dir
        if self._workdir is not None:
            self._workdir.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="promoter-git-", dir=self._workdir))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(path), True)
        self._dir = path
        try:
            self.git("init", "-q", ".", verb="init")
        except PromoteError:
            self.close()  # never leave a half-made repository to be used later
            raise
        return path

    # -- running git ------------------------------------------------------------------

    def clean(self, text: str) -> str:
        """``text`` with no credential of the URL and no registered secret in it, and at
        most MAX_MESSAGE characters (the middle of a longer one is cut, after the
        secrets are out): git's messages carry a server's words, and the patterns that
        classify them must not face megabytes."""
        text = strip_userinfo(text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = redact(text)
        if len(text) > MAX_MESSAGE:
            half = MAX_MESSAGE // 2
            text = f"{text[:half]}\n[... {len(text) - 2 * half:,} characters cut ...]\n" \
                   f"{text[-half:]}"
        return text

    def run(self, *args: str, verb: str, input: bytes | None = None,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run one git command in the private repository; never raises on its exit."""
        cwd = self._repo()
        command = ["git"]
        for setting in self._overrides:
            command += ["-c", setting]
        command += args
        who: dict[str, str] = {}
        if self.identity is not None:
            name, email = self.identity
            who = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
                   "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
        try:
            return self._runner(command, cwd=str(cwd), env={**self._env, **who, **(env or {})},
                                input=input, capture_output=True, check=False,
                                timeout=COMMAND_TIMEOUT)
        except FileNotFoundError:
            missing = True
        except subprocess.TimeoutExpired:
            missing = False
        # Raised outside the handlers so that the original exception, whose text holds
        # the command line (URL and credentials included), is not even its context.
        if missing:
            raise UsageError("the git command was not found",
                             hint="install git and make sure it is on PATH")
        raise GitFailed(verb, self.remote, f"timed out after {COMMAND_TIMEOUT:.0f}s", -1)

    def git(self, *args: str, verb: str, input: bytes | None = None,
            env: Mapping[str, str] | None = None, ok: Iterable[int] = (0,)) -> bytes:
        """Run git; its stdout, or GitFailed with its (cleaned) stderr."""
        result = self.run(*args, verb=verb, input=input, env=env)
        if result.returncode not in tuple(ok):
            detail = (result.stderr or result.stdout).decode("utf-8", "replace")
            raise GitFailed(verb, self.remote, self.clean(detail), result.returncode)
        return result.stdout

    def retrying(self, fn: Callable[[], T]) -> T:
        """``fn`` under the shared retry policy; a final failure becomes a typed error."""
        try:
            return retry.call(fn, classify, timeout=self._retry_timeout, sleep=self._sleep)
        except GitFailed as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: GitFailed) -> PromoteError:
        detail = exc.stderr.strip()
        if _TLS.search(detail):
            return ForgeError(f"the TLS certificate of {self.remote} did not verify "
                              f"(git {exc.verb}: {detail})", hint=CA_HINT)
        if _AUTH.search(detail):
            return AuthError(
                f"{self.remote} refused git {exc.verb}: {detail}",
                hint="check the credentials (URL, SSH key or credential helper) and that "
                     "they may write to this repository")
        if _MISSING.search(detail):
            return UsageError(
                f"{self.remote} is not a git repository, or does not exist: {detail}",
                hint="check --repo: a URL git can clone, or the path of a repository")
        return exc

    def config_value(self, key: str) -> str | None:
        """A setting of the user's git config (global and system; the private repo has
        none of its own), or None when unset."""
        result = self.run("config", "--get", key, verb="config")
        value = result.stdout.decode("utf-8", "replace").strip()
        return value if result.returncode == 0 and value else None

    def enable_signing(self) -> None:
        """Sign every commit from now on with the user's git signing setup (gpg.format,
        user.signingkey, gpg.ssh.program, …), after proving it works: a throwaway
        signed commit of the empty tree, made here and never pushed. UsageError when
        git cannot sign, so nothing unsigned is written instead."""
        empty = self.git("mktree", verb="mktree", input=b"").decode().strip()
        probe = self.run("commit-tree", "-S", empty, verb="commit-tree",
                         input=b"promoter: signing probe\n")
        if probe.returncode != 0:
            detail = self.clean((probe.stderr or probe.stdout).decode("utf-8", "replace"))
            raise UsageError(
                "signing was asked for (--sign, or signing: true in .promoter.yaml), but git "
                f"cannot sign here: {' '.join(detail.split()) or 'no reason given'}; "
                "nothing was written",
                hint="set user.signingkey (with gpg.format ssh for an SSH key) in your git "
                     "config, or leave signing off")
        self.sign = True

    def is_signed(self, sha: str) -> bool:
        """Whether the commit object carries a signature (gpgsig header)."""
        raw = self.git("cat-file", "commit", sha, verb="cat-file")
        header = raw.partition(b"\n\n")[0]
        return any(line.startswith((b"gpgsig ", b"gpgsig-sha256 "))
                   for line in header.split(b"\n"))

    def config_identity(self) -> tuple[str, str] | None:
        """``user.name`` and ``user.email`` of the git config, when both are set."""
        name, email = self.config_value("user.name"), self.config_value("user.email")
        return (name, email) if name and email else None

    # -- the remote's refs ---------------------------------------------------------------

    def ls_remote(self, *patterns: str, symref: bool = False,
                  retried: bool = True) -> tuple[dict[str, str], str | None]:
        """{ref: sha} for the patterns, and the branch HEAD points to (with symref)."""
        args = ["ls-remote"] + (["--symref"] if symref else []) + ["--", self._url, *patterns]
        run = functools.partial(self.git, *args, verb="ls-remote")
        out = self.retrying(run) if retried else run()
        refs: dict[str, str] = {}
        head: str | None = None
        for line in out.decode("utf-8", "replace").splitlines():
            left, _, right = line.partition("\t")
            if left.startswith("ref: ") and right == "HEAD":
                target = left[len("ref: "):]
                if target.startswith("refs/heads/"):
                    head = target[len("refs/heads/"):]
            elif right:
                refs[right] = left
        return refs, head

    def remote_sha(self, branch: str) -> str | None:
        ref = f"refs/heads/{branch}"
        return self.ls_remote(ref)[0].get(ref)

    def fetch(self, branches: Sequence[str], *, depth: int | str | None) -> dict[str, str]:
        """Fetch the branches into refs/remotes/origin/*; return their tips. ``depth``:
        a number of commits, None for everything new, or a git flag such as
        ``--deepen=64`` / ``--unshallow``."""
        args = ["fetch", "-q", "--no-tags", "--no-write-fetch-head"]
        if isinstance(depth, int):
            args.append(f"--depth={depth}")
        elif depth is not None:
            args.append(depth)
        args += ["--", self._url, *(f"+refs/heads/{b}:refs/remotes/origin/{b}" for b in branches)]
        self.retrying(functools.partial(self.git, *args, verb="fetch"))
        return {b: self.rev(f"refs/remotes/origin/{b}") for b in branches}

    # -- objects -----------------------------------------------------------------------

    def rev(self, name: str) -> str:
        return self.git("rev-parse", "--verify", "-q", f"{name}^{{commit}}",
                        verb="rev-parse").decode().strip()

    def has_commit(self, sha: str) -> bool:
        return self.run("cat-file", "-e", f"{sha}^{{commit}}", verb="cat-file").returncode == 0

    def is_shallow(self) -> bool:
        return self.git("rev-parse", "--is-shallow-repository", verb="rev-parse").strip() == b"true"

    def is_empty(self) -> bool:
        return not self.git("rev-parse", "--all", verb="rev-parse").strip()

    def commits(self, shas: Sequence[str]) -> list[Commit]:
        raw = self.cat_batch(shas)
        return [parse_commit(sha, raw[sha]) for sha in shas]

    def commit(self, sha: str) -> Commit:
        return self.commits([sha])[0]

    def cat_batch(self, shas: Iterable[str]) -> dict[str, bytes]:
        """Object contents by sha, read with one ``git cat-file --batch``."""
        wanted = list(dict.fromkeys(shas))
        if not wanted:
            return {}
        out = self.git("cat-file", "--batch", verb="cat-file",
                       input="".join(f"{s}\n" for s in wanted).encode())
        found: dict[str, bytes] = {}
        pos = 0
        for sha in wanted:
            end = out.index(b"\n", pos)
            header = out[pos:end].decode().split(" ")
            if len(header) != 3:
                raise ForgeError(f"git object {sha} is missing from the clone of {self.remote}",
                                 hint="re-run promote; if it persists, report it")
            size = int(header[2])
            found[sha] = out[end + 1:end + 1 + size]
            pos = end + 1 + size + 1
        return found

    def changed_blobs(self, parent: str, commit: str) -> dict[str, str] | None:
        """path -> new blob id of each file ``commit`` changed or added against
        ``parent``; None when it also deletes or renames a file or changes a mode or type."""
        out = self.git("diff-tree", "-r", "-z", "--no-renames", parent, commit,
                       verb="diff-tree")
        fields = out.rstrip(b"\x00").split(b"\x00") if out.strip(b"\x00") else []
        changed: dict[str, str] = {}
        for meta, path in zip(fields[0::2], fields[1::2], strict=True):
            old_mode, new_mode, _old, new, status = meta.lstrip(b":").decode().split(" ")
            same_mode = status == "A" or old_mode == new_mode
            if status not in ("M", "A") or not same_mode or new_mode not in ("100644", "100755"):
                return None
            changed[path.decode("utf-8", "surrogateescape")] = new
        return changed

    def ls_tree(self, commit: str) -> list[TreeEntry]:
        """Every file, symlink and submodule of the commit's tree (one ``ls-tree -r``)."""
        out = self.git("ls-tree", "-r", "-z", "--full-tree", commit, verb="ls-tree")
        entries = []
        for record in out.split(b"\x00"):
            if record:
                meta, _, path = record.partition(b"\t")
                mode, kind, sha = meta.decode().split(" ")
                entries.append(TreeEntry(mode, kind, sha, path.decode("utf-8", "surrogateescape")))
        return entries

    def build_tree(self, base_commit: str, files: Mapping[str, bytes]) -> str:
        """The sha of the base commit's tree with ``files`` replaced or added. An existing
        file keeps its mode; a new one is 100644. Symlinks, submodules and paths that
        clash with a directory or a file are refused."""
        existing = {e.path: e for e in self.ls_tree(base_commit)}
        directories = {p.rsplit("/", i)[0] for p in existing for i in range(1, p.count("/") + 1)}
        for path in files:
            check_path(path)
            entry = existing.get(path)
            if entry is not None and entry.mode not in ("100644", "100755"):
                raise UsageError(f"{path} is a symlink or submodule in the config repo; "
                                 "promoter only writes regular files", file=path)
            parents = path.split("/")[:-1]
            if path in directories or any(
                    "/".join(parents[:i]) in existing for i in range(1, len(parents) + 1)):
                raise UsageError(f"{path} clashes with a file or directory of the same name "
                                 "in the config repo", file=path)
        blobs = self._hash_blobs(files)
        entries = b"".join(
            f"{existing[p].mode if p in existing else '100644'} {blobs[p]}\t".encode()
            + p.encode("utf-8", "surrogateescape") + b"\x00"
            for p in files)
        index = self._repo() / ".git" / "promoter-index"
        env = {"GIT_INDEX_FILE": str(index)}
        try:
            self.git("read-tree", base_commit, verb="read-tree", env=env)
            self.git("update-index", "-z", "--index-info", verb="update-index",
                     input=entries, env=env)
            return self.git("write-tree", verb="write-tree", env=env).decode().strip()
        finally:
            index.unlink(missing_ok=True)

    def _hash_blobs(self, files: Mapping[str, bytes]) -> dict[str, str]:
        """Write every content as a blob with one ``git hash-object`` (no filters:
        the bytes go in exactly as given)."""
        staging = Path(tempfile.mkdtemp(prefix="blobs-", dir=self._repo() / ".git"))
        try:
            names = []
            for n, content in enumerate(files.values()):
                name = staging / str(n)
                name.write_bytes(content)
                names.append(f"{name}\n")
            out = self.git("hash-object", "-w", "--no-filters", "--stdin-paths",
                           verb="hash-object", input="".join(names).encode())
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return dict(zip(files, out.decode().split(), strict=True))

    def commit_tree(self, tree: str, parents: Sequence[str], message: str,
                    env: Mapping[str, str] | None = None) -> str:
        """A new commit object (message verbatim); nothing points to it yet."""
        args = ["commit-tree", *(["-S"] if self.sign else []), tree]
        for parent in parents:
            args += ["-p", parent]
        return self.git(*args, verb="commit-tree", input=message.encode(),
                        env=env).decode().strip()

    # -- pushing -----------------------------------------------------------------------

    def push(self, ref: str, new: str | None, *, lease: str | None) -> str | None:
        """Point the remote ``ref`` at ``new`` (None deletes it). With ``lease``, only if
        the remote ref is still at that sha ("" = must not exist yet); without, only a
        fast-forward. Returns None once the remote ref is ``new``, else git's rejection
        reason ("[rejected] (stale info)", "... (fetch first)", ...). A failed attempt is
        repeated only after ls-remote shows that it did not take effect."""
        args = ["push", "--porcelain", "--no-verify"]
        if lease is not None:
            args.append(f"--force-with-lease={ref}:{lease}")
        args += ["--", self._url, f"{new or ''}:{ref}"]

        def landed() -> str | None:
            """"" (done) when the earlier attempt landed and its answer was lost."""
            return "" if self.ls_remote(ref, retried=False)[0].get(ref) == new else None

        def once() -> str:
            """"" when the remote ref is ``new``, else git's rejection reason."""
            result = self.run(*args, verb="push")
            if result.returncode == 0:
                return ""
            stderr = self.clean(result.stderr.decode("utf-8", "replace"))
            for line in result.stdout.decode("utf-8", "replace").splitlines():
                flag, _, rest = line.partition("\t")
                if flag == "!":
                    reason = rest.partition("\t")[2]
                    if reason.startswith("[remote rejected]"):
                        raise self._refused(ref, reason, stderr)
                    return reason
            raise GitFailed("push", self.remote, stderr, result.returncode)

        return self.retrying(retry.Write(once, landed)) or None

    def _refused(self, ref: str, reason: str, stderr: str) -> PromoteError:
        detail = f"{reason}; {stderr.strip()}" if stderr.strip() else reason
        if "checked out" in detail:
            return ForgeError(
                f"{self.remote} refused to update {ref}: it is checked out in that non-bare "
                f"repository ({detail})",
                hint="promote into a bare repository, or run `git config "
                     "receive.denyCurrentBranch updateInstead` in it")
        lowered = detail.lower()
        if "cannot lock ref" in lowered or "reference already exists" in lowered \
                or "but expected" in lowered:  # another push won the race for this ref
            return ConflictError(f"{ref} in {self.remote} moved while promoter pushed "
                                 f"({detail})", hint="promote plans again on the new tip")
        if _AUTH.search(detail) or "protected" in lowered:
            return AuthError(f"{self.remote} refused the push to {ref}: {detail}",
                             hint="the credentials in use may not push to this branch")
        return ForgeError(f"{self.remote} refused the push to {ref}: {detail}",
                          hint="a server-side hook or rule declined it; see its message")
