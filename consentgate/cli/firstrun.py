"""``consentgate init``: a first configuration written for the operator.

The file is ``config.example.toml`` itself, every comment kept, with the values the
operator gave put in place of the example's: the two required keys
(``server.public_url``, ``upstream.url``), and optionally the listen address and a
state directory that holds the store and the keys (``/var/lib/consentgate`` for the
systemd unit). The result is validated as ``serve`` would read it before anything
is written, and nothing that exists is ever overwritten.

It reads the example and writes the file, so it is the CLI's, not the core's; no aiohttp
import.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

from consentgate.config.loading import config_from_mapping
from consentgate.config.model import Config
from consentgate.core.startup_errors import StartupError

#: ``consentgate/``: this module lives in ``consentgate/cli/``.
_PACKAGE_DIR = Path(__file__).resolve().parent.parent
_KEY_LINE = re.compile(r"^(?P<key>[a-z_]+) = ")
_SECTION_LINE = re.compile(r"^\[(?P<name>[a-z_]+)\]\s*$")


def example_path() -> Path:
    """``config.example.toml``: inside the installed package, else the checkout's."""
    for directory in (_PACKAGE_DIR, _PACKAGE_DIR.parent):
        candidate = directory / "config.example.toml"
        if candidate.is_file():
            return candidate
    raise StartupError(
        f"config.example.toml is missing: neither {_PACKAGE_DIR} nor {_PACKAGE_DIR.parent} "
        "holds it; reinstall consentgate"
    )


def fill_in(example: str, values: Mapping[tuple[str, str], str]) -> str:
    """``example`` with the value of each ``(section, key)`` replaced, comments kept.

    Each key must occur in the example as a ``key = ...`` line of its section;
    a value is written as a TOML basic string."""
    missing = set(values)
    section = ""
    lines = []
    for line in example.splitlines(keepends=True):
        header = _SECTION_LINE.match(line)
        if header is not None:
            section = header.group("name")
        found = _KEY_LINE.match(line)
        if found is not None and (section, found.group("key")) in values:
            key = found.group("key")
            lines.append(f"{key} = {json.dumps(values[section, key])}\n")
            missing.discard((section, key))
        else:
            lines.append(line)
    if missing:
        names = ", ".join(f"{section}.{key}" for section, key in sorted(missing))
        raise ValueError(f"config.example.toml has no line for {names}")
    return "".join(lines)


def first_config(
    directory: Path,
    *,
    public_url: str,
    upstream: str,
    listen: str | None = None,
    state_dir: Path | None = None,
) -> tuple[str, Config]:
    """The text of ``directory/consentgate.toml`` and the configuration it makes;
    :class:`~consentgate.config.loading.ConfigError` (every problem, each naming its key)
    when a value is not valid."""
    values = {("server", "public_url"): public_url, ("upstream", "url"): upstream}
    if listen is not None:
        values["server", "listen"] = listen
    if state_dir is not None:
        state = state_dir.absolute()
        values["store", "path"] = str(state / "consent.db")
        values["keys", "dir"] = str(state / "keys")
    text = fill_in(example_path().read_text(encoding="utf-8"), values)
    config = config_from_mapping(tomllib.loads(text), base_dir=directory.absolute(), environ={})
    return text, config


def write_new(path: Path, text: str) -> None:
    """Create ``path`` with ``text``, mode 0644 (the service's user must read it; keep
    secrets in ``*_file`` keys, not here); refuse when it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        raise StartupError(f"{path} exists; nothing changed") from None
    except OSError as exc:
        raise StartupError(f"cannot create {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
