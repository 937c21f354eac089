"""Reading declaration tables: one test per defect, each naming file, row and column."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sisam.contract import COLUMNS
from sisam.declarations import (
    DATE_DTYPE,
    PairSize,
    check_pair,
    iter_declarations,
    read_declarations,
    read_pair,
)
from sisam.errors import InputError, Problem, SisamError
from sisam.tables import write_table, write_tables

FORMATS = ("csv", "parquet")


def items(n: int = 6) -> pd.DataFrame:
    """n valid items of three declarations, with the values that break careless readers."""
    rng = np.random.default_rng(7)
    data: dict[str, object] = {}
    for column, kind in COLUMNS.items():
        if kind == "string":
            data[column] = pd.Series([f"{column[:3]}-{i % 4}" for i in range(n)], dtype="str")
        elif kind == "number":
            data[column] = rng.lognormal(3, 2, n)
    data["declaration_id"] = pd.Series([f"00{i // 2:04d}" for i in range(n)], dtype="str")
    data["item_no"] = np.arange(n, dtype=np.int64) % 2 + 1
    data["date"] = pd.Series(pd.to_datetime(["2024-02-29"] * n)).astype(DATE_DTYPE)
    data["hs_code"] = pd.Series(["01012100", "84713012"] * (n // 2) + ["01012100"] * (n % 2), dtype="str")
    frame = pd.DataFrame(data)[list(COLUMNS)]
    frame.loc[0, "description"] = 'horses, "live"\nfor breeding'  # separator, quotes, newline
    frame.loc[1, "description"] = "  padded  "  # kept verbatim: trimming is the rules' business
    frame.loc[1, "import_licence"] = ""  # empty = not declared
    frame.loc[2, "freight_usd"] = np.nan
    frame.loc[3, "quantity"] = 0.1 + 0.2  # a float whose shortest text has 17 digits
    frame.loc[4, "origin_country"] = "CÔ"
    return frame


def as_text(frame: pd.DataFrame) -> list[dict[str, str]]:
    """Rows as a CSV holds them, so a test can break one cell exactly as a user's file would."""
    rows = []
    for record in frame.to_dict("records"):
        row = {}
        for column, value in record.items():
            if isinstance(value, pd.Timestamp):
                row[column] = value.strftime("%Y-%m-%d")
            elif isinstance(value, float):
                row[column] = "" if np.isnan(value) else repr(value)
            else:
                row[column] = str(value)
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    header = header or list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(column, "") for column in header])
    return path


def csv_with(tmp_path: Path, row: int, column: str, value: str) -> Path:
    """A valid CSV with the cell at data row ``row`` (1-based) of ``column`` replaced."""
    rows = as_text(items())
    rows[row - 1][column] = value
    return write_csv(tmp_path / "items.csv", rows)


def the_problem(error: pytest.ExceptionInfo[InputError]) -> Problem:
    assert len(error.value.problems) == 1, error.value
    return error.value.problems[0]


