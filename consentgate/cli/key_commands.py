"""``consentgate keys``: the signing keys and the cookie secret of the keys
directory (generate, rotate, add, activate, list, adopt-cookie-secret).

``rotate`` makes a new key and signs with it at once: the form for one gate. Gates
sharing a store rotate in two steps, ``add`` (a key that verifies, published in the
store, learned by every gate whose keys directory has it) and ``activate`` once every
gate's ``readyz`` stops naming it, so no gate meets a record signed with a key it
lacks (docs/deploy.md, "Rotating the keys of several instances").

The key modules are imported inside the handlers, so ``--version`` and
``check-config`` stay light.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from consentgate.cli.conventions import (
    EXIT_OK,
    Commands,
    add_config_argument,
    load,
    program_name,
    utc,
)
from consentgate.cli.store_session import with_store
from consentgate.config.model import Config
from consentgate.core.startup_errors import StartupError

if TYPE_CHECKING:
    from consentgate.store import ConsentStore


def _cmd_keys_generate(args: argparse.Namespace) -> int:
    from consentgate.signing.key_directory import COOKIE_SECRET_FILE, generate_keys

    config = load(args)
    result = generate_keys(config.keys.dir)
    if result.created_key:
        print(f"created the signing key {result.active_kid} in {result.directory}")
    else:
        print(f"{result.directory} already has the active signing key {result.active_kid}")
    if result.created_cookie_secret:
        print(f"created the cookie secret {result.directory / COOKIE_SECRET_FILE}")
    return EXIT_OK


def _cmd_keys_rotate(args: argparse.Namespace) -> int:
    from consentgate.signing.key_directory import rotate_keys

    config = load(args)
    previous = _active_kid(config.keys.dir)
    kid = rotate_keys(config.keys.dir)
    print(f"new active signing key {kid}; the previous keys keep verifying their records")
    print("a running gate signs with it after a SIGHUP (it re-reads the keys) or a restart")
    print(
        "for one gate only: several gates sharing a store use 'keys add', then 'keys activate' "
        "(docs/deploy.md)"
    )
    _record_rotation(config, previous, kid)
    return EXIT_OK


def _cmd_keys_add(args: argparse.Namespace) -> int:
    from consentgate.audit.integrity import KeyAdded
    from consentgate.signing.key_directory import stage_key

    config = load(args)
    active = _active_kid(config.keys.dir)
    kid = stage_key(config.keys.dir)
    print(f"new key {kid}: it verifies, it does not sign yet")

    async def publish(store: ConsentStore) -> None:
        await _publish(store)
        await store.announce_key("staged", kid)
        store.audit.emit(KeyAdded(key=kid, active_key=active))  # the trail's row, at close

    if _in_store(config, publish):
        print("published in the store; a gate whose keys directory has it now verifies with it")
        print(f"recorded in the audit trail ({program_name()} audit list --event key_added)")
    print(
        f"next: copy the keys directory to every gate, wait until no gate's readyz names {kid}, "
        f"then run: {program_name()} keys activate {kid}"
    )
    return EXIT_OK


def _cmd_keys_activate(args: argparse.Namespace) -> int:
    from consentgate.signing.key_directory import activate_key

    config = load(args)
    previous = activate_key(config.keys.dir, args.kid)
    if previous == args.kid:
        print(f"{args.kid} is already the active signing key")
    else:
        print(f"{args.kid} is now the active signing key (was {previous})")
    print("each gate signs with it after a SIGHUP or a restart; until then with the previous key")
    if previous != args.kid:
        _record_rotation(config, previous, args.kid)
    return EXIT_OK


async def _publish(store: ConsentStore) -> None:
    differing = await store.publish_keys()
    if differing:
        raise StartupError(
            f"the store keeps another public key under key id(s) {', '.join(differing)}"
        )


def _active_kid(directory: Path) -> str:
    from consentgate.signing.key_directory import list_keys

    return next((key.kid for key in list_keys(directory) if key.active), "")


def _record_rotation(config: Config, previous: str, active: str) -> None:
    """Append ``key_rotated`` to the store's audit trail and name ``active`` the store's
    signing key (a gate signing with another is behind: ``readyz``), when there is a
    store to write."""

    async def record(store: ConsentStore) -> None:
        await _publish(store)
        await store.announce_key("active", active)
        store.key_rotated(previous, active)

    if _in_store(config, record):
        print(f"recorded in the audit trail ({program_name()} audit list --event key_rotated)")


def _in_store(config: Config, action: Callable[[ConsentStore], Awaitable[None]]) -> bool:
    """Run ``action`` on the store with the keys directory's ring; False (and a note)
    when there is no store to write."""
    from consentgate.signing.key_directory import load_keyring
    from consentgate.store.opening import open_store
    from consentgate.store.store_errors import StoreUnavailable

    async def run() -> None:
        keyring = load_keyring(config.keys.dir, create=False)
        async with await open_store(config.store, keyring, create=False) as store:
            await action(store)

    try:
        asyncio.run(run())
    except (StartupError, StoreUnavailable) as exc:
        print(f"consentgate: note: the store was not updated ({exc})", file=sys.stderr)
        return False
    return True


def _cmd_keys_list(args: argparse.Namespace) -> int:
    from consentgate.signing.key_directory import list_keys

    config = load(args)
    keys = list_keys(config.keys.dir)
    if args.json:
        items = [
            {
                "kid": k.kid,
                "active": k.active,
                "status": k.status,
                "created_at": k.created_at,
                "file": str(k.path),
            }
            for k in keys
        ]
        print(json.dumps(items, indent=2))
        return EXIT_OK
    print("KID\tSTATUS\tCREATED\tFILE")
    for key in keys:
        status = "staged (verify only)" if key.status == "staged" else key.status
        print(f"{key.kid}\t{status}\t{utc(key.created_at)}\t{key.path}")
    return EXIT_OK


def _cmd_keys_adopt_cookie_secret(args: argparse.Namespace) -> int:
    """After changing the cookie secret on every gate on purpose: make it the store's."""
    from consentgate.core.signed.keyring import secret_fingerprint
    from consentgate.signing.key_directory import load_cookie_secret

    config = load(args)
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

    return with_store(args, action)


