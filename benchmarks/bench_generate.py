"""World generator benchmark: seconds to generate and write a world of a million items.

Runs ``generate_world`` (365 days of history, 30 test days, Parquet) several times into a
temporary folder and reports the wall-clock time of each run (as measured inside
``generate_world``, writing and fsync included, and from outside the call), their median,
the peak resident memory, and the error rates of the world (true among history items,
found among inspected items; the same for every run since the seed is fixed).

Usage: ``PYTHONPATH=. python benchmarks/bench_generate.py [--items 1000000] [--runs 3]``;
prints the figures and writes ``benchmarks/results/generate.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

from sisam.synth import generate_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "generate.json")
    args = parser.parse_args()

    inner, outer = [], []
    summary = None
    with tempfile.TemporaryDirectory(prefix="sisam-bench-generate-") as folder:
        for run in range(args.runs):
            started = time.perf_counter()
            summary = generate_world(args.items, args.days, args.seed, Path(folder) / "world")
            outer.append(round(time.perf_counter() - started, 3))
            inner.append(round(summary.seconds, 3))
            print(f"run {run + 1}: {outer[-1]:.2f} s")
        sizes = {p.name: p.stat().st_size for p in (Path(folder) / "world").iterdir()}
    assert summary is not None
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "items": args.items,
        "days": args.days,
        "test_days": 30,
        "seed": args.seed,
        "format": "parquet",
        "seconds_median": statistics.median(outer),
        "seconds_runs": outer,
        "seconds_inside_generate_world": inner,
        "peak_rss_mb": round(peak_mb, 1),
        "file_bytes": sizes,
        "history_items": summary.history_items,
        "test_items": summary.test_items,
        "inspected_items": summary.inspected_items,
        "declarations": summary.declarations,
        "importers": summary.importers,
        "combination_pairs": len(summary.combination.pairs),
        "true_rates": {k: round(v, 5) for k, v in summary.true_rates.items()},
        "found_rates": {k: round(v, 5) for k, v in summary.found_rates.items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    print(summary)
    print(f"median of {args.runs} runs: {result['seconds_median']:.2f} s for {args.items:,} items; "
          f"peak RSS {result['peak_rss_mb']:.0f} MB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
