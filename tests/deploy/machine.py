"""A Debian machine booted with systemd as PID 1 (``systemd-nspawn -b``), over a
throwaway copy-on-write layer of the cached root (tests/deploy/debroot.py).

How it is driven: ``systemd-nspawn --register=no --keep-unit -b`` runs in the
background with its console on a pipe into a file (no machined, no D-Bus on the
host); its child is the container's PID 1. Commands run inside with ``nsenter``
into that PID's namespaces (``systemd-run --machine`` needs a registered machine).
The container shares the host's network (no ``--private-network``): the gate inside
listens on a free port of 127.0.0.1, which the test reaches directly.

The machine ends by itself: :meth:`Machine.close` asks PID 1 to power off (SIGRTMIN+4)
and kills the whole process group if it has not stopped within 30 s; the overlay is
unmounted and the layer removed with the test's directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class MachineError(Exception):
    """The machine would not boot, or a command in it failed (the message says why)."""


class Machine:
    def __init__(self, lower: Path, directory: Path) -> None:
        self.lower = lower
        self.directory = directory
        self.root = directory / "root"
        self.console = directory / "console.log"
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.leader = 0

    # --- life ------------------------------------------------------------------------

    def boot(self) -> None:
        upper, work = self.directory / "upper", self.directory / "work"
        for path in (upper, work, self.root):
            path.mkdir(parents=True)
        subprocess.run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={self.lower},upperdir={upper},workdir={work}",
                str(self.root),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        with self.console.open("wb") as console:
            self.nspawn = subprocess.Popen(
                [
                    "systemd-nspawn",
                    "--register=no",
                    "--keep-unit",
                    "--quiet",
                    "--console=pipe",
                    "--machine=consentgate-test",
                    "-b",
                    "-D",
                    str(self.root),
                ],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.leader = self._find_leader()
        deadline = time.monotonic() + 120
        while True:  # until PID 1 runs and has opened its private bus, then until booted
            state = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=120)
            if state.stdout.strip() in {"running", "degraded"}:
                return
            early = "Failed to connect to bus" in state.stderr or state.stdout.strip() == "offline"
            if not early or time.monotonic() > deadline:
                raise MachineError(f"systemd did not finish booting: {state.stdout}{state.stderr}")
            time.sleep(0.2)

    def _find_leader(self) -> int:
        """The container's PID 1: the nspawn process's child, in another PID namespace."""
        assert self.nspawn is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise MachineError(f"systemd-nspawn exited: {self.console.read_text()[-2000:]}")
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                with contextlib.suppress(OSError):
                    status = (entry / "status").read_text()
                    fields = dict(
                        line.split(":\t", 1) for line in status.splitlines() if ":\t" in line
                    )
                    nspid = fields.get("NSpid", "").split()
                    if fields.get("PPid", "").strip() == str(self.nspawn.pid) and nspid[-1:] == [
                        "1"
                    ]:
                        return int(entry.name)
            time.sleep(0.1)
        raise MachineError("systemd-nspawn started no PID 1 within 30 s")

    def close(self) -> None:
        if self.nspawn is not None and self.nspawn.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.leader, signal.SIGRTMIN + 4)  # systemd: power off
            try:
                self.nspawn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.nspawn.pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.leader, signal.SIGKILL)
                self.nspawn.wait(timeout=30)
        if self.root.is_mount():
            subprocess.run(["umount", "--lazy", str(self.root)], check=False, timeout=30)

    # --- inside ----------------------------------------------------------------------

    def run(
        self, *command: str, check: bool = True, timeout: float = 60, user: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``command`` as root in the machine (a login-less shell environment)."""
        enter = ["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "-r", "-w"]
        env = ["env", "-i", f"PATH={PATH}", "LANG=C.UTF-8", "HOME=/root", "SYSTEMD_PAGER="]
        done = subprocess.run(
            [*enter, *env, *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd="/",
        )
        if check and done.returncode != 0:
            journal = ""
            if command[0] == "systemctl":  # the why is in the journal
                tail = ["journalctl", "--no-pager", "-n", "25", "-o", "short-monotonic"]
                journal = subprocess.run(
                    [*enter, *env, *tail], capture_output=True, text=True, timeout=30, check=False
                ).stdout
            raise MachineError(
                f"{' '.join(command)!r} exited {done.returncode}:\n{done.stdout}{done.stderr}"
                f"{journal}"
            )
        return done

    def sh(self, script: str, *, check: bool = True, timeout: float = 120) -> str:
        """A shell script in the machine, stopping at the first failing command."""
        return self.run("sh", "-euc", script, check=check, timeout=timeout).stdout

    def path(self, inside: str) -> Path:
        """Where a path of the machine is, seen from the host (to write files there)."""
        return self.root / inside.lstrip("/")

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """``systemctl show`` properties of a unit."""
        out = self.run("systemctl", "show", unit, *(f"--property={p}" for p in properties))
        return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)

    def journal(self, unit: str) -> str:
        return self.run("journalctl", "--no-pager", "-o", "cat", "-u", unit).stdout

    def wait_for(self, what: str, probe: Sequence[str], want: str, seconds: float) -> str:
        """Run ``probe`` until its output holds ``want``; its last output."""
        deadline = time.monotonic() + seconds
        while True:
            out = self.run(*probe, check=False).stdout
            if want in out:
                return out
            if time.monotonic() > deadline:
                raise MachineError(f"{what}: {want!r} not seen within {seconds} s; last: {out}")
            time.sleep(0.5)


@contextlib.contextmanager
def booted(lower: Path, directory: Path) -> Iterator[Machine]:
    machine = Machine(lower, directory)
    try:
        machine.boot()
        yield machine
    finally:
        machine.close()
