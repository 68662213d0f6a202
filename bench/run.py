"""The gate against direct access, nginx and a minimal proxy: ``python -m bench.run``.

Starts, on 127.0.0.1, each as its own process:

* the upstream (bench/upstream.py, aiohttp): small JSON, 1 MiB, POST, SSE, /authorize;
* nginx as the reference reverse proxy, when installed (bench/nginx.conf.template:
  one worker, upstream keep-alive, buffering off);
* the minimal aiohttp proxy (bench/minimal_proxy.py), the floor of relaying;
* the floor gate (bench/floor_gate.py): the minimal proxy plus only the steps every
  gate must take for a remembered ``/authorize`` (the ``authorize`` scenarios only);
* the gate, ``python -m consentgate serve --config <generated toml>``, with a real
  configuration (defaults, access log on) and a store prepared with one
  registered client and one remembered approval;

then drives the same load through each with wrk (bench/wrk/report.lua) at 10 and
64 connections, or with bench/drivers.py where wrk cannot measure (time to first
SSE event, approve POSTs), and prints requests/s and p50/p99 latency per
scenario, with the ratios gate/direct, gate/nginx and gate/minimal.

Placement on a 2-core machine: the load generator and the upstream share the
first core, every proxy (nginx, minimal, gate) runs on the second, so the proxy
under test has a core to itself and the upstream and load generator are the same
for every column. "direct" is wrk against the upstream on its shared core.

``--soak [N]`` instead relays N small GETs (default 1,000,000) through the gate
and prints its resident memory along the way. ``--update-doc`` writes the latest
table into docs/performance.md. Every process is stopped at the end, also on
Ctrl-C or an error. Only ratios measured in the same run mean anything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp

from consentgate.core.oauth.authorization_requests import consent_redirect_key
from consentgate.core.signed.cookies import CookieCrypto, CookieNames
from consentgate.core.signed.keyring import KeyRing, derive_key
from consentgate.signing.key_directory import load_cookie_secret, load_keyring
from consentgate.store import ConsentStore

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REPORT_LUA = HERE / "wrk" / "report.lua"
NGINX_TEMPLATE = HERE / "nginx.conf.template"
DOC = ROOT / "docs" / "performance.md"

PREFIX = "/_consentgate"
IDP_PREFIX = "https://idp.example/"
CLIENT_ID = "client-bench-0001"
REDIRECT_URI = "https://app.example/oauth/callback"
SCOPES = ("openid", "mcp:tools")
AUTHORIZE_QUERY = urllib.parse.urlencode(
    {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": " ".join(SCOPES),
        "state": "client-state-123",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    },
    quote_via=urllib.parse.quote,
)
AUTHORIZE_PATH = f"/authorize?{AUTHORIZE_QUERY}"
POST_BYTES = 1024
#: The request header that has bench/upstream.py answer /authorize with its short
#: Location (the ``authorize-short`` scenario); without it, the realistic one.
SHORT_ANSWER_HEADER = "X-Bench-Authorize"
PACED_DELAY_MS = 10
TARGET_ORDER = ("direct", "nginx", "minimal", "floor", "gate", "gate+uvloop", "gate-nolog")
#: Gates run from other copies of the package (``--baseline NAME=DIR``) are named so.
BASELINE_PREFIX = "base:"


# --- processes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Which CPUs each role may use (None: no pinning)."""

    load: frozenset[int] | None
    upstream: frozenset[int] | None
    proxy: frozenset[int] | None

    def describe(self) -> str:
        if self.load is None:
            return "no CPU pinning"

        def cpus(s: frozenset[int] | None) -> str:
            return ",".join(str(c) for c in sorted(s or ()))

        return (
            f"load generator on CPU {cpus(self.load)}, upstream on CPU {cpus(self.upstream)}, "
            f"proxy under test on CPU {cpus(self.proxy)}"
        )


