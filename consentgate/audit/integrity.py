"""The store's integrity as audit events: a record that failed verification, a key
added or rotated (docs/store.md: what the signatures protect and what they cannot)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from consentgate.audit.decisions import Actor
from consentgate.audit.events import Severity, TypedEvent

#: Which kind of signed record failed verification.
RecordKind = Literal["consent", "client", "pending", "sighting"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Tamper(TypedEvent):
    """A stored record whose signature or content does not verify: not honoured."""

    name: ClassVar[str] = "tamper"
    level: ClassVar[Severity] = "warning"

    kind: RecordKind
    id: str
    reason: str

    def describe(self) -> str:
        return f"tamper event: {self.kind} record {self.id!r} is not honoured: {self.reason}"

    def log_fields(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.id, "reason": self.reason}


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRotated(TypedEvent):
    """The store's signing key rotated (``consentgate keys rotate``)."""

    name: ClassVar[str] = "key_rotated"

    previous_key: str
    active_key: str
    by: Actor = "cli"

    def describe(self) -> str:
        return f"signing key rotated from {self.previous_key} to {self.active_key}"

    def log_fields(self) -> dict[str, object]:
        return {"previous_key": self.previous_key, "active_key": self.active_key, "by": self.by}


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyAdded(TypedEvent):
    """A key added to the keys directory that verifies and does not sign yet
    (``consentgate keys add``, the first step of a fleet's rotation): from now on a
    record signed with it is honoured by every gate that has it."""

    name: ClassVar[str] = "key_added"

    key: str
    active_key: str
    by: Actor = "cli"

    def describe(self) -> str:
        return f"signing key {self.key} added (verifies; {self.active_key} still signs)"

    def log_fields(self) -> dict[str, object]:
        return {"key": self.key, "active_key": self.active_key, "by": self.by}
