"""One example of every audit event type, with the message and fields its log line had
when events were a name, a message and free keyword fields (written out here as the
call sites wrote them), to check that the typed events write the same lines."""

from __future__ import annotations

from dataclasses import dataclass

from consentgate.audit.client_events import (
    ClientDocumentFailed,
    ClientRefused,
    ClientRegistered,
    RegistrationRefused,
)
from consentgate.audit.decisions import (
    ConsentApproved,
    ConsentAsked,
    ConsentDenied,
    ConsentRecorded,
    ConsentRefreshed,
    ConsentSilent,
    ConsentsPurged,
    ConsentsRevoked,
)
from consentgate.audit.events import Severity, TypedEvent
from consentgate.audit.identity_events import SignedIn, SignInRefused
from consentgate.audit.integrity import KeyAdded, KeyRotated, Tamper
from consentgate.audit.refusals import (
    AnswerRefused,
    ApprovalsRefused,
    AuthorizeNotNavigation,
    CallbackAccepted,
    CallbackRefused,
    ErrorRedirectWithheld,
    RequestRefused,
)

CB = "http://127.0.0.1:33418/callback"
SUBJECT = "b3f1c2d4e5a6978899aabbccddeeff00"
URL_CLIENT = "https://app.example/client.json"


@dataclass(frozen=True)
class Example:
    event: TypedEvent
    message: str
    fields: dict[str, object]
    severity: Severity = "info"


GRANT: dict[str, object] = {
    "client_id": "c1",
    "redirect_uri": CB,
    "scopes": "openid profile",
    "subject": SUBJECT,
}


