"""Does decayed knowledge track a change of behaviour better than undecayed knowledge?

    PYTHONPATH=. python benchmarks/bench_drift.py [--items 80000] [--half-lives 15,30,60,120,365]
        [--seed 7] [--refit-daily]

A world whose importers switch schemes on a drift day (``sisam generate --drift-day``: half
of them take another importer's habits). The same world without drift (same seed: same
trade, same draws) tells which items the drift changed: those whose error probabilities in
the world's truth (``p_<id>``) differ between the two. sisam learns the history before the
drift day, then takes every later day of the history as a daily batch (``sisam learn
--update --keep-coefficients``: counts added, the first learn's coefficients kept;
``--refit-daily`` refits them on each day's few inspected items instead) into one knowledge
base per arm: no decay, and old counts halving every ``h`` days for each half-life ``h``.

The half-life is chosen before the test period is looked at: the last ``--validation-days``
days of the history (after the drift) are scored by every arm with the knowledge of the days
before them, and the arm with the best mean of pooled recall at 1 % and 5 % on them is the
chosen one. The updates then go on to the end of the history and every arm scores the test
period (after the history, wholly after the drift). Measured against the world's truth
(``e_<id>``): recall at 1 % and 5 % pooled over the 30 error types (each selecting its own top
share), and that recall split into the errors on the items the drift changed and on the
others (the same selections, errors counted on each part). The world's own risk (``p_``) is
the oracle; the no-drift world's ``p_`` on the same items is an oracle that missed the drift.

Writes benchmarks/results/drift.json and drift.md (with ``--refit-daily``:
drift_refit_daily.*).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sisam.contract import ERROR_IDS
from sisam.declarations import read_declarations
from sisam.knowledge import load_knowledge
from sisam.metrics import Ranking, selected_count
from sisam.model import Scorer, learn
from sisam.synth import generate_world

RATES = (0.01, 0.05)
EPOCH = pd.Timestamp("2024-01-01")
PARTS = ("all", "changed", "unchanged")
KEYS = ["declaration_id", "item_no"]


def _days(frame: pd.DataFrame) -> np.ndarray:
    return (pd.to_datetime(frame["date"]) - EPOCH).dt.days.to_numpy()


def split_recall(scores: dict[str, np.ndarray], truth: pd.DataFrame, changed: np.ndarray) -> dict:
    """Pooled recall at each rate over all errors, and over the errors on ``changed`` items
    and on the others: each error type selects its own top share of *all* items once; the
    parts only count where the caught errors lie."""
    out: dict = {part: {} for part in PARTS}
    for rate in RATES:
        caught = dict.fromkeys(PARTS, 0.0)
        positives = dict.fromkeys(PARTS, 0.0)
        for e in ERROR_IDS:
            t = truth[f"e_{e}"].to_numpy().astype(bool)
            ranking = Ranking(scores[e])
            cut = np.array([selected_count(t.size, rate)])
            for part, mask in (("all", np.ones_like(t)), ("changed", changed), ("unchanged", ~changed)):
                hits = t & mask
                caught[part] += float(ranking.caught(hits.astype(np.float64), None, cut)[0])
                positives[part] += float(hits.sum())
        for part in PARTS:
            out[part][f"{rate:g}"] = caught[part] / positives[part] if positives[part] else float("nan")
    return out


def per_type_recall(scores: dict[str, np.ndarray], truth: pd.DataFrame) -> dict:
    out = {}
    for e in ERROR_IDS:
        t = truth[f"e_{e}"].to_numpy().astype(bool)
        cuts = np.array([selected_count(t.size, r) for r in RATES])
        caught = Ranking(scores[e]).caught(t.astype(np.float64), None, cuts)
        out[e] = {"errors": int(t.sum()),
                  **{f"{r:g}": float(c) / t.sum() if t.sum() else float("nan") for r, c in zip(RATES, caught, strict=True)}}
    return out


def changed_items(world: Path, control: Path) -> np.ndarray:
    """bool[items of history then test]: the drift changed some error probability of the item."""
    drift, still = pd.read_parquet(world / "truth.parquet"), pd.read_parquet(control / "truth.parquet")
    if not (drift[KEYS].to_numpy() == still[KEYS].to_numpy()).all():
        raise AssertionError("the worlds with and without drift should hold the same items")
    changed = np.zeros(len(drift), dtype=bool)
    for e in ERROR_IDS:
        changed |= drift[f"p_{e}"].to_numpy() != still[f"p_{e}"].to_numpy()
    return changed


def run(world: Path, control: Path, folder: Path, drift_day: int, validation_days: int,
        arms: dict[str, float | None], knowledge, refit_daily: bool) -> dict:
    """Learn before ``drift_day``, update daily after it in every arm, score validation and test."""
    history = pd.read_parquet(world / "history.parquet")
    rectified = pd.read_parquet(world / "rectified.parquet")
    truth = pd.read_parquet(world / "truth.parquet")
    still = pd.read_parquet(control / "truth.parquet")
    changed = changed_items(world, control)
    day = _days(history)
    last = int(day.max())
    validation_from = last + 1 - validation_days
    if not drift_day < validation_from:
        raise SystemExit(f"the validation window (days {validation_from}-{last}) must begin after the drift day {drift_day}")

    def write(rows: np.ndarray, name: str) -> tuple[Path, Path]:
        part = history[rows]
        part.to_parquet(folder / f"{name}.parquet")
        part[KEYS].merge(rectified, on=KEYS).to_parquet(folder / f"{name}-rect.parquet")
        return folder / f"{name}.parquet", folder / f"{name}-rect.parquet"

    def evaluate(arm: str, frame: pd.DataFrame, rows: np.ndarray) -> dict:
        scored = Scorer.open(folder / arm, knowledge).score_frame(frame)
        scores = {e: scored[f"p_{e}"].to_numpy() for e in ERROR_IDS}
        part_truth = truth[rows].reset_index(drop=True)
        return {"recall": split_recall(scores, part_truth, changed[rows]), "per_type": per_type_recall(scores, part_truth)}

    start = time.perf_counter()
    learn(*write(day < drift_day, "before"), folder / "first", knowledge=knowledge)
    for arm in arms:
        shutil.copytree(folder / "first", folder / arm)
    inspected = history[KEYS].merge(rectified[KEYS].assign(_r=True), on=KEYS, how="left")["_r"].notna().to_numpy()
    validation_rows = np.zeros(len(truth), dtype=bool)
    validation_rows[:len(history)] = day >= validation_from
    history[day >= validation_from].to_parquet(folder / "validation.parquet")
    validation = read_declarations(folder / "validation.parquet")
    out: dict = {"arms": {arm: {} for arm in arms}}
    n_updates, since = 0, drift_day
    for d in range(drift_day, last + 1):
        if d == validation_from:
            for arm in arms:
                out["arms"][arm]["validation"] = evaluate(arm, validation, validation_rows)
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
    test_rows = (truth["split"] == "test").to_numpy()
    for arm in arms:
        out["arms"][arm]["test"] = evaluate(arm, test, test_rows)
    for name, source in (("oracle", truth), ("oracle without the drift", still)):
        oracle = {e: source.loc[test_rows, f"p_{e}"].to_numpy() for e in ERROR_IDS}
        out[name] = split_recall(oracle, truth[test_rows].reset_index(drop=True), changed[test_rows])
    out.update({
        "daily_updates": n_updates,
        "post_drift_history_days": last + 1 - drift_day,
        "history_items_before_drift": int((day < drift_day).sum()),
        "history_items_after_drift": int((day >= drift_day).sum()),
        "inspected_before_drift": int((inspected & (day < drift_day)).sum()),
        "inspected_after_drift": int((inspected & (day >= drift_day)).sum()),
        "validation_days": [validation_from, last],
        "validation_items": int(validation_rows.sum()),
        "test_items": int(test_rows.sum()),
        "changed_share": {"validation": float(changed[validation_rows].mean()), "test": float(changed[test_rows].mean())},
        "changed_errors": {split: {"changed": int(sum((truth.loc[rows, f"e_{e}"].to_numpy() & changed[rows]).sum() for e in ERROR_IDS)),
                                   "all": int(sum(truth.loc[rows, f"e_{e}"].to_numpy().sum() for e in ERROR_IDS))}
                           for split, rows in (("validation", validation_rows), ("test", test_rows))},
        "seconds": round(time.perf_counter() - start, 1),
    })
    return out


def _merit(results: dict, arm: str) -> float:
    """Mean pooled recall at 1 % and 5 % on the validation window."""
    recall = results["arms"][arm]["validation"]["recall"]["all"]
    return float(np.mean([recall[f"{r:g}"] for r in RATES]))


def choose(results: dict) -> str:
    """The arm with the best mean pooled recall at 1 % and 5 % on the validation window."""
    return max(results["arms"], key=lambda arm: _merit(results, arm))


def best_decayed(results: dict) -> str:
    """The half-life with the best validation merit (the chosen arm may be no decay)."""
    return max((a for a in results["arms"] if a != "none"), key=lambda arm: _merit(results, arm))


def _pct(x: float) -> str:
    return f"{x:.1%}"


def markdown(results: dict) -> str:
    r = results["run"]
    chosen = r["chosen"]
    lines = [
        f"# Decay under drift (coefficients {results['coefficients']})", "",
        f"Command: `{results['command']}` (load average at start {results['load_average'][0]}, at end "
        f"{results['load_average'][1]}; {r['seconds']:,} s).", "",
        f"World: {results['items']:,} items, seed {results['seed']}, {results['history_days']} history days, "
        f"drift on day {results['drift_day']}, {results['test_days']} test days (all after the drift). "
        f"History: {r['history_items_before_drift']:,} items ({r['inspected_before_drift']:,} inspected) before the "
        f"drift, {r['history_items_after_drift']:,} ({r['inspected_after_drift']:,} inspected) in the "
        f"{r['post_drift_history_days']} days after it, taken as {r['daily_updates']} daily updates.",
        f"The drift changed the error probabilities of {_pct(r['changed_share']['test'])} of the test items, which "
        f"hold {r['changed_errors']['test']['changed']:,} of its {r['changed_errors']['test']['all']:,} errors "
        f"(validation: {_pct(r['changed_share']['validation'])} of the items, "
        f"{r['changed_errors']['validation']['changed']:,} of {r['changed_errors']['validation']['all']:,} errors).", "",
        f"Half-life chosen on the validation window (history days {r['validation_days'][0]}-{r['validation_days'][1]}, "
        f"{r['validation_items']:,} items, scored with the knowledge of the days before it): **{chosen}**.", "",
        "Pooled recall over the 30 error types (each selecting its own top share of all items); *changed* counts "
        "the errors on the items the drift changed, *unchanged* the others:", "",
        "| knowledge | window | all @1% | all @5% | changed @1% | changed @5% | unchanged @1% | unchanged @5% |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for window in ("validation", "test"):
        for arm in r["arms"]:
            rec = r["arms"][arm][window]["recall"]
            cells = [_pct(rec[p][f"{x:g}"]) for p in PARTS for x in RATES]
            mark = " (chosen)" if arm == chosen else ""
            lines.append(f"| {arm}{mark} | {window} | " + " | ".join(cells) + " |")
    for name in ("oracle", "oracle without the drift"):
        cells = [_pct(r[name][p][f"{x:g}"]) for p in PARTS for x in RATES]
        lines.append(f"| {name} (world's p_) | test | " + " | ".join(cells) + " |")
    decayed = best_decayed(r)
    lines += ["", f"Per error type on the test period (half-life {decayed}, the best on the validation window, "
              "/ no decay):", "",
              "| error type | errors | @1% " + decayed + " | @1% none | @5% " + decayed + " | @5% none |",
              "|---|---:|---:|---:|---:|---:|"]
    a, b = r["arms"][decayed]["test"]["per_type"], r["arms"]["none"]["test"]["per_type"]
    for e in ERROR_IDS:
        if a[e]["errors"]:
            lines.append(f"| {e} | {a[e]['errors']} | {_pct(a[e]['0.01'])} | {_pct(b[e]['0.01'])} | "
                         f"{_pct(a[e]['0.05'])} | {_pct(b[e]['0.05'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=80_000)
    parser.add_argument("--days", type=int, default=240, help="history days")
    parser.add_argument("--test-days", type=int, default=30)
    parser.add_argument("--drift-day", type=int, default=154, help="a block boundary (multiple of 14)")
    parser.add_argument("--validation-days", type=int, default=30, help="last history days scored to choose the half-life")
    parser.add_argument("--half-lives", default="15,30,60,120,365", help="comma-separated half-lives in days")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--refit-daily", action="store_true",
                        help="refit the coefficients on every day's batch (default: keep those of the first learn)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default benchmarks/results/drift.json, drift_refit_daily.json with --refit-daily)")
    args = parser.parse_args()
    out = args.out or Path(__file__).parent / "results" / ("drift_refit_daily.json" if args.refit_daily else "drift.json")
    arms: dict[str, float | None] = {"none": None}
    arms.update({f"{float(h):g} days": float(h) for h in args.half_lives.split(",")})
    knowledge = load_knowledge()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, drift in (("world", args.drift_day), ("control", None)):
            generate_world(args.items, args.days, args.seed, folder / name, test_days=args.test_days, drift_day=drift)
        run_results = run(folder / "world", folder / "control", folder, args.drift_day, args.validation_days,
                          arms, knowledge, args.refit_daily)
    run_results["chosen"] = choose(run_results)
    results = {
        "command": "PYTHONPATH=. python benchmarks/bench_drift.py " + " ".join(sys.argv[1:]),
        "load_average": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "items": args.items, "history_days": args.days, "test_days": args.test_days, "drift_day": args.drift_day,
        "seed": args.seed, "half_lives": {a: h for a, h in arms.items()},
        "coefficients": "refitted on every daily batch" if args.refit_daily else "kept from the first learn",
        "run": run_results,
    }
    out.write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
