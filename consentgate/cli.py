"""The command line: the only module that prints and chooses exit codes.

Every failure a person can cause (a bad config, an unreadable file, a port in use,
an unusable key directory) becomes one clear line on stderr and a non-zero exit
code, never a traceback. Exit codes: 0 success, 1 runtime failure or a failed
check, 2 bad configuration or bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from consentgate import __version__
from consentgate.config import Config, ConfigError, load_config
from consentgate.errors import StartupError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


def _error(message: str) -> None:
    print(f"consentgate: error: {message}", file=sys.stderr)


def _load(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def _add_config_argument(parser: argparse.ArgumentParser) -> None:
    default = os.environ.get("CONSENTGATE_CONFIG")
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        default=Path(default) if default else None,
        required=default is None,
        metavar="FILE",
        help="TOML configuration file (default: $CONSENTGATE_CONFIG)",
    )


def _cmd_check_config(args: argparse.Namespace) -> int:
    try:
        _load(args)
    except ConfigError as exc:
        print(
            f"{args.config}: the configuration has {len(exc.problems)} error(s):", file=sys.stderr
        )
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_USAGE
    print("configuration is valid")
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from consentgate.server import serve  # imports aiohttp; keep --version and check-config light

    config = _load(args)
    asyncio.run(serve(config))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; exposed so tests and docs can inspect it."""
    parser = argparse.ArgumentParser(
        prog="consentgate",
        description="A consent gate in front of a single-client OAuth proxy.",
    )
    parser.add_argument("--version", action="version", version=f"consentgate {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run the gate")
    _add_config_argument(serve)
    serve.set_defaults(handler=_cmd_serve)

    check = commands.add_parser("check-config", help="validate a configuration file")
    _add_config_argument(check)
    check.set_defaults(handler=_cmd_check_config)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``consentgate`` script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        if len(exc.problems) == 1:
            _error(exc.problems[0])
        else:
            _error(f"the configuration has {len(exc.problems)} errors:")
            for problem in exc.problems:
                print(f"  - {problem}", file=sys.stderr)
        return EXIT_USAGE
    except StartupError as exc:
        _error(str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
