"""Reading a whole body with a bound, for the few bodies the gate must look into:
the forms of the authorization endpoint and of the consent page, registration
responses, the upstream's metadata.

``StreamReader.read(n)`` returns as soon as *some* bytes are there, so a form or a
JSON document that arrives in two TCP segments would be read half. The gate reads
until the end of the body, and stops at a limit instead of buffering without end.
"""

from __future__ import annotations

import asyncio
from typing import Final, Protocol

from aiohttp import web

from consentgate.core.oauth import OAuthRequestError

#: A form the gate reads (an authorization request by POST, a consent answer).
MAX_FORM_BYTES: Final = 64 * 1024


class ReadableBody(Protocol):
    """What :func:`read_up_to` reads: a request's ``content`` or an upstream body."""

    async def readany(self) -> bytes: ...


class FormTooLarge(Exception):
    """The form was longer than :data:`MAX_FORM_BYTES` (answered with a 413)."""


class RequestBodyStalled(Exception):
    """The client stopped sending a request body it announced: no byte arrived for
    ``server.body_timeout`` seconds (``web/app.in_context`` answers 408 and closes the
    connection, RFC 9110 section 15.5.9; nginx's ``client_body_timeout``)."""


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


async def read_form(request: web.Request, within: float) -> str:
    """A urlencoded POST body, bounded in size and in time (the whole form, at most
    :data:`MAX_FORM_BYTES`, within ``within`` seconds: else
    :class:`RequestBodyStalled`); other content types are refused."""
    if not request.body_exists:
        return ""
    if request.content_type != "application/x-www-form-urlencoded":
        raise OAuthRequestError(
            "invalid_request", "A POST here must be an application/x-www-form-urlencoded form."
        )
    try:
        async with asyncio.timeout(within):
            body, complete = await read_up_to(request.content, MAX_FORM_BYTES)
    except TimeoutError:
        raise RequestBodyStalled from None
    if not complete:
        raise FormTooLarge
    try:
        return body.decode("ascii")
    except UnicodeDecodeError:
        raise OAuthRequestError("invalid_request", "The form is not urlencoded ASCII.") from None
