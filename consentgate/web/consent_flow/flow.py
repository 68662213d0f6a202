"""Relaying an approved authorization request, and binding the flow it starts to the browser.

* The upstream receives exactly the request the gate validated, re-encoded from the
  parsed parameters, never the client's spelling of it.
* After a consent form the browser is sent on with a 303, never a 307, so the form
  is not re-posted to the IdP (RFC 9700 §4.12).
* The upstream flow is bound to the approving browser: the IdP redirect the
  upstream answers with gets a per-transaction cookie holding a MAC of its
  ``state``; the callback (:mod:`consentgate.web.consent_flow.callback`) needs that cookie, once
  (FastMCP GHSA-rww4-4w9c-7733).
* A bound hand-off that reads as an authorization request to the IdP teaches the
  gate the IdP's host and the scopes the upstream asks it for
  (:mod:`consentgate.core.oauth.idp_handoff`), for the next consent pages: the
  upstream's answer, never the client's request.
* That check happens only at ``upstream.callback_path``: a hand-off whose
  ``redirect_uri`` names another callback (:func:`consentgate.core.oauth.upstream_endpoints.
  callback_mismatch`) would bring the browser back where nothing checks it, so the
  browser is not sent on: a 502 page and an error log line naming the key.
"""

from __future__ import annotations

import functools
import logging
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from consentgate.audit.events import AuditEvent
from consentgate.core.oauth.authorization_requests import Parameters, encode_parameters
from consentgate.core.oauth.idp_handoff import handoff_key, read_split_handoff
from consentgate.core.oauth.upstream_endpoints import EndpointMismatch, callback_mismatch_in
from consentgate.core.signed.cookies import set_cookie_header
from consentgate.core.trust.urls import handoff_pairs, split_url
from consentgate.web.appkeys import CLOCK, COOKIE_CRYPTO, IDP_MEMORY, METRICS, REQUEST_ID, SETTINGS
from consentgate.web.audit_emit import audit_event
from consentgate.web.consent_flow.browser import Browser
from consentgate.web.relay import (
    RequestTooLarge,
    UpstreamExchange,
    UpstreamFailure,
    response_headers,
    stream_response,
    upstream_failure_response,
    upstream_headers,
)
from consentgate.web.rendering.pages import error_response

log = logging.getLogger("consentgate")


