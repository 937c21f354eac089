"""Reading declaration tables: every value checked against the contract, every defect reported.

A declarations or rectified table (contract.md, sections 1 and 2) arrives as CSV (UTF-8, a
header row) or Parquet, chosen by the path's ending. This module reads it in chunks of at most
``chunk_rows`` rows so that a file of any size streams with bounded memory, checks each value
against the column's contract type, and hands back typed pandas frames:

========  ===========================================================================
contract  pandas
========  ===========================================================================
string    ``str`` dtype, kept verbatim (white space and leading zeros included); an empty
          or null value is ``""``, never NaN ("empty string = not declared")
integer   ``int64`` (``item_no``, from 1)
date      ``datetime64[s]`` (:data:`DATE_DTYPE`); an empty value is NaT
number    ``float64``; an empty value is NaN
========  ===========================================================================

Nothing is lost on the way: a CSV is read with every column as text and parsed here, so
"01012100" stays a string with its zero, and "1,5" is an error instead of a silent NaN.

Defects are collected, not raised one at a time: a user fixes a file in one go. Every
defect is a :class:`sisam.errors.Problem` naming the file, the row and the column, with a
message in four parts (what, where, expected, got). **Rows are data rows counted from 1, the
header excluded**: row 1 is the first line after the header, as a user counts records in the
file (a spreadsheet shows row N on its line N + 1). When a file has problems, one
:class:`sisam.errors.InputError` carries them all (the first :data:`MAX_PROBLEMS`; reading
stops there), and :func:`iter_declarations` stops yielding chunks at the first problem, so a
consumer that writes its results only after the loop (``sisam.tables.write_tables``) writes
nothing from a bad file.

The checks:

- header: every contract column present, none repeated; any other column is refused unless
  its name starts with ``x_`` (:data:`EXTENSION_PREFIX`), the documented way to carry an
  optional extension column, which is passed through untouched (as text from a CSV);
- ``item_no``: a whole number >= 1; ``declaration_id`` and ``item_no``: not empty;
- dates: ``YYYY-MM-DD`` and a real calendar day (2023-02-30 is refused);
- numbers: a decimal number with a dot (``1234.5``, ``1e6``), finite, or empty;
- fixed-width codes (:data:`sisam.contract.FIXED_WIDTH_CODES`, ``hs_code``: 8 digits) or
  empty: "1012100" is a tariff line that lost its leading zero to a spreadsheet;
- Parquet: string columns must be stored as strings, because a number column has already
  dropped the leading zeros a code or a declaration number needs; typed integer, number and
  date columns are accepted as they are;
- keys: each (``declaration_id``, ``item_no``) once in the file, across chunks too; and with
  :func:`check_pair`/:func:`read_pair`, each rectified item must have a declared item.

A CSV row whose every field is empty (a blank line) is skipped but still counted. Repeated
keys are found with a 64-bit hash of the key per row (16 bytes a row, the file's data is not
kept); two different keys share a hash with a probability below 1e-5 for 10^7 rows.
"""

from __future__ import annotations

import csv
import difflib
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from sisam.contract import COLUMNS, FIXED_WIDTH_CODES, KEY
from sisam.errors import InputError, Problem

log = logging.getLogger("sisam.declarations")

KINDS = ("declarations", "rectified")
#: Problems collected from one file before reading stops.
MAX_PROBLEMS = 200
#: Columns outside the contract are accepted only with this prefix (contract: "extend only
#: with optional columns"); a misspelt contract column is thus never taken for an extension.
EXTENSION_PREFIX = "x_"
DATE_DTYPE = "datetime64[s]"
DEFAULT_CHUNK_ROWS = 500_000

