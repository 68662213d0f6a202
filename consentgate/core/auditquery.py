"""The audit listing's vocabulary, for ``audit list`` and ``GET /admin/audit``: the
names of the rows the table keeps, and how a ``since`` is read.

In the core (pure) because the admin API's query parser reads it; the table's rows
themselves are :mod:`consentgate.audit.trail`.
"""

from __future__ import annotations

import datetime
from typing import Final

from consentgate.core.signed.records import STORE_INTEGERS

#: The events the table keeps, as ``audit list --event`` names them.
EVENTS: Final = (
    "approved",
    "denied",
    "revoked",
    "expired",
    "tampered",
    "callback_refused",
    "key_rotated",
    "key_added",
    "audit_purged",
    "audit_dropped",
)


def parse_since(text: str, now: float) -> int:
    """``--since`` / ``since=``: a duration back from ``now`` (``"7d"``, ``"12h"``,
    seconds) or a UTC date or time (``"2026-12-01"``, ``"2026-12-01T08:00:00Z"``);
    unix seconds. ValueError names what was expected."""
    from consentgate.config.parsers import parse_duration  # noqa: PLC0415 - config is heavier

    try:
        since = int(now - parse_duration(text))
    except ValueError:
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f'since: expected a duration like "7d" or a UTC date like "2026-12-01", '
                f"got {text!r}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        since = int(moment.timestamp())
    if since not in STORE_INTEGERS:  # a store compares it with a 64-bit column
        raise ValueError(f"since: a duration too long to go back by, got {text[:40]!r}")
    return since


def iso_time(at: int) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
