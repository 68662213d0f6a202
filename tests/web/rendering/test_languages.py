"""The pages speak the person's language: ``ui_locales`` first, then
``Accept-Language``, among ``[ui] languages``; ``<html lang dir>`` says which, a
right-to-left language gets ``dir="rtl"``, and a client's words are never looked
up in a catalog. Through a real gate in front of the fake single-client proxy."""

from __future__ import annotations

import re

import pytest

from tests.conftest import FakeClock, Stack, StartStack
from tests.support.browsersim import Browser, Page
from tests.web.consent_flow.test_authorize import approve_new, auth_params, register

APPROVALS = "/_consentgate/approvals"
HTML_TAG = re.compile(r'<html lang="([^"]*)" dir="([^"]*)">')


def lang_and_dir(page: Page) -> tuple[str, str]:
    found = HTML_TAG.search(page.text)
    assert found is not None, page.text[:200]
    return found.group(1), found.group(2)


@pytest.fixture
async def stack(start_stack: StartStack) -> Stack:
    return await start_stack()


async def speaking(stack: Stack, accept_language: str, **extra: str) -> Page:
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        browser.session.headers["Accept-Language"] = accept_language
        return await browser.authorize(auth_params(client_id, **extra))


async def test_a_german_browser_gets_a_german_consent_page(stack: Stack) -> None:
    page = await speaking(stack, "de-DE,de;q=0.9,en;q=0.8")
    assert page.is_consent_page
    assert lang_and_dir(page) == ("de", "ltr")
    assert "Wohin Ihr Anmeldeergebnis geht" in page.text
    assert ">Zulassen</button>" in page.text and ">Ablehnen</button>" in page.text
    assert "Where your sign-in result goes" not in page.text
    assert page.headers["Vary"] == "Accept-Language"
    assert page.headers["Content-Language"] == "de"
    assert page.headers["Cache-Control"] == "no-store"


async def test_an_arabic_browser_gets_a_right_to_left_page(stack: Stack) -> None:
    page = await speaking(stack, "ar-EG,ar;q=0.9")
    assert lang_and_dir(page) == ("ar", "rtl")
    assert ">سماح</button>" in page.text


async def test_ui_locales_beats_accept_language(stack: Stack) -> None:
    page = await speaking(stack, "de-DE", ui_locales="fr-CA es")
    assert lang_and_dir(page) == ("fr", "ltr")
    assert ">Autoriser</button>" in page.text


async def test_a_disabled_language_is_not_chosen_and_the_default_speaks_instead(
    start_stack: StartStack,
) -> None:
    stack = await start_stack(ui={"languages": ["es", "ja"], "default_language": "ja"})
    page = await speaking(stack, "de-DE,fr;q=0.5", ui_locales="ar")
    assert lang_and_dir(page) == ("ja", "ltr")
    assert ">許可</button>" in page.text


async def test_without_any_preference_the_page_is_in_the_default_language(
    start_stack: StartStack,
) -> None:
    stack = await start_stack(ui={"default_language": "es"})
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
    assert lang_and_dir(page) == ("es", "ltr")
    assert ">Permitir</button>" in page.text


async def test_a_clients_name_equal_to_a_message_is_shown_as_the_client_wrote_it(
    stack: Stack,
) -> None:
    client_id = await register(stack, client_name="Deny")
    async with Browser(stack.url) as browser:
        browser.session.headers["Accept-Language"] = "de"
        page = await browser.authorize(auth_params(client_id, scope="Allow"))
    assert "&bdquo;<bdi>Deny</bdi>&ldquo;" in page.text  # not "Ablehnen"
    assert "<code><bdi>Allow</bdi></code>" in page.text  # the scope, not "Zulassen"


async def test_a_client_name_with_markup_stays_escaped_inside_a_translated_sentence(
    stack: Stack,
) -> None:
    client_id = await register(stack, client_name="<b>%(service)s</b>")
    async with Browser(stack.url) as browser:
        browser.session.headers["Accept-Language"] = "fr"
        page = await browser.authorize(auth_params(client_id))
    assert "<bdi>&lt;b&gt;%(service)s&lt;/b&gt;</bdi>" in page.text


async def test_the_answer_page_keeps_the_language_the_request_asked_for(stack: Stack) -> None:
    async with Browser(stack.url) as browser:
        browser.session.headers["Accept-Language"] = "en"
        page = await browser.authorize(auth_params("never-registered", ui_locales="de"))
        assert lang_and_dir(page) == ("de", "ltr")
        denied = await browser.answer(page, "deny")
    assert denied.status == 200
    assert lang_and_dir(denied) == ("de", "ltr")
    assert "Zugriff abgelehnt" in denied.text


async def test_an_error_page_speaks_the_browsers_language(stack: Stack) -> None:
    async with Browser(stack.url) as browser:
        browser.session.headers["Accept-Language"] = "ar"
        page = await browser.get("/_consentgate/nothing-here")
    assert page.status == 404
    assert lang_and_dir(page) == ("ar", "rtl")
    assert "الصفحة غير موجودة" in page.text
    assert page.headers["Content-Language"] == "ar"


async def test_a_refused_authorization_request_speaks_its_ui_locales(stack: Stack) -> None:
    async with Browser(stack.url) as browser:
        browser.session.headers["Accept-Language"] = "en"
        page = await browser.authorize({"client_id": "x", "ui_locales": "es"})
    assert page.status == 400
    assert lang_and_dir(page) == ("es", "ltr")
    assert "No se pudo iniciar este inicio de sesión" in page.text


async def test_the_approvals_page_writes_dates_and_durations_in_the_language(
    start_stack: StartStack,
) -> None:
    clock = FakeClock()
    stack = await start_stack(clock=clock)
    client_id = await register(stack, client_name="Notizen")
    async with Browser(stack.url) as browser:
        await approve_new(browser, auth_params(client_id), remember=True)
        browser.session.headers["Accept-Language"] = "de"
        page = await browser.get(APPROVALS)
    assert lang_and_dir(page) == ("de", "ltr")
    assert "<dt>Läuft ab</dt>" in page.text
    assert "(in 30 Tagen)" in page.text


async def test_a_new_clients_age_reads_in_the_language(start_stack: StartStack) -> None:
    clock = FakeClock()
    stack = await start_stack(clock=clock, consent={"service_name": "Acme MCP"})
    client_id = await register(stack)
    clock.advance(4 * 60 + 10)
    async with Browser(stack.url) as browser:
        browser.session.headers["Accept-Language"] = "de"
        page = await browser.authorize(auth_params(client_id))
    assert "Registriert vor 4 Minuten" in page.text
    assert "hat sich vor 4 Minuten bei Acme MCP registriert" in page.text


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("de", "möchte bei diesem Dienst in Ihrem Namen auftreten"),
        ("fr", "souhaite utiliser ce service en votre nom"),
        ("ar", "استخدام هذه الخدمة باسمك"),
    ],
)
async def test_the_default_service_name_is_said_in_the_pages_language(
    start_stack: StartStack, language: str, words: str
) -> None:
    """``[consent] service_name`` left at its default ("this service") is the gate's
    word, not the operator's: it is translated with the page."""
    stack = await start_stack()
    client_id = await register(stack, client_name="Notes")
    async with Browser(stack.url) as browser:
        browser.session.headers["Accept-Language"] = language
        page = await browser.authorize(auth_params(client_id))
    assert words in page.text
    assert "this service" not in page.text
