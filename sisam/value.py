"""Expected value at stake: the tax an inspection of an item is expected to recover.

SISAM "converts probabilities into the expected tax ... return of each inspection (an item
worth R$600 in expected recovery is checked before one worth R$300)" (brief.md). By
linearity of expectation, whatever the dependence between error types,

    E[recovered | item] = sum over error types e of P(e | item) * E[recovered by e | e, item]

The first factor is the network's ``p_e``. The second is learned here from the history's
(declared, rectified) pairs, for "similar items": smoothed along the declared code's HS
chain like an HPB node (hpb.md, Eq. 3, with a mean instead of a proportion).

**What an error recovers, from the contract's columns only.** The tax of a row is its
customs value times the sum of its rates (``import_duty_rate``, ``ipi_rate``, ``pis_rate``,
``cofins_rate``, ``antidumping_rate``, ``countervailing_rate``, percent): a flat sum, not
Brazil's cascade of taxes on taxes, because the contract has no column for the bases. The
amount recovered by error type e on an inspected item is the tax of the declared row with
e's field set to its rectified value, minus the tax of the declared row, never below zero
(a correction that lowers the tax collects nothing). Only the error types on those seven
fields (the six rates and ``undervaluation`` on the value) move the tax; the others (a wrong
code, origin or preference claim) recover through the rates they change, which the
rectified row carries and the rate error types count, so they are given no amount of their
own and nothing is counted twice. Interactions (value and rate both wrong) are left out:
each error's amount is taken at the other declared values.

The amount is learnt as a share of the declared customs value (``ratio``), so that a
heading's typical recovery applies to a large and a small item in proportion::

    m_e(W) = (sum of ratios_W + S_e * m_e(parent(W))) / (n_W + S_e),   m_e(root) = mean ratio

with n_W the items of W where e was found. S_e is chosen from hpb.md's grid by the
leave-one-out squared error of the ratios. The expected recovery of an item of declared
value V is ``V * sum_e p_e * m_e(W_item)`` (score column ``expected_recovery_usd``).

Stored as the extra tables ``value_amounts`` (``error``, ``level``: prefix length of the
declared code, 0 at the root, ``context``, ``n``, ``total``: sum of ratios; decayed like the
counts) and ``value_smoothing`` (``error``, ``S``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping

import numpy as np
import pandas as pd

from sisam.engine.fit import S_GRID
from sisam.knowledge import Knowledge

log = logging.getLogger("sisam.value")

AMOUNTS_TABLE = "value_amounts"
SMOOTHING_TABLE = "value_smoothing"
COLUMN = "expected_recovery_usd"
VALUE = "customs_value_usd"
RATES = ("import_duty_rate", "ipi_rate", "pis_rate", "cofins_rate", "antidumping_rate", "countervailing_rate")
#: Error types whose field moves the tax (see the module docstring).
TAX_ERRORS = ("import_duty_rate", "ipi_rate", "pis_rate", "cofins_rate", "antidumping", "countervailing",
              "undervaluation")
LEVELS = (8, 6, 4, 2, 0)


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(frame[column], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)


def tax(frame: pd.DataFrame) -> np.ndarray:
    """float64[n]: customs value times the sum of the six rates (percent)."""
    return _numbers(frame, VALUE) * sum(_numbers(frame, r) for r in RATES) / 100.0


def recovered_ratios(declared: pd.DataFrame, rectified: pd.DataFrame, knowledge: Knowledge) -> dict[str, np.ndarray]:
    """Per tax error type, float64[n]: the share of the declared value its correction
    recovers on each aligned (declared, rectified) row, >= 0."""
    value = _numbers(declared, VALUE)
    rates = sum(_numbers(declared, r) for r in RATES)
    safe = np.where(value > 0, value, np.nan)
    out = {}
    for error_id in TAX_ERRORS:
        field = knowledge.error(error_id).field
        if field == VALUE:
            gained = (_numbers(rectified, VALUE) - value) * rates / 100.0
        else:
            gained = value * (_numbers(rectified, field) - _numbers(declared, field)) / 100.0
        out[error_id] = np.nan_to_num(np.maximum(gained, 0.0) / safe)
    return out


def count_amounts(codes: np.ndarray, ratios: Mapping[str, np.ndarray], found: Mapping[str, np.ndarray],
                  weight: float = 1.0) -> dict[str, np.ndarray]:
    """The ``value_amounts`` table of the items where each tax error was found."""
    rows: dict[tuple[str, int, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    codes = pd.Series(codes, dtype="string").fillna("").str.strip().to_numpy(dtype=object)
    for error_id, ratio in ratios.items():
        for i in np.flatnonzero(found[error_id]):
            for level in LEVELS:
                cell = rows[error_id, level, codes[i][:level]]
                cell[0] += weight
                cell[1] += weight * float(ratio[i])
    return _table(rows)


def _table(rows: Mapping[tuple[str, int, str], list[float]]) -> dict[str, np.ndarray]:
    ordered = sorted(rows, key=lambda t: (t[0], -t[1], t[2]))
    return {
        "error": np.array([t[0] for t in ordered], dtype=object),
        "level": np.array([t[1] for t in ordered], dtype=np.int64),
        "context": np.array([t[2] for t in ordered], dtype=object),
        "n": np.array([rows[t][0] for t in ordered], dtype=np.float64),
        "total": np.array([rows[t][1] for t in ordered], dtype=np.float64),
    }


def merge_amounts(old: Mapping[str, np.ndarray] | None, new: Mapping[str, np.ndarray], decay: float) -> dict[str, np.ndarray]:
    """Old amounts scaled by ``decay`` plus the new ones."""
    rows: dict[tuple[str, int, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for table, scale in ((old, decay), (new, 1.0)):
        if table is None:
            continue
        for e, level, context, n, total in zip(table["error"], table["level"], table["context"], table["n"],
                                               table["total"], strict=True):
            cell = rows[str(e), int(level), str(context)]
            cell[0] += float(n) * scale
            cell[1] += float(total) * scale
    return _table(rows)


class Recovery:
    """Smoothed expected recovery ratios per tax error type and declared code."""

    def __init__(self, amounts: Mapping[str, np.ndarray], smoothing: Mapping[str, float]):
        self.s = dict(smoothing)
        self.cells: dict[tuple[str, int, str], tuple[float, float]] = {
            (str(e), int(level), str(c)): (float(n), float(t))
            for e, level, c, n, t in zip(amounts["error"], amounts["level"], amounts["context"], amounts["n"],
                                         amounts["total"], strict=True)}

    def ratio(self, error_id: str, code: str, leave_out: float | None = None) -> float:
        """m_e(code's finest context); ``leave_out`` removes one item with that ratio."""
        s = self.s.get(error_id, 1.0)
        drop = leave_out is not None
        n, total = self.cells.get((error_id, 0, ""), (0.0, 0.0))
        n, total = n - drop, total - (leave_out or 0.0)
        m = total / n if n > 0 else 0.0
        for level in reversed(LEVELS[:-1]):
            cell = self.cells.get((error_id, level, code[:level]))
            if cell is None:
                continue
            n, total = cell[0] - drop, cell[1] - (leave_out or 0.0)
            m = (total + s * m) / (n + s) if n + s > 0 else m
        return m

    def ratios(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        """Per tax error type, float64[n] m_e for every item, once per distinct code."""
        codes = pd.Series(codes, dtype="string").fillna("").str.strip().to_numpy(dtype=object).astype(str)
        unique, inverse = np.unique(codes, return_inverse=True)
        return {e: np.array([self.ratio(e, str(c)) for c in unique])[inverse] for e in TAX_ERRORS}

    def expected(self, frame: pd.DataFrame, probabilities: Mapping[str, np.ndarray]) -> np.ndarray:
        """float64[n]: V * sum_e p_e * m_e (module docstring)."""
        value = _numbers(frame, VALUE)
        ratios = self.ratios(frame["hs_code"].to_numpy())
        return value * sum(probabilities[e] * ratios[e] for e in TAX_ERRORS)


def fit_smoothing(amounts: Mapping[str, np.ndarray], codes: np.ndarray, ratios: Mapping[str, np.ndarray],
                  found: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ``value_smoothing`` table: per tax error, S of hpb.md's grid with the least
    leave-one-out squared error of the batch's ratios (ties to the smaller S)."""
    codes = pd.Series(codes, dtype="string").fillna("").str.strip().to_numpy(dtype=object)
    chosen = []
    recovery = Recovery(amounts, {})
    for e in TAX_ERRORS:
        rows = np.flatnonzero(found[e])
        best_s, best = S_GRID[0], np.inf
        for s in S_GRID:
            recovery.s = {e: s}
            loss = sum((recovery.ratio(e, codes[i], leave_out=float(ratios[e][i])) - ratios[e][i]) ** 2 for i in rows)
            if loss < best - 1e-15:
                best_s, best = s, loss
        chosen.append(best_s)
    return {"error": np.array(TAX_ERRORS, dtype=object), "S": np.array(chosen, dtype=np.float64)}


def recovery_from(tables: Mapping[str, Mapping[str, np.ndarray]]) -> Recovery | None:
    """The recovery estimates stored in a knowledge base version's extra tables, if any."""
    if AMOUNTS_TABLE not in tables or SMOOTHING_TABLE not in tables:
        return None
    smoothing = tables[SMOOTHING_TABLE]
    return Recovery(tables[AMOUNTS_TABLE], {str(e): float(s) for e, s in zip(smoothing["error"], smoothing["S"], strict=True)})
