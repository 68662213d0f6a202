"""Page templates from ``static/``, or the operator's ``[ui] templates_dir``, rendered
by Jinja2 with autoescaping on; the assets they link, served under content-hashed
names.

Client metadata shown on the pages is self-asserted (RFC 7591, and a metadata
document is its author's words): a ``client_name`` of ``<script>`` must render as
text whoever wrote the template. So the environment, for the shipped templates and
an operator's alike, has autoescaping on and no way to turn it off: the ``safe``
filter does not exist, and a template that names it (``|safe``, ``{% filter safe %}``)
or opens an ``{% autoescape %}`` block is refused when it is compiled, which is at
start (every template is compiled then). The security headers are the handler's
(``pages.py``), never a template's: a template that carries ``<meta http-equiv>`` or a
referrer policy other than ``no-referrer`` is refused too, since a ``<meta>`` can
loosen what the ``Referrer-Policy`` header says (docs/branding.md).

An operator's template is trusted code otherwise (Jinja is not a sandbox against the
person who writes the template); the rule keeps a slip from turning a client's name
into markup.

Assets (the stylesheet, the favicon, the operator's logo, the accent colour's
stylesheet) are held in memory and named by the SHA-256 of their bytes
(``consent.3f2a9c01b4de.css``), so they are served ``immutable`` with a year's
lifetime and a change is a new name (RFC 8246). The accent colour is a generated
stylesheet, not an inline style, so the CSP keeps ``style-src 'self'``.

Each language has its own environment with that language's catalog installed
(Jinja's ``i18n`` extension, new-style gettext): ``{% trans %}`` blocks and ``_()``
are translated, and their placeholders are escaped like any value, since new-style
gettext formats them after marking only the catalog's text as markup. The English
environment compiles every template at start; the others compile each on first use
(the syntax is the same whatever the language).

The templates ship inside the installed package (``consentgate/static``); in a
source checkout they are read from the top-level ``static/`` directory.

Pure module: no aiohttp import.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jinja2
import jinja2.ext
from jinja2.lexer import Token, TokenStream

from consentgate.config.sections_ui import UiConfig
from consentgate.core.negotiation import direction
from consentgate.core.startup_errors import StartupError
from consentgate.web.rendering.accent import link_colour, text_on
from consentgate.web.rendering.catalogs import Catalog, shipped_catalogs

#: ``consentgate/``: this module lives in ``consentgate/web/rendering/``.
_PACKAGE_DIR = Path(__file__).resolve().parents[2]

#: Served asset types, by suffix.
CONTENT_TYPES: Final[Mapping[str, str]] = {
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
}
#: The suffixes ``[ui] logo_file`` may have.
LOGO_SUFFIXES: Final = frozenset(CONTENT_TYPES) - {".css"}
MAX_LOGO_BYTES: Final = 512 * 1024
#: The assets the templates link, by their logical name.
SHIPPED_ASSETS: Final = ("consent.css", "favicon.svg")


def static_dir() -> Path:
    """Where the templates and assets are: inside the package, else the checkout."""
    for candidate in (_PACKAGE_DIR / "static", _PACKAGE_DIR.parent / "static"):
        if (candidate / "base.html").is_file():
            return candidate
    raise StartupError(
        f"the page templates are missing: neither {_PACKAGE_DIR / 'static'} nor "
        f"{_PACKAGE_DIR.parent / 'static'} holds base.html; reinstall consentgate"
    )


@dataclass(frozen=True)
class Asset:
    """One served file: its bytes, its type, and whether its name is its content's
    hash (then it may be cached for a year, ``immutable``)."""

    body: bytes
    content_type: str
    immutable: bool


_META_REFRESH_OR_POLICY = re.compile(r"http-equiv", re.IGNORECASE)
_REFERRER_SETTING = re.compile(
    r"""(?:name\s*=\s*["']?referrer|referrerpolicy\s*=)(?P<rest>[^>]*)""", re.IGNORECASE
)


#: The translation functions and how many of their first arguments are messages.
_MESSAGE_ARGUMENTS: Final = {"_": 1, "gettext": 1, "ngettext": 2, "pgettext": 2, "npgettext": 3}


class EscapedClientValues(jinja2.ext.Extension):
    """Refuses, when a template is compiled, what would let a value out unescaped
    (``safe``, ``{% autoescape %}``, a translation of anything but a literal message)
    or loosen the page's headers (``<meta http-equiv>``, a referrer policy other than
    ``no-referrer``)."""

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        tokens = list(stream)
        for index, token in enumerate(tokens):
            previous = tokens[index - 1] if index else None
            refusal = _refusal(previous, token) or _translation_refusal(tokens, index)
            if refusal is not None:
                raise jinja2.TemplateSyntaxError(
                    refusal, token.lineno, stream.name, stream.filename
                )
        yield from tokens


def _translation_refusal(tokens: list[Token], index: int) -> str | None:
    """A translation is trusted markup (new-style gettext marks the catalog's text
    safe and escapes only the named values formatted into it), so ``_(client_name)``
    would look a client's words up in the catalog and show them unescaped: the
    messages must be literals (``_("Deny")``, keyword values after them are escaped)."""
    token = tokens[index]
    if token.type != "name" or token.value not in _MESSAGE_ARGUMENTS:
        return None
    if index and tokens[index - 1].type == "dot":
        return None  # an attribute of some value, not the translation function
    refusal = (
        f"only a literal message may be translated: {token.value}() must be called with "
        "quoted text; a value in a message is a named argument or a {% trans %} variable"
    )
    expected = ["lparen"]
    for _ in range(_MESSAGE_ARGUMENTS[str(token.value)]):
        expected += ["string", "comma|rparen"]
    following = tokens[index + 1 : index + 1 + len(expected)]
    if len(following) < len(expected):
        return refusal
    for seen, wanted in zip(following, expected, strict=True):
        if seen.type not in wanted.split("|"):
            return refusal
    return None


def _refusal(previous: Token | None, token: Token) -> str | None:
    if token.type == "data":
        text = str(token.value)
        if _META_REFRESH_OR_POLICY.search(text):
            return "<meta http-equiv> is not allowed: the gate sets the page's headers"
        for found in _REFERRER_SETTING.finditer(text):
            if "no-referrer" not in found.group("rest").split(">")[0]:
                return 'a referrer policy other than "no-referrer" is not allowed'
        return None
    if token.type != "name" or previous is None:
        return None
    if token.value == "autoescape" and previous.type == "block_begin":
        return "{% autoescape %} blocks are not allowed: every value is escaped"
    if token.value == "safe" and (
        previous.type == "pipe" or (previous.type == "name" and previous.value == "filter")
    ):
        return "the safe filter is not allowed: client-provided values stay escaped"
    return None


class Templates:
    """The template environment plus the static assets served from memory.

    ``overrides``: a directory whose files replace the shipped ones of the same name
    (templates and assets); ``logo``: an image shown on every page; ``accent``: a
    checked ``#rgb``/``#rrggbb`` colour (``config.parsers.parse_accent_color``).
    Every template is compiled here, so an error is a :class:`StartupError`.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        overrides: Path | None = None,
        logo: Path | None = None,
        accent: str = "",
        catalogs: Mapping[str, Catalog] | None = None,
    ) -> None:
        self.directory = directory or static_dir()
        self.overrides = overrides
        searched = [self.directory]
        if overrides is not None:
            if not overrides.is_dir():
                raise StartupError(f"ui.templates_dir: {overrides} is not a directory")
            searched.insert(0, overrides)
        self._searched = searched
        #: Language -> its messages, durations and moments.
        self.catalogs: Mapping[str, Catalog] = shipped_catalogs() if catalogs is None else catalogs
        self._by_language: dict[str, jinja2.Environment] = {}
        self._env = self._environment("en")
        #: Served name -> asset; the hashed names and, for templates written against
        #: ``{{ asset_base }}/consent.css``, the plain names (short-lived).
        self.assets: dict[str, Asset] = {}
        #: Logical name (``consent.css``, ``favicon.svg``, ``theme.css``, ``logo``) ->
        #: served name.
        self.asset_names: dict[str, str] = {}
        names = {
            path.name
            for folder in searched
            for path in folder.iterdir()
            if path.suffix in CONTENT_TYPES and path.is_file()
        }
        for name in sorted(names):
            self._add_asset(name, self._asset_bytes(name))
        if accent:
            self._add_asset("theme.css", theme_css(accent).encode("ascii"))
        if logo is not None:
            self._add_asset(f"logo{logo.suffix.lower()}", _logo_bytes(logo), logical="logo")
        self._compile_all(searched)

    def _asset_bytes(self, name: str) -> bytes:
        if self.overrides is not None and (self.overrides / name).is_file():
            return (self.overrides / name).read_bytes()
        return (self.directory / name).read_bytes()

    def _add_asset(self, name: str, body: bytes, *, logical: str | None = None) -> None:
        stem, _, suffix = name.rpartition(".")
        content_type = CONTENT_TYPES[f".{suffix}"]
        hashed = f"{stem}.{hashlib.sha256(body).hexdigest()[:12]}.{suffix}"
        self.assets[hashed] = Asset(body, content_type, immutable=True)
        self.assets.setdefault(name, Asset(body, content_type, immutable=False))
        self.asset_names[logical or name] = hashed

    def _compile_all(self, searched: list[Path]) -> None:
        names = {p.name for d in searched for p in d.iterdir() if p.suffix == ".html"}
        for name in sorted(names):
            try:
                self._env.get_template(name)
            except jinja2.TemplateError as exc:
                where = getattr(exc, "filename", None) or name
                line = getattr(exc, "lineno", None)
                at = f"{where}, line {line}" if line else where
                raise StartupError(
                    f"ui.templates_dir: the template {at} is refused: {exc}"
                ) from None

    def _environment(self, language: str) -> jinja2.Environment:
        """The environment of one language, made on first use."""
        env = self._by_language.get(language)
        if env is not None:
            return env
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self._searched),
            # The templates are checked at start and take a restart ([ui] templates_dir):
            # a file edited later is not read again, nor stat()ed on every page.
            auto_reload=False,
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[EscapedClientValues, "jinja2.ext.i18n"],
        )
        del env.filters["safe"]
        # A {% trans %} block's message is its text with the whitespace collapsed, so
        # reflowing a template does not change its message ids.
        env.policies["ext.i18n.trimmed"] = True
        env.install_gettext_translations(  # type: ignore[attr-defined]
            self.catalog(language).translations, newstyle=True
        )
        self._by_language[language] = env
        return env

    def catalog(self, language: str) -> Catalog:
        """The catalog of a shipped language (English for any other)."""
        return self.catalogs.get(language) or self.catalogs["en"]

    @property
    def environment(self) -> jinja2.Environment:
        return self._env

    @classmethod
    def from_config(cls, ui: UiConfig) -> Templates:
        """The templates and assets ``[ui]`` names."""
        return cls(overrides=ui.templates_dir, logo=ui.logo_file, accent=ui.accent_color)

    def asset_urls(self, base: str) -> dict[str, str]:
        """Logical name -> URL under ``base`` (``{prefix}/static``)."""
        return {logical: f"{base}/{served}" for logical, served in self.asset_names.items()}

    def render(self, name: str, *, language: str = "en", **context: Any) -> str:
        """The page ``name`` in ``language``; ``language`` and ``direction`` (``ltr`` or
        ``rtl``) are variables of every template (docs/branding.md)."""
        language = language if language in self.catalogs else "en"
        template = self._environment(language).get_template(name)
        return template.render(language=language, direction=direction(language), **context)


def _logo_bytes(path: Path) -> bytes:
    if path.suffix.lower() not in LOGO_SUFFIXES:
        raise StartupError(
            f"ui.logo_file: {path} must be one of {', '.join(sorted(LOGO_SUFFIXES))}"
        )
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise StartupError(f"ui.logo_file: {path} cannot be read: {exc.strerror}") from None
    if not body or len(body) > MAX_LOGO_BYTES:
        raise StartupError(
            f"ui.logo_file: {path} has {len(body)} bytes; it must have 1 to {MAX_LOGO_BYTES}"
        )
    return body


def theme_css(accent: str) -> str:
    """The stylesheet of an accent colour (already checked to be ``#rgb``/``#rrggbb``):
    the colour for the primary button, black or white text on it, whichever
    contrasts more, and the links' colour per scheme, shaded until it reads on the
    card (``accent.py``, WCAG 2.2 SC 1.4.3)."""
    digits = accent.lstrip("#")
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    if re.fullmatch(r"[0-9a-f]{6}", digits.lower()) is None:
        raise ValueError(f"ui.accent_color: expected #rgb or #rrggbb, got {accent!r}")
    colour = f"#{digits.lower()}"
    button = f"--accent: {colour}; --accent-text: {text_on(colour)};"
    light = f":root {{ {button} --link: {link_colour(colour, 'light')}; }}\n"
    dark = f":root {{ {button} --link: {link_colour(colour, 'dark')}; }}\n"
    return f"/* [ui] accent_color */\n{light}@media (prefers-color-scheme: dark) {{ {dark}}}\n"
