"""Clients named by a URL (Client ID Metadata Documents) at the gate, end to end.

A real HTTPS document host on 127.0.0.1 (certificate from a throwaway CA made with
``cryptography``: tests/support/documenthost.py), the gate told to trust that CA
(``fetch_ca_file``) and to reach 127.0.0.1 (``fetch_allow_networks``), the fake
single-client proxy as upstream. Each refusal asserts what the person got and that
nothing reached the upstream; each "no fetch" that the host saw no connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from consentgate.audit.events import AuditEvent, AuditTrail
from consentgate.clients.client_id_urls import parse_client_id_url
from consentgate.core.startup_errors import StartupError
from consentgate.serving.application import create_app
from consentgate.web.appkeys import DOCUMENT_FETCHER, METRICS, STORE
from consentgate.web.documents import documents_ctx
from tests.conftest import (
    ErrorLog,
    FakeClock,
    Stack,
    StartGate,
    StartStack,
    StartUpstream,
    bound_socket,
    make_config,
)
from tests.support.browsersim import Browser, Page
from tests.support.documenthost import (
    Authority,
    DocumentHost,
    answer,
    issue,
    make_authority,
    running,
)
from tests.support.fakeproxy import IDP, FakeProxy
from tests.support.pgcluster import GATE_ROLE, PostgresCluster, postgres_cluster

__all__ = ["postgres_cluster"]  # the session fixture, used here by name

#: What the document lists: a loopback URI without a port (RFC 8252 §7.3), as real
#: CIMD clients do; each sign-in comes back on another port.
LISTED = "http://127.0.0.1/callback"
PATH = "/oauth/client.json"


def sign_in(client_id: str, port: int = 40001, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": f"http://127.0.0.1:{port}/callback",
        "scope": "openid",
        "state": "client-state-1",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        **extra,
    }


def document_bytes(client_id: str, **fields: object) -> bytes:
    return json.dumps(
        {"client_id": client_id, "client_name": "Example Notes", "redirect_uris": [LISTED]} | fields
    ).encode()


@dataclass
class Cimd:
    """A document host and the gate configured to fetch from it."""

    host: DocumentHost
    stack: Stack
    clock: FakeClock
    events: list[AuditEvent]

    @property
    def client_id(self) -> str:
        return self.host.url(PATH)

    def publish(self, path: str = PATH, max_age: int | None = None, **fields: object) -> str:
        client_id = self.host.url(path)
        headers = [("Content-Type", "application/json")]
        if max_age is not None:
            headers.append(("Cache-Control", f"max-age={max_age}"))
        self.host.routes[path] = answer(200, document_bytes(client_id, **fields), headers)
        return client_id

    def named(self, event: str) -> list[AuditEvent]:
        return [e for e in self.events if e.event == event]

    @property
    def relayed(self) -> int:
        return len(self.stack.proxy.reached("/authorize"))


def clients_section(authority: Authority, **extra: Any) -> dict[str, Any]:
    return {
        "fetch_ca_file": str(authority.cert_file),
        "fetch_allow_networks": ["127.0.0.1/32"],
        "fetch_timeout": "2s",
        **extra,
    }


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return make_authority(tmp_path, "test-ca")


@pytest.fixture
async def start_cimd(
    tmp_path: Path, authority: Authority, start_stack: StartStack
) -> AsyncIterator[Any]:
    async with contextlib.AsyncExitStack() as stack:

        async def _start(
            publish: bool = True,
            consent: dict[str, Any] | None = None,
            store: dict[str, Any] | None = None,
            **clients: Any,
        ) -> Cimd:
            host = await stack.enter_async_context(running("127.0.0.1", issue(authority, tmp_path)))
            clock = FakeClock()
            events: list[AuditEvent] = []
            gate = await start_stack(
                clock=clock,
                audit=AuditTrail([events.append]),
                clients=clients_section(authority, **clients),
                consent=consent or {},
                **({"store": store} if store else {}),
            )
            cimd = Cimd(host, gate, clock, events)
            if publish:
                cimd.publish()
            return cimd

        yield _start


async def approve(browser: Browser, page: Page, *, remember: bool = True) -> Page:
    assert page.is_consent_page, page.text[:400]
    return await browser.answer(page, "approve", remember=remember)


# --- the first sign-in ----------------------------------------------------------------


async def test_a_first_sign_in_shows_the_verified_domain_and_declared_name_nothing_upstream(
    start_cimd: Any,
) -> None:
    cimd = await start_cimd()
    async with Browser(cimd.stack.url) as browser:
        page = await browser.authorize(sign_in(cimd.client_id))
    assert page.is_consent_page, page.text[:400]
    assert "Verified domain: <strong><bdi>127.0.0.1</bdi></strong>" in page.text
    assert "&ldquo;<bdi>Example Notes</bdi>&rdquo;" in page.text
    assert "(name declared by the client)" in page.text
    assert "Unverified client" not in page.text
    assert "http://<strong>127.0.0.1</strong>:40001/callback" in page.text
    # The document lists only loopback URIs: the spec's warning, in plain words.
    assert "cannot prevent localhost impersonation" in page.text
    assert cimd.relayed == 0
    assert len(cimd.host.requests) == 1 and cimd.host.requests[0].target == PATH
    (asked,) = cimd.named("consent_asked")
    assert asked.fields["verified"] is True
    assert asked.fields["client_kind"] == "metadata_document"


async def test_a_url_client_first_seen_now_gets_the_new_client_warning_and_deny_first(
    start_cimd: Any,
) -> None:
    """A client named by a URL never registered: its age is the first time anyone used
    it at this gate, and a first use right now is the sign of a look-alike made for
    the attack. The warning makes Deny the primary, first action."""
    cimd = await start_cimd()
    async with Browser(cimd.stack.url) as browser:
        page = await browser.authorize(sign_in(cimd.client_id))
    assert "egistered" not in page.text
    assert "This application was first used with this service " in page.text
    assert "ago: nobody had used it here before." in page.text
    assert "First seen by this service " in page.text
    deny = page.text.index('value="deny" class="deny primary"')
    assert deny < page.text.index('value="approve" class="approve secondary"')


async def test_a_url_client_first_seen_40_days_ago_shows_its_age_without_the_warning(
    start_cimd: Any,
) -> None:
    cimd = await start_cimd()
    async with Browser(cimd.stack.url) as browser:
        await browser.authorize(sign_in(cimd.client_id))
    cimd.clock.advance(40 * 86400)
    async with Browser(cimd.stack.url) as browser:
        page = await browser.authorize(sign_in(cimd.client_id))
    assert page.is_consent_page, page.text[:400]
    assert "First seen by this service 40 days ago" in page.text
    assert "nobody had used it here before" not in page.text


async def test_a_remembered_sign_in_of_a_url_client_costs_no_store_round_trip(
    start_cimd: Any,
) -> None:
    """The first sighting is read once per process and then from memory: a remembered
    sign-in whose approval is cached asks the store nothing."""
    cimd = await start_cimd()
    operations: list[str] = []
    cimd.stack.gate.app[STORE].time_operations(lambda name, _s: operations.append(name))
    async with Browser(cimd.stack.url) as browser:
        await approve(browser, await browser.authorize(sign_in(cimd.client_id, 40001)))
        assert any("sighting" in name for name in operations), operations
        for port in (40002, 40003, 40004):
            operations.clear()
            again = await browser.authorize(sign_in(cimd.client_id, port), site="same-origin")
            assert again.status == 302 and again.location.startswith(IDP), again.text[:300]
            assert not any("sighting" in name for name in operations), operations
    # Once the approval is cached too, nothing is read at all (a "transaction" is the
    # audit trail appending its rows in the background, not the answer).
    assert [name for name in operations if name != "transaction"] == [], operations
    assert cimd.relayed == 4


async def test_approval_relays_the_request_unchanged(start_cimd: Any) -> None:
    cimd = await start_cimd()
    async with Browser(cimd.stack.url) as browser:
        page = await browser.authorize(sign_in(cimd.client_id))
        done = await approve(browser, page)
    assert done.status == 303, done.text[:300]
    (arrival,) = cimd.stack.proxy.reached("/authorize")
    assert f"client_id={cimd.client_id.replace(':', '%3A').replace('/', '%2F')}" in arrival.raw_path
    assert cimd.host.accepted == 1  # the answer's re-check was a cache hit


async def test_a_second_sign_in_from_another_loopback_port_passes_silently(
    start_cimd: Any,
) -> None:
    cimd = await start_cimd()
    async with Browser(cimd.stack.url) as browser:
        await approve(browser, await browser.authorize(sign_in(cimd.client_id, 40001)))
        again = await browser.authorize(sign_in(cimd.client_id, 51234), site="same-origin")
    assert again.status == 302 and again.location.startswith(IDP), again.text[:300]
    assert cimd.relayed == 2
    (silent,) = cimd.named("consent_silent")
    assert silent.fields["reason"] == "remembered"


async def test_a_remembered_client_navigated_to_from_another_site_is_asked_not_passed(
    start_cimd: Any,
) -> None:
    """FastMCP GHSA-6x8h-498w-gv8c: a CIMD client_id is shared by every server its
    client talks to, so a malicious one can drive the browser here cross-site."""
    cimd = await start_cimd()
    async with Browser(cimd.stack.url) as browser:
        await approve(browser, await browser.authorize(sign_in(cimd.client_id)))
        again = await browser.authorize(sign_in(cimd.client_id, 40002), site="cross-site")
    assert again.is_consent_page
    assert cimd.relayed == 1


async def test_the_page_flags_links_outside_the_verified_domain_and_shows_no_logo(
    start_cimd: Any,
) -> None:
    cimd = await start_cimd(publish=False, consent={"show_logos": True})
    cimd.publish(
        client_uri=cimd.host.url("/about"),
        policy_uri="https://elsewhere.example/privacy",
        logo_uri=cimd.host.url("/logo.png"),
        redirect_uris=[LISTED, "https://app.example/cb"],
    )
    async with Browser(cimd.stack.url) as browser:
        page = await browser.authorize(sign_in(cimd.client_id))
    assert page.is_consent_page
    assert "<img" not in page.text
    assert "outside the verified domain" in page.text
    assert page.text.count("outside the verified domain") == 1  # the policy link only
    assert "cannot prevent localhost impersonation" not in page.text
    assert [r.target for r in cimd.host.requests] == [PATH]  # no logo fetched


async def test_a_denial_goes_back_to_the_listed_redirect_uri_as_access_denied(
    start_cimd: Any,
) -> None:
    cimd = await start_cimd()
    async with Browser(cimd.stack.url) as browser:
        page = await browser.authorize(sign_in(cimd.client_id))
        denied = await browser.answer(page, "deny")
    assert denied.status == 303
    assert denied.location.startswith("http://127.0.0.1:40001/callback?")
    assert denied.location_query()["error"] == "access_denied"
    assert cimd.relayed == 0


async def test_prompt_none_redirects_consent_required_only_to_an_approved_listed_uri(
    start_cimd: Any,
) -> None:
    cimd = await start_cimd()
    async with Browser(cimd.stack.url) as browser:
        first = await browser.authorize(sign_in(cimd.client_id, prompt="none"))
        await approve(browser, await browser.authorize(sign_in(cimd.client_id)))
        later = await browser.authorize(sign_in(cimd.client_id, prompt="none"), site="cross-site")
    assert first.status == 400 and first.location == ""  # nothing approved yet: a page
    assert later.status == 303
    assert later.location.startswith("http://127.0.0.1:40001/callback?")
    assert later.location_query()["error"] == "consent_required"
    assert cimd.relayed == 1


# --- what the document does not allow ---------------------------------------------------


async def test_an_attackers_redirect_uri_on_a_real_clients_client_id_is_refused_before_any_prompt(
    error_log: ErrorLog,
    start_cimd: Any,
) -> None:
    cimd = await start_cimd()
    params = {**sign_in(cimd.client_id), "redirect_uri": "https://attacker.example/cb"}
    async with Browser(cimd.stack.url) as browser:
        page = await browser.authorize(params)
    assert page.status == 400
    assert page.location == ""
    assert not page.is_consent_page
    assert "does not list" in error_log(page)
    assert cimd.relayed == 0
    (refused,) = cimd.named("client_refused")
    assert refused.fields["reason"] == "redirect_uri_not_listed"
    assert refused.fields["at"] == "authorize"
    exposition = cimd.stack.gate.app[METRICS].exposition().decode()
    assert 'consentgate_refusals_total{reason="redirect_uri_not_listed"} 1.0' in exposition


async def test_a_document_that_drops_the_redirect_uri_ends_the_silent_pass(
    error_log: ErrorLog,
    start_cimd: Any,
) -> None:
    cimd = await start_cimd(fetch_min_ttl="1s", publish=False)
    cimd.publish(max_age=1)
    async with Browser(cimd.stack.url) as browser:
        await approve(browser, await browser.authorize(sign_in(cimd.client_id)))
        silent = await browser.authorize(sign_in(cimd.client_id), site="same-origin")
        assert silent.status == 302 and silent.location.startswith(IDP)
        cimd.publish(max_age=1, redirect_uris=["https://elsewhere.example/cb"])
        cimd.clock.advance(2)
        after = await browser.authorize(sign_in(cimd.client_id), site="same-origin")
    assert after.status == 400 and after.location == ""
    assert "does not list" in error_log(after)
    assert cimd.relayed == 2
    assert len(cimd.host.requests) == 2


async def test_the_answer_is_refused_when_the_document_no_longer_lists_the_redirect_uri(
    start_cimd: Any,
) -> None:
    cimd = await start_cimd(fetch_min_ttl="1s", publish=False)
    cimd.publish(max_age=1)
    async with Browser(cimd.stack.url) as browser:
        page = await browser.authorize(sign_in(cimd.client_id))
        cimd.publish(max_age=1, redirect_uris=["https://elsewhere.example/cb"])
        cimd.clock.advance(2)
        answered = await browser.answer(page, "approve", remember=True)
        assert answered.status == 400 and answered.location == ""
        again = await browser.authorize(sign_in(cimd.client_id), site="same-origin")
    assert again.status == 400
    assert cimd.relayed == 0
    assert cimd.named("consent_approved") == []
    assert [e.fields["at"] for e in cimd.named("client_refused")] == ["answer", "authorize"]


async def test_a_remembered_sign_in_whose_document_cannot_be_fetched_again_is_refused(
    error_log: ErrorLog,
    start_cimd: Any,
) -> None:
    """Fail closed: a stale document whose revalidation fails is dropped, and without
    a current document the gate neither passes silently nor asks."""
    cimd = await start_cimd(fetch_min_ttl="1s", publish=False)
    cimd.publish(max_age=1)
    async with Browser(cimd.stack.url) as browser:
        await approve(browser, await browser.authorize(sign_in(cimd.client_id)))
        cimd.host.routes[PATH] = answer(500, b"", ())
        cimd.clock.advance(2)
        after = await browser.authorize(sign_in(cimd.client_id), site="same-origin")
    assert after.status == 502 and after.location == ""
    assert "did not return its description" in error_log(after)
    assert cimd.relayed == 1
    (failed,) = cimd.named("client_document_failed")
    assert failed.fields["reason"] == "http_status"


# --- refusals before any fetch ------------------------------------------------------------


@pytest.mark.parametrize(
    "clients",
    [{"blocked_domains": ["127.0.0.1"]}, {"allowed_domains": ["claude.ai"]}],
    ids=["blocked", "not-allowed"],
)
async def test_a_refused_domain_gets_the_refusal_page_and_its_host_sees_no_connection(
    error_log: ErrorLog, start_cimd: Any, clients: dict[str, Any]
) -> None:
    cimd = await start_cimd(**clients)
    async with Browser(cimd.stack.url) as browser:
        page = await browser.authorize(sign_in(cimd.client_id))
    assert page.status == 403 and page.location == ""
    assert "does not accept applications from this web site" in error_log(page)
    assert "This application cannot sign in here" in page.text
    assert cimd.host.accepted == 0
    assert cimd.relayed == 0
    (refused,) = cimd.named("client_refused")
    assert refused.fields["reason"] == "blocked_domain"


async def test_with_fetching_off_a_url_client_gets_the_refusal_page(
    error_log: ErrorLog, start_cimd: Any
) -> None:
    cimd = await start_cimd(fetch_documents=False)
    async with Browser(cimd.stack.url) as browser:
        page = await browser.authorize(sign_in(cimd.client_id))
    assert page.status == 403
    assert "does not accept applications named by a web address" in error_log(page)
    assert cimd.host.accepted == 0 and cimd.relayed == 0


@pytest.mark.parametrize(
    ("client_id", "words"),
    [
        ("https://127.0.0.1:9/", "must have a path"),
        ("http://127.0.0.1:9/client.json", "must use the https scheme"),
        ("https://user@127.0.0.1:9/client.json", "must not contain userinfo"),
    ],
)
async def test_a_client_id_url_that_breaks_a_rule_gets_a_page_never_a_redirect(
    error_log: ErrorLog, start_cimd: Any, client_id: str, words: str
) -> None:
    cimd = await start_cimd()
    async with Browser(cimd.stack.url) as browser:
        page = await browser.authorize(sign_in(client_id))
    assert page.status == 400 and page.location == ""
    assert words in error_log(page)
    assert cimd.relayed == 0
    assert cimd.named("client_refused")[0].fields["reason"] == "bad_client_id"


# --- fetch failures ---------------------------------------------------------------------


async def test_a_document_host_that_is_down_gets_the_error_page_and_nothing_upstream(
    error_log: ErrorLog,
    start_cimd: Any,
) -> None:
    cimd = await start_cimd()
    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    client_id = f"https://127.0.0.1:{port}/client.json"
    async with Browser(cimd.stack.url) as browser:
        page = await browser.authorize(sign_in(client_id))
    assert page.status == 502 and page.location == ""
    assert "could not reach the address this application is named by" in error_log(page)
    assert "This application could not be checked" in page.text
    assert cimd.relayed == 0
    (failed,) = cimd.named("client_document_failed")
    assert failed.fields["reason"] == "connect_failed"
    exposition = cimd.stack.gate.app[METRICS].exposition().decode()
    assert 'consentgate_client_document_failures_total{reason="connect_failed"} 1.0' in exposition


async def test_a_host_out_of_fetches_gets_try_again_with_retry_after(start_cimd: Any) -> None:
    cimd = await start_cimd(fetch_per_host_per_minute=1)
    other = cimd.publish("/other.json")
    async with Browser(cimd.stack.url) as browser:
        assert (await browser.authorize(sign_in(cimd.client_id))).is_consent_page
        page = await browser.authorize(sign_in(other))
    assert page.status == 503
    assert 1 <= int(page.headers["Retry-After"]) <= 60
    assert "try again in a minute" in page.text
    assert cimd.relayed == 0 and len(cimd.host.requests) == 1


# --- DCR clients, and the app's fetcher ---------------------------------------------------


async def test_a_registered_client_still_works_beside_url_clients(start_cimd: Any) -> None:
    cimd = await start_cimd()
    client_id = await register_client(cimd.stack)
    params = {**sign_in(client_id), "redirect_uri": "https://client.example/callback"}
    async with Browser(cimd.stack.url) as browser:
        page = await browser.authorize(params)
        assert "Verified domain" not in page.text
        await approve(browser, page)
        again = await browser.authorize(params, site="same-origin")
    assert again.status == 302 and again.location.startswith(IDP)
    assert cimd.relayed == 2
    assert cimd.host.accepted == 0


async def register_client(stack: Stack) -> str:
    body = {"redirect_uris": ["https://client.example/callback"], "client_name": "Registered"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{stack.url}/register", json=body) as response,
    ):
        assert response.status == 201
        client_id: str = (await response.json())["client_id"]
    return client_id


async def test_the_fetcher_is_opened_with_the_app_and_follows_its_clock(start_cimd: Any) -> None:
    cimd = await start_cimd()
    async with Browser(cimd.stack.url) as browser:
        assert (await browser.authorize(sign_in(cimd.client_id))).is_consent_page
    fetcher = cimd.stack.gate.app[DOCUMENT_FETCHER]
    cached = await fetcher.get(parse_client_id_url(cimd.client_id))
    assert cached.ok and cached.cached
    assert cached.expires_at == cimd.clock.now + 3600  # the app's clock, the default TTL
    assert fetcher.fetches == 1


async def test_a_ca_file_that_cannot_be_loaded_stops_the_start_naming_its_key(
    tmp_path: Path, start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    upstream = await start_upstream(FakeProxy().app())
    with pytest.raises(StartupError, match=r"clients\.fetch_ca_file: cannot load"):
        await start_gate(upstream, clients={"fetch_ca_file": str(garbage)})


async def test_stopping_the_app_cancels_the_document_fetches_still_running(
    tmp_path: Path, authority: Authority
) -> None:
    """The fetcher is closed with the app: a fetch to a host that stalls does not
    outlive the gate (its own deadline is further away than the test)."""
    stalled = asyncio.Event()

    async def stall(_: Any, reader: asyncio.StreamReader, __: Any) -> None:
        stalled.set()
        await reader.read(1)  # until the gate's side closes (bounded by the host's 5 s)

    async with running("127.0.0.1", issue(authority, tmp_path), {PATH: stall}) as host:
        config = make_config(
            tmp_path,
            "http://127.0.0.1:9",
            clients=clients_section(authority, fetch_timeout="30s"),
        )
        app = create_app(config)
        context = documents_ctx(app)
        await anext(context)
        fetcher = app[DOCUMENT_FETCHER]
        fetching = asyncio.create_task(fetcher.get(parse_client_id_url(host.url(PATH))))
        await asyncio.wait_for(stalled.wait(), 5)
        assert fetcher.running == 1
        with pytest.raises(StopAsyncIteration):
            await anext(context)  # the app's shutdown
        assert fetcher.running == 0
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(fetching, 5)


# --- the kind of client, on the record ------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def store_section(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return {"url": cluster.dsn(cluster.create_database(owner=GATE_ROLE), user=GATE_ROLE)}


async def test_approvals_and_denials_of_a_url_client_name_its_kind_and_domain_on_the_record(
    start_cimd: Any, store_section: dict[str, Any]
) -> None:
    cimd = await start_cimd(store=store_section)
    async with Browser(cimd.stack.url) as browser:
        await approve(browser, await browser.authorize(sign_in(cimd.client_id, 40001)))
        again = await browser.authorize(sign_in(cimd.client_id, 40002), site="same-origin")
        assert again.status == 302
    async with Browser(cimd.stack.url) as other:
        page = await other.authorize(sign_in(cimd.client_id))
        await other.answer(page, "deny")
    kinds = {
        e.event: (e.fields.get("client_kind"), e.fields.get("client_domain"))
        for e in cimd.events
        if e.event in ("consent_asked", "consent_approved", "consent_silent", "consent_denied")
    }
    assert kinds == {
        "consent_asked": ("metadata_document", "127.0.0.1"),
        "consent_approved": ("metadata_document", "127.0.0.1"),
        "consent_silent": ("metadata_document", "127.0.0.1"),
        "consent_denied": ("metadata_document", "127.0.0.1"),
    }
    store = cimd.stack.gate.app[STORE]
    await store.flush_audit()
    rows = [row async for row in store.iter_audit()]
    assert [(row.event, row.client_id) for row in rows] == [
        ("approved", cimd.client_id),
        ("denied", cimd.client_id),
    ]
    for row in rows:
        assert row.details()["client_kind"] == "metadata_document"
        assert row.details()["client_domain"] == "127.0.0.1"
    assert (await store.verify_audit()).ok


async def test_decisions_are_counted_by_client_kind_never_by_client_id(start_cimd: Any) -> None:
    cimd = await start_cimd()
    registered = await register_client(cimd.stack)
    async with Browser(cimd.stack.url) as browser:
        await approve(browser, await browser.authorize(sign_in(cimd.client_id)))
        page = await browser.authorize(
            {**sign_in(registered), "redirect_uri": "https://client.example/callback"}
        )
        assert page.is_consent_page, page.text[:300]
    exposition = cimd.stack.gate.app[METRICS].exposition().decode()
    for line in (
        'consentgate_consent_decisions_total{client_kind="metadata_document",outcome="asked"} 1.0',
        'consentgate_consent_decisions_total{client_kind="metadata_document",outcome="approved"} '
        "1.0",
        'consentgate_consent_decisions_total{client_kind="registered",outcome="asked"} 1.0',
    ):
        assert line in exposition, exposition
    assert cimd.client_id not in exposition and registered not in exposition


async def test_the_approvals_page_shows_a_url_clients_verified_domain_not_an_unverified_badge(
    start_cimd: Any,
) -> None:
    cimd = await start_cimd()
    registered = await register_client(cimd.stack)
    async with Browser(cimd.stack.url) as browser:
        await approve(browser, await browser.authorize(sign_in(cimd.client_id)))
        cimd.clock.advance(5)
        await approve(
            browser,
            await browser.authorize(
                {**sign_in(registered), "redirect_uri": "https://client.example/callback"}
            ),
        )
        page = await browser.get("/_consentgate/approvals")
    assert page.status == 200
    first, second = page.text.split('<li class="approval"')[1:]
    # Newest first: the registered client, by its declared name, verified by registration.
    assert "&ldquo;<bdi>Registered</bdi>&rdquo;" in first
    assert "Verified domain" not in first and "Unverified client" not in first
    # The URL client: its domain, verified by the document fetched from it over HTTPS.
    assert "An application from <bdi>127.0.0.1</bdi>" in second
    assert "Verified domain: <strong><bdi>127.0.0.1</bdi></strong>" in second
    assert "Unverified client" not in second
    assert f"<code><bdi>{cimd.client_id}</bdi></code>" in second
    assert cimd.host.accepted == 1  # the page fetched nothing


# --- a program asking (mcp-remote's registration check) ---------------------------------


async def program_asks(cimd: Cimd, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """The authorization URL fetched as mcp-remote's check fetches it (Node's fetch)."""
    url = f"{cimd.stack.url}/authorize?{urllib.parse.urlencode(params)}"
    headers = {"Accept": "application/json", "Sec-Fetch-Mode": "cors", "User-Agent": "node"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=headers, allow_redirects=False) as response,
    ):
        assert "Location" not in response.headers and "Set-Cookie" not in response.headers
        return response.status, json.loads(await response.read())


async def test_a_program_asking_for_a_url_client_gets_json_and_nothing_upstream(
    start_cimd: Any,
) -> None:
    cimd = await start_cimd()
    vouched = await program_asks(cimd, sign_in(cimd.client_id))
    unlisted = await program_asks(
        cimd, {**sign_in(cimd.client_id), "redirect_uri": "https://attacker.example/cb"}
    )
    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    unreachable = await program_asks(cimd, sign_in(f"https://127.0.0.1:{port}/client.json"))

    assert (vouched[0], vouched[1]["error"]) == (400, "interaction_required")
    assert (unlisted[0], unlisted[1]["error"]) == (400, "invalid_client")
    assert (unreachable[0], unreachable[1]["error"]) == (502, "temporarily_unavailable")
    assert cimd.relayed == 0
    answers = [e.fields["answer"] for e in cimd.named("authorize_not_navigation")]
    assert answers == ["interaction_required", "invalid_client", "temporarily_unavailable"]
    assert cimd.named("consent_asked") == []
