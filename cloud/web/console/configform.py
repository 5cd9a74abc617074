"""A board's managed configuration as an HTML form generated from its schema, and back.

The schema is the edge agent's own (``edge.config.ManagedConfig`` and each collector's option
model, the ones ``cloud.fleet.schema`` validates with), so a field added to a collector shows
up here without touching the console. Scalars get inputs with the schema's bounds, nested
models fieldsets, optional models a fieldset with a switch; lists and anything else a JSON box
(a camera's masks and zones also have the picture editor). Secret fields are never shown: a
value typed in goes to ``secrets`` and is sealed for the board.

Reading the form back changes only what the technician changed: a field missing from the
document stays missing while its input holds the default, so the document stays "as
written" and desired and reported configurations keep comparing field by field.
Validation messages come from pydantic in English and are shown in Vietnamese (:func:`vi`).
"""

from __future__ import annotations

import copy
import json
import re
import types
from dataclasses import dataclass, field
from datetime import time as dtime
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from edge.collectors.registry import RegistryError, resolve_options
from edge.config import ManagedConfig

Kind = Literal[
    "bool", "int", "float", "text", "choice", "time", "secret", "group", "optional", "lines", "json"
]
_MISSING: Any = object()


@dataclass
class FormField:
    path: str  # dotted, also the input's name: collectors.0.motion.sensitivity
    key: str  # the document's key (an alias where the model has one)
    kind: Kind
    value: str = ""  # as the input shows it
    on: bool = False  # a checkbox ticked; an optional group switched on
    default: Any = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False
    help: str = ""
    children: list[FormField] = field(default_factory=list)
    error: str = ""
    title: str = ""  # a collector's type, shown on its fieldset

    def walk(self) -> list[FormField]:
        return [self, *(f for c in self.children for f in c.walk())]

    @property
    def failed(self) -> bool:
        """This field or one inside it has an error (its section is shown open)."""
        return any(f.error for f in self.walk())


