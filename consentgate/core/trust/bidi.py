"""The invisible characters that reorder text, removed from a client's words.

A client names itself (RFC 7591 §2, ``client_name``) and chooses its redirect URI,
scopes and resource; the gate shows them on its pages next to its own words. The
Unicode bidirectional algorithm (UAX #9 §2) lets a few invisible characters change
the display order of everything after them up to the end of the paragraph: an
override (U+202E) in a name renders "(name declared by the client)" and the rest of
the headline backwards, the "Trojan Source" trick (CVE-2021-42574) applied to a
consent page. They have no business in a name or an address, so they are removed:

* the embeddings and overrides U+202A to U+202E (LRE, RLE, PDF, LRO, RLO),
* the isolates U+2066 to U+2069 (LRI, RLI, FSI, PDI),
* the marks U+200E, U+200F and U+061C (LRM, RLM, ALM).

Right-to-left letters (Hebrew, Arabic) stay: their direction is their own, and the
templates put each client text in a ``<bdi>`` element (HTML, "The bdi element") so
it cannot reorder the words around it.

Pure module: no I/O.
"""

from __future__ import annotations

import re
from typing import Final

#: Every character removed by :func:`without_bidi_controls`.
BIDI_CONTROLS: Final = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
_BIDI: Final = re.compile("[" + "".join(sorted(BIDI_CONTROLS)) + "]")


def has_bidi_controls(text: str) -> bool:
    """Whether ``text`` holds one of :data:`BIDI_CONTROLS`; all of them lie outside
    ASCII, so an ASCII text (``isascii`` reads a flag of the string) is not searched."""
    return not text.isascii() and _BIDI.search(text) is not None


def without_bidi_controls(text: str) -> str:
    """``text`` without the characters that reorder the display of text."""
    return _BIDI.sub("", text)
