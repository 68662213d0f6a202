"""A real nginx (Debian's) in front of the gate, for the split-deployment tests.

Runs ``nginx`` in the foreground with ``master_process off`` (one process, as the
user running the tests, everything under a temporary prefix), with the blocks that
``consentgate nginx-config`` prints inside its ``http {}``. Skips when nginx is not
installed, except under ``CI_REQUIRE_NGINX=1`` (set by ``.ci/run``), where it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.gateproc import free_port


def _nginx() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found is None:
        reason = "nginx is not installed (Debian: apt-get install nginx-light)"
        if os.environ.get("CI_REQUIRE_NGINX") == "1":
            pytest.fail(f"CI_REQUIRE_NGINX=1 and {reason}", pytrace=False)
        pytest.skip(reason)
    return found


@contextlib.asynccontextmanager
async def nginx_front(directory: Path, blocks: str, port: int) -> AsyncIterator[str]:
    """nginx on 127.0.0.1:``port`` with ``blocks`` in its http block; yields its URL."""
    binary = _nginx()
    directory.mkdir(parents=True, exist_ok=True)
    temp = {name: directory / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    conf = directory / "nginx.conf"
    conf.write_text(
        f"""daemon off;
master_process off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
{blocks}
}}
"""
    )
    checked = await asyncio.create_subprocess_exec(
        binary, "-t", "-p", str(directory), "-c", str(conf), stderr=asyncio.subprocess.PIPE
    )
    _, problems = await asyncio.wait_for(checked.communicate(), 30)
    assert checked.returncode == 0, problems.decode()
    process = await asyncio.create_subprocess_exec(
        binary, "-p", str(directory), "-c", str(conf), stderr=asyncio.subprocess.DEVNULL
    )
    try:
        async with asyncio.timeout(15):
            while True:
                assert process.returncode is None, (directory / "error.log").read_text()
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


__all__ = ["free_port", "nginx_front"]
