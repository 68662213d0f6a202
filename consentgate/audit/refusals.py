"""Refused requests and the callback as audit events: an authorization request that
cannot be accepted, a program answered without relaying, a consent answer or an
approvals change refused, a callback refused or accepted, an error not redirected.

Anyone can cause most of these without signing in, so each names *why* with a
closed set (a Literal): the metrics label and the audit table row are that value,
never the message or the request's own text (which may be chosen by an attacker:
docs/references.md, "no audit trail"). The free-text fields (``reason`` of a
malformed callback, say) are for the log line only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, Literal, cast, get_args

from consentgate.audit.events import Severity, TypedEvent, optional
from consentgate.core.clientinfo import ClientKind

#: Why a consent answer or an approvals change was refused: no browser cookie, a bad
#: CSRF token, posted from another site, or (an answer) for a page that cannot be
#: used (expired, sealed for another page, already answered).
PageRefusal = Literal["no_browser", "csrf", "cross_site", "expired_page"]
PAGE_REFUSALS: Final = frozenset(get_args(PageRefusal))
#: Why a callback was refused, as its row names it: short, fixed, never the request's
#: text. ``refused`` is none of the others (only an event decoded from a name).
CallbackRefusal = Literal["malformed", "no_state", "no_binding", "expired", "replayed", "refused"]
CALLBACK_REFUSALS: Final = frozenset(get_args(CallbackRefusal)) - {"refused"}
#: What a program (not a browser navigation) was answered at ``/authorize``.
ProgramAnswer = Literal[
    "invalid_client", "invalid_request", "interaction_required", "temporarily_unavailable"
]
PROGRAM_ANSWERS: Final = frozenset(get_args(ProgramAnswer))


def program_answer(code: str) -> ProgramAnswer:
    """The OAuth error code a program was answered, as the closed set the row and the
    metric name: a code outside it is a programming error, refused at once."""
    if code not in PROGRAM_ANSWERS:
        raise ValueError(f"not an answer to a program at /authorize: {code!r}")
    return cast(ProgramAnswer, code)


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRefused(TypedEvent):
    """An authorization request that cannot be accepted (RFC 6749 §4.1.2.1)."""

    name: ClassVar[str] = "request_refused"

    #: The OAuth error code answered, and its description.
    error: str
    reason: str

    def describe(self) -> str:
        return "authorization request refused"

    def log_fields(self) -> dict[str, object]:
        return {"error": self.error, "reason": self.reason}


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizeNotNavigation(TypedEvent):
    """An authorization request from a program (not a browser navigation), answered
    in JSON without relaying it or showing a page."""

    name: ClassVar[str] = "authorize_not_navigation"

    answer: ProgramAnswer
    client_id: str
    redirect_uri: str
    client_kind: ClientKind

    def describe(self) -> str:
        return "authorization request from a program answered without relaying"

    def log_fields(self) -> dict[str, object]:
        return {
            "answer": self.answer,
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "client_kind": self.client_kind,
        }


_ANSWER_LINES: Final[dict[PageRefusal, str]] = {
    "no_browser": "consent answer without browser cookie",
    "csrf": "consent answer with a bad CSRF token",
    "cross_site": "consent answer from another site",
    "expired_page": "consent answer for an unusable pending request",
}
_APPROVALS_LINES: Final[dict[PageRefusal, str]] = {
    "no_browser": "approvals change without browser cookie",
    "csrf": "approvals change with a bad CSRF token",
    "cross_site": "approvals change from another site",
    "expired_page": "approvals change for an unusable page",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerRefused(TypedEvent):
    """A consent answer (POST of the consent page) refused; nothing was approved."""

    name: ClassVar[str] = "answer_refused"

    refusal: PageRefusal
    #: The Origin of a post from another site ("" when it sent none).
    origin: str | None = None
    pending: str | None = None
    #: Why the page cannot be used, in words (the log line only).
    reason: str | None = None

    def describe(self) -> str:
        return _ANSWER_LINES[self.refusal]

    def log_fields(self) -> dict[str, object]:
        return optional(origin=self.origin, pending=self.pending, reason=self.reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalsRefused(TypedEvent):
    """A change posted to the person's approvals page refused; nothing was revoked."""

    name: ClassVar[str] = "approvals_refused"

    refusal: PageRefusal
    origin: str | None = None
    subject: str | None = None

    def describe(self) -> str:
        return _APPROVALS_LINES[self.refusal]

    def log_fields(self) -> dict[str, object]:
        return optional(origin=self.origin, subject=self.subject)


_CALLBACK_LINES: Final[dict[CallbackRefusal, str]] = {
    "malformed": "malformed callback",
    "no_state": "callback without state",
    "no_binding": "callback without this browser's binding cookie",
    "expired": "callback expired or replayed",
    "replayed": "callback expired or replayed",
    "refused": "callback refused",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackRefused(TypedEvent):
    """A callback refused: not bound to this browser, expired, replayed or malformed.

    Anyone can send one, so the table counts them per ``source`` network
    (:data:`consentgate.audit.rows.AGGREGATED`); the log line keeps each.
    """

    name: ClassVar[str] = "callback_refused"

    refusal: CallbackRefusal
    #: The client's network (an address group), never its full address.
    source: str
    subject: str | None = None
    #: The parser's own description of a malformed callback, or the refusal again.
    reason: str | None = None

    def describe(self) -> str:
        return _CALLBACK_LINES[self.refusal]

    def log_fields(self) -> dict[str, object]:
        return {
            "refusal": self.refusal,
            "source": self.source,
            **optional(subject=self.subject, reason=self.reason),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackAccepted(TypedEvent):
    """A callback from the browser that approved: relayed upstream."""

    name: ClassVar[str] = "callback_accepted"

    subject: str | None

    def describe(self) -> str:
        return "callback from the approving browser"

    def log_fields(self) -> dict[str, object]:
        return {"subject": self.subject}


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorRedirectWithheld(TypedEvent):
    """An error that may go to the client's redirect URI was shown locally instead:
    the upstream's issuer is unknown, and RFC 9207 requires ``iss`` with it."""

    name: ClassVar[str] = "error_redirect_withheld"
    level: ClassVar[Severity] = "warning"

    error: str
    reason: Literal["issuer_unknown"] = "issuer_unknown"
    client_id: str
    redirect_uri: str

    def describe(self) -> str:
        return "error not redirected: the upstream's issuer is unknown"

    def log_fields(self) -> dict[str, object]:
        return {
            "error": self.error,
            "reason": self.reason,
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
        }
