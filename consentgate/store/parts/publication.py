"""Keys and publication: the public keys that signed the store's records, kept in
the store itself, and the cookie secret's fingerprint the gates sharing it agree on.

Settings named ``signing_key:<kid>`` hold the public JWK of each key that signed
records in the store, so that any machine with access to the store can check them
(``consents verify`` and ``export`` without the keys directory). A key is kept in
the transaction that writes its first record (:meth:`Publication.keep_key`), so no
record in the store names a key the store lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consentgate.core.signed.keyring import KeyRing, jwk_text, public_key_from_jwk_text
from consentgate.core.signed.records import check_length, check_text
from consentgate.store.parts.context import StoreContext
from consentgate.store.protocol import StoreTransaction

#: The setting holding the cookie secret's fingerprint (:func:`~consentgate.signing.key_directory.
#: secret_fingerprint`), claimed by the first gate that starts on the store.
COOKIE_FINGERPRINT: Final = "cookie_secret_fingerprint"

#: The prefix of the settings that keep the public key of each signing key.
SIGNING_KEY_PREFIX: Final = "signing_key:"

#: The settings naming the key the operator made the fleet's signing key (``consentgate
#: keys activate`` or ``rotate``: a gate signing with another one is behind) and the key
#: staged last (``keys add``: a gate whose keys directory lacks it is not ready for it).
#: Named, not kept: a gate takes keys only from its own keys directory.
ANNOUNCED_PREFIX: Final = "signing_key_"
KeyRole = Literal["active", "staged"]


@dataclass(frozen=True, slots=True)
class AnnouncedKeys:
    """The kids the store names as the fleet's signing key and as the key staged last
    ("" when none was named)."""

    active: str = ""
    staged: str = ""


@dataclass(frozen=True, slots=True)
class StoredKeys:
    """The public keys a store keeps: those that load, and the names of the settings
    that do not (not a JWK of an Ed25519 key, or a key that does not hash to its kid:
    edited in the database)."""

    keys: Mapping[str, Ed25519PublicKey]
    unreadable: tuple[str, ...]


class Publication:
    """Which public keys this process has kept in the store, and keeping them."""

    __slots__ = ("_ctx", "_published")

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        self._published: set[str] = set()

    async def claim_cookie_fingerprint(self, fingerprint: str) -> str:
        """The fingerprint of the cookie secret that the gates sharing this store use:
        ``fingerprint`` when this is the first gate to start, else the one claimed
        first. A gate whose secret differs would break every flow that crosses gates;
        it refuses to become ready (``readyz``)."""
        check_length("fingerprint", check_text("fingerprint", fingerprint), 64)
        return await self._ctx.backend.claim_setting(COOKIE_FINGERPRINT, fingerprint)

    async def adopt_cookie_fingerprint(self, fingerprint: str) -> None:
        """Make ``fingerprint`` the store's, after the cookie secret was changed on every
        gate on purpose (``consentgate keys adopt-cookie-secret``)."""
        check_length("fingerprint", check_text("fingerprint", fingerprint), 64)
        await self._ctx.backend.set_setting(COOKIE_FINGERPRINT, fingerprint)

    async def publish_keys(self) -> tuple[str, ...]:
        """Keep every public key of the ring in the store; name each kid whose stored
        key differs from this ring's (an edited settings row: the kid is the key's
        thumbprint, so two keys cannot share it honestly)."""
        ring = self._ctx.keyring
        problems: list[str] = []
        for kid in ring.kids:
            public_key = ring.public_key(kid)
            assert public_key is not None  # noqa: S101 - kids and public keys agree
            mine = jwk_text(public_key)
            if await self._ctx.backend.claim_setting(SIGNING_KEY_PREFIX + kid, mine) != mine:
                problems.append(kid)
            self._published.add(kid)
        return tuple(problems)

    async def announce_key(self, role: KeyRole, kid: str) -> None:
        """Say in the store that ``kid`` is now the signing key (``active``) or the key
        staged last (``staged``) of the gates sharing it."""
        check_length("kid", check_text("kid", kid), 64)
        await self._ctx.backend.set_setting(ANNOUNCED_PREFIX + role, kid)

    async def announced_keys(self) -> AnnouncedKeys:
        """The kids of :meth:`announce_key`."""
        settings = await self._ctx.backend.settings(ANNOUNCED_PREFIX)
        return AnnouncedKeys(
            settings.get(ANNOUNCED_PREFIX + "active", ""),
            settings.get(ANNOUNCED_PREFIX + "staged", ""),
        )

    async def stored_keys(self) -> StoredKeys:
        """The public keys kept in the store (see :data:`SIGNING_KEY_PREFIX`)."""
        keys: dict[str, Ed25519PublicKey] = {}
        unreadable: list[str] = []
        settings = await self._ctx.backend.settings(SIGNING_KEY_PREFIX)
        for name, text in sorted(settings.items()):
            kid = name.removeprefix(SIGNING_KEY_PREFIX)
            public_key = public_key_from_jwk_text(text, kid)
            if public_key is None:
                unreadable.append(name)
            else:
                keys[kid] = public_key
        return StoredKeys(MappingProxyType(keys), tuple(unreadable))

    def _unpublished(self, ring: KeyRing) -> tuple[str, str] | None:
        """The setting that keeps ``ring``'s active key, while this store has not
        written it yet (so, once per key and process, a write also keeps its key)."""
        kid = ring.active_kid
        if kid in self._published:
            return None
        public_key = ring.public_key(kid)
        assert public_key is not None  # noqa: S101 - the active key is in its ring
        return SIGNING_KEY_PREFIX + kid, jwk_text(public_key)

    async def keep_key(self, tx: StoreTransaction, ring: KeyRing) -> None:
        """Keep ``ring``'s active key in the transaction that writes its first record,
        so no record in the store names a key the store lacks."""
        setting = self._unpublished(ring)
        if setting is not None:
            await tx.claim_setting(*setting)

    def kept(self, ring: KeyRing) -> None:
        """The transaction that kept ``ring``'s active key committed."""
        self._published.add(ring.active_kid)
