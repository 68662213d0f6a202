"""Validating a fetched Client ID Metadata Document (pure functions)."""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentgate.clients.client_id_urls import parse_client_id_url
from consentgate.clients.metadata_documents import (
    MAX_DOCUMENT_BYTES,
    MAX_REDIRECT_URIS,
    BadMetadataDocument,
    ClientMetadataDocument,
    localhost_only,
    parse_document_bytes,
    read_document,
    redirect_uri_listed,
    validate_document,
)
from consentgate.core.clientinfo import MAX_NAME_LENGTH, build_view
from consentgate.core.oauth.authorization_requests import (
    parse_authorization_request,
    parse_parameters,
)

URL = "https://app.example.com/oauth/client.json"
CLIENT = parse_client_id_url(URL)


def document(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "client_id": URL,
        "client_name": "Example App",
        "redirect_uris": ["http://127.0.0.1/callback", "https://app.example.com/cb"],
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not ...}


def refused(value: object) -> BadMetadataDocument:
    with pytest.raises(BadMetadataDocument) as caught:
        validate_document(value, CLIENT)
    return caught.value


def test_a_minimal_document_is_read_with_the_defaults() -> None:
    assert validate_document(document(), CLIENT) == ClientMetadataDocument(
        client_id=URL,
        client_name="Example App",
        redirect_uris=("http://127.0.0.1/callback", "https://app.example.com/cb"),
        client_uri=None,
        logo_uri=None,
        tos_uri=None,
        policy_uri=None,
        application_type=None,
        token_endpoint_auth_method="none",
        grant_types=("authorization_code",),
        response_types=("code",),
        dropped=(),
    )


def test_a_full_document_is_read_field_by_field_and_unknown_fields_are_ignored() -> None:
    read = validate_document(
        document(
            client_uri="https://app.example.com/",
            logo_uri="https://app.example.com/logo.png",
            tos_uri="https://app.example.com/tos",
            policy_uri="https://app.example.com/privacy",
            application_type="native",
            token_endpoint_auth_method="private_key_jwt",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            jwks_uri="https://app.example.com/jwks.json",
            software_id="x",
        ),
        CLIENT,
    )
    assert read.client_uri == "https://app.example.com/"
    assert read.logo_uri == "https://app.example.com/logo.png"
    assert (read.tos_uri, read.policy_uri) == (
        "https://app.example.com/tos",
        "https://app.example.com/privacy",
    )
    assert read.application_type == "native"
    assert read.token_endpoint_auth_method == "private_key_jwt"
    assert read.grant_types == ("authorization_code", "refresh_token")


@pytest.mark.parametrize("value", [[], "x", 1, None, True, [document()]])
def test_a_document_that_is_not_a_json_object_is_refused(value: object) -> None:
    assert refused(value).field == "document"


@pytest.mark.parametrize(
    ("client_id", "problem"),
    [
        (..., "missing"),
        (None, "string"),
        (1, "string"),
        ([URL], "string"),
        (URL + "/", "differs"),
        (URL.upper(), "differs"),
        ("https://app.example.com/oauth/client.json?", "differs"),
        ("https://App.example.com/oauth/client.json", "differs"),
        ("https://app.example.com:443/oauth/client.json", "differs"),
        (" " + URL, "differs"),
    ],
)
def test_a_client_id_that_is_not_exactly_the_url_is_refused(
    client_id: object, problem: str
) -> None:
    error = refused(document(client_id=client_id))
    assert error.field == "client_id"
    assert problem in str(error)


