"""What a technician reads: one notice rendered in Vietnamese (default) or English.

Times are local (Asia/Ho_Chi_Minh), names come from the inventory (``Tu Tra``, not
``tu-tra``), and a commune alert says how many sites went silent, because that is what
tells a technician to call the ISP or the power company instead of driving to a village.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from cloud.inventory import Inventory

Language = Literal["vi", "en"]
LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


@dataclass(frozen=True, slots=True)
class Notice:
    """One message about one alert: it opened, it is still unacknowledged, or it resolved; or
    (``kind`` ``event``) one police event a notification rule announces."""

    kind: Literal["open", "reminder", "resolve", "event"]
    alert_id: int  # 0: about an alert channel itself, not an alert
    key: str
    scope: str  # node | commune | device | channel
    subject: str
    commune: str
    cause: str
    severity: str
    started_at: float
    at: float
    duration_s: float = 0.0
    flaps: int = 0
    down: int = 0
    total: int = 0
    problem: str = ""
    members: tuple[str, ...] = ()  # commune alerts: the nodes down
    detail: str = ""  # device alerts: the figures behind the problem
    #: resolve: when the outage ended (its first message after), before the recovery check at ``at``
    ended_at: float | None = None
    #: device alerts: the picture that shows the problem (a tampered camera's), SHA-256
    snapshot_sha256: str = ""
    #: event notices: the event's id (its page /events/<id>), the rule, what it saw and where
    event_id: int = 0
    rule: str = ""
    label: str = ""  # class or group; "" for a rule without require_label on an unlabelled event
    confidence: float = 0.0
    site: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def channel_notice(
    kind: Literal["open", "resolve"], channel: str, problem: str, detail: str, since: float, at: float
) -> Notice:
    """A notice to the other channels that this one cannot send (or can again)."""
    return Notice(
        kind,
        0,
        f"channel:{channel}",
        "channel",
        channel,
        "",
        "channel",
        "critical",
        since,
        at,
        duration_s=max(0.0, at - since) if kind == "resolve" else 0.0,
        problem=problem,
        detail=detail,
    )


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    text: str
    #: The alert's page in the web UI (``web.public_url``/alerts/<id>); empty without one.
    url: str = ""


_KIND = {
    "vi": {"camera": "Camera", "ap": "Điểm phát Wi-Fi", "": "Thiết bị"},
    "en": {"camera": "Camera", "ap": "Wi-Fi access point", "": "Device"},
}
_CHANNEL = {"vi": "Kênh cảnh báo", "en": "Alert channel"}
_HEAD = {
    "vi": {"open": "🔴 CẢNH BÁO", "reminder": "⏰ NHẮC LẠI", "resolve": "✅ ĐÃ KHÔI PHỤC"},
    "en": {"open": "🔴 ALERT", "reminder": "⏰ REMINDER", "resolve": "✅ RESOLVED"},
}
_CAUSE = {
    "vi": {
        "will": "mất kết nối với máy chủ",
        "silent": "không còn gửi tín hiệu (mất điện, đứt cáp hoặc treo máy)",
        "shutdown": "phần mềm trên bo mạch đã dừng",
        "flapping": "kết nối chập chờn: {flaps} lần mất",
        "device": "sự cố thiết bị: {problem}",
        "uplink": "mất đường truyền hoặc mất điện tại {commune}: {down} trên {total} điểm mất tín hiệu",
        "channel": "không gửi được tin: {problem}",
    },
    "en": {
        "will": "lost its connection to the server",
        "silent": "stopped sending (power cut, cut cable or frozen board)",
        "shutdown": "its agent was stopped",
        "flapping": "connection flapping: {flaps} outages",
        "device": "device problem: {problem}",
        "uplink": "uplink or power outage in {commune}: {down} of {total} sites silent",
        "channel": "cannot send: {problem}",
    },
}
_PROBLEM = {
    "vi": {
        "stream_down": "mất luồng hình",
        "frozen": "hình bị đứng",
        "tampering": "camera bị che, tối, mờ hoặc bị xoay hướng",
        "fps_low": "tốc độ khung hình giảm mạnh",
        "unreachable": "không phản hồi (cả SNMP lẫn ping)",
        "snmp_unreachable": "không trả lời SNMP (vẫn ping được)",
        "clock_skew": "lệch đồng hồ",
        "outbox_backlog": "hàng đợi gửi bị dồn",
        "flooding": "gửi dữ liệu dồn dập bất thường (bị giới hạn tốc độ)",
        "token_refused": "Zalo từ chối mã làm mới (refresh token)",
        "token_unrenewed": "không gia hạn được mã truy cập Zalo và mã cũ đã hết hạn",
    },
    "en": {
        "stream_down": "stream down",
        "frozen": "frozen picture",
        "tampering": "camera covered, dark, blurred or turned away",
        "fps_low": "frame rate collapsed",
        "unreachable": "unreachable (no SNMP, no ping)",
        "snmp_unreachable": "not answering SNMP (still answers ping)",
        "clock_skew": "clock skew",
        "outbox_backlog": "outbox backlog",
        "flooding": "flooding the cloud (rate limited)",
        "token_refused": "Zalo refused the refresh token",
        "token_unrenewed": "cannot renew the Zalo access token and the old one has expired",
    },
}
#: What a tampered camera shows (the board's ``tampering`` kind, the alert's detail).
_TAMPER = {
    "vi": {
        "covered": "bị che",
        "dark": "quá tối, đèn hồng ngoại không sáng",
        "blurred": "bị mờ",
        "moved": "bị xoay sang hướng khác",
    },
    "en": {
        "covered": "covered",
        "dark": "too dark, infrared lamp off",
        "blurred": "blurred",
        "moved": "turned away",
    },
}
_PICTURE = {"vi": "Ảnh lúc phát hiện: {url}", "en": "Picture when detected: {url}"}
#: What a technician does about a channel's problem (the cloud's log says it in full).
_FIX = {
    "vi": {
        "token_refused": "Cần làm: cấp quyền lại cho ứng dụng Zalo của OA (trang Zalo for Developers) "
        "rồi ghi refresh token mới vào cấu hình của kênh (refresh_token_file).",
        "token_unrenewed": "Cần làm: kiểm tra đường truyền từ máy chủ cloud tới dịch vụ OAuth của Zalo; "
        "xem nhật ký của cloud.",
    },
    "en": {
        "token_refused": "To do: re-authorise the OA's Zalo app (Zalo for Developers) and put the new "
        "refresh token in the channel's configuration (refresh_token_file).",
        "token_unrenewed": "To do: check the cloud server's connection to Zalo's OAuth service; see the "
        "cloud's log.",
    },
}
_WORDS = {
    "vi": {
        "since": "từ {t}",
        "after": "sau {d}",
        "lasting": "đã kéo dài {d}, chưa ai xác nhận",
        "flaps": "{n} lần chập chờn",
        "at": "tại",
    },
    "en": {
        "since": "since {t}",
        "after": "after {d}",
        "lasting": "ongoing for {d}, not acknowledged",
        "flaps": "{n} flaps",
        "at": "at",
    },
}


def duration_text(seconds: float, lang: Language) -> str:
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    units = ("giờ", "phút", "giây") if lang == "vi" else ("h", "min", "s")
    parts = [f"{v} {u}" for v, u in zip((h, m, sec), units, strict=True) if v]
    return " ".join(parts) if parts else f"0 {units[2]}"


def _local(ts: float) -> str:
    return datetime.fromtimestamp(ts, LOCAL_TZ).strftime("%H:%M:%S %d/%m/%Y")


def _place(notice: Notice, inventory: Inventory, lang: Language) -> tuple[str, str]:
    """(what, where): e.g. ("Camera dr-cam-01", "Nhà văn hóa thôn 1, Đạ Ròn")."""
    if notice.scope == "channel":
        return f"{_CHANNEL[lang]} {notice.subject}", ""
    commune = next((c for c in inventory.communes if c.id == notice.commune), None)
    commune_name = (commune.name if commune is not None else "") or notice.commune
    if notice.scope == "commune":
        return commune_name, ""
    device = inventory.device(notice.subject)
    node = inventory.node(notice.subject)
    site_id = device.site if device is not None else (node.site if node is not None else "")
    site = next((s for s in inventory.sites if s.id == site_id), None)
    kind = device.kind if device is not None else inventory.node_kind(notice.subject)
    what = f"{_KIND[lang].get(kind, _KIND[lang][''])} {notice.subject}"
    where = ", ".join(x for x in ((site.name if site is not None else ""), commune_name) if x)
    return what, where


def alert_url(public_url: str, alert_id: int) -> str:
    """Where a technician opens the alert: its page in the web UI ('' without a public URL)."""
    return f"{public_url.rstrip('/')}/alerts/{alert_id}" if public_url and alert_id else ""


def picture_url(public_url: str, alert_id: int) -> str:
    """The picture that shows an alert's problem (technicians only, like the alert's page)."""
    return f"{public_url.rstrip('/')}/api/v1/alerts/{alert_id}/snapshot"


def summary(notice: Notice, inventory: Inventory, lang: Language = "vi") -> tuple[str, str]:
    """(what happened, where): the title's words without its head, for lists of alerts."""
    what, where = _place(notice, inventory, lang)
    problem = _PROBLEM[lang].get(notice.problem, notice.problem)
    if notice.detail:
        detail = notice.detail
        if notice.problem == "tampering":
            detail = _TAMPER[lang].get(detail, detail)
        problem = f"{problem} ({detail})"
    cause = (
        _CAUSE[lang]
        .get(notice.cause, notice.cause)
        .format(flaps=notice.flaps, problem=problem, commune=what, down=notice.down, total=notice.total)
    )
    subject = cause[0].upper() + cause[1:] if notice.scope == "commune" else f"{what}: {cause}"
    return subject, where


