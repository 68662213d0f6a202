"""The self-service approvals page: a person lists and revokes their own browser's approvals.

Against the fake single-client proxy and a real SQLite store, as test_authorize.py;
each refusal test also checks that nothing changed in the store.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pytest

from consentgate.audit.events import AuditEvent, AuditTrail
from consentgate.web.appkeys import METRICS, STORE
from tests.conftest import Stack, StartStack
from tests.support.browsersim import Browser, Page
from tests.support.fakeproxy import IDP
from tests.web.consent_flow.test_authorize import approve_new, auth_params, register

APPROVALS = "/_consentgate/approvals"
OTHER_REDIRECT = "https://other.example/cb"
_ID_FIELD = re.compile(r'<input type="hidden" name="id" value="([^"]*)">')
_CSRF_FIELD = re.compile(r'<input type="hidden" name="csrf" value="([^"]*)">')


def listed_ids(page: Page) -> list[str]:
    return [html.unescape(value) for value in _ID_FIELD.findall(page.text)]


def token_of(page: Page) -> str:
    tokens = set(_CSRF_FIELD.findall(page.text))
    assert len(tokens) == 1, tokens
    return html.unescape(tokens.pop())


async def change(
    browser: Browser,
    form: dict[str, str],
    *,
    origin: str | None = "self",
    site: str | None = "same-origin",
) -> Page:
    """Submit a form of the approvals page as the browser would."""
    headers = {"Accept": "text/html"}
    if origin is not None:
        headers["Origin"] = browser.gate_url if origin == "self" else origin
    if site is not None:
        headers["Sec-Fetch-Site"] = site
    async with browser.session.post(
        browser.gate_url + APPROVALS, data=form, headers=headers, allow_redirects=False
    ) as response:
        return Page(response.status, response.headers, await response.text())


_CONFIRM_FORM = re.compile(r'<form method="post" action="[^"]*">(.*?)</form>', re.DOTALL)
_FIELD = re.compile(r'<(?:input type="hidden"|button type="submit") name="([^"]*)" value="([^"]*)"')


def confirmation_form(page: Page) -> dict[str, str]:
    """The fields the confirmation page's one form submits (hidden inputs and its button)."""
    forms = _CONFIRM_FORM.findall(page.text)
    assert len(forms) == 1, forms
    return {name: html.unescape(value) for name, value in _FIELD.findall(forms[0])}


async def revoke_first(browser: Browser, page: Page) -> Page:
    return await change(
        browser, {"csrf": token_of(page), "id": listed_ids(page)[0], "action": "revoke"}
    )


async def silent(browser: Browser, params: dict[str, str]) -> bool:
    """Whether the browser's remembered approval passes straight to the IdP."""
    page = await browser.authorize({**params, "state": "again"})
    return page.status == 302 and page.location.startswith(IDP)


async def active_count(stack: Stack) -> int:
    records = await stack.gate.app[STORE].list(include_revoked=False, include_expired=False)
    return len(records)


async def two_clients(stack: Stack) -> tuple[dict[str, str], dict[str, str]]:
    alpha = await register(stack, client_name="Alpha Notes")
    beta = await register(stack, client_name="Beta Mail", redirect_uris=[OTHER_REDIRECT])
    return auth_params(alpha), auth_params(beta, redirect_uri=OTHER_REDIRECT)


@pytest.fixture
async def stack(start_stack: StartStack) -> Stack:
    return await start_stack()


async def test_the_page_lists_only_this_browsers_approvals_with_what_they_allow(
    stack: Stack,
) -> None:
    alpha, beta = await two_clients(stack)
    async with Browser(stack.url) as alice, Browser(stack.url) as bob:
        await approve_new(alice, alpha, remember=True)
        await approve_new(bob, beta, remember=True)
        page = await alice.get(APPROVALS)
    assert page.status == 200
    assert len(listed_ids(page)) == 1
    assert "&ldquo;<bdi>Alpha Notes</bdi>&rdquo;" in page.text
    assert "(name declared by the client)" in page.text
    assert '<p class="host"><bdi>client.example</bdi></p>' in page.text
    assert "<code><bdi>openid</bdi></code>" in page.text
    assert "<code><bdi>profile</bdi></code>" in page.text
    assert "https://mcp.example.com/mcp" in page.text
    assert "Approved" in page.text and "Expires" in page.text and "UTC" in page.text
    assert "Beta Mail" not in page.text and "other.example" not in page.text