@given(st.integers(min_value=0, max_value=len(URL) - 1), st.characters())
def test_every_client_id_one_character_away_from_the_url_is_refused(
    position: int, char: str
) -> None:
    for changed in (
        URL[:position] + char + URL[position + 1 :],  # replaced
        URL[:position] + char + URL[position:],  # inserted
        URL[:position] + URL[position + 1 :],  # deleted
    ):
        if changed == URL:
            continue
        with pytest.raises(BadMetadataDocument) as caught:
            validate_document(document(client_id=changed), CLIENT)
        assert caught.value.field == "client_id"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (..., "missing"),
        (None, "string"),
        (["App"], "string"),
        ("", "empty"),
        ("   ", "empty"),
        ("App\x00", "control"),
        ("App\nInc", "control"),
        ("App\x85", "control"),
        ("App\x7f", "control"),
        ("\u202eppA", "direction"),
        ("App\u2066", "direction"),
        ("App\ud800", "surrogate"),
        ("App\u2028", "separator"),
        ("A" * (MAX_NAME_LENGTH + 1), "longer"),
    ],
)
def test_a_client_name_that_is_missing_empty_too_long_or_has_control_characters_is_refused(
    name: object, problem: str
) -> None:
    error = refused(document(client_name=name))
    assert error.field == "client_name"
    assert problem in str(error)


def test_a_client_name_is_kept_without_surrounding_spaces() -> None:
    assert validate_document(document(client_name="  App  "), CLIENT).client_name == "App"
    longest = "A" * MAX_NAME_LENGTH
    assert validate_document(document(client_name=longest), CLIENT).client_name == longest


@pytest.mark.parametrize(
    ("uris", "field", "problem"),
    [
        (..., "redirect_uris", "missing"),
        ("https://app.example.com/cb", "redirect_uris", "list"),
        ([], "redirect_uris", "empty"),
        ([1], "redirect_uris[0]", "string"),
        (["https://app.example.com/cb", None], "redirect_uris[1]", "string"),
        (["/relative/cb"], "redirect_uris[0]", "absolute"),
        (["https://app.example.com/cb#x"], "redirect_uris[0]", "fragment"),
        (["javascript:alert(1)"], "redirect_uris[0]", "never acceptable"),
        (["https://u@app.example.com/cb"], "redirect_uris[0]", "credentials"),
        (["https://app.example.com/c b"], "redirect_uris[0]", "spaces"),
        (["https://[::1/cb"], "redirect_uris[0]", "IPv6"),
        (["https://app.example.com/\ud800"], "redirect_uris[0]", "surrogate"),
        (
            ["https://app.example.com/cb"] * (MAX_REDIRECT_URIS + 1),
            "redirect_uris",
            "more than",
        ),
    ],
)
def test_redirect_uris_go_through_the_gates_redirect_uri_rules(
    uris: object, field: str, problem: str
) -> None:
    error = refused(document(redirect_uris=uris))
    assert error.field == field
    assert problem in str(error)


def test_custom_scheme_and_loopback_redirect_uris_are_accepted_as_for_dcr() -> None:
    uris = ["claude://callback", "http://localhost/cb", "http://[::1]:3000/cb"]
    assert validate_document(document(redirect_uris=uris), CLIENT).redirect_uris == tuple(uris)


def test_a_redirect_uri_listed_twice_is_kept_once() -> None:
    uris = ["https://app.example.com/cb", "https://app.example.com/cb"]
    read = validate_document(document(redirect_uris=uris), CLIENT)
    assert read.redirect_uris == ("https://app.example.com/cb",)


@pytest.mark.parametrize("field", ["client_uri", "logo_uri", "tos_uri", "policy_uri"])
@pytest.mark.parametrize(
    "value",
    [
        "javascript:alert(1)",
        "data:text/html,x",
        "ftp://app.example.com/",
        "https://app.example.com/\x00",
        "https://u@app.example.com/",
        "https://app.example.com/a b",
        "not a url",
        "https://[::1/",
        1,
        None,
        ["https://app.example.com/"],
        "https://app.example.com/\ud800",
    ],
)
def test_a_link_that_is_not_a_safe_http_url_is_dropped_as_for_dcr(
    field: str, value: object
) -> None:
    read = validate_document(document(**{field: value}), CLIENT)
    assert getattr(read, field) is None
    assert read.dropped == (field,)


@pytest.mark.parametrize(
    "method",
    ["client_secret_basic", "client_secret_post", "client_secret_jwt", "client_secret_anything"],
)
def test_a_shared_secret_auth_method_is_refused(method: str) -> None:
    error = refused(document(token_endpoint_auth_method=method))
    assert error.field == "token_endpoint_auth_method"
    assert "shared secret" in str(error)


