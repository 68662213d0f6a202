"""The gate's own sign-in ([identity]) against a real OpenID provider on loopback
(tests/support/testidp.py) and the fake single-client proxy: every refusal also checks
that nothing reached the upstream."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from consentgate.core.identity.person import person_subject
from consentgate.web.appkeys import STORE
from tests.conftest import ErrorLog, Stack, StartStack, StartUpstream
from tests.support.browsersim import Browser, Page
from tests.support.fakeproxy import IDP
from tests.support.testidp import ALICE, BOB, TestIdp, identity_section
from tests.web.consent_flow.test_authorize import auth_params, register

SIGNIN = "/_consentgate/signin"
CONTINUE = "/_consentgate/signin/continue?signin_ref="


@dataclass
class Setup:
    stack: Stack
    idp: TestIdp

    def upstream_authorizations(self) -> int:
        return len(self.stack.proxy.reached("/authorize"))


StartSetup = Callable[..., Awaitable[Setup]]


@pytest.fixture
async def start_setup(start_upstream: StartUpstream, start_stack: StartStack) -> StartSetup:
    async def _start(*, switches: dict[str, Any] | None = None, **identity: Any) -> Setup:
        idp = TestIdp(**(switches or {}))
        idp.url = await start_upstream(idp.app())
        stack = await start_stack(identity=identity_section(idp, **identity))
        return Setup(stack, idp)

    return _start


@pytest.fixture
async def setup(start_setup: StartSetup) -> Setup:
    return await start_setup()


async def to_provider_and_back(browser: Browser, started: Page) -> Page:
    """Follow the gate's redirect to the provider, the provider's back, and the gate's
    redirect to the clean URL the request continues at: the provider's answer, and so
    every redirect after it, is always a cross-site navigation."""
    assert started.status == 302, started.text[:300]
    answered = await browser.get(started.location, site="cross-site")
    assert answered.status == 302 and SIGNIN in answered.location, answered.text[:300]
    return await continued(browser, await browser.get(answered.location, site="cross-site"))


async def continued(browser: Browser, back: Page) -> Page:
    """The gate's answer to the provider's return, followed when it is the redirect to
    the clean URL (a refusal is a page, returned as it is)."""
    if back.status != 303:
        return back
    assert back.location.startswith(browser.gate_url + CONTINUE), back.location
    return await browser.get(back.location, site="cross-site")


async def signed_in_authorize(
    browser: Browser, params: dict[str, str], *, site: str | None = "none"
) -> Page:
    return await to_provider_and_back(browser, await browser.authorize(params, site=site))


async def test_a_browser_without_a_session_signs_in_before_anything_is_decided(
    setup: Setup,
) -> None:
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as browser:
        started = await browser.authorize(auth_params(client_id))
        assert started.location.startswith(f"{setup.idp.url}/authorize?")
        sent = setup.idp.authorizations
        page = await to_provider_and_back(browser, started)
    assert page.is_consent_page
    assert "Signed in as <strong><bdi>alice@example.com</bdi></strong>" in page.text
    (request,) = sent
    assert request["code_challenge_method"] == "S256" and request["nonce"] and request["state"]
    assert client_id not in str(request) and "client.example" not in str(request)
    assert setup.upstream_authorizations() == 0


async def test_the_session_cookie_is_httponly_lax_on_path_root_and_the_sign_in_is_not_repeated(
    setup: Setup,
) -> None:
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as browser:
        started = await browser.authorize(auth_params(client_id))
        answered = await browser.get(started.location, site="cross-site")
        back = await browser.get(answered.location, site="cross-site")
        (cookie,) = [c for c in back.headers.getall("Set-Cookie") if c.startswith("cg_sess=")]
        again = await browser.authorize(auth_params(client_id, state="second"))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert again.is_consent_page  # asked, not sent to sign in again
    assert len(setup.idp.authorizations) == 1


async def test_a_swapped_state_is_refused_and_the_owners_sign_in_still_completes(
    setup: Setup,
) -> None:
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as victim, Browser(setup.stack.url) as attacker:
        victims = await victim.get(
            (await victim.authorize(auth_params(client_id))).location, site="cross-site"
        )
        attackers = await attacker.get(
            (await attacker.authorize(auth_params(client_id))).location, site="cross-site"
        )
        swapped = await victim.get(attackers.location, site="cross-site")
        own = await continued(victim, await victim.get(victims.location, site="cross-site"))
    assert swapped.status == 403 and "not started in this browser" in swapped.text
    assert own.is_consent_page
    assert setup.idp.token_requests == 1  # the swapped code was never exchanged
    assert setup.upstream_authorizations() == 0


async def test_a_replayed_callback_is_refused(setup: Setup) -> None:
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as browser:
        started = await browser.authorize(auth_params(client_id))
        answered = await browser.get(started.location, site="cross-site")
        first = await continued(browser, await browser.get(answered.location, site="cross-site"))
        replayed = await browser.get(answered.location, site="cross-site")
    assert first.is_consent_page
    assert replayed.status == 403 and not replayed.is_consent_page


@pytest.mark.parametrize(
    ("fault", "value"),
    [
        ("error", "access_denied"),
        ("answer_iss", "https://evil.example"),
        ("claim_changes", {"nonce": "another-nonce"}),
        ("claim_changes", {"iss": "https://evil.example"}),
        ("claim_changes", {"aud": "another-client"}),
        ("claim_changes", {"exp": 1_000_000}),
        ("forge_with", "another key"),
    ],
)
async def test_a_provider_error_or_a_token_that_fails_a_check_fails_closed(
    setup: Setup, fault: str, value: Any
) -> None:
    if fault == "forge_with":
        from joserfc.jwk import RSAKey

        value = RSAKey.generate_key(2048, parameters={"kid": "idp-1"})
    setattr(setup.idp, fault, value)
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as browser:
        page = await signed_in_authorize(browser, auth_params(client_id))
        assert "cg_sess" not in browser.cookie_names()
    assert page.status == 403 and "You could not be signed in" in page.text
    assert setup.upstream_authorizations() == 0


async def test_an_answer_without_iss_is_refused_when_the_provider_advertises_it(
    start_setup: StartSetup,
) -> None:
    """RFC 9207 §2.4: a provider that says it sends iss must send it."""
    setup = await start_setup(switches={"advertise_iss": True})
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as browser:
        with_iss = await signed_in_authorize(browser, auth_params(client_id))
        started = await browser.authorize(auth_params(client_id, state="two"))
    async with Browser(setup.stack.url) as other:
        started = await other.authorize(auth_params(client_id, state="three"))
        answered = await other.get(started.location, site="cross-site")
        assert "iss=" in answered.location
        without_iss = answered.location.replace("&iss=", "&not_iss=")
        page = await other.get(without_iss, site="cross-site")
    assert with_iss.is_consent_page
    assert page.status == 403 and "You could not be signed in" in page.text
    assert setup.upstream_authorizations() == 0


async def test_a_provider_down_at_the_token_exchange_fails_closed_with_a_page(
    setup: Setup,
) -> None:
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as browser:
        started = await browser.authorize(auth_params(client_id))
        answered = await browser.get(started.location, site="cross-site")
        setup.idp.down = True
        page = await browser.get(answered.location, site="cross-site")
    assert page.status == 503 and "Sign-in is not available right now" in page.text
    assert setup.upstream_authorizations() == 0


async def test_a_provider_down_from_the_start_fails_closed_before_any_redirect(
    start_setup: StartSetup,
) -> None:
    setup = await start_setup(switches={"down": True})
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
    assert page.status == 503 and "Sign-in is not available right now" in page.text
    assert setup.upstream_authorizations() == 0


async def test_a_token_without_kid_is_verified_with_the_only_key(setup: Setup) -> None:
    setup.idp.send_kid = False
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as browser:
        page = await signed_in_authorize(browser, auth_params(client_id))
    assert page.is_consent_page


async def test_a_rotated_provider_key_is_fetched_again_once_a_minute_at_most(
    setup: Setup,
) -> None:
    from joserfc.jwk import RSAKey

    client_id = await register(setup.stack)
    pages = []
    for kid in ("idp-1", "idp-2", "idp-3"):
        if kid != "idp-1":
            setup.idp.key = RSAKey.generate_key(2048, parameters={"kid": kid})
        async with Browser(setup.stack.url) as browser:
            pages.append(await signed_in_authorize(browser, auth_params(client_id)))
    assert pages[0].is_consent_page and pages[1].is_consent_page  # idp-2: fetched again
    assert pages[2].status == 403  # idp-3 within the minute: not fetched, refused
    assert setup.upstream_authorizations() == 0


# --- the decision after the round trip ---------------------------------------------


async def approve_as_signed_in(setup: Setup, browser: Browser, params: dict[str, str]) -> None:
    page = await signed_in_authorize(browser, params)
    assert page.is_consent_page, page.text[:300]
    answered = await browser.answer(page, "approve", remember=True)
    assert answered.status == 303 and answered.location.startswith(IDP)


async def test_a_remembered_approval_is_not_asked_again_after_the_round_trip(
    setup: Setup,
) -> None:
    """The provider's return is cross-site; the request arrived directly: silent."""
    client_id = await register(setup.stack)
    params = auth_params(client_id)
    async with Browser(setup.stack.url) as laptop:
        await approve_as_signed_in(setup, laptop, params)
    async with Browser(setup.stack.url) as phone:
        page = await signed_in_authorize(phone, {**params, "state": "phone"}, site="none")
    assert page.status == 302 and page.location.startswith(IDP)
    assert setup.upstream_authorizations() == 2


