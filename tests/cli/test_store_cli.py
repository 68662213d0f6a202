"""``consentgate keys ...`` and ``consentgate consents ...``: output, exit codes, export.

Most tests call ``consentgate.cli.main`` in-process; a few run ``python -m
consentgate`` to prove the exit codes a shell sees.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from consentgate.cli import main
from consentgate.core.signed.records import ConsentRecord
from consentgate.signing.key_directory import key_file_name, load_keyring
from consentgate.store import ConsentStore

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Setup:
    config: Path
    store: Path
    keys: Path
    records: list[ConsentRecord]

    def args(self, *words: str) -> list[str]:
        return [*words, "--config", str(self.config)]


def write_config(directory: Path) -> Path:
    config = directory / "consentgate.toml"
    config.write_text(
        textwrap.dedent(
            """
            [server]
            public_url = "http://127.0.0.1:8080"

            [upstream]
            url = "http://127.0.0.1:9000"

            [store]
            path = "store.sqlite3"

            [keys]
            dir = "keys"
            """
        ),
        encoding="utf-8",
    )
    return config


def populate(directory: Path, specs: list[tuple[str, str, str]]) -> list[ConsentRecord]:
    """Record (subject, client_id, redirect_uri) approvals and one client, as the gate would."""

    async def run() -> list[ConsentRecord]:
        keyring = load_keyring(directory / "keys", create=False)
        async with await ConsentStore.open(directory / "store.sqlite3", keyring) as store:
            await store.upsert_client(
                {"client_id": "client-1", "client_name": "Example", "client_secret": "s3cr3t"}
            )
            return [
                await store.record(subject, client, uri, {"openid", "profile"}, ttl=3600)
                for subject, client, uri in specs
            ]

    return asyncio.run(run())


def read_records(directory: Path) -> list[ConsentRecord]:
    async def run() -> list[ConsentRecord]:
        keyring = load_keyring(directory / "keys", create=False)
        async with await ConsentStore.open(directory / "store.sqlite3", keyring) as store:
            return await store.list()

    return asyncio.run(run())


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    config = write_config(tmp_path)
    assert main(["keys", "generate", "--config", str(config)]) == 0
    records = populate(
        tmp_path,
        [
            ("alice", "client-1", "https://one.example/cb"),
            ("bob", "client-1", "https://two.example/cb"),
            ("alice", "client-2", "https://two.example/cb"),
        ],
    )
    return Setup(config, tmp_path / "store.sqlite3", tmp_path / "keys", records)


def tamper(setup: Setup, record: ConsentRecord) -> None:
    with sqlite3.connect(setup.store) as conn:
        conn.execute("UPDATE consents SET expires_at = expires_at + 1 WHERE id = ?", (record.id,))
    conn.close()


def run_cli(*args: str, unprivileged: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "consentgate", *args]
    if unprivileged and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: root ignores file modes")
        command = [setpriv, "--inh-caps=-all", "--bounding-set=-all", *command]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)


# --- keys -----------------------------------------------------------------------------


def test_keys_generate_creates_the_directory_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert main(["keys", "generate", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    kid = load_keyring(tmp_path / "keys", create=False).active_kid
    assert out == (
        f"created the signing key {kid} in {tmp_path / 'keys'}\n"
        f"created the cookie secret {tmp_path / 'keys' / 'cookie.secret'}\n"
    )
    assert main(["keys", "generate", "--config", str(config)]) == 0
    assert capsys.readouterr().out == (
        f"{tmp_path / 'keys'} already has the active signing key {kid}\n"
    )


def test_keys_rotate_and_list_show_the_new_active_key_first(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    old = load_keyring(setup.keys).active_kid
    assert main(setup.args("keys", "rotate")) == 0
    new = load_keyring(setup.keys).active_kid
    assert capsys.readouterr().out.startswith(f"new active signing key {new}; ")
    assert main(setup.args("keys", "list")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "KID\tSTATUS\tCREATED\tFILE"
    assert [line.split("\t")[:2] for line in lines[1:]] == [[new, "active"], [old, "retired"]]
    assert main(setup.args("keys", "list", "--json")) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(item["kid"], item["active"]) for item in listed] == [(new, True), (old, False)]
    assert listed[0]["file"] == str(setup.keys / key_file_name(new))


def test_keys_list_names_a_key_added_and_not_yet_active_staged_not_retired(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    first = load_keyring(setup.keys).active_kid
    assert main(setup.args("keys", "add")) == 0
    added = next(kid for kid in load_keyring(setup.keys).kids if kid != first)
    capsys.readouterr()
    assert main(setup.args("keys", "list")) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.split("\t")[:2] for line in lines] == [
        [first, "active"],
        [added, "staged (verify only)"],
    ]
    assert main(setup.args("keys", "list", "--json")) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(item["kid"], item["status"]) for item in listed] == [
        (first, "active"),
        (added, "staged"),
    ]
    # Activated, it signs; the key it replaced is retired (it signed records once).
    assert main(setup.args("keys", "activate", added)) == 0
    capsys.readouterr()
    assert main(setup.args("keys", "list")) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.split("\t")[:2] for line in lines] == [[added, "active"], [first, "retired"]]


def test_keys_list_without_a_key_directory_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert main(["keys", "list", "--config", str(config)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"consentgate: error: the key directory {tmp_path / 'keys'} does not exist; "
        "create it with: consentgate keys generate\n"
    )


def test_a_group_readable_key_stops_the_commands_with_the_chmod_fix(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    key = setup.keys / key_file_name(load_keyring(setup.keys).active_kid)
    key.chmod(0o640)
    assert main(setup.args("consents", "list")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"(mode 0640); run: chmod 600 {key}" in err


# --- consents list ----------------------------------------------------------------------


def test_consents_list_prints_a_table_of_the_records(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(setup.args("consents", "list")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == [
        "ID",
        "STATUS",
        "SUBJECT",
        "USER",
        "CLIENT_ID",
        "REDIRECT_URI",
        "SCOPES",
        "RESOURCE",
        "GRANTED",
        "EXPIRES",
        "CLIENT_KIND",
        "CLIENT_DOMAIN",
    ]
    first = lines[1].split("\t")
    record = setup.records[0]
    assert first[:8] == [
        record.id,
        "active",
        "alice",
        "-",  # no person signed in with this subject ([identity])
        "client-1",
        "https://one.example/cb",
        "openid profile",
        "-",
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first[8])
    assert first[10:] == ["registered", "-"]
    assert lines[3].split("\t")[10:] == ["unknown", "-"]  # client-2 has no registration
    assert len(lines) == 4


def test_consents_list_tells_a_url_client_by_its_kind_and_domain(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "https://Notes.example/oauth/client.json"
    (record,) = populate(setup.store.parent, [("carol", url, "http://127.0.0.1/callback")])
    assert main(setup.args("consents", "list", "--client", url)) == 0
    (row,) = capsys.readouterr().out.splitlines()[1:]
    assert row.split("\t")[4] == url
    assert row.split("\t")[10:] == ["metadata_document", "notes.example"]
    assert main(setup.args("consents", "list", "--json")) == 0
    listed = {item["id"]: item for item in json.loads(capsys.readouterr().out)}
    assert (listed[record.id]["client_kind"], listed[record.id]["client_domain"]) == (
        "metadata_document",
        "notes.example",
    )
    first = listed[setup.records[0].id]
    assert (first["client_kind"], first["client_domain"]) == ("registered", None)
    assert listed[setup.records[2].id]["client_kind"] == "unknown"


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["--client", "client-1"], [0, 1]),
        (["--redirect-uri", "https://two.example/cb"], [1, 2]),
        (["--subject", "alice"], [0, 2]),
        (["--client", "client-1", "--subject", "alice"], [0]),
        (["--client", "nobody"], []),
    ],
)
def test_consents_list_filters_and_prints_json(
    setup: Setup, capsys: pytest.CaptureFixture[str], filters: list[str], expected: list[int]
) -> None:
    assert main(setup.args("consents", "list", "--json", *filters)) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [item["id"] for item in listed] == [setup.records[i].id for i in expected]
    for item in listed:
        assert item["status"] == "active"
        assert item["scopes"] == ["openid", "profile"]
        assert isinstance(item["signature"], str)


def test_a_tampered_record_is_not_listed_and_a_warning_says_so(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    tamper(setup, setup.records[1])
    assert main(setup.args("consents", "list", "--json")) == 0
    captured = capsys.readouterr()
    assert [item["id"] for item in json.loads(captured.out)] == [
        setup.records[0].id,
        setup.records[2].id,
    ]
    assert captured.err == (
        "consentgate: warning: 1 record(s) failed verification and are not shown; "
        "run: consentgate consents verify\n"
    )


def test_a_missing_store_is_a_one_line_error_and_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert main(["keys", "generate", "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["consents", "list", "--config", str(config)]) == 1
    assert capsys.readouterr().err == (
        f"consentgate: error: the consent store {tmp_path / 'store.sqlite3'} does not exist; "
        "the gate creates it when it first starts\n"
    )
    assert not (tmp_path / "store.sqlite3").exists()


# --- consents revoke --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "revoked"),
    [
        (["--id", "#0"], [0]),
        (["--client", "client-1"], [0, 1]),
        (["--redirect-uri", "https://two.example/cb"], [1, 2]),
        (["--subject", "alice"], [0, 2]),
        (["--all", "--yes"], [0, 1, 2]),
    ],
)
def test_each_revoke_option_revokes_what_it_names(
    setup: Setup, capsys: pytest.CaptureFixture[str], selector: list[str], revoked: list[int]
) -> None:
    words = [setup.records[0].id if word == "#0" else word for word in selector]
    assert main(setup.args("consents", "revoke", *words)) == 0
    assert capsys.readouterr().out == f"revoked {len(revoked)} consent(s)\n"
    after = {record.id: record for record in read_records(setup.config.parent)}
    for index, record in enumerate(setup.records):
        assert (after[record.id].revoked_at is not None) is (index in revoked)


def test_revoking_all_without_yes_is_refused_and_changes_nothing(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(setup.args("consents", "revoke", "--all")) == 2
    assert capsys.readouterr().err == (
        "consentgate: error: --all revokes every consent; add --yes to confirm\n"
    )
    assert all(record.revoked_at is None for record in read_records(setup.config.parent))


def test_revoking_an_unknown_id_fails(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(setup.args("consents", "revoke", "--id", "nope")) == 1
    assert capsys.readouterr().err == "consentgate: error: no unrevoked consent with id 'nope'\n"


def test_revoke_takes_exactly_one_selector(setup: Setup) -> None:
    with pytest.raises(SystemExit) as two:
        main(setup.args("consents", "revoke", "--client", "client-1", "--subject", "alice"))
    assert two.value.code == 2
    with pytest.raises(SystemExit) as none:
        main(setup.args("consents", "revoke"))
    assert none.value.code == 2


# --- consents verify and export ---------------------------------------------------------


def test_verify_reports_success_and_exits_0(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(setup.args("consents", "verify")) == 0
    assert capsys.readouterr().out == (
        "audit trail: empty\nall verify: 3 consent record(s) (as consents list counts them: "
        "revoked and expired included) and 1 client registration(s)\n"
    )


def test_verify_counts_records_in_the_terms_of_consents_list(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    """``consents list`` lists consent records, revoked and expired included; verify
    also checks the client registrations: each count is named by its kind."""
    assert main(setup.args("consents", "revoke", "--id", setup.records[1].id)) == 0
    capsys.readouterr()
    assert main(setup.args("consents", "list")) == 0
    listed = capsys.readouterr().out.splitlines()[1:]  # the lines after the header
    assert len(listed) == 3
    assert main(setup.args("consents", "verify")) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"all verify: {len(listed)} consent record(s) (as consents list counts them: revoked "
        "and expired included) and 1 client registration(s)"
    )
    tamper(setup, setup.records[0])
    assert main(setup.args("consents", "verify")) == 1
    assert capsys.readouterr().err == (
        f"consentgate: error: 1 of {len(listed)} consent record(s) failed verification\n"
    )


def test_verify_lists_each_failing_record_and_exits_1(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    tamper(setup, setup.records[0])
    tamper(setup, setup.records[2])
    assert main(setup.args("consents", "verify")) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"consent {setup.records[0].id}: signature does not match the fields (edited or forged)",
        f"consent {setup.records[2].id}: signature does not match the fields (edited or forged)",
        # the tampered records found are on the record now
        "audit trail: 2 row(s) verify, an unbroken chain from row 1 to row 2",
    ]
    assert captured.err == "consentgate: error: 2 of 3 consent record(s) failed verification\n"


def run_documented_verifier(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (REPO / "docs" / "store.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    verifier = next(block for block in blocks if "export.jsonl" in block)
    monkeypatch.chdir(directory)
    exec(compile(verifier, "docs/store.md", "exec"), {"__name__": "__main__"})  # noqa: S102


def test_an_export_verifies_offline_with_only_the_jwks(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(setup.args("consents", "revoke", "--id", setup.records[1].id)) == 0
    capsys.readouterr()
    assert main(setup.args("keys", "rotate")) == 0  # two keys in the JWKS
    capsys.readouterr()
    assert main(setup.args("consents", "export")) == 0
    exported = capsys.readouterr().out
    lines = [json.loads(line) for line in exported.splitlines()]
    header, items = lines[0], lines[1:]
    assert header["format"] == "consentgate-export-v1"
    assert header["encodings"] == {
        "consent": "consentgate-consent-v1",
        "client": "consentgate-client-v1",
    }
    assert len(header["jwks"]["keys"]) == 2
    assert [item["kind"] for item in items] == ["client", "consent", "consent", "consent"]
    assert "s3cr3t" not in exported
    (setup.config.parent / "export.jsonl").write_text(exported, encoding="utf-8")
    run_documented_verifier(setup.config.parent, monkeypatch)
    assert capsys.readouterr().out == "every record verifies\n"


def test_an_edited_export_line_fails_offline_verification(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.exceptions import InvalidSignature

    output = setup.config.parent / "export.jsonl"
    assert main(setup.args("consents", "export", "--output", str(output))) == 0
    assert capsys.readouterr().out == ""
    lines = output.read_text(encoding="utf-8").splitlines()
    item: dict[str, Any] = json.loads(lines[-1])
    item["scopes"] = ["admin", *item["scopes"]]
    lines[-1] = json.dumps(item)
    output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InvalidSignature):
        run_documented_verifier(setup.config.parent, monkeypatch)


def test_export_leaves_out_failing_records_names_them_and_exits_1(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    tamper(setup, setup.records[1])
    assert main(setup.args("consents", "export")) == 1
    captured = capsys.readouterr()
    ids = [json.loads(line).get("id") for line in captured.out.splitlines()[1:]]
    assert ids == [None, setup.records[0].id, setup.records[2].id]  # the client has no "id"
    assert captured.err == (
        f"consentgate: warning: not exported: consent {setup.records[1].id}: "
        "signature does not match the fields (edited or forged)\n"
    )


# --- from a machine without the keys directory -----------------------


def without_keys(setup: Setup) -> Path:
    """The keys directory moved away, as on a machine that only reaches the store."""
    elsewhere = setup.keys.with_name("keys-on-the-gate-host")
    setup.keys.rename(elsewhere)
    return elsewhere


def test_verify_without_the_keys_directory_uses_the_stores_public_keys(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    kid = setup.records[0].key_id
    without_keys(setup)
    assert main(setup.args("consents", "verify")) == 0
    captured = capsys.readouterr()
    assert captured.out == (
        "audit trail: empty\nall verify: 3 consent record(s) (as consents list counts them: "
        "revoked and expired included) and 1 client registration(s)\n"
    )
    assert captured.err == (
        f"consentgate: verifying with the public keys kept in the store: {kid} "
        "(compare with consentgate keys list on a gate)\n"
    )
    tamper(setup, setup.records[1])
    assert main(setup.args("consents", "verify")) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"consent {setup.records[1].id}: signature does not match the fields (edited or forged)",
        "audit trail: empty",  # verifying with public keys only: nothing is written
    ]


def test_export_without_the_keys_directory_carries_the_stores_keys(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    without_keys(setup)
    assert main(setup.args("consents", "export")) == 0
    exported = capsys.readouterr().out
    header = json.loads(exported.splitlines()[0])
    assert [key["kid"] for key in header["jwks"]["keys"]] == [setup.records[0].key_id]
    (setup.config.parent / "export.jsonl").write_text(exported, encoding="utf-8")
    run_documented_verifier(setup.config.parent, monkeypatch)
    assert capsys.readouterr().out == "every record verifies\n"


def test_store_keys_is_asked_for_and_a_forged_key_fails_verification(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    from consentgate.core.signed.keyring import KeyRing, jwk_text

    impostor = KeyRing.generate()
    key = impostor.public_key(impostor.active_kid)
    assert key is not None
    name = f"signing_key:{setup.records[0].key_id}"
    with sqlite3.connect(setup.store) as conn:
        conn.execute("UPDATE settings SET value = ? WHERE name = ?", (jwk_text(key), name))
    conn.close()
    assert main(setup.args("consents", "verify", "--store-keys")) == 1
    out, err = capsys.readouterr()
    assert f"setting {name}: not the public key its name says (edited)" in out.splitlines()
    assert (
        "3 of 3 consent record(s), 1 of 1 client registration(s) and 1 stored key(s) failed "
        "verification"
    ) in err


def test_without_keys_anywhere_verify_says_what_to_do(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(setup.store) as conn:
        conn.execute("DELETE FROM settings WHERE name LIKE 'signing_key:%'")
    conn.close()
    without_keys(setup)
    assert main(setup.args("consents", "verify")) == 1
    assert "the store keeps no public keys to verify with" in capsys.readouterr().err
    # a command that writes still needs the keys directory
    assert main(setup.args("consents", "revoke", "--all", "--yes")) == 1
    assert "does not exist; create it with: consentgate keys generate" in capsys.readouterr().err


def test_verify_notes_stored_keys_this_directory_lacks(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    old = setup.records[0].key_id
    assert main(setup.args("keys", "rotate")) == 0
    populate(setup.config.parent, [("carol", "client-3", "https://three.example/cb")])
    (setup.keys / key_file_name(old)).unlink()
    capsys.readouterr()
    assert main(setup.args("consents", "verify")) == 1
    err = capsys.readouterr().err
    assert f"the store also keeps key(s) {old} that this keys directory lacks" in err


# --- as a shell sees it -------------------------------------------------------------------


def test_the_exit_codes_of_verify_in_a_real_process(setup: Setup) -> None:
    ok = run_cli(*setup.args("consents", "verify"))
    assert (ok.returncode, ok.stdout, ok.stderr) == (
        0,
        "audit trail: empty\nall verify: 3 consent record(s) (as consents list counts them: "
        "revoked and expired included) and 1 client registration(s)\n",
        "",
    )
    tamper(setup, setup.records[0])
    failed = run_cli(*setup.args("consents", "verify"))
    assert failed.returncode == 1
    assert failed.stdout.startswith(f"consent {setup.records[0].id}: signature does not match")
    assert failed.stderr == "consentgate: error: 1 of 3 consent record(s) failed verification\n"


def test_a_read_only_store_is_a_one_line_error_in_a_real_process(setup: Setup) -> None:
    setup.store.chmod(0o400)
    result = run_cli(*setup.args("consents", "list"), unprivileged=True)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"consentgate: error: the consent store {setup.store} is read-only "
    )
    assert result.stderr.count("\n") == 1


def test_a_closed_pipe_ends_the_listing_quietly(setup: Setup) -> None:
    populate(
        setup.config.parent, [(f"s{i}", "client-1", "https://x.example/cb") for i in range(800)]
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        [sys.executable, "-m", "consentgate", *setup.args("consents", "list")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        assert process.stdout.readline().startswith(b"ID\t")
        process.stdout.close()  # like `| head -1`
        assert process.wait(timeout=60) == 0
        assert process.stderr.read() == b""


# --- migrate --------------------------------------------------------------------------


def test_migrate_creates_the_store_then_says_it_is_up_to_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from consentgate.store.sqlite.sqlite_schema import SCHEMA_VERSION

    config = write_config(tmp_path)
    store = tmp_path / "store.sqlite3"
    assert main(["migrate", "--config", str(config)]) == 0
    assert capsys.readouterr().out == (
        f"sqlite:{store}: migrated from schema version 0 to {SCHEMA_VERSION}\n"
    )
    assert store.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "keys").exists()  # a migration needs no keys
    assert main(["migrate", "--config", str(config)]) == 0
    assert (
        capsys.readouterr().out == f"sqlite:{store}: schema version {SCHEMA_VERSION}, up to date\n"
    )


def test_migrate_refuses_a_store_newer_than_the_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    with sqlite3.connect(tmp_path / "store.sqlite3") as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    assert main(["migrate", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "schema version 99, newer than" in err
    assert "upgrade consentgate" in err


def test_migrate_leaves_a_newer_store_that_still_runs_this_code_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rollback across an additive migration: the older code opens the newer store."""
    from consentgate.store.sqlite.sqlite_schema import SCHEMA_VERSION
    from tests.support.later_release import migrate_sqlite_later

    config = write_config(tmp_path)
    store = tmp_path / "store.sqlite3"
    assert main(["migrate", "--config", str(config)]) == 0
    asyncio.run(migrate_sqlite_later(store, level=SCHEMA_VERSION))
    capsys.readouterr()
    assert main(["migrate", "--config", str(config)]) == 0
    assert capsys.readouterr().out == (
        f"sqlite:{store}: schema version {SCHEMA_VERSION + 1}, newer than this consentgate's "
        f"{SCHEMA_VERSION} and recorded as still running it; nothing to migrate\n"
    )
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION + 1,)
    conn.close()


