"""contrib/systemd/consentgate.service under a real systemd: Debian 12's systemd 252 as
PID 1 in ``systemd-nspawn`` (tests/deploy/machine.py), the single file and the unit
installed by the commands of docs/deploy.md, run as they are written there.

What the unit promises and each test shows: ``systemctl start`` returns once the gate
listens (READY=1); the dynamic user gets its secrets through ``LoadCredential=`` and
cannot read their root-owned sources; ``keys rotate`` run as the service's user and
``systemctl reload`` put a new key in use without a restart; the watchdog restarts a
gate that stops answering it; ``systemctl stop`` ends by the gate's own drain, not a
kill. Root, debootstrap and systemd-nspawn needed (tests/deploy/debroot.py).
"""

from __future__ import annotations

import json
import re
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.debroot import debian_root, require
from tests.deploy.machine import Machine, booted
from tests.support.gateproc import free_port
from tests.support.pgcluster import PASSWORD, PASSWORD_ROLE, cluster_or_skip

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
UNIT = "consentgate.service"
DROPINS = "/etc/systemd/system/consentgate.service.d"
#: systemd's range for dynamic users (systemd.exec(5), DynamicUser=).
DYNAMIC_UIDS = range(61184, 65520)


def doc_blocks(heading: str) -> list[str]:
    """The ``sh`` blocks under one heading of docs/deploy.md (up to the next heading of
    any level), in order, dedented."""
    text = (REPO / "docs/deploy.md").read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    rest = text[start + len(heading) + 2 :]
    ends = [m.start() for m in re.finditer(r"^#+ ", rest, re.MULTILINE)]
    section = rest[: ends[0]] if ends else rest
    blocks = re.findall(r"^( *)```sh\n(.*?)^\1```", section, re.MULTILINE | re.DOTALL)
    return [textwrap.dedent(body) for _, body in blocks]


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)  # noqa: S310 - http://127.0.0.1 only
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@dataclass
class Installed:
    machine: Machine
    listen: str
    admin: str
    upstream: str

    @property
    def url(self) -> str:
        return f"http://{self.listen}"

    def token(self) -> str:
        return self.machine.path("/etc/consentgate/admin.token").read_text().strip()

    def running(self) -> dict[str, str]:
        """Started if it is not, and its properties."""
        self.machine.run("systemctl", "start", UNIT)
        return self.machine.show(
            UNIT, "ActiveState", "SubState", "MainPID", "NRestarts", "StatusText", "Result"
        )

    def as_the_gate(self, pid: str, *command: str) -> tuple[int, str]:
        """``command`` with the gate's identity and view of the files: its mount
        namespace, its user and group, no other group."""
        status = self.machine.run("cat", f"/proc/{pid}/status").stdout
        uid = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
        gid = re.search(r"^Gid:\s+(\d+)", status, re.MULTILINE)
        assert uid and gid
        done = self.machine.run(
            "nsenter", "-t", pid, "-m", "setpriv", f"--reuid={uid[1]}", f"--regid={gid[1]}",
            "--clear-groups", *command, check=False,
        )  # fmt: skip
        return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def installed(
    tmp_path_factory: pytest.TempPathFactory, pyz_for_debian: Path
) -> Iterator[Installed]:
    """A booted machine where the first three steps of docs/deploy.md's "Running under
    systemd" have run (the file installed, ``init``, the admin token's credential), and
    the configuration edited as the docs show; the unit not installed yet."""
    require("debootstrap", "systemd-nspawn", "nsenter")
    lower = debian_root()
    listen, admin, upstream = (f"127.0.0.1:{free_port()}" for _ in range(3))
    with booted(lower, tmp_path_factory.mktemp("machine")) as machine:
        checkout = machine.path("/root/checkout")
        (checkout / "dist").mkdir(parents=True)
        (checkout / "dist/consentgate.pyz").write_bytes(pyz_for_debian.read_bytes())
        for source in (REPO / "contrib/systemd").rglob("*"):
            target = checkout / source.relative_to(REPO)
            if source.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(source.read_bytes())
        steps = doc_blocks("## Running under systemd")
        assert len(steps) == 4, steps
        for step in steps[:3]:
            script = step.replace("http://127.0.0.1:8000", f"http://{upstream}")
            machine.sh("cd /root/checkout\n" + script.replace("127.0.0.1:8080", listen))
            if "init" in step:
                config = machine.path("/etc/consentgate/consentgate.toml")
                text = config.read_text()
                admin_table = text.index("\n[admin]\n")
                head, tail = text[:admin_table], text[admin_table:]
                tail = tail.replace('\nlisten = ""\n', f'\nlisten = "{admin}"\n', 1)
                tail = tail.replace(
                    '\ntoken_file = ""\n', '\ntoken_file = "/etc/consentgate/admin.token"\n', 1
                )
                config.write_text(head + tail)
        yield Installed(machine, listen, admin, upstream)


