"""Clients as audit events: a registration observed or not learnable, a client named
by a URL refused, its metadata document unusable (docs/clients.md).

The reasons are closed sets: :data:`ClientRefusal` here, and the fetch's
``FailureReason`` of :mod:`consentgate.clients.fetch_results` (kept there, with the
fetcher that decides it; the client rules sit above this package, so the field is
typed as text and the metrics keep only the reasons of that set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from consentgate.audit.events import TypedEvent

#: Why a client named by a URL was refused without a fetch failing.
ClientRefusal = Literal["bad_client_id", "disabled", "blocked_domain", "redirect_uri_not_listed"]
#: Where a client named by a URL was checked: its authorization request, or the
#: consent answer (the document may have changed since the page was shown).
Where = Literal["authorize", "answer"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientRegistered(TypedEvent):
    """A dynamic registration answer (RFC 7591 §3.2.1) relayed and learned."""

    name: ClassVar[str] = "client_registered"

    client_id: str
    redirect_uris: tuple[str, ...]

    def describe(self) -> str:
        return "client registration observed"

    def log_fields(self) -> dict[str, object]:
        return {"client_id": self.client_id, "redirect_uris": " ".join(self.redirect_uris)}


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationRefused(TypedEvent):
    """A registration answer the gate cannot learn from (so it refuses to relay it)."""

    name: ClassVar[str] = "registration_refused"

    problem: str

    def describe(self) -> str:
        return "registration answer not learnable"

    def log_fields(self) -> dict[str, object]:
        return {"problem": self.problem}


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientRefused(TypedEvent):
    """A client named by a URL refused (its id, its domain, or its redirect URI)."""

    name: ClassVar[str] = "client_refused"

    reason: ClientRefusal
    at: Where
    client_id: str
    redirect_uri: str
    detail: str = ""

    def describe(self) -> str:
        return "client named by a URL refused"

    def log_fields(self) -> dict[str, object]:
        return {
            "reason": self.reason,
            "at": self.at,
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientDocumentFailed(TypedEvent):
    """A client's metadata document could not be used (fetched or cached)."""

    name: ClassVar[str] = "client_document_failed"

    #: One of ``consentgate.clients.fetch_results.FAILURE_REASONS``.
    reason: str
    at: Where
    client_id: str
    detail: str
    cached: bool

    def describe(self) -> str:
        return "client metadata document unusable"

    def log_fields(self) -> dict[str, object]:
        return {
            "reason": self.reason,
            "at": self.at,
            "client_id": self.client_id,
            "detail": self.detail,
            "cached": self.cached,
        }
