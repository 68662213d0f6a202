"""Each key declares, in its field, what a reload does with it; the reload tables and
the obsolete keys are read off the fields, so a key is written once."""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from typing import Any, get_args

from consentgate.config.keyspec import Reload, ReloadKind, reload_of, spec
from consentgate.config.model import IGNORED_KEYS, SECTIONS
from consentgate.config.parsers import parse_str
from consentgate.config.reload_rules import RELOADABLE, RESTART_ONLY, is_reloadable


def declared() -> dict[str, object]:
    return {
        f"{section}.{key.name}": key.metadata.get("reload")
        for section, cls in SECTIONS.items()
        for key in fields(cls)
    }


def test_every_key_declares_what_a_reload_does_with_it_and_why() -> None:
    undeclared = [
        key
        for key, reload in declared().items()
        if not isinstance(reload, Reload)
        or reload.kind not in get_args(ReloadKind)
        or not reload.why.strip()
    ]
    assert undeclared == []


def test_the_reload_tables_are_read_off_the_fields() -> None:
    kinds = {key: reload_of(f) for key, f in _fields().items()}
    assert set(RESTART_ONLY) == {key for key, r in kinds.items() if r.kind == "restart"}
    assert set(RELOADABLE) == {key for key, r in kinds.items() if r.kind != "restart"}
    assert all(RESTART_ONLY[key] == r.why for key, r in kinds.items() if r.kind == "restart")
    assert all(is_reloadable(key) for key, r in kinds.items() if r.kind == "applies")


def test_the_obsolete_keys_are_the_fields_declared_obsolete_with_their_reason() -> None:
    reloads = {key: reload_of(f) for key, f in _fields().items()}
    assert dict(IGNORED_KEYS) == {
        key: reload.why for key, reload in reloads.items() if reload.kind == "obsolete"
    }
    assert list(IGNORED_KEYS) == ["consent.max_pending_per_address", "consent.max_pending"]


def test_a_field_that_declares_no_reload_waits_for_a_restart() -> None:
    @dataclass(frozen=True)
    class Section:
        bare: str = field(default="", metadata={"parse": parse_str, "doc": "no reload"})
        declared: str = field(
            default="", metadata=spec(parse_str, "a reload", reload=Reload("applies", "here"))
        )

    bare, with_reload = fields(Section)
    assert reload_of(bare).kind == "restart"
    assert reload_of(with_reload) == Reload("applies", "here")


def _fields() -> dict[str, Field[Any]]:
    return {
        f"{section}.{key.name}": key for section, cls in SECTIONS.items() for key in fields(cls)
    }
