"""What a SIGHUP may change in a running gate, decided before anything changes.

A reload re-reads the configuration file the gate was started with (the same
loader, environment overrides and secret files as at start) and compares it with
the configuration in force. Every key declares in its field which of two classes
it is in (``reload=`` in :mod:`consentgate.config.keyspec`; the tables below are
derived from the fields, so a new key cannot be forgotten):

* :data:`RELOADABLE` keys are read from the per-request settings snapshot
  (:mod:`consentgate.config.settings`) or by the logging setup: a reload swaps the
  snapshot, requests already running finish under the old one, new requests see
  the new values, and no connection or stream is dropped;
* :data:`RESTART_ONLY` keys were used at start to open something (a socket, the
  store, the upstream pool, the routes, the cookie keys): changing them live would
  leave a half-old, half-new gate, so they keep their running values and are
  reported, old and new, in one warning "ignored until restart".

A key that is in neither table (not a key of the schema) is treated as
restart-only: the safe side. An obsolete key (still accepted, changing nothing) is
applied, which changes nothing.

A file with an error is refused whole, before this module is reached
(:func:`~consentgate.config.loading.load_config` raises with every problem). A file
that is valid alone may still clash with the restart-only values that stay in
force (a new ``blocked_paths`` entry covering the running ``authorize_path``);
:func:`plan_reload` re-runs the configuration's cross-checks on the merged result
and then refuses the reload too.

Pure module: no aiohttp import, no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Final

from consentgate.config.crosschecks import check_config
from consentgate.config.dsn import MASK, mask_password
from consentgate.config.keyspec import Reload, ReloadKind, is_secret, reload_of
from consentgate.config.model import SECTIONS, Config

#: How an empty value (``""``, a listener that is off) is shown.
EMPTY: Final = "(empty)"

#: Where a reload reads the configuration from: ``serve`` gives the same loader it
#: started with (``load_config`` of ``--config FILE``, the environment as it is).
ConfigSource = Callable[[], Config]


def _keys_whose_reload_is(*kinds: ReloadKind) -> Mapping[str, str]:
    return MappingProxyType(
        {
            f"{section}.{key.name}": _described(reload)
            for section, cls in SECTIONS.items()
            for key in fields(cls)
            if (reload := reload_of(key)).kind in kinds
        }
    )


def _described(reload: Reload) -> str:
    return f"changes nothing: {reload.why}" if reload.kind == "obsolete" else reload.why


#: Keys a reload applies to new requests, and where each is read (an obsolete key is
#: applied too: it changes nothing). Derived from each field's ``reload=``.
RELOADABLE: Final[Mapping[str, str]] = _keys_whose_reload_is("applies", "obsolete")

#: Keys read once at start, and why a live change is not applied.
RESTART_ONLY: Final[Mapping[str, str]] = _keys_whose_reload_is("restart")


@dataclass(frozen=True)
class Change:
    """One key whose value differs, both values as they may be logged (secrets masked)."""

    key: str
    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.old} -> {self.new}"


@dataclass(frozen=True)
class ReloadPlan:
    """What a reload does: ``config`` is what will be in force (the new file's
    reloadable keys, every restart-only key at its running value)."""

    config: Config
    applied: tuple[Change, ...]
    ignored: tuple[Change, ...]
    #: Why the merged configuration cannot be used; the reload is then refused whole.
    problems: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        return bool(self.problems)


def is_reloadable(key: str) -> bool:
    """``section.key`` is applied by a reload (anything unlisted waits for a restart)."""
    return key in RELOADABLE


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """Split the difference between the running ``old`` and the re-read ``new``."""
    applied: list[Change] = []
    ignored: list[Change] = []
    sections: dict[str, Any] = {}
    for section in SECTIONS:
        old_part, new_part = getattr(old, section), getattr(new, section)
        keep: dict[str, Any] = {}
        for spec in fields(old_part):
            before, after = getattr(old_part, spec.name), getattr(new_part, spec.name)
            if before == after:
                continue
            key = f"{section}.{spec.name}"
            secret = is_secret(spec)
            change = Change(key, shown(before, secret=secret), shown(after, secret=secret))
            if is_reloadable(key):
                applied.append(change)
            else:
                ignored.append(change)
                keep[spec.name] = before
        sections[section] = dataclasses.replace(new_part, **keep) if keep else new_part
    merged = Config(**sections)
    problems: tuple[str, ...] = ()
    if ignored:
        found = check_config(merged)
        if found:
            waiting = ", ".join(change.key for change in ignored)
            problems = tuple(
                f"{problem} (with {waiting} kept at the running value until a restart)"
                for problem in found
            )
    return ReloadPlan(merged, tuple(applied), tuple(ignored), problems)


def shown(value: Any, *, secret: bool = False) -> str:
    """A configuration value as a log line may show it: a PostgreSQL URL with its
    password masked, any other secret as ``***``, never as given; ``(empty)`` for an
    empty string or a listener that is off (quotes would be escaped in a log line).
    """
    if value is None or value == "":
        return EMPTY
    if secret:
        return mask_password(value) if isinstance(value, str) and "://" in value else MASK
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "[" + ", ".join(shown(item) for item in value) + "]"
    return str(value)
