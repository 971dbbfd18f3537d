"""The words a call screen speaks for a call, per language.

The server puts these texts into every CallEvent so all screens say the same thing;
screens only choose which languages to speak and how often.
"""
from __future__ import annotations

from collections.abc import Mapping

SUPPORTED_LANGUAGES = ("zh", "en", "yue")


def _room_label(room_name: Mapping[str, str], lang: str, room: str) -> str:
    return room_name.get(lang) or room_name.get("en") or room


def announcement_texts(ticket: str, room: str, room_name: Mapping[str, str], *, recall: bool = False) -> dict[str, str]:
    """Return {"zh": "请 A012 号到 3 诊室就诊", "en": "Number A012, please go to room 3", "yue": ...}.

    ``room_name`` holds the room's spoken name per language (for example {"zh": "3 诊室", "en": "room 3"});
    a language without its own name falls back to English, then to the room id.
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
    return texts