def test_the_documented_recipe_starts_the_unit_and_start_returns_once_the_gate_listens(
    installed: Installed,
) -> None:
    machine = installed.machine
    last = doc_blocks("## Running under systemd")[3]
    assert "systemctl daemon-reload && systemctl enable --now consentgate" in last
    machine.sh("cd /root/checkout\n" + last)
    # No retry: Type=notify returned only after READY=1, which the gate sends listening.
    assert get(f"{installed.url}/_consentgate/healthz") == (200, '{"status": "ok"}')
    shown = installed.running()
    assert (shown["ActiveState"], shown["SubState"]) == ("active", "running")
    assert shown["StatusText"] == f"listening on {installed.url}"
    journal = machine.journal(UNIT)
    assert journal.index("consentgate listening") < journal.index("Started consentgate.service")
    # The admin API read the root-owned 0600 token through the credential.
    status, body = get(f"http://{installed.admin}/admin/consents", installed.token())
    assert (status, body) == (200, '{"consents": [], "next_cursor": null}')
    assert get(f"http://{installed.admin}/admin/consents", "x" * 64)[0] == 401
    print(machine.run("systemctl", "status", UNIT, "--no-pager", check=False).stdout)


def test_the_dynamic_user_reads_its_credentials_and_not_their_sources(
    installed: Installed,
) -> None:
    pid = installed.running()["MainPID"]
    status, out = installed.as_the_gate(pid, "id", "-u")
    assert status == 0 and int(out) in DYNAMIC_UIDS, out
    status, out = installed.as_the_gate(
        pid, "cat", "/run/credentials/consentgate.service/admin-token"
    )
    assert (status, out.strip()) == (0, installed.token())
    status, out = installed.as_the_gate(pid, "cat", "/etc/consentgate/admin.token")
    assert status != 0 and "Permission denied" in out
    status, out = installed.as_the_gate(pid, "touch", "/etc/consentgate/planted")
    assert status != 0, out
    status, out = installed.as_the_gate(pid, "ls", "/root")
    assert status != 0, out
    # The keys root wrote with init were handed to the dynamic user, and are its only.
    owner, mode = installed.machine.run(
        "stat", "-c", "%u %a", "/var/lib/private/consentgate/keys"
    ).stdout.split()
    assert int(owner) in DYNAMIC_UIDS and mode == "700"


def test_keys_rotated_as_the_services_user_are_in_use_after_a_reload(
    installed: Installed,
) -> None:
    machine = installed.machine
    before = installed.running()
    keys = machine.path("/var/lib/private/consentgate/keys")
    active_before = (keys / "active").read_text().strip()
    (recipe,) = doc_blocks("### Running commands as the service's user")
    assert "keys rotate" in recipe and "systemctl reload consentgate" in recipe
    machine.sh(recipe)
    active = (keys / "active").read_text().strip()
    assert active != active_before
    owners = machine.run(
        "stat", "-c", "%u", *[f"/var/lib/private/consentgate/keys/{p.name}" for p in keys.iterdir()]
    )
    assert len(set(owners.stdout.split())) == 1, owners.stdout  # nothing root's among them
    machine.wait_for(
        "the reload",
        ["journalctl", "-u", UNIT, "-o", "cat"],
        f"keys reloaded active_key={active}",
        30,
    )
    after = installed.running()
    assert (after["MainPID"], after["NRestarts"]) == (before["MainPID"], before["NRestarts"])
    assert after["StatusText"] == f"listening on {installed.url}"


def test_the_docs_other_commands_work_under_the_hardening(installed: Installed) -> None:
    machine = installed.machine
    installed.running()
    as_the_service = (
        "systemd-run --wait --pipe --collect -p DynamicUser=yes -p User=consentgate"
        " -p StateDirectory=consentgate -p CacheDirectory=consentgate"
        " -p Environment=SHIV_ROOT=/var/cache/consentgate /usr/local/bin/consentgate.pyz"
    )
    config = "--config /etc/consentgate/consentgate.toml"
    machine.sh(f"{as_the_service} consents verify {config}")  # exit 0: every record verifies
    assert json.loads(machine.sh(f"{as_the_service} consents list --json {config}")) == []
    assert "consentgate listening" in machine.sh("journalctl -u consentgate")
    security = machine.run("systemd-analyze", "security", "--no-pager", UNIT).stdout
    level = re.search(rf"Overall exposure level for {UNIT}: ([0-9.]+) OK", security)
    assert level is not None and float(level[1]) <= 1.5, security[-300:]  # docs: 1.5


