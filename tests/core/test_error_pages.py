"""Every error page speaks to a person: what happened and what to do, never the
operator's terms (docs/branding.md lists them)."""

from __future__ import annotations

import pytest

from consentgate.core.error_pages import ADVICE_TEXT, all_wordings, error_wording

#: Words a person following a link cannot act on: they belong in the log.
OPERATOR_TERMS = (
    "upstream",
    "redirect_uri",
    "client_id",
    "parameter",
    "error code",
    "csrf",
    "oauth",
    "metadata",
    "store",
    "_",
)


@pytest.mark.parametrize(("key", "wording"), list(all_wordings().items()))
def test_every_error_page_says_what_happened_and_what_to_do_in_plain_words(
    key: str, wording: object
) -> None:
    page = error_wording(int(key) if key.isdigit() else 400, key)
    assert page.title and page.happened and page.advice
    words = " ".join([page.title, page.happened, *page.advice_text()]).lower()
    assert page.advice_text() or page.advice == ("support",)
    for term in OPERATOR_TERMS:
        assert term not in words, (key, term)


@pytest.mark.parametrize(
    ("status", "code", "advice"),
    [
        (502, "bad_gateway", "retry"),
        (503, "temporarily_unavailable", "retry"),
        (504, "gateway_timeout", "retry"),
        (403, "invalid_csrf", "restart"),
        (403, "unbound_flow", "restart"),
        (400, "invalid_request", "application"),
        (400, "consent_required", "restart"),
        (404, "not_found", "address"),
        (500, "internal_error", "retry"),
        (502, "upstream_misconfigured", "support"),
    ],
)
def test_the_advice_fits_what_happened(status: int, code: str, advice: str) -> None:
    assert advice in error_wording(status, code).advice


def test_an_unknown_code_falls_back_on_its_status() -> None:
    assert error_wording(503, "something_new") == error_wording(503, "temporarily_unavailable")
    assert error_wording(418, "teapot").advice == error_wording(400, "x").advice


def test_contact_support_is_the_pages_own_line_not_repeated_in_the_list() -> None:
    page = error_wording(503, "temporarily_unavailable")
    assert page.template_values()["offer_support"] is True
    assert "contact support" not in " ".join(page.advice_text()).lower()
    assert error_wording(404, "not_found").template_values()["offer_support"] is False


def test_every_advice_has_its_words() -> None:
    for wording in all_wordings().values():
        assert set(wording.advice) <= set(ADVICE_TEXT)
