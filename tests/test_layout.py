"""The package's layers: data flows read -> store -> model -> query -> output -> cli, and no
layer reaches forward. These rules are what keep a new reader or renderer in its place."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sessions_cli"
ORDER = ["read", "store", "model", "query", "output", "cli"]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).glob("*.py"))


@pytest.mark.parametrize("layer", ORDER)
def test_a_layer_imports_no_later_layer(layer):
    later = ORDER[ORDER.index(layer) + 1 :]
    for path in _modules(layer):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "sessions_cli" and len(parts) > 1:
                assert parts[1] not in later, f"{path.name} imports {name}"


def test_only_the_cli_layer_imports_click():
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name != "cli":
            names = {n.split(".")[0] for n in _imports(path)}
            assert "click" not in names, f"{path.relative_to(PACKAGE)} imports click"


def test_package_init_files_are_empty():
    for init in PACKAGE.rglob("__init__.py"):
        if init.parent != PACKAGE:  # the top one holds only __version__
            assert init.read_text() == "", init


def test_help_does_not_import_polars():
    code = (
        "import sys\n"
        "sys.argv = ['sessions', '--help']\n"
        "from sessions_cli.cli.main import main\n"
        "try:\n    main()\n"
        "except SystemExit:\n    pass\n"
        "print('polars' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_every_notice_kind_has_words_and_only_output_words_them():
    """Reading and modelling hand on Notice values; output/messages.py is the one table that
    says them, so every kind a layer can emit must be in it, and no other module words one."""
    from sessions_cli.notices import FAILURES
    from sessions_cli.output.messages import TEXTS
    from sessions_cli.read.otlp import PROBLEMS

    emitted = set(FAILURES) | set(PROBLEMS)
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "Notice"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                emitted.add(node.args[0].value)
    emitted |= {"own_parent", "cycles", "session_conflicts"}  # named in a tuple, then Notice(kind)
    assert emitted <= set(TEXTS), emitted - set(TEXTS)
    # a word chosen by a count, by hand: humanise.plural is the one place that does that
    by_hand = re.compile(r"""["'][\w ]*["'] if [\w.()]+ == 1 else""")
    worded = [p.name for p in PACKAGE.rglob("*.py") if by_hand.search(p.read_text("utf-8"))]
    assert not worded