async def test_a_browser_without_the_cookie_sees_an_empty_list_and_gets_no_cookie(
    stack: Stack,
) -> None:
    async with Browser(stack.url) as alice, Browser(stack.url) as stranger:
        await approve_new(alice, auth_params(await register(stack)), remember=True)
        page = await stranger.get(APPROVALS)
    assert page.status == 200
    assert listed_ids(page) == []
    assert "no remembered approvals" in page.text
    assert "Set-Cookie" not in page.headers
    assert "<form" not in page.text


async def test_another_browser_cannot_revoke_by_posting_someones_id(stack: Stack) -> None:
    alpha, beta = await two_clients(stack)
    async with Browser(stack.url) as alice, Browser(stack.url) as mallory:
        await approve_new(alice, alpha, remember=True)
        alice_id = listed_ids(await alice.get(APPROVALS))[0]
        await approve_new(mallory, beta, remember=True)  # a page with forms of his own
        own_page = await mallory.get(APPROVALS)
        assert alice_id not in listed_ids(own_page)
        form = {"csrf": token_of(own_page), "id": alice_id, "action": "revoke"}
        done = await change(mallory, form)
        assert done.status == 303  # nothing of his revoked, and nothing said about hers
        assert await active_count(stack) == 2
        everything = await change(mallory, {**form, "action": "revoke_all", "confirm": "yes"})
        assert everything.status == 303
        assert await active_count(stack) == 1  # his own only
        assert listed_ids(await alice.get(APPROVALS)) == [alice_id]
        assert await silent(alice, alpha)


@pytest.mark.parametrize("token", [None, "", "forged-token", "another-browsers"])
async def test_a_missing_or_bad_csrf_token_is_refused_and_nothing_changes(
    start_stack: StartStack, token: str | None
) -> None:
    events: list[AuditEvent] = []
    stack = await start_stack(audit=AuditTrail(sinks=[events.append]))
    params = auth_params(await register(stack))
    async with Browser(stack.url) as alice, Browser(stack.url) as mallory:
        await approve_new(alice, params, remember=True)
        await approve_new(mallory, params, remember=True)
        page = await alice.get(APPROVALS)
        form = {"id": listed_ids(page)[0], "action": "revoke"}
        if token == "another-browsers":
            form["csrf"] = token_of(await mallory.get(APPROVALS))
        elif token is not None:
            form["csrf"] = token
        done = await change(alice, form)
        everything = await change(alice, {**form, "action": "revoke_all"})
        assert await silent(alice, params)
    assert (done.status, everything.status) == (403, 403)
    assert await active_count(stack) == 2
    refused = [e for e in events if e.event == "approvals_refused"]
    assert len(refused) == 2 and "CSRF" in refused[0].message
    assert not [e for e in events if e.event == "consents_revoked"]


async def test_refusals_are_counted_by_reason_in_the_metrics(stack: Stack) -> None:
    params = auth_params(await register(stack))
    async with Browser(stack.url) as alice:
        await approve_new(alice, params, remember=True)
        await change(alice, {"csrf": "x", "action": "revoke_all"})
        await change(alice, {"csrf": "x", "action": "revoke_all"}, origin="https://evil.example")
    registry = stack.gate.app[METRICS].registry
    for reason in ("csrf", "cross_site"):
        assert registry.get_sample_value("consentgate_refusals_total", {"reason": reason}) == 1


async def test_a_change_without_the_browser_cookie_is_refused(stack: Stack) -> None:
    params = auth_params(await register(stack))
    async with Browser(stack.url) as alice, Browser(stack.url) as stranger:
        await approve_new(alice, params, remember=True)
        page = await alice.get(APPROVALS)
        done = await change(
            stranger, {"csrf": token_of(page), "id": listed_ids(page)[0], "action": "revoke"}
        )
    assert done.status == 403
    assert await active_count(stack) == 1


