"""Suggested codes and expected value at stake on the default world (``sisam generate``'s
defaults: 200,000 items, 365 days of history, 30 test days, seed 7).

    PYTHONPATH=. python benchmarks/bench_suggest_value.py [--items 200000] [--seed 7]

Learns on the history, scores the test period, and measures against the world's truth:

- suggested codes: among the test items whose declared code is wrong (``e_hs_code``), the
  share whose true code is the first suggestion, or among the three;
- expected value: the tax at stake in each test item is that of its true row minus that of
  its declared row, never below zero (``sisam.value.tax``: customs value times the six
  rates); the share of the period's total held by the top 1, 2, 5, 10 and 20 % of items
  ranked by ``expected_recovery_usd``, beside the ranking by ``p_any``.

Writes benchmarks/results/suggest_value.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sisam import value
from sisam.declarations import read_declarations
from sisam.knowledge import load_knowledge
from sisam.metrics import value_captured
from sisam.model import Scorer, learn
from sisam.synth import generate_world

RATES = (0.01, 0.02, 0.05, 0.10, 0.20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200_000, help="items in the world (history and test)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "suggest_value.json")
    args = parser.parse_args()
    knowledge = load_knowledge()
    with tempfile.TemporaryDirectory() as tmp:
        world, kb_dir = Path(tmp) / "world", Path(tmp) / "kb"
        generate_world(args.items, 365, args.seed, world, test_days=30)
        start = time.perf_counter()
        learn(world / "history.parquet", world / "rectified.parquet", kb_dir, knowledge=knowledge)
        learn_s = time.perf_counter() - start
        test = read_declarations(world / "test.parquet")
        truth = pd.read_parquet(world / "truth.parquet")
        truth = truth[truth["split"] == "test"].reset_index(drop=True)
        start = time.perf_counter()
        scores = Scorer.open(kb_dir, knowledge).score_frame(test)
        score_s = time.perf_counter() - start
    if not (scores["declaration_id"].to_numpy() == truth["declaration_id"].to_numpy()).all():
        raise SystemExit("scores and truth are not aligned")

    wrong = truth["e_hs_code"].to_numpy()
    true_code = truth["true_hs_code"].to_numpy()[wrong]
    top = scores[[f"hs_code_suggested_{i}" for i in (1, 2, 3)]].to_numpy()[wrong]
    in_top3 = (top == true_code[:, None]).any(axis=1)
    true_rows = test.copy()
    for column in (value.VALUE, *value.RATES):
        true_rows[column] = truth[f"true_{column}"].to_numpy()
    stake = np.maximum(value.tax(true_rows) - value.tax(test), 0.0)
    results = {
        "world": {"items": args.items, "seed": args.seed, "history_days": 365, "test_days": 30,
                  "test_items": len(test)},
        "seconds": {"learn": round(learn_s, 1), "score": round(score_s, 1)},
        "suggested_codes": {
            "hs_code_errors_in_test": int(wrong.sum()),
            "true_code_first": float((top[:, 0] == true_code).mean()),
            "true_code_in_top3": float(in_top3.mean()),
        },
        "value_at_stake": {
            "total_usd": float(stake.sum()),
            "items_with_value": int((stake > 0).sum()),
            "rates": list(RATES),
            "captured_by_expected_recovery": value_captured(scores[value.COLUMN].to_numpy(), stake, RATES),
            "captured_by_p_any": value_captured(scores["p_any"].to_numpy(), stake, RATES),
        },
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    s, v = results["suggested_codes"], results["value_at_stake"]
    print(f"{s['hs_code_errors_in_test']} hs_code errors in the test period: true code first {s['true_code_first']:.1%}, "
          f"in the top 3 {s['true_code_in_top3']:.1%}")
    print(f"value at stake {v['total_usd']:,.0f} USD on {v['items_with_value']:,} of {len(test):,} items; captured at "
          + ", ".join(f"{r:.0%}" for r in RATES))
    for name in ("captured_by_expected_recovery", "captured_by_p_any"):
        print(f"  {name:<32}" + "  ".join(f"{x:6.1%}" for x in v[name]))


if __name__ == "__main__":
    main()
