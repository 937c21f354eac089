"""Per-item inference time: pgmpy's exact inference against sisam, same networks, same items.

A tiny world (``--items`` random declarations over two to four values per column, so that
every network's full table fits) is counted into an in-memory knowledge base with seeded
coefficients (``sisam.bench.oracle_world``, the worlds tests/test_pgmpy.py checks).
Every error type's network, "any" included, is exported once (``pgmpy_adapter.export_network``); then, in the same run:

* pgmpy: one ``VariableElimination`` query per item and network, with the item's values
  as evidence (``Oracle.probability``; the evidence dicts are built before the clock
  starts), averaged over the items;
* sisam: ``Scorer.probabilities`` over the items as one batch, divided by the batch size;
  it gives all 31 labels at once. Also over the same items repeated ``--tile`` times,
  the batch size sisam scores in production (``model.SCORE_CHUNK_ROWS``), where the fixed
  cost of a call is spread; sisam evaluates each factor once per distinct item
  (``Encoder.distinct_keys``), so that batch repeats the work of ``--items`` items only.
  Hence also over as many *fresh* items, drawn at random from the same values (different
  items, sharing values and factor patterns as a real day's declarations do): the
  figure the requirement is read on.

Each figure is the median of ``--runs`` runs. The issue asks sisam to be >= 1,000 times
faster per item; the ratios are reported as measured, for the "any" network (the largest:
every column), for the mean network, and for all 31 networks against sisam's 31 labels.

    PYTHONPATH=. python benchmarks/bench_pgmpy.py [--items 200] [--runs 5] [--tile 500]

Writes benchmarks/results/pgmpy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numba as nb
import numpy as np
import pandas as pd

from sisam.bench import oracle_world
from sisam.knowledge import load_knowledge
from sisam.pgmpy_adapter import Oracle, export_network, item_evidence

REQUIRED_RATIO = 1_000
#: Every column the shipped catalog reads, its evidence models' included.
VALUES = {**oracle_world.VALUES, **oracle_world.EVIDENCE_VALUES}


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tile", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default: all)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "pgmpy.json"
    )
    args = parser.parse_args()
    if args.threads:
        nb.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]

    knowledge = load_knowledge()
    frame, scorer = oracle_world.random_world(knowledge, args.seed, args.items, VALUES)
    tiled = pd.concat([frame] * args.tile, ignore_index=True)
    fresh = oracle_world.random_items(len(tiled), np.random.default_rng(args.seed + 1), VALUES)
    expected = scorer.probabilities(frame)  # also compiles or loads the kernels
    scorer.probabilities(tiled)
    scorer.probabilities(fresh)

    rows = frame.to_dict("records")
    networks, oracles, evidence = {}, {}, {}
    for j, label in enumerate(knowledge.label_ids):
        start = time.perf_counter()
        exported = export_network(scorer, label, frame)
        export_s = time.perf_counter() - start
        oracles[label] = Oracle(exported.model)
        evidence[label] = [item_evidence(row, oracles[label].columns) for row in rows]
        got = np.array([oracles[label].probability(e) for e in evidence[label]])  # and warm-up
        networks[label] = {
            "parents": len(exported.nodes),
            "cells": exported.n_cells,
            "export_s": round(export_s, 4),
            "max_abs_deviation_from_sisam": float(np.abs(got - expected[:, j]).max()),
        }

    # Runs interleave sisam and pgmpy, so that both see the same load on a shared machine.
    sisam_batch_runs, sisam_tiled_runs, sisam_fresh_runs, sisam_factor_runs = [], [], [], []
    pgmpy_runs: dict[str, list[float]] = {label: [] for label in knowledge.label_ids}
    for _ in range(args.runs):
        sisam_batch_runs.append(seconds(lambda: scorer.probabilities(frame)))
        sisam_tiled_runs.append(seconds(lambda: scorer.probabilities(tiled)))
        sisam_fresh_runs.append(seconds(lambda: scorer.probabilities(fresh)))
        # the factors' HPB recursion alone; the rest is the network combination (numpy)
        sisam_factor_runs.append(seconds(lambda: scorer.factor_log_odds(tiled)))
        for label, oracle in oracles.items():
            queries = evidence[label]
            pgmpy_runs[label].append(seconds(lambda: [oracle.probability(e) for e in queries]))  # noqa: B023
    sisam_item = statistics.median(sisam_batch_runs) / len(frame)
    sisam_tiled_item = statistics.median(sisam_tiled_runs) / len(tiled)
    sisam_fresh_item = statistics.median(sisam_fresh_runs) / len(fresh)
    for label, net in networks.items():
        net["pgmpy_s_per_item"] = statistics.median(pgmpy_runs[label]) / len(frame)
        net["pgmpy_runs_s"] = [round(t, 4) for t in pgmpy_runs[label]]
        print(f"{label:>20}: {net['pgmpy_s_per_item'] * 1e3:.3f} ms/item, {net['cells']:,} cells, "
              f"deviation {net['max_abs_deviation_from_sisam']:.1e}", file=sys.stderr)  # fmt: skip

    per_item = {label: net["pgmpy_s_per_item"] for label, net in networks.items()}
    pgmpy_any = per_item["any"]
    pgmpy_mean = statistics.fmean(per_item.values())
    pgmpy_all = sum(per_item.values())
    ratios = {
        "any_network_vs_sisam_batch": pgmpy_any / sisam_item,
        "any_network_vs_sisam_tiled": pgmpy_any / sisam_tiled_item,
        "mean_network_vs_sisam_batch": pgmpy_mean / sisam_item,
        "mean_network_vs_sisam_tiled": pgmpy_mean / sisam_tiled_item,
        "all_31_networks_vs_sisam_batch": pgmpy_all / sisam_item,
        "all_31_networks_vs_sisam_tiled": pgmpy_all / sisam_tiled_item,
        "any_network_vs_sisam_fresh": pgmpy_any / sisam_fresh_item,
        "mean_network_vs_sisam_fresh": pgmpy_mean / sisam_fresh_item,
        "all_31_networks_vs_sisam_fresh": pgmpy_all / sisam_fresh_item,
    }
    result = {
        "command": " ".join(["python", "benchmarks/bench_pgmpy.py", *sys.argv[1:]]),
        "items": len(frame),
        "runs": args.runs,
        "seed": args.seed,
        "sisam": {
            "labels_per_call": len(knowledge.label_ids),
            "batch_items": len(frame),
            "batch_s_per_item": sisam_item,
            "batch_runs_s": [round(t, 5) for t in sisam_batch_runs],
            "tiled_items": len(tiled),
            "tiled_s_per_item": sisam_tiled_item,
            "tiled_runs_s": [round(t, 4) for t in sisam_tiled_runs],
            "tiled_factor_log_odds_s_per_item": statistics.median(sisam_factor_runs) / len(tiled),
            "fresh_items": len(fresh),
            "fresh_distinct_items": int((~fresh.astype(str).duplicated()).sum()),
            "fresh_s_per_item": sisam_fresh_item,
            "fresh_runs_s": [round(t, 4) for t in sisam_fresh_runs],
        },
        "pgmpy": {
            "any_s_per_item": pgmpy_any,
            "mean_network_s_per_item": pgmpy_mean,
            "all_31_networks_s_per_item": pgmpy_all,
            "max_abs_deviation_from_sisam": max(
                n["max_abs_deviation_from_sisam"] for n in networks.values()
            ),
            "networks": networks,
        },
        "ratios": {k: round(v, 1) for k, v in ratios.items()},
        "required_ratio": REQUIRED_RATIO,
        "meets_requirement": {k: v >= REQUIRED_RATIO for k, v in ratios.items()},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "numba_threads": nb.get_num_threads(),
            # other processes share the cores: times are only as steady as this load
            "load_average_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "pgmpy": _version("pgmpy"),
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: result[k] for k in ("sisam", "ratios", "meets_requirement")}
    print(json.dumps(summary, indent=2))


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    main()
