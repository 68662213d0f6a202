"""The command line: the only module that prints and chooses exit codes.

Every failure a person can cause (a bad config, an unreadable file, a port in use,
an unusable key directory) becomes one clear line on stderr and a non-zero exit
code, never a traceback. Exit codes: 0 success, 1 runtime failure or a failed
check, 2 bad configuration or bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import functools
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from consentgate import __version__
from consentgate.core.config import Config, ConfigError, load_config
from consentgate.core.errors import StartupError

if TYPE_CHECKING:
    from consentgate.audit.chain import ChainReport
    from consentgate.store import ConsentStore

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


def _add_store_keys_argument(parser: argparse.ArgumentParser) -> None:
    """``--store-keys`` of the commands that only verify (list, verify, export)."""
    parser.add_argument(
        "--store-keys",
        action="store_true",
        help="verify with the public keys kept in the store, not the keys directory "
        "(the default when the keys directory is not on this machine)",
    )


def _cmd_check_config(args: argparse.Namespace) -> int:
    """The file, then what ``serve`` will need on this machine (:mod:`consentgate.core.
    preflight`): errors exit 1, a silent upstream is a warning."""
    from consentgate.core.preflight import COMPARED_KEYS, preflight

    try:
        config = _load(args)
    except ConfigError as exc:
        print(
            f"{args.config}: the configuration has {len(exc.problems)} error(s):", file=sys.stderr
        )
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_USAGE
    print("configuration is valid")
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
    return EXIT_FAILURE if any(f.level == "error" for f in findings) else EXIT_OK


def _ignored_settings(path: Path) -> list[str]:
    """The keys the file (already loaded once, so readable TOML) or the environment
    sets that no longer change anything (:data:`consentgate.core.config.IGNORED_KEYS`)."""
    import tomllib

    from consentgate.core.config import ignored_settings

    return ignored_settings(tomllib.loads(path.read_text(encoding="utf-8")), os.environ)


def _cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the store's schema up to date ahead of a deploy (``serve`` does it at start)."""
    from consentgate.store.opening import describe, migrate_store

    config = _load(args)
    before, after = asyncio.run(migrate_store(config.store, config.keys.dir))
    where = describe(config.store)
    if before == after:
        print(f"{where}: schema version {after}, up to date")
    else:
        print(f"{where}: migrated from schema version {before} to {after}")
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from consentgate.serving.server import (
        serve,  # imports aiohttp; keep --version and check-config light
    )

    # SIGHUP re-reads the file with this same loader (environment and secret files
    # included); absolute, and a picklable partial, so a spawned worker can use it too.
    source = functools.partial(load_config, Path(args.config).absolute())
    config = source()
    if args.create_store:
        from consentgate.store.opening import create_store

        done = asyncio.run(create_store(config.store, config.keys.dir, must_be_new=False))
        print(done, file=sys.stderr)
    if config.server.workers > 1:
        from consentgate.serving.workers import run_workers

        return run_workers(config, source)
    asyncio.run(serve(config, source=source))
    return EXIT_OK


def _cmd_store_init(args: argparse.Namespace) -> int:
    """Create an empty store where one is missing, even where one existed:
    the explicit way to start over, since ``serve`` refuses to."""
    from consentgate.store.opening import create_store

    config = _load(args)
    print(asyncio.run(create_store(config.store, config.keys.dir, must_be_new=True)))
    return EXIT_OK


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
    from consentgate.core.firstrun import first_config, write_new
    from consentgate.core.keys import generate_keys

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
    print(f"\nnext: consentgate serve --config {config_path}")
    return EXIT_OK


def _cmd_nginx_config(args: argparse.Namespace) -> int:
    """Print the nginx front of the split deployment."""
    from consentgate.core.nginxconf import nginx_config

    config = _load(args)
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


def _cmd_demo(args: argparse.Namespace) -> int:
    from consentgate.demo import DemoStack, demo_main

    def ready(stack: DemoStack) -> None:
        print(
            "\nconsentgate demo is running (everything on 127.0.0.1; data in "
            f"{stack.data_dir})\n\n"
            f"  Open the demo MCP client:  {stack.client_url}/\n"
            f"  The gate:                  {stack.gate_url}  "
            f"(in front of the demo proxy at {stack.proxy_url})\n\n"
            "Press Ctrl-C to stop; the temporary data is removed.\n",
            flush=True,
        )

    try:
        asyncio.run(demo_main(args.port, ready))
    except OSError as exc:
        hint = (
            "; choose another with --port N (0: any free port)"
            if exc.errno == errno.EADDRINUSE
            else ""
        )
        _error(f"cannot start the demo on port {args.port}: {exc.strerror or exc}{hint}")
        return EXIT_FAILURE
    print("demo stopped; temporary data removed", flush=True)
    return EXIT_OK


