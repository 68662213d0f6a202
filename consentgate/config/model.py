"""The whole configuration: one :class:`Config` of the section dataclasses, the
sections by name, and what is read off their fields (the documented keys, the
obsolete ones).

Build a :class:`Config` with :func:`~consentgate.config.loading.load_config` or
:func:`~consentgate.config.loading.config_from_mapping`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Final

from consentgate.config.keyspec import doc_of, reload_of
from consentgate.config.sections_identity import IdentityConfig
from consentgate.config.sections_operations import (
    AdminConfig,
    AuditConfig,
    KeysConfig,
    LogConfig,
    StoreConfig,
)
from consentgate.config.sections_policy import ClientsConfig, ConsentConfig
from consentgate.config.sections_traffic import ServerConfig, UpstreamConfig
from consentgate.config.sections_ui import UiConfig


@dataclass(frozen=True)
class Config:
    """The whole configuration. Build it with :func:`~consentgate.config.loading.load_config`."""

    server: ServerConfig
    upstream: UpstreamConfig
    store: StoreConfig = field(default_factory=StoreConfig)
    keys: KeysConfig = field(default_factory=KeysConfig)
    consent: ConsentConfig = field(default_factory=ConsentConfig)
    log: LogConfig = field(default_factory=LogConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    clients: ClientsConfig = field(default_factory=ClientsConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)

    @property
    def secure_cookies(self) -> bool:
        """``__Host-`` names and the Secure flag need an https origin."""
        return self.server.public_url.startswith("https://")


SECTIONS: Final[dict[str, type[Any]]] = {
    "server": ServerConfig,
    "upstream": UpstreamConfig,
    "store": StoreConfig,
    "keys": KeysConfig,
    "consent": ConsentConfig,
    "log": LogConfig,
    "audit": AuditConfig,
    "admin": AdminConfig,
    "clients": ClientsConfig,
    "ui": UiConfig,
    "identity": IdentityConfig,
}


def _obsolete_keys() -> dict[str, str]:
    return {
        f"{section}.{key.name}": reload.why
        for section, cls in SECTIONS.items()
        for key in fields(cls)
        if (reload := reload_of(key)).kind == "obsolete"
    }


#: Keys still accepted, so that files written for an earlier version keep loading
#: (an unknown key is an error), that no longer change anything: key -> why (the
#: fields declared ``reload=obsolete(why)``). ``check-config`` warns once for each one
#: a file or the environment sets.
IGNORED_KEYS: Final[Mapping[str, str]] = MappingProxyType(_obsolete_keys())


def documented_keys() -> list[tuple[str, str, str]]:
    """(section, key, doc) for every configuration key, in declaration order."""
    return [(section, f.name, doc_of(f)) for section, cls in SECTIONS.items() for f in fields(cls)]
