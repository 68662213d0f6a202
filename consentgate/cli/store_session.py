"""One command's session with the configured store: opened (never created), the
keys chosen, the audit trail's mark kept, closed; ``consents list | head`` is not
an error."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from consentgate.cli.conventions import EXIT_FAILURE, EXIT_OK, error, load, program_name

if TYPE_CHECKING:
    from consentgate.store import ConsentStore


def with_store(
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
    from consentgate.core.signed.keyring import KeyRing
    from consentgate.signing.key_directory import load_keyring
    from consentgate.store.opening import open_store

    config = load(args)
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
    from consentgate.core.signed.keyring import KeyRing

    stored = await store.stored_keys()
    if not stored.keys and not stored.unreadable:
        error(
            f"the store keeps no public keys to verify with, and {keys_dir} is not used; "
            "start a gate on the store once (it records its keys), or run this command "
            "where the keys directory is"
        )
        return False
    store.reload_keys(KeyRing.verifying(stored.keys.values()))
    print(
        f"consentgate: verifying with the public keys kept in the store: "
        f"{', '.join(sorted(stored.keys)) or 'none readable'} "
        f"(compare with {program_name()} keys list on a gate)",
        file=sys.stderr,
    )
    return True
