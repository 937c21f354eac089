"""Throughput of explanations: attribution, explanation values, sentences, reasoning logs
and their replay, beside plain scoring, on a synthetic world learnt by ``sisam learn``.

    PYTHONPATH=. python benchmarks/bench_explain.py [--items 20000] [--seed 3]

Each figure is items per second over the world's test period (one run, after a warm-up
on a few items, so numba compilation is not counted). Writes
benchmarks/results/explain.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numba as nb

from sisam.attribution import iter_attributions
from sisam.declarations import read_declarations
from sisam.explain import ItemEvidence, explain_items
from sisam.knowledge import load_knowledge
from sisam.model import Scorer, learn
from sisam.reasoning_log import ReasoningLogWriter
from sisam.replay import replay
from sisam.synth import generate_world


def timed(label: str, n_items: int, run, results: dict) -> None:
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    results[label] = {"seconds": round(seconds, 3), "items_per_second": round(n_items / seconds, 1)}
    print(f"{label:<44} {seconds:8.2f} s {n_items / seconds:10,.0f} items/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20_000, help="items in the world (history and test)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "explain.json")
    args = parser.parse_args()
    knowledge = load_knowledge()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate_world(args.items, 120, args.seed, folder / "world")
        learn(folder / "world" / "history.parquet", folder / "world" / "rectified.parquet", folder / "kb", knowledge=knowledge)
        scorer = Scorer.open(folder / "kb", knowledge)
        test = read_declarations(folder / "world" / "test.parquet")
        n = len(test)
        print(f"{n:,} test items, {nb.get_num_threads()} numba threads")
        explain_items(scorer, test.iloc[:20], "en")  # warm-up: compile every kernel
        results: dict = {}
        timed("score (Scorer.probabilities)", n, lambda: scorer.probabilities(test), results)
        timed("attribute (every item, label, pattern)", n, lambda: list(iter_attributions(scorer, test)), results)

        def values() -> None:
            for _, attribution in iter_attributions(scorer, test):
                for i in range(attribution.n_items):
                    evidence = ItemEvidence(attribution, i, knowledge)
                    for label in knowledge.label_ids:
                        evidence.values(label)

        timed("attribute + explanation values (31 labels)", n, values, results)
        timed("explain_items, top 3, en (sentences, rows)", n, lambda: explain_items(scorer, test, "en", top=3), results)
        timed("explain_items, top 3, pt-BR", n, lambda: explain_items(scorer, test, "pt-BR", top=3), results)
        for name in ("reasoning.jsonl", "reasoning.jsonl.gz"):
            path = folder / name

            def write(path: Path = path) -> None:
                with ReasoningLogWriter(path, scorer) as writer:
                    writer.score_frame(test)

            timed(f"score with reasoning log ({name})", n, write, results)
            results[f"score with reasoning log ({name})"]["bytes_per_item"] = round(path.stat().st_size / n)
        log = folder / "reasoning.jsonl"
        timed("replay from the log alone", n, lambda: replay(log), results)
        timed("replay, also against the knowledge base", n, lambda: replay(log, folder / "kb"), results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "items": args.items, "test_items": n, "seed": args.seed, "numba_threads": nb.get_num_threads(),
        "machine": platform.machine(), "python": platform.python_version(), "results": results,
    }, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
