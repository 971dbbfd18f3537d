"""Translations of the staff web pages (console, desk, fleet): Babel catalogues, zh_CN by default.

The catalogues are ``queueserver/locale/<locale>/LC_MESSAGES/pages.po``, read with Babel as
the kiosk's are (``kiosk.i18n``); message ids are the English texts. The server hands them to
the pages as one small script (``/pages/i18n.js``) that defines:

- ``T(msgid, {name: value})``: the text in the chosen language, ``{name}`` filled in;
- ``cfPick({zh, en})``: a per-language text from server data;
- ``cfSetLang("zh" | "en")``: switch, remembered in ``localStorage`` (``clinicflow-staff-lang``);
  ``#lang=en`` in the address does the same once;
- on load and on every switch, every element with ``data-i18n="msgid"`` gets its text, and a
  ``cf-lang`` event tells the page to render its live parts again.
"""
from __future__ import annotations

import html
import json
import re
from functools import lru_cache
from pathlib import Path

LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "pages"
LANGUAGES = {"zh": "zh_CN", "en": "en"}
DEFAULT = "zh"


@lru_cache(maxsize=None)
def messages(language: str) -> dict[str, str]:
    """msgid -> translation for ``language`` (untranslated ids are left out: the page shows the English id)."""
    from babel.messages.pofile import read_po

    locale = LANGUAGES[language]
    with (LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as fh:
        cat = read_po(fh, locale=locale)
    return {m.id: m.string for m in cat if isinstance(m.id, str) and m.id and isinstance(m.string, str) and m.string}


_RUNTIME = r"""
(function () {
  const KEY = "clinicflow-staff-lang";
  const frag = new URLSearchParams(location.hash.slice(1));
  if (frag.get("lang") && CATALOGUES[frag.get("lang")]) localStorage.setItem(KEY, frag.get("lang"));
  let lang = CATALOGUES[localStorage.getItem(KEY)] ? localStorage.getItem(KEY) : DEFAULT;
  function T(msg, vars) {
    let text = (CATALOGUES[lang] || {})[msg] || msg;
    if (vars) text = text.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
    return text;
  }
  function cfPick(texts) {
    texts = texts || {};
    return texts[lang] || texts.zh || texts.en || Object.values(texts)[0] || "";
  }
  function apply(root) {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    root.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = T(el.dataset.i18n); });
    root.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = T(el.dataset.i18nPlaceholder); });
    root.querySelectorAll("[data-cf-lang-toggle]").forEach((el) => {
      el.textContent = lang === "zh" ? "English" : "中文";
      el.onclick = () => cfSetLang(lang === "zh" ? "en" : "zh");
    });
    if (document.body && document.body.dataset.i18nTitle) document.title = T(document.body.dataset.i18nTitle);
  }
  function cfSetLang(next) {
    if (!CATALOGUES[next]) return;
    lang = next; localStorage.setItem(KEY, next); apply(document);
    document.dispatchEvent(new Event("cf-lang"));
  }
  window.T = T; window.N_ = (msg) => msg; window.cfPick = cfPick; window.cfSetLang = cfSetLang; window.cfLang = () => lang;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => apply(document));
  else apply(document);
})();
"""


_PATTERNS = (re.compile(r'data-i18n(?:-placeholder|-title)?="([^"]+)"'), re.compile(r'\b(?:T|N_)\("((?:[^"\\]|\\.)+)"'))
PAGE_FILES = (Path(__file__).with_name("pages") / "console.html", Path(__file__).with_name("pages") / "desk.html",
              Path(__file__).with_name("pages") / "staff.js", Path(__file__).parent / "fleet" / "fleet.html")


def extract(paths: tuple[Path, ...] = PAGE_FILES) -> set[str]:
    """The message ids the pages use literally (``data-i18n="..."``, ``T("...")``, ``N_("...")``)."""
    found: set[str] = set()
    for path in paths:
        text = path.read_text(encoding="utf-8")
        for pattern in _PATTERNS:
            found.update(html.unescape(m) for m in pattern.findall(text))
    return found


def catalogue_script() -> str:
    """The ``/pages/i18n.js`` script: both catalogues and the small runtime above."""
    catalogues = {lang: messages(lang) for lang in LANGUAGES}
    return (f"const CATALOGUES = {json.dumps(catalogues, ensure_ascii=False)};\n"
            f"const DEFAULT = {json.dumps(DEFAULT)};\n{_RUNTIME}")
