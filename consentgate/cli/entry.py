"""The command line's entry point: the parser of every command, and the dispatch.

This package is the only place that prints and chooses exit codes. Every failure a
person can cause (a bad config, an unreadable file, a port in use, an unusable key
directory) becomes one clear line on stderr and a non-zero exit code, never a
traceback (exit codes: :mod:`consentgate.cli.conventions`). Each command group is a
module that adds its parsers; the order of the calls below is the order of the help.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence
from typing import Any

from consentgate import __version__
from consentgate.cli import (
    audit_commands,
    consent_commands,
    key_commands,
    pages_commands,
    serve_commands,
    setup_commands,
    store_commands,
)
from consentgate.cli.conventions import EXIT_FAILURE, EXIT_USAGE, Handler, error, program_name
from consentgate.config.loading import ConfigError
from consentgate.core.schema_versions import POSTGRES_SCHEMA, SQLITE_SCHEMA
from consentgate.core.startup_errors import StartupError


def release_facts() -> str:
    """``consentgate --version``: what an operator pastes into a bug report, and the
    store schema versions this release runs (which stores it opens). The
    versions are read from the installed distributions' metadata, so nothing heavy is
    imported; ``asyncpg`` only when installed (the ``[postgres]`` extra)."""
    from importlib.metadata import PackageNotFoundError, version

    parts = [f"Python {platform.python_version()}"]
    for name in ("aiohttp", "httptools", "aiosqlite", "cryptography", "asyncpg"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            if name != "asyncpg":
                parts.append(f"{name} (not installed)")
    schema = (
        f"store schema: SQLite {SQLITE_SCHEMA}, PostgreSQL {POSTGRES_SCHEMA} "
        "(an older store is migrated forward; a newer one is opened only when it records "
        "that it still runs these)"
    )
    return f"consentgate {__version__} ({', '.join(parts)})\n{schema}"


class _PrintVersion(argparse.Action):
    """``--version`` as written (argparse's own action wraps it at the terminal width)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(release_facts())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; exposed so tests and docs can inspect it."""
    parser = argparse.ArgumentParser(
        prog=program_name(),
        description="A consent gate in front of a single-client OAuth proxy.",
    )
    parser.add_argument(
        "--version", action=_PrintVersion, nargs=0, help="print the versions and exit"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve_commands.add_serve(commands)
    setup_commands.add_init(commands)
    setup_commands.add_check_config(commands)
    setup_commands.add_nginx_config(commands)
    store_commands.add_migrate(commands)
    serve_commands.add_demo(commands)
    store_commands.add_store(commands)
    key_commands.add_keys(commands)
    consent_commands.add_consents(commands)
    audit_commands.add_audit(commands)
    pages_commands.add_pages(commands)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``consentgate`` script."""
    try:
        return _run(argv)
    except BrokenPipeError:
        # The reader left (``consentgate --version | head -1``): not an error of ours,
        # and no traceback; stdout goes nowhere so the exit's flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        if len(exc.problems) == 1:
            error(exc.problems[0])
        else:
            error(f"the configuration has {len(exc.problems)} errors:")
            for problem in exc.problems:
                print(f"  - {problem}", file=sys.stderr)
        return EXIT_USAGE
    except StartupError as exc:
        error(str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
