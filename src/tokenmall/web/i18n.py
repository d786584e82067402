"""Languages of the pages: Chinese (zh-CN) by default, English by a switch (the `tm_lang`
cookie, set at /lang/<code>). Message ids are the English text; the Chinese is in Babel message
catalogs, `locale/zh_CN/LC_MESSAGES/<area>.po`, one per area (common, console, h5, shop), read
with Babel when the server starts. tests/test_web_i18n.py extracts every string the templates and
the web modules mark (_(), gettext, ngettext) and checks that each has its translation."""

from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

LANGUAGES = {"zh-CN": "中文", "en": "English"}
DEFAULT_LANGUAGE = "zh-CN"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGE_COOKIE = "tm_lang"

_language: ContextVar[str] = ContextVar("tokenmall_web_language", default=DEFAULT_LANGUAGE)


def catalog_files() -> Iterator[Path]:
    return iter(sorted((LOCALE_DIR / "zh_CN" / "LC_MESSAGES").glob("*.po")))


def _load() -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    singular: dict[str, str] = {}
    plural: dict[str, tuple[str, ...]] = {}
    for path in catalog_files():
        with path.open("rb") as file:
            catalog = read_po(file, locale="zh_CN")
        for message in catalog:
            if not message.id or not message.string:
                continue
            if isinstance(message.id, str):
                singular[message.id] = str(message.string)
            else:
                plural[str(message.id[0])] = tuple(message.string)
    return singular, plural


_CHINESE, _CHINESE_PLURAL = _load()


def set_language(code: str | None) -> str:
    """Use this language for the rest of the request; returns the one chosen."""
    chosen = code if code in LANGUAGES else DEFAULT_LANGUAGE
    _language.set(chosen)
    return chosen


def language() -> str:
    return _language.get()


def translate(message: str) -> str:
    """The message in the request's language, unformatted (Jinja's i18n formats it)."""
    return _CHINESE.get(message, message) if _language.get() == "zh-CN" else message


def translate_plural(singular: str, plural: str, n: int) -> str:
    if _language.get() == "zh-CN" and singular in _CHINESE_PLURAL:
        return _CHINESE_PLURAL[singular][0]  # Chinese has one form
    return singular if n == 1 else plural


def gettext(message: str, **variables: Any) -> str:
    """For Python code: the message in the request's language, with %(name)s filled in."""
    text = translate(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: Any) -> str:
    return translate_plural(singular, plural, n) % {"num": n, **variables}


def N_(message: str) -> str:  # noqa: N802 (the gettext convention)
    """Marks a message for the catalog where it is defined; translated where it is shown."""
    return message


_ = gettext
