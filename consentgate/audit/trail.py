"""The audit table's rows: how each row is encoded, chained and signed.

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

Which events become rows, and each one's row: :mod:`consentgate.audit.rows`; checking
the chain, its head and the high-water mark: :mod:`consentgate.audit.chain`.

The table never holds a code, token, state or cookie: the browser is its subject
digest, as on the ``consentgate.audit`` log. Pure module: no aiohttp import.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from consentgate.core.auditquery import iso_time
from consentgate.core.signed.records import AUDIT_COLUMNS

if TYPE_CHECKING:
    from consentgate.core.signed.keyring import KeyRing

ENCODING: Final = "consentgate-audit-v1"
_PREFIX: Final = ENCODING.encode("ascii") + b"\n"
_ROW_SIGNED: Final = b"consentgate-audit-row-v1\n"
_HEAD_SIGNED: Final = b"consentgate-audit-head-v1\n"
#: ``prev`` of the first row ever written.
GENESIS: Final = "0" * 64
#: The store setting that keeps the signed head of the chain.
HEAD_SETTING: Final = "audit.head"

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
