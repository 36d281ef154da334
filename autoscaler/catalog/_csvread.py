"""Small validated CSV reading for the catalogue's tables (and user-supplied profile files).

Every problem becomes an :class:`~autoscaler.errors.InputError` naming the file, the 1-based line and what was
expected; nothing here lets a ``ValueError`` or ``KeyError`` escape.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from autoscaler.errors import InputError

__all__ = ["Row", "parse_float", "parse_int", "read_rows"]


class Row:
    """One data row: its 1-based line number in the file and its fields by column name."""

    __slots__ = ("fields", "line", "source")

    def __init__(self, source: str, line: int, fields: dict[str, str]) -> None:
        self.source = source
        self.line = line
        self.fields = fields

    def text(self, column: str) -> str:
        """The raw text of ``column``."""
        return self.fields[column]

    def float(self, column: str, *, minimum: float | None = 0.0, allow_equal: bool = True) -> float:
        """``column`` as a finite float, at least ``minimum`` (strictly above it if not ``allow_equal``)."""
        return parse_float(
            self.fields[column],
            column=column,
            source=self.source,
            line=self.line,
            minimum=minimum,
            allow_equal=allow_equal,
        )

    def int(self, column: str, *, minimum: int | None = 0) -> int:
        """``column`` as an integer, at least ``minimum``."""
        return parse_int(
            self.fields[column], column=column, source=self.source, line=self.line, minimum=minimum
        )


def parse_float(
    text: str, *, column: str, source: str, line: int, minimum: float | None = 0.0, allow_equal: bool = True
) -> float:
    """Parse a finite float or raise InputError naming the column and what was expected."""
    bound = "" if minimum is None else (f" >= {minimum:g}" if allow_equal else f" > {minimum:g}")
    try:
        value = float(text)
    except ValueError:
        raise InputError(
            f"column {column}: expected a finite number{bound}, got {text!r}", source=source, line=line
        ) from None
    if not math.isfinite(value) or (
        minimum is not None and (value < minimum or (not allow_equal and value == minimum))
    ):
        raise InputError(
            f"column {column}: expected a finite number{bound}, got {text!r}", source=source, line=line
        )
    return value


def parse_int(text: str, *, column: str, source: str, line: int, minimum: int | None = 0) -> int:
    """Parse an integer (``"12"`` or ``"12.0"``), else raise InputError naming column and expectation."""
    bound = "" if minimum is None else f" >= {minimum}"
    try:
        value = int(text)
    except ValueError:
        try:
            as_float = float(text)
        except ValueError:
            as_float = math.nan
        if not (math.isfinite(as_float) and as_float.is_integer()):
            raise InputError(
                f"column {column}: expected an integer{bound}, got {text!r}", source=source, line=line
            ) from None
        value = int(as_float)
    if minimum is not None and value < minimum:
        raise InputError(
            f"column {column}: expected an integer{bound}, got {text!r}", source=source, line=line
        )
    return value


def read_rows(path: Path, required: Sequence[str]) -> list[Row]:
    """Read a CSV with a header; check the header has ``required`` and every row has the header's width.

    Raises:
        InputError: unreadable or empty file, missing columns, a row with the wrong number of fields.
    """
    source = str(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            lines = list(csv.reader(handle))
    except FileNotFoundError:
        raise InputError("file not found", source=source) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read the file: {exc}", source=source) from None
    if not lines or not any(lines[0]):
        raise InputError(
            f"empty file: expected a header with columns {','.join(required)}", source=source, line=1
        )
    header = [name.strip() for name in lines[0]]
    missing = [name for name in required if name not in header]
    if missing:
        raise InputError(
            f"header is missing column(s) {','.join(missing)}: expected columns {','.join(required)}, "
            f"got {','.join(header)}",
            source=source,
            line=1,
        )
    rows: list[Row] = []
    width = len(header)
    for number, fields in enumerate(lines[1:], start=2):
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # blank line
        if len(fields) != width:
            raise InputError(
                f"expected {width} fields ({','.join(header)}), got {len(fields)}"
                + (" (truncated row?)" if len(fields) < width else ""),
                source=source,
                line=number,
            )
        rows.append(
            Row(source, number, {name: value.strip() for name, value in zip(header, fields, strict=True)})
        )
    if not rows:
        raise InputError("no data rows after the header", source=source, line=2)
    return rows
