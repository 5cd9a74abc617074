"""Parameter types shared by the API routers."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Path

#: Largest row id: the keys are INTEGER, 32 bits on PostgreSQL (64 on SQLite). A larger id
#: cannot exist, and PostgreSQL refuses to compare it (a 500) instead of finding nothing.
MAX_ROW_ID: Final = 2**31 - 1

#: A row id in a path: 422 when it cannot be an id, 404 when no such row.
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="Row id.")]
