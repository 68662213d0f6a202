"""The audit table's rows: which decisions are kept, how each row is chained and signed.

Log lines can be lost, rotated away or edited without a trace; an operator reviewing
an incident needs a history of every consent decision that shows when it was cut
short or rewritten (docs/references.md: "no audit trail" was a weakness
of every cookie-only consent design; Hydra and Keycloak keep one). So the decisions
that matter are appended to a table of the store, as a **hash chain**:

* each row holds ``prev``, the hash of the row before it (the first row ever holds
  :data:`GENESIS`), and ``hash``, the SHA-256 of its own canonical encoding, ``prev``
  included. Editing a row changes its hash; deleting a row in the middle leaves the
  next row's ``prev`` pointing at nothing. Either breaks the chain at that row.
* each row's hash is **signed** with the store's Ed25519 key, so the chain cannot be
  recomputed after an edit by someone who can write the database but does not hold
  the key, and the first broken row can be named (a plain hash chain only says that
  something, somewhere, was rewritten).
* the newest row is also recorded, signed, as the chain's **head** (a setting of the
  store), so cutting rows off the end is detected too.
* retention deletes the oldest rows and appends an ``audit_purged`` row that names
  the first row kept (its ``seq`` and ``prev``): the remaining chain verifies from
  there, and deleting more rows from the start is still detected.

What it cannot see (said in docs/store.md): someone with the database *and* an older
copy of it can put back an older chain with its older signed head, which drops the
rows written since. Keep backups as private as the keys.

Canonical encoding, version 1 (the bytes that are hashed)::

    b"consentgate-audit-v1\\n" + JSON array
    [seq, at, event, request_id, actor, client_id, redirect_uri, scopes, subject,
     detail, prev]

with the JSON written as the consent records' (no whitespace, non-ASCII as itself);
``detail`` is the stored JSON *text*, hashed byte for byte. The signature covers
``b"consentgate-audit-row-v1\\n" + hash`` (the head: ``...-head-v1\\n`` + seq + hash).

The table never holds a code, token, state or cookie: the browser is its subject
digest, as on the ``consentgate.audit`` log. Pure module: no aiohttp import.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from consentgate.audit.events import AuditEvent
from consentgate.core.records import AUDIT_COLUMNS, STORE_INTEGERS

if TYPE_CHECKING:
    from consentgate.core.keys import KeyRing

ENCODING: Final = "consentgate-audit-v1"
_PREFIX: Final = ENCODING.encode("ascii") + b"\n"
_ROW_SIGNED: Final = b"consentgate-audit-row-v1\n"
_HEAD_SIGNED: Final = b"consentgate-audit-head-v1\n"
#: ``prev`` of the first row ever written.
GENESIS: Final = "0" * 64
#: The store setting that keeps the signed head of the chain.
HEAD_SETTING: Final = "audit.head"


#: The events the table keeps, as ``audit list --event`` names them.
EVENTS: Final = (
    "approved",
    "denied",
    "revoked",
    "expired",
    "tampered",
    "callback_refused",
    "key_rotated",
    "audit_purged",
    "audit_dropped",
)
#: Longest text kept in one column of a row; longer values are cut (a row is a
#: record of a decision, not a copy of what an attacker sent).
_MAX_TEXT: Final = 2048


class MalformedAuditRow(ValueError):
    """A stored row that cannot be read as an audit row (wrong types, bad detail)."""


def _clip(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


def _detail_text(detail: Mapping[str, object]) -> str:
    def plain(value: object) -> object:
        if value is None or isinstance(value, bool | int | float):
            return value
        return _clip(value)

    return json.dumps(
        {str(k): plain(v) for k, v in detail.items()},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One decision to append, before it has a place in the chain."""

    at: int
    event: str
    request_id: str = ""
    actor: str = ""
    client_id: str = ""
    redirect_uri: str = ""
    scopes: str = ""
    subject: str = ""
    detail: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One row of the chain, as stored."""

    seq: int
    at: int
    event: str
    request_id: str
    actor: str
    client_id: str
    redirect_uri: str
    scopes: str
    subject: str
    detail: str
    prev: str
    hash: str
    key_id: str
    signature: bytes

    def hashed_input(self) -> bytes:
        fields = [
            self.seq,
            self.at,
            self.event,
            self.request_id,
            self.actor,
            self.client_id,
            self.redirect_uri,
            self.scopes,
            self.subject,
            self.detail,
            self.prev,
        ]
        return _PREFIX + json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()

    def computed_hash(self) -> str:
        return hashlib.sha256(self.hashed_input()).hexdigest()

    @classmethod
    def chain(cls, entry: AuditEntry, seq: int, prev: str, keyring: KeyRing) -> AuditRecord:
        """``entry`` as row ``seq`` after the row whose hash is ``prev``, hashed and signed."""
        unsigned = cls(
            seq=seq,
            at=int(entry.at),
            event=_clip(entry.event),
            request_id=_clip(entry.request_id),
            actor=_clip(entry.actor),
            client_id=_clip(entry.client_id),
            redirect_uri=_clip(entry.redirect_uri),
            scopes=_clip(entry.scopes),
            subject=_clip(entry.subject),
            detail=_detail_text(entry.detail),
            prev=prev,
            hash="",
            key_id="",
            signature=b"",
        )
        digest = unsigned.computed_hash()
        kid, signature = keyring.sign(_ROW_SIGNED + digest.encode("ascii"))
        return _replace(unsigned, hash=digest, key_id=kid, signature=signature)

    def to_row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in AUDIT_COLUMNS)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> AuditRecord:
        if len(row) != len(AUDIT_COLUMNS):
            raise MalformedAuditRow(f"{len(row)} columns, expected {len(AUDIT_COLUMNS)}")
        values = dict(zip(AUDIT_COLUMNS, row, strict=True))
        for name in ("seq", "at"):
            if not isinstance(values[name], int) or isinstance(values[name], bool):
                raise MalformedAuditRow(f"{name} is not an integer")
        for name in AUDIT_COLUMNS[2:-1]:
            if not isinstance(values[name], str):
                raise MalformedAuditRow(f"{name} is not text")
        signature = values["signature"]
        if isinstance(signature, memoryview | bytearray):
            signature = bytes(signature)
        if not isinstance(signature, bytes):
            raise MalformedAuditRow("signature is not bytes")
        values["signature"] = signature
        return cls(**values)

    def signature_failure(self, keyring: KeyRing) -> str | None:
        """Why this row's own hash or signature fails, or None."""
        if self.computed_hash() != self.hash:
            return "its fields do not match its hash (edited)"
        if not keyring.has_key(self.key_id):
            return f"signed with unknown key {self.key_id!r}"
        if not keyring.verify(self.key_id, _ROW_SIGNED + self.hash.encode(), self.signature):
            return "its signature does not match its hash (rewritten without the key)"
        return None

    def details(self) -> dict[str, Any]:
        try:
            parsed = json.loads(self.detail)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}

    def as_json(self) -> dict[str, Any]:
        """The listing's form (``audit list --json``, ``GET /admin/audit``)."""
        return {
            "seq": self.seq,
            "time": iso_time(self.at),
            "event": self.event,
            "request_id": self.request_id,
            "actor": self.actor,
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scopes": self.scopes,
            "subject": self.subject,
            "detail": self.details(),
            "hash": self.hash,
        }


