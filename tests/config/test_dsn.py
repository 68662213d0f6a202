"""Database URLs: checked, and never shown with their password."""

from __future__ import annotations

import pytest

from consentgate.config.dsn import check_database_url, describe, mask_password


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://gate:hunter2@db:5432/cg", "postgresql://gate:***@db:5432/cg"),
        (
            "postgresql://gate:p%40ss@db/cg?sslmode=require",
            "postgresql://gate:***@db/cg?sslmode=require",
        ),
        ("postgresql://gate@db/cg", "postgresql://gate@db/cg"),
        ("postgresql://:only-a-password@db/cg", "postgresql://:***@db/cg"),
        ("postgresql://gate:a:b@c@db/cg", "postgresql://gate:***@db/cg"),
    ],
)
def test_the_password_is_masked_and_the_rest_kept(url: str, shown: str) -> None:
    assert mask_password(url) == shown


def test_a_url_that_does_not_parse_still_loses_its_password() -> None:
    assert mask_password("postgresql://gate:secret@[::1/cg") == "postgresql://gate:***@[::1/cg"
    assert mask_password("host=db password='s e c' dbname=cg") == "host=db password=*** dbname=cg"
    assert mask_password("postgresql://db/cg?sslmode=require&password=hunter2") == (
        "postgresql://db/cg?sslmode=require&password=***"
    )


def test_a_postgres_url_is_read_for_messages() -> None:
    url = "postgres://gate:hunter2@[::1]:6543/consent%2Dgate?sslmode=verify-full"
    check_database_url(url)
    assert describe(url) == "[::1]:6543/consent-gate"
    assert "hunter2" not in mask_password(url)
    assert describe("postgresql://db/cg") == "db:5432/cg"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://gate:hunter2@db/cg", "is not a PostgreSQL URL"),
        ("postgresql://gate:hunter2@db:5432/", "names no database"),
        ("postgresql://gate:hunter2@db:99999/cg", "bad port"),
        ("postgresql:///cg", "names no host"),
        ("postgresql://gate:hunter2@db/cg#x", "has a #fragment"),
    ],
)
def test_a_bad_url_is_refused_naming_the_problem_never_the_password(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        check_database_url(url)
    assert "hunter2" not in str(caught.value)
