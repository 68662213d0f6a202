"""``check-config`` pre-flights what ``serve`` will need: the store's directory and file
(or its PostgreSQL server and role), the keys directory, the admin token, and (a
warning only) the upstream; the file's verdict and this machine's are separate."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web

from consentgate.cli import main
from consentgate.store.postgres import migrate
from tests.cli.test_store_cli import run_cli
from tests.conftest import StartUpstream, admin_token_file
from tests.support.gateproc import free_port, write_config
from tests.support.pgcluster import GATE_ROLE, PostgresCluster, postgres_cluster

__all__ = ["postgres_cluster"]


def check(config: Path, *extra: str) -> int:
    return main(["check-config", "--config", str(config), *extra])


def test_a_ready_machine_passes_and_offline_says_what_it_did_not_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(write_config(tmp_path, "http://127.0.0.1:9", 8080), "--offline") == 0
    out, err = capsys.readouterr()
    assert (out.splitlines()[0], err) == (f"{tmp_path / 'gate.toml'}: the file is valid", "")
    assert out.splitlines()[-1] == "this machine: nothing that stops serve"
    # What it could not look at, it says it did not.
    assert "not checked (--offline)" in out and "upstream.authorize_path" in out


async def test_an_upstream_that_answers_anything_is_fine_and_a_silent_one_is_a_warning(
    tmp_path: Path, start_upstream: StartUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    answering = await start_upstream(web.Application())  # 404 for "/": it answers
    # In a thread: the check blocks, and the upstream runs on this event loop.
    assert await asyncio.to_thread(check, write_config(tmp_path, answering, 8080)) == 0
    # No metadata (404) to compare the paths with: said, as a warning.
    [warning] = capsys.readouterr().err.splitlines()
    assert warning.startswith(
        "consentgate: warning: upstream.authorize_path, upstream.register_path: not compared"
    )
    assert "no RFC 8414 metadata (HTTP 404)" in warning
    silent = f"http://127.0.0.1:{free_port()}"
    assert check(write_config(tmp_path, silent, 8080)) == 0  # a warning, not an error
    err = capsys.readouterr().err
    assert err.startswith(f"consentgate: warning: upstream.url: {silent} does not answer")
    assert "ConnectionRefusedError" in err


def test_a_missing_store_directory_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path, "http://127.0.0.1:9", 8080, {"store": {"path": str(tmp_path / "no" / "s.db")}}
    )
    assert check(config, "--offline") == 1
    assert capsys.readouterr().err == (
        f"consentgate: error: store.path: the directory {tmp_path / 'no'} does not exist\n"
        "consentgate: error: this machine: 1 problem(s) that stop serve (above)\n"
    )


def test_a_store_file_others_can_read_is_an_error_naming_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store.sqlite3"
    store.write_bytes(b"")
    store.chmod(0o644)
    assert check(write_config(tmp_path, "http://127.0.0.1:9", 8080), "--offline") == 1
    assert f"mode 0644); run: chmod 600 {store}" in capsys.readouterr().err


def test_a_keys_directory_serve_would_refuse_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", 8080)
    assert main(["keys", "generate", "--config", str(config)]) == 0
    capsys.readouterr()
    (tmp_path / "keys").chmod(0o755)
    assert check(config, "--offline") == 1
    assert f"run: chmod 700 {tmp_path / 'keys'}" in capsys.readouterr().err
    (tmp_path / "keys").chmod(0o700)
    assert check(config, "--offline") == 0


def test_a_keys_directory_that_cannot_be_created_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = write_config(
        tmp_path, "http://127.0.0.1:9", 8080, {"keys": {"dir": str(blocker / "keys")}}
    )
    assert check(config, "--offline") == 1
    assert "keys.dir:" in capsys.readouterr().err


def test_an_admin_token_file_serve_would_refuse_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = admin_token_file(tmp_path, mode=0o640)
    admin = {"listen": f"127.0.0.1:{free_port()}", "token_file": str(token)}
    config = write_config(tmp_path, "http://127.0.0.1:9", 8080, {"admin": admin})
    assert check(config, "--offline") == 1
    assert capsys.readouterr().err == (
        f"consentgate: error: the admin token file (admin.token_file) {token} is accessible "
        f"by group or others (mode 0640); run: chmod 600 {token}\n"
        "consentgate: error: this machine: 1 problem(s) that stop serve (above)\n"
    )
    token.chmod(0o600)
    assert check(config, "--offline") == 0


def test_a_template_or_logo_serve_would_refuse_is_an_error_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    theme = tmp_path / "theme"
    theme.mkdir()
    (theme / "error.html").write_text("<p>{{ title|safe }}</p>")
    ui = {"templates_dir": str(theme)}
    config = write_config(tmp_path, "http://127.0.0.1:9", 8080, {"ui": ui})
    assert check(config, "--offline") == 1
    err = capsys.readouterr().err
    assert err.startswith("consentgate: error: ui.templates_dir: the template ")
    assert "error.html" in err and "safe filter is not allowed" in err
    (theme / "error.html").write_text("<p>{{ title }}</p>")
    logo = theme / "logo.gif"
    logo.write_bytes(b"GIF89a")
    write_config(tmp_path, "http://127.0.0.1:9", 8080, {"ui": {**ui, "logo_file": str(logo)}})
    assert check(config, "--offline") == 1
    assert "ui.logo_file" in capsys.readouterr().err
    logo.rename(theme / "logo.png")
    ui["logo_file"] = str(theme / "logo.png")
    write_config(tmp_path, "http://127.0.0.1:9", 8080, {"ui": ui})
    assert check(config, "--offline") == 0


def metadata_upstream(document: dict[str, object]) -> web.Application:
    async def metadata(request: web.Request) -> web.Response:
        return web.json_response(document)

    app = web.Application()
    app.router.add_get("/.well-known/oauth-authorization-server", metadata)
    return app


async def test_an_upstream_advertising_another_authorization_path_is_an_error_naming_both(
    tmp_path: Path, start_upstream: StartUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo in authorize_path makes the gate a pass-through; the upstream says where
    its authorization endpoint is (RFC 8414), as the public URL plus the path."""
    public = "http://127.0.0.1:8080"  # write_config's public_url for port 8080
    upstream = await start_upstream(
        metadata_upstream(
            {
                "issuer": public,
                "authorization_endpoint": f"{public}/authorize",
                "registration_endpoint": f"{public}/register",
            }
        )
    )
    config = write_config(tmp_path, upstream, 8080, {"upstream": {"authorize_path": "/authorise"}})
    assert await asyncio.to_thread(check, config) == 1
    [error, summary] = capsys.readouterr().err.splitlines()
    assert summary == "consentgate: error: this machine: 1 problem(s) that stop serve (above)"
    assert error.startswith("consentgate: error: upstream.authorize_path: '/authorise'")
    assert f"authorization_endpoint '{public}/authorize'" in error
    # The same upstream and the right path: nothing to say.
    right = write_config(tmp_path, upstream, 8080)
    assert await asyncio.to_thread(check, right) == 0
    assert capsys.readouterr().err == ""


