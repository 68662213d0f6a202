"""The relay against a real aiohttp upstream on loopback: one test per rule."""

from __future__ import annotations

import asyncio
import gzip
import logging
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from tests.conftest import ErrorLog, StartGate, StartUpstream
from tests.support import rawhttp


@dataclass
class Seen:
    method: str
    raw_path: str
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass
class Recorder:
    requests: list[Seen] = field(default_factory=list)

    @property
    def last(self) -> Seen:
        return self.requests[-1]


def echo_app(recorder: Recorder) -> web.Application:
    """An upstream that records each request and answers with a few known shapes."""

    async def record(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorder.requests.append(Seen(request.method, request.raw_path, request.headers, body))
        return web.Response(text="ok", headers={"X-Upstream": "yes"})

    async def cookies(request: web.Request) -> web.StreamResponse:
        recorder.requests.append(Seen(request.method, request.raw_path, request.headers, b""))
        response = web.Response(text="cookies")
        response.headers.add("Set-Cookie", "a=1; Path=/")
        response.headers.add("Set-Cookie", "b=2; Path=/; HttpOnly")
        response.headers.add("Set-Cookie", "c=3; Path=/; Secure")
        return response

    async def hop(request: web.Request) -> web.StreamResponse:
        recorder.requests.append(Seen(request.method, request.raw_path, request.headers, b""))
        return web.Response(
            text="hop",
            headers={
                "Connection": "X-Upstream-Hop",
                "X-Upstream-Hop": "secret",
                "Keep-Alive": "timeout=5",
                "X-Normal": "kept",
            },
        )

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("https://idp.example/authorize?state=abc")

    async def self_redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently(f"http://{request.host}/moved/?x=1")

    async def gzipped(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorder.requests.append(Seen(request.method, request.raw_path, request.headers, body))
        return web.Response(
            body=gzip.compress(b"hello " * 100),
            headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
        )

    async def no_content(request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    async def no_metadata(request: web.Request) -> web.StreamResponse:
        return web.Response(status=404)  # the gate's own read at start: not a relay

    app = web.Application(client_max_size=1024**3)
    app.router.add_get("/.well-known/oauth-authorization-server", no_metadata)
    app.router.add_route("*", "/cookies", cookies)
    app.router.add_route("*", "/hop", hop)
    app.router.add_route("*", "/redirect", redirect)
    app.router.add_route("*", "/self-redirect", self_redirect)
    app.router.add_route("*", "/gzip", gzipped)
    app.router.add_route("*", "/empty", no_content)
    app.router.add_route("*", "/{tail:.*}", record)
    return app


@pytest.fixture
async def echo(start_upstream: StartUpstream) -> tuple[str, Recorder]:
    recorder = Recorder()
    return await start_upstream(echo_app(recorder), auto_decompress=False), recorder


async def test_get_is_relayed_with_status_body_and_headers(
    echo: tuple[str, Recorder], start_gate: StartGate, client: aiohttp.ClientSession
) -> None:
    upstream, recorder = echo
    gate = await start_gate(upstream)
    async with client.get(f"{gate.url}/hello?x=1", headers={"X-Custom": "v"}) as response:
        assert response.status == 200
        assert await response.text() == "ok"
        assert response.headers["X-Upstream"] == "yes"
        assert response.headers["X-Request-Id"]
    assert recorder.last.raw_path == "/hello?x=1"
    assert recorder.last.headers["X-Custom"] == "v"


async def test_post_body_is_relayed(
    echo: tuple[str, Recorder], start_gate: StartGate, client: aiohttp.ClientSession
) -> None:
    upstream, recorder = echo
    gate = await start_gate(upstream)
    payload = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
    async with client.post(
        f"{gate.url}/mcp", data=payload, headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 200
    assert recorder.last.method == "POST"
    assert recorder.last.body == payload
    assert recorder.last.headers["Content-Type"] == "application/json"


async def test_hop_by_hop_headers_and_those_named_in_connection_are_removed(
    echo: tuple[str, Recorder], start_gate: StartGate
) -> None:
    upstream, recorder = echo
    gate = await start_gate(upstream)
    response = await rawhttp.request(
        gate.url,
        "/hop",
        headers=[
            ("Connection", "X-Client-Hop"),
            ("X-Client-Hop", "private"),
            ("Keep-Alive", "timeout=99"),
            ("Proxy-Authorization", "Basic c2VjcmV0"),
            ("TE", "trailers"),
            ("Upgrade", "websocket"),
            ("X-End-To-End", "kept"),
        ],
    )
    assert response.status == 200
    seen = recorder.last.headers
    for name in ("X-Client-Hop", "Keep-Alive", "Proxy-Authorization", "TE", "Upgrade"):
        assert name not in seen, name
    assert seen["X-End-To-End"] == "kept"
    assert "X-Upstream-Hop" not in response.headers
    assert response.headers.get("Keep-Alive") is None
    assert response.headers["X-Normal"] == "kept"


async def test_chunked_request_body_arrives_whole_and_transfer_encoding_is_not_copied(
    echo: tuple[str, Recorder], start_gate: StartGate
) -> None:
    upstream, recorder = echo
    gate = await start_gate(upstream)
    chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    response = await rawhttp.request(
        gate.url,
        "/upload",
        method="POST",
        headers=[("Transfer-Encoding", "chunked")],
        body=chunked,
    )
    assert response.status == 200
    assert recorder.last.body == b"hello world"


async def test_several_set_cookie_headers_survive(
    echo: tuple[str, Recorder], start_gate: StartGate
) -> None:
    upstream, _ = echo
    gate = await start_gate(upstream)
    response = await rawhttp.request(gate.url, "/cookies")
    assert response.headers.getall("Set-Cookie") == [
        "a=1; Path=/",
        "b=2; Path=/; HttpOnly",
        "c=3; Path=/; Secure",
    ]


@pytest.mark.parametrize(
    "target",
    [
        "/a%2Fb/%7Euser/x%20y?redirect_uri=https%3A%2F%2Fclient.example%2Fcb&s=a+b",
        "/files/%E2%82%AC?q=%25%32%46",
        "/mcp?x=1&x=2&empty=&flag",
        "/path;matrix=1?a=%00",
    ],
)
async def test_path_and_query_are_forwarded_byte_exact(
    echo: tuple[str, Recorder], start_gate: StartGate, target: str
) -> None:
    upstream, recorder = echo
    gate = await start_gate(upstream)
    response = await rawhttp.request(gate.url, target)
    assert response.status == 200
    assert recorder.last.raw_path == target


async def test_redirects_are_relayed_not_followed(
    echo: tuple[str, Recorder], start_gate: StartGate, client: aiohttp.ClientSession
) -> None:
    upstream, _ = echo
    gate = await start_gate(upstream)
    async with client.get(f"{gate.url}/redirect", allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"] == "https://idp.example/authorize?state=abc"


async def test_redirect_to_the_upstream_origin_is_rewritten_to_the_public_origin(
    echo: tuple[str, Recorder], start_gate: StartGate, client: aiohttp.ClientSession
) -> None:
    upstream, _ = echo
    gate = await start_gate(upstream)
    async with client.get(f"{gate.url}/self-redirect", allow_redirects=False) as response:
        assert response.status == 301
        assert response.headers["Location"] == f"{gate.url}/moved/?x=1"


async def test_bodies_are_not_decompressed_either_way(
    echo: tuple[str, Recorder], start_gate: StartGate, client: aiohttp.ClientSession
) -> None:
    upstream, recorder = echo
    gate = await start_gate(upstream)
    compressed = gzip.compress(b'{"a": 1}')
    async with client.post(
        f"{gate.url}/gzip",
        data=compressed,
        headers={"Content-Encoding": "gzip", "Accept-Encoding": "gzip"},
    ) as response:
        body = await response.read()
        assert response.headers["Content-Encoding"] == "gzip"
    assert body == gzip.compress(b"hello " * 100)
    assert recorder.last.body == compressed
    assert recorder.last.headers["Content-Encoding"] == "gzip"


async def test_no_content_and_head_responses_have_no_body(
    echo: tuple[str, Recorder], start_gate: StartGate
) -> None:
    upstream, recorder = echo
    gate = await start_gate(upstream)
    empty = await rawhttp.request(gate.url, "/empty")
    assert empty.status == 204
    assert empty.body == b""
    head = await rawhttp.request(gate.url, "/anything", method="HEAD")
    assert head.status == 200
    assert recorder.last.method == "HEAD"


async def test_upstream_cookies_are_not_kept_between_clients(
    echo: tuple[str, Recorder], start_gate: StartGate
) -> None:
    upstream, recorder = echo
    gate = await start_gate(upstream)
    await rawhttp.request(gate.url, "/cookies")
    await rawhttp.request(gate.url, "/second-user")
    assert "Cookie" not in recorder.last.headers


async def test_gate_cookies_are_not_relayed_but_others_are(
    echo: tuple[str, Recorder], start_gate: StartGate
) -> None:
    upstream, recorder = echo
    gate = await start_gate(upstream)
    await rawhttp.request(
        gate.url,
        "/x",
        headers=[("Cookie", "session=abc; cg_bid=secret-browser-id; theme=dark")],
    )
    assert recorder.last.headers["Cookie"] == "session=abc; theme=dark"
    await rawhttp.request(gate.url, "/x", headers=[("Cookie", "cg_bid=only-ours")])
    assert "Cookie" not in recorder.last.headers


async def test_forwarded_headers_from_an_untrusted_peer_are_replaced(
    echo: tuple[str, Recorder], start_gate: StartGate
) -> None:
    upstream, recorder = echo
    gate = await start_gate(upstream)
    await rawhttp.request(
        gate.url,
        "/x",
        headers=[
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example"),
            ("Forwarded", "for=6.6.6.6;proto=https"),
            ("X-Real-IP", "6.6.6.6"),
            ("X-Request-Id", "chosen-by-attacker"),
        ],
    )
    seen = recorder.last.headers
    assert seen.getall("X-Forwarded-For") == ["127.0.0.1"]
    assert seen["X-Forwarded-Proto"] == "http"
    assert seen["X-Forwarded-Host"] == gate.url.split("://")[1]
    assert "Forwarded" not in seen
    assert "X-Real-IP" not in seen
    assert seen["X-Request-Id"] != "chosen-by-attacker"


async def test_x_forwarded_host_is_the_public_host_not_the_clients_host_header(
    echo: tuple[str, Recorder], start_gate: StartGate
) -> None:
    """#10.6: an upstream that builds absolute URLs from X-Forwarded-Host must not get
    the Host an untrusted client chose."""
    upstream, recorder = echo
    gate = await start_gate(upstream, public_url="https://mcp.example.com")
    await rawhttp.request(gate.url, "/x", host_header="attacker.example")
    assert recorder.last.headers["X-Forwarded-Host"] == "mcp.example.com"


@pytest.mark.parametrize("trusted", [False, True])
async def test_routing_override_headers_never_reach_the_upstream(
    echo: tuple[str, Recorder], start_gate: StartGate, trusted: bool
) -> None:
    """#10.6: ``X-Original-URL: /authorize`` on a harmless path must not route an
    upstream that honours it to the authorization endpoint; identity headers that
    name the client count only from a trusted proxy."""
    upstream, recorder = echo
    sections = {"server": {"trusted_proxies": ["127.0.0.1/32"]}} if trusted else {}
    gate = await start_gate(upstream, **sections)
    overrides = [
        ("X-Original-URL", "/authorize?client_id=x"),
        ("X-Rewrite-URL", "/authorize"),
        ("X-HTTP-Method-Override", "POST"),
        ("X-HTTP-Method", "POST"),
        ("X-Method-Override", "POST"),
    ]
    identity = [
        ("X-Forwarded-Scheme", "https"),
        ("X-Forwarded-Ssl", "on"),
        ("X-Forwarded-Server", "evil"),
        ("X-Host", "evil.example"),
        ("True-Client-IP", "6.6.6.6"),
        ("X-Client-IP", "6.6.6.6"),
        ("CF-Connecting-IP", "6.6.6.6"),
    ]
    await rawhttp.request(gate.url, "/harmless", headers=overrides + identity)
    seen = recorder.last.headers
    for name, _ in overrides:
        assert name not in seen
    for name, value in identity:
        assert (seen.get(name) == value) is trusted


async def test_the_server_header_is_neutral_on_relayed_and_own_responses(
    echo: tuple[str, Recorder], start_gate: StartGate
) -> None:
    upstream, _ = echo
    gate = await start_gate(upstream)
    for path in ("/x", "/_consentgate/healthz", "/authorize"):
        response = await rawhttp.request(gate.url, path)
        assert response.headers.getall("Server") == ["consentgate"], path


async def test_forwarded_headers_from_a_trusted_proxy_are_kept_and_extended(
    echo: tuple[str, Recorder], start_gate: StartGate
) -> None:
    upstream, recorder = echo
    gate = await start_gate(upstream, server={"trusted_proxies": ["127.0.0.0/8"]})
    response = await rawhttp.request(
        gate.url,
        "/x",
        headers=[
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "mcp.example.com"),
            ("X-Request-Id", "from-the-tls-terminator"),
        ],
    )
    seen = recorder.last.headers
    assert seen["X-Forwarded-For"] == "203.0.113.7, 127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "https"
    assert seen["X-Forwarded-Host"] == "mcp.example.com"
    assert seen["X-Request-Id"] == "from-the-tls-terminator"
    assert response.headers["X-Request-Id"] == "from-the-tls-terminator"


@pytest.mark.parametrize(("mode", "expect_public"), [("upstream", False), ("preserve", True)])
async def test_host_header_follows_the_configured_mode(
    echo: tuple[str, Recorder], start_gate: StartGate, mode: str, expect_public: bool
) -> None:
    upstream, recorder = echo
    gate = await start_gate(upstream, upstream={"host_header": mode})
    await rawhttp.request(gate.url, "/x")
    expected = gate.url.split("://")[1] if expect_public else upstream.split("://")[1]
    assert recorder.last.headers["Host"] == expected


async def test_unreachable_upstream_gives_502_as_json_or_page(
    error_log: ErrorLog,
    start_gate: StartGate,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.conftest import bound_socket

    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    gate = await start_gate(f"http://127.0.0.1:{port}")
    with caplog.at_level(logging.WARNING, logger="consentgate"):
        for _ in range(3):
            async with client.get(f"{gate.url}/x") as response:
                assert response.status == 502
    # One WARNING with the error class for the outage, not one per request.
    (warning,) = [r for r in caplog.records if r.getMessage() == "upstream unavailable"]
    fields = warning.fields  # type: ignore[attr-defined]
    assert (fields["kind"], fields["error"]) == ("unreachable", "UpstreamConnectError")
    assert fields["reason"].startswith("ConnectionRefusedError")
    assert warning.exc_info is None
    async with client.get(f"{gate.url}/x", headers={"Accept": "application/json"}) as response:
        assert response.status == 502
        document = await response.json()
        assert document["error"] == "bad_gateway"
        assert "Traceback" not in await response.text()
    async with client.get(f"{gate.url}/x", headers={"Accept": "text/html"}) as response:
        assert response.status == 502
        page = await response.text()
        assert "unreachable" in error_log(response)
        assert "unreachable" not in page and "Please try again in a minute" in page
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


async def test_upstream_that_does_not_answer_in_time_gives_504(
    start_upstream: StartUpstream,
    start_gate: StartGate,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/slow", slow)
    upstream = await start_upstream(app)
    gate = await start_gate(upstream, upstream={"read_timeout": 0.3})
    with caplog.at_level(logging.WARNING, logger="consentgate"):
        async with client.get(f"{gate.url}/slow") as response:
            assert response.status == 504
            assert (await response.json())["error"] == "gateway_timeout"
    release.set()
    (warning,) = [r for r in caplog.records if r.getMessage() == "upstream unavailable"]
    assert warning.fields["kind"] == "timeout"  # type: ignore[attr-defined]


async def test_an_upstream_name_that_does_not_resolve_is_a_warning_naming_dns(
    start_gate: StartGate, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    gate = await start_gate("http://consentgate-upstream.invalid:8000")  # RFC 6761: never resolves
    with caplog.at_level(logging.WARNING, logger="consentgate"):
        async with client.get(f"{gate.url}/x") as response:
            assert response.status == 502
    (warning,) = [r for r in caplog.records if r.getMessage() == "upstream unavailable"]
    fields = warning.fields  # type: ignore[attr-defined]
    assert (fields["kind"], fields["error"]) == ("unreachable", "UpstreamConnectError")
    assert fields["reason"].startswith("gaierror: ")  # the resolver's error, named


async def test_failure_after_the_response_started_aborts_the_connection(
    start_upstream: StartUpstream, start_gate: StartGate, client: aiohttp.ClientSession
) -> None:
    async def breaks_off(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100000"})
        await response.prepare(request)
        await response.write(b"x" * 1000)
        assert request.transport is not None
        request.transport.abort()
        return response

    app = web.Application()
    app.router.add_get("/break", breaks_off)
    upstream = await start_upstream(app)
    gate = await start_gate(upstream)
    async with client.get(f"{gate.url}/break") as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_body_over_the_limit_gives_413_without_reaching_upstream(
    echo: tuple[str, Recorder], start_gate: StartGate, client: aiohttp.ClientSession
) -> None:
    upstream, recorder = echo
    gate = await start_gate(upstream, server={"max_body_size": 1000})
    async with client.post(f"{gate.url}/upload", data=b"x" * 1001) as response:
        assert response.status == 413
    assert recorder.requests == []

    async def chunks() -> object:
        for _ in range(10):
            yield b"y" * 500

    async with client.post(f"{gate.url}/upload", data=chunks()) as response:
        assert response.status == 413
    async with client.post(f"{gate.url}/upload", data=b"x" * 1000) as response:
        assert response.status == 200


async def test_client_disconnect_cancels_the_upstream_request(
    start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def hangs(request: web.Request) -> web.Response:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return web.Response(text="never")

    app = web.Application()
    app.router.add_get("/hang", hangs)
    upstream = await start_upstream(app)  # aiohttp's TestServer cancels handlers on disconnect
    gate = await start_gate(upstream)
    port = int(gate.url.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(started.wait(), 5)
    writer.close()
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_event_stream_chunks_are_written_as_they_arrive(
    start_upstream: StartUpstream, start_gate: StartGate, client: aiohttp.ClientSession
) -> None:
    """The upstream sends the second event only after the client saw the first:
    a relay that buffers would deadlock here (and the test time out)."""
    client_saw_first = asyncio.Event()

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: one\n\n")
        await client_saw_first.wait()
        await response.write(b"data: two\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/sse", events)
    upstream = await start_upstream(app)
    gate = await start_gate(upstream)
    async with client.get(f"{gate.url}/sse") as response:
        first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
        assert first == b"data: one\n\n"
        client_saw_first.set()
        second = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
        assert second == b"data: two\n\n"


async def test_an_idle_event_stream_is_not_cut_by_the_read_timeout(
    start_upstream: StartUpstream, start_gate: StartGate, client: aiohttp.ClientSession
) -> None:
    async def idle_events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b": open\n\n")
        await asyncio.sleep(1.2)  # four read timeouts of silence
        await response.write(b"data: still here\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/sse", idle_events)
    upstream = await start_upstream(app)
    gate = await start_gate(upstream, upstream={"read_timeout": 0.3})
    async with client.get(f"{gate.url}/sse") as response:
        assert await response.read() == b": open\n\ndata: still here\n\n"


async def test_a_body_that_stalls_longer_than_the_read_timeout_is_aborted(
    start_upstream: StartUpstream, start_gate: StartGate, client: aiohttp.ClientSession
) -> None:
    """Between two chunks of a body that is not an event stream, the upstream may pause
    at most read_timeout; then the client's connection is aborted (the status is gone),
    while pauses shorter than that, however many, are fine."""
    release = asyncio.Event()

    async def stalls(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 12
        await response.prepare(request)
        await response.write(b"[1,")
        for _ in range(4):  # four pauses, each shorter than the read timeout
            await asyncio.sleep(0.1)
            await response.write(b"2,")
        await release.wait()  # then silence
        await response.write(b"3]\n")
        return response

    app = web.Application()
    app.router.add_get("/stalls", stalls)
    upstream = await start_upstream(app)
    gate = await start_gate(upstream, upstream={"read_timeout": 0.3})
    async with client.get(f"{gate.url}/stalls") as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(response.read(), 5)
    release.set()


async def test_a_post_after_the_upstream_idle_timeout_does_not_fail(
    echo: tuple[str, Recorder], start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    """uvicorn closes idle connections after 5 s; aiohttp does not retry a POST on a
    connection that was closed under it. The pool must drop idle connections first."""
    recorder = Recorder()
    upstream = await start_upstream(echo_app(recorder), keepalive_timeout=0.5)
    gate = await start_gate(upstream, upstream={"keepalive_timeout": 0.25})
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.post(f"{gate.url}/mcp", data=b"{}") as response:
                assert response.status == 200
            await asyncio.sleep(0.6)
    assert len(recorder.requests) == 3


async def test_request_id_is_forwarded_upstream_and_returned(
    echo: tuple[str, Recorder], start_gate: StartGate, client: aiohttp.ClientSession
) -> None:
    upstream, recorder = echo
    gate = await start_gate(upstream)
    async with client.get(f"{gate.url}/x") as response:
        returned = response.headers["X-Request-Id"]
    assert recorder.last.headers["X-Request-Id"] == returned


async def test_access_log_has_one_line_with_secrets_redacted(
    echo: tuple[str, Recorder],
    start_gate: StartGate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream, _ = echo
    gate = await start_gate(upstream)
    caplog.set_level(logging.INFO, logger="consentgate")
    await rawhttp.request(
        gate.url,
        "/auth/callback?code=SECRETCODE&state=SECRETSTATE&scope=openid",
        headers=[
            ("Authorization", "Bearer SECRETTOKEN"),
            ("Cookie", "session=SECRETCOOKIE"),
        ],
    )
    access = [r for r in caplog.records if r.name == "consentgate.access"]
    assert len(access) == 1
    fields = access[0].fields  # type: ignore[attr-defined]
    assert fields["status"] in (200, 403)
    assert fields["method"] == "GET"
    assert "code=[redacted]" in fields["path"]
    assert "scope=openid" in fields["path"]
    assert fields["upstream_ms"] is None or fields["upstream_ms"] >= 0
    from consentgate.logs.formatters import JsonFormatter, TextFormatter

    for record in caplog.records:
        for formatter in (TextFormatter(), JsonFormatter()):
            line = formatter.format(record)
            for secret in ("SECRETCODE", "SECRETSTATE", "SECRETTOKEN", "SECRETCOOKIE"):
                assert secret not in line


async def test_an_upstream_that_does_not_accept_in_time_gives_504_and_a_timeout_warning(
    start_gate: StartGate, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.upstream.test_pool import unanswered_listener

    with unanswered_listener() as port:
        gate = await start_gate(f"http://127.0.0.1:{port}", upstream={"connect_timeout": 0.3})
        with caplog.at_level(logging.WARNING, logger="consentgate"):
            async with client.get(
                f"{gate.url}/x", headers={"Accept": "application/json"}
            ) as response:
                assert response.status == 504
                assert (await response.json())["error"] == "gateway_timeout"
    (warning,) = [r for r in caplog.records if r.getMessage() == "upstream unavailable"]
    fields = warning.fields  # type: ignore[attr-defined]
    assert (fields["kind"], fields["error"]) == ("timeout", "UpstreamConnectError")
