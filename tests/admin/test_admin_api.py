"""The admin API on the admin listener: a real gate with its admin
listener on a loopback port, a real SQLite store, requests over HTTP; records made
through the gate's own store, one approval through a scripted browser."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from prometheus_client.parser import text_string_to_metric_families

from consentgate.config.loading import ConfigError, config_from_mapping
from consentgate.core.paging import Listing, encode_cursor
from consentgate.core.startup_errors import StartupError
from consentgate.store import ConsentStore
from consentgate.store.store_errors import StoreUnavailable
from consentgate.web.appkeys import STORE
from tests.conftest import (
    ADMIN_TOKEN,
    FakeClock,
    Stack,
    StartStack,
    admin_section,
    admin_token_file,
)
from tests.support.browsersim import Browser
from tests.support.gateproc import free_port
from tests.support.pgcluster import GATE_ROLE, PostgresCluster, postgres_cluster
from tests.web.consent_flow.test_authorize import (
    CLIENT_REDIRECT,
    approve_new,
    auth_params,
    register,
)

__all__ = ["postgres_cluster"]  # the session fixture, used here by name

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
OTHER_REDIRECT = "https://other.example/cb"


@dataclass
class Admin:
    """A running gate, its admin listener's origin and an HTTP session."""

    stack: Stack
    url: str
    session: aiohttp.ClientSession
    clock: FakeClock

    @property
    def store(self) -> ConsentStore:
        return self.stack.gate.app[STORE]

    async def call(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        **options: Any,
    ) -> tuple[int, dict[str, Any], CIMultiDictProxy[str]]:
        async with self.session.request(
            method, self.url + path, headers=AUTH if headers is None else headers, **options
        ) as response:
            body = await response.json() if response.content_type == "application/json" else {}
            assert response.headers.get("Cache-Control") == "no-store", path
            return response.status, body, response.headers

    async def get(self, path: str, **params: str) -> tuple[int, dict[str, Any]]:
        status, body, _ = await self.call("GET", path, params=params)
        return status, body

    async def revoke(self, body: object) -> tuple[int, dict[str, Any]]:
        status, document, _ = await self.call("POST", "/admin/consents/revoke", json=body)
        return status, document

    async def metrics(self) -> dict[str, float]:
        async with self.session.get(self.url + "/metrics", headers=AUTH) as response:
            text = await response.text()
        return {
            sample.name + str(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


async def open_admin(start_stack: StartStack, tmp_path: Path, **admin: Any) -> AsyncIterator[Admin]:
    listen = f"127.0.0.1:{free_port()}"
    clock = FakeClock()
    stack = await start_stack(admin=admin_section(tmp_path, listen, **admin), clock=clock)
    async with aiohttp.ClientSession() as session:
        yield Admin(stack, f"http://{listen}", session, clock)


@pytest.fixture
async def admin(start_stack: StartStack, tmp_path: Path) -> AsyncIterator[Admin]:
    async for running in open_admin(start_stack, tmp_path):
        yield running


async def approve(
    store: ConsentStore, subject: str, client_id: str = "client-1", uri: str = CLIENT_REDIRECT
) -> str:
    record = await store.record(subject, client_id, uri, {"openid"}, ttl=3600)
    return record.id


# --- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "reason", "challenge"),
    [
        ({}, "missing", 'Bearer realm="consentgate-admin"'),
        ({"Authorization": f"Basic {ADMIN_TOKEN}"}, "missing", 'Bearer realm="consentgate-admin"'),
        (
            {"Authorization": "Bearer " + "f" * 64},
            "wrong",
            'Bearer realm="consentgate-admin", error="invalid_token"',
        ),
        (
            {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
            "wrong",
            'Bearer realm="consentgate-admin", error="invalid_token"',
        ),
    ],
)
async def test_a_missing_or_wrong_token_is_refused_with_401_and_counted(
    admin: Admin, headers: dict[str, str], reason: str, challenge: str
) -> None:
    await approve(admin.store, "alice")
    for path in ("/admin/consents", "/admin/clients", "/admin/nowhere"):
        status, body, answer = await admin.call("GET", path, headers=headers)
        assert status == 401
        assert answer["WWW-Authenticate"] == challenge
        assert body["error"] == "unauthorized"
        assert "alice" not in str(body)
    status, _, _ = await admin.call(
        "POST", "/admin/consents/revoke", headers=headers, json={"subject": "alice"}
    )
    assert status == 401
    assert len(await admin.store.list(include_revoked=False)) == 1  # nothing revoked
    counted = await admin.metrics()
    assert counted[f"consentgate_admin_unauthorized_total[('reason', '{reason}')]"] == 4


async def test_the_right_token_is_accepted_with_any_case_of_the_scheme(admin: Admin) -> None:
    for scheme in ("Bearer", "bearer", "BEARER"):
        headers = {"Authorization": f"{scheme} {ADMIN_TOKEN}"}
        status, body, answer = await admin.call("GET", "/admin/consents", headers=headers)
        assert status == 200
        assert answer["Content-Type"].startswith("application/json")
        assert body == {"consents": [], "next_cursor": None}


async def test_metrics_are_open_by_default(admin: Admin) -> None:
    async with admin.session.get(admin.url + "/metrics") as response:
        assert response.status == 200
        assert "consentgate_admin_unauthorized_total" in await response.text()


async def test_metrics_need_the_token_when_configured(
    start_stack: StartStack, tmp_path: Path
) -> None:
    async for admin in open_admin(start_stack, tmp_path, metrics_need_token=True):
        status, _body, answer = await admin.call("GET", "/metrics", headers={})
        assert status == 401
        assert answer["WWW-Authenticate"].startswith("Bearer")
        async with admin.session.get(admin.url + "/metrics", headers=AUTH) as response:
            assert response.status == 200
            assert "consentgate_build_info" in await response.text()


# --- listing ------------------------------------------------------------------------------


async def test_consents_are_listed_with_the_cli_field_names_and_filtered(admin: Admin) -> None:
    store = admin.store
    a1 = await approve(store, "alice")
    a2 = await approve(store, "alice", "client-2", OTHER_REDIRECT)
    b1 = await approve(store, "bob")
    revoked = await approve(store, "carol")
    await store.revoke(id=revoked)
    short = await store.record("dave", "client-1", CLIENT_REDIRECT, {"openid"}, ttl=10)
    admin.clock.advance(60)  # dave's approval expired

    status, body = await admin.get("/admin/consents")
    assert status == 200
    assert [c["id"] for c in body["consents"]] == [a1, a2, b1, revoked, short.id]
    assert body["next_cursor"] is None
    first = body["consents"][0]
    assert set(first) == {
        "id",
        "subject",
        "user",
        "client_id",
        "redirect_uri",
        "scopes",
        "resource",
        "granted_at",
        "expires_at",
        "revoked_at",
        "key_id",
        "signature",
        "status",
        "client_kind",
        "client_domain",
    }
    assert first["user"] is None  # nobody signed in with this subject ([identity])
    assert [c["status"] for c in body["consents"]] == [
        "active",
        "active",
        "active",
        "revoked",
        "expired",
    ]

    async def ids(**params: str) -> list[str]:
        status, body = await admin.get("/admin/consents", **params)
        assert status == 200, body
        return [c["id"] for c in body["consents"]]

    assert await ids(subject="alice") == [a1, a2]
    assert await ids(client_id="client-2") == [a2]
    assert await ids(redirect_uri=CLIENT_REDIRECT) == [a1, b1, revoked, short.id]
    assert await ids(active="true") == [a1, a2, b1]
    assert await ids(active="false") == [a1, a2, b1, revoked, short.id]
    assert await ids(subject="alice", client_id="client-1", active="true") == [a1]
    assert await ids(subject="nobody") == []


async def test_paging_with_a_small_limit_sees_every_record_once(admin: Admin) -> None:
    made = [await approve(admin.store, f"s{index}") for index in range(23)]
    await admin.store.revoke(id=made[4])
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "5"} if cursor is None else {"limit": "5", "cursor": cursor}
        status, body = await admin.get("/admin/consents", **params)
        assert status == 200, body
        assert len(body["consents"]) <= 5
        seen += [c["id"] for c in body["consents"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == made
    assert pages == 5

    # With the active filter a page may be shorter; the cursor still reaches the end.
    active: list[str] = []
    cursor = None
    while True:
        params = {"limit": "4", "active": "true", **({"cursor": cursor} if cursor else {})}
        status, body = await admin.get("/admin/consents", **params)
        assert status == 200, body
        active += [c["id"] for c in body["consents"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert active == [ident for ident in made if ident != made[4]]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": "1001"}, "limit: expected an integer from 1 to 1000, got '1001'"),
        ({"limit": "-1"}, "'-1'"),
        ({"limit": "0"}, "'0'"),
        ({"limit": "ten"}, "'ten'"),
        ({"limit": "1e3"}, "'1e3'"),
        ({"cursor": "garbage"}, "cursor: not a cursor of this listing: 'garbage'"),
        ({"cursor": "eyJ2IjoxLCJsIjoiY2xpZW50cyIsInAiOjF9"}, "not a cursor"),  # clients'
        ({"active": "yes"}, "active: expected true or false, got 'yes'"),
        ({"subjekt": "alice"}, "unknown query parameter 'subjekt'"),
        ({"subject": ""}, "subject must not be empty"),
    ],
)
async def test_bad_listing_parameters_are_refused_with_400_naming_them(
    admin: Admin, params: dict[str, str], named: str
) -> None:
    status, body = await admin.get("/admin/consents", **params)
    assert status == 400
    assert body["error"] == "bad_request"
    assert named in body["message"]


async def test_a_repeated_parameter_is_refused(admin: Admin) -> None:
    status, body = await admin.get("/admin/consents?subject=a&subject=b")
    assert status == 400
    assert "more than once" in body["message"]


async def test_clients_are_listed_and_paged(admin: Admin) -> None:
    registered = [await register(admin.stack, client_name=f"Client {n}") for n in range(3)]
    status, body = await admin.get("/admin/clients", limit="2")
    assert status == 200
    assert [c["client_id"] for c in body["clients"]] == registered[:2]
    assert body["clients"][0]["client_name"] == "Client 0"
    assert "secret-" not in str(body)  # the registration answer's client_secret is not kept
    status, body = await admin.get("/admin/clients", limit="2", cursor=body["next_cursor"])
    assert [c["client_id"] for c in body["clients"]] == registered[2:]
    assert body["next_cursor"] is None
    status, body = await admin.get("/admin/clients", subject="x")
    assert status == 400
    assert "unknown query parameter 'subject'" in body["message"]
    status, body = await admin.get("/admin/clients", limit="5000")
    assert status == 400


# --- one record ---------------------------------------------------------------------------


async def test_one_record_shows_that_it_verifies(admin: Admin) -> None:
    ident = await approve(admin.store, "alice")
    status, body = await admin.get(f"/admin/consents/{ident}")
    assert status == 200
    assert body["verification"] == {"status": "valid"}
    assert body["consent"]["id"] == ident
    assert body["consent"]["status"] == "active"


async def test_a_record_edited_in_the_database_shows_why_it_fails(admin: Admin) -> None:
    ident = await approve(admin.store, "alice")
    path = admin.stack.gate.config.store.path
    with sqlite3.connect(path) as db:
        db.execute("UPDATE consents SET expires_at = expires_at + 86400 WHERE id = ?", (ident,))
    db.close()
    status, body = await admin.get(f"/admin/consents/{ident}")
    assert status == 200
    assert body["consent"] is None
    assert body["verification"] == {
        "status": "tampered",
        "reason": "signature does not match the fields (edited or forged)",
    }
    status, listing = await admin.get("/admin/consents")
    assert listing["consents"] == []  # never listed as if it were valid


async def test_an_unknown_id_is_404_json(admin: Admin) -> None:
    status, body = await admin.get("/admin/consents/no-such-id")
    assert status == 404
    assert body["error"] == "not_found"


# --- revoking ------------------------------------------------------------------------------


@pytest.mark.parametrize("selector", ["id", "client_id", "redirect_uri", "subject"])
async def test_revoking_by_each_selector_answers_the_count(admin: Admin, selector: str) -> None:
    store = admin.store
    target = await approve(store, "alice", "client-1", CLIENT_REDIRECT)
    await approve(store, "bob", "client-2", OTHER_REDIRECT)
    value = {
        "id": target,
        "client_id": "client-1",
        "redirect_uri": CLIENT_REDIRECT,
        "subject": "alice",
    }[selector]
    status, body = await admin.revoke({selector: value})
    assert (status, body) == (200, {"revoked": 1})
    status, one = await admin.get(f"/admin/consents/{target}")
    assert one["consent"]["status"] == "revoked"
    assert [r.subject for r in await store.list(include_revoked=False)] == ["bob"]
    status, body = await admin.revoke({selector: value})
    assert (status, body) == (200, {"revoked": 0})  # already revoked


async def test_revoking_all_needs_an_explicit_confirmation(admin: Admin) -> None:
    for subject in ("alice", "bob"):
        await approve(admin.store, subject)
    status, body = await admin.revoke({"all": True})
    assert status == 400
    assert '"confirm": "all"' in body["message"]
    assert len(await admin.store.list(include_revoked=False)) == 2
    assert await admin.revoke({"all": True, "confirm": "all"}) == (200, {"revoked": 2})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'"alice"', "expected a JSON object, got str"),
        (b'{"subject": "alice", "client_id": "client-1"}', "exactly one"),
        (b"{}", "got none"),
        (b'{"subject": 7}', "subject: expected a string, got 7"),
        (b'{"subject": ""}', "subject must not be empty"),
        (b'{"subject": "alice", "confirm": "all"}', "confirm goes only with"),
        (b'{"all": "yes", "confirm": "all"}', "all: expected true"),
        (b'{"subjects": "alice"}', "unknown field 'subjects'"),
        (b'{"subject": "' + b"a" * 20_000 + b'"}', "larger than 16384 bytes"),
    ],
)
async def test_a_bad_revoke_body_is_400_and_revokes_nothing(
    admin: Admin, body: bytes, message: str
) -> None:
    await approve(admin.store, "alice")
    status, answer, _ = await admin.call(
        "POST",
        "/admin/consents/revoke",
        data=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert status == 400
    assert message in answer["message"]
    assert len(await admin.store.list(include_revoked=False)) == 1


async def test_after_a_revocation_the_gate_asks_again(admin: Admin) -> None:
    stack = admin.stack
    client_id = await register(stack)
    async with Browser(stack.url) as alice:
        assert (await approve_new(alice, auth_params(client_id))).status == 303
        again = await alice.authorize({**auth_params(client_id), "state": "2"})
        assert again.status == 302  # remembered
        _status, body = await admin.get("/admin/consents", client_id=client_id)
        assert [c["status"] for c in body["consents"]] == ["active"]
        assert await admin.revoke({"client_id": client_id}) == (200, {"revoked": 1})
        asked = await alice.authorize({**auth_params(client_id), "state": "3"})
        assert asked.is_consent_page


# --- methods and paths ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/admin/consents"),
        ("POST", "/admin/consents"),
        ("PUT", "/admin/consents/revoke"),
        ("POST", "/admin/clients"),
        ("POST", "/metrics"),
    ],
)
async def test_a_wrong_method_is_405_json(admin: Admin, method: str, path: str) -> None:
    status, body, headers = await admin.call(method, path)
    assert status == 405
    assert body["error"] == "method_not_allowed"
    assert "Allow" in headers


