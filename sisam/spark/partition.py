"""What one Spark task does: count a partition of the history with the local engine's code.

A task receives Arrow record batches of the history joined with its rectified table (the
rectified columns renamed with :data:`RECTIFIED_PREFIX`, absent for items never inspected),
checks and types them as the local reader does (``declarations.check_table``), labels them
(``labels.label_matrix``) and counts every factor (``history.count_plans``, i.e.
``engine.counting.count_factor_codes`` over ``encoding``'s level codes and ``engine.keys``'
pattern keys): the same code as local learning, so a pattern has the same 64-bit key here
and there. The partition's counts leave the task as rows of :data:`COUNT_SCHEMA`, which Spark
shuffles by (factor, key) and :func:`sum_partition` sums by (factor, key, label): counts are
additive (hpb.md, "Counts").

Nothing here imports Spark: the function is plain Arrow in, Arrow out, and is tested as such.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sisam import suggest
from sisam.contract import COLUMNS, KEY
from sisam.declarations import check_table
from sisam.encoding import FactorPlan
from sisam.engine.counting import merge_counts
from sisam.engine.counts import PatternCounts
from sisam.evidence import (
    EvidenceModel,
    EvidenceTables,
    PreparedEvidence,
    add_evidence_columns,
    count_evidence,
    evidence_models,
    merge_evidence,
)
from sisam.history import count_plans
from sisam.knowledge import ErrorType, Knowledge
from sisam.labels import label_matrix
from sisam.memory import release_freed_memory

#: Prefix of the rectified table's columns in the joined input.
RECTIFIED_PREFIX = "rectified__"
#: Input columns added by the reader: the file and 0-based row every row comes from.
FILE, ROW = "sisam__file", "sisam__row"
RECTIFIED_FILE, RECTIFIED_ROW = RECTIFIED_PREFIX + FILE, RECTIFIED_PREFIX + ROW
#: A task's output: one row per (factor, pattern) with ``label`` -1, ``a`` = n and ``b`` = N;
#: one row per (factor, pattern, label) with an error, ``a`` = k; and one row per declared
#: code with ``factor`` -1, ``a`` = its declarations (``suggest.count_codes``). ``key`` holds
#: the pattern key's 64 bits as a signed integer: Spark has no unsigned type.
COUNT_SCHEMA = pa.schema([
    ("factor", pa.int16()), ("key", pa.int64()), ("label", pa.int16()), ("code", pa.string()),
    ("a", pa.float64()), ("b", pa.float64()),
])
#: Rows counted at once within a task; partitions larger than this are counted in pieces
#: whose counts are merged before they leave the task.
TASK_CHUNK_ROWS = 500_000
#: Rows per Arrow batch a task hands back to Spark, which holds a batch whole in the JVM.
OUTPUT_BATCH_ROWS = 1 << 18


def declared_columns(available: Iterable[str]) -> list[str]:
    """Contract columns of the declarations that learning reads: all of them that the input
    has, since factors, evidence models, labels and suggestions read most of them."""
    present = set(available)
    return [c for c in COLUMNS if c in present]


def rectified_columns(errors: Iterable[ErrorType]) -> list[str]:
    """Contract columns labelling reads from the rectified table."""
    return list(dict.fromkeys([*KEY, *(e.field for e in errors)]))


def checked_declared(table: pa.Table, declared: list[str]) -> pd.DataFrame:
    """The declared columns of ``table``'s rows, checked and typed per source file."""
    frames = []
    for path in pc.unique(table.column(FILE)).to_pylist():
        part = table.filter(pc.equal(table.column(FILE), path))
        frames.append(check_table(part.select(declared), path, part.column(ROW).to_numpy() + 1))
    return pd.concat(frames, ignore_index=True)


