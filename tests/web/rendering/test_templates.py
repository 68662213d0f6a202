"""The template environment: an operator's templates replace the shipped ones, but
cannot unescape a client's words or loosen the page's headers; assets get
content-hashed names; the accent colour is a stylesheet, never an inline style."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import jinja2
import pytest

from consentgate.core.startup_errors import StartupError
from consentgate.web.rendering.accent import SURFACES
from consentgate.web.rendering.templates import Templates, theme_css

NAME = '<script>alert("x")</script>'


def theme(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "theme"
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name.replace("_html", ".html").replace("_css", ".css")).write_text(text)
    return directory


def test_a_file_in_the_templates_directory_replaces_the_shipped_one(tmp_path: Path) -> None:
    templates = Templates(
        overrides=theme(
            tmp_path,
            denied_html="{% extends 'base.html' %}{% block content %}"
            "<p class=custom>No.</p>{% endblock %}",
        )
    )
    page = templates.render(
        "denied.html",
        service_name="S",
        stylesheets=[],
        favicon_url="",
        logo_url="",
        request_id="r1",
    )
    assert "<p class=custom>No.</p>" in page
    assert "You did not allow" not in page
    assert "Protected by consentgate" in page  # base.html is still the shipped one


def test_a_template_edited_after_the_start_is_not_read_again(tmp_path: Path) -> None:
    """``[ui] templates_dir`` takes a restart: what was checked at start is what serves,
    and no page looks at the files again."""
    directory = theme(
        tmp_path,
        denied_html="{% extends 'base.html' %}{% block content %}"
        "<p class=custom>No.</p>{% endblock %}",
    )
    templates = Templates(overrides=directory)
    context: dict[str, Any] = {
        "service_name": "S",
        "stylesheets": [],
        "favicon_url": "",
        "logo_url": "",
    }
    assert "<p class=custom>No.</p>" in templates.render("denied.html", request_id="r1", **context)
    (directory / "denied.html").write_text("{% block %}")  # would not even compile
    assert "<p class=custom>No.</p>" in templates.render("denied.html", request_id="r2", **context)


def test_a_custom_template_writing_a_client_value_still_escapes_it(tmp_path: Path) -> None:
    templates = Templates(overrides=theme(tmp_path, custom_html="<h1>{{ client_name }}</h1>"))
    page = templates.render("custom.html", client_name=NAME)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


@pytest.mark.parametrize(
    "source",
    [
        "{{ client_name|safe }}",
        "{{ client_name | safe }}",
        "{{ client_name|upper|safe }}",
        "{% if true %}{{ client_name|safe }}{% endif %}",
        "{% filter safe %}{{ client_name }}{% endfilter %}",
        "{% autoescape false %}{{ client_name }}{% endautoescape %}",
        "{% autoescape true %}{{ client_name }}{% endautoescape %}",
        '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
        '<META HTTP-EQUIV="Content-Security-Policy" content="default-src *">',
        '<meta name="referrer" content="unsafe-url">',
        '<a href="{{ x }}" referrerpolicy="origin">x</a>',
    ],
)
def test_a_template_that_could_unescape_or_loosen_the_headers_is_refused_at_start(
    tmp_path: Path, source: str
) -> None:
    with pytest.raises(StartupError) as refused:
        Templates(overrides=theme(tmp_path, consent_html=source))
    assert "ui.templates_dir" in str(refused.value)
    assert "consent.html" in str(refused.value)


def test_the_safe_filter_does_not_exist_even_for_a_template_compiled_later(
    tmp_path: Path,
) -> None:
    directory = theme(tmp_path)
    templates = Templates(overrides=directory)
    (directory / "late.html").write_text("{% if x %}{{ x|safe }}{% endif %}")
    with pytest.raises(jinja2.TemplateSyntaxError, match="safe filter is not allowed"):
        templates.render("late.html", x=NAME)
    assert "safe" not in templates.environment.filters


def test_the_shipped_templates_pass_the_same_rules() -> None:
    Templates()  # compiles every shipped template with the refusals on


def test_a_template_with_a_syntax_error_stops_the_start_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"error\.html, line 1"):
        Templates(overrides=theme(tmp_path, error_html="{% block %}"))


def test_assets_are_named_by_the_hash_of_their_bytes(tmp_path: Path) -> None:
    css = "body { color: black; }\n"
    logo = tmp_path / "logo.svg"
    logo.write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    templates = Templates(overrides=theme(tmp_path, consent_css=css), logo=logo, accent="#0a7")
    urls = templates.asset_urls("/_consentgate/static")
    assert set(urls) == {"consent.css", "favicon.svg", "theme.css", "logo"}
    for logical, url in urls.items():
        served = url.rsplit("/", 1)[1]
        asset = templates.assets[served]
        assert asset.immutable
        assert served.split(".")[-2] == hashlib.sha256(asset.body).hexdigest()[:12], logical
    assert templates.assets[urls["consent.css"].rsplit("/", 1)[1]].body == css.encode()
    assert urls["logo"].endswith(".svg")
    assert not templates.assets["consent.css"].immutable  # the plain name: short-lived


def test_a_changed_asset_is_a_new_name(tmp_path: Path) -> None:
    first = Templates(accent="#0a7").asset_names["theme.css"]
    second = Templates(accent="#0a8").asset_names["theme.css"]
    assert first != second


def test_the_accent_stylesheet_holds_the_colour_and_a_contrasting_text() -> None:
    assert "--accent: #ffee00; --accent-text: #000000;" in theme_css("#fe0")
    assert "--accent: #1d1d6b; --accent-text: #ffffff;" in theme_css("#1D1D6B")
    with pytest.raises(ValueError, match="accent_color"):
        theme_css("#fff;}body{x")


@pytest.mark.parametrize(
    ("name", "body", "problem"),
    [
        ("logo.gif", b"GIF89a", "must be one of"),
        ("logo.png", b"", "1 to"),
        ("logo.png", b"x" * (512 * 1024 + 1), "1 to"),
        ("missing.png", None, "cannot be read"),
    ],
)
def test_a_logo_that_cannot_be_served_stops_the_start_naming_the_key(
    tmp_path: Path, name: str, body: bytes | None, problem: str
) -> None:
    logo = tmp_path / name
    if body is not None:
        logo.write_bytes(body)
    with pytest.raises(StartupError, match=problem) as refused:
        Templates(logo=logo)
    assert "ui.logo_file" in str(refused.value)


def test_a_templates_directory_that_is_not_a_directory_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"ui\.templates_dir"):
        Templates(overrides=tmp_path / "nowhere")


def test_an_image_or_stylesheet_of_the_theme_is_served_hashed_under_its_name(
    tmp_path: Path,
) -> None:
    directory = theme(tmp_path, brand_css=".card { border-width: 3px; }")
    (directory / "notes.txt").write_text("not an asset")
    templates = Templates(overrides=directory)
    served = templates.asset_names["brand.css"]
    assert served.startswith("brand.") and templates.assets[served].immutable
    assert "notes.txt" not in templates.asset_names


def shipped_surfaces() -> dict[str, list[str]]:
    """The page and card backgrounds of the shipped consent.css, light then dark."""
    css = (Path(__file__).resolve().parents[3] / "static" / "consent.css").read_text()
    light, dark = css.split("@media (prefers-color-scheme: dark)", 1)
    pick = re.compile(r"--(?:bg|card):\s*(#[0-9a-f]{6})")
    return {"light": pick.findall(light), "dark": pick.findall(dark.split("}", 1)[0])}


def wcag_contrast(a: str, b: str) -> float:
    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize(
    "accent", ["#6d28d9", "#1d4ed8", "#f59e0b", "#fe0", "#0a7", "#000", "#fff", "#7aa2ff"]
)
def test_links_in_the_accent_colour_stay_readable_on_the_card_in_light_and_dark(
    accent: str,
) -> None:
    """WCAG 2.2 SC 1.4.3: link text at least 4.5:1 on the page and card backgrounds of
    both colour schemes, whatever accent the operator chose; the button keeps the
    accent itself (its text is black or white, whichever contrasts)."""
    css = theme_css(accent)
    light, dark = css.split("@media (prefers-color-scheme: dark)", 1)
    surfaces = shipped_surfaces()
    assert surfaces == {scheme: list(colours) for scheme, colours in SURFACES.items()}
    for scheme, block in (("light", light), ("dark", dark)):
        match = re.search(r"--link: (#[0-9a-f]{6});", block)
        assert match is not None, f"{scheme}: no --link in {css!r}"
        for surface in surfaces[scheme]:
            ratio = wcag_contrast(match[1], surface)
            assert ratio >= 4.5, f"{accent} {scheme}: {match[1]} on {surface} is {ratio:.2f}"


@pytest.mark.parametrize(
    "source",
    [
        "{{ _(client_name) }}",
        "{{ gettext(client_name) }}",
        '{{ _("Deny" ~ client_name) }}',
        '{{ ngettext("one", client_name, 2) }}',
        "{{ _(*names) }}",
        "{% set t = _ %}{{ t(client_name) }}",
    ],
)
def test_a_template_that_would_translate_a_value_is_refused_at_start(
    tmp_path: Path, source: str
) -> None:
    """A translation is trusted markup (new-style gettext marks the catalog's text
    safe), so ``_(client_name)`` would both look a client's words up in a catalog and
    let them out unescaped: only literal messages may be translated."""
    with pytest.raises(StartupError) as refused:
        Templates(overrides=theme(tmp_path, consent_html=source))
    assert "only a literal message may be translated" in str(refused.value)


def test_literal_messages_and_trans_blocks_with_values_are_allowed(tmp_path: Path) -> None:
    templates = Templates(
        overrides=theme(
            tmp_path,
            custom_html='{{ _("Deny") }} {{ ngettext("%(num)d day", "%(num)d days", 2) }} '
            "{% trans name=client_name %}Hello {{ name }}{% endtrans %}",
        )
    )
    page = templates.render("custom.html", language="de", client_name=NAME)
    assert page.startswith("Ablehnen 2 days Hello &lt;script&gt;")
