"""Scoring throughput: every label (30 error types + "any") over six factors of 40 shapes.

A synthetic history of heavy-tailed items (Zipf-like importers, exporters, HS codes with a
four-level chain, countries, value bands, ...) is turned into pattern keys
(``keys.pattern_keys``) and counted (``counting.count_factor``); fresh items drawn from the
same distribution are then scored: the six factors' HPB recursion for all 31 labels
(``hpb.factor_log_odds``), the network combination and the coherent "any" label
(``network.network_probabilities``), with coefficients fitted on the history
(``fit.fit_coefficients``, timed too). Pattern keys of the scored items are computed
before the clock starts and timed separately: they are the learning side's kernel.

    PYTHONPATH=. python benchmarks/bench_scoring.py [--history 1000000] [--items 200000]

Writes benchmarks/results/scoring.json: median of ``--runs`` runs, wall-clock and CPU
time (on a machine shared with other work, CPU time per item is the steadier figure).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numba as nb
import numpy as np

from sisam.engine import fit, hpb, network
from sisam.engine.counting import count_factor
from sisam.engine.hashtable import build_index
from sisam.engine.keys import factor_salt, pattern_keys
from sisam.engine.lattice import build_lattice

log = logging.getLogger("sisam.bench")
RESULTS = Path(__file__).parent / "results"
N_ERRORS = 30
N_LABELS = N_ERRORS + 1
LABELLED_SHARE = 0.06  # ~60k inspected items in a 1M history

# attribute -> (cardinality, Zipf exponent); the HS code and the value get level chains
ATTRIBUTES = {
    "importer": (30_000, 1.1),
    "exporter": (50_000, 1.0),
    "manufacturer": (40_000, 1.0),
    "origin": (150, 1.3),
    "acquisition": (150, 1.3),
    "office": (80, 1.0),
    "incoterm": (11, 1.5),
    "currency": (30, 2.0),
    "transport": (7, 1.5),
    "month": (12, 0.0),
}
HS8 = (10_000, 1.0)
# six factors of 40 shapes: hs (4 levels) with three one-level attributes, or with the
# three-level value band and one attribute
FACTORS = {
    "customs": ("hs", "importer", "origin", "office"),
    "supply": ("hs", "exporter", "origin", "incoterm"),
    "value": ("hs", "value", "origin"),
    "parties": ("hs", "importer", "exporter", "currency"),
    "make": ("hs", "manufacturer", "acquisition", "transport"),
    "time": ("hs", "importer", "office", "month"),
}


def zipf(rng: np.random.Generator, cardinality: int, exponent: float, n: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, cardinality + 1) ** exponent
    values = rng.choice(cardinality, n, p=weights / weights.sum())
    return rng.permutation(cardinality)[values]  # popular values spread over the range


def draw_items(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """uint64[n, levels] codes per attribute, finest level first."""
    out = {}
    for name, (cardinality, exponent) in ATTRIBUTES.items():
        out[name] = zipf(rng, cardinality, exponent, n)[:, None].astype(np.uint64)
    hs8 = zipf(rng, *HS8, n)
    out["hs"] = np.stack([hs8, hs8 // 3, hs8 // 12, hs8 // 120], axis=1).astype(np.uint64)
    value = np.log2(rng.lognormal(9.0, 2.0, n))
    out["value"] = np.stack([value // 0.5, value // 1.0, value // 2.0], axis=1)
    out["value"] = (out["value"] - out["value"].min()).astype(np.uint64)
    return out


def draw_labels(rng: np.random.Generator, items: dict[str, np.ndarray]) -> np.ndarray:
    """int8[n, 31]: 6 % of items inspected; error rates 0.2-8 %, raised for risky
    importers and chapters so that patterns carry signal."""
    n = items["importer"].shape[0]
    base = np.geomspace(0.002, 0.08, N_ERRORS)
    importer_risk = rng.lognormal(0.0, 1.0, ATTRIBUTES["importer"][0])
    chapter_risk = rng.lognormal(0.0, 0.7, HS8[0] // 120 + 1)
    risk = importer_risk[items["importer"][:, 0]] * chapter_risk[items["hs"][:, 3]]
    p = np.minimum(0.9, base[None, :] * risk[:, None])
    labels = (rng.random((n, N_ERRORS)) < p).astype(np.int8)
    labels = np.concatenate([labels, labels.max(axis=1, keepdims=True)], axis=1)
    labels[rng.random(n) >= LABELLED_SHARE] = -1
    return labels


def factor_codes(items: dict[str, np.ndarray], attributes: tuple[str, ...]) -> np.ndarray:
    widths = [items[a].shape[1] for a in attributes]
    n = items[attributes[0]].shape[0]
    codes = np.zeros((n, len(attributes), max(widths)), dtype=np.uint64)
    for a, name in enumerate(attributes):
        codes[:, a, : widths[a]] = items[name]
    return codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fit-sample", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--out", type=Path, default=RESULTS / "scoring.json")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    history = draw_items(rng, args.history)
    labels = draw_labels(rng, history)
    fresh = draw_items(rng, args.items)
    fit_rows = fit.sample_labelled(labels, args.fit_sample, args.seed)

    states, fresh_keys, fit_keys, learn = [], [], [], {}
    for name, attributes in FACTORS.items():
        lattice = build_lattice([history[a].shape[1] for a in attributes])
        salt = factor_salt(name)
        start = time.perf_counter()
        keys = pattern_keys(factor_codes(history, attributes), lattice.levels, lattice.level_counts, salt)
        counts = count_factor(keys, labels)
        index = build_index(counts.keys)
        learn[name] = {
            "shapes": lattice.n_shapes,
            "patterns": counts.n_patterns,
            "keys_count_index_seconds": round(time.perf_counter() - start, 3),
        }
        fit_keys.append(keys[fit_rows])
        del keys
        states.append(hpb.FactorState(lattice, counts, index))
        fresh_keys.append(
            pattern_keys(factor_codes(fresh, attributes), lattice.levels, lattice.level_counts, salt)
        )
        log.info("factor %s: %s", name, learn[name])

    membership = np.ones((len(FACTORS), N_LABELS), dtype=bool)
    start, cpu = time.perf_counter(), time.process_time()
    coefficients = fit.fit_coefficients(states, fit_keys, labels[fit_rows], membership, seed=args.seed)
    fit_seconds = (time.perf_counter() - start, time.process_time() - cpu)

    def score(keys: list[np.ndarray]) -> np.ndarray:
        factor_lo, base = [], None
        for f, (state, k) in enumerate(zip(states, keys, strict=True)):
            result = hpb.factor_log_odds(
                k, state.lattice, state.counts, state.index, coefficients.s[f], coefficients.d[f]
            )
            factor_lo.append(result.full)
            base = result.root
        return network.network_probabilities(factor_lo, base, membership, coefficients.dnet)

    score([k[:1000] for k in fresh_keys])  # compile, or load the compiled kernels
    walls, cpus = [], []
    for _ in range(args.runs):
        start, cpu = time.perf_counter(), time.process_time()
        probabilities = score(fresh_keys)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    if not (np.isfinite(probabilities).all() and (probabilities > 0).all() and (probabilities < 1).all()):
        raise RuntimeError("scores outside (0, 1)")

    start = time.perf_counter()
    for state, name in zip(states, FACTORS, strict=True):
        codes = factor_codes(fresh, FACTORS[name])
        pattern_keys(codes, state.lattice.levels, state.lattice.level_counts, factor_salt(name))
    keys_seconds = time.perf_counter() - start

    median = statistics.median(walls)
    result = {
        "benchmark": "scoring: 6 factors x 40 shapes, 31 labels, network and coherent any",
        "command": "PYTHONPATH=. python benchmarks/bench_scoring.py " + " ".join(sys.argv[1:]),
        "history_items": args.history,
        "labelled_items": int((labels[:, 0] >= 0).sum()),
        "scored_items": args.items,
        "factors": learn,
        "fit": {
            "sample": coefficients.n_items,
            "search": coefficients.search,
            "wall_seconds": round(fit_seconds[0], 2),
            "cpu_seconds": round(fit_seconds[1], 2),
        },
        "score_runs_wall_seconds": [round(t, 4) for t in walls],
        "score_runs_cpu_seconds": [round(t, 4) for t in cpus],
        "median_wall_seconds": round(median, 4),
        "items_per_second": round(args.items / median),
        "cpu_seconds_per_item_us": round(1e6 * statistics.median(cpus) / args.items, 2),
        "pattern_keys_seconds_for_scored_items": round(keys_seconds, 4),
        "threads": nb.get_num_threads(),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine": {
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numba": nb.__version__,
            "numpy": np.__version__,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    main()