def test_the_file_and_this_machine_get_separate_verdicts_and_each_problem_is_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A valid file on a machine where serve would fail is not "valid" and nothing
    more: the file's verdict, then every problem of this machine, then their number."""
    admin = {"listen": f"127.0.0.1:{free_port()}", "token_file": str(tmp_path / "no.token")}
    store = {"path": str(tmp_path / "no" / "s.db")}
    config = write_config(tmp_path, "http://127.0.0.1:9", 8080, {"store": store, "admin": admin})
    assert check(config, "--offline") == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"{config}: the file is valid"
    lines = err.splitlines()
    assert len(lines) == 3, err
    assert lines[0].startswith("consentgate: error: store.path: the directory")
    assert lines[1].startswith("consentgate: error: cannot read the admin token file")
    assert lines[2] == ("consentgate: error: this machine: 2 problem(s) that stop serve (above)")


def test_a_postgres_store_nobody_answers_is_a_problem_of_this_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """serve would fail at once: check-config says so, naming the key and the server
    (a closed loopback port: nothing listens there)."""
    port = free_port()
    url = f"postgresql://gate:hunter2@127.0.0.1:{port}/cg"
    config = write_config(tmp_path, "http://127.0.0.1:9", 8080, {"store": {"url": url}})
    assert check(config, "--offline") == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"{config}: the file is valid"
    first, summary = err.splitlines()
    assert first.startswith(
        f"consentgate: error: store.url: cannot reach PostgreSQL at 127.0.0.1:{port}/cg"
    )
    assert summary == "consentgate: error: this machine: 1 problem(s) that stop serve (above)"
    assert "hunter2" not in out + err


