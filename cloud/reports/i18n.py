"""Words and number formats of the reports: Vietnamese by default, English on request.

Vietnamese writes ``1.234,5`` (dot for thousands, comma for decimals); English ``1,234.5``.
Renderers format only for display; the raw numbers stay in data attributes, the JSON and
the spreadsheet cells.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Literal

Lang = Literal["vi", "en"]

TEXT: dict[str, dict[Lang, str]] = {
    "title": {"vi": "Báo cáo sử dụng Wi-Fi công cộng", "en": "Public Wi-Fi usage report"},
    "subtitle": {
        "vi": "Điểm Wi-Fi tại nhà văn hóa thôn",
        "en": "Wi-Fi hotspots in village cultural houses",
    },
    "period": {"vi": "Kỳ báo cáo", "en": "Period"},
    "previous": {"vi": "So với kỳ trước", "en": "Compared with"},
    "scope": {"vi": "Phạm vi", "en": "Scope"},
    "all_communes": {"vi": "Tất cả các xã", "en": "All communes"},
    "generated": {"vi": "Lập lúc", "en": "Generated"},
    "measured_until": {"vi": "Số liệu đến", "en": "Data until"},
    "summary": {"vi": "Tổng hợp", "en": "Summary"},
    "by_commune": {"vi": "Theo xã", "en": "By commune"},
    "by_site": {"vi": "Theo thôn", "en": "By village"},
    "by_ap": {"vi": "Theo điểm phát Wi-Fi", "en": "By access point"},
    "clients_chart": {"vi": "Số người dùng đồng thời theo thời gian", "en": "Concurrent clients over time"},
    "village_chart": {"vi": "Số giờ sử dụng theo thôn", "en": "Client-hours by village"},
    "heatmap": {"vi": "Người dùng trung bình theo thứ và giờ", "en": "Average clients by weekday and hour"},
    "footnotes": {"vi": "Ghi chú cách tính", "en": "How the figures are computed"},
    "level_all": {"vi": "Toàn bộ", "en": "All"},
    "level_commune": {"vi": "Xã", "en": "Commune"},
    "level_site": {"vi": "Thôn", "en": "Village"},
    "level_ap": {"vi": "Điểm phát", "en": "Access point"},
    "name": {"vi": "Tên", "en": "Name"},
    "commune": {"vi": "Xã", "en": "Commune"},
    "aps": {"vi": "Số điểm phát", "en": "APs"},
    "peak_clients": {"vi": "Người dùng cao nhất", "en": "Peak clients"},
    "peak_at": {"vi": "Thời điểm cao nhất", "en": "Peak at"},
    "avg_clients_open": {"vi": "TB người dùng giờ mở cửa", "en": "Avg clients (opening hours)"},
    "client_hours": {"vi": "Giờ sử dụng (người-giờ)", "en": "Client-hours"},
    "traffic_in_gb": {"vi": "Lưu lượng vào (GB)", "en": "Traffic in (GB)"},
    "traffic_out_gb": {"vi": "Lưu lượng ra (GB)", "en": "Traffic out (GB)"},
    "availability_pct": {"vi": "Tỷ lệ hoạt động (%)", "en": "Availability (%)"},
    "outages": {"vi": "Số lần mất kết nối", "en": "Outages"},
    "down_h": {"vi": "Thời gian mất kết nối (giờ)", "en": "Down time (h)"},
    "unknown_h": {"vi": "Không xác định (giờ)", "en": "Unknown (h)"},
    "busiest_hours": {"vi": "Giờ đông nhất", "en": "Busiest hours"},
    "change_client_hours": {"vi": "Thay đổi giờ sử dụng (%)", "en": "Change in client-hours (%)"},
    "change_traffic": {"vi": "Thay đổi lưu lượng vào (%)", "en": "Change in traffic in (%)"},
    "change_availability": {"vi": "Thay đổi tỷ lệ hoạt động (điểm %)", "en": "Change in availability (pts)"},
    "no_data": {"vi": "không có số liệu", "en": "no data"},
    "hour": {"vi": "Giờ", "en": "Hour"},
    "weekdays": {"vi": "T2,T3,T4,T5,T6,T7,CN", "en": "Mon,Tue,Wed,Thu,Fri,Sat,Sun"},
    "all": {"vi": "Tất cả", "en": "All"},
    "reports": {"vi": "Danh sách báo cáo", "en": "Reports"},
    "home": {"vi": "‹ Trang chủ", "en": "‹ Home"},
    "help": {"vi": "Hướng dẫn", "en": "Help"},
    "from": {"vi": "Từ ngày", "en": "From"},
    "to": {"vi": "Đến ngày", "en": "To"},
    "show": {"vi": "Xem báo cáo", "en": "Show report"},
    "download": {"vi": "Tải về", "en": "Download"},
    "print": {"vi": "In / Lưu PDF", "en": "Print / Save as PDF"},
    "level": {"vi": "Cấp", "en": "Level"},
    "id": {"vi": "Mã", "en": "Id"},
    "site": {"vi": "Thôn", "en": "Village"},
}

FOOTNOTES: dict[Lang, list[str]] = {
    "vi": [
        "Thời gian theo giờ Việt Nam ({tz}); kỳ báo cáo từ 00:00 ngày đầu đến 24:00 ngày cuối.",
        "Người dùng: trường clients của điểm phát (ap), lấy trung bình trong từng khoảng {grain} phút. "
        "Khoảng không có số liệu không được tính (không nội suy qua khoảng trống); khoảng có ít nhất "
        "một số liệu được tính theo giá trị trung bình của nó.",
        "Người dùng cao nhất: giá trị khoảng {grain} phút lớn nhất; với thôn, xã, toàn bộ là tổng các điểm "
        "phát trong cùng khoảng. Thời điểm là đầu khoảng đó.",
        "Trung bình giờ mở cửa: trung bình các khoảng bắt đầu từ {open0} đến trước {open1}; với nhóm là tổng "
        "trung bình của các điểm phát.",
        "Giờ sử dụng (người-giờ) = tổng (người dùng trung bình × độ dài khoảng) trên các khoảng có số liệu.",
        "Lưu lượng: hiệu các bộ đếm byte của giao diện mạng (giá trị cuối mỗi khoảng); xử lý tràn bộ đếm "
        "32 bit, bộ đếm 64 bit và khởi động lại (uptime giảm: đếm lại từ 0). Không tính qua khoảng trống "
        "dài hơn {gap} phút. 1 GB = 10⁹ byte.",
        "Tỷ lệ hoạt động = thời gian hoạt động / (thời gian đo − thời gian không xác định), theo bản ghi "
        "sự cố (outage). Không xác định: bộ thu thập cạnh điểm phát hoặc đường truyền của xã mất kết nối, "
        "nên không biết điểm phát có hoạt động hay không. Lỗi chỉ SNMP (điểm phát vẫn trả lời ping) không "
        "tính là mất kết nối. Một sự cố kéo dài từ ngay sau tin nhắn cuối cùng nhận được đến tin nhắn đầu "
        "tiên sau đó (không tính thời gian phát hiện và thời gian xác nhận khôi phục).",
        "So với kỳ trước có cùng số ngày ({prev0} – {prev1}); để trống khi kỳ trước không có số liệu.",
    ],
    "en": [
        "Times are Vietnam time ({tz}); the period runs from 00:00 of its first day to 24:00 of its last.",
        "Clients: field clients of measurement ap, averaged per {grain}-minute bucket. Buckets without "
        "readings are left out (nothing is interpolated across a gap); a bucket with at least one "
        "reading counts at its mean.",
        "Peak clients: the largest {grain}-minute bucket value; for a village, commune or all, the sum over "
        "the APs in the same bucket. Its time is the bucket's start.",
        "Average during opening hours: mean of the buckets starting from {open0} to before {open1}; for a "
        "group, the sum of its APs' averages.",
        "Client-hours = sum of (average clients x bucket length) over the buckets with readings.",
        "Traffic: differences of the interfaces' octet counters (last reading per bucket), with 32-bit "
        "wraps, 64-bit counters and reboots (uptime went down: counted from zero) handled. Nothing is "
        "counted across a gap longer than {gap} minutes. 1 GB = 10^9 bytes.",
        "Availability = up time / (measured time - unknown time), from the outage records. Unknown: the "
        "AP's board or the commune's uplink was offline, so whether the AP worked cannot be known. An "
        "SNMP-only failure (the AP still answers ping) is not an outage. An outage runs from just after "
        "the last message heard to the first message after it (the time taken to detect it and to "
        "confirm the recovery is not counted).",
        "Compared with the previous period of the same length ({prev0} - {prev1}); blank when that period "
        "has no data.",
    ],
}


def t(key: str, lang: Lang) -> str:
    return TEXT[key][lang]


def number(v: float | None, lang: Lang, digits: int = 1) -> str:
    """``1.234,5`` (vi) or ``1,234.5`` (en); an en dash for no value."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    s = f"{v:,.{digits}f}"
    if lang == "vi":
        s = s.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return s


def signed(v: float | None, lang: Lang, digits: int = 1) -> str:
    if v is None:
        return "–"
    return ("+" if v > 0 else "") + number(v, lang, digits)


def day(d: date, lang: Lang) -> str:
    return d.strftime("%d/%m/%Y") if lang == "vi" else d.isoformat()


def moment(dt: datetime | None, lang: Lang) -> str:
    if dt is None:
        return "–"
    return dt.strftime("%H:%M %d/%m/%Y") if lang == "vi" else dt.strftime("%Y-%m-%d %H:%M")


def hours(hs: list[int]) -> str:
    return ", ".join(f"{h:02d}h" for h in hs) or "–"


def footnotes(lang: Lang, **kw: str) -> list[str]:
    return [f.format(**kw) for f in FOOTNOTES[lang]]
