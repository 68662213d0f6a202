"""Run ``consentgate serve`` as a real child process, for tests about the process itself
(signals, exit codes, its memory)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import bound_socket


@dataclass
class GateProcess:
    url: str
    process: asyncio.subprocess.Process
    config_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def memory_kib(self, field: str = "VmRSS") -> int:
        """A memory figure of the gate process from /proc (VmRSS now, VmHWM peak)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise LookupError(field)

    async def stderr_text(self) -> str:
        assert self.process.stderr is not None
        return (await self.process.stderr.read()).decode()


def free_port() -> int:
    sock = bound_socket()
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_config(
    directory: Path, upstream_url: str, port: int, sections: dict[str, dict[str, Any]] | None = None
) -> Path:
    """A config file for a gate on ``port``; ``sections`` override keys table by table."""
    data: dict[str, dict[str, Any]] = {
        "server": {
            "public_url": f"http://127.0.0.1:{port}",
            "listen": f"127.0.0.1:{port}",
            "shutdown_grace": 5,
        },
        "upstream": {"url": upstream_url},
        "store": {"path": str(directory / "store.sqlite3")},
        "keys": {"dir": str(directory / "keys")},
    }
    for section, values in (sections or {}).items():
        data.setdefault(section, {}).update(values)
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
        lines.append("")
    path = directory / "gate.toml"
    path.write_text("\n".join(lines))
    return path


async def wait_ready(url: str, process: asyncio.subprocess.Process, seconds: float = 15) -> None:
    async with aiohttp.ClientSession() as session:
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"the gate exited with {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/_consentgate/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise TimeoutError("the gate did not become healthy")


async def spawn_serve(
    config_path: Path,
    *extra: str,
    command: list[str] | None = None,
    stderr: int = asyncio.subprocess.PIPE,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> asyncio.subprocess.Process:
    """``python -m consentgate serve --config FILE`` (or ``command serve ...``), not
    waited for; stdout discarded."""
    return await asyncio.create_subprocess_exec(
        *(command or [sys.executable, "-m", "consentgate"]),
        "serve",
        "--config",
        str(config_path),
        *extra,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=stderr,
        env=env,
        cwd=cwd,
    )


@contextlib.asynccontextmanager
async def gate_process(
    directory: Path,
    upstream_url: str,
    sections: dict[str, dict[str, Any]] | None = None,
    *,
    create_store: bool = False,
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
    cwd: Path | None = None,
) -> AsyncIterator[GateProcess]:
    """Start ``python -m consentgate serve`` and stop it with SIGTERM afterwards.

    ``env`` is the process's whole environment, as for ``subprocess`` (default: this one's).
    ``command`` replaces ``python -m consentgate`` (the single file: ``python3 x.pyz``),
    ``cwd`` the working directory.
    """
    port = free_port()
    config_path = write_config(directory, upstream_url, port, sections)
    process = await spawn_serve(
        config_path,
        *(["--create-store"] if create_store else []),
        command=command,
        env=env,
        cwd=cwd,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, process)
        yield GateProcess(url, process, config_path)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