_KEY_COLUMN = ", ".join(KEY)  # the "column" of a problem about the whole key
_INTEGER_RE = r"^[0-9]{1,18}$"  # 18 digits always fit int64
_DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_NUMBER_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def _got(value: object) -> str:
    """A value as shown in a message: quoted, and short enough to read."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(what: str, expected: str, got: str, remedy: str = "") -> str:
    """The four-part message (the Problem carries the fourth part, where)."""
    return f"{what}: expected {expected}; got {got}" + (f". {remedy[0].upper()}{remedy[1:]}" if remedy else "")


# --- where a problem is, while a file is being read -------------------------------------------


@dataclass
class _Pending:
    """A problem found at a parsed row index, turned into a Problem once the file is read.

    CSV rows with the wrong number of fields are skipped by the parser, so a parsed index is
    mapped to a file row only at the end, when every skipped row is known. ``ref`` is another
    parsed index the message names (the first occurrence of a repeated key).
    """

    index: int | None
    column: str | None
    message: str
    ref: int | None = None


_REF = "\x00ref\x00"  # where the row number of ``ref`` goes in a pending message


@dataclass
class _Report:
    """Problems of one file, capped at ``limit``."""

    file: str
    limit: int
    pending: list[_Pending] = field(default_factory=list)
    placed: list[Problem] = field(default_factory=list)  # problems already at a file row
    skipped_rows: list[int] = field(default_factory=list)  # file rows the CSV parser skipped
    truncated: bool = False

    def __bool__(self) -> bool:
        return bool(self.pending or self.placed)

    @property
    def full(self) -> bool:
        return len(self.pending) + len(self.placed) >= self.limit

    def add(self, problems: list[_Pending]) -> None:
        room = max(self.limit - len(self.pending) - len(self.placed), 0)
        if len(problems) > room:
            self.truncated = True
        self.pending.extend(problems[:room])

    def file_row(self, index: int) -> int:
        row = index + 1
        for skipped in self.skipped_rows:  # sorted
            if skipped > row:
                break
            row += 1
        return row

    def problems(self) -> list[Problem]:
        """Every problem at its file row, whole-file problems first, then by row."""
        out = list(self.placed)
        for p in self.pending:
            message = p.message
            if p.ref is not None:
                message = message.replace(_REF, str(self.file_row(p.ref)))
            row = None if p.index is None else self.file_row(p.index)
            out.append(Problem(self.file, row, p.column, message))
        out.sort(key=lambda p: (p.row is not None, p.row or 0))
        out = out[: self.limit]
        if self.truncated or len(out) < len(self.placed) + len(self.pending):
            out.append(Problem(self.file, None, None, f"stopped after {self.limit} problems; "
                               "fix these and read the file again to see the rest"))
        return out


# --- sources: CSV and Parquet as a stream of Arrow tables ------------------------------------


@dataclass
class _Source:
    names: list[str]
    types: dict[str, pa.DataType] | None  # Parquet's stored types; None for CSV (all text)
    tables: Iterator[pa.Table]
    malformed: list[pa_csv.InvalidRow]  # CSV rows the parser skipped, their numbers unknown


def _open_csv(path: Path, report: _Report, chunk_rows: int) -> _Source | None:
    try:
        # Decode line by line: a text-mode read ahead would blame the header for a bad byte
        # further down, which pyarrow reports with the rows.
        with open(path, "rb") as f:
            header = next(csv.reader(line.decode("utf-8-sig") for line in f), None)
    except UnicodeDecodeError as e:
        report.add([_Pending(None, None, _message(
            "the header is not UTF-8 text", "a UTF-8 CSV file",
            f"the byte {e.object[e.start:e.start + 1]!r}, not UTF-8 (Latin-1 or Windows-1252?)",
            "save the file as CSV UTF-8"))])
        return None
    if not header:
        report.add([_Pending(None, None, _message(
            "the file has no header", "a first line naming the columns", "an empty file"))])
        return None
    malformed: list[pa_csv.InvalidRow] = []

    def on_invalid_row(row: pa_csv.InvalidRow) -> str:
        # The streaming parser does not know the row's number; the rows are located after
        # the read (_locate_malformed_rows) so that every later row keeps its right number.
        malformed.append(row)
        return "skip"

    if len(set(header)) != len(header):
        return _Source(header, None, iter(()), malformed)  # refused by _check_header
    expected = "a UTF-8 CSV file whose quotes are closed"
    try:
        reader = _open_csv_reader(path, header, on_invalid_row)
    except pa.ArrowInvalid as e:  # the first block is parsed on opening
        report.add([_unreadable(e, 0, expected, header)])
        return None
    tables = _guarded((pa.Table.from_batches([batch]) for batch in reader), report, expected, header)
    return _Source(header, None, _rechunk(tables, chunk_rows), malformed)


def _open_csv_reader(
    path: Path, header: list[str], on_invalid_row: Callable[[pa_csv.InvalidRow], str]
) -> pa_csv.CSVStreamingReader:
    return pa_csv.open_csv(
        path,
        # pyarrow's 1 MiB blocks parse faster than larger ones (measured); _rechunk joins them.
        read_options=pa_csv.ReadOptions(),
        # Blank lines become rows of empty fields rather than vanishing, so row numbers
        # stay those of the file; _convert drops them.
        parse_options=pa_csv.ParseOptions(
            newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=on_invalid_row
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False
        ),
    )


def _open_parquet(path: Path, report: _Report, chunk_rows: int) -> _Source | None:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        report.add([_Pending(None, None, _message(
            "not a readable Parquet file", "a Parquet file (or a .csv path for CSV)", str(e)))])
        return None
    schema = parquet.schema_arrow
    types = {name: schema.field(name).type for name in schema.names}
    tables = _guarded((pa.Table.from_batches([b]) for b in parquet.iter_batches(batch_size=chunk_rows)),
                      report, "an intact Parquet file", list(schema.names))
    return _Source(list(schema.names), types, _rechunk(tables, chunk_rows), [])


def _guarded(
    tables: Iterator[pa.Table], report: _Report, expected: str, names: list[str]
) -> Iterator[pa.Table]:
    """The tables of a source, until a defect the parser cannot step over (a byte that is not
    UTF-8, a quote never closed, a damaged Parquet page), which becomes a problem."""
    rows = 0
    try:
        for table in tables:
            rows += table.num_rows
            yield table
    except (pa.ArrowInvalid, OSError) as e:
        report.add([_unreadable(e, rows, expected, names)])


def _unreadable(error: Exception, rows: int, expected: str, names: list[str]) -> _Pending:
    """The parser's own words, with the column it names ("In CSV column #10") by its name."""
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    match = re.match(r"In CSV column #(\d+)", detail)
    column = names[int(match.group(1))] if match and int(match.group(1)) < len(names) else None
    # Rows are parsed a block at a time: the defect is somewhere after the rows read whole.
    return _Pending(None, column, _message(
        f"the file cannot be read beyond data row {rows}", expected, detail))


