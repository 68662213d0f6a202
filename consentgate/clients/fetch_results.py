"""What a document fetch answers: a validated document with its expiry, or a failure
with one reason out of a closed set.

The caller (the authorization endpoint) needs three things from a failure: which
rule stopped it (a closed set, so a metric label or a test can name it and a new
reason cannot appear unnoticed), a sentence the person in front of the consent page
can read, and a detail for the operator's log. The sentence never repeats what the
client or the document host wrote (a URL, a header, a field's value): only the
gate's own words, so nothing a stranger controls is put in front of the person as
if the gate said it. The detail may name the address, the status code or the field.

Reasons, in the order a fetch meets them (MCP 2025-11-25, "Client ID Metadata
Document Security"; Security Best Practices, "SSRF"; docs/references.md):

========================  =====================================================
``disabled``              ``[clients] fetch_documents = false``
``blocked_domain``        the host is refused by ``blocked_domains`` / ``allowed_domains``
``rate_limited``          the host had its fetches for this minute
``busy``                  as many fetches as allowed are already running
``dns_failed``            the name does not resolve
``blocked_address``       a resolved address is not one the gate may connect to
``connect_failed``        no resolved address accepted a connection
``tls_failed``            the TLS handshake or the certificate check failed
``timeout``               the whole fetch took longer than ``fetch_timeout``
``bad_response``          the answer is not well-formed HTTP/1.1
``redirect``              a 3xx: the gate follows no redirect
``http_status``           any other status than 200 (or 304 to a revalidation)
``not_json``              the Content-Type is not JSON, or the body is encoded
``too_large``             the body is longer than 5,120 bytes
``invalid_document``      the body is not a valid document for this client_id
========================  =====================================================

Pure module: data only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

from consentgate.clients.metadata_documents import ClientMetadataDocument

FailureReason = Literal[
    "disabled",
    "blocked_domain",
    "rate_limited",
    "busy",
    "dns_failed",
    "blocked_address",
    "connect_failed",
    "tls_failed",
    "timeout",
    "bad_response",
    "redirect",
    "http_status",
    "not_json",
    "too_large",
    "invalid_document",
]
FAILURE_REASONS: Final[tuple[FailureReason, ...]] = get_args(FailureReason)

#: Failures about the gate's own load, not the document: never remembered, so the
#: client_id is fetched as soon as the gate has room again.
TRANSIENT: Final[frozenset[FailureReason]] = frozenset({"rate_limited", "busy"})

_UNREACHABLE: Final = "The gate could not reach the address this application is named by"

#: What the person is told, per reason: the gate's words only.
PERSON_MESSAGES: Final[dict[FailureReason, str]] = {
    "disabled": "This service does not accept applications named by a web address.",
    "blocked_domain": "This service does not accept applications from this web site.",
    "rate_limited": (
        "Too many applications from this web site were looked up just now. "
        "Please try again in a minute."
    ),
    "busy": "The service is busy looking up other applications. Please try again shortly.",
    "dns_failed": "The web site this application is named by does not exist.",
    "blocked_address": (
        "The web site this application is named by points to an address this service "
        "does not connect to."
    ),
    "connect_failed": f"{_UNREACHABLE}.",
    "tls_failed": (
        "The web site this application is named by did not prove its identity "
        "(its certificate was not accepted)."
    ),
    "timeout": f"{_UNREACHABLE} in time.",
    "bad_response": (
        "The web site this application is named by answered in a way the gate cannot read."
    ),
    "redirect": (
        "The web site this application is named by sent the gate elsewhere; "
        "the gate does not follow redirects."
    ),
    "http_status": "The web site this application is named by did not return its description.",
    "not_json": "The web site this application is named by did not return a JSON description.",
    "too_large": "The description of this application is larger than the gate accepts.",
    "invalid_document": "The description of this application is not valid",
}


@dataclass(frozen=True)
class Fetched:
    """A validated document for ``document.client_id``, usable until ``expires_at``
    (unix seconds of the fetcher's clock)."""

    document: ClientMetadataDocument
    expires_at: float
    #: Whether it came from the cache without a request (a revalidation is a request).
    cached: bool = False

    @property
    def ok(self) -> Literal[True]:
        return True


@dataclass(frozen=True)
class FetchFailed:
    """No usable document: ``reason`` (the closed set), ``message`` for the person,
    ``detail`` for the log (may name addresses, statuses, fields; never a secret)."""

    client_id: str
    reason: FailureReason
    message: str
    detail: str
    #: Whether this is a remembered failure (no request was made this time).
    cached: bool = False
    #: Until when the failure is remembered (unix seconds); None: not remembered.
    retry_at: float | None = None

    @property
    def ok(self) -> Literal[False]:
        return False


FetchResult = Fetched | FetchFailed


def failure(
    client_id: str, reason: FailureReason, detail: str, *, problem: str | None = None
) -> FetchFailed:
    """A :class:`FetchFailed` with the person's sentence for ``reason``; ``problem``
    (the document rule broken, which names a field, never a value) completes the
    ``invalid_document`` sentence."""
    message = PERSON_MESSAGES[reason]
    if reason == "invalid_document":
        message = f"{message}: {problem}." if problem else f"{message}."
    return FetchFailed(client_id=client_id, reason=reason, message=message, detail=detail)
