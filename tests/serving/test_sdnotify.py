"""The sd_notify protocol by hand: real AF_UNIX datagram sockets,
one in the file system (bound in tmp_path) and one in the abstract namespace."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from consentgate.serving import sdnotify
from consentgate.serving.sdnotify import (
    Notifier,
    notify,
    notify_address,
    ready_message,
    reloading_message,
    stopping_message,
    watchdog_interval,
)

TIMEOUT = 5.0


def datagram_socket(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(TIMEOUT)
    return sock


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = datagram_socket(path)
    try:
        yield sock, path
    finally:
        sock.close()


@pytest.fixture
def abstract_receiver() -> Iterator[tuple[socket.socket, str]]:
    name = f"consentgate-test-{uuid.uuid4().hex}"
    sock = datagram_socket("\0" + name)
    try:
        yield sock, "@" + name
    finally:
        sock.close()


def test_a_message_reaches_a_socket_in_the_file_system(
    receiver: tuple[socket.socket, str],
) -> None:
    sock, path = receiver
    assert notify("READY=1\nSTATUS=up", {"NOTIFY_SOCKET": path}) is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_a_leading_at_names_an_abstract_socket(
    abstract_receiver: tuple[socket.socket, str],
) -> None:
    sock, name = abstract_receiver
    assert notify_address({"NOTIFY_SOCKET": name}) == b"\0" + name[1:].encode()
    assert notify("WATCHDOG=1", {"NOTIFY_SOCKET": name}) is True
    assert sock.recv(4096) == b"WATCHDOG=1"


def test_each_helper_sends_its_message(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    environ = {"NOTIFY_SOCKET": path}
    assert sdnotify.ready("listening on http://127.0.0.1:8080", environ)
    assert sock.recv(4096).decode() == (
        f"READY=1\nMAINPID={os.getpid()}\nSTATUS=listening on http://127.0.0.1:8080"
    )
    assert sdnotify.stopping(environ)
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping"
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert sdnotify.reloading(environ)
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = sock.recv(4096).decode().split("\n")
    assert first == "RELOADING=1"
    assert second.startswith("MONOTONIC_USEC=")
    assert before <= int(second.removeprefix("MONOTONIC_USEC=")) <= after
    assert sdnotify.watchdog(environ)
    assert sock.recv(4096) == b"WATCHDOG=1"


@pytest.mark.parametrize("environ", [{}, {"NOTIFY_SOCKET": ""}])
def test_without_a_notify_socket_nothing_is_sent(environ: dict[str, str]) -> None:
    assert notify_address(environ) is None
    assert notify("READY=1", environ) is False
    assert Notifier(logging.getLogger("tests.sdnotify"), environ).enabled is False


def test_a_send_that_fails_returns_false_and_never_raises(tmp_path: Path) -> None:
    regular = tmp_path / "not-a-socket"
    regular.write_text("")
    stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stream.bind(str(tmp_path / "stream.sock"))
    stream.listen()
    try:
        for address in (
            str(tmp_path / "nobody-listens"),  # ENOENT
            str(regular),  # ECONNREFUSED
            str(tmp_path / "stream.sock"),  # a stream socket: EPROTOTYPE
            "relative/path.sock",  # neither absolute nor @abstract
            "@consentgate-nobody-" + uuid.uuid4().hex,  # an abstract name nobody bound
            "/" + "x" * 200,  # longer than sun_path
        ):
            assert notify("READY=1", {"NOTIFY_SOCKET": address}) is False, address
    finally:
        stream.close()


def test_a_full_queue_fails_within_the_send_timeout(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    sock = datagram_socket(path)  # bound and never read
    try:
        environ = {"NOTIFY_SOCKET": path}
        started = time.monotonic()
        sent = 0
        while notify("WATCHDOG=1", environ):
            sent += 1
            assert sent < 100_000, "the queue never filled"
        took = time.monotonic() - started
    finally:
        sock.close()
    assert sent > 0
    assert took < 5  # the one send that blocks gives up after SEND_TIMEOUT


def test_the_notifier_logs_the_first_failure_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("tests.sdnotify")
    notifier = Notifier(log, {"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled
    with caplog.at_level(logging.WARNING, logger="tests.sdnotify"):
        assert notifier.ready("listening") is False
        assert notifier.watchdog() is False
        assert notifier.stopping() is False
    records = [r for r in caplog.records if r.name == "tests.sdnotify"]
    assert [r.getMessage() for r in records] == ["could not notify the service manager"]
    assert records[0].levelno == logging.WARNING
    fields = records[0].__dict__["fields"]
    assert fields["message"] == "READY=1"
    assert fields["socket"] == str(tmp_path / "gone.sock")
    assert fields["reason"]


def test_the_notifier_sends_when_it_can(
    receiver: tuple[socket.socket, str], caplog: pytest.LogCaptureFixture
) -> None:
    sock, path = receiver
    notifier = Notifier(logging.getLogger("tests.sdnotify"), {"NOTIFY_SOCKET": path})
    with caplog.at_level(logging.WARNING, logger="tests.sdnotify"):
        assert notifier.reloading()
        assert notifier.ready("reloaded")
    assert sock.recv(4096).startswith(b"RELOADING=1\nMONOTONIC_USEC=")
    assert sock.recv(4096).endswith(b"\nSTATUS=reloaded")
    assert not [r for r in caplog.records if r.name == "tests.sdnotify"]


def test_messages() -> None:
    assert ready_message("a\nb  c", pid=42) == "READY=1\nMAINPID=42\nSTATUS=a b c"
    assert ready_message(pid=7) == "READY=1\nMAINPID=7"
    assert stopping_message() == "STOPPING=1\nSTATUS=stopping"
    assert stopping_message(None) == "STOPPING=1"
    assert reloading_message(123) == "RELOADING=1\nMONOTONIC_USEC=123"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "400000"}, 0.2),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "²"}, None),  # a digit to str.isdigit, not to int()
        ({"WATCHDOG_USEC": ""}, None),
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1000"}, 0.2),  # pid=1000 below
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1001"}, None),  # meant for another
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "x"}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    environ: dict[str, str], expected: float | None
) -> None:
    assert watchdog_interval(environ, pid=1000) == expected


def test_watchdog_pid_is_compared_with_this_process() -> None:
    mine = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(mine) == 0.5
    assert Notifier(logging.getLogger("tests.sdnotify"), mine).watchdog_interval == 0.5
    other = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert watchdog_interval(other) is None
