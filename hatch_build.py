"""Compile the pages' gettext catalogs when the wheel is built.

The repository keeps only the ``.po`` sources (``consentgate/locales``); every built
wheel, and so the single file built from one (``tools/build_pyz.py``), carries the
compiled ``.mo`` next to them, which the gate reads without parsing a ``.po`` at
start (``consentgate/web/rendering/catalogs.py``). An editable install reads the
``.po`` sources, as a checkout does. Fuzzy entries are left out, as ``msgfmt`` does.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from hatchling.builders.hooks.plugin.interface import BuildHookInterface

LOCALES = Path("consentgate") / "locales"
DOMAIN = "consentgate"


class CompiledCatalogs(BuildHookInterface):  # type: ignore[misc]
    """Adds ``consentgate/locales/<language>/LC_MESSAGES/consentgate.mo`` to the wheel."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        self._scratch = Path(tempfile.mkdtemp(prefix="consentgate-mo-"))
        sources = sorted((Path(self.root) / LOCALES).glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
        if not sources:
            raise RuntimeError(f"no catalogs under {LOCALES}: the wheel would speak no language")
        for source in sources:
            language = source.parents[1].name
            compiled = self._scratch / f"{language}.mo"
            with source.open("rb") as po:
                catalog = read_po(po, locale=language, domain=DOMAIN)
            with compiled.open("wb") as mo:
                write_mo(mo, catalog, use_fuzzy=False)
            target = LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
            build_data["force_include"][str(compiled)] = target.as_posix()

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
