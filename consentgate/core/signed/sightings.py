"""When the gate first saw a client named by a URL, as a signed row.

A client named by a URL (MCP 2025-11-25, "Client ID Metadata Documents") never
registers, so the gate has no registration time to show for it; what it can know is
the first time anyone used it here (its document fetched and verified for an
authorization request). That time decides a warning on the consent page (a
look-alike made for the attack is minutes old, docs/clients.md), so it is signed like
a registration's ``registered_at``: a row edited to look old is not honoured
(docs/store.md, "Limits": deleting it only makes the client new again, the safe
direction).

Canonical encoding, version 1: ``b"consentgate-sighting-v1\\n"`` + the canonical JSON
(:func:`~consentgate.core.signed.records.canonical_json`) of every column but the
signature. The prefix keeps a sighting's signature from passing as any other record's.
The store signs and verifies it (``store/parts/first_sightings.py``): this module, like
every row codec a backend imports, never sees a key.

Pure module: no aiohttp import, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from consentgate.core.signed.records import MalformedRecord, canonical_json

SIGHTING_ENCODING: Final = "consentgate-sighting-v1"
_PREFIX: Final = SIGHTING_ENCODING.encode("ascii") + b"\n"

#: Columns of the ``client_sightings`` table, in order.
SIGHTING_COLUMNS: Final = ("client_id", "first_seen_at", "key_id", "signature")


@dataclass(frozen=True, slots=True)
class SightingRecord:
    """A client_id and the first time the gate saw it, under one signature."""

    client_id: str
    first_seen_at: int
    key_id: str = ""
    signature: bytes = b""

    def signing_input(self) -> bytes:
        fields = {name: getattr(self, name) for name in SIGHTING_COLUMNS[:-1]}
        return _PREFIX + canonical_json(fields)

    def to_row(self) -> tuple[Any, ...]:
        """Values in :data:`SIGHTING_COLUMNS` order."""
        return tuple(getattr(self, name) for name in SIGHTING_COLUMNS)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> SightingRecord:
        """Parse a stored row strictly; raises :class:`MalformedRecord`."""
        if len(row) != len(SIGHTING_COLUMNS):
            raise MalformedRecord(f"expected {len(SIGHTING_COLUMNS)} columns, got {len(row)}")
        client_id, first_seen_at, key_id, signature = row
        if not isinstance(client_id, str) or not isinstance(key_id, str):
            raise MalformedRecord("client_id and key_id must be text")
        if type(first_seen_at) is not int:
            raise MalformedRecord("first_seen_at is not an integer")
        if not isinstance(signature, bytes):
            raise MalformedRecord("signature is not a blob")
        return cls(client_id, first_seen_at, key_id, signature)
