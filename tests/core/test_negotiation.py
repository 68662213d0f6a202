"""Which language a page speaks: ``ui_locales`` (OpenID Connect Core 1.0 §3.1.2.1)
first, then ``Accept-Language`` with its q-values (RFC 9110 §12.5.4), only among the
enabled languages, else the default."""

from __future__ import annotations

import pytest

from consentgate.core.negotiation import MAX_RANGES, direction, negotiate

ALL = ("en", "de", "fr", "es", "ja", "ar")


def test_a_german_browser_gets_german() -> None:
    assert negotiate(None, "de-DE,de;q=0.9,en;q=0.8", ALL, "en") == "de"


def test_ui_locales_beats_accept_language() -> None:
    assert negotiate("fr-CA ja", "de-DE,de;q=0.9", ALL, "en") == "fr"


def test_the_first_enabled_ui_locale_is_taken_and_unknown_ones_are_skipped() -> None:
    assert negotiate("tlh zh-Hant es-MX", "de", ALL, "en") == "es"


def test_ui_locales_naming_nothing_enabled_falls_back_to_accept_language() -> None:
    assert negotiate("tlh", "ar-EG", ALL, "en") == "ar"


def test_the_highest_q_wins_whatever_the_order() -> None:
    assert negotiate(None, "en;q=0.3, ja;q=0.8, de;q=0.5", ALL, "en") == "ja"


def test_equal_q_values_keep_the_browsers_order() -> None:
    assert negotiate(None, "es, fr", ALL, "en") == "es"


def test_a_disabled_language_is_never_chosen() -> None:
    assert negotiate("de", "de-DE,fr;q=0.2", ("en", "fr"), "en") == "fr"
    assert negotiate("de", "de-DE", ("en", "fr"), "en") == "en"


@pytest.mark.parametrize(
    "header",
    ["de;q=0", "de;q=abc", "de;q=2", "*", "", ";;;,,,", "de-;q=0.0", "x" * 10_000],
)
def test_a_refused_or_unreadable_range_leaves_the_default(header: str) -> None:
    assert negotiate(None, header, ALL, "es") == "es"


def test_only_the_first_ranges_are_read() -> None:
    header = ",".join(["tlh"] * MAX_RANGES + ["de"])
    assert negotiate(None, header, ALL, "en") == "en"
    assert negotiate(" ".join(["tlh"] * MAX_RANGES + ["de"]), None, ALL, "en") == "en"


def test_underscores_and_case_are_read_as_bcp47() -> None:
    assert negotiate("DE_at", None, ALL, "en") == "de"


def test_arabic_is_written_right_to_left_and_the_others_left_to_right() -> None:
    assert direction("ar") == "rtl"
    assert {direction(code) for code in ALL if code != "ar"} == {"ltr"}
