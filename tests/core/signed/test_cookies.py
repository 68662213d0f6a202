"""The gate's cookie MACs: unforgeable, purpose-separated, bounded."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import pytest

from consentgate.core.signed.cookies import CookieCrypto, CookieNames, set_cookie_header
from consentgate.core.signed.keyring import derive_key
from consentgate.core.signed.pending import (
    MAX_SEALED_LENGTH,
    SEAL_VERSION,
    BadPending,
    PendingConsent,
    open_seal,
    seal,
)
from consentgate.core.signed.records import MAX_PENDING_PAYLOAD


@pytest.fixture
def crypto() -> CookieCrypto:
    secret = secrets.token_bytes(32)
    return CookieCrypto(lambda purpose: derive_key(secret, purpose), CookieNames(secure=False))


def test_a_browser_cookie_round_trips_and_resists_edits(crypto: CookieCrypto) -> None:
    browser_id, value = crypto.new_browser_cookie()
    assert crypto.read_browser_cookie(value) == browser_id
    tag = value.split(".")[1]

    def flip(text: str) -> str:  # change the last character, whatever it is
        return text[:-1] + ("B" if text[-1] == "A" else "A")

    assert crypto.read_browser_cookie(f"{flip(browser_id)}.{tag}") is None
    assert crypto.read_browser_cookie(f"{browser_id}.{flip(tag)}") is None
    assert crypto.read_browser_cookie(browser_id) is None
    assert crypto.read_browser_cookie("") is None
    assert crypto.read_browser_cookie("a.b.c") is None


def test_cookies_from_another_secret_do_not_verify(crypto: CookieCrypto) -> None:
    other_secret = secrets.token_bytes(32)
    other = CookieCrypto(lambda p: derive_key(other_secret, p), CookieNames(secure=False))
    _, value = other.new_browser_cookie()
    assert crypto.read_browser_cookie(value) is None


def test_subjects_are_digests_not_cookie_values(crypto: CookieCrypto) -> None:
    browser_id, value = crypto.new_browser_cookie()
    subject = crypto.subject_of(browser_id)
    assert subject not in value
    assert browser_id not in subject
    assert crypto.subject_of(browser_id) == subject


def test_csrf_tokens_bind_page_and_browser(crypto: CookieCrypto) -> None:
    token = crypto.csrf_token("p1", "subject-a")
    assert token == crypto.csrf_token("p1", "subject-a")
    assert token != crypto.csrf_token("p2", "subject-a")
    assert token != crypto.csrf_token("p1", "subject-b")


def test_approvals_tokens_bind_the_browser_and_stay_the_same_on_every_render(
    crypto: CookieCrypto,
) -> None:
    token = crypto.approvals_token("subject-a")
    assert token == crypto.approvals_token("subject-a")  # a reload keeps the form valid
    assert token != crypto.approvals_token("subject-b")
    assert token != crypto.csrf_token("approvals", "subject-a")  # its own purpose key


def test_pending_ids_sort_by_creation_time(crypto: CookieCrypto) -> None:
    ids = [crypto.new_pending_id(1000.0 + i) for i in range(20)]
    assert sorted(ids) == ids
    assert all(len(i) == 32 and i.isalnum() for i in ids)


def test_a_pending_consent_round_trips_and_refuses_other_formats() -> None:
    shown = PendingConsent.of(
        (("client_id", "a b"), ("state", "x&y")), redirectable=True, remember_allowed=False
    )
    assert PendingConsent.from_json(shown.to_json()) == shown
    assert shown.query == "client_id=a%20b&state=x%26y"
    for text in ("no json", "[]", '{"v": 1, "parameters": []}', '{"v": 2, "q": 1}'):
        with pytest.raises(BadPending):
            PendingConsent.from_json(text)


SHOWN = PendingConsent.of(
    (("client_id", "c"), ("redirect_uri", "https://client.example/cb"), ("scope", "openid")),
    redirectable=True,
    remember_allowed=True,
)
PAGE_ID = "0190a1b2c3d4" + "ab" * 10


def _b64decode(value: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_sealed_page_opens_for_its_browser_until_it_expires(crypto: CookieCrypto) -> None:
    sealed = crypto.seal_pending(PAGE_ID, "subject-a", 1_800_000_600, SHOWN)
    opened = crypto.open_pending(sealed, "subject-a", 1_800_000_599.9)
    assert (opened.id, opened.expires_at, opened.consent) == (PAGE_ID, 1_800_000_600, SHOWN)
    with pytest.raises(BadPending, match="expired"):
        crypto.open_pending(sealed, "subject-a", 1_800_000_600)
    with pytest.raises(BadPending, match="does not verify"):
        crypto.open_pending(sealed, "subject-b", 1_800_000_000)  # another browser
    assert _b64decode(sealed)[0] == SEAL_VERSION


def test_every_byte_of_a_sealed_page_is_authenticated(crypto: CookieCrypto) -> None:
    """Cloudflare's lesson: a hidden field the gate did not MAC is not trusted. Flipping
    any bit (version, expiry, id, payload or MAC) makes the value unusable."""
    sealed = crypto.seal_pending(PAGE_ID, "subject-a", 1_800_000_600, SHOWN)
    raw = _b64decode(sealed)
    for index in range(len(raw)):
        altered = bytearray(raw)
        altered[index] ^= 0x01
        with pytest.raises(BadPending):
            crypto.open_pending(_b64encode(bytes(altered)), "subject-a", 1_800_000_000)
    for cut in (raw[:-1], raw[:40], b""):
        with pytest.raises(BadPending):
            crypto.open_pending(_b64encode(bytes(cut)), "subject-a", 1_800_000_000)


def test_a_page_sealed_with_another_key_or_for_another_purpose_does_not_open(
    crypto: CookieCrypto,
) -> None:
    secret = secrets.token_bytes(32)
    other = CookieCrypto(lambda purpose: derive_key(secret, purpose), CookieNames(secure=False))
    sealed = other.seal_pending(PAGE_ID, "subject-a", 1_800_000_600, SHOWN)
    with pytest.raises(BadPending):
        crypto.open_pending(sealed, "subject-a", 1_800_000_000)
    csrf_keyed = seal(derive_key(secret, "csrf"), PAGE_ID, "subject-a", 1_800_000_600, SHOWN)
    with pytest.raises(BadPending):
        open_seal(derive_key(secret, "pending-seal"), csrf_keyed, "subject-a", 1_800_000_000)


@pytest.mark.parametrize(
    "value", ["", "not base64!", "é" * 10, "A" * (MAX_SEALED_LENGTH + 1), "AAAA.AAAA"]
)
def test_a_value_that_is_no_sealed_page_is_refused_before_any_mac(
    crypto: CookieCrypto, value: str
) -> None:
    with pytest.raises(BadPending):
        crypto.open_pending(value, "subject-a", 1_800_000_000)


def test_a_sealed_page_of_another_version_is_refused(crypto: CookieCrypto) -> None:
    key = derive_key(b"k" * 32, "pending-seal")
    raw = _b64decode(seal(key, PAGE_ID, "subject-a", 1_800_000_600, SHOWN))
    body = bytes([SEAL_VERSION + 1]) + bytes(raw[1:-32])
    remac = hmac.new(key, body + b"\0subject-a", hashlib.sha256).digest()
    with pytest.raises(BadPending, match="version"):
        open_seal(key, _b64encode(body + remac), "subject-a", 1_800_000_000)


def test_the_largest_page_seals_within_its_bound(crypto: CookieCrypto) -> None:
    filler = MAX_PENDING_PAYLOAD - len(
        PendingConsent.of((("x", ""),), redirectable=False, remember_allowed=False).to_json()
    )
    largest = PendingConsent.of((("x", "y" * filler),), redirectable=False, remember_allowed=False)
    assert len(largest.to_json()) == MAX_PENDING_PAYLOAD
    sealed = crypto.seal_pending(PAGE_ID, "s", 1_800_000_600, largest)
    assert len(sealed) == MAX_SEALED_LENGTH
    assert crypto.open_pending(sealed, "s", 0).consent == largest
    with pytest.raises(ValueError, match="larger than"):
        crypto.seal_pending(
            PAGE_ID,
            "s",
            1,
            PendingConsent.of(
                (("x", "y" * (filler + 1)),), redirectable=False, remember_allowed=False
            ),
        )


def test_binding_cookies_prove_the_state_the_browser_and_the_time(crypto: CookieCrypto) -> None:
    binding = crypto.binding_for("state-1", "subject-a", 1_800_000_000)
    jar = {binding.cookie_name: binding.cookie_value}
    assert crypto.check_binding("state-1", "subject-a", jar) == (binding.key, 1_800_000_000)
    assert crypto.check_binding("state-2", "subject-a", jar) is None
    assert crypto.check_binding("state-1", "subject-b", jar) is None  # another browser
    assert crypto.check_binding("state-1", "subject-a", {}) is None
    issued, proof = binding.cookie_value.split(".")
    younger = {binding.cookie_name: f"{int(issued) + 600}.{proof}"}
    assert crypto.check_binding("state-1", "subject-a", younger) is None
    assert crypto.binding_cookie_name("state-1") == binding.cookie_name
    assert len(binding.cookie_name) + len(binding.cookie_value) < 80


def test_keys_are_separated_by_purpose() -> None:
    secret = secrets.token_bytes(32)
    purposes = ["browser-id", "subject", "csrf", "binding", "pending-seal", "approvals-csrf"]
    keys = {derive_key(secret, purpose) for purpose in purposes}
    assert len(keys) == len(purposes)


def test_set_cookie_header_has_the_gate_attributes() -> None:
    header = set_cookie_header("__Host-cg_bid", "v", max_age=10, secure=True)
    assert header == "__Host-cg_bid=v; Path=/; Max-Age=10; HttpOnly; SameSite=Lax; Secure"
    assert "Secure" not in set_cookie_header("cg_bid", "v", max_age=10, secure=False)


def test_secure_deployments_use_host_prefixed_names() -> None:
    names = CookieNames(secure=True)
    assert names.browser == "__Host-cg_bid"
    assert names.pending("x").startswith("__Host-cg_p_")
    assert names.binding("y").startswith("__Host-cg_b_")
    assert CookieNames(secure=False).browser == "cg_bid"
