"""The store's schema, its birth and its copies: ``migrate`` (ahead of a deploy;
``serve`` does it at start), ``store init`` (the explicit way to start over),
``store backup`` and ``store restore`` (SQLite; :mod:`consentgate.store.backups`),
``store gates`` (who is attached: :mod:`consentgate.core.attached_gates`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from consentgate.cli.conventions import (
    EXIT_FAILURE,
    EXIT_OK,
    Commands,
    add_config_argument,
    error,
    load,
    program_name,
    utc,
)

if TYPE_CHECKING:
    from consentgate.core.attached_gates import AttachedGate


def _wait_duration(text: str) -> float:
    from consentgate.config.parsers import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the store's schema up to date ahead of a deploy (``serve`` does it at start);
    refused while gates the new schema would break are attached, or (``--wait``)
    once they left."""
    from consentgate.core.attached_gates import GatesAttached
    from consentgate.core.schema_versions import POSTGRES_SCHEMA, SQLITE_SCHEMA
    from consentgate.store.opening import describe, migrate_store

    config = load(args)
    where = describe(config.store)
    told: int | None = None

    def waiting(refusal: GatesAttached) -> None:
        nonlocal told
        count = len(refusal.gates)
        if count != told:  # once, and again when the count changes
            told = count
            now = int(time.time())
            print(
                f"{program_name()}: waiting up to {args.wait:g} s for {count} gate(s) of an "
                f"older consentgate to leave {where}: "
                + "; ".join(gate.describe(now) for gate in refusal.gates),
                file=sys.stderr,
            )

    before, after = asyncio.run(
        migrate_store(config.store, config.keys.dir, wait=args.wait or 0.0, waiting=waiting)
    )
    own = POSTGRES_SCHEMA if config.store.url else SQLITE_SCHEMA
    if after > own:
        print(
            f"{where}: schema version {after}, newer than this consentgate's {own} and "
            "recorded as still running it; nothing to migrate"
        )
    elif before == after:
        print(f"{where}: schema version {after}, up to date")
    else:
        print(f"{where}: migrated from schema version {before} to {after}")
    return EXIT_OK


def _cmd_store_gates(args: argparse.Namespace) -> int:
    """The gates attached to the store, fresh and stale: who a migration waits for."""
    from consentgate.core.signed.keyring import KeyRing
    from consentgate.store.opening import open_store

    config = load(args)

    async def attached() -> tuple[list[AttachedGate], int]:
        # No keys: the rows are not signed records, and this may run on any machine.
        async with await open_store(config.store, KeyRing.verifying(()), create=False) as store:
            return await store.gates.attached(), int(store.clock())

    gates, now = asyncio.run(attached())
    print("\t".join(("INSTANCE", "HOST", "PID", "RELEASE", "SCHEMA", "STARTED", "SEEN", "STATE")))
    for gate in gates:
        fields = (
            gate.instance,
            gate.host,
            str(gate.pid),
            gate.software,
            str(gate.schema_version),
            utc(gate.started_at),
            f"{gate.age(now)} s ago",
            "attached" if gate.fresh(now) else "stale (ignored)",
        )
        print("\t".join(fields))
    return EXIT_OK


def _cmd_store_init(args: argparse.Namespace) -> int:
    """Create an empty store where one is missing, even where one existed:
    the explicit way to start over, since ``serve`` refuses to."""
    from consentgate.store.opening import create_store

    config = load(args)
    print(asyncio.run(create_store(config.store, config.keys.dir, must_be_new=True)))
    return EXIT_OK


def _cmd_store_backup(args: argparse.Namespace) -> int:
    """A consistent copy of the SQLite store, taken while the gate runs."""
    from consentgate.store.backups import backup_store
    from consentgate.store.opening import describe

    config = load(args)
    copy = asyncio.run(backup_store(config.store, args.out))
    print(f"{describe(config.store)}: backed up to {args.out}: {copy.describe()}")
    return EXIT_OK


def _cmd_store_restore(args: argparse.Namespace) -> int:
    """Put a backup back as the SQLite store, checked, with the gate stopped."""
    from consentgate.core.signed.keyring import secret_fingerprint
    from consentgate.signing.key_directory import load_cookie_secret, load_keyring
    from consentgate.store.backups import POSTGRES_BACKUP, restore_store

    config = load(args)
    if config.store.url:
        error(POSTGRES_BACKUP)
        return EXIT_FAILURE
    keyring = load_keyring(config.keys.dir, create=False)
    secret = load_cookie_secret(config.keys.dir, config.keys.cookie_secret, create=False)
    report = asyncio.run(
        restore_store(
            config.store,
            config.keys.dir,
            keyring,
            args.source,
            cookie_fingerprint=secret_fingerprint(secret),
        )
    )
    for line in report.lines():
        print(line)
    return EXIT_OK


def add_migrate(commands: Commands) -> None:
    migrate = commands.add_parser(
        "migrate",
        help="create the store or bring its schema up to date (serve does it at start)",
    )
    add_config_argument(migrate)
    migrate.add_argument(
        "--wait",
        type=_wait_duration,
        metavar="DURATION",
        help="when gates of an older consentgate that the new schema would break are "
        "still attached, wait up to DURATION (90s, 10m) for them to stop, then migrate "
        "(default: refuse at once, naming them)",
    )
    migrate.set_defaults(handler=_cmd_migrate)


def add_store(commands: Commands) -> None:
    store = commands.add_parser("store", help="the consent store itself")
    store_commands = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    init = store_commands.add_parser(
        "init",
        help="create an empty store where it is missing (starting over: no approvals)",
    )
    add_config_argument(init)
    init.set_defaults(handler=_cmd_store_init)
    backup = store_commands.add_parser(
        "backup",
        help="write a consistent copy of the SQLite store while the gate runs "
        "(PostgreSQL: pg_dump, see docs/store.md)",
    )
    add_config_argument(backup)
    backup.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE",
        help="the copy to write (0600; a file there is replaced once the copy is complete)",
    )
    backup.set_defaults(handler=_cmd_store_backup)
    gates = store_commands.add_parser(
        "gates",
        help="list the gates attached to the store (a migration that would break one "
        "refuses, or waits with --wait): host, pid, release, schema, last seen",
    )
    add_config_argument(gates)
    gates.set_defaults(handler=_cmd_store_gates)
    restore = store_commands.add_parser(
        "restore",
        help="put a backup back as the SQLite store: checked against the keys "
        "directory; refused while a gate has the store open",
    )
    add_config_argument(restore)
    restore.add_argument(
        "--from",
        dest="source",
        type=Path,
        required=True,
        metavar="FILE",
        help="a file written by store backup with this keys directory",
    )
    restore.set_defaults(handler=_cmd_store_restore)