@pytest.mark.parametrize("site", ["cross-site", None])
async def test_a_cross_site_arrival_stays_asked_after_the_round_trip(
    setup: Setup, site: str | None
) -> None:
    client_id = await register(setup.stack)
    params = auth_params(client_id)
    async with Browser(setup.stack.url) as laptop:
        await approve_as_signed_in(setup, laptop, params)
    async with Browser(setup.stack.url) as phone:
        page = await signed_in_authorize(phone, {**params, "state": "phone"}, site=site)
    assert page.is_consent_page
    assert setup.upstream_authorizations() == 1


async def test_another_person_in_the_same_browser_is_asked(setup: Setup) -> None:
    client_id = await register(setup.stack)
    params = auth_params(client_id)
    async with Browser(setup.stack.url) as shared:
        await approve_as_signed_in(setup, shared, params)
        approvals = await shared.get("/_consentgate/approvals")
        token = approvals.form()["csrf"]
        async with shared.session.post(
            setup.stack.url + "/_consentgate/approvals",
            data={"csrf": token, "action": "sign_out"},
            headers={"Sec-Fetch-Site": "same-origin", "Accept": "text/html"},
            allow_redirects=False,
        ) as signed_out:
            assert signed_out.status == 303
        setup.idp.user = dict(BOB)
        page = await signed_in_authorize(shared, {**params, "state": "bob"})
    assert page.is_consent_page and "bob@example.com" in page.text
    assert setup.upstream_authorizations() == 1


