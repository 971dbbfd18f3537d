"""The dashboard's words in English and Simplified Chinese (plots, tables, CSV headers, the PDF)."""
from __future__ import annotations

LANGUAGES = ("en", "zh")

WORDS: dict[str, dict[str, str]] = {
    "arrivals": {"en": "Arrivals", "zh": "到达人数"},
    "appointments": {"en": "Appointments", "zh": "预约"},
    "walk_ins": {"en": "Kiosk registrations", "zh": "自助挂号"},
    "desk": {"en": "Desk registrations", "zh": "窗口挂号"},
    "called": {"en": "Called", "zh": "已叫号"},
    "served": {"en": "Served", "zh": "已就诊"},
    "cancelled": {"en": "Cancelled", "zh": "已取消"},
    "median_wait_min": {"en": "Median wait (min)", "zh": "等候中位数（分钟）"},
    "p90_wait_min": {"en": "p90 wait (min)", "zh": "90%等候（分钟）"},
    "avg_wait_min": {"en": "Mean wait (min)", "zh": "平均等候（分钟）"},
    "long_waits": {"en": "Waits over {n} min", "zh": "等候超过{n}分钟"},
    "avg_service_min": {"en": "Service time (min)", "zh": "诊疗时长（分钟）"},
    "no_shows": {"en": "No-shows", "zh": "过号未到"},
    "no_show_rate": {"en": "No-show rate", "zh": "过号率"},
    "recalls": {"en": "Recalls", "zh": "重呼次数"},
    "survey_count": {"en": "Surveys", "zh": "评价数"},
    "survey_avg": {"en": "Satisfaction (1-5)", "zh": "满意度（1-5）"},
    "help_requests": {"en": "Help requests", "zh": "求助"},
    "red_flags": {"en": "Red flags", "zh": "危急症状"},
    "department": {"en": "Department", "zh": "科室"},
    "room": {"en": "Room", "zh": "诊室"},
    "hour": {"en": "Hour", "zh": "时段"},
    "day": {"en": "Day", "zh": "日期"},
    "week": {"en": "Week of", "zh": "周起始"},
    "kiosk": {"en": "Kiosk", "zh": "自助机"},
    "kind": {"en": "Transaction", "zh": "业务"},
    "transactions": {"en": "Transactions", "zh": "交易数"},
    "done": {"en": "Completed", "zh": "完成"},
    "abandoned": {"en": "Abandoned", "zh": "中途放弃"},
    "abandon_rate": {"en": "Abandon rate", "zh": "放弃率"},
    "avg_seconds": {"en": "Time per transaction (s)", "zh": "每笔用时（秒）"},
    "screen": {"en": "Screen left", "zh": "放弃时页面"},
    "sessions": {"en": "Sessions", "zh": "次数"},
    "check_in": {"en": "Check-in", "zh": "签到"},
    "registration": {"en": "Registration", "zh": "挂号"},
    "payment": {"en": "Payment", "zh": "缴费"},
    "report": {"en": "Report printing", "zh": "报告打印"},
    "scope": {"en": "Scope", "zh": "范围"},
    "before": {"en": "Before", "zh": "调整前"},
    "after": {"en": "After", "zh": "调整后"},
    "change": {"en": "Change", "zh": "变化"},
    "total": {"en": "Whole site", "zh": "全院"},
    "arrivals_per_day": {"en": "Arrivals per day", "zh": "日均到达"},
    "not_recorded": {"en": "not recorded", "zh": "未记录"},
    # plot titles
    "plot_departments": {"en": "Waits by department", "zh": "各科室等候时间"},
    "plot_hours": {"en": "Arrivals and waits by hour of day", "zh": "各时段到达人数与等候时间"},
    "plot_days": {"en": "Waits day by day", "zh": "每日等候时间趋势"},
    "plot_weeks": {"en": "Waits week by week", "zh": "每周等候时间趋势"},
    "plot_rooms": {"en": "Waits by room", "zh": "各诊室等候时间"},
    "plot_kiosk": {"en": "Kiosk transactions by hour", "zh": "各时段自助机交易数"},
    "plot_abandoned": {"en": "Where patients gave up at the kiosk", "zh": "自助机中途放弃的页面"},
    "plot_compare": {"en": "Before and after", "zh": "调整前后对比"},
    "plot_survey": {"en": "Satisfaction by department", "zh": "各科室满意度"},
    "minutes": {"en": "minutes", "zh": "分钟"},
    "report_title": {"en": "Weekly report", "zh": "周报"},
    "key_figures": {"en": "Key figures", "zh": "主要指标"},
    "this_week": {"en": "This week", "zh": "本周"},
    "last_week": {"en": "Previous week", "zh": "上周"},
    "kiosk_advice": {"en": "{visits} visits a day, {kiosks} kiosks: {per} per kiosk (rule of thumb {rule}); "
                             "{needed} kiosks would keep each under {rule}.",
                     "zh": "日均{visits}人次，{kiosks}台自助机：每台{per}人次（经验值{rule}）；"
                           "需{needed}台可使每台不超过{rule}人次。"},
    "no_data": {"en": "No data in this range", "zh": "该时段无数据"},
    "generated": {"en": "Generated", "zh": "生成时间"},
}