def _rechunk(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    """Tables of exactly ``rows`` rows (the last one shorter), whatever the parser's blocks."""
    pending: list[pa.Table] = []
    n = 0
    for table in tables:
        pending.append(table)
        n += table.num_rows
        while n >= rows:
            whole = pa.concat_tables(pending)
            yield whole.slice(0, rows).combine_chunks()
            rest = whole.slice(rows)
            pending, n = [rest], rest.num_rows
    if n:
        yield pa.concat_tables(pending).combine_chunks()


def _locate_malformed_rows(path: Path, n_columns: int) -> list[tuple[int, int]]:
    """(row, fields) of every CSV row whose field count differs from the header's.

    Run only when the fast parser skipped rows: Python's csv module counts rows, which the
    streaming parser cannot.
    """
    found = []
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        next(reader)
        for row, fields in enumerate(reader, start=1):
            if fields and len(fields) != n_columns:
                found.append((row, len(fields)))
    return found


# --- the header -------------------------------------------------------------------------------


def _closest(name: str, candidates: list[str] | tuple[str, ...]) -> str:
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _check_header(names: list[str], kind: str) -> list[_Pending]:
    problems = []
    seen: set[str] = set()
    for name in names:
        if name in seen:
            problems.append(_Pending(None, name, _message(
                "repeated column", "each column once in the header", f"{name!r} twice or more")))
        seen.add(name)
    for name in COLUMNS:
        if name not in seen:
            problems.append(_Pending(None, name, _message(
                f"column missing from the {kind} table",
                "every contract column (shared/contract.md, section 1)",
                "a header without it" + _closest(name, [n for n in names if n not in COLUMNS]))))
    for name in dict.fromkeys(names):
        if name not in COLUMNS and not name.startswith(EXTENSION_PREFIX):
            problems.append(_Pending(None, name, _message(
                "unknown column",
                f"contract columns only, or optional extension columns named {EXTENSION_PREFIX}*",
                _got(name) + _closest(name, tuple(COLUMNS)),
                f"rename it to {EXTENSION_PREFIX + name!r} to keep it, or remove it")))
    return problems


def _check_stored_types(types: dict[str, pa.DataType]) -> list[_Pending]:
    """Parquet columns whose stored type cannot hold their contract type losslessly."""
    problems = []
    for name, kind in COLUMNS.items():
        if name not in types:
            continue
        stored = _value_type(types[name])
        if _is_text(stored) or pa.types.is_null(stored):
            continue
        if kind == "string":
            numeric = pa.types.is_integer(stored) or pa.types.is_floating(stored)
            lost = " (leading zeros were lost)" if numeric else ""
            problems.append(_Pending(None, name, _message(
                "text column stored as a non-text Parquet type",
                "a string column, so that codes keep their leading zeros",
                f"a column of type {stored}{lost}",
                "write the column as text (e.g. pandas dtype str)")))
        elif kind == "integer" and not (pa.types.is_integer(stored) or pa.types.is_floating(stored)):
            problems.append(_Pending(None, name, _message(
                "integer column of an unusable Parquet type", "an integer or string column",
                f"a column of type {stored}")))
        elif kind == "number" and not (
            pa.types.is_integer(stored) or pa.types.is_floating(stored) or pa.types.is_decimal(stored)
        ):
            problems.append(_Pending(None, name, _message(
                "number column of an unusable Parquet type", "a float, integer, decimal or string column",
                f"a column of type {stored}")))
        elif kind == "date" and not (pa.types.is_date(stored) or _is_naive_timestamp(stored)):
            problems.append(_Pending(None, name, _message(
                "date column of an unusable Parquet type",
                "a date, a timestamp without time zone, or YYYY-MM-DD strings", f"a column of type {stored}")))
    return problems


def _value_type(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_naive_timestamp(t: pa.DataType) -> bool:
    return pa.types.is_timestamp(t) and t.tz is None


# --- values -----------------------------------------------------------------------------------

# A converter takes a column of one chunk and returns the converted column and the
# problems, as (index within the chunk, message); at most `limit` problems.
_Found = list[tuple[int, str]]


def _first(mask: pa.ChunkedArray | pa.Array | np.ndarray, limit: int) -> np.ndarray:
    if not isinstance(mask, np.ndarray):
        mask = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
    return np.flatnonzero(mask)[:limit]


def _values_at(column: pa.ChunkedArray | pa.Array, idx: np.ndarray) -> list[object]:
    return column.take(pa.array(idx, pa.int64())).to_pylist()


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A text or all-null column as strings with "" for null."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return pc.fill_null(column.cast(pa.string()), "")


def _string(name: str, column: pa.ChunkedArray, limit: int) -> tuple[pa.ChunkedArray, _Found]:
    text = _as_text(column)
    found: _Found = []
    if name in KEY:
        for i in _first(pc.equal(text, ""), limit):
            found.append((int(i), _message(
                f"empty {name}", "a value: it is part of the item key (declaration_id, item_no)",
                "an empty value")))
    width = FIXED_WIDTH_CODES.get(name)
    if width is not None:
        ok = pc.or_(pc.equal(text, ""), pc.match_substring_regex(text, f"^[0-9]{{{width}}}$"))
        bad = _first(pc.invert(ok), limit)
        for i, value in zip(bad, _values_at(text, bad), strict=True):
            found.append((int(i), _message(
                f"{name} is not a code of {width} digits",
                f"exactly {width} digits, or an empty value",
                _got(value) + _fixed_width_hint(str(value), width),
                "store the column as text so that leading zeros survive")))
    return text, found


def _fixed_width_hint(value: str, width: int) -> str:
    digits = value[:-2] if value.endswith(".0") else value
    if digits.isdigit() and len(digits) < width:
        return f" ({len(digits)} digits: {width - len(digits)} leading zero(s) probably lost)"
    return ""


def _integer(name: str, column: pa.ChunkedArray, limit: int) -> tuple[pa.ChunkedArray, _Found]:
    found: _Found = []
    stored = column.type
    if pa.types.is_integer(stored) or pa.types.is_floating(stored) or pa.types.is_null(stored):
        values = column.cast(pa.float64())
        missing = pc.is_null(values, nan_is_null=True)
        whole = pc.and_(pc.equal(pc.floor(values), values), pc.less(pc.abs(values), 2.0**62))
        bad = pc.and_(pc.invert(missing), pc.invert(whole))
        shown = values
        integers = pc.if_else(pc.or_(missing, bad), 0.0, values).cast(pa.int64())
    else:
        text = pc.utf8_trim_whitespace(_as_text(column))
        missing = pc.equal(text, "")
        bad = pc.and_(pc.invert(missing), pc.invert(pc.match_substring_regex(text, _INTEGER_RE)))
        shown = text
        integers = pc.if_else(pc.or_(missing, bad), "0", text).cast(pa.int64())
    below = pc.and_(pc.invert(pc.or_(missing, bad)), pc.less(integers, 1))
    for i in _first(missing, limit):
        found.append((int(i), _message(
            f"empty {name}", "a whole number from 1: it is part of the item key", "an empty value")))
    idx = _first(bad, limit)
    for i, value in zip(idx, _values_at(shown, idx), strict=True):
        found.append((int(i), _message(f"{name} is not a whole number", "a whole number from 1, e.g. 3",
                                       _got(value))))
    idx = _first(below, limit)
    for i, value in zip(idx, _values_at(integers, idx), strict=True):
        found.append((int(i), _message(f"{name} below 1", "a whole number from 1 (items count from 1)",
                                       _got(value))))
    return integers, found


def _number(name: str, column: pa.ChunkedArray, limit: int) -> tuple[pa.ChunkedArray, _Found]:
    found: _Found = []
    from_text = _is_text(_value_type(column.type))
    if from_text:
        text = pc.utf8_trim_whitespace(_as_text(column))
        present = pc.not_equal(text, "")
        try:
            values = pc.if_else(present, text, pa.scalar(None, pa.string())).cast(pa.float64())
        except pa.ArrowInvalid:
            # The fast cast refuses the whole chunk; find the culprits and cast the rest.
            parsable = pc.match_substring_regex(text, _NUMBER_RE)
            bad = pc.and_(present, pc.invert(parsable))
            idx = _first(bad, limit)
            for i, value in zip(idx, _values_at(text, idx), strict=True):
                found.append((int(i), _message(
                    f"{name} is not a number",
                    "a decimal number with a dot (e.g. 1234.5) or an empty value", _got(value))))
            values = pc.if_else(parsable, text, pa.scalar(None, pa.string())).cast(pa.float64())
    else:
        values = column.cast(pa.float64())
    not_finite = pc.invert(pc.is_finite(values))
    if not from_text:
        # NaN in a typed float column is how pandas writes "empty"; "nan" in a text is not.
        not_finite = pc.and_(not_finite, pc.invert(pc.is_nan(values)))
    idx = _first(not_finite, limit)
    for i, value in zip(idx, _values_at(values, idx), strict=True):
        found.append((int(i), _message(f"{name} is not a finite number",
                                       "a finite decimal number or an empty value", _got(value))))
    return values, found


def _date(name: str, column: pa.ChunkedArray, limit: int) -> tuple[pa.ChunkedArray, _Found]:
    found: _Found = []
    stored = _value_type(column.type)
    if pa.types.is_date(stored) or pa.types.is_timestamp(stored):
        # A timestamp keeps its day: the contract's dates have no time of day.
        return column.cast(pa.date32()).cast(pa.timestamp("s")), found
    text = pc.utf8_trim_whitespace(_as_text(column))
    present = pc.not_equal(text, "")
    shaped = pc.match_substring_regex(text, _DATE_RE)
    candidates = pc.if_else(shaped, text, pa.scalar(None, pa.string()))
    try:
        # The ISO 8601 cast refuses days that do not exist (2023-02-29), and is fast.
        parsed = candidates.cast(pa.timestamp("s"))
        real = shaped
    except pa.ArrowInvalid:
        # strptime rolls 2023-02-30 over to March; a real day formats back to the same text.
        parsed = pc.strptime(candidates, format="%Y-%m-%d", unit="s", error_is_null=True)
        real = pc.fill_null(pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), text), False)
        parsed = pc.if_else(real, parsed, pa.scalar(None, pa.timestamp("s")))
    idx = _first(pc.and_(present, pc.invert(shaped)), limit)
    for i, value in zip(idx, _values_at(text, idx), strict=True):
        found.append((int(i), _message(f"{name} is not a YYYY-MM-DD date", "a date such as 2024-03-01",
                                       _got(value))))
    idx = _first(pc.and_(shaped, pc.invert(real)), limit)
    for i, value in zip(idx, _values_at(text, idx), strict=True):
        found.append((int(i), _message(f"{name} is not a calendar day",
                                       "a day that exists, e.g. 2024-02-29 but not 2023-02-29",
                                       _got(value))))
    return parsed, found


