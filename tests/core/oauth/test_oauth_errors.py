"""The OAuth error codes as classes: one per code of RFC 6749 §4.1.2.1 and §5.2, OpenID
Connect Core §3.1.2.6 and RFC 8707 §2, each with its code and default status, under one
root; the authorization request parser raises them."""

from __future__ import annotations

import pytest

from consentgate.core.oauth import oauth_errors
from consentgate.core.oauth.authorization_requests import (
    parse_authorization_request,
    parse_parameters,
)
from consentgate.core.oauth.oauth_errors import (
    AccessDenied,
    ConsentRequired,
    InteractionRequired,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    LoginRequired,
    OAuthError,
    RequestNotSupported,
    RequestUriNotSupported,
    ServerError,
    TemporarilyUnavailable,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
)

CODES = {
    InvalidRequest: ("invalid_request", 400),
    UnauthorizedClient: ("unauthorized_client", 400),
    AccessDenied: ("access_denied", 400),
    UnsupportedResponseType: ("unsupported_response_type", 400),
    InvalidScope: ("invalid_scope", 400),
    ServerError: ("server_error", 500),
    TemporarilyUnavailable: ("temporarily_unavailable", 503),
    InvalidClient: ("invalid_client", 400),
    InvalidGrant: ("invalid_grant", 400),
    UnsupportedGrantType: ("unsupported_grant_type", 400),
    InteractionRequired: ("interaction_required", 400),
    LoginRequired: ("login_required", 400),
    ConsentRequired: ("consent_required", 400),
    RequestNotSupported: ("request_not_supported", 400),
    RequestUriNotSupported: ("request_uri_not_supported", 400),
    InvalidTarget: ("invalid_target", 400),
}


@pytest.mark.parametrize(("kind", "expected"), list(CODES.items()))
def test_each_error_knows_its_code_and_default_status_under_one_root(
    kind: type[OAuthError], expected: tuple[str, int]
) -> None:
    error = kind("what went wrong")
    assert isinstance(error, OAuthError)
    assert (error.code, error.status) == expected
    assert (error.description, str(error)) == ("what went wrong", "what went wrong")


def test_every_error_class_of_the_module_is_listed_once_with_a_distinct_code() -> None:
    classes = {
        value
        for value in vars(oauth_errors).values()
        if isinstance(value, type) and issubclass(value, OAuthError) and value is not OAuthError
    }
    assert classes == set(CODES)
    assert len({kind.code for kind in classes}) == len(classes)


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("client_id=c&client_id=d", InvalidRequest),
        ("client_id=c&redirect_uri=https://a.example/cb&scope=a%01b", InvalidScope),
        ("client_id=c&redirect_uri=https://a.example/cb&resource=relative", InvalidTarget),
        ("client_id=c&request_uri=urn:x", RequestUriNotSupported),
        ("client_id=c&request=eyJ", RequestNotSupported),
    ],
)
def test_the_parser_raises_the_class_of_the_error_it_names(
    query: str, kind: type[OAuthError]
) -> None:
    with pytest.raises(kind) as raised:
        parse_authorization_request(
            parse_parameters(query), allow_request_uri=False, allow_request_object=False
        )
    assert type(raised.value) is kind
