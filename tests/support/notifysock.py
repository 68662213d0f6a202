"""What systemd does with ``NOTIFY_SOCKET``, for tests of a real gate process: a bound
``AF_UNIX`` datagram socket read with the sender's pid from ``SCM_CREDENTIALS``."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

TIMEOUT = 20.0
UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass
class Message:
    pid: int  # the sender, from SCM_CREDENTIALS
    fields: dict[str, str]
    at: float  # time.monotonic() on arrival

    def __contains__(self, item: str) -> bool:
        key, _, value = item.partition("=")
        return self.fields.get(key) == value


class NotifySocket:
    """What systemd does with ``NOTIFY_SOCKET``: a bound datagram socket, read with the
    sender's credentials."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._sock.setblocking(False)

    def close(self) -> None:
        self._sock.close()

    def _read(self) -> Message | None:
        try:
            data, ancillary, _, _ = self._sock.recvmsg(4096, socket.CMSG_SPACE(UCRED.size))
        except BlockingIOError:
            return None
        pid = -1
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = UCRED.unpack(payload[: UCRED.size])[0]
        fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
        return Message(pid, fields, time.monotonic())

    async def next(self, timeout: float = TIMEOUT) -> Message:
        """The next datagram, waiting at most ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (message := self._read()) is None:
            await self._readable(max(deadline - loop.time(), 0))
        return message

    async def until(self, item: str, timeout: float = TIMEOUT) -> list[Message]:
        """Every datagram up to and including the first with ``item`` (``READY=1``),
        within ``timeout`` seconds in all."""
        deadline = asyncio.get_running_loop().time() + timeout
        received = [await self.next(timeout)]
        while item not in received[-1]:
            received.append(await self.next(deadline - asyncio.get_running_loop().time()))
        return received

    async def _readable(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()
        fd = self._sock.fileno()

        def wake() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await asyncio.wait_for(readable, timeout)
        except TimeoutError:
            raise TimeoutError("no notification arrived in time") from None
        finally:
            loop.remove_reader(fd)

    def pending(self) -> list[Message]:
        """What has arrived and not been read yet."""
        found = []
        while (message := self._read()) is not None:
            found.append(message)
        return found