EXAMPLES: tuple[Example, ...] = (
    Example(
        RequestRefused(request_id="r", error="invalid_request", reason="no client_id"),
        "authorization request refused",
        {"error": "invalid_request", "reason": "no client_id"},
    ),
    Example(
        AuthorizeNotNavigation(
            request_id="r",
            answer="interaction_required",
            client_id="c1",
            redirect_uri=CB,
            client_kind="registered",
        ),
        "authorization request from a program answered without relaying",
        {
            "answer": "interaction_required",
            "client_id": "c1",
            "redirect_uri": CB,
            "client_kind": "registered",
        },
    ),
    Example(
        ConsentAsked(
            request_id="r",
            client_id=URL_CLIENT,
            redirect_uri=CB,
            verified=True,
            client_kind="metadata_document",
            client_domain="app.example",
            subject=SUBJECT,
            pending="p1",
        ),
        "consent page shown",
        {
            "client_id": URL_CLIENT,
            "redirect_uri": CB,
            "verified": True,
            "client_kind": "metadata_document",
            "client_domain": "app.example",
            "subject": SUBJECT,
            "pending": "p1",
        },
    ),
    Example(
        ConsentSilent(
            request_id="r",
            reason="remembered",
            client_id="c1",
            redirect_uri=CB,
            subject=SUBJECT,
            client_kind="registered",
            upstream_status=302,
            bound=True,
        ),
        "authorization relayed without asking",
        {
            "reason": "remembered",
            "client_id": "c1",
            "redirect_uri": CB,
            "subject": SUBJECT,
            "client_kind": "registered",
            "upstream_status": 302,
            "bound": True,
        },
    ),
    Example(
        ConsentApproved(
            request_id="r",
            client_id="c1",
            redirect_uri=CB,
            scopes="openid profile",
            subject=SUBJECT,
            pending="p1",
            client_kind="registered",
            remembered=True,
            upstream_status=302,
            bound=True,
        ),
        "consent approved",
        {
            **GRANT,
            "pending": "p1",
            "client_kind": "registered",
            "remembered": True,
            "upstream_status": 302,
            "bound": True,
        },
    ),
    Example(
        ConsentDenied(
            request_id="r",
            client_id="c1",
            redirect_uri=CB,
            scopes="openid profile",
            subject=SUBJECT,
            pending="p1",
            client_kind="unknown",
        ),
        "consent denied",
        {**GRANT, "pending": "p1", "client_kind": "unknown"},
    ),
    Example(
        ConsentRecorded(
            id="rec1",
            subject=SUBJECT,
            client_id="c1",
            redirect_uri=CB,
            scopes="openid profile",
            resource="",
            expires_at=1_800_000_000,
        ),
        f"consent rec1 recorded for client 'c1' redirect_uri {CB!r}",
        {
            "id": "rec1",
            "subject": SUBJECT,
            "client_id": "c1",
            "redirect_uri": CB,
            "scopes": "openid profile",
            "resource": "",
            "expires_at": 1_800_000_000,
        },
    ),
    Example(
        ConsentRefreshed(
            id="rec1",
            subject=SUBJECT,
            client_id="c1",
            redirect_uri=CB,
            scopes="openid",
            resource="https://api.example/",
            expires_at=1_800_000_001,
        ),
        f"consent rec1 refreshed for client 'c1' redirect_uri {CB!r}",
        {
            "id": "rec1",
            "subject": SUBJECT,
            "client_id": "c1",
            "redirect_uri": CB,
            "scopes": "openid",
            "resource": "https://api.example/",
            "expires_at": 1_800_000_001,
        },
    ),
    Example(
        ConsentsRevoked(
            request_id="r",
            selector="id",
            value="rec1",
            count=1,
            by="self",
            started_at=1_700_000_000,
            subject=SUBJECT,
        ),
        "revoked 1 consent(s) by id",
        {
            "selector": "id",
            "value": "rec1",
            "count": 1,
            "by": "self",
            "started_at": 1_700_000_000,
            "subject": SUBJECT,
        },
    ),
    Example(
        ConsentsPurged(count=3, keep_seconds=86400),
        "purged 3 consent record(s) expired or revoked before the retention period",
        {"count": 3, "keep_seconds": 86400},
    ),
    Example(
        AnswerRefused(request_id="r", refusal="csrf", pending="p1"),
        "consent answer with a bad CSRF token",
        {"pending": "p1"},
    ),
    Example(
        AnswerRefused(request_id="r", refusal="cross_site", origin="https://evil.example"),
        "consent answer from another site",
        {"origin": "https://evil.example"},
    ),
    Example(
        AnswerRefused(request_id="r", refusal="no_browser"),
        "consent answer without browser cookie",
        {},
    ),
    Example(
        AnswerRefused(request_id="r", refusal="expired_page", pending="p1", reason="unreadable"),
        "consent answer for an unusable pending request",
        {"pending": "p1", "reason": "unreadable"},
    ),
    Example(
        ApprovalsRefused(request_id="r", refusal="csrf", subject=SUBJECT),
        "approvals change with a bad CSRF token",
        {"subject": SUBJECT},
    ),
    Example(
        ApprovalsRefused(request_id="r", refusal="cross_site", origin=""),
        "approvals change from another site",
        {"origin": ""},
    ),
    Example(
        ApprovalsRefused(request_id="r", refusal="no_browser"),
        "approvals change without browser cookie",
        {},
    ),
    Example(
        CallbackRefused(
            request_id="r", refusal="malformed", source="192.0.2.0/24", reason="state repeated"
        ),
        "malformed callback",
        {"refusal": "malformed", "source": "192.0.2.0/24", "reason": "state repeated"},
    ),
    Example(
        CallbackRefused(request_id="r", refusal="no_state", source="192.0.2.0/24"),
        "callback without state",
        {"refusal": "no_state", "source": "192.0.2.0/24"},
    ),
    Example(
        CallbackRefused(request_id="r", refusal="no_binding", source="::1/64", subject=""),
        "callback without this browser's binding cookie",
        {"refusal": "no_binding", "source": "::1/64", "subject": ""},
    ),
    Example(
        CallbackRefused(
            request_id="r", refusal="replayed", source="::1/64", subject=SUBJECT, reason="replayed"
        ),
        "callback expired or replayed",
        {"refusal": "replayed", "source": "::1/64", "subject": SUBJECT, "reason": "replayed"},
    ),
    Example(
        CallbackAccepted(request_id="r", subject=SUBJECT),
        "callback from the approving browser",
        {"subject": SUBJECT},
    ),
    Example(
        ErrorRedirectWithheld(
            request_id="r", error="access_denied", client_id="c1", redirect_uri=CB
        ),
        "error not redirected: the upstream's issuer is unknown",
        {
            "error": "access_denied",
            "reason": "issuer_unknown",
            "client_id": "c1",
            "redirect_uri": CB,
        },
        "warning",
    ),
    Example(
        ClientRegistered(request_id="r", client_id="c1", redirect_uris=(CB, CB + "2")),
        "client registration observed",
        {"client_id": "c1", "redirect_uris": f"{CB} {CB}2"},
    ),
    Example(
        RegistrationRefused(request_id="r", problem="has no client_id"),
        "registration answer not learnable",
        {"problem": "has no client_id"},
    ),
    Example(
        ClientRefused(
            request_id="r",
            reason="redirect_uri_not_listed",
            at="authorize",
            client_id=URL_CLIENT,
            redirect_uri=CB,
        ),
        "client named by a URL refused",
        {
            "reason": "redirect_uri_not_listed",
            "at": "authorize",
            "client_id": URL_CLIENT,
            "redirect_uri": CB,
            "detail": "",
        },
    ),
    Example(
        ClientDocumentFailed(
            request_id="r",
            reason="http_status",
            at="answer",
            client_id=URL_CLIENT,
            detail="404",
            cached=False,
        ),
        "client metadata document unusable",
        {
            "reason": "http_status",
            "at": "answer",
            "client_id": URL_CLIENT,
            "detail": "404",
            "cached": False,
        },
    ),
    Example(
        Tamper(kind="consent", id="rec1", reason="bad signature"),
        "tamper event: consent record 'rec1' is not honoured: bad signature",
        {"kind": "consent", "id": "rec1", "reason": "bad signature"},
        "warning",
    ),
    Example(
        KeyRotated(previous_key="k1", active_key="k2", by="cli"),
        "signing key rotated from k1 to k2",
        {"previous_key": "k1", "active_key": "k2", "by": "cli"},
    ),
    Example(
        KeyAdded(key="k3", active_key="k2", by="cli"),
        "signing key k3 added (verifies; k2 still signs)",
        {"key": "k3", "active_key": "k2", "by": "cli"},
    ),
    Example(
        SignedIn(request_id="r", subject="person:" + SUBJECT, browser=SUBJECT),
        "signed in at the gate",
        {"subject": "person:" + SUBJECT, "browser": SUBJECT},
    ),
    Example(
        SignInRefused(request_id="r", refusal="token", source="::1/64", check="nonce"),
        "sign-in token refused",
        {"refusal": "token", "source": "::1/64", "check": "nonce"},
    ),
    Example(
        SignInRefused(request_id="r", refusal="stale", source="192.0.2.7"),
        "sign-in answer not waited for by this browser",
        {"refusal": "stale", "source": "192.0.2.7"},
    ),
)
