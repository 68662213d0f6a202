"""The gate in front of FastMCP against FastMCP's own consent: ``python -m bench.fastmcp_bench``.

Two deployments of the same FastMCP OAuthProxy (bench/fastmcp_server.py; the ``e2e``
extra), on 127.0.0.1, in the same run:

* **gate + FastMCP**: the gate (``python -m consentgate serve``, a real configuration
  as bench/run.py writes it) in front of FastMCP with ``require_authorization_consent
  = "external"``; the browser's approval is in the gate's store;
* **FastMCP remember**: FastMCP alone with ``require_authorization_consent =
  "remember"``; the browser approved the client once, through FastMCP's own form,
  and carries its signed ``MCP_APPROVED_CLIENTS`` cookie.

A **remembered sign-in** is what a browser does from the client's authorization
request until it is sent to the IdP: one ``GET /authorize`` answered with the
redirect to the IdP through the gate; ``GET /authorize`` then ``GET /consent``
(answered silently from the cookie) with FastMCP's consent. Each load connection is
one browser doing sign-ins back to back (``Sec-Fetch-Site: none``, a navigation, as
both deployments require for a silent answer); every answer is checked (a redirect
to the IdP carrying a ``state``), a wrong one is an error. The IdP is not called:
the sign-in measured ends where it begins.

Placement on a 2-core machine: the load generator on the first CPU, every server
(gate, both FastMCPs) on the second, so each deployment runs on one core, the gate
and its FastMCP sharing it. Rounds alternate the two deployments. Printed per side:
completed sign-ins per second, CPU time per completion (user + system from
``/proc/PID/stat`` of each server process, summed; for the gate's side split into
gate and FastMCP), p50/p99 latency, the ratios gate side / FastMCP side, and the
gate's CPU against what FastMCP's consent hop adds to its own ``/authorize``.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import importlib.util
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from bench.drivers import Connection, percentile
from bench.run import (
    PREFIX,
    Process,
    Processes,
    bench_browser,
    choose_placement,
    free_port,
    gate_config,
    wait_for_http,
)
from consentgate.core.oauth.authorization_requests import consent_redirect_key
from consentgate.signing.key_directory import load_keyring
from consentgate.store import ConsentStore

IDP = "https://idp.example"
REDIRECT_URI = "http://127.0.0.1:9/callback"  # the client's; never reached
SCOPE = "openid"
#: FastMCP's consent form fields (its ui.py): hidden inputs by name.
_HIDDEN = re.compile(r'<input[^>]*name="(txn_id|csrf_token)"[^>]*value="([^"]*)"')


def authorize_target(client_id: str, public_url: str) -> str:
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": SCOPE,
            "state": "client-state-123",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "resource": f"{public_url}/mcp",
        },
        quote_via=urllib.parse.quote,
    )
    return f"/authorize?{query}"


NAVIGATION = [
    ("Accept", "text/html"),
    ("Sec-Fetch-Site", "none"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-Dest", "document"),
]


def _to_idp(location: str) -> bool:
    return location.startswith(IDP + "/oauth2/authorize?") and "state=" in location


@dataclass
class Side:
    """One deployment: where a browser starts, how it signs in, which processes serve."""

    name: str
    port: int
    target: str
    cookie: str
    processes: list[Process]
    two_hops: bool  # FastMCP's own consent: /authorize, then /consent

    def cpu(self) -> list[float]:
        return [p.cpu_seconds() for p in self.processes]


@dataclass
class Tally:
    latencies_us: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""


async def _sign_ins(side: Side, connections: int, seconds: float) -> tuple[Tally, float]:
    tally = Tally()
    stop_at = time.perf_counter() + seconds

    async def browser() -> None:
        conn = Connection("127.0.0.1", side.port)
        headers = [*NAVIGATION, ("Cookie", side.cookie)]
        try:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                answer = await conn.request("GET", side.target, headers)
                location = answer.header("location") or ""
                if side.two_hops and answer.status == 302:
                    parts = urllib.parse.urlsplit(location)
                    answer = await conn.request("GET", f"{parts.path}?{parts.query}", headers)
                    location = answer.header("location") or ""
                if answer.status not in (302, 303) or not _to_idp(location):
                    tally.errors += 1
                    tally.first_error = tally.first_error or f"{answer.status} {location[:80]}"
                    continue
                tally.latencies_us.append((time.perf_counter() - started) * 1e6)
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(browser() for _ in range(connections)))
    return tally, time.perf_counter() - started


@dataclass
class Round:
    completions: int
    seconds: float
    cpu: list[float]  # per process of the side
    p50_us: float
    p99_us: float
    errors: int
    first_error: str

    @property
    def rate(self) -> float:
        return self.completions / self.seconds if self.seconds else 0.0


def measure(side: Side, connections: int, seconds: float) -> Round:
    before = side.cpu()
    tally, elapsed = asyncio.run(_sign_ins(side, connections, seconds))
    after = side.cpu()
    lat = tally.latencies_us
    return Round(
        len(lat),
        elapsed,
        [b - a for a, b in zip(before, after, strict=True)],
        percentile(lat, 50),
        percentile(lat, 99),
        tally.errors,
        tally.first_error,
    )


# --- setting up ---------------------------------------------------------------------------


async def _register(port: int) -> str:
    """Register the client with FastMCP (dynamic client registration); its client_id."""
    conn = Connection("127.0.0.1", port)
    body = json.dumps(
        {
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "client_name": "Benchmark client",
            "scope": SCOPE,
        }
    ).encode()
    try:
        answer = await conn.request(
            "POST", "/register", [("Content-Type", "application/json")], body
        )
    finally:
        await conn.close()
    if answer.status != 201:
        raise RuntimeError(f"FastMCP's /register answered {answer.status}: {answer.body[:300]!r}")
    client_id: str = json.loads(answer.body)["client_id"]
    return client_id


async def _approve_in_gate_store(
    workdir: Path, subject: str, client_id: str, resource: str
) -> None:
    keyring = load_keyring(workdir / "gate-keys", create=False)
    store = await ConsentStore.open(workdir / "gate-store" / "consentgate.sqlite3", keyring)
    try:
        await store.upsert_client(
            {
                "client_id": client_id,
                "client_name": "Benchmark client",
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }
        )
        await store.record(
            subject, client_id, consent_redirect_key(REDIRECT_URI), [SCOPE], resource, ttl=86400
        )
    finally:
        await store.close()


async def _fastmcp_approval(port: int, target: str) -> str:
    """Approve the client once through FastMCP's own form; the ``Cookie`` header of a
    browser that approved it (its signed approved-clients cookie)."""
    conn = Connection("127.0.0.1", port)
    try:
        first = await conn.request("GET", target, NAVIGATION)
        consent = urllib.parse.urlsplit(first.header("location") or "")
        if first.status != 302 or consent.path != "/consent":
            raise RuntimeError(f"FastMCP's /authorize answered {first.status} {consent}")
        page = await conn.request("GET", f"{consent.path}?{consent.query}", NAVIGATION)
        fields = dict(_HIDDEN.findall(page.body.decode()))
        if page.status != 200 or set(fields) != {"txn_id", "csrf_token"}:
            raise RuntimeError(f"FastMCP's consent page answered {page.status}: no form")
        cookies = "; ".join(c.split(";", 1)[0] for c in page.all("set-cookie"))
        form = urllib.parse.urlencode(
            {k: html.unescape(v) for k, v in fields.items()} | {"action": "approve"}
        ).encode()
        answer = await conn.request(
            "POST",
            "/consent",
            [
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", f"http://127.0.0.1:{port}"),
                ("Sec-Fetch-Site", "same-origin"),
                ("Cookie", cookies),
            ],
            form,
        )
        if answer.status not in (302, 303) or not _to_idp(answer.header("location") or ""):
            raise RuntimeError(f"FastMCP's approval answered {answer.status}")
        approved = [
            c.split(";", 1)[0] for c in answer.all("set-cookie") if "MCP_APPROVED_CLIENTS=" in c
        ]
        if not approved:
            raise RuntimeError("FastMCP's approval set no approved-clients cookie")
        return approved[0]
    finally:
        await conn.close()


def start(workdir: Path, processes: Processes) -> tuple[Side, Side]:
    placement = choose_placement(True)
    py = sys.executable
    gate_port, external_port, remember_port = free_port(), free_port(), free_port()
    gate_url = f"http://127.0.0.1:{gate_port}"
    remember_url = f"http://127.0.0.1:{remember_port}"

    def fastmcp(port: int, public_url: str, consent: str) -> list[str]:
        return [
            py,
            "-m",
            "bench.fastmcp_server",
            "--idp",
            IDP,
            "--port",
            str(port),
            "--public-url",
            public_url,
            "--consent",
            consent,
        ]

    external = processes.start(
        "fastmcp-external", fastmcp(external_port, gate_url, "external"), placement.proxy
    )
    remember = processes.start(
        "fastmcp-remember", fastmcp(remember_port, remember_url, "remember"), placement.proxy
    )
    for process, port in ((external, external_port), (remember, remember_port)):
        wait_for_http(process, port, "/.well-known/oauth-authorization-server", timeout=60)
    external_client = asyncio.run(_register(external_port))
    remember_client = asyncio.run(_register(remember_port))

    _, gate_cookie, subject = bench_browser(workdir)
    asyncio.run(_approve_in_gate_store(workdir, subject, external_client, f"{gate_url}/mcp"))
    # FastMCP's issuer is its base_url, the gate's public URL.
    config = gate_config(workdir, "gate", gate_port, external_port, issuer=f"{gate_url}/")
    gate = processes.start(
        "gate", [py, "-m", "consentgate", "serve", "--config", str(config)], placement.proxy
    )
    wait_for_http(gate, gate_port, f"{PREFIX}/healthz")

    remember_target = authorize_target(remember_client, remember_url)
    remember_cookie = asyncio.run(_fastmcp_approval(remember_port, remember_target))
    if placement.load is not None:
        os.sched_setaffinity(0, placement.load)
    print(f"  {placement.describe()}", flush=True)
    return (
        Side(
            "gate + FastMCP",
            gate_port,
            authorize_target(external_client, gate_url),
            gate_cookie,
            [gate, external],
            two_hops=False,
        ),
        Side(
            "FastMCP remember",
            remember_port,
            remember_target,
            remember_cookie,
            [remember],
            two_hops=True,
        ),
    )


# --- the command -----------------------------------------------------------------------------


def summary(side: Side, rounds: list[Round]) -> dict[str, float]:
    done = sum(r.completions for r in rounds)
    cpu = [sum(r.cpu[i] for r in rounds) for i in range(len(side.processes))]
    return {
        "rate": statistics.median(r.rate for r in rounds),
        "cpu_us": sum(cpu) / done * 1e6 if done else 0.0,
        **{
            f"cpu_us:{p.name}": c / done * 1e6 if done else 0.0
            for p, c in zip(side.processes, cpu, strict=True)
        },
        "p50_ms": statistics.median(r.p50_us for r in rounds) / 1000,
        "p99_ms": statistics.median(r.p99_us for r in rounds) / 1000,
        "errors": sum(r.errors for r in rounds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fastmcp_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measured round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per side, alternating")
    parser.add_argument("--connections", type=int, default=16, help="browsers at once")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("fastmcp") is None:
        print("bench: FastMCP is not installed: pip install -e '.[e2e]'", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="consentgate-fastmcp-bench-"))
    processes = Processes(workdir)
    try:
        gate_side, fastmcp_side = start(workdir, processes)
        sides = (gate_side, fastmcp_side)
        for side in sides:  # warm-up, and a check that every answer is right
            warm = measure(side, args.connections, 1.0)
            if warm.errors or not warm.completions:
                raise RuntimeError(f"{side.name}: {warm.errors} errors ({warm.first_error})")
        rounds: dict[str, list[Round]] = {s.name: [] for s in sides}
        for number in range(args.rounds):
            for side in sides if number % 2 == 0 else reversed(sides):
                result = measure(side, args.connections, args.duration)
                rounds[side.name].append(result)
                cpu = sum(result.cpu) / result.completions * 1e6 if result.completions else 0
                print(
                    f"  round {number + 1} {side.name:<17} {result.rate:7,.0f} sign-ins/s"
                    f"  CPU {cpu:6.0f} µs each  p50 {result.p50_us / 1000:6.2f} ms"
                    f"  errors {result.errors}",
                    flush=True,
                )
        print_report(args, sides, rounds)
        return 0
    finally:
        processes.stop_all()
        if args.keep:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def print_report(
    args: argparse.Namespace, sides: tuple[Side, Side], rounds: dict[str, list[Round]]
) -> None:
    gate_side, fastmcp_side = sides
    g, f = (
        summary(gate_side, rounds[gate_side.name]),
        summary(fastmcp_side, rounds[fastmcp_side.name]),
    )
    per_round = [
        (sum(a.cpu) / a.completions) / (sum(b.cpu) / b.completions)
        for a, b in zip(rounds[gate_side.name], rounds[fastmcp_side.name], strict=True)
        if a.completions and b.completions
    ]
    print()
    print(
        f"remembered sign-ins, {args.connections} browsers, {args.rounds} rounds of "
        f"{args.duration:g} s per side, alternating; medians of rates, CPU summed over rounds"
    )
    heading = f"{'deployment':<18} {'sign-ins/s':>10} {'CPU µs/sign-in':>15}"
    print(f"  {heading} {'p50 ms':>7} {'p99 ms':>7}")
    for side, s in ((gate_side, g), (fastmcp_side, f)):
        print(
            f"  {side.name:<18} {s['rate']:>10,.0f} {s['cpu_us']:>15,.0f} "
            f"{s['p50_ms']:>7.2f} {s['p99_ms']:>7.2f}"
            + (f"  errors {s['errors']:.0f}" if s["errors"] else "")
        )
    print(
        f"  of which: gate {g['cpu_us:gate']:,.0f} µs, FastMCP (external) "
        f"{g['cpu_us:fastmcp-external']:,.0f} µs"
    )
    ratio = g["cpu_us"] / f["cpu_us"] if f["cpu_us"] else 0.0
    print(f"  sign-ins/s, gate side / FastMCP remember: {g['rate'] / f['rate']:.2f}x")
    print(
        f"  CPU per sign-in, gate side / FastMCP remember: {ratio:.2f}x "
        f"(per round {', '.join(f'{r:.2f}' for r in per_round)})"
    )
    # What FastMCP's own consent costs is its second hop: "remember" minus its
    # /authorize alone ("external"). A gate in front pays for a whole HTTP hop and
    # a relay, so this is reported, not a target (docs/performance.md).
    hop = f["cpu_us"] - g["cpu_us:fastmcp-external"]
    print(
        f"  the gate's CPU per sign-in {g['cpu_us:gate']:,.0f} µs against FastMCP's consent "
        f"hop (remember minus external) {hop:,.0f} µs"
    )


if __name__ == "__main__":
    raise SystemExit(main())
