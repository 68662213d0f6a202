"""The gate against a fake single-client OAuth proxy: one test per rule, and the attacks.

Every attack test asserts two things: the attacker's request is refused, and
nothing of it reached the upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import urllib.parse
from typing import Any

import aiohttp
import pytest

from consentgate.core.signed.pending import MAX_SEALED_LENGTH
from consentgate.signing.key_directory import load_keyring, rotate_keys
from consentgate.web.appkeys import STORE
from tests.conftest import ErrorLog, FakeClock, Stack, StartStack
from tests.support import rawhttp
from tests.support.browsersim import Browser, Page
from tests.support.fakeproxy import IDP, UPSTREAM_CLIENT_ID

CLIENT_REDIRECT = "https://client.example/callback"


async def register(stack: Stack, **metadata: Any) -> str:
    body = {"redirect_uris": [CLIENT_REDIRECT], "client_name": "Example Client", **metadata}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{stack.url}/register", json=body) as response,
    ):
        assert response.status == 201
        document = await response.json()
    client_id: str = document["client_id"]
    return client_id


def auth_params(client_id: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CLIENT_REDIRECT,
        "scope": "openid profile",
        "state": "client-state-1",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "resource": "https://mcp.example.com/mcp",
        **extra,
    }


async def approve_new(browser: Browser, params: dict[str, str], *, remember: bool = True) -> Page:
    page = await browser.authorize(params)
    assert page.is_consent_page, page.text[:300]
    return await browser.answer(page, "approve", remember=remember)


@pytest.fixture
async def stack(start_stack: StartStack) -> Stack:
    return await start_stack()


# --- interception -------------------------------------------------------------------------


async def test_unapproved_client_gets_the_consent_page_and_nothing_reaches_upstream(
    stack: Stack,
) -> None:
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
    assert page.is_consent_page
    assert stack.proxy.reached("/authorize") == []


async def test_authorization_by_post_form_is_intercepted_too(stack: Stack) -> None:
    client_id = await register(stack)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{stack.url}/authorize", data=auth_params(client_id), headers={"Accept": "text/html"}
        ) as response,
    ):
        text = await response.text()
    assert response.status == 200
    assert 'value="approve"' in text
    assert stack.proxy.reached("/authorize") == []


@pytest.mark.parametrize(
    "path",
    [
        "/authorize/",
        "/authorize//",
        "/AUTHORIZE",
        "/%61uthorize",
        "/x/../authorize",
        "/./authorize",
    ],
)
async def test_every_spelling_of_the_authorize_path_is_intercepted(stack: Stack, path: str) -> None:
    client_id = await register(stack)
    query = urllib.parse.urlencode(auth_params(client_id))
    response = await rawhttp.request(
        stack.url, f"{path}?{query}", headers=[("Accept", "text/html")]
    )
    assert response.status == 200
    assert b'value="approve"' in response.body
    assert stack.proxy.reached("/authorize") == []


@pytest.mark.parametrize(
    "path",
    [
        "/authorize%2F",
        "/%2Fauthorize",
        "/authorize;x=1",
        "/%2561uthorize",
        "/\\authorize",
        "//authorize",
        # hardening #10.9
        "/authorize%3F",
        "/authorize%3Fresponse_type=code",
        "/authorize%23",
        "/authorize.json",
        "/authorize.",
        "/authorize%20",
        "/x/..%C0%AFauthorize",
        "/authorize%EF%BC%8F",
    ],
)
async def test_ambiguous_spellings_of_the_authorize_path_are_refused(
    stack: Stack, path: str
) -> None:
    client_id = await register(stack)
    query = urllib.parse.urlencode(auth_params(client_id))
    response = await rawhttp.request(stack.url, f"{path}?{query}")
    assert response.status == 400
    assert stack.proxy.reached("/authorize") == []
    assert all("authorize" not in a.raw_path.lower() for a in stack.proxy.arrivals)


@pytest.mark.parametrize(
    "query",
    [
        "client_id=a&client_id=b&redirect_uri=https%3A%2F%2Fclient.example%2Fcallback",
        "client_id=a&client%5Fid=b&redirect_uri=https%3A%2F%2Fclient.example%2Fcallback",
        "client_id=a&redirect_uri=https%3A%2F%2Fgood%2Fcb&redirect_uri=https%3A%2F%2Fevil%2Fcb",
        "client_id=a&redirect_uri=https%3A%2F%2Fc%2Fcb&state=1&st%61te=2",
        "client_id=a&redirect_uri=https%3A%2F%2Fc%2Fcb&scope=a&scope=b",
    ],
)
async def test_repeated_parameters_are_refused_locally(
    error_log: ErrorLog, stack: Stack, query: str
) -> None:
    response = await rawhttp.request(
        stack.url, f"/authorize?{query}", headers=[("Accept", "text/html")]
    )
    assert response.status == 400
    assert "Location" not in response.headers
    assert "more than once" in error_log(response)
    assert stack.proxy.reached("/authorize") == []


async def test_a_parameter_in_both_query_and_form_body_is_repeated(stack: Stack) -> None:
    client_id = await register(stack)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{stack.url}/authorize?redirect_uri={urllib.parse.quote('https://evil.example/cb')}",
            data=auth_params(client_id),
        ) as response,
    ):
        assert response.status == 400
    assert stack.proxy.reached("/authorize") == []


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"redirect_uri": CLIENT_REDIRECT}, "client_id parameter is missing"),
        ({"client_id": "c"}, "redirect_uri parameter is missing"),
        ({"client_id": "c", "redirect_uri": "/relative"}, "not an absolute URI"),
        ({"client_id": "c", "redirect_uri": "javascript:alert(1)"}, "never acceptable"),
        ({"client_id": "c", "redirect_uri": "https://c.example/cb#frag"}, "fragment"),
        ({"client_id": "c", "redirect_uri": "https://user:pw@c.example/cb"}, "credentials"),
        ({"client_id": "c\nX", "redirect_uri": CLIENT_REDIRECT}, "malformed"),
    ],
)
async def test_missing_or_malformed_client_or_redirect_gives_a_page_never_a_redirect(
    error_log: ErrorLog, stack: Stack, params: dict[str, str], fragment: str
) -> None:
    async with Browser(stack.url) as browser:
        page = await browser.authorize(params)
    assert page.status == 400
    assert page.location == ""
    assert fragment in error_log(page)
    assert "This sign-in could not start" in page.text
    assert stack.proxy.reached("/authorize") == []


@pytest.mark.parametrize("name", ["request_uri", "request"])
async def test_par_and_jar_are_refused_unless_enabled(
    error_log: ErrorLog, stack: Stack, name: str
) -> None:
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        page = await browser.authorize({**auth_params(client_id), name: "urn:x"})
    assert page.status == 400
    assert name in error_log(page)
    assert stack.proxy.reached("/authorize") == []


async def test_enabled_par_requests_are_always_asked_and_never_remembered(
    start_stack: StartStack,
) -> None:
    stack = await start_stack(consent={"allow_request_uri": True})
    client_id = await register(stack)
    params = {"client_id": client_id, "request_uri": "urn:ietf:params:oauth:request_uri:abc"}
    async with Browser(stack.url) as browser:
        page = await browser.authorize(params)
        assert page.is_consent_page
        assert "signed request object" in page.text
        assert 'name="remember"' not in page.text
        done = await browser.answer(page, remember=True)
        assert done.status == 303
        again = await browser.authorize(params)
        assert again.is_consent_page


async def test_unsupported_methods_on_authorize_are_refused(stack: Stack) -> None:
    for method in ("PUT", "DELETE", "HEAD", "OPTIONS"):
        response = await rawhttp.request(stack.url, "/authorize?client_id=x", method=method)
        assert response.status == 405, method
    assert stack.proxy.reached("/authorize") == []


# --- the approval flow ----------------------------------------------------------------------


async def test_approval_relays_exactly_the_validated_request_with_a_303(stack: Stack) -> None:
    client_id = await register(stack)
    params = auth_params(client_id)
    async with Browser(stack.url) as browser:
        done = await approve_new(browser, params)
    assert done.status == 303
    assert done.location.startswith(IDP)
    (arrival,) = stack.proxy.reached("/authorize")
    assert arrival.method == "GET"
    forwarded = urllib.parse.parse_qsl(arrival.raw_path.split("?", 1)[1])
    assert forwarded == list(params.items())
    assert not any(name.startswith("cg_") for name in _cookie_names(arrival.headers))


def _cookie_names(headers: Any) -> list[str]:
    return [part.split("=")[0].strip() for part in headers.get("Cookie", "").split(";") if part]


async def test_remembered_approval_passes_silently_on_a_direct_navigation(stack: Stack) -> None:
    client_id = await register(stack)
    params = auth_params(client_id)
    async with Browser(stack.url) as browser:
        await approve_new(browser, params, remember=True)
        again = await browser.authorize({**params, "state": "second"}, site="none")
        same_origin = await browser.authorize({**params, "state": "third"}, site="same-origin")
    assert again.status == 302
    assert again.location.startswith(IDP)
    assert same_origin.status == 302
    assert len(stack.proxy.reached("/authorize")) == 3


@pytest.mark.parametrize("site", ["cross-site", None])
async def test_remembered_approval_is_not_used_silently_on_a_cross_site_navigation(
    stack: Stack, site: str | None
) -> None:
    """GHSA-6x8h-498w-gv8c: another site must not trigger a silent approval."""
    client_id = await register(stack)
    params = auth_params(client_id)
    async with Browser(stack.url) as browser:
        await approve_new(browser, params, remember=True)
        again = await browser.authorize(params, site=site)
    assert again.is_consent_page
    assert len(stack.proxy.reached("/authorize")) == 1


async def test_not_remembering_means_asking_again(stack: Stack) -> None:
    client_id = await register(stack)
    params = auth_params(client_id)
    async with Browser(stack.url) as browser:
        await approve_new(browser, params, remember=False)
        again = await browser.authorize(params)
    assert again.is_consent_page


async def test_mode_always_asks_every_time_and_approval_does_not_loop(
    start_stack: StartStack,
) -> None:
    stack = await start_stack(consent={"mode": "always"})
    client_id = await register(stack)
    params = auth_params(client_id)
    async with Browser(stack.url) as browser:
        page = await browser.authorize(params)
        assert 'name="remember"' not in page.text
        done = await browser.answer(page, remember=True)
        assert done.status == 303
        assert done.location.startswith(IDP)
        again = await browser.authorize(params)
        assert again.is_consent_page
    assert len(stack.proxy.reached("/authorize")) == 1


async def test_prompt_consent_always_asks(stack: Stack) -> None:
    client_id = await register(stack)
    params = auth_params(client_id)
    async with Browser(stack.url) as browser:
        await approve_new(browser, params, remember=True)
        again = await browser.authorize({**params, "prompt": "login consent"})
    assert again.is_consent_page


@pytest.mark.parametrize("site", ["cross-site", None, "none"])
async def test_prompt_none_for_an_unapproved_client_is_a_local_page_not_a_redirect(
    error_log: ErrorLog, stack: Stack, site: str | None
) -> None:
    """#10.10: anyone can register any redirect URI, so answering ``consent_required``
    by redirecting there made the gate an open redirect (RFC 9700 §4.11.2)."""
    client_id = await register(stack, redirect_uris=["https://attacker.example/landing"])
    params = {**auth_params(client_id), "prompt": "none"}
    params["redirect_uri"] = "https://attacker.example/landing"
    async with Browser(stack.url) as browser:
        page = await browser.authorize(params, site=site)
    assert page.status == 400
    assert "Location" not in page.headers
    assert "consent_required" in error_log(page)
    assert "This sign-in needs your approval" in page.text
    assert stack.proxy.reached("/authorize") == []


async def test_prompt_none_after_an_approval_redirects_consent_required_to_that_client(
    stack: Stack,
) -> None:
    """A remembered approval is not used silently on a cross-site navigation, but its
    destination is one this browser approved: there the error may go."""
    client_id = await register(stack)
    params = auth_params(client_id)
    async with Browser(stack.url) as browser:
        await approve_new(browser, params, remember=True)
        page = await browser.authorize({**params, "prompt": "none"}, site="cross-site")
    assert page.status == 303
    query = page.location_query()
    assert page.location.startswith(CLIENT_REDIRECT)
    assert query["error"] == "consent_required"
    assert query["state"] == "client-state-1"
    assert len(stack.proxy.reached("/authorize")) == 1  # only the approved one


@pytest.mark.parametrize(
    ("change", "silent"),
    [
        ({"scope": "openid"}, True),
        ({"scope": ""}, False),  # #10.7: no scope is the upstream's default, not a subset
        ({"scope": "openid profile email"}, False),
        ({"resource": "https://other.example/mcp"}, False),
        ({"resource": ""}, False),
    ],
)
async def test_a_remembered_approval_covers_only_its_scopes_and_resource(
    stack: Stack, change: dict[str, str], silent: bool
) -> None:
    client_id = await register(stack)
    params = auth_params(client_id)
    async with Browser(stack.url) as browser:
        await approve_new(browser, params, remember=True)
        changed = {k: v for k, v in {**params, **change}.items() if v != "" or k == "scope"}
        again = await browser.authorize(changed)
    assert (again.status == 302) is silent
    assert again.is_consent_page is not silent


async def test_an_approval_is_bound_to_the_browser_that_gave_it(stack: Stack) -> None:
    client_id = await register(stack)
    params = auth_params(client_id)
    async with Browser(stack.url) as alice, Browser(stack.url) as mallory:
        await approve_new(alice, params, remember=True)
        page = await mallory.authorize(params)
    assert page.is_consent_page


async def test_revoking_an_approval_makes_the_gate_ask_again(stack: Stack) -> None:
    client_id = await register(stack)
    params = auth_params(client_id)
    async with Browser(stack.url) as browser:
        await approve_new(browser, params, remember=True)
        revoked = await stack.gate.app[STORE].revoke(client_id=client_id)
        assert revoked == 1
        again = await browser.authorize(params)
    assert again.is_consent_page


async def test_loopback_redirect_may_change_port_and_keeps_the_approval(stack: Stack) -> None:
    """RFC 8252 §7.3: a native app picks its loopback port at run time."""
    client_id = await register(stack, redirect_uris=["http://127.0.0.1:33418/callback"])
    params = {**auth_params(client_id), "redirect_uri": "http://127.0.0.1:33418/callback"}
    async with Browser(stack.url) as browser:
        await approve_new(browser, params, remember=True)
        moved = await browser.authorize(
            {**params, "redirect_uri": "http://127.0.0.1:40001/callback"}
        )
        other_path = await browser.authorize(
            {**params, "redirect_uri": "http://127.0.0.1:40001/elsewhere"}
        )
    assert moved.status == 302
    assert other_path.status == 400


async def test_operator_preapproved_redirect_uris_pass_without_asking(
    start_stack: StartStack,
) -> None:
    stack = await start_stack(
        consent={"preapproved_redirect_uris": ["https://first-party.example/cb"]}
    )
    client_id = await register(stack, redirect_uris=["https://first-party.example/cb"])
    params = {**auth_params(client_id), "redirect_uri": "https://first-party.example/cb"}
    async with Browser(stack.url) as browser:
        page = await browser.authorize(params, site="cross-site")
        assert page.status == 302
        assert any(name.startswith("cg_b_") for name in browser.cookie_names())


async def test_a_client_cannot_preapprove_itself_by_registering(
    start_stack: StartStack,
) -> None:
    stack = await start_stack(
        consent={"preapproved_redirect_uris": ["https://first-party.example/cb"]}
    )
    client_id = await register(
        stack, trusted=True, skip_consent=True, redirect_uris=[CLIENT_REDIRECT]
    )
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
    assert page.is_consent_page


# --- client knowledge -------------------------------------------------------------------------


async def test_registration_responses_pass_untouched_and_are_learned_without_secrets(
    stack: Stack,
) -> None:
    body = json.dumps({"redirect_uris": [CLIENT_REDIRECT], "client_name": "Learned"})
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{stack.url}/register", data=body, headers={"Content-Type": "application/json"}
        ) as response,
    ):
        relayed = await response.read()
        assert response.status == 201
    assert relayed == stack.proxy.registration_bodies[-1]
    client_id = json.loads(relayed)["client_id"]
    record = await stack.gate.app[STORE].get_client(client_id)
    assert record is not None
    assert record.client_name == "Learned"
    assert record.redirect_uris == (CLIENT_REDIRECT,)
    assert "secret-" not in record.registration_json


async def test_known_client_with_an_unregistered_redirect_uri_is_refused_without_redirect(
    error_log: ErrorLog,
    stack: Stack,
) -> None:
    client_id = await register(stack)
    params = {**auth_params(client_id), "redirect_uri": "https://attacker.example/cb"}
    async with Browser(stack.url) as browser:
        page = await browser.authorize(params)
    assert page.status == 400
    assert page.location == ""
    assert "not one this client registered" in error_log(page)
    assert stack.proxy.reached("/authorize") == []


async def test_a_client_never_seen_registering_is_marked_unverified(stack: Stack) -> None:
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params("registered-before-the-gate"))
        assert page.is_consent_page
        assert "Unverified client" in page.text
        denied = await browser.answer(page, "deny")
    assert denied.status == 200
    assert denied.location == ""
    assert "Access denied" in denied.text


async def test_the_upstreams_own_client_id_goes_through_consent(stack: Stack) -> None:
    async with Browser(stack.url) as browser:
        page = await browser.authorize(
            {**auth_params(UPSTREAM_CLIENT_ID), "redirect_uri": "https://attacker.example/cb"}
        )
    assert page.is_consent_page
    assert "attacker.example" in page.text
    assert stack.proxy.reached("/authorize") == []


async def test_a_url_client_id_is_not_shown_as_an_unverified_client_but_checked(
    error_log: ErrorLog,
    start_stack: StartStack,
) -> None:
    """A client named by a URL goes through its metadata document (tests/web/test_cimd.py);
    here its domain is blocked, so the refusal comes before any lookup or connection."""
    stack = await start_stack(clients={"blocked_domains": ["cimd.example"]})
    params = {**auth_params("https://app.cimd.example/client.json")}
    async with Browser(stack.url) as browser:
        page = await browser.authorize(params)
    assert page.status == 403 and page.location == ""
    assert not page.is_consent_page
    assert "does not accept applications from this web site" in error_log(page)
    assert stack.proxy.reached("/authorize") == []


async def test_deny_for_a_known_client_redirects_access_denied_with_state_and_iss(
    stack: Stack,
) -> None:
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
        denied = await browser.answer(page, "deny")
    assert denied.status == 303
    assert denied.location.startswith(CLIENT_REDIRECT + "?")
    assert denied.location_query() == {
        "error": "access_denied",
        "state": "client-state-1",
        "iss": stack.proxy.issuer,
    }
    assert stack.proxy.reached("/authorize") == []


# --- the consent page -----------------------------------------------------------------------


async def test_consent_page_shows_what_a_person_needs_to_decide(start_stack: StartStack) -> None:
    stack = await start_stack(
        consent={
            "service_name": "Acme MCP",
            "scope_descriptions": {"openid": "Confirm who you are"},
        }
    )
    client_id = await register(
        stack,
        client_name="Claude <script>alert(1)</script>",
        client_uri="javascript:alert(1)",
        policy_uri="https://client.example/privacy",
        tos_uri="https://elsewhere.example/tos",
        logo_uri="https://client.example/logo.png",
    )
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
    text = page.text
    assert "Acme MCP" in text
    assert "&ldquo;<bdi>&#34;Claude" in text or "&ldquo;<bdi>Claude" in text
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "(name declared by the client)" in text
    assert "javascript:" not in text
    assert 'href="https://client.example/privacy"' in text
    assert 'href="https://elsewhere.example/tos"' in text
    assert "a different site than the destination" in text
    assert "https://<strong>client.example</strong>/callback" in text
    assert "Confirm who you are" in text
    assert "https://mcp.example.com/mcp" in text
    assert "<img" not in text  # remote logos are not loaded by default
    assert "<script" not in text.lower()


@pytest.mark.parametrize(
    ("redirect", "warning"),
    [
        ("http://127.0.0.1:5555/cb", "an application on this computer"),
        ("claude://oauth/callback", "an app installed on this device"),
        ("http://intranet.example/cb", "plain http to intranet.example"),
    ],
)
async def test_consent_page_warns_about_risky_destinations(
    stack: Stack, redirect: str, warning: str
) -> None:
    client_id = await register(stack, redirect_uris=[redirect])
    async with Browser(stack.url) as browser:
        page = await browser.authorize({**auth_params(client_id), "redirect_uri": redirect})
    assert page.is_consent_page
    assert warning in page.text


async def test_gate_pages_carry_the_security_headers(stack: Stack) -> None:
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        consent = await browser.authorize(auth_params(client_id))
        error = await browser.authorize({"client_id": "x"})
    for page in (consent, error):
        csp = page.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp
        assert "default-src 'none'" in csp
        assert "form-action" not in csp
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["Cache-Control"] == "no-store"
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert page.headers["X-Content-Type-Options"] == "nosniff"


async def test_browser_cookie_attributes_on_http_development_origin(stack: Stack) -> None:
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
    cookies = page.headers.getall("Set-Cookie")
    browser_cookie = next(c for c in cookies if c.startswith("cg_bid="))
    assert "HttpOnly" in browser_cookie
    assert "SameSite=Lax" in browser_cookie
    assert "Path=/" in browser_cookie
    assert "Secure" not in browser_cookie
    csrf_cookie = next(c for c in cookies if c.startswith("cg_p_"))
    assert "SameSite=Strict" in csrf_cookie


async def test_browser_cookie_attributes_on_an_https_origin(start_stack: StartStack) -> None:
    stack = await start_stack(public_url="https://mcp.example.com")
    response = await rawhttp.request(
        stack.url,
        "/authorize?" + urllib.parse.urlencode(auth_params("some-client")),
        headers=[("Accept", "text/html")],
    )
    cookies = response.headers.getall("Set-Cookie")
    assert cookies, response.status
    for cookie in cookies:
        assert cookie.startswith("__Host-cg_")
        assert "Secure" in cookie
        assert "Path=/" in cookie
        assert "Domain" not in cookie


# --- pending requests and CSRF -------------------------------------------------------------


async def test_a_second_render_does_not_invalidate_the_first_form(stack: Stack) -> None:
    """FastMCP issue 4814: a reload rotated the token and broke the form on screen."""
    client_id = await register(stack)
    params = auth_params(client_id)
    async with Browser(stack.url) as browser:
        first = await browser.authorize(params)
        second = await browser.authorize(params)
        assert first.form()["pending"] != second.form()["pending"]
        done = await browser.answer(first)
    assert done.status == 303


async def test_an_answered_form_cannot_be_replayed(stack: Stack) -> None:
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
        assert (await browser.answer(page)).status == 303
        browser.set_cookie(f"cg_p_{page.form()['pending']}", page.form()["csrf"])
        replay = await browser.answer(page)
    assert replay.status == 403
    assert len(stack.proxy.reached("/authorize")) == 1


async def test_an_approve_form_replayed_from_another_browser_is_refused(stack: Stack) -> None:
    client_id = await register(stack)
    async with Browser(stack.url) as victim, Browser(stack.url) as attacker:
        await victim.authorize(auth_params("anything"))  # the victim has its own browser id
        page = await attacker.authorize(auth_params(client_id))
        # The victim submits the attacker's form; even the per-render cookie is planted.
        victim.set_cookie(f"cg_p_{page.form()['pending']}", page.form()["csrf"])
        forged = await victim.answer(page)
    assert forged.status == 403
    assert stack.proxy.reached("/authorize") == []


async def test_hidden_fields_cannot_change_what_is_approved(stack: Stack) -> None:
    client_id = await register(stack)
    params = auth_params(client_id)
    async with Browser(stack.url) as browser:
        page = await browser.authorize(params)
        done = await browser.answer(
            page,
            extra={
                "redirect_uri": "https://attacker.example/cb",
                "client_id": "attacker",
                "scope": "admin",
            },
        )
    assert done.status == 303
    (arrival,) = stack.proxy.reached("/authorize")
    assert dict(urllib.parse.parse_qsl(arrival.raw_path.split("?", 1)[1])) == params


@pytest.mark.parametrize(
    "override",
    [
        {"csrf": "forged"},
        {"csrf": ""},
        {"pending": "0" * 32},
        {"decision": "maybe"},
        {"sealed": ""},
        {"sealed": "A" * 200},
    ],
)
async def test_altered_form_fields_are_refused(stack: Stack, override: dict[str, str]) -> None:
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
        done = await browser.answer(page, override=override)
    assert done.status in (400, 403)
    assert stack.proxy.reached("/authorize") == []


@pytest.mark.parametrize(
    ("origin", "site"),
    [
        ("https://evil.example", "cross-site"),
        ("self", "cross-site"),
        ("https://evil.example", None),
        ("null", None),
    ],
)
async def test_a_consent_answer_from_another_site_is_refused(
    stack: Stack, origin: str, site: str | None
) -> None:
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
        done = await browser.answer(page, origin=origin, site=site)
    assert done.status == 403
    assert stack.proxy.reached("/authorize") == []


async def test_origin_null_from_the_consent_page_itself_is_accepted(stack: Stack) -> None:
    """The page's Referrer-Policy: no-referrer makes browsers send Origin: null."""
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
        done = await browser.answer(page, origin="null", site="same-origin")
    assert done.status == 303


