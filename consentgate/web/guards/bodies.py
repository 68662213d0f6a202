"""Reading the form of a request with a bound in size and in time: the forms of the
authorization endpoint and of the consent page.

The whole body is read with :func:`consentgate.upstream.bounded_read.read_up_to`
(a form that arrives in two TCP segments is not read half), within
``server.body_timeout``.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from consentgate.core.oauth.oauth_errors import InvalidRequest
from consentgate.upstream.bounded_read import read_up_to

#: A form the gate reads (an authorization request by POST, a consent answer).
MAX_FORM_BYTES: Final = 64 * 1024


class FormTooLarge(Exception):
    """The form was longer than :data:`MAX_FORM_BYTES` (answered with a 413)."""


class RequestBodyStalled(Exception):
    """The client stopped sending a request body it announced: no byte arrived for
    ``server.body_timeout`` seconds (``serving/application.in_context`` answers 408 and closes the
    connection, RFC 9110 section 15.5.9; nginx's ``client_body_timeout``)."""


async def read_form(request: web.Request, within: float) -> str:
    """A urlencoded POST body, bounded in size and in time (the whole form, at most
    :data:`MAX_FORM_BYTES`, within ``within`` seconds: else
    :class:`RequestBodyStalled`); other content types are refused."""
    if not request.body_exists:
        return ""
    if request.content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("A POST here must be an application/x-www-form-urlencoded form.")
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
        raise InvalidRequest("The form is not urlencoded ASCII.") from None
