"""Consistency evidence (issue 8): recall and scoring throughput with and without it.

One synthetic world (``sisam generate``'s defaults: 200,000 items, seed 7), learnt under
the shipped catalog and under the shipped catalog less every factor that reads a
consistency band (a ``value_in_context`` model's column: issue 8's evidence; other kinds,
such as the description's, stay in both and have their own benchmark,
``bench_evidence_kinds.py``; the models no factor reads are then neither counted nor
banded, ``sisam.bench.suites.knowledge_without``), plus any ``--variant NAME=DIR``
folders; every test item is scored by each and measured against the world's truth (every
error of every test item): recall at 1 % and 5 % per error type and pooled over the 30
(``sisam.metrics``). Scoring throughput: ``Scorer.probabilities`` over the test items
``--repeat`` times, in calls of at most ``--batch`` items cut from the test items, so
that no call holds an item twice (the scorer evaluates a factor once per distinct item
of a call: repeating items within a call would flatter it), the variants interleaved run
by run so that they share the machine's load; medians of ``--runs`` runs, wall-clock and
process CPU time.

    PYTHONPATH=. python benchmarks/bench_evidence.py [--items 200000] [--seed 7]

Writes benchmarks/results/evidence.json and evidence.md. ``sisam bench synthetic
--without no_evidence=...`` gives the same ablation beside the peers (slower: LightGBM).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from sisam.bench.suites import knowledge_without
from sisam.contract import KEY
from sisam.declarations import read_declarations
from sisam.evidence import evidence_models
from sisam.knowledge import load_knowledge
from sisam.metrics import pooled_recall, recall_curve
from sisam.model import Scorer, learn
from sisam.synth import generate_world

RESULTS = Path(__file__).parent / "results"
RATES = (0.01, 0.05)


def evidence_factors(knowledge, kind: str = "value_in_context") -> list[str]:
    """The factors reading the band of an evidence model of ``kind``."""
    columns = {spec.column for spec in knowledge.evidence.values() if spec.kind == kind}
    return [name for name, f in knowledge.factors.items()
            if any(knowledge.attributes[a].column in columns for a in f.attributes)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--batch", type=int, default=50_000,
                        help="items per Scorer.probabilities call (sisam score passes 200,000)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "evidence")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="sisam-evidence-"))
    world = work / "world"
    if not (world / "truth.parquet").exists():
        generate_world(args.items, 365, args.seed, world)
    shipped = load_knowledge()
    catalogs = {"with evidence": shipped,
                "without evidence": load_knowledge(knowledge_without(evidence_factors(shipped), work / "without"))}
    for spec in args.variant:
        name, _, folder = spec.partition("=")
        catalogs[name] = load_knowledge(folder)
    test = read_declarations(world / "test.parquet")
    truth = test[list(KEY)].merge(pd.read_parquet(world / "truth.parquet"), how="left", on=list(KEY), sort=False)
    errors = [e.id for e in shipped.errors]
    positives = [truth[f"e_{e}"].to_numpy(dtype=bool) for e in errors]
    scorers, learning, recall = {}, {}, {}
    for name, knowledge in catalogs.items():
        summary = learn(world / "history.parquet", world / "rectified.parquet", work / f"kb-{name.replace(' ', '-')}",
                        knowledge=knowledge, overwrite=True, seed=args.seed)
        learning[name] = {"seconds": summary.seconds, "patterns": summary.n_patterns, "factors": len(knowledge.factors),
                          "evidence_models": len(evidence_models(knowledge))}
        scorer = Scorer.open(work / f"kb-{name.replace(' ', '-')}", knowledge)
        p = scorer.probabilities(test)
        columns = [p[:, knowledge.label_ids.index(e)] for e in errors]
        recall[name] = {
            "per_error": {e: {f"{r:g}": point.recall for r, point in zip(RATES, recall_curve(c, y, RATES), strict=True)}
                          for e, c, y in zip(errors, columns, positives, strict=True)},
            "pooled": {f"{r:g}": pooled_recall(columns, positives, r) for r in RATES},
        }
        scorers[name] = scorer
    batches = [test.iloc[start : start + args.batch] for start in range(0, len(test), args.batch)] * args.repeat
    n_items = sum(len(b) for b in batches)
    wall = {n: [] for n in scorers}
    cpu = {n: [] for n in scorers}
    for scorer in scorers.values():
        scorer.probabilities(test.iloc[:1000])  # compiled and cached before the clock
    for _ in range(args.runs):
        for name, scorer in scorers.items():
            c, t = time.process_time(), time.perf_counter()
            for batch in batches:
                scorer.probabilities(batch)
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    base = "without evidence"
    throughput = {n: {"items": n_items, "wall_s": statistics.median(wall[n]), "cpu_s": statistics.median(cpu[n]),
                      "items_per_s": n_items / statistics.median(wall[n]),
                      "wall_vs_without": statistics.median(wall[n]) / statistics.median(wall[base]),
                      "cpu_vs_without": statistics.median(cpu[n]) / statistics.median(cpu[base]),
                      "runs_wall_s": wall[n], "runs_cpu_s": cpu[n]} for n in scorers}
    result = {
        "benchmark": "consistency evidence: recall and scoring throughput with and without it",
        "command": f"PYTHONPATH=. python benchmarks/bench_evidence.py --batch {args.batch} --runs {args.runs} "
                   f"--repeat {args.repeat} "
                   + " ".join(f"--variant {v}" for v in args.variant),
        "batch": args.batch,
        "load_average_1m": os.getloadavg()[0],
        "world": {"items": args.items, "seed": args.seed, "test_items": len(test),
                  "test_errors": {e: int(y.sum()) for e, y in zip(errors, positives, strict=True)}},
        "learning": learning,
        "recall": recall,
        "scoring": throughput,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    names = list(result["recall"])
    lines = [f"# {result['benchmark']}", "",
             f"World: {result['world']['items']:,} items, seed {result['world']['seed']}, "
             f"{result['world']['test_items']:,} test items. Command: `{result['command']}`.", "",
             "| error type | errors | " + " | ".join(f"{n} @1% | {n} @5%" for n in names) + " |",
             "|---|---:|" + "---:|" * (2 * len(names))]
    for e, count in result["world"]["test_errors"].items():
        cells = [f"{100 * result['recall'][n]['per_error'][e][r]:.1f}%" for n in names for r in ("0.01", "0.05")]
        lines.append(f"| {e} | {count} | " + " | ".join(cells) + " |")
    cells = [f"**{100 * result['recall'][n]['pooled'][r]:.1f}%**" for n in names for r in ("0.01", "0.05")]
    lines += ["| **pooled** | | " + " | ".join(cells) + " |", "",
              "| variant | factors | learn s | score wall s (median) | score CPU s (median) | items/s | wall vs without | CPU vs without |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for n in names:
        s, learnt = result["scoring"][n], result["learning"][n]
        lines.append(f"| {n} | {learnt['factors']} | {learnt['seconds']:.1f} | {s['wall_s']:.2f} | {s['cpu_s']:.2f} | "
                     f"{s['items_per_s']:,.0f} | {s['wall_vs_without']:.2f} | {s['cpu_vs_without']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
