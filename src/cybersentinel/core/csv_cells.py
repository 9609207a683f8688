"""CSV cells a spreadsheet will not run as formulas (OWASP "CSV injection").

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is written with a single quote in
front and inside double quotes, so Excel, LibreOffice and Google Sheets show it as text. A value that already
starts with quotes before such a character gets one more, so `unescape_cell` restores every value exactly.
Only CSV is escaped: Parquet and JSON lines keep the raw values.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

FORMULA_START = r"^('*[=+\-@\t\r])"  # the one rule: optional quotes, then a character a spreadsheet evaluates


_FORMULA = re.compile(FORMULA_START)
_FORMULA_FIRST = list("'=+-@\t\r")  # what a cell `FORMULA_START` matches begins with: the regex is skipped for a
# column where no cell does (most: a regex pass over a million URLs costs more than this check)


ESCAPED_START = r"^'('*[=+\-@\t\r])"  # a cell `escape_cell` changed; group 1 is the value's own start


_ESCAPED = re.compile(ESCAPED_START)


def escape_cell(value: Any) -> str:
    """``value`` as CSV cell text that no spreadsheet evaluates."""
    text = "" if value is None else str(value)
    return "'" + text if _FORMULA.match(text) else text


def unescape_cell(text: str) -> str:
    """The value `escape_cell` was given (reading back a CSV this package wrote)."""
    return _ESCAPED.sub(r"\1", text, count=1)


def csv_text(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> str:
    """A whole CSV document, every cell escaped and every escaped cell quoted (as OWASP recommends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)  # cells are all str: all quoted
    writer.writerow([escape_cell(v) for v in header])
    writer.writerows([escape_cell(v) for v in row] for row in rows)
    return buffer.getvalue()


def escape_table(table: pa.Table) -> pa.Table:
    """``table`` with every text cell and column name escaped, for Arrow's CSV writer (which quotes all text)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for column in table.columns:
        # text kept as a dictionary (a pandas Categorical saved to Parquet) or as views is text too: as plain text
        text = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        if _is_text(text) and not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            column = column.cast(pa.large_string() if pa.types.is_large_string(text) else pa.string())
        if (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)) and pc.any(pc.is_in(
                pc.utf8_slice_codeunits(column, 0, 1), value_set=pa.array(_FORMULA_FIRST, type=column.type))).as_py():
            column = pc.replace_substring_regex(column, pattern=FORMULA_START, replacement=r"'\1", max_replacements=1)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=[escape_cell(n) for n in table.column_names])


def _is_text(data_type: object) -> bool:
    import pyarrow as pa

    return pa.types.is_string(data_type) or pa.types.is_large_string(data_type) or pa.types.is_string_view(data_type)