@pytest.mark.slow  # PostgreSQL
def test_a_postgres_store_is_checked_for_what_the_role_may_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], postgres_cluster: PostgresCluster
) -> None:
    """What serve does at start, asked of the server: a new store needs a role that may
    create the schema; a current one, every privilege docs/store.md lists."""

    def check_as_gate(database: str) -> tuple[int, str, str]:
        url = postgres_cluster.dsn(database, user=GATE_ROLE)
        config = write_config(tmp_path, "http://127.0.0.1:9", 8080, {"store": {"url": url}})
        status = check(config, "--offline")
        out, err = capsys.readouterr()
        return status, out, err

    where = f"127.0.0.1:{postgres_cluster.port}"
    owned = postgres_cluster.create_database(owner=GATE_ROLE)
    status, out, err = check_as_gate(owned)
    assert (status, err) == (0, ""), err
    assert out.splitlines()[-1] == "this machine: nothing that stops serve"

    # A database the role does not own, and no schema yet: serve could not create it.
    other = postgres_cluster.create_database()
    status, _, err = check_as_gate(other)
    assert status == 1
    assert err.splitlines()[0] == (
        f"consentgate: error: store.url: the role {GATE_ROLE!r} may not create the schema "
        f"'consentgate' in {where}/{other}, which serve does at its first start: make it "
        "the database's owner, or run consentgate migrate as the owner first "
        "(docs/store.md, The least privileges)"
    )

    # Migrated by its owner; the role may read but not write.
    asyncio.run(migrate(postgres_cluster.dsn(other)))
    for grant in (
        f"GRANT USAGE ON SCHEMA consentgate TO {GATE_ROLE}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA consentgate TO {GATE_ROLE}",
    ):
        postgres_cluster.psql(grant, other)
    status, _, err = check_as_gate(other)
    assert status == 1
    first = err.splitlines()[0]
    assert first.startswith(
        f"consentgate: error: store.url: the role {GATE_ROLE!r} lacks privileges the gate "
        f"needs in {where}/{other}: INSERT, UPDATE, DELETE on consentgate.audit"
    ), first
    assert "consentgate.schema_version" not in first  # read only: SELECT is enough
    postgres_cluster.psql(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA consentgate TO {GATE_ROLE}",
        other,
    )
    assert check_as_gate(other)[0] == 0


