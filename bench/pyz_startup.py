"""Startup time of the single file: ``python bench/pyz_startup.py [dist/consentgate.pyz]``.

Runs ``consentgate.pyz --version`` and ``check-config`` with a bare interpreter
(``--python``, default ``/usr/bin/python3``): the first run of a build (a fresh
``SHIV_ROOT``: the file unpacks itself) and later runs (unpacked), against the same
commands of the installed package (``python -m consentgate``, this interpreter) in
the same run, as a ratio. Medians of ``--repeat`` runs each.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=env["HOME"])
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pyz", nargs="?", type=Path, default=ROOT / "dist" / "consentgate.pyz")
    parser.add_argument("--python", default="/usr/bin/python3")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    config = str(ROOT / "config.example.toml")
    print(f"{args.pyz} ({args.pyz.stat().st_size / 1e6:.1f} MB), run by {args.python}")
    print(f"{'command':<14} {'first run':>10} {'later runs':>11} {'installed':>10} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as scratch:
        for name, extra in (
            ("--version", ["--version"]),
            ("check-config", ["check-config", "--config", config]),
        ):
            first: list[float] = []
            later: list[float] = []
            for index in range(args.repeat):
                root = Path(scratch) / f"{name}-{index}"
                env = {"PATH": "/usr/bin:/bin", "HOME": scratch, "SHIV_ROOT": str(root)}
                first.append(timed([args.python, str(args.pyz), *extra], env))
                later.append(timed([args.python, str(args.pyz), *extra], env))
            env = {"PATH": "/usr/bin:/bin", "HOME": scratch}
            installed = [
                timed([sys.executable, "-m", "consentgate", *extra], env)
                for _ in range(args.repeat)
            ]
            warm = statistics.median(later)
            base = statistics.median(installed)
            print(
                f"{name:<14} {statistics.median(first) * 1000:>8.0f} ms {warm * 1000:>8.0f} ms "
                f"{base * 1000:>7.0f} ms {warm / base:>6.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