async def test_an_unknown_path_is_404_json(admin: Admin) -> None:
    for path in ("/admin", "/admin/audits", "/admin/consents/a/b", "/"):
        status, body, _ = await admin.call("GET", path)
        assert status == 404, path
        assert body["error"] == "not_found"


# --- configuration and start ---------------------------------------------------------------


def admin_config(tmp_path: Path, admin: dict[str, Any]) -> Any:
    return config_from_mapping(
        {
            "server": {"public_url": "http://127.0.0.1:8080"},
            "upstream": {"url": "http://127.0.0.1:9"},
            "admin": admin,
        },
        base_dir=tmp_path,
        environ={},
    )


def test_the_admin_listener_needs_a_token_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        admin_config(tmp_path, {"listen": "127.0.0.1:9090"})
    assert caught.value.problems == [
        "admin.token_file: required when admin.listen is set (listen is '127.0.0.1:9090'): "
        "the admin API answers only a bearer token"
    ]


def test_the_admin_keys_are_read(tmp_path: Path) -> None:
    config = admin_config(
        tmp_path,
        {"listen": "127.0.0.1:9090", "token_file": "admin.token", "metrics_need_token": True},
    )
    assert config.admin.token_file == tmp_path / "admin.token"
    assert config.admin.metrics_need_token is True
    default = admin_config(tmp_path, {})
    assert (default.admin.token_file, default.admin.metrics_need_token) == (None, False)
    with pytest.raises(ConfigError, match=r"admin\.metrics_need_token: expected true or false"):
        admin_config(tmp_path, {"metrics_need_token": "yes"})


