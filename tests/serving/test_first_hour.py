"""The first hour of an operator with ``consentgate serve``: what the process says when
it starts, as a real child process.

* a listener whose port is taken is one line naming its key (``server.listen`` or
  ``admin.listen``) and the fix, exit 1, no traceback;
* each listener says where it listens, the admin one included;
* a gate running as root says, once, that it need not.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from consentgate.serving.privileges import root_warning
from tests.conftest import admin_section, bound_socket
from tests.support.gateproc import free_port, gate_process, spawn_serve, write_config

pytestmark = pytest.mark.slow  # consentgate serve processes

#: A port nothing listens on is enough for these tests: nothing is relayed.
NO_UPSTREAM = "http://127.0.0.1:9"


async def failed_start(config: Path) -> tuple[int, str]:
    process = await spawn_serve(config)
    _, err = await asyncio.wait_for(process.communicate(), 60)  # a bound, not a measure
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_an_admin_port_in_use_is_one_line_naming_admin_listen_and_the_fix(
    tmp_path: Path,
) -> None:
    taken = bound_socket()
    port = taken.getsockname()[1]
    admin = admin_section(tmp_path, f"127.0.0.1:{port}")
    config = write_config(tmp_path, NO_UPSTREAM, free_port(), {"admin": admin})
    try:
        status, text = await failed_start(config)
    finally:
        taken.close()
    assert status == 1, text
    assert "Traceback" not in text
    assert text.strip().splitlines()[-1] == (
        f"consentgate: error: admin.listen: cannot listen on 127.0.0.1:{port}: the address "
        "is already in use (another process listens there: stop it, or set admin.listen "
        "to a free port)"
    )


async def test_a_public_port_in_use_is_one_line_naming_server_listen_and_the_fix(
    tmp_path: Path,
) -> None:
    taken = bound_socket()
    port = taken.getsockname()[1]
    config = write_config(tmp_path, NO_UPSTREAM, port)
    try:
        status, text = await failed_start(config)
    finally:
        taken.close()
    assert status == 1, text
    assert "Traceback" not in text
    assert text.strip().splitlines()[-1] == (
        f"consentgate: error: server.listen: cannot listen on 127.0.0.1:{port}: the address "
        "is already in use (another process listens there: stop it, or set server.listen "
        "to a free port)"
    )


async def test_both_listeners_say_where_they_listen_and_root_is_warned_about(
    tmp_path: Path,
) -> None:
    admin_port = free_port()
    admin = admin_section(tmp_path, f"127.0.0.1:{admin_port}")
    async with gate_process(tmp_path, NO_UPSTREAM, {"admin": admin}) as gate:
        pass
    text = await gate.stderr_text()
    port = gate.url.rsplit(":", 1)[1]
    assert re.search(rf"INFO\s+consentgate listening address=http://127.0.0.1:{port} ", text), text
    assert re.search(
        rf"INFO\s+consentgate admin listening address=http://127.0.0.1:{admin_port}\b", text
    ), text
    # The tests run as root on CI; elsewhere the line must be absent.
    as_root = os.geteuid() == 0
    assert len(re.findall(r"WARNING\s+consentgate running as root", text)) == as_root, text


def test_only_uid_0_is_warned_about() -> None:
    warning = root_warning(0)
    assert warning is not None and "CAP_NET_BIND_SERVICE" in warning
    assert root_warning(1000) is None
    assert root_warning(65534) is None
