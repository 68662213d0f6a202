"""The gates attached to a store, and which of them a migration would break.

Every serving gate announces itself in the store it uses (the ``gates`` table, docs/
store.md "Two versions on one store"): a random instance id per process, the schema
version its code runs, its software version, host, pid, when it started and when it
was last seen, and how often it promised to say so. A migration whose target schema
no longer runs the code of a gate still attached (its *compatible from* is above that
gate's schema, :mod:`consentgate.core.schema_versions`) is refused, naming each such
gate, rather than breaking gates that keep answering. A gate that stopped cleanly
deleted its row; one killed without a word stops refreshing it and is ignored once
:data:`STALE_AFTER` refreshes were missed, so it cannot block upgrades for ever.

Time is the writers' clocks, in whole seconds, as for the expiry of approvals: the
hosts of a fleet are assumed to agree within a few seconds, far less than the
staleness window. Pure: no I/O; the store reads and writes the rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from consentgate.core.startup_errors import StartupError

#: Seconds between a gate's refreshes of its row.
REFRESH_EVERY: Final = 15
#: How many refreshes a row may miss before it is stale (a minute at 15 s).
STALE_AFTER: Final = 4
#: Seconds a stale row is kept for ``consentgate store gates`` before a starting gate
#: deletes it (a gate killed without stopping leaves its row behind).
FORGET_AFTER: Final = 86_400
#: The columns of a ``gates`` row, in the order rows cross the store's boundary.
GATE_COLUMNS: Final = (
    "instance",
    "schema_version",
    "software",
    "host",
    "pid",
    "started_at",
    "seen_at",
    "refresh_every",
)


@dataclass(frozen=True, slots=True)
class AttachedGate:
    """One gate's row: who it is, which schema its code runs, when it was last seen."""

    instance: str
    schema_version: int
    software: str
    host: str
    pid: int
    started_at: int
    seen_at: int
    #: The interval the gate promised (its own, so a release that changes it is
    #: judged by its promise, not by the reader's constant).
    refresh_every: int

    def to_row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, column) for column in GATE_COLUMNS)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> AttachedGate:
        instance, schema, software, host, pid, started, seen, refresh = row
        return cls(
            str(instance),
            int(schema),
            str(software),
            str(host),
            int(pid),
            int(started),
            int(seen),
            int(refresh),
        )

    def age(self, now: int) -> int:
        """Seconds since the gate was last seen (0 for a clock ahead of ``now``)."""
        return max(0, now - self.seen_at)

    def fresh(self, now: int) -> bool:
        """Whether the gate refreshed its row within :data:`STALE_AFTER` refreshes."""
        return self.age(now) <= STALE_AFTER * max(1, self.refresh_every)

    def describe(self, now: int) -> str:
        """The gate for a person: ``host pid N (consentgate V, schema S, seen T s ago)``."""
        return (
            f"{self.host} pid {self.pid} (consentgate {self.software}, schema "
            f"{self.schema_version}, seen {self.age(now)} s ago)"
        )


def blocking(
    gates: Iterable[AttachedGate], *, compatible_from: int, now: int
) -> tuple[AttachedGate, ...]:
    """The fresh gates whose code a schema of level ``compatible_from`` no longer runs."""
    return tuple(
        gate for gate in gates if gate.fresh(now) and gate.schema_version < compatible_from
    )


class GatesAttached(StartupError):
    """A migration refused because gates it would break are still attached; ``gates``
    names them (``consentgate migrate --wait`` waits for them to leave)."""

    def __init__(self, message: str, gates: tuple[AttachedGate, ...]) -> None:
        super().__init__(message)
        self.gates = gates


def gates_attached(
    where: str,
    gates: tuple[AttachedGate, ...],
    *,
    target: int,
    compatible_from: int,
    now: int,
) -> GatesAttached:
    """The refusal of a migration of the store at ``where`` to schema ``target``, which
    runs only code of schema ``compatible_from`` or newer, under ``gates``."""
    plural = len(gates) != 1
    count = f"{len(gates)} gate{'s' if plural else ''}"
    named = "; ".join(gate.describe(now) for gate in gates)
    return GatesAttached(
        f"the consent store {where} was not migrated to schema version {target}, which "
        f"runs only code of schema {compatible_from} or newer: {count} of an older "
        f"consentgate still {'use' if plural else 'uses'} it: {named}; stop those gates "
        "first (a gate leaves the store when it stops; one killed without stopping is "
        f"ignored {STALE_AFTER * REFRESH_EVERY} s after it was last seen), or run "
        "consentgate migrate --wait DURATION to wait for them to leave",
        gates,
    )
