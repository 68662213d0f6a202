"""``[ui]``: the accent colour goes into a stylesheet and the support link onto every
error page, so both are held to a strict grammar; errors name the key and the value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consentgate.config.loading import ConfigError, config_from_mapping

MINIMAL: dict[str, Any] = {
    "server": {"public_url": "https://mcp.example.com"},
    "upstream": {"url": "http://127.0.0.1:8000"},
}


def load(tmp_path: Path, **ui: Any) -> Any:
    return config_from_mapping({**MINIMAL, "ui": ui}, base_dir=tmp_path, environ={}).ui


@pytest.mark.parametrize(("given", "kept"), [("#0a7", "#0a7"), ("#00AA77", "#00aa77"), ("", "")])
def test_an_accent_colour_is_three_or_six_hex_digits(tmp_path: Path, given: str, kept: str) -> None:
    assert load(tmp_path, accent_color=given).accent_color == kept


@pytest.mark.parametrize(
    "given",
    [
        "red",
        "#12345",
        "#1234567",
        "#ggg",
        "#fff;}body{display:none",
        "#fff;background:url(https://evil.example/x)",
        "#fff}",
        "#fff\n",
        "expression(alert(1))",
        "rgb(0,0,0)",
        " #fff",
    ],
)
def test_an_accent_colour_that_could_write_css_is_refused_naming_the_key(
    tmp_path: Path, given: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, accent_color=given)
    assert "ui.accent_color" in str(refused.value)


@pytest.mark.parametrize(
    "given", ["https://help.example/ticket?from=gate", "mailto:help@example.com", ""]
)
def test_a_support_url_is_https_or_one_mail_address(tmp_path: Path, given: str) -> None:
    assert load(tmp_path, support_url=given).support_url == given


@pytest.mark.parametrize(
    "given",
    [
        "javascript:alert(1)",
        "http://help.example/",
        "https:///nohost",
        "https://user:pw@help.example/",
        "mailto:a@b.example,c@d.example",
        "mailto:",
        "https://help.example/a b",
        "data:text/html,hi",
    ],
)
def test_a_support_url_people_should_not_follow_is_refused_naming_the_key(
    tmp_path: Path, given: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, support_url=given)
    assert "ui.support_url" in str(refused.value)


def test_the_templates_directory_and_the_logo_are_relative_to_the_config_file(
    tmp_path: Path,
) -> None:
    ui = load(tmp_path, templates_dir="theme", logo_file="theme/logo.svg")
    assert ui.templates_dir == tmp_path / "theme"
    assert ui.logo_file == tmp_path / "theme" / "logo.svg"


def test_the_pages_speak_every_shipped_language_and_english_by_default(tmp_path: Path) -> None:
    ui = load(tmp_path)
    assert ui.languages == ("en", "de", "fr", "es", "ja", "ar")
    assert ui.default_language == "en"


def test_the_enabled_languages_keep_the_operators_order_each_once(tmp_path: Path) -> None:
    ui = load(tmp_path, languages=["DE", "ar", "de"], default_language="ar")
    assert ui.languages == ("de", "ar")
    assert ui.default_language == "ar"


@pytest.mark.parametrize(
    ("key", "given"),
    [
        ("languages", ["de", "xx"]),
        ("languages", []),
        ("languages", "de"),
        ("default_language", "klingon"),
    ],
)
def test_a_language_that_does_not_ship_is_refused_naming_the_key_and_the_value(
    tmp_path: Path, key: str, given: Any
) -> None:
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, **{key: given})
    assert f"ui.{key}" in str(refused.value)
    if isinstance(given, str) or given:
        assert repr(given if isinstance(given, str) else given[1]) in str(refused.value)


def test_a_default_language_that_is_not_enabled_is_refused_naming_both_keys(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, languages=["de", "fr"], default_language="en")
    assert "ui.default_language: 'en' is not one of ui.languages" in str(refused.value)
