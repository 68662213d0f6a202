"""The shipped catalogs: one per language of ``[ui] languages``, every message of
every page translated (non-empty, not fuzzy, the same placeholders), in step with
the sources, with CLDR's plural rules; and each rendered page leaves no English
behind."""

from __future__ import annotations

import html
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from consentgate.config.loading import config_from_mapping
from consentgate.config.parsers import SHIPPED_LANGUAGES
from consentgate.web.rendering.catalogs import LOCALES_DIR
from consentgate.web.rendering.page_samples import sample_pages
from consentgate.web.rendering.pages import page_context
from consentgate.web.rendering.templates import Templates

ROOT = Path(__file__).resolve().parents[3]
TOOL = ROOT / "tools" / "catalogs.py"
MINIMAL = {
    "server": {"public_url": "https://mcp.example.com"},
    "upstream": {"url": "http://127.0.0.1:8000"},
}


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("catalogs_tool", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_catalogs_are_complete_and_up_to_date_with_the_sources() -> None:
    done = subprocess.run(
        [sys.executable, str(TOOL), "check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "catalogs complete and up to date" in done.stdout


def test_every_shipped_language_has_a_catalog_and_nothing_else_is_shipped() -> None:
    shipped = {p.name for p in LOCALES_DIR.iterdir() if p.is_dir()}
    assert shipped == set(SHIPPED_LANGUAGES)
    assert set(load_tool().LANGUAGES) == set(SHIPPED_LANGUAGES)


@pytest.fixture
def checkout_copy(tmp_path: Path) -> ModuleType:
    """The tool pointed at a copy of the sources and catalogs."""
    shutil.copytree(ROOT / "static", tmp_path / "static")
    shutil.copytree(
        ROOT / "consentgate",
        tmp_path / "consentgate",
        ignore=shutil.ignore_patterns("__pycache__", "*.mo"),
    )
    tool = load_tool()
    locales = tmp_path / "consentgate" / "locales"
    for name, value in (
        ("ROOT", tmp_path),
        ("LOCALES", locales),
        ("TEMPLATE", locales / "consentgate.pot"),
    ):
        setattr(tool, name, value)
    assert tool.problems() == []
    return tool


def test_a_new_english_sentence_without_translations_fails_the_check(
    checkout_copy: ModuleType,
) -> None:
    denied = checkout_copy.ROOT / "static" / "denied.html"
    denied.write_text(
        denied.read_text().replace(
            "{% endblock %}\n", '<p>{{ _("A brand new sentence") }}</p>\n{% endblock %}\n', 1
        )
    )
    assert any("lacks 'A brand new sentence'" in p for p in checkout_copy.problems())
    checkout_copy.cmd_update()
    found = checkout_copy.problems()
    assert "de/consentgate.po: 'A brand new sentence' is not translated (empty or fuzzy)" in found
    assert not any(p.startswith("en/") for p in found)  # English is its message ids


def test_a_translation_that_drops_or_invents_a_placeholder_fails_the_check(
    checkout_copy: ModuleType,
) -> None:
    po = checkout_copy.LOCALES / "de" / "LC_MESSAGES" / "consentgate.po"
    text = po.read_text()
    text = text.replace(
        'msgstr "Zugriff abgelehnt"', 'msgstr "Zugriff für %(name)s abgelehnt"'
    ).replace("erlaubt, bei %(service)s in Ihrem Namen", "erlaubt, in Ihrem Namen")
    po.write_text(text)
    found = "\n".join(checkout_copy.problems())
    assert "'Access denied' form 0 has placeholders ['name'], the message []" in found
    assert "form 0 has placeholders [], the message ['service']" in found


def test_a_fuzzy_translation_counts_as_missing(checkout_copy: ModuleType) -> None:
    po = checkout_copy.LOCALES / "ja" / "LC_MESSAGES" / "consentgate.po"
    po.write_text(po.read_text().replace('msgid "Deny"', '#, fuzzy\nmsgid "Deny"', 1))
    assert "ja/consentgate.po: 'Deny' is not translated (empty or fuzzy)" in (
        checkout_copy.problems()
    )


def _visible_text(page: str) -> set[str]:
    """The page's words as a person sees them: text between tags, and the labels."""
    labels = re.findall(r'aria-label="([^"]*)"', page)
    page = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", page, flags=re.S)
    pieces = [html.unescape(p).strip() for p in re.split(r"<[^>]+>", page)]
    return {p for p in pieces + labels if p}


#: Pieces of the sample pages that are data, the same in every language.
DATA = re.compile(
    r"^[\s()·.,:;\-—&]*$|consentgate|notes|Example Notes|sample|0123456789abcdef|127\.0\.0\.1"
    r"|mcp\.example\.com|^https?://|^\d|^/oauth/|^:\d+/callback"
    r"|accounts\.example|^openid$|^email$|@example\.com"  # IdP host and scopes, a person
)
#: Words a language writes as English does.
SAME_WORDS = {"de": {"Website"}}


@pytest.mark.parametrize("language", [code for code in SHIPPED_LANGUAGES if code != "en"])
def test_every_sample_page_leaves_no_english_words_behind(language: str, tmp_path: Path) -> None:
    config = config_from_mapping(MINIMAL, base_dir=tmp_path, environ={})
    templates = Templates.from_config(config.ui)
    base = page_context(config, templates, "0123456789abcdef")
    english = {
        page.filename: _visible_text(
            templates.render(page.template, language="en", **{**base, **page.context})
        )
        for page in sample_pages(config, templates.catalog("en"))
    }
    for page in sample_pages(config, templates.catalog(language)):
        rendered = templates.render(page.template, language=language, **{**base, **page.context})
        assert f'<html lang="{language}" dir="{"rtl" if language == "ar" else "ltr"}">' in rendered
        left = {
            piece
            for piece in _visible_text(rendered) & english[page.filename]
            if not DATA.search(piece) and re.search(r"[A-Za-z]{3}", piece)
        } - SAME_WORDS.get(language, set())
        assert left == set(), f"{language} {page.filename}: untranslated {sorted(left)}"


@pytest.mark.parametrize(
    ("count", "heading"),
    [
        (1, "إلغاء موافقتك الوحيدة؟"),
        (2, "إلغاء موافقتيك كلتيهما؟"),
        (5, "إلغاء موافقاتك الـ5 جميعها؟"),  # noqa: RUF001 - Arabic letters
        (11, "إلغاء موافقاتك الـ11 جميعها؟"),  # noqa: RUF001 - Arabic letters
    ],
)
def test_plurals_follow_the_languages_own_rules(count: int, heading: str, tmp_path: Path) -> None:
    config = config_from_mapping(MINIMAL, base_dir=tmp_path, environ={})
    templates = Templates.from_config(config.ui)
    base = page_context(config, templates, "")
    page = templates.render(
        "approvals_confirm.html",
        language="ar",
        **{**base, "count": count, "csrf_token": "t", "action": "#"},
    )
    assert f"<h1>{heading}</h1>" in page
