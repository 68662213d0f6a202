"""Telling systemd how the gate is doing: the ``sd_notify`` datagram protocol, by hand.

Under ``Type=notify`` (systemd.service(5)) the service manager starts the gate with
``NOTIFY_SOCKET`` in its environment and considers it started only when the gate says
``READY=1`` on that socket: ``systemctl start`` returns, and units ordered after it
start, once the gate listens rather than once the process exists. The protocol is
small enough not to need a dependency (sd_notify(3), "Notes"): one ``AF_UNIX``
``SOCK_DGRAM`` datagram per message, newline-separated ``VARIABLE=value`` lines, sent
to the path in ``NOTIFY_SOCKET`` (or to an abstract socket when it starts with ``@``).

Nothing here raises on a failed send: a gate that cannot reach the service manager
still serves. Every function returns whether the message was sent, and does nothing
(returns ``False``) when ``NOTIFY_SOCKET`` is unset, that is when no service manager
asked for notifications (a shell, a container, the tests). :class:`Notifier` binds
one environment and logs the first failure once on the caller's logger.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from typing import Final

#: The variables the service manager sets for this protocol (a worker process clears
#: them: only the process systemd started may notify, sd_notify(3) ``unset_environment``).
NOTIFY_SOCKET: Final = "NOTIFY_SOCKET"
WATCHDOG_USEC: Final = "WATCHDOG_USEC"
WATCHDOG_PID: Final = "WATCHDOG_PID"
VARIABLES: Final = (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID)

#: The longest a send may block when the service manager does not read its socket
#: (its queue is full): long enough for a busy PID 1, short enough not to stall the
#: event loop noticeably.
SEND_TIMEOUT: Final = 0.5


def notify_address(environ: Mapping[str, str] = os.environ) -> bytes | None:
    """The ``AF_UNIX`` address in ``NOTIFY_SOCKET``, or ``None`` when it is unset or empty.

    An absolute path names a socket in the file system; a leading ``@`` names one in the
    abstract namespace, where the kernel's name starts with a NUL byte instead
    (sd_notify(3); unix(7), "Abstract sockets"). Other forms (systemd 254's ``vsock:``)
    are not supported: :func:`notify` reports them as a failed send.
    """
    value = environ.get(NOTIFY_SOCKET, "")
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + os.fsencode(value[1:])
    return os.fsencode(value)


def notify(state: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send ``state`` (``VARIABLE=value`` lines) to the service manager; whether it was sent.

    ``False`` without trying when ``NOTIFY_SOCKET`` is unset; ``False`` on any error
    (no such socket, permission, a full queue past :data:`SEND_TIMEOUT`), never an
    exception: a notification is advice to the service manager, not part of serving.
    """
    address = notify_address(environ)
    if address is None:
        return False
    try:
        _send(state, address)
    except (OSError, ValueError):
        return False
    return True


def _send(state: str, address: bytes) -> None:
    """Send ``state`` as one datagram, raising what went wrong (``OSError``, ``ValueError``)."""
    if not address.startswith((b"/", b"\0")):
        raise ValueError(f"{NOTIFY_SOCKET} is neither an absolute path nor @abstract")
    data = state.encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(SEND_TIMEOUT)
        sent = sock.sendto(data, address)
    if sent != len(data):  # a datagram goes whole or not at all; be sure
        raise OSError(f"short write to {NOTIFY_SOCKET}: {sent} of {len(data)} bytes")


def ready_message(status: str | None = None, pid: int | None = None) -> str:
    """``READY=1``: startup (or a reload) is finished and the gate serves.

    ``MAINPID`` names the process systemd should watch (ours: with ``Type=notify`` it is
    already the main process, saying it costs nothing and is right under a wrapper);
    ``STATUS`` is the free-form line ``systemctl status`` shows (systemd.service(5)).
    """
    lines = ["READY=1", f"MAINPID={os.getpid() if pid is None else pid}"]
    if status:
        lines.append(f"STATUS={_one_line(status)}")
    return "\n".join(lines)


def stopping_message(status: str | None = "stopping") -> str:
    """``STOPPING=1``: the gate has begun to stop (it drains within ``shutdown_grace``)."""
    return "\n".join(["STOPPING=1", *([f"STATUS={_one_line(status)}"] if status else [])])


def reloading_message(monotonic_usec: int | None = None) -> str:
    """``RELOADING=1`` with ``MONOTONIC_USEC``: a reload has begun; ``READY=1`` follows.

    ``MONOTONIC_USEC`` is ``CLOCK_MONOTONIC`` in microseconds when the reload began: the
    ``Type=notify-reload`` protocol of systemd 253 and later requires it, to tell this
    reload from an earlier one; an older systemd (``Type=notify``, Debian 12's 252)
    ignores the field and keeps the unit "reloading" until ``READY=1``.
    """
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return f"RELOADING=1\nMONOTONIC_USEC={now if monotonic_usec is None else monotonic_usec}"


WATCHDOG_MESSAGE: Final = "WATCHDOG=1"


def watchdog_interval(
    environ: Mapping[str, str] = os.environ, pid: int | None = None
) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings, or ``None`` when no watchdog is asked for.

    With ``WatchdogSec=`` the service manager sets ``WATCHDOG_USEC`` and kills the gate
    when no ping arrives within it; sd_watchdog_enabled(3) advises pinging at half of
    it. ``WATCHDOG_PID``, when set, names the process the watchdog is meant for: any
    other process (a child that inherited the environment) must not ping.
    """
    usec = _positive_int(environ.get(WATCHDOG_USEC))
    if usec is None:
        return None
    if WATCHDOG_PID in environ:
        meant_for = _positive_int(environ[WATCHDOG_PID])
        if meant_for is None or meant_for != (os.getpid() if pid is None else pid):
            return None
    return usec / 2 / 1_000_000


def ready(status: str | None = None, environ: Mapping[str, str] = os.environ) -> bool:
    """Send :func:`ready_message` for this process."""
    return notify(ready_message(status), environ)


def stopping(environ: Mapping[str, str] = os.environ) -> bool:
    """Send :func:`stopping_message`."""
    return notify(stopping_message(), environ)


def reloading(environ: Mapping[str, str] = os.environ) -> bool:
    """Send :func:`reloading_message`, stamped now."""
    return notify(reloading_message(), environ)


def watchdog(environ: Mapping[str, str] = os.environ) -> bool:
    """Ping the watchdog (at the interval :func:`watchdog_interval` gives)."""
    return notify(WATCHDOG_MESSAGE, environ)


class Notifier:
    """One process's line to its service manager: the helpers above, bound to an
    environment, logging the first failed send (one WARNING on ``log``, with the
    reason) and staying quiet about the next ones, which would only repeat it."""

    def __init__(self, log: logging.Logger, environ: Mapping[str, str] = os.environ) -> None:
        self._log = log
        self._environ = environ
        self._warned = False
        self.watchdog_interval = watchdog_interval(environ)

    @property
    def enabled(self) -> bool:
        """Whether a service manager asked for notifications (``NOTIFY_SOCKET`` is set)."""
        return notify_address(self._environ) is not None

    def send(self, state: str) -> bool:
        """Send ``state``; whether it was sent (never raises, like :func:`notify`)."""
        address = notify_address(self._environ)
        if address is None:
            return False
        try:
            _send(state, address)
        except (OSError, ValueError) as exc:
            if not self._warned:
                self._warned = True
                self._log.warning(
                    "could not notify the service manager",
                    extra={
                        "fields": {
                            "socket": self._environ.get(NOTIFY_SOCKET),
                            "message": state.split("\n", 1)[0],
                            "reason": str(exc),
                        }
                    },
                )
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send(ready_message(status))

    def stopping(self) -> bool:
        return self.send(stopping_message())

    def reloading(self) -> bool:
        return self.send(reloading_message())

    def watchdog(self) -> bool:
        return self.send(WATCHDOG_MESSAGE)


def _positive_int(value: str | None) -> int | None:
    if value is None or not (value.isascii() and value.strip().isdigit()):
        return None
    number = int(value)
    return number if number > 0 else None


def _one_line(text: str) -> str:
    """A value must not contain a newline: it would start another ``VARIABLE=``."""
    return " ".join(text.split())