# --- keys and consents: the store's administration commands ------------------------
# Conventions: Hydra's admin API (list and revoke by subject, by client or one by one).
# The store and key modules are imported inside the handlers, so --version and
# check-config stay light.


def _utc(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _cmd_keys_generate(args: argparse.Namespace) -> int:
    from consentgate.core.keys import COOKIE_SECRET_FILE, generate_keys

    config = _load(args)
    result = generate_keys(config.keys.dir)
    if result.created_key:
        print(f"created the signing key {result.active_kid} in {result.directory}")
    else:
        print(f"{result.directory} already has the active signing key {result.active_kid}")
    if result.created_cookie_secret:
        print(f"created the cookie secret {result.directory / COOKIE_SECRET_FILE}")
    return EXIT_OK


def _cmd_keys_rotate(args: argparse.Namespace) -> int:
    from consentgate.core.keys import rotate_keys

    config = _load(args)
    previous = _active_kid(config.keys.dir)
    kid = rotate_keys(config.keys.dir)
    print(f"new active signing key {kid}; the previous keys keep verifying their records")
    print("a running gate signs with it after a SIGHUP (it re-reads the keys) or a restart")
    _record_rotation(config, previous, kid)
    return EXIT_OK


def _active_kid(directory: Path) -> str:
    from consentgate.core.keys import list_keys

    return next((key.kid for key in list_keys(directory) if key.active), "")


def _record_rotation(config: Config, previous: str, active: str) -> None:
    """Append ``key_rotated`` to the store's audit trail, when there is a store to write."""
    from consentgate.core.keys import load_keyring
    from consentgate.store.errors import StoreUnavailable
    from consentgate.store.opening import open_store

    async def record() -> None:
        keyring = load_keyring(config.keys.dir, create=False)
        async with await open_store(config.store, keyring, create=False) as store:
            store.key_rotated(previous, active)

    try:
        asyncio.run(record())
    except (StartupError, StoreUnavailable) as exc:
        print(
            f"consentgate: note: the rotation is not in the audit trail ({exc})",
            file=sys.stderr,
        )
    else:
        print("recorded in the audit trail (consentgate audit list --event key_rotated)")


def _cmd_keys_list(args: argparse.Namespace) -> int:
    from consentgate.core.keys import list_keys

    config = _load(args)
    keys = list_keys(config.keys.dir)
    if args.json:
        items = [
            {"kid": k.kid, "active": k.active, "created_at": k.created_at, "file": str(k.path)}
            for k in keys
        ]
        print(json.dumps(items, indent=2))
        return EXIT_OK
    print("KID\tSTATUS\tCREATED\tFILE")
    for key in keys:
        status = "active" if key.active else "retired"
        print(f"{key.kid}\t{status}\t{_utc(key.created_at)}\t{key.path}")
    return EXIT_OK


def _cmd_keys_adopt_cookie_secret(args: argparse.Namespace) -> int:
    """After changing the cookie secret on every gate on purpose: make it the store's."""
    from consentgate.core.keys import load_cookie_secret, secret_fingerprint

    config = _load(args)
    mine = secret_fingerprint(load_cookie_secret(config.keys.dir, config.keys.cookie_secret))

    async def action(store: ConsentStore) -> int:
        before = await store.claim_cookie_fingerprint(mine)
        if before == mine:
            print(f"the store already uses this cookie secret (fingerprint {mine})")
            return EXIT_OK
        await store.adopt_cookie_fingerprint(mine)
        print(
            f"the store now expects the cookie secret with fingerprint {mine} (was {before}); "
            "a gate started with another secret is not ready (restart gates after the change)"
        )
        return EXIT_OK

    return _with_store(args, action)


def _with_store(
    args: argparse.Namespace,
    action: Callable[[ConsentStore], Awaitable[int]],
    *,
    verifying: bool = False,
) -> int:
    """Open the configured store (never creating it or its keys), run ``action``, close it.

    A ``verifying`` command (list, verify, export) runs with the public keys the store
    keeps when asked (``--store-keys``) or when the keys directory is not on this
    machine; every other command needs the keys directory.
    """
    from consentgate.core.keys import KeyRing, load_keyring
    from consentgate.store.opening import open_store

    config = _load(args)
    store_keys = verifying and (args.store_keys or not config.keys.dir.exists())
    keyring = KeyRing.verifying(()) if store_keys else load_keyring(config.keys.dir, create=False)

    async def run() -> int:
        async with await open_store(config.store, keyring, create=False) as store:
            if store_keys and not await _use_store_keys(store, config.keys.dir):
                return EXIT_FAILURE
            if not verifying:
                # A command that may append audit rows moves the trail's mark too.
                problem = await store.keep_audit_mark(config.keys.dir)
                if problem is not None:
                    print(f"consentgate: warning: {problem}", file=sys.stderr)
            return await action(store)

    # Tamper events are reported by the commands themselves; without a configured
    # handler Python would print each audit warning a second time.
    logger = logging.getLogger("consentgate")
    quiet = logging.NullHandler()
    if not logging.getLogger().handlers and not logger.handlers:
        logger.addHandler(quiet)
    try:
        return asyncio.run(run())
    except BrokenPipeError:  # ``consentgate consents list | head``: not an error
        # Point stdout at /dev/null so the interpreter's final flush stays quiet
        # (the recipe of the Python signal module documentation).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    finally:
        logger.removeHandler(quiet)


async def _use_store_keys(store: ConsentStore, keys_dir: Path) -> bool:
    """Verify with the store's public keys; False (and a message) when it keeps none."""
    from consentgate.core.keys import KeyRing

    stored = await store.stored_keys()
    if not stored.keys and not stored.unreadable:
        _error(
            f"the store keeps no public keys to verify with, and {keys_dir} is not used; "
            "start a gate on the store once (it records its keys), or run this command "
            "where the keys directory is"
        )
        return False
    store.reload_keys(KeyRing.verifying(stored.keys.values()))
    print(
        f"consentgate: verifying with the public keys kept in the store: "
        f"{', '.join(sorted(stored.keys)) or 'none readable'} "
        "(compare with consentgate keys list on a gate)",
        file=sys.stderr,
    )
    return True


def _warn_failures(count: int) -> None:
    if count:
        print(
            f"consentgate: warning: {count} record(s) failed verification and are not "
            "shown; run: consentgate consents verify",
            file=sys.stderr,
        )


def _cmd_consents_list(args: argparse.Namespace) -> int:
    from consentgate.clients.kinds import Describer
    from consentgate.core.records import consent_listing
    from consentgate.store import VerificationFailure

    async def action(store: ConsentStore) -> int:
        async def is_registered(client_id: str) -> bool:
            return await store.get_client(client_id) is not None

        # A URL client by its URL, any other by whether the store keeps its
        # registration: the admin API's GET /admin/consents says the same.
        described = Describer(is_registered)
        failures: list[VerificationFailure] = []
        now = store.clock()
        records = store.iter_records(
            client_id=args.client_id,
            redirect_uri=args.redirect_uri,
            subject=args.subject,
            failures=failures,
        )
        out = sys.stdout
        if args.json:
            out.write("[")
            first = True
            async for record in records:
                out.write("\n" if first else ",\n")
                description = await described(record.client_id)
                out.write(_json_line({**consent_listing(record, now), **description.fields()}))
                first = False
            out.write("\n]\n")
        else:
            columns = (
                "ID STATUS SUBJECT CLIENT_ID REDIRECT_URI SCOPES RESOURCE GRANTED EXPIRES "
                "CLIENT_KIND CLIENT_DOMAIN"
            )
            out.write(columns.replace(" ", "\t") + "\n")
            async for record in records:
                description = await described(record.client_id)
                fields = (
                    record.id,
                    record.status(now),
                    record.subject,
                    record.client_id,
                    record.redirect_uri,
                    " ".join(sorted(record.scopes)) or "-",
                    record.resource or "-",
                    _utc(record.granted_at),
                    _utc(record.expires_at),
                    description.kind,
                    description.domain or "-",
                )
                out.write("\t".join(fields) + "\n")
        out.flush()
        _warn_failures(len(failures))
        return EXIT_OK

    return _with_store(args, action, verifying=True)


def _cmd_consents_revoke(args: argparse.Namespace) -> int:
    if args.all and not args.yes:
        _error("--all revokes every consent; add --yes to confirm")
        return EXIT_USAGE

    async def action(store: ConsentStore) -> int:
        count = await store.revoke(
            id=args.id,
            client_id=args.client_id,
            redirect_uri=args.redirect_uri,
            subject=args.subject,
            all=args.all,
            by="cli",
        )
        if store.tamper_events:
            print(
                f"consentgate: warning: {store.tamper_events} matching record(s) failed "
                "verification and were left as they are; run: consentgate consents verify",
                file=sys.stderr,
            )
        if args.id is not None and count == 0:
            _error(f"no unrevoked consent with id {args.id!r}")
            return EXIT_FAILURE
        print(f"revoked {count} consent(s)")
        return EXIT_OK

    return _with_store(args, action)


def _cmd_consents_verify(args: argparse.Namespace) -> int:
    async def action(store: ConsentStore) -> int:
        report = await store.verify_all()
        for failure in report.failures:
            print(f"{failure.kind} {failure.id}: {failure.reason}")
        stored = await store.stored_keys()
        for name in stored.unreadable:
            print(f"setting {name}: not the public key its name says (edited)")
        unknown = sorted(set(stored.keys) - set(store.keyring.kids))
        if unknown:
            print(
                f"consentgate: note: the store also keeps key(s) {', '.join(unknown)} that "
                "this keys directory lacks; records signed with them fail here",
                file=sys.stderr,
            )
        restored = await store.restored_revocations()
        for record, revoked in restored:
            print(
                f"consent {record.id}: unrevoked, but a signed audit row says it was revoked "
                f"at {_utc(revoked)} (granted {_utc(record.granted_at)}): a copy from before "
                "the revocation was put back in the database"
            )
        chain = await store.verify_audit()
        _print_chain(chain)
        behind = await _audit_behind_mark(args, store)
        if report.failures or restored or stored.unreadable or not chain.ok or behind is not None:
            failed = [f"{len(report.failures) + len(restored)} of {report.checked} record(s)"]
            if stored.unreadable:
                failed.append(f"{len(stored.unreadable)} stored key(s)")
            if not chain.ok or behind is not None:
                failed.append("the audit trail")
            _error(f"{' and '.join(failed)} failed verification")
            return EXIT_FAILURE
        print(f"all {report.checked} record(s) verify")
        return EXIT_OK

    return _with_store(args, action, verifying=True)


def _print_chain(chain: ChainReport) -> None:
    """One line on the audit chain: intact (which rows), or the first broken row."""
    if chain.ok:
        if chain.checked:
            print(
                f"audit trail: {chain.checked} row(s) verify, an unbroken chain from row "
                f"{chain.first_seq} to row {chain.last_seq}"
            )
        else:
            print("audit trail: empty")
        return
    where = f"row {chain.broken_seq}" if chain.broken_seq is not None else "its end"
    print(f"audit trail: broken at {where}: {chain.problem}")


async def _audit_behind_mark(args: argparse.Namespace, store: ConsentStore) -> Path | None:
    """Compare the trail with the high-water mark of the configured keys directory
    (when it is on this machine); print the problem and return the mark's file when
    the trail is behind it: emptied or cut back in the database, which the chain
    alone cannot show."""
    from consentgate.store.auditmark import MARK_NAME, read_mark

    keys_dir = _load(args).keys.dir
    mark = read_mark(keys_dir)
    if mark is None:
        return None
    problem = mark if isinstance(mark, str) else await store.audit_mark_problem(mark)
    if problem is None:
        return None
    print(f"audit trail: behind its mark: {problem}")
    return keys_dir / MARK_NAME


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    async def action(store: ConsentStore) -> int:
        chain = await store.verify_audit()
        _print_chain(chain)
        mark = await _audit_behind_mark(args, store)
        if mark is not None:
            _error(
                f"the audit trail is behind the mark in {mark}: rows were deleted in the "
                "database; restore the store from a backup (or, to accept the loss, "
                "remove that file and start the gate again)"
            )
            return EXIT_FAILURE
        if not chain.ok:
            _error(
                "the audit trail failed verification: rows were edited or deleted in the "
                "database; compare with a backup and an export"
            )
            return EXIT_FAILURE
        return EXIT_OK

    return _with_store(args, action, verifying=True)


def _since(text: str | None) -> int | None:
    from consentgate.core.auditquery import parse_since

    if text is None:
        return None
    try:
        return parse_since(text, time.time())
    except ValueError as exc:
        raise ValueError(f"--{exc}") from None


def _cmd_audit_list(args: argparse.Namespace) -> int:
    from consentgate.core.auditquery import EVENTS

    try:
        since = _since(args.since)
    except ValueError as exc:
        _error(str(exc))
        return EXIT_USAGE
    if args.event is not None and args.event not in EVENTS:
        _error(f"--event: expected one of {', '.join(EVENTS)}, got {args.event!r}")
        return EXIT_USAGE

    async def action(store: ConsentStore) -> int:
        await store.flush_audit()
        if not args.json:
            print("SEQ\tTIME\tEVENT\tACTOR\tCLIENT_ID\tREDIRECT_URI\tSCOPES\tSUBJECT\tDETAIL")
        async for record in store.iter_audit(
            since=since, event=args.event, client_id=args.client_id
        ):
            if args.json:
                print(_json_line(record.as_json()))
                continue
            detail = " ".join(f"{k}={v}" for k, v in sorted(record.details().items()))
            columns = (
                str(record.seq),
                _utc(record.at),
                record.event,
                record.actor or "-",
                record.client_id or "-",
                record.redirect_uri or "-",
                record.scopes or "-",
                record.subject or "-",
                detail or "-",
            )
            print("\t".join(columns))
        return EXIT_OK

    return _with_store(args, action, verifying=True)


def _cmd_consents_export(args: argparse.Namespace) -> int:
    from consentgate.core.records import CLIENT_ENCODING, CONSENT_ENCODING, client_listing
    from consentgate.store import VerificationFailure

    async def write(store: ConsentStore, out: IO[str]) -> int:
        failures: list[VerificationFailure] = []
        header = {
            "format": "consentgate-export-v1",
            "encodings": {"consent": CONSENT_ENCODING, "client": CLIENT_ENCODING},
            "exported_at": int(store.clock()),
            "jwks": store.keyring.jwks(),
        }
        out.write(_json_line(header) + "\n")
        async for client in store.iter_clients(failures=failures):
            out.write(_json_line({"kind": "client", **client_listing(client)}) + "\n")
        async for record in store.iter_records(failures=failures):
            out.write(_json_line({"kind": "consent", **record.to_json()}) + "\n")
        out.flush()
        if failures:
            for failure in failures:
                print(
                    f"consentgate: warning: not exported: {failure.kind} {failure.id}: "
                    f"{failure.reason}",
                    file=sys.stderr,
                )
            return EXIT_FAILURE
        return EXIT_OK

    async def action(store: ConsentStore) -> int:
        if args.output is None:
            return await write(store, sys.stdout)
        try:
            with args.output.open("w", encoding="utf-8") as out:
                return await write(store, out)
        except OSError as exc:
            _error(f"cannot write {args.output}: {exc.strerror or exc}")
            return EXIT_FAILURE

    return _with_store(args, action, verifying=True)


def _add_store_commands(commands: Any) -> None:
    """The ``keys`` and ``consents`` command groups."""
    keys = commands.add_parser("keys", help="manage the signing keys")
    key_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    generate = key_commands.add_parser(
        "generate", help="create the key directory, a signing key and the cookie secret if absent"
    )
    _add_config_argument(generate)
    generate.set_defaults(handler=_cmd_keys_generate)
    rotate = key_commands.add_parser(
        "rotate", help="make a new active signing key; the old ones keep verifying"
    )
    _add_config_argument(rotate)
    rotate.set_defaults(handler=_cmd_keys_rotate)
    listing = key_commands.add_parser("list", help="list the keys, the active one first")
    _add_config_argument(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_cmd_keys_list)

    adopt = key_commands.add_parser(
        "adopt-cookie-secret",
        help="make this configuration's cookie secret the one every gate of the store must use",
    )
    _add_config_argument(adopt)
    adopt.set_defaults(handler=_cmd_keys_adopt_cookie_secret)

    consents = commands.add_parser("consents", help="list, revoke, verify and export consents")
    consent_commands = consents.add_subparsers(
        dest="consents_command", metavar="ACTION", required=True
    )
    show = consent_commands.add_parser("list", help="list consent records that verify")
    _add_config_argument(show)
    show.add_argument("--client", dest="client_id", metavar="ID", help="only this client_id")
    show.add_argument("--redirect-uri", metavar="URI", help="only this exact redirect_uri")
    show.add_argument("--subject", metavar="S", help="only this subject")
    show.add_argument("--json", action="store_true", help="print a JSON array")
    _add_store_keys_argument(show)
    show.set_defaults(handler=_cmd_consents_list)

    revoke = consent_commands.add_parser("revoke", help="revoke consents")
    _add_config_argument(revoke)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", metavar="X", help="one consent by its id")
    which.add_argument("--client", dest="client_id", metavar="ID", help="every consent of a client")
    which.add_argument("--redirect-uri", metavar="URI", help="every consent for a redirect_uri")
    which.add_argument("--subject", metavar="S", help="every consent of one subject (browser)")
    which.add_argument("--all", action="store_true", help="every consent (needs --yes)")
    revoke.add_argument("--yes", action="store_true", help="confirm --all")
    revoke.set_defaults(handler=_cmd_consents_revoke)

    verify = consent_commands.add_parser(
        "verify", help="check every signature; exit 1 and list each record that fails"
    )
    _add_config_argument(verify)
    _add_store_keys_argument(verify)
    verify.set_defaults(handler=_cmd_consents_verify)

    export = consent_commands.add_parser(
        "export", help="JSON lines: a header with the public keys (JWKS), then every record"
    )
    _add_config_argument(export)
    export.add_argument(
        "--output", "-o", type=Path, metavar="FILE", help="write to FILE instead of stdout"
    )
    _add_store_keys_argument(export)
    export.set_defaults(handler=_cmd_consents_export)

    audit = commands.add_parser("audit", help="list and verify the hash-chained audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    trail = audit_commands.add_parser("list", help="print audit rows, oldest first")
    _add_config_argument(trail)
    trail.add_argument(
        "--since", metavar="WHEN", help='only rows since a duration ago ("7d") or a UTC date'
    )
    trail.add_argument("--client", dest="client_id", metavar="ID", help="only this client_id")
    trail.add_argument("--event", metavar="E", help="only this event (approved, denied, ...)")
    trail.add_argument("--json", action="store_true", help="one JSON object per line")
    _add_store_keys_argument(trail)
    trail.set_defaults(handler=_cmd_audit_list)
    check = audit_commands.add_parser(
        "verify", help="check the chain; exit 1 and name the first broken row"
    )
    _add_config_argument(check)
    _add_store_keys_argument(check)
    check.set_defaults(handler=_cmd_audit_verify)


def release_facts() -> str:
    """``consentgate --version``: what an operator pastes into a bug report. The
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
    return f"consentgate {__version__} ({', '.join(parts)})"


class _PrintVersion(argparse.Action):
    """``--version`` on one line (argparse's own action wraps it at the terminal width)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(release_facts())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; exposed so tests and docs can inspect it."""
    parser = argparse.ArgumentParser(
        prog="consentgate",
        description="A consent gate in front of a single-client OAuth proxy.",
    )
    parser.add_argument(
        "--version", action=_PrintVersion, nargs=0, help="print the versions and exit"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run the gate")
    _add_config_argument(serve)
    serve.add_argument(
        "--create-store",
        action="store_true",
        help="create an empty store if it is missing, even where one existed "
        "(otherwise that is an error: restore the backup)",
    )
    serve.set_defaults(handler=_cmd_serve)

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

    check = commands.add_parser("check-config", help="validate a configuration file")
    _add_config_argument(check)
    check.add_argument("--offline", action="store_true", help="do not try to reach the upstream")
    check.set_defaults(handler=_cmd_check_config)

    front = commands.add_parser(
        "nginx-config",
        help="print an nginx front that sends [upstream] direct_paths straight upstream",
    )
    _add_config_argument(front)
    front.add_argument("--listen", default="80", help="nginx's listen parameters (default 80)")
    front.add_argument("--server-name", default="_", help="nginx's server_name (default _)")
    front.set_defaults(handler=_cmd_nginx_config)

    migrate = commands.add_parser(
        "migrate",
        help="create the store or bring its schema up to date (serve does it at start)",
    )
    _add_config_argument(migrate)
    migrate.set_defaults(handler=_cmd_migrate)

    demo = commands.add_parser(
        "demo", help="run the gate in front of a demo proxy on loopback, to click through"
    )
    demo.add_argument(
        "--port", type=int, default=8080, help="the gate's port on 127.0.0.1 (default 8080)"
    )
    demo.set_defaults(handler=_cmd_demo)

    store = commands.add_parser("store", help="the consent store itself")
    store_commands = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    init = store_commands.add_parser(
        "init",
        help="create an empty store where it is missing (starting over: no approvals)",
    )
    _add_config_argument(init)
    init.set_defaults(handler=_cmd_store_init)

    _add_store_commands(commands)

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