async def test_pending_cookies_per_browser_are_capped(stack: Stack) -> None:
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        pages = [await browser.authorize(auth_params(client_id)) for _ in range(8)]
        pending = [n for n in browser.cookie_names() if n.startswith("cg_p_")]
        assert len(pending) <= 5
        assert f"cg_p_{pages[-1].form()['pending']}" in pending
        assert f"cg_p_{pages[0].form()['pending']}" not in pending
        assert (await browser.answer(pages[0])).status == 403
        assert (await browser.answer(pages[-1])).status == 303


async def test_a_seal_from_another_page_of_the_same_browser_is_refused(stack: Stack) -> None:
    """Each seal names its page: the answer to one page cannot carry another page's
    request, even in the browser that was shown both."""
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        mild = await browser.authorize(auth_params(client_id, scope="openid"))
        broad = await browser.authorize(auth_params(client_id, scope="openid admin"))
        swapped = await browser.answer(mild, override={"sealed": broad.form()["sealed"]})
        honest = await browser.answer(mild)
    assert swapped.status == 403
    assert honest.status == 303
    (arrival,) = stack.proxy.reached("/authorize")
    assert "admin" not in arrival.raw_path


async def test_a_page_shown_before_a_signing_key_rotation_is_answered_after_it(
    stack: Stack,
) -> None:
    """The seal is keyed from the cookie secret, not the Ed25519 ring: rotating the
    signing keys leaves every page on screen answerable, and the approval is signed
    with the new key."""
    client_id = await register(stack)
    store = stack.gate.app[STORE]
    before = store.keyring.active_kid
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
        rotate_keys(stack.gate.config.keys.dir)
        store.reload_keys(load_keyring(stack.gate.config.keys.dir, create=False))
        done = await browser.answer(page, remember=True)
    assert done.status == 303
    (record,) = await store.list()
    assert record.key_id == store.keyring.active_kid != before