def event_url(public_url: str, event_id: int) -> str:
    """The event's page in the web UI (police log in and see only their communes' events)."""
    return f"{public_url.rstrip('/')}/events/{event_id}" if public_url and event_id else ""


def _event_place(notice: Notice, inventory: Inventory) -> str:
    """``Nhà văn hóa thôn 1, camera dr-cam-01 (Đạ Ròn)``."""
    commune = next((c for c in inventory.communes if c.id == notice.commune), None)
    commune_name = (commune.name if commune is not None else "") or notice.commune
    site = next((s for s in inventory.sites if s.id == notice.site), None)
    site_name = (site.name if site is not None else "") or notice.site
    camera = f"camera {notice.subject}"
    return f"{site_name}, {camera} ({commune_name})" if site_name else f"{camera} ({commune_name})"


def render_event(notice: Notice, inventory: Inventory, public_url: str = "") -> Message:
    """A police event notice, Vietnamese first and English second (officers and the province's
    staff read the same message). It names what was seen, where and when (local time), never
    carries the picture: the link leads to the event's page, behind the web UI's login."""
    from labels.classes import display

    place = _event_place(notice, inventory)
    local = datetime.fromtimestamp(notice.started_at, LOCAL_TZ)
    hm, day = local.strftime("%H:%M"), local.strftime("%d/%m/%Y")
    if notice.label:
        vi_what, en_what = (
            f"Phát hiện {display(notice.label, 'vi')}",
            f"{display(notice.label, 'en')} detected",
        )
        en_what = en_what[0].upper() + en_what[1:]
        pct = f"{round(notice.confidence * 100)}%"
        vi_conf, en_conf = f"Độ tin cậy {pct}", f"confidence {pct}"
    else:
        vi_what, en_what = "Phát hiện chuyển động", "Motion detected"
        vi_conf, en_conf = "Chưa nhận dạng được đối tượng", "no object recognised"
    title = f"🔔 {vi_what} tại {place} lúc {hm}"
    url = event_url(public_url, notice.event_id)
    lines = [
        f"{title} ngày {day}",
        f"{vi_conf} · quy tắc {notice.rule} · sự kiện #{notice.event_id}",
        f"{en_what} at {place} at {hm} on {day}, {en_conf} (rule {notice.rule}, event #{notice.event_id})",
    ]
    if url:
        lines.append(f"Xem sự kiện / View the event (đăng nhập / login): {url}")
    return Message(title=title, text="\n".join(lines), url=url)


