"""Words a call screen shows, per language (Mandarin, English, Cantonese)."""
from __future__ import annotations

LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "now_serving": "当前就诊", "next": "候诊", "none": "—", "recent": "最近呼叫", "recall": "再次呼叫",
        "open": "", "paused": "暂停叫号", "closed": "已停诊", "waiting": "等候 {n} 人",
        "offline": "网络离线，最后更新 {hhmm}", "server_offline": "叫号服务器离线",
        "speech_fault": "语音故障", "nobody_waiting": "暂无候诊", "number": "{ticket} 号", "room": "诊室", "board": "候诊叫号",
        "go_to": "请到 {room}",
    },
    "en": {
        "now_serving": "Now serving", "next": "Next", "none": "—", "recent": "Latest calls", "recall": "Recall",
        "open": "", "paused": "Paused", "closed": "Closed", "waiting": "{n} waiting",
        "offline": "offline, last update {hhmm}", "server_offline": "queue server offline",
        "speech_fault": "speech fault", "nobody_waiting": "No one waiting", "number": "{ticket}", "room": "Room", "board": "Waiting room",
        "go_to": "Please go to {room}",
    },
    "yue": {
        "now_serving": "現正診症", "next": "候診", "none": "—", "recent": "最近叫號", "recall": "再次叫號",
        "open": "", "paused": "暫停叫號", "closed": "已停診", "waiting": "等候 {n} 人",
        "offline": "網絡離線，最後更新 {hhmm}", "server_offline": "叫號伺服器離線",
        "speech_fault": "語音故障", "nobody_waiting": "暫無候診", "number": "{ticket} 號", "room": "診室", "board": "候診叫號",
        "go_to": "請到 {room}",
    },
}


def label(language: str, key: str, **values: object) -> str:
    """The screen text ``key`` in ``language`` (English when the language is unknown)."""
    text = LABELS.get(language, LABELS["en"]).get(key) or LABELS["en"][key]
    return text.format(**values) if values else text


def pick(texts: dict[str, str], language: str, fallback: str = "") -> str:
    """A per-language text: the language, then Mandarin for Cantonese, then English, then ``fallback``."""
    if language == "yue" and not texts.get("yue"):
        language = "zh"
    return texts.get(language) or texts.get("en") or fallback
