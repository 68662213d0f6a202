"""A throwaway PostgreSQL cluster for the tests: Debian's binaries, a temporary directory.

Why a real server and not a mock: what the PostgreSQL backend promises (atomic
single-use rows, migrations under an advisory lock, LISTEN/NOTIFY invalidation, a
lost listener connection) is the server's behaviour, and only the server can show it.

How it runs. :func:`find_bindir` picks the newest ``/usr/lib/postgresql/*/bin`` that
has ``initdb`` and ``pg_ctl`` (Debian's layout; ``PG_BINDIR`` overrides). PostgreSQL
refuses to run as root, so under root every server command runs as the ``postgres``
system user the Debian package creates (``runuser -u postgres --``), in a fresh
temporary directory owned by that user; otherwise as the current user. The cluster is
``initdb -A trust`` (plus one password-authenticated role, to test passwords), listens
on 127.0.0.1 on a free port with its socket in the temporary directory, and runs with
``fsync=off``: nothing here must survive a power cut. :meth:`PostgresCluster.stop`
stops it (``-m immediate``) and removes the directory, at the end of the session and
at exit if the session was interrupted.

When PostgreSQL is not installed, :func:`cluster` raises :class:`PostgresUnavailable`
with the command that installs it; the fixtures turn that into a skip, or a failure
when ``CI_REQUIRE_POSTGRES=1`` (CI must never skip these tests).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Final

import pytest

INSTALL_HINT: Final = (
    "PostgreSQL is not installed: "
    "apt-get install --no-install-recommends postgresql (Debian), "
    "or set PG_BINDIR to a directory with initdb and pg_ctl"
)
#: The cluster's superuser (trust authentication, for the tests' own setup and edits).
SUPERUSER: Final = "postgres"
#: The role the stores under test log in as: not a superuser, the owner of its database
#: (so it may run the migrations), nothing more.
GATE_ROLE: Final = "gate"
#: A role that logs in with a password (scram-sha-256), to test passwords and masking.
PASSWORD_ROLE: Final = "pw_user"
PASSWORD: Final = "correct horse battery staple"


class PostgresUnavailable(Exception):
    """No PostgreSQL binaries, or the cluster would not start (the message says why)."""


def require_postgres() -> bool:
    """True when CI asks for the PostgreSQL tests to fail rather than skip."""
    return os.environ.get("CI_REQUIRE_POSTGRES") == "1"


def find_bindir() -> Path:
    """The newest PostgreSQL ``bin`` directory with initdb and pg_ctl."""
    override = os.environ.get("PG_BINDIR")
    candidates = [override] if override else []
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versions, key=lambda p: [int(n) for n in re.findall(r"\d+", p)])[::-1]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        bindir = Path(candidate)
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise PostgresUnavailable(INSTALL_HINT)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """One running cluster: DSNs for its databases, and the binaries to administer it."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.run_as: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root, and there is no 'postgres' system user to run "
                    "PostgreSQL as (the Debian package creates it)"
                ) from None
            self.run_as = "postgres"
        self.base = Path(tempfile.mkdtemp(prefix="consentgate-pg-"))
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        self.data = self.base / "data"
        self.socket_dir = self.base / "socket"
        self.log = self.base / "server.log"
        self.port = 0
        self.started_in = 0.0
        self._names = itertools.count(1)
        self._lock = threading.Lock()
        self._prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-createdb")
        self._ready: dict[str | None, Future[str]] = {}
        self._running = False

    # --- running commands as the server's user ---------------------------------------

    def _server_command(self, *args: str) -> list[str]:
        if self.run_as is None:
            return list(args)
        runuser = shutil.which("runuser")
        if runuser is not None:
            return [runuser, "-u", self.run_as, "--", *args]
        setpriv = shutil.which("setpriv")
        if setpriv is None:  # pragma: no cover - util-linux ships both
            raise PostgresUnavailable("running as root without runuser or setpriv")
        entry = pwd.getpwnam(self.run_as)
        return [
            setpriv,
            f"--reuid={entry.pw_uid}",
            f"--regid={entry.pw_gid}",
            "--clear-groups",
            *args,
        ]

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self._server_command(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.base,
            check=False,
        )
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"{Path(args[0]).name} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        began = time.monotonic()
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        # Password authentication for one role, trust for everyone else (first match wins).
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n",
            encoding="utf-8",
        )
        self.socket_dir.mkdir()
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            for path in (self.socket_dir, self.data / "pg_hba.conf"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        for attempt in range(5):
            self.port = _free_port()
            try:
                self.start_server()
                break
            except PostgresUnavailable:
                if attempt == 4:
                    raise PostgresUnavailable(
                        f"PostgreSQL would not start: {self.server_log()[-2000:]}"
                    ) from None
        self.psql(
            f"CREATE ROLE {GATE_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; "
            f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'"
        )
        self.started_in = time.monotonic() - began

    def start_server(self) -> None:
        """Start the server on :attr:`port` (again, after :meth:`stop_server`)."""
        options = " ".join(
            (
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.socket_dir}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=300",
                "-c shared_buffers=32MB",
                "-c log_min_messages=warning",
            )
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            f"-p {self.port} {options}",
            "-w",
            "-t",
            "60",
            "start",
            timeout=90,
        )
        self._running = True

    def stop_server(self, mode: str = "fast") -> None:
        """Stop the server but keep its files (a test of a database going away);
        :meth:`start_server` brings it back on the same port."""
        with self._lock:
            wait(list(self._ready.values()))  # no database half made
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        self._running = False

    def server_log(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (immediately: nothing needs to survive) and remove its files."""
        self._prefetch.shutdown(wait=True, cancel_futures=True)
        if self._running:
            self._running = False
            with contextlib.suppress(PostgresUnavailable, subprocess.TimeoutExpired):
                self._run(
                    str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"
                )
        shutil.rmtree(self.base, ignore_errors=True)

    # --- databases -----------------------------------------------------------------------

    def dsn(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser through psql; returns its unaligned output."""
        result = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout

    def new_database_name(self) -> str:
        return f"test_{next(self._names)}"  # itertools.count is atomic under the GIL

    def _create_database(self, owner: str | None) -> str:
        name = self.new_database_name()
        owned = f" OWNER {owner}" if owner else ""
        self.psql(f"CREATE DATABASE {name}{owned} TEMPLATE template0")
        return name

    def create_database(self, owner: str | None = None) -> str:
        """A new, empty database (a copy of template0) and its name.

        Copying template0 takes a quarter of a second, longer than most tests: the
        next database (for the same owner) is created in a background thread while
        this one is in use."""
        with self._lock:
            ready = self._ready.pop(owner, None)
            name = None
            if ready is not None:
                with contextlib.suppress(RuntimeError):  # made while the server was down
                    name = ready.result()
            if name is None:
                name = self._create_database(owner)
            self._ready[owner] = self._prefetch.submit(self._create_database, owner)
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def pg_dump(self, database: str, *args: str) -> bytes:
        result = subprocess.run(
            [
                str(self.bindir / "pg_dump"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                *args,
                database,
            ],
            capture_output=True,
            timeout=60,
            check=True,
        )
        return result.stdout


_cluster: PostgresCluster | None = None
_failure: PostgresUnavailable | None = None
_guard = threading.Lock()


def cluster() -> PostgresCluster:
    """The session's cluster, started on first use (one per test process)."""
    global _cluster, _failure  # noqa: PLW0603 - one cluster per process, on purpose
    with _guard:
        if _failure is not None:
            raise _failure
        if _cluster is None:
            try:
                started = PostgresCluster(find_bindir())
                atexit.register(started.stop)
                started.start()
            except PostgresUnavailable as exc:
                _failure = exc
                raise
            _cluster = started
        return _cluster


def stop_cluster() -> None:
    """Stop the session's cluster, if one was started."""
    global _cluster  # noqa: PLW0603
    with _guard:
        if _cluster is not None:
            _cluster.stop()
            _cluster = None


def cluster_or_skip() -> PostgresCluster:
    """The cluster; without PostgreSQL a skip naming the install command, or a failure
    when ``CI_REQUIRE_POSTGRES=1``."""
    try:
        return cluster()
    except PostgresUnavailable as exc:
        if require_postgres():
            pytest.fail(f"CI_REQUIRE_POSTGRES=1 and {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL cluster (see the module docstring); stopped at the end."""
    try:
        yield cluster_or_skip()
    finally:
        stop_cluster()
