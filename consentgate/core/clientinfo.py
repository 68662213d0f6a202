"""What the consent page says about a client, and the warnings it must show.

Everything a client registers is self-asserted (RFC 7591 §5): a client can call
itself "Claude" and link to anthropic.com. So the page says whose words they are
("as declared by the client"), shows only http(s) links without control
characters (Cloudflare's demo learned about ``javascript:`` links), warns when a
link's host differs from the host that will receive the authorization result,
and puts that host — the one fact a client cannot fake — first and in bold
(MCP authorization, 2025-11-25: show the redirect URI hostname clearly; warn for
loopback-only redirect URIs).

Every client text the pages show (its name, client_id, redirect URI, scopes,
resource) loses the bidirectional controls that could reorder the gate's own words
around it (:mod:`consentgate.core.trust.bidi`); a link holding one is not shown at all,
as a link with a control character is not.

The self-service approvals page (``web/consent_flow/approvals.py``) shows each remembered
approval with the same words: :func:`build_approval_view`.

Every sentence the view holds is in the language of the ``tr`` it was built with
(:mod:`consentgate.core.translation`); the client's words are put into them as
values, never looked up in a catalog.

Pure module: no aiohttp import.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from consentgate.core.oauth.authorization_requests import (
    AuthorizationRequest,
    RedirectTarget,
    loopback_without_port,
    parse_redirect_uri,
)
from consentgate.core.oauth.oauth_errors import OAuthError
from consentgate.core.signed.records import ConsentRecord
from consentgate.core.translation import N_, PLAIN_ENGLISH, Translator
from consentgate.core.trust.bidi import has_bidi_controls, without_bidi_controls
from consentgate.core.trust.urls import BadURL, browser_host, split_authority, split_url

#: The kinds of client the gate tells apart (``clients.kinds.client_kind`` decides):
#: one whose registration the gate saw (RFC 7591), one named by a URL whose metadata
#: document it checked (MCP 2025-11-25), or neither. A closed set: a metrics label.
ClientKind = Literal["registered", "metadata_document", "unknown"]
CLIENT_KINDS: Final[tuple[ClientKind, ...]] = ("registered", "metadata_document", "unknown")

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
MAX_LINK_LENGTH: Final = 2048
MAX_NAME_LENGTH: Final = 120


class ClientMetadata(Protocol):
    """The parts of a registry entry the page uses (see ``records.ClientRecord``)."""

    @property
    def client_name(self) -> str | None: ...
    @property
    def client_uri(self) -> str | None: ...
    @property
    def logo_uri(self) -> str | None: ...
    @property
    def tos_uri(self) -> str | None: ...
    @property
    def policy_uri(self) -> str | None: ...


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    host: str
    host_differs: bool


@dataclass(frozen=True)
class Warning:
    level: str  # "warning" or "danger"
    text: str


@dataclass(frozen=True)
class ScopeLine:
    scope: str
    description: str | None
    #: This browser already approved it for the same client, redirect URI and resource
    #: (a step-up request asks again only for the others).
    already_approved: bool = False


#: A client that registered less than this long ago gets a warning: a registration
#: made minutes before the page is what the attack this gate exists for looks like
#: (docs/references.md, "Confused Deputy Problem"), and a person who did not just add
#: the application should stop.
NEW_CLIENT_SECONDS: Final = 3600.0


@dataclass(frozen=True)
class ConsentView:
    """Everything the consent template shows; built from validated data only."""

    client_id: str
    client_name: str | None
    verified: bool
    #: For a client named by a URL whose document the gate fetched over HTTPS: the
    #: URL's host as the browser reads it, the one thing about it that is proven.
    verified_domain: str | None
    metadata_document_host: str | None
    redirect: RedirectTarget | None
    links: tuple[Link, ...]
    logo_url: str | None
    scopes: tuple[ScopeLine, ...]
    resource: str
    warnings: tuple[Warning, ...]
    offer_remember: bool
    #: How long ago the gate saw the client register ("4 minutes ago", in the page's
    #: language), or None when the gate does not know (a client named by a URL: no
    #: registration).
    client_age: str | None = None
    #: For a client named by a URL (no registration): how long ago a gate on this
    #: store first saw it used, the first time anyone used it here; None otherwise.
    client_seen: str | None = None
    #: Where the person signs in next and what that sign-in asks for (the upstream's
    #: hand-off to its IdP, learned or configured; never the client's words).
    idp_host: str | None = None
    idp_scopes: tuple[str, ...] = ()
    #: Some scopes were approved before and some are new: the page says which.
    step_up: bool = False

    @property
    def deny_first(self) -> bool:
        """Under any warning Deny is the primary action and Allow the secondary one
        (as Google's unverified-app screen hides "continue"); otherwise as usual."""
        return bool(self.warnings)


def safe_http_url(value: str | None) -> tuple[str, str] | None:
    """``(url, host)`` for an http(s) URL fit to show as a link, else None.

    ``host`` is the host the browser will contact, in ASCII (:func:`urls.browser_host`),
    so a link to ``g\\u043e\\u043egle.com`` is shown, and compared, as ``xn--ggle-55da.com``.
    """
    if (
        not value
        or len(value) > MAX_LINK_LENGTH
        or _CONTROL.search(value)
        or has_bidi_controls(value)
        or " " in value
    ):
        return None
    try:
        parts = split_url(value)
        if parts.scheme.lower() not in ("http", "https") or "@" in parts.netloc:
            return None
        host = browser_host(split_authority(parts.netloc)[1])
    except BadURL:
        return None
    return value, host


def same_site_host(a: str, b: str) -> bool:
    """Hosts equal, or one a subdomain of the other (app.example.com ~ example.com)."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def clean_name(name: str | None) -> str | None:
    """A client's declared name fit to show: no control or bidirectional control
    characters, not blank, at most :data:`MAX_NAME_LENGTH` characters."""
    name = without_bidi_controls(_CONTROL.sub("", name or "")).strip()
    if not name:
        return None
    return name if len(name) <= MAX_NAME_LENGTH else name[: MAX_NAME_LENGTH - 1] + "…"


def shown_redirect(redirect: RedirectTarget | None) -> RedirectTarget | None:
    """The redirect target as a page shows it: its parts without bidirectional
    controls. Display only: the gate matches and relays the URI as it was sent."""
    if redirect is None:
        return None
    return dataclasses.replace(
        redirect,
        uri=without_bidi_controls(redirect.uri),
        before_host=without_bidi_controls(redirect.before_host),
        after_host=without_bidi_controls(redirect.after_host),
    )


def scope_lines(
    scopes: Iterable[str],
    descriptions: Mapping[str, str],
    approved: frozenset[str] = frozenset(),
) -> tuple[ScopeLine, ...]:
    """Each scope as shown (without bidirectional controls), the operator's words for
    it, looked up by the scope as requested, and whether ``approved`` holds it."""
    return tuple(
        ScopeLine(without_bidi_controls(s), descriptions.get(s), s in approved) for s in scopes
    )


def build_view(
    request: AuthorizationRequest,
    client: ClientMetadata | None,
    *,
    scope_descriptions: Mapping[str, str],
    show_logos: bool,
    remember_mode: bool,
    verified_domain: str | None = None,
    localhost_only: bool = False,
    registered_at: float | None = None,
    first_seen_at: float | None = None,
    now: float = 0.0,
    service_name: str = "this service",
    idp_host: str | None = None,
    idp_scopes: tuple[str, ...] = (),
    approved_scopes: frozenset[str] = frozenset(),
    tr: Translator = PLAIN_ENGLISH,
) -> ConsentView:
    """The consent page's content for a validated request and what the gate knows.

    ``verified_domain``: the client is named by a URL and ``client`` is its current
    metadata document, fetched over HTTPS from that host (``clients.client_id_urls``
    gives the host as the browser reads it). ``localhost_only``: that document lists
    only loopback redirect URIs (``metadata_documents.localhost_only``).
    ``registered_at``: when the gate saw ``client`` register (``now`` on the same
    clock); less than :data:`NEW_CLIENT_SECONDS` ago is a warning. ``first_seen_at``:
    for a client named by a URL (``verified_domain``), when a gate on this store first
    saw it used (``store.parts.first_sightings``); it stands for the registration it never
    made, with the same warning, since a look-alike made for the attack was first used
    minutes ago. ``idp_host`` and
    ``idp_scopes``: the upstream's hand-off to its IdP (``core.oauth.idp_handoff``).
    ``approved_scopes``: the scopes this browser already approved for the same client,
    redirect URI and resource; when some requested ones are new, the page says which.
    ``tr``: the page's language, for the warnings, the link labels and the age.
    """
    warnings: list[Warning] = []
    redirect = parse_redirect_uri(request.redirect_uri) if request.redirect_uri else None
    redirect_host = redirect.host if redirect else ""

    def elsewhere(host: str) -> bool:
        """Whether a declared host is another site than the destination. An app scheme
        has no host to compare with, so every declared site is elsewhere."""
        if redirect is None:
            return False
        return redirect.kind == "custom" or not same_site_host(host, redirect_host)

    domain = (verified_domain or "").lower().rstrip(".")

    def outside_domain(host: str) -> bool:
        """Whether a declared link leaves the verified domain (not it, nor under it)."""
        host = host.lower().rstrip(".")
        return host != domain and not host.endswith("." + domain)

    if client is None:
        warnings.append(
            Warning(
                "danger",
                tr.gettext(
                    "Unverified client: this gate did not see it register, so nothing it "
                    "says about itself could be checked. Only continue if you started this "
                    "sign-in."
                ),
            )
        )
    age = now - registered_at if registered_at is not None and client is not None else None
    if age is not None and age < NEW_CLIENT_SECONDS:
        warnings.append(
            Warning(
                "warning",
                tr.gettext(
                    "This application registered with %(service)s %(age)s. If you did not "
                    "just add it yourself, someone else may have: deny."
                )
                % {"service": service_name, "age": tr.ago(age)},
            )
        )
    seen = (
        now - first_seen_at
        if first_seen_at is not None and verified_domain is not None and client is not None
        else None
    )
    if seen is not None and seen < NEW_CLIENT_SECONDS:
        warnings.append(
            Warning(
                "warning",
                tr.gettext(
                    "This application was first used with %(service)s %(age)s: nobody had "
                    "used it here before. If you did not just set it up yourself, it may be "
                    "a look-alike made moments ago: deny."
                )
                % {"service": service_name, "age": tr.ago(seen)},
            )
        )
    if verified_domain is not None and localhost_only:
        warnings.append(
            Warning(
                "danger",
                tr.gettext(
                    "This application lists only addresses on this computer as "
                    "destinations. Any program on this computer can claim to be it, and the "
                    "verified domain cannot tell them apart (Client ID Metadata Documents "
                    "cannot prevent localhost impersonation by themselves). Continue only if "
                    "you started this sign-in yourself, just now, in the application you "
                    "expect."
                ),
            )
        )
    if request.opaque:
        warnings.append(
            Warning(
                "danger",
                tr.gettext(
                    "This request keeps its details in a signed request object the gate "
                    "cannot read; the destination shown may not be where the result goes."
                ),
            )
        )
    if redirect is not None:
        if redirect.kind == "loopback":
            warnings.append(
                Warning(
                    "warning",
                    tr.gettext(
                        "The result goes to an application on this computer (%(host)s). "
                        "Continue only if you are running it right now."
                    )
                    % {"host": redirect.host},
                )
            )
        elif redirect.kind == "custom":
            warnings.append(
                Warning(
                    "warning",
                    tr.gettext(
                        "The result goes to an app installed on this device (the "
                        "%(scheme)s: address scheme). Any app can claim a scheme, and what "
                        "follows the scheme is not a website anyone checked."
                    )
                    % {"scheme": redirect.scheme},
                )
            )
        elif redirect.kind == "insecure":
            warnings.append(
                Warning(
                    "danger",
                    tr.gettext(
                        "The result is sent over plain http to %(host)s: anyone on the "
                        "network path can read it."
                    )
                    % {"host": redirect.host},
                )
            )

    if redirect is not None and redirect.respelled:
        warnings.append(
            Warning(
                "danger",
                tr.gettext(
                    "The destination's address is written with look-alike or encoded "
                    "characters; your browser reads it as %(host)s. It is not the site its "
                    "letters may suggest."
                )
                % {"host": redirect.host},
            )
        )

    metadata_host = None
    cimd = safe_http_url(request.client_id)
    if cimd is not None and request.client_id.lower().startswith("https://"):
        metadata_host = cimd[1]
        # A verified client's loopback destination has its own warnings above.
        said = verified_domain is not None and redirect is not None and redirect.kind == "loopback"
        if elsewhere(metadata_host) and not said:
            warnings.append(
                Warning(
                    "warning",
                    tr.gettext(
                        "The client identifies itself by %(client_host)s, but the result "
                        "goes to %(destination)s."
                    )
                    % {
                        "client_host": metadata_host,
                        "destination": redirect.headline if redirect else redirect_host,
                    },
                )
            )

    links: list[Link] = []
    name: str | None = None
    logo: str | None = None
    if client is not None:
        name = clean_name(client.client_name)
        for label, value in (
            (N_("Website"), client.client_uri),
            (N_("Privacy policy"), client.policy_uri),
            (N_("Terms of service"), client.tos_uri),
        ):
            safe = safe_http_url(value)
            if safe is None:
                continue
            differs = outside_domain(safe[1]) if verified_domain else elsewhere(safe[1])
            links.append(Link(tr.gettext(label), safe[0], safe[1], differs))
        if any(link.host_differs for link in links):
            warnings.append(
                Warning(
                    "warning",
                    tr.gettext("Links declared by the client point outside its verified domain.")
                    if verified_domain
                    else tr.gettext(
                        "Links declared by the client point to a different site than the one "
                        "receiving the result."
                    ),
                )
            )
        logo_safe = safe_http_url(client.logo_uri)
        # No logo for a client named by a URL: its logo_uri is on a host the client
        # chose, so showing it would make each person's browser fetch from there, and
        # fetching it for them would need the same SSRF rules as the document itself
        # (clients/https_get.py). The verified domain is what identifies it.
        if (
            show_logos
            and verified_domain is None
            and logo_safe is not None
            and logo_safe[0].lower().startswith("https://")
        ):
            logo = logo_safe[0]

    return ConsentView(
        client_id=without_bidi_controls(request.client_id),
        client_name=name,
        verified=client is not None,
        verified_domain=verified_domain if client is not None else None,
        metadata_document_host=metadata_host,
        redirect=shown_redirect(redirect),
        links=tuple(links),
        logo_url=logo,
        scopes=scope_lines(request.scopes, scope_descriptions, approved_scopes),
        resource=without_bidi_controls(request.resource),
        warnings=tuple(warnings),
        offer_remember=remember_mode and not request.opaque,
        client_age=tr.ago(age) if age is not None else None,
        client_seen=tr.ago(seen) if seen is not None else None,
        idp_host=without_bidi_controls(idp_host) if idp_host else None,
        idp_scopes=tuple(without_bidi_controls(s) for s in idp_scopes),
        step_up=any(s in approved_scopes for s in request.scopes)
        and any(s not in approved_scopes for s in request.scopes),
    )


@dataclass(frozen=True)
class ApprovalView:
    """One remembered approval as the self-service page shows it.

    ``redirect`` is None when the recorded URI no longer parses (it did when it was
    approved); the page then shows ``redirect_uri`` as recorded. A loopback URI is
    recorded without its port (RFC 8252 §7.3), so ``any_port`` says so.
    """

    id: str
    client_id: str
    client_name: str | None
    verified: bool
    #: The host of a client named by a URL: its document was fetched from there over
    #: HTTPS before the approval was recorded (shown instead of an unverified name).
    verified_domain: str | None
    redirect: RedirectTarget | None
    redirect_uri: str
    any_port: bool
    scopes: tuple[ScopeLine, ...]
    resource: str
    approved_at: str
    expires_at: str
    expires_in: str


def build_approval_view(
    record: ConsentRecord,
    client: ClientMetadata | None,
    *,
    scope_descriptions: Mapping[str, str],
    now: float,
    verified_domain: str | None = None,
    tr: Translator = PLAIN_ENGLISH,
) -> ApprovalView:
    """What the approvals page says about one of this browser's approvals.

    The client's name is its own claim (RFC 7591 §5), cleaned as on the consent
    page; the destination is the host the browser will contact, as there. A client
    named by a URL (``verified_domain``, its host) has no registration and its
    document is not stored: the page shows the domain the gate fetched the document
    from, as the consent page did, rather than "Unverified client" (MCP 2025-11-25,
    "Client ID Metadata Documents"; docs/clients.md).
    """
    try:
        redirect: RedirectTarget | None = parse_redirect_uri(record.redirect_uri)
    except OAuthError:
        redirect = None
    return ApprovalView(
        id=record.id,
        client_id=without_bidi_controls(record.client_id),
        client_name=clean_name(client.client_name) if client is not None else None,
        verified=client is not None or verified_domain is not None,
        verified_domain=verified_domain,
        redirect=shown_redirect(redirect),
        redirect_uri=without_bidi_controls(record.redirect_uri),
        any_port=loopback_without_port(record.redirect_uri) is not None,
        scopes=scope_lines(sorted(record.scopes), scope_descriptions),
        resource=without_bidi_controls(record.resource),
        approved_at=tr.moment(record.granted_at),
        expires_at=tr.moment(record.expires_at),
        expires_in=tr.within(record.expires_at - now),
    )