@pytest.mark.parametrize(
    ("origin", "site"),
    [
        ("https://evil.example", "cross-site"),
        ("self", "cross-site"),
        ("self", "same-site"),
        ("https://evil.example", None),
        ("null", None),
        (None, None),
    ],
)
async def test_a_revocation_from_another_site_is_refused(
    stack: Stack, origin: str | None, site: str | None
) -> None:
    params = auth_params(await register(stack))
    async with Browser(stack.url) as alice:
        await approve_new(alice, params, remember=True)
        page = await alice.get(APPROVALS)
        form = {"csrf": token_of(page), "id": listed_ids(page)[0], "action": "revoke"}
        done = await change(alice, form, origin=origin, site=site)
        assert await silent(alice, params)
    assert done.status == 403
    assert await active_count(stack) == 1


async def test_origin_null_from_the_approvals_page_itself_is_accepted(stack: Stack) -> None:
    """The page's Referrer-Policy: no-referrer makes browsers send Origin: null."""
    params = auth_params(await register(stack))
    async with Browser(stack.url) as alice:
        await approve_new(alice, params, remember=True)
        page = await alice.get(APPROVALS)
        form = {"csrf": token_of(page), "id": listed_ids(page)[0], "action": "revoke"}
        done = await change(alice, form, origin="null", site="same-origin")
    assert done.status == 303
    assert await active_count(stack) == 0


async def test_revoking_one_approval_makes_the_next_sign_in_with_that_client_ask_again(
    start_stack: StartStack,
) -> None:
    events: list[AuditEvent] = []
    stack = await start_stack(audit=AuditTrail(sinks=[events.append]))
    alpha, beta = await two_clients(stack)
    async with Browser(stack.url) as alice:
        await approve_new(alice, alpha, remember=True)
        await approve_new(alice, beta, remember=True)
        assert await silent(alice, alpha) and await silent(alice, beta)
        page = await alice.get(APPROVALS)
        assert len(listed_ids(page)) == 2
        alpha_id = next(
            record.id for record in await stack.gate.app[STORE].list(client_id=alpha["client_id"])
        )
        done = await change(alice, {"csrf": token_of(page), "id": alpha_id, "action": "revoke"})
        assert done.status == 303  # RFC 9700 §4.12: never a re-POST
        assert done.location == APPROVALS
        after = await alice.get(APPROVALS)
        again = await alice.authorize(alpha)
        assert await silent(alice, beta)
    assert listed_ids(after) == [i for i in listed_ids(page) if i != alpha_id]
    assert "Alpha Notes" not in after.text and "Beta Mail" in after.text
    assert again.is_consent_page  # asked, not silent
    revoked = [e for e in events if e.event == "consents_revoked"]
    assert [(e.fields["by"], e.fields["count"]) for e in revoked] == [("self", 1)]
    # The audit row names the POST that revoked, as its answer and access line do.
    assert revoked[0].request_id == done.headers["X-Request-Id"] != ""


async def test_revoke_all_revokes_every_approval_of_this_browser_and_no_one_elses(
    stack: Stack,
) -> None:
    alpha, beta = await two_clients(stack)
    async with Browser(stack.url) as alice, Browser(stack.url) as bob:
        await approve_new(alice, alpha, remember=True)
        await approve_new(alice, beta, remember=True)
        await approve_new(bob, alpha, remember=True)
        page = await alice.get(APPROVALS)
        asked = await change(alice, {"csrf": token_of(page), "action": "revoke_all"})
        assert asked.status == 200 and await active_count(stack) == 3
        done = await change(alice, confirmation_form(asked))
        after = await alice.get(APPROVALS)
        assert done.status == 303 and done.location == APPROVALS
        assert listed_ids(after) == []
        assert (await alice.authorize(alpha)).is_consent_page
        assert (await alice.authorize(beta)).is_consent_page
        assert await silent(bob, alpha)
    assert await active_count(stack) == 1


async def test_the_page_and_its_answers_carry_the_security_headers(stack: Stack) -> None:
    params = auth_params(await register(stack))
    async with Browser(stack.url) as alice, Browser(stack.url) as stranger:
        await approve_new(alice, params, remember=True)
        page = await alice.get(APPROVALS)
        empty = await stranger.get(APPROVALS)
        done = await revoke_first(alice, page)
        refused = await change(alice, {"csrf": "x", "action": "revoke_all"})
    for response in (page, empty, done, refused):
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert "form-action" not in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "<script" not in page.text


