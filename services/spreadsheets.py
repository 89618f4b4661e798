"""Excel workbooks of report tables (openpyxl): a title, what the table covers and who exported
it when, the header row frozen, numbers as numbers and rates as percentages."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Column:
    header: str
    width: int = 12
    # "0.0%" for a rate; None for text and whole numbers.
    number_format: str | None = None


def workbook(
    title: str,
    about: Sequence[str],
    columns: Sequence[Column],
    rows: Sequence[Sequence[str | int | float | None]],
) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31]  # Excel's limit on a sheet's name
    sheet.append([title])
    sheet["A1"].font = Font(bold=True, size=14)
    for line in about:
        sheet.append([line])
    sheet.append([])
    header_row = sheet.max_row + 1
    sheet.append([c.header for c in columns])
    for cell in sheet[header_row]:
        cell.font = Font(bold=True)
    for values in rows:
        sheet.append(list(values))
        for index, column in enumerate(columns, start=1):
            written = sheet.cell(row=sheet.max_row, column=index)
            if column.number_format and isinstance(written.value, int | float):
                written.number_format = column.number_format
    for index, column in enumerate(columns, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    sheet.freeze_panes = f"A{header_row + 1}"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
