"""Is a request to the authorization endpoint a person's browser opening it?

The authorization endpoint is for the user agent (RFC 6749 §3.1): a consent page, an
IdP hand-off, an error redirect are all for a person's browser. Some programs fetch
the URL themselves first: mcp-remote asks it with ``Accept: application/json`` (and
Node's fetch adds ``Sec-Fetch-Mode: cors``) to see whether its cached registration
is stale. Such a request is answered without relaying anything (no unconsented relay,
and no upstream transaction nobody finishes) and without rendering a consent page
nobody will see (``web/consent_flow/authorize.py``).

A request is a top-level navigation unless it says otherwise:

* Fetch Metadata, when a browser sent it: ``Sec-Fetch-Mode`` other than
  ``navigate``, or ``Sec-Fetch-Dest`` other than ``document`` (a fetch, a frame, an
  image), is not one;
* with neither header (old browsers, most programs), ``Accept``: a request that does
  not accept ``text/html`` (RFC 9110 §12.5.1: its most specific matching range has a
  q of 0, or none matches) and asks for ``application/json`` is not one. A bare
  ``*/*`` (curl) or no ``Accept`` at all accepts HTML: still a navigation.

Pure module.
"""

from __future__ import annotations

from typing import Final

_HTML: Final = ("text", "html")
_JSON: Final = ("application", "json")


def _ranges(accept: str) -> list[tuple[str, str, float]]:
    """The media ranges of an ``Accept`` value with their weights (bad ones skipped)."""
    found: list[tuple[str, str, float]] = []
    for item in accept.split(","):
        media, *params = item.split(";")
        kind, slash, sub = media.strip().lower().partition("/")
        if not slash or not kind or not sub:
            continue
        weight = 1.0
        for param in params:
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value.strip())
                except ValueError:
                    weight = 0.0
        found.append((kind, sub.strip(), weight))
    return found


def _weight(ranges: list[tuple[str, str, float]], kind: str, sub: str) -> float:
    """The weight of ``kind/sub`` under the most specific matching range, 0 if none."""
    best: tuple[int, float] = (-1, 0.0)
    for range_kind, range_sub, weight in ranges:
        if range_kind == kind and range_sub == sub:
            specificity = 2
        elif range_kind == kind and range_sub == "*":
            specificity = 1
        elif range_kind == "*" and range_sub == "*":
            specificity = 0
        else:
            continue
        if specificity > best[0]:
            best = (specificity, weight)
    return best[1]


def is_navigation(*, fetch_mode: str | None, fetch_dest: str | None, accept: str | None) -> bool:
    """True unless the request says it is not a person's browser opening the URL."""
    if fetch_mode is not None or fetch_dest is not None:
        mode_ok = fetch_mode is None or fetch_mode.strip().lower() == "navigate"
        dest_ok = fetch_dest is None or fetch_dest.strip().lower() == "document"
        return mode_ok and dest_ok
    if not accept:
        return True
    ranges = _ranges(accept)
    return _weight(ranges, *_HTML) > 0 or _weight(ranges, *_JSON) <= 0
