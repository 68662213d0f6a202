"""The signing keys of a fleet: learning a key another gate added, and saying when
this gate is behind.

Gates sharing a store must verify every key any of them signs with, or a record one
gate signs is absent on another (an approval asked again, a registration unknown).
So a rotation has two steps (docs/deploy.md, "Rotating the keys of several
instances"): ``consentgate keys add`` stages a key that only verifies and names
it in the store; ``keys activate`` makes it the signing key once every gate knows
it. A gate learns a staged key without a reload: when the store names a staged or
signing kid its ring lacks, it re-reads *its own keys directory* for it
(:func:`learn_keys`). Only the kids named so count: a retired key deleted from every
keys directory (which revokes its records) stays published, and is no lag.

The store says *which* keys to use; it never supplies the key itself. The public keys
kept in the store are not trusted for verifying: anyone who can write the database
could publish a key of their own and forge approvals with it, which the signatures
exist to detect (docs/store.md, "Limits"). The keys directory stays the only source of
keys, and a kid the directory lacks is reported, not trusted (:func:`key_lag`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from consentgate.core.signed.keyring import KID_LENGTH, KeyRing
from consentgate.core.startup_errors import StartupError
from consentgate.signing.key_directory import load_keyring
from consentgate.store import ConsentStore
from consentgate.store.parts.publication import AnnouncedKeys

log = logging.getLogger("consentgate")

_KID_RE = re.compile(rf"^[A-Za-z0-9_-]{{{KID_LENGTH}}}$")


@dataclass(frozen=True)
class KeyLag:
    """How this gate's keys compare with what the store says: ``problems`` make it not
    ready (it would refuse records the fleet signs), ``warnings`` name what is behind."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _named(announced: AnnouncedKeys) -> set[str]:
    return {kid for kid in (announced.active, announced.staged) if _KID_RE.match(kid)}


async def learn_keys(store: ConsentStore, keys_dir: Path) -> tuple[str, ...]:
    """Add to the store's ring, as verify-only keys, the keys of ``keys_dir`` that the
    store names (the staged key, the signing key) and the ring lacks; the signing key
    does not change (that is a reload's, SIGHUP). Returns the kids learned. A directory
    that does not load is logged and changes nothing."""
    ring = store.keyring
    missing = _named(await store.announced_keys()) - set(ring.kids)
    if not missing:
        return ()
    try:
        directory = await asyncio.to_thread(load_keyring, keys_dir, create=False)
    except StartupError as exc:
        log.error("keys not re-read", extra={"fields": {"reason": str(exc)}})
        return ()
    found = sorted(kid for kid in missing if directory.has_key(kid))
    if not found or store.keyring is not ring:
        return ()  # nothing new here, or a reload replaced the ring meanwhile
    learned = [directory.public_key(kid) for kid in found]
    store.reload_keys(ring.with_verifying(key for key in learned if key is not None))
    log.info("keys learned (verify only)", extra={"fields": {"kids": ",".join(found)}})
    return tuple(found)


def _lag(ring: KeyRing, announced: AnnouncedKeys) -> KeyLag:
    lag = KeyLag()
    active, staged = announced.active, announced.staged
    if any(kid and not _KID_RE.match(kid) for kid in (active, staged)):
        # Not a key id (edited in the database): ``readyz`` is public and says only that.
        lag.warnings.append("keys: the store's signing key setting is not a key id")
    if active and _KID_RE.match(active):
        if not ring.has_key(active):
            lag.problems.append(
                f"keys: the store's signing key {active} is not in this gate's keys "
                "directory, so records signed with it are refused here; copy the keys "
                "directory to this gate"
            )
        elif ring.can_sign and ring.active_kid != active:
            lag.warnings.append(
                f"keys: this gate signs with {ring.active_kid}, the store's signing key is "
                f"{active}; reload this gate (SIGHUP) once its keys directory has it"
            )
    if staged and _KID_RE.match(staged) and staged != active and not ring.has_key(staged):
        lag.warnings.append(
            f"keys: the store names the staged key {staged}, which this gate's keys "
            "directory lacks; copy the keys directory to this gate before activating it"
        )
    return lag


async def key_lag(store: ConsentStore) -> KeyLag:
    """What ``readyz`` says about this gate's keys. A store that cannot be read says
    nothing here (the store check reports it)."""
    try:
        announced = await store.announced_keys()
    except Exception:
        return KeyLag()
    return _lag(store.keyring, announced)