def assert_frames_equal(left: pd.DataFrame, right: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(left.reset_index(drop=True), right.reset_index(drop=True))


# --- what comes out --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_preserves_everything(tmp_path, fmt):
    frame = items().assign(x_note=["a", "", "01", "b", "c", "d"])
    path = tmp_path / f"items.{fmt}"
    write_table(frame, path)
    back = read_declarations(path)
    assert_frames_equal(back, frame)
    assert back["hs_code"].tolist()[0] == "01012100" and back["declaration_id"][0] == "000000"


def test_output_types_follow_the_contract(tmp_path):
    path = write_csv(tmp_path / "items.csv", as_text(items()))
    frame = read_declarations(path)
    assert list(frame.columns) == list(COLUMNS)
    for column, kind in COLUMNS.items():
        dtype = frame[column].dtype
        if kind == "string":
            assert dtype == "str" and not frame[column].isna().any() and isinstance(frame[column][0], str)
        else:
            assert dtype == {"integer": "int64", "number": "float64", "date": DATE_DTYPE}[kind], column
    assert frame.at[1, "import_licence"] == "" and np.isnan(frame.at[2, "freight_usd"])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("chunk_rows", [1, 2, 4, 6, 1000])
def test_chunked_reading_equals_whole_reading(tmp_path, fmt, chunk_rows):
    path = tmp_path / f"items.{fmt}"
    write_table(items(), path)
    chunks = list(iter_declarations(path, chunk_rows=chunk_rows))
    assert all(len(chunk) <= chunk_rows for chunk in chunks)
    pd.testing.assert_frame_equal(pd.concat(chunks), read_declarations(path))


def test_empty_numbers_and_dates_are_missing_values(tmp_path):
    rows = as_text(items())
    rows[0]["date"] = ""
    rows[0]["customs_value_usd"] = " "
    frame = read_declarations(write_csv(tmp_path / "items.csv", rows))
    assert pd.isna(frame.at[0, "date"]) and np.isnan(frame.at[0, "customs_value_usd"])


def test_a_blank_line_is_skipped_but_counted(tmp_path):
    path = csv_with(tmp_path, 3, "item_no", "x")
    lines = path.read_text(encoding="utf-8").split("\n")
    blank_after_row_1 = 3  # header, row 1 over two lines (its description holds a newline)
    path.write_text("\n".join([*lines[:blank_after_row_1], "", *lines[blank_after_row_1:]]), encoding="utf-8")
    with pytest.raises(InputError) as error:
        read_declarations(path)
    assert the_problem(error).row == 4  # row 3 moved down by the blank line


def test_rows_count_records_not_lines(tmp_path):
    # Row 1's description spans two lines; the bad value of row 3 is on the file's line 5.
    with pytest.raises(InputError) as error:
        read_declarations(csv_with(tmp_path, 3, "quantity", "many"))
    assert the_problem(error).row == 3


def test_extension_columns_pass_through(tmp_path):
    rows = [dict(row, x_risk_team="north") for row in as_text(items())]
    frame = read_declarations(write_csv(tmp_path / "items.csv", rows))
    assert list(frame.columns) == [*COLUMNS, "x_risk_team"] and set(frame["x_risk_team"]) == {"north"}


# --- one defect, one problem: CSV ------------------------------------------------------------

CELL_DEFECTS = [
    # (row, column, value, words the message must hold)
    (2, "item_no", "1.5", ["item_no is not a whole number", "expected a whole number from 1", "'1.5'"]),
    (2, "item_no", "0", ["item_no below 1", "got 0"]),
    (2, "item_no", "", ["empty item_no", "part of the item key"]),
    (3, "declaration_id", "", ["empty declaration_id", "part of the item key"]),
    (4, "date", "29/02/2024", ["not a YYYY-MM-DD date", "2024-03-01", "'29/02/2024'"]),
    (4, "date", "2023-02-29", ["not a calendar day", "'2023-02-29'"]),
    (5, "customs_value_usd", "1,5", ["not a number", "with a dot", "'1,5'"]),
    (5, "freight_usd", "inf", ["not a finite number", "inf"]),
    (5, "freight_usd", "nan", ["not a finite number", "nan"]),
    (6, "hs_code", "1012100", ["not a code of 8 digits", "'1012100'", "1 leading zero(s) probably lost"]),
    (6, "hs_code", "1012100.0", ["not a code of 8 digits", "leading zero(s) probably lost"]),
    (6, "hs_code", "0101.21.00", ["not a code of 8 digits", "'0101.21.00'"]),
]


@pytest.mark.parametrize(("row", "column", "value", "words"), CELL_DEFECTS,
                         ids=[f"{c}={v!r}" for _, c, v, _ in CELL_DEFECTS])
def test_each_bad_cell_is_one_problem_at_its_row_and_column(tmp_path, row, column, value, words):
    path = csv_with(tmp_path, row, column, value)
    with pytest.raises(InputError) as error:
        read_declarations(path)
    problem = the_problem(error)
    assert (problem.file, problem.row, problem.column) == (str(path), row, column)
    assert "expected" in problem.message and "got" in problem.message
    for word in words:
        assert word in problem.message
    assert f"{path}, row {row}, column {column!r}: " in str(error.value)


def test_missing_column(tmp_path):
    rows = as_text(items())
    path = write_csv(tmp_path / "items.csv", rows, [c for c in COLUMNS if c != "currency"])
    with pytest.raises(InputError) as error:
        read_declarations(path, kind="rectified")
    problem = the_problem(error)
    assert (problem.row, problem.column) == (None, "currency")
    assert "column missing from the rectified table" in problem.message


def test_misspelt_column_is_unknown_and_named(tmp_path):
    rows = [{("curency" if k == "currency" else k): v for k, v in row.items()} for row in as_text(items())]
    with pytest.raises(InputError) as error:
        read_declarations(write_csv(tmp_path / "items.csv", rows))
    missing, unknown = error.value.problems
    assert missing.column == "currency" and "did you mean 'curency'" in missing.message
    assert unknown.column == "curency" and "unknown column" in unknown.message
    assert "did you mean 'currency'" in unknown.message and "'x_curency'" in unknown.message


def test_repeated_column(tmp_path):
    path = write_csv(tmp_path / "items.csv", as_text(items()), [*COLUMNS, "unit"])
    with pytest.raises(InputError) as error:
        read_declarations(path)
    problem = the_problem(error)
    assert (problem.row, problem.column) == (None, "unit") and "repeated column" in problem.message


def test_repeated_key_across_chunks_names_both_rows(tmp_path):
    rows = as_text(items())
    rows[5]["declaration_id"], rows[5]["item_no"] = rows[0]["declaration_id"], rows[0]["item_no"]
    path = write_csv(tmp_path / "items.csv", rows)
    with pytest.raises(InputError) as error:
        read_declarations(path, chunk_rows=2)
    problem = the_problem(error)
    assert (problem.row, problem.column) == (6, "declaration_id, item_no")
    assert "repeated item key" in problem.message and "('000000', 1) again, first at row 1" in problem.message


def test_row_with_wrong_number_of_fields_keeps_later_rows_numbered(tmp_path):
    path = csv_with(tmp_path, 5, "hs_code", "123")
    text = path.read_text(encoding="utf-8").replace(",  padded  ,", ",  padded  ,extra,", 1)  # row 2
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as error:
        read_declarations(path)
    fields, code = error.value.problems
    assert (fields.row, fields.column) == (2, None)
    assert "expected 34 fields" in fields.message and "got 35" in fields.message
    assert (code.row, code.column) == (5, "hs_code")


def test_all_problems_are_collected_in_one_error(tmp_path):
    rows = as_text(items())
    rows[0]["item_no"] = "a"
    rows[2]["date"] = "yesterday"
    rows[4]["ipi_rate"] = "10%"
    with pytest.raises(InputError) as error:
        read_declarations(write_csv(tmp_path / "items.csv", rows), chunk_rows=2)
    assert [(p.row, p.column) for p in error.value.problems] == [(1, "item_no"), (3, "date"), (5, "ipi_rate")]
    assert str(error.value).startswith("3 problem(s) in the input")


def test_problems_are_capped(tmp_path):
    rows = as_text(items())
    for row in rows:
        row["net_weight_kg"] = "heavy"
        row["quantity"] = "lots"
    with pytest.raises(InputError) as error:
        read_declarations(write_csv(tmp_path / "items.csv", rows), max_problems=5, chunk_rows=2)
    problems = error.value.problems
    assert len(problems) == 6 and problems[-1].row is None and "stopped after 5 problems" in problems[-1].message


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "items.csv"
    path.write_bytes(",".join(COLUMNS).replace("unit", "unit\xe9").encode("latin-1"))
    with pytest.raises(InputError) as error:
        read_declarations(path)
    assert "not UTF-8" in the_problem(error).message


@pytest.mark.parametrize(("name", "words"), [("items.xlsx", "unknown table format"), ("none.csv", "file not found")])
def test_unreadable_path(tmp_path, name, words):
    with pytest.raises(InputError) as error:
        read_declarations(tmp_path / name)
    assert words in the_problem(error).message


def test_iteration_stops_yielding_at_the_first_problem(tmp_path):
    path = csv_with(tmp_path, 3, "date", "soon")
    chunks = iter_declarations(path, chunk_rows=2)
    assert len(next(chunks)) == 2
    with pytest.raises(InputError) as error:
        next(chunks)  # rows 3-4 hold the problem: no more chunks, the error after the last row
    assert the_problem(error).row == 3


# --- Parquet --------------------------------------------------------------------------------


def write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


@pytest.mark.parametrize("column", ["hs_code", "declaration_id"])
def test_parquet_code_stored_as_number(tmp_path, column):
    frame = items()
    frame[column] = frame[column].astype("int64")
    path = write_parquet(tmp_path / "items.parquet", frame)
    with pytest.raises(InputError) as error:
        read_declarations(path)
    problem = the_problem(error)
    assert (problem.file, problem.row, problem.column) == (str(path), None, column)
    assert "a column of type int64 (leading zeros were lost)" in problem.message
    assert "expected a string column" in problem.message


@pytest.mark.parametrize(
    ("column", "value", "words"),
    [
        ("hs_code", "1012100", "not a code of 8 digits"),
        ("customs_value_usd", "12,5", "not a number"),
        ("date", "2024-02-30", "not a calendar day"),
        ("item_no", "two", "not a whole number"),
    ],
)
def test_parquet_bad_text_cell(tmp_path, column, value, words):
    frame = pd.DataFrame(as_text(items()))  # every column as text, which a reader accepts
    frame.loc[3, column] = value
    path = write_parquet(tmp_path / "items.parquet", frame)
    with pytest.raises(InputError) as error:
        read_declarations(path)
    problem = the_problem(error)
    assert (problem.row, problem.column) == (4, column) and words in problem.message


def test_parquet_float_item_number_must_be_whole(tmp_path):
    frame = items()
    frame["item_no"] = frame["item_no"].astype("float64")
    frame.loc[1, "item_no"] = 1.5
    with pytest.raises(InputError) as error:
        read_declarations(write_parquet(tmp_path / "items.parquet", frame))
    assert (the_problem(error).row, the_problem(error).column) == (2, "item_no")


def test_parquet_typed_columns_are_accepted(tmp_path):
    frame = items()
    frame["item_no"] = frame["item_no"].astype("int32")
    frame["date"] = frame["date"].astype("datetime64[ns]") + pd.Timedelta(hours=13)  # the day counts
    frame["pis_rate"] = frame["pis_rate"].astype("float32")
    back = read_declarations(write_parquet(tmp_path / "items.parquet", frame))
    assert back["item_no"].dtype == "int64" and back["date"].tolist() == items()["date"].tolist()
    assert back["pis_rate"].dtype == "float64"


def test_parquet_repeated_key(tmp_path):
    frame = items()
    frame.loc[3, ["declaration_id", "item_no"]] = frame.loc[2, ["declaration_id", "item_no"]].tolist()
    with pytest.raises(InputError) as error:
        read_declarations(write_parquet(tmp_path / "items.parquet", frame), chunk_rows=3)
    problem = the_problem(error)
    assert (problem.row, problem.column) == (4, "declaration_id, item_no") and "first at row 3" in problem.message


# --- pairs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_rectified_item_without_declared_item(tmp_path, fmt):
    declared = tmp_path / f"history.{fmt}"
    rectified = tmp_path / f"rectified.{fmt}"
    write_table(items(), declared)
    inspected = items().iloc[[0, 3]].copy()
    inspected.loc[3, "declaration_id"] = "009999"
    write_table(inspected, rectified)
    with pytest.raises(InputError) as error:
        check_pair(declared, rectified)
    problem = the_problem(error)
    assert (problem.file, problem.row, problem.column) == (str(rectified), 2, "declaration_id, item_no")
    assert "rectified item without a declared item" in problem.message
    assert f"of {declared}" in problem.message and "('009999', 2)" in problem.message


def test_read_pair_returns_both_tables(tmp_path):
    declared, rectified = tmp_path / "history.csv", tmp_path / "rectified.parquet"
    write_table(items(), declared)
    write_table(items().iloc[[1, 4]], rectified)
    history, inspected = read_pair(declared, rectified, chunk_rows=2)
    assert_frames_equal(history, items())
    assert_frames_equal(inspected, items().iloc[[1, 4]])
    assert check_pair(declared, rectified) == PairSize(declared=6, rectified=2)


def test_pair_reports_problems_of_both_files(tmp_path):
    declared = csv_with(tmp_path, 2, "date", "2024-13-01")
    rectified = tmp_path / "rectified.csv"
    rows = as_text(items().iloc[[0]])
    rows[0]["unit"] = "kg"
    rows[0]["quantity"] = "?"
    write_csv(rectified, rows)
    with pytest.raises(InputError) as error:
        read_pair(declared, rectified)
    assert [(p.file, p.row, p.column) for p in error.value.problems] == [
        (str(declared), 2, "date"), (str(rectified), 1, "quantity")]


# --- a bad file writes nothing ----------------------------------------------------------------


def value_per_item(items_path: Path, out: Path, report: Path) -> None:
    """A small pipeline: stream the items, compute per chunk, write everything at the end."""
    parts = [chunk[["declaration_id", "item_no", "customs_value_usd"]] for chunk in
             iter_declarations(items_path, chunk_rows=2)]
    scores = pd.concat(parts)
    write_tables({out: scores, report: pd.DataFrame({"items": [len(scores)]})})


def test_a_file_with_problems_writes_nothing(tmp_path):
    out, report = tmp_path / "scores.parquet", tmp_path / "report.csv"
    write_table(pd.DataFrame({"old": [1]}), report)
    before = report.read_bytes()
    with pytest.raises(InputError):
        value_per_item(csv_with(tmp_path, 5, "customs_value_usd", "n/a"), out, report)
    assert not out.exists() and report.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.csv", "report.csv"]


def test_a_clean_file_writes_everything(tmp_path):
    out, report = tmp_path / "scores.parquet", tmp_path / "report.csv"
    value_per_item(write_csv(tmp_path / "items.csv", as_text(items())), out, report)
    assert len(pd.read_parquet(out)) == 6 and pd.read_csv(report)["items"].tolist() == [6]


# --- tables -----------------------------------------------------------------------------------


def test_unknown_ending_is_refused_before_writing(tmp_path):
    with pytest.raises(SisamError, match=r"expected a path ending in \.csv or \.parquet; got '\.xlsx'"):
        write_tables({tmp_path / "a.csv": items(), tmp_path / "b.xlsx": items()})
    assert list(tmp_path.iterdir()) == []


def test_failing_table_leaves_every_target_as_it_was(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.parquet"
    write_table(pd.DataFrame({"v": [1]}), first)
    before = first.read_bytes()
    unstorable = pd.DataFrame({"v": [object(), object()]})
    with pytest.raises((pa.ArrowException, TypeError)):
        write_tables({first: items(), second: unstorable})
    assert first.read_bytes() == before and not second.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]  # no temporary file left


def test_written_file_has_ordinary_permissions(tmp_path):
    path = tmp_path / "a.csv"
    write_table(items(), path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_csv_keeps_codes_as_quoted_text(tmp_path):
    path = tmp_path / "a.csv"
    write_table(items(), path)
    first_row = path.read_text(encoding="utf-8").split("\n")[1]
    assert first_row.startswith('"000000",1,2024-02-29,') and '"01012100"' in first_row


def test_bytes_that_are_not_utf8_after_the_header(tmp_path):
    path = write_csv(tmp_path / "items.csv", as_text(items()))
    path.write_bytes(path.read_bytes().replace("CÔ".encode(), "CÔ".encode("latin-1")))
    with pytest.raises(InputError) as error:
        read_declarations(path)
    problem = the_problem(error)
    assert (problem.row, problem.column) == (None, "origin_country")
    assert "cannot be read beyond data row 0" in problem.message and "invalid UTF8" in problem.message


def test_header_only_file_is_an_empty_table(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text(",".join(COLUMNS) + "\n", encoding="utf-8")
    frame = read_declarations(path)
    assert len(frame) == 0 and list(frame.columns) == list(COLUMNS)
    assert frame["item_no"].dtype == "int64" and frame["hs_code"].dtype == "str"


def test_parquet_header_problems(tmp_path):
    frame = items().drop(columns="incoterm").assign(colour="red", x_colour="red")
    path = write_parquet(tmp_path / "items.parquet", frame)
    with pytest.raises(InputError) as error:
        read_declarations(path)
    assert [(p.file, p.row, p.column) for p in error.value.problems] == [
        (str(path), None, "incoterm"), (str(path), None, "colour")]