_CONVERTERS: dict[str, Callable[[str, pa.ChunkedArray, int], tuple[pa.ChunkedArray, _Found]]] = {
    "string": _string,
    "integer": _integer,
    "number": _number,
    "date": _date,
}


def _convert(
    table: pa.Table, names: list[str], limit: int
) -> tuple[pa.Table, list[_Pending], np.ndarray | None]:
    """One chunk checked and converted: contract columns in contract order, then extensions.

    Returns the converted table, the problems (at indices within the chunk) and which rows
    have a usable key (None when a key column is missing).
    """
    pending: list[_Pending] = []
    columns: dict[str, pa.ChunkedArray] = {}
    for name, kind in COLUMNS.items():
        if name in names:
            columns[name], found = _CONVERTERS[kind](name, table.column(name), limit)
            pending.extend(_Pending(i, name, message) for i, message in found)
    for name in names:
        if name.startswith(EXTENSION_PREFIX) and name not in COLUMNS:
            column = table.column(name)
            # From a CSV an extension is text like every other column; a Parquet one keeps its type.
            columns[name] = _as_text(column) if _is_text(_value_type(column.type)) else column
    converted = pa.table(columns)
    key_ok = None
    if all(k in columns for k in KEY):
        # _integer gives 0 for an empty or broken item_no; all of them are reported already.
        ok = pc.and_(pc.not_equal(columns["declaration_id"], ""), pc.greater_equal(columns["item_no"], 1))
        key_ok = pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
    return converted, pending, key_ok


