"""Write the upgrade test's fixture with the code of a released consentgate.

The store a release wrote must be made by that release's code, not by today's (a
migration test over a store today's code made proves nothing). Run it with the
release's package first on the path, from a checkout of that release:

    git worktree add --detach /tmp/v010 62b697e      # 0.1.0, schema 2
    PYTHONPATH=/tmp/v010 python tools/make_upgrade_fixture.py tests/store/data/release-0.1.0

It writes the SQLite store, its keys directory and ``expected.json`` (what it wrote:
live, revoked and expired approvals, and the clients), which
tests/store/test_upgrade_from_release.py reads.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from consentgate.keys import load_keyring  # the 0.1.0 layout
from consentgate.store import ConsentStore

TEN_YEARS = 10 * 365 * 86400


async def main(out: Path) -> None:
    keyring = load_keyring(out / "keys", create=True)
    store = await ConsentStore.open(out / "consentgate.sqlite3", keyring)
    expected: dict[str, list[dict[str, Any]]] = {"live": [], "revoked": [], "expired": []}
    clients: list[dict[str, Any]] = []
    try:
        for name, uri in (
            ("notes", "http://127.0.0.1/callback"),
            ("mail", "https://mail.example/cb"),
        ):
            client = await store.upsert_client(
                {
                    "client_id": f"client-{name}",
                    "client_name": f"The {name} app",
                    "redirect_uris": [uri],
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "token_endpoint_auth_method": "none",
                }
            )
            clients.append(
                {"client_id": client.client_id, "registered_at": client.registered_at, "uri": uri}
            )
        grants = [
            (
                "alice",
                "client-notes",
                "http://127.0.0.1/callback",
                ["notes:read", "notes:write"],
                "",
            ),
            ("bob", "client-notes", "http://127.0.0.1/callback", ["notes:read"], ""),
            (
                "alice",
                "client-mail",
                "https://mail.example/cb",
                ["mail"],
                "https://mcp.example/mcp",
            ),
            ("carol", "client-mail", "https://mail.example/cb", [], ""),
        ]
        for subject, client_id, uri, scopes, resource in grants:
            record = await store.record(subject, client_id, uri, scopes, resource, ttl=TEN_YEARS)
            entry: dict[str, Any] = {
                "id": record.id,
                "subject": subject,
                "client_id": client_id,
                "redirect_uri": uri,
                "scopes": scopes,
                "resource": resource,
            }
            expected["live"].append(entry)
        revoked = expected["live"].pop(1)  # bob's
        if await store.revoke(id=str(revoked["id"])) != 1:
            raise SystemExit("the revocation did not take")
        expected["revoked"].append(revoked)
        short = await store.record(
            "dave", "client-notes", "http://127.0.0.1/callback", ["notes:read"], ttl=1
        )
        expected["expired"].append(
            {
                "id": short.id,
                "subject": "dave",
                "client_id": "client-notes",
                "redirect_uri": "http://127.0.0.1/callback",
                "scopes": ["notes:read"],
                "resource": "",
            }
        )
        await asyncio.sleep(1.5)  # the short approval expires
    finally:
        await store.close()
    (out / "expected.json").write_text(
        json.dumps({"schema": 2, "clients": clients, **expected}, indent=2) + "\n"
    )


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=False)
    asyncio.run(main(target))
