"""The ``promote`` command: the only place that reads argv and the environment.

Heavy imports (ruamel.yaml, PyGithub, python-gitlab) happen inside the command, so
``promote --version`` and ``--help`` start fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from promoter import __version__
from promoter.errors import EXIT_CODES, PromoteError, UsageError
from promoter.forges import registry
from promoter.forges.registry import FORGES, PLAIN_GIT
from promoter.forges.registry import api_root as api_root  # the API root of --api-url
from promoter.redact import fold, no_commands, redact, register

if TYPE_CHECKING:
    from promoter.context import Context
    from promoter.forges.base import Forge
    from promoter.images import ImageRef
    from promoter.jsontypes import JSONObject
    from promoter.retry import Patience
    from promoter.selection import Request

EPILOG = """\b
Examples:
  # edit a checkout in place (no commit), e.g. in a pre-merge job
  promote --repo ./config --image ghcr.io/acme/api:1.4.2 --in-place
  # show what would change, as JSON
  promote --repo ./config --image ghcr.io/acme/api:1.4.2 --dry-run --output json
  # through GitHub: one commit on promote/<env>/<image>, one pull request
  PROMOTE_TOKEN=... promote --forge github --repo acme/config --env staging \\
      --image ghcr.io/acme/api:1.4.2 --auto-merge
  # through GitLab (self-managed: --api-url https://gitlab.example.com)
  PROMOTE_TOKEN=... promote --forge gitlab --repo acme/config --env prod \\
      --image ghcr.io/acme/api:1.4.2
  # through Gitea or Forgejo (the server root as --api-url)
  PROMOTE_TOKEN=... promote --forge gitea --api-url https://gitea.example.com \\
      --repo acme/config --env prod --image ghcr.io/acme/api:1.4.2
  # through Bitbucket Cloud, or Data Center with --api-url https://bitbucket.example.com
  PROMOTE_TOKEN=... promote --forge bitbucket --repo acme/config --env prod \\
      --image ghcr.io/acme/api:1.4.2
  # through Azure DevOps Repos (Server: --api-url https://ado.example.com/tfs/Coll)
  PROMOTE_TOKEN=... promote --forge azure --repo acme/platform/config --env prod \\
      --image ghcr.io/acme/api:1.4.2
  # plain git, any remote or a local bare repo, no account needed
  promote --repo ../config.git --image ghcr.io/acme/api:1.4.2
  # promote what staging runs into prod; list history; roll back
  promote --repo acme/config --forge github --from staging --env prod --image ghcr.io/acme/api
  promote --repo acme/config --forge github --history --env prod
  promote --repo acme/config --forge github --rollback --env prod --image ghcr.io/acme/api

\b
Shell completion (bash; zsh and fish likewise with zsh_source / fish_source):
  eval "$(_PROMOTE_COMPLETE=bash_source promote)"

\b
Behind a corporate proxy, with a private CA (e.g. GitHub Enterprise Server):
  HTTPS_PROXY=http://proxy.corp:3128 NO_PROXY=.corp.internal \\
  promote --forge github --api-url https://github.corp.example --ca-bundle corp-ca.pem ...

\b
""" + registry.token_help() + """
Every option can also be set as PROMOTE_<OPTION>, e.g. PROMOTE_IMAGE, PROMOTE_ENV.

