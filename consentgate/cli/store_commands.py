"""The store's schema and its birth: ``migrate`` (ahead of a deploy; ``serve`` does
it at start) and ``store init`` (the explicit way to start over)."""

from __future__ import annotations

import argparse
import asyncio

from consentgate.cli.conventions import EXIT_OK, Commands, add_config_argument, load


def _cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the store's schema up to date ahead of a deploy (``serve`` does it at start)."""
    from consentgate.store.opening import describe, migrate_store

    config = load(args)
    before, after = asyncio.run(migrate_store(config.store, config.keys.dir))
    where = describe(config.store)
    if before == after:
        print(f"{where}: schema version {after}, up to date")
    else:
        print(f"{where}: migrated from schema version {before} to {after}")
    return EXIT_OK


def _cmd_store_init(args: argparse.Namespace) -> int:
    """Create an empty store where one is missing, even where one existed:
    the explicit way to start over, since ``serve`` refuses to."""
    from consentgate.store.opening import create_store

    config = load(args)
    print(asyncio.run(create_store(config.store, config.keys.dir, must_be_new=True)))
    return EXIT_OK


def add_migrate(commands: Commands) -> None:
    migrate = commands.add_parser(
        "migrate",
        help="create the store or bring its schema up to date (serve does it at start)",
    )
    add_config_argument(migrate)
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
