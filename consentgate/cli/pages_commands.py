"""``consentgate pages``: every page the gate renders, with sample data, written to a
directory with its assets, so an operator reviews a theme (``[ui]``) in any browser
without a sign-in (docs/branding.md), in one language (``--language``, default
``[ui] default_language``).

The pages are rendered by the same environment as the running gate's (the operator's
``templates_dir`` and its refusals, the logo, the accent stylesheet), so a template
the gate would refuse at start is refused here with the same message.
"""

from __future__ import annotations

import argparse
import html
from pathlib import Path

from consentgate.cli.conventions import EXIT_OK, Commands, add_config_argument, load
from consentgate.core.startup_errors import StartupError


def add_pages(commands: Commands) -> None:
    pages = commands.add_parser(
        "pages",
        help="render every page with sample data to HTML files, to review a theme",
    )
    add_config_argument(pages)
    pages.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="directory to write the pages and their assets to (created if missing)",
    )
    pages.add_argument(
        "--language",
        metavar="LANG",
        help="the language of the pages: one of [ui] languages (default: [ui] default_language)",
    )
    pages.set_defaults(handler=_cmd_pages)


def _cmd_pages(args: argparse.Namespace) -> int:
    from consentgate.web.rendering.page_samples import sample_pages
    from consentgate.web.rendering.pages import page_context
    from consentgate.web.rendering.templates import Templates

    config = load(args)
    language = (args.language or config.ui.default_language).lower()
    if language not in config.ui.languages:
        raise StartupError(
            f"--language: {args.language!r} is not one of ui.languages "
            f"{list(config.ui.languages)!r}"
        )
    templates = Templates.from_config(config.ui)
    out: Path = args.out
    try:
        (out / "static").mkdir(parents=True, exist_ok=True)
        for name, asset in templates.assets.items():
            (out / "static" / name).write_bytes(asset.body)
        base = page_context(
            config,
            templates,
            "0123456789abcdef",
            language=language,
            asset_base="static",
            approvals_url="approvals.html",
        )
        written = []
        for page in sample_pages(config, templates.catalog(language)):
            context = {**base, **page.context}
            text = templates.render(page.template, language=language, **context)
            (out / page.filename).write_text(text, encoding="utf-8")
            written.append(page.filename)
        (out / "index.html").write_text(_index(written), encoding="utf-8")
    except OSError as exc:
        raise StartupError(f"--out: cannot write to {out}: {exc.strerror}") from None
    print(f"wrote {len(written)} pages and {len(templates.assets)} assets to {out}")
    print(f"open {out / 'index.html'} in a browser to review them")
    return EXIT_OK


def _index(names: list[str]) -> str:
    items = "\n".join(f'<li><a href="{html.escape(n)}">{html.escape(n)}</a></li>' for n in names)
    return (
        '<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8">'
        "<title>consentgate pages</title></head>\n<body>\n<h1>Every page, with sample data"
        f"</h1>\n<ul>\n{items}\n</ul>\n</body>\n</html>\n"
    )