def render(notice: Notice, inventory: Inventory, lang: Language = "vi", public_url: str = "") -> Message:
    if notice.kind == "event":
        return render_event(notice, inventory, public_url)
    subject, where = summary(notice, inventory, lang)
    words = _WORDS[lang]
    head = _HEAD[lang][notice.kind]
    title = f"{head}: {subject}"
    lines = [title]
    if where:
        lines.append(f"{words['at'].capitalize()} {where}")
    if notice.kind == "open":
        lines.append(words["since"].format(t=_local(notice.started_at)).capitalize())
    elif notice.kind == "reminder":
        lines.append(
            words["lasting"].format(d=duration_text(notice.at - notice.started_at, lang)).capitalize()
        )
    else:
        lines.append(words["after"].format(d=duration_text(notice.duration_s, lang)).capitalize())
    if notice.flaps and notice.cause != "flapping":
        lines.append(words["flaps"].format(n=notice.flaps).capitalize())
    fix = _FIX[lang].get(notice.problem) if notice.scope == "channel" and notice.kind == "open" else None
    if fix:
        lines.append(fix)
    if notice.alert_id:
        lines.append(f"#{notice.alert_id}")
    url = alert_url(public_url, notice.alert_id)
    if url:
        lines.append(url)
    if url and notice.snapshot_sha256 and notice.kind != "resolve":  # the picture, for technicians
        lines.append(_PICTURE[lang].format(url=picture_url(public_url, notice.alert_id)))
    return Message(title=title, text="\n".join(lines), url=url)
