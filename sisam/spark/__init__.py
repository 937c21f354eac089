"""Learning on Spark: the same counts as local learning, counted by a cluster.

``sisam learn --engine spark`` (``pip install "sisam[spark]"``, Java 17 or 21) counts the
history on Spark and then does what local learning does with the counts: fits the
coefficients on the driver and publishes a knowledge-base version (``model.learn``).

How the counting is distributed, and why so. Every Spark task runs the local engine on its
partition (``partition.count_partition``: the reader's checks, ``labels``, ``encoding`` and
the numba counting kernels), and the tasks' counts are summed by (factor, key, label). The
alternative, Spark SQL ``GROUP BY GROUPING SETS`` over the attributes, would need the level
codes and splitmix64 keys rewritten in SQL (a second definition of a pattern's key, against
the rule that ``engine.lattice`` and ``engine.keys`` are the only one) and would shuffle one
row per item and shape before any aggregation, where the kernels shuffle one row per
distinct pattern of a partition (``benchmarks/results/scale.md``).

Steps (one Spark job each, plus the write):

1. read the declarations and the rectified table (Parquet files or folders of them), keep
   the columns learning reads, tag every row with its file and row (for messages and for
   the fitting sample), and left-join the rectified rows by (declaration_id, item_no);
2. count every partition (``mapInArrow``), shuffle the rows by (factor, key) and sum each
   share by (factor, key, label) (``partition.sum_partition``); write the sums as
   Parquet count tables ``patterns`` and ``errors`` (``kb.read_count_tables`` documents
   them), which ``kb`` imports into a version and any engine can read;
3. the provenance (items, date range), and the inspected items, written as Parquet beside
   the count tables and read by the driver in (file, row) order, from which the
   coefficients (on a sample drawn by position, as in ``history``), the suggestions and
   the recovered values are learnt as locally: a single history file gives exactly the
   local back-end's knowledge base. The declarations per code (suggestions) are counted by
   the tasks alongside the patterns.

Evidence models (``sisam.evidence``): a first job counts their tables per task
(``partition.count_evidence_partition``), the driver adds them up (and to the knowledge
base's, decayed, when updating) and hands them to the counting tasks, which band every item
without its own contribution before counting, as local learning does.

The sums are taken in any order; the counts are whole numbers below 2**53, whose sums are
exact in every order, so the tables are identical to the local ones. Counts of a history
already decayed are never summed here: ``--update`` counts the batch on Spark and decays
and merges on the driver, as local learning does.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sisam import kb, suggest
from sisam.contract import KEY
from sisam.encoding import FactorPlan
from sisam.errors import SisamError
from sisam.evidence import (
    EvidenceTables,
    PreparedEvidence,
    add_evidence_columns,
    evidence_models,
    merge_evidence,
)
from sisam.history import CountedHistory
from sisam.knowledge import Knowledge
from sisam.labels import label_matrix
from sisam.spark.partition import (
    COUNT_SCHEMA,
    EVIDENCE_SCHEMA,
    FILE,
    RECTIFIED_FILE,
    RECTIFIED_PREFIX,
    RECTIFIED_ROW,
    ROW,
    checked_pair,
    count_evidence_partition,
    count_partition,
    declared_columns,
    evidence_from_ipc,
    rectified_columns,
    shipped_evidence,
    sum_partition,
    write_evidence_files,
)

log = logging.getLogger("sisam.spark")

#: Prefix of the temporary folder holding a run's count tables, followed by the driver's
#: process id: a run killed outright (no ``finally`` runs after SIGKILL) leaves gigabytes
#: there, and the next run recognises the folders of drivers that no longer exist.
COUNTS_PREFIX = "sisam-spark-counts-"

#: Settings for a session sisam starts itself in local mode: loopback only, no web UI, few
#: shuffle partitions (the default 200 is for clusters), the driver's Python in the workers.
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.sql.shuffle.partitions": "4",
}


def session(master: str | None = None, conf: Mapping[str, str] | None = None):
    """(session, started): the active Spark session, or a new one on ``master`` (e.g.
    ``local[2]``, ``yarn``; None leaves it to ``spark-submit`` or ``spark-defaults.conf``),
    and whether this call started it. A local master gets :data:`LOCAL_CONF`; ``conf``
    entries come last and win."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as e:
        raise SisamError(
            f"--engine spark needs PySpark: expected `pip install \"sisam[spark]\"`; got {e}"
        ) from e
    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    builder = SparkSession.builder.appName("sisam learn")
    settings: dict[str, str] = {"spark.pyspark.python": sys.executable}
    if master is not None:
        builder = builder.master(master)
        if master.startswith("local"):
            settings.update(LOCAL_CONF)
            # Spark starts the workers' interpreter by its resolved path, which loses a
            # virtual environment: hand them the driver's import path instead.
            settings["spark.executorEnv.PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    settings.update(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark, True


def stop(spark) -> None:
    """Stop a session this module started, and the JVM PySpark launched for it: ``stop()``
    alone leaves that JVM (all of local mode's executors) alive as long as the driver's
    Python process, and at 20 million items its 7 GiB and the driver's reading of the counts
    outgrew this machine (benchmarks/results/scale.md). The JVM exits when its standard
    input closes; a later session launches a new one."""
    from pyspark import SparkContext

    spark.stop()
    gateway = SparkContext._gateway
    process = getattr(gateway, "proc", None)
    if gateway is None or process is None:
        return  # a JVM PySpark did not launch (spark-submit's): not ours to end
    gateway.shutdown()
    if process.stdin is not None:
        process.stdin.close()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:  # a JVM that does not exit in time is killed
        process.kill()
        process.wait()
    SparkContext._gateway = None
    SparkContext._jvm = None


def _read(spark, declarations: str, rectified: str, knowledge: Knowledge):
    """(declarations, declarations left-joined with the rectified rows, declared columns,
    rectified columns), every row tagged with its file and row."""
    from pyspark.sql import functions as F

    raw = spark.read.parquet(declarations)
    declared = declared_columns(raw.columns)
    rect_columns = rectified_columns(knowledge.errors)
    decl = raw.select(*declared, F.col("_metadata.file_path").alias(FILE), F.col("_metadata.row_index").alias(ROW))
    rect = spark.read.parquet(rectified).select(
        *KEY,
        *(F.col(c).alias(RECTIFIED_PREFIX + c) for c in rect_columns if c not in KEY),
        F.col("_metadata.file_path").alias(RECTIFIED_FILE),
        F.col("_metadata.row_index").alias(RECTIFIED_ROW),
    )
    return decl, decl.join(rect, on=list(KEY), how="left"), declared, rect_columns


def count_history_spark(
    declarations: Path | str,
    rectified: Path | str,
    knowledge: Knowledge,
    plans: dict[str, FactorPlan],
    *,
    evidence_base: Callable[[kb.Provenance], tuple[EvidenceTables, float]],
    master: str | None = None,
    conf: Mapping[str, str] | None = None,
    work_dir: Path | str | None = None,
    progress: Callable[[str], None],
) -> CountedHistory:
    """Count a history on Spark (see the module docstring). ``evidence_base`` is as for
    ``history.count_history``. The count tables are written under ``work_dir`` and kept
    there; without it, in a temporary folder removed after they are read."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spark, started = session(master, conf)
    decl, joined, declared, rect_columns = _read(spark, str(declarations), str(rectified), knowledge)
    facts = decl.agg(
        F.count(F.lit(1)).alias("items"),
        F.min(F.col("date").cast("date")).alias("date_from"),
        F.max(F.col("date").cast("date")).alias("date_to"),
    ).collect()[0]
    inputs = (str(declarations), str(rectified))
    models = evidence_models(knowledge)
    evidence: EvidenceTables = {}
    if models:
        # One row per task and (model, table). A task's tables can take hundreds of
        # megabytes (a million items' words by codes), so they are counted in parallel and
        # kept on the executors' disks, then fetched one task's at a time and added up
        # (hpb.md, "Counts"): the driver holds one task's tables and the running sum,
        # whatever the history's size. Collected at once, 20 million items' tables passed
        # spark.driver.maxResultSize (1 GiB by default) at the seventh task.
        parts = decl.mapInArrow(
            partial(count_evidence_partition, knowledge=knowledge, declared=declared), _spark_schema(EVIDENCE_SCHEMA)
        ).persist(StorageLevel.DISK_ONLY)
        parts.count()
        for row in parts.toLocalIterator():
            counted = evidence_from_ipc([(row["model"], row["table"], bytes(row["ipc"]))])
            evidence = merge_evidence(evidence, counted, 1.0) if evidence else counted
        parts.unpersist()
        batch = kb.Provenance(inputs, facts["date_from"], facts["date_to"], int(facts["items"]), 0)
        base, decay = evidence_base(batch)
        if base:
            evidence = merge_evidence(base, evidence, decay)
        progress(f"counted {len(models)} evidence model(s) on Spark")
    names = list(plans)
    shipped = f"sisam-evidence-{uuid.uuid4().hex}"
    count_rows = joined.mapInArrow(
        partial(count_partition, plans=plans, knowledge=knowledge, declared=declared,
                evidence=partial(shipped_evidence, shipped)),
        _spark_schema(COUNT_SCHEMA),
    )
    # Summed per key range in Python rather than by Spark's hash aggregation: a task's rows
    # are already one per (factor, key, label, code), so a map-side aggregation only holds
    # memory, and at 20 million items the aggregation ran out of a 6 GiB JVM. Spark only
    # shuffles the rows by (factor, key), a sort-based shuffle that spills to disk, and each
    # reduce task sums its share with Arrow (partition.sum_partition).
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
    sums = count_rows.repartition(partitions, "factor", "key").mapInArrow(sum_partition, _spark_schema(COUNT_SCHEMA))
    factor_name = F.element_at(F.array(*(F.lit(n) for n in names)), F.col("factor").cast("int") + 1)
    keep = work_dir is not None
    out = Path(work_dir) if keep else _fresh_counts_dir()
    try:
        if models:
            # The tasks read the evidence tables from files Spark copies to every executor,
            # and memory-map them. A broadcast of them (gigabytes at 20 million items) would
            # sit in the driver's JVM heap (in local mode, the executors' heap too) and be
            # unpickled into a copy per Python worker; at 20 million items such a run lost a
            # task's result.
            write_evidence_files(evidence, out / shipped)
            spark.sparkContext.addFile(str(out / shipped), recursive=True)
        sums = sums.persist(StorageLevel.DISK_ONLY)
        patterns = (F.col("factor") >= 0) & (F.col("label") < 0)
        sums.where(patterns).select(
            factor_name.alias("factor"), "key", F.col("a").alias("n_labelled"), F.col("b").alias("n_declared")
        ).write.mode("overwrite").parquet(str(out / "patterns"))
        sums.where(F.col("label") >= 0).select(
            factor_name.alias("factor"), "key", F.col("label").cast("smallint").alias("label"), F.col("a").alias("k")
        ).write.mode("overwrite").parquet(str(out / "errors"))
        sums.where(F.col("factor") < 0).select("code", F.col("a").alias("n")).write.mode("overwrite").parquet(
            str(out / "codes")
        )
        sums.unpersist()
        progress(f"counted on Spark; count tables in {out}")
        # The inspected items, in (file, row) order: the coefficients, the suggestions and
        # the recovered values learn from them on the driver, as local learning does. Read
        # back from Parquet like the counts rather than collected, which
        # spark.driver.maxResultSize would bound.
        joined.where(F.col(RECTIFIED_FILE).isNotNull()).write.mode("overwrite").parquet(str(out / "inspected"))
        if started:
            # Nothing more runs on Spark: a session this call started stops before the
            # driver's work, so that its JVM (all of local mode's executors) and a cluster's
            # executors are not held while the driver fits; in local mode the JVM's memory
            # and the driver's would otherwise add up (benchmarks/results/scale.md).
            stop(spark)
        rows = pq.read_table(out / "inspected").sort_by([(FILE, "ascending"), (ROW, "ascending")])
        counts = kb.read_count_tables(out, names, len(knowledge.label_ids))
        codes = pq.read_table(out / "codes")
        code_counts = suggest.merge_codes(
            None, {"code": np.array(codes.column("code").to_pylist(), dtype=object), "n": codes.column("n").to_numpy()}, 1.0
        )
    finally:
        if not keep:
            shutil.rmtree(out, ignore_errors=True)
    frame, rect = checked_pair(rows, declared, rect_columns)
    labels = label_matrix(frame, rect, knowledge.errors)
    if models:
        frame = add_evidence_columns(frame, models, PreparedEvidence(models, evidence), own_rows_counted=True)
    provenance = kb.Provenance(
        input_files=inputs,
        date_from=facts["date_from"],
        date_to=facts["date_to"],
        n_items=int(facts["items"]),
        n_labelled=len(frame),
    )
    return CountedHistory(counts, frame, rect, labels, code_counts, evidence, provenance)


def _spark_schema(schema: pa.Schema) -> str:
    names = {pa.int16(): "smallint", pa.int64(): "bigint", pa.float64(): "double", pa.string(): "string",
             pa.binary(): "binary"}
    return ", ".join(f"{f.name} {names[f.type]}" for f in schema)


def _fresh_counts_dir(root: Path | None = None) -> Path:
    """A new temporary folder for this run's count tables, once those of killed runs are gone."""
    root = Path(root or tempfile.gettempdir())
    for folder in root.glob(f"{COUNTS_PREFIX}*-*"):
        pid = folder.name[len(COUNTS_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            log.info("removing %s, left by a Spark learn that was killed", folder)
            shutil.rmtree(folder, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{COUNTS_PREFIX}{os.getpid()}-", dir=root))


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists (another user's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        pass
    return True