def choose_placement(pin: bool) -> Placement:
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return Placement(None, None, None)
    if len(cpus) == 2:
        return Placement(frozenset({cpus[0]}), frozenset({cpus[0]}), frozenset({cpus[1]}))
    return Placement(frozenset({cpus[0]}), frozenset({cpus[1]}), frozenset({cpus[2]}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env() -> dict[str, str]:
    """The environment for child processes: no CONSENTGATE_* overrides leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTGATE_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process (all its threads) and of its running
        children (a gate with ``[server] workers`` serves from its workers) so far."""
        return _tree_cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0


class Processes:
    """Every child started; ``stop_all`` ends them (SIGTERM, then SIGKILL)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[Process] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        cpus: frozenset[int] | None,
        *,
        env: dict[str, str] | None = None,
    ) -> Process:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env or clean_env(),
                cwd=self.workdir,
                start_new_session=True,  # Ctrl-C reaches only run.py, which stops them in order
            )
        if cpus is not None:
            os.sched_setaffinity(popen.pid, cpus)
        process = Process(name, popen, log)
        self.running.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.running):
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in reversed(self.running):
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                process.popen.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait(timeout=5)
        self.running.clear()


def wait_for_http(process: Process, port: int, path: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited at start:\n{process.tail()}")
        try:
            status, _, _ = http_request(port, "GET", path)
            if status < 500:
                return
            last = f"status {status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"{process.name} did not answer on port {port}: {last}\n{process.tail()}")


def http_request(
    port: int,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


# --- the system under test -----------------------------------------------------------


@dataclass
class Stack:
    """Everything started for one benchmark run."""

    processes: Processes
    placement: Placement
    upstream_port: int
    upstream: Process
    targets: dict[str, tuple[int, Process]] = field(default_factory=dict)
    browser_cookie: str = ""

    def port(self, target: str) -> int:
        return self.targets[target][0]

    def process(self, target: str) -> Process:
        return self.targets[target][1]


def _tree_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_tree_cpu_seconds(child) for child in children)


def gate_config(
    workdir: Path,
    name: str,
    port: int,
    upstream_port: int,
    *,
    access_log: bool = True,
    workers: int = 1,
    store_url: str = "",
    store_dir: str = "gate-store",
    keys_dir: str = "gate-keys",
    issuer: str = "https://proxy.example",
) -> Path:
    path = workdir / f"{name}.toml"
    path.write_text(
        f"""# generated by bench/run.py: a real configuration, defaults everywhere else
[server]
public_url = "http://127.0.0.1:{port}"
listen = "127.0.0.1:{port}"
workers = {workers}

[upstream]
url = "http://127.0.0.1:{upstream_port}"
issuer = "{issuer}"

[store]
path = "{workdir / store_dir / "consentgate.sqlite3"}"
url = "{store_url}"

[keys]
dir = "{workdir / keys_dir}"

[consent]
service_name = "the benchmark"

[log]
access_log = {"true" if access_log else "false"}
"""
    )
    return path


async def prepare_store(workdir: Path, postgres_url: str = "") -> tuple[str, str]:
    """Keys, cookie secret, one registered client and one remembered approval (in the
    SQLite file, and in the PostgreSQL store when ``postgres_url`` is given).

    Returns the browser cookie (``cg_bid=<id>.<tag>``) whose subject approved the
    client, as the gate will read it (same key directory, same derivation), and that
    subject.
    """
    keyring, cookie, subject = bench_browser(workdir)
    stores = [await ConsentStore.open(workdir / "gate-store" / "consentgate.sqlite3", keyring)]
    if postgres_url:
        from consentgate.store.postgres import PostgresBackend  # noqa: PLC0415 - optional

        stores.append(ConsentStore(await PostgresBackend.open(postgres_url), keyring))
    for store in stores:
        await _approve_benchmark_client(store, subject)
    return cookie, subject


def bench_keys(workdir: Path, *, create: bool = True) -> tuple[KeyRing, CookieCrypto]:
    """The gate's keys and cookie secret in ``workdir/gate-keys`` (created unless
    ``create`` is False), and the cookie MACs as the gate derives them from it."""
    keys_dir = workdir / "gate-keys"
    keyring = load_keyring(keys_dir, create=create)
    secret = load_cookie_secret(keys_dir, "", create=create)
    crypto = CookieCrypto(lambda purpose: derive_key(secret, purpose), CookieNames(secure=False))
    return keyring, crypto


def bench_browser(workdir: Path) -> tuple[KeyRing, str, str]:
    """The gate's keys (:func:`bench_keys`), its store directory, and one browser: its
    ``Cookie`` header and its subject, as the gate will read them."""
    (workdir / "gate-store").mkdir(mode=0o700, exist_ok=True)
    keyring, crypto = bench_keys(workdir)
    browser_id, cookie_value = crypto.new_browser_cookie()
    return keyring, f"{crypto.names.browser}={cookie_value}", crypto.subject_of(browser_id)


#: What a baseline's own code runs to prepare its store: a copy from before a change
#: may not open a store that today's code made (a newer schema is refused).
_BASELINE_STORE = """
import asyncio, sys
from pathlib import Path
from consentgate import ConsentStore, load_keyring
try:
    from consentgate.core.oauth.authorization_requests import consent_redirect_key
except ImportError:  # the layout before the packages by concept
    from consentgate.core.oauth import consent_redirect_key
workdir, subject, client_id, redirect_uri, scopes = sys.argv[1:6]
async def main():
    store = await ConsentStore.open(
        Path(workdir) / "gate-store" / "consentgate.sqlite3",
        load_keyring(Path(workdir) / "gate-keys", create=False),
    )
    try:
        await store.upsert_client({
            "client_id": client_id, "client_name": "Benchmark client",
            "redirect_uris": [redirect_uri], "grant_types": ["authorization_code"],
            "response_types": ["code"], "token_endpoint_auth_method": "none",
        })
        await store.record(subject, client_id, consent_redirect_key(redirect_uri),
                           scopes.split(), "", ttl=86400)
    finally:
        await store.close()
asyncio.run(main())
"""


def _own_dirs(base: str) -> dict[str, str]:
    """A baseline gate's own store and keys directories (see prepare_baseline_store)."""
    return {"store_dir": f"{base}/gate-store", "keys_dir": f"{base}/gate-keys"} if base else {}


def prepare_baseline_store(workdir: Path, label: str, source: Path, subject: str) -> str:
    """The baseline's own directory (``base-LABEL``): the same keys and cookie secret as
    today's gate (so the same browser cookie is remembered), and a store made by the
    baseline's code. Returns the directory's name under ``workdir``."""
    name = f"base-{label}"
    base = workdir / name
    (base / "gate-store").mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = base / "gate-keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    for item in (workdir / "gate-keys").iterdir():
        # The keys and the cookie secret; not the records of which store they serve.
        if item.is_file() and not item.name.startswith(("store", "audit-mark")):
            shutil.copy2(item, keys / item.name)
    env = clean_env()
    env["PYTHONPATH"] = f"{source}{os.pathsep}{env['PYTHONPATH']}"
    subprocess.run(
        [
            sys.executable,
            "-c",
            _BASELINE_STORE,
            str(base),
            subject,
            CLIENT_ID,
            REDIRECT_URI,
            " ".join(SCOPES),
        ],
        env=env,
        cwd=base,  # not this checkout: a `-c` script puts the current directory first
        check=True,
    )
    return name


async def _approve_benchmark_client(store: ConsentStore, subject: str) -> None:
    try:
        await store.upsert_client(
            {
                "client_id": CLIENT_ID,
                "client_name": "Benchmark client",
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }
        )
        await store.record(
            subject,
            CLIENT_ID,
            consent_redirect_key(REDIRECT_URI),
            SCOPES,
            "",
            ttl=86400,
        )
    finally:
        await store.close()


def postgres_url(option: str | None) -> str:
    """The PostgreSQL store for ``gate:pg``: the URL given, or a fresh database in a
    throwaway cluster (tests/support/pgcluster.py; Debian's postgresql package)."""
    if not option:
        return ""
    if option != "throwaway":
        return option
    from tests.support import pgcluster  # noqa: PLC0415 - a developer's throwaway server

    cluster = pgcluster.cluster()
    database = cluster.create_database(owner=pgcluster.GATE_ROLE)
    return cluster.dsn(database, user=pgcluster.GATE_ROLE)


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def start_stack(
    workdir: Path,
    placement: Placement,
    *,
    with_nginx: bool,
    with_uvloop: bool,
    without_access_log: bool = False,
    baselines: dict[str, Path] | None = None,
    workers: tuple[int, ...] = (),
    postgres_url: str = "",
) -> Stack:
    processes = Processes(workdir)
    py = sys.executable
    upstream_port = free_port()
    stack = Stack(processes, placement, upstream_port, None)  # type: ignore[arg-type]
    try:
        upstream = processes.start(
            "upstream",
            [py, "-m", "bench.upstream", "--port", str(upstream_port)],
            placement.upstream,
        )
        stack.upstream = upstream
        wait_for_http(upstream, upstream_port, "/small")
        stack.targets["direct"] = (upstream_port, upstream)

        nginx = shutil.which("nginx") or (
            "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
        )
        if with_nginx and nginx:
            port = free_port()
            conf = workdir / "nginx.conf"
            conf.write_text(
                NGINX_TEMPLATE.read_text().format(
                    tmp=workdir, port=port, upstream_port=upstream_port
                )
            )
            proc = processes.start(
                "nginx",
                [
                    nginx,
                    "-p",
                    str(workdir),
                    "-e",
                    str(workdir / "nginx-error.log"),
                    "-c",
                    str(conf),
                ],
                placement.proxy,
            )
            wait_for_http(proc, port, "/small")
            stack.targets["nginx"] = (port, proc)

        port = free_port()
        proc = processes.start(
            "minimal",
            [
                py,
                "-m",
                "bench.minimal_proxy",
                "--port",
                str(port),
                "--upstream",
                f"http://127.0.0.1:{upstream_port}",
            ],
            placement.proxy,
        )
        wait_for_http(proc, port, "/small")
        stack.targets["minimal"] = (port, proc)

        stack.browser_cookie, subject = asyncio.run(prepare_store(workdir, postgres_url))
        port = free_port()
        command = [py, "-m", "bench.floor_gate", "--port", str(port), "--subject", subject]
        command += ["--upstream", f"http://127.0.0.1:{upstream_port}", "--workdir", str(workdir)]
        proc = processes.start("floor", command, placement.proxy)
        wait_for_http(proc, port, "/small")
        stack.targets["floor"] = (port, proc)
        baseline_dirs = {
            label: prepare_baseline_store(workdir, label, source, subject)
            for label, source in (baselines or {}).items()
        }
        gates = [("gate", [py, "-m", "consentgate"])]
        if with_uvloop:
            gates.append(("gate+uvloop", [py, "-m", "bench.uvloop_gate"]))
        if without_access_log:
            gates.append(("gate-nolog", [py, "-m", "consentgate"]))
        for count in workers:
            gates.append((f"gate:w{count}", [py, "-m", "consentgate"]))
        if postgres_url:
            gates.append(("gate:pg", [py, "-m", "consentgate"]))
        for label in baselines or {}:
            gates.append((BASELINE_PREFIX + label, [py, "-m", "consentgate"]))
        for name, command in gates:
            port = free_port()
            config = gate_config(
                workdir,
                name.replace(":", "-"),
                port,
                upstream_port,
                access_log=name != "gate-nolog",
                workers=int(name.removeprefix("gate:w")) if name.startswith("gate:w") else 1,
                store_url=postgres_url if name == "gate:pg" else "",
                **_own_dirs(baseline_dirs.get(name.removeprefix(BASELINE_PREFIX), "")),
            )
            env = clean_env()
            if name.startswith(BASELINE_PREFIX):
                # Another copy of the package (before a change), first on the path.
                source = (baselines or {})[name.removeprefix(BASELINE_PREFIX)]
                env["PYTHONPATH"] = f"{source}{os.pathsep}{env['PYTHONPATH']}"
            proc = processes.start(
                name, [*command, "serve", "--config", str(config)], placement.proxy, env=env
            )
            wait_for_http(proc, port, f"{PREFIX}/healthz")
            stack.targets[name] = (port, proc)
    except BaseException:
        processes.stop_all()
        raise
    return stack


# --- scenarios and measurements --------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    driver: str  # "wrk", "sse" or "approve"
    path: str
    method: str = "GET"
    body_bytes: int = 0
    expect_status: int = 0
    browser: bool = False  # send the prepared browser cookie
    fetch_site: str | None = None
    gate_only: bool = False
    delay_ms: int = 0
    unit: str = "req/s"
    extra_headers: tuple[tuple[str, str], ...] = ()

    def headers(self, stack: Stack) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = list(self.extra_headers)
        if self.browser:
            headers += [("Cookie", stack.browser_cookie), ("Accept", "text/html")]
        if self.fetch_site is not None:
            headers += [("Sec-Fetch-Site", self.fetch_site), ("Sec-Fetch-Mode", "navigate")]
        return headers


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("small", "small GET relay (~90 B JSON)", "wrk", "/small"),
    Scenario("big", "1 MiB response relay", "wrk", "/big"),
    Scenario("post", f"POST relay ({POST_BYTES} B JSON body)", "wrk", "/echo", "POST", POST_BYTES),
    Scenario("sse", "SSE: time to first event (new stream each)", "sse", "/sse", unit="streams/s"),
    Scenario(
        "authorize",
        "/authorize, remembered client (decision + relay)",
        "wrk",
        AUTHORIZE_PATH,
        expect_status=302,
        browser=True,
        fetch_site="none",
    ),
    Scenario(
        "authorize-short",
        "/authorize, remembered, the upstream's short answer (~170 B Location)",
        "wrk",
        AUTHORIZE_PATH,
        expect_status=302,
        browser=True,
        fetch_site="none",
        extra_headers=((SHORT_ANSWER_HEADER, "short"),),
    ),
    Scenario(
        "render",
        "consent page render",
        "wrk",
        AUTHORIZE_PATH,
        expect_status=200,
        browser=True,
        gate_only=True,
    ),
    Scenario(
        "approve",
        "approve: render + POST pairs",
        "approve",
        AUTHORIZE_PATH,
        gate_only=True,
        unit="pairs/s",
    ),
)


