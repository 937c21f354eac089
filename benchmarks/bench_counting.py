"""Learning throughput: level codes, pattern keys and counting of one 40-shape factor.

The factor is the paper's classification network (hpb.md, "What the paper found"): the
HS code with its chain hs8 -> hs6 -> hs4 -> hs2 and three nominal attributes (importer,
origin, office), 5 * 2 * 2 * 2 = 40 shapes. Items are synthetic and heavy-tailed: Zipf
popularity over about 10,000 HS lines grouped in chapters and headings, 100,000 importers,
240 countries and 90 offices; 10 % of items inspected, and an inspected item has each of
the 30 errors with probability 0.5 % (the "any" label is their union).

Timed, as the median of ``--runs`` runs: ``level_codes`` of the four attributes,
``factor_keys`` (uint64[n, 40]), ``count_factor`` of those keys, and
``count_factor_codes``, which keys and counts a block of shapes at a time from the codes
(the same counts, bit for bit, without the keys array). The peak memory of each stage is
the largest resident set above the one before the stage, sampled every 2 ms. Then, once,
``--factors`` factors of the same size (six by default, the scale of a full learning) are
counted from their codes one after another, as ``sisam learn`` would.

    PYTHONPATH=. python benchmarks/bench_counting.py [--items 1000000] [--runs 3]

Writes benchmarks/results/counting.json. The machine is shared: the load average at the
start is recorded with the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numba as nb
import numpy as np
import pandas as pd

from sisam.engine.counting import count_factor, count_factor_codes
from sisam.engine.counts import PatternCounts
from sisam.engine.keys import factor_keys
from sisam.engine.lattice import build_lattice
from sisam.engine.levels import level_codes

HS_LEVELS = ("value", "prefix:6", "prefix:4", "prefix:2")
N_LABELS = 31
INSPECTION_RATE = 0.10
ERROR_RATE = 0.005  # per error type, on an inspected item


def zipf_choice(rng: np.random.Generator, names: np.ndarray, n: int, a: float) -> np.ndarray:
    """``n`` draws from ``names`` with Zipf(a) popularity over a random ranking."""
    ranks = rng.zipf(a, n) - 1
    ranks = ranks[ranks < names.size]
    while ranks.size < n:  # redraw the tail beyond the last name
        more = rng.zipf(a, n - ranks.size) - 1
        ranks = np.concatenate([ranks, more[more < names.size]])
    return names[rng.permutation(names.size)][ranks]


def synthetic_items(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    chapters = rng.choice(np.arange(1, 98), 60, replace=False)
    lines = {
        f"{rng.choice(chapters):02d}{rng.integers(1, 100):02d}{rng.integers(0, 100):02d}"
        f"{rng.integers(0, 100):02d}"
        for _ in range(12_000)
    }
    frame = pd.DataFrame(
        {
            "hs_code": zipf_choice(rng, np.array(sorted(lines)), n, 1.3),
            "importer_id": zipf_choice(
                rng, np.array([f"I{i:06d}" for i in range(100_000)]), n, 1.2
            ),
            "origin_country": zipf_choice(rng, np.array([f"C{i:03d}" for i in range(240)]), n, 1.5),
            "customs_office": zipf_choice(rng, np.array([f"O{i:02d}" for i in range(90)]), n, 1.6),
        }
    )
    labels = np.full((n, N_LABELS), -1, dtype=np.int8)
    inspected = rng.random(n) < INSPECTION_RATE
    errors = (rng.random((int(inspected.sum()), N_LABELS - 1)) < ERROR_RATE).astype(np.int8)
    labels[inspected, :-1] = errors
    labels[inspected, -1] = errors.any(axis=1)
    return frame, labels


class PeakRss:
    """Largest resident set size above the starting one while the block runs."""

    def __init__(self) -> None:
        self.peak_bytes = 0
        self._stop = threading.Event()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self, base: int) -> None:
        while not self._stop.wait(0.002):
            self.peak_bytes = max(self.peak_bytes, self._rss() - base)

    def __enter__(self) -> PeakRss:
        self._thread = threading.Thread(target=self._sample, args=(self._rss(),), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(function: Callable[[], Any], runs: int) -> tuple[Any, dict[str, Any]]:
    seconds, peaks, result = [], [], None
    for _ in range(runs):
        result = None  # free the previous run's result before measuring memory again
        with PeakRss() as peak:
            start = time.perf_counter()
            result = function()
            seconds.append(time.perf_counter() - start)
        peaks.append(peak.peak_bytes)
    median = statistics.median(seconds)
    return result, {
        "seconds_median": round(median, 3),
        "seconds_runs": [round(s, 3) for s in seconds],
        "peak_rss_mb": round(max(peaks) / 2**20, 1),
    }


def digest(counts: PatternCounts) -> str:
    """SHA-256 of every array of ``counts``: equal digests, equal counts."""
    sha = hashlib.sha256()
    for array in counts:
        sha.update(np.ascontiguousarray(array).tobytes())
    return sha.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--factors", type=int, default=6)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/counting.json"))
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    rng = np.random.default_rng(args.seed)
    frame, labels = synthetic_items(rng, args.items)
    attributes = [
        ("hs_code", HS_LEVELS),
        ("importer_id", ("value",)),
        ("origin_country", ("value",)),
        ("customs_office", ("value",)),
    ]
    lattice = build_lattice([len(levels) for _, levels in attributes])

    # Compile (or load the cached kernels) outside the clock.
    small = [level_codes(frame[c][:100], levels, "nominal") for c, levels in attributes]
    count_factor(factor_keys("warm-up", small, lattice), labels[:100])
    count_factor_codes("warm-up", small, lattice, labels[:100])

    def codes() -> list[np.ndarray]:
        return [level_codes(frame[c], levels, "nominal") for c, levels in attributes]

    attribute_codes, codes_stats = measure(codes, args.runs)
    keys, keys_stats = measure(
        lambda: factor_keys("classification", attribute_codes, lattice), args.runs
    )
    count = partial(count_factor, keys, labels)
    counts, count_stats = measure(count, args.runs)
    summary = (counts.n_patterns, int(counts.err_label.size), digest(counts))
    del count, keys, counts  # each stage starts with the memory of the one before free
    fused = partial(count_factor_codes, "classification", attribute_codes, lattice, labels)
    fused_counts, fused_stats = measure(fused, args.runs)
    if digest(fused_counts) != summary[2]:
        raise AssertionError("count_factor_codes and count_factor disagree")
    del fused, fused_counts

    def learn_factors() -> None:
        for f in range(args.factors):
            count_factor_codes(f"factor_{f}", attribute_codes, lattice, labels)

    _, factors_stats = measure(learn_factors, 1)

    n = args.items
    result = {
        "items": n,
        "shapes": lattice.n_shapes,
        "patterns": summary[0],
        "error_entries": summary[1],
        "inspected": int((labels[:, 0] >= 0).sum()),
        "level_codes": {**codes_stats, "items_per_s": round(n / codes_stats["seconds_median"])},
        "pattern_keys": {**keys_stats, "items_per_s": round(n / keys_stats["seconds_median"])},
        "count_factor": {**count_stats, "items_per_s": round(n / count_stats["seconds_median"])},
        "count_factor_codes": {
            **fused_stats,
            "items_per_s": round(n / fused_stats["seconds_median"]),
        },
        f"count_factor_codes_{args.factors}_factors": factors_stats,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "numba_threads": nb.get_num_threads(),
            "load_average_at_start": [round(x, 2) for x in load_at_start],
        },
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