async def test_an_expired_consent_page_cannot_be_answered(start_stack: StartStack) -> None:
    clock = FakeClock()
    stack = await start_stack(clock=clock)
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        first = await browser.authorize(auth_params(client_id, state="s1"))
        second = await browser.authorize(auth_params(client_id, state="s2"))
        clock.advance(599)
        in_time = await browser.answer(first)
        clock.advance(2)
        late = await browser.answer(second)
    assert in_time.status == 303
    assert late.status == 403
    assert len(stack.proxy.reached("/authorize")) == 1


# --- binding of the upstream flow -------------------------------------------------------------


async def approved_idp_state(stack: Stack, browser: Browser, **extra: str) -> str:
    client_id = await register(stack)
    done = await approve_new(browser, auth_params(client_id, **extra))
    assert done.status == 303
    return done.location_query()["state"]


async def test_callback_in_the_approving_browser_completes_and_clears_the_binding(
    stack: Stack,
) -> None:
    async with Browser(stack.url) as browser:
        state = await approved_idp_state(stack, browser)
        assert any(n.startswith("cg_b_") for n in browser.cookie_names())
        back = await browser.get(f"/auth/callback?code=idp-code&state={state}", site="cross-site")
    assert back.status == 302
    assert back.location.startswith(CLIENT_REDIRECT + "?code=proxy-code-")
    assert "state=client-state-1" in back.location
    assert not any(n.startswith("cg_b_") for n in browser.cookie_names())
    assert len(stack.proxy.reached("/auth/callback")) == 1


