"""How long a fetched document is kept, from its Cache-Control (pure function)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentgate.clients.cache_policy import time_to_live

FLOOR, DEFAULT, CEILING = 60, 3600, 86400


def ttl(cache_control: str | None, age: str | None = None) -> int:
    return time_to_live(cache_control, floor=FLOOR, ceiling=CEILING, default=DEFAULT, age=age)


def test_a_response_without_cache_control_is_kept_for_the_default() -> None:
    assert ttl(None) == DEFAULT
    assert ttl("") == DEFAULT
    assert ttl("public") == DEFAULT
    assert ttl("must-revalidate, immutable") == DEFAULT


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("max-age=600", 600),
        ("public, max-age=7200", 7200),
        ("MAX-AGE=600", 600),
        (' max-age = "600" ', 600),
        ("max-age=600, s-maxage=900", 900),
        ("s-maxage=120, max-age=600", 120),
        ("private, max-age=600", 600),
        ('foo="a, max-age=5", max-age=600', 600),
    ],
)
def test_max_age_sets_the_time_to_live(header: str, seconds: int) -> None:
    assert ttl(header) == seconds


@pytest.mark.parametrize(
    "header",
    [
        "no-store",
        "no-cache",
        "max-age=600, no-store",
        "No-Cache, max-age=600",
        'no-cache="set-cookie"',
        "max-age=0",
        "max-age=5",
    ],
)
def test_no_store_no_cache_and_short_ages_keep_it_for_the_floor_never_less(header: str) -> None:
    assert ttl(header) == FLOOR


@pytest.mark.parametrize(
    "header",
    [
        "max-age=-1",
        "max-age=",
        "max-age",
        "max-age=1h",
        "max-age=1.5",
        "max-age=600, max-age=900",
        'max-age="600',
        "max-age=\u0661\u0662\u0663",
    ],
)
def test_an_unreadable_or_conflicting_max_age_counts_as_stale(header: str) -> None:
    assert ttl(header) == FLOOR


def test_the_same_max_age_twice_is_not_a_conflict() -> None:
    assert ttl("max-age=600, max-age=600") == 600


def test_a_long_max_age_is_cut_to_the_ceiling() -> None:
    assert ttl("max-age=31536000") == CEILING
    assert ttl("max-age=" + "9" * 40) == CEILING
    assert ttl("max-age=" + "0" * 40 + "600") == 600


def test_the_age_of_the_response_is_subtracted() -> None:
    assert ttl("max-age=600", age="100") == 500
    assert ttl("max-age=600", age="590") == FLOOR
    assert ttl("max-age=600", age="x") == FLOOR
    assert ttl(None, age="100") == DEFAULT - 100


def test_a_floor_above_the_ceiling_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="floor"):
        time_to_live(None, floor=10, ceiling=5, default=5)
    with pytest.raises(ValueError, match="floor"):
        time_to_live(None, floor=-1, ceiling=5, default=5)


@given(
    st.text(max_size=60) | st.none(),
    st.text(max_size=8) | st.none(),
    st.integers(0, 1000),
    st.integers(0, 100000),
    st.integers(-10, 200000),
)
def test_the_time_to_live_is_always_between_the_floor_and_the_ceiling(
    header: str | None, age: str | None, floor: int, span: int, default: int
) -> None:
    seconds = time_to_live(header, floor=floor, ceiling=floor + span, default=default, age=age)
    assert floor <= seconds <= floor + span
