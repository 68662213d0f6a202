"""Several worker processes on one host: ``[server] workers = N``.

One Python process serves from one core. With ``workers = N`` a parent process
prepares what must exist exactly once (the key directory, the cookie secret, the
store's schema), then starts N workers, each a full gate binding the listen
address with ``SO_REUSEPORT`` so the kernel spreads new connections over them.
Everything a flow needs is in the store or in MAC'd cookies, so a consent page
shown by one worker may be answered by another (WAL lets SQLite processes share
the file; PostgreSQL is shared by design).

The parent supervises:

* a worker that dies is restarted, after a pause that doubles while workers keep
  dying young (from 0.5 s up to 30 s), so a crash loop does not spin;
* a worker that cannot start while the gate is starting (a port in use, a bad
  store) stops the whole gate with exit status 1: the one-line reason is in that
  worker's log (it exits with :data:`STARTUP_FAILED`). The gate is starting until
  every worker has listened once, however long that takes (a loaded machine may
  take seconds to spawn an interpreter): no clock decides it;
* connections the kernel had queued for a worker that dies are reset with it (a
  property of ``SO_REUSEPORT``); new connections go to the workers still running;
* SIGTERM or SIGINT is passed to every worker, which stops as ``serve`` does
  (listener closed, requests in flight get ``shutdown_grace``); a worker still
  running one second after the grace is killed;
* a worker ends when the parent does, however the parent ended (a kill -9 included):
  every worker watches the read end of a pipe whose only write end the parent holds
  and never writes. The kernel closes it when the parent exits, the worker reads
  end-of-file, and stops as on SIGTERM (requests in flight get ``shutdown_grace``).
  Otherwise orphaned workers would serve on with the old configuration and keys,
  beside a restarted gate that binds the port with them (``SO_REUSEPORT``). A pipe
  rather than Linux's ``PR_SET_PDEATHSIG``: see docs/references.md, "Workers and
  their supervisor";
* SIGHUP is passed to every worker: each re-reads the configuration file and its
  keys itself (:mod:`consentgate.serving.sighup`) and logs its own outcome; the parent
  re-reads only its own ``[log]`` format and level (its few lines: workers started,
  exited), and nothing else: ``workers``, ``listen`` and ``shutdown_grace`` wait for
  a restart, as they do in a worker;
* under systemd only the parent notifies (:mod:`consentgate.serving.sdnotify`): ``READY=1``
  once every worker listens, ``RELOADING=1`` and ``READY=1`` around passing a SIGHUP on
  (the parent does not wait for each worker's reload), ``STOPPING=1``, and the watchdog
  pings; the workers start without ``NOTIFY_SOCKET``.

Workers are started with the ``spawn`` method: a fresh interpreter, no state
inherited from the parent but the configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.synchronize
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Final

from consentgate.config.loading import ConfigError
from consentgate.config.model import Config
from consentgate.config.reload_rules import ConfigSource
from consentgate.core.startup_errors import StartupError
from consentgate.logs.loggers import configure_logging
from consentgate.serving.privileges import warn_if_root
from consentgate.serving.sdnotify import VARIABLES, Notifier
from consentgate.signing.key_directory import load_cookie_secret, load_keyring
from consentgate.store.opening import describe, migrate_store

log = logging.getLogger("consentgate")

#: A worker that exits sooner than this after it started died young.
YOUNG: Final = 5.0
FIRST_PAUSE: Final = 0.5
LONGEST_PAUSE: Final = 30.0
#: A worker that has not stopped this long after the grace is killed.
KILL_AFTER_GRACE: Final = 1.0
#: The exit status of a worker that could not start (its one-line reason is logged).
STARTUP_FAILED: Final = 3


def _stop_when_parent_ends(lifeline: multiprocessing.connection.Connection) -> None:
    """Wait, in a thread, for the end of the supervisor: the pipe ``lifeline`` reads
    end-of-file once the one process holding its write end is gone (pipe(7)), whatever
    ended it. Then SIGTERM to this worker, so it stops the way a supervisor's stop asks
    (``serve``'s handler: listener closed, requests in flight get ``shutdown_grace``);
    before ``serve`` has installed that handler nothing is being served and SIGTERM's
    default action ends the worker at once."""

    def watch() -> None:
        # The parent never writes: the pipe turns readable at its end-of-file only.
        multiprocessing.connection.wait([lifeline])
        log.warning("the supervisor is gone; stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="consentgate-lifeline", daemon=True).start()


def _worker_main(
    config: Config,
    number: int,
    listening: multiprocessing.synchronize.Event,
    source: ConfigSource | None = None,
    peers: Path | None = None,
    *,
    lifeline: multiprocessing.connection.Connection | None = None,
) -> None:
    """The body of one worker process (``spawn``: a fresh interpreter). ``source`` is
    pickled to it: a module-level loader bound to the file's path, not a closure.
    ``lifeline``: the read end of the supervisor's pipe (:func:`_stop_when_parent_ends`)."""
    from consentgate.serving.server import serve  # noqa: PLC0415 - in the child only

    # systemd listens to the parent only (NotifyAccess=main); the parent says READY=1.
    for name in VARIABLES:
        os.environ.pop(name, None)
    if lifeline is not None:
        _stop_when_parent_ends(lifeline)

    # A Ctrl-C reaches the whole process group; before serve installs its handlers
    # it arrives as KeyboardInterrupt, which is a stop like any other.
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(
                serve(config, worker=number, listening=listening.set, source=source, peers=peers)
            )
        except StartupError as exc:
            log.error("worker could not start: %s", exc, extra={"fields": {"worker": number}})
            # The supervisor learns of the failure from this process's end: end it now.
            # serve has closed what it opened; tearing down the interpreter's modules
            # would only delay the gate's stop (a second and more on a loaded machine).
            logging.shutdown()
            sys.stderr.flush()
            os._exit(STARTUP_FAILED)


@dataclass
class _Worker:
    number: int
    process: BaseProcess
    listening: multiprocessing.synchronize.Event
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Starts, watches and stops the workers of one gate."""

    def __init__(self, config: Config, source: ConfigSource | None = None) -> None:
        self.config = config
        self._source = source
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, _Worker] = {}
        self._stopping = False
        self._reload = False
        self._pause = FIRST_PAUSE
        self._systemd = Notifier(log)
        self._started = False  # every worker has listened once
        self._announced = False  # READY=1 sent
        self._next_ping = time.monotonic()
        #: Private (0700) directory where the workers answer each other's metrics.
        self._peers: Path | None = None
        #: The pipe every worker watches: its write end, held here and never written to,
        #: closes when this process ends, however it ends (:func:`_stop_when_parent_ends`).
        self._lifeline: tuple[multiprocessing.connection.Connection, ...] = ()

    def prepare(self) -> None:
        """What must exist exactly once, before N processes look for it."""
        config = self.config
        load_keyring(config.keys.dir, create=True)
        load_cookie_secret(config.keys.dir, config.keys.cookie_secret)
        before, after = asyncio.run(migrate_store(config.store))
        if before != after:
            log.info(
                "store migrated",
                extra={"fields": {"store": describe(config.store), "from": before, "to": after}},
            )

    def _start(self, number: int) -> None:
        listening = self._context.Event()
        process = self._context.Process(
            target=_worker_main,
            args=(self.config, number, listening, self._source, self._peers),
            kwargs={"lifeline": self._lifeline[0]},
            name=f"consentgate-worker-{number}",
        )
        process.start()
        self._workers[number] = _Worker(number, process, listening)
        log.info("worker started", extra={"fields": {"worker": number, "pid": process.pid}})

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._reload = True

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; the exit status of the gate."""
        count = self.config.server.workers
        configure_logging(format=self.config.log.format, level=self.config.log.level)
        previous = {
            sig: signal.signal(sig, handler)
            for sig, handler in (
                (signal.SIGTERM, self._on_stop),
                (signal.SIGINT, self._on_stop),
                (signal.SIGHUP, self._on_hup),
            )
        }
        try:
            self.prepare()
            # mkdtemp creates it 0700: only the gate's user reaches the workers' sockets.
            self._peers = Path(tempfile.mkdtemp(prefix="consentgate-workers-"))
            self._lifeline = self._context.Pipe(duplex=False)  # (read end, write end)
            for number in range(1, count + 1):
                self._start(number)
            log.info(
                "supervising workers",
                extra={"fields": {"workers": count, "address": str(self.config.server.listen)}},
            )
            warn_if_root()
            status = self._watch()
        finally:
            self._systemd.stopping()
            self._stop_all()
            if self._peers is not None:
                shutil.rmtree(self._peers, ignore_errors=True)
            for end in self._lifeline:  # after the workers stopped: they watch it
                end.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("stopped")
        return status

    def _watch(self) -> int:
        while not self._stopping:
            self._tell_systemd()
            if self._reload:
                self._reload = False
                if self._announced:
                    self._systemd.reloading()
                self._reload_own_logging()
                self._signal_all(signal.SIGHUP)
                if self._announced:
                    self._systemd.ready(self._status())
            sentinels = [w.process.sentinel for w in self._workers.values()]
            multiprocessing.connection.wait(sentinels, timeout=self._wait_at_most(0.2))
            starting = not self._has_started()  # before a dead worker leaves the roll
            for worker in list(self._workers.values()):
                if worker.process.is_alive() or self._stopping:
                    continue
                code = worker.process.exitcode
                del self._workers[worker.number]
                lived = time.monotonic() - worker.started
                if code == STARTUP_FAILED and starting:
                    log.error(
                        "a worker failed while the gate was starting; stopping",
                        extra={"fields": {"worker": worker.number, "exit_code": code}},
                    )
                    return 1
                # A worker that lived starts the pauses over; dying young doubles the next.
                pause = FIRST_PAUSE if lived >= YOUNG else self._pause
                self._pause = FIRST_PAUSE if lived >= YOUNG else min(pause * 2, LONGEST_PAUSE)
                log.warning(
                    "worker exited; restarting it",
                    extra={
                        "fields": {
                            "worker": worker.number,
                            "exit_code": code,
                            "restart_in_seconds": pause,
                        }
                    },
                )
                self._sleep(pause)
                if not self._stopping:
                    self._start(worker.number)
        return 0

    def _reload_own_logging(self) -> None:
        """The parent's lines follow ``[log]`` too. A file with errors changes nothing
        here and is not reported here: every worker reports it."""
        if self._source is None:
            return
        try:
            settings = self._source().log
        except ConfigError:
            return
        configure_logging(format=settings.format, level=settings.level)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            self._tell_systemd()  # the watchdog keeps its pings through a long pause
            time.sleep(self._wait_at_most(min(0.1, deadline - time.monotonic())))

    def _status(self) -> str:
        return f"{self.config.server.workers} workers listening on {self.config.server.listen}"

    def _has_started(self) -> bool:
        """Whether every worker has listened once. Until then the gate is starting and a
        worker that cannot start stops it; after, a worker that cannot start is restarted
        like any other (what kept it from starting may pass)."""
        if not self._started:
            workers = self._workers.values()
            everyone = len(workers) == self.config.server.workers
            self._started = everyone and all(w.listening.is_set() for w in workers)
        return self._started

    def _tell_systemd(self) -> None:
        """``READY=1`` once every worker listens (once: a restarted worker is not news),
        and ``WATCHDOG=1`` when one is due."""
        workers = self._workers.values()
        everyone = len(workers) == self.config.server.workers
        if not self._announced and everyone and all(w.listening.is_set() for w in workers):
            self._announced = True
            self._systemd.ready(self._status())
        interval = self._systemd.watchdog_interval
        if interval is not None and time.monotonic() >= self._next_ping:
            self._systemd.watchdog()
            self._next_ping = time.monotonic() + interval

    def _wait_at_most(self, seconds: float) -> float:
        """``seconds``, or less when the next watchdog ping is due sooner."""
        if self._systemd.watchdog_interval is None:
            return max(seconds, 0)
        return max(min(seconds, self._next_ping - time.monotonic()), 0)

    def _signal_all(self, sig: int) -> None:
        for worker in self._workers.values():
            pid = worker.process.pid
            if pid is not None and worker.process.is_alive():
                os.kill(pid, sig)

    def _stop_all(self) -> None:
        """SIGTERM to every worker; kill what still runs one second after the grace."""
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.config.server.shutdown_grace + KILL_AFTER_GRACE
        for worker in self._workers.values():
            worker.process.join(max(deadline - time.monotonic(), 0))
            if worker.process.is_alive():
                log.warning(
                    "worker did not stop in time; killed",
                    extra={"fields": {"worker": worker.number}},
                )
                worker.process.kill()
                worker.process.join()
        self._workers.clear()


def run_workers(config: Config, source: ConfigSource | None = None) -> int:
    """``consentgate serve`` with ``[server] workers`` above 1; ``source`` as for ``serve``."""
    return Supervisor(config, source).run()
