"""Every audit event type by name, and an event by name read as its type.

The table (:mod:`consentgate.audit.rows`) and the metrics read an event's typed
fields only. The gate emits typed events; :func:`typed` also reads an
:class:`~consentgate.audit.events.AuditEvent` made by name (an embedding
application's, or a test's) as the type of that name, leniently: a field it does not
give is the field's default, else empty (``""``, ``0``, ``False``, None). Its message is
never read.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, Final

from consentgate.audit import client_events, decisions, identity_events, integrity, refusals
from consentgate.audit.events import AuditEvent, TypedEvent

#: Every event type of the gate, by its name.
EVENT_TYPES: Final[Mapping[str, type[TypedEvent]]] = {
    cls.name: cls
    for module in (decisions, refusals, client_events, integrity, identity_events)
    for cls in vars(module).values()
    if isinstance(cls, type)
    and issubclass(cls, TypedEvent)
    and "name" in vars(cls)
    and cls.__module__ == module.__name__
}


def typed(event: AuditEvent) -> TypedEvent | None:
    """``event`` as its type (itself when it is one); None for a name the gate does
    not emit."""
    if isinstance(event, TypedEvent):
        return event
    cls = EVENT_TYPES.get(event.event)
    if cls is None:
        return None
    given = event.fields
    required, optional = _FIELDS.get(cls) or _FIELDS.setdefault(cls, _fields_of(cls))
    values: dict[str, Any] = {"request_id": event.request_id}
    for name, empty in required.items():
        values[name] = given.get(name, empty)
    for name in optional:
        if name in given:
            values[name] = given[name]
    for name in _SPLIT.get(cls, ()):
        if isinstance(values.get(name), str):  # a list the log line joined with spaces
            values[name] = tuple(values[name].split())
    if cls is refusals.CallbackRefused:
        # A refusal named in ``reason`` (older callers), else none of the known ones.
        refusal = values["refusal"] or given.get("reason")
        values["refusal"] = refusal if refusal in refusals.CALLBACK_REFUSALS else "refused"
    return cls(**values)


#: Per type: its fields without a default (with their empty value), and the others.
_FIELDS: dict[type[TypedEvent], tuple[dict[str, object], tuple[str, ...]]] = {}
#: Per type: its fields that are tuples of text (``redirect_uris``).
_SPLIT: Final[Mapping[type[TypedEvent], tuple[str, ...]]] = {
    client_events.ClientRegistered: ("redirect_uris",)
}


def _fields_of(cls: type[TypedEvent]) -> tuple[dict[str, object], tuple[str, ...]]:
    hints = typing.get_type_hints(cls)
    required: dict[str, object] = {}
    optional: list[str] = []
    for field in dataclasses.fields(cls):
        if field.name == "request_id":
            continue
        if not _no_default(field):
            optional.append(field.name)
            continue
        hint = hints[field.name]
        if type(None) in typing.get_args(hint):
            required[field.name] = None
        else:
            required[field.name] = False if hint is bool else 0 if hint is int else ""
    return required, tuple(optional)


def _no_default(field: dataclasses.Field[object]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