def scenario_named(key: str) -> Scenario:
    return next(s for s in SCENARIOS if s.key == key)


PACED = Scenario(
    "paced",
    f"small GET paced ({PACED_DELAY_MS} ms pause per connection): latency below saturation",
    "wrk",
    "/small",
    delay_ms=PACED_DELAY_MS,
)


@dataclass
class Result:
    scenario: str
    connections: int
    target: str
    rate: float  # requests (streams, pairs) per second
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_per_request: float
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)
    rounds: list[int] = field(default_factory=list)

    def cell(self) -> str:
        mark = "!" if self.errors else ""
        return f"{self.rate:,.0f}{mark} ({self.p50_ms:.2f}/{self.p99_ms:.2f})"


def _parse_bench_json(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith("BENCH_JSON "):
            parsed: dict[str, Any] = json.loads(line[len("BENCH_JSON ") :])
            return parsed
    raise RuntimeError(f"no BENCH_JSON line in the load generator's output:\n{output[-2000:]}")


def _pin(cpus: frozenset[int] | None) -> Callable[[], None] | None:
    if cpus is None:
        return None

    def preexec() -> None:
        os.sched_setaffinity(0, cpus)

    return preexec


def load_command(
    scenario: Scenario, stack: Stack, target: str, connections: int, seconds: float
) -> tuple[list[str], dict[str, str]]:
    port = stack.port(target)
    env = clean_env()
    if scenario.driver == "wrk":
        wrk = shutil.which("wrk") or "wrk"
        whole = max(1, round(seconds))  # wrk takes whole seconds
        argv = [wrk, "-t1", f"-c{connections}", f"-d{whole}s", "--timeout", "10s"]
        argv += ["-s", str(REPORT_LUA)]
        for name, value in scenario.headers(stack):
            argv += ["-H", f"{name}: {value}"]
        argv.append(f"http://127.0.0.1:{port}{scenario.path}")
        env.update(
            BENCH_METHOD=scenario.method,
            BENCH_BODY_BYTES=str(scenario.body_bytes),
            BENCH_DELAY_MS=str(scenario.delay_ms),
            BENCH_EXPECT_STATUS=str(scenario.expect_status),
        )
        return argv, env
    argv = [sys.executable, "-m", "bench.drivers", scenario.driver, "--port", str(port)]
    argv += ["--connections", str(connections), "--duration", str(seconds)]
    argv += ["--path", scenario.path, "--prefix", PREFIX, "--expect-location", IDP_PREFIX]
    return argv, env


def run_load(
    scenario: Scenario, stack: Stack, target: str, connections: int, seconds: float
) -> dict[str, Any]:
    argv, env = load_command(scenario, stack, target, connections, seconds)
    completed = subprocess.run(
        argv,
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        preexec_fn=_pin(stack.placement.load),
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{argv[0]} failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
        )
    return _parse_bench_json(completed.stdout)


ERROR_KEYS = (
    "connect_errors",
    "read_errors",
    "write_errors",
    "status_errors",
    "timeouts",
    "mismatched",
)


@dataclass
class Sample:
    """One measured run of one target."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_seconds: float
    errors: int
    note: str
    post_p50_ms: float | None = None
    post_p99_ms: float | None = None


def measure_once(
    scenario: Scenario, stack: Stack, target: str, connections: int, seconds: float
) -> Sample:
    server = stack.process(target)
    cpu_before = server.cpu_seconds()
    data = run_load(scenario, stack, target, connections, seconds)
    cpu = server.cpu_seconds() - cpu_before
    errors = sum(int(data.get(k, 0)) for k in ERROR_KEYS)
    note = str(data.get("first_error", ""))
    if errors and not note:
        note = ", ".join(f"{k}={data[k]}" for k in ERROR_KEYS if data.get(k))
    approve = scenario.driver == "approve"
    return Sample(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        cpu_seconds=cpu,
        errors=errors,
        note=note,
        post_p50_ms=data["post_p50_us"] / 1000 if approve else None,
        post_p99_ms=data["post_p99_us"] / 1000 if approve else None,
    )


def summarize(scenario: Scenario, connections: int, target: str, samples: list[Sample]) -> Result:
    """Medians over the rounds (the machine is shared: one slow round must not decide)."""
    requests = sum(s.requests for s in samples)
    extra: dict[str, float] = {}
    posts = [s for s in samples if s.post_p50_ms is not None]
    if posts:
        extra = {
            "post_p50_ms": statistics.median(s.post_p50_ms or 0.0 for s in posts),
            "post_p99_ms": statistics.median(s.post_p99_ms or 0.0 for s in posts),
        }
    return Result(
        scenario=scenario.key,
        connections=connections,
        target=target,
        rate=statistics.median(s.requests / s.seconds if s.seconds else 0.0 for s in samples),
        p50_ms=statistics.median(s.p50_ms for s in samples),
        p99_ms=statistics.median(s.p99_ms for s in samples),
        errors=sum(s.errors for s in samples),
        cpu_us_per_request=sum(s.cpu_seconds for s in samples) / requests * 1e6
        if requests
        else 0.0,
        note="; ".join(s.note for s in samples if s.note),
        extra=extra,
        rounds=[round(s.requests / s.seconds) if s.seconds else 0 for s in samples],
    )


def check(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(f"preflight: {message}")


def preflight(stack: Stack) -> None:
    """Every target answers every scenario correctly before anything is timed.

    In particular the remembered /authorize must be relayed (302 to the IdP), not
    answered with the consent page, and the consent scenario must render the form.
    """
    small = None
    for target in stack.targets:
        port = stack.port(target)
        status, _, body = http_request(port, "GET", "/small")
        check(status == 200, f"{target} GET /small answered {status}")
        small = small or body
        check(body == small, f"{target} GET /small: the body differs from direct's")
        status, _, body = http_request(port, "GET", "/big")
        check(status == 200, f"{target} GET /big answered {status}")
        check(len(body) == 1024 * 1024, f"{target} GET /big: {len(body)} bytes")
        status, _, body = http_request(
            port, "POST", "/echo", {"Content-Type": "application/json"}, b"x" * POST_BYTES
        )
        check(status == 200, f"{target} POST /echo answered {status}")
        check(json.loads(body) == {"received": POST_BYTES}, f"{target} POST /echo: {body!r}")
        for key, least, most in (("authorize", 330, 420), ("authorize-short", 120, 200)):
            headers = dict(scenario_named(key).headers(stack))
            status, answer, _ = http_request(port, "GET", AUTHORIZE_PATH, headers)
            check(status == 302, f"{target} remembered /authorize answered {status}, not 302")
            location = answer.get("Location", "")
            check(location.startswith(IDP_PREFIX), f"{target} /authorize went to {location!r}")
            check(
                least <= len(location) <= most,
                f"{target} {key}: a {len(location)}-byte Location, not {least}-{most}",
            )
        if is_gate(target):
            headers = dict(scenario_named("render").headers(stack))
            status, _, body = http_request(port, "GET", AUTHORIZE_PATH, headers)
            check(status == 200, f"{target} consent page answered {status}")
            check(b'name="decision" value="approve"' in body, f"{target}: no consent form")


def ordered(names: Iterable[str]) -> list[str]:
    """Target names in table order: the known ones first, then baselines as given."""
    unique = list(dict.fromkeys(names))
    return [t for t in TARGET_ORDER if t in unique] + [t for t in unique if t not in TARGET_ORDER]


def is_gate(target: str) -> bool:
    return target.startswith(("gate", BASELINE_PREFIX))


def targets_for(scenario: Scenario, stack: Stack, only: set[str] | None) -> list[str]:
    names = ordered(stack.targets)
    if scenario.gate_only:
        names = [t for t in names if is_gate(t)]
    if not scenario.key.startswith("authorize"):
        names = [t for t in names if t != "floor"]  # elsewhere it is the minimal proxy
    if only is not None:
        names = [t for t in names if t in only]
    return names


def run_benchmark(stack: Stack, args: argparse.Namespace) -> list[Result]:
    """Every scenario and connection count; targets interleaved within each round."""
    results: list[Result] = []
    chosen = [s for s in SCENARIOS if args.only is None or s.key in args.only]
    only_targets = set(args.targets.split(",")) if args.targets else None
    plan: list[tuple[Scenario, int]] = [
        (scenario, conns) for scenario in chosen for conns in args.connections
    ]
    if args.only is None or "paced" in args.only:
        plan.append((PACED, 10))
    for step, (scenario, conns) in enumerate(plan, 1):
        targets = targets_for(scenario, stack, only_targets)
        print(f"  [{step:>2}/{len(plan)}] {scenario.title}, {conns} connections", flush=True)
        samples: dict[str, list[Sample]] = {t: [] for t in targets}
        for round_number in range(args.rounds):
            for target in targets:
                if round_number == 0 and args.warmup > 0:
                    run_load(scenario, stack, target, conns, args.warmup)
                samples[target].append(measure_once(scenario, stack, target, conns, args.duration))
        for target in targets:
            result = summarize(scenario, conns, target, samples[target])
            results.append(result)
            print(
                f"        {target:<12} {result.rate:>9,.0f} {scenario.unit:<9}"
                f" p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:7.2f} ms"
                f"  cpu {result.cpu_us_per_request:6.0f} us/req"
                f"  rounds {'/'.join(f'{r:,}' for r in result.rounds)}"
                + (f"  ERRORS {result.errors}: {result.note}" if result.errors else ""),
                flush=True,
            )
    return results


# --- reporting ---------------------------------------------------------------------------


def _index(results: list[Result]) -> dict[tuple[str, int, str], Result]:
    return {(r.scenario, r.connections, r.target): r for r in results}


def rate_ratio(a: Result, b: Result) -> float:
    """a's rate over b's: the median of the per-round ratios when both ran the same
    rounds (runs of one round are minutes apart at most, so a burst of load from
    elsewhere on the machine skews one round's pair, not the result), else of medians."""
    if len(a.rounds) == len(b.rounds) and all(b.rounds):
        return statistics.median(x / y for x, y in zip(a.rounds, b.rounds, strict=True))
    return a.rate / b.rate if b.rate else 0.0


def _ratio(a: Result | None, b: Result | None) -> str:
    if a is None or b is None or not b.rate:
        return "n/a"
    return f"{rate_ratio(a, b):.2f}x"


#: Extra columns for the optional targets: (target, column, the target is the numerator).
VARIANT_COLUMNS = (
    ("gate+uvloop", "uvloop/gate", True),
    ("gate-nolog", "nolog/gate", True),
)


def table_rows(results: list[Result]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the main table (one row per scenario and connection count)."""
    index = _index(results)
    targets = ordered(r.target for r in results)
    variants = [v for v in VARIANT_COLUMNS if v[0] in targets]
    variants += [(t, f"gate/{t}", False) for t in targets if t.startswith(BASELINE_PREFIX)]
    header = ["scenario", "conns", *targets, "gate/direct", "gate/nginx", "gate/minimal"]
    header += ["gate/floor"]
    header += [column for _, column, _ in variants]
    keys: list[tuple[str, int]] = []
    for r in results:
        if (r.scenario, r.connections) not in keys:
            keys.append((r.scenario, r.connections))
    titles = {s.key: s.title for s in (*SCENARIOS, PACED)}
    rows = []
    for scenario, conns in keys:
        got = {t: index.get((scenario, conns, t)) for t in targets}
        gate = got.get("gate")
        row = [titles[scenario], str(conns)]
        row += [cell.cell() if (cell := got[t]) is not None else "n/a" for t in targets]
        pairs: list[tuple[Result | None, Result | None]] = [
            (gate, got.get(b)) for b in ("direct", "nginx", "minimal", "floor")
        ]
        pairs += [
            (got.get(v), gate) if numerator else (gate, got.get(v)) for v, _, numerator in variants
        ]
        for a, b in pairs:
            if scenario == "paced":  # the rate is fixed by the pacing: compare latency
                row.append(f"p50 {a.p50_ms - b.p50_ms:+.2f} ms" if a and b else "n/a")
            else:
                row.append(_ratio(a, b))
        rows.append(row)
    return header, rows


def cpu_rows(results: list[Result]) -> tuple[list[str], list[list[str]]]:
    """CPU time per request of the server under test: steadier than rates on a shared
    machine (time stolen by other processes is not counted), though cache and
    scheduler effects still move it."""
    index = _index(results)
    targets = ordered(r.target for r in results)
    header = ["scenario", "conns", *targets, "gate cpu/minimal cpu"]
    rows = []
    seen: list[tuple[str, int]] = []
    for r in results:
        if (r.scenario, r.connections) in seen:
            continue
        seen.append((r.scenario, r.connections))
        row = [r.scenario, str(r.connections)]
        for t in targets:
            hit = index.get((r.scenario, r.connections, t))
            row.append(f"{hit.cpu_us_per_request:.0f}" if hit else "n/a")
        gate = index.get((r.scenario, r.connections, "gate"))
        floor = index.get((r.scenario, r.connections, "minimal"))
        row.append(
            f"{gate.cpu_us_per_request / floor.cpu_us_per_request:.2f}"
            if gate and floor and floor.cpu_us_per_request
            else "n/a"
        )
        rows.append(row)
    return header, rows


def format_text(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def format_markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


@dataclass
class Verdict:
    target: str
    measured: str
    met: bool | None  # None: not measured in this run


def verdicts(results: list[Result], gate_rss_mib: float | None) -> list[Verdict]:
    index = _index(results)
    out: list[Verdict] = []
    relay = [(s, c) for (s, c, t) in index if t == "gate" and s in ("small", "big", "post")]
    relay = sorted(set(relay), key=lambda k: (["small", "big", "post"].index(k[0]), k[1]))
    for base, floor, label in (
        ("minimal", 1.0, "relay throughput >= 1.0x the minimal proxy"),
        ("nginx", 0.35, "relay throughput >= 35% of nginx"),
    ):
        ratios = []
        for s, c in relay:
            gate, other = index[(s, c, "gate")], index.get((s, c, base))
            if other is not None and other.rate:
                ratios.append((f"{s}@{c}", rate_ratio(gate, other)))
        if not ratios:
            out.append(Verdict(label, "not measured", None))
            continue
        text = ", ".join(f"{name} {ratio:.2f}x" for name, ratio in ratios)
        out.append(Verdict(label, text, all(r >= floor for _, r in ratios)))
    paced, direct = index.get(("paced", 10, "gate")), index.get(("paced", 10, "direct"))
    if paced is not None and direct is not None:
        added = paced.p50_ms - direct.p50_ms
        saturated = ""
        g, d = index.get(("small", 10, "gate")), index.get(("small", 10, "direct"))
        if g is not None and d is not None:
            saturated = f" (saturated, closed loop: {g.p50_ms - d.p50_ms:+.2f} ms)"
        out.append(
            Verdict(
                "added p50 vs direct <= 0.6 ms at 10 connections",
                f"{added:+.2f} ms at ~{paced.rate:,.0f} req/s{saturated}",
                added <= 0.6,
            )
        )
    else:
        out.append(Verdict("added p50 vs direct <= 0.6 ms at 10 connections", "not measured", None))
    auth = [r for (s, c, t), r in index.items() if s == "authorize" and t == "gate"]
    if auth:
        best = max(auth, key=lambda r: r.rate)
        text = ", ".join(f"{r.rate:,.0f} req/s @{r.connections}" for r in auth)
        out.append(Verdict("remembered /authorize >= 2,500 req/s", text, best.rate >= 2500))
    else:
        out.append(Verdict("remembered /authorize >= 2,500 req/s", "not measured", None))
    out.append(_authorize_verdict(index))
    out.append(_floor_verdict(index))
    if gate_rss_mib is not None:
        out.append(
            Verdict(
                "gate RSS after this run (the 1M-request target: --soak)",
                f"{gate_rss_mib:.1f} MiB",
                None,
            )
        )
    return out


def _authorize_verdict(index: dict[tuple[str, int, str], Result]) -> Verdict:
    """Remembered /authorize (the realistic upstream answer) against the minimal proxy
    relaying the same request: per-round ratios of rates, and of CPU per request."""
    label = "remembered /authorize >= 0.8x the minimal proxy's relay of it"
    parts, met = [], True
    for (s, c, t), gate in sorted(index.items()):
        floor = index.get((s, c, "minimal"))
        if s != "authorize" or t != "gate" or floor is None or not floor.rate:
            continue
        ratio = rate_ratio(gate, floor)
        cpu = gate.cpu_us_per_request / floor.cpu_us_per_request if floor.cpu_us_per_request else 0
        parts.append(f"{ratio:.2f}x @{c} (CPU {cpu:.2f}x)")
        met = met and ratio >= 0.8
    if not parts:
        return Verdict(label, "not measured", None)
    return Verdict(label, ", ".join(parts), met)


def _floor_verdict(index: dict[tuple[str, int, str], Result]) -> Verdict:
    """Remembered /authorize against the floor gate (bench/floor_gate.py: the minimal
    proxy plus only the steps every gate must take), and the floor against the
    minimal proxy: what the gate's other rules cost, and what deciding costs at all."""
    label = "remembered /authorize >= 0.8x the floor gate (and the floor / minimal)"
    parts, met = [], True
    for (s, c, t), gate in sorted(index.items()):
        floor, minimal = index.get((s, c, "floor")), index.get((s, c, "minimal"))
        if s != "authorize" or t != "gate" or floor is None or not floor.rate:
            continue
        ratio = rate_ratio(gate, floor)
        floor_ratio = rate_ratio(floor, minimal) if minimal is not None and minimal.rate else 0
        parts.append(f"{ratio:.2f}x @{c} (the floor at {floor_ratio:.2f}x the minimal proxy)")
        met = met and ratio >= 0.8
    if not parts:
        return Verdict(label, "not measured", None)
    return Verdict(label, ", ".join(parts), met)


def format_verdicts(items: list[Verdict]) -> str:
    lines = []
    for v in items:
        mark = {True: "MET   ", False: "MISSED", None: "  -   "}[v.met]
        lines.append(f"  [{mark}] {v.target}: {v.measured}")
    return "\n".join(lines)


def machine_description() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, IndexError, ValueError):
        kib = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
        mem = f", {kib / 1024 / 1024:.1f} GiB RAM"
    return f"{model}, {os.cpu_count()} CPUs{mem}, Linux {platform.release()}"


def versions() -> str:
    parts = [f"Python {platform.python_version()}", f"aiohttp {aiohttp.__version__}"]
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with contextlib.suppress(OSError):
        done = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
        parts.append(done.stderr.strip().replace("nginx version: ", ""))
    with contextlib.suppress(OSError):
        done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
        parts.append(" ".join((done.stdout or done.stderr).split()[:2]))
    if uvloop_available():
        parts.append(f"uvloop {importlib.metadata.version('uvloop')}")
    return ", ".join(parts)


def report(
    results: list[Result],
    args: argparse.Namespace,
    placement: Placement,
    gate_rss_mib: float | None,
    elapsed: float,
) -> tuple[str, str]:
    """The text for the terminal and the markdown for docs/performance.md."""
    header, rows = table_rows(results)
    cpu_header, cpu = cpu_rows(results)
    verdict = verdicts(results, gate_rss_mib)
    command = "python -m bench.run " + " ".join(args.argv)
    facts = [
        f"machine: {machine_description()}",
        f"software: {versions()}",
        f"placement: {placement.describe()}",
        f"command: {command.strip()} ({elapsed / 60:.1f} min; {args.rounds} rounds of "
        f"{args.duration:g} s per target, interleaved, after {args.warmup:g} s warm-up; "
        "medians)",
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
    ]
    legend = (
        "cells: rate (p50/p99 latency in ms); rate is requests/s, streams/s for SSE, "
        "render+POST pairs/s for approve; '!' marks a run with errors; ratios are of rates."
    )
    errors = [r for r in results if r.errors]
    error_text = "\n".join(
        f"  {r.scenario}@{r.connections} {r.target}: {r.errors} errors ({r.note})" for r in errors
    )
    approve = [r for r in results if r.extra]
    approve_text = "\n".join(
        f"  approve@{r.connections} {r.target}: POST alone p50 {r.extra['post_p50_ms']:.2f} ms, "
        f"p99 {r.extra['post_p99_ms']:.2f} ms"
        for r in approve
    )
    text = "\n".join(
        [
            *facts,
            legend,
            "",
            format_text(header, rows),
            "",
            "CPU time of the server under test per request (us; direct = the upstream):",
            format_text(cpu_header, cpu),
            *(["", approve_text] if approve_text else []),
            *(["", "errors:", error_text] if errors else []),
            "",
            "targets:",
            format_verdicts(verdict),
        ]
    )
    markdown = "\n".join(
        [
            *(f"- {fact}" for fact in facts),
            "",
            legend,
            "",
            format_markdown(header, rows),
            "",
            "CPU time of the server under test per request, in µs (direct: the upstream):",
            "",
            format_markdown(cpu_header, cpu),
            *(["", "```", approve_text, "```"] if approve_text else []),
            *(["", "Errors:", "", "```", error_text, "```"] if errors else []),
            "",
            "Targets:",
            "",
            "```",
            format_verdicts(verdict),
            "```",
        ]
    )
    return text, markdown


# --- the memory soak -----------------------------------------------------------------------


def soak(stack: Stack, args: argparse.Namespace) -> tuple[str, bool]:
    """Relay ``args.soak`` small GETs through the gate; sample its RSS after each chunk."""
    gate = stack.process("gate")
    scenario = SCENARIOS[0]
    run_load(scenario, stack, "gate", 64, 2)
    samples: list[tuple[int, float, float]] = [(0, 0.0, gate.rss_kib() / 1024)]
    total = 0
    started = time.monotonic()
    print(f"  {'requests':>10}  {'seconds':>7}  {'req/s':>7}  {'VmRSS MiB':>9}", flush=True)
    print(f"  {0:>10,}  {0.0:>7.0f}  {'':>7}  {samples[0][2]:>9.1f}", flush=True)
    while total < args.soak:
        data = run_load(scenario, stack, "gate", 64, args.soak_chunk)
        errors = sum(
            int(data.get(k, 0))
            for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
        )
        if errors:
            raise RuntimeError(f"the soak saw {errors} errors: {data}")
        total += int(data["requests"])
        rate = data["requests"] / (data["duration_us"] / 1e6)
        rss = gate.rss_kib() / 1024
        samples.append((total, time.monotonic() - started, rss))
        print(f"  {total:>10,}  {samples[-1][1]:>7.0f}  {rate:>7,.0f}  {rss:>9.1f}", flush=True)
    half = next(s for s in samples if s[0] >= total / 2)
    final = samples[-1][2]
    growth = final - half[2]
    flat = growth <= 2.0
    ok = final <= 80 and flat
    summary = (
        f"gate RSS after {total:,} relayed requests: {final:.1f} MiB "
        f"(after warm-up {samples[0][2]:.1f} MiB, at {half[0]:,} requests {half[2]:.1f} MiB; "
        f"second half {growth:+.1f} MiB: {'flat' if flat else 'GROWING'}); "
        f"target <= 80 MiB and not growing: {'MET' if ok else 'MISSED'}"
    )
    curve = "\n".join(f"| {n:,} | {t:.0f} | {r:.1f} |" for n, t, r in samples)
    markdown = (
        f"{summary}\n\n| requests relayed | seconds | gate VmRSS (MiB) |\n|---|---|---|\n{curve}"
    )
    print(summary)
    return markdown, ok


# --- the command ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measured run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="measured runs per target, interleaved across targets; medians are reported",
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of warm-up per target, first round"
    )
    parser.add_argument(
        "--connections",
        type=lambda s: [int(c) for c in s.split(",")],
        default=[10, 64],
        help="comma-separated connection counts (default 10,64)",
    )
    parser.add_argument("--quick", action="store_true", help="one round of 2 s runs")
    parser.add_argument(
        "--only",
        type=lambda s: set(s.split(",")),
        help="scenarios: " + ",".join(s.key for s in SCENARIOS) + ",paced",
    )
    parser.add_argument("--targets", help="comma-separated: direct,nginx,minimal,gate,gate+uvloop")
    parser.add_argument("--no-nginx", action="store_true", help="skip nginx even if installed")
    parser.add_argument(
        "--uvloop", action="store_true", help="also run the gate on uvloop (pip install uvloop)"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--nolog",
        action="store_true",
        help="also run the gate with [log] access_log = false (what the access log costs)",
    )
    parser.add_argument(
        "--baseline",
        action="append",
        metavar="NAME=DIR",
        help="also run the gate from DIR/consentgate (a copy from before a change) as "
        "the column base:NAME; repeatable: before/after figures from the same run",
    )
    parser.add_argument(
        "--soak",
        type=int,
        nargs="?",
        const=1_000_000,
        help="memory soak instead: relay N small GETs through the gate (default 1,000,000)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        action="append",
        metavar="N",
        help="also run the gate with [server] workers = N (target gate:wN); repeatable",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also run the gate on a PostgreSQL store (target gate:pg): a URL, or "
        "'throwaway' for a temporary cluster started as the tests start theirs",
    )
    parser.add_argument("--soak-chunk", type=float, default=10.0, help="seconds per soak chunk")
    parser.add_argument(
        "--fastmcp",
        action="store_true",
        help="then compare gate + FastMCP with FastMCP's own consent (bench/fastmcp_bench.py; "
        "the e2e extra), once the servers above are stopped",
    )
    parser.add_argument("--update-doc", action="store_true", help="write docs/performance.md")
    parser.add_argument("--json", type=Path, help="also write the raw results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--hold",
        action="store_true",
        help="start everything, print the ports and wait for Ctrl-C (to profile by hand)",
    )
    args = parser.parse_args(argv)
    args.argv = list(argv)
    if args.quick:
        args.duration, args.warmup, args.rounds = 2.0, 1.0, 1
    return args


def hold(stack: Stack) -> None:
    for name, (port, process) in stack.targets.items():
        print(f"  {name:<12} http://127.0.0.1:{port}  pid {process.pid}")
    print(f"  authorize target: {AUTHORIZE_PATH}")
    print(f"  browser cookie:   {stack.browser_cookie}")
    print("holding; Ctrl-C or SIGTERM stops everything", flush=True)
    while True:
        time.sleep(3600)


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    status = _main(args)
    if status == 0 and args.fastmcp:
        from bench import fastmcp_bench  # noqa: PLC0415 - needs the e2e extra

        print("\ngate + FastMCP against FastMCP's own consent:", flush=True)
        status = fastmcp_bench.main(["--rounds", str(max(args.rounds * 2, 4))])
    return status


def _main(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    if args.uvloop and not uvloop_available():
        print(
            "bench: --uvloop needs uvloop in this environment (pip install uvloop)", file=sys.stderr
        )
        return 2
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    placement = choose_placement(not args.no_pin)
    workdir = Path(tempfile.mkdtemp(prefix="consentgate-bench-"))
    started = time.monotonic()
    stack: Stack | None = None
    try:
        print(f"starting the servers in {workdir} ({placement.describe()})", flush=True)
        stack = start_stack(
            workdir,
            placement,
            with_nginx=not args.no_nginx and args.soak is None,
            with_uvloop=args.uvloop,
            without_access_log=args.nolog,
            workers=tuple(args.workers or ()),
            postgres_url=postgres_url(args.postgres),
            baselines={
                name: Path(directory).resolve()
                for name, _, directory in (b.partition("=") for b in args.baseline or ())
            },
        )
        preflight(stack)
        if args.soak is not None:
            print(f"soak: {args.soak:,} small GETs through the gate, 64 connections", flush=True)
            markdown, ok = soak(stack, args)
            if args.update_doc:
                update_doc_section("soak", markdown)
            return 0 if ok else 1
        print("preflight passed: every target answers every scenario correctly", flush=True)
        if args.hold:
            hold(stack)
            return 0
        results = run_benchmark(stack, args)
        gate_rss = stack.process("gate").rss_kib() / 1024 if "gate" in stack.targets else None
        text, markdown = report(results, args, placement, gate_rss, time.monotonic() - started)
        print()
        print(text)
        if args.update_doc:
            update_doc_section("table", markdown)
            print(f"\nwrote {DOC.relative_to(ROOT)}")
        if args.json:
            args.json.write_text(json.dumps([r.__dict__ for r in results], indent=1))
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the servers", file=sys.stderr)
        return 130
    finally:
        if stack is not None:
            for name, (_, process) in stack.targets.items():
                if process.popen.poll() is not None and process.popen.returncode not in (0, -15):
                    print(
                        f"{name} exited with {process.popen.returncode}:\n{process.tail()}",
                        file=sys.stderr,
                    )
            stack.processes.stop_all()
        if args.postgres == "throwaway":
            from tests.support import pgcluster  # noqa: PLC0415 - a developer's throwaway server

            pgcluster.stop_cluster()
        if args.keep:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def update_doc_section(name: str, markdown: str) -> None:
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    if begin not in text or end not in text:
        text += f"\n{begin}\n{end}\n"
    before, rest = text.split(begin, 1)
    _, after = rest.split(end, 1)
    DOC.write_text(f"{before}{begin}\n{markdown}\n{end}{after}")


if __name__ == "__main__":
    raise SystemExit(main())
