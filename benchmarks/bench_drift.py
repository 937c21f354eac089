"""Does decayed knowledge track a change of behaviour better than undecayed knowledge?

    PYTHONPATH=. python benchmarks/bench_drift.py [--items 80000] [--half-life 30] [--seed 7]

A world whose importers switch schemes on a drift day (``sisam generate --drift-day``: half
of them take another importer's habits). sisam learns the history before the drift day,
then takes every later day of the history as a daily batch (``sisam learn --update
--keep-coefficients``: counts added, the first learn's coefficients kept; ``--refit-daily``
refits them on each day's few inspected items instead) into two knowledge bases: one whose old counts halve every ``--half-life`` days, one that never
forgets. Both score the test period, which lies wholly after the change, and are measured
against the world's truth (``e_<id>``): recall at 1 % and 5 %, pooled over the 30 error
types (each selecting its own top share) and per error type. The same protocol on the same
world without drift is the control: what decay costs or gains when nothing changes.

The half-life is fixed before looking at any result (a month: about two inspection
blocks of the world); it is not tuned. Writes benchmarks/results/drift.json and drift.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sisam.contract import ERROR_IDS
from sisam.declarations import read_declarations
from sisam.knowledge import load_knowledge
from sisam.metrics import pooled_recall, recall_curve
from sisam.model import Scorer, learn
from sisam.synth import generate_world

RATES = (0.01, 0.05)
EPOCH = pd.Timestamp("2024-01-01")


def _days(frame: pd.DataFrame) -> np.ndarray:
    return (pd.to_datetime(frame["date"]) - EPOCH).dt.days.to_numpy()


def run(world: Path, folder: Path, drift_day: int, half_life: float, knowledge, refit_daily: bool) -> dict:
    """Learn before ``drift_day``, update daily after it with and without decay, score the test."""
    history = pd.read_parquet(world / "history.parquet")
    rectified = pd.read_parquet(world / "rectified.parquet")
    day = _days(history)
    keys = ["declaration_id", "item_no"]

    def write(rows: np.ndarray, name: str) -> tuple[Path, Path]:
        part = history[rows]
        part.to_parquet(folder / f"{name}.parquet")
        part[keys].merge(rectified, on=keys).to_parquet(folder / f"{name}-rect.parquet")
        return folder / f"{name}.parquet", folder / f"{name}-rect.parquet"

    arms = {"decayed": half_life, "undecayed": None}
    start = time.perf_counter()
    first = write(day < drift_day, "before")
    for arm in arms:
        learn(*first, folder / arm, knowledge=knowledge)
    n_updates, since = 0, drift_day
    inspected = history[keys].merge(rectified[keys].assign(_r=True), on=keys, how="left")["_r"].notna().to_numpy()
    for d in range(drift_day, int(day.max()) + 1):
        rows = (day >= since) & (day <= d)
        # a day nobody inspected (a weekend, a small world) joins the next day's batch:
        # an update learns coefficients from its batch's inspected items
        if not (rows & inspected).any():
            continue
        since = d + 1
        batch = write(rows, "day")
        for arm, h in arms.items():
            learn(*batch, folder / arm, knowledge=knowledge, update=True, half_life_days=h,
                  keep_coefficients=not refit_daily)
        n_updates += 1
    test = read_declarations(world / "test.parquet")
    truth = pd.read_parquet(world / "truth.parquet")
    truth = truth[truth["split"] == "test"].reset_index(drop=True)
    out: dict = {"daily_updates": n_updates, "test_items": len(test), "seconds": 0.0, "arms": {}}
    for arm in arms:
        scores = Scorer.open(folder / arm, knowledge).score_frame(test)
        columns = [scores[f"p_{e}"].to_numpy() for e in ERROR_IDS]
        truths = [truth[f"e_{e}"].to_numpy() for e in ERROR_IDS]
        out["arms"][arm] = {
            "pooled_recall": {f"{r:g}": pooled_recall(columns, truths, r) for r in RATES},
            "recall": {e: {f"{p.rate:g}": p.recall for p in recall_curve(c, t, RATES)}
                       for e, c, t in zip(ERROR_IDS, columns, truths, strict=True)},
            "positives": {e: int(t.sum()) for e, t in zip(ERROR_IDS, truths, strict=True)},
        }
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def markdown(results: dict) -> str:
    lines = [f"# Decay under drift (half-life {results['half_life_days']:g} days; coefficients {results['coefficients']})", "",
             f"World: {results['items']:,} items, {results['history_days']} history days, drift on day "
             f"{results['drift_day']}, {results['test_days']} test days (all after the drift), seed {results['seed']}.",
             "Pooled recall over the 30 error types (each selecting its own top share):", "",
             "| world | knowledge | recall @1% | recall @5% |", "|---|---|---:|---:|"]
    for world in ("drift", "control"):
        for arm in ("decayed", "undecayed"):
            pooled = results[world]["arms"][arm]["pooled_recall"]
            lines.append(f"| {world} | {arm} | {pooled['0.01']:.1%} | {pooled['0.05']:.1%} |")
    lines += ["", "Per error type on the drift world (errors in the test period; decayed / undecayed):", "",
              "| error type | errors | @1% decayed | @1% undecayed | @5% decayed | @5% undecayed |",
              "|---|---:|---:|---:|---:|---:|"]
    arms = results["drift"]["arms"]
    for e in ERROR_IDS:
        n = arms["decayed"]["positives"][e]
        if n == 0:
            continue
        cells = [f"{arms[a]['recall'][e][r]:.1%}" for r in ("0.01", "0.05") for a in ("decayed", "undecayed")]
        lines.append(f"| {e} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=80_000)
    parser.add_argument("--days", type=int, default=240, help="history days")
    parser.add_argument("--test-days", type=int, default=30)
    parser.add_argument("--drift-day", type=int, default=154, help="a block boundary (multiple of 14)")
    parser.add_argument("--half-life", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--refit-daily", action="store_true",
                        help="refit the coefficients on every day's batch (default: keep those of the first learn)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "drift.json")
    args = parser.parse_args()
    knowledge = load_knowledge()
    results = {"items": args.items, "history_days": args.days, "test_days": args.test_days,
               "drift_day": args.drift_day, "half_life_days": args.half_life, "seed": args.seed,
               "coefficients": "refitted on every daily batch" if args.refit_daily else "kept from the first learn"}
    for name, drift in (("drift", args.drift_day), ("control", None)):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            generate_world(args.items, args.days, args.seed, folder / "world", test_days=args.test_days, drift_day=drift)
            results[name] = run(folder / "world", folder, args.drift_day, args.half_life, knowledge, args.refit_daily)
        pooled = {a: results[name]["arms"][a]["pooled_recall"] for a in ("decayed", "undecayed")}
        print(f"{name}: {results[name]['daily_updates']} daily updates in {results[name]['seconds']} s; pooled recall "
              + "; ".join(f"{a} @1% {p['0.01']:.1%} @5% {p['0.05']:.1%}" for a, p in pooled.items()), flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))


if __name__ == "__main__":
    main()