def _replace(record: AuditRecord, **changes: Any) -> AuditRecord:
    import dataclasses  # noqa: PLC0415 - one use

    return dataclasses.replace(record, **changes)


def parse_since(text: str, now: float) -> int:
    """``--since`` / ``since=``: a duration back from ``now`` (``"7d"``, ``"12h"``,
    seconds) or a UTC date or time (``"2026-12-01"``, ``"2026-12-01T08:00:00Z"``);
    unix seconds. ValueError names what was expected."""
    from consentgate.core.config import parse_duration  # noqa: PLC0415 - config is heavier

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


# --- the head ---------------------------------------------------------------------


def head_value(seq: int, digest: str, keyring: KeyRing) -> str:
    """The signed head setting for the newest row ``seq`` with hash ``digest``."""
    kid, signature = keyring.sign(_head_input(seq, digest))
    return json.dumps(
        {
            "seq": seq,
            "hash": digest,
            "key_id": kid,
            "signature": base64.urlsafe_b64encode(signature).decode("ascii"),
        },
        sort_keys=True,
    )


def _head_input(seq: int, digest: str) -> bytes:
    return _HEAD_SIGNED + f"{seq}\n{digest}".encode("ascii")


def read_head(text: str, keyring: KeyRing) -> tuple[int, str] | str:
    """The (seq, hash) a head setting names, or why it cannot be trusted."""
    try:
        value = json.loads(text)
        seq, digest = int(value["seq"]), str(value["hash"])
        kid = str(value["key_id"])
        signature = base64.urlsafe_b64decode(str(value["signature"]))
        _head_input(seq, digest)
    except (ValueError, KeyError, TypeError, UnicodeEncodeError):
        return "the chain's head setting is unreadable"
    if not keyring.has_key(kid):
        return f"the chain's head is signed with unknown key {kid!r}"
    if not keyring.verify(kid, _head_input(seq, digest), signature):
        return "the chain's head setting was edited (its signature does not match)"
    return seq, digest


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