def _origin_of(url: str) -> str:
    parts = split_url(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


#: The public URL's origin, computed once per configured URL (it is on every binding).
_public_origin = functools.lru_cache(maxsize=8)(_origin_of)


@dataclass(frozen=True, slots=True)
class _HandOff:
    """The upstream's redirect to another origin than the gate's, split and its query
    parsed once: the callback check, the flow binding and what is learned of the IdP
    all read this one parse of the same Location."""

    #: The Location as an absolute URL.
    absolute: str
    parts: urllib.parse.SplitResult
    #: ``parse_qsl(parts.query, keep_blank_values=True)``, as ``handoff_pairs`` reads it.
    pairs: list[tuple[str, str]]


async def forward_authorization(
    request: web.Request,
    parameters: Parameters,
    browser: Browser,
    *,
    after_post: bool,
    audit: Callable[[int, bool], AuditEvent],
    extra_cookies: tuple[str, ...] = (),
) -> web.StreamResponse:
    """Send exactly the validated request upstream and bind the flow it starts.

    The query is re-encoded from the parsed parameters: the upstream receives the
    request the gate checked, not the client's spelling of it. ``audit`` makes the
    one audit event this decision gets, from the upstream's status and whether the
    flow was bound.
    """
    config = request[SETTINGS].config
    target = f"{config.upstream.authorize_path}?{encode_parameters(parameters)}"
    headers = upstream_headers(request)
    for name in ("Content-Type", "Content-Length", "Origin"):
        headers.popall(name, None)
    try:
        async with UpstreamExchange(
            request, target, method="GET", forward_body=False, headers=headers
        ) as upstream:
            out = response_headers(request, upstream)
            status = upstream.status
            location = out.get("Location")
            bound = False
            if 300 <= status < 400 and location:
                handoff = _hand_off(location, config.server.public_url)
                mismatch = _foreign_callback(request, handoff)
                if mismatch is not None:
                    audit_event(request, audit(status, False))
                    return _refuse_foreign_callback(request, mismatch)
                if after_post:
                    status = 303  # RFC 9700 §4.12: never let the browser re-POST the form
                bound = _bind_flow(request, out, handoff, browser)
                if bound:
                    _learn_idp(request, parameters, handoff)
                else:
                    _warn_unbound(request, location)
            for header in (*browser.cookies_to_set(), *extra_cookies):
                out.add("Set-Cookie", header)
            if after_post:
                out["Cache-Control"] = "no-store"
            audit_event(request, audit(upstream.status, bound))
            return await stream_response(request, upstream, out, status=status)
    except UpstreamFailure as exc:
        audit_event(request, audit(exc.status, False))
        return upstream_failure_response(request, exc, "upstream_error")
    except RequestTooLarge:  # pragma: no cover - no body is forwarded here
        return error_response(request, 413, "request_too_large", "The request is too large.")


def _hand_off(location: str, public_url: str) -> _HandOff | None:
    """``location`` split, when it sends the browser to another origin than the
    gate's (a hand-off to the IdP), else None; None too when it cannot be parsed (no
    binding then, so its callback is refused: fails closed)."""
    try:
        # An absolute http(s) Location is its own join: urljoin would only re-split it
        # (the origin and the query it yields are the Location's own).
        absolute = (
            location
            if location[:8].lower().startswith(("https://", "http://"))
            else urllib.parse.urljoin(public_url + "/", location)
        )
        parts = split_url(absolute)
        if f"{parts.scheme.lower()}://{parts.netloc.lower()}" == _public_origin(public_url):
            return None
        pairs = handoff_pairs(parts.query)
    except ValueError:  # BadURL included
        return None
    return _HandOff(absolute, parts, pairs)


def unbound_cause(location: str, public_url: str) -> str:
    """Why a redirect of the upstream's answer to an approved authorization request
    could not be bound to the browser (:func:`_bind_flow` returned False): the likely
    cause, for the operator. The binding needs a hand-off to another origin than the
    gate's carrying exactly one ``state`` (the IdP's callback brings it back)."""
    handoff = _hand_off(location, public_url)
    if handoff is None:
        try:
            split_url(urllib.parse.urljoin(public_url + "/", location))
        except ValueError:
            return "the upstream's redirect is not a URL the gate can parse"
        return (
            "the upstream's redirect stays on the gate's own origin (its Location is "
            "rewritten to server.public_url) instead of handing off to an identity "
            "provider: the upstream's IdP authorization URL is not where the gate expects "
            "it; is the IdP served by the upstream itself, or upstream.authorize_path not "
            "the endpoint that hands off?"
        )
    return (
        "the upstream's redirect to the IdP carries no single state parameter, which the "
        "IdP's callback must bring back for the gate to recognise the flow: the IdP's "
        "authorization URL is not the shape the gate expects (OAuth 2.0, RFC 6749 §4.1.1)"
    )


def _warn_unbound(request: web.Request, location: str) -> None:
    """A WARNING and a count for an approval relayed without a binding: the person
    approved, the upstream went on, but the callback will be refused
    (:mod:`consentgate.web.consent_flow.callback`). Only the redirect's origin and
    path are logged: its query holds the upstream's state."""
    public_url = request[SETTINGS].config.server.public_url
    try:
        parts = split_url(urllib.parse.urljoin(public_url + "/", location))
        redirect = f"{parts.scheme}://{parts.netloc}{parts.path}"
    except ValueError:
        redirect = "(unparseable)"
    request.app[METRICS].unbound_relays.inc()
    log.warning(
        "approved authorization relayed without a flow binding; the IdP's callback will "
        f"be refused: {unbound_cause(location, public_url)}",
        extra={"fields": {"request_id": request[REQUEST_ID], "redirect": redirect}},
    )


def _foreign_callback(request: web.Request, handoff: _HandOff | None) -> EndpointMismatch | None:
    if handoff is None:
        return None
    settings = request[SETTINGS]
    return callback_mismatch_in(handoff.pairs, settings.config, settings.path_rules)


def _refuse_foreign_callback(request: web.Request, mismatch: EndpointMismatch) -> web.Response:
    log.error(
        f"{mismatch.key} is not where the upstream's IdP returns; the sign-in was not sent on",
        extra={
            "fields": {
                "key": mismatch.key,
                "configured": mismatch.configured,
                mismatch.where: mismatch.advertised,
            }
        },
    )
    return error_response(
        request,
        502,
        "upstream_misconfigured",
        "The service behind this gate would return this sign-in to an address the gate "
        f"does not check ({mismatch.key} differs), so it was stopped here. Nothing was "
        "shared; the operator has to correct the configuration.",
    )


def _learn_idp(request: web.Request, parameters: Parameters, handoff: _HandOff | None) -> None:
    """Remember what this hand-off says about the upstream's IdP (its host, the scopes
    asked), unless it is not one (``idp_handoff.read_handoff``); one keyed like the
    hand-off learned last is not read again (``IdpMemory.learn_from``)."""
    if handoff is None:
        return
    config = request[SETTINGS].config
    redirect_uri = next((value for name, value in parameters if name == "redirect_uri"), "")
    request.app[IDP_MEMORY].learn_from(
        config.upstream.url,
        handoff_key(handoff.parts, handoff.pairs, redirect_uri),
        lambda: read_split_handoff(
            handoff.absolute, handoff.parts, handoff.pairs, client_redirect_uri=redirect_uri
        ),
    )


def _bind_flow(
    request: web.Request, out: CIMultiDict[str], handoff: _HandOff | None, browser: Browser
) -> bool:
    """Bind the upstream's redirect to another origin carrying ``state`` to this browser.

    Only a cookie is set: a MAC of the state, the browser's subject and the time.
    The callback checks it and marks it used (``callback.py``), so the hot path of
    a remembered approval writes nothing to the store. The browser keeps at most
    ``max_flows_per_browser`` of them; the oldest go first.
    """
    app = request.app
    config = request[SETTINGS].config
    if handoff is None:
        return False  # not a hand-off to the IdP, or nobody can parse it
    states = [value for name, value in handoff.pairs if name == "state"]
    if len(states) != 1 or not states[0]:
        return False
    crypto = app[COOKIE_CRYPTO]
    binding = crypto.binding_for(states[0], browser.ensure(), int(app[CLOCK]()))
    out.add(
        "Set-Cookie",
        set_cookie_header(
            binding.cookie_name,
            binding.cookie_value,
            max_age=int(config.consent.binding_ttl),
            secure=config.secure_cookies,
        ),
    )
    limit = config.consent.max_flows_per_browser
    prefix = crypto.names.binding_prefix
    # Oldest first: by the time of issue, then (a stable sort) in the order the browser
    # sent them, which RFC 6265 section 5.4 says is the order of creation.
    held = sorted(
        (
            (value.split(".", 1)[0].zfill(12), name)
            for name, value in request.cookies.items()
            if name.startswith(prefix) and name != binding.cookie_name
        ),
        key=lambda item: item[0],
    )
    for _, name in held[: max(len(held) - limit + 1, 0)]:
        out.add("Set-Cookie", set_cookie_header(name, "", max_age=0, secure=config.secure_cookies))
    return True
