"""The catalogs are compiled when the wheel is built (``hatch_build.py``) and the
gate reads the compiled ``.mo`` before the ``.po`` it came from; a checkout without
``.mo`` files reads the ``.po``."""

from __future__ import annotations

import gettext
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import write_po

from consentgate.config.parsers import SHIPPED_LANGUAGES
from consentgate.core.startup_errors import StartupError
from consentgate.web.rendering.catalogs import LOCALES_DIR, catalog_path, shipped_catalogs

ROOT = Path(__file__).resolve().parents[3]


def write_language(directory: Path, language: str, deny: str, *, compiled: str | None) -> None:
    catalog = Catalog(locale=language, domain="consentgate")
    catalog.add("Deny", deny)
    po = catalog_path(language, ".po", directory)
    po.parent.mkdir(parents=True)
    buffer = io.BytesIO()
    write_po(buffer, catalog)
    po.write_bytes(buffer.getvalue())
    if compiled is not None:
        catalog.get("Deny").string = compiled  # type: ignore[union-attr]
        with catalog_path(language, ".mo", directory).open("wb") as file:
            write_mo(file, catalog)


def test_a_compiled_catalog_is_read_before_its_source_and_a_source_alone_is_enough(
    tmp_path: Path,
) -> None:
    for language in SHIPPED_LANGUAGES:
        write_language(
            tmp_path,
            language,
            f"{language} from po",
            compiled="from mo" if language == "de" else None,
        )
    catalogs = shipped_catalogs(tmp_path)
    assert catalogs["de"].gettext("Deny") == "from mo"
    assert catalogs["fr"].gettext("Deny") == "fr from po"


def test_a_missing_catalog_stops_the_start_naming_the_language(tmp_path: Path) -> None:
    write_language(tmp_path, "en", "Deny", compiled=None)
    with pytest.raises(StartupError, match="the 'de' translations cannot be read"):
        shipped_catalogs(tmp_path)


def test_the_checkout_keeps_only_the_sources() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "consentgate/locales"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert tracked, "no catalogs tracked"
    assert not [name for name in tracked if name.endswith(".mo")]
    assert {
        f"consentgate/locales/{lang}/LC_MESSAGES/consentgate.po" for lang in SHIPPED_LANGUAGES
    } <= set(tracked)


@pytest.mark.slow
def test_the_wheel_carries_a_compiled_catalog_for_every_language(tmp_path: Path) -> None:
    """``python -m build --wheel``, as CI and ``tools/build_pyz.py`` build it."""
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (wheel,) = tmp_path.glob("consentgate-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for language in SHIPPED_LANGUAGES:
            inside = f"consentgate/locales/{language}/LC_MESSAGES/consentgate.mo"
            assert inside in names
            compiled = gettext.GNUTranslations(io.BytesIO(archive.read(inside)))
            source = (LOCALES_DIR / language / "LC_MESSAGES" / "consentgate.po").read_text()
            assert f'msgstr "{compiled.gettext("Deny")}"' in source
        arabic = gettext.GNUTranslations(
            io.BytesIO(archive.read("consentgate/locales/ar/LC_MESSAGES/consentgate.mo"))
        )
    one, two = (
        arabic.ngettext("Revoke your %(count)s approval?", "Revoke all %(count)s approvals?", n)
        for n in (1, 2)
    )
    assert one != two  # CLDR's six Arabic forms, compiled with their Plural-Forms