async def test_a_reload_of_the_page_keeps_the_old_forms_token_valid(stack: Stack) -> None:
    """FastMCP issue 4814: a second render must not break the form on screen."""
    params = auth_params(await register(stack))
    async with Browser(stack.url) as alice:
        await approve_new(alice, params, remember=True)
        shown = await alice.get(APPROVALS)
        reloaded = await alice.get(APPROVALS)
        assert "Set-Cookie" not in reloaded.headers
        done = await revoke_first(alice, shown)
    assert done.status == 303
    assert await active_count(stack) == 0


async def test_malformed_forms_are_refused(stack: Stack) -> None:
    params = auth_params(await register(stack))
    async with Browser(stack.url) as alice:
        await approve_new(alice, params, remember=True)
        token = token_of(await alice.get(APPROVALS))
        answers = [
            await change(alice, {"csrf": token, "action": "delete_everything"}),
            await change(alice, {"csrf": token, "action": "revoke"}),
            await change(alice, {"csrf": token, "action": "revoke", "id": "a b"}),
            await change(alice, {"csrf": token, "action": "revoke", "id": "x" * 65}),
        ]
    assert [a.status for a in answers] == [400] * 4
    assert await active_count(stack) == 1


async def test_the_consent_page_links_to_the_approvals_page(stack: Stack) -> None:
    async with Browser(stack.url) as alice:
        page = await alice.authorize(auth_params(await register(stack)))
    assert f'<a href="{APPROVALS}">Manage your approvals</a>' in page.text


async def test_other_spellings_of_the_page_are_not_it(stack: Stack) -> None:
    async with Browser(stack.url) as alice:
        pages = [await alice.get(APPROVALS + "/"), await alice.get(APPROVALS.upper())]
    assert [p.status for p in pages] == [404, 404]
    assert all("approvals" not in a.raw_path.lower() for a in stack.proxy.arrivals)


async def test_an_unavailable_store_answers_the_503_page(stack: Stack, tmp_path: Path) -> None:
    params = auth_params(await register(stack))
    path = stack.gate.app[STORE].path
    assert path is not None
    async with Browser(stack.url) as alice:
        await approve_new(alice, params, remember=True)
        page = await alice.get(APPROVALS)
        kept = tmp_path / "kept.db"
        os.link(path, kept)
        path.unlink()
        listing = await alice.get(APPROVALS)
        revoking = await revoke_first(alice, page)
        os.link(kept, path)
        assert await active_count(stack) == 1  # nothing was revoked
        assert await silent(alice, params)
    for response in (listing, revoking):
        assert response.status == 503, response.text[:300]
        assert response.headers["Retry-After"] == "30"
        assert "Please try again in a minute" in response.text
        assert "Traceback" not in response.text


async def test_revoke_all_first_shows_a_confirmation_page_and_revokes_nothing(
    stack: Stack,
) -> None:
    alpha, beta = await two_clients(stack)
    async with Browser(stack.url) as alice:
        await approve_new(alice, alpha, remember=True)
        await approve_new(alice, beta, remember=True)
        page = await alice.get(APPROVALS)
        asked = await change(alice, {"csrf": token_of(page), "action": "revoke_all"})
        assert await silent(alice, alpha) and await silent(alice, beta)
    assert asked.status == 200
    assert "Revoke all 2 approvals?" in asked.text
    assert confirmation_form(asked) == {
        "csrf": token_of(page),
        "confirm": "yes",
        "action": "revoke_all",
    }
    assert f'href="{APPROVALS}"' in asked.text  # the way back keeps them
    assert asked.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in asked.headers["Content-Security-Policy"]
    assert "<script" not in asked.text
    assert await active_count(stack) == 2


async def test_the_confirmation_needs_the_csrf_token_as_every_change(stack: Stack) -> None:
    params = auth_params(await register(stack))
    async with Browser(stack.url) as alice:
        await approve_new(alice, params, remember=True)
        refused = await change(alice, {"csrf": "x", "action": "revoke_all", "confirm": "yes"})
    assert refused.status == 403
    assert await active_count(stack) == 1


async def test_revoke_all_is_a_secondary_button_not_the_primary_one(stack: Stack) -> None:
    params = auth_params(await register(stack))
    async with Browser(stack.url) as alice:
        await approve_new(alice, params, remember=True)
        page = await alice.get(APPROVALS)
    buttons = re.findall(r'<button [^>]*value="revoke_all"[^>]*>', page.text)
    assert len(buttons) == 1
    assert 'class="deny revoke-all"' in buttons[0]
    assert 'class="approve' not in page.text  # no primary button on the list