# --- which decisions are kept --------------------------------------------------------

_SELECTOR_COLUMNS: Final = {"client_id", "redirect_uri", "subject"}
#: The audit events :func:`entry_for` keeps a row of; every other event (a remembered
#: approval relayed, a page shown: one per request) is passed over by its name alone.
KEPT: Final = frozenset(
    {
        "consent_approved",
        "consent_denied",
        "consents_revoked",
        "consents_purged",
        "tamper",
        "callback_refused",
        "key_rotated",
    }
)


#: Events that any client can cause without signing in or holding a pending page:
#: a refused callback (no state, no binding cookie, malformed, expired, replayed) is
#: the one of them the table keeps. The other anonymous refusals (a bad authorization
#: request, an ambiguous path, a refused consent answer or approvals change, too many
#: consent pages, a refused registration) are not in :data:`KEPT`: the log and the
#: metrics count them. A flood of these must not grow the table by one signed row per
#: request, so :class:`~consentgate.store.auditlog.AuditWriter` aggregates them per
#: (event, reason, source network) and interval; real decisions (approved, denied,
#: revoked) are never aggregated.
AGGREGATED: Final = frozenset({"callback_refused"})
#: Why a callback was refused, as its row names it: short, fixed, never the request's
#: text (the log line keeps the parser's own description).
CallbackRefusal = Literal["malformed", "no_state", "no_binding", "expired", "replayed"]
CALLBACK_REFUSALS: Final = frozenset(get_args(CallbackRefusal))


def aggregation_key(entry: AuditEntry) -> tuple[str, str, str] | None:
    """The bucket an entry of an :data:`AGGREGATED` event is counted in, else None."""
    if entry.event not in AGGREGATED:
        return None
    return entry.event, str(entry.detail.get("reason", "")), str(entry.detail.get("source", ""))


def entry_for(event: AuditEvent, at: int) -> AuditEntry | None:
    """The table's row for an audit event, or None for events the table does not keep.

    Kept: what an operator must be able to review after an incident (approved,
    denied, revoked and by whom, records expired and purged, a tampered record
    found, a callback refused, a key rotated). Not kept: what happens on every
    request (a remembered approval relayed, a consent page shown), which the
    ``consentgate.audit`` log and the metrics count.
    """
    name = event.event
    f = event.fields
    rid = event.request_id

    def text(key: str) -> str:
        value = f.get(key)
        return "" if value is None else str(value)

    if name in ("consent_approved", "consent_denied"):
        detail: dict[str, object] = {}
        for key in ("remembered", "upstream_status", "bound", "client_kind", "client_domain"):
            if key in f:
                detail[key] = f[key]
        return AuditEntry(
            at,
            "approved" if name == "consent_approved" else "denied",
            request_id=rid,
            actor="person",
            client_id=text("client_id"),
            redirect_uri=text("redirect_uri"),
            scopes=text("scopes"),
            subject=text("subject"),
            detail=detail,
        )
    if name == "consents_revoked":
        count = f.get("count")
        if not isinstance(count, int) or count <= 0:
            return None
        selector = text("selector")
        columns = {selector: text("value")} if selector in _SELECTOR_COLUMNS else {}
        if "subject" in f:
            columns["subject"] = text("subject")
        detail = {"count": count, "selector": selector}
        if selector == "id":
            detail["id"] = text("value")
        started = f.get("started_at")
        if isinstance(started, int) and not isinstance(started, bool):
            detail["started_at"] = started
        return AuditEntry(at, "revoked", request_id=rid, actor=text("by"), detail=detail, **columns)
    if name == "consents_purged":
        return AuditEntry(
            at,
            "expired",
            actor="gate",
            detail={"count": f.get("count"), "keep_seconds": f.get("keep_seconds")},
        )
    if name == "tamper":
        return AuditEntry(
            at,
            "tampered",
            request_id=rid,
            actor="gate",
            detail={"kind": text("kind"), "id": text("id"), "reason": text("reason")},
        )
    if name == "callback_refused":
        # A fixed reason and the source network only: the row is counted, not a copy
        # of what an anonymous client sent (its parameter names, say).
        refusal = text("refusal") or text("reason")
        detail = {
            "reason": refusal if refusal in CALLBACK_REFUSALS else "refused",
            "source": text("source")[:64],
            "count": 1,
        }
        return AuditEntry(
            at,
            "callback_refused",
            request_id=rid,
            actor="gate",
            subject=text("subject"),
            detail=detail,
        )
    if name == "key_rotated":
        return AuditEntry(
            at,
            "key_rotated",
            actor=text("by") or "cli",
            detail={"active_key": text("active_key"), "previous_key": text("previous_key")},
        )
    return None
