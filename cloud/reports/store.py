"""Generated reports kept on disk and listed in SQL (table ``reports``).

One row per (kind, period, commune): the unique key is what makes the monthly job run
once even with several cloud workers (the first to insert the row builds it; the others
see it taken). A claim left ``building`` by a worker that died is taken over after
``stale_s``. Files live under ``output_dir/<kind>-<period>[-<commune>]/``; the report's
numbers are kept as ``report.json`` so any format or language can be rendered again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from cloud.reports.wifi_model import WifiReport
from cloud.storage.schema import ensure_schema

metadata = MetaData()

reports = Table(
    "reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),  # wifi
    Column("period", String(32), nullable=False),  # 2026-11 or 2026-11-01_2026-11-07
    Column("commune", String(64), nullable=False, default=""),  # "" = all communes
    Column("first", String(10), nullable=False),
    Column("last", String(10), nullable=False),
    Column("origin", String(16), nullable=False),  # monthly | manual
    Column("state", String(16), nullable=False),  # building | done | failed
    Column("holder", String(128), nullable=False, default=""),
    Column("claimed_at", Float, nullable=False),
    Column("done_at", Float),
    Column("files", Text, nullable=False, default="[]"),  # JSON list of formats kept
    Column("error", Text, nullable=False, default=""),
    UniqueConstraint("kind", "period", "commune", name="uq_reports_kind_period_commune"),
)


@dataclass(frozen=True, slots=True)
class StoredReport:
    id: int
    kind: str
    period: str
    commune: str
    first: str
    last: str
    origin: str
    state: str
    claimed_at: float
    done_at: float | None
    files: list[str]
    error: str

    @classmethod
    def of(cls, r: Any) -> StoredReport:
        return cls(
            r.id,
            r.kind,
            r.period,
            r.commune,
            r.first,
            r.last,
            r.origin,
            r.state,
            r.claimed_at,
            r.done_at,
            json.loads(r.files or "[]"),
            r.error,
        )


class ReportStore:
    def __init__(self, engine: Engine, output_dir: Path) -> None:
        self.engine = engine
        self.output_dir = output_dir
        ensure_schema(engine, metadata)

    def dir_of(self, kind: str, period: str, commune: str) -> Path:
        return self.output_dir / (f"{kind}-{period}" + (f"-{commune}" if commune else ""))

    def claim(
        self,
        kind: str,
        period: str,
        commune: str,
        first: str,
        last: str,
        *,
        origin: str,
        holder: str,
        now: float | None = None,
        stale_s: float = 3600.0,
        replace: bool = False,
    ) -> int | None:
        """The row's id if this caller builds the report now; None if it exists (or is being built).

        ``replace`` (a manual rebuild) takes any row that is not being built right now.
        """
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            try:
                res = conn.execute(
                    insert(reports).values(
                        kind=kind,
                        period=period,
                        commune=commune,
                        first=first,
                        last=last,
                        origin=origin,
                        state="building",
                        holder=holder,
                        claimed_at=now,
                        files="[]",
                        error="",
                    )
                )
                pk = res.inserted_primary_key
                return int(pk[0]) if pk else None
            except IntegrityError:
                pass
        key = (reports.c.kind == kind) & (reports.c.period == period) & (reports.c.commune == commune)
        takeable = (reports.c.state == "failed") | (
            (reports.c.state == "building") & (reports.c.claimed_at < now - stale_s)
        )
        if replace:
            takeable = takeable | (reports.c.state == "done")
        with self.engine.begin() as conn:
            res = conn.execute(
                update(reports)
                .where(key & takeable)
                .values(state="building", holder=holder, claimed_at=now, error="", origin=origin)
            )
            if res.rowcount != 1:
                return None
            row = conn.execute(select(reports.c.id).where(key)).one()
            return int(row.id)

    def save(self, row_id: int, report: WifiReport, files: dict[str, bytes]) -> Path:
        """Write the files, then mark the row done (so a listed report always has its files)."""
        with self.engine.connect() as conn:
            r = conn.execute(select(reports).where(reports.c.id == row_id)).one()
        d = self.dir_of(r.kind, r.period, r.commune)
        d.mkdir(parents=True, exist_ok=True)
        (d / "report.json").write_text(report.model_dump_json(), encoding="utf-8")
        for fmt, body in files.items():
            tmp = d / f".report.{fmt}.tmp"
            tmp.write_bytes(body)
            tmp.replace(d / f"report.{fmt}")
        with self.engine.begin() as conn:
            conn.execute(
                update(reports)
                .where(reports.c.id == row_id)
                .values(state="done", done_at=time.time(), files=json.dumps(sorted(files)))
            )
        return d

    def fail(self, row_id: int, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(reports).where(reports.c.id == row_id).values(state="failed", error=error[:500])
            )

    def list(self, kind: str | None = None, limit: int = 200) -> list[StoredReport]:
        q = select(reports).order_by(reports.c.first.desc(), reports.c.id.desc()).limit(limit)
        if kind:
            q = q.where(reports.c.kind == kind)
        with self.engine.connect() as conn:
            return [StoredReport.of(r) for r in conn.execute(q)]

    def get(self, row_id: int) -> StoredReport | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(reports).where(reports.c.id == row_id)).first()
        return StoredReport.of(r) if r is not None else None

    def file(self, stored: StoredReport, fmt: str) -> Path | None:
        if fmt not in stored.files and fmt != "json":
            return None
        p = self.dir_of(stored.kind, stored.period, stored.commune) / f"report.{fmt}"
        return p if p.is_file() else None

    def load(self, stored: StoredReport) -> WifiReport | None:
        p = self.file(stored, "json")
        return WifiReport.model_validate_json(p.read_text(encoding="utf-8")) if p else None
