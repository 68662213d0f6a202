"""Who signed in: the person's subject in the store, and the gate's session cookie value.

* The subject of a person's approvals is a digest of the issuer and the configured
  subject claim (``sub`` by default: OIDC Core §2 makes ``iss`` + ``sub`` the stable,
  unique identifier; an email can be reassigned). It is not keyed by a gate secret,
  so rotating the cookie secret does not orphan anyone's approvals, and the prefix
  ``person:`` keeps it apart from a browser's subject (base64url, no colon).
* The display claim (``email`` by default) is kept beside it for people (the consent
  page's "Signed in as") and operators (``consents list --user``); it decides nothing.
* The session cookie's value is MACed (HMAC-SHA256, RFC 2104) with its own purpose key
  over the browser's subject, the person, the display value and the expiry: it is
  useless in another browser, cannot be edited and cannot outlive
  ``[identity] session_lifetime``. It grants nothing upstream: the gate only reads
  whose approvals to look up.

Pure module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from consentgate.core.identity.token_errors import IdTokenRejected

PERSON_PREFIX: Final = "person:"
#: Longest display value kept (characters); a longer claim is cut.
MAX_DISPLAY_LENGTH: Final = 200
_VERSION: Final = "1"


@dataclass(frozen=True, slots=True)
class Person:
    """A person signed in at the gate: the store's subject and what is shown."""

    subject: str
    display: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def person_subject(issuer: str, subject_value: str) -> str:
    """``person:`` and the base64url SHA-256 of the issuer and the subject claim's value."""
    digest = hashlib.sha256(
        b"consentgate-person-v1\n" + issuer.encode() + b"\n" + subject_value.encode()
    ).digest()
    return PERSON_PREFIX + _b64(digest)


def is_person(subject: str) -> bool:
    return subject.startswith(PERSON_PREFIX)


def clean_display(value: str) -> str:
    """The display value without control characters, cut to its maximum length."""
    kept = "".join(c for c in value if c.isprintable())
    return kept[:MAX_DISPLAY_LENGTH]


def person_from_claims(
    claims: Mapping[str, Any], *, issuer: str, subject_claim: str, display_claim: str
) -> Person:
    """The person an ID token's verified claims name; :class:`IdTokenRejected`
    (``subject``) when the subject claim is missing or empty."""
    value = claims.get(subject_claim)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise IdTokenRejected("subject", f"the claim {subject_claim!r} is missing or empty")
    shown = claims.get(display_claim)
    if display_claim == "email" and claims.get("email_verified") in (False, "false"):
        # OIDC Core §5.1: an address the provider did not check is anyone's to type;
        # operators find people by this name, so the subject claim stands in.
        shown = None
    display = clean_display(shown if isinstance(shown, str) and shown else value)
    return Person(person_subject(issuer, value), display)


def _mac(key: bytes, browser: str, person: str, display: str, expires: str) -> str:
    message = "\x1f".join((_VERSION, browser, person, display, expires)).encode("utf-8")
    return _b64(hmac.new(key, message, hashlib.sha256).digest()[:24])


def seal_session(key: bytes, browser_subject: str, person: Person, expires_at: int) -> str:
    """The session cookie's value for ``person`` in the browser ``browser_subject``."""
    digest = person.subject.removeprefix(PERSON_PREFIX)
    display = _b64(person.display.encode("utf-8"))
    expires = str(int(expires_at))
    tag = _mac(key, browser_subject, person.subject, person.display, expires)
    return ".".join((_VERSION, digest, display, expires, tag))


def read_session(key: bytes, value: str | None, browser_subject: str) -> tuple[Person, int] | None:
    """The person of a session cookie value and when it expires, or None: absent,
    forged or another browser's. A pure function of its arguments (cacheable)."""
    if not value or len(value) > 1024 or value.count(".") != 4:
        return None
    version, digest, display_b64, expires, tag = value.split(".")
    if version != _VERSION or not expires.isdigit() or len(expires) > 12:
        return None
    try:
        display = _unb64(display_b64).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    subject = PERSON_PREFIX + digest
    expected = _mac(key, browser_subject, subject, display, expires)
    if not hmac.compare_digest(tag.encode("ascii", "replace"), expected.encode("ascii")):
        return None
    return Person(subject, display), int(expires)


def open_session(
    key: bytes,
    value: str | None,
    browser_subject: str,
    now: float,
    read_with: Callable[[bytes, str | None, str], tuple[Person, int] | None] = read_session,
) -> Person | None:
    """The person of a session cookie value, or None: absent, forged, another
    browser's, or expired. ``read_with`` is :func:`read_session` or a remembering copy
    of it (the MAC is a pure function of the value; the expiry is checked every time)."""
    read = read_with(key, value, browser_subject)
    if read is None or read[1] <= now:
        return None
    return read[0]
