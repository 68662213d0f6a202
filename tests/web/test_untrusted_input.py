"""Every parser of untrusted input, fed arbitrary text: only its documented error escapes.

Hardening issue #10, point 5: ``redirect_uri=https://[::1/cb``, a full-width slash,
``resource=https://[x``, a registered ``client_uri`` with ``[`` and an upstream
``Location`` with ``[`` raised from ``urlsplit`` and answered 500 with a traceback.
The property tests below run each parser on text built from the characters that
break URL parsers; the gate tests send the reported inputs over the network.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentgate.core.clientinfo import build_view, safe_http_url
from consentgate.core.oauth.authorization_requests import (
    consent_redirect_key,
    parse_authorization_request,
    parse_parameters,
    parse_redirect_uri,
    redirect_uri_matches,
)
from consentgate.core.oauth.oauth_errors import OAuthError
from consentgate.core.oauth.paths import PathRules, Route
from consentgate.core.signed.cookies import CookieCrypto, CookieNames, same_token
from consentgate.core.signed.pending import BadPending, PendingConsent
from consentgate.core.signed.records import ClientRecord
from consentgate.core.trust import forwarding
from consentgate.core.trust.urls import BadURL, browser_host, split_url
from tests.conftest import StartGate, StartStack, StartUpstream
from tests.web.consent_flow.test_authorize import auth_params, register

#: Characters that have broken URL parsers: brackets, IDNA dots and slashes, escapes.
_NASTY = "[]:/\\@%#?&=;.~ \t\x00\x7f\uff0f\u3002\uff0e\u2044\u200b\u0131\u043e\u00df\ufeff"
_PIECES = st.sampled_from(
    ["https://", "http://", "claude://", "[", "]", "::1", "%5B", "%2F", "%", "%zz", "%C0%AF",
     "xn--", "127.0.0.1", "0x7f", ":8080", ":99999", ":x", "@", "example.com", "/cb", "?a=b",
     "#f", "\uff0f", "\u3002", "%65", "..", "evil", "\u0131"]
)  # fmt: skip
URLISH = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(_NASTY), max_size=60),
    st.lists(_PIECES, max_size=8).map("".join),
    st.lists(st.one_of(_PIECES, st.text(_NASTY, max_size=3)), max_size=10).map("".join),
)
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(URLISH)
def test_url_helpers_raise_only_badurl(text: str) -> None:
    for parse in (split_url, browser_host):
        with contextlib.suppress(BadURL):
            parse(text)


@SETTINGS
@given(URLISH)
def test_redirect_uri_parsing_raises_only_oauth_request_error(text: str) -> None:
    try:
        target = parse_redirect_uri(text)
    except OAuthError:
        return
    assert target.host.isascii()
    assert target.kind in ("https", "loopback", "custom", "insecure")
    consent_redirect_key(text)
    redirect_uri_matches(text, text)


@SETTINGS
@given(URLISH, URLISH)
def test_redirect_matching_and_links_never_raise(a: str, b: str) -> None:
    redirect_uri_matches(a, b)
    consent_redirect_key(a)
    link = safe_http_url(a)
    assert link is None or link[1].isascii()


@SETTINGS
@given(st.dictionaries(st.sampled_from(
    ["client_id", "redirect_uri", "scope", "resource", "state", "prompt", "request_uri"]
), URLISH, max_size=7), st.booleans())  # fmt: skip
def test_authorization_requests_raise_only_oauth_request_error(
    values: dict[str, str], remember: bool
) -> None:
    try:
        parameters = parse_parameters("&".join(f"{k}={v}" for k, v in values.items()))
        auth = parse_authorization_request(
            parameters, allow_request_uri=True, allow_request_object=True
        )
    except OAuthError:
        return
    try:
        client: ClientRecord | None = ClientRecord.from_registration(
            {
                "client_id": auth.client_id or "c",
                "client_name": values.get("state"),
                "client_uri": values.get("resource"),
                "logo_uri": values.get("redirect_uri"),
                "tos_uri": values.get("scope"),
                "redirect_uris": [auth.redirect_uri] if auth.redirect_uri else [],
            },
            0,
        )
    except ValueError:
        client = None  # the store refuses such a registration (a NUL, say): never learned
    view = build_view(auth, client, scope_descriptions={}, show_logos=True, remember_mode=remember)
    assert all(link.host.isascii() for link in view.links)


@SETTINGS
@given(URLISH)
def test_path_rules_forwarding_and_cookie_readers_never_raise(text: str) -> None:
    rules = PathRules({"/authorize": Route.AUTHORIZE}, {"/_consentgate": Route.GATE})
    rules.classify(text)
    rules.classify("/" + text)
    forwarding.parse_ip(text)
    forwarding.address_group(text)
    forwarding.client_address(forwarding.parse_ip("10.0.0.1"), text, ())
    forwarding.strip_cookies(text, ("cg_",))
    forwarding.rewrite_location(text, "http://up", "https://pub")
    crypto = CookieCrypto(lambda purpose: purpose.encode().ljust(32, b"k"), CookieNames(True))
    crypto.read_browser_cookie(text)
    with contextlib.suppress(BadPending):  # a sealed page that is none: refused, no crash
        crypto.open_pending(text, "subject", 0)
    crypto.check_binding(text, "subject", {crypto.binding_cookie_name(text): text})
    crypto.check_binding(text, "subject", {crypto.binding_cookie_name(text): "1." + text})
    same_token(text, "expected")
    with contextlib.suppress(BadPending):
        PendingConsent.from_json(text)


@SETTINGS
@given(st.dictionaries(st.text(max_size=12), st.recursive(
    st.none() | st.booleans() | st.integers() | URLISH,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
), max_size=8), URLISH)  # fmt: skip
def test_registration_documents_raise_only_value_error(document: dict[str, Any], cid: str) -> None:
    with contextlib.suppress(ValueError):
        ClientRecord.from_registration({**document, "client_id": cid}, 0)


# --- the reported inputs, over the network --------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"redirect_uri": "https://[::1/cb"},
        {"redirect_uri": "https://evil.example\uff0f@good.example/cb"},
        {"redirect_uri": "https://exa\uff0fmple.com/cb"},
        {"redirect_uri": "https://e%00vil.com/cb"},
        {"redirect_uri": "https://host:port/cb"},
        {"resource": "https://[x"},
    ],
)
async def test_malformed_urls_in_a_request_get_the_400_page(
    start_stack: StartStack, change: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    stack = await start_stack()
    client_id = await register(stack)
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{stack.url}/authorize",
            params={**auth_params(client_id), **change},
            headers={"Accept": "text/html"},
        ) as response,
    ):
        text = await response.text()
    assert response.status == 400, text[:400]
    assert "Traceback" not in caplog.text
    assert "unhandled error" not in caplog.text
    assert stack.proxy.reached("/authorize") == []


async def test_a_registered_client_uri_with_a_bracket_still_gets_a_consent_page(
    start_stack: StartStack,
) -> None:
    stack = await start_stack()
    client_id = await register(stack, client_uri="https://[oops/", policy_uri="https://\uff0f")
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{stack.url}/authorize",
            params=auth_params(client_id),
            headers={"Accept": "text/html"},
        ) as response,
    ):
        text = await response.text()
    assert response.status == 200
    assert 'name="decision" value="approve"' in text
    assert "[oops" not in text  # not shown as a link


async def test_an_upstream_location_with_a_bracket_is_relayed_unbound_not_a_500(
    start_upstream: StartUpstream, start_gate: StartGate, caplog: pytest.LogCaptureFixture
) -> None:
    async def authorize(request: web.Request) -> web.Response:
        return web.Response(
            status=302, headers={"Location": "https://[idp.example/authorize?state=abc"}
        )

    upstream = web.Application()
    upstream.router.add_get("/authorize", authorize)
    gate = await start_gate(
        await start_upstream(upstream),
        consent={"preapproved_redirect_uris": ["https://first.example/cb"]},
    )
    params = {"client_id": "c", "redirect_uri": "https://first.example/cb", "state": "s"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gate.url}/authorize", params=params, allow_redirects=False) as response,
    ):
        await response.read()
    assert response.status == 302
    assert not any("_b_" in value for value in response.headers.getall("Set-Cookie", []))
    assert "unhandled error" not in caplog.text


def test_the_reported_inputs_parse_to_the_documented_error() -> None:
    for uri in ("https://[::1/cb", "https://exa\uff0fmple.com/cb"):
        with pytest.raises(OAuthError):
            parse_redirect_uri(uri)
    assert safe_http_url("https://[oops/") is None
    assert json.loads(PendingConsent.of((), redirectable=False, remember_allowed=False).to_json())