def _blank_rows(table: pa.Table) -> np.ndarray:
    """Rows of a CSV chunk whose every field is empty: blank lines."""
    names = table.column_names
    candidates = pc.equal(table.column(names[0]), "")
    for name in names[1:]:
        if not pc.any(candidates).as_py():
            break
        candidates = pc.and_(candidates, pc.equal(table.column(name), ""))
    return pc.fill_null(candidates, False).to_numpy(zero_copy_only=False)


# --- keys ------------------------------------------------------------------------------------


class _KeySet:
    """Hashes of item keys seen so far, with the parsed row of each: a few sorted runs.

    Runs are merged when a newer run is at least as long as the one before (as in a
    log-structured merge), so adding n keys costs O(n log n) and a look-up searches
    O(log n) runs, whatever the number of chunks.
    """

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return sum(len(h) for h, _ in self._runs)

    def find(self, hashes: np.ndarray) -> np.ndarray:
        """Parsed row holding each hash, or -1."""
        rows = np.full(len(hashes), -1, dtype=np.int64)
        for run_hashes, run_rows in self._runs:
            pos = np.searchsorted(run_hashes, hashes)
            pos[pos == len(run_hashes)] = 0
            hit = (run_hashes[pos] == hashes) if len(run_hashes) else np.zeros(len(hashes), bool)
            rows[hit] = run_rows[pos[hit]]
        return rows

    def add(self, hashes: np.ndarray, rows: np.ndarray) -> None:
        """Add hashes not already present, each once."""
        order = np.argsort(hashes, kind="stable")
        run = (hashes[order], rows[order])
        while self._runs and len(self._runs[-1][0]) <= len(run[0]):
            last = self._runs.pop()
            merged = np.concatenate([last[0], run[0]])
            order = np.argsort(merged, kind="stable")
            run = (merged[order], np.concatenate([last[1], run[1]])[order])
        self._runs.append(run)


