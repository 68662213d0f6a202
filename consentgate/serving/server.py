"""Running the gate: listen, handle SIGTERM/SIGINT gracefully, close everything.

On a stop signal the listening socket closes first (no new connections), requests
in flight get what is left of ``server.shutdown_grace`` to finish, streams still
open near its end are cut, then the cleanup contexts close the store and the
upstream session (:mod:`consentgate.serving.shutdown`).

Under systemd (``Type=notify``, ``contrib/systemd/consentgate.service``) the gate says
``READY=1`` once it listens, ``RELOADING=1`` and ``READY=1`` around a SIGHUP reload,
``STOPPING=1`` on a stop signal, and pings the watchdog when ``WatchdogSec=`` asks
(:mod:`consentgate.serving.sdnotify`); without ``NOTIFY_SOCKET`` all of that does nothing.
A reload that refused the configuration file still ends with ``READY=1`` (the gate
serves, under the configuration it had), its ``STATUS=`` saying so.

SIGHUP re-reads the configuration file (:mod:`consentgate.serving.sighup`); the
logging this module set up is one of the things a reload changes, so it registers
that as a reload hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from consentgate.audit.events import AuditTrail, direct_sink
from consentgate.config.model import Config
from consentgate.config.reload_rules import ConfigSource
from consentgate.config.sections_operations import LogConfig
from consentgate.core.startup_errors import StartupError, cannot_listen
from consentgate.logs.line_writers import AccessLines, DirectLines
from consentgate.logs.loggers import ACCESS, configure_logging
from consentgate.serving.application import create_app
from consentgate.serving.connections import (
    AcceptErrorLimiter,
    ConnectionGuard,
    GuardedAppRunner,
    fit_descriptor_limit,
)
from consentgate.serving.gc_tuning import settle_garbage_collector
from consentgate.serving.privileges import warn_if_root
from consentgate.serving.sdnotify import Notifier
from consentgate.serving.shutdown import ABANDON_TIMEOUT, shut_down
from consentgate.serving.sighup import reload
from consentgate.web.access import AccessLogger
from consentgate.web.appkeys import (
    ACCESS_LINES,
    CONFIG_SOURCE,
    LIVE_SETTINGS,
    RELOAD_HOOKS,
    WORKER_PLACE,
    WorkerPlace,
)

log = logging.getLogger("consentgate")

#: The access log is written at most this long after a request ended, in one write for
#: every line of that time: one system call per batch, not per request.
#: A graceful stop writes what is left; a kill -9 may lose this much.
ACCESS_FLUSH_SECONDS = 0.005


def runner_options(config: Config, access: AccessLines | None = None) -> dict[str, Any]:
    """Options for ``web.AppRunner``, shared by ``serve`` and the tests. ``access``: the
    batched access log ``serve`` writes, on or off by itself (a reload switches it);
    without it, the ``consentgate.access`` logger when ``[log] access_log`` is on."""
    return {
        # A client that disconnects cancels its handler, and so its upstream request.
        "handler_cancellation": True,
        # Relay bodies as they are; Content-Encoding stays the upstream's business.
        "auto_decompress": False,
        "access_log_class": AccessLogger,
        "access_log": (
            access
            if access is not None
            else (logging.getLogger(ACCESS) if config.log.access_log else None)
        ),
        # serve() drains within shutdown_grace itself (serving/shutdown.py); aiohttp's
        # timeout only bounds what is left after that.
        "shutdown_timeout": ABANDON_TIMEOUT,
        "handle_signals": False,
        # Idle connections (before the first request and between requests) close.
        "keepalive_timeout": config.server.idle_timeout,
    }


async def start(
    config: Config,
    app: web.Application | None = None,
    *,
    sock: socket.socket | None = None,
    reuse_port: bool = False,
    access: AccessLines | None = None,
) -> GuardedAppRunner:
    """Start listening on ``server.listen`` (or on an already bound ``sock``).

    ``reuse_port`` lets several worker processes bind the same address, the kernel
    spreading new connections over them (``SO_REUSEPORT``). The caller must
    ``await runner.cleanup()``.
    """
    guard = ConnectionGuard(
        fit_descriptor_limit(config.server.max_connections, config.upstream.max_connections),
        config.server.header_timeout,
    )
    app = app or create_app(config)
    if access is not None:
        app[ACCESS_LINES] = access
    runner = GuardedAppRunner(app, guard, **runner_options(config, access))
    try:
        await runner.setup()
    except StartupError:
        await runner.cleanup()
        raise
    listen = config.server.listen
    site: web.BaseSite = (
        web.SockSite(runner, sock)
        if sock is not None
        else web.TCPSite(
            runner, listen.host, listen.port, reuse_address=True, reuse_port=reuse_port or None
        )
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise cannot_listen("server.listen", listen, exc) from None
    return runner


async def serve(
    config: Config,
    *,
    worker: int | None = None,
    listening: Callable[[], None] | None = None,
    source: ConfigSource | None = None,
    peers: Path | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully.

    ``worker`` is this process's number under a supervisor (:mod:`consentgate.serving.workers`):
    it binds with ``SO_REUSEPORT`` and names itself on every log line. ``listening`` is
    called once the gate listens (the supervisor's cue to tell systemd it is ready).
    ``source`` reads the configuration again on SIGHUP (the CLI's loader of ``--config
    FILE``); without it SIGHUP only re-reads the key directory. ``peers`` is the
    supervisor's private directory where the workers answer each other's scrapes.
    """
    static = {"worker": worker} if worker is not None else None
    configure_logging(format=config.log.format, level=config.log.level, static=static)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(AcceptErrorLimiter(loop.get_exception_handler()))
    # The audit log's lines, without a logging record, written once per loop iteration.
    audit_lines = DirectLines(sys.stderr, loop.call_soon, format=config.log.format, static=static)
    try:
        await _serve(
            config,
            audit_lines,
            static,
            worker=worker,
            listening=listening,
            source=source,
            peers=peers,
        )
    finally:
        # However serve ends (a start that failed included): once it returns, a
        # flush the loop was to run may never run.
        audit_lines.flush()