def add_keys(commands: Commands) -> None:
    keys = commands.add_parser("keys", help="manage the signing keys")
    key_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    generate = key_commands.add_parser(
        "generate", help="create the key directory, a signing key and the cookie secret if absent"
    )
    add_config_argument(generate)
    generate.set_defaults(handler=_cmd_keys_generate)
    rotate = key_commands.add_parser(
        "rotate",
        help="one gate: make a new active signing key; the old ones keep verifying "
        "(several gates: keys add, then keys activate)",
    )
    add_config_argument(rotate)
    rotate.set_defaults(handler=_cmd_keys_rotate)
    add = key_commands.add_parser(
        "add",
        help="several gates: make a new key that verifies but does not sign yet, "
        "and publish it in the store (then: keys activate)",
    )
    add_config_argument(add)
    add.set_defaults(handler=_cmd_keys_add)
    activate = key_commands.add_parser(
        "activate",
        help="make a key of the keys directory the signing key, once every gate knows it",
    )
    add_config_argument(activate)
    activate.add_argument("kid", metavar="KID", help="the key id (see: keys list)")
    activate.set_defaults(handler=_cmd_keys_activate)
    listing = key_commands.add_parser("list", help="list the keys, the active one first")
    add_config_argument(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_cmd_keys_list)

    adopt = key_commands.add_parser(
        "adopt-cookie-secret",
        help="make this configuration's cookie secret the one every gate of the store must use",
    )
    add_config_argument(adopt)
    adopt.set_defaults(handler=_cmd_keys_adopt_cookie_secret)
