"""Learning and scoring: the orchestration behind ``sisam learn`` and ``sisam score``.

Learning (hpb.md, "Counts" and "Choosing the coefficients"):

1. read the history and its rectified items, checked against the contract, in chunks;
2. derive the labels (``labels.label_matrix``): 30 error types plus "any", -1 for items
   never inspected;
3. per factor of ``knowledge/networks.toml``: counts (``engine.counting``), n and k over
   inspected items, N over all, a chunk of the history at a time (``history``) or on
   Spark (``spark``), the same counts either way;
4. choose every (factor, label)'s S and d, and every label's network calibration, by exact
   leave-one-out over a seeded sample of inspected items (``engine.fit``);
5. publish the counts and coefficients as a new knowledge-base version (``kb``).

``--update`` counts a new batch only, merges it into the current version (old counts decayed
by a half-life if asked), refits the coefficients against the merged counts on the batch's
inspected items, and publishes the result as the next version.

Scoring loads a version, builds one hash index per factor, and for each chunk of items
evaluates every factor's posterior recursion for all labels at once (``engine.hpb``), then
each error type's network (``engine.network``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sisam import kb, legislation, suggest, value
from sisam.contract import KEY, SCORE_PREFIX
from sisam.declarations import iter_declarations, read_declarations
from sisam.encoding import Encoder, FactorPlan, factor_plans
from sisam.engine.counting import count_factor
from sisam.engine.counts import PatternCounts, merge
from sisam.engine.fit import fit_coefficients
from sisam.engine.hashtable import KeyIndex, build_index
from sisam.engine.hpb import FactorState, factor_log_odds
from sisam.engine.lattice import Lattice
from sisam.engine.network import ServedLogOdds, served_network_scores
from sisam.errors import SisamError
from sisam.evidence import (
    EvidenceTables,
    PreparedEvidence,
    add_evidence_columns,
    count_evidence,
    evidence_columns,
    evidence_facts,
    evidence_models,
    from_kb_tables,
    kb_tables,
    merge_evidence,
)
from sisam.history import DEFAULT_CHUNK_ROWS, CountedHistory, count_history, sample_positions
from sisam.knowledge import Knowledge, load_knowledge

log = logging.getLogger("sisam.model")

#: Inspected items scored by leave-one-out to choose the coefficients: enough to tell the
#: grid's neighbours apart, few enough that fitting takes seconds, not minutes.
DEFAULT_FIT_SAMPLE = 20_000
SCORE_CHUNK_ROWS = 200_000

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class LearnSummary:
    kb_dir: Path
    version: int
    n_items: int
    n_labelled: int
    n_patterns: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"{self.kb_dir}: version {self.version} from {self.n_items:,} items "
            f"({self.n_labelled:,} inspected), {self.n_patterns:,} patterns, {self.seconds:.1f} s"
        )


@dataclass(frozen=True)
class ScoreSummary:
    out: Path
    n_items: int
    version: int
    seconds: float

    def __str__(self) -> str:
        rate = self.n_items / self.seconds if self.seconds else float("inf")
        return (
            f"{self.out}: {self.n_items:,} items scored with knowledge base version "
            f"{self.version} in {self.seconds:.1f} s ({rate:,.0f} items/s)"
        )


@dataclass(frozen=True)
class FittedCoefficients:
    """Coefficients in the knowledge base's layout: per factor S, d and the leave-one-out
    log-likelihood they reach, per label dnet and its log-likelihood (float64[E] each)."""

    coefficients: dict[str, dict[str, np.ndarray]]
    network_coefficients: dict[str, np.ndarray]


def _fit(
    knowledge: Knowledge,
    plans: dict[str, FactorPlan],
    counts: dict[str, PatternCounts],
    inspected_keys: dict[str, np.ndarray],
    inspected_labels: np.ndarray,
    sample: int,
    seed: int,
) -> FittedCoefficients:
    names = list(plans)
    fitted = fit_coefficients(
        _IndexedFactors([plans[n].lattice for n in names], [counts[n] for n in names]),
        [inspected_keys[n] for n in names],
        inspected_labels,
        network_membership(knowledge),
        sample_size=sample,
        seed=seed,
    )
    loglik = fitted.chosen_factor_loglik
    return FittedCoefficients(
        {n: {"S": fitted.s[f], "d": fitted.d[f], "loo_loglik": loglik[f]} for f, n in enumerate(names)},
        {"dnet": fitted.dnet, "loo_loglik": fitted.chosen_network_loglik},
    )


class _IndexedFactors(Sequence[FactorState]):
    """The factors' states for the fit, each indexed when the fit reaches it: the fit
    visits factors one at a time, so only one key index (16 bytes a slot, two to four slots
    a pattern) is held at a time rather than all of them (at 20 million items, gigabytes)."""

    def __init__(self, lattices: list[Lattice], counts: list[PatternCounts]):
        self.lattices, self.counts = lattices, counts

    def __len__(self) -> int:
        return len(self.counts)

    def __getitem__(self, f: int) -> FactorState:  # type: ignore[override]
        return FactorState(self.lattices[f], self.counts[f], build_index(self.counts[f].keys))


def learn(
    declarations: Path,
    rectified: Path,
    kb_dir: Path,
    *,
    knowledge: Knowledge | None = None,
    update: bool = False,
    half_life_days: float | None = None,
    overwrite: bool = False,
    fit_sample: int = DEFAULT_FIT_SAMPLE,
    seed: int = 0,
    engine: str = "local",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    spark_master: str | None = None,
    spark_conf: dict[str, str] | None = None,
    spark_work_dir: Path | None = None,
    progress: Progress = _quiet,
    keep_coefficients: bool = False,
) -> LearnSummary:
    """Learn a knowledge base from a history (or, with ``update``, add a batch to it).

    ``engine="local"`` counts the history ``chunk_rows`` items at a time in this process
    (``sisam.history``); ``engine="spark"`` counts it on Spark (``sisam.spark``, master
    ``spark_master``, settings ``spark_conf``, count tables kept in ``spark_work_dir``). Both give the same
    counts and the same fitting sample, hence the same knowledge base.

    With ``update`` and ``keep_coefficients`` the batch's counts are added and the current
    version's coefficients kept, not refitted: a day's batch holds a few dozen inspected
    items, too few to choose 31 labels' S, d and dnet by leave-one-out (a daily refit on
    them costs a quarter to a third of the recall, ``benchmarks/results/drift*.md``); refit on a
    larger batch (a month) from time to time instead.

    ``half_life_days`` decays the pattern counts (and the suggestions' and recoveries'
    tables) before the batch is added; the evidence tables add up undecayed (see
    ``evidence_base``)."""
    if keep_coefficients and not update:
        raise SisamError(f"{kb_dir}: keeping coefficients needs a knowledge base to keep them from: "
                         "expected update=True (--update) with keep_coefficients (--keep-coefficients)")
    start = time.perf_counter()
    knowledge = knowledge or load_knowledge()
    plans = factor_plans(knowledge)
    current = kb.open_version(kb_dir, expected_catalog_hash=knowledge.hash) if update else None

    def decay_after(batch: kb.Provenance) -> float:
        if current is None or half_life_days is None:
            return 1.0
        return 0.5 ** (_days_elapsed(current.provenance, batch) / half_life_days)

    def evidence_base(batch: kb.Provenance) -> tuple[EvidenceTables, float]:
        # The evidence tables add up but never decay: their bands cut counts of
        # declarations (novelty's "first time", "1 to 4", value-in-context's support) and
        # smooth with S pseudo-declarations, so decayed tables would band an item
        # differently from the same item of the first learn, and the factor counts learnt
        # for a band would be read for another. Measured: on the drift world a 30-day
        # half-life that also decayed them lost 1.4 points of pooled recall at 1 % and 5.3
        # at 5 % against decaying the labelled counts only (the drift benchmark's world,
        # seed 7, test period; benchmarks/bench_drift.py).
        return (from_kb_tables(current.tables) if current is not None else {}), 1.0

    if engine == "spark":
        from sisam.spark import count_history_spark

        history = count_history_spark(
            declarations, rectified, knowledge, plans, evidence_base=evidence_base, master=spark_master,
            conf=spark_conf, work_dir=spark_work_dir, progress=progress,
        )  # fmt: skip
    elif engine == "local":
        history = count_history(
            declarations, rectified, knowledge, plans, evidence_base=evidence_base,
            chunk_rows=chunk_rows, progress=progress,
        )  # fmt: skip
    else:
        raise ValueError(f"engine must be 'local' or 'spark'; got {engine!r}")
    provenance, batch_counts, evidence = history.provenance, history.counts, history.evidence
    extra = _ExtraBatch.of(history, knowledge)
    inspected_labels, inspected_keys = _fitting_sample(history, plans, fit_sample, seed)
    del history
    if current is not None:
        days = _days_elapsed(current.provenance, provenance)
        decay = decay_after(provenance)
        counts = {name: merge(current.counts[name].scaled(decay), batch_counts[name]) for name in plans}
        parent_version = current.version
        tables = extra.tables(current.tables, decay)
        kept = (FittedCoefficients(current.coefficients, current.network_coefficients)
                if keep_coefficients else None)
        del current
    else:
        counts = batch_counts
        tables = extra.tables({}, 1.0)
        kept = None
    if len(inspected_labels) == 0:
        raise SisamError(
            f"{rectified}: no inspected item to learn from: expected rectified rows for some "
            f"items of {declarations}; got none"
        )
    if kept is not None:
        fit = kept
        progress("kept the current coefficients")
    else:
        fit = _fit(knowledge, plans, counts, inspected_keys, inspected_labels, fit_sample, seed)
        progress("fitted coefficients by leave-one-out")
    factors_meta = {
        name: kb.FactorMeta(name, tuple(a.name for a in plan.attributes), plan.level_counts, plan.salt)
        for name, plan in plans.items()
    }
    if update:
        version = kb.update(
            kb_dir,
            batch_counts,
            fit.coefficients,
            fit.network_coefficients,
            provenance,
            knowledge.hash,
            half_life_days=half_life_days,
            days_elapsed=days,
            expected_version=parent_version,
            tables={**kb_tables(evidence), **tables},
        )
    else:
        version = kb.create(
            kb_dir,
            factors_meta,
            counts,
            fit.coefficients,
            fit.network_coefficients,
            knowledge.label_ids,
            provenance,
            knowledge.hash,
            overwrite=overwrite,
            tables={**kb_tables(evidence), **tables},
        )
    n_patterns = sum(c.n_patterns for c in counts.values())
    return LearnSummary(kb_dir, version, provenance.n_items, provenance.n_labelled, n_patterns, time.perf_counter() - start)


def learn_evidence(
    knowledge: Knowledge,
    frame: pd.DataFrame,
    current: kb.KnowledgeBaseVersion | None,
    decay: float,
    progress: Progress = _quiet,
) -> tuple[pd.DataFrame, EvidenceTables]:
    """The evidence tables of the catalog's models counted over ``frame`` (added to
    ``current``'s, decayed by ``decay``, when updating), and ``frame`` with the evidence
    columns, each item banded without its own contribution (``sisam.evidence``)."""
    models = evidence_models(knowledge)
    if not models:
        return frame, {}
    tables = count_evidence(models, frame)
    if current is not None:
        tables = merge_evidence(from_kb_tables(current.tables), tables, decay)
    frame = add_evidence_columns(frame, models, tables, own_rows_counted=True)
    progress(f"counted {len(models)} evidence model(s) and banded every item")
    return frame, tables


def counted_version(
    knowledge: Knowledge,
    frame: pd.DataFrame,
    labels: np.ndarray,
    coefficients: dict[str, dict[str, np.ndarray]],
    network_coefficients: dict[str, np.ndarray],
) -> kb.KnowledgeBaseVersion:
    """A knowledge-base version held in memory: ``frame`` counted with ``labels`` (int8[N,
    E], -1 for items never inspected) and the coefficients given rather than fitted. For
    oracles, tests and benchmarks that score but never open, log or replay a knowledge base."""
    plans = factor_plans(knowledge)
    frame, evidence = learn_evidence(knowledge, frame, None, 1.0)
    encoder = Encoder(frame)
    return kb.KnowledgeBaseVersion(
        version=1,
        path=Path("memory"),
        factors={
            name: kb.FactorMeta(name, tuple(a.name for a in plan.attributes), plan.level_counts, plan.salt)
            for name, plan in plans.items()
        },
        counts={name: count_factor(encoder.keys(plan), labels) for name, plan in plans.items()},
        coefficients=coefficients,
        network_coefficients=network_coefficients,
        label_ids=knowledge.label_ids,
        history=(),
        content_hash="memory",
        catalog_hash=knowledge.hash,
        tables=kb_tables(evidence),
    )


def _fitting_sample(
    history: CountedHistory, plans: dict[str, FactorPlan], size: int, seed: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels and per-factor pattern keys of the inspected items the fit scores: the
    sample ``engine.fit`` would draw from all of them (``history.sample_positions``), so
    that only the sample is keyed."""
    rows = sample_positions(len(history.labels), size, seed)
    encoder = Encoder(history.inspected.iloc[rows].reset_index(drop=True))
    return history.labels[rows], {name: encoder.keys(plan) for name, plan in plans.items()}


