"""Read py-spy profiles of the gate, and measure CPU per request: see bench/README.md.

``python bench/profile_report.py top PROFILE.raw [N]``: inclusive and self shares of
the functions in a ``py-spy record -f raw`` profile (collapsed stacks).
``python bench/profile_report.py compare A.raw B.raw``: self samples by package and
inclusive samples by function of two profiles side by side (the minimal proxy and
the gate under the same load).
``python bench/profile_report.py cpu --pid PID --url URL [wrk options]``: one wrk run
(64 connections, on CPU 0) and the process's user+system CPU time per request.

Samples of aiosqlite's worker thread are left out: it waits on its queue, and
py-spy counts that wait as active.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
from pathlib import Path

_FILE = re.compile(r"\((.*?):\d+\)")
_PACKAGES = ("aiohttp", "consentgate", "multidict", "yarl", "prometheus_client", "asyncio")


def _stacks(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or "Thread._bootstrap" in stack:
            continue
        stacks.append((stack.split(";"), int(count)))
    return stacks


def _name(frame: str) -> str:
    return frame.split(" (", maxsplit=1)[0]


def _package(frame: str) -> str:
    match = _FILE.search(frame)
    parts = (match.group(1) if match else "?").split("/")
    return "/".join(parts[:2]) if parts[0] in _PACKAGES else parts[0]


def _inclusive(stacks: list[tuple[list[str], int]]) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        for name in {_name(f) for f in frames}:
            counts[name] += count
    return counts


def top(path: Path, limit: int) -> None:
    stacks = _stacks(path)
    total = sum(count for _, count in stacks) or 1
    own: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        own[frames[-1]] += count
    print(f"{total} samples")
    print("--- inclusive")
    for name, count in _inclusive(stacks).most_common(limit):
        print(f"{count * 100 / total:5.1f}% {name}")
    print("--- self")
    for frame, count in own.most_common(limit):
        print(f"{count * 100 / total:5.1f}% {frame}")


def compare(first: Path, second: Path) -> None:
    a, b = _stacks(first), _stacks(second)
    print(f"samples: {sum(c for _, c in a)} {sum(c for _, c in b)}")
    by_package: list[collections.Counter[str]] = []
    for stacks in (a, b):
        counter: collections.Counter[str] = collections.Counter()
        for frames, count in stacks:
            counter[_package(frames[-1])] += count
        by_package.append(counter)
    print("--- self samples by package")
    for key in sorted(set(by_package[0]) | set(by_package[1]), key=lambda k: -by_package[1][k]):
        print(f"{by_package[0][key]:6d} {by_package[1][key]:6d} {key}")
    ia, ib = _inclusive(a), _inclusive(b)
    floor = 0.02 * sum(c for _, c in b)
    print("--- inclusive samples by function")
    for key in sorted(set(ia) | set(ib), key=lambda k: -ib[k]):
        if ia[key] + ib[key] >= floor:
            print(f"{ia[key]:6d} {ib[key]:6d} {key}")


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def cpu(pid: int, url: str, seconds: int, wrk_args: list[str]) -> None:
    before = _cpu_ticks(pid)
    out = subprocess.run(
        ["taskset", "-c", "0", "wrk", "-t1", "-c64", f"-d{seconds}s", *wrk_args, url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    after = _cpu_ticks(pid)
    found = re.search(r"(\d+) requests in", out)
    if found is None:
        raise SystemExit(f"no request count in wrk's output:\n{out}")
    requests = int(found.group(1))
    per_request = (after - before) / os.sysconf("SC_CLK_TCK") / requests * 1e6
    print(f"{requests} requests, {per_request:.0f} µs CPU per request")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_top = sub.add_parser("top")
    p_top.add_argument("profile", type=Path)
    p_top.add_argument("limit", type=int, nargs="?", default=40)
    p_cmp = sub.add_parser("compare")
    p_cmp.add_argument("first", type=Path)
    p_cmp.add_argument("second", type=Path)
    p_cpu = sub.add_parser("cpu")
    p_cpu.add_argument("--pid", type=int, required=True)
    p_cpu.add_argument("--url", required=True)
    p_cpu.add_argument("--seconds", type=int, default=5)
    args, rest = parser.parse_known_args(argv)
    if args.command == "top":
        top(args.profile, args.limit)
    elif args.command == "compare":
        compare(args.first, args.second)
    else:
        cpu(args.pid, args.url, args.seconds, rest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
