"""How the core's words reach a page in the person's language without the core
knowing any catalog: a :class:`Translator` is passed in, never kept globally.

The core writes its sentences in English, as gettext message ids (the catalogs in
``consentgate/locales`` are extracted from them, ``tools/catalogs.py``), marks the
ones it only names with :func:`N_` so the extractor finds them, and fills their
placeholders (``%(host)s``) *after* translating: a client's name, host, URI or scope
is a value put into a translated sentence, never a message looked up in a catalog.

Durations and moments are the translator's too (CLDR's words and plural rules for
"4 minutes ago", Babel's ``format_timedelta``); :data:`PLAIN_ENGLISH` is the
catalog-free translator for callers that render no page in a language. Pure: no I/O.
"""

from __future__ import annotations

import time
from typing import Final, Protocol


def N_(message: str) -> str:
    """Mark ``message`` for extraction; it is translated where it is shown."""
    return message


class Translator(Protocol):
    """One language's words (the web layer's ``rendering/catalogs.py`` gives them)."""

    @property
    def language(self) -> str: ...
    def gettext(self, message: str) -> str: ...
    def ngettext(self, singular: str, plural: str, count: int) -> str: ...
    def ago(self, seconds: float) -> str:
        """How long ago, as people say it: ``4 minutes ago``."""
        ...

    def within(self, seconds: float) -> str:
        """How long until, as people say it: ``in 29 days``."""
        ...

    def duration(self, seconds: float) -> str:
        """A length of time: ``30 days``."""
        ...

    def moment(self, timestamp: float) -> str:
        """A moment, in UTC: ``2027-01-15 08:00 UTC``."""
        ...


def _count(seconds: float) -> tuple[int, str]:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        count = int(seconds // size)
        if count >= 1:
            return count, unit
    return 0, "minute"


class _PlainEnglish:
    """English without a catalog: the message ids as they are."""

    language = "en"

    def gettext(self, message: str) -> str:
        return message

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        return singular if count == 1 else plural

    def ago(self, seconds: float) -> str:
        count, unit = _count(max(seconds, 0.0))
        if count == 0:
            return "less than a minute ago"
        return f"{count} {unit}{'' if count == 1 else 's'} ago"

    def within(self, seconds: float) -> str:
        days = int(seconds // 86400)
        if days >= 2:
            return f"in {days} days"
        return "in 1 day" if days == 1 else "within a day"

    def duration(self, seconds: float) -> str:
        days = seconds / 86400
        if days >= 1:
            return f"{round(days)} days" if round(days) != 1 else "1 day"
        hours = max(round(seconds / 3600), 1)
        return f"{hours} hours" if hours != 1 else "1 hour"

    def moment(self, timestamp: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


PLAIN_ENGLISH: Final[Translator] = _PlainEnglish()
