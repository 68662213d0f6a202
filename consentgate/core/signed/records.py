"""Consent and client records, and the canonical encoding their signatures cover.

A record is honoured only if its Ed25519 signature verifies over *every* field
that carries meaning, the key id included (so a record cannot be relabelled to
another key) and ``revoked_at`` included (so a revocation cannot be undone by
setting the column back to NULL). The signature is the only field not signed.

Canonical encoding, version 1 (the bytes that are signed)::

    b"consentgate-consent-v1\\n" + JSON
    b"consentgate-client-v1\\n"  + JSON
    b"consentgate-pending-v1\\n" + JSON

where JSON is the UTF-8 encoding of one object holding every field except
``signature``: keys sorted, no whitespace (``","`` and ``":"`` separators),
non-ASCII characters written as themselves, times as integer unix seconds,
``null`` for an absent optional value, consent ``scopes`` as a sorted list of
distinct strings, client ``redirect_uris`` as a list in registration order and
the client's raw ``registration`` as a JSON *string* (signed byte for byte).
For these field types the JSON is exactly RFC 8785 (JCS) output, so any JCS
library reproduces it. The prefix separates the two record types (a client
signature can never pass as a consent signature) and versions the encoding: a
future ``-v2`` can coexist with v1 records.

Why a signed record and not a cookie: FastMCP's consent lived only in signed
cookies, so the server could neither revoke, expire, audit nor rotate keys
(docs/references.md, "Lessons from FastMCP's OAuthProxy consent screen"). The store
keeps the record; the signature makes an edit of the database file visible.

What a signature cannot see: the deletion of a row, or the replacement of a row
by an earlier version of itself that was also validly signed (an un-revocation
by restoring the pre-revocation row from a backup). Both need write access to
the database file; keep it, its directory and backups as private as the keys.

Pure module: no aiohttp import.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, TypeVar

#: How consents are chosen for revocation (by one record, one client, one redirect URI,
#: one subject, or all): the CLI's and the admin API's selectors, the store's, and the
#: ``consents_revoked`` audit row's.
RevokeSelector = Literal["id", "client_id", "redirect_uri", "subject", "all"]

if TYPE_CHECKING:
    from consentgate.core.signed.keyring import KeyRing

CONSENT_ENCODING: Final = "consentgate-consent-v1"
CLIENT_ENCODING: Final = "consentgate-client-v1"
PENDING_ENCODING: Final = "consentgate-pending-v1"
_CONSENT_PREFIX: Final = CONSENT_ENCODING.encode("ascii") + b"\n"
_CLIENT_PREFIX: Final = CLIENT_ENCODING.encode("ascii") + b"\n"
_PENDING_PREFIX: Final = PENDING_ENCODING.encode("ascii") + b"\n"

#: Longest values a consent record stores (characters). A redirect URI, resource or
#: scope string of 8 KB has no business in a record: the gate
#: refuses such requests before they reach the store, and the store refuses them too.
MAX_CLIENT_ID_LENGTH: Final = 512
MAX_URI_LENGTH: Final = 2048
MAX_SCOPE_LENGTH: Final = 2048
MAX_SUBJECT_LENGTH: Final = 128
#: Longest payload of a pending consent page (bytes of UTF-8): what the gate needs to
#: resume the request, not the 64 KiB a form may carry.
MAX_PENDING_PAYLOAD: Final = 16 * 1024

#: The integers a store column holds: SQLite's INTEGER (and its rowid) and PostgreSQL's
#: ``bigint`` are 64-bit signed. A number from outside (an admin cursor, ``since``) is
#: checked against this where it is parsed: beyond it, the drivers raise
#: ``OverflowError`` (sqlite3) or a ``DataError`` (asyncpg) instead of answering.
STORE_INTEGERS: Final = range(-(2**63), 2**63)

#: Columns of the ``audit`` table, in order (:mod:`consentgate.audit.trail`: each row
#: is hashed into a chain and its hash signed).
AUDIT_COLUMNS: Final = (
    "seq",
    "at",
    "event",
    "request_id",
    "actor",
    "client_id",
    "redirect_uri",
    "scopes",
    "subject",
    "detail",
    "prev",
    "hash",
    "key_id",
    "signature",
)

#: Columns of the ``consents`` table, in order; every one but ``signature`` is signed.
CONSENT_COLUMNS: Final = (
    "id",
    "subject",
    "client_id",
    "redirect_uri",
    "scopes",
    "resource",
    "granted_at",
    "expires_at",
    "revoked_at",
    "key_id",
    "signature",
)
#: Columns of the ``clients`` table, in order; every one but ``signature`` is signed.
CLIENT_COLUMNS: Final = (
    "client_id",
    "client_name",
    "redirect_uris",
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "registered_at",
    "registration",
    "key_id",
    "signature",
)
#: Registration response members never stored (RFC 7591 §3.2.1, RFC 7592 §3): secrets.
SECRET_REGISTRATION_FIELDS: Final = frozenset({"client_secret", "registration_access_token"})
_URI_FIELDS: Final = ("client_uri", "logo_uri", "tos_uri", "policy_uri")

Status = Literal["active", "expired", "revoked"]


class MalformedRecord(ValueError):
    """A stored row that cannot be a record this code wrote (wrong type, bad JSON)."""


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8; raises ValueError for what JSON cannot carry.

    For objects of strings, integers, null and lists of strings this is RFC 8785.
    """
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    except TypeError as exc:
        raise ValueError(f"not representable as JSON: {exc}") from None


