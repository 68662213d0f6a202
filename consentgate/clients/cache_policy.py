"""How long the gate keeps a fetched client metadata document.

MCP 2025-11-25 ("Client ID Metadata Documents"): servers SHOULD cache documents
respecting HTTP cache headers. The gate reads the response's ``Cache-Control``
(RFC 9111 §5.2; several field lines joined with ", ", RFC 9110 §5.3) and ``Age``
(§5.1) and answers a time to live in seconds, always within the operator's floor
and ceiling:

* ``s-maxage`` if present, else ``max-age``, minus the response's ``Age``. The gate
  keeps one copy for every person who signs in with that client, the case
  ``s-maxage`` is for (a shared cache, §5.2.2.10).
* ``no-store`` and ``no-cache`` (qualified or not), ``max-age=0``, and a max-age that
  is unreadable (not ASCII digits, an unclosed quote) or given twice with different
  values (§4.2.1: the response is then stale): the floor. Never less. A document is
  read at the authorization request and again at the consent answer; a gate that
  refetched on every request would let whoever sends requests make it fetch in a
  loop (and let the document's host change what the person saw between the two).
  The floor is what a document host's "do not cache" costs it.
* No freshness information at all: the operator's default (FastMCP keeps a document
  one hour). ``Expires`` is not read: max-age is what document hosts send, and its
  absence gives the default, never longer than the ceiling.
* ``private`` is ignored: a metadata document is public by definition (its URL is the
  client's public name), and the gate does not serve the response to anyone.
* A long max-age is cut to the ceiling, so a changed document (a redirect URI taken
  off its list) is seen within the ceiling.

Pure module: header values in, seconds out.
"""

from __future__ import annotations

import re
from typing import Final

_DIRECTIVE: Final = re.compile(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+')
_DELTA_SECONDS: Final = re.compile(r"[0-9]+")
_STALE: Final = -1


def _directives(cache_control: str) -> dict[str, list[str | None]]:
    found: dict[str, list[str | None]] = {}
    for piece in _DIRECTIVE.findall(cache_control):
        name, equals, value = piece.partition("=")
        name = name.strip().lower()
        if name:
            found.setdefault(name, []).append(value.strip() if equals else None)
    return found


def _seconds(values: list[str | None]) -> int:
    """The delta-seconds of a directive given ``values``; :data:`_STALE` when it
    cannot be read or its copies disagree."""
    read: set[int] = set()
    for value in values:
        text = value or ""
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1]
        if not _DELTA_SECONDS.fullmatch(text):
            return _STALE
        digits = text.lstrip("0") or "0"  # RFC 9111 §1.2.2: past 2**31, 2**31
        read.add(2**31 if len(digits) > 10 else min(int(digits), 2**31))
    return read.pop() if len(read) == 1 else _STALE


def time_to_live(
    cache_control: str | None,
    *,
    floor: int,
    ceiling: int,
    default: int,
    age: str | None = None,
) -> int:
    """Seconds to keep a document, from its response headers, in ``[floor, ceiling]``.

    ``floor``, ``ceiling`` and ``default`` come from configuration; a floor below zero
    or above the ceiling is a programming error (``ValueError``).
    """
    if floor < 0 or ceiling < floor:
        raise ValueError(f"expected 0 <= floor <= ceiling, got floor={floor}, ceiling={ceiling}")
    directives = _directives(cache_control or "")
    if "no-store" in directives or "no-cache" in directives:
        return floor
    if "s-maxage" in directives:
        lifetime = _seconds(directives["s-maxage"])
    elif "max-age" in directives:
        lifetime = _seconds(directives["max-age"])
    else:
        lifetime = default
    if age is not None and lifetime != _STALE:
        current = _seconds([age.strip()])
        lifetime = _STALE if current == _STALE else lifetime - current
    return max(floor, min(ceiling, lifetime))
