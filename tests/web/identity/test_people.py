"""Operators find people ([identity]): the admin API's ``user`` and the CLI's ``--user``
list, revoke and audit by the name a person signed in with; a revocation by name is
honoured at the next sign-in in every browser."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from consentgate.cli import main
from consentgate.core.identity.person import person_subject
from consentgate.web.appkeys import STORE
from tests.conftest import ADMIN_TOKEN, StartStack, StartUpstream, admin_section
from tests.support.browsersim import Browser
from tests.support.gateproc import free_port, write_config
from tests.support.testidp import ALICE, BOB, TestIdp, identity_section
from tests.web.consent_flow.test_authorize import auth_params, register
from tests.web.identity.test_signin import Setup, approve_as_signed_in, signed_in_authorize

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Operated:
    setup: Setup
    admin_url: str
    session: aiohttp.ClientSession
    config_file: Path

    async def get(self, path: str, **params: str) -> tuple[int, dict[str, Any]]:
        async with self.session.get(self.admin_url + path, params=params, headers=AUTH) as r:
            return r.status, await r.json()

    async def revoke(self, body: object) -> tuple[int, dict[str, Any]]:
        url = self.admin_url + "/admin/consents/revoke"
        async with self.session.post(url, json=body, headers=AUTH) as r:
            return r.status, await r.json()


@pytest.fixture
async def operated(
    tmp_path: Path, start_upstream: StartUpstream, start_stack: StartStack
) -> AsyncIterator[Operated]:
    idp = TestIdp()
    idp.url = await start_upstream(idp.app())
    listen = f"127.0.0.1:{free_port()}"
    stack = await start_stack(identity=identity_section(idp), admin=admin_section(tmp_path, listen))
    # The same store and keys, for the CLI (make_config's paths).
    config_file = write_config(
        tmp_path,
        stack.proxy.public_url,
        8080,
        {
            "store": {"path": str(tmp_path / "consentgate.sqlite3")},
            "identity": identity_section(idp),
        },
    )
    async with aiohttp.ClientSession() as session:
        yield Operated(Setup(stack, idp), f"http://{listen}", session, config_file)


async def alice_and_bob_approve(operated: Operated) -> str:
    setup = operated.setup
    client_id = await register(setup.stack)
    async with Browser(setup.stack.url) as alices:
        await approve_as_signed_in(setup, alices, auth_params(client_id))
    setup.idp.user = dict(BOB)
    async with Browser(setup.stack.url) as bobs:
        await approve_as_signed_in(setup, bobs, auth_params(client_id, state="b"))
    setup.idp.user = dict(ALICE)
    return client_id


async def test_the_admin_api_lists_a_persons_approvals_by_name(operated: Operated) -> None:
    client_id = await alice_and_bob_approve(operated)
    status, listed = await operated.get("/admin/consents", user=ALICE["email"])
    assert status == 200
    (record,) = listed["consents"]
    assert record["client_id"] == client_id and record["subject"].startswith("person:")
    _, nobody = await operated.get("/admin/consents", user="carol@example.com")
    assert nobody["consents"] == []
    _, audit = await operated.get("/admin/audit", user=ALICE["email"], event="approved")
    assert [row["subject"] for row in audit["audit"]] == [record["subject"]]


async def test_a_revocation_by_name_is_honoured_in_every_browser_and_spares_others(
    operated: Operated,
) -> None:
    client_id = await alice_and_bob_approve(operated)
    status, answer = await operated.revoke({"user": ALICE["email"]})
    assert (status, answer) == (200, {"revoked": 1})
    setup = operated.setup
    async with Browser(setup.stack.url) as phone:
        asked = await signed_in_authorize(phone, auth_params(client_id, state="again"))
    assert asked.is_consent_page
    _, bobs = await operated.get("/admin/consents", user=BOB["email"], active="true")
    assert len(bobs["consents"]) == 1


async def test_the_cli_lists_and_revokes_by_user(
    operated: Operated, capsys: pytest.CaptureFixture[str]
) -> None:
    client_id = await alice_and_bob_approve(operated)
    config = str(operated.config_file)

    def cli(*args: str) -> int:
        return main([*args, "--config", config])

    assert await asyncio.to_thread(cli, "consents", "list", "--user", ALICE["email"], "--json") == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["client_id"] == client_id
    assert await asyncio.to_thread(cli, "audit", "list", "--user", ALICE["email"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert rows and all(listed["subject"] in row for row in rows)
    assert await asyncio.to_thread(cli, "consents", "revoke", "--user", ALICE["email"]) == 0
    assert "revoked 1 consent(s)" in capsys.readouterr().out
    assert await asyncio.to_thread(cli, "consents", "revoke", "--user", "carol@example.com") == 1


async def test_a_revocation_by_name_at_one_gate_is_honoured_by_another_sharing_the_store(
    operated: Operated, start_stack: StartStack
) -> None:
    setup = operated.setup
    client_id = await register(setup.stack)
    other = await start_stack(identity=identity_section(setup.idp))  # same store and keys
    params = auth_params(client_id)
    async with Browser(setup.stack.url) as laptop:
        await approve_as_signed_in(setup, laptop, params)
    async with Browser(other.url) as phone:
        silent = await signed_in_authorize(phone, {**params, "state": "before"})
        assert silent.status == 302  # the person's approval, at the other gate
        status, answer = await operated.revoke({"user": ALICE["email"]})
        assert (status, answer) == (200, {"revoked": 1})
        asked = await phone.authorize({**params, "state": "after"})  # signed in already
    assert asked.is_consent_page
    assert len(other.proxy.reached("/authorize")) == 1


async def test_the_cli_list_shows_each_persons_name_beside_the_subject(
    operated: Operated, capsys: pytest.CaptureFixture[str]
) -> None:
    await alice_and_bob_approve(operated)
    config = str(operated.config_file)

    def cli(*args: str) -> int:
        return main([*args, "--config", config])

    assert await asyncio.to_thread(cli, "consents", "list") == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split("\t")[2:4] == ["SUBJECT", "USER"]
    shown = sorted(tuple(row.split("\t")[2:4]) for row in rows)
    alice = person_subject(operated.setup.idp.url, ALICE["sub"])
    bob = person_subject(operated.setup.idp.url, BOB["sub"])
    assert shown == sorted([(alice, ALICE["email"]), (bob, BOB["email"])])
    assert await asyncio.to_thread(cli, "consents", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted((item["subject"], item["user"]) for item in listed) == shown


async def test_the_admin_api_listing_names_the_person_and_nobody_for_a_browser(
    operated: Operated,
) -> None:
    client_id = await alice_and_bob_approve(operated)
    store = operated.setup.stack.gate.app[STORE]
    await store.record("browser1", client_id, "https://client.example/cb", (), ttl=3600)
    _, listed = await operated.get("/admin/consents")
    users = {item["subject"]: item["user"] for item in listed["consents"]}
    assert users == {
        person_subject(operated.setup.idp.url, ALICE["sub"]): ALICE["email"],
        person_subject(operated.setup.idp.url, BOB["sub"]): BOB["email"],
        "browser1": None,
    }