def _key_hashes(declaration_ids: pa.ChunkedArray, item_nos: pa.ChunkedArray) -> np.ndarray:
    keys = pd.DataFrame({"d": declaration_ids.to_numpy(), "i": item_nos.to_numpy()})
    return pd.util.hash_pandas_object(keys, index=False).to_numpy()


def _check_keys(
    table: pa.Table,
    valid: np.ndarray,
    offset: int,
    seen: _KeySet,
    declared: _KeySet | None,
    declared_file: str,
    limit: int,
) -> list[_Pending]:
    """Repeated keys (within the file) and, for a rectified file, keys never declared.

    ``valid`` marks the rows of the chunk whose key is whole (others are reported already);
    ``offset`` is the parsed index of the chunk's first row.
    """
    local = np.flatnonzero(valid)
    ids = table.column("declaration_id").take(pa.array(local, pa.int64()))
    nos = table.column("item_no").take(pa.array(local, pa.int64()))
    hashes = _key_hashes(ids, nos)
    rows = local + offset

    # First occurrence of each hash within the chunk: sort, then carry each group's start.
    order = np.argsort(hashes, kind="stable")
    sorted_hashes = hashes[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = sorted_hashes[1:] != sorted_hashes[:-1]
    first_in_chunk = np.empty(len(order), dtype=np.int64)
    first_in_chunk[order] = order[np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))]
    earlier = seen.find(hashes)
    repeated = (earlier >= 0) | (first_in_chunk != np.arange(len(order)))
    first_row = np.where(earlier >= 0, earlier, rows[first_in_chunk])

    pending = []
    for j in np.flatnonzero(repeated)[:limit]:
        pending.append(_Pending(int(rows[j]), _KEY_COLUMN, _message(
            "repeated item key", "each (declaration_id, item_no) once",
            f"({ids[int(j)].as_py()!r}, {nos[int(j)].as_py()}) again, first at row {_REF}"),
            ref=int(first_row[j])))
    seen.add(hashes[~repeated], rows[~repeated])
    if declared is not None:
        for j in np.flatnonzero(declared.find(hashes) < 0)[:limit]:
            pending.append(_Pending(int(rows[j]), _KEY_COLUMN, _message(
                "rectified item without a declared item",
                f"a (declaration_id, item_no) of {declared_file}",
                f"({ids[int(j)].as_py()!r}, {nos[int(j)].as_py()})",
                "the rectified table holds inspected items of the declarations table only")))
    return pending


