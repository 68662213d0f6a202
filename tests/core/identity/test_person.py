"""The person's subject and the gate's session value."""

from __future__ import annotations

import pytest

from consentgate.core.identity.person import (
    Person,
    is_person,
    open_session,
    person_from_claims,
    person_subject,
    seal_session,
)
from consentgate.core.identity.token_errors import IdTokenRejected

KEY = b"k" * 32
ISSUER = "https://idp.example"


def alice() -> Person:
    return person_from_claims(
        {"sub": "a-1", "email": "alice@example.com"},
        issuer=ISSUER,
        subject_claim="sub",
        display_claim="email",
    )


def test_the_subject_is_a_digest_of_the_issuer_and_the_subject_claim() -> None:
    person = alice()
    assert person.subject == person_subject(ISSUER, "a-1") and is_person(person.subject)
    assert person.subject != person_subject("https://other.example", "a-1")
    assert "a-1" not in person.subject and person.display == "alice@example.com"


def test_a_token_without_the_subject_claim_names_nobody() -> None:
    with pytest.raises(IdTokenRejected):
        person_from_claims(
            {"email": "x"}, issuer=ISSUER, subject_claim="sub", display_claim="email"
        )


@pytest.mark.parametrize("verified", [False, "false"])
def test_an_email_the_provider_marks_unverified_is_not_the_persons_name(verified: object) -> None:
    """OIDC Core §5.1: ``email_verified`` false means the provider has not checked the
    address; anyone may have typed alice's. Operators find people by this name
    (``consents list --user``), so it is not kept: the subject claim is shown."""
    person = person_from_claims(
        {"sub": "m-9", "email": "alice@example.com", "email_verified": verified},
        issuer=ISSUER,
        subject_claim="sub",
        display_claim="email",
    )
    assert person.display == "m-9"
    kept = person_from_claims(
        {"sub": "a-1", "email": "alice@example.com", "email_verified": True},
        issuer=ISSUER,
        subject_claim="sub",
        display_claim="email",
    )
    assert kept.display == "alice@example.com" == alice().display  # absent: kept


def test_a_session_opens_in_its_own_browser_until_it_expires() -> None:
    value = seal_session(KEY, "browser-1", alice(), 2000)
    assert open_session(KEY, value, "browser-1", 1999) == alice()
    assert open_session(KEY, value, "browser-1", 2000) is None
    assert open_session(KEY, value, "browser-2", 1000) is None
    assert open_session(b"x" * 32, value, "browser-1", 1000) is None


def test_an_edited_session_opens_for_nobody() -> None:
    value = seal_session(KEY, "browser-1", alice(), 2000)
    version, digest, display, expires, tag = value.split(".")
    assert (
        open_session(KEY, ".".join((version, digest, display, "9999", tag)), "browser-1", 0) is None
    )
    other = person_subject(ISSUER, "mallory").removeprefix("person:")
    assert (
        open_session(KEY, ".".join((version, other, display, expires, tag)), "browser-1", 0) is None
    )
