"""The upstream IdP for the end-to-end tests, as its own process.

    python tests/e2e/idp_process.py [open]

runs oidc-provider-mock on 127.0.0.1 (a free port) with client registration
required (``open``: any client_id and secret accepted, as the gate's own sign-in
uses it in tests/e2e/test_identity.py), prints ``READY http://127.0.0.1:<port>``
once it accepts connections, and stops when its standard input closes: the test
session that started it closes the pipe, and a test session that dies closes it
too, so no IdP outlives its tests.

Why a process and not a thread: Authlib emits a DeprecationWarning inside the
token endpoint. Warning filters are process-wide, so under pytest's
``filterwarnings = error`` an in-process IdP turns it into a 500 and every
sign-in fails. In its own process the default filters apply (DeprecationWarning
outside ``__main__`` is ignored).

This module imports neither pytest nor fastmcp: it must start fast.
"""

from __future__ import annotations

import os
import sys
import threading

# oidc-provider-mock (Authlib) refuses plain http unless this is set; its own CLI sets it too.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

import oidc_provider_mock  # type: ignore[import-untyped]  # no type information shipped
from werkzeug.serving import make_server

HOST = "127.0.0.1"


def main() -> None:
    app = oidc_provider_mock.app(require_client_registration=sys.argv[1:] != ["open"])
    server = make_server(HOST, 0, app, threaded=True)

    def stop_when_stdin_closes() -> None:
        sys.stdin.read()
        server.shutdown()

    threading.Thread(target=stop_when_stdin_closes, name="idp-stop", daemon=True).start()
    print(f"READY http://{HOST}:{server.server_port}", flush=True)
    server.serve_forever(poll_interval=0.05)
    server.server_close()


if __name__ == "__main__":
    main()
