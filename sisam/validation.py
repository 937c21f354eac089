"""``sisam validate``: contract checks, label derivation and, for synthetic worlds, the
agreement between the labels derived from (declared, rectified) and the world's truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sisam.contract import KEY
from sisam.declarations import read_declarations, read_pair
from sisam.knowledge import load_knowledge
from sisam.labels import label_matrix


@dataclass(frozen=True)
class LabelRate:
    error_id: str
    found: int
    inspected: int
    truth_found: int | None = None
    disagreements: int | None = None


@dataclass
class ValidationReport:
    declarations: Path
    n_items: int
    rectified: Path | None = None
    n_inspected: int = 0
    rates: list[LabelRate] = field(default_factory=list)
    truth: Path | None = None

    @property
    def ok(self) -> bool:
        return all(not r.disagreements for r in self.rates)

    @property
    def failure(self) -> str:
        bad = [r.error_id for r in self.rates if r.disagreements]
        return (
            f"labels derived from {self.rectified} disagree with {self.truth} on {', '.join(bad)}: "
            "expected the found_<id> columns of the truth table to equal the catalog's rules "
            "applied to (declared, rectified)"
        )

    def render(self) -> str:
        lines = [f"{self.declarations}: {self.n_items:,} items, contract OK"]
        if self.rectified is None:
            return "\n".join(lines)
        share = self.n_inspected / self.n_items if self.n_items else 0.0
        lines.append(f"{self.rectified}: {self.n_inspected:,} inspected items ({share:.2%}), contract OK")
        header = f"{'error type':<22}{'found':>8}{'rate':>9}"
        if self.truth is not None:
            header += f"{'truth':>8}{'differ':>8}"
        lines.append(header)
        for r in self.rates:
            rate = r.found / r.inspected if r.inspected else float("nan")
            line = f"{r.error_id:<22}{r.found:>8,}{rate:>9.3%}"
            if r.truth_found is not None:
                line += f"{r.truth_found:>8,}{r.disagreements:>8,}"
            lines.append(line)
        return "\n".join(lines)


def validate_tables(
    declarations: Path, rectified: Path | None, truth: Path | None, knowledge_dir: Path | None
) -> ValidationReport:
    """Read and check the tables (raising ``InputError`` on any contract problem), derive
    the labels and, with ``truth``, count per error type the items where they disagree."""
    knowledge = load_knowledge(knowledge_dir)
    if rectified is None:
        frame = read_declarations(declarations)
        return ValidationReport(declarations, len(frame))
    declared, rect = read_pair(declarations, rectified)
    labels = label_matrix(declared, rect, knowledge.errors)
    inspected = labels[:, 0] >= 0
    report = ValidationReport(declarations, len(declared), rectified, int(inspected.sum()), truth=truth)
    truth_found = _truth_found(truth, declared, [e.id for e in knowledge.errors]) if truth else None
    for j, error in enumerate(knowledge.errors):
        found = labels[:, j] == 1
        if truth_found is None:
            report.rates.append(LabelRate(error.id, int(found.sum()), int(inspected.sum())))
        else:
            expected = truth_found[:, j]
            report.rates.append(
                LabelRate(error.id, int(found.sum()), int(inspected.sum()), int(expected.sum()), int((found != expected).sum()))
            )
    return report


def _truth_found(path: Path, declared: pd.DataFrame, error_ids: list[str]) -> np.ndarray:
    """bool[n_declared, n_errors]: the truth table's found_<id> flags aligned on ``declared``."""
    columns = [*KEY, *(f"found_{e}" for e in error_ids)]
    truth = pd.read_parquet(path, columns=columns) if path.suffix == ".parquet" else pd.read_csv(
        path, usecols=columns, dtype={"declaration_id": str}
    )
    aligned = declared[list(KEY)].merge(truth, how="left", on=list(KEY), sort=False)
    flags = aligned[[f"found_{e}" for e in error_ids]]
    return flags.fillna(False).to_numpy(dtype=bool)
