"""Small customs worlds for the attribution, explanation, reasoning-log and replay tests.

A world here is a frame of contract columns drawn from short, realistic vocabularies (real
HS codes, ISO countries, office codes) with labels whose error rates depend on the importer
and the heading, so that some patterns carry evidence; its counts are the real counting
kernel's, its coefficients drawn from hpb.md's grids with a seed (tests need coefficients,
not good ones: drawn ones reach the grid's corners, fitted ones rarely do).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sisam import kb
from sisam.contract import COLUMNS
from sisam.encoding import Encoder, factor_plans
from sisam.engine.counting import count_factor
from sisam.evidence import kb_tables
from sisam.knowledge import Knowledge, load_knowledge
from sisam.model import Scorer, counted_version, learn_evidence
from sisam.tables import write_table

S_GRID = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0)
D_GRID = (0.5, 1.0, 1.5, 2.0, 3.0)

HS_CODES = (
    "84818099", "84819090", "84813000", "84713012", "85171231",
    "39029010", "72165090", "30049099", "87089990", "84818092",
)  # fmt: skip
ORIGINS = ("CN", "DE", "US", "KR", "IN", "IT")
OFFICES = ("0817600", "0817700", "0927800")
MODES = ("sea", "air", "road")
INCOTERMS = ("FOB", "CIF", "EXW")
CURRENCIES = ("USD", "EUR", "CNY")


def random_frame(seed: int, n_items: int, n_importers: int = 12) -> pd.DataFrame:
    """``n_items`` declaration items with the contract's columns, 1-3 items a declaration."""
    rng = np.random.default_rng(seed)
    pick = lambda values, n=n_items, p=None: np.asarray(values, dtype=object)[rng.choice(len(values), n, p=p)]  # noqa: E731
    zipf = 1.0 / np.arange(1, n_importers + 1)
    importers = pick([f"IMP{i:05d}" for i in range(n_importers)], p=zipf / zipf.sum())
    decl_sizes = rng.integers(1, 4, n_items)
    decl = np.repeat(np.arange(n_items), decl_sizes)[:n_items]
    item_no = np.concatenate([np.arange(1, s + 1) for s in decl_sizes])[:n_items]
    value = np.round(np.exp(rng.normal(9.0, 1.5, n_items)), 2)
    weight = np.round(np.exp(rng.normal(7.0, 1.5, n_items)), 3)
    columns: dict[str, object] = {
        "declaration_id": np.array([f"24{seed % 100:02d}{d:06d}" for d in decl], dtype=object),
        "item_no": item_no.astype(np.int64),
        "date": pd.to_datetime(dt.date(2024, 3, 1)) + pd.to_timedelta(rng.integers(0, 60, n_items), unit="D"),
        "importer_id": importers,
        "exporter_id": pick([f"EXP{i:05d}" for i in range(15)]),
        "manufacturer_id": pick([f"MFR{i:05d}" for i in range(15)]),
        "broker_id": pick([f"BRK{i:03d}" for i in range(5)]),
        "customs_office": pick(OFFICES),
        "hs_code": pick(HS_CODES),
        "description": pick(["valves", "steel angles", "medicines", "phones", "polymers"]),
        "origin_country": pick(ORIGINS),
        "acquisition_country": pick(ORIGINS),
        "transport_mode": pick(MODES),
        "incoterm": pick(INCOTERMS),
        "currency": pick(CURRENCIES),
        "quantity": weight,
        "unit": pick(["kg", "pce"]),
        "net_weight_kg": weight,
        "customs_value_usd": value,
        "freight_usd": np.round(value * 0.05, 2),
        "insurance_usd": np.round(value * 0.01, 2),
        "tax_regime": pick(["normal", "drawback", "exemption"], p=[0.8, 0.1, 0.1]),
        "preferential_claim": pick(["", "MERCOSUR"], p=[0.85, 0.15]),
        "ex_tariff_claim": pick(["", "EX01"], p=[0.9, 0.1]),
        "import_licence": pick(["", "LI2400001"], p=[0.8, 0.2]),
        "related_party": pick(["N", "Y"], p=[0.8, 0.2]),
        "fx_coverage": pick(["with", "without"]),
        "valuation_method": pick(["1", "2"], p=[0.9, 0.1]),
        "import_duty_rate": pick([0.0, 2.0, 10.0, 14.0]).astype(float),
        "ipi_rate": pick([0.0, 5.0, 10.0]).astype(float),
        "pis_rate": np.full(n_items, 2.1),
        "cofins_rate": np.full(n_items, 9.65),
        "antidumping_rate": np.zeros(n_items),
        "countervailing_rate": np.zeros(n_items),
    }
    frame = pd.DataFrame(columns)
    assert list(frame.columns) == list(COLUMNS)
    return frame


