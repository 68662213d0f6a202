"""Which attached gates a migration would break, and whether a gate runs on a store
whose schema moved past its own: the pure rules, with the versions injected (no
release of this code has a breaking migration yet, so the levels are parameters)."""

from __future__ import annotations

import pytest

from consentgate.core.attached_gates import (
    REFRESH_EVERY,
    STALE_AFTER,
    AttachedGate,
    GatesAttached,
    blocking,
    gates_attached,
)
from consentgate.core.schema_versions import (
    POSTGRES_COMPATIBLE_FROM,
    POSTGRES_SCHEMA,
    SQLITE_COMPATIBLE_FROM,
    SQLITE_SCHEMA,
    compatible_from,
    runs_on,
)
from consentgate.core.startup_errors import StartupError

NOW = 1_800_000_000


def gate(schema: int, *, seen: int = 0, pid: int = 4242, host: str = "gate-a") -> AttachedGate:
    return AttachedGate(
        instance=f"{host}-{pid}",
        schema_version=schema,
        software="0.2.0",
        host=host,
        pid=pid,
        started_at=NOW - 3600,
        seen_at=NOW - seen,
        refresh_every=REFRESH_EVERY,
    )


def test_a_gate_runs_on_a_store_of_its_own_schema_or_an_older_one() -> None:
    assert runs_on(7, 7, None)
    assert runs_on(7, 6, None)  # migrated forward at start


def test_a_gate_runs_on_a_newer_store_whose_migrations_kept_its_schema_working() -> None:
    assert runs_on(7, 8, 7)
    assert runs_on(7, 9, 6)


def test_a_gate_does_not_run_on_a_newer_store_that_broke_its_schema() -> None:
    assert not runs_on(7, 8, 8)


def test_a_newer_store_that_does_not_say_what_it_keeps_working_is_refused() -> None:
    assert not runs_on(7, 8, None)  # fail closed: a missing level row is no promise


def test_compatible_from_reads_a_version_s_level_and_knows_no_other() -> None:
    levels = (1, 2, 2)
    assert compatible_from(levels, 3) == 2
    assert compatible_from(levels, 1) == 1
    with pytest.raises(ValueError, match="schema version 4"):
        compatible_from(levels, 4)


@pytest.mark.parametrize(
    ("levels", "version"),
    [(SQLITE_COMPATIBLE_FROM, SQLITE_SCHEMA), (POSTGRES_COMPATIBLE_FROM, POSTGRES_SCHEMA)],
)
def test_every_schema_version_has_a_level_at_most_itself_and_never_going_back(
    levels: tuple[int, ...], version: int
) -> None:
    assert len(levels) == version
    assert all(1 <= level <= index + 1 for index, level in enumerate(levels))
    assert list(levels) == sorted(levels)


def test_a_fresh_gate_older_than_the_target_s_level_blocks_the_migration() -> None:
    old = gate(7, seen=5)
    assert blocking([old], compatible_from=8, now=NOW) == (old,)


def test_a_gate_the_target_keeps_working_does_not_block() -> None:
    assert blocking([gate(7, seen=5), gate(8, seen=1)], compatible_from=7, now=NOW) == ()


def test_a_gate_not_seen_for_several_refreshes_is_stale_and_ignored() -> None:
    killed = gate(7, seen=STALE_AFTER * REFRESH_EVERY + 1)
    alive = gate(7, seen=STALE_AFTER * REFRESH_EVERY, pid=1)
    assert not killed.fresh(NOW)
    assert alive.fresh(NOW)
    assert blocking([killed, alive], compatible_from=8, now=NOW) == (alive,)


def test_a_gate_seen_in_the_future_by_a_clock_ahead_is_fresh_and_zero_seconds_old() -> None:
    ahead = gate(7, seen=-30)
    assert ahead.fresh(NOW)
    assert ahead.age(NOW) == 0


def test_a_gate_row_round_trips_through_the_store_s_column_order() -> None:
    row = gate(7, seen=3)
    assert AttachedGate.from_row(row.to_row()) == row


def test_the_refusal_names_each_blocking_gate_and_says_what_to_do() -> None:
    refusal = gates_attached(
        "sqlite:/var/lib/consentgate/consent.db",
        (gate(7, seen=4), gate(7, seen=12, host="gate-b", pid=77)),
        target=8,
        compatible_from=8,
        now=NOW,
    )
    assert isinstance(refusal, StartupError)
    assert isinstance(refusal, GatesAttached)
    text = str(refusal)
    assert "schema version 8" in text
    assert "2 gates" in text
    assert "gate-a pid 4242 (consentgate 0.2.0, schema 7, seen 4 s ago)" in text
    assert "gate-b pid 77 (consentgate 0.2.0, schema 7, seen 12 s ago)" in text
    assert "stop those gates first" in text
    assert "--wait" in text
    assert "\n" not in text  # one line for the CLI
