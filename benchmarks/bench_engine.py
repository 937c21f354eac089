"""The engine's figures on the default synthetic world: learning, knowledge-base size,
scoring throughput and recall beside the world's oracle and a flat table.

    python benchmarks/bench_engine.py [--items 1100000] [--runs 3] [--work DIR]

Learning runs as a fresh ``sisam learn`` process each time, so its peak memory is the
process's own (``ru_maxrss``). Scoring throughput is measured in memory (the kernels and
the network combination, all 31 labels) and end to end (``sisam score``, file in, file
out). Writes benchmarks/results/engine.json and engine.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

_MEASURED_RUN = """
import resource, runpy, sys, time
sys.argv = ["sisam", *sys.argv[1:]]
start = time.perf_counter()
try:
    runpy.run_module("sisam", run_name="__main__")
except SystemExit as exit:
    if exit.code:
        raise
usage = resource.getrusage(resource.RUSAGE_SELF)
print("MEASURED", time.perf_counter() - start, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, file=sys.stderr)
"""


def measured(*args: str) -> tuple[float, float, float]:
    """Wall seconds, peak resident GiB and CPU seconds of one ``sisam`` command in a fresh
    process (CPU: what the work costs whatever else shares the machine)."""
    done = subprocess.run([sys.executable, "-c", _MEASURED_RUN, *args], capture_output=True, text=True, check=True)
    line = next(x for x in done.stderr.splitlines() if x.startswith("MEASURED"))
    _, seconds, max_kib, cpu = line.split()
    return float(seconds), int(max_kib) / 2**20, float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_100_000, help="world size (history is about 91 %%)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--learn-runs", type=int, default=None, help="learning runs (default: --runs)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sisam-bench-engine"))
    args = parser.parse_args()

    from sisam import kb
    from sisam.baselines import flat_table
    from sisam.contract import KEY
    from sisam.declarations import read_declarations
    from sisam.evaluation import evaluate
    from sisam.knowledge import load_knowledge
    from sisam.model import Scorer

    world = args.work / f"world-{args.items}-{args.seed}"
    if not (world / "truth.parquet").exists():
        seconds, _, _ = measured("generate", "--items", str(args.items), "--seed", str(args.seed), "--out", str(world))
        print(f"generated {world} in {seconds:.1f} s")
    history = world / "history.parquet"
    n_history = len(pd.read_parquet(history, columns=["item_no"]))

    learn_runs = []
    for run in range(args.learn_runs or args.runs):
        kb_dir = args.work / f"kb-{run}"
        subprocess.run(["rm", "-rf", str(kb_dir)], check=True)
        seconds, peak, cpu = measured("learn", "--declarations", str(history), "--rectified", str(world / "rectified.parquet"), "--kb", str(kb_dir), "--quiet")
        learn_runs.append((seconds, peak, cpu))
        print(f"learn run {run + 1}: {seconds:.1f} s ({cpu:.1f} s CPU), peak {peak:.2f} GiB")
    kb_dir = args.work / "kb-0"
    facts = kb.info(kb_dir)

    knowledge = load_knowledge()
    scorer = Scorer.open(kb_dir, knowledge)
    test = read_declarations(world / "test.parquet")
    scorer.probabilities(test.head(1000))  # compile outside the timing
    score_runs = []
    for _ in range(args.runs):
        start = time.perf_counter()
        probabilities = scorer.probabilities(test)
        score_runs.append(len(test) / (time.perf_counter() - start))
    end_to_end = []
    for run in range(args.runs):
        seconds, _, _ = measured("score", "--declarations", str(world / "test.parquet"), "--kb", str(kb_dir), "--out", str(args.work / f"scores-{run}.parquet"), "--quiet")
        end_to_end.append(len(test) / seconds)
    print(f"scoring in memory: {statistics.median(score_runs):,.0f} items/s; end to end {statistics.median(end_to_end):,.0f} items/s")
    load = os.getloadavg()[0]

    truth = test[list(KEY)].merge(pd.read_parquet(world / "truth.parquet"), how="left", on=list(KEY), sort=False)
    error_ids = [e.id for e in knowledge.errors]
    flat = flat_table(scorer, test)
    evaluation = evaluate(
        {
            "sisam": {e: probabilities[:, j] for j, e in enumerate(error_ids)},
            "flat table": {e: flat[:, j] for j, e in enumerate(error_ids)},
            "world oracle": {e: truth[f"p_{e}"].to_numpy() for e in error_ids},
        },
        {e: truth[f"e_{e}"].to_numpy(dtype=bool) for e in error_ids},
    )
    for rate in evaluation.rates:
        print(f"pooled recall at {rate:.0%}: " + ", ".join(f"{r} {evaluation.pooled[r, rate]:.1%}" for r in evaluation.rankers))

    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"platform": platform.platform(), "cpus": numba.config.NUMBA_NUM_THREADS, "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
                    "load_average_1m_after_scoring": load},
        "world": {"items": args.items, "seed": args.seed, "history_items": n_history, "test_items": len(test)},
        "learn": {
            "seconds": [r[0] for r in learn_runs],
            "median_seconds": statistics.median(r[0] for r in learn_runs),
            "cpu_seconds": [r[2] for r in learn_runs],
            "peak_gib": [r[1] for r in learn_runs],
            "max_peak_gib": max(r[1] for r in learn_runs),
        },
        "knowledge_base": {"patterns": facts["n_patterns"], "file_bytes": facts["file_bytes"], "bytes_per_pattern": facts["bytes_per_pattern"]},
        "score": {
            "in_memory_items_per_s": score_runs,
            "median_in_memory_items_per_s": statistics.median(score_runs),
            "end_to_end_items_per_s": end_to_end,
            "median_end_to_end_items_per_s": statistics.median(end_to_end),
        },
        "quality": evaluation.to_json(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engine.json").write_text(json.dumps(result, indent=2) + "\n")
    learn = result["learn"]
    (RESULTS / "engine.md").write_text(
        f"# Engine figures\n\nCommand: `{result['command']}`; {result['machine']['platform']}, {result['machine']['cpus']} threads.\n\n"
        f"- World: {args.items:,} items, seed {args.seed}: {n_history:,} history items, {len(test):,} test items.\n"
        f"- Load average (1 min) after scoring: {load:.1f} on {result['machine']['cpus']} cores: times are only as steady as that.\n"
        f"- Learning ({len(learn_runs)} runs, fresh process each): median {learn['median_seconds']:.1f} s (CPU {statistics.median(learn['cpu_seconds']):.1f} s), peak memory up to {learn['max_peak_gib']:.2f} GiB.\n"
        f"- Knowledge base: {facts['n_patterns']:,} patterns in {facts['file_bytes']:,} bytes, {facts['bytes_per_pattern']:.1f} bytes per pattern.\n"
        f"- Scoring, all 31 labels: median {result['score']['median_in_memory_items_per_s']:,.0f} items/s in memory, "
        f"{result['score']['median_end_to_end_items_per_s']:,.0f} items/s end to end (`sisam score`, Parquet in and out, process start included).\n\n"
        "## Recall on the test period\n\n" + evaluation.markdown() + "\n"
    )
    print(f"wrote {RESULTS / 'engine.json'} and {RESULTS / 'engine.md'}")


if __name__ == "__main__":
    main()
