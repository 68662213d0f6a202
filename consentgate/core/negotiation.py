"""Which language a page speaks: the authorization request's ``ui_locales`` first,
then the browser's ``Accept-Language``, among the operator's ``[ui] languages``,
else ``[ui] default_language``.

``ui_locales`` is "the End-User's preferred languages and scripts for the user
interface, represented as a space-separated list of BCP 47 language tag values,
ordered by preference" (OpenID Connect Core 1.0 §3.1.2.1); ``Accept-Language``
weighs its ranges with ``q`` values (RFC 9110 §12.5.4). Both are the client's or the
browser's words: they only ever choose among the enabled languages, so a tag the
gate does not ship, or a header written to cost time (a bounded number of ranges is
read), changes nothing but the fallback.

A tag matches a shipped language by its primary subtag (``de-CH`` is ``de``,
RFC 4647 §3.4's lookup, cut to the one subtag the catalogs have). Pure: no I/O.
"""

from __future__ import annotations

from typing import Final, Literal

#: Ranges read from one header or parameter; the rest are ignored.
MAX_RANGES: Final = 32
#: The shipped languages written right to left (their pages carry ``dir="rtl"``).
RIGHT_TO_LEFT: Final = frozenset({"ar"})

Direction = Literal["ltr", "rtl"]


def direction(language: str) -> Direction:
    """The writing direction of a page in ``language``."""
    return "rtl" if language in RIGHT_TO_LEFT else "ltr"


def _primary(tag: str) -> str:
    return tag.strip().replace("_", "-").split("-", 1)[0].lower()


def _from_ui_locales(value: str, enabled: tuple[str, ...]) -> str | None:
    for tag in value.split()[:MAX_RANGES]:
        if _primary(tag) in enabled:
            return _primary(tag)
    return None


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def _from_accept_language(value: str, enabled: tuple[str, ...]) -> str | None:
    weighted: list[tuple[float, int, str]] = []
    for order, item in enumerate(value.split(",")[:MAX_RANGES]):
        tag, *parameters = item.split(";")
        primary = _primary(tag)
        quality = _quality(parameters)
        if primary in enabled and quality > 0:
            weighted.append((-quality, order, primary))
    return min(weighted)[2] if weighted else None


def negotiate(
    ui_locales: str | None,
    accept_language: str | None,
    enabled: tuple[str, ...],
    default: str,
) -> str:
    """The page's language: the first of ``ui_locales`` that is enabled, else the
    enabled range of ``accept_language`` with the highest ``q`` (the first of equals),
    else ``default``."""
    if ui_locales:
        chosen = _from_ui_locales(ui_locales, enabled)
        if chosen is not None:
            return chosen
    if accept_language:
        chosen = _from_accept_language(accept_language, enabled)
        if chosen is not None:
            return chosen
    return default
