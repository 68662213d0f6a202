"""Setting a gate up: ``init`` (a first configuration and the keys),
``check-config`` (the file, then what ``serve`` will need on this machine) and
``nginx-config`` (the front of the split deployment)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from consentgate.cli.conventions import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    add_config_argument,
    error,
    load,
    program_name,
)
from consentgate.config.loading import ConfigError
from consentgate.core.startup_errors import StartupError


def _cmd_check_config(args: argparse.Namespace) -> int:
    """Two verdicts: the file (exit 2 with every error), then what ``serve`` will need
    on this machine (:mod:`consentgate.cli.preflight`): each problem, then their number
    (exit 1, as ``serve`` would fail); a silent upstream is a warning."""
    from consentgate.cli.preflight import COMPARED_KEYS, preflight

    try:
        config = load(args)
    except ConfigError as exc:
        print(
            f"{args.config}: the configuration has {len(exc.problems)} error(s):", file=sys.stderr
        )
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.config}: the file is valid", flush=True)
    for warning in _ignored_settings(args.config):
        print(f"consentgate: warning: {warning}", file=sys.stderr)
    findings = preflight(config, upstream=not args.offline)
    if args.offline:
        print(
            f"not checked (--offline): whether upstream.url answers, and whether "
            f"{COMPARED_KEYS} are the endpoints the upstream's metadata advertises"
        )
    for finding in findings:
        print(f"consentgate: {finding.level}: {finding.message}", file=sys.stderr)
    problems = sum(finding.level == "error" for finding in findings)
    if problems:
        error(f"this machine: {problems} problem(s) that stop serve (above)")
        return EXIT_FAILURE
    print("this machine: nothing that stops serve")
    return EXIT_OK


def _ignored_settings(path: Path) -> list[str]:
    """The keys the file (already loaded once, so readable TOML) or the environment
    sets that no longer change anything (:data:`consentgate.config.model.IGNORED_KEYS`)."""
    import tomllib

    from consentgate.config.loading import ignored_settings

    return ignored_settings(tomllib.loads(path.read_text(encoding="utf-8")), os.environ)


def _ask(value: str | None, flag: str, question: str) -> str:
    """A required value: the flag's, else asked on a terminal, else a usage error."""
    if value is not None:
        return value
    if sys.stdin.isatty():
        answer = input(f"{question}: ").strip()
        if answer:
            return answer
    raise ConfigError([f"{flag}: required (give {flag} URL)"])


def _cmd_init(args: argparse.Namespace) -> int:
    """A first configuration and the keys, nothing overwritten."""
    from consentgate.cli.firstrun import first_config, write_new
    from consentgate.signing.key_directory import generate_keys

    directory: Path = args.directory
    config_path = directory / "consentgate.toml"
    public_url = _ask(args.public_url, "--public-url", "Public URL of the gate (https://...)")
    upstream = _ask(args.upstream, "--upstream", "URL of the OAuth proxy behind it")
    text, config = first_config(
        directory,
        public_url=public_url,
        upstream=upstream,
        listen=args.listen,
        state_dir=args.state_dir,
    )
    keys_dir = config.keys.dir
    if config_path.exists():
        raise StartupError(f"{config_path} exists; nothing changed")
    if keys_dir.exists() and any(keys_dir.iterdir()):
        raise StartupError(f"the key directory {keys_dir} is not empty; nothing changed")
    directory.mkdir(parents=True, exist_ok=True)
    write_new(config_path, text)
    generate_keys(keys_dir)
    print(f"wrote {config_path} (every key with its default, from config.example.toml)")
    print(f"created the signing key and the cookie secret in {keys_dir} (0700, files 0600)")
    print(f"the consent store will be {config.store.path}, created at the first start")
    print(f"\nnext: {program_name()} serve --config {config_path}")
    return EXIT_OK


def _cmd_nginx_config(args: argparse.Namespace) -> int:
    """Print the nginx front of the split deployment."""
    from consentgate.cli.nginxconf import nginx_config

    config = load(args)
    if config.server.listen.port == 0:
        raise ConfigError(
            [f"server.listen: {str(config.server.listen)!r} has no fixed port for nginx to use"]
        )
    print(nginx_config(config, listen=args.listen, server_name=args.server_name), end="")
    if not config.upstream.direct_paths:
        print(
            "consentgate: note: [upstream] direct_paths is empty: every request goes "
            'through the gate (set it, e.g. ["/mcp"], for the data plane to go direct)',
            file=sys.stderr,
        )
    if not config.server.trusted_proxies:
        print(
            "consentgate: note: [server] trusted_proxies is empty: the gate will not "
            "believe this nginx's X-Forwarded-* headers (add its address)",
            file=sys.stderr,
        )
    return EXIT_OK


def add_init(commands: Commands) -> None:
    first = commands.add_parser(
        "init", help="write a first configuration and create the keys (nothing overwritten)"
    )
    first.add_argument(
        "directory",
        nargs="?",
        type=Path,
        default=Path(),
        metavar="DIR",
        help="where consentgate.toml goes (default: here)",
    )
    first.add_argument("--public-url", metavar="URL", help="server.public_url: the gate's origin")
    first.add_argument("--upstream", metavar="URL", help="upstream.url: the OAuth proxy behind it")
    first.add_argument(
        "--listen", metavar="HOST:PORT", help="server.listen (default 127.0.0.1:8080)"
    )
    first.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="put the store and the keys here (the systemd unit: /var/lib/consentgate)",
    )
    first.set_defaults(handler=_cmd_init)


def add_check_config(commands: Commands) -> None:
    check = commands.add_parser("check-config", help="validate a configuration file")
    add_config_argument(check)
    check.add_argument("--offline", action="store_true", help="do not try to reach the upstream")
    check.set_defaults(handler=_cmd_check_config)


def add_nginx_config(commands: Commands) -> None:
    front = commands.add_parser(
        "nginx-config",
        help="print an nginx front that sends [upstream] direct_paths straight upstream",
    )
    add_config_argument(front)
    front.add_argument("--listen", default="80", help="nginx's listen parameters (default 80)")
    front.add_argument("--server-name", default="_", help="nginx's server_name (default _)")
    front.set_defaults(handler=_cmd_nginx_config)