@pytest.mark.parametrize(
    ("token", "mode", "problem"),
    [
        (ADMIN_TOKEN, 0o644, "accessible by group or others (mode 0644)"),
        ("short-token", 0o600, "has 11 characters, fewer than 32"),
        ("x" * 20 + " " + "y" * 20, 0o600, "spaces, control or non-ASCII"),
    ],
)
async def test_the_gate_refuses_to_start_with_an_unusable_token_file(
    start_stack: StartStack, tmp_path: Path, token: str, mode: int, problem: str
) -> None:
    token_file = admin_token_file(tmp_path, token, mode)
    admin = {"listen": f"127.0.0.1:{free_port()}", "token_file": str(token_file)}
    with pytest.raises(StartupError) as caught:
        await start_stack(admin=admin)
    assert "admin.token_file" in str(caught.value)
    assert problem in str(caught.value)
    assert token not in str(caught.value)


async def test_a_missing_token_file_is_a_startup_error(
    start_stack: StartStack, tmp_path: Path
) -> None:
    admin = {"listen": f"127.0.0.1:{free_port()}", "token_file": str(tmp_path / "absent")}
    with pytest.raises(StartupError, match=r"admin\.token_file"):
        await start_stack(admin=admin)


async def test_a_store_that_is_gone_is_a_503_naming_the_kind(admin: Admin, tmp_path: Path) -> None:
    await approve(admin.store, "alice")
    path = admin.store.path
    assert path is not None
    backup = tmp_path / "kept.db"
    os.link(path, backup)
    path.unlink()
    with contextlib.suppress(StoreUnavailable):
        admin.store.check_identity()  # what the gate's watch does every 2 s
    for method, target, options in (
        ("GET", "/admin/consents", {}),
        ("GET", "/admin/clients", {}),
        ("POST", "/admin/consents/revoke", {"json": {"subject": "alice"}}),
    ):
        status, body, headers = await admin.call(method, target, **options)
        assert status == 503, target
        assert (body["error"], body["kind"]) == ("store_unavailable", "gone")
        assert headers["Retry-After"] == "5"
    os.link(backup, path)


