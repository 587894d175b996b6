"""One exception root; each subclass knows its exit code.

    PromoteError                 exit 1   (unexpected; should not happen)
    ├── UsageError               exit 2   bad flags, unsafe path, invalid reference
    │   ├── InvalidReference     exit 2   an image reference that breaks the grammar
    │   ├── ConfigError          exit 2   .promoter.yaml is wrong
    │   └── EditError            exit 2   a file cannot be parsed or edited exactly
    │       └── ParseError       exit 2   a file is not YAML promoter can parse
    ├── NotFound                 exit 3   the image is referenced nowhere in the targets
    ├── PolicyRefused            exit 4   policy refused something the caller demanded
    └── ForgeError               exit 5   the forge failed (after retries), or a conflict
        ├── AuthError            exit 5   missing/wrong token, no write access
        ├── ConflictError        exit 5   someone else's commit is in the way
        └── RateLimited          exit 5   a rate limit lasts longer than promoter may wait

The CLI has the only handler: it prints ``error: <message>`` and exits with ``code``.
Messages name the file and line where there is one, and say what to do. They never
contain a token: forges pass every message through ``redact`` before raising.
"""

from __future__ import annotations

from promoter.jsontypes import JSONObject


class PromoteError(Exception):
    code = 1

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 column: int | None = None, hint: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.hint = hint
        self.result: JSONObject | None = None  # what was done before it failed
        super().__init__(self.render())

    def location(self) -> str:
        if self.file is None:
            return ""
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def render(self) -> str:
        text = self.message
        where = self.location()
        if where:
            text = f"{where}: {text}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class UsageError(PromoteError):
    code = 2


class InvalidReference(UsageError):
    pass


class ConfigError(UsageError):
    pass


class EditError(UsageError):
    pass


class ParseError(EditError):
    """The file cannot be parsed as YAML at all (syntax, size, depth): a file that does
    not mention the image may be skipped for it, unlike an edit that went wrong."""


class NotFound(PromoteError):
    code = 3


class PolicyRefused(PromoteError):
    code = 4


class ForgeError(PromoteError):
    code = 5


class AuthError(ForgeError):
    pass


class ConflictError(ForgeError):
    pass


class BranchExists(ConflictError):
    """A commit for a new branch found the branch there already (a forge that writes
    first, see ``Forge.write_first``): look at it, then decide."""


class RateLimited(ForgeError):
    """The forge asked to wait longer than the retry budget (and --wait-for-rate-limit
    allows); ``until`` is the epoch second the limit ends."""

    def __init__(self, message: str, *, until: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.until = until


EXIT_CODES = {
    0: "done, or already up to date",
    2: "bad input: usage, unparsable YAML, invalid reference, unsafe path, a --file glob "
       "that matches no file (nothing written)",
    3: "the image is referenced nowhere in the targeted files",
    4: "policy refused something the caller demanded (--require-merge)",
    5: "the forge failed after retries, a rate limit longer than promoter may wait, a TLS "
       "certificate that does not verify, or a conflict it would not force",
}
