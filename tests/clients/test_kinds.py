"""The kind of a client and the domain a URL client is known by (pure rules)."""

from __future__ import annotations

import pytest

from consentgate.clients.kinds import (
    ApprovalTally,
    ClientDescription,
    Describer,
    client_domain,
    client_kind,
    describe,
)
from consentgate.core.signed.records import ConsentRecord


@pytest.mark.parametrize(
    ("client_id", "registered", "kind"),
    [
        ("client-4dbe74213464", True, "registered"),
        ("client-4dbe74213464", False, "unknown"),
        ("https://notes.example/client.json", False, "metadata_document"),
        # A URL is never a registration, whatever the store holds.
        ("https://notes.example/client.json", True, "metadata_document"),
        ("HTTP://notes.example/c", False, "metadata_document"),
    ],
)
def test_the_kind_comes_from_the_url_claim_then_the_registration(
    client_id: str, registered: bool, kind: str
) -> None:
    assert client_kind(client_id, registered=registered) == kind


@pytest.mark.parametrize(
    ("client_id", "domain"),
    [
        ("https://notes.example/client.json", "notes.example"),
        ("https://App.Example:8443/c.json", "app.example"),
        ("https://xn--bcher-kva.example/c", "xn--bcher-kva.example"),
        ("https://[2001:db8::1]/c", "[2001:db8::1]"),
        ("http://notes.example/c", None),  # not a valid URL client_id: no domain vouched for
        ("https://notes.example/", None),
        ("client-1", None),
    ],
)
def test_the_domain_is_the_host_of_a_valid_url_client_id(
    client_id: str, domain: str | None
) -> None:
    assert client_domain(client_id) == domain


async def test_the_describer_asks_the_store_once_per_opaque_client_and_never_for_a_url() -> None:
    asked: list[str] = []

    async def is_registered(client_id: str) -> bool:
        asked.append(client_id)
        return client_id == "known"

    described = Describer(is_registered)
    for client_id in ("known", "https://a.example/c", "other", "known", "https://a.example/c"):
        await described(client_id)
    assert asked == ["known", "other"]
    assert await described("known") == ClientDescription("registered", None)
    assert await described("other") == ClientDescription("unknown", None)
    assert (await described("https://a.example/c")).fields() == {
        "client_kind": "metadata_document",
        "client_domain": "a.example",
    }


def _record(client_id: str, granted_at: int, revoked_at: int | None = None) -> ConsentRecord:
    return ConsentRecord(
        id=f"id-{client_id}-{granted_at}",
        subject="alice",
        client_id=client_id,
        redirect_uri="http://127.0.0.1/callback",
        scopes=frozenset({"openid"}),
        resource="",
        granted_at=granted_at,
        expires_at=granted_at + 1000,
        revoked_at=revoked_at,
        key_id="k",
        signature=b"s",
    )


def test_the_tally_counts_approvals_per_client_in_order_of_first_approval() -> None:
    a, b = "https://a.example/c", "https://b.example/c"
    tally = ApprovalTally()
    for record in (_record(b, 10), _record(a, 20), _record(b, 30, revoked_at=31), _record(b, 5)):
        tally.add(record, describe(record.client_id, registered=False), now=100)
    entries = [entry.listing() for entry in tally.clients()]
    assert entries == [
        {
            "client_id": b,
            "client_kind": "metadata_document",
            "client_domain": "b.example",
            "approvals": 3,
            "active_approvals": 2,
            "last_approved_at": 30,
        },
        {
            "client_id": a,
            "client_kind": "metadata_document",
            "client_domain": "a.example",
            "approvals": 1,
            "active_approvals": 1,
            "last_approved_at": 20,
        },
    ]