async def _serve(
    config: Config,
    audit_lines: DirectLines,
    static: dict[str, Any] | None,
    *,
    worker: int | None,
    listening: Callable[[], None] | None,
    source: ConfigSource | None,
    peers: Path | None,
) -> None:
    """:func:`serve`, once the logging and the audit lines are set up."""
    loop = asyncio.get_running_loop()
    app = create_app(config, audit=AuditTrail((direct_sink(audit_lines),)))
    if source is not None:
        app[CONFIG_SOURCE] = source
    if worker is not None and peers is not None:
        app[WORKER_PLACE] = WorkerPlace(worker, config.server.workers, peers)
    # Built even when off: the server takes its access logger once, a reload switches it.
    access = AccessLines(
        sys.stderr,
        lambda flush: loop.call_later(ACCESS_FLUSH_SECONDS, flush),
        format=config.log.format,
        static=static,
        enabled=_access_lines_on(config.log),
    )

    def reconfigure_logging() -> None:
        """A reload's ``[log]``: the handler's format and level, the access log's."""
        settings = app[LIVE_SETTINGS].current.config.log
        configure_logging(format=settings.format, level=settings.level, static=static)
        access.configure(format=settings.format, enabled=_access_lines_on(settings))
        audit_lines.configure(format=settings.format)

    app[RELOAD_HOOKS].add(reconfigure_logging)
    runner = await start(config, app, reuse_port=worker is not None, access=access)
    address = ", ".join(_url(a) for a in runner.addresses)
    log.info(
        "listening",
        extra={"fields": {"address": address, "upstream": config.upstream.url}},
    )
    if worker is None:  # under a supervisor, the supervisor says it once
        warn_if_root()  # once started: a start that fails stays one line
    # Built and listening: what exists now lives as long as the process.
    settle_garbage_collector()
    systemd = Notifier(log)  # a worker's environment has no NOTIFY_SOCKET: it stays quiet
    status = f"listening on {address}"
    systemd.ready(status)
    if listening is not None:
        listening()
    watchdog = (
        asyncio.create_task(_ping_watchdog(systemd, systemd.watchdog_interval))
        if systemd.watchdog_interval is not None
        else None
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload, app, systemd, status)
    try:
        await stop.wait()
        log.info(
            "stopping",
            extra={"fields": {"grace_seconds": config.server.shutdown_grace}},
        )
    finally:
        systemd.stopping()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        try:
            await shut_down(runner, app, config.server.shutdown_grace)
        finally:
            # The lines of the shutdown and of the last requests, before "stopped".
            audit_lines.flush()
            access.flush()
            if watchdog is not None:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
    log.info("stopped")


def _access_lines_on(settings: LogConfig) -> bool:
    """Access lines are INFO: ``access_log`` on, and a level that lets INFO through."""
    return settings.access_log and logging.getLogger(ACCESS).isEnabledFor(logging.INFO)


def _reload(app: web.Application, systemd: Notifier, status: str) -> None:
    """SIGHUP: the reload is synchronous, so ``READY=1`` follows it once it is done; a
    refused configuration file still serves (the old one), and the status says so."""
    systemd.reloading()
    problems = reload(app)
    if problems:
        status = (
            f"{status}; configuration not reloaded: {len(problems)} error(s), "
            "the previous configuration stays (see the log)"
        )
    systemd.ready(status)


async def _ping_watchdog(systemd: Notifier, interval: float) -> None:
    """``WATCHDOG=1`` every ``interval`` (half of ``WatchdogSec``) while the loop runs:
    a blocked event loop stops the pings, and systemd restarts the gate."""
    while True:
        systemd.watchdog()
        await asyncio.sleep(interval)


def _url(address: Any) -> str:
    host, port = address[0], address[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
