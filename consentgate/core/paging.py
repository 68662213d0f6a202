"""Opaque paging cursors for listings that cross a request boundary (the admin API).

A store backend pages by its own position (SQLite: the last rowid; PostgreSQL: its
sequence column, :mod:`consentgate.store.protocol`). Handing that number out as it is
would make it part of the interface, so a caller sees ``next_cursor`` as an opaque
string instead: base64url (RFC 4648 §5, no padding) of a small JSON object naming the
listing and the position, in the style of Hydra's admin API ``page_token``. A cursor
of another listing, or anything that does not decode to exactly that shape, is a
ValueError the API answers with 400; so is a position no store column can hold
(``STORE_INTEGERS``, 64-bit signed), checked here rather than left to the driver.

Not a MAC: the cursor carries no authority (every caller of the admin API already
holds its token, and a forged position only starts the listing elsewhere). It is
only opaque, so that the backend's positions can change without breaking callers.

Pure module: no aiohttp import.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Final, Literal

from consentgate.core.signed.records import STORE_INTEGERS

#: ``metadata_document_clients`` and ``unknown_clients`` page ``GET /admin/clients``
#: of those kinds, which are tallied from the approvals: their position is an index.
Listing = Literal["consents", "clients", "audit", "metadata_document_clients", "unknown_clients"]

#: A cursor longer than this is not one of ours (they are about 40 characters).
MAX_CURSOR_LENGTH: Final = 200
_VERSION: Final = 1


def encode_cursor(listing: Listing, position: int) -> str:
    """The opaque cursor of ``listing`` continuing after the backend's ``position``."""
    data = json.dumps({"v": _VERSION, "l": listing, "p": position}, separators=(",", ":"))
    return base64.urlsafe_b64encode(data.encode("ascii")).decode("ascii").rstrip("=")


def decode_cursor(listing: Listing, cursor: str) -> int:
    """The backend position in a cursor of ``listing``; ValueError for anything else."""
    problem = f"not a cursor of this listing: {cursor[:60]!r}"
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
        raise ValueError(problem)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        raise ValueError(problem) from None
    if not isinstance(data, dict) or set(data) != {"v", "l", "p"}:
        raise ValueError(problem)
    position = data["p"]
    if (
        data["v"] != _VERSION
        or data["l"] != listing
        or not isinstance(position, int)
        or isinstance(position, bool)
        or position < 0
        or position not in STORE_INTEGERS
        or encode_cursor(listing, position) != cursor  # exactly our spelling, nothing else
    ):
        raise ValueError(problem)
    return position
