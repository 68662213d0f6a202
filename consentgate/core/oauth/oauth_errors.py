"""The OAuth error codes the gate answers with, one class each, under :class:`OAuthError`.

After authlib's ``rfc6749/errors.py``: each class knows its ``error`` code and the
HTTP status it is answered with by default; an instance carries the human-readable
``error_description``. Raised where a request is refused (:class:`InvalidRequest`,
:class:`InvalidScope`, :class:`InvalidTarget` from the parser), named where an error
is redirected to a client or answered as JSON (``AccessDenied.code``), so a code is
written once and never misspelled.

Where the codes come from:

* RFC 6749 §4.1.2.1 (authorization error response, redirected to the client):
  ``invalid_request``, ``unauthorized_client``, ``access_denied``,
  ``unsupported_response_type``, ``invalid_scope``, ``server_error``,
  ``temporarily_unavailable``;
* RFC 6749 §5.2 (token error response, JSON): ``invalid_client``, ``invalid_grant``,
  ``unsupported_grant_type``;
* OpenID Connect Core 1.0 §3.1.2.6: ``interaction_required``, ``login_required``,
  ``consent_required``, ``request_not_supported``, ``request_uri_not_supported``;
* RFC 8707 §2: ``invalid_target`` (a ``resource`` that is not an absolute URI).

The default statuses are authlib's: 400 for every client error (RFC 6749 §5.2 allows
401 for ``invalid_client`` only when the client authenticated with the
``Authorization`` header, which no client of the gate does), 500 for
``server_error``, 503 for ``temporarily_unavailable`` (the HTTP statuses the two
codes stand for, RFC 6749 §4.1.2.1, in a redirect that cannot carry them).
"""

from __future__ import annotations

from typing import ClassVar


class OAuthError(Exception):
    """An OAuth error: its ``code`` (the ``error`` parameter), its default HTTP
    ``status``, and this occurrence's ``description`` (``error_description``)."""

    code: ClassVar[str]
    status: ClassVar[int] = 400

    def __init__(self, description: str = "") -> None:
        super().__init__(description)
        self.description = description


class InvalidRequest(OAuthError):
    """A parameter missing, repeated or malformed (RFC 6749 §4.1.2.1)."""

    code = "invalid_request"


class UnauthorizedClient(OAuthError):
    """The client may not use this grant or response type (RFC 6749 §4.1.2.1)."""

    code = "unauthorized_client"


class AccessDenied(OAuthError):
    """The resource owner (the person on the consent page) refused (RFC 6749 §4.1.2.1)."""

    code = "access_denied"


class UnsupportedResponseType(OAuthError):
    """The server does not issue this response type (RFC 6749 §4.1.2.1)."""

    code = "unsupported_response_type"


class InvalidScope(OAuthError):
    """The scope is invalid, unknown or malformed (RFC 6749 §4.1.2.1)."""

    code = "invalid_scope"


class ServerError(OAuthError):
    """The server met a condition it did not expect (RFC 6749 §4.1.2.1: a 500 that a
    redirect cannot carry)."""

    code = "server_error"
    status = 500


class TemporarilyUnavailable(OAuthError):
    """The server cannot answer now: overloaded or in maintenance (RFC 6749 §4.1.2.1:
    a 503 that a redirect cannot carry)."""

    code = "temporarily_unavailable"
    status = 503


class InvalidClient(OAuthError):
    """The client is unknown or its authentication failed (RFC 6749 §5.2)."""

    code = "invalid_client"


class InvalidGrant(OAuthError):
    """The grant (an authorization code, a refresh token) is invalid, expired, revoked
    or was issued to another client or redirect URI (RFC 6749 §5.2)."""

    code = "invalid_grant"


class UnsupportedGrantType(OAuthError):
    """The server does not support this grant type (RFC 6749 §5.2)."""

    code = "unsupported_grant_type"


class InteractionRequired(OAuthError):
    """The server needs the person to interact (OpenID Connect Core 1.0 §3.1.2.6)."""

    code = "interaction_required"


class LoginRequired(OAuthError):
    """The server needs the person to sign in (OpenID Connect Core 1.0 §3.1.2.6)."""

    code = "login_required"


class ConsentRequired(OAuthError):
    """The server needs the person's consent (OpenID Connect Core 1.0 §3.1.2.6)."""

    code = "consent_required"


class RequestNotSupported(OAuthError):
    """The server does not accept a request object in ``request`` (JAR, RFC 9101;
    OpenID Connect Core 1.0 §3.1.2.6)."""

    code = "request_not_supported"


class RequestUriNotSupported(OAuthError):
    """The server does not accept ``request_uri`` (PAR, RFC 9126; OpenID Connect Core
    1.0 §3.1.2.6)."""

    code = "request_uri_not_supported"


class InvalidTarget(OAuthError):
    """The ``resource`` is invalid, unknown or malformed (RFC 8707 §2)."""

    code = "invalid_target"
