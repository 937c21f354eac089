"""Why peers beat sisam at low selection rates, and whether a principled change closes the gap
(issue 5): sisam learnt under several calibrations or catalogs, beside LightGBM, logistic
regression on target encodings and the entity profile, on the same world.

Runs on the work folder of a ``sisam bench synthetic --work DIR`` run (its world, and the
peers' scores it cached, which are re-used, not recomputed). Each experiment learns its own
knowledge base in ``DIR/kb-calibration-NAME`` and scores the test items; the figures are
pooled recall at 1 % and 5 % over the 30 error types, per-type recall, and the mean log loss
over the 30 (the criterion sisam's coefficients are fitted for).

Experiments (``--experiment``, repeatable; default: all):

* ``shipped``: the shipped catalog and fitting grids.
* ``wide_d``: d and dnet may also be 4, 6 or 8. D(j) = min(1, d / j) caps a pattern's
  generalisations at d / j of their summed lifts and a network's factors at dnet / m; with
  d <= 3 a four-factor network can never add its factors' lifts in full (naive Bayes), the
  combination that additive per-entity propensities call for.
* ``main_effects``: the shipped catalog plus a factor over importer, broker, HS code (its
  8-6-4-2 chain) and exporter in every error type's network: the high-cardinality
  attributes whose single-attribute patterns carry the world's per-entity propensities,
  several of which (broker for tariff-code errors) no factor of those networks holds.
* ``main_effects_wide_d``: both.
* ``stacked`` (a diagnostic, not an engine change): the shipped knowledge base, its factors
  combined per error type with one weight per factor (and an intercept) fitted by logistic
  regression on the inspected history items' exact leave-one-out factor log-odds, instead
  of the one shared weight min(1, dnet / m). It measures how much the network rule leaves
  on the table. ``stacked_no_intercept``: the same without the intercept (the base rate
  stays the knowledge base's), to tell the factors' weights from a shift of the base rate.

    PYTHONPATH=. python benchmarks/bench_calibration.py --work /work/bench-200k/s7 --seed 7

Writes ``--out`` (JSON) and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from sisam.bench.metrics import Outcome, evaluate
from sisam.bench.suites import _toml_list, remember, reusable, source_hash
from sisam.contract import KEY
from sisam.declarations import read_declarations
from sisam.engine import fit
from sisam.knowledge import load_knowledge
from sisam.model import Scorer, learn
from sisam.resources import data_dir

WIDE_D_GRID = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
MAIN_EFFECTS = ("importer", "broker", "hs_code", "exporter")
PEERS = {"lightgbm": "LightGBM", "logistic": "logistic + target encoding", "profile": "entity risk profile"}
RATES = (0.01, 0.05)


@contextlib.contextmanager
def d_grid(grid: tuple[float, ...] | None):
    """Fit with ``grid`` as the grid of d and dnet (None: the shipped one)."""
    saved = fit.D_GRID, fit._D_START
    if grid is not None:
        fit.D_GRID, fit._D_START = grid, grid.index(1.0)
    try:
        yield
    finally:
        fit.D_GRID, fit._D_START = saved


def knowledge_with_factor(name: str, attributes: tuple[str, ...], out: Path, base: Path | None = None) -> Path:
    """The knowledge folder ``base`` (default: the shipped one) with factor ``name`` added
    to every error type's network ("any" keeps its own)."""
    base = base or data_dir("knowledge")
    out.mkdir(parents=True, exist_ok=True)
    for path in base.glob("*.toml"):
        shutil.copyfile(path, out / path.name)
    with (base / "networks.toml").open("rb") as f:
        doc = tomllib.load(f)
    lines = ["# the shipped networks.toml with a main-effects factor (benchmarks/bench_calibration.py)", ""]
    for factor, entry in {**doc["factor"], name: {"attributes": list(attributes)}}.items():
        lines += [f"[factor.{factor}]", "attributes = " + _toml_list(entry["attributes"]), ""]
    for label, entry in doc["network"].items():
        factors = entry["factors"] + ([name] if label != "any" else [])
        lines += [f"[network.{label}]", "factors = " + _toml_list(factors), ""]
    (out / "networks.toml").write_text("\n".join(lines))
    return out


