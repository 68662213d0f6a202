"""What the admin API accepts: its bearer token, query parameters and revoke bodies.

The admin API (``[admin] listen``, docs/admin-api.md) offers the operations of the
CLI's ``consents`` commands over HTTP, following Hydra's admin API conventions
(docs/references.md: list and revoke consent by subject, by client or one by one; paged
listings with a page token). Everything a caller sends is parsed here strictly, so
the handlers in :mod:`consentgate.admin.admin_handlers` stay thin:

* the token is compared with :func:`hmac.compare_digest` (STYLE.md: constant-time
  comparisons for every MAC or token), after parsing ``Authorization: Bearer``
  (RFC 6750 §2.1; the scheme name is case-insensitive, RFC 9110 §11.1);
* an unknown or repeated query parameter, a limit out of range or a malformed
  cursor is a :class:`BadRequest` naming the parameter and the value (the config's
  convention), never a silently ignored filter: a typo in ``subjekt=`` must not
  list, or worse revoke, everything;
* a revoke body names exactly one selector, of the right type; ``all`` needs an
  explicit ``"confirm": "all"``, as the CLI's ``--all`` needs ``--yes``.

Pure module: no aiohttp import.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from consentgate.core.auditquery import EVENTS, parse_since
from consentgate.core.clientinfo import CLIENT_KINDS, ClientKind
from consentgate.core.requestids import parse_request_id
from consentgate.core.signed.records import RevokeSelector, check_text

#: Records per page when ``limit`` is not given, and the most a page may ask for.
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
#: The largest revoke body read (a selector is one string of at most a few KiB).
MAX_BODY_BYTES: Final = 16 * 1024

_SELECTORS: Final[tuple[RevokeSelector, ...]] = ("id", "client_id", "redirect_uri", "subject")
_FILTERS: Final = ("client_id", "redirect_uri", "subject")


class BadRequest(ValueError):
    """A request the admin API refuses with 400; the message names what was wrong."""


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def token_matches(presented: str | None, token: bytes) -> bool:
    """Whether ``presented`` is the admin token, in time independent of where they
    differ (:func:`hmac.compare_digest`; a length difference alone is not hidden,
    and the token's length is not the secret)."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), token)


class AdminToken:
    """The admin token in force; a reload (SIGHUP, after the file was replaced)
    swaps it in one assignment, so a rotated token needs no restart."""

    def __init__(self, token: bytes) -> None:
        self.current = token

    def matches(self, presented: str | None) -> bool:
        return token_matches(presented, self.current)


def parse_record_id(text: str) -> str:
    """A consent id from a path (``GET /admin/consents/{id}``): storable text."""
    return _text("id", text)


def _single(pairs: Iterable[tuple[str, str]], allowed: Iterable[str]) -> dict[str, str]:
    """The query as a dict, refusing unknown and repeated parameters (RFC 6749 §3.1's
    rule for OAuth parameters, kept here: two values would be two meanings)."""
    known = tuple(allowed)
    values: dict[str, str] = {}
    for name, value in pairs:
        if name not in known:
            raise BadRequest(f"unknown query parameter {name[:60]!r} (known: {', '.join(known)})")
        if name in values:
            raise BadRequest(f"query parameter {name!r} is given more than once")
        values[name] = value
    return values


def _limit(values: dict[str, str]) -> int:
    text = values.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise BadRequest(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {text[:40]!r}")
    return int(text)


def _text(name: str, value: str) -> str:
    try:
        return check_text(name, value)
    except ValueError as exc:
        raise BadRequest(f"{exc}, got {value[:80]!r}") from None


@dataclass(frozen=True, slots=True)
class PageQuery:
    """Where a listing starts and how long its page is."""

    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class ConsentQuery:
    """``GET /admin/consents``: filters (each an exact match) and the page."""

    client_id: str | None = None
    redirect_uri: str | None = None
    subject: str | None = None
    #: A person's name ([identity] display claim): the subjects shown by it.
    user: str | None = None
    active: bool = False
    page: PageQuery = PageQuery()


def _page(values: dict[str, str]) -> PageQuery:
    cursor = values.get("cursor")
    return PageQuery(_limit(values), None if cursor is None else _text("cursor", cursor))


def parse_page_query(pairs: Iterable[tuple[str, str]]) -> PageQuery:
    """``limit`` and ``cursor``, nothing else."""
    return _page(_single(pairs, ("limit", "cursor")))


@dataclass(frozen=True, slots=True)
class ClientsQuery:
    """``GET /admin/clients``: which kind of client, and the page."""

    kind: ClientKind = "registered"
    page: PageQuery = PageQuery()


def parse_clients_query(pairs: Iterable[tuple[str, str]]) -> ClientsQuery:
    """``kind`` (``registered``, the default: the registrations the store keeps;
    ``metadata_document`` or ``unknown``: the clients of those kinds that have
    approvals), ``limit`` and ``cursor``."""
    values = _single(pairs, ("kind", "limit", "cursor"))
    kind = values.get("kind", "registered")
    for name in CLIENT_KINDS:
        if kind == name:
            return ClientsQuery(name, _page(values))
    raise BadRequest(f"kind: expected one of {', '.join(CLIENT_KINDS)}, got {kind[:40]!r}")


def parse_consent_query(pairs: Iterable[tuple[str, str]]) -> ConsentQuery:
    """The filters ``client_id``, ``redirect_uri``, ``subject`` or ``user`` (a person's
    name, [identity]), ``active`` (``true``: unrevoked and unexpired only; ``false``,
    the default: every record), and the page."""
    values = _single(pairs, (*_FILTERS, "user", "active", "limit", "cursor"))
    active = values.get("active", "false")
    if active not in ("true", "false"):
        raise BadRequest(f"active: expected true or false, got {active[:40]!r}")
    filters = {name: _text(name, values[name]) for name in (*_FILTERS, "user") if name in values}
    if "subject" in filters and "user" in filters:
        raise BadRequest("name subject or user, not both")
    return ConsentQuery(**filters, active=active == "true", page=_page(values))


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """``GET /admin/audit``: filters and the page."""

    since: int | None = None
    event: str | None = None
    client_id: str | None = None
    request_id: str | None = None
    page: PageQuery = PageQuery()
    #: A person's name ([identity] display claim).
    user: str | None = None


def parse_audit_query(pairs: Iterable[tuple[str, str]], now: float) -> AuditQuery:
    """``since`` (a duration back from now, ``7d``, or a UTC date or time), ``event``
    (one of the table's events), ``client_id``, ``request_id`` (the id every page of
    the gate shows the person: :func:`~consentgate.core.requestids.parse_request_id`),
    and the page."""
    values = _single(
        pairs, ("since", "event", "client_id", "request_id", "user", "limit", "cursor")
    )
    since = None
    if "since" in values:
        try:
            since = parse_since(values["since"], now)
        except (ValueError, OverflowError, OSError) as exc:
            raise BadRequest(str(exc)) from None
    event = values.get("event")
    if event is not None and event not in EVENTS:
        raise BadRequest(f"event: expected one of {', '.join(EVENTS)}, got {event[:40]!r}")
    client_id = _text("client_id", values["client_id"]) if "client_id" in values else None
    request_id = values.get("request_id")
    if request_id is not None:
        try:
            parse_request_id("request_id", request_id)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    user = _text("user", values["user"]) if "user" in values else None
    return AuditQuery(since, event, client_id, request_id, _page(values), user)


@dataclass(frozen=True, slots=True)
class RevokeRequest:
    """``POST /admin/consents/revoke``: one selector and its value (None for ``all``)."""

    selector: RevokeSelector
    value: str | None
    #: ``{"user": NAME}`` ([identity]): ``subject`` of every subject shown by that name.
    by_user: bool = False

    def arguments(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`ConsentStore.revoke`."""
        return {"all": True} if self.selector == "all" else {self.selector: self.value}


def parse_revoke_body(body: bytes) -> RevokeRequest:
    """A JSON object with exactly one of ``id``, ``client_id``, ``redirect_uri``,
    ``subject`` (a non-empty string), or ``"all": true`` with ``"confirm": "all"``."""
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("the body is not JSON") from None
    if not isinstance(document, dict):
        raise BadRequest(f"expected a JSON object, got {type(document).__name__}")
    known = (*_SELECTORS, "user", "all", "confirm")
    unknown = sorted(set(document) - set(known))
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r} (known: {', '.join(known)})")
    chosen = [name for name in (*_SELECTORS, "all") if name in document]
    if len(chosen) + ("user" in document) != 1:
        given = [*chosen, *(["user"] if "user" in document else [])]
        raise BadRequest(
            "name exactly one of id, client_id, redirect_uri, subject, user, all; "
            f"got {', '.join(given) or 'none'}"
        )
    if "user" in document:
        user = document["user"]
        if not isinstance(user, str):
            raise BadRequest(f"user: expected a string, got {json.dumps(user)[:40]}")
        if "confirm" in document:
            raise BadRequest('confirm goes only with "all": true')
        return RevokeRequest("subject", _text("user", user), by_user=True)
    selector = chosen[0]
    value = document[selector]
    if selector == "all":
        if value is not True:
            raise BadRequest(f"all: expected true, got {json.dumps(value)[:40]}")
        if document.get("confirm") != "all":
            raise BadRequest('all revokes every consent; add "confirm": "all"')
        return RevokeRequest("all", None)
    if "confirm" in document:
        raise BadRequest('confirm goes only with "all": true')
    if not isinstance(value, str):
        raise BadRequest(f"{selector}: expected a string, got {json.dumps(value)[:40]}")
    return RevokeRequest(selector, _text(selector, value))