def test_without_its_credential_the_documented_token_stops_the_gate_at_start(
    installed: Installed,
) -> None:
    """What docs/deploy.md and docs/admin-api.md say happens without the drop-in."""
    machine = installed.machine
    dropin = machine.path(f"{DROPINS}/admin-token.conf")
    kept = dropin.read_bytes()
    dropin.unlink()
    try:
        machine.run("systemctl", "daemon-reload")
        failed = machine.run("systemctl", "restart", UNIT, check=False)
        assert failed.returncode != 0
        message = "admin.token_file: cannot read /etc/consentgate/admin.token: Permission denied"
        assert message in machine.journal(UNIT)
    finally:
        dropin.write_bytes(kept)
        machine.run("systemctl", "daemon-reload")
        machine.run("systemctl", "reset-failed", UNIT, check=False)
        machine.run("systemctl", "restart", UNIT)


def test_the_watchdog_restarts_a_gate_that_stops_answering_it(installed: Installed) -> None:
    machine = installed.machine
    dropin = machine.path(f"{DROPINS}/watchdog.conf")
    dropin.write_text("[Service]\nWatchdogSec=4s\n")
    try:
        machine.run("systemctl", "daemon-reload")
        machine.run("systemctl", "restart", UNIT)
        first = installed.running()
        time.sleep(10)  # two and a half watchdog periods: only the gate's pings keep it
        alive = installed.running()
        assert (alive["MainPID"], alive["NRestarts"]) == (first["MainPID"], first["NRestarts"])
        machine.run("systemctl", "kill", "--kill-who=main", "--signal=SIGSTOP", UNIT)
        deadline = time.monotonic() + 60
        while True:
            now = installed.running()
            if now["MainPID"] not in {"0", first["MainPID"]} and now["ActiveState"] == "active":
                break
            assert time.monotonic() < deadline, now
            time.sleep(0.5)
        assert int(now["NRestarts"]) == int(first["NRestarts"]) + 1
        assert "Watchdog timeout" in machine.journal(UNIT)
    finally:
        dropin.unlink()
        machine.run("systemctl", "daemon-reload")
        machine.run("systemctl", "restart", UNIT)


def test_the_postgresql_password_reaches_the_gate_as_a_credential(installed: Installed) -> None:
    cluster = cluster_or_skip()
    database = cluster.create_database(owner=PASSWORD_ROLE)
    machine = installed.machine
    machine.sh(f"(umask 077; printf '%s\\n' '{PASSWORD}' > /etc/consentgate/db-password)")
    url = f"postgresql://{PASSWORD_ROLE}@127.0.0.1:{cluster.port}/{database}"
    store = machine.path(f"{DROPINS}/store-url.conf")
    # Keys of their own: the SQLite store's keys record that store (a guard against a
    # lost store, docs/store.md), and a gate given them with another store stops.
    store.write_text(
        f"[Service]\nEnvironment=CONSENTGATE_STORE_URL={url}\n"
        "Environment=CONSENTGATE_KEYS_DIR=/var/lib/consentgate/pg-keys\n"
    )
    machine.sh(
        "install -m 0644 /root/checkout/contrib/systemd/consentgate.service.d/db-password.conf"
        f" {DROPINS}/db-password.conf"
    )
    try:
        machine.run("systemctl", "daemon-reload")
        machine.run("systemctl", "restart", UNIT)
        pid = installed.running()["MainPID"]
        status, out = installed.as_the_gate(pid, "cat", "/etc/consentgate/db-password")
        assert status != 0 and "Permission denied" in out
        # The role logs in with scram-sha-256 only: the gate migrated its database.
        tables = cluster.psql(
            "SELECT count(*) FROM pg_tables WHERE tableowner = 'pw_user'", database=database
        )
        assert int(tables) > 0
        assert get(f"{installed.url}/_consentgate/healthz")[0] == 200
    finally:
        store.unlink()
        machine.path(f"{DROPINS}/db-password.conf").unlink()
        machine.run("systemctl", "daemon-reload")
        machine.run("systemctl", "restart", UNIT)


def test_stop_ends_by_the_gates_own_drain_within_the_grace(installed: Installed) -> None:
    machine = installed.machine
    installed.running()
    earlier = machine.journal(UNIT)
    machine.run("systemctl", "stop", UNIT, timeout=60)
    shown = machine.show(UNIT, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    # Result=success, exited 0: not "timeout" (TimeoutStopSec reached, then SIGKILL).
    assert shown == {
        "ActiveState": "inactive",
        "Result": "success",
        "ExecMainCode": "1",  # CLD_EXITED
        "ExecMainStatus": "0",
    }
    journal = machine.journal(UNIT)
    assert journal.startswith(earlier)
    stopping = journal[len(earlier) :]
    assert "consentgate stopped" in stopping
    assert "Killing" not in stopping, stopping
