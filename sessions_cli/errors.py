"""Exception types and exit codes (contract §5). Nothing here prints."""

from __future__ import annotations

from enum import IntEnum

from sessions_cli.notices import Notice


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


class IncompleteInput(InputError):
    """With --strict: input was skipped, cut short or ignored. `failures` says what; the CLI
    words them (output/messages.py)."""

    def __init__(self, failures: list[Notice]) -> None:
        super().__init__("input not read in full")
        self.failures = failures


class UsageError(SessionsError):
    code = ExitCode.USAGE