\b
Exit codes:
""" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())


def _echo(text: str, err: bool = False) -> None:
    # no line of ours may be read as a GitHub Actions workflow command (::add-mask::...)
    click.echo(no_commands(redact(text)), err=err)


@click.command(context_settings={"auto_envvar_prefix": "PROMOTE", "max_content_width": 100,
                                 "help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(__version__, "--version", prog_name="promote")
@click.option("--repo", required=False, help=registry.repo_help())
@click.option("--forge", type=click.Choice(list(FORGES)), help=registry.forge_help())
@click.option("--api-url", help=registry.api_url_help())
@click.option("--base", help="Base branch of the config repo (default: its default branch).")
@click.option("--image", "images", envvar="PROMOTE_IMAGE", multiple=True, metavar="REF",
              help="Image to promote: repo:tag, repo@sha256:..., or repo:tag@sha256:... "
              "(repeatable: several images go into one commit).")
@click.option("--file", "files", envvar="PROMOTE_FILE", multiple=True, metavar="GLOB",
              help="Only these files (repo-relative glob, ** for any depth; repeatable).")
@click.option("--path", default="", metavar="SUBDIR", help="Only files under this directory.")
@click.option("--env", help="Environment from .promoter.yaml: limits edits to its paths and "
              "applies its policy.")
@click.option("--from", "from_env", envvar="PROMOTE_FROM", metavar="ENV",
              help="Promote the version ENV runs (of each --image name) into --env.")
@click.option("--marker", "markers", envvar="PROMOTE_MARKER", multiple=True,
              metavar="NS:POLICY=REF",
              help='Flux marker: write REF where # {"$imagepolicy": "NS:POLICY"} stands.')
@click.option("--set", "sets", envvar="PROMOTE_SET", multiple=True, metavar="FILE:KEY=VALUE",
              help="Write VALUE at a dotted key path of FILE (for layouts nothing else reads).")
@click.option("--in-place", is_flag=True, help="Edit the files of the working tree DIR; "
              "commit nothing.")
@click.option("--dry-run", is_flag=True, help="Change nothing anywhere; show what would change.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--auto-merge", is_flag=True, allow_from_autoenv=False,
              help="Ask to merge; granted only if policy allows (never read from the "
              "environment).")
@click.option("--require-merge", is_flag=True, allow_from_autoenv=False,
              help="Exit 4 when policy refuses the merge.")
@click.option("--merge-timeout", type=float, default=0.0, show_default=True, metavar="SECONDS",
              help="How long to wait for checks before leaving auto-merge to the forge (or "
              "the request open).")
@click.option("--retry-timeout", type=float, default=60.0, show_default=True, metavar="SECONDS",
              help="Total time to keep retrying a failing forge call. A rate limit that "
              "lasts longer stops the run at once (exit 5, with the time it ends).")
@click.option("--wait-for-rate-limit", is_flag=True, help="Wait for a rate limit that lasts "
              "longer than --retry-timeout (at most 1 hour, a progress line a minute on "
              "stderr) instead of stopping.")
@click.option("--ca-bundle", metavar="PATH", help="CA certificates (PEM) that verify the "
              "forge's TLS certificate (a private CA, a TLS-inspecting proxy), for all three "
              "forges. Default: $REQUESTS_CA_BUNDLE, $CURL_CA_BUNDLE or $SSL_CERT_FILE. "
              "Proxies: $HTTPS_PROXY, $HTTP_PROXY, $NO_PROXY.")
@click.option("--label", "labels", envvar="PROMOTE_LABEL", multiple=True,
              help="Label for the PR/MR (repeatable).")
@click.option("--reviewer", "reviewers", envvar="PROMOTE_REVIEWER", multiple=True,
              help="Reviewer (repeatable).")
@click.option("--assignee", "assignees", envvar="PROMOTE_ASSIGNEE", multiple=True,
              help="Assignee (repeatable).")
@click.option("--draft", is_flag=True, help="Open the PR/MR as a draft.")
@click.option("--sign", is_flag=True, help="Plain git: sign the commits with your git "
              "signing setup (gpg.format, user.signingkey); exit 2 before writing when git "
              "cannot sign. Also: signing: true in .promoter.yaml.")
@click.option("--author", metavar='"NAME <EMAIL>"', help="Who the promotion commit is by "
              "(default: author: in .promoter.yaml; plain git: the CI user, else git's "
              "user.name/user.email; GitHub/GitLab: the token's user).")
@click.option("--github-app-id", help="GitHub App id (with --github-app-key-file or "
              "$PROMOTE_GITHUB_APP_KEY) instead of a token.")
@click.option("--github-app-key-file", type=click.Path(dir_okay=False), help="GitHub App "
              "private key (PEM).")
@click.option("--history", "show_history", envvar="PROMOTE_HISTORY", is_flag=True,
              help="List the promotions recorded in the base branch (with --env, --image).")
@click.option("--rollback", is_flag=True, help="Open a PR/MR restoring the image that --env "
              "ran before its last promotion.")
@click.option("--dotenv", type=click.Path(dir_okay=False), help="Also write the result as a "
              "dotenv file (GitLab CI reports).")
@click.option("--verbose", "-v", is_flag=True, help="Say what happens, step by step.")
@click.option("--no-color", is_flag=True, help="No colours (also: NO_COLOR set).")
def main(**opts: Any) -> None:
    """Promote a container image into a GitOps config repo.

    Changes only the characters of the image values (every comment, quote and indent
    stays), commits them as one commit on promote/<env>/<image>, opens or updates one
    pull/merge request, and merges only when the config repo's .promoter.yaml allows.
    """
    environ = dict(os.environ)
    json_out = opts["output"] == "json"
    ctx = click.get_current_context()
    # run(..., sleep=, clock=) injects these (tests: no real waiting)
    opts["_effects"] = ctx.obj if isinstance(ctx.obj, _Effects) else _Effects()
    try:
        with _signals_unwind():
            result = _run(opts, environ)
    except PromoteError as exc:
        _fail(exc, json_out, environ)
    except KeyboardInterrupt:
        _echo("interrupted; temporary files removed", err=True)
        sys.exit(130)
    except _Terminated as exc:
        _echo(f"terminated ({signal.Signals(exc.signum).name}); temporary files removed",
              err=True)
        sys.exit(128 + exc.signum)
    except Exception as exc:  # the last resort: no traceback for users, exit 1
        if opts["verbose"]:
            import traceback

            _echo("".join(traceback.format_exception(exc)), err=True)
        _echo(f"error: internal error ({type(exc).__name__}: {exc}); please report it, "
              "with --verbose output", err=True)
        sys.exit(1)
    _emit(result, opts, environ)


@dataclass(frozen=True)
class _Effects:
    """The sleep and epoch clock of waits in the forges (``--wait-for-rate-limit``)."""

    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time


class _Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C, so every ``finally`` runs (the
    forge's ``close`` removes its private clone, ``subprocess.run`` kills its git)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated(signum)


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """While the command runs, SIGTERM and SIGHUP raise ``_Terminated`` instead of
    killing the process on the spot (which would leave ``promoter-git-*`` clones behind);
    the previous handlers come back afterwards. Only the main thread can set them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_terminated)
                for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _fail(exc: PromoteError, json_out: bool, environ: Mapping[str, str]) -> None:
    message = fold(redact(exc.render()))  # one line, whatever a server put in it
    if json_out:
        done = dict(exc.result or {})
        done.update({"status": "refused" if exc.code == 4 else "error",
                     "exit_code": exc.code, "error": message, "file": exc.file,
                     "line": exc.line})
        _echo(json.dumps(done, indent=2 if exc.result else None, ensure_ascii=False))
    if environ.get("GITHUB_ACTIONS") == "true":  # an annotation on the workflow run
        from promoter.ci_output import github_annotations

        annotation = fold(redact(github_annotations(exc)).rstrip("\n"))
        click.echo(annotation.replace("##[", "# #["), err=True)
    _echo(f"error: {message}", err=True)
    sys.exit(exc.code)


