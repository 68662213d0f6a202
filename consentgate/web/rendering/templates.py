"""Page templates from ``static/``, rendered by Jinja2 with autoescaping on.

Client metadata shown on the consent page is self-asserted (RFC 7591): a
``client_name`` of ``<script>`` must render as text. Autoescaping is enabled for
every template, and templates never mark client data ``|safe``.

The templates ship inside the installed package (``consentgate/static``); in a
source checkout they are read from the top-level ``static/`` directory.

Pure module: no aiohttp import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from consentgate.core.startup_errors import StartupError

#: ``consentgate/``: this module lives in ``consentgate/web/rendering/``.
_PACKAGE_DIR = Path(__file__).resolve().parents[2]


def static_dir() -> Path:
    """Where the templates and assets are: inside the package, else the checkout."""
    for candidate in (_PACKAGE_DIR / "static", _PACKAGE_DIR.parent / "static"):
        if (candidate / "base.html").is_file():
            return candidate
    raise StartupError(
        f"the page templates are missing: neither {_PACKAGE_DIR / 'static'} nor "
        f"{_PACKAGE_DIR.parent / 'static'} holds base.html; reinstall consentgate"
    )


class Templates:
    """The template environment plus the static assets served from memory."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or static_dir()
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.directory),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.assets: dict[str, bytes] = {
            path.name: path.read_bytes()
            for path in sorted(self.directory.iterdir())
            if path.suffix in {".css", ".svg", ".png", ".ico"}
        }

    def render(self, name: str, **context: Any) -> str:
        return self._env.get_template(name).render(**context)
