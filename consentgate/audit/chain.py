"""Checking the audit trail: the chain and its head (``audit verify``), the high-water
mark kept outside the database, and the signed revocations that a restored record
contradicts (docs/store.md).

The rows and their encoding are :mod:`consentgate.audit.trail`. Pure module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from consentgate.audit.trail import GENESIS, AuditRecord, MalformedAuditRow, read_head
from consentgate.core.auditquery import iso_time

if TYPE_CHECKING:
    from consentgate.core.signed.keyring import KeyRing


# --- the high-water mark ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditMark:
    """How far the chain was seen to reach: its row ``seq`` had hash ``hash`` at ``at``.

    The chain and its signed head both live in the database, so someone who can write
    it can delete every row and the head: what is left verifies as an empty trail.
    The mark is kept outside the database, in the keys directory (beside the store's
    birth record, :mod:`consentgate.store.birth`), and only ever moves forward: a
    trail that is empty, or ends before the mark, or whose row ``seq`` has another
    hash, went back. Several gates sharing one database each keep their own mark,
    a lower bound of the shared trail.
    """

    seq: int
    hash: str
    at: int

    def to_text(self) -> str:
        return json.dumps({"seq": self.seq, "hash": self.hash, "at": self.at}, sort_keys=True)

    @classmethod
    def from_text(cls, text: str) -> AuditMark:
        """The mark in ``text``; ValueError when it is not one."""
        try:
            value = json.loads(text)
            mark = cls(int(value["seq"]), str(value["hash"]), int(value["at"]))
        except (KeyError, TypeError, ValueError):
            raise ValueError("not an audit mark") from None
        if mark.seq < 1 or len(mark.hash) != len(GENESIS):
            raise ValueError("not an audit mark")
        return mark


def mark_problem(mark: AuditMark, found: AuditRecord | None, first_seq: int | None) -> str | None:
    """Why the trail is behind ``mark``, or None when it is at or beyond it.

    ``found`` is the trail's first row at or after ``mark.seq`` (None: there is none),
    ``first_seq`` its oldest row's (None: the trail is empty; only read when ``found``
    is None). Retention cuts the head end, so positions are compared, not counts: a
    marked row that retention removed is not a problem while the trail goes on.
    """
    recorded = (
        f"the keys directory records that the audit trail reached row {mark.seq} "
        f"(hash {mark.hash[:16]}..., seen {iso_time(mark.at)})"
    )
    if found is None:
        if first_seq is None:
            return f"{recorded}, but the trail is empty: every row and its head were deleted"
        return (
            f"{recorded}, but the trail has no row from {mark.seq} on: "
            "rows were deleted from its end"
        )
    if found.seq == mark.seq and found.hash != mark.hash:
        return (
            f"{recorded}, but row {mark.seq} has hash {found.hash[:16]}...: the trail was "
            "replaced (deleted and begun again, or put back from an older copy)"
        )
    # At or beyond the mark. A marked row that is gone while the trail goes on was
    # removed by retention, or deleted in the middle, which the chain names.
    return None


# --- verification -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What ``audit verify`` found."""

    checked: int
    first_seq: int | None
    last_seq: int | None
    #: The first row that breaks the chain (None: the end, or the head), and why.
    broken_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class ChainCheck:
    """Feed the rows oldest first (:meth:`add`), then :meth:`finish` with the head."""

    def __init__(self, keyring: KeyRing) -> None:
        self._keyring = keyring
        self._checked = 0
        self._first: AuditRecord | None = None
        self._last: AuditRecord | None = None
        self._start: tuple[int, str] | None = None  # from the newest audit_purged row
        self._broken: tuple[int | None, str] | None = None

    def add(self, row: Sequence[Any]) -> None:
        if self._broken is not None:
            return
        self._checked += 1
        try:
            record = AuditRecord.from_row(row)
        except MalformedAuditRow as exc:
            seq = row[0] if row and isinstance(row[0], int) else None
            self._broken = (seq, f"malformed row: {exc}")
            return
        problem = record.signature_failure(self._keyring)
        if problem is None and self._last is not None:
            if record.seq != self._last.seq + 1:
                problem = (
                    f"rows {self._last.seq + 1}..{record.seq - 1} are missing "
                    f"(deleted after row {self._last.seq})"
                )
            elif record.prev != self._last.hash:
                problem = f"it does not follow row {self._last.seq} (a row was replaced)"
        if problem is not None:
            self._broken = (record.seq, problem)
            return
        if self._first is None:
            self._first = record
        if record.event == "audit_purged":
            detail = record.details()
            try:
                self._start = (int(detail["first_kept_seq"]), str(detail["first_kept_prev"]))
            except (KeyError, TypeError, ValueError):
                self._broken = (record.seq, "an audit_purged row without its checkpoint")
                return
        self._last = record

    def finish(self, head: str | None) -> ChainReport:
        first = self._first.seq if self._first else None
        last = self._last.seq if self._last else None

        def report(seq: int | None, problem: str | None) -> ChainReport:
            return ChainReport(self._checked, first, last, seq, problem)

        if self._broken is not None:
            return report(*self._broken)
        if self._first is None:
            if head is None:
                return report(None, None)
            return report(None, "every row was deleted (the head names rows that are gone)")
        expected = (1, GENESIS) if self._start is None else self._start
        if (self._first.seq, self._first.prev) != expected:
            return report(
                self._first.seq,
                f"the chain starts at row {self._first.seq}, but should start at row "
                f"{expected[0]} (rows were deleted from the start)",
            )
        if head is None:
            return report(None, "the chain's head setting is missing (deleted)")
        named = read_head(head, self._keyring)
        if isinstance(named, str):
            return report(None, named)
        assert self._last is not None  # noqa: S101 - _first is set, so _last is too
        if named != (self._last.seq, self._last.hash):
            if named[0] > self._last.seq:
                why = f"rows after {self._last.seq} up to {named[0]} were deleted"
            else:
                why = f"the head names row {named[0]}, not the last row {self._last.seq}"
            return report(None, why)
        return report(None, None)


