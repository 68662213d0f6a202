"""``[ui]``: how the gate's pages look and speak: the operator's templates, logo,
accent colour, support link, and the languages the pages are offered in
(docs/branding.md).

Each key is one field: its type, default, parser, doc and reload behaviour
(:mod:`consentgate.config.keyspec`). The templates and the assets are read, checked
and given their content-hashed names once, at start, so a template error stops the
start instead of a person's sign-in, and a changed file needs a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from consentgate.config.keyspec import applies, restart, spec
from consentgate.config.parsers import (
    SHIPPED_LANGUAGES,
    parse_accent_color,
    parse_language,
    parse_languages,
    parse_optional_file_path,
    parse_support_url,
)

_AT_START = "the templates and assets are loaded, checked and hashed at start"


@dataclass(frozen=True)
class UiConfig:
    """The operator's brand on the gate's pages."""

    templates_dir: Path | None = field(
        default=None,
        metadata=spec(
            parse_optional_file_path,
            "Directory whose files replace the shipped templates and assets of the same "
            "names (consent.html, error.html, base.html, consent.css ...); empty: the "
            "shipped ones. Client-provided values stay escaped (|safe and autoescape "
            "blocks are refused). See docs/branding.md.",
            reload=restart(_AT_START),
        ),
    )
    logo_file: Path | None = field(
        default=None,
        metadata=spec(
            parse_optional_file_path,
            "Image (.svg, .png, .jpg, .webp or .ico, at most 512 KiB) shown at the top of "
            "every page, served by the gate under a content-hashed name; empty: none.",
            reload=restart(_AT_START),
        ),
    )
    accent_color: str = field(
        default="",
        metadata=spec(
            parse_accent_color,
            'Colour of the primary button and links, "#rgb" or "#rrggbb" only; empty: '
            "the shipped blue. Served as a generated stylesheet (no inline style).",
            reload=restart(_AT_START),
        ),
    )
    support_url: str = field(
        default="",
        metadata=spec(
            parse_support_url,
            'Where people get help, an https:// URL or "mailto:address", shown on every '
            "error page with the request id; empty: the pages ask them to tell the "
            "service's operator.",
            reload=applies("per request (error pages)"),
        ),
    )
    languages: tuple[str, ...] = field(
        default=SHIPPED_LANGUAGES,
        metadata=spec(
            parse_languages,
            "The languages the pages may be shown in, chosen per request from the "
            "authorization request's ui_locales (OpenID Connect Core 1.0 §3.1.2.1), then "
            'the browser\'s Accept-Language: any of "en", "de", "fr", "es", "ja", "ar" '
            "(right to left). Default: all of them.",
            reload=applies("per request"),
        ),
    )
    default_language: str = field(
        default="en",
        metadata=spec(
            parse_language,
            "The language of a page when neither ui_locales nor Accept-Language names "
            "one of [ui] languages; must be one of them.",
            reload=applies("per request"),
        ),
    )