def check_text(name: str, value: object, *, allow_empty: bool = False) -> str:
    """A string that can be stored and signed: valid Unicode, no NUL, non-empty unless allowed."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    if not value and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    if "\x00" in value:
        raise ValueError(f"{name} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} must be valid Unicode (no lone surrogates)") from None
    return value


def check_length(name: str, value: str, limit: int) -> str:
    """``value`` if it is at most ``limit`` characters; else ValueError naming the field."""
    if len(value) > limit:
        raise ValueError(f"{name} is {len(value)} characters long; at most {limit} are stored")
    return value


def scope_set(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes as a set of non-empty strings; a bare string is refused.

    ``"openid profile"`` iterated would be a set of letters, the classic bug; the
    caller splits a scope parameter (RFC 6749 §3.3) before calling.
    """
    if isinstance(scopes, str | bytes):
        raise TypeError("scopes must be a collection of strings, not a single string")
    return frozenset(check_text("scope", scope) for scope in scopes)


def encode_scopes(scopes: Iterable[str]) -> str:
    """The stored and signed form of a scope set: a sorted JSON list."""
    return json.dumps(sorted(scopes), separators=(",", ":"), ensure_ascii=False)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _row_text(row: Sequence[Any], index: int, columns: Sequence[str]) -> str:
    value = row[index]
    if not isinstance(value, str):
        raise MalformedRecord(f"{columns[index]} is {type(value).__name__}, not text")
    return value


def _row_optional_text(row: Sequence[Any], index: int, columns: Sequence[str]) -> str | None:
    return None if row[index] is None else _row_text(row, index, columns)


def _row_int(row: Sequence[Any], index: int, columns: Sequence[str]) -> int:
    value = row[index]
    if type(value) is not int:
        raise MalformedRecord(f"{columns[index]} is {type(value).__name__}, not an integer")
    return value


def _row_bytes(row: Sequence[Any], index: int, columns: Sequence[str]) -> bytes:
    value = row[index]
    if not isinstance(value, bytes):
        raise MalformedRecord(f"{columns[index]} is {type(value).__name__}, not a blob")
    return value