# --- the scan ---------------------------------------------------------------------------------


class _Scan:
    """One pass over one file: converted chunks while the file is clean, problems always.

    ``declared`` holds the keys of the declarations file when this is its rectified file:
    each rectified key must be one of them.
    """

    def __init__(self, path: str | os.PathLike[str], kind: str, chunk_rows: int, max_problems: int,
                 declared: _KeySet | None = None, declared_file: str = ""):
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1; got {chunk_rows}")
        self.path = Path(path)
        self.kind = kind
        self.chunk_rows = chunk_rows
        self.report = _Report(str(path), max_problems)
        self.keys = _KeySet()
        self.declared = declared
        self.declared_file = declared_file
        self.rows = 0

    def tables(self) -> Iterator[pa.Table]:
        """Converted chunks, none after the first problem; problems are left in the report."""
        source = self._open()
        if source is None:
            return
        if len(set(source.names)) != len(source.names):
            self.report.add(_check_header(source.names, self.kind))
            return  # columns cannot be told apart
        self.report.add(_check_header(source.names, self.kind))
        unusable: set[str] = set()
        if source.types is not None:
            stored = _check_stored_types(source.types)
            self.report.add(stored)
            unusable = {p.column for p in stored if p.column is not None}
        names = [n for n in source.names if n not in unusable]
        parsed = 0
        for raw in source.tables:
            if self.report.full:
                self.report.truncated = True
                break
            table, pending, key_ok = _convert(raw, names, self.report.limit)
            # Blank CSV lines have no problems of their own and are no items.
            blank = _blank_rows(raw) if source.types is None else np.zeros(raw.num_rows, bool)
            pending = [p for p in pending if p.index is None or not blank[p.index]]
            for p in pending:
                p.index = None if p.index is None else p.index + parsed
            if key_ok is not None:
                pending += _check_keys(table, key_ok & ~blank, parsed, self.keys, self.declared,
                                       self.declared_file, self.report.limit)
            if blank.any():
                table = table.filter(pa.array(~blank))
            self.report.add(pending)
            parsed += raw.num_rows
            if not self.report and not source.malformed:
                self.rows += table.num_rows
                yield table
        if source.malformed:
            self._place_malformed(len(source.names))
        if not self.report:
            log.info("read %d %s rows from %s", self.rows, self.kind, self.path)

    def _open(self) -> _Source | None:
        suffix = self.path.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            self.report.add([_Pending(None, None, _message(
                "unknown table format", "a path ending in .csv or .parquet", _got(self.path.suffix)))])
            return None
        if not self.path.is_file():
            self.report.add([_Pending(None, None, _message(
                f"{self.kind} file not found", "an existing file", _got(str(self.path))))])
            return None
        if suffix == ".csv":
            return _open_csv(self.path, self.report, self.chunk_rows)
        return _open_parquet(self.path, self.report, self.chunk_rows)

    def _place_malformed(self, n_columns: int) -> None:
        located = _locate_malformed_rows(self.path, n_columns)
        self.report.skipped_rows = [row for row, _ in located]
        for row, fields in located[: self.report.limit]:
            self.report.placed.append(Problem(self.report.file, row, None, _message(
                "row with the wrong number of fields", f"{n_columns} fields, one per header column",
                f"{fields} (an unquoted separator or quote in a value?)")))
        if len(located) > self.report.limit:
            self.report.truncated = True

    def raise_problems(self) -> None:
        if self.report:
            raise InputError(self.report.problems())


def _to_pandas(table: pa.Table, start: int) -> pd.DataFrame:
    frame = table.to_pandas()
    frame.index = pd.RangeIndex(start, start + len(frame))
    return frame


