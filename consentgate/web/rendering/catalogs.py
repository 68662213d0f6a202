"""The shipped translations of the pages: one gettext catalog per language in
``consentgate/locales/<language>/LC_MESSAGES/consentgate.mo``, and CLDR's words for
durations and moments (Babel).

The ``.mo`` files are compiled from the ``.po`` sources when the wheel is built
(``hatch_build.py``; the single file is built from the wheel), so an installed gate
reads compiled catalogs and the repository keeps only the sources. A source
checkout without them (the tests, ``python -m consentgate``) reads the ``.po`` through
Babel, which compiles it in memory the same way (fuzzy entries left out, as
``msgfmt`` does). A language whose catalog is missing or unreadable stops the start.

A :class:`Catalog` is the :class:`consentgate.core.translation.Translator` the core
builds its sentences with, and what the templates' ``{% trans %}`` and ``_()`` use
(``templates.py``). Durations are floored to their largest whole unit ("59 minutes
ago", never "1 hour ago" for 59 minutes) and written with the language's plural rules
(Unicode CLDR, through Babel's ``format_timedelta``).
"""

from __future__ import annotations

import functools
import gettext
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from babel import Locale
from babel.dates import format_date, format_time, format_timedelta, get_datetime_format
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from consentgate.config.model import Config
from consentgate.config.parsers import SHIPPED_LANGUAGES
from consentgate.config.sections_policy import DEFAULT_SERVICE_NAME
from consentgate.core.startup_errors import StartupError
from consentgate.core.translation import N_, Translator

#: The gettext domain of the pages' messages.
DOMAIN: Final = "consentgate"
LOCALES_DIR: Final = Path(__file__).resolve().parents[2] / "locales"
_UNITS: Final = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def catalog_path(language: str, suffix: str, directory: Path = LOCALES_DIR) -> Path:
    """Where a language's catalog is (``suffix``: ``.po`` or ``.mo``)."""
    return directory / language / "LC_MESSAGES" / f"{DOMAIN}{suffix}"


def _translations(language: str, directory: Path) -> Translations:
    compiled = catalog_path(language, ".mo", directory)
    source = catalog_path(language, ".po", directory)
    try:
        if compiled.is_file():
            with compiled.open("rb") as file:
                return Translations(file, domain=DOMAIN)
        with source.open("rb") as file:
            catalog = read_po(file, locale=language, domain=DOMAIN)
    except (OSError, ValueError) as exc:
        raise StartupError(
            f"the {language!r} translations cannot be read from {compiled} or {source}: "
            f"{exc}; reinstall consentgate"
        ) from None
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def _floored(seconds: float) -> tuple[timedelta, str]:
    """``seconds`` cut to its largest whole unit, and that unit."""
    whole = max(int(abs(seconds)), 1)
    for unit, size in _UNITS:
        if whole >= size:
            return timedelta(seconds=whole // size * size), unit
    return timedelta(seconds=whole), "second"  # pragma: no cover - size 1 always fits


@dataclass(frozen=True)
class Catalog:
    """One language's messages, durations and moments."""

    language: str
    translations: gettext.NullTranslations
    locale: Locale

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        return self.translations.ngettext(singular, plural, count)

    def _timedelta(self, seconds: float, *, direction: int) -> str:
        delta, unit = _floored(seconds)
        return _worded_timedelta(self.locale, delta, unit, direction)

    def ago(self, seconds: float) -> str:
        return self._timedelta(seconds, direction=-1)

    def within(self, seconds: float) -> str:
        return self._timedelta(seconds, direction=1)

    def duration(self, seconds: float) -> str:
        return self._timedelta(seconds, direction=0)

    def moment(self, timestamp: float) -> str:
        # Written to the minute, so the minute it falls in is all that decides it.
        return _worded_minute(self.locale, math.floor(timestamp) // 60)


# Babel builds each of these words from CLDR's patterns on every call (5-11 µs, three or
# four times per consent page). Each is a pure function of its arguments, which take
# few values at a time (a duration is floored to its largest whole unit; a moment is
# written to the minute), so the words are remembered, boundedly.


@functools.lru_cache(maxsize=2048)
def _worded_timedelta(locale: Locale, delta: timedelta, unit: str, direction: int) -> str:
    return format_timedelta(
        -delta if direction < 0 else delta,
        granularity=unit,  # type: ignore[arg-type]
        threshold=math.inf,
        add_direction=direction != 0,
        locale=locale,
    )


@functools.lru_cache(maxsize=2048)
def _worded_minute(locale: Locale, minute: int) -> str:
    when = datetime.fromtimestamp(minute * 60, UTC)
    pattern = str(get_datetime_format("medium", locale=locale)).replace("'", "")
    date = format_date(when, "medium", locale=locale)
    hour = format_time(when, "HH:mm", tzinfo=UTC, locale=locale)
    return pattern.replace("{1}", date).replace("{0}", hour) + " UTC"


def shown_service_name(config: Config, tr: Translator) -> str:
    """``[consent] service_name``, or its default ("this service") in the page's
    language: an operator's name is shown as written."""
    name = config.consent.service_name
    return tr.gettext(N_("this service")) if name == DEFAULT_SERVICE_NAME else name


@functools.cache
def shipped_catalogs(directory: Path = LOCALES_DIR) -> dict[str, Catalog]:
    """Every shipped language's catalog, read once per process (they are package data)."""
    return {
        language: Catalog(language, _translations(language, directory), Locale.parse(language))
        for language in SHIPPED_LANGUAGES
    }
