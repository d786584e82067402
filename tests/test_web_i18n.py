"""Every string the pages show is in a message catalog, with its Chinese; no catalog entry is
left that nothing uses; and the Chinese is what a page shows by default."""

from tokenmall.web import catalog, i18n


def test_every_marked_string_has_its_chinese_and_none_is_unused() -> None:
    assert catalog.problems() == []


def test_chinese_is_the_default_and_english_the_switch() -> None:
    assert i18n.set_language(None) == "zh-CN"
    assert i18n.gettext("Overview") == "数据概览"
    assert i18n.set_language("en") == "en"
    assert i18n.gettext("Overview") == "Overview"
    assert i18n.set_language("fr") == "zh-CN"  # an unknown choice falls back to Chinese


def test_the_extraction_sees_templates_and_python() -> None:
    found = catalog.extracted()
    assert found["Overview"] == "console"  # a template of the console
    assert found["Your role may not do this."] == "common"  # web/pages.py