# The kiosk's screens, as it reports where a session ended (kiosk/viewmodels/kiosk.py: the flow's name, and for
# payment the payment's state after an underscore), and the step names kiosks of other makes send.
SCREENS: dict[str, dict[str, str]] = {
    "home": {"en": "Home", "zh": "首页"},
    "identify": {"en": "Identify (card or ID)", "zh": "身份识别"},
    "access": {"en": "Large text / voice offer", "zh": "大字/语音提示"},
    "checkin": {"en": "Check-in", "zh": "签到"},
    "appointments": {"en": "Appointment list", "zh": "预约列表"},
    "register": {"en": "Registration", "zh": "挂号"},
    "booking": {"en": "Booking", "zh": "预约挂号"},
    "reports": {"en": "Report printing", "zh": "报告打印"},
    "ticket": {"en": "Ticket", "zh": "排队凭条"},
    "help": {"en": "Help", "zh": "求助"},
    "department": {"en": "Choose department", "zh": "选择科室"},
    "pay_method": {"en": "Choose payment method", "zh": "选择支付方式"},
    "payment": {"en": "Payment", "zh": "缴费"},
}
PAYMENT_STEPS: dict[str, dict[str, str]] = {
    "loading": {"en": "loading bills", "zh": "读取账单"},
    "bills": {"en": "bills and method", "zh": "账单与支付方式"},
    "nothing": {"en": "nothing to pay", "zh": "无待缴费用"},
    "insert_card": {"en": "insert card", "zh": "插卡"},
    "scan_code": {"en": "scan payment code", "zh": "扫付款码"},
    "terminal": {"en": "card terminal", "zh": "刷卡终端"},
    "qr": {"en": "QR code shown", "zh": "出示二维码"},
    "confirm_later": {"en": "waiting for confirmation", "zh": "等待确认"},
    "failed": {"en": "payment failed", "zh": "支付失败"},
    "paid": {"en": "paid", "zh": "已支付"},
}


def screen_name(screen: str, lang: str) -> str:
    """A kiosk screen id (``pay_method``, ``payment_scan_code``) as a manager reads it; an unknown id as it is."""
    lang = lang if lang in LANGUAGES else "en"
    if screen in SCREENS:
        return SCREENS[screen][lang]
    kind, _, step = screen.partition("_")
    if kind == "payment" and step in PAYMENT_STEPS:
        return f"{SCREENS['payment'][lang]}{'：' if lang == 'zh' else ': '}{PAYMENT_STEPS[step][lang]}"
    return screen or "-"


def word(key: str, lang: str, **fmt: object) -> str:
    """The label of ``key`` in ``lang`` (English if the key has no such language; the key if unknown)."""
    entry = WORDS.get(key)
    text = entry.get(lang, entry["en"]) if entry else key
    return text.format(**fmt) if fmt else text