async def test_callback_from_another_browser_is_refused(error_log: ErrorLog, stack: Stack) -> None:
    """GHSA-rww4-4w9c-7733: the attacker approves, the victim signs in at the IdP."""
    async with Browser(stack.url) as attacker, Browser(stack.url) as victim:
        state = await approved_idp_state(stack, attacker)
        back = await victim.get(f"/auth/callback?code=victims-code&state={state}")
    assert back.status == 403
    assert "not started in this browser" in error_log(back)
    assert "start the sign-in again" in back.text
    assert stack.proxy.reached("/auth/callback") == []


async def test_callback_replayed_is_refused(stack: Stack) -> None:
    async with Browser(stack.url) as browser:
        state = await approved_idp_state(stack, browser)
        binding = next(
            (n, browser.cookie_value(n)) for n in browser.cookie_names() if n.startswith("cg_b_")
        )
        first = await browser.get(f"/auth/callback?code=c&state={state}")
        browser.set_cookie(binding[0], binding[1] or "")
        second = await browser.get(f"/auth/callback?code=c&state={state}")
    assert first.status == 302
    assert second.status == 403
    assert len(stack.proxy.reached("/auth/callback")) == 1


@pytest.mark.parametrize(
    "query", ["code=c", "code=c&state=", "code=c&state=unknown", "code=c&state=a&state=b"]
)
async def test_callback_without_a_bound_state_is_refused(stack: Stack, query: str) -> None:
    async with Browser(stack.url) as browser:
        await approved_idp_state(stack, browser)
        back = await browser.get(f"/auth/callback?{query}")
    assert back.status in (400, 403)
    assert stack.proxy.reached("/auth/callback") == []


