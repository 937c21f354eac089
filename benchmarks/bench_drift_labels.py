"""How much labelled evidence of the drift does a learner get before the test period?

Decay only re-weights labelled counts: it can make an importer's post-drift inspections
outweigh its pre-drift ones, not create inspections. This script generates the drift
benchmark's two worlds (``bench_drift.py``: same seed, with and without the drift day), marks
the items the drift changed (some ``p_<id>`` differs) and reports, for the post-drift history
and the test period, the changed items and their errors, how many changed items were
inspected and what was found on them, and, for the importers behind the changed test items,
how many had at least one error found on a changed item after the drift and before the test
(the only importers whose change labelled counts can show) and how many of the changed test
errors are theirs.

    PYTHONPATH=. python benchmarks/bench_drift_labels.py [--items 80000] [--days 240] [--drift-day 154] \
        [--seed 7] [--out PATH.md]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from sisam.contract import ERROR_IDS
from sisam.synth import generate_world

EPOCH = pd.Timestamp("2024-01-01")
COLUMNS = ["declaration_id", "item_no", "date", "importer_id"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=80_000)
    parser.add_argument("--days", type=int, default=240)
    parser.add_argument("--test-days", type=int, default=30)
    parser.add_argument("--drift-day", type=int, default=154)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, drift in (("world", args.drift_day), ("control", None)):
            generate_world(args.items, args.days, args.seed, folder / name, test_days=args.test_days, drift_day=drift)
        w = pd.read_parquet(folder / "world" / "truth.parquet")
        c = pd.read_parquet(folder / "control" / "truth.parquet")
        items = pd.concat([pd.read_parquet(folder / "world" / f"{part}.parquet", columns=COLUMNS)
                           for part in ("history", "test")], ignore_index=True)
    if not (items["declaration_id"].to_numpy() == w["declaration_id"].to_numpy()).all():
        raise AssertionError("truth and declarations should list the items in the same order")
    day = (pd.to_datetime(items["date"]) - EPOCH).dt.days.to_numpy()
    changed = np.zeros(len(w), dtype=bool)
    for e in ERROR_IDS:
        changed |= w[f"p_{e}"].to_numpy() != c[f"p_{e}"].to_numpy()
    errors = np.column_stack([w[f"e_{e}"].to_numpy() for e in ERROR_IDS]).sum(axis=1)
    control_errors = np.column_stack([c[f"e_{e}"].to_numpy() for e in ERROR_IDS]).sum(axis=1)
    found = np.column_stack([w[f"found_{e}"].to_numpy() for e in ERROR_IDS]).sum(axis=1)
    inspected = w["inspected"].to_numpy()
    test = (w["split"] == "test").to_numpy()
    post = ~test & (day >= args.drift_day)
    pre = ~test & (day < args.drift_day)
    importer = items["importer_id"].to_numpy()

    lines = [f"# Labelled evidence of the drift: {args.items:,} items, seed {args.seed}, drift on day {args.drift_day}, "
             f"{args.days} history days", "",
             f"Command: `PYTHONPATH=. python benchmarks/bench_drift_labels.py --items {args.items} --days {args.days} "
             f"--drift-day {args.drift_day} --seed {args.seed}`", "",
             "| period | items | changed items | errors on them (without the drift) | changed items inspected | "
             "errors found on them |", "|---|---:|---:|---:|---:|---:|"]
    for name, m in (("post-drift history", post), ("test", test)):
        mc = m & changed
        lines.append(f"| {name} | {int(m.sum()):,} | {int(mc.sum()):,} ({mc.sum() / m.sum():.1%}) | "
                     f"{int(errors[mc].sum()):,} ({int(control_errors[mc].sum()):,}) | {int((inspected & mc).sum()):,} | "
                     f"{int(found[mc].sum()):,} |")
    behind = np.unique(importer[test & changed])
    found_after = pd.Series(found[post] * changed[post], index=importer[post]).groupby(level=0).sum()
    shown = found_after.reindex(behind).fillna(0) > 0
    shown_ids = set(shown.index[shown])
    test_changed_errors = pd.Series(errors[test & changed], index=importer[test & changed])
    on_shown = float(test_changed_errors[test_changed_errors.index.isin(shown_ids)].sum())
    per_pre = pd.Series(inspected[pre], index=importer[pre]).groupby(level=0).sum().reindex(behind).fillna(0)
    per_post = pd.Series(inspected[post], index=importer[post]).groupby(level=0).sum().reindex(behind).fillna(0)
    lines += ["", f"Importers behind the changed test items: {len(behind)}; with at least one error found on a changed "
              f"item after the drift and before the test: {len(shown_ids)}, holding {on_shown:,.0f} of the "
              f"{float(test_changed_errors.sum()):,.0f} errors on changed test items. Inspected items per such "
              f"importer: median {per_pre.median():.0f} before the drift and {per_post.median():.0f} after it "
              f"(in all {per_pre.sum():,.0f} and {per_post.sum():,.0f}).", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
