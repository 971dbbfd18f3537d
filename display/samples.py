"""Protocol payloads as the queue server sends them, for the screenshot driver, tests and benches.

Rooms follow the demo hospital (site ``demo``): internal r1/r2 (prefix A), surgery r3 (B),
pediatrics r4 (C), emergency r9 (E).
"""
from __future__ import annotations

import itertools
from datetime import datetime, timezone

from protocol.announce import announcement_texts
from protocol.payloads import CallEvent, CallKind, CurrentCall, Notice, RoomState, RoomStatus
from protocol.privacy import mask_name

DEMO_ROOMS: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {
    "r1": ("internal", {"zh": "1 诊室", "en": "room 1", "yue": "1 診室"}, {"zh": "内科", "en": "Internal medicine"}),
    "r2": ("internal", {"zh": "2 诊室", "en": "room 2", "yue": "2 診室"}, {"zh": "内科", "en": "Internal medicine"}),
    "r3": ("surgery", {"zh": "3 诊室", "en": "room 3", "yue": "3 診室"}, {"zh": "外科", "en": "Surgery"}),
    "r4": ("pediatrics", {"zh": "4 诊室", "en": "room 4", "yue": "4 診室"}, {"zh": "儿科", "en": "Pediatrics"}),
    "r9": ("emergency", {"zh": "急诊 9 室", "en": "emergency room 9", "yue": "急症 9 室"}, {"zh": "急诊", "en": "Emergency"}),
}
DEMO_WHERE: dict[str, dict[str, str]] = {  # the demo hospital file's room locations (Location.texts())
    "r1": {"zh": "门诊楼 2 楼，出电梯左转第一间", "en": "Clinic building, floor 2, first door left from the lifts"},
    "r2": {"zh": "门诊楼 2 楼，出电梯左转第二间", "en": "Clinic building, floor 2, second door left from the lifts"},
    "r3": {"zh": "门诊楼 3 楼，出电梯右转", "en": "Clinic building, floor 3, right from the lifts"},
    "r4": {"zh": "门诊楼 1 楼，大厅东侧", "en": "Clinic building, floor 1, east side of the hall"},
    "r9": {"zh": "急诊楼 1 楼，沿地面红线走", "en": "Emergency building, floor 1, follow the red line on the floor"},
}
BOARD_DEPARTMENTS = [  # (zh, en, zh short, en short): a large outpatient floor, some names very long
    ("内科", "Internal medicine", "", ""), ("外科", "Surgery", "", ""), ("儿科", "Pediatrics", "", ""),
    ("妇产科", "Obstetrics and gynecology", "", "OB/GYN"), ("眼科", "Ophthalmology", "", "Eyes"),
    ("耳鼻咽喉头颈外科", "Otorhinolaryngology and head and neck surgery", "耳鼻喉科", "ENT"),
    ("口腔科", "Stomatology", "", "Dental"), ("皮肤科", "Dermatology", "", ""), ("神经内科", "Neurology", "", ""),
    ("心血管内科", "Cardiology", "", ""), ("消化内科", "Gastroenterology", "", "GI"),
    ("呼吸与危重症医学科", "Pulmonary and critical care medicine", "呼吸科", "Pulmonary"),
    ("内分泌科", "Endocrinology", "", ""), ("骨科", "Orthopedics", "", ""), ("泌尿外科", "Urology", "", ""),
    ("中医科", "Traditional Chinese medicine", "", "TCM"), ("康复医学科", "Rehabilitation medicine", "康复科", "Rehab"),
    ("急诊", "Emergency", "", ""), ("感染科", "Infectious diseases", "", "Infections"),
    ("肿瘤科", "Oncology", "", ""),
]
PREFIX = {"internal": "A", "surgery": "B", "pediatrics": "C", "emergency": "E"}
_ids = itertools.count(1)


def now() -> datetime:
    return datetime.now(timezone.utc)


