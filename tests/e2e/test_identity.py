"""The gate's own sign-in ([identity]) against the real IdP of the e2e stack
(oidc-provider-mock: no ``kid`` in its ID token header, one key with a ``kid`` in its
set, no ``iss`` on its answers, a client secret needed at its token endpoint), in
front of FastMCP's OAuthProxy, with a real MCP client: consent follows the person.

The IdP runs with open registration here (any client_id and secret, its default), so
the gate's client needs no registration step; FastMCP's client is registered as in
test_fastmcp.py. Both sign in at the same IdP, as a deployment would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.e2e.peers import require_peers

require_peers()

# Everything below needs the extra.
from fastmcp import Client  # noqa: E402

from consentgate.core.identity.person import person_subject  # noqa: E402
from consentgate.web.appkeys import STORE  # noqa: E402
from tests.conftest import StartGate, bound_socket  # noqa: E402
from tests.e2e.conftest import HOST, GatedStack  # noqa: E402
from tests.e2e.people import BrowserOAuth, Person  # noqa: E402
from tests.e2e.stack import IdP, run_fastmcp, run_idp  # noqa: E402
from tests.support.browsersim import Browser  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIGNIN = "/_consentgate/signin"


@pytest.fixture(scope="module")
def open_idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdP]:
    with run_idp(tmp_path_factory.mktemp("idp") / "idp.log", open_registration=True) as running:
        yield running


@pytest.fixture
async def signed(open_idp: IdP, start_gate: StartGate) -> AsyncIterator[GatedStack]:
    """IdP -> FastMCP OAuthProxy -> the gate with [identity] at the same IdP."""
    sock = bound_socket(HOST)
    fastmcp_url = f"http://{HOST}:{sock.getsockname()[1]}"
    gate = await start_gate(
        fastmcp_url,
        upstream={"blocked_paths": ["/consent"]},
        identity={
            "issuer": open_idp.url,
            "client_id": "consentgate-e2e",
            "client_secret": "e2e-gate-secret",
            "display_claim": "sub",
        },
    )
    upstream = await open_idp.register_client(f"{gate.url}/auth/callback")
    async with run_fastmcp(sock, idp=open_idp, upstream=upstream, public_url=gate.url) as fastmcp:
        yield GatedStack(gate, fastmcp, open_idp)


async def test_consent_follows_the_person_to_a_second_browser_and_not_to_another_person(
    signed: GatedStack,
) -> None:
    async with Browser(signed.url) as laptop:
        alice = Person(laptop, signed.idp, "alice")
        first = BrowserOAuth(alice, remember=True, client_name="E2E Notes App")
        async with Client(signed.mcp_url, auth=first) as client:
            assert (await client.call_tool("whoami", {})).data == {"subject": "alice"}
    client_info = first.context.client_info
    assert client_info is not None

    # The first sign-in: the gate's own sign-in at the IdP, then its consent page
    # ("Signed in as alice"), then the upstream's sign-in at the same IdP.
    (asked,) = alice.sign_ins
    assert asked.consent_page is not None
    assert "Signed in as <strong><bdi>alice</bdi></strong>" in asked.consent_page.text
    paths = [hop.url.split("?")[0] for hop in asked.trip.hops]
    assert paths[:5] == [
        f"{signed.url}/authorize",
        signed.idp.authorize_url,
        signed.idp.authorize_url,
        f"{signed.url}{SIGNIN}",
        f"{signed.url}{SIGNIN}/continue",  # the answer's 303 to a URL without the code
    ]
    assert len(signed.fastmcp.log.reached("/authorize")) == 1  # only after consent

    # Alice on her phone: the gate's sign-in, then straight on, without asking.
    async with Browser(signed.url) as phone:
        alice_on_phone = Person(phone, signed.idp, "alice")
        again = BrowserOAuth(
            alice_on_phone, client_id=client_info.client_id, callback_port=first.redirect_port
        )
        async with Client(signed.mcp_url, auth=again) as client:
            assert (await client.call_tool("whoami", {})).data == {"subject": "alice"}
    (silent,) = alice_on_phone.sign_ins
    assert silent.consent_page is None
    assert len(signed.fastmcp.log.reached("/authorize")) == 2

    # Bob on a third browser is asked: alice's approval is hers.
    async with Browser(signed.url) as bobs:
        bob = Person(bobs, signed.idp, "bob")
        trip = await bob.browse(
            silent.trip.hops[0].url.replace("state=", "state=b"),
            stop_before=("http://127.0.0.1:1",),
        )
    assert (
        trip.last.is_consent_page
        and "Signed in as <strong><bdi>bob</bdi></strong>" in trip.last.text
    )
    assert len(signed.fastmcp.log.reached("/authorize")) == 2

    store = signed.gate.app[STORE]
    (record,) = await store.list(subject=person_subject(signed.idp.url, "alice"))
    assert record.client_id == client_info.client_id


async def test_a_revocation_by_name_is_honoured_at_the_persons_next_sign_in(
    signed: GatedStack,
) -> None:
    async with Browser(signed.url) as laptop:
        alice = Person(laptop, signed.idp, "alice")
        first = BrowserOAuth(alice, remember=True, client_name="E2E Notes App")
        async with Client(signed.mcp_url, auth=first) as client:
            await client.call_tool("whoami", {})
    store = signed.gate.app[STORE]
    (subject,) = await store.people.subjects_named("alice")
    assert await store.revoke(subject=subject, by="admin") == 1
    async with Browser(signed.url) as phone:
        alice_on_phone = Person(phone, signed.idp, "alice")
        trip = await alice_on_phone.browse(
            alice.sign_ins[0].trip.hops[0].url, stop_before=("http://127.0.0.1:1",)
        )
    assert trip.last.is_consent_page
    assert len(signed.fastmcp.log.reached("/authorize")) == 1


async def test_a_replayed_sign_in_answer_is_refused(signed: GatedStack) -> None:
    async with Browser(signed.url) as laptop:
        alice = Person(laptop, signed.idp, "alice")
        first = BrowserOAuth(alice, client_name="E2E Notes App")
        async with Client(signed.mcp_url, auth=first) as client:
            await client.call_tool("whoami", {})
        (signed_in,) = alice.sign_ins
        answer = next(hop for hop in signed_in.trip.hops if SIGNIN in hop.url)
        replayed = await laptop.get(answer.url, site="cross-site")
    assert replayed.status == 403 and "not started in this browser" in replayed.text
    assert len(signed.fastmcp.log.reached("/authorize")) == 1
