"""The consent decisions as audit events: asked, relayed without asking, approved,
denied, remembered, revoked and purged.

One approval is two events, one vocabulary. The person's answer at the consent page
is :class:`ConsentApproved` (emitted by the web layer once the upstream answered: the
page, the client's kind, whether it is remembered, what the upstream said); when it is
remembered, the store's durable record of it is :class:`ConsentRecorded` (or
:class:`ConsentRefreshed` for a record renewed in place: its id, resource and expiry).
Both describe the same grant and take its terms from one base, :class:`GrantEvent`
(``client_id``, ``redirect_uri``, ``scopes``, ``subject``: same names, same types),
so a reader joins them on those fields; the second is derived from the first, never
a second decision. Only the decision is a row of the audit table
(:mod:`consentgate.audit.rows`); the record is the consent store's own.

Scopes are one space-separated, sorted string (as the records and the table keep
them); the subject is the browser's keyed digest, never a cookie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from consentgate.audit.events import TypedEvent, optional
from consentgate.core.clientinfo import ClientKind
from consentgate.core.signed.records import RevokeSelector

#: Why an authorization request was relayed without asking (``consent_silent``).
SilentReason = Literal["preapproved", "remembered"]
#: Who revoked consents or rotated a key (``cli``, ``admin``, the person's own
#: approvals page: ``self``, or an embedding application: ``library``).
Actor = Literal["cli", "admin", "self", "library"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentAsked(TypedEvent):
    """The consent page was shown for a validated request."""

    name: ClassVar[str] = "consent_asked"

    client_id: str
    redirect_uri: str
    #: The client is known: registered, or named by a URL whose document lists it.
    verified: bool
    client_kind: ClientKind | None = None
    client_domain: str | None = None
    subject: str
    pending: str

    def describe(self) -> str:
        return "consent page shown"

    def log_fields(self) -> dict[str, object]:
        return {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "verified": self.verified,
            **optional(client_kind=self.client_kind, client_domain=self.client_domain),
            "subject": self.subject,
            "pending": self.pending,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentSilent(TypedEvent):
    """An authorization request relayed without asking: preapproved by the
    configuration, or approved and remembered by this browser before."""

    name: ClassVar[str] = "consent_silent"

    reason: SilentReason
    client_id: str
    redirect_uri: str
    subject: str
    client_kind: ClientKind | None = None
    client_domain: str | None = None
    #: The upstream's status (None: it did not answer), and whether the flow was bound.
    upstream_status: int | None
    bound: bool

    def describe(self) -> str:
        return "authorization relayed without asking"

    def log_fields(self) -> dict[str, object]:
        # Written out (one per relayed remembered request): the line's order, the
        # client's kind and domain only when known.
        fields: dict[str, object] = {
            "reason": self.reason,
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "subject": self.subject,
        }
        if self.client_kind is not None:
            fields["client_kind"] = self.client_kind
        if self.client_domain is not None:
            fields["client_domain"] = self.client_domain
        fields["upstream_status"] = self.upstream_status
        fields["bound"] = self.bound
        return fields


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantEvent(TypedEvent):
    """The terms of one grant, shared by the decision and the record of it."""

    client_id: str
    redirect_uri: str
    scopes: str
    subject: str

    def _grant(self) -> dict[str, object]:
        return {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scopes": self.scopes,
            "subject": self.subject,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentDenied(GrantEvent):
    """The person denied the request shown on a consent page."""

    name: ClassVar[str] = "consent_denied"

    pending: str
    client_kind: ClientKind | None = None
    client_domain: str | None = None

    def describe(self) -> str:
        return "consent denied"

    def log_fields(self) -> dict[str, object]:
        return {
            **self._grant(),
            "pending": self.pending,
            **optional(client_kind=self.client_kind, client_domain=self.client_domain),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentApproved(GrantEvent):
    """The person approved the request shown on a consent page, and it was relayed."""

    name: ClassVar[str] = "consent_approved"

    pending: str
    client_kind: ClientKind | None = None
    client_domain: str | None = None
    #: Remembered: a :class:`ConsentRecorded` of the same grant was written first.
    remembered: bool
    upstream_status: int | None
    bound: bool

    def describe(self) -> str:
        return "consent approved"

    def log_fields(self) -> dict[str, object]:
        return {
            **self._grant(),
            "pending": self.pending,
            **optional(client_kind=self.client_kind, client_domain=self.client_domain),
            "remembered": self.remembered,
            "upstream_status": self.upstream_status,
            "bound": self.bound,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentRecorded(GrantEvent):
    """A remembered approval written to the store, durably (record ``id``)."""

    name: ClassVar[str] = "consent_recorded"
    verb: ClassVar[str] = "recorded"

    id: str
    resource: str
    expires_at: int

    def describe(self) -> str:
        return (
            f"consent {self.id} {self.verb} for client {self.client_id!r} "
            f"redirect_uri {self.redirect_uri!r}"
        )

    def log_fields(self) -> dict[str, object]:
        return {
            "id": self.id,
            "subject": self.subject,
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scopes": self.scopes,
            "resource": self.resource,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentRefreshed(ConsentRecorded):
    """A remembered approval renewed in place (the same grant approved again)."""

    name: ClassVar[str] = "consent_refreshed"
    verb: ClassVar[str] = "refreshed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentsRevoked(TypedEvent):
    """Unrevoked records matching one selector were revoked (``count`` of them).

    ``subject`` is the owner when the person's own approvals page narrowed the
    selector to its browser; ``started_at`` when the revocation began (the records
    granted before it are covered: :class:`consentgate.audit.chain.Revocations`).
    """

    name: ClassVar[str] = "consents_revoked"

    selector: RevokeSelector
    value: str | None
    count: int
    by: Actor
    started_at: int
    subject: str | None = None

    def describe(self) -> str:
        return f"revoked {self.count} consent(s) by {self.selector}"

    def log_fields(self) -> dict[str, object]:
        return {
            "selector": self.selector,
            "value": self.value,
            "count": self.count,
            "by": self.by,
            "started_at": self.started_at,
            **optional(subject=self.subject),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentsPurged(TypedEvent):
    """Records expired or revoked longer ago than ``keep_seconds`` were deleted."""

    name: ClassVar[str] = "consents_purged"

    count: int
    keep_seconds: int

    def describe(self) -> str:
        return (
            f"purged {self.count} consent record(s) expired or revoked before the retention period"
        )

    def log_fields(self) -> dict[str, object]:
        return {"count": self.count, "keep_seconds": self.keep_seconds}