async def test_after_a_sign_out_the_next_sign_in_asks_the_provider_to_sign_in_again(
    setup: Setup,
) -> None:
    """OIDC Core §3.1.2.1 ``prompt=login``: "not you?" or "Sign out" ends the gate's
    session, not the provider's; without asking the provider to authenticate again,
    the next person in a shared browser would come back signed in as the previous one.
    A first sign-in does not ask (the provider's single sign-on stays silent)."""
    client_id = await register(setup.stack)
    params = auth_params(client_id)
    async with Browser(setup.stack.url) as shared:
        await approve_as_signed_in(setup, shared, params)
        assert "prompt" not in setup.idp.authorizations[-1]
        approvals = await shared.get("/_consentgate/approvals")
        async with shared.session.post(
            setup.stack.url + "/_consentgate/approvals",
            data={"csrf": approvals.form()["csrf"], "action": "sign_out"},
            headers={"Sec-Fetch-Site": "same-origin", "Accept": "text/html"},
            allow_redirects=False,
        ) as signed_out:
            assert signed_out.status == 303
        setup.idp.user = dict(BOB)
        page = await signed_in_authorize(shared, {**params, "state": "bob"})
        assert page.is_consent_page and "bob@example.com" in page.text
        assert setup.idp.authorizations[-1]["prompt"] == "login"
        # Signed in again: the sign-in after this one is an ordinary one.
        assert "alice@example.com" not in page.text


async def test_the_approval_is_recorded_for_the_person(setup: Setup) -> None:
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as browser:
        await approve_as_signed_in(setup, browser, auth_params(client_id))
    store = setup.stack.gate.app[STORE]
    (record,) = await store.list(subject=person_subject(setup.idp.url, ALICE["sub"]))
    assert record.client_id == client_id


