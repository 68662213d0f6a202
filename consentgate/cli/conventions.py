"""The command line's conventions, shared by every command group.

Exit codes: 0 success, 1 runtime failure or a failed check, 2 bad configuration or
bad usage. A failure is one line on stderr (``consentgate: error: ...``), never a
traceback. ``--config`` defaults to ``$CONSENTGATE_CONFIG``; times are printed in
UTC as ISO 8601, JSON on one line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

from consentgate.config.loading import load_config
from consentgate.config.model import Config

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]
#: What ``add_subparsers`` returns: each command group adds its parsers to it.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def program_name(argv0: str | None = None) -> str:
    """The name to put in a hint (``next: consentgate serve``) so that it is a command
    that exists here: the single file's own name (``consentgate.pyz``, docs/deploy.md)
    when run as one, else ``consentgate``. ``argv0`` defaults to ``sys.argv[0]``."""
    name = Path(sys.argv[0] if argv0 is None else argv0).name
    return name if name.endswith(".pyz") else "consentgate"


def error(message: str) -> None:
    print(f"consentgate: error: {message}", file=sys.stderr)


def load(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def add_config_argument(parser: argparse.ArgumentParser) -> None:
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


def add_store_keys_argument(parser: argparse.ArgumentParser) -> None:
    """``--store-keys`` of the commands that only verify (list, verify, export)."""
    parser.add_argument(
        "--store-keys",
        action="store_true",
        help="verify with the public keys kept in the store, not the keys directory "
        "(the default when the keys directory is not on this machine)",
    )


def utc(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
