"""What an error page tells a person: what happened and what they can do, in plain
words, chosen from the error's status and code.

The gate's error messages name what the operator needs (the upstream, a parameter,
an error code); a person who followed a link cannot act on them. So the page says
one of a few things a person can act on (try again in a minute, go back to the
application and start again, tell the application's developer or the service's
support) and gives the request id to quote; the operator's message goes to the log
with the same request id (``web/rendering/pages.error_response``). Programs that
asked for JSON keep the OAuth error and its description (RFC 6749 §5.2).

The wording of every page is listed in docs/branding.md; its sentences are message
ids of the catalogs (:mod:`consentgate.core.translation`), translated when a page
is rendered. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from consentgate.core.translation import N_, PLAIN_ENGLISH, Translator

#: What a person can do about it.
Advice = Literal["retry", "restart", "reopen", "application", "address", "support", "close"]

ADVICE_TEXT: Final[dict[Advice, str]] = {
    "retry": N_("Wait a minute, then try again."),
    "restart": N_("Go back to the application and start the sign-in again."),
    "reopen": N_("Open your approvals page again and retry."),
    "application": (
        N_(
            "Go back to the application and try again; if it fails the same way, the "
            "application's developer needs to fix it."
        )
    ),
    "address": N_("Check the address, or go back to the page you came from."),
    "support": N_("If this keeps happening, contact support."),
    "close": N_("You can close this window."),
}


@dataclass(frozen=True)
class ErrorWording:
    """A page's title, what happened, and what the person can do (in order)."""

    title: str
    happened: str
    advice: tuple[Advice, ...]

    def advice_text(self, tr: Translator = PLAIN_ENGLISH) -> tuple[str, ...]:
        """The advice as sentences; "contact support" is the page's own line, with
        the link and the request id, so it is not repeated here."""
        return tuple(tr.gettext(ADVICE_TEXT[a]) for a in self.advice if a != "support")

    def template_values(self, tr: Translator = PLAIN_ENGLISH) -> dict[str, Any]:
        """What ``error.html`` gets (docs/branding.md, the template contract), in the
        language of ``tr``."""
        return {
            "title": tr.gettext(self.title),
            "happened": tr.gettext(self.happened),
            "advice": self.advice_text(tr),
            "offer_support": "support" in self.advice,
        }


_TRY_AGAIN = ErrorWording(
    N_("Please try again in a minute"),
    N_(
        "The service is busy or briefly unavailable, so your sign-in was not completed. "
        "Nothing was shared."
    ),
    ("retry", "support"),
)
_START_AGAIN = ErrorWording(
    N_("This page has expired"),
    N_(
        "This sign-in page is no longer valid in this browser: it expired, was already "
        "answered, or was opened in another browser or tab. Nothing was shared."
    ),
    ("restart", "support"),
)
_BAD_REQUEST = ErrorWording(
    N_("This sign-in could not start"),
    N_(
        "The application sent a sign-in request that this service cannot accept. "
        "Nothing was shared."
    ),
    ("application", "support"),
)
_NOT_ACCEPTED = ErrorWording(
    N_("This application cannot sign in here"),
    N_("This service does not accept sign-ins from this application. Nothing was shared."),
    ("application", "support"),
)
_CONFIGURATION = ErrorWording(
    N_("Sign-in is not available right now"),
    N_(
        "This service is not set up correctly at the moment, so your sign-in was stopped "
        "before anything was shared."
    ),
    ("support", "close"),
)
_PROMPT_NONE = ErrorWording(
    N_("This sign-in needs your approval"),
    N_(
        "The application asked to sign you in without showing any page, but you have not "
        "approved it yet. Nothing was shared."
    ),
    ("restart",),
)

