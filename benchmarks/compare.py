"""Race the working tree against a commit on one command, alternating, output checked equal.

    python benchmarks/compare.py FILE                       # `list FILE --json`, HEAD vs tree
    python benchmarks/compare.py FILE --base 384cd05 --repeat 5 -- stats FILE --by model

The commit is checked out in a temporary git worktree and its native readers built there;
each side runs as `python -m sessions_cli` with PYTHONPATH at its tree, from a scratch
directory: run from the repository, the current directory would come first on sys.path and
both sides would be the working tree. Each side's import path is checked before timing.
Prints each run (wall, CPU, peak RSS) and the medians; nothing is recorded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from run import measure

ROOT = Path(__file__).resolve().parent.parent


def checked_out(commit: str, scratch: Path) -> Path:
    """A worktree of `commit` under `scratch`, its extensions built (when they build here)."""
    tree = scratch / "base"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), commit],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=tree, check=False, capture_output=True,
    )  # fmt: skip
    return tree


def imported_from(tree: Path, cwd: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-c", "import sessions_cli; print(sessions_cli.__file__)"],
        env={**os.environ, "PYTHONPATH": str(tree)}, cwd=cwd,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return Path(done.stdout.strip()).resolve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="the input (for the default command, `list FILE --json`)")
    parser.add_argument("--base", default="HEAD", help="the commit to race (default HEAD)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side")
    parser.epilog = "After --: the sessions arguments to run instead of `list FILE --json`."
    given = sys.argv[1:]
    ours, command = (
        (given[: given.index("--")], given[given.index("--") + 1 :])
        if "--" in given
        else (given, [])
    )
    args = parser.parse_args(ours)
    command = command or ["list", str(Path(args.file).resolve()), "--json"]
    with tempfile.TemporaryDirectory(prefix="sessions-compare-") as name:
        scratch = Path(name)
        try:
            sides = {"base": checked_out(args.base, scratch), "tree": ROOT}
            for side, tree in sides.items():
                where = imported_from(tree, scratch)
                if not where.is_relative_to(tree.resolve()):
                    raise SystemExit(f"{side}: sessions_cli imports from {where}, not {tree}")
            results: dict[str, list] = {side: [] for side in sides}
            outputs: dict[str, bytes] = {}
            for _ in range(args.repeat):
                for side, tree in sides.items():
                    env = {"PYTHONPATH": str(tree)}
                    run = measure([sys.executable, "-m", "sessions_cli", *command],
                                  stdout=None, env=env, cwd=scratch)  # fmt: skip
                    outputs.setdefault(side, run.out)
                    results[side].append(run)
                    print(
                        f"{side:5s} {run.wall:7.2f} s  {run.cpu:6.2f} CPU-s  {run.peak_mb:6.0f} MB"
                    )
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(scratch / "base")],
                check=False, capture_output=True,
            )  # fmt: skip
            shutil.rmtree(scratch / "base", ignore_errors=True)
    for side, runs in results.items():
        wall = statistics.median(r.wall for r in runs)
        cpu = statistics.median(r.cpu for r in runs)
        peak = max(r.peak_mb for r in runs)
        print(f"{side}: median {wall:.2f} s, {cpu:.2f} CPU-s, peak {peak:.0f} MB")
    same = outputs["base"] == outputs["tree"]
    print("output: identical" if same else "output: DIFFERENT")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