def stacked(kb_dir: Path, knowledge, world: Path, test: pd.DataFrame, error_ids: list[str],
            intercept: bool = True) -> dict[str, np.ndarray]:
    """Test scores of the ``stacked`` experiment (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression

    from sisam.declarations import read_pair
    from sisam.encoding import Encoder
    from sisam.engine.hpb import factor_log_odds
    from sisam.labels import label_matrix

    scorer = Scorer.open(kb_dir, knowledge)
    frame, rect = read_pair(world / "history.parquet", world / "rectified.parquet")
    labels = label_matrix(frame, rect, knowledge.errors)
    inspected = labels[:, 0] >= 0
    train, y = frame[inspected].reset_index(drop=True), labels[inspected]
    encoder = Encoder(scorer.with_evidence(train))
    loo_lo, root = [], None
    for name, plan in scorer.plans.items():
        c = scorer.version.coefficients[name]
        result = factor_log_odds(encoder.keys(plan), plan.lattice, scorer.version.counts[name], scorer.indexes[name],
                                 c["S"], c["d"], loo=y)  # fmt: skip
        loo_lo.append(result.full)
        root = result.root  # each item's own leave-one-out base rate
    test_lo, test_base = scorer.factor_log_odds(test)
    out = {}
    for e in error_ids:
        j = knowledge.label_ids.index(e)
        members = np.flatnonzero(scorer.membership[:, j])
        x = np.column_stack([loo_lo[f][:, j] - root[:, j] for f in members])
        x_test = np.column_stack([test_lo[f][:, j] - test_base[j] for f in members])
        if intercept:
            model = LogisticRegression(C=1.0, max_iter=2000).fit(x, y[:, j])
            out[e] = model.predict_proba(x_test)[:, 1]
        else:  # lo = lo(p_e) + sum_f w_f x_f: the base rate as a fixed offset
            w = _offset_logistic(x, root[:, j], y[:, j])
            out[e] = 1.0 / (1.0 + np.exp(-(test_base[j] + x_test @ w)))
    return out


def _offset_logistic(x: np.ndarray, offset: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weights w of logistic regression lo = offset + x w with sklearn's C = 1 penalty."""
    from scipy.optimize import minimize

    def loss(w):
        lo = offset + x @ w
        p = 1.0 / (1.0 + np.exp(-lo))
        nll = np.sum(np.logaddexp(0.0, lo) - y * lo)
        return nll + 0.5 * w @ w, x.T @ (p - y) + w

    return minimize(loss, np.ones(x.shape[1]) / x.shape[1], jac=True, method="L-BFGS-B").x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a sisam bench synthetic --work folder")
    parser.add_argument("--seed", type=int, required=True, help="the seed of that run")
    parser.add_argument("--experiment", action="append", default=[])
    parser.add_argument("--fit-sample", type=int, default=20_000)
    parser.add_argument("--knowledge", type=Path, help="the catalog the experiments start from (default: the shipped one)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    work, world = args.work, args.work / "world"
    catalogs = {"main_effects": knowledge_with_factor("main_effects", MAIN_EFFECTS, work / "knowledge-main-effects",
                                                      args.knowledge)}  # fmt: skip
    experiments = {
        "shipped": (None, None),
        "wide_d": (None, WIDE_D_GRID),
        "main_effects": (catalogs["main_effects"], None),
        "main_effects_wide_d": (catalogs["main_effects"], WIDE_D_GRID),
        "stacked": (None, None),
        "stacked_no_intercept": (None, None),
    }
    chosen = args.experiment or list(experiments)

    test = read_declarations(world / "test.parquet")
    truth = test[list(KEY)].merge(pd.read_parquet(world / "truth.parquet"), how="left", on=list(KEY), sort=False)
    shipped = load_knowledge(args.knowledge)
    error_ids = [e.id for e in shipped.errors]
    outcomes = [Outcome(e, truth[f"e_{e}"].to_numpy(dtype=bool)) for e in error_ids]
    scores, probabilistic, facts = {}, set(), {}
    for name in chosen:
        folder, grid = experiments[name]
        knowledge = load_knowledge(folder) if folder else shipped
        if name.startswith("stacked"):
            shipped_kb = work / "kb-calibration-shipped"
            scores[name] = stacked(shipped_kb, shipped, world, test, error_ids, intercept=name == "stacked")
            probabilistic.add(name)
            facts[name] = {"from": str(shipped_kb)}
            continue
        kb_dir = work / f"kb-calibration-{name}"
        record = {"catalog_hash": knowledge.hash, "d_grid": list(grid or fit.D_GRID), "fit_sample": args.fit_sample,
                  "seed": args.seed, "sisam": source_hash()}  # fmt: skip
        made = reusable(work / f"kb-calibration-{name}.json", record)
        if made is None or not kb_dir.exists():
            (work / f"kb-calibration-{name}.json").unlink(missing_ok=True)
            with d_grid(grid):
                summary = learn(world / "history.parquet", world / "rectified.parquet", kb_dir, knowledge=knowledge,
                                overwrite=True, fit_sample=args.fit_sample, seed=args.seed)  # fmt: skip
            made = {"seconds": summary.seconds, "n_patterns": summary.n_patterns}
            remember(work / f"kb-calibration-{name}.json", record, made)
        start = time.perf_counter()
        scorer = Scorer.open(kb_dir, knowledge)
        p = scorer.probabilities(test)
        labels = list(knowledge.label_ids)
        scores[name] = {e: p[:, labels.index(e)] for e in error_ids}
        probabilistic.add(name)
        dnet = scorer.version.network_coefficients["dnet"]
        facts[name] = {"learn_s": made["seconds"], "score_s": time.perf_counter() - start, "patterns": made["n_patterns"],
                       "catalog_hash": knowledge.hash, "d_grid": list(grid or fit.D_GRID),
                       "dnet": dict(zip(labels, map(float, dnet), strict=True))}  # fmt: skip
        print(f"{name}: learnt in {made['seconds']:.0f} s, {made['n_patterns']:,} patterns", flush=True)
        del scorer
    for key, peer in PEERS.items():
        path = work / "peers" / f"{key}.parquet"
        if path.exists():
            saved = pd.read_parquet(path)
            scores[peer] = {e: saved[e].to_numpy(dtype=np.float64) for e in error_ids}
            if key != "profile":
                probabilistic.add(peer)
    scores["oracle"] = {e: truth[f"p_{e}"].to_numpy(dtype=np.float64) for e in error_ids}
    probabilistic.add("oracle")
    table = evaluate(scores, outcomes, probabilistic=probabilistic, rates=RATES, draws=10, seed=args.seed)

    print(f"\nseed {args.seed}, {len(test):,} test items; pooled recall @1 %, @5 %; mean log loss over 30 error types")
    summary = {}
    for name, figures in table["peers"].items():
        losses = [o["log_loss"] for o in figures["outcomes"].values() if o.get("log_loss") is not None]
        summary[name] = {"recall": figures["pooled"]["recall"], "mean_log_loss": float(np.mean(losses)) if losses else None}
        loss = f"{summary[name]['mean_log_loss']:.5f}" if losses else "n/a"
        print(f"  {name:<30} {figures['pooled']['recall'][0]:6.1%} {figures['pooled']['recall'][1]:6.1%}  {loss}")
    print("\nrecall @1 % / @5 % per error type")
    names = list(table["peers"])
    print(" " * 20 + "".join(f"{n[:14]:>16}" for n in names))
    for e in error_ids:
        cells = [table["peers"][n]["outcomes"][e]["recall"] for n in names]
        print(f"{e:<20}" + "".join(f"{c[0]:>7.1%}/{c[1]:>7.1%}" for c in cells))
    if args.out:
        args.out.write_text(json.dumps({"seed": args.seed, "work": str(work), "experiments": facts,
                                        "summary": summary, "table": table}, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