async def test_a_forged_binding_cookie_is_refused(stack: Stack) -> None:
    async with Browser(stack.url) as browser:
        state = await approved_idp_state(stack, browser)
        name = next(n for n in browser.cookie_names() if n.startswith("cg_b_"))
        issued, _ = (browser.cookie_value(name) or ".").split(".")
        browser.set_cookie(name, f"{issued}.AAAAAAAAAAAAAAAAAAAAAAAA")
        back = await browser.get(f"/auth/callback?code=c&state={state}")
    assert back.status == 403


async def test_an_expired_binding_is_refused(start_stack: StartStack) -> None:
    clock = FakeClock()
    stack = await start_stack(clock=clock)
    async with Browser(stack.url) as browser:
        state = await approved_idp_state(stack, browser)
        clock.advance(601)
        back = await browser.get(f"/auth/callback?code=c&state={state}")
    assert back.status == 403


async def test_several_flows_in_one_browser_each_complete(stack: Stack) -> None:
    async with Browser(stack.url) as browser:
        states = [await approved_idp_state(stack, browser, state=f"s{i}") for i in range(3)]
        results = [await browser.get(f"/auth/callback?code=c&state={s}") for s in states]
    assert [r.status for r in results] == [302, 302, 302]
    assert [r.location_query()["state"] for r in results] == ["s0", "s1", "s2"]