#: By code first: these codes mean the same to a person whatever the status.
_BY_CODE: Final[dict[str, ErrorWording]] = {
    "invalid_session": _START_AGAIN,
    "invalid_csrf": _START_AGAIN,
    "unbound_flow": ErrorWording(
        N_("This sign-in was not started in this browser"),
        N_(
            "The sign-in you are coming back from was started in another browser, or it "
            "expired or was already completed, so it was stopped here. Nothing was shared."
        ),
        ("restart", "support"),
    ),
    "stale_page": _START_AGAIN,
    "stale_approvals": ErrorWording(
        N_("This page has expired"),
        N_(
            "This change did not come from your approvals page in this browser, so nothing "
            "was changed."
        ),
        ("reopen", "support"),
    ),
    "cross_site": ErrorWording(
        N_("This request was refused"),
        N_(
            "The request did not come from this service's own page, so it was refused. "
            "Nothing was changed."
        ),
        ("restart", "support"),
    ),
    "client_not_accepted": _NOT_ACCEPTED,
    "unauthorized_client": _NOT_ACCEPTED,
    "invalid_client": _BAD_REQUEST,
    "client_document_unavailable": ErrorWording(
        N_("This application could not be checked"),
        N_(
            "This service could not read the application's description right now, so it "
            "cannot show who is asking. Nothing was shared."
        ),
        ("retry", "support"),
    ),
    "signin_unavailable": ErrorWording(
        N_("Sign-in is not available right now"),
        N_(
            "This service could not reach the sign-in service that confirms who you are, "
            "so your sign-in was stopped before anything was shared."
        ),
        ("retry", "support"),
    ),
    "signin_used": ErrorWording(
        N_("This page was already used"),
        N_(
            "This page continued a sign-in that has already gone on, or it expired or was "
            "opened in another browser, so nothing more was done here. Nothing was shared."
        ),
        ("restart", "support"),
    ),
    "signin_failed": ErrorWording(
        N_("You could not be signed in"),
        N_(
            "The sign-in service did not confirm who you are, so your sign-in was stopped. "
            "Nothing was shared."
        ),
        ("restart", "support"),
    ),
    "upstream_misconfigured": _CONFIGURATION,
    "registration_unreadable": _CONFIGURATION,
    "interaction_required": _PROMPT_NONE,
    "consent_required": _PROMPT_NONE,
    "login_required": _PROMPT_NONE,
    "request_timeout": ErrorWording(
        N_("The connection was too slow"),
        N_("Your browser stopped sending this request before it was complete."),
        ("retry", "support"),
    ),
    "not_found": ErrorWording(
        N_("Page not found"), N_("There is nothing at this address."), ("address",)
    ),
    "method_not_allowed": ErrorWording(
        N_("This page cannot be used this way"),
        N_("This address was opened in a way it does not support."),
        ("address", "support"),
    ),
    "request_too_large": ErrorWording(
        N_("This request is too large"),
        N_("The request is larger than this service accepts. Nothing was shared."),
        ("application", "support"),
    ),
    "internal_error": ErrorWording(
        N_("Something went wrong"),
        N_("This service ran into a problem with your request. Nothing was shared."),
        ("retry", "support"),
    ),
}

#: A sign-in at the gate ([identity]) coming back to a browser that did not start it.
_BY_CODE["signin_stale"] = _BY_CODE["unbound_flow"]

_BY_STATUS: Final[dict[int, ErrorWording]] = {
    400: _BAD_REQUEST,
    403: ErrorWording(
        N_("This request was refused"),
        N_("This service refused the request. Nothing was shared."),
        ("application", "support"),
    ),
    404: _BY_CODE["not_found"],
    405: _BY_CODE["method_not_allowed"],
    408: _BY_CODE["request_timeout"],
    413: _BY_CODE["request_too_large"],
    500: _BY_CODE["internal_error"],
    502: _TRY_AGAIN,
    503: _TRY_AGAIN,
    504: _TRY_AGAIN,
    429: _TRY_AGAIN,
}


def error_wording(status: int, code: str) -> ErrorWording:
    """The page a person sees for an error of ``status`` and ``code``."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return _TRY_AGAIN
    return _BAD_REQUEST


def all_wordings() -> dict[str, ErrorWording]:
    """Every distinct page, by a code or status that shows it (the docs and the
    ``pages`` command list them)."""
    seen: dict[int, str] = {}
    pages: dict[str, ErrorWording] = {}
    for key, wording in [*_BY_CODE.items(), *((str(s), w) for s, w in _BY_STATUS.items())]:
        if id(wording) not in seen:
            seen[id(wording)] = key
            pages[key] = wording
    return pages