def iter_declarations(
    path: str | os.PathLike[str],
    *,
    kind: str = "declarations",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_problems: int = MAX_PROBLEMS,
) -> Iterator[pd.DataFrame]:
    """Yield a declarations (or rectified) file as checked, typed chunks of <= chunk_rows rows.

    Memory holds one chunk (plus 16 bytes a row for the key check); a Parquet file is
    decoded a row group at a time, so its row groups bound memory too
    (``sisam.tables.write_table`` writes groups of 131,072 rows). Chunks follow the file's
    order; their index continues from one chunk to the next, so ``pd.concat`` of all chunks
    equals :func:`read_declarations`. Blank CSV lines are dropped.

    If the file has any problem, no further chunk is yielded and, once the file is read (up
    to ``max_problems`` problems), :class:`~sisam.errors.InputError` is raised with all of
    them. Chunks yielded before may come from a bad file: write results only after the loop
    ends (``sisam.tables.write_tables``).
    """
    scan = _Scan(path, kind, chunk_rows, max_problems)
    start = 0
    for table in scan.tables():
        yield _to_pandas(table, start)
        start += table.num_rows
    scan.raise_problems()


def read_declarations(
    path: str | os.PathLike[str],
    *,
    kind: str = "declarations",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_problems: int = MAX_PROBLEMS,
) -> pd.DataFrame:
    """The whole file as one checked, typed frame (see the module docstring for dtypes).

    Raises :class:`~sisam.errors.InputError` listing every problem (up to ``max_problems``).
    """
    scan = _Scan(path, kind, chunk_rows, max_problems)
    tables = list(scan.tables())
    scan.raise_problems()
    return _frame(tables)


def _frame(tables: list[pa.Table]) -> pd.DataFrame:
    if tables:
        return _to_pandas(pa.concat_tables(tables), 0)
    return pd.DataFrame({name: pd.Series(dtype=_EMPTY_DTYPES[kind]) for name, kind in COLUMNS.items()})


_EMPTY_DTYPES = {"string": "str", "integer": "int64", "date": DATE_DTYPE, "number": "float64"}


def check_table(table: pa.Table, file: str, rows: np.ndarray, *, max_problems: int = MAX_PROBLEMS) -> pd.DataFrame:
    """An Arrow table already in memory (a partition of a distributed read), checked and typed
    as :func:`read_declarations` checks and types a file's chunk; ``rows`` int64[n] are the
    file rows (1-based) of its rows, for the problems. Checks of the whole file (header,
    repeated keys) are the reader's: a partition sees part of it only.

    Raises :class:`~sisam.errors.InputError` naming ``file``, row and column."""
    converted, pending, _ = _convert(table, list(table.column_names), max_problems)
    if pending:
        raise InputError([Problem(file, None if p.index is None else int(rows[p.index]), p.column,
                                  p.message) for p in pending[:max_problems]])
    return converted.to_pandas()


class PairSize(NamedTuple):
    """Rows of a checked (declarations, rectified) pair."""

    declared: int
    rectified: int


def _scan_pair(
    declarations_path: str | os.PathLike[str],
    rectified_path: str | os.PathLike[str],
    chunk_rows: int,
    max_problems: int,
    keep: bool,
) -> tuple[list[pa.Table], list[pa.Table], PairSize]:
    first = _Scan(declarations_path, "declarations", chunk_rows, max_problems)
    declared = [t for t in first.tables() if keep]
    # A declarations file with problems has an incomplete key set, against which every
    # rectified item could look undeclared: then the rectified file is checked on its own.
    second = _Scan(rectified_path, "rectified", chunk_rows, max_problems,
                   declared=None if first.report else first.keys, declared_file=str(declarations_path))
    rectified = [t for t in second.tables() if keep]
    problems = (first.report.problems() if first.report else []) + (
        second.report.problems() if second.report else [])
    if problems:
        raise InputError(problems)
    return declared, rectified, PairSize(first.rows, second.rows)


def check_pair(
    declarations_path: str | os.PathLike[str],
    rectified_path: str | os.PathLike[str],
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_problems: int = MAX_PROBLEMS,
) -> PairSize:
    """Check a declarations file and its rectified file together, keeping no data.

    Besides each file's own checks, every rectified item must be a declared item (the
    rectified table holds the inspected items, contract.md section 2). Raises one
    :class:`~sisam.errors.InputError` with the problems of both files; returns the row
    counts when both are clean.
    """
    return _scan_pair(declarations_path, rectified_path, chunk_rows, max_problems, keep=False)[2]


def read_pair(
    declarations_path: str | os.PathLike[str],
    rectified_path: str | os.PathLike[str],
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_problems: int = MAX_PROBLEMS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`check_pair`, returning both tables as frames (for ``sisam.labels.label_matrix``)."""
    declared, rectified, _ = _scan_pair(declarations_path, rectified_path, chunk_rows,
                                        max_problems, keep=True)
    return _frame(declared), _frame(rectified)
