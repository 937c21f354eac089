"""Which way of counting on Spark is faster: sisam's kernels per partition, or Spark SQL's
``GROUP BY GROUPING SETS``? (Issue 7 asks to measure and keep the faster.)

Both count the first factor of the catalog (its full lattice) over the same Parquet history
in Spark local mode (``local[2]``, the settings of ``bench_scale.SPARK_CONF``):

* kernels: ``sisam.spark.partition.count_partition`` in ``mapInArrow`` (level codes, keys,
  labels, n, N and every label's k), then a sum by (factor, key, label): what
  ``sisam learn --engine spark`` runs;
* SQL: ``mapInArrow`` turns each row into its attributes' level codes (``encoding``) and an
  inspected flag and an any-error flag, then one ``GROUP BY GROUPING SETS`` with a grouping
  set per shape of the lattice computes N, n and k of "any" only. That is less work than
  the kernels do (no pattern key, one label instead of 31), so its time is a lower bound
  for a SQL back-end.

Each count is materialised by writing it to Parquet, as learning does; the best of
``--runs`` is reported. Usage:
``PYTHONPATH=. python benchmarks/bench_scale_sql.py --history /work/scale/h1m/history.parquet
--rectified /work/scale/h1m/rectified.parquet``; writes ``benchmarks/results/scale_sql.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
from bench_scale import RESULTS, SPARK_CONF

from sisam.encoding import Encoder, factor_plans
from sisam.knowledge import load_knowledge
from sisam.labels import label_matrix
from sisam.spark import _read, _spark_schema, session
from sisam.spark.partition import (
    COUNT_SCHEMA,
    checked_pair,
    count_partition,
    rectified_columns,
)


def level_rows(batches, plan, errors, declared):
    """Per row: every attribute level's code (as int64), inspected and any-error flags."""
    rectified = rectified_columns(errors)
    for batch in batches:
        if not batch.num_rows:
            continue
        frame, rect = checked_pair(pa.Table.from_batches([batch]), declared, rectified)
        labels = label_matrix(frame, rect, errors)
        encoder = Encoder(frame)
        columns = {}
        for a, attribute in enumerate(plan.attributes):
            codes = encoder.codes(attribute)
            for level in range(codes.shape[1]):
                columns[f"a{a}_{level}"] = pa.array(codes[:, level].view(np.int64))
        columns["labelled"] = pa.array((labels[:, 0] >= 0).astype(np.int64))
        columns["any"] = pa.array((labels[:, -1] == 1).astype(np.int64))
        yield pa.RecordBatch.from_pydict(columns)


def grouping_sql(plan) -> str:
    sets = []
    for shape in plan.lattice.levels:
        columns = [f"a{a}_{level}" for a, level in enumerate(shape) if level < len(plan.attributes[a].levels)]
        sets.append("(" + ", ".join(columns) + ")")
    every = [f"a{a}_{level}" for a, attribute in enumerate(plan.attributes) for level in range(len(attribute.levels))]
    return (f"SELECT {', '.join(every)}, grouping_id() AS g, count(*) AS n_declared, sum(labelled) AS n_labelled, sum(`any`) AS k "
            f"FROM levels GROUP BY GROUPING SETS ({', '.join(sets)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=Path, required=True)
    parser.add_argument("--rectified", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=["kernels", "grouping_sets"])
    args = parser.parse_args()
    # the first factor reads contract columns only: no evidence pass, in either method
    knowledge = dataclasses.replace(load_knowledge(), evidence={})
    name, plan = next(iter(factor_plans(knowledge).items()))
    spark, _ = session("local[2]", SPARK_CONF)
    _, joined, declared, _ = _read(spark, str(args.history), str(args.rectified), knowledge)
    level_schema = ", ".join(
        [f"a{a}_{level} bigint" for a, attribute in enumerate(plan.attributes) for level in range(len(attribute.levels))]
        + ["labelled bigint", "`any` bigint"]
    )
    from pyspark.sql import functions as F

    def kernels(out: str) -> None:
        rows = joined.mapInArrow(partial(count_partition, plans={name: plan}, knowledge=knowledge, declared=declared,
                                         evidence=list), _spark_schema(COUNT_SCHEMA))
        sums = rows.groupBy("factor", "key", "label", "code").agg(F.sum("a").alias("a"), F.sum("b").alias("b"))
        sums.write.mode("overwrite").parquet(out)

    def grouping_sets(out: str) -> None:
        joined.mapInArrow(partial(level_rows, plan=plan, errors=knowledge.errors, declared=declared), level_schema) \
            .createOrReplaceTempView("levels")
        spark.sql(grouping_sql(plan)).write.mode("overwrite").parquet(out)

    figures = {"factor": name, "shapes": plan.lattice.n_shapes, "history": str(args.history),
               "spark_conf": SPARK_CONF, "runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="sisam-bench-sql-") as folder:
        for label, method in (("kernels", kernels), ("grouping_sets", grouping_sets)):
            if label not in args.methods:
                continue
            times = []
            for run in range(args.runs):
                start = time.perf_counter()
                method(f"{folder}/{label}-{run}")
                times.append(round(time.perf_counter() - start, 1))
            rows = spark.read.parquet(f"{folder}/{label}-0").count()
            figures[label] = {"seconds_runs": times, "seconds_best": min(times), "rows_written": rows}
            print(label, figures[label], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "scale_sql.json"
    earlier = json.loads(path.read_text()) if path.exists() else {}
    (RESULTS / "scale_sql.json").write_text(json.dumps({**earlier, **figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