# --- GET /admin/audit -------------------------------------------------------------------


async def test_the_audit_listing_pages_the_chain_with_filters(admin: Admin) -> None:
    store = admin.store
    for n, subject in enumerate(("alice", "bob", "carol")):
        await approve(store, subject, client_id=f"client-{n}")
    assert await admin.revoke({"client_id": "client-0"}) == (200, {"revoked": 1})
    assert await admin.revoke({"subject": "bob"}) == (200, {"revoked": 1})
    assert await admin.revoke({"id": await approve(store, "dave")}) == (200, {"revoked": 1})
    status, body = await admin.get("/admin/audit", limit="2")
    assert status == 200
    first = body["audit"]
    assert [(r["seq"], r["event"], r["actor"]) for r in first] == [
        (1, "revoked", "admin"),
        (2, "revoked", "admin"),
    ]
    assert first[0]["client_id"] == "client-0" and first[1]["subject"] == "bob"
    assert {"time", "event", "client_id", "redirect_uri", "detail", "hash"} <= set(first[0])
    status, rest = await admin.get("/admin/audit", limit="2", cursor=body["next_cursor"])
    assert status == 200 and [r["seq"] for r in rest["audit"]] == [3]
    assert rest["next_cursor"] is None
    _, only = await admin.get("/admin/audit", client_id="client-0", event="revoked", since="1d")
    assert [r["seq"] for r in only["audit"]] == [1]
    _, none = await admin.get("/admin/audit", event="denied")
    assert none == {"audit": [], "next_cursor": None}
    _, future = await admin.get("/admin/audit", since="2999-01-01")
    assert future["audit"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"event": "approve"}, "event: expected one of approved, denied"),
        ({"since": "last week"}, 'since: expected a duration like "7d"'),
        ({"limit": "100000"}, "limit: expected an integer from 1 to 1000"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor: not a cursor of this listing"),
        ({"subject": "bob"}, "unknown query parameter 'subject'"),
    ],
)
async def test_bad_audit_parameters_are_refused_with_400_naming_them(
    admin: Admin, params: dict[str, str], message: str
) -> None:
    status, body = await admin.get("/admin/audit", **params)
    assert status == 400
    assert message in body["message"]


