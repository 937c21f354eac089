"""Evidence kinds of issue 6: recall with and without each kind, for the errors it serves.

One synthetic world (``sisam generate``'s defaults: 200,000 items, seed 7), learnt under
the shipped catalog and, in the same run, under the shipped catalog with each kind's
factor toggled: added to the networks of the errors its models serve when no shipped
network uses it (``knowledge_with``: a kind is measured before it is shipped), removed
from every network when the shipped catalog uses it (``knowledge_without``). Every test item is
scored by each and measured against the world's truth: recall at 1 % and 5 % for every
error type the kind's models serve (``serves`` in knowledge/evidence.toml), and pooled
over them. ``--also-without FACTOR`` measures every pair again without a shipped factor
(is it still worth keeping beside the kind?), and the recall of every error type that
removing it moves.

    PYTHONPATH=. python benchmarks/bench_evidence_kinds.py [--items 200000] [--seed 7] [--kinds K ...] \
        [--also-without FACTOR ...] [--out PATH]

Writes PATH.json (every error type's recall under every catalog) and PATH.md (default
benchmarks/results/evidence_kinds).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from sisam.bench.suites import knowledge_with, knowledge_without
from sisam.contract import KEY
from sisam.declarations import read_declarations
from sisam.knowledge import load_knowledge
from sisam.metrics import pooled_recall, recall_curve
from sisam.model import Scorer, learn
from sisam.synth import generate_world

RESULTS = Path(__file__).parent / "results"
RATES = (0.01, 0.05)
#: kind -> (factor name, the attributes reading its bands) added by ``knowledge_with``
KIND_FACTORS = {
    "novelty": ("novelty", ["ev_importer_novelty"]),
    "description_vs_code": ("description_fit", ["ev_description_given_code"]),
    "quantity": ("quantity_consistency", ["ev_value_per_unit", "ev_value_per_kg", "ev_kg_per_unit"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "evidence_kinds")
    parser.add_argument("--kinds", nargs="+", choices=sorted(KIND_FACTORS), default=sorted(KIND_FACTORS))
    parser.add_argument("--also-without", nargs="+", default=[], metavar="FACTOR",
                        help="also measure every pair without these shipped factors, one at a time")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="sisam-kinds-"))
    world = work / "world"
    if not (world / "truth.parquet").exists():
        generate_world(args.items, 365, args.seed, world)
    shipped = load_knowledge()
    test = read_declarations(world / "test.parquet")
    truth = test[list(KEY)].merge(pd.read_parquet(world / "truth.parquet"), how="left", on=list(KEY), sort=False)
    served = {kind: sorted({e for spec in shipped.evidence.values() if spec.kind == kind for e in spec.serves},
                           key=[e.id for e in shipped.errors].index) for kind in args.kinds}
    # every error type: the served ones for the kinds, the others for what a factor of
    # --also-without served
    errors = [e.id for e in shipped.errors]
    catalogs = {"shipped": shipped}
    # per kind and variant ("" or " without FACTOR"), the catalogs with and without its factor
    pair = {}
    for variant in ["", *(f" without {f}" for f in args.also_without)]:
        removed = [variant.removeprefix(" without ")] if variant else []
        base = knowledge_without(removed, work / f"shipped{variant}".replace(" ", "-")) if removed else None
        if base is not None:
            catalogs[f"shipped{variant}"] = load_knowledge(base)
        for kind in args.kinds:
            factor, attributes = KIND_FACTORS[kind]
            if any(factor in network.factors for network in shipped.networks.values()):
                name = f"without {kind}{variant}"
                catalogs[name] = load_knowledge(knowledge_without([factor, *removed], work / name.replace(" ", "-")))
                pair[kind + variant] = (f"shipped{variant}", name)
            else:
                name = f"with {kind}{variant}"
                catalogs[name] = load_knowledge(
                    knowledge_with(factor, attributes, served[kind], work / name.replace(" ", "-"), base))
                pair[kind + variant] = (name, f"shipped{variant}")
    positives = {e: truth[f"e_{e}"].to_numpy(dtype=bool) for e in errors}
    recall, seconds = {}, {}
    for name, knowledge in catalogs.items():
        kb = work / f"kb-{name.replace(' ', '-')}"
        start = time.perf_counter()
        learn(world / "history.parquet", world / "rectified.parquet", kb, knowledge=knowledge, overwrite=True,
              seed=args.seed)
        seconds[name] = time.perf_counter() - start
        p = Scorer.open(kb, knowledge).probabilities(test)
        columns = {e: p[:, knowledge.label_ids.index(e)] for e in errors}
        recall[name] = {
            "per_error": {e: {f"{r:g}": pt.recall for r, pt in zip(RATES, recall_curve(columns[e], positives[e], RATES),
                                                                   strict=True)} for e in errors},
            "pooled": {kind: {f"{r:g}": pooled_recall([columns[e] for e in s], [positives[e] for e in s], r)
                              for r in RATES} for kind, s in served.items()},
        }
    result = {"benchmark": "evidence kinds of issue 6: recall with and without each kind", "items": args.items,
              "seed": args.seed, "test_items": len(test), "served": served, "compared": pair, "learn_seconds": seconds,
              "errors_in_test": {e: int(positives[e].sum()) for e in errors}, "recall": recall}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [f"# {result['benchmark']}", "",
             f"World: {args.items:,} items, seed {args.seed}, {len(test):,} test items. Command: "
             f"`PYTHONPATH=. python benchmarks/bench_evidence_kinds.py --items {args.items} --seed {args.seed} "
             f"--kinds {' '.join(args.kinds)}"
             + (f" --also-without {' '.join(args.also_without)}" if args.also_without else "") + "`.", ""]
    for variant in ["", *(f" without {f}" for f in args.also_without)]:
        for kind, s in served.items():
            with_kind, without_kind = pair[kind + variant]
            lines += [f"## {kind}{variant}", "", "| error type | errors | with @1% | with @5% | without @1% | without @5% |",
                      "|---|---:|---:|---:|---:|---:|"]
            for e in s:
                w, o = recall[with_kind]["per_error"][e], recall[without_kind]["per_error"][e]
                lines.append(f"| {e} | {positives[e].sum()} | {w['0.01']:.1%} | {w['0.05']:.1%} | {o['0.01']:.1%} | "
                             f"{o['0.05']:.1%} |")
            w, o = recall[with_kind]["pooled"][kind], recall[without_kind]["pooled"][kind]
            lines += [f"| **pooled** | | **{w['0.01']:.1%}** | **{w['0.05']:.1%}** | **{o['0.01']:.1%}** | "
                      f"**{o['0.05']:.1%}** |", ""]
    for factor in args.also_without:
        shipped_without = recall[f"shipped without {factor}"]["per_error"]
        moved = [e for e in errors if any(abs(shipped_without[e][r] - recall["shipped"]["per_error"][e][r]) >= 0.01
                                          for r in ("0.01", "0.05"))]
        lines += [f"## every error type whose recall moves by a point or more without {factor} (shipped catalog)", "",
                  "| error type | errors | without it @1% | @5% | shipped @1% | @5% |", "|---|---:|---:|---:|---:|---:|"]
        for e in moved:
            w, o = shipped_without[e], recall["shipped"]["per_error"][e]
            lines.append(f"| {e} | {positives[e].sum()} | {w['0.01']:.1%} | {w['0.05']:.1%} | {o['0.01']:.1%} | "
                         f"{o['0.05']:.1%} |")
        lines.append("")
    args.out.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