@dataclass(frozen=True)
class _ExtraBatch:
    """What a batch teaches besides the factor counts: the (declared, rectified) code pairs
    and code counts of the suggested codes (``suggest``), the recovered amounts of the
    expected value at stake (``value``)."""

    code_counts: dict[str, np.ndarray]  # declarations per code (suggest.count_codes)
    pair_declared: np.ndarray      # corrected items' declared and rectified codes
    pair_rectified: np.ndarray
    pair_importers: np.ndarray
    inspected_codes: np.ndarray    # declared hs_code of the inspected items
    ratios: dict[str, np.ndarray]  # per tax error, over the inspected items
    found: dict[str, np.ndarray]

    @classmethod
    def of(cls, history: CountedHistory, knowledge: Knowledge) -> _ExtraBatch:
        declared, rectified = history.inspected, history.rectified
        pair_declared, pair_rectified, pair_importers = suggest.error_pairs(
            declared["hs_code"].to_numpy(), rectified["hs_code"].to_numpy(), declared["importer_id"].to_numpy())
        ratios = value.recovered_ratios(declared, rectified, knowledge)
        return cls(history.code_counts, pair_declared, pair_rectified, pair_importers, declared["hs_code"].to_numpy(),
                   ratios, {e: ratios[e] > 0 for e in ratios})

    def tables(self, old: dict[str, dict[str, np.ndarray]], decay: float) -> dict[str, dict[str, np.ndarray]]:
        """The extra tables of the new version: old ones decayed plus this batch's, and
        their smoothing refitted by leave-one-out on this batch (like the coefficients)."""
        pairs = suggest.merge_pairs(old.get(suggest.PAIRS_TABLE), suggest.count_pairs(self.pair_declared, self.pair_rectified, self.pair_importers), decay)
        codes = suggest.merge_codes(old.get(suggest.CODES_TABLE), self.code_counts, decay)
        amounts = value.merge_amounts(old.get(value.AMOUNTS_TABLE), value.count_amounts(self.inspected_codes, self.ratios, self.found), decay)
        return {
            suggest.PAIRS_TABLE: pairs,
            suggest.CODES_TABLE: codes,
            suggest.SMOOTHING_TABLE: suggest.fit_smoothing(pairs, codes, self.pair_declared, self.pair_rectified, self.pair_importers),
            value.AMOUNTS_TABLE: amounts,
            value.SMOOTHING_TABLE: value.fit_smoothing(amounts, self.inspected_codes, self.ratios, self.found),
        }