async def test_a_cursor_of_another_listing_is_refused_by_the_audit_listing(admin: Admin) -> None:
    for subject in ("alice", "bob"):
        await approve(admin.store, subject)
    _, consents = await admin.get("/admin/consents", limit="1")
    status, body = await admin.get("/admin/audit", cursor=consents["next_cursor"])
    assert status == 400 and "not a cursor of this listing" in body["message"]


async def test_the_audit_listing_needs_the_token(admin: Admin) -> None:
    status, _, headers = await admin.call("GET", "/admin/audit", headers={})
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_revocation_answers_its_request_id_and_its_audit_row_carries_it(
    admin: Admin,
) -> None:
    ids = []
    for client_id in ("client-0", "client-1"):
        await approve(admin.store, "alice", client_id=client_id)
        status, body, headers = await admin.call(
            "POST", "/admin/consents/revoke", json={"client_id": client_id}
        )
        assert (status, body) == (200, {"revoked": 1})
        ids.append(headers["X-Request-Id"])
    assert len(set(ids)) == 2 and all(len(i) == 16 for i in ids)
    _, listed = await admin.get("/admin/audit", event="revoked")
    assert [row["request_id"] for row in listed["audit"]] == ids


async def test_the_audit_listing_finds_the_rows_of_one_request_id_on_each_backend(
    admin_on_each_backend: Admin,
) -> None:
    admin = admin_on_each_backend
    ids = []
    for client_id in ("client-0", "client-1"):
        await approve(admin.store, "alice", client_id=client_id)
        _, _, headers = await admin.call(
            "POST", "/admin/consents/revoke", json={"client_id": client_id}
        )
        ids.append(headers["X-Request-Id"])
    status, body = await admin.get("/admin/audit", request_id=ids[1])
    assert status == 200
    assert [(row["seq"], row["request_id"], row["client_id"]) for row in body["audit"]] == [
        (2, ids[1], "client-1")
    ]
    assert body["next_cursor"] is None
    status, unknown = await admin.get("/admin/audit", request_id="0123456789abcdef")
    assert (status, unknown) == (200, {"audit": [], "next_cursor": None})
    status, bad = await admin.get("/admin/audit", request_id="not an id")
    assert status == 400
    assert bad["message"].startswith("request_id: expected 1 to 128 letters, digits")


