"""Which kind of client a client_id names, and the domain a URL client is known by.

The gate meets two kinds of client (docs/clients.md): one that registered
(RFC 7591; its registration answer was relayed through the gate, which keeps it,
signed, in the store) and one named by an https URL, whose metadata document the
gate fetched and checked (MCP 2025-11-25, "Client ID Metadata Documents"). A
client_id that is neither (an opaque id the store has no registration of: registered
before the gate was put in front, or at another gate) is ``unknown``. Operators see
the kind wherever a client appears (the admin API, ``consents list``, audit lines and
rows, metrics labels), and a URL client also by its **domain**: the host the gate
fetched its document from over HTTPS, as the browser reads it
(``client_id_urls.ClientIdURL.host``), which is what the consent page shows as the
verified domain.

The kind is a closed set, so it can be a metrics label (a client_id never is: its
values are unbounded). Pure module: no I/O; the store lookup is the caller's,
passed in as a function.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from consentgate.clients.client_id_urls import (
    BadClientIdURL,
    is_url_client_id,
    parse_client_id_url,
)

# The closed set is defined with the client views (core.clientinfo.CLIENT_KINDS), where
# the core (the admin API's parsing) reads it too.
from consentgate.core.clientinfo import ClientKind
from consentgate.core.signed.records import ConsentRecord


def client_kind(client_id: str, *, registered: bool) -> ClientKind:
    """``metadata_document`` for a client_id that claims a URL (whatever the store
    holds: a URL is never looked up as a registration), else ``registered`` when the
    store knows a registration of it, else ``unknown``."""
    if is_url_client_id(client_id):
        return "metadata_document"
    return "registered" if registered else "unknown"


def client_domain(client_id: str) -> str | None:
    """The host of a valid URL client_id (its verified domain), else None."""
    if not is_url_client_id(client_id):
        return None
    try:
        return parse_client_id_url(client_id).host
    except BadClientIdURL:
        return None


@dataclass(frozen=True, slots=True)
class ClientDescription:
    """A client's kind and, for a URL client, its domain."""

    kind: ClientKind
    domain: str | None

    def fields(self) -> dict[str, str | None]:
        """The listing fields (``consents list --json``, ``GET /admin/consents``)."""
        return {"client_kind": self.kind, "client_domain": self.domain}


def describe(client_id: str, *, registered: bool) -> ClientDescription:
    return ClientDescription(
        client_kind(client_id, registered=registered), client_domain(client_id)
    )


class Describer:
    """Describes client_ids, asking ``is_registered`` (the store) once per distinct
    client_id that is not a URL, and never for a URL: a listing of many records of a
    few clients costs a few lookups."""

    def __init__(self, is_registered: Callable[[str], Awaitable[bool]]) -> None:
        self._is_registered = is_registered
        self._known: dict[str, ClientDescription] = {}

    async def __call__(self, client_id: str) -> ClientDescription:
        found = self._known.get(client_id)
        if found is None:
            registered = not is_url_client_id(client_id) and await self._is_registered(client_id)
            found = self._known[client_id] = describe(client_id, registered=registered)
        return found


@dataclass(slots=True)
class ApprovedClient:
    """A client as its approvals show it: how many records name it, how many are
    active, and the latest approval (for clients the store keeps no registration of)."""

    client_id: str
    description: ClientDescription
    approvals: int = 0
    active_approvals: int = 0
    last_approved_at: int = 0

    def listing(self) -> dict[str, object]:
        """``GET /admin/clients?kind=metadata_document`` (or ``unknown``): one entry."""
        return {
            "client_id": self.client_id,
            **self.description.fields(),
            "approvals": self.approvals,
            "active_approvals": self.active_approvals,
            "last_approved_at": self.last_approved_at,
        }


class ApprovalTally:
    """Verified consent records in, one :class:`ApprovedClient` per client_id out, in
    the order of each client's first record (oldest first, as every listing)."""

    def __init__(self) -> None:
        self._clients: dict[str, ApprovedClient] = {}

    def add(self, record: ConsentRecord, description: ClientDescription, now: float) -> None:
        entry = self._clients.get(record.client_id)
        if entry is None:
            entry = self._clients[record.client_id] = ApprovedClient(record.client_id, description)
        entry.approvals += 1
        entry.active_approvals += record.is_active(now)
        entry.last_approved_at = max(entry.last_approved_at, record.granted_at)

    def clients(self) -> list[ApprovedClient]:
        return list(self._clients.values())
