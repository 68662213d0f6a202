"""The pages' translations: extract, update, compile and check the gettext catalogs.

    python tools/catalogs.py extract   # consentgate/locales/consentgate.pot from the sources
    python tools/catalogs.py update    # extract, then merge into every language's .po
    python tools/catalogs.py compile --into DIR   # .po -> .mo (the wheel's build does it)
    python tools/catalogs.py check     # CI: catalogs match the sources, all translated

The messages are the templates' ``{% trans %}`` blocks and ``_()`` calls (Jinja's
Babel extractor, with the whitespace of a block collapsed as the gate's environment
does) and the Python sources' ``gettext``/``ngettext``/``N_`` calls. The English
catalog is the message ids themselves (``update`` fills it), so that "every message
has a translation in every catalog" holds for it too.

``check`` fails when a source gained, changed or lost a message the committed
``.pot`` does not have (run ``update``, then translate), when a catalog lacks a
message, has an empty or fuzzy translation, or a translation whose ``%(name)s``
placeholders differ from its message's, and when the plural forms are not CLDR's.
"""

from __future__ import annotations

import argparse
import copy
import io
import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ROOT / "consentgate" / "locales"
TEMPLATE = LOCALES / "consentgate.pot"
DOMAIN = "consentgate"
LANGUAGES = ("en", "de", "fr", "es", "ja", "ar")
METHODS = [("consentgate/**.py", "python"), ("static/*.html", "jinja2")]
OPTIONS = {
    "static/*.html": {
        "trimmed": "true",
        "newstyle_gettext": "true",
        "trim_blocks": "true",
        "lstrip_blocks": "true",
    }
}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def extracted() -> Catalog:
    """Every message of the sources, as a catalog template."""
    catalog = Catalog(
        project="consentgate",
        domain=DOMAIN,
        fuzzy=False,
        copyright_holder="consentgate developers",
    )
    for filename, lineno, message, comments, context in extract_from_dir(
        ROOT, METHODS, OPTIONS, KEYWORDS, strip_comment_tags=True
    ):
        if filename.startswith("tools/") or filename.startswith("tests/"):
            continue
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def po_path(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read(path: Path, language: str | None = None) -> Catalog:
    with path.open("rb") as file:
        return read_po(file, locale=language, domain=DOMAIN)


def write(path: Path, catalog: Catalog) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    # No line numbers: a message's place in its file is not worth a diff in every .po.
    write_po(buffer, catalog, width=100, include_lineno=False)
    path.write_bytes(buffer.getvalue())


def _listing(catalog: Catalog) -> list[tuple[object, list[str]]]:
    """The messages and the files they are in (the .pot keeps no line numbers)."""
    return [(m.id, sorted({path for path, _ in m.locations})) for m in catalog if m.id]


def cmd_extract() -> Catalog:
    template = extracted()
    if TEMPLATE.is_file():
        before = read(TEMPLATE)
        if _listing(before) == _listing(template):
            # Unchanged messages keep their date: no diff in every catalog for nothing.
            template.creation_date = before.creation_date
    write(TEMPLATE, template)
    print(f"{TEMPLATE.relative_to(ROOT)}: {len(template)} messages")
    return template


def cmd_update() -> None:
    template = cmd_extract()
    for language in LANGUAGES:
        path = po_path(language)
        catalog = (
            read(path, language)
            if path.is_file()
            else Catalog(
                locale=language,
                domain=DOMAIN,
                project="consentgate",
                copyright_holder="consentgate developers",
                fuzzy=False,
            )
        )
        # Babel's update shares the template's new messages: each language gets a copy.
        catalog.update(copy.deepcopy(template), no_fuzzy_matching=True)
        catalog.obsolete.clear()
        if language == "en":
            for message in catalog:
                if message.id and not _translated(message):
                    message.string = message.id
        write(path, catalog)
        missing = sum(1 for m in catalog if m.id and not _translated(m))
        print(f"{path.relative_to(ROOT)}: {missing} to translate")


def cmd_compile(into: Path) -> None:
    for language in LANGUAGES:
        target = into / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as file:
            write_mo(file, read(po_path(language), language), use_fuzzy=False)
        print(f"{target}")


def _texts(value: object) -> tuple[str, ...]:
    """A message's id or string as its forms (one, or a plural's several)."""
    if isinstance(value, list | tuple):
        return tuple(str(form or "") for form in value)
    return (str(value or ""),)


def _translated(message: Message) -> bool:
    return all(_texts(message.string)) and not message.fuzzy


def _names(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def problems() -> list[str]:
    """What is wrong with the committed catalogs, as lines."""
    found: list[str] = []
    sources = {m.id for m in extracted() if m.id}
    committed = {m.id for m in read(TEMPLATE) if m.id}
    for text in sorted(map(str, sources - committed)):
        found.append(f"consentgate.pot lacks {text!r}: run python tools/catalogs.py update")
    for text in sorted(map(str, committed - sources)):
        found.append(f"consentgate.pot has {text!r}, no longer in the sources: update")
    for language in LANGUAGES:
        catalog = read(po_path(language), language)
        where = f"{language}/consentgate.po"
        expected = Catalog(locale=language).plural_forms
        if catalog.plural_forms != expected:
            found.append(f"{where}: Plural-Forms {catalog.plural_forms!r}, CLDR: {expected!r}")
        ids = {m.id for m in catalog if m.id}
        for text in sorted(map(str, committed - ids)):
            found.append(f"{where} lacks {text!r}")
        for message in catalog:
            if not message.id:
                continue
            if not _translated(message):
                found.append(f"{where}: {message.id!r} is not translated (empty or fuzzy)")
                continue
            forms = _texts(message.id)
            wanted = _names(forms[-1])
            allowed = wanted | _names(forms[0])
            strings = _texts(message.string)
            for index, string in enumerate(strings):
                names = _names(string)
                # A plural form may leave the number out (Arabic's "one approval", its
                # own word); never add a name, and the last ("other") form has them all.
                last = index == len(strings) - 1
                if not names <= allowed or (last and names != wanted):
                    found.append(
                        f"{where}: {message.id!r} form {index} has placeholders "
                        f"{sorted(names)}, the message {sorted(wanted)}"
                    )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("extract")
    sub.add_parser("update")
    compiling = sub.add_parser("compile")
    # Never into the checkout by default: a stale .mo there would shadow an edited .po.
    compiling.add_argument("--into", type=Path, required=True)
    sub.add_parser("check")
    args = parser.parse_args()
    if args.command == "extract":
        cmd_extract()
    elif args.command == "update":
        cmd_update()
    elif args.command == "compile":
        cmd_compile(args.into)
    else:
        found = problems()
        for line in found:
            print(line, file=sys.stderr)
        print(f"{len(found)} problems" if found else "catalogs complete and up to date")
        return 1 if found else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
