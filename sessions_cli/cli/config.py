"""A repository's gate kept in code: `sessions.toml`, or `[tool.sessions]` in `pyproject.toml`,
found from the working directory up, gives option defaults; flags on the command line win.

    paths = ["traces/"]            # top level: for every command that takes the option
    prices = "prices.json"
    [stats]                        # a table per command: for that command only
    max-session-cost = 0.50
    [diff]
    base = "baseline/spans.parquet"
    max-increase = ["cost_total=10%", "duration_p95=500ms"]

Keys are option names without their dashes (`max-session-cost` or `max_session_cost`), or an
argument's name (`paths`; `base`, `new` for diff). Paths are relative to the file's folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Keys whose values are paths: made relative to the config file's folder, not the working one.
_PATH_KEYS = ("paths", "base", "new", "price_file")


def find(start: Path) -> Path | None:
    """The nearest sessions.toml, or pyproject.toml with a [tool.sessions] table, from `start`
    up to the root (in each folder, sessions.toml first)."""
    for folder in (start, *start.parents):
        own = folder / "sessions.toml"
        if own.is_file():
            return own
        project = folder / "pyproject.toml"
        if project.is_file() and "sessions" in _read(project).get("tool", {}):
            return project
    return None


def default_map(group: click.Group, path: str | None, *, search: bool) -> dict | None:
    """click's `default_map` for the group's commands, from the config file at `path`, else
    (with `search`) from the nearest one; None when there is none. A key no command takes, a
    table for no command, or a value of the wrong type is a usage error naming the file."""
    found = Path(path) if path else (find(Path.cwd()) if search else None)
    if found is None:
        return None
    settings = _read(found)
    if found.name == "pyproject.toml":
        settings = settings.get("tool", {}).get("sessions")
        if not isinstance(settings, dict):
            raise click.UsageError(f"{found}: no [tool.sessions] table")
    return _defaults(group, settings, found)


def _read(path: Path) -> dict:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise click.UsageError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise click.UsageError(f"{path}: not valid TOML ({exc})") from None


def _defaults(group: click.Group, settings: dict, origin: Path) -> dict:
    commands = {name: _keys(command) for name, command in group.commands.items()}
    shared = {k: v for k, v in settings.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in settings.items() if isinstance(v, dict)}
    for name in tables:
        if name not in commands:
            raise click.UsageError(
                f"{origin}: [{name}] is not a command; commands: {', '.join(sorted(commands))}"
            )
    for key in shared:
        if not any(_normal(key) in keys for keys in commands.values()):
            raise click.UsageError(f"{origin}: no command takes {key!r}")
    out: dict[str, dict] = {}
    for name, keys in commands.items():
        given = {k: v for k, v in shared.items() if _normal(k) in keys}
        for key, value in tables.get(name, {}).items():
            if _normal(key) not in keys:
                raise click.UsageError(
                    f"{origin}: [{name}] {key!r} is not an option of `sessions {name}`; "
                    f"options: {', '.join(sorted({k.replace('_', '-') for k in keys}))}"
                )
            given[key] = value
        out[name] = {keys[_normal(k)]: _value(keys[_normal(k)], v, origin)
                     for k, v in given.items()}  # fmt: skip
    return out


def _keys(command: click.Command) -> dict[str, str]:
    """The names a config file may use for the command's parameters -> their click names: an
    option's long name, an argument's name. Short forms of another option (--json for
    --format json) are left out: `format = "json"` says it."""
    keys = {}
    for param in command.params:
        if param.name is None or param.name == "help":
            continue
        if isinstance(param, click.Argument):
            keys[param.name] = param.name
        elif isinstance(param, click.Option) and not (param.is_flag and not param.is_bool_flag):
            keys.update((_normal(opt[2:]), param.name) for opt in param.opts if opt[:2] == "--")
    return keys


def _normal(key: str) -> str:
    return key.replace("-", "_")


def _value(name: str, value, origin: Path):
    """A value as click takes it from a default map; paths relative to the file's folder."""
    if name in _PATH_KEYS:
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise click.UsageError(f"{origin}: {name} must be a path or a list of paths")
        # "-" is stdin; an empty path stays empty, to be refused as one.
        resolved = [os.path.join(origin.parent, os.path.expanduser(v)) if v.strip("- ") else v
                    for v in values]  # fmt: skip
        return resolved if name == "paths" else resolved[0]
    return value