@pytest.mark.parametrize(
    "path", ["/auth/callback%3F", "/auth/callback%3Fcode=c", "/auth/callback."]
)
async def test_encoded_spellings_of_the_callback_are_refused_not_relayed(
    stack: Stack, path: str
) -> None:
    response = await rawhttp.request(stack.url, f"{path}?code=c&state=s")
    assert response.status == 400
    assert stack.proxy.reached("/auth/callback") == []
    assert all("callback" not in a.raw_path.lower() for a in stack.proxy.arrivals)


@pytest.mark.parametrize("path", ["/auth/./callback", "/AUTH/callback", "/auth//callback/"])
async def test_callback_path_variants_are_checked_too(stack: Stack, path: str) -> None:
    async with Browser(stack.url) as attacker, Browser(stack.url) as victim:
        state = await approved_idp_state(stack, attacker)
        response = await rawhttp.request(stack.url, f"{path}?code=c&state={state}")
        del victim
    assert response.status == 403
    assert stack.proxy.reached("/auth/callback") == []


async def test_binding_cookie_is_set_only_for_approved_authorize_responses(stack: Stack) -> None:
    async with Browser(stack.url) as browser:
        page = await browser.get("/login-redirect")
    assert page.status == 302
    assert not any(c.startswith("cg_b_") for c in page.headers.getall("Set-Cookie", []))