def test_an_unwritable_store_directory_is_a_problem_of_this_machine_not_a_valid_config(
    tmp_path: Path,
) -> None:
    """As a user who cannot write there (root without its capabilities: file modes
    apply), the exit code and the last line say serve would fail."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    store = {"path": str(locked / "store.sqlite3")}
    config = write_config(tmp_path, "http://127.0.0.1:9", 8080, {"store": store})
    result = run_cli("check-config", "--offline", "--config", str(config), unprivileged=True)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[0] == f"{config}: the file is valid"
    assert result.stderr.splitlines() == [
        f"consentgate: error: store.path: the gate cannot write in {locked} (SQLite creates "
        "store.sqlite3-wal and store.sqlite3-shm beside the file)",
        "consentgate: error: this machine: 1 problem(s) that stop serve (above)",
    ]


@pytest.mark.slow  # a PostgreSQL cluster
def test_a_newer_postgres_store_passes_only_when_it_records_that_it_runs_this_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], postgres_cluster: PostgresCluster
) -> None:
    """As serve decides at start: a newer schema that keeps this code working is fine (a
    rollback across an additive migration), one that does not is an error."""
    from consentgate.store.postgres.postgres_schema import SCHEMA_VERSION
    from tests.support.later_release import migrate_postgres_later

    database = postgres_cluster.create_database(owner=GATE_ROLE)
    url = postgres_cluster.dsn(database, user=GATE_ROLE)
    config = write_config(tmp_path, "http://127.0.0.1:9", 8080, {"store": {"url": url}})
    asyncio.run(migrate_postgres_later(url, level=SCHEMA_VERSION))
    assert check(config, "--offline") == 0, capsys.readouterr().err
    capsys.readouterr()
    asyncio.run(migrate_postgres_later(url, level=SCHEMA_VERSION + 2, extra=2))
    assert check(config, "--offline") == 1
    assert f"has schema version {SCHEMA_VERSION + 2}, newer than the" in capsys.readouterr().err


async def test_check_config_reads_the_identity_providers_metadata_and_names_a_wrong_issuer(
    tmp_path: Path, start_upstream: StartUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    """OpenID Connect Discovery §4.3: the metadata's issuer must be the configured one."""
    from tests.support.testidp import TestIdp, identity_section

    idp = TestIdp()
    idp.url = await start_upstream(idp.app())
    answering = await start_upstream(web.Application())
    good = write_config(tmp_path, answering, 8080, {"identity": identity_section(idp)})
    assert await asyncio.to_thread(check, good) == 0
    assert "identity" not in capsys.readouterr().err
    wrong = identity_section(idp, issuer=idp.url + "/")  # the document says idp.url
    config = write_config(tmp_path, answering, 8080, {"identity": wrong})
    assert await asyncio.to_thread(check, config) == 1
    error = capsys.readouterr().err.splitlines()[0]
    assert error.startswith("consentgate: error: identity.issuer:") and "identical" in error
    idp.down = True
    assert await asyncio.to_thread(check, good) == 0
    assert "identity.issuer:" in capsys.readouterr().err  # a warning: serve starts anyway


async def test_check_config_reaches_a_provider_behind_a_private_ca_with_identity_ca_file(
    tmp_path: Path, start_upstream: StartUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.documenthost import issue, make_authority
    from tests.support.testidp import TestIdp, identity_section

    authority = make_authority(tmp_path, "private-idp-ca")
    idp = TestIdp()
    idp.url = await start_upstream(idp.app(), ssl=issue(authority, tmp_path))
    answering = await start_upstream(web.Application())
    trusted = identity_section(idp, ca_file=str(authority.cert_file))
    config = write_config(tmp_path, answering, 8080, {"identity": trusted})
    assert await asyncio.to_thread(check, config) == 0
    assert "identity" not in capsys.readouterr().err
    untrusted = write_config(tmp_path, answering, 8080, {"identity": identity_section(idp)})
    assert await asyncio.to_thread(check, untrusted) == 0
    assert "identity.issuer:" in capsys.readouterr().err  # not trusted: the warning
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    broken = identity_section(idp, ca_file=str(garbage))
    config = write_config(tmp_path, answering, 8080, {"identity": broken})
    assert await asyncio.to_thread(check, config) == 1
    assert "identity.ca_file: cannot load CA certificates" in capsys.readouterr().err


def test_check_config_refuses_an_issuer_without_the_gates_client_id(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, "http://127.0.0.1:9", 8080, {"identity": {"issuer": "https://idp.example"}}
    )
    assert check(config, "--offline") == 1
