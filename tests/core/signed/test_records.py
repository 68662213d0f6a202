"""Records and their canonical encoding: the exact bytes that get signed."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from consentgate.core.signed.keyring import KeyRing
from consentgate.core.signed.records import (
    CONSENT_COLUMNS,
    ClientRecord,
    ConsentRecord,
    MalformedRecord,
    canonical_json,
    check_text,
    scope_set,
    sign_record,
    verification_failure,
)


def make_record(**changes: Any) -> ConsentRecord:
    record = ConsentRecord(
        id="rec1",
        subject="sub",
        client_id="client-1",
        redirect_uri="https://app.example/cb",
        scopes=frozenset({"profile", "openid"}),
        resource="",
        granted_at=1_700_000_000,
        expires_at=1_702_592_000,
        revoked_at=None,
        key_id="kPrK_qmxVWaYVA9w",
        signature=b"",
    )
    return dataclasses.replace(record, **changes)


def test_the_consent_encoding_is_the_documented_bytes() -> None:
    assert make_record().signing_input() == (
        b"consentgate-consent-v1\n"
        b'{"client_id":"client-1","expires_at":1702592000,"granted_at":1700000000,'
        b'"id":"rec1","key_id":"kPrK_qmxVWaYVA9w","redirect_uri":"https://app.example/cb",'
        b'"resource":"","revoked_at":null,"scopes":["openid","profile"],"subject":"sub"}'
    )


def test_a_revocation_time_is_part_of_the_signed_bytes() -> None:
    encoded = make_record(revoked_at=1_700_000_500).signing_input()
    assert b'"revoked_at":1700000500' in encoded


def test_the_json_follows_rfc8785_escaping_for_strings() -> None:
    # JCS (RFC 8785 §3.2.2.2): escape only '"', '\\' and control characters, the
    # five short forms where they exist, others as lower-case \u00xx; everything
    # else (DEL, non-ASCII, U+2028) is written as UTF-8.
    text = 'é"\\\n\t\x01\x1f\x7f\u2028😀'
    assert canonical_json({"b": text, "a": 1}) == (
        b'{"a":1,"b":"' + 'é\\"\\\\\\n\\t\\u0001\\u001f\x7f\u2028😀'.encode() + b'"}'
    )


def test_the_client_encoding_has_its_own_prefix_so_signatures_do_not_cross() -> None:
    ring = KeyRing.generate()
    client = sign_record(
        ClientRecord.from_registration({"client_id": "c", "redirect_uris": ["https://a/cb"]}, 1),
        ring,
    )
    assert client.signing_input().startswith(b"consentgate-client-v1\n{")
    assert b'"registration":"{\\"client_id\\":\\"c\\"' in client.signing_input()
    consent = sign_record(make_record(), ring)
    assert not ring.verify(ring.active_kid, consent.signing_input(), client.signature)


def test_a_signed_record_verifies_and_names_the_active_key() -> None:
    ring = KeyRing.generate()
    record = sign_record(make_record(key_id=""), ring)
    assert record.key_id == ring.active_kid
    assert len(record.signature) == 64
    assert verification_failure(record, ring) is None


@pytest.mark.parametrize("column", [c for c in CONSENT_COLUMNS if c != "signature"])
def test_changing_any_signed_field_breaks_the_signature(column: str) -> None:
    ring = KeyRing.generate().rotated()  # two keys, so key_id can name another known key
    record = sign_record(make_record(), ring)
    other_kid = ring.kids[1]
    changes: dict[str, Any] = {
        "id": "rec2",
        "subject": "sub2",
        "client_id": "client-2",
        "redirect_uri": "https://app.example/cb/",
        "scopes": frozenset({"openid", "profile", "admin"}),
        "resource": "https://api.example",
        "granted_at": record.granted_at - 1,
        "expires_at": record.expires_at + 1,
        "revoked_at": None if record.revoked_at else 1_700_000_001,
        "key_id": other_kid,
    }
    edited = dataclasses.replace(record, **{column: changes[column]})
    assert verification_failure(edited, ring) == (
        "signature does not match the fields (edited or forged)"
    )


def test_a_record_signed_by_an_unknown_key_is_named_as_such() -> None:
    record = sign_record(make_record(), KeyRing.generate())
    reason = verification_failure(record, KeyRing.generate())
    assert reason == f"signed with unknown key {record.key_id!r}"


def test_a_row_round_trips_through_the_stored_form() -> None:
    record = sign_record(make_record(revoked_at=1_700_000_001), KeyRing.generate())
    row = record.to_row()
    assert row[CONSENT_COLUMNS.index("scopes")] == '["openid","profile"]'
    assert ConsentRecord.from_row(row) == record


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("granted_at", "1700000000", "granted_at is str, not an integer"),
        ("expires_at", 1.5, "expires_at is float, not an integer"),
        ("revoked_at", "now", "revoked_at is str"),
        ("signature", "c2ln", "signature is str, not a blob"),
        ("subject", b"sub", "subject is bytes, not text"),
        ("scopes", "openid profile", "scopes is not JSON"),
        ("scopes", '{"openid": 1}', "scopes is not a JSON list of strings"),
        ("scopes", '["profile","openid"]', "scopes are not in canonical form"),
        ("scopes", '["openid", "profile"]', "scopes are not in canonical form"),
        ("scopes", '["openid","openid","profile"]', "scopes are not in canonical form"),
    ],
)
def test_a_row_of_the_wrong_shape_is_malformed(column: str, value: object, message: str) -> None:
    row = list(make_record(signature=b"x" * 64).to_row())
    row[CONSENT_COLUMNS.index(column)] = value
    with pytest.raises(MalformedRecord, match=message):
        ConsentRecord.from_row(row)


def test_status_and_scope_rules_read_the_clock_given() -> None:
    record = make_record()
    assert record.status(record.expires_at - 1) == "active"
    assert record.is_active(record.expires_at - 0.5)
    assert record.status(record.expires_at) == "expired"
    assert not record.is_active(record.expires_at)
    assert make_record(revoked_at=1).status(0) == "revoked"
    assert record.covers({"openid"})
    assert record.covers(set())
    assert not record.covers({"openid", "email"})


def test_a_single_string_of_scopes_is_refused() -> None:
    with pytest.raises(TypeError, match="not a single string"):
        scope_set("openid profile")
    assert scope_set(["b", "a", "a"]) == frozenset({"a", "b"})


@pytest.mark.parametrize("value", ["", "a\x00b", "\ud800"])
def test_empty_nul_or_lone_surrogate_text_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match=r"must not be empty|NUL|surrogates"):
        check_text("subject", value)


def test_the_registration_never_keeps_secrets() -> None:
    record = ClientRecord.from_registration(
        {
            "client_id": "c1",
            "client_secret": "s3cr3t",
            "registration_access_token": "t0k3n",
            "client_secret_expires_at": 0,
            "redirect_uris": ["https://a.example/cb"],
        },
        1,
    )
    assert "s3cr3t" not in record.registration_json
    assert "t0k3n" not in record.registration_json
    assert record.registration == {
        "client_id": "c1",
        "client_secret_expires_at": 0,
        "redirect_uris": ["https://a.example/cb"],
    }


def test_only_string_metadata_fills_the_name_and_uri_fields() -> None:
    record = ClientRecord.from_registration(
        {
            "client_id": "c1",
            "client_name": ["not", "a", "name"],
            "client_uri": "https://a.example",
            "logo_uri": 7,
            "tos_uri": None,
            "policy_uri": {"x": 1},
            "redirect_uris": ["https://a.example/cb", 5, None, "http://127.0.0.1:9/cb"],
        },
        1,
    )
    assert record.client_name is None
    assert record.client_uri == "https://a.example"
    assert record.logo_uri is None
    assert record.tos_uri is None
    assert record.policy_uri is None
    assert record.redirect_uris == ("https://a.example/cb", "http://127.0.0.1:9/cb")
    assert record.registration["logo_uri"] == 7  # the raw response is kept faithfully


def test_redirect_uris_that_are_not_a_list_give_none() -> None:
    record = ClientRecord.from_registration({"client_id": "c1", "redirect_uris": "x"}, 1)
    assert record.redirect_uris == ()


def test_a_registration_without_a_client_id_is_refused() -> None:
    with pytest.raises(TypeError, match="client_id must be a string"):
        ClientRecord.from_registration({"client_name": "x"}, 1)


def test_a_client_row_round_trips_and_keeps_the_redirect_uri_order() -> None:
    record = sign_record(
        ClientRecord.from_registration(
            {"client_id": "c1", "redirect_uris": ["https://b/cb", "https://a/cb"]}, 5
        ),
        KeyRing.generate(),
    )
    assert ClientRecord.from_row(record.to_row()) == record
    row = list(record.to_row())
    row[2] = '["https://b/cb", "https://a/cb"]'
    with pytest.raises(MalformedRecord, match="redirect_uris are not in canonical form"):
        ClientRecord.from_row(row)
