"""Exception types and exit codes (contract §5). Nothing here prints."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # unreadable or (--strict) malformed input, unknown or ambiguous session id
    USAGE = 2  # bad option, bad date, unknown field
    BUDGET = 3  # a budget given on the command line was exceeded
    INTERRUPTED = 130


class SessionsError(Exception):
    """An error the user can act on; the CLI prints its message and exits with `code`."""

    code = ExitCode.ERROR


class InputError(SessionsError):
    """A file that cannot be read, or (with --strict) malformed input."""


class UsageError(SessionsError):
    code = ExitCode.USAGE
