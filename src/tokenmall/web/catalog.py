"""The message catalogs' upkeep: which strings the templates and web modules mark, which have
no Chinese yet, and which catalog each belongs to (by where it is used first: console, h5, shop,
else common).

    python -m tokenmall.web.catalog check    # exit 1 and list what is missing or unused
    python -m tokenmall.web.catalog update   # add missing ids (empty) to their catalogs

tests/test_web_i18n.py runs `check`.
"""

import sys
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract
from babel.messages.pofile import read_po, write_po

from tokenmall.web.i18n import LOCALE_DIR, catalog_files

HERE = Path(__file__).resolve().parent
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
AREAS = ("console", "h5", "shop")
PO_DIR = LOCALE_DIR / "zh_CN" / "LC_MESSAGES"


def sources() -> Iterator[tuple[Path, str]]:
    for path in sorted((HERE / "templates").rglob("*.html")):
        yield path, "jinja2.ext:babel_extract"
    for path in sorted(HERE.rglob("*.py")):
        if path.name != "catalog.py":
            yield path, "python"


def area_of(path: Path) -> str:
    relative = path.relative_to(HERE).parts
    for area in AREAS:
        if area in relative or relative[-1].startswith(area):
            return area
    return "common"


def extracted() -> dict[str | tuple[str, str], str]:
    """Every marked message id, and the catalog it belongs in."""
    found: dict[str | tuple[str, str], str] = {}
    for path, method in sources():
        with path.open("rb") as file:
            options = {"extensions": "jinja2.ext.i18n", "trimmed": "false"}
            for _line, message, _comments, _context in extract(
                method, file, keywords=KEYWORDS, options=options
            ):
                key = message if isinstance(message, str) else (message[0], message[1])
                area = area_of(path)
                # A message used in two areas lives in common.
                found[key] = area if found.get(key, area) == area else "common"
    return found


def catalogs() -> dict[str, Catalog]:
    """Every catalog by its name (the areas' and any section's own, as the server loads them),
    with an empty one for an area that has none yet."""
    loaded = {}
    for path in catalog_files():
        with path.open("rb") as file:
            loaded[path.stem] = read_po(file, locale="zh_CN")
    for area in ("common", *AREAS):
        if area not in loaded:
            loaded[area] = Catalog(locale="zh_CN", project="tokenmall", domain=area, fuzzy=False)
    return loaded


def problems() -> list[str]:
    """Messages with no Chinese, and catalog entries nothing uses."""
    used = extracted()
    translated: dict[str | tuple[str, str], str] = {}
    for area, catalog in catalogs().items():
        for message in catalog:
            if message.id:
                key = message.id if isinstance(message.id, str) else tuple(message.id[:2])
                translated[key] = area if message.string and any(message.string) else ""  # type: ignore[index]
    found = [
        f"no Chinese for {key!r} ({area}.po)"
        for key, area in used.items()
        if not translated.get(key)
    ]
    found += [f"unused: {key!r}" for key in translated if key not in used]
    # All catalogs make one dictionary at run time: one English id, one Chinese text.
    texts: dict[object, set[str]] = {}
    for catalog in catalogs().values():
        for message in catalog:
            if message.id and message.string:
                texts.setdefault(
                    message.id if isinstance(message.id, str) else message.id[0], set()
                ).add(str(message.string))
    found += [f"two translations of {key!r}: {sorted(t)}" for key, t in texts.items() if len(t) > 1]
    return found


def update() -> int:
    """Add each missing id, with an empty translation, to its catalog; returns how many."""
    loaded = catalogs()
    known = {
        message.id if isinstance(message.id, str) else message.id[0]
        for catalog in loaded.values()
        for message in catalog
        if message.id
    }
    added = 0
    for key, area in extracted().items():
        singular = key if isinstance(key, str) else key[0]
        if singular in known:
            continue
        loaded[area].add(
            key if isinstance(key, str) else (key[0], key[1]), "" if isinstance(key, str) else ("",)
        )
        added += 1
    PO_DIR.mkdir(parents=True, exist_ok=True)
    for area, catalog in loaded.items():
        if len(catalog):
            catalog.fuzzy = False
            catalog.copyright_holder = "tokenmall contributors"
            catalog.msgid_bugs_address = ""
            catalog.last_translator = "tokenmall contributors"
            catalog.language_team = "tokenmall"
            with (PO_DIR / f"{area}.po").open("wb") as file:
                write_po(file, catalog, width=100, omit_header=False, sort_output=True)
    return added


def main(argv: list[str]) -> int:
    if argv[:1] == ["update"]:
        print(f"added {update()} message ids; fill in their msgstr")
        return 0
    found = problems()
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