def room_state(room: str, seq: int, ticket: str | None = None, *, site: str = "demo", name: str = "张三丰",
               status: RoomStatus | str = RoomStatus.OPEN, next_tickets: tuple[str, ...] = (), recall_count: int = 0,
               call_id: str | None = None, waiting: int | None = None, where: bool = True) -> RoomState:
    """A room snapshot with ``ticket`` being served (masked ``name``) and ``next_tickets`` waiting.

    ``where``: with the room's location (``DEMO_WHERE``); False gives a snapshot from a server before locations.
    """
    department, room_name, department_name = DEMO_ROOMS.get(room, ("internal", {"en": room}, {"en": "Clinic"}))
    current = None
    if ticket:
        current = CurrentCall(call_id=call_id or f"c{seq}-{room}", ticket=ticket, masked_name=mask_name(name),
                              called_at=now(), recall_count=recall_count)
    return RoomState(seq=seq, ts=now(), site=site, room=room, room_name=room_name,
                     room_where=DEMO_WHERE.get(room, {}) if where else {}, department=department,
                     department_name=department_name, status=RoomStatus(status), current=current,
                     next_tickets=tuple(next_tickets), waiting_count=len(next_tickets) if waiting is None else waiting)


def call_event(room: str, seq: int, ticket: str, *, site: str = "demo", kind: CallKind | str = CallKind.CALL,
               call_id: str | None = None, name: str = "张三丰", recall_count: int = 0, where: bool = True) -> CallEvent:
    """A call (or recall) event with the server's announcement texts.

    ``where``: with the room's location (``DEMO_WHERE``), shown and said; False gives a call as a server
    before locations sent it (no ``room_where``, the announcement without it).
    """
    department, room_name, _ = DEMO_ROOMS.get(room, ("internal", {"en": room}, {}))
    kind = CallKind(kind)
    room_where = DEMO_WHERE.get(room, {}) if where else {}
    return CallEvent(id=call_id or f"call-{next(_ids)}-{room}-{seq}", seq=seq, ts=now(), site=site, room=room,
                     room_name=room_name, room_where=room_where, department=department, ticket=ticket, kind=kind,
                     masked_name=mask_name(name), recall_count=recall_count,
                     announce=announcement_texts(ticket, room, room_name, recall=kind == CallKind.RECALL,
                                                 where=room_where))


def notice(zh: str = "李医生门诊推迟 20 分钟，请耐心等候", en: str = "Dr. Li's clinic is running 20 minutes late",
           rooms: tuple[str, ...] = ()) -> Notice:
    return Notice(ts=now(), text={"zh": zh, "en": en}, rooms=rooms)


def board(count: int = 20, *, site: str = "demo") -> tuple[list[RoomState], dict[str, dict[str, str]]]:
    """Snapshots of ``count`` rooms r1..rN (names from ``BOARD_DEPARTMENTS``) and their configured short names."""
    states, short = [], {}
    statuses = {4: RoomStatus.PAUSED, 9: RoomStatus.CLOSED}
    for i in range(1, count + 1):
        zh, en, zh_short, en_short = BOARD_DEPARTMENTS[(i - 1) % len(BOARD_DEPARTMENTS)]
        names = {"zh": f"{zh} {i} 诊室", "en": f"{en}, room {i}"}
        if zh_short or en_short:
            short[f"r{i}"] = {"zh": f"{zh_short or zh} {i} 诊室", "en": f"{en_short or en} {i}"}
        status = statuses.get(i, RoomStatus.OPEN)
        current = None
        if status == RoomStatus.OPEN:
            current = CurrentCall(call_id=f"b{i}", ticket=f"{'ABCDEFGHJK'[i % 10]}{i * 7 % 100:03d}",
                                  masked_name=mask_name(["张三丰", "John Smith", "欧阳娜娜", "李小龙"][i % 4]), called_at=now())
        # A long location (a large hospital's building names and directions), to show it still fits.
        where = {"zh": f"门诊医技综合楼 {i % 5 + 1} 楼 {'ABC'[i % 3]} 区，出电梯后沿蓝色指示线右转到底",
                 "en": f"Outpatient and diagnostics building, floor {i % 5 + 1}, wing {'ABC'[i % 3]}, "
                       "right from the lifts to the end of the blue line"}
        states.append(RoomState(seq=i, ts=now(), site=site, room=f"r{i}", room_name=names, room_where=where,
                                department=f"d{i}",
                                department_name={"zh": zh, "en": en}, status=status, current=current,
                                waiting_count=i % 6, timezone="Asia/Shanghai"))
    return states, short