def checked_pair(table: pa.Table, declared: list[str], rectified: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(declared frame, rectified frame) of joined rows, checked and typed per source file."""
    frames, rects = [], []
    for path in pc.unique(table.column(FILE)).to_pylist():
        part = table.filter(pc.equal(table.column(FILE), path))
        rows = part.column(ROW).to_numpy() + 1
        frames.append(check_table(part.select(declared), path, rows))
        inspected = part.filter(pc.is_valid(part.column(RECTIFIED_FILE)))
        for rpath in pc.unique(inspected.column(RECTIFIED_FILE)).to_pylist():
            rpart = inspected.filter(pc.equal(inspected.column(RECTIFIED_FILE), rpath))
            names = [*KEY, *(RECTIFIED_PREFIX + c for c in rectified if c not in KEY)]
            rtable = rpart.select(names).rename_columns([c.removeprefix(RECTIFIED_PREFIX) for c in names])
            rects.append(check_table(rtable, rpath, rpart.column(RECTIFIED_ROW).to_numpy() + 1))
    frame = pd.concat(frames, ignore_index=True)
    rect = pd.concat(rects, ignore_index=True) if rects else frame.iloc[:0][rectified]
    return frame, rect


def count_partition(
    batches: Iterable[pa.RecordBatch],
    plans: dict[str, FactorPlan],
    knowledge: Knowledge,
    declared: list[str],
    evidence: Callable[[Mapping[str, EvidenceModel]], PreparedEvidence],
    chunk_rows: int = TASK_CHUNK_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Count the joined rows of ``batches``, first banded by the evidence models against
    the history's evidence tables (``evidence(models)``, prepared, e.g. by
    :func:`shipped_evidence`) without their own contribution, as local learning bands them;
    yield the counts as ``COUNT_SCHEMA`` batches."""
    errors = knowledge.errors
    rectified = rectified_columns(errors)
    n_labels = len(errors) + 1
    models = evidence_models(knowledge)
    prepared = evidence(models) if models else None
    totals = {name: PatternCounts.empty() for name in plans}
    codes: dict[str, np.ndarray] | None = None
    pending: list[pa.RecordBatch] = []

    def flush() -> None:
        nonlocal codes
        frame, rect = checked_pair(pa.Table.from_batches(pending), declared, rectified)
        labels = label_matrix(frame, rect, errors)
        if prepared is not None:
            frame = add_evidence_columns(frame, models, prepared, own_rows_counted=True)
        counts = count_plans(frame, labels, plans)
        for name in plans:
            totals[name] = merge_counts([totals[name], counts[name]], n_labels)
        chunk_codes = suggest.count_codes(frame["hs_code"].to_numpy())
        codes = chunk_codes if codes is None else suggest.merge_codes(codes, chunk_codes, 1.0)
        pending.clear()
        del frame, rect, labels, counts
        release_freed_memory()

    for batch in batches:
        if batch.num_rows:
            pending.append(batch)
        if sum(b.num_rows for b in pending) >= chunk_rows:
            flush()
    if pending:
        flush()
    for f, name in enumerate(plans):
        for batch in count_rows(f, totals[name]):
            yield from _sliced(batch)
    if codes is not None and len(codes["code"]):
        m = len(codes["code"])
        yield pa.RecordBatch.from_arrays(
            [pa.array(np.full(m, -1, np.int16)), pa.array(np.zeros(m, np.int64)), pa.array(np.full(m, -1, np.int16)),
             pa.array(codes["code"].astype(str), pa.string()), pa.array(codes["n"]), pa.array(np.zeros(m))],
            schema=COUNT_SCHEMA,
        )


def sum_partition(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The ``COUNT_SCHEMA`` rows of ``batches`` summed by (factor, key, label, code): one row
    each. The counts are whole numbers below 2**53, so the sums do not depend on the order
    of the rows."""
    table = pa.Table.from_batches([b for b in batches if b.num_rows], schema=COUNT_SCHEMA)
    if not table.num_rows:
        return
    summed = table.group_by(["factor", "key", "label", "code"], use_threads=False).aggregate(
        [("a", "sum"), ("b", "sum")]
    )
    yield from summed.rename_columns(["factor", "key", "label", "code", "a", "b"]).select(
        COUNT_SCHEMA.names
    ).cast(COUNT_SCHEMA).to_batches(max_chunksize=OUTPUT_BATCH_ROWS)


def _sliced(batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
    for start in range(0, batch.num_rows, OUTPUT_BATCH_ROWS):
        yield batch.slice(start, OUTPUT_BATCH_ROWS)


def count_evidence_partition(
    batches: Iterable[pa.RecordBatch], knowledge: Knowledge, declared: list[str], chunk_rows: int = TASK_CHUNK_ROWS
) -> Iterator[pa.RecordBatch]:
    """The evidence models' tables over the rows of ``batches`` (``sisam.evidence``), as
    ``EVIDENCE_SCHEMA`` rows for the driver to merge."""
    models = evidence_models(knowledge)
    tables: EvidenceTables = {}
    pending: list[pa.RecordBatch] = []

    def flush() -> None:
        nonlocal tables
        frame = checked_declared(pa.Table.from_batches(pending), declared)
        counted = count_evidence(models, frame)
        tables = merge_evidence(tables, counted, 1.0) if tables else counted
        pending.clear()

    for batch in batches:
        if batch.num_rows:
            pending.append(batch)
        if sum(b.num_rows for b in pending) >= chunk_rows:
            flush()
    if pending:
        flush()
    rows = evidence_to_ipc(tables)
    if rows:
        yield pa.RecordBatch.from_pylist(
            [{"model": m, "table": t, "ipc": b} for m, t, b in rows], schema=EVIDENCE_SCHEMA
        )


#: Evidence tables leaving a task: one row per (model, table), the table as Arrow IPC.
EVIDENCE_SCHEMA = pa.schema([("model", pa.string()), ("table", pa.string()), ("ipc", pa.binary())])


def _arrow_table(columns: dict[str, np.ndarray]) -> pa.Table:
    return pa.table({c: pa.array(v) for c, v in columns.items()})


def _numpy_columns(table: pa.Table) -> dict[str, np.ndarray]:
    """Columns back as numpy arrays, text as object arrays (as ``kb`` gives them back)."""
    return {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}


def evidence_to_ipc(tables: EvidenceTables) -> list[tuple[str, str, bytes]]:
    """Evidence tables as (model, table, Arrow IPC stream) triples: plain data to ship
    between the driver and the tasks, no pickles."""
    out = []
    for model, by_table in tables.items():
        for name, columns in by_table.items():
            table = _arrow_table(columns)
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            out.append((model, name, sink.getvalue().to_pybytes()))
    return out


def evidence_from_ipc(rows: Iterable[tuple[str, str, bytes]]) -> EvidenceTables:
    """``evidence_to_ipc`` undone."""
    tables: EvidenceTables = {}
    for model, name, ipc in rows:
        tables.setdefault(model, {})[name] = _numpy_columns(pa.ipc.open_stream(ipc).read_all())
    return tables


def write_evidence_files(tables: EvidenceTables, folder: Path) -> None:
    """``tables`` as Arrow IPC files ``folder/<model>/<table>.arrow``, for the counting
    tasks (:func:`shipped_evidence`)."""
    for model, by_table in tables.items():
        (folder / model).mkdir(parents=True, exist_ok=True)
        for name, columns in by_table.items():
            table = _arrow_table(columns)
            with pa.OSFile(str(folder / model / f"{name}.arrow"), "wb") as sink:
                with pa.ipc.new_file(sink, table.schema) as writer:
                    writer.write_table(table)


def read_evidence_files(folder: Path) -> EvidenceTables:
    """:func:`write_evidence_files` undone. The files are memory-mapped and their number
    columns read without a copy, so the tasks of one machine share one copy of the tables
    in the page cache."""
    tables: EvidenceTables = {}
    for path in sorted(folder.glob("*/*.arrow")):
        table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        tables.setdefault(path.parent.name, {})[path.stem] = _numpy_columns(table)
    return tables


#: The evidence a Python worker last prepared, by shipped folder (see ``shipped_evidence``).
_PREPARED: dict[str, PreparedEvidence] = {}


def shipped_evidence(name: str, models: Mapping[str, EvidenceModel]) -> PreparedEvidence:
    """In a task: the evidence tables the driver wrote with :func:`write_evidence_files`
    and shipped to every executor as folder ``name`` (``SparkContext.addFile``), prepared
    for ``models``. Prepared once per Python worker, which Spark reuses for the job's next
    tasks: preparing takes 1.3 s CPU for a million items' tables and grows with them. The
    folder's name is new for every learning run, so a worker never serves stale tables."""
    from pyspark import SparkFiles

    if name not in _PREPARED:
        _PREPARED.clear()
        _PREPARED[name] = PreparedEvidence(models, read_evidence_files(Path(SparkFiles.get(name))))
    return _PREPARED[name]


def count_rows(factor: int, counts: PatternCounts) -> Iterator[pa.RecordBatch]:
    """``counts`` of factor number ``factor`` as ``COUNT_SCHEMA`` rows."""
    if not counts.n_patterns:
        return
    keys = counts.keys.view(np.int64)
    yield pa.RecordBatch.from_arrays(
        [
            pa.array(np.full(keys.size, factor, np.int16)),
            pa.array(keys),
            pa.array(np.full(keys.size, -1, np.int16)),
            pa.nulls(keys.size, pa.string()),
            pa.array(counts.n),
            pa.array(counts.N),
        ],
        schema=COUNT_SCHEMA,
    )
    nnz = int(counts.err_ptr[-1])
    if nnz:
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(np.full(nnz, factor, np.int16)),
                pa.array(np.repeat(keys, np.diff(counts.err_ptr))),
                pa.array(counts.err_label[:nnz]),
                pa.nulls(nnz, pa.string()),
                pa.array(counts.err_k[:nnz]),
                pa.array(np.zeros(nnz)),
            ],
            schema=COUNT_SCHEMA,
        )
