"""Writing tables: CSV or Parquet by the path's ending, atomically, all or nothing.

Every table sisam writes (scores, synthetic worlds, reports) goes through here, so that:

- the format follows the path's ending, ``.csv`` or ``.parquet`` (contract.md section 5),
  and any other ending is an error before anything is written;
- a file is never seen half-written: the table goes to a temporary file in the target's
  folder, is flushed to disk (fsync), and only then renamed over the target with
  ``os.replace``, which is atomic on one file system. A crash leaves the old file or the new
  one, never a mixture (at worst a ``.<name>.*.tmp`` file is left behind);
- :func:`write_tables` writes every table to its temporary file first and renames only when
  all of them succeeded, so a failing table leaves every target as it was;
- a CSV reads back through :func:`sisam.declarations.read_declarations` unchanged: strings are
  quoted (so "01012100" keeps its zero in any reader that honours quotes), floats are written
  with the shortest text that parses back to the same double, empty values and NaN are
  empty fields, and dates (timestamps at midnight) are written as YYYY-MM-DD.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from sisam.errors import SisamError

log = logging.getLogger("sisam.tables")

FORMATS = (".csv", ".parquet")
#: A Parquet reader decodes a whole row group at once: groups of this many rows keep
#: streaming readers (``sisam.declarations.iter_declarations``) within bounded memory.
PARQUET_ROW_GROUP_ROWS = 128 * 1024


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise SisamError(
            f"cannot write {path}: unknown table format; expected a path ending in "
            f"{' or '.join(FORMATS)}; got {path.suffix or 'no ending'!r}"
        )
    return suffix


def _to_arrow(df: pd.DataFrame) -> pa.Table:
    table = pa.Table.from_pandas(df, preserve_index=False)
    for i, column in enumerate(table.columns):
        kind = column.type
        if pa.types.is_timestamp(kind) and kind.tz is None and _all_midnight(column):
            # A date column: store it as a date so that the CSV says 2024-03-01, not
            # 2024-03-01 00:00:00, and Parquet says what it is.
            table = table.set_column(i, table.field(i).name, column.cast(pa.date32()))
    return table


def _all_midnight(column: pa.ChunkedArray) -> bool:
    day = column.cast(pa.date32()).cast(column.type)
    return bool(pc.all(pc.fill_null(pc.equal(day, column), True)).as_py())


def _write_temp(df: pd.DataFrame, path: Path, metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``df`` to a synced temporary file beside ``path``; return the temporary path.
    ``metadata`` goes into a Parquet file's key-value metadata (CSV has nowhere to keep it)."""
    suffix = _format(path)
    table = _to_arrow(df)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if suffix == ".csv":
                pa_csv.write_csv(table, f)
            else:
                pq.write_table(table, f, row_group_size=PARQUET_ROW_GROUP_ROWS)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(temp, 0o666 & ~_umask())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return Path(temp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sync_folder(folder: Path) -> None:
    """Make a rename durable: fsync the folder holding the renamed file (POSIX only)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_table(
    df: pd.DataFrame, path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> None:
    """Write one table atomically, as CSV or Parquet by the ending of ``path``.

    Missing folders are created. Raises :class:`~sisam.errors.SisamError` for an ending other
    than ``.csv`` or ``.parquet``, before anything is written. ``metadata`` (Parquet only) is
    stored as the file's key-value metadata: ``sisam score`` records there what it read.
    """
    write_tables({path: df}, metadata)


def write_tables(
    tables: Mapping[str | os.PathLike[str], pd.DataFrame], metadata: Mapping[str, str] | None = None
) -> None:
    """Write several tables, all or nothing: each to a temporary file, then rename them all.

    If any table fails to be written (an unknown ending, a full disk, a column pyarrow cannot
    store), no target is touched and the temporary files are removed. The renames themselves
    are atomic one by one; only a failure between two renames (the machine stopping) can
    leave some targets new and others old. ``metadata`` goes into every Parquet table.
    """
    targets = {Path(p).resolve(): df for p, df in tables.items()}
    if len(targets) != len(tables):
        raise ValueError(f"write_tables: two entries name the same file; got {list(tables)}")
    for path in targets:
        _format(path)  # refuse a bad ending before writing anything
    written: dict[Path, Path] = {}
    try:
        for path, df in targets.items():
            written[path] = _write_temp(df, path, metadata)
    except BaseException:
        for temp in written.values():
            with contextlib.suppress(OSError):
                os.unlink(temp)
        raise
    for path, temp in written.items():
        os.replace(temp, path)
        log.info("wrote %s (%d rows)", path, len(targets[path]))
    for folder in {path.parent for path in written}:
        _sync_folder(folder)