async def test_blocked_paths_are_never_relayed(start_stack: StartStack) -> None:
    stack = await start_stack(upstream={"blocked_paths": ["/consent"]})
    for target in ("/consent?txn_id=x", "/Consent", "/consent/", "/%63onsent"):
        response = await rawhttp.request(stack.url, target)
        assert response.status == 404, target
    assert stack.proxy.reached("/consent") == []


async def test_the_confused_deputy_attack_is_stopped_end_to_end(stack: Stack) -> None:
    """The attack the gate exists for: the attacker registers a client that sends codes to
    the attacker, and has the victim open its authorization link. Without consent the
    upstream would send the victim to the IdP, which may skip its own consent screen."""
    attacker_cb = "https://attacker.example/steal"
    client_id = await register(stack, redirect_uris=[attacker_cb], client_name="Trusted App")
    link = "/authorize?" + urllib.parse.urlencode(
        {**auth_params(client_id), "redirect_uri": attacker_cb}
    )
    async with Browser(stack.url) as victim:
        page = await victim.get(link, site="cross-site")
    assert page.is_consent_page
    assert re.search(r"<strong>attacker\.example</strong>", page.text)
    assert stack.proxy.reached("/authorize") == []


async def test_a_form_body_that_arrives_in_pieces_is_read_whole(stack: Stack) -> None:
    client_id = await register(stack)
    body = urllib.parse.urlencode(auth_params(client_id)).encode()
    port = int(stack.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        "POST /authorize HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\nConnection: close\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + body[:40])
    await writer.drain()
    await asyncio.sleep(0.2)  # the gate has read the first piece by now
    writer.write(body[40:])
    await writer.drain()
    response = await reader.read()
    writer.close()
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    assert b'value="approve"' in response


# --- hardening #10.1: a flood of consent pages stays bounded -------------------------------


async def test_a_cookieless_flood_of_consent_pages_stores_nothing_and_real_users_get_theirs(
    start_stack: StartStack,
) -> None:
    """One client renders consent pages in a loop without ever keeping a cookie (a new
    browser each time) and with the largest request it may send. Each page carries its
    request sealed in its form, bounded; the store keeps nothing for any of them, and
    someone else, from another address, still gets a page and can approve."""
    stack = await start_stack(consent={"max_pending_per_address": 20, "max_pending": 20})
    client_id = await register(stack)
    store = stack.gate.app[STORE]
    big = {**auth_params(client_id), "nonce": "n" * 7000, "login_hint": "h" * 7000}
    too_big = {**big, "claims": "c" * 8000}
    sealed_lengths: set[int] = set()
    async with aiohttp.ClientSession() as flood:  # no cookie jar kept between requests
        for _ in range(200):
            async with flood.post(
                f"{stack.url}/authorize",
                data=big,
                headers={"Cookie": ""},
            ) as response:
                assert response.status == 200
                page = Page(200, response.headers, await response.text())
                sealed_lengths.add(len(page.form()["sealed"]))
                assert len(response.headers.getall("Set-Cookie")) == 2  # browser id, CSRF
            flood.cookie_jar.clear()
        async with flood.post(f"{stack.url}/authorize", data=too_big) as response:
            assert response.status == 413
    assert await store.count_pending() == 0
    assert store.path is not None
    with contextlib.closing(sqlite3.connect(store.path)) as db:  # the file, read beside the gate
        (pending, marks) = db.execute(
            "SELECT (SELECT count(*) FROM pending), (SELECT count(*) FROM used_bindings)"
        ).fetchone()
    assert (pending, marks) == (0, 0)
    assert max(sealed_lengths) <= MAX_SEALED_LENGTH < 64 * 1024  # the gate's form limit
    async with Browser(stack.url, source="127.0.0.2") as alice:
        page = await alice.authorize(auth_params(client_id))
        assert page.is_consent_page
        done = await alice.answer(page, "approve")
    assert done.status == 303
    assert stack.proxy.reached("/authorize")  # alice's approval went through


async def test_strangers_flooding_from_many_addresses_cannot_refuse_consent_pages_to_others(
    start_stack: StartStack,
) -> None:
    """Cookie-less consent pages spread over five addresses, each within its per-address
    share, together more than ``max_pending``: the gate keeps nothing for them, so a
    person from another address still gets a page, approves it, and reaches the upstream."""
    stack = await start_stack(consent={"max_pending_per_address": 5, "max_pending": 20})
    client_id = await register(stack)
    store = stack.gate.app[STORE]
    statuses: list[int] = []
    for host in range(2, 7):
        for _ in range(5):
            async with Browser(stack.url, source=f"127.0.0.{host}") as stranger:
                statuses.append((await stranger.authorize(auth_params(client_id))).status)
    stored = await store.count_pending()
    async with Browser(stack.url, source="127.0.0.9") as alice:
        page = await alice.authorize(auth_params(client_id))
        assert page.status == 200, page.text[:300]
        assert page.is_consent_page
        done = await alice.answer(page, "approve")
    assert statuses == [200] * 25
    assert stored == 0
    assert done.status == 303
    assert len(stack.proxy.reached("/authorize")) == 1


async def test_a_page_shown_before_a_flood_stays_answerable_after_it(
    start_stack: StartStack,
) -> None:
    stack = await start_stack(consent={"max_pending_per_address": 5, "max_pending": 8})
    client_id = await register(stack)
    async with Browser(stack.url, source="127.0.0.2") as alice:
        shown = await alice.authorize(auth_params(client_id))
        assert shown.is_consent_page
        statuses = []
        for host in (1, 3):
            for _ in range(15):
                async with Browser(stack.url, source=f"127.0.0.{host}") as stranger:
                    statuses.append((await stranger.authorize(auth_params(client_id))).status)
        async with Browser(stack.url, source="127.0.0.4") as bob:
            bobs = await bob.authorize(auth_params(client_id))
        done = await alice.answer(shown, "approve")
    assert statuses == [200] * 30
    assert bobs.is_consent_page
    assert done.status == 303
