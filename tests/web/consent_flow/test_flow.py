"""The relay of an approved authorization reads the upstream's hand-off to the IdP
once: the callback check, the flow binding and what is learned of the IdP share one
split of its Location and one parse of its query (web/consent_flow/flow.py). Against
the fake single-client proxy, through a real gate."""

from __future__ import annotations

import sys
import urllib.parse
from typing import Any

import pytest

from consentgate.core.oauth import idp_handoff
from consentgate.core.trust import urls
from consentgate.web.consent_flow import flow
from tests.conftest import StartStack
from tests.support.browsersim import Browser
from tests.web.consent_flow.test_authorize import approve_new, auth_params, register

#: The flow binding's cookie on the test stack's http origin (core/signed/cookies.py).
BINDING = "cg_b_"


async def test_a_remembered_authorization_parses_the_idp_hand_off_once(
    start_stack: StartStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = await start_stack()
    client_id = await register(stack)
    parsed: list[str] = []
    parse_qsl = urllib.parse.parse_qsl
    query_pairs = urls.query_pairs

    def counting_parse_qsl(query: Any, *args: Any, **kwargs: Any) -> Any:
        if sys._getframe(1).f_globals["__name__"].startswith("consentgate"):
            parsed.append(query)
        return parse_qsl(query, *args, **kwargs)

    handoff_pairs = urls.handoff_pairs

    def counting_query_pairs(query: str) -> list[tuple[str, str]]:
        parsed.append(query)
        return query_pairs(query)

    def counting_handoff_pairs(query: str) -> list[tuple[str, str]]:
        parsed.append(query)
        return handoff_pairs(query)

    async with Browser(stack.url) as browser:
        await approve_new(browser, auth_params(client_id))
        monkeypatch.setattr(urllib.parse, "parse_qsl", counting_parse_qsl)
        for module in (urls, idp_handoff):
            monkeypatch.setattr(module, "query_pairs", counting_query_pairs)
        for module in (urls, flow):
            monkeypatch.setattr(module, "handoff_pairs", counting_handoff_pairs)
        relayed = await browser.authorize(auth_params(client_id))
        monkeypatch.undo()
    assert relayed.status == 302
    assert relayed.location.startswith("https://idp.example/")
    bound = [c for c in relayed.headers.getall("Set-Cookie", ()) if c.startswith(BINDING)]
    assert len(bound) == 1  # the flow is bound, from the same parse
    idp_query = urllib.parse.urlsplit(relayed.location).query
    assert parsed.count(idp_query) == 1
