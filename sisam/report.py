"""``sisam report``: the officer's worklist from a score table.

The items worth stopping are the top of the ranking: by default the highest 2 % by
probability of any error (at least 20 items, at most 500, so that the page stays light
enough to open on a laptop); with ``rank_by="value"`` (``--rank-by value``) the highest by
expected tax recovered if inspected (``expected_recovery_usd``, see ``sisam.value``), and the
page ranks by that value. Each is explained (``explain.explain_items``) and the page is
rendered by ``worklist.py``. Where to find the declarations and the knowledge base is read
from the score file itself when ``sisam score`` wrote it as Parquet (its metadata records
both), or given as options.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from sisam.contract import KEY, SCORE_ANY
from sisam.errors import SisamError
from sisam.knowledge import Knowledge, load_knowledge

#: Key of the Parquet metadata in which ``sisam score`` records its inputs.
SCORE_METADATA_KEY = "sisam"
DEFAULT_SHARE = 0.02
MIN_ITEMS = 20
MAX_ITEMS = 500
#: What ``sisam report --rank-by`` may rank by: score table column.
RANK_BY = {"probability": SCORE_ANY, "value": "expected_recovery_usd"}


@dataclass(frozen=True)
class ReportSummary:
    out: Path
    n_items: int
    n_scored: int

    def __str__(self) -> str:
        return f"{self.out}: worklist of the {self.n_items:,} highest-risk of {self.n_scored:,} scored items"


def score_metadata(declarations: Path, kb_dir: Path, version: int, content_hash: str) -> dict[str, str]:
    """What ``sisam score`` records in a Parquet score table, for ``sisam report``."""
    facts = {"declarations": str(declarations.resolve()), "kb": str(kb_dir.resolve()), "kb_version": version, "content_hash": content_hash}
    return {SCORE_METADATA_KEY: json.dumps(facts)}


def _recorded_inputs(scores: Path) -> dict:
    if scores.suffix.lower() != ".parquet":
        return {}
    metadata = pq.read_schema(scores).metadata or {}
    raw = metadata.get(SCORE_METADATA_KEY.encode())
    return json.loads(raw) if raw else {}


def items_to_report(n_scored: int, top: int | None) -> int:
    if top is not None:
        return min(top, n_scored)
    return min(n_scored, max(MIN_ITEMS, min(MAX_ITEMS, round(DEFAULT_SHARE * n_scored))))


#: The page lists, per error type, at most this many patterns, the largest contributions
#: first, and none that moves the odds by less than 1 % (0.01 in log-odds); ``sisam explain``
#: and the reasoning log keep every pattern.
MAX_REASONING_ROWS = 12
MIN_CONTRIBUTION = 0.01


def _material_reasoning(items: list) -> list:
    """Keep the strongest reasoning rows that move the odds by at least 1 %: a pattern never inspected
    has posterior = prior and contributes exactly nothing, and the dozens of patterns that
    barely move the figure would make a page of a few hundred items weigh tens of megabytes
    without telling the officer anything."""
    def material(rows):
        # rows come largest |contribution| first (explain.reasoning_rows)
        return tuple(r for r in rows if abs(r.contribution) >= MIN_CONTRIBUTION)[:MAX_REASONING_ROWS]

    return [replace(item, errors=tuple(replace(e, reasoning=material(e.reasoning)) for e in item.errors)) for item in items]


def build_report(
    scores: Path,
    out: Path,
    *,
    declarations: Path | None = None,
    kb_dir: Path | None = None,
    top: int | None = None,
    lang: str = "en",
    knowledge: Knowledge | None = None,
    rank_by: str = "probability",
) -> ReportSummary:
    from sisam.declarations import read_declarations
    from sisam.explain import explain_items
    from sisam.model import Scorer
    from sisam.worklist import entries_from_explanations, write_worklist

    recorded = _recorded_inputs(scores)
    declarations = declarations or (Path(recorded["declarations"]) if "declarations" in recorded else None)
    kb_dir = kb_dir or (Path(recorded["kb"]) if "kb" in recorded else None)
    if declarations is None or kb_dir is None:
        raise SisamError(
            f"{scores}: cannot tell which declarations and knowledge base were scored: expected a "
            "Parquet score table written by `sisam score` (it records both) or the options "
            "--declarations and --kb; got neither"
        )
    table = pd.read_parquet(scores) if scores.suffix.lower() == ".parquet" else pd.read_csv(scores, dtype={"declaration_id": str})
    if SCORE_ANY not in table.columns:
        raise SisamError(f"{scores}: not a score table: expected a column {SCORE_ANY!r}; got {list(table.columns)[:8]}")
    if rank_by not in RANK_BY:
        raise ValueError(f"rank_by must be one of {sorted(RANK_BY)}; got {rank_by!r}")
    column = RANK_BY[rank_by]
    if column not in table.columns:
        raise SisamError(f"{scores}: cannot rank by {rank_by}: expected a column {column!r} (written by `sisam score` "
                         "with a knowledge base learnt by this release); got none")
    chosen = table.sort_values([column, SCORE_ANY], ascending=False, kind="stable").head(items_to_report(len(table), top))
    frame = read_declarations(declarations)
    selected = chosen[list(KEY)].merge(frame, how="left", on=list(KEY), sort=False, indicator=True)
    missing = selected["_merge"] != "both"
    if missing.any():
        first = selected.loc[missing, list(KEY)].iloc[0].tolist()
        raise SisamError(f"{scores}: item {first[0]}/{first[1]} is not in {declarations}: expected the declarations that were scored")
    selected = selected.drop(columns="_merge")
    scorer = Scorer.open(kb_dir, knowledge or load_knowledge())
    recorded_hash = recorded.get("content_hash")
    if recorded_hash and recorded_hash != scorer.version.content_hash:
        raise SisamError(
            f"{scores}: scored with knowledge base content {recorded_hash[:12]}, but {kb_dir} now holds "
            f"{scorer.version.content_hash[:12]} (version {scorer.version.version}): score again, or point --kb at the one used"
        )
    entries = entries_from_explanations(_material_reasoning(explain_items(scorer, selected, lang=lang, top=3)))
    if rank_by == "value":
        worth = dict(zip(zip(chosen["declaration_id"], chosen["item_no"], strict=True), chosen[column], strict=True))
        entries = [replace(e, expected_value=float(worth[e.declaration_id, e.item_no])) for e in entries]
    write_worklist(
        entries,
        out,
        title="sisam worklist" if lang == "en" else "Lista de trabalho sisam",
        lang=lang,
        generated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        source=f"{scores.name} (knowledge base version {scorer.version.version})",
    )
    return ReportSummary(out, len(entries), len(table))
