"""How much could any evidence of an importer's newness raise recall on the default world?

The world's only newness mechanism (``sisam.synth.mechanisms``, ``newcomer``) makes a
broker's clerical slips 1.8 times as likely in an importer's first 60 days. This script
rebuilds the world's latent arrival days (same seed, same streams as ``sisam generate``),
marks the test items in an importer's first 60 days, and reports

- per error type the novelty evidence serves (knowledge/evidence.toml), the test errors on
  those items, and the ratio of the world's own error probability (``p_<id>``) on them to
  the others';
- a ceiling: sisam's test probabilities under a knowledge base of the shipped catalog
  (``bench_evidence_kinds.py``'s ``kb-shipped`` in ``--work``) with the odds of exactly those
  items multiplied by 1.8 (the world's factor), 3 and 10, against the unchanged scores:
  pooled recall at 1 % and 5 % over the served error types. No band computed from the
  declarations can know newness better than the world's own flag.

    PYTHONPATH=. python benchmarks/bench_novelty_ceiling.py --work DIR --seed 7 [--items 200000]

``DIR`` is a ``bench_evidence_kinds.py --work`` folder (``world/`` and ``kb-shipped/``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from sisam.declarations import read_declarations
from sisam.knowledge import load_knowledge
from sisam.metrics import pooled_recall
from sisam.model import Scorer
from sisam.synth.actors import build_actors
from sisam.synth.geography import geography
from sisam.synth.nomenclature import build_tariff
from sisam.synth.trade import build_trade

HISTORY_DAYS, TEST_DAYS = 365, 30
#: The clerical mechanisms' newcomer period (sisam/synth/mechanisms.py).
NEWCOMER_DAYS = 60
MULTIPLIERS = (1.8, 3.0, 10.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--items", type=int, default=200_000)
    args = parser.parse_args()
    knowledge = load_knowledge()
    served = sorted({e for s in knowledge.evidence.values() if s.kind == "novelty" for e in s.serves},
                    key=knowledge.label_ids.index)
    total = HISTORY_DAYS + TEST_DAYS
    geo = geography()
    tariff = build_tariff(args.seed, geo, HISTORY_DAYS)
    actors = build_actors(args.seed, args.items, total, HISTORY_DAYS, tariff, geo)
    trade = build_trade(args.seed, args.items, HISTORY_DAYS, total, tariff, actors, geo)
    truth = pd.read_parquet(args.work / "world" / "truth.parquet")
    in_test = (truth["split"] == "test").to_numpy()
    newcomer = (trade.day - actors.imp_arrival[trade.importer] < NEWCOMER_DAYS)[in_test]
    test = read_declarations(args.work / "world" / "test.parquet")
    t = truth[in_test].reset_index(drop=True)
    if not (t["declaration_id"].to_numpy() == test["declaration_id"].to_numpy()).all():
        raise SystemExit("the rebuilt world does not match the test file: same --seed and --items as the world?")
    p = Scorer.open(args.work / "kb-shipped", knowledge).probabilities(test)
    print(f"# Importer newness on the default world: seed {args.seed}, {args.items:,} items\n")
    print(f"Test items {len(t):,}; in an importer's first {NEWCOMER_DAYS} days: {int(newcomer.sum()):,} "
          f"({newcomer.mean():.1%}).\n")
    print("| error type | test errors | on newcomer items | p_ ratio newcomer / other |")
    print("|---|---:|---:|---:|")
    for e in served:
        y, pe = t[f"e_{e}"].to_numpy(bool), t[f"p_{e}"].to_numpy()
        print(f"| {e} | {int(y.sum())} | {int(y[newcomer].sum())} | {pe[newcomer].mean() / pe[~newcomer].mean():.2f} |")
    ys = [t[f"e_{e}"].to_numpy(bool) for e in served]
    scores = [p[:, knowledge.label_ids.index(e)] for e in served]
    base = [pooled_recall(scores, ys, r) for r in (0.01, 0.05)]
    print("\n| sisam's scores | pooled @1% | pooled @5% |\n|---|---:|---:|")
    print(f"| as learnt (shipped catalog) | {base[0]:.1%} | {base[1]:.1%} |")
    for m in MULTIPLIERS:
        boosted = []
        for x in scores:
            odds = x / (1.0 - x) * np.where(newcomer, m, 1.0)
            boosted.append(odds / (1.0 + odds))
        print(f"| odds x{m:g} on the newcomer items | {pooled_recall(boosted, ys, 0.01):.1%} | "
              f"{pooled_recall(boosted, ys, 0.05):.1%} |")


if __name__ == "__main__":
    main()