def _row_string_list(row: Sequence[Any], index: int, columns: Sequence[str]) -> list[str]:
    text = _row_text(row, index, columns)
    try:
        value = json.loads(text)
    except ValueError:
        raise MalformedRecord(f"{columns[index]} is not JSON") from None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MalformedRecord(f"{columns[index]} is not a JSON list of strings")
    return value


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One person's (``subject``'s) approval of one client, as stored and signed.

    ``subject`` is a digest the gate derives from the browser identity; the store
    treats it as opaque. ``redirect_uri`` is the exact string approved: a client
    sharing the proxy's fixed upstream client_id is only distinguishable by it
    (docs/references.md, "The attack the gate exists for").
    """

    id: str
    subject: str
    client_id: str
    redirect_uri: str
    scopes: frozenset[str]
    resource: str
    granted_at: int
    expires_at: int
    revoked_at: int | None
    key_id: str
    signature: bytes

    def signed_fields(self) -> dict[str, Any]:
        """Every field but the signature, in the form the canonical encoding uses."""
        return {
            "id": self.id,
            "subject": self.subject,
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scopes": sorted(self.scopes),
            "resource": self.resource,
            "granted_at": self.granted_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "key_id": self.key_id,
        }

    def signing_input(self) -> bytes:
        """``b"consentgate-consent-v1\\n"`` + canonical JSON of :meth:`signed_fields`."""
        return _CONSENT_PREFIX + canonical_json(self.signed_fields())

    def status(self, now: float) -> Status:
        if self.revoked_at is not None:
            return "revoked"
        return "active" if now < self.expires_at else "expired"

    def is_active(self, now: float) -> bool:
        """Unrevoked and unexpired at ``now`` (``expires_at`` itself is already expired)."""
        return self.revoked_at is None and now < self.expires_at

    def covers(self, scopes: Iterable[str]) -> bool:
        """Every requested scope was approved (the subset rule)."""
        return self.scopes.issuperset(scopes)

    def to_json(self) -> dict[str, Any]:
        """The signed fields plus the signature (base64url), for export and ``--json``."""
        return {**self.signed_fields(), "signature": _b64url(self.signature)}

    def to_row(self) -> tuple[Any, ...]:
        """Values in :data:`CONSENT_COLUMNS` order."""
        return (
            self.id,
            self.subject,
            self.client_id,
            self.redirect_uri,
            encode_scopes(self.scopes),
            self.resource,
            self.granted_at,
            self.expires_at,
            self.revoked_at,
            self.key_id,
            self.signature,
        )

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ConsentRecord:
        """Parse a stored row strictly; raises :class:`MalformedRecord`.

        Strict on purpose: SQLite accepts any type in any column, and the scopes
        text must be exactly the canonical form, so an edit that keeps the meaning
        but changes the bytes is still an edit.
        """
        if len(row) != len(CONSENT_COLUMNS):
            raise MalformedRecord(f"expected {len(CONSENT_COLUMNS)} columns, got {len(row)}")
        c = CONSENT_COLUMNS
        scopes = _row_string_list(row, 4, c)
        if encode_scopes(set(scopes)) != row[4]:
            raise MalformedRecord("scopes are not in canonical form")
        revoked_at = None if row[8] is None else _row_int(row, 8, c)
        return cls(
            id=_row_text(row, 0, c),
            subject=_row_text(row, 1, c),
            client_id=_row_text(row, 2, c),
            redirect_uri=_row_text(row, 3, c),
            scopes=frozenset(scopes),
            resource=_row_text(row, 5, c),
            granted_at=_row_int(row, 6, c),
            expires_at=_row_int(row, 7, c),
            revoked_at=revoked_at,
            key_id=_row_text(row, 9, c),
            signature=_row_bytes(row, 10, c),
        )


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A client registration the gate observed, from the registration RESPONSE.

    RFC 7591 §3.2.1: the response is authoritative (the server may have changed
    or dropped requested metadata), so the request is never stored. The metadata
    is self-asserted by whoever registered; the gate decides how to show it.
    ``registration`` is the whole response minus secrets, as canonical JSON text.
    """

    client_id: str
    client_name: str | None
    redirect_uris: tuple[str, ...]
    client_uri: str | None
    logo_uri: str | None
    tos_uri: str | None
    policy_uri: str | None
    registered_at: int
    registration_json: str
    key_id: str
    signature: bytes

    @classmethod
    def from_registration(cls, metadata: Mapping[str, Any], registered_at: int) -> ClientRecord:
        """An unsigned record from a parsed registration response.

        Keeps only string values for the name and URI fields and only the string
        members of ``redirect_uris``; drops ``client_secret`` and
        ``registration_access_token`` (never store secrets).
        """
        client_id = check_text("client_id", metadata.get("client_id"))
        sanitized = {
            str(key): value
            for key, value in metadata.items()
            if key not in SECRET_REGISTRATION_FIELDS
        }
        registration = canonical_json(sanitized).decode("utf-8")

        def optional_text(name: str) -> str | None:
            value = metadata.get(name)
            if not isinstance(value, str):
                return None
            return check_text(name, value, allow_empty=True)

        raw_uris = metadata.get("redirect_uris")
        uris = tuple(
            check_text("redirect_uri", uri)
            for uri in (raw_uris if isinstance(raw_uris, list) else [])
            if isinstance(uri, str)
        )
        uri_fields = {name: optional_text(name) for name in _URI_FIELDS}
        return cls(
            client_id=client_id,
            client_name=optional_text("client_name"),
            redirect_uris=uris,
            client_uri=uri_fields["client_uri"],
            logo_uri=uri_fields["logo_uri"],
            tos_uri=uri_fields["tos_uri"],
            policy_uri=uri_fields["policy_uri"],
            registered_at=registered_at,
            registration_json=registration,
            key_id="",
            signature=b"",
        )

    @property
    def registration(self) -> dict[str, Any]:
        """The stored registration response (secrets removed), parsed."""
        value = json.loads(self.registration_json)
        return value if isinstance(value, dict) else {}

    def signed_fields(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_name": self.client_name,
            "redirect_uris": list(self.redirect_uris),
            "client_uri": self.client_uri,
            "logo_uri": self.logo_uri,
            "tos_uri": self.tos_uri,
            "policy_uri": self.policy_uri,
            "registered_at": self.registered_at,
            "registration": self.registration_json,
            "key_id": self.key_id,
        }

    def signing_input(self) -> bytes:
        """``b"consentgate-client-v1\\n"`` + canonical JSON of :meth:`signed_fields`."""
        return _CLIENT_PREFIX + canonical_json(self.signed_fields())

    def to_json(self) -> dict[str, Any]:
        return {**self.signed_fields(), "signature": _b64url(self.signature)}

    def to_row(self) -> tuple[Any, ...]:
        """Values in :data:`CLIENT_COLUMNS` order."""
        return (
            self.client_id,
            self.client_name,
            json.dumps(list(self.redirect_uris), separators=(",", ":"), ensure_ascii=False),
            self.client_uri,
            self.logo_uri,
            self.tos_uri,
            self.policy_uri,
            self.registered_at,
            self.registration_json,
            self.key_id,
            self.signature,
        )

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ClientRecord:
        """Parse a stored row strictly; raises :class:`MalformedRecord`."""
        if len(row) != len(CLIENT_COLUMNS):
            raise MalformedRecord(f"expected {len(CLIENT_COLUMNS)} columns, got {len(row)}")
        c = CLIENT_COLUMNS
        uris = _row_string_list(row, 2, c)
        if json.dumps(uris, separators=(",", ":"), ensure_ascii=False) != row[2]:
            raise MalformedRecord("redirect_uris are not in canonical form")
        return cls(
            client_id=_row_text(row, 0, c),
            client_name=_row_optional_text(row, 1, c),
            redirect_uris=tuple(uris),
            client_uri=_row_optional_text(row, 3, c),
            logo_uri=_row_optional_text(row, 4, c),
            tos_uri=_row_optional_text(row, 5, c),
            policy_uri=_row_optional_text(row, 6, c),
            registered_at=_row_int(row, 7, c),
            registration_json=_row_text(row, 8, c),
            key_id=_row_text(row, 9, c),
            signature=_row_bytes(row, 10, c),
        )