def verify_chain(rows: Iterable[Sequence[Any]], head: str | None, keyring: KeyRing) -> ChainReport:
    check = ChainCheck(keyring)
    for row in rows:
        check.add(row)
    return check.finish(head)


# --- revocations, for the cross-check of records --------------------------------------


class Revocations:
    """The signed ``revoked`` rows of the trail, to find a record that one of them
    covers although the record is unrevoked: put back from a copy made before its
    revocation (a rollback the record's own signature cannot show, docs/store.md).

    A revocation covers the records its selector matched that were granted *before*
    it started (``started_at``, or the row's time for rows written without it):
    strictly before, so a record approved again in the second a revocation began is
    never reported.
    """

    def __init__(self) -> None:
        #: (selector, value, owner) -> the latest start of such a revocation.
        self._latest: dict[tuple[str, str, str], int] = {}

    def __len__(self) -> int:
        return len(self._latest)

    def add(self, row: AuditRecord) -> None:
        """Count ``row`` when it is a ``revoked`` row (the caller checked its signature)."""
        if row.event != "revoked":
            return
        detail = row.details()
        selector = str(detail.get("selector", ""))
        values = {
            "id": str(detail.get("id", "")),
            "client_id": row.client_id,
            "redirect_uri": row.redirect_uri,
            "subject": row.subject,
            "all": "",
        }
        if selector not in values:
            return
        # With an owner (the approvals page), the subject column narrows the selector.
        owner = "" if selector == "subject" else row.subject
        started = detail.get("started_at")
        at = started if isinstance(started, int) and not isinstance(started, bool) else row.at
        key = (selector, values[selector], owner)
        self._latest[key] = max(at, self._latest.get(key, at))

    def covering(
        self, *, id: str, client_id: str, redirect_uri: str, subject: str, granted_at: int
    ) -> int | None:
        """When a revocation that covers this record started, or None."""
        candidates = (
            ("id", id),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("subject", subject),
            ("all", ""),
        )
        latest: int | None = None
        for selector, value in candidates:
            for owner in ("", subject):
                at = self._latest.get((selector, value, owner))
                if at is not None and at > granted_at and (latest is None or at > latest):
                    latest = at
        return latest
