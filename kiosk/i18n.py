"""Translations for the kiosk: gettext catalogues (``kiosk/locale/<lang>/LC_MESSAGES/kiosk.po``).

The ``.po`` files are the source of truth; they are compiled in memory with Babel when
first used, so no generated ``.mo`` file can go stale. Message ids are the English
texts. ``Translator`` switches language at run time (the patient's choice on Home).

    tr = Translator("zh")
    tr("Check in")          -> "签到"
    tr.ngettext("{n} person ahead of you", "{n} people ahead of you", 1) -> "前面还有 1 人"
    tr.set_language("en")
"""
from __future__ import annotations

import gettext
import io
from functools import lru_cache
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "kiosk"
LANGUAGES = {"zh": "zh_CN", "en": "en"}


def N_(message: str) -> str:
    """Mark a string for extraction without translating it now (translated where shown)."""
    return message


@lru_cache(maxsize=None)
def catalogue(language: str) -> gettext.NullTranslations:
    """The compiled catalogue for ``language`` ("zh" or "en"); untranslated ids fall back to English."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    locale = LANGUAGES.get(language)
    if locale is None:
        raise ValueError(f"unsupported kiosk language {language!r}; choose from {', '.join(LANGUAGES)}")
    po_path = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    with po_path.open("rb") as fh:
        cat = read_po(fh, locale=locale)
    buf = io.BytesIO()
    write_mo(buf, cat)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


class Translator:
    """Callable translator with a switchable language."""

    def __init__(self, language: str = "zh") -> None:
        self.language = language
        self._cat = catalogue(language)

    def set_language(self, language: str) -> None:
        self._cat = catalogue(language)
        self.language = language

    def __call__(self, message: str, **fmt: object) -> str:
        text = self._cat.gettext(message)
        return text.format(**fmt) if fmt else text

    def ngettext(self, singular: str, plural: str, n: int, **fmt: object) -> str:
        """The form for ``n`` by the catalogue's Plural-Forms ("1 person", "2 people"; Chinese has one
        form), formatted with ``n`` and ``fmt``."""
        return self._cat.ngettext(singular, plural, n).format(n=n, **fmt)

    def pick(self, texts: dict[str, str] | None) -> str:
        """A per-language text from server data (``{"zh": ..., "en": ...}``)."""
        texts = texts or {}
        return texts.get(self.language) or texts.get("zh") or texts.get("en") or next(iter(texts.values()), "")
