"""CSV cells that a spreadsheet will not run as formulas (CSV injection, "formula injection").

Excel and LibreOffice treat a cell starting with ``=``, ``+``, ``-`` or ``@`` (and, in some
versions, a tab or carriage return before one) as a formula, so text that anyone can put
into our data (a user name typed at the login form, a User-Agent, a note) could become
``=HYPERLINK(...)`` in an inspector's spreadsheet. Such text gets a leading apostrophe, the
spreadsheets' own "this is text" mark (OWASP's advice). Plain numbers (``-3.5``) are left
alone: a spreadsheet reads them as numbers, not formulas, and tools keep parsing them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r")
_NUMBER: Final = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: object) -> object:
    """``value`` as given, or, for text a spreadsheet would evaluate, the text behind an apostrophe."""
    if isinstance(value, str) and value.startswith(_TRIGGERS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_row(values: Sequence[object]) -> list[object]:
    return [safe_cell(v) for v in values]