def _days_elapsed(old: kb.Provenance, new: kb.Provenance) -> float:
    """Days between the end of the knowledge base's data and the end of the batch's."""
    if old.date_to is None or new.date_to is None:
        return 0.0
    return float(max(0, (new.date_to - old.date_to).days))


class Scorer:
    """Scores frames of declarations against one loaded knowledge-base version."""

    def __init__(self, version: kb.KnowledgeBaseVersion, knowledge: Knowledge):
        if version.label_ids != knowledge.label_ids:
            raise SisamError(
                f"{version.path}: labels {version.label_ids} differ from the catalog's {knowledge.label_ids}"
            )
        self.version = version
        self.knowledge = knowledge
        self.plans = factor_plans(knowledge)
        self.indexes: dict[str, KeyIndex] = {name: build_index(c.keys) for name, c in version.counts.items()}
        self.membership = network_membership(knowledge)
        self.suggester = suggest.suggester_from(version.tables)
        self.recovery = value.recovery_from(version.tables)
        models = evidence_models(knowledge)
        self.evidence = PreparedEvidence(models, from_kb_tables(version.tables)) if models else None
        self.successors = None
        if legislation.CORRELATION_TABLE in version.tables:
            codes = version.tables.get(suggest.CODES_TABLE)
            declared = dict(zip(codes["code"], codes["n"], strict=True)) if codes is not None else None
            correlation = legislation.Correlation.from_table(version.tables[legislation.CORRELATION_TABLE])
            self.successors = legislation.Successors(correlation, declared)

    def with_counts(self, counts: dict[str, PatternCounts]) -> Scorer:
        """This scorer with other counts of its version (a subset ``kb.open_patterns``
        read for a batch): what derives from the version's extra tables (evidence,
        suggestions, recovery, successors) is shared, not rebuilt."""
        scorer = copy.copy(self)
        scorer.version = dataclasses.replace(self.version, counts=counts)
        scorer.indexes = {name: build_index(c.keys) for name, c in counts.items()}
        return scorer

    def with_successors(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with successor tariff lines read as their predecessor while they have
        little history of their own (``legislation.Successors``); idempotent."""
        if self.successors is None:
            return frame
        codes = frame["hs_code"].astype("string").fillna("").str.strip()
        successor = codes.isin(list(self.successors.predecessor)).to_numpy()
        if not successor.any():
            return frame
        own = np.zeros(len(frame))
        own[successor] = self._own_labelled(frame[successor])
        resolved = frame.copy()
        resolved["hs_code"] = self.successors.resolve(frame["hs_code"].to_numpy(), own)
        return resolved

    def _own_labelled(self, frame: pd.DataFrame) -> np.ndarray:
        """Inspected items in this version declaring each item's code, from the first factor
        with the full code as an attribute (its shape with every other attribute at "*")."""
        for name, plan in self.plans.items():
            for a, attribute in enumerate(plan.attributes):
                if attribute.column != "hs_code" or attribute.levels[0] not in ("value", "prefix:8"):
                    continue
                target = plan.lattice.level_counts.astype(np.int64)
                target[a] = 0
                shape = int(np.flatnonzero((plan.lattice.levels == target).all(axis=1))[0])
                keys = Encoder(frame).keys(plan)[:, shape]
                counts = self.version.counts[name]
                rows = np.minimum(np.searchsorted(counts.keys, keys), max(counts.n_patterns - 1, 0))
                found = counts.n_patterns > 0 and counts.keys[rows] == keys
                return np.where(found, counts.n[rows] if counts.n_patterns else 0.0, 0.0)
        return np.zeros(len(frame))

    def with_evidence(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the catalog's evidence columns (none to add: ``frame`` itself);
        idempotent, so that callers may pass frames that already have them."""
        return self.encoder(frame).frame

    def encoder(self, frame: pd.DataFrame) -> Encoder:
        """An ``Encoder`` of ``with_evidence(frame)``, holding the level codes the
        evidence models computed on the way (the contract columns they share with the
        factors are coded once)."""
        frame = self.with_successors(frame)
        encoder = Encoder(frame)
        missing = {name: m for name, m in self.evidence.models.items() if m.column not in frame} if self.evidence else {}
        if not missing:
            return encoder
        return encoder.with_columns(evidence_columns(encoder, missing, self.evidence, own_rows_counted=False))

    def evidence_facts(self, frame: pd.DataFrame) -> list[list[dict[str, Any]]]:
        """Per row of ``frame``, the facts behind every evidence band (``sisam.evidence``)."""
        if self.evidence is None:
            return [[] for _ in range(len(frame))]
        return evidence_facts(self.evidence, frame)

    @classmethod
    def open(cls, kb_dir: Path, knowledge: Knowledge | None = None) -> Scorer:
        knowledge = knowledge or load_knowledge()
        return cls(kb.open_version(kb_dir, expected_catalog_hash=knowledge.hash), knowledge)

    def served_log_odds(self, frame: pd.DataFrame) -> tuple[list[ServedLogOdds], np.ndarray]:
        """Per factor (catalog order) lo(P_e) of the full pattern of each distinct item
        (rows distinct over the factor's attributes, ``Encoder.distinct_keys``) for the
        labels whose network uses the factor (about a third of the factor x label pairs),
        and float64[E] lo(p_e), the base rate every network calibrates towards.

        Items with the same values at every level of a factor's attributes have the same
        keys, hence the same bits: the factor is evaluated once for all of them."""
        encoder = self.encoder(frame)
        factors, base = [], np.full(len(self.knowledge.label_ids), np.nan)
        # The factors' keys (serial work) are made in a thread ahead of the factor kernels
        # (parallel), filling the cores they leave idle; only the kernels launch parallel work.
        with ThreadPoolExecutor(1, thread_name_prefix="sisam-keys") as keying:
            distinct_keys = [keying.submit(encoder.distinct_keys, plan) for plan in self.plans.values()]
            for f, (name, plan) in enumerate(self.plans.items()):
                coefficients = self.version.coefficients[name]
                served = np.flatnonzero(self.membership[f])
                distinct = distinct_keys[f].result()
                result = factor_log_odds(
                    distinct.keys,
                    plan.lattice,
                    self.version.counts[name],
                    self.indexes[name],
                    coefficients["S"],
                    coefficients["d"],
                    labels=served,
                )
                # every inspected item matches every factor's root: any factor serving a
                # label gives its base rate, bit for bit
                unset = served[np.isnan(base[served])]
                base[unset] = result.root[0, np.searchsorted(served, unset)]
                factors.append(ServedLogOdds(result.full, distinct.inverse, served))
        return factors, base

    def factor_log_odds(self, frame: pd.DataFrame) -> tuple[list[np.ndarray], np.ndarray]:
        """Per factor (catalog order) float64[n, E] lo(P_e) of every item's full pattern,
        and float64[E] lo(p_e): ``served_log_odds`` expanded, the columns of labels whose
        network does not use the factor holding the base rate (no evidence, which the
        network combination ignores anyway)."""
        factors, base = self.served_log_odds(frame)
        full = []
        for factor in factors:
            lo = np.broadcast_to(base, (len(frame), base.size)).copy()
            lo[:, factor.labels] = factor.lo[factor.rows]
            full.append(lo)
        return full, base

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """float64[n, E]: every item's probability of every label."""
        if len(frame) == 0:
            return np.zeros((0, len(self.knowledge.label_ids)))
        factors, base = self.served_log_odds(frame)
        return served_network_scores(factors, base, self.version.network_coefficients["dnet"])[1]

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The contract's score table (section 4) for ``frame``."""
        probabilities = self.probabilities(frame)
        scores = frame[list(KEY)].reset_index(drop=True)
        for j, label in enumerate(self.knowledge.label_ids):
            scores[SCORE_PREFIX + label] = probabilities[:, j]
        for name, values in self.optional_columns(frame, probabilities).items():
            scores[name] = values
        return scores

    def optional_columns(self, frame: pd.DataFrame, probabilities: np.ndarray) -> dict[str, np.ndarray]:
        """The score table's optional columns (contract.md section 4) that this version's
        knowledge supports: expected recovery (``value``), suggested codes (``suggest``)."""
        columns: dict[str, np.ndarray] = {}
        if self.recovery is not None:
            by_label = {label: probabilities[:, j] for j, label in enumerate(self.knowledge.label_ids)}
            columns[value.COLUMN] = self.recovery.expected(frame, by_label)
        if self.suggester is not None:
            columns.update(suggest.suggestion_columns(self.suggester.suggest_all(frame["hs_code"].to_numpy(), frame["importer_id"].to_numpy())))
        return columns


def network_membership(knowledge: Knowledge) -> np.ndarray:
    """bool[F, E]: factor f (catalog order) is in label e's network."""
    factors = list(knowledge.factors)
    membership = np.zeros((len(factors), len(knowledge.label_ids)), dtype=bool)
    for e, label in enumerate(knowledge.label_ids):
        for name in knowledge.networks[label].factors:
            membership[factors.index(name), e] = True
    return membership


def score(
    items: Path,
    kb_dir: Path,
    out: Path,
    *,
    knowledge: Knowledge | None = None,
    progress: Progress = _quiet,
    log: Path | None = None,
    lang: str = "en",
    pseudonymise: bool = False,
    stream_kb: bool = False,
    stream_memory_limit: str | None = None,
    stream_batch_rows: int | None = None,
) -> ScoreSummary:
    """Score a declarations file and write the score table atomically.

    With ``log``, also write the reasoning log of every item and error type
    (``sisam.reasoning_log``: explanation values in ``lang``, values replaced by their
    sha256 if ``pseudonymise``), published only if scoring succeeds; the scores are the
    same bits either way. With ``stream_kb`` the knowledge base's counts are not loaded:
    each batch of ``stream_batch_rows`` items (default ``kb.STREAM_BATCH_ROWS``) reads the
    counts it needs from disk (``streaming``), DuckDB staying within
    ``stream_memory_limit``; the scores are the same bits. Smaller batches hold fewer
    counts and read the file more often."""
    from sisam.tables import write_table

    if stream_batch_rows is not None and (not stream_kb or stream_batch_rows < 1):
        raise SisamError(f"stream_batch_rows={stream_batch_rows}: expected a positive number of items, with stream_kb")
    start = time.perf_counter()
    if stream_kb:
        return _score_streamed(items, kb_dir, out, knowledge or load_knowledge(), progress, log, stream_memory_limit,
                               stream_batch_rows or kb.STREAM_BATCH_ROWS, start)
    scorer = Scorer.open(kb_dir, knowledge)
    with contextlib.ExitStack() as stack:
        score_frame = scorer.score_frame
        if log is not None:
            from sisam.reasoning_log import ReasoningLogWriter

            writer = ReasoningLogWriter(log, scorer, lang=lang, pseudonymise=pseudonymise, source=items)
            score_frame = stack.enter_context(writer).score_frame
        parts = []
        for chunk in iter_declarations(items, chunk_rows=SCORE_CHUNK_ROWS):
            parts.append(score_frame(chunk))
            progress(f"scored {sum(len(p) for p in parts):,} items")
        if not parts:  # an input with a header and no rows still gets a score table
            parts.append(score_frame(read_declarations(items)))
        table = pd.concat(parts, ignore_index=True)
        from sisam.report import score_metadata

        write_table(table, out, score_metadata(items, kb_dir, scorer.version.version, scorer.version.content_hash))
    return ScoreSummary(out, len(table), scorer.version.version, time.perf_counter() - start)


def _score_streamed(
    items: Path, kb_dir: Path, out: Path, knowledge: Knowledge, progress: Progress, log: Path | None,
    memory_limit: str | None, batch_rows: int, start: float,
) -> ScoreSummary:
    from sisam.report import score_metadata
    from sisam.streaming import batch_scorer
    from sisam.tables import write_table

    if log is not None:
        raise SisamError(f"{log}: a reasoning log needs the knowledge base loaded; expected no "
                         "--log with --stream-kb: score without --stream-kb to write one")
    # Every batch reads the version current now, even if an update publishes meanwhile; its
    # extra tables are read, and what derives from them built, once for all batches.
    tables_only = Scorer(kb.open_patterns(kb_dir, {}, None, knowledge.hash), knowledge)
    parts = []
    for chunk in iter_declarations(items, chunk_rows=batch_rows):
        parts.append(batch_scorer(tables_only, kb_dir, chunk, memory_limit).score_frame(chunk))
        progress(f"scored {sum(len(p) for p in parts):,} items")
    if not parts:
        parts.append(tables_only.score_frame(read_declarations(items)))
    pinned = tables_only.version
    table = pd.concat(parts, ignore_index=True)
    write_table(table, out, score_metadata(items, kb_dir, pinned.version, pinned.content_hash))
    return ScoreSummary(out, len(table), pinned.version, time.perf_counter() - start)