async def test_the_approvals_page_lists_what_the_person_approved_in_every_browser(
    setup: Setup,
) -> None:
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as laptop:
        await approve_as_signed_in(setup, laptop, auth_params(client_id))
    async with Browser(setup.stack.url) as phone:
        await signed_in_authorize(phone, auth_params(client_id, state="p"), site="cross-site")
        page = await phone.get("/_consentgate/approvals")
    assert client_id in page.text and "Signed in as" in page.text


async def test_a_page_shown_to_one_person_cannot_be_answered_by_the_next_one(
    setup: Setup,
) -> None:
    """A consent page says whose approval it records ("Signed in as alice"): after
    alice signs out and bob signs in in the same browser, her open page is stale."""
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as shared:
        alices_page = await signed_in_authorize(shared, auth_params(client_id))
        assert "alice@example.com" in alices_page.text
        token = (await shared.get("/_consentgate/approvals")).form()["csrf"]
        async with shared.session.post(
            setup.stack.url + "/_consentgate/approvals",
            data={"csrf": token, "action": "sign_out"},
            headers={"Sec-Fetch-Site": "same-origin", "Accept": "text/html"},
            allow_redirects=False,
        ) as signed_out:
            assert signed_out.status == 303
        setup.idp.user = dict(BOB)
        bobs_page = await signed_in_authorize(shared, auth_params(client_id, state="bob"))
        assert "bob@example.com" in bobs_page.text
        answered = await shared.answer(alices_page, "approve", remember=True)
    assert answered.status == 403
    assert setup.upstream_authorizations() == 0
    store = setup.stack.gate.app[STORE]
    assert await store.list(subject=person_subject(setup.idp.url, BOB["sub"])) == []


@contextlib.asynccontextmanager
async def approved_before_identity(
    start_upstream: StartUpstream, start_stack: StartStack
) -> AsyncIterator[tuple[Stack, Browser, dict[str, str]]]:
    """A browser that approved a client at a gate without [identity], now at a gate with
    it on the same store and keys (its cookie unchanged), nobody signed in yet."""
    before = await start_stack()
    params = auth_params(await register(before))
    idp = TestIdp()
    idp.url = await start_upstream(idp.app())
    after = await start_stack(identity=identity_section(idp))
    async with Browser(before.url) as browser:
        page = await browser.authorize(params)
        assert (await browser.answer(page, "approve", remember=True)).status == 303
        browser.gate_url = after.url
        yield after, browser, params


async def test_an_approval_made_before_identity_was_on_still_passes_in_its_browser(
    start_upstream: StartUpstream, start_stack: StartStack
) -> None:
    """Records made before [identity] stay browser-bound and keep working: the same
    store and keys, a gate without [identity], then one with it."""
    async with approved_before_identity(start_upstream, start_stack) as (after, browser, params):
        again = await signed_in_authorize(browser, {**params, "state": "after"})
    assert again.status == 302 and again.location.startswith(IDP)
    assert len(after.proxy.reached("/authorize")) == 1


async def test_with_identity_on_prompt_none_without_a_sign_in_passes_on_no_approval(
    start_upstream: StartUpstream, start_stack: StartStack, error_log: ErrorLog
) -> None:
    """``prompt=none`` shows no page, so no sign-in can happen: with [identity] on it
    is answered ``consent_required`` (OIDC Core §3.1.2.6), and an approval this browser
    made before identity was turned on does not pass it without a person."""
    async with approved_before_identity(start_upstream, start_stack) as (after, browser, params):
        quiet = await browser.authorize({**params, "state": "quiet", "prompt": "none"})
    assert quiet.status == 400
    assert "Location" not in quiet.headers
    assert "consent_required" in error_log(quiet)
    assert after.proxy.reached("/authorize") == []


async def test_an_approval_made_in_one_browser_is_revoked_from_another(setup: Setup) -> None:
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as laptop:
        await approve_as_signed_in(setup, laptop, auth_params(client_id))
    store = setup.stack.gate.app[STORE]
    (record,) = await store.list(subject=person_subject(setup.idp.url, ALICE["sub"]))
    async with Browser(setup.stack.url) as phone:
        await signed_in_authorize(phone, auth_params(client_id, state="p"), site="cross-site")
        token = (await phone.get("/_consentgate/approvals")).form()["csrf"]
        async with phone.session.post(
            setup.stack.url + "/_consentgate/approvals",
            data={"csrf": token, "action": "revoke", "id": record.id},
            headers={"Sec-Fetch-Site": "same-origin", "Accept": "text/html"},
            allow_redirects=False,
        ) as revoked:
            assert revoked.status == 303
    (after,) = await store.list(subject=record.subject)
    assert after.revoked_at is not None


