"""Interface text in Vietnamese (default) and English.

Keys are short English phrases; a missing translation falls back to the key, so a
forgotten string shows in English instead of breaking a page. Numbers and dates are
formatted the Vietnamese way in ``vi`` (``1.234,5``; ``28/11/2026 19:05``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from cloud.web import i18n_onboarding as onboarding
from labels.classes import display

LANGS: Final = ("vi", "en")
DEFAULT_LANG: Final = "vi"
LOCAL_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")

VI: Final[dict[str, str]] = {
    "app": "Giám sát camera và Wi-Fi xã",
    "events": "Sự kiện chuyển động",
    "exports": "Trích xuất chứng cứ",
    "audit": "Nhật ký truy cập",
    "reports": "Báo cáo Wi-Fi",
    "devices": "Thiết bị",
    "login": "Đăng nhập",
    "logout": "Đăng xuất",
    "username": "Tên đăng nhập",
    "password": "Mật khẩu",
    "login_failed": "Sai tên đăng nhập hoặc mật khẩu, hoặc tài khoản đã bị khóa.",
    "login_throttled": "Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau {s} giây.",
    "filters": "Bộ lọc",
    "commune": "Xã",
    "camera": "Camera",
    "site": "Vị trí",
    "all": "Tất cả",
    "date_from": "Từ ngày",
    "date_to": "Đến ngày",
    "time_from": "Từ giờ",
    "time_to": "Đến giờ",
    "reviewed": "Đã xem xét",
    "not_reviewed": "Chưa xem xét",
    "min_duration": "Thời lượng tối thiểu (giây)",
    "apply": "Lọc",
    "clear": "Xóa lọc",
    "start": "Bắt đầu",
    "end": "Kết thúc",
    "duration": "Thời lượng",
    "area": "Diện tích lớn nhất",
    "zones": "Vùng",
    "frames": "Số khung hình",
    "objects": "Đối tượng",
    "notified": "Đã báo tin",
    "notified_one": "quy tắc {rule} · {at} · tới {to}",
    "only_labelled": "Chỉ sự kiện có đối tượng (ẩn sự kiện không nhận ra gì)",
    "not_labelled_yet": "chưa phân tích",
    "nothing_recognised": "không nhận ra đối tượng nào",
    "seen_earlier": "thấy trong ảnh trước của sự kiện",
    "labelled_by_edge": "nhận dạng tại camera",
    "labelled_by_cloud": "nhận dạng trên máy chủ",
    "snapshot": "Ảnh chụp",
    "no_snapshot": "Không có ảnh",
    "snapshot_from": "Ảnh: {source} {size}",
    "snapshot_fallback": "Ảnh thay thế: {source} {size} ({why})",
    "snapshot_fallback_short": "ảnh thay thế",
    "snapshot_src_http": "ảnh HTTP của camera",
    "snapshot_src_main": "luồng chính",
    "snapshot_src_detect": "khung phát hiện",
    "snapshot_failed_http": "không lấy được ảnh HTTP",
    "snapshot_failed_main": "không lấy được ảnh từ luồng chính",
    "snapshot_failed": "không lấy được ảnh độ phân giải cao",
    "status": "Trạng thái",
    "ongoing": "đang diễn ra",
    "results": "{n} sự kiện",
    "page": "Trang {p}/{n}",
    "prev": "‹ Trước",
    "next": "Sau ›",
    "export_selected": "Trích xuất các sự kiện đã chọn",
    "reason": "Lý do (số hồ sơ, yêu cầu)",
    "select_all": "Chọn tất cả",
    "mark_reviewed": "Đánh dấu đã xem xét",
    "mark_unreviewed": "Bỏ đánh dấu đã xem xét",
    "reviewed_by": "Xem xét bởi {who} lúc {at}",
    "add_note": "Lưu ghi chú",
    "notes": "Ghi chú",
    "no_notes": "Chưa có ghi chú.",
    "keep": "Giữ lại (không tự xóa)",
    "unkeep": "Bỏ giữ lại",
    "kept": "Được giữ lại",
    "before": "Sự kiện trước của camera này",
    "after": "Sự kiện sau của camera này",
    "timeline": "Dòng thời gian trong ngày",
    "day": "Ngày",
    "export": "Bản trích xuất",
    "created_by": "Người trích xuất",
    "created_at": "Thời điểm",
    "download": "Tải tệp ZIP",
    "sha256_of_zip": "SHA-256 của tệp ZIP",
    "no_events": "Không có sự kiện nào khớp bộ lọc.",
    "no_exports": "Chưa có bản trích xuất nào.",
    "actor": "Người thực hiện",
    "action": "Hành động",
    "target": "Đối tượng",
    "from_where": "Từ địa chỉ",
    "when": "Thời điểm",
    "download_csv": "Tải CSV",
    "chain_ok": "Chuỗi băm toàn vẹn ({n} bản ghi).",
    "chain_bad": "Chuỗi băm bị phá vỡ tại bản ghi #{id}!",
    "welcome": "Xin chào, {name}",
    "home_hint": "Chọn một mục trong thanh điều hướng.",
    "events_count": "Sự kiện",
    "language": "Ngôn ngữ",
    "seconds": "giây",
    "yes": "Có",
    "no": "Không",
    "back": "Quay lại",
    "login_cross_site": "Đăng nhập phải gửi từ chính trang đăng nhập của hệ thống này.",
    "audit_total": "{n} bản ghi khớp bộ lọc",
    "detail": "Chi tiết",
    "older": "Cũ hơn ›",
    "newest": "‹ Mới nhất",
    "signing_key": "Khóa ký của máy chủ (Ed25519)",
    "signed_by_key": "Ký bởi khóa",
    "unsigned": "Không ký (tạo trước khi có chữ ký)",
    "retired_keys": "Khóa ký trước đây (bản trích xuất cũ vẫn kiểm tra được)",
    "verify_signed_hint": "Kiểm tra ngoại tuyến, kể cả chữ ký: commune-iot evidence verify <tệp.zip> "
    "--trusted-fingerprint <vân tay>. Chữ ký chứng minh tệp không bị sửa kể từ khi máy chủ ký; "
    "không chứng minh nội dung là sự thật.",
    "act_login": "Đăng nhập",
    "act_login_failed": "Đăng nhập sai",
    "act_login_throttled": "Đăng nhập bị tạm chặn",
    "act_logout": "Đăng xuất",
    "act_event_list": "Xem danh sách sự kiện",
    "act_event_view": "Xem sự kiện",
    "act_snapshot_view": "Xem ảnh đầy đủ",
    "act_review": "Đánh dấu đã xem xét",
    "act_unreview": "Bỏ đánh dấu đã xem xét",
    "act_note": "Thêm ghi chú",
    "act_keep": "Giữ lại sự kiện",
    "act_unkeep": "Bỏ giữ lại sự kiện",
    "act_timeline_view": "Xem dòng thời gian",
    "act_export_create": "Tạo bản trích xuất",
    "act_export_view": "Xem bản trích xuất",
    "act_export_download": "Tải bản trích xuất",
    "act_audit_view": "Xem nhật ký truy cập",
    "act_audit_export": "Tải nhật ký truy cập",
    "act_report_view": "Xem báo cáo Wi-Fi",
    "act_retention": "Tự động xóa dữ liệu cũ",
    "act_user_add": "Thêm người dùng",
    "act_user_disable": "Khóa người dùng",
    "act_user_enable": "Mở khóa người dùng",
    "act_user_password": "Đổi mật khẩu",
    "act_token_create": "Tạo mã API",
    "act_token_revoke": "Thu hồi mã API",
    "act_access_denied": "Truy cập bị từ chối",
    "act_access_denied_repeat": "Truy cập bị từ chối (lặp lại)",
    "act_access_denied_more": "Truy cập bị từ chối (nhiều đối tượng)",
    "act_alert_ack": "Nhận xử lý cảnh báo",
    "act_alert_silence": "Tạm tắt nhắc cảnh báo",
    "act_maintenance_add": "Thêm lịch bảo trì",
    "act_maintenance_delete": "Xóa lịch bảo trì",
    "act_evidence_key_rotate": "Đổi khóa ký chứng cứ",
    "act_event_notified": "Đã báo sự kiện cho công an",
    "act_event_notify_failed": "Không gửi được tin báo sự kiện",
    "dk_filter": "bộ lọc",
    "dk_total": "tổng",
    "dk_shown": "đã hiển thị",
    "dk_events": "sự kiện",
    "dk_reason": "lý do",
    "dk_size": "kích thước",
    "dk_day": "ngày",
    "dk_note": "ghi chú",
    "dk_text": "nội dung",
    "dk_method": "phương thức",
    "dk_route": "đường dẫn",
    "dk_path": "địa chỉ",
    "dk_status": "mã",
    "dk_outcome": "lý do từ chối",
    "dk_query": "tham số",
    "dk_first": "bản ghi đầu",
    "dk_repeats": "số lần lặp",
    "dk_refusals": "số lần từ chối",
    "dk_comment": "ghi chú",
    "dk_rows": "số dòng",
    "dk_roles": "vai trò",
    "dk_communes": "xã",
    "outcome_out_of_scope": "đối tượng thuộc xã khác",
    "outcome_missing": "không tồn tại",
    "outcome_role": "vai trò không được phép",
    "outcome_csrf": "thiếu/sai mã CSRF",
    "outcome_forbidden": "không được phép",
    "outcome_not_found": "không tìm thấy",
    "outcome_cross_site": "gửi từ trang web khác",
    "kept_reports": "Báo cáo đã lưu",
    "new_note": "Viết ghi chú mới",
    "has_notes": "{n} ghi chú",
    "filters_active": "{n} điều kiện đang áp dụng",
    "status_400": "Yêu cầu không hợp lệ",
    "status_401": "Cần đăng nhập",
    "status_403": "Không có quyền truy cập",
    "status_404": "Không tìm thấy",
    "status_405": "Không hỗ trợ thao tác này",
    "status_409": "Thao tác xung đột với trạng thái hiện tại",
    "status_410": "Tệp không còn trên máy chủ",
    "status_413": "Dữ liệu gửi lên quá lớn",
    "status_422": "Dữ liệu nhập không hợp lệ",
    "status_429": "Quá nhiều yêu cầu, vui lòng thử lại sau",
    "status_500": "Lỗi máy chủ",
    "status_503": "Dịch vụ tạm thời không sẵn sàng",
    "status_other": "Lỗi {code}",
    "explain_403": "Bạn không có quyền xem trang này.",
    "explain_404": "Trang hoặc đối tượng này không có, hoặc không thuộc phạm vi của bạn.",
    "verr_intro": "Hãy sửa các mục sau rồi thử lại:",
    "verr_date": "không phải ngày hợp lệ (dạng năm-tháng-ngày, ví dụ 2026-11-01)",
    "verr_int": "phải là số nguyên",
    "verr_number": "phải là số",
    "verr_bool": "phải là có (1) hoặc không (0)",
    "verr_choice": "chỉ nhận {expected}",
    "verr_missing": "bắt buộc phải có",
    "verr_ge": "phải từ {limit} trở lên",
    "verr_gt": "phải lớn hơn {limit}",
    "verr_le": "không được lớn hơn {limit}",
    "verr_lt": "phải nhỏ hơn {limit}",
    "verr_too_long": "dài quá {limit} ký tự",
    "verr_too_short": "cần ít nhất {limit} ký tự",
    "verr_invalid": "giá trị không hợp lệ",
    "or": "hoặc",
    "field_from": "Từ ngày",
    "field_to": "Đến ngày",
    "field_commune": "Xã",
    "field_lang": "Ngôn ngữ",
    "field_refresh": "Tổng hợp lại",
    "field_page": "Trang",
    "field_date_from": "Từ ngày",
    "field_date_to": "Đến ngày",
    "field_time_from": "Từ giờ",
    "field_time_to": "Đến giờ",
    "field_day": "Ngày",
    "field_device": "Camera",
    "field_min_duration_s": "Thời lượng tối thiểu",
    "field_report_id": "Mã báo cáo",
    "field_fmt": "Định dạng tệp",
    "field_event_pk": "Mã sự kiện",
    "field_export_id": "Mã bản trích xuất",
    "field_before_id": "Bản ghi",
    "field_text": "Nội dung ghi chú",
    "field_reason": "Lý do",
    "field_event": "Sự kiện",
    "field_reviewed": "Trạng thái",
    "field_username": "Tên đăng nhập",
    "field_password": "Mật khẩu",
}

EN: Final[dict[str, str]] = {
    "app": "Commune cameras and Wi-Fi",
    "events": "Motion events",
    "exports": "Evidence exports",
    "audit": "Audit trail",
    "reports": "Wi-Fi reports",
    "devices": "Devices",
    "login": "Log in",
    "logout": "Log out",
    "username": "User name",
    "password": "Password",
    "login_failed": "Wrong user name or password, or the account is disabled.",
    "login_throttled": "Too many failed logins. Try again in {s} seconds.",
    "filters": "Filters",
    "commune": "Commune",
    "camera": "Camera",
    "site": "Site",
    "all": "All",
    "date_from": "From date",
    "date_to": "To date",
    "time_from": "From time",
    "time_to": "To time",
    "reviewed": "Reviewed",
    "not_reviewed": "Not reviewed",
    "min_duration": "Minimum duration (s)",
    "apply": "Filter",
    "clear": "Clear",
    "start": "Start",
    "end": "End",
    "duration": "Duration",
    "area": "Peak area",
    "zones": "Zones",
    "frames": "Frames",
    "objects": "Objects",
    "notified": "Notified",
    "notified_one": "rule {rule} · {at} · to {to}",
    "only_labelled": "Only events with an object (hide those where nothing was recognised)",
    "not_labelled_yet": "not analysed yet",
    "nothing_recognised": "no object recognised",
    "seen_earlier": "seen in an earlier picture of the event",
    "labelled_by_edge": "recognised on the camera's board",
    "labelled_by_cloud": "recognised on the server",
    "snapshot": "Snapshot",
    "no_snapshot": "No snapshot",
    "snapshot_from": "Picture: {source} {size}",
    "snapshot_fallback": "Fallback picture: {source} {size} ({why})",
    "snapshot_fallback_short": "fallback picture",
    "snapshot_src_http": "the camera's HTTP snapshot",
    "snapshot_src_main": "main stream",
    "snapshot_src_detect": "detection frame",
    "snapshot_failed_http": "the HTTP snapshot could not be fetched",
    "snapshot_failed_main": "no picture from the main stream",
    "snapshot_failed": "no full-resolution picture",
    "status": "Status",
    "ongoing": "ongoing",
    "results": "{n} events",
    "page": "Page {p}/{n}",
    "prev": "‹ Previous",
    "next": "Next ›",
    "export_selected": "Export selected events",
    "reason": "Reason (case number, request)",
    "select_all": "Select all",
    "mark_reviewed": "Mark reviewed",
    "mark_unreviewed": "Mark not reviewed",
    "reviewed_by": "Reviewed by {who} at {at}",
    "add_note": "Save note",
    "notes": "Notes",
    "no_notes": "No notes yet.",
    "keep": "Keep (exempt from deletion)",
    "unkeep": "Stop keeping",
    "kept": "Kept",
    "before": "Earlier events of this camera",
    "after": "Later events of this camera",
    "timeline": "Timeline of the day",
    "day": "Day",
    "export": "Export",
    "created_by": "Exported by",
    "created_at": "At",
    "download": "Download ZIP",
    "sha256_of_zip": "SHA-256 of the ZIP file",
    "no_events": "No events match the filters.",
    "no_exports": "No exports yet.",
    "actor": "Who",
    "action": "Action",
    "target": "Object",
    "from_where": "From",
    "when": "When",
    "download_csv": "Download CSV",
    "chain_ok": "Hash chain intact ({n} entries).",
    "chain_bad": "Hash chain broken at entry #{id}!",
    "welcome": "Hello, {name}",
    "home_hint": "Pick a section in the navigation bar.",
    "events_count": "Events",
    "language": "Language",
    "seconds": "s",
    "yes": "Yes",
    "no": "No",
    "back": "Back",
    "login_cross_site": "A login must be sent from this system's own login page.",
    "audit_total": "{n} entries match the filters",
    "detail": "Detail",
    "older": "Older ›",
    "newest": "‹ Newest",
    "signing_key": "The server's signing key (Ed25519)",
    "signed_by_key": "Signed by key",
    "unsigned": "Not signed (made before signing existed)",
    "retired_keys": "Earlier signing keys (older exports still verify)",
    "verify_signed_hint": "Check offline, signature included: commune-iot evidence verify <file.zip> "
    "--trusted-fingerprint <fingerprint>. The signature proves the files are unchanged since the server "
    "signed them; it does not prove the content true.",
    "act_access_denied": "Access refused",
    "act_access_denied_repeat": "Access refused (repeated)",
    "act_access_denied_more": "Access refused (many objects)",
    "act_event_notified": "Event told to the police",
    "act_event_notify_failed": "Event notice not delivered",
    "outcome_out_of_scope": "object of another commune",
    "outcome_missing": "does not exist",
    "outcome_role": "role not allowed",
    "outcome_csrf": "missing or wrong CSRF token",
    "kept_reports": "Kept reports",
    "new_note": "Write a new note",
    "has_notes": "{n} note(s)",
    "filters_active": "{n} active",
    "status_400": "Bad request",
    "status_401": "Login required",
    "status_403": "Forbidden",
    "status_404": "Not found",
    "status_405": "Method not allowed",
    "status_409": "Conflict",
    "status_410": "Gone",
    "status_413": "Request too large",
    "status_422": "Invalid input",
    "status_429": "Too many requests",
    "status_500": "Server error",
    "status_503": "Service unavailable",
    "status_other": "Error {code}",
    "explain_403": "You may not see this page.",
    "explain_404": "This page or object does not exist, or is outside your communes.",
    "verr_intro": "Please correct these and try again:",
    "verr_date": "not a valid date (year-month-day, e.g. 2026-11-01)",
    "verr_int": "must be a whole number",
    "verr_number": "must be a number",
    "verr_bool": "must be yes (1) or no (0)",
    "verr_choice": "must be {expected}",
    "verr_missing": "required",
    "verr_ge": "must be at least {limit}",
    "verr_gt": "must be more than {limit}",
    "verr_le": "must be at most {limit}",
    "verr_lt": "must be less than {limit}",
    "verr_too_long": "longer than {limit} characters",
    "verr_too_short": "needs at least {limit} characters",
    "verr_invalid": "invalid value",
    "or": "or",
    "field_from": "From",
    "field_to": "To",
    "field_commune": "Commune",
    "field_lang": "Language",
    "field_page": "Page",
    "field_date_from": "From date",
    "field_date_to": "To date",
    "field_day": "Day",
    "field_text": "Note",
}

VI.update(onboarding.VI)  # kept apart: one module per page's text merges cleanly
EN.update(onboarding.EN)
_TABLES: Final = {"vi": VI, "en": EN}


class Translator:
    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGS else DEFAULT_LANG
        self._t = _TABLES[self.lang]

    def __call__(self, key: str, **kw: object) -> str:
        text = self._t.get(key, EN.get(key, key))
        return text.format(**kw) if kw else text

    def optional(self, key: str, default: str) -> str:
        """The translation of ``key`` if there is one, else ``default`` (e.g. a raw code)."""
        return self._t.get(key, EN.get(key, default))

    def label(self, name: str) -> str:
        """An object class or group (``person``, ``vehicle``) in the page's language."""
        return display(name, self.lang)

    def action(self, code: str) -> str:
        """An audit action code as words (the code itself when unknown)."""
        return self.optional(f"act_{code}", code)

    def num(self, value: float | None, digits: int = 1) -> str:
        if value is None:
            return "—"
        s = f"{value:,.{digits}f}"
        if self.lang == "vi":
            s = s.replace(",", "\0").replace(".", ",").replace("\0", ".")
        return s

    def dt(self, ts: float | None, seconds: bool = True) -> str:
        if ts is None:
            return "—"
        d = datetime.fromtimestamp(ts, LOCAL_TZ)
        fmt = "%d/%m/%Y %H:%M" if self.lang == "vi" else "%Y-%m-%d %H:%M"
        return d.strftime(fmt + (":%S" if seconds else ""))

    def duration(self, seconds: float) -> str:
        s = round(seconds)
        if s < 60:
            return f"{s} {self('seconds')}"
        m, sec = divmod(s, 60)
        if m < 60:
            return f"{m}:{sec:02d}"
        h, m = divmod(m, 60)
        return f"{h}:{m:02d}:{sec:02d}"

    def snapshot_origin(
        self,
        source: str | None,
        width: int | None,
        height: int | None,
        *,
        wanted: str | None = None,
        reason: str | None = None,
    ) -> str:
        """Where an event's picture came from, for the police: ``Ảnh: luồng chính 1920×1080``, or
        ``Ảnh thay thế: khung phát hiện 640×360 (không lấy được ảnh HTTP: HTTP 401 ...)`` when the
        board sent the small detected frame; "" when the board did not say (older events)."""
        if source is None:
            return ""
        size = f"{width}×{height}" if width is not None and height is not None else ""
        src = self.optional(f"snapshot_src_{source}", source)
        if source != "detect":
            return self("snapshot_from", source=src, size=size).strip()
        why = self.optional(f"snapshot_failed_{wanted}", "") or self("snapshot_failed")
        if reason:
            why = f"{why}: {reason}"
        return self("snapshot_fallback", source=src, size=size, why=why).replace("  ", " ")

    def ago(self, seconds: float) -> str:
        """How long ago, in the largest unit that fits: ``5 phút trước``."""
        s = max(0, round(seconds))
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if s >= size:
                return self(f"ago_{unit}", n=s // size)
        return self("ago_s", n=s)


# The technicians' console keeps its words beside its code (cloud/web/console/text.py).
from cloud.web.console import text as _console  # noqa: E402

VI.update(_console.VI)
EN.update(_console.EN)
