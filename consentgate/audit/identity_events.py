"""The gate's own sign-in ([identity]) as audit events: who signed in, in which
browser, and each sign-in refused, by a closed set of reasons.

A sign-in is what ties a browser to a person: with it, every later decision's
``subject`` is the person's (``person:...``), and this line says which browser
(its digest) that person signed in with. Neither is a table row: the decisions made
afterwards are, with the person as their subject. A refused sign-in is a log line and
a metric label: anyone can send a callback, so its reason is a Literal and its source
a network (docs/references.md, "no audit trail": never the request's own text).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, Literal, get_args

from consentgate.audit.events import TypedEvent, optional

#: Why a sign-in at the gate was refused: its ``state`` names nothing waiting for this
#: browser (another browser's, expired, replayed); the provider answered an error; its
#: ``iss`` was wrong or missing (RFC 9207); the code or the ID token was refused; the
#: provider could not be reached; too many starts from one network.
SignInRefusal = Literal["stale", "provider_error", "issuer", "token", "unavailable", "busy"]
SIGNIN_REFUSALS: Final = frozenset(get_args(SignInRefusal))

_LINES: Final[dict[SignInRefusal, str]] = {
    "stale": "sign-in answer not waited for by this browser",
    "provider_error": "sign-in refused by the identity provider",
    "issuer": "sign-in answer from the wrong issuer",
    "token": "sign-in token refused",
    "unavailable": "identity provider unavailable",
    "busy": "too many sign-ins started from one network",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedIn(TypedEvent):
    """A person signed in at the gate in one browser."""

    name: ClassVar[str] = "signed_in"

    #: The person (``person:`` and a digest of the issuer and the subject claim).
    subject: str
    #: The browser's subject, digest of its identity cookie.
    browser: str

    def describe(self) -> str:
        return "signed in at the gate"

    def log_fields(self) -> dict[str, object]:
        return {"subject": self.subject, "browser": self.browser}


@dataclass(frozen=True, slots=True, kw_only=True)
class SignInRefused(TypedEvent):
    """A sign-in at the gate refused; nothing was relayed."""

    name: ClassVar[str] = "signin_refused"

    refusal: SignInRefusal
    #: The client's network (an address group), never its full address.
    source: str
    #: Which check failed (an ID token rejection, the provider's error code), log only.
    check: str | None = None

    def describe(self) -> str:
        return _LINES[self.refusal]

    def log_fields(self) -> dict[str, object]:
        return {"refusal": self.refusal, "source": self.source, **optional(check=self.check)}