async def test_a_network_starting_too_many_sign_ins_is_told_to_wait_and_writes_nothing(
    setup: Setup,
) -> None:
    """Each start writes a waiting row: starts are a budget per client network."""
    from consentgate.core.identity.start_budget import StartBudget
    from consentgate.web.appkeys import IDENTITY

    setup.stack.gate.app[IDENTITY].starts = StartBudget(lambda: 1000.0, limit=2)
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as browser:
        pages = [await browser.authorize(auth_params(client_id, state=f"s{n}")) for n in range(3)]
    assert [page.status for page in pages] == [302, 302, 429]
    assert pages[2].headers["Retry-After"] == "60"
    assert "Please try again in a minute" in pages[2].text
    assert await setup.stack.gate.app[STORE].count_pending() == 2


async def test_a_sign_in_and_a_swapped_state_are_audited_with_the_person_and_a_fixed_reason(
    start_upstream: StartUpstream, start_stack: StartStack
) -> None:
    from consentgate.audit.events import AuditEvent, AuditTrail

    events: list[AuditEvent] = []
    idp = TestIdp()
    idp.url = await start_upstream(idp.app())
    stack = await start_stack(
        identity=identity_section(idp), audit=AuditTrail(sinks=[events.append])
    )
    client_id = await register(stack)
    async with Browser(stack.url) as victim, Browser(stack.url) as attacker:
        attackers = await attacker.get(
            (await attacker.authorize(auth_params(client_id))).location, site="cross-site"
        )
        await victim.get(attackers.location, site="cross-site")  # swapped
        own = await signed_in_authorize(victim, auth_params(client_id, state="own"))
        assert own.is_consent_page
    named = [(e.event, e.fields.get("refusal") or e.fields.get("subject")) for e in events]
    alice = person_subject(idp.url, ALICE["sub"])
    assert ("signin_refused", "stale") in named
    assert ("signed_in", alice) in named
    assert ("consent_asked", alice) in named


async def test_a_head_of_the_sign_in_answer_does_not_use_it_up(setup: Setup) -> None:
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as browser:
        started = await browser.authorize(auth_params(client_id))
        answered = await browser.get(started.location, site="cross-site")
        async with browser.session.head(answered.location, allow_redirects=False) as head:
            assert head.status == 405
        page = await continued(browser, await browser.get(answered.location, site="cross-site"))
    assert page.is_consent_page


# --- the return to a clean URL ------------------------------------------------------


async def test_the_sign_in_answer_redirects_to_a_clean_url_without_the_providers_code(
    setup: Setup,
) -> None:
    """The provider's code and state must not stay in the address bar and history: the
    answer sets the session and sends the browser on (303, RFC 9700 §4.12) to a URL
    carrying only an opaque reference; the consent page is shown there."""
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as browser:
        started = await browser.authorize(auth_params(client_id))
        answered = await browser.get(started.location, site="cross-site")
        code = dict(parse_qsl(urlsplit(answered.location).query))["code"]
        back = await browser.get(answered.location, site="cross-site")
        assert back.status == 303, (back.status, back.text[:200])
        sessions = [c for c in back.headers.getall("Set-Cookie") if c.startswith("cg_sess=")]
        page = await browser.get(back.location, site="cross-site")
    target = urlsplit(back.location)
    assert back.location.startswith(setup.stack.url + CONTINUE)
    assert list(dict(parse_qsl(target.query))) == ["signin_ref"]
    assert code not in back.location and "state" not in back.location
    assert back.headers["Referrer-Policy"] == "no-referrer" and len(sessions) == 1
    assert page.is_consent_page and "alice@example.com" in page.text
    assert code not in page.text
    assert setup.upstream_authorizations() == 0


async def test_a_reload_of_the_continued_page_shows_a_clear_page_and_relays_nothing(
    setup: Setup,
) -> None:
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as browser:
        started = await browser.authorize(auth_params(client_id))
        answered = await browser.get(started.location, site="cross-site")
        back = await browser.get(answered.location, site="cross-site")
        first = await browser.get(back.location, site="cross-site")
        reloaded = await browser.get(back.location, site="none")
    assert first.is_consent_page
    assert reloaded.status == 410, (reloaded.status, reloaded.text[:300])
    assert "This page was already used" in reloaded.text
    assert "Traceback" not in reloaded.text and not reloaded.is_consent_page
    assert setup.upstream_authorizations() == 0


