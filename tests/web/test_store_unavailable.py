"""A store that cannot answer: the gate fails closed with a 503 page and relays the rest."""

from __future__ import annotations

import contextlib
import logging
import sqlite3

import aiohttp
import pytest

from consentgate.web.appkeys import STORE
from tests.conftest import StartStack
from tests.support.browsersim import Browser
from tests.web.consent_flow.test_authorize import approve_new, auth_params, register

pytestmark = pytest.mark.slow  # waits out a locked store's timeout on purpose


async def test_a_locked_store_refuses_consent_answers_with_503_and_relays_the_rest(
    start_stack: StartStack, caplog: pytest.LogCaptureFixture
) -> None:
    stack = await start_stack()
    client_id = await register(stack)
    store = stack.gate.app[STORE]
    assert store.path is not None
    async with Browser(stack.url) as browser:
        # Another process holds the write lock longer than the store's busy timeout (5 s).
        with contextlib.closing(sqlite3.connect(store.path, isolation_level=None)) as locker:
            locker.execute("BEGIN EXCLUSIVE")
            with caplog.at_level(logging.WARNING, logger="consentgate"):
                shown = await browser.authorize(auth_params(client_id))
                page = await browser.answer(shown, "approve")
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"{stack.url}/mcp/tools") as relayed,
                ):
                    relayed_status = relayed.status
            locker.execute("ROLLBACK")
        unconsented = stack.proxy.reached("/authorize")
        # Once the lock is gone the same page is answered: the failed answer used nothing.
        done = await browser.answer(shown, "approve")
        again = await approve_new(browser, auth_params(client_id, state="s2"))
    assert shown.is_consent_page  # showing a page writes nothing
    assert page.status == 503
    assert page.headers["Retry-After"] == "30"
    assert "Please try again in a minute" in page.text
    assert "Traceback" not in page.text and "sqlite" not in page.text.lower()
    assert not unconsented  # nothing unconsented was relayed
    assert relayed_status == 200  # the relay does not need the store
    unavailable = [r for r in caplog.records if r.getMessage() == "store unavailable"]
    assert len(unavailable) == 1
    assert unavailable[0].exc_info is None  # one line, not a traceback
    fields = unavailable[0].fields  # type: ignore[attr-defined]
    assert "database is locked" in fields["reason"]
    assert (fields["kind"], fields["error"]) == ("locked", "OperationalError")
    assert not [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert (done.status, again.status) == (303, 303)
    assert len(stack.proxy.reached("/authorize")) == 2
