"""The statement set, once per dialect: each dialect's placeholders only, parameters
numbered in the order they are passed, and the few places the dialects differ.

Pure: strings only. Every statement also runs on its database in the contract suite
(test_store.py, test_backend_contract.py), against both backends."""

from __future__ import annotations

import re

import pytest

from consentgate.store.sql_statements import POSTGRES, SQLITE, Dialect, Statements


def texts(statements: Statements) -> dict[str, str]:
    """Every constant statement of the set, by name."""
    return {
        name: value
        for name, value in vars(statements).items()
        if name[0] != "_"
        and (
            isinstance(value, str)
            and value.split(" ", 1)[0] in {"SELECT", "INSERT", "UPDATE", "DELETE"}
        )
    }


def numbers(sql: str, mark: str) -> list[int]:
    return [int(n) for n in re.findall(re.escape(mark) + r"(\d+)", sql)]


@pytest.mark.parametrize(("dialect", "mark", "other"), [(SQLITE, "?", "$"), (POSTGRES, "$", "?")])
def test_each_dialect_writes_only_its_own_placeholders(
    dialect: Dialect, mark: str, other: str
) -> None:
    found = texts(Statements(dialect))
    assert len(found) > 20
    for name, sql in found.items():
        assert other not in sql, name
        used = numbers(sql, mark)
        assert sorted(set(used)) == list(range(1, len(set(used)) + 1)), name


def test_only_postgresql_finds_the_lookup_through_the_hashes_of_the_long_columns() -> None:
    assert "md5(" not in Statements(SQLITE).lookup
    assert "md5(client_id) = md5($2)" in Statements(POSTGRES).lookup
    for dialect in (SQLITE, POSTGRES):
        assert max(numbers(Statements(dialect).lookup, dialect.parameter)) == 5


def test_tables_are_named_in_the_dialects_schema_and_pages_by_its_position() -> None:
    sqlite, postgres = Statements(SQLITE), Statements(POSTGRES)
    assert "FROM clients WHERE rowid > ?1" in sqlite.client_page
    assert "FROM consentgate.clients WHERE seq > $1" in postgres.client_page
    assert sqlite.put_client.startswith("INSERT OR REPLACE INTO clients ")
    assert "ON CONFLICT (client_id) DO UPDATE SET" in postgres.put_client


def test_a_page_numbers_its_parameters_in_the_order_it_passes_them() -> None:
    sql, params = Statements(POSTGRES).consent_page(
        7, 50, (("client_id", "c"), ("redirect_uri", None), ("subject", "s")), True, 99
    )
    assert params == ["c", "s", 99, 7, 50]
    assert "client_id = $1 AND subject = $2 AND revoked_at IS NULL AND expires_at > $3" in sql
    assert sql.endswith("seq > $4 ORDER BY seq LIMIT $5")
    sql, params = Statements(SQLITE).unrevoked("all", None, None, 10)
    assert params == [0, 10]
    assert "WHERE revoked_at IS NULL AND rowid > ?1 ORDER BY rowid LIMIT ?2" in sql


def test_a_cursor_that_is_not_a_position_is_refused() -> None:
    with pytest.raises(TypeError, match="not a cursor"):
        Statements(SQLITE).audit_page(True, 10, None, None, None)
    with pytest.raises(TypeError, match="not a cursor"):
        Statements(POSTGRES).unrevoked("id", "x", "12", 10)


def test_only_postgresql_answers_an_unstorable_value_with_no_row() -> None:
    assert POSTGRES.storable("ok", None)
    assert not POSTGRES.storable("a\x00b")
    assert not POSTGRES.storable("\ud800")
    assert SQLITE.storable("a\x00b", "\ud800")
