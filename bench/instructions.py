"""Instructions per request under callgrind: ``python -m bench.instructions``.

Rates and CPU time move with whatever else runs on a shared machine; the number of
instructions a server executes for a request does not (within about 1 %). This
starts the benchmark's upstream natively and, under ``valgrind --tool=callgrind``,
the minimal proxy, the floor gate (bench/floor_gate.py: the minimal proxy plus
only the steps every gate must take), the gate and any ``--baseline NAME=DIR`` gate (a copy of the
package from before a change, as in bench/run.py), each with the bench's
configuration and store. For each scenario and server it sends ``--warmup``
requests, zeroes the counters (``callgrind_control -z``), sends ``--requests`` more
on one keep-alive connection, dumps the counters (``callgrind_control -d``) and
prints the instructions per request, and the ratios to the gate. Every answer is
checked (the remembered ``/authorize`` must be the 302 to the IdP).

Needs valgrind (Debian: ``apt-get install valgrind``). Slow: a server under
callgrind starts in about a minute and runs some 50 times slower.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.run import (
    AUTHORIZE_PATH,
    BASELINE_PREFIX,
    IDP_PREFIX,
    PREFIX,
    SHORT_ANSWER_HEADER,
    Process,
    Processes,
    _own_dirs,
    clean_env,
    free_port,
    gate_config,
    prepare_baseline_store,
    prepare_store,
    wait_for_http,
)

#: name -> (path, expected status, extra headers); the browser cookie is added.
SCENARIOS = {
    "authorize": (AUTHORIZE_PATH, 302, ()),
    "authorize-short": (AUTHORIZE_PATH, 302, ((SHORT_ANSWER_HEADER, "short"),)),
    "small": ("/small", 200, ()),
}
_TOTAL = re.compile(r"^(?:summary|totals):\s*(\d+)", re.MULTILINE)


def send(port: int, path: str, headers: dict[str, str], status: int, count: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for _ in range(count):
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            location = response.getheader("Location") or ""
            if response.status != status or (status == 302 and not location.startswith(IDP_PREFIX)):
                raise RuntimeError(f"port {port} {path[:40]}: {response.status} {location[:60]}")
    finally:
        conn.close()


def counted(process: Process, out: Path) -> int:
    """Dump ``process``'s counters and return the instructions since the last zeroing."""
    before = set(out.parent.glob(out.name + "*"))
    subprocess.run(["callgrind_control", "-d", str(process.pid)], check=True, capture_output=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = set(out.parent.glob(out.name + "*")) - before
        for path in new:
            match = _TOTAL.search(path.read_text(errors="replace"))
            if match:
                return int(match.group(1))
        time.sleep(0.5)
    raise RuntimeError(f"no callgrind dump from {process.name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instructions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--only", default=",".join(SCENARIOS), help=",".join(SCENARIOS))
    parser.add_argument("--baseline", action="append", metavar="NAME=DIR", default=[])
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("bench: valgrind is not installed (Debian: apt-get install valgrind)")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="consentgate-instructions-"))
    processes = Processes(workdir)
    py = sys.executable
    try:
        upstream_port = free_port()
        upstream = processes.start(
            "upstream", [py, "-m", "bench.upstream", "--port", str(upstream_port)], None
        )
        wait_for_http(upstream, upstream_port, "/small")
        cookie, subject = asyncio.run(prepare_store(workdir))
        baselines = {
            name: Path(directory).resolve()
            for name, _, directory in (b.partition("=") for b in args.baseline)
        }
        dirs = {
            name: prepare_baseline_store(workdir, name, source, subject)
            for name, source in baselines.items()
        }
        servers: dict[str, tuple[int, Process, Path]] = {}

        upstream_url = f"http://127.0.0.1:{upstream_port}"
        port = free_port()
        out = workdir / "callgrind.minimal"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", py, "-m"]
        command += ["bench.minimal_proxy", "--port", str(port), "--upstream", upstream_url]
        servers["minimal"] = (port, processes.start("minimal", command, None), out)
        port = free_port()
        out = workdir / "callgrind.floor"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", py, "-m"]
        command += ["bench.floor_gate", "--port", str(port), "--upstream", upstream_url]
        command += ["--workdir", str(workdir), "--subject", subject]
        servers["floor"] = (port, processes.start("floor", command, None), out)
        gates = [("gate", None), *((BASELINE_PREFIX + n, s) for n, s in baselines.items())]
        for name, source in gates:
            env = clean_env()
            if source is not None:
                env["PYTHONPATH"] = f"{source}{os.pathsep}{env['PYTHONPATH']}"
            port = free_port()
            label = name.removeprefix(BASELINE_PREFIX)
            own = _own_dirs(dirs.get(label, "") if source is not None else "")
            config = gate_config(
                workdir,
                name.replace(":", "-"),
                port,
                upstream_port,
                store_dir=own.get("store_dir", "gate-store"),
                keys_dir=own.get("keys_dir", "gate-keys"),
            )
            out = workdir / f"callgrind.{name.replace(':', '-')}"
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p"]
            command += [py, "-m", "consentgate", "serve", "--config", str(config)]
            servers[name] = (port, processes.start(name, command, None, env=env), out)
        for name, (port, process, _) in servers.items():
            path = "/small" if name in ("minimal", "floor") else f"{PREFIX}/healthz"
            wait_for_http(process, port, path, timeout=300)
        headers = {
            "Cookie": cookie,
            "Accept": "text/html",
            "Sec-Fetch-Site": "none",
            "Sec-Fetch-Mode": "navigate",
        }
        table: dict[tuple[str, str], float] = {}
        for scenario in args.only.split(","):
            path, status, extra = SCENARIOS[scenario]
            for name, (port, process, out) in servers.items():
                send(port, path, headers | dict(extra), status, args.warmup)
                subprocess.run(
                    ["callgrind_control", "-z", str(process.pid)], check=True, capture_output=True
                )
                send(port, path, headers | dict(extra), status, args.requests)
                table[(scenario, name)] = counted(process, out) / args.requests
                print(f"  {scenario:<16} {name:<14} {table[(scenario, name)]:>12,.0f}", flush=True)
        print()
        names = list(servers)
        print(f"instructions per request ({args.requests} after {args.warmup} of warm-up)")
        print(f"  {'scenario':<16} " + " ".join(f"{n:>14}" for n in names) + "  ratios to gate")
        for scenario in args.only.split(","):
            gate = table[(scenario, "gate")]
            cells = " ".join(f"{table[(scenario, n)]:>14,.0f}" for n in names)
            ratios = ", ".join(
                f"{n} {table[(scenario, n)] / gate:.2f}" for n in names if n != "gate"
            )
            print(f"  {scenario:<16} {cells}  {ratios}")
        return 0
    finally:
        processes.stop_all()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