def random_labels(frame: pd.DataFrame, seed: int, n_labels: int = 31, inspected: float = 0.5) -> np.ndarray:
    """int8[n, n_labels]: -1 rows for items never inspected; errors more frequent for some
    importers and headings, so that patterns carry evidence either way."""
    rng = np.random.default_rng(seed + 1)
    n = len(frame)
    importer_risk = {v: rng.lognormal(0.0, 1.0) for v in sorted(set(frame["importer_id"]))}
    heading_risk = {v: rng.lognormal(0.0, 0.7) for v in sorted({c[:4] for c in frame["hs_code"]})}
    risk = np.array([importer_risk[i] * heading_risk[h[:4]] for i, h in zip(frame["importer_id"], frame["hs_code"], strict=True)])
    base = rng.uniform(0.01, 0.15, n_labels - 1)
    errors = rng.random((n, n_labels - 1)) < np.minimum(0.9, base[None, :] * risk[:, None])
    labels = np.concatenate([errors, errors.any(axis=1, keepdims=True)], axis=1).astype(np.int8)
    labels[rng.random(n) >= inspected] = -1
    return labels


def random_coefficients(knowledge: Knowledge, seed: int) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed + 2)
    n_labels = len(knowledge.label_ids)
    coefficients = {
        name: {"S": rng.choice(S_GRID, n_labels), "d": rng.choice(D_GRID, n_labels)}
        for name in knowledge.factors
    }
    return coefficients, {"dnet": rng.choice(D_GRID, n_labels)}


def create_kb(
    kb_dir: Path, knowledge: Knowledge, frame: pd.DataFrame, labels: np.ndarray, seed: int, *, overwrite: bool = False
) -> int:
    """Count ``frame`` into a knowledge base at ``kb_dir`` with seeded coefficients."""
    plans = factor_plans(knowledge)
    frame, evidence = learn_evidence(knowledge, frame, None, 1.0)
    encoder = Encoder(frame)
    counts = {name: count_factor(encoder.keys(plan), labels) for name, plan in plans.items()}
    meta = {
        name: kb.FactorMeta(name, tuple(a.name for a in plan.attributes), plan.level_counts, plan.salt)
        for name, plan in plans.items()
    }
    coefficients, network = random_coefficients(knowledge, seed)
    dates = frame["date"]
    provenance = kb.Provenance(
        input_files=("memory",),
        date_from=dates.min().date(),
        date_to=dates.max().date(),
        n_items=len(frame),
        n_labelled=int((labels[:, 0] >= 0).sum()),
    )
    return kb.create(
        kb_dir, meta, counts, coefficients, network, knowledge.label_ids, provenance,
        knowledge.hash, overwrite=overwrite, tables=kb_tables(evidence),
    )  # fmt: skip


def memory_version(knowledge: Knowledge, frame: pd.DataFrame, labels: np.ndarray, seed: int) -> kb.KnowledgeBaseVersion:
    """A knowledge-base version held in memory only (no DuckDB file): for tests that
    score but never open, log or replay a knowledge base."""
    return counted_version(knowledge, frame, labels, *random_coefficients(knowledge, seed))


@dataclass(frozen=True)
class World:
    """A knowledge base on disk learnt (counted) from ``history``, and ``test`` items to
    score against it."""

    knowledge: Knowledge
    kb_dir: Path
    history: pd.DataFrame
    test: pd.DataFrame
    test_file: Path

    def scorer(self) -> Scorer:
        return Scorer.open(self.kb_dir, self.knowledge)


def build_world(folder: Path, seed: int, n_history: int = 1500, n_test: int = 40) -> World:
    """History, labels, knowledge base and test items, all from ``seed``; the test items
    are written to ``folder/test.parquet`` for the command-line tests."""
    knowledge = load_knowledge()
    history = random_frame(seed, n_history)
    labels = random_labels(history, seed)
    create_kb(folder / "kb", knowledge, history, labels, seed)
    test = random_frame(seed + 100, n_test)
    test_file = folder / "test.parquet"
    write_table(test, test_file)
    return World(knowledge, folder / "kb", history, test, test_file)
