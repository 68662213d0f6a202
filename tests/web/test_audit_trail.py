"""The audit table through a running gate: every decision that
matters is in the store's hash chain after real requests, and nothing secret is.

Against the fake single-client proxy and a real SQLite store, as test_authorize.py.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from consentgate.audit.decisions import ConsentApproved, ConsentRecorded
from consentgate.audit.events import AuditEvent, AuditTrail
from consentgate.audit.trail import AuditRecord
from consentgate.web.appkeys import STORE
from tests.conftest import Stack, StartStack
from tests.support.browsersim import Browser
from tests.web.consent_flow.test_approvals import APPROVALS, change, listed_ids, token_of
from tests.web.consent_flow.test_authorize import (
    CLIENT_REDIRECT,
    approve_new,
    auth_params,
    register,
)


@pytest.fixture
async def stack(start_stack: StartStack) -> Stack:
    return await start_stack()


async def trail(stack: Stack) -> list[tuple[str, str, str, str]]:
    store = stack.gate.app[STORE]
    await store.flush_audit()
    return [(r.event, r.actor, r.client_id, r.redirect_uri) async for r in store.iter_audit()]


async def test_a_sign_in_a_denial_a_refused_callback_and_a_self_revocation_are_on_the_record(
    stack: Stack,
) -> None:
    alpha = await register(stack, client_name="Alpha")
    beta = await register(stack, client_name="Beta")
    async with Browser(stack.url) as person, Browser(stack.url) as stranger:
        done = await approve_new(person, auth_params(alpha, scope="openid profile"))
        state = done.location_query()["state"]
        shown = await person.authorize(auth_params(beta))
        await person.answer(shown, "deny")
        refused = await stranger.get(f"/auth/callback?code=victims-code&state={state}")
        assert refused.status == 403
        page = await person.get(APPROVALS)
        await change(
            person, {"csrf": token_of(page), "id": listed_ids(page)[0], "action": "revoke"}
        )
        cookie = person.cookie_value("cg_bid")
    assert cookie is not None
    assert await trail(stack) == [
        ("approved", "person", alpha, CLIENT_REDIRECT),
        ("denied", "person", beta, CLIENT_REDIRECT),
        ("callback_refused", "gate", "", ""),
        ("revoked", "self", "", ""),
    ]
    store = stack.gate.app[STORE]
    rows = [r async for r in store.iter_audit()]
    approved = rows[0]
    assert approved.scopes == "openid profile"
    assert approved.details() == {
        "remembered": True,
        "upstream_status": 302,
        "bound": True,
        "client_kind": "registered",
    }
    assert rows[1].details() == {"client_kind": "registered"}  # the denial
    assert approved.request_id and len(approved.subject) >= 16
    assert rows[3].subject == approved.subject  # the person's own browser revoked it
    report = await store.verify_audit()
    assert report.ok and report.checked == 4
    # Nothing secret: not the IdP's code, not the state, not a cookie value.
    for row in rows:
        text = repr(row.as_json())
        assert "victims-code" not in text
        assert state not in text
        assert cookie not in text


async def test_a_remembered_sign_in_adds_nothing_to_the_table(stack: Stack) -> None:
    client_id = await register(stack)
    async with Browser(stack.url) as person:
        await approve_new(person, auth_params(client_id))
        for n in range(3):
            again = await person.authorize({**auth_params(client_id), "state": f"again-{n}"})
            assert again.status == 302
    assert [event for event, *_ in await trail(stack)] == ["approved"]


def row_bytes(record: AuditRecord) -> int:
    """What one row keeps: its hashed fields, its hash, key id and signature."""
    return (
        len(record.hashed_input()) + len(record.hash) + len(record.key_id) + len(record.signature)
    )


async def test_a_flood_of_refused_callbacks_is_a_handful_of_small_rows_beside_a_real_decision(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone can send a refused callback: a flood from one client must not become one
    signed row per request (nor copy what it sent), while a person's decision made
    during it keeps its own row."""
    client_id = await register(stack)
    long_name = "n" * 2000  # a repeated parameter: its name is in the refusal's text
    flood = 2000
    targets = [
        "/auth/callback?code=c&state=s{n}",  # no binding cookie
        f"/auth/callback?{long_name}=1&{long_name}=2",  # malformed
    ]
    with caplog.at_level(logging.INFO, logger="consentgate.audit"):
        async with Browser(stack.url) as stranger, Browser(stack.url) as person:

            async def one(n: int) -> None:
                page = await stranger.get(targets[n % 2].replace("{n}", str(n)))
                assert page.status in (400, 403)

            for start in range(0, flood, 100):
                await asyncio.gather(*(one(n) for n in range(start, start + 100)))
                if start == flood // 2:
                    await approve_new(person, auth_params(client_id))
    store = stack.gate.app[STORE]
    await store.flush_audit()
    rows = [r async for r in store.iter_audit()]
    refused = [r for r in rows if r.event == "callback_refused"]
    assert len(refused) <= 8, len(refused)
    assert all(row_bytes(r) < 1024 for r in refused), max(map(row_bytes, refused))
    assert sum(int(r.details().get("count", 1)) for r in refused) == flood
    assert [r.client_id for r in rows if r.event == "approved"] == [client_id]
    assert all(long_name[:100] not in repr(r.as_json()) for r in rows)
    assert (await store.verify_audit()).ok
    # The log still has a line for each refusal.
    events = [getattr(r, "fields", {}).get("event") for r in caplog.records]
    assert events.count("callback_refused") == flood


async def test_a_remembered_approval_names_one_grant_in_its_decision_and_its_record(
    start_stack: StartStack,
) -> None:
    """The person's decision (``consent_approved``) and the store's record of it
    (``consent_recorded``) are one grant: the same terms, typed by one base."""
    events: list[AuditEvent] = []
    stack = await start_stack(audit=AuditTrail([events.append]))
    client_id = await register(stack)
    async with Browser(stack.url) as person:
        done = await approve_new(
            person, auth_params(client_id, scope="profile openid"), remember=True
        )
        assert done.status == 303
    (approved,) = [e for e in events if isinstance(e, ConsentApproved)]
    (recorded,) = [e for e in events if isinstance(e, ConsentRecorded)]
    assert approved.remembered
    terms = ("client_id", "scopes", "subject")
    assert [getattr(approved, t) for t in terms] == [getattr(recorded, t) for t in terms]
    assert (approved.client_id, approved.scopes) == (client_id, "openid profile")
    assert recorded.redirect_uri == approved.redirect_uri == CLIENT_REDIRECT
