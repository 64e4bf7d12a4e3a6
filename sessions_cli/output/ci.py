"""Findings as CI systems read them: GitHub Actions workflow commands (`::error title=...::...`),
which the runner turns into annotations on the job and the pull request."""

from __future__ import annotations

from typing import Literal

Level = Literal["error", "warning"]


def github_annotation(level: Level, title: str, message: str) -> str:
    """One workflow command. Its message and properties are escaped as the Actions toolkit
    escapes them, so that a value from a trace cannot end the command or start another."""
    return f"::{level} title={_property(title)}::{_data(message)}"


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
