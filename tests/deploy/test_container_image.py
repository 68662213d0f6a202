"""contrib/container/Containerfile, built as CI builds it (``buildah bud --isolation
chroot``) on a base made from the cached Debian root with its python3 (no registry is
reachable here; users build on an official slim Python image), and its ``consentgate``
run with ``buildah run --isolation chroot``: the version, ``init`` into the state
volume, ``serve`` configured by the mounted TOML and a ``CONSENTGATE_*`` variable, the
image's own HEALTHCHECK command, a consent page in front of an upstream on loopback,
and SIGTERM. The chroot shares the host's network: the gate listens on a free port of
127.0.0.1 only. Root and buildah needed (tests/deploy/debroot.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import StartUpstream
from tests.deploy.images import BASE, base_image, build, buildah, inspect, remove_image, size
from tests.deploy.images import command as command_of
from tests.support.browsersim import Browser
from tests.support.fakeproxy import FakeProxy
from tests.support.gateproc import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
STATE = "/var/lib/consentgate"
#: The image's user (the Containerfile's USER).
UID = 10001


@dataclass
class Image:
    tag: str
    config: dict[str, Any]
    size: str


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, pyz_for_debian: Path) -> Iterator[Image]:
    base = base_image()
    context = tmp_path_factory.mktemp("context")
    shutil.copy2(pyz_for_debian, context / "consentgate.pyz")
    tag = f"localhost/consentgate-test:{os.getpid()}"
    build(REPO / "contrib/container/Containerfile", context, tag, base)
    try:
        yield Image(tag, inspect(tag), size(tag))
    finally:
        remove_image(tag)


@contextlib.contextmanager
def working_container(image: Image) -> Iterator[str]:
    name = buildah("from", "--quiet", image.tag).strip()
    # buildah run (1.28) mounts an anonymous volume for the image's VOLUME too, and with
    # two --volume options it sometimes lands over the bind mount on the same path
    # (4 runs of 30 here): the state would go there. A runtime mounts the given volume
    # only; so does buildah run without the VOLUME in the working container's config.
    buildah("config", "--volume", f"{STATE}-", name)
    try:
        yield name
    finally:
        buildah("rm", name, check=False)


def test_the_image_is_a_non_root_gate_with_its_state_in_one_volume(image: Image) -> None:
    config = image.config
    assert config["User"] == f"{UID}:{UID}"
    assert config["Volumes"] == {STATE: {}}
    assert (config["Entrypoint"], config["Cmd"]) == (["consentgate"], ["serve"])
    assert "CONSENTGATE_CONFIG=/etc/consentgate/consentgate.toml" in config["Env"]
    assert config["StopSignal"] == "SIGTERM"
    assert config["Healthcheck"]["Test"][:2] == ["CMD", "python3"]
    print(f"\nimage {image.tag}: {image.size} (its base, the Debian root: {size(BASE)})")


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (buildah run starts the command a few levels down)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


async def test_the_images_consentgate_serves_a_consent_page_and_stops_on_sigterm(
    image: Image, tmp_path: Path, start_upstream: StartUpstream
) -> None:
    proxy = FakeProxy()
    upstream = await start_upstream(proxy.app())
    listen = f"127.0.0.1:{free_port()}"
    gate = proxy.public_url = f"http://{listen}"
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, UID, UID)
    volume = ("--volume", f"{state}:{STATE}")
    env = ("--env", f"CONSENTGATE_SERVER_LISTEN={listen}")

    def run(*command: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command_of("run", "--isolation", "chroot", *options, container, "--", *command),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    with working_container(image) as container:
        version = await asyncio.to_thread(run, "consentgate", "--version")
        assert version.returncode == 0 and version.stdout.startswith("consentgate "), version
        init = await asyncio.to_thread(
            run,
            *("consentgate", "init", STATE, "--public-url", gate, "--upstream", upstream),
            *("--state-dir", STATE),
            options=volume,
        )
        assert init.returncode == 0, init.stderr
        # The configuration as an operator gives it: the TOML mounted read-only where
        # CONSENTGATE_CONFIG points, the listen address by a variable.
        mounted = ("--volume", f"{state / 'consentgate.toml'}:/etc/consentgate/consentgate.toml:ro")
        serve = await asyncio.create_subprocess_exec(
            *command_of("run", "--isolation", "chroot", *volume, *mounted, *env, container),
            *("--", "consentgate", "serve"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            await wait_until_healthy(gate, serve)
            found = [
                pid
                for pid in descendants(serve.pid)
                if b"consentgate.pyz\0serve" in Path(f"/proc/{pid}/cmdline").read_bytes()
            ]
            if len(found) != 1:
                serve.kill()
                out, err = await serve.communicate()
                raise AssertionError(f"gate processes {found}: {serve.returncode} {out!r} {err!r}")
            (gate_pid,) = found
            status = Path(f"/proc/{gate_pid}/status").read_text()
            assert f"Uid:\t{UID}\t{UID}\t{UID}\t{UID}" in status

            check = image.config["Healthcheck"]["Test"][1:]
            healthy = await asyncio.to_thread(run, *check, options=env)
            assert healthy.returncode == 0, healthy.stderr

            async with Browser(gate) as browser:
                client_id = await register(gate)
                page = await browser.authorize(
                    {
                        "response_type": "code",
                        "client_id": client_id,
                        "redirect_uri": "http://127.0.0.1:40001/callback",
                        "scope": "openid",
                        "state": "s1",
                        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                        "code_challenge_method": "S256",
                    }
                )
            assert page.is_consent_page, page.text[:500]
            assert proxy.reached("/authorize") == []

            os.kill(gate_pid, signal.SIGTERM)
            async with asyncio.timeout(30):
                _, stderr = await serve.communicate()
            assert serve.returncode == 0, stderr.decode()
            assert b"consentgate stopped" in stderr
            print(f"\nthe image's consentgate serve, its log:\n{stderr.decode()}")  # -s shows it
        finally:
            if serve.returncode is None:
                os.killpg(serve.pid, signal.SIGKILL)
                await serve.wait()
        unhealthy = await asyncio.to_thread(run, *check, options=env)
        assert unhealthy.returncode != 0  # the check can fail: nothing listens now
    assert (state / "consent.db").exists(), (sorted(os.listdir(state)), stderr.decode())
    assert (state / "consent.db").stat().st_uid == UID
    assert (state / "keys").stat().st_uid == UID


async def wait_until_healthy(gate: str, serve: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(60):
        while True:
            if serve.returncode is not None:
                _, stderr = await serve.communicate()
                raise AssertionError(f"serve exited {serve.returncode}: {stderr.decode()}")
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with session.get(f"{gate}/_consentgate/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)


async def register(gate: str) -> str:
    body = {"redirect_uris": ["http://127.0.0.1:40001/callback"], "client_name": "Smoke"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gate}/register", json=body) as response,
    ):
        assert response.status == 201
        client_id: str = (await response.json())["client_id"]
    return client_id