def _unwrap(ann: Any) -> tuple[Any, bool]:
    """(the type inside Optional[...], whether None is allowed)."""
    if get_origin(ann) in (Union, types.UnionType):
        args = [a for a in get_args(ann) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(get_args(ann))
    return ann, False


def _bounds(info: FieldInfo) -> tuple[float | None, float | None]:
    lo = hi = None
    for m in info.metadata:
        for attr in ("ge", "gt"):
            if getattr(m, attr, None) is not None:
                lo = float(getattr(m, attr))
        for attr in ("le", "lt"):
            if getattr(m, attr, None) is not None:
                hi = float(getattr(m, attr))
    return lo, hi


def _kind(base: Any, optional: bool) -> Kind:
    if base is bool:
        return "bool"
    if get_origin(base) is Literal:
        return "choice"
    if base is int:
        return "int"
    if base is float:
        return "float"
    if base in (str, Path) or (get_origin(base) is None and isinstance(base, type) and issubclass(base, str)):
        return "text"
    if base is dtime:
        return "time"
    if base is SecretStr:
        return "secret"
    if isinstance(base, type) and issubclass(base, BaseModel):
        return "optional" if optional else "group"
    if get_origin(base) is list and get_args(base) == (str,):
        return "lines"
    return "json"


def _text(kind: Kind, v: Any) -> str:
    if v is None or v is _MISSING:
        return ""
    if kind == "json":
        return json.dumps(v, ensure_ascii=False)
    if kind == "lines":
        return "\n".join(str(x) for x in v)
    if kind == "time":
        return v.strftime("%H:%M") if isinstance(v, dtime) else str(v)[:5]
    if isinstance(v, float) and v.is_integer():
        return str(int(v)) if abs(v) < 1e15 else str(v)
    return str(v)


def _plain(v: Any) -> Any:
    """A default as it would be written in the document (models and times as JSON)."""
    if isinstance(v, BaseModel):
        return v.model_dump(mode="json", by_alias=True)
    if isinstance(v, dtime):
        return v.strftime("%H:%M:%S")
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def fields_of(model: type[BaseModel], doc: dict[str, Any], prefix: str = "") -> list[FormField]:
    out = []
    for name, info in model.model_fields.items():
        key = info.alias or name
        path = f"{prefix}.{key}" if prefix else key
        base, optional = _unwrap(info.annotation)
        kind = _kind(base, optional)
        present = doc.get(key, _MISSING)
        default = None if info.is_required() else _plain(info.get_default(call_default_factory=True))
        f = FormField(
            path, key, kind, default=default, required=info.is_required(), help=info.description or ""
        )
        if kind in ("group", "optional"):
            sub = present if isinstance(present, dict) else {}
            f.children = fields_of(base, sub, path)
            f.on = kind == "group" or isinstance(present, dict)
        elif kind == "bool":
            f.on = bool(present if present is not _MISSING else default)
        elif kind == "secret":
            f.value = ""
            f.on = present not in (_MISSING, None)  # the board holds one: keep it unless replaced
        else:
            f.value = _text(kind, present if present is not _MISSING else default)
            if kind == "choice":
                f.choices = tuple(str(a) for a in get_args(base))
            if kind in ("int", "float"):
                f.minimum, f.maximum = _bounds(info)
        out.append(f)
    return out


def form_of(doc: dict[str, Any]) -> list[FormField]:
    """The form for a managed configuration: its top-level settings, then one fieldset per
    collector with the options of its plug-in."""
    top = fields_of(ManagedConfig, doc)
    out = []
    for f in top:
        if f.key != "collectors":
            out.append(f)
            continue
        group = FormField("collectors", "collectors", "group", on=True)
        for i, spec in enumerate(doc.get("collectors") or []):
            if not isinstance(spec, dict):
                continue
            kind = str(spec.get("type", ""))
            path = f"collectors.{i}"
            try:
                options = resolve_options(kind)
            except RegistryError as exc:  # a plug-in this cloud does not know: the JSON box only
                group.children.append(
                    FormField(path, str(i), "json", value=json.dumps(spec), title=kind, error=str(exc))
                )
                continue
            box = FormField(path, str(i), "group", on=True, title=kind)
            box.children = fields_of(options, {k: v for k, v in spec.items() if k != "type"}, path)
            group.children.append(box)
        out.append(group)
    return out


@dataclass
class Answer:
    doc: dict[str, Any]
    secrets: dict[str, str]
    errors: dict[str, str]  # path -> message (already in Vietnamese)


def _number(kind: Kind, raw: str) -> Any:
    text = raw.strip().replace(" ", "")
    if "," in text and "." not in text:  # 2,5 written the Vietnamese way
        text = text.replace(",", ".")
    try:
        return int(text) if kind == "int" else float(text)
    except ValueError:
        return raw  # the schema says what is wrong with it


def _read(f: FormField, form: dict[str, str], holder: dict[str, Any], ans: Answer) -> None:
    had = f.key in holder
    if f.kind in ("group", "optional"):
        if f.kind == "optional" and form.get(f.path + ".__on") != "on":
            holder.pop(f.key, None)
            return
        sub = holder.get(f.key)
        sub = dict(sub) if isinstance(sub, dict) else {}
        for c in f.children:
            _read(c, form, sub, ans)
        if sub or had or f.kind == "optional":
            holder[f.key] = sub
        return
    raw = form.get(f.path)
    if f.kind == "secret":
        if raw:
            ans.secrets[f.path] = raw
            holder.pop(f.key, None)
        return
    if f.kind == "bool":
        value: Any = raw == "on"
    elif raw is None or not raw.strip():
        if f.kind in ("lines", "json") and f.default == [] and had:
            holder[f.key] = []
        else:
            holder.pop(f.key, None)  # back to the default (or missing, if required)
        return
    elif f.kind in ("int", "float"):
        value = _number(f.kind, raw)
    elif f.kind == "lines":
        value = [x.strip() for x in raw.splitlines() if x.strip()]
    elif f.kind == "json":
        try:
            value = json.loads(raw)
        except ValueError as exc:
            ans.errors[f.path] = f"JSON không hợp lệ: {exc}"
            return
    elif f.kind == "time":
        value = raw.strip()
        if not had and f.default is not None and str(f.default)[:5] == value[:5]:
            return
    else:
        value = raw.strip()
    if had or value != f.default:
        holder[f.key] = value


def read_form(fields: list[FormField], form: dict[str, str], base: dict[str, Any]) -> Answer:
    """The document the form describes: ``base`` with what the technician changed."""
    ans = Answer(copy.deepcopy(base), {}, {})
    for f in fields:
        if f.key != "collectors":
            _read(f, form, ans.doc, ans)
            continue
        specs = ans.doc.get("collectors") or []
        for box in f.children:
            i = int(box.key)
            if i >= len(specs):
                continue
            if box.kind == "json":
                try:
                    specs[i] = json.loads(form.get(box.path, "") or "null")
                except ValueError as exc:
                    ans.errors[box.path] = f"JSON không hợp lệ: {exc}"
                continue
            spec = {k: v for k, v in specs[i].items() if k != "type"}
            for c in box.children:
                _read(c, form, spec, ans)
            specs[i] = {"type": specs[i].get("type"), **spec}
    return ans


def attach(fields: list[FormField], errors: dict[str, str]) -> list[str]:
    """Put each error on its field (or the nearest enclosing one); returns those that fit none."""
    by_path = {f.path: f for top in fields for f in top.walk()}
    left = []
    for path, msg in errors.items():
        parts = path.split(".")
        while parts and ".".join(parts) not in by_path:
            parts.pop()
        if parts:
            target = by_path[".".join(parts)]
            target.error = f"{target.error}; {msg}" if target.error else msg
        else:
            left.append(f"{path}: {msg}")
    return left


# -- pydantic's messages in Vietnamese ------------------------------------------------------

_VI: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), vi)
    for p, vi in (
        (r"^Field required$", "Bắt buộc phải nhập."),
        (r"^Input should be greater than or equal to (\S+)$", "Phải lớn hơn hoặc bằng {0}."),
        (r"^Input should be greater than (\S+)$", "Phải lớn hơn {0}."),
        (r"^Input should be less than or equal to (\S+)$", "Phải nhỏ hơn hoặc bằng {0}."),
        (r"^Input should be less than (\S+)$", "Phải nhỏ hơn {0}."),
        (r"^Input should be a valid number", "Phải là một số."),
        (r"^Input should be a valid integer", "Phải là số nguyên."),
        (r"^Input should be a valid boolean", "Phải là có hoặc không."),
        (r"^Input should be a valid list", "Phải là một danh sách."),
        (r"^Input should be a valid dictionary", "Phải là một nhóm thiết lập."),
        (r"^Input should be a valid string", "Phải là chuỗi ký tự."),
        (r"^Input should be in a valid time format", "Giờ không hợp lệ (HH:MM)."),
        (r"^Input should be (.+)$", "Chỉ được chọn: {0}."),
        (r"^String should have at least (\d+) characters?$", "Cần ít nhất {0} ký tự."),
        (r"^String should have at most (\d+) characters?$", "Tối đa {0} ký tự."),
        (r"^String should match pattern '(.+)'$", "Không đúng định dạng (mẫu {0})."),
        (
            r"^List should have at least (\d+) items? after validation",
            "Cần ít nhất {0} phần tử (đa giác: {0} điểm).",
        ),
        (r"^List should have at most (\d+) items? after validation", "Tối đa {0} phần tử."),
        (r"^Extra inputs are not permitted$", "Thiết lập này không có trong cấu hình của bo mạch."),
        (r"^zone names must be unique$", "Tên các vùng phải khác nhau."),
        (r"^set either (\S+) or (\S+), not both$", "Chỉ đặt một trong hai: {0} hoặc {1}."),
        (
            r"^a secret in clear",
            "Không được ghi mật khẩu dạng rõ: nhập vào ô mật khẩu để mã hóa cho bo mạch.",
        ),
        (r"^a password in a URL", "Không được ghi mật khẩu trong địa chỉ: dùng ô mật khẩu."),
        (
            r"^the board has not reported its key yet",
            "Bo mạch chưa gửi khóa (cần trực tuyến một lần): chưa đặt được mật khẩu.",
        ),
        (r"^no such place in the configuration$", "Không có vị trí này trong cấu hình."),
        (r"^unknown collector type", "Không có loại bộ thu thập này."),
    )
]


def vi(msg: str) -> str:
    """A schema message in Vietnamese; the English one after it when no rule knows it."""
    for pattern, text in _VI:
        m = pattern.search(msg)
        if m:
            return text.format(*m.groups())
    return f"Không hợp lệ: {msg}"
