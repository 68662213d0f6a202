"""The consent decision's first look, rule by rule (consentgate.core.oauth.decision)."""

from __future__ import annotations

import pytest

from consentgate.core.oauth.authorization_requests import (
    AuthorizationRequest,
    parse_authorization_request,
    parse_parameters,
)
from consentgate.core.oauth.decision import FirstLook, first_look

QUERY = (
    "response_type=code&client_id=c1&redirect_uri=https%3A%2F%2Fclient.example%2Fcb"
    "&scope=read&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    "&code_challenge_method=S256"
)


def request(extra: str = "", *, allow_request_uri: bool = False) -> AuthorizationRequest:
    return parse_authorization_request(
        parse_parameters(QUERY + extra),
        allow_request_uri=allow_request_uri,
        allow_request_object=False,
    )


def look(auth: AuthorizationRequest, **overrides: object) -> FirstLook:
    options: dict[str, object] = {
        "mode": "remember",
        "preapproved_redirect_uris": (),
        "has_browser": True,
        "fetch_site": "none",
        **overrides,
    }
    return first_look(auth, **options)  # type: ignore[arg-type]


def test_a_direct_navigation_of_a_known_browser_asks_the_store() -> None:
    assert look(request()) is FirstLook.LOOK_UP


@pytest.mark.parametrize("site", ["none", "same-origin", "same-site", "Same-Origin"])
def test_navigations_another_site_cannot_start_may_be_silent(site: str) -> None:
    assert look(request(), fetch_site=site) is FirstLook.LOOK_UP


@pytest.mark.parametrize("site", ["cross-site", "", None, "bogus"])
def test_a_cross_site_or_unlabelled_navigation_is_asked(site: str | None) -> None:
    """FastMCP GHSA-6x8h-498w-gv8c: a remembered approval must not be replayed by a
    link on another site."""
    assert look(request(), fetch_site=site) is FirstLook.ASK


def test_prompt_consent_is_always_asked_even_when_preapproved() -> None:
    assert (
        look(request("&prompt=consent"), preapproved_redirect_uris=("https://client.example/cb",))
        is FirstLook.ASK
    )


def test_a_request_hidden_behind_request_uri_is_always_asked() -> None:
    auth = request("&request_uri=urn%3Aexample%3Ax", allow_request_uri=True)
    assert auth.opaque
    assert look(auth, preapproved_redirect_uris=(auth.redirect_uri,)) is FirstLook.ASK


def test_a_preapproved_redirect_uri_passes_even_cross_site_and_without_a_browser() -> None:
    auth = request()
    assert (
        look(
            auth,
            preapproved_redirect_uris=(auth.redirect_uri,),
            fetch_site="cross-site",
            has_browser=False,
        )
        is FirstLook.PREAPPROVED
    )


def test_mode_always_or_no_browser_identity_asks() -> None:
    assert look(request(), mode="always") is FirstLook.ASK
    assert look(request(), has_browser=False) is FirstLook.ASK
