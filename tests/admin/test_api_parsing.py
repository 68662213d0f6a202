"""The admin API's parsing and cursors, without a server (admin/api_parsing.py, core/paging.py)."""

from __future__ import annotations

import pytest

from consentgate.admin.api_parsing import (
    BadRequest,
    ClientsQuery,
    ConsentQuery,
    PageQuery,
    RevokeRequest,
    bearer_token,
    parse_audit_query,
    parse_clients_query,
    parse_consent_query,
    parse_revoke_body,
    token_matches,
)
from consentgate.core.auditquery import parse_since
from consentgate.core.paging import decode_cursor, encode_cursor

TOKEN = b"0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic abc", None),
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
    ],
)
def test_the_bearer_token_is_read_from_the_authorization_header(
    header: str | None, token: str | None
) -> None:
    assert bearer_token(header) == token


def test_only_the_exact_token_matches() -> None:
    assert token_matches(TOKEN.decode(), TOKEN)
    assert not token_matches(None, TOKEN)
    assert not token_matches(TOKEN.decode()[:-1], TOKEN)
    assert not token_matches(TOKEN.decode() + "\udcff", TOKEN)  # undecodable header bytes


def test_a_consent_query_is_parsed_strictly() -> None:
    assert parse_consent_query([]) == ConsentQuery()
    assert parse_consent_query(
        [("subject", "alice"), ("active", "true"), ("limit", "1000"), ("cursor", "c")]
    ) == ConsentQuery(subject="alice", active=True, page=PageQuery(1000, "c"))
    for bad in ([("limit", "1001")], [("limit", "+5")], [("x", "1")], [("subject", "a\x00")]):
        with pytest.raises(BadRequest):
            parse_consent_query(bad)


def test_a_revoke_body_names_exactly_one_selector() -> None:
    assert parse_revoke_body(b'{"id": "abc"}') == RevokeRequest("id", "abc")
    assert parse_revoke_body(b'{"id": "abc"}').arguments() == {"id": "abc"}
    assert parse_revoke_body(b'{"all": true, "confirm": "all"}').arguments() == {"all": True}
    for bad in (b"", b"nul", b"[]", b'{"id": null}', b'{"id": "a", "subject": "b"}', b"[" * 5000):
        with pytest.raises(BadRequest):
            parse_revoke_body(bad)


def test_a_cursor_decodes_only_for_its_own_listing_and_spelling() -> None:
    cursor = encode_cursor("consents", 42)
    assert decode_cursor("consents", cursor) == 42
    for bad in ("", "x", cursor + "=", cursor + "A", " " + cursor, encode_cursor("clients", 42)):
        with pytest.raises(ValueError, match="not a cursor"):
            decode_cursor("consents", bad)


def test_a_cursor_holds_only_positions_a_64_bit_store_column_holds() -> None:
    assert decode_cursor("audit", encode_cursor("audit", 2**63 - 1)) == 2**63 - 1
    for position in (2**63, 2**64, 10**30):
        with pytest.raises(ValueError, match="not a cursor of this listing"):
            decode_cursor("audit", encode_cursor("audit", position))


def test_a_since_that_no_64_bit_store_column_holds_is_refused_naming_it() -> None:
    now = 1_800_000_000.0
    assert parse_since("0001-01-01", now) == -62135596800
    for text in ("9999999999999999999s", "106752000000000d"):
        with pytest.raises(BadRequest, match=f"since: .*{text}"):
            parse_audit_query([("since", text)], now)


def test_a_clients_query_names_one_kind_registered_by_default() -> None:
    assert parse_clients_query([]) == ClientsQuery("registered", PageQuery())
    assert parse_clients_query([("kind", "metadata_document"), ("limit", "5")]) == ClientsQuery(
        "metadata_document", PageQuery(5)
    )
    with pytest.raises(BadRequest, match="kind: expected one of registered, metadata_document, "):
        parse_clients_query([("kind", "Registered")])
    with pytest.raises(BadRequest, match="unknown query parameter 'subject'"):
        parse_clients_query([("subject", "x")])
