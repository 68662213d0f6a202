"""The document fetcher against real HTTPS hosts on loopback (127.0.0.0/8 and ::1 only).

Every host here is started by the test, with a certificate from a throwaway CA the
fetcher is told to trust (``fetch_ca_file``); the fetcher may reach 127.0.0.1 only
(``fetch_allow_networks``) unless a test says otherwise, so every refusal is shown on
a loopback address outside the allow list, with a host there to prove that nothing
connected. Time is a FakeClock; the only real waits are the fetch deadlines (< 1 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from consentgate.clients.client_id_urls import ClientIdURL, parse_client_id_url
from consentgate.clients.domain_policy import DomainPolicy, parse_domain_entries
from consentgate.clients.fetch_addresses import parse_networks
from consentgate.clients.fetch_results import FAILURE_REASONS, PERSON_MESSAGES, Fetched, FetchFailed
from consentgate.clients.fetcher import Admission, DocumentFetcher, FetchSettings
from consentgate.clients.https_get import USER_AGENT
from consentgate.config.loading import config_from_mapping
from tests.conftest import FakeClock, bound_socket
from tests.support.documenthost import (
    Authority,
    DocumentHost,
    Request,
    Route,
    answer,
    document,
    issue,
    make_authority,
    response_bytes,
    running,
)

JSON = (("Content-Type", "application/json"),)


@dataclass
class World:
    tmp: Path
    authority: Authority
    clock: FakeClock

    def server_context(self, names: Sequence[str] | None = None) -> Any:
        return issue(self.authority, self.tmp, *([names] if names else []))

    def fetcher(
        self,
        allow: Sequence[str] = ("127.0.0.1/32",),
        resolve: Any = None,
        **settings: Any,
    ) -> DocumentFetcher:
        options: dict[str, Any] = {
            "ca_file": self.authority.cert_file,
            "allow_networks": parse_networks(list(allow)),
            "timeout": 2.0,
            **settings,
        }
        extra = {"resolve": resolve} if resolve is not None else {}
        return DocumentFetcher(FetchSettings(**options), clock=self.clock, **extra)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path, make_authority(tmp_path, "test-ca"), FakeClock())


@contextlib.asynccontextmanager
async def host_on(
    world: World, address: str = "127.0.0.1", routes: dict[str, Route] | None = None
) -> AsyncIterator[DocumentHost]:
    async with running(address, world.server_context(), routes) as host:
        yield host


def client_at(
    host: DocumentHost, path: str = "/client.json", name: str | None = None
) -> ClientIdURL:
    return parse_client_id_url(host.url(path, name))


def serve_document(
    host: DocumentHost,
    path: str = "/client.json",
    headers: Sequence[tuple[str, str]] = JSON,
    name: str | None = None,
    **fields: object,
) -> ClientIdURL:
    client = client_at(host, path, name)
    host.routes[path] = answer(200, document(client.url, **fields), headers)
    return client


def failed(result: Fetched | FetchFailed) -> FetchFailed:
    assert isinstance(result, FetchFailed), result
    return result


def fetched(result: Fetched | FetchFailed) -> Fetched:
    assert isinstance(result, Fetched), result
    return result


# --- a good document -------------------------------------------------------------------


async def test_a_good_document_is_fetched_validated_and_cached(world: World) -> None:
    async with host_on(world) as host:
        client = serve_document(host, client_name="Example Notes")
        fetcher = world.fetcher()
        first = fetched(await fetcher.get(client))
        assert first.document.client_id == client.url
        assert first.document.client_name == "Example Notes"
        assert first.document.redirect_uris == ("http://127.0.0.1/callback",)
        assert first.expires_at == world.clock.now + 3600  # no Cache-Control: the default
        assert not first.cached
        again = fetched(await fetcher.get(client))
        assert again.cached and again.document == first.document
        assert len(host.requests) == 1 and host.accepted == 1 and fetcher.fetches == 1
        (request,) = host.requests
        assert request.target == "/client.json"
        assert request.headers["host"] == f"127.0.0.1:{host.port}"
        assert request.headers["accept"] == "application/json"
        assert request.headers["user-agent"] == USER_AGENT and "consentgate" in USER_AGENT
        assert request.headers["accept-encoding"] == "identity"
        assert not {"cookie", "authorization", "if-none-match"} & set(request.headers)


async def test_a_chunked_document_with_a_json_subtype_is_read(world: World) -> None:
    async with host_on(world) as host:
        client = client_at(host, "/chunked?v=2")
        host.routes["/chunked?v=2"] = answer(
            200,
            document(client.url),
            (("Content-Type", "application/vnd.example+json; charset=utf-8"),),
            chunked=True,
        )
        result = fetched(await world.fetcher().get(client))
        assert result.document.client_id == client.url
        assert host.requests[0].target == "/chunked?v=2"


# --- how long a document is kept -----------------------------------------------------------


async def test_max_age_is_honoured_within_the_floor_and_the_ceiling(world: World) -> None:
    async with host_on(world) as host:
        short = serve_document(host, "/short", (*JSON, ("Cache-Control", "max-age=120")))
        tiny = serve_document(host, "/tiny", (*JSON, ("Cache-Control", "no-cache")))
        long = serve_document(host, "/long", (*JSON, ("Cache-Control", "public, max-age=999999")))
        fetcher = world.fetcher(min_ttl=60.0, max_ttl=7200.0)
        start = world.clock.now
        assert fetched(await fetcher.get(short)).expires_at == start + 120
        assert fetched(await fetcher.get(tiny)).expires_at == start + 60  # the floor
        assert fetched(await fetcher.get(long)).expires_at == start + 7200  # the ceiling
        assert len(host.requests) == 3
        world.clock.advance(119)
        assert fetched(await fetcher.get(short)).cached
        assert len(host.requests) == 3
        world.clock.advance(1)
        refreshed = fetched(await fetcher.get(short))
        assert not refreshed.cached and refreshed.expires_at == world.clock.now + 120
        assert [r.target for r in host.requests] == ["/short", "/tiny", "/long", "/short"]


async def test_a_stale_document_is_revalidated_and_a_304_without_body_extends_it(
    world: World,
) -> None:
    bodies_sent = 0

    async with host_on(world) as host:
        client = client_at(host, "/tagged")
        body = document(client.url)

        async def tagged(request: Request, _: Any, writer: asyncio.StreamWriter) -> None:
            nonlocal bodies_sent
            if request.headers.get("if-none-match") == '"v1"':
                writer.write(response_bytes(304, b"", (("Cache-Control", "max-age=600"),)))
            else:
                bodies_sent += 1
                headers = (*JSON, ("ETag", '"v1"'), ("Cache-Control", "max-age=300"))
                writer.write(response_bytes(200, body, headers))
            await writer.drain()

        host.routes["/tagged"] = tagged
        fetcher = world.fetcher()
        first = fetched(await fetcher.get(client))
        world.clock.advance(301)
        second = fetched(await fetcher.get(client))
        assert second.document == first.document and not second.cached
        assert second.expires_at == world.clock.now + 600  # the 304's own max-age
        assert bodies_sent == 1
        assert host.requests[1].headers["if-none-match"] == '"v1"'
        world.clock.advance(599)
        assert fetched(await fetcher.get(client)).cached
        assert len(host.requests) == 2


async def test_last_modified_is_sent_back_as_if_modified_since(world: World) -> None:
    stamp = "Tue, 01 Dec 2026 10:00:00 GMT"
    async with host_on(world) as host:
        client = client_at(host, "/dated")
        body = document(client.url)

        async def dated(request: Request, _: Any, writer: asyncio.StreamWriter) -> None:
            if request.headers.get("if-modified-since") == stamp:
                writer.write(response_bytes(304))
            else:
                writer.write(response_bytes(200, body, (*JSON, ("Last-Modified", stamp))))
            await writer.drain()

        host.routes["/dated"] = dated
        fetcher = world.fetcher()
        fetched(await fetcher.get(client))
        world.clock.advance(3600)
        renewed = fetched(await fetcher.get(client))
        assert renewed.expires_at == world.clock.now + 3600
        assert host.requests[1].headers["if-modified-since"] == stamp


# --- SSRF: where the fetcher never connects ---------------------------------------------


async def test_an_address_outside_the_allow_list_is_refused_without_connecting(
    world: World,
) -> None:
    async with host_on(world, "127.0.0.2") as host:
        client = serve_document(host)
        result = failed(await world.fetcher(allow=["127.0.0.1/32"]).get(client))
        assert result.reason == "blocked_address"
        assert "127.0.0.2" in result.detail and "loopback" in result.detail
        assert host.accepted == 0


async def test_localhost_is_refused_without_connecting_when_nothing_is_allowed(
    world: World,
) -> None:
    async with host_on(world) as host:
        client = serve_document(host, name="localhost")
        result = failed(await world.fetcher(allow=[]).get(client))
        assert result.reason == "blocked_address"
        assert "localhost resolves to 127.0.0.1 (a loopback address)" in result.detail
        assert host.accepted == 0


async def test_a_literal_ipv6_loopback_is_refused_without_connecting(world: World) -> None:
    async with host_on(world, "::1") as host:
        client = serve_document(host)
        assert client.host == "[::1]"
        result = failed(await world.fetcher().get(client))
        assert result.reason == "blocked_address"
        assert host.accepted == 0


async def test_an_allowed_ipv6_host_is_fetched(world: World) -> None:
    async with host_on(world, "::1") as host:
        client = serve_document(host)
        result = fetched(await world.fetcher(allow=["::1/128"]).get(client))
        assert result.document.client_id == f"https://[::1]:{host.port}/client.json"
        assert host.requests[0].headers["host"] == f"[::1]:{host.port}"


async def test_a_name_is_resolved_once_and_only_the_checked_address_is_connected_to(
    world: World,
) -> None:
    """The certificate is for "localhost" only, so the TLS check proves the name was
    the server_hostname; the system resolver would say 127.0.0.1 for it, where nothing
    listens on this port, so success proves the connection went to the address the
    fetcher resolved and checked (127.0.0.3), not to a second lookup."""
    lookups: list[tuple[str, int]] = []

    async def resolve(name: str, port: int) -> list[str]:
        lookups.append((name, port))
        return ["127.0.0.3"]

    async with running("127.0.0.3", world.server_context(["localhost"])) as host:
        client = serve_document(host, name="localhost")
        result = fetched(await world.fetcher(allow=["127.0.0.3/32"], resolve=resolve).get(client))
        assert result.document.client_id == f"https://localhost:{host.port}/client.json"
        assert lookups == [("localhost", host.port)]
        assert host.accepted == 1
        assert host.requests[0].headers["host"] == f"localhost:{host.port}"


async def test_a_name_with_one_refused_address_among_its_answers_is_refused(
    world: World,
) -> None:
    async def resolve(_: str, __: int) -> list[str]:
        return ["127.0.0.3", "127.0.0.2"]

    async with host_on(world, "127.0.0.3") as host:
        client = serve_document(host, name="localhost")
        result = failed(await world.fetcher(allow=["127.0.0.3/32"], resolve=resolve).get(client))
        assert result.reason == "blocked_address"
        assert "127.0.0.2" in result.detail
        assert host.accepted == 0


async def test_a_name_that_does_not_resolve_is_a_dns_failure(world: World) -> None:
    async def resolve(name: str, _: int) -> list[str]:
        raise OSError(f"no such name: {name}")

    result = failed(
        await world.fetcher(resolve=resolve).get(parse_client_id_url("https://nowhere.test/c"))
    )
    assert result.reason == "dns_failed"
    assert result.message == PERSON_MESSAGES["dns_failed"]


async def test_a_name_the_resolver_cannot_encode_is_a_dns_failure_not_an_error(
    world: World,
) -> None:
    """A 70-letter label passes the URL rules but not the idna codec getaddrinfo uses
    (it fails in Python, before any lookup leaves the machine)."""
    client = parse_client_id_url("https://" + "a" * 70 + ".test/c")
    result = failed(await world.fetcher().get(client))
    assert result.reason == "dns_failed"


async def test_a_blocked_domain_is_never_contacted(world: World) -> None:
    async def resolve(_: str, __: int) -> list[str]:
        raise AssertionError("a blocked domain must not even be looked up")

    policy = DomainPolicy(blocked=parse_domain_entries(["evil.test"]))
    fetcher = world.fetcher(resolve=resolve, domains=policy)
    result = failed(await fetcher.get(parse_client_id_url("https://app.evil.test/c")))
    assert result.reason == "blocked_domain"
    assert result.detail == "app.evil.test: blocked"
    only = DomainPolicy(allowed=parse_domain_entries(["=docs.test"]))
    outside = failed(
        await world.fetcher(resolve=resolve, domains=only).get(
            parse_client_id_url("https://other.docs.test/c")
        )
    )
    assert (outside.reason, outside.detail) == ("blocked_domain", "other.docs.test: not allowed")
    off = world.fetcher(resolve=resolve, enabled=False)
    assert failed(await off.get(parse_client_id_url("https://app.test/c"))).reason == "disabled"


async def test_the_admission_given_to_get_wins_over_the_built_one_and_comes_before_the_cache(
    world: World,
) -> None:
    """A reload hands each request its own switch and domain policy: a document cached
    while its host was allowed is refused once the host is blocked, without a fetch,
    and served again from the cache once it is allowed again."""
    async with host_on(world) as host:
        client = serve_document(host)
        fetcher = world.fetcher()
        assert not fetched(await fetcher.get(client)).cached
        blocked = Admission(domains=DomainPolicy(blocked=parse_domain_entries(["127.0.0.1"])))
        result = failed(await fetcher.get(client, blocked))
        assert (result.reason, result.detail) == ("blocked_domain", "127.0.0.1: blocked")
        off = failed(await fetcher.get(client, Admission(enabled=False)))
        assert off.reason == "disabled"
        assert fetched(await fetcher.get(client, Admission())).cached
        assert host.accepted == 1 and fetcher.fetches == 1
    built_off = world.fetcher(enabled=False)
    other = parse_client_id_url("https://app.test/c")
    assert failed(await built_off.get(other)).reason == "disabled"
    allowed_only = Admission(domains=DomainPolicy(allowed=parse_domain_entries(["=docs.test"])))
    refused = failed(await built_off.get(other, allowed_only))
    assert (refused.reason, refused.detail) == ("blocked_domain", "app.test: not allowed")


# --- answers that are not a document --------------------------------------------------------


async def test_a_redirect_is_a_failure_and_its_target_is_never_fetched(world: World) -> None:
    async with host_on(world) as host:
        serve_document(host, "/real.json")
        client = client_at(host, "/moved.json")
        host.routes["/moved.json"] = answer(302, b"", (("Location", host.url("/real.json")),))
        result = failed(await world.fetcher().get(client))
        assert result.reason == "redirect"
        assert "302" in result.detail
        assert [r.target for r in host.requests] == ["/moved.json"]


async def test_a_host_that_stalls_after_its_headers_ends_by_the_timeout(world: World) -> None:
    async def stall(_: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        await writer.drain()
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(reader.read(), 5)  # until the fetcher hangs up

    async with host_on(world, routes={"/slow": stall}) as host:
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = failed(await world.fetcher(timeout=0.5).get(client_at(host, "/slow")))
        assert result.reason == "timeout"
        assert "0.5 s" in result.detail and "waiting for the answer" in result.detail
        assert loop.time() - started < 4  # ended by the deadline, not by the host


async def test_a_body_announced_above_the_cap_is_refused_before_it_is_read(world: World) -> None:
    async with host_on(world) as host:
        client = client_at(host, "/big")
        host.routes["/big"] = answer(200, b" " * 10_000 + document(client.url))
        result = failed(await world.fetcher().get(client))
        assert result.reason == "too_large"
        assert "Content-Length 10" in result.detail


async def test_an_unannounced_body_is_read_no_further_than_the_cap(world: World) -> None:
    sent = 0
    cut_off = False

    async def endless(_: Request, __: Any, writer: asyncio.StreamWriter) -> None:
        nonlocal sent, cut_off
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"400\r\n" + b" " * 1024 + b"\r\n"
        try:
            while sent < 256 * 1024 * 1024:
                writer.write(chunk)
                await writer.drain()
                sent += 1024
        except (ConnectionError, OSError):
            cut_off = True

    async with host_on(world, routes={"/endless": endless}) as host:
        result = failed(await world.fetcher().get(client_at(host, "/endless")))
        assert result.reason == "too_large"
        for _ in range(100):  # the host notices the hang-up within a few writes
            if cut_off:
                break
            await asyncio.sleep(0.02)
        assert cut_off and sent < 256 * 1024 * 1024


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ((("Content-Type", "text/html"),), "'text/html'"),
        ((), "''"),
        ((*JSON, ("Content-Encoding", "gzip")), "encoded"),
    ],
)
async def test_a_body_that_is_not_plain_json_is_refused(
    world: World, headers: tuple[tuple[str, str], ...], detail: str
) -> None:
    async with host_on(world) as host:
        client = serve_document(host, headers=headers)
        result = failed(await world.fetcher().get(client))
        assert result.reason == "not_json"
        assert detail in result.detail


async def test_an_error_status_is_a_failure_naming_it(world: World) -> None:
    async with host_on(world) as host:
        result = failed(await world.fetcher().get(client_at(host, "/missing")))
        assert (result.reason, result.detail) == ("http_status", "status 404")


async def test_nothing_listening_is_a_connect_failure(world: World) -> None:
    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    client = parse_client_id_url(f"https://127.0.0.1:{port}/client.json")
    result = failed(await world.fetcher().get(client))
    assert result.reason == "connect_failed"
    assert result.detail.startswith("127.0.0.1: ")


@pytest.mark.parametrize(
    ("head", "reason", "detail"),
    [
        (  # two framings: the response-splitting case llhttp refuses
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n{}",
            "bad_response",
            "malformed response",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{}",
            "bad_response",
            "closed before the response ended",
        ),
        (
            b"HTTP/1.1 304 Not Modified\r\n\r\n",
            "http_status",
            "status 304 to a request that was not conditional",
        ),
    ],
)
async def test_an_answer_that_is_not_well_formed_is_refused(
    world: World, head: bytes, reason: str, detail: str
) -> None:
    async def raw(_: Request, __: Any, writer: asyncio.StreamWriter) -> None:
        writer.write(head)
        await writer.drain()

    async with host_on(world, routes={"/raw": raw}) as host:
        result = failed(await world.fetcher().get(client_at(host, "/raw")))
        assert result.reason == reason
        assert detail in result.detail


async def test_a_certificate_from_another_ca_is_a_tls_failure(world: World) -> None:
    stranger = make_authority(world.tmp, "stranger-ca")
    async with running("127.0.0.1", issue(stranger, world.tmp)) as host:
        client = serve_document(host)
        result = failed(await world.fetcher().get(client))
        assert result.reason == "tls_failed"
        assert "certificate verify failed" in result.detail
        assert host.requests == []


async def test_a_document_naming_another_client_id_is_invalid(world: World) -> None:
    async with host_on(world) as host:
        client = client_at(host, "/impostor")
        host.routes["/impostor"] = answer(200, document("https://someone.else.example/c"))
        result = failed(await world.fetcher().get(client))
        assert result.reason == "invalid_document"
        assert "client_id: differs from the URL" in result.detail
        assert result.message == (
            "The description of this application is not valid: "
            "client_id: differs from the URL the document came from."
        )


# --- what bounds the work a stranger can cause ------------------------------------------------


async def test_a_failure_is_remembered_and_not_fetched_again_until_it_expires(
    world: World,
) -> None:
    async with host_on(world) as host:
        client = client_at(host, "/gone")
        fetcher = world.fetcher(failure_ttl=30.0)
        first = failed(await fetcher.get(client))
        assert first.reason == "http_status" and not first.cached
        assert first.retry_at == world.clock.now + 30
        for _ in range(5):
            again = failed(await fetcher.get(client))
            assert again.cached and again.reason == "http_status"
        assert len(host.requests) == 1
        world.clock.advance(30)
        serve_document(host, "/gone")
        assert fetched(await fetcher.get(client)).document.client_id == client.url
        assert len(host.requests) == 2


async def test_each_host_gets_at_most_its_fetches_per_minute(world: World) -> None:
    async with host_on(world) as host:
        clients = [serve_document(host, f"/c{n}") for n in range(3)]
        fetcher = world.fetcher(per_host_per_minute=2)
        fetched(await fetcher.get(clients[0]))
        fetched(await fetcher.get(clients[1]))
        limited = failed(await fetcher.get(clients[2]))
        assert limited.reason == "rate_limited"
        assert limited.retry_at == world.clock.now + 60
        assert len(host.requests) == 2
        assert fetched(await fetcher.get(clients[0])).cached  # cached documents still served
        world.clock.advance(60)
        fetched(await fetcher.get(clients[2]))  # a rate limit is not remembered as a failure
        assert len(host.requests) == 3


async def test_concurrent_gets_for_one_client_id_share_one_fetch(world: World) -> None:
    release = asyncio.Event()

    async with host_on(world) as host:
        client = client_at(host, "/shared")
        body = response_bytes(200, document(client.url), JSON)

        async def held(_: Request, __: Any, writer: asyncio.StreamWriter) -> None:
            await asyncio.wait_for(release.wait(), 5)
            writer.write(body)
            await writer.drain()

        host.routes["/shared"] = held
        fetcher = world.fetcher()
        gets = [asyncio.ensure_future(fetcher.get(client)) for _ in range(10)]
        await host.first_request()
        assert fetcher.running == 1
        release.set()
        results = await asyncio.gather(*gets)
        assert all(fetched(result).document.client_id == client.url for result in results)
        assert len(host.requests) == 1 and host.accepted == 1
        assert fetcher.running == 0


async def test_a_caller_that_goes_away_does_not_cancel_the_shared_fetch(world: World) -> None:
    release = asyncio.Event()
    async with host_on(world) as host:
        client = client_at(host, "/held")
        body = response_bytes(200, document(client.url), JSON)

        async def held(_: Request, __: Any, writer: asyncio.StreamWriter) -> None:
            await asyncio.wait_for(release.wait(), 5)
            writer.write(body)
            await writer.drain()

        host.routes["/held"] = held
        fetcher = world.fetcher()
        leaving = asyncio.ensure_future(fetcher.get(client))
        staying = asyncio.ensure_future(fetcher.get(client))
        await host.first_request()
        leaving.cancel()
        release.set()
        assert fetched(await staying).document.client_id == client.url
        assert leaving.cancelled()
        assert fetched(await fetcher.get(client)).cached


async def test_beyond_the_concurrent_cap_a_new_fetch_is_refused_as_busy(world: World) -> None:
    release = asyncio.Event()
    async with host_on(world) as host:
        first = client_at(host, "/first")
        body = response_bytes(200, document(first.url), JSON)

        async def held(_: Request, __: Any, writer: asyncio.StreamWriter) -> None:
            await asyncio.wait_for(release.wait(), 5)
            writer.write(body)
            await writer.drain()

        host.routes["/first"] = held
        second = serve_document(host, "/second")
        fetcher = world.fetcher(max_concurrent=1)
        running_get = asyncio.ensure_future(fetcher.get(first))
        await host.first_request()
        busy = failed(await fetcher.get(second))
        assert busy.reason == "busy"
        release.set()
        fetched(await running_get)
        fetched(await fetcher.get(second))  # busy is not remembered
        assert [r.target for r in host.requests] == ["/first", "/second"]


async def test_close_cancels_the_fetches_still_running(world: World) -> None:
    async def stall(_: Request, reader: asyncio.StreamReader, __: Any) -> None:
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(reader.read(), 5)

    async with host_on(world, routes={"/stall": stall}) as host:
        fetcher = world.fetcher()
        pending = asyncio.ensure_future(fetcher.get(client_at(host, "/stall")))
        await host.first_request()
        await fetcher.close()
        with pytest.raises(asyncio.CancelledError):
            await pending
        assert fetcher.running == 0


def test_every_failure_reason_has_words_for_the_person() -> None:
    assert set(PERSON_MESSAGES) == set(FAILURE_REASONS)
    assert all(message[0].isupper() for message in PERSON_MESSAGES.values())
    assert json.dumps(PERSON_MESSAGES).isascii()


async def test_the_fetcher_is_built_from_the_clients_section(world: World) -> None:
    config = config_from_mapping(
        {
            "server": {"public_url": "https://mcp.example.com"},
            "upstream": {"url": "http://127.0.0.1:8000"},
            "clients": {
                "fetch_allow_networks": ["127.0.0.1/32"],
                "fetch_ca_file": str(world.authority.cert_file),
                "fetch_min_ttl": "1s",
                "fetch_failure_ttl": "5s",
                "fetch_per_host_per_minute": 7,
                "blocked_domains": ["evil.test"],
            },
        },
        environ={},
    )
    fetcher = DocumentFetcher.from_config(config.clients, clock=world.clock)
    settings = fetcher.settings
    assert [str(n) for n in settings.allow_networks] == ["127.0.0.1/32"]
    assert (settings.min_ttl, settings.failure_ttl, settings.per_host_per_minute) == (1.0, 5.0, 7)
    assert settings.domains.decide("app.evil.test") == "blocked"
    async with host_on(world) as host:
        client = serve_document(host, headers=(*JSON, ("Cache-Control", "no-store")))
        assert fetched(await fetcher.get(client)).expires_at == world.clock.now + 1


def test_a_ca_file_that_cannot_be_loaded_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "absent.pem"
    with pytest.raises(ValueError, match=r"clients\.fetch_ca_file: cannot load CA certificates"):
        DocumentFetcher(FetchSettings(ca_file=missing))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ValueError, match=r"garbage\.pem"):
        DocumentFetcher(FetchSettings(ca_file=garbage))


async def test_an_unexpected_error_reaches_the_caller_and_the_log(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(_: str, __: int) -> list[str]:
        raise RuntimeError("a bug in a resolver")

    client = parse_client_id_url("https://app.test/c")
    with pytest.raises(RuntimeError, match="a bug in a resolver"):
        await world.fetcher(resolve=broken).get(client)
    await asyncio.sleep(0)  # the task's done callback runs on the next iteration
    assert "client document fetch of https://app.test/c failed unexpectedly" in caplog.text