def test_migrate_wait_takes_a_duration_and_refuses_what_is_not_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    with pytest.raises(SystemExit) as usage:
        main(["migrate", "--config", str(config), "--wait", "soon"])
    assert usage.value.code == 2
    assert "expected seconds or a duration" in capsys.readouterr().err
    assert main(["migrate", "--config", str(config), "--wait", "90s"]) == 0


def test_store_gates_lists_the_attached_gates_fresh_and_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from consentgate import KeyRing
    from consentgate.core.attached_gates import REFRESH_EVERY, STALE_AFTER
    from consentgate.core.schema_versions import SQLITE_SCHEMA

    config = write_config(tmp_path)
    store_path = tmp_path / "store.sqlite3"
    assert main(["migrate", "--config", str(config)]) == 0
    now = time.time()

    async def attach() -> tuple[str, str]:
        killed_clock = lambda: now - STALE_AFTER * REFRESH_EVERY - 5  # noqa: E731
        async with (
            await ConsentStore.open(store_path, KeyRing.generate()) as running,
            await ConsentStore.open(store_path, KeyRing.generate(), clock=killed_clock) as killed,
        ):
            await running.gates.announce("0.2.0")
            await killed.gates.announce("0.1.9")
            return running.gates.instance, killed.gates.instance

    running, killed = asyncio.run(attach())
    capsys.readouterr()
    assert main(["store", "gates", "--config", str(config)]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split("\t") == [
        "INSTANCE", "HOST", "PID", "RELEASE", "SCHEMA", "STARTED", "SEEN", "STATE"
    ]  # fmt: skip
    rows = {line.split("\t")[0]: line.split("\t") for line in lines}
    assert rows[running][2:5] == [str(os.getpid()), "0.2.0", str(SQLITE_SCHEMA)]
    assert rows[running][7] == "attached"
    assert rows[killed][3] == "0.1.9"
    assert rows[killed][7] == "stale (ignored)"
    assert not (tmp_path / "keys").exists()  # listing needs no keys


def test_a_postgres_url_without_the_driver_says_what_to_install(tmp_path: Path) -> None:
    """The extra is optional: without asyncpg the gate says which package to install."""
    config = write_config(tmp_path)
    blocker = tmp_path / "no_asyncpg"
    blocker.mkdir()
    (blocker / "asyncpg.py").write_text("raise ImportError('blocked', name='asyncpg')\n")
    env = {
        **os.environ,
        "PYTHONPATH": f"{blocker}{os.pathsep}{REPO}",
        "CONSENTGATE_STORE_URL": "postgresql://gate:hunter2@127.0.0.1:9/cg",
    }
    done = subprocess.run(
        [sys.executable, "-m", "consentgate", "migrate", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 1
    assert "pip install 'consentgate[postgres]'" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


def test_adopt_cookie_secret_makes_this_gates_secret_the_stores(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    from consentgate.core.signed.keyring import secret_fingerprint
    from consentgate.signing.key_directory import load_cookie_secret

    mine = secret_fingerprint(load_cookie_secret(setup.keys, create=False))

    async def claim(value: str) -> str:
        keyring = load_keyring(setup.keys, create=False)
        async with await ConsentStore.open(setup.store, keyring) as store:
            return await store.claim_cookie_fingerprint(value)

    assert asyncio.run(claim("0123456789abcdef")) == "0123456789abcdef"  # another secret first
    assert main(setup.args("keys", "adopt-cookie-secret")) == 0
    assert capsys.readouterr().out == (
        f"the store now expects the cookie secret with fingerprint {mine} (was "
        "0123456789abcdef); a gate started with another secret is not ready "
        "(restart gates after the change)\n"
    )
    assert asyncio.run(claim("ffffffffffffffff")) == mine
    assert main(setup.args("keys", "adopt-cookie-secret")) == 0
    assert capsys.readouterr().out == (
        f"the store already uses this cookie secret (fingerprint {mine})\n"
    )


# --- the audit trail ---------------------------------------------------------------------


def test_revocations_are_listed_by_audit_list_with_who_revoked(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(setup.args("consents", "revoke", "--client", "client-1")) == 0
    assert main(setup.args("consents", "revoke", "--subject", "alice")) == 0
    capsys.readouterr()
    assert main(setup.args("audit", "list", "--json")) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(x["seq"], x["event"], x["actor"]) for x in lines] == [
        (1, "revoked", "cli"),
        (2, "revoked", "cli"),
    ]
    assert lines[0]["client_id"] == "client-1" and lines[0]["detail"]["count"] == 2
    assert lines[1]["subject"] == "alice" and lines[1]["detail"]["count"] == 1
    assert {"time", "event", "client_id", "redirect_uri"} <= set(lines[0])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines[0]["time"])
    assert main(setup.args("audit", "list", "--client", "client-1")) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("SEQ\tTIME\tEVENT")
    assert len(table) == 2 and "\trevoked\tcli\tclient-1\t" in table[1]
    assert main(setup.args("audit", "list", "--event", "denied", "--since", "1d")) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1  # the header only


def test_keys_add_and_activate_are_both_in_the_audit_trail(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    first = load_keyring(setup.keys).active_kid
    assert main(setup.args("keys", "add")) == 0
    added = next(kid for kid in load_keyring(setup.keys).kids if kid != first)
    assert "recorded in the audit trail" in capsys.readouterr().out
    assert main(setup.args("keys", "activate", added)) == 0
    capsys.readouterr()
    assert main(setup.args("audit", "list", "--json")) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(x["event"], x["actor"], x["detail"]) for x in lines] == [
        ("key_added", "cli", {"key": added, "active_key": first}),
        ("key_rotated", "cli", {"active_key": added, "previous_key": first}),
    ]
    assert main(setup.args("audit", "list", "--event", "key_added")) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_audit_list_refuses_an_unknown_event_or_a_bad_since(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(setup.args("audit", "list", "--event", "approve")) == 2
    assert "--event: expected one of approved, denied" in capsys.readouterr().err
    assert main(setup.args("audit", "list", "--since", "last week")) == 2
    assert '--since: expected a duration like "7d"' in capsys.readouterr().err


def test_audit_verify_names_the_first_broken_row_and_exits_1(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    for client in ("client-1", "client-2"):
        assert main(setup.args("consents", "revoke", "--client", client)) == 0
    assert main(setup.args("keys", "rotate")) == 0
    capsys.readouterr()
    assert main(setup.args("audit", "verify")) == 0
    assert capsys.readouterr().out == (
        "audit trail: 3 row(s) verify, an unbroken chain from row 1 to row 3\n"
    )
    with sqlite3.connect(setup.store) as conn:
        conn.execute("DELETE FROM audit WHERE seq = 2")
    conn.close()
    result = run_cli(*setup.args("audit", "verify"))
    assert result.returncode == 1
    assert result.stdout == (
        "audit trail: broken at row 3: rows 2..2 are missing (deleted after row 1)\n"
    )
    assert "the audit trail failed verification" in result.stderr
    assert main(setup.args("consents", "verify")) == 1  # consents verify runs it too
    assert "failed verification" in capsys.readouterr().err


def test_a_key_rotation_is_recorded_in_the_audit_trail(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    before = load_keyring(setup.keys, create=False).active_kid
    assert main(setup.args("keys", "rotate")) == 0
    out = capsys.readouterr().out
    assert "recorded in the audit trail" in out
    assert main(setup.args("audit", "list", "--json", "--event", "key_rotated")) == 0
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    after = load_keyring(setup.keys, create=False).active_kid
    assert line["detail"] == {"active_key": after, "previous_key": before}
    assert line["actor"] == "cli"


def test_both_verify_commands_exit_1_when_the_trail_was_emptied_behind_its_mark(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    for client in ("client-1", "client-2"):
        assert main(setup.args("consents", "revoke", "--client", client)) == 0
    capsys.readouterr()
    assert main(setup.args("audit", "verify")) == 0
    assert capsys.readouterr().out.startswith("audit trail: 2 row(s) verify")
    with sqlite3.connect(setup.store) as conn:  # the rows and the chain's head, deleted
        conn.execute("DELETE FROM audit")
        conn.execute("DELETE FROM settings WHERE name = 'audit.head'")
    conn.close()
    assert main(setup.args("audit", "verify")) == 1
    captured = capsys.readouterr()
    first, second = captured.out.splitlines()
    assert first == "audit trail: empty"
    assert second.startswith(
        "audit trail: behind its mark: the keys directory records that the audit trail "
        "reached row 2"
    )
    assert second.endswith("but the trail is empty: every row and its head were deleted")
    assert f"behind the mark in {setup.keys / 'audit-mark.json'}" in captured.err
    assert main(setup.args("consents", "verify")) == 1
    assert "the audit trail failed verification" in capsys.readouterr().err


def test_consents_verify_names_a_record_put_back_from_before_its_revocation(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    async def approve_a_minute_ago() -> ConsentRecord:
        keyring = load_keyring(setup.keys, create=False)
        store = await ConsentStore.open(setup.store, keyring, clock=lambda: time.time() - 60)
        async with store:
            return await store.record(
                "dave", "client-9", "https://nine.example/cb", {"a"}, ttl=3600
            )

    record = asyncio.run(approve_a_minute_ago())
    assert main(setup.args("consents", "revoke", "--id", record.id)) == 0
    assert main(setup.args("consents", "verify")) == 0
    with sqlite3.connect(setup.store) as conn:  # the row as signed before its revocation
        conn.execute(
            "UPDATE consents SET revoked_at = NULL, key_id = ?, signature = ? WHERE id = ?",
            (record.key_id, record.signature, record.id),
        )
    conn.close()
    capsys.readouterr()
    assert main(setup.args("consents", "verify")) == 1
    captured = capsys.readouterr()
    first = captured.out.splitlines()[0]
    assert first.startswith(
        f"consent {record.id}: unrevoked, but a signed audit row says it was revoked at "
    )
    assert first.endswith("a copy from before the revocation was put back in the database")
    assert "1 of 4 consent record(s) failed verification" in captured.err
