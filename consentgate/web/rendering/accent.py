"""The operator's accent colour (``[ui] accent_color``) made readable: WCAG 2.2
contrast (SC 1.4.3, at least 4.5:1 for text) for the colour used as link text on
the shipped page and card backgrounds, in the light and the dark scheme.

The primary button keeps the accent itself (its label is black or white, whichever
contrasts more); a link is text on the card, so an accent too light for a white card
(a yellow) or too dark for the dark card (a deep violet) is shaded toward black or
white, step by step, until it reads. The hue stays the operator's.

Pure module: no aiohttp import.
"""

from __future__ import annotations

from typing import Final, Literal

Scheme = Literal["light", "dark"]

#: The page (``--bg``) and card (``--card``) backgrounds of the shipped consent.css,
#: per scheme (a test reads the stylesheet and checks these are its values).
SURFACES: Final[dict[Scheme, tuple[str, ...]]] = {
    "light": ("#f4f5f7", "#ffffff"),
    "dark": ("#111317", "#1c1f25"),
}
#: WCAG 2.2 SC 1.4.3, normal text.
TEXT_CONTRAST: Final = 4.5


def _channels(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def luminance(colour: str) -> float:
    """Relative luminance of ``#rrggbb`` (WCAG 2.2, "relative luminance")."""
    linear = [
        c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
        for c in (v / 255 for v in _channels(colour))
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two ``#rrggbb`` colours, 1 to 21."""
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _mix(colour: str, toward: str, share: float) -> str:
    mixed = (
        round(c + (t - c) * share)
        for c, t in zip(_channels(colour), _channels(toward), strict=True)
    )
    return "#" + "".join(f"{v:02x}" for v in mixed)


def text_on(colour: str) -> str:
    """Black or white, whichever contrasts more with ``colour`` (a button's label)."""
    return "#000000" if contrast("#000000", colour) > contrast("#ffffff", colour) else "#ffffff"


def link_colour(accent: str, scheme: Scheme) -> str:
    """``accent`` (``#rrggbb``), shaded toward black on the light scheme or white on
    the dark one by the least 5 % steps that give 4.5:1 on every shipped surface."""
    toward = "#000000" if scheme == "light" else "#ffffff"
    for step in range(21):
        candidate = _mix(accent, toward, step / 20)
        if all(contrast(candidate, s) >= TEXT_CONTRAST for s in SURFACES[scheme]):
            return candidate
    return toward