@pytest.mark.parametrize(
    "method", ["none", "private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"]
)
def test_an_auth_method_without_a_shared_secret_is_accepted(method: str) -> None:
    assert validate_document(
        document(token_endpoint_auth_method=method), CLIENT
    ).token_endpoint_auth_method == (method)


@pytest.mark.parametrize("method", ["", "bearer", None, 1, ["none"]])
def test_an_unknown_auth_method_is_refused(method: object) -> None:
    assert refused(document(token_endpoint_auth_method=method)).field == (
        "token_endpoint_auth_method"
    )


@pytest.mark.parametrize("field", ["client_secret", "client_secret_expires_at"])
def test_a_document_that_carries_a_client_secret_is_refused(field: str) -> None:
    error = refused(document(**{field: "s3cret"}))
    assert error.field == field
    assert "s3cret" not in str(error)


@pytest.mark.parametrize("value", ["", "browser", None, 1])
def test_an_application_type_other_than_web_or_native_is_refused(value: object) -> None:
    assert refused(document(application_type=value)).field == "application_type"


@pytest.mark.parametrize("field", ["grant_types", "response_types"])
@pytest.mark.parametrize(
    "value", ["authorization_code", [], [1], [""], ["a\x00"], ["x"] * 17, None]
)
def test_grant_and_response_types_must_be_short_lists_of_plain_strings(
    field: str, value: object
) -> None:
    assert refused(document(**{field: value})).field == field


def test_a_document_is_not_changed_by_validation() -> None:
    value = document(client_name="  App ", unknown={"a": [1]})
    copy = json.loads(json.dumps(value))
    validate_document(value, CLIENT)
    assert value == copy


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
_FIELDS = st.sampled_from(
    [
        "client_id",
        "client_name",
        "redirect_uris",
        "client_uri",
        "logo_uri",
        "tos_uri",
        "policy_uri",
        "application_type",
        "token_endpoint_auth_method",
        "grant_types",
        "response_types",
        "client_secret",
    ]
)


@given(_JSON)
def test_the_validator_raises_only_its_own_error_on_any_json_value(value: object) -> None:
    with contextlib.suppress(BadMetadataDocument):
        validate_document(value, CLIENT)


@given(st.dictionaries(_FIELDS, _JSON | st.lists(st.text(max_size=30), max_size=3)))
def test_the_validator_raises_only_its_own_error_on_any_mix_of_known_fields(
    fields: dict[str, object],
) -> None:
    value = {**document(), **fields}
    try:
        read = validate_document(value, CLIENT)
    except BadMetadataDocument:
        return
    assert read.client_id == URL
    assert read.redirect_uris


# --- the bytes of a response -------------------------------------------------------


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    body = json.dumps(document(note="[[[[" * 20 + '\\"{{' * 20)).encode()
    assert parse_document_bytes(body) == document(note="[[[[" * 20 + '\\"{{' * 20)


def test_the_bytes_of_a_document_are_parsed_as_json() -> None:
    body = json.dumps(document()).encode()
    assert parse_document_bytes(body) == document()
    assert validate_document(parse_document_bytes(body), CLIENT).client_name == "Example App"


def test_a_body_over_the_byte_cap_is_refused_before_it_is_parsed() -> None:
    fits = json.dumps(document(pad="x")).encode()
    padded = fits.replace(b'"x"', b'"' + b"x" * (MAX_DOCUMENT_BYTES - len(fits) + 1) + b'"')
    assert len(padded) == MAX_DOCUMENT_BYTES
    assert parse_document_bytes(padded)["client_id"] == URL  # type: ignore[index]
    with pytest.raises(BadMetadataDocument, match=str(MAX_DOCUMENT_BYTES)):
        parse_document_bytes(padded + b" ")
    assert MAX_DOCUMENT_BYTES == 5120


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"client_id": "a", "client_id": "b"}', "more than once"),
        (b'{"a": {"x": 1, "x": 1}}', "more than once"),
        (b'{"client_name": "\xff"}', "UTF-8"),
        (b"\xef\xbb\xbf{}", "JSON"),
        (b"\xfe\xff\x00{\x00}", "UTF-8"),
        (b'{"a": NaN}', "JSON"),
        (b'{"a": Infinity}', "JSON"),
        (b'{"a": -Infinity}', "JSON"),
        (b"{", "JSON"),
        (b"", "JSON"),
        (b'{"a": 1} {"b": 2}', "JSON"),
        (b"[" * 2000 + b"]" * 2000, "deep"),
        (b'{"a": ' + b"[" * 33 + b"]" * 33 + b"}", "deep"),
        (b'{"a": ' + b"1" * 4400 + b"}", "digits"),
    ],
)
def test_a_body_that_is_not_strict_json_is_refused(body: bytes, problem: str) -> None:
    with pytest.raises(BadMetadataDocument, match=problem) as caught:
        parse_document_bytes(body)
    assert caught.value.field == "document"


