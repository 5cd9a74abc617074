"""SQL expressions shared by the upserts (portable: SQLite has no GREATEST/LEAST for NULLs)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case


def greatest(col: Any, new: Any) -> Any:
    """The larger of a column and a new value; a NULL on either side yields the other."""
    return case((col.is_(None), new), (new > col, new), else_=col)


def least(col: Any, new: Any) -> Any:
    """The smaller of a column and a new value (the column when the new value is NULL)."""
    return case((new < col, new), else_=col)