# --- integers out of the store's range --------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
async def admin_on_each_backend(
    request: pytest.FixtureRequest, start_stack: StartStack, tmp_path: Path
) -> AsyncIterator[Admin]:
    """The admin listener over SQLite, then over PostgreSQL (the session's cluster)."""
    store: dict[str, Any] = {}
    if request.param == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        store = {"url": cluster.dsn(cluster.create_database(owner=GATE_ROLE), user=GATE_ROLE)}
    listen = f"127.0.0.1:{free_port()}"
    clock = FakeClock()
    stack = await start_stack(
        admin=admin_section(tmp_path, listen), clock=clock, **({"store": store} if store else {})
    )
    async with aiohttp.ClientSession() as session:
        yield Admin(stack, f"http://{listen}", session, clock)


#: Positions a store cannot hold: both backends keep 64-bit signed integers.
OUT_OF_RANGE = [2**63, 2**63 + 1, 2**64, 10**30]


@pytest.mark.parametrize("position", OUT_OF_RANGE)
@pytest.mark.parametrize(
    ("path", "listing"),
    [("/admin/consents", "consents"), ("/admin/clients", "clients"), ("/admin/audit", "audit")],
)
async def test_a_cursor_beyond_the_stores_integers_is_a_400_json_error(
    admin_on_each_backend: Admin, path: str, listing: Listing, position: int
) -> None:
    admin = admin_on_each_backend
    await approve(admin.store, "alice")
    status, body, headers = await admin.call(
        "GET", path, params={"cursor": encode_cursor(listing, position)}
    )
    assert status == 400, body
    assert headers["Content-Type"].startswith("application/json")
    assert body["error"] == "bad_request"
    assert "cursor: not a cursor of this listing" in body["message"]