def _emit(result: JSONObject, opts: Mapping[str, Any], environ: Mapping[str, str]) -> None:
    from promoter.ci_output import write_ci_outputs
    from promoter.report import result_text

    if opts["output"] == "json":
        _echo(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        color = sys.stdout.isatty() and not opts["no_color"] and "NO_COLOR" not in environ
        _echo(result_text(result, color))
    write_ci_outputs(result, environ, dotenv_path=opts.get("dotenv"))


def _log(opts: Mapping[str, Any], text: str) -> None:
    if opts["verbose"]:
        _echo(f"promote: {fold(text)}", err=True)


def _request(opts: Mapping[str, Any]) -> Request:
    """The validated request. ``--history`` and ``--rollback`` take bare image names
    (which image, not which version); a promotion needs a tag or digest on every
    reference, so a bare name never ships ``latest`` by accident."""
    from promoter import identity
    from promoter.edit import SetOp
    from promoter.images import parse
    from promoter.selection import Request

    images = [parse(text) for text in opts["images"]]
    names_only = [flag for flag, on in (("--from", opts["from_env"]), ("--history",
                  opts["show_history"]), ("--rollback", opts["rollback"])) if on]
    for text, ref in zip(opts["images"], images, strict=True):
        if names_only and (ref.tag or ref.digest):
            # the version comes from the environment or the history, never from --image
            raise UsageError(f"{names_only[0]} takes image names without a tag or digest, "
                             f"got --image {text}", hint=f"write --image {ref.familiar}")
        if not names_only:
            _versioned(ref, f"--image {text}")
    markers = {}
    for text in opts["markers"]:
        policy, eq, ref_text = text.partition("=")
        if not eq or policy.count(":") != 1 or not all(policy.split(":")):
            raise UsageError(f"--marker {text!r}: expected NS:POLICY=REF",
                             hint="e.g. --marker flux-system:podinfo=ghcr.io/x/podinfo:1.2.3")
        markers[policy] = _versioned(parse(ref_text), f"--marker {text}")
    sets = tuple(SetOp.parse(s) for s in opts["sets"])
    if opts["show_history"]:
        if markers or sets:
            raise UsageError("--history reads the history; --marker and --set do not apply")
    elif opts["rollback"]:
        if not opts["env"]:
            raise UsageError("--rollback needs --env (which environment to roll back)")
        if not images:
            raise UsageError("--rollback needs --image NAME (which image to roll back)",
                             hint="e.g. --rollback --env prod --image ghcr.io/acme/api")
    elif not (images or markers or sets):
        raise UsageError("nothing to promote: give --image REF (or --marker / --set)")
    if opts["from_env"] and not opts["env"]:
        raise UsageError("--from needs --env (the environment to promote into)")
    return Request(
        images=tuple(images), markers=markers, sets=sets, files=tuple(opts["files"]),
        path=opts["path"] or "", env=opts["env"], from_env=opts["from_env"], base=opts["base"],
        dry_run=opts["dry_run"], auto_merge=opts["auto_merge"],
        require_merge=opts["require_merge"], merge_timeout=opts["merge_timeout"],
        labels=tuple(opts["labels"]), reviewers=tuple(opts["reviewers"]),
        assignees=tuple(opts["assignees"]), draft=opts["draft"],
        author=identity.parse(opts["author"]) if opts["author"] else None,
        sign=opts["sign"])


def _versioned(ref: ImageRef, what: str) -> ImageRef:
    """``ref`` when it pins a tag or digest; a bare name is exit 2 (it would write
    ``latest`` implicitly, which no policy check can judge)."""
    if ref.tag is None and ref.digest is None:
        raise UsageError(f"{what}: no tag or digest; promoting a bare name would deploy "
                         "whatever 'latest' is", hint=f"give a version, e.g. {ref.familiar}:1.4.2 "
                         f"or {ref.familiar}@sha256:..., or use --from ENV")
    return ref


def _forge_kind(opts: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    if opts["forge"]:
        return str(opts["forge"])
    repo = opts["repo"] or ""
    if "://" in repo or repo.startswith("git@") or repo.endswith(".git") or Path(repo).exists():
        return PLAIN_GIT
    from promoter.preflight import looks_like_path, missing_directory

    if looks_like_path(repo):  # ./confg: a typo, in CI too (no forge has such a project)
        raise missing_directory(repo)
    found = registry.detect(environ)
    if found is None:
        raise registry.unknown_forge(repo)
    return found


def _run(opts: Mapping[str, Any], environ: Mapping[str, str]) -> JSONObject:
    from promoter import context as context_mod

    if not opts["repo"]:
        raise UsageError("--repo is required: a local directory, a git URL, or OWNER/NAME")
    ctx = context_mod.detect(environ)
    kind = _forge_kind(opts, environ)
    repo_dir = Path(opts["repo"])
    bare = (repo_dir / "HEAD").is_file() and (repo_dir / "objects").is_dir()
    local = kind == PLAIN_GIT and not opts["forge"] and (opts["in_place"] or opts["dry_run"]) \
        and repo_dir.is_dir() and not bare
    if opts["in_place"] and not local:
        raise UsageError("--in-place edits a local working tree: --repo must be a directory "
                         "and --forge must not be given")
    if local:
        from promoter.local import run_local

        _log(opts, f"working tree {opts['repo']}")
        # --in-place --dry-run previews the in-place edit: nothing is written
        return run_local(Path(opts["repo"]), _request(opts),
                         write=opts["in_place"] and not opts["dry_run"],
                         now=datetime.now(timezone.utc)).to_json()
    if kind == PLAIN_GIT:
        from promoter.preflight import check_git_remote

        check_git_remote(opts["repo"], opts["base"],
                         writes=not (opts["dry_run"] or opts["show_history"]))
    forge = _make_forge(kind, opts, environ, ctx)
    try:
        return _run_forge(forge, opts, ctx)
    finally:
        forge.close()


def _run_forge(forge: Forge, opts: Mapping[str, Any], ctx: Context) -> JSONObject:
    from promoter import context as context_mod
    from promoter import history, promote
    from promoter.outcome import HistoryOutcome

    request = _request(opts)
    effects = promote.Effects(now=lambda: datetime.now(timezone.utc),
                              log=lambda text: _log(opts, text))
    if opts["show_history"]:
        entries = history.history(forge, request.base, request.env, request.images)
        return HistoryOutcome(forge.name, request.env, tuple(entries)).to_json()
    if opts["rollback"]:
        request = history.rollback_request(forge, request)
    _log(opts, f"{forge.name}: promoting {', '.join(map(str, request.images))}")
    done = promote.run(forge, request, context_mod.provenance_dict(ctx),
                       context_mod.trailers(ctx), effects)
    return replace(done, repo=_shown_repo(opts["repo"])).to_json()


def _shown_repo(repo: str) -> str:
    """``--repo`` as reports show it: a git URL without its user information."""
    from promoter.forges.gitclone import strip_userinfo

    return strip_userinfo(repo)


def _patience(opts: Mapping[str, Any]) -> Callable[[str], Patience]:
    """The rate-limit patience of the forges, given a service name for messages."""
    from promoter import retry

    effects: _Effects = opts["_effects"]

    def patience(service: str) -> retry.Patience:
        return retry.Patience(wait=bool(opts["wait_for_rate_limit"]), service=service,
                              say=lambda text: _echo(f"promote: {text}", err=True),
                              clock=effects.clock)
    return patience


def _make_forge(kind: str, opts: Mapping[str, Any], environ: Mapping[str, str],
                ctx: Context) -> Forge:
    from promoter.forges.gitclone import is_url, url_secrets
    from promoter.forges.http import ca_bundle

    spec = FORGES[kind]
    effects: _Effects = opts["_effects"]
    # checked here (exit 2 naming the file); a local git path uses no network, and no
    # stale SSL_CERT_FILE of the environment may stop it
    network = kind != PLAIN_GIT or is_url(opts["repo"])
    token, job = registry.tokens(spec, environ)
    register(token)  # registered for redaction at once
    register(job)
    for secret in url_secrets(opts["api_url"] or ""):  # user:password@ in --api-url
        register(secret)
    api = opts["api_url"] or (environ.get(spec.api_env) if spec.api_env else None) \
        or spec.api_default
    setup = registry.Setup(
        repo=opts["repo"], api_url=api, token=token, job_token=job, environ=environ,
        context=ctx, author=opts["author"], app_id=opts["github_app_id"],
        app_key_file=opts["github_app_key_file"], retry_timeout=float(opts["retry_timeout"]),
        ca_bundle=ca_bundle(opts["ca_bundle"], environ if network else {}),
        sleep=effects.sleep, patience=_patience(opts),
        warn=lambda text: _echo(f"warning: {text}", err=True))
    return spec.connect(setup)


def run(argv: Sequence[str], *, sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None) -> int:
    """Entry point for tests: run the command and return its exit code. ``sleep`` and
    ``clock`` replace the real ones in the forges' waits (rate limits, retries)."""
    effects = _Effects(sleep=sleep or time.sleep, clock=clock or time.time)
    try:
        main.main(args=list(argv), prog_name="promote", standalone_mode=False, obj=effects)
    except SystemExit as exc:
        return int(exc.code or 0)
    except click.ClickException as exc:
        exc.show()
        return 2
    return 0