#: Columns of the ``pending`` table, in order; every one but ``signature`` is signed.
PENDING_COLUMNS: Final = (
    "id",
    "subject",
    "source",
    "payload",
    "created_at",
    "expires_at",
    "key_id",
    "signature",
)


@dataclass(frozen=True, slots=True)
class PendingRecord:
    """A consent page waiting for its answer: what was shown, to whom, until when.

    ``payload`` is opaque to the store (the gate's serialised ``PendingConsent``);
    ``source`` is the network the request came from, for the per-address cap.
    The signature covers the id, the subject, the expiry and the payload together:
    a payload copied from an attacker's row over a
    victim's row no longer verifies, because the id and subject it was signed with
    are not the row's.
    """

    id: str
    subject: str
    source: str
    payload: str
    created_at: int
    expires_at: int
    key_id: str
    signature: bytes

    def signed_fields(self) -> dict[str, Any]:
        """Every column but the signature: each field is stored as it is."""
        return {name: getattr(self, name) for name in PENDING_COLUMNS[:-1]}

    def signing_input(self) -> bytes:
        """``b"consentgate-pending-v1\\n"`` + canonical JSON of :meth:`signed_fields`."""
        return _PENDING_PREFIX + canonical_json(self.signed_fields())

    def to_row(self) -> tuple[Any, ...]:
        """Values in :data:`PENDING_COLUMNS` order."""
        return tuple(getattr(self, name) for name in PENDING_COLUMNS)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> PendingRecord:
        """Parse a stored row strictly; raises :class:`MalformedRecord`."""
        if len(row) != len(PENDING_COLUMNS):
            raise MalformedRecord(f"expected {len(PENDING_COLUMNS)} columns, got {len(row)}")
        c = PENDING_COLUMNS
        return cls(
            id=_row_text(row, 0, c),
            subject=_row_text(row, 1, c),
            source=_row_text(row, 2, c),
            payload=_row_text(row, 3, c),
            created_at=_row_int(row, 4, c),
            expires_at=_row_int(row, 5, c),
            key_id=_row_text(row, 6, c),
            signature=_row_bytes(row, 7, c),
        )


