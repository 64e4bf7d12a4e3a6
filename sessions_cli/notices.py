"""What reading and modelling noticed in the data, as values; `output/messages.py` words them.

A failure means input was skipped, cut short or ignored, and --strict refuses it. Every other
kind is a conflict the contract resolves; it stays a warning even with --strict.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Notice:
    kind: str  # a key of output.messages.TEXTS
    count: int = 1
    label: str | None = None  # the file it is about; None: the input as a whole
    detail: str = ""  # what was found: why a file was skipped, the first malformed line's fault
    lines: tuple[int, ...] = ()  # the first line numbers it is about, when it is about lines

    @property
    def failure(self) -> bool:
        return self.kind in FAILURES


FAILURES = frozenset(
    {
        "malformed_lines",
        "cut_short",
        "unreadable",
        "not_traces",
        "invalid_utf8",
        "surrogates",
        "nested_text",
        "bad_usage",
        "bad_time",
        "spans_without_ids",
    }
)
