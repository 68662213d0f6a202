"""The least a consent gate must do, on the minimal proxy: ``python -m bench.floor_gate``.

``python -m bench.floor_gate --port N --upstream http://127.0.0.1:M --workdir DIR``.
This is ``bench/minimal_proxy.py`` plus, for a remembered ``GET /authorize``, only
the steps no gate can leave out, each written as directly as Python allows:

1. read the query once (``parse_qsl``, strict) and refuse a repeated parameter,
   a missing ``client_id`` or ``redirect_uri``, or PKCE other than S256 (RFC 9700
   §2.1.1);
2. look for a change by another process in the store file (one ``stat`` and
   ``PRAGMA data_version``: what makes a revocation elsewhere visible);
3. verify the browser cookie's MAC and derive its subject (the gate's own
   ``CookieCrypto``, with its per-value caches);
4. find the client's redirect URI and the approval in memory (a dict each);
5. send the parameters it read, re-encoded, to the upstream;
6. read the one ``state`` of the upstream's redirect to the IdP and set the flow
   binding cookie (the gate's ``binding_for``: a MAC over state, subject, time);
7. write one audit line (a ``json.dumps`` and a file write).

No access log (the minimal proxy has none), no page, no metrics, no request id, no
header rules, no timeouts, no redaction, no first-use checks. It is not a gate
anyone should run: it is the floor under the gate's decision. Whatever the gate
costs above it is what its other rules cost; whatever it costs above the minimal
proxy is what deciding costs at all. ``bench/instructions.py`` runs it beside the
gate and the minimal proxy.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
import urllib.parse
from pathlib import Path

from aiohttp import web
from yarl import URL

from bench.minimal_proxy import HOP, SESSION, UPSTREAM, proxy_app, run
from bench.run import CLIENT_ID, REDIRECT_URI, SCOPES, bench_keys
from consentgate.core.signed.cookies import set_cookie_header


class Floor:
    """What the floor gate knows: keys, the store file, one client, its approvals."""

    def __init__(self, workdir: Path, client_id: str, redirect_uri: str, scope: str) -> None:
        _, self.crypto = bench_keys(workdir, create=False)
        self.names = self.crypto.names
        self.store_path = workdir / "gate-store" / "consentgate.sqlite3"
        self.db = sqlite3.connect(self.store_path, isolation_level=None)
        self.seen = self._version()
        self.clients = {client_id: frozenset({redirect_uri})}
        self.approved: set[tuple[str, str, str, str]] = set()
        self.audit = (workdir / "floor-audit.log").open("a", encoding="utf-8")

    def _version(self) -> tuple[int, int, int]:
        st = os.stat(self.store_path)
        (data_version,) = self.db.execute("PRAGMA data_version").fetchone()
        return st.st_ino, st.st_mtime_ns, data_version

    def changed(self) -> bool:
        now = self._version()
        if now == self.seen:
            return False
        self.seen = now
        return True

    def close(self) -> None:
        self.db.close()
        self.audit.close()


STATE = web.AppKey("state", Floor)


async def authorize(request: web.Request) -> web.StreamResponse:
    floor = request.app[STATE]
    try:
        pairs = urllib.parse.parse_qsl(
            request.rel_url.raw_query_string, keep_blank_values=True, strict_parsing=True
        )
    except ValueError:
        return web.Response(status=400, text="malformed query")
    params = dict(pairs)
    client_id = params.get("client_id", "")
    redirect_uri = params.get("redirect_uri", "")
    if len(params) != len(pairs) or not client_id or not redirect_uri:
        return web.Response(status=400, text="invalid request")
    if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
        return web.Response(status=400, text="PKCE S256 required")
    # A real gate drops its cached answers here and asks the store again; the gates
    # beside this one write their presence to the same file, so the floor only looks.
    floor.changed()
    browser = floor.crypto.read_browser_cookie(request.cookies.get(floor.names.browser, ""))
    if browser is None or redirect_uri not in floor.clients.get(client_id, ()):
        return web.Response(status=403, text="would ask")
    subject = floor.crypto.subject_of(browser)
    question = (subject, client_id, redirect_uri, params.get("scope", ""))
    if question not in floor.approved:
        return web.Response(status=403, text="would ask")
    query = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP]
    async with request.app[SESSION].get(
        URL(f"{request.app[UPSTREAM]}{request.path}?{query}", encoded=True),
        headers=headers,
        allow_redirects=False,
    ) as upstream:
        response = web.StreamResponse(status=upstream.status)
        response.headers.extend((k, v) for k, v in upstream.headers.items() if k.lower() not in HOP)
        location = upstream.headers.get("Location", "")
        states = [
            value
            for name, value in urllib.parse.parse_qsl(
                urllib.parse.urlsplit(location).query, keep_blank_values=True
            )
            if name == "state"
        ]
        bound = len(states) == 1
        if bound:
            binding = floor.crypto.binding_for(states[0], subject, int(time.time()))
            response.headers.add(
                "Set-Cookie",
                set_cookie_header(
                    binding.cookie_name, binding.cookie_value, max_age=600, secure=False
                ),
            )
        floor.audit.write(
            json.dumps(
                {
                    "event": "approved",
                    "client_id": client_id,
                    "redirect_uri": redirect_uri,
                    "subject": subject,
                    "status": upstream.status,
                    "bound": bound,
                }
            )
            + "\n"
        )
        floor.audit.flush()
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


def floor_app(upstream: str, workdir: Path, subject: str) -> web.Application:
    """The floor gate in front of ``upstream``, with bench/run.py's work directory (its
    keys and store) and the bench's client approved by the browser of ``subject``."""
    app = proxy_app(upstream, before=(web.get("/authorize", authorize),))
    floor = Floor(workdir, CLIENT_ID, REDIRECT_URI, " ".join(SCOPES))
    floor.approved.add((subject, CLIENT_ID, REDIRECT_URI, " ".join(SCOPES)))
    app[STATE] = floor

    async def close(app: web.Application) -> None:
        app[STATE].close()

    app.on_cleanup.append(close)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--workdir", type=Path, required=True, help="bench/run.py's work dir")
    parser.add_argument("--subject", required=True, help="the approving browser's subject")
    args = parser.parse_args()
    run(floor_app(args.upstream, args.workdir, args.subject), args.port)


if __name__ == "__main__":
    main()