async def test_the_largest_cursor_a_store_holds_is_an_empty_page(
    admin_on_each_backend: Admin,
) -> None:
    admin = admin_on_each_backend
    await approve(admin.store, "alice")
    cursor = encode_cursor("consents", 2**63 - 1)
    status, body = await admin.get("/admin/consents", cursor=cursor)
    assert (status, body) == (200, {"consents": [], "next_cursor": None})


@pytest.mark.parametrize(
    "since", ["99999999999999999999d", "9999999999999999999s", "106752000000000d"]
)
async def test_a_since_beyond_the_stores_integers_is_a_400_json_error(
    admin_on_each_backend: Admin, since: str
) -> None:
    status, body, headers = await admin_on_each_backend.call(
        "GET", "/admin/audit", params={"since": since}
    )
    assert status == 400, body
    assert headers["Content-Type"].startswith("application/json")
    assert "since:" in body["message"]


async def test_an_unforeseen_failure_is_a_json_500_without_a_trace(
    admin: Admin, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing(**_: Any) -> Any:
        raise RuntimeError("an unforeseen failure")

    monkeypatch.setattr(admin.store, "page_records", failing)
    status, body, headers = await admin.call("GET", "/admin/consents")
    assert (status, body["error"]) == (500, "internal_error")
    assert headers["Content-Type"].startswith("application/json")
    assert "unforeseen" not in str(body) and "Traceback" not in str(body)
    assert [r.name for r in caplog.records if r.exc_info] == ["consentgate"]


# --- the two kinds of client ----------------------------------------------------------------

NOTES = "https://notes.example/oauth/client.json"
PORTED = "https://App.Tools.example:8443/c.json"


async def test_each_consent_names_its_client_kind_and_the_domain_of_a_url_client(
    admin_on_each_backend: Admin,
) -> None:
    admin = admin_on_each_backend
    registered = await register(admin.stack)
    made = {
        "registered": await approve(admin.store, "alice", registered),
        "url": await approve(admin.store, "alice", NOTES, "http://127.0.0.1/callback"),
        "ported": await approve(admin.store, "bob", PORTED, "http://127.0.0.1/callback"),
        "unknown": await approve(admin.store, "bob", "client-from-elsewhere"),
    }
    status, body = await admin.get("/admin/consents")
    assert status == 200, body
    shown = {c["id"]: (c["client_kind"], c["client_domain"]) for c in body["consents"]}
    assert shown == {
        made["registered"]: ("registered", None),
        made["url"]: ("metadata_document", "notes.example"),
        made["ported"]: ("metadata_document", "app.tools.example"),
        made["unknown"]: ("unknown", None),
    }
    status, one = await admin.get(f"/admin/consents/{made['url']}")
    assert status == 200
    assert one["consent"]["client_id"] == NOTES
    assert (one["consent"]["client_kind"], one["consent"]["client_domain"]) == (
        "metadata_document",
        "notes.example",
    )


async def test_clients_are_listed_by_kind_url_clients_from_their_approvals(
    admin_on_each_backend: Admin,
) -> None:
    """The store keeps no document of a client named by a URL (each process fetches
    and caches it in memory), so ``kind=metadata_document`` lists the URL clients
    people approved, from the verified records, with their domain and counts."""
    admin = admin_on_each_backend
    registered = await register(admin.stack, client_name="Registered One")
    loopback = "http://127.0.0.1/callback"
    await approve(admin.store, "alice", NOTES, loopback)
    admin.clock.advance(10)
    await approve(admin.store, "alice", registered)
    await approve(admin.store, "alice", PORTED, loopback)
    admin.clock.advance(10)
    later = await approve(admin.store, "bob", NOTES, loopback)
    await approve(admin.store, "carol", "client-from-elsewhere")
    await admin.store.revoke(id=later)

    status, body = await admin.get("/admin/clients")
    assert status == 200, body
    assert [(c["client_id"], c["client_kind"]) for c in body["clients"]] == [
        (registered, "registered")
    ]
    assert body["clients"][0]["client_name"] == "Registered One"
    assert body["clients"][0]["client_domain"] is None
    assert (await admin.get("/admin/clients", kind="registered"))[1] == body

    status, body = await admin.get("/admin/clients", kind="metadata_document")
    assert status == 200, body
    now = int(admin.clock())
    assert body == {
        "clients": [
            {
                "client_id": NOTES,
                "client_kind": "metadata_document",
                "client_domain": "notes.example",
                "approvals": 2,
                "active_approvals": 1,
                "last_approved_at": now,
            },
            {
                "client_id": PORTED,
                "client_kind": "metadata_document",
                "client_domain": "app.tools.example",
                "approvals": 1,
                "active_approvals": 1,
                "last_approved_at": now - 10,
            },
        ],
        "next_cursor": None,
    }
    status, first = await admin.get("/admin/clients", kind="metadata_document", limit="1")
    assert [c["client_id"] for c in first["clients"]] == [NOTES]
    status, second = await admin.get(
        "/admin/clients", kind="metadata_document", limit="1", cursor=first["next_cursor"]
    )
    assert [c["client_id"] for c in second["clients"]] == [PORTED]
    assert second["next_cursor"] is None

    status, unknown = await admin.get("/admin/clients", kind="unknown")
    assert [(c["client_id"], c["client_kind"]) for c in unknown["clients"]] == [
        ("client-from-elsewhere", "unknown")
    ]
    status, bad = await admin.get("/admin/clients", kind="cimd")
    assert status == 400
    assert bad["message"] == (
        "kind: expected one of registered, metadata_document, unknown, got 'cimd'"
    )
    # A cursor of one kind's listing is not one of the other's.
    status, mixed = await admin.get(
        "/admin/clients", kind="registered", cursor=first["next_cursor"]
    )
    assert status == 400 and "not a cursor of this listing" in mixed["message"]
