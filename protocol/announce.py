"""The words a call screen speaks for a call, per language.

The server puts these texts into every CallEvent so all screens say the same thing;
screens only choose which languages to speak and how often.
"""
from __future__ import annotations

from collections.abc import Mapping

SUPPORTED_LANGUAGES = ("zh", "en", "yue")
MAX_ANNOUNCEMENT = 200
"""Longest text a CallEvent may carry per language (``protocol.payloads.ShortText``)."""


def _room_label(room_name: Mapping[str, str], lang: str, room: str) -> str:
    return room_name.get(lang) or room_name.get("en") or room


def announcement_texts(ticket: str, room: str, room_name: Mapping[str, str], *, recall: bool = False,
                       where: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return {"zh": "请 A012 号到 3 诊室就诊", "en": "Number A012, please go to room 3", "yue": ...}.

    ``room_name`` holds the room's spoken name per language (for example {"zh": "3 诊室", "en": "room 3"});
    a language without its own name falls back to English, then to the room id.

    ``where`` (the room's location per language, ``CallEvent.room_where``) is said after the room:
    "请 A012 号到 1 诊室就诊，门诊楼 2 楼，出电梯左转第一间" / "Number A012, please go to room 1, Outpatient
    building, floor 2, first door left from the lifts". Cantonese uses the Chinese text; a language with
    no location text, or whose sentence would pass ``MAX_ANNOUNCEMENT``, is said without it (the screen
    still shows it).
    """
    zh_room = _room_label(room_name, "zh", room)
    en_room = _room_label(room_name, "en", room)
    yue_room = room_name.get("yue") or zh_room
    texts = {
        "zh": f"请 {ticket} 号到 {zh_room}就诊",
        "en": f"Number {ticket}, please go to {en_room}",
        "yue": f"请 {ticket} 号到 {yue_room}睇症",
    }
    if recall:
        texts = {
            "zh": "再次呼叫，" + texts["zh"],
            "en": "Calling again. " + texts["en"],
            "yue": "再次呼叫，" + texts["yue"],
        }
    for lang, text in texts.items():
        place = (where or {}).get(lang) or ((where or {}).get("zh") if lang == "yue" else "")
        located = text + ("，" if lang in ("zh", "yue") else ", ") + place if place else text
        if len(located) <= MAX_ANNOUNCEMENT:
            texts[lang] = located
    return texts