class Signable(Protocol):
    """A signed row, as :func:`verification_failure` checks it: the records of this
    module and a client's first sighting (:mod:`consentgate.core.signed.sightings`),
    each with its own prefixed encoding, so one rule verifies them all."""

    @property
    def key_id(self) -> str: ...

    @property
    def signature(self) -> bytes: ...

    def signing_input(self) -> bytes: ...


_R = TypeVar("_R", ConsentRecord, ClientRecord, PendingRecord)


def sign_record(record: _R, keyring: KeyRing) -> _R:
    """The record with ``key_id`` set to the ring's active key and a fresh signature."""
    labelled = dataclasses.replace(record, key_id=keyring.active_kid)
    kid, signature = keyring.sign(labelled.signing_input())
    if kid != labelled.key_id:  # pragma: no cover - KeyRing.sign always uses active_kid
        raise RuntimeError("the key ring signed with a key other than its active key")
    return dataclasses.replace(labelled, signature=signature)


def verification_failure(record: Signable, keyring: KeyRing) -> str | None:
    """Why ``record`` must not be honoured, or None when its signature verifies."""
    if not keyring.has_key(record.key_id):
        return f"signed with unknown key {record.key_id!r}"
    try:
        data = record.signing_input()
    except ValueError as exc:
        return f"cannot be encoded: {exc}"
    if not keyring.verify(record.key_id, data, record.signature):
        return "signature does not match the fields (edited or forged)"
    return None


def consent_listing(record: ConsentRecord, now: float) -> dict[str, Any]:
    """A consent as the operators see it: ``consentgate consents list --json`` and the
    admin API (``GET /admin/consents``) both print this, so a script written against
    one reads the other. The signed fields, the signature, and its status at ``now``."""
    return {**record.to_json(), "status": record.status(now)}


def client_listing(record: ClientRecord) -> dict[str, Any]:
    """A learned client as ``consentgate consents export`` and ``GET /admin/clients``
    show it: the signed fields and the signature."""
    return record.to_json()
