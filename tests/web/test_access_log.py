"""The access logger's two sinks write the same line.

``serve`` hands aiohttp's access logger the batched :class:`AccessLines`, which
reads the request's state and writes the line itself; the tests and an embedding
application hand it the ``consentgate.access`` logger. Both must write the same bytes.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from consentgate.logs.line_writers import AccessLines
from consentgate.logs.loggers import ACCESS, configure_logging
from consentgate.web.access import AccessLogger
from consentgate.web.appkeys import CLIENT_IP, REQUEST_ID, SENDING, UPSTREAM_SECONDS
from consentgate.web.guards.inflight import Sending

#: configure_logging and serve change the consentgate logger: put back after each test.
pytestmark = pytest.mark.usefixtures("restore_logging")


def request_with(
    target: str, *, request_id: bool, client: str | None, upstream: bool, sending: Sending | None
) -> web.Request:
    request = make_mocked_request("POST", target)
    if request_id:
        request[REQUEST_ID] = "0123456789abcdef"
    if client is not None:
        request[CLIENT_IP] = client
    if upstream:
        request[UPSTREAM_SECONDS] = 0.000812
    if sending is not None:
        request[SENDING] = sending
    return request


@pytest.mark.parametrize("format", ["text", "json"])
@pytest.mark.parametrize("static", [None, {"worker": 3}])
@pytest.mark.parametrize(
    "target", ["/mcp", "/mcp?session=1", "/auth/callback?code=SECRET&state=S&scope=openid"]
)
@pytest.mark.parametrize("request_id", [True, False])
@pytest.mark.parametrize("client", [None, "192.0.2.7", 'not "an" address'])
@pytest.mark.parametrize("upstream", [True, False])
@pytest.mark.parametrize("sending", [None, Sending(status=200), Sending(status=200, cut=True)])
def test_the_batched_line_is_the_logged_line(
    *,
    format: str,
    static: dict[str, int] | None,
    target: str,
    request_id: bool,
    client: str | None,
    upstream: bool,
    sending: Sending | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0625)
    request = request_with(
        target, request_id=request_id, client=client, upstream=upstream, sending=sending
    )
    response = web.Response(text="{}", status=201)

    through_logging = io.StringIO()
    configure_logging(format=format, stream=through_logging, static=static)
    AccessLogger(logging.getLogger(ACCESS), "").log(request, response, 0.0012345)

    batched = io.StringIO()
    scheduled: list[Callable[[], None]] = []
    lines = AccessLines(batched, scheduled.append, format=format, static=static)
    AccessLogger(lines, "").log(request, response, 0.0012345)
    (flush,) = scheduled
    flush()

    assert batched.getvalue() == through_logging.getvalue() != ""
    assert "SECRET" not in batched.getvalue()


def test_a_request_s_state_is_read_from_aiohttp_s_dict() -> None:
    """The access logger reads ``request._state`` (aiohttp 3.x) rather than calling
    ``request.get`` four times; if aiohttp renames it, the logger still works (it falls
    back to the request) but slower, and this test says so."""
    request = make_mocked_request("GET", "/mcp")
    request[REQUEST_ID] = "abc"
    state = getattr(request, "_state", None)
    assert type(state) is dict
    assert state[REQUEST_ID] == "abc"
    assert UPSTREAM_SECONDS not in state


def test_an_access_logger_switched_off_writes_nothing() -> None:
    stream = io.StringIO()
    lines = AccessLines(stream, lambda flush: None, enabled=False)
    AccessLogger(lines, "").log(make_mocked_request("GET", "/mcp"), web.Response(), 0.001)
    lines.flush()
    assert stream.getvalue() == ""
