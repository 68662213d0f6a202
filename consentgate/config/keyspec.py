"""What a configuration key is: one dataclass field whose metadata holds everything
else about it, so a key is written once in Python.

A section dataclass (``[server]``, ``[consent]`` ...) declares each key as
``name: type = field(default=..., metadata=spec(parser, doc, reload=...))``:

* the **parser** turns the raw TOML (or environment) value into the typed value, or
  raises ``ValueError`` with a message that completes ``"<key path>: ..."``
  (:mod:`consentgate.config.parsers`; a ``Literal`` type's parser takes its choices
  from the type);
* the **doc** is the one-line description that ``check-config`` and the docs show;
* the **reload** says what a SIGHUP does with a changed value (:class:`Reload`); the
  reload tables of :mod:`consentgate.config.reload_rules` are derived from it, so a
  key cannot be forgotten there;
* ``secret`` keys may be read from ``<key>_file`` and are never shown; ``env=False``
  keys (tables) have no ``CONSENTGATE_<SECTION>_<KEY>`` variable.

The conventions follow what operators of oauth2-proxy, Hydra and Keycloak expect
(the README's Configuration section).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import Field, dataclass
from pathlib import Path
from typing import Any, Literal

#: What a reload does with a changed key: ``applies`` (read per request or by the
#: logging setup), ``restart`` (used at start to open something; the running value
#: stays until a restart), ``obsolete`` (still accepted so older files load, changes
#: nothing; ``check-config`` warns).
ReloadKind = Literal["applies", "restart", "obsolete"]


@dataclass(frozen=True)
class Reload:
    """A key's reload behaviour and why: where an applied key is read, what a
    restart-only key opened at start, or why an obsolete key changes nothing (the
    reason ``check-config`` gives when a file still sets it)."""

    kind: ReloadKind
    why: str


def applies(where: str) -> Reload:
    """A reload applies the key to what starts afterwards; ``where`` it is read."""
    return Reload("applies", where)


def restart(why: str) -> Reload:
    """The key was used at start to open something; a reload keeps the running value."""
    return Reload("restart", why)


def obsolete(why: str) -> Reload:
    """The key is accepted so that older files still load, and changes nothing."""
    return Reload("obsolete", why)


@dataclass(frozen=True)
class ParseContext:
    """What a field parser may need besides the value: where relative paths start."""

    base_dir: Path


#: A field parser: the raw value and the context in, the typed value out (or ValueError).
Parser = Callable[[Any, ParseContext], Any]


def spec(
    parse: Parser, doc: str, *, reload: Reload, secret: bool = False, env: bool = True
) -> dict[str, Any]:
    """The metadata of a key's field; ``reload`` has no default, so every key says it."""
    return {"parse": parse, "doc": doc, "reload": reload, "secret": secret, "env": env}


def parser_of(key: Field[Any]) -> Parser:
    parse: Parser = key.metadata["parse"]
    return parse


def doc_of(key: Field[Any]) -> str:
    return str(key.metadata["doc"])


def reload_of(key: Field[Any]) -> Reload:
    """The field's declared :class:`Reload`; a field without one is a restart-only key
    (the safe side), though every key of the schema declares it (a test checks)."""
    declared = key.metadata.get("reload")
    return declared if isinstance(declared, Reload) else restart("declares no reload")


def is_secret(key: Field[Any]) -> bool:
    return bool(key.metadata.get("secret"))


def from_environment(key: Field[Any]) -> bool:
    return bool(key.metadata.get("env", True))
