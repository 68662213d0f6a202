"""The audit table through a running gate (issue 13, point 2): every decision that
matters is in the store's hash chain after real requests, and nothing secret is.

Against the fake single-client proxy and a real SQLite store, as test_authorize.py.
"""

from __future__ import annotations

import pytest

from consentgate.web.appkeys import STORE
from tests.browsersim import Browser
from tests.conftest import Stack, StartStack
from tests.web.test_approvals import APPROVALS, change, listed_ids, token_of
from tests.web.test_authorize import CLIENT_REDIRECT, approve_new, auth_params, register


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
