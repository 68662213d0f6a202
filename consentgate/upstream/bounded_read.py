"""Reading a whole body with a bound, for the few bodies the gate must look into:
the forms of the authorization endpoint and of the consent page, registration
responses, admin API bodies, the upstream's metadata.

``StreamReader.read(n)`` returns as soon as *some* bytes are there, so a form or a
JSON document that arrives in two TCP segments would be read half. The gate reads
until the end of the body, and stops at a limit instead of buffering without end.
It works on anything with ``readany`` (aiohttp's request ``content``, an upstream
:class:`~consentgate.upstream.responses.ResponseBody`), so it needs no aiohttp.
"""

from __future__ import annotations

from typing import Protocol


class ReadableBody(Protocol):
    """What :func:`read_up_to` reads: a request's ``content`` or an upstream body."""

    async def readany(self) -> bytes: ...


async def read_up_to(stream: ReadableBody, limit: int) -> tuple[bytes, bool]:
    """The body, and whether it ended within ``limit`` bytes.

    When it did not, what was read so far is returned (at most ``limit`` plus one
    chunk), so a caller relaying the body can send it on before the rest.
    """
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await stream.readany()
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            return b"".join(chunks), False
