"""Paged listings of the store: the page size, every row of a paged read, and the
opaque cursors handed to callers that page across requests
(:mod:`consentgate.core.paging`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from consentgate.core.paging import Listing, decode_cursor, encode_cursor
from consentgate.store.protocol import Cursor, Page, Row

#: Rows per page of a listing, and per transaction of a revocation (so a huge
#: revocation never holds the write lock for long).
PAGE: Final = 500


async def every_row(page: Callable[..., Awaitable[Page]]) -> AsyncIterator[Row]:
    """Every row of a paged listing: ``page(after=cursor)`` until the cursor is None.
    Each page is read only when the previous one was consumed."""
    cursor: Cursor | None = None
    while True:
        rows, cursor = await page(after=cursor)
        for row in rows:
            yield row
        if cursor is None:
            return


def check_limit(limit: int) -> None:
    """A caller's page size: 1 to ten times :data:`PAGE`."""
    if not 1 <= limit <= 10 * PAGE:
        raise ValueError(f"limit must be between 1 and {10 * PAGE}, got {limit!r}")


def position(listing: Listing, cursor: str | None) -> Cursor | None:
    """The backend's position behind a caller's opaque cursor (ValueError if malformed)."""
    return None if cursor is None else decode_cursor(listing, cursor)


def next_cursor(listing: Listing, following: Cursor | None) -> str | None:
    """The opaque cursor of the page after, or None on the last."""
    if following is None:
        return None
    if not isinstance(following, int) or isinstance(following, bool):  # pragma: no cover
        raise TypeError(f"a backend cursor that is not an integer: {following!r}")
    return encode_cursor(listing, following)
