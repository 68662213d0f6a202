"""Run what CI checks before a push, fastest first, and stop at the first failure.

    python tools/check.py            # ruff, ruff format, mypy, lint-imports, the fast lane
    python tools/check.py --full     # the whole suite instead of the fast lane

The same steps as ``.ci/run`` in the same order, minus its installs, the single file
and the wheel; the tests are the fast lane (``-m "not slow"``: no real peers, browser,
nginx, PostgreSQL-heavy, fault file system or multi-process tests). ``.ci/run`` still runs
everything, so a slow test that this skips is caught there. Every tool is run by this
interpreter (or, for lint-imports, the script beside it), so the active virtualenv's
versions are the ones checked.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The fast lane, as CONTRIBUTING.md gives it.
FAST_LANE = ("-m", "not slow")


@dataclass(frozen=True)
class Step:
    """One check: its name as printed, and its command line."""

    name: str
    argv: tuple[str, ...]


def lint_imports() -> str:
    """import-linter has no ``python -m`` entry: its script beside this interpreter, else PATH."""
    beside = Path(sys.executable).parent / "lint-imports"
    if beside.exists():
        return str(beside)
    found = shutil.which("lint-imports")
    if found is None:
        sys.exit("lint-imports not found: pip install -e '.[dev]'")
    return found


def steps(*, full: bool) -> list[Step]:
    """The checks in CI's order (cheapest first, so a typo fails in a second)."""
    python = sys.executable
    tests = ("-m", "pytest", "-q", "-p", "no:cacheprovider")
    return [
        Step("ruff check", (python, "-m", "ruff", "check", ".")),
        Step("ruff format --check", (python, "-m", "ruff", "format", "--check", ".")),
        Step("mypy", (python, "-m", "mypy")),
        Step("lint-imports", (lint_imports(),)),
        Step(
            "the whole suite" if full else "the fast lane",
            (python, *tests) if full else (python, *tests, *FAST_LANE),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run each step in turn; the first failure's name and exit status end the run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--full", action="store_true", help="run the whole suite, slow included")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    # The checkout's code, not an editable install pointing elsewhere (a worktree).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    began = time.monotonic()
    for step in steps(full=args.full):
        print(f"==> {step.name}", flush=True)
        started = time.monotonic()
        status = subprocess.run(step.argv, cwd=ROOT, env=env, check=False).returncode
        took = time.monotonic() - started
        if status != 0:
            print(f"FAILED: {step.name} (exit status {status}, {took:.0f} s)", flush=True)
            return status
        print(f"    ok: {step.name} ({took:.0f} s)", flush=True)
    print(f"all checks passed in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
