"""``sisam demo``: the whole job on a synthetic customs world, start to finish.

generate a world -> check it and derive labels -> learn a knowledge base from the history
-> score the later test period -> measure recall against the world's truth, beside the
world's own risk oracle and a flat table, and write everything under one folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sisam.contract import KEY, SCORE_PREFIX
from sisam.errors import SisamError
from sisam.evaluation import Evaluation, evaluate
from sisam.knowledge import Knowledge, load_knowledge


@dataclass(frozen=True)
class DemoResult:
    out: Path
    world: Path
    kb_dir: Path
    scores: Path
    evaluation: Evaluation
    lines: tuple[str, ...]


def run_demo(
    out: Path, items: int, seed: int, knowledge: Knowledge | None = None, say: Callable[[str], None] = print
) -> DemoResult:
    from sisam.baselines import flat_table
    from sisam.declarations import read_declarations
    from sisam.model import Scorer, learn, score
    from sisam.synth import generate_world
    from sisam.tables import write_table
    from sisam.validation import validate_tables

    knowledge = knowledge or load_knowledge()
    world = out / "world"
    kb_dir = out / "kb"
    scores_path = out / "scores.parquet"

    summary = generate_world(items, 365, seed, world)
    say(str(summary))
    report = validate_tables(world / "history.parquet", world / "rectified.parquet", world / "truth.parquet", None)
    if not report.ok:
        raise SisamError(report.failure)
    say(f"labels derived from the rectified items agree with the world's truth ({report.n_inspected:,} inspected items)")
    say(str(learn(world / "history.parquet", world / "rectified.parquet", kb_dir, knowledge=knowledge, overwrite=True)))
    say(str(score(world / "test.parquet", kb_dir, scores_path, knowledge=knowledge)))

    test = read_declarations(world / "test.parquet")
    scores = pd.read_parquet(scores_path)
    truth = pd.read_parquet(world / "truth.parquet")
    truth = test[list(KEY)].merge(truth, how="left", on=list(KEY), sort=False)
    error_ids = [e.id for e in knowledge.errors]
    flat = flat_table(Scorer.open(kb_dir, knowledge), test)
    rankings = {
        "sisam": {e: scores[SCORE_PREFIX + e].to_numpy() for e in error_ids},
        "flat table": {e: flat[:, j] for j, e in enumerate(error_ids)},
        "world oracle": {e: truth[f"p_{e}"].to_numpy() for e in error_ids},
    }
    evaluation = evaluate(rankings, {e: truth[f"e_{e}"].to_numpy(dtype=bool) for e in error_ids})
    (out / "evaluation.md").write_text(
        f"# Recall on the test period ({len(test):,} items)\n\n"
        "Share of each error type's test items caught by stopping the top 1 % and 5 % of items "
        "ranked by each method.\n\n" + evaluation.markdown() + "\n"
    )
    (out / "evaluation.json").write_text(evaluation.dumps() + "\n")
    lines = tuple(
        f"pooled recall at {r:.0%}: " + ", ".join(f"{name} {evaluation.pooled[name, r]:.1%}" for name in rankings)
        for r in evaluation.rates
    )
    for line in lines:
        say(line)
    say(f"recall per error type: {out / 'evaluation.md'}")
    write_table(_top_items(scores, error_ids), out / "top_items.csv")
    say(f"the 1 % of test items most likely wrong: {out / 'top_items.csv'}")
    from sisam.report import build_report

    worklist = build_report(scores_path, out / "worklist.html", knowledge=knowledge)
    say(f"officer's worklist ({worklist.n_items:,} items, open it in a browser): {worklist.out.resolve()}")
    return DemoResult(out, world, kb_dir, scores_path, evaluation, lines)


def _top_items(scores: pd.DataFrame, error_ids: list[str], share: float = 0.01) -> pd.DataFrame:
    """The top ``share`` items by p_any, each with its three most probable error types."""
    top = scores.sort_values(SCORE_PREFIX + "any", ascending=False, kind="stable").head(max(1, int(len(scores) * share)))
    probabilities = top[[SCORE_PREFIX + e for e in error_ids]].to_numpy()
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :3]
    table = top[[*KEY, SCORE_PREFIX + "any"]].reset_index(drop=True)
    for rank in range(3):
        table[f"error_{rank + 1}"] = [error_ids[j] for j in order[:, rank]]
        table[f"p_{rank + 1}"] = probabilities[np.arange(len(top)), order[:, rank]]
    return table