async def test_a_remembered_approval_passes_once_through_the_clean_url_and_not_on_reload(
    setup: Setup,
) -> None:
    """The reference is single use: a reload of a request that passed silently does
    not start the upstream's flow a second time."""
    client_id = await register(setup.stack)
    params = auth_params(client_id)
    async with Browser(setup.stack.url) as laptop:
        await approve_as_signed_in(setup, laptop, params)
    async with Browser(setup.stack.url) as phone:
        started = await phone.authorize({**params, "state": "phone"})
        answered = await phone.get(started.location, site="cross-site")
        back = await phone.get(answered.location, site="cross-site")
        silent = await phone.get(back.location, site="cross-site")
        again = await phone.get(back.location, site="none")
    assert silent.status == 302 and silent.location.startswith(IDP)
    assert again.status == 410
    assert setup.upstream_authorizations() == 2


async def test_the_clean_url_is_bound_to_the_browser_and_to_the_session_it_set(
    setup: Setup,
) -> None:
    """Another browser holding the reference gets a clear page and leaves it to its
    owner; the owner without the session the sign-in set gets the clear page too."""
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as owner, Browser(setup.stack.url) as other:
        started = await owner.authorize(auth_params(client_id))
        answered = await owner.get(started.location, site="cross-site")
        back = await owner.get(answered.location, site="cross-site")
        elsewhere = await other.get(back.location, site="cross-site")
        own = await owner.get(back.location, site="cross-site")
        owner.set_cookie("cg_sess", "")  # signed out: the next request signs in again
        started = await owner.authorize(auth_params(client_id, state="two"))
        answered = await owner.get(started.location, site="cross-site")
        back = await owner.get(answered.location, site="cross-site")
        owner.set_cookie("cg_sess", "")
        without_session = await owner.get(back.location, site="cross-site")
    assert elsewhere.status == 410 and own.is_consent_page
    assert without_session.status == 410
    assert setup.upstream_authorizations() == 0


async def test_a_head_of_the_clean_url_does_not_use_it_up(setup: Setup) -> None:
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as browser:
        started = await browser.authorize(auth_params(client_id))
        answered = await browser.get(started.location, site="cross-site")
        back = await browser.get(answered.location, site="cross-site")
        async with browser.session.head(back.location, allow_redirects=False) as head:
            assert head.status == 405
        page = await browser.get(back.location, site="cross-site")
    assert page.is_consent_page


@pytest.mark.parametrize("ref", ["", "x" * 200, "not-a-reference", "a%00b"])
async def test_a_made_up_reference_gets_the_clear_page(setup: Setup, ref: str) -> None:
    async with Browser(setup.stack.url) as browser:
        await browser.get("/_consentgate/approvals")  # a browser cookie
        page = await browser.get(CONTINUE + ref, site="cross-site")
    assert page.status in (400, 410) and "Traceback" not in page.text
    assert setup.upstream_authorizations() == 0


async def test_neither_the_code_nor_the_clean_urls_reference_is_written_to_the_log(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """The reference is single use and bound to the browser, but it stands for a
    signed-in request for a while: like the code and the state, it is redacted."""
    caplog.set_level(logging.INFO, logger="consentgate")
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as browser:
        started = await browser.authorize(auth_params(client_id))
        answered = await browser.get(started.location, site="cross-site")
        back = await browser.get(answered.location, site="cross-site")
        page = await browser.get(back.location, site="cross-site")
    assert page.is_consent_page
    code = dict(parse_qsl(urlsplit(answered.location).query))["code"]
    reference = dict(parse_qsl(urlsplit(back.location).query))["signin_ref"]
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert "signin/continue?signin_ref=[redacted]" in logged
    assert code not in logged and reference not in logged


async def test_the_remember_choice_of_a_signed_in_person_says_it_follows_them(
    setup: Setup,
) -> None:
    """With a sign-in the approval is the person's, in every browser where they sign
    in: the checkbox must not say "in this browser"."""
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as browser:
        page = await signed_in_authorize(browser, auth_params(client_id))
    assert page.is_consent_page
    assert "in every browser where you sign in" in page.text
    assert "in this browser for" not in page.text
