"""Loading the configuration: one TOML file, environment overrides, secrets read from
files, every problem reported at once.

Conventions follow what operators of oauth2-proxy, Hydra and Keycloak expect:
snake_case keys, unknown keys are errors (a typo must not silently disable a
security rule; a near miss gets a suggestion), environment overrides with one prefix
(``CONSENTGATE_<SECTION>_<KEY>``), secrets readable from files (``<key>_file``),
and a check command that prints every error, each naming the key path and the
bad value. What each key accepts is its field's (:mod:`consentgate.config.keyspec`).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Final

from consentgate.config.crosschecks import cross_checks
from consentgate.config.keyspec import (
    ParseContext,
    from_environment,
    is_secret,
    parser_of,
)
from consentgate.config.model import IGNORED_KEYS, SECTIONS, Config

ENV_PREFIX: Final = "CONSENTGATE_"
#: Environment variables with the prefix that are not configuration keys.
ENV_RESERVED: Final = frozenset({"CONSENTGATE_CONFIG"})


class ConfigError(Exception):
    """Every problem found in a configuration, each naming its key path and value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def ignored_settings(data: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """A warning for each key of :data:`IGNORED_KEYS` that the parsed file ``data`` or
    an environment variable sets, naming the key, the value and why it is ignored."""
    warnings: list[str] = []
    for path, why in IGNORED_KEYS.items():
        section, key = path.split(".")
        table = data.get(section)
        variable = f"{ENV_PREFIX}{section.upper()}_{key.upper()}"
        if isinstance(table, Mapping) and key in table:
            warnings.append(f"{path}: ignored (set to {table[key]!r}): {why}")
        if variable in environ:
            warnings.append(f"{variable}: ignored (set to {environ[variable]!r}): {why}")
    return warnings


def _env_value(raw: str, example: Any) -> Any:
    """Turn an environment string into the TOML type the key expects."""
    if isinstance(example, str) or example is None:
        return raw
    if isinstance(example, tuple | list) and not raw.lstrip().startswith("["):
        return [item.strip() for item in raw.split(",") if item.strip()]
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # the field parser reports it, naming the variable


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    """``; did you mean `listen`?`` for a near miss (a typo, another case), else ``""``."""
    candidates = {candidate.lower(): candidate for candidate in known}
    close = difflib.get_close_matches(name.lower(), candidates, n=1, cutoff=0.6)
    return f"; did you mean `{candidates[close[0]]}`?" if close else ""


def _env_overrides(
    environ: Mapping[str, str], problems: list[str]
) -> dict[str, dict[str, tuple[str, str]]]:
    """Map CONSENTGATE_<SECTION>_<KEY> variables to {section: {key: (variable, value)}}."""
    found: dict[str, dict[str, tuple[str, str]]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_RESERVED:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        cls = SECTIONS.get(section)
        names = {f.name: f for f in fields(cls)} if cls else {}
        base = key[: -len("_file")] if key.endswith("_file") else key
        target = names.get(key) or (names.get(base) if base != key else None)
        if cls is None or target is None or not from_environment(target):
            problems.append(f"{name}: not a configuration key (got {value!r})")
            continue
        if key != target.name and not is_secret(target):
            problems.append(f"{name}: only secrets can be read from a file")
            continue
        found.setdefault(section, {})[key] = (name, value)
    return found


def _read_secret_file(
    path_text: str, where: str, ctx: ParseContext, problems: list[str]
) -> str | None:
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        path = ctx.base_dir / path
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        problems.append(f"{where}: cannot read {str(path)!r}: {exc.strerror or exc}")
        return None


def config_from_mapping(
    data: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Validate a parsed TOML document (plus environment overrides) into a :class:`Config`.

    Raises :class:`ConfigError` listing every problem.
    """
    ctx = ParseContext(base_dir or Path.cwd())
    problems: list[str] = []
    env = _env_overrides(environ if environ is not None else os.environ, problems)
    for section in data:
        if section not in SECTIONS:
            problems.append(
                f"{section}: unknown section{_did_you_mean(section, SECTIONS)} "
                f"(got {data[section]!r:.60})"
            )
    built: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            problems.append(f"{section}: expected a table, got {table!r}")
            table = {}
        known = {f.name: f for f in fields(cls)}
        secret_files = {f"{name}_file" for name, f in known.items() if is_secret(f)}
        for key in table:
            if key not in known and key not in secret_files:
                hint = _did_you_mean(key, [*known, *secret_files])
                problems.append(f"{section}.{key}: unknown key{hint} (got {table[key]!r:.60})")
        values: dict[str, Any] = {}
        for name, spec in known.items():
            where = f"{section}.{name}"
            raw: Any = table.get(name, MISSING)
            file_key = f"{name}_file"
            if is_secret(spec) and file_key in table:
                # "" is how ``consentgate init`` writes an unset secret: the file wins.
                if raw is not MISSING and raw != "":
                    problems.append(f"{where}: set either {name} or {file_key}, not both")
                    continue
                file_value = table[file_key]
                if not isinstance(file_value, str):
                    problems.append(f"{section}.{file_key}: expected a path, got {file_value!r}")
                    continue
                raw = _read_secret_file(file_value, f"{section}.{file_key}", ctx, problems)
                if raw is None:
                    continue
            env_hit = env.get(section, {})
            if file_key in env_hit:
                variable, path_text = env_hit[file_key]
                raw = _read_secret_file(path_text, variable, ctx, problems)
                where = variable
                if raw is None:
                    continue
            elif name in env_hit:
                variable, text = env_hit[name]
                example = spec.default if spec.default is not MISSING else ""
                raw = _env_value(text, example)
                where = variable
            if raw is MISSING:
                if spec.default is MISSING and spec.default_factory is MISSING:
                    problems.append(f"{where}: required, not set")
                elif isinstance(spec.default, Path) and not spec.default.is_absolute():
                    values[name] = ctx.base_dir / spec.default  # relative to the file, too
                continue
            try:
                values[name] = parser_of(spec)(raw, ctx)
            except ValueError as exc:
                shown = str(exc) if not is_secret(spec) else str(exc).split(", got")[0]
                problems.append(f"{where}: {shown}")
        with contextlib.suppress(TypeError):  # a required key is missing; already reported
            built[section] = cls(**values)
    if not problems:
        cross_checks(built, problems)
    if problems:
        raise ConfigError(problems)
    return Config(**built)


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a TOML configuration file."""
    file_path = Path(path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [f"{file_path}: cannot read the configuration: {exc.strerror or exc}"]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{file_path}: the configuration is not UTF-8 text"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{file_path}: not valid TOML: {exc}"]) from None
    return config_from_mapping(data, base_dir=file_path.resolve().parent, environ=environ)
