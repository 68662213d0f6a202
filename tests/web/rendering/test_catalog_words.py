"""The words a catalog writes for durations and moments are CLDR's, through Babel,
and remembered: the same words as Babel writes for each value, the second time from
memory."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from babel.dates import format_date, format_time, format_timedelta, get_datetime_format

from consentgate.config.parsers import SHIPPED_LANGUAGES
from consentgate.web.rendering import catalogs
from consentgate.web.rendering.catalogs import shipped_catalogs

#: Around each unit's edges, and far beyond them.
SECONDS: tuple[int, ...] = (1, 2, 59, 60, 61, 119, 120, 3599, 3600, 3601, 7199, 86399)
SECONDS += (86400, 86401, 2591999, 2592000, 31535999, 31536000, 94608000)
#: 2027-01-12 08:00:00 UTC, then across the edges of a minute, a day and a year.
MOMENTS = (1799740800, 1799740859, 1799740860, 1799783999, 1799784000, 1830297599, 1830297600)


def babel_duration(language: str, seconds: int, direction: int) -> str:
    """What Babel writes for ``seconds`` floored to its largest whole unit, as the
    pages have always worded it."""
    unit, size = next(
        (unit, size)
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
        if seconds >= size
    )
    delta = timedelta(seconds=seconds // size * size)
    return format_timedelta(
        -delta if direction < 0 else delta,
        granularity=unit,  # type: ignore[arg-type]
        threshold=math.inf,
        add_direction=direction != 0,
        locale=language,
    )


def babel_moment(language: str, timestamp: float) -> str:
    when = datetime.fromtimestamp(timestamp, UTC)
    pattern = str(get_datetime_format("medium", locale=language)).replace("'", "")
    date = format_date(when, "medium", locale=language)
    hour = format_time(when, "HH:mm", tzinfo=UTC, locale=language)
    return pattern.replace("{1}", date).replace("{0}", hour) + " UTC"


@pytest.mark.parametrize("language", SHIPPED_LANGUAGES)
def test_durations_are_worded_as_babel_words_them_in_every_language(language: str) -> None:
    catalog = shipped_catalogs()[language]
    for seconds in SECONDS:
        for _ in range(2):  # the second time from memory
            assert catalog.ago(seconds) == babel_duration(language, seconds, -1)
            assert catalog.within(seconds) == babel_duration(language, seconds, 1)
            assert catalog.duration(seconds) == babel_duration(language, seconds, 0)
            assert catalog.ago(seconds + 0.7) == babel_duration(language, seconds, -1)


@pytest.mark.parametrize("language", SHIPPED_LANGUAGES)
def test_moments_are_worded_to_the_minute_as_babel_words_them(language: str) -> None:
    catalog = shipped_catalogs()[language]
    for timestamp in MOMENTS:
        for _ in range(2):
            assert catalog.moment(timestamp) == babel_moment(language, timestamp)
            assert catalog.moment(timestamp + 0.5) == babel_moment(language, timestamp + 0.5)
    assert catalog.moment(MOMENTS[0]) == catalog.moment(MOMENTS[1])  # the same minute
    assert catalog.moment(MOMENTS[1]) != catalog.moment(MOMENTS[2])  # the next one


def test_a_duration_or_a_moment_worded_before_comes_from_memory() -> None:
    catalog = shipped_catalogs()["de"]
    catalog.ago(4 * 60 + 5)
    catalog.moment(MOMENTS[0])
    durations, moments = (
        catalogs._worded_timedelta.cache_info(),
        catalogs._worded_minute.cache_info(),
    )
    assert catalog.ago(4 * 60 + 42) == "vor 4 Minuten"  # the same whole minutes
    assert catalog.moment(MOMENTS[1]) == babel_moment("de", MOMENTS[1])
    assert catalogs._worded_timedelta.cache_info().hits == durations.hits + 1
    assert catalogs._worded_minute.cache_info().hits == moments.hits + 1
