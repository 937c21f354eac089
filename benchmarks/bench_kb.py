"""Knowledge base benchmark: bytes per stored pattern, write and load times.

Builds about ten million patterns over four factors with the sparsity of real counts (most
patterns seen once, one in twelve declarations inspected, errors on a few inspected
patterns), then measures, as the median of three runs:

* ``create``: validation, content hash, DuckDB write, fsync and publication;
* ``open_version`` with and without recomputing the content hash;
* ``update`` with a day's batch and a 180-day half-life, after which every count is a
  non-integer (decayed) double, the harder case for DuckDB's compression.

Usage: ``PYTHONPATH=. python benchmarks/bench_kb.py [--patterns 10000000]``; prints the
figures and writes ``benchmarks/results/kb.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np

from sisam import kb
from sisam.engine.counts import PatternCounts

LABELS = (*(f"error_{i}" for i in range(30)), "any")
E = len(LABELS)
# Share of the patterns per factor: a wide factor (importer x HS chain) dominates.
SHARES = {"importer_hs": 0.4, "exporter_hs": 0.3, "hs_origin_office": 0.2, "unit_value": 0.1}
INSPECTION_RATE = 0.08
ERROR_RATE = 0.15  # share of inspected items with at least one error


def realistic_counts(rng: np.random.Generator, n_patterns: int) -> PatternCounts:
    """Zipf-like declaration counts (N = 1 for about 60 % of patterns), binomial inspected
    counts, and for inspected patterns with errors: the "any" label plus one or two error
    types, each with a count up to the number of erroneous items."""
    keys = np.unique(rng.integers(0, 2**64, n_patterns, dtype=np.uint64))
    p = keys.size
    N = np.minimum(rng.zipf(2.2, p), 100_000).astype(np.float64)
    n = rng.binomial(N.astype(np.int64), INSPECTION_RATE).astype(np.float64)
    k_any = rng.binomial(n.astype(np.int64), ERROR_RATE)
    n_types = np.where(k_any > 0, rng.integers(1, 3, p), 0)
    per_pattern = np.where(k_any > 0, n_types + 1, 0)
    err_ptr = np.zeros(p + 1, np.int64)
    np.cumsum(per_pattern, out=err_ptr[1:])
    err_label = np.full(err_ptr[-1], E - 1, dtype=np.int16)
    err_k = np.repeat(k_any, per_pattern).astype(np.float64)
    # Error types: distinct and ascending, before "any" which is last. A pattern with one
    # type had it on every erroneous item; with two, each type on some of them.
    start = err_ptr[:-1]
    one, two = n_types == 1, n_types == 2
    err_label[start[one]] = rng.integers(0, E - 1, one.sum())
    first = rng.integers(0, E - 2, two.sum())
    err_label[start[two]] = first
    err_label[start[two] + 1] = rng.integers(first + 1, E - 1)
    for offset in (0, 1):
        err_k[start[two] + offset] = np.maximum(1, rng.binomial(k_any[two], 0.6))
    return PatternCounts(keys, n, N, err_ptr, err_label, err_k)


def median_seconds(action: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def describe(facts: dict) -> dict:
    """Bytes per pattern, and per stored pattern for each column of patterns and errors."""
    n = facts["n_patterns"]
    return {
        "file_bytes": facts["file_bytes"],
        "bytes_per_pattern": facts["bytes_per_pattern"],
        "bytes_per_pattern_by_column": {
            f"{table}.{column}": round(nbytes / n, 3)
            for table in ("patterns", "errors")
            for column, nbytes in facts["tables"][table]["columns"].items()
        },
        "bytes_by_table": {t: v["bytes"] for t, v in facts["tables"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patterns", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "kb.json")
    args = parser.parse_args()

    rng = np.random.default_rng(20240601)
    factors = {name: kb.FactorMeta(name, ("a", "b"), (1, 4), i + 1)
               for i, name in enumerate(SHARES)}
    counts = {name: realistic_counts(rng, int(args.patterns * share))
              for name, share in SHARES.items()}
    batch = {name: realistic_counts(rng, int(args.patterns * share * 0.05))
             for name, share in SHARES.items()}
    coefficients = {name: {"S": rng.choice([0.25, 5.0, 100.0], E),
                           "d": rng.choice([0.5, 1.0, 3.0], E),
                           "loo_loglik": -rng.random(E) * 1e4} for name in factors}
    network = {"dnet": rng.random(E) * 3}
    n_patterns = sum(c.n_patterns for c in counts.values())
    n_errors = sum(c.err_label.size for c in counts.values())
    provenance = kb.Provenance(("history.parquet",), n_items=0, n_labelled=0)

    with tempfile.TemporaryDirectory(prefix="bench_kb_") as tmp:
        root = Path(tmp)
        runs = iter(range(100))

        def create() -> None:
            kb.create(root / f"kb{next(runs)}", factors, counts, coefficients, network,
                      LABELS, provenance, "bench-catalog")

        write_s = median_seconds(create)
        fresh = root / "kb0"
        load_s = median_seconds(lambda: kb.open_version(fresh))
        load_unverified_s = median_seconds(lambda: kb.open_version(fresh, verify=False))
        integer = describe(kb.info(fresh))

        targets = iter(["kb0", "kb1", "kb2"])

        def update() -> None:
            kb.update(root / next(targets), batch, coefficients, network, provenance,
                      "bench-catalog", half_life_days=180.0, days_elapsed=1.0)

        update_s = median_seconds(update)
        decayed_load_s = median_seconds(lambda: kb.open_version(fresh))
        decayed_facts = kb.info(fresh)
        decayed = describe(decayed_facts)

    result = {
        "n_patterns": n_patterns,
        "n_error_entries": n_errors,
        "patterns_with_errors": float(
            sum(np.count_nonzero(np.diff(c.err_ptr)) for c in counts.values()) / n_patterns),
        "factors": {name: c.n_patterns for name, c in counts.items()},
        "integer_counts": {"create_s": round(write_s, 3), "open_verified_s": round(load_s, 3),
                           "open_unverified_s": round(load_unverified_s, 3), **integer},
        "decayed_counts": {"update_s": round(update_s, 3),
                           "open_verified_s": round(decayed_load_s, 3),
                           "n_patterns": decayed_facts["n_patterns"], **decayed},
        "runs": 3,
        "statistic": "median",
        "duckdb": duckdb.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
