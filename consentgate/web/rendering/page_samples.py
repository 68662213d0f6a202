"""Every page the gate renders, with sample data: what ``consentgate pages`` writes so
an operator can review a theme (``[ui]``) without a sign-in (docs/branding.md).

The samples go through the same builders as the real pages (``core/clientinfo``'s
views, ``core/error_pages``' wording), so a template that renders here renders for
a person; a variable a template needs and no page gives fails here first. The
samples' sentences are in the language of the translator given (``--language``).

Pure module: no aiohttp import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from consentgate.config.model import Config
from consentgate.core.clientinfo import build_approval_view, build_view
from consentgate.core.error_pages import all_wordings, error_wording
from consentgate.core.oauth.authorization_requests import parse_authorization_request
from consentgate.core.signed.records import ConsentRecord
from consentgate.core.translation import Translator
from consentgate.web.rendering.catalogs import shown_service_name

#: The sample's "now": a fixed instant, so two runs write the same files.
SAMPLE_NOW = 1_800_000_000.0


@dataclass(frozen=True)
class SampleClient:
    """A registration as the consent page reads it (``clientinfo.ClientMetadata``)."""

    client_name: str | None = "Example Notes"
    client_uri: str | None = "https://notes.example/"
    logo_uri: str | None = None
    tos_uri: str | None = "https://notes.example/terms"
    policy_uri: str | None = "https://notes.example/privacy"


@dataclass(frozen=True)
class SamplePage:
    """One file: its name, the template, and the page's own variables."""

    filename: str
    template: str
    context: Mapping[str, Any]


def _request(redirect_uri: str, scope: str, client_id: str = "sample-client") -> Any:
    parameters = (
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", scope),
        ("state", "sample"),
        ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
        ("code_challenge_method", "S256"),
    )
    return parse_authorization_request(
        parameters, allow_request_uri=False, allow_request_object=False
    )


def _consent(config: Config, tr: Translator, *, warnings: bool) -> dict[str, Any]:
    descriptions = dict(config.consent.scope_descriptions)
    if warnings:  # an unknown client returning to this computer: the page warns
        request = _request("http://127.0.0.1:33418/callback", "notes:read notes:write")
        client = None
    else:
        request = _request("https://notes.example/oauth/callback", "notes:read")
        client = SampleClient()
    view = build_view(
        request,
        client,
        scope_descriptions=descriptions,
        show_logos=False,
        remember_mode=config.consent.mode == "remember",
        tr=tr,
    )
    return {
        "view": view,
        "pending_id": "sample",
        "sealed": "sample",
        "csrf_token": "sample",
        "action": "#",
        "remember_days": tr.duration(config.consent.remember_for),
    }


def _consent_state(config: Config, tr: Translator, *, verified: bool) -> dict[str, Any]:
    """The consent page's other states: a step-up (a known client asks for one scope
    more than this browser approved, and the IdP's host and scopes are known), or a
    client named by a URL whose metadata document verified its domain, first used
    here minutes ago (its age, and the new-client warning)."""
    if verified:
        request = _request(
            "https://notes.example/oauth/callback",
            "notes:read",
            client_id="https://notes.example/oauth/client.json",
        )
        extra: dict[str, Any] = {
            "verified_domain": "notes.example",
            "first_seen_at": SAMPLE_NOW - 4 * 60,
        }
    else:
        request = _request("https://notes.example/oauth/callback", "notes:read notes:write")
        extra = {
            "idp_host": "accounts.example",
            "idp_scopes": ("openid", "email"),
            "approved_scopes": frozenset({"notes:read"}),
            "registered_at": SAMPLE_NOW - 40 * 86400,
        }
    view = build_view(
        request,
        SampleClient(),
        scope_descriptions=dict(config.consent.scope_descriptions),
        show_logos=False,
        remember_mode=config.consent.mode == "remember",
        now=SAMPLE_NOW,
        service_name=shown_service_name(config, tr),
        tr=tr,
        **extra,
    )
    return {**_consent(config, tr, warnings=False), "view": view}


def _approvals(config: Config, tr: Translator) -> dict[str, Any]:
    record = ConsentRecord(
        id="sample-record",
        subject="sample",
        client_id="sample-client",
        redirect_uri="https://notes.example/oauth/callback",
        scopes=frozenset({"notes:read"}),
        resource="",
        granted_at=int(SAMPLE_NOW) - 3 * 86400,
        expires_at=int(SAMPLE_NOW) + 27 * 86400,
        revoked_at=None,
        key_id="sample",
        signature=b"",
    )
    view = build_approval_view(
        record,
        SampleClient(),
        scope_descriptions=dict(config.consent.scope_descriptions),
        now=SAMPLE_NOW,
        tr=tr,
    )
    return {"approvals": [view], "csrf_token": "sample", "action": "#"}


def _error(status: int, code: str, tr: Translator) -> dict[str, Any]:
    return {"code": code, **error_wording(status, code).template_values(tr)}


#: With ``[identity]``: the person the gate signed in (the consent page's "not you?",
#: the approvals page's sign-out).
_SIGNED_IN: Final = {"signed_in_as": "alice@example.com", "signout_token": "sample"}


def sample_pages(config: Config, tr: Translator) -> list[SamplePage]:
    """Every page, in the order an operator reviews them, in the language of ``tr``."""
    pages = [
        SamplePage("consent.html", "consent.html", _consent(config, tr, warnings=False)),
        SamplePage("consent-warnings.html", "consent.html", _consent(config, tr, warnings=True)),
        SamplePage(
            "consent-step-up.html", "consent.html", _consent_state(config, tr, verified=False)
        ),
        SamplePage(
            "consent-verified.html", "consent.html", _consent_state(config, tr, verified=True)
        ),
        SamplePage(
            "consent-signed-in.html",
            "consent.html",
            {**_consent(config, tr, warnings=False), **_SIGNED_IN, "approvals_url": "#"},
        ),
        SamplePage("denied.html", "denied.html", {}),
        SamplePage("approvals.html", "approvals.html", _approvals(config, tr)),
        SamplePage(
            "approvals-signed-in.html", "approvals.html", {**_approvals(config, tr), **_SIGNED_IN}
        ),
        SamplePage(
            "approvals-empty.html",
            "approvals.html",
            {"approvals": [], "csrf_token": "", "action": "#"},
        ),
        SamplePage(
            "approvals-confirm.html",
            "approvals_confirm.html",
            {"count": 3, "csrf_token": "sample", "action": "#"},
        ),
    ]
    for key in all_wordings():
        status = int(key) if key.isdigit() else 400
        pages.append(SamplePage(f"error-{key}.html", "error.html", _error(status, key, tr)))
    return pages