def test_a_body_is_read_and_validated_in_one_step() -> None:
    assert read_document(json.dumps(document()).encode(), CLIENT).client_id == URL
    with pytest.raises(BadMetadataDocument, match="client_id"):
        read_document(json.dumps(document(client_id=URL + "x")).encode(), CLIENT)
    with pytest.raises(BadMetadataDocument, match="JSON"):
        read_document(b"<html>", CLIENT)


@given(st.binary(max_size=200) | _JSON.map(lambda v: json.dumps(v).encode()))
def test_parsing_raises_only_its_own_error_on_any_bytes(body: bytes) -> None:
    with contextlib.suppress(BadMetadataDocument):
        parse_document_bytes(body)


# --- matching redirect URIs ----------------------------------------------------------


def listed(*uris: str) -> ClientMetadataDocument:
    return validate_document(document(redirect_uris=list(uris)), CLIENT)


def test_a_redirect_uri_is_listed_only_when_it_is_exactly_one_of_the_documents() -> None:
    read = listed("https://app.example.com/cb", "claude://callback")
    assert redirect_uri_listed(read, "https://app.example.com/cb")
    assert redirect_uri_listed(read, "claude://callback")
    for other in (
        "https://app.example.com/cb/",
        "https://app.example.com/CB",
        "https://app.example.com:443/cb",
        "https://app.example.com/cb?x=1",
        "https://evil.example/cb",
        "claude://callback/",
    ):
        assert not redirect_uri_listed(read, other)


def test_a_loopback_redirect_uri_may_differ_in_port_only_rfc_8252() -> None:
    read = listed("http://127.0.0.1/callback", "http://localhost:8080/cb", "http://[::1]/cb")
    assert redirect_uri_listed(read, "http://127.0.0.1:53211/callback")
    assert redirect_uri_listed(read, "http://localhost:9999/cb")
    assert redirect_uri_listed(read, "http://[::1]:3000/cb")
    assert not redirect_uri_listed(read, "http://127.0.0.1:53211/other")
    assert not redirect_uri_listed(read, "http://127.0.0.2:53211/callback")
    assert not redirect_uri_listed(read, "https://127.0.0.1:53211/callback")
    assert not redirect_uri_listed(read, "http://localhost:8080%25@example.com/cb")


def test_a_document_is_localhost_only_when_every_redirect_uri_is_loopback() -> None:
    assert localhost_only(listed("http://127.0.0.1/cb", "http://localhost:3000/cb"))
    assert localhost_only(listed("http://[::1]/cb", "https://localhost/cb"))
    assert not localhost_only(listed("http://127.0.0.1/cb", "https://app.example.com/cb"))
    assert not localhost_only(listed("claude://callback"))
    assert not localhost_only(listed("https://app.example.com/cb"))


def test_the_consent_page_can_show_a_document_as_it_shows_dcr_metadata() -> None:
    read = validate_document(
        document(client_name="Example App", client_uri="https://elsewhere.example/"), CLIENT
    )
    request = parse_authorization_request(
        parse_parameters(
            urllib.parse.urlencode(
                {"client_id": URL, "redirect_uri": "https://app.example.com/cb", "scope": "a"}
            )
        ),
        allow_request_uri=False,
        allow_request_object=False,
    )
    view = build_view(request, read, scope_descriptions={}, show_logos=False, remember_mode=False)
    assert view.client_name == "Example App"
    assert view.metadata_document_host == "app.example.com"
    assert [link.host_differs for link in view.links] == [True]
