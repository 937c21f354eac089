"""Legislation changes as knowledge: code correlation tables and dated rates.

SISAM absorbs "legislation changes (new codes, new rates) without invalidating old knowledge
or retraining" (brief.md). Two tables, CSV with a header, live in ``knowledge/legislation/``
(they are not part of the catalog hash: a new table must not invalidate a knowledge base):

``code_correlation.csv``: ``old_code,new_code,share,effective_date``
    a tariff line retired on ``effective_date`` (YYYY-MM-DD) and the lines that replace
    it, ``share`` being the part of the old line's trade each new line takes (the shares of
    an old line add up to 1, all its rows share one date). A split is one old line with
    several rows, a merge several old lines naming the same new one.

``rates.csv``: ``hs_code,rate,value,effective_date``
    from ``effective_date`` on, lines starting with ``hs_code`` (2 to 8 digits; the longest
    matching prefix wins) have ``value`` percent of ``rate``, one of the contract's six rate
    columns. :class:`RateSchedule` answers "what was the rate of this line on this day", for
    the synthetic world and for evidence that compares a declared rate with the law.

**How a correlation reaches the patterns.** Pattern keys are hashes of values (hpb.md,
architecture notes): the counts of a retired line cannot be found, let alone copied, without
the history they came from. So ``sisam kb apply-correlation`` stores the correlation in a
new knowledge-base version (extra table ``code_correlation``, recorded in the version
history with the file it came from) and the scorer reads a successor line *as its
predecessor* (:class:`Successors`): every factor then finds the predecessor's patterns,
combined with the item's other attributes exactly as learnt, and the explanation quotes
them. A successor with several predecessors (a merge) reads as the one that gave it most of
its trade, share times the predecessor's declarations, because a mixture of several
predecessors' probabilities would no longer decompose into pattern contributions (hpb.md,
"Why explanations come for free"). The substitution stops once the new line has
:data:`INHERIT_BELOW` inspected items of its own: from then on its own counts speak, and
what is common to old and new lines keeps coming from the subheading, heading and chapter
levels, which the HS hierarchy already shares.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import math
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sisam import kb
from sisam.contract import FIXED_WIDTH_CODES
from sisam.errors import InputError, Problem

CORRELATION_COLUMNS = ("old_code", "new_code", "share", "effective_date")
RATE_COLUMNS = ("hs_code", "rate", "value", "effective_date")
RATES = ("import_duty_rate", "ipi_rate", "pis_rate", "cofins_rate", "antidumping_rate", "countervailing_rate")
CORRELATION_TABLE = "code_correlation"
#: Inspected items of its own from which a successor line stops reading as its predecessor:
#: about the count at which a line's own error rate starts to outweigh a smoothing prior of
#: the usual strength (S of tens, hpb.md's grid).
INHERIT_BELOW = 30
_CODE = re.compile(rf"^\d{{{FIXED_WIDTH_CODES['hs_code']}}}$")
_PREFIX = re.compile(r"^\d{2,8}$")
_SHARE_TOLERANCE = 1e-6


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Data rows (1-based, header excluded) of a CSV (or Parquet, as a synthetic world
    writes them) whose header must be ``columns``, every cell as text."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        if tuple(table.column_names) != columns:
            raise InputError([Problem(str(path), None, None,
                                      f"expected the columns {','.join(columns)}; got {','.join(table.column_names)!r}")])
        return [(number, {c: "" if v is None else str(v).strip() for c, v in row.items()})
                for number, row in enumerate(table.to_pylist(), start=1)]
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or tuple(h.strip() for h in header) != columns:
                raise InputError([Problem(str(path), None, None,
                                          f"expected the header {','.join(columns)}; got {','.join(header or [])!r}")])
            rows = []
            for number, row in enumerate(reader, start=1):
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(columns):
                    raise InputError([Problem(str(path), number, None,
                                              f"expected {len(columns)} cells; got {len(row)}")])
                rows.append((number, {c: v.strip() for c, v in zip(columns, row, strict=True)}))
            return rows
    except (OSError, UnicodeDecodeError) as e:
        raise InputError([Problem(str(path), None, None, f"cannot read the table ({e}); expected a UTF-8 CSV file")]) from e


def _date(path: Path, number: int, column: str, text: str, problems: list[Problem]) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        problems.append(Problem(str(path), number, column, f"expected a date YYYY-MM-DD; got {text!r}"))
        return None


def _number(path: Path, number: int, column: str, text: str, low: float, high: float, problems: list[Problem]) -> float | None:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high or (column == "share" and value == 0):
        bound = f"in (0, {high:g}]" if column == "share" else f">= {low:g}"
        problems.append(Problem(str(path), number, column, f"expected a number {bound}; got {text!r}"))
        return None
    return value


@dataclass(frozen=True)
class Correlation:
    """Rows of a code correlation table, in file order."""

    old_code: tuple[str, ...]
    new_code: tuple[str, ...]
    share: tuple[float, ...]
    effective_date: tuple[dt.date, ...]

    def as_table(self) -> dict[str, np.ndarray]:
        """The knowledge base's extra table ``code_correlation``."""
        return {
            "old_code": np.array(self.old_code, dtype=object),
            "new_code": np.array(self.new_code, dtype=object),
            "share": np.array(self.share, dtype=np.float64),
            "effective_date": np.array([d.isoformat() for d in self.effective_date], dtype=object),
        }

    @classmethod
    def from_table(cls, table: Mapping[str, np.ndarray]) -> Correlation:
        return cls(tuple(str(c) for c in table["old_code"]), tuple(str(c) for c in table["new_code"]),
                   tuple(float(s) for s in table["share"]),
                   tuple(dt.date.fromisoformat(str(d)) for d in table["effective_date"]))

    def merged_with(self, newer: Correlation) -> Correlation:
        """This table with ``newer``'s rows replacing those of the same old codes."""
        replaced = set(newer.old_code)
        keep = [i for i, c in enumerate(self.old_code) if c not in replaced]
        rows = [(self.old_code[i], self.new_code[i], self.share[i], self.effective_date[i]) for i in keep]
        rows += list(zip(newer.old_code, newer.new_code, newer.share, newer.effective_date, strict=True))
        return Correlation(*(tuple(column) for column in zip(*rows, strict=True))) if rows else Correlation((), (), (), ())


def read_correlation(path: str | Path) -> Correlation:
    """Read and validate a code correlation table; every defect is reported with its file,
    row and column (``InputError``)."""
    path = Path(path)
    problems: list[Problem] = []
    rows = []
    for number, row in _read_rows(path, CORRELATION_COLUMNS):
        bad = False
        for column in ("old_code", "new_code"):
            if not _CODE.match(row[column]):
                problems.append(Problem(str(path), number, column, f"expected an {FIXED_WIDTH_CODES['hs_code']}-digit code; got {row[column]!r}"))
                bad = True
        share = _number(path, number, "share", row["share"], 0.0, 1.0, problems)
        date = _date(path, number, "effective_date", row["effective_date"], problems)
        if not bad and row["old_code"] == row["new_code"]:
            problems.append(Problem(str(path), number, "new_code", f"expected a code other than the old one; got {row['new_code']!r}"))
            bad = True
        if not bad and share is not None and date is not None:
            rows.append((number, row["old_code"], row["new_code"], share, date))
    seen: dict[tuple[str, str], int] = {}
    by_old: dict[str, list[tuple[int, float, dt.date]]] = defaultdict(list)
    for number, old, new, share, date in rows:
        if (old, new) in seen:
            problems.append(Problem(str(path), number, "new_code", f"{old} -> {new} already given on row {seen[old, new]}"))
        seen.setdefault((old, new), number)
        by_old[old].append((number, share, date))
    olds = set(by_old)
    for number, _, new, _, _ in rows:
        if new in olds:
            problems.append(Problem(str(path), number, "new_code",
                                    f"{new} is also retired in this table; expected each line old or new, not both: give the final successors"))
    for old, entries in by_old.items():
        total = sum(e[1] for e in entries)
        if abs(total - 1.0) > _SHARE_TOLERANCE:
            problems.append(Problem(str(path), entries[0][0], "share", f"the shares of {old} add up to {total:g}; expected 1"))
        if len({e[2] for e in entries}) > 1:
            problems.append(Problem(str(path), entries[0][0], "effective_date", f"the rows of {old} give several dates; expected one"))
    if problems:
        raise InputError(problems)
    return Correlation(tuple(r[1] for r in rows), tuple(r[2] for r in rows), tuple(r[3] for r in rows), tuple(r[4] for r in rows))


class Successors:
    """Reads successor lines as their predecessor while they have little history (module
    docstring). ``declared`` maps codes to their declarations in the knowledge base
    (``suggest_codes``; without it shares alone choose among several predecessors)."""

    def __init__(self, correlation: Correlation, declared: Mapping[str, float] | None = None):
        declared = declared or {}
        weight: dict[str, dict[str, float]] = defaultdict(dict)
        for old, new, share in zip(correlation.old_code, correlation.new_code, correlation.share, strict=True):
            weight[new][old] = share * declared.get(old, 1.0)
        self.predecessor = {new: min(olds, key=lambda o: (-olds[o], o)) for new, olds in weight.items()}

    def resolve(self, codes: np.ndarray, own_labelled: np.ndarray) -> np.ndarray:
        """``codes`` with each successor line having fewer than :data:`INHERIT_BELOW`
        inspected items of its own (``own_labelled``, per item) replaced by its predecessor."""
        stripped = pd.Series(codes, dtype="string").fillna("").str.strip()
        mapped = stripped.map(self.predecessor)
        inherit = mapped.notna().to_numpy() & (np.asarray(own_labelled) < INHERIT_BELOW)
        out = np.asarray(codes, dtype=object).copy()
        out[inherit] = mapped.to_numpy(dtype=object)[inherit]
        return out


@dataclass(frozen=True)
class RateSchedule:
    """Dated rates by code prefix (``rates.csv``)."""

    prefixes: tuple[str, ...]
    rates: tuple[str, ...]
    values: tuple[float, ...]
    effective_dates: tuple[dt.date, ...]

    def rate_at(self, rate: str, codes: np.ndarray, dates: np.ndarray) -> np.ndarray:
        """float64[n]: ``rate`` in force for each (code, date), NaN where none is given:
        the longest matching prefix, then the latest effective date on or before the date."""
        by_prefix: dict[str, list[tuple[dt.date, float]]] = defaultdict(list)
        for prefix, r, value, when in zip(self.prefixes, self.rates, self.values, self.effective_dates, strict=True):
            if r == rate:
                by_prefix[prefix].append((when, value))
        for entries in by_prefix.values():
            entries.sort()
        days = pd.to_datetime(pd.Series(dates)).dt.date.to_numpy()
        out = np.full(len(days), np.nan)
        for j, code in enumerate(str(c).strip() for c in codes):
            for length in range(min(len(code), 8), 1, -1):
                entries = by_prefix.get(code[:length])
                if entries is None:
                    continue
                i = bisect.bisect_right(entries, (days[j], math.inf))
                if i:
                    out[j] = entries[i - 1][1]
                    break
        return out


def read_rates(path: str | Path) -> RateSchedule:
    """Read and validate a rates table (``InputError`` naming file, row and column)."""
    path = Path(path)
    problems: list[Problem] = []
    rows = []
    for number, row in _read_rows(path, RATE_COLUMNS):
        ok = True
        if not _PREFIX.match(row["hs_code"]):
            problems.append(Problem(str(path), number, "hs_code", f"expected 2 to 8 digits; got {row['hs_code']!r}"))
            ok = False
        if row["rate"] not in RATES:
            problems.append(Problem(str(path), number, "rate", f"expected one of {', '.join(RATES)}; got {row['rate']!r}"))
            ok = False
        value = _number(path, number, "value", row["value"], 0.0, float("inf"), problems)
        date = _date(path, number, "effective_date", row["effective_date"], problems)
        if ok and value is not None and date is not None:
            rows.append((row["hs_code"], row["rate"], value, date))
    if problems:
        raise InputError(problems)
    return RateSchedule(*(tuple(column) for column in zip(*rows, strict=True))) if rows else RateSchedule((), (), (), ())


def apply_correlation(kb_dir: str | Path, path: str | Path, catalog_hash: str) -> int:
    """Publish a new version of the knowledge base holding the correlation table at ``path``
    (merged over any it held: rows of the same old codes are replaced), its counts and
    coefficients untouched; the version history names ``path``. Returns the version."""
    path = Path(path)
    correlation = read_correlation(path)
    current = kb.open_version(kb_dir, expected_catalog_hash=catalog_hash)
    if CORRELATION_TABLE in current.tables:
        correlation = Correlation.from_table(current.tables[CORRELATION_TABLE]).merged_with(correlation)
    dates = correlation.effective_date
    provenance = kb.Provenance(input_files=(str(path.resolve()),), date_from=min(dates, default=None),
                               date_to=current.provenance.date_to, n_items=0, n_labelled=0)
    return kb.amend(kb_dir, {CORRELATION_TABLE: correlation.as_table()}, provenance, catalog_hash,
                    expected_version=current.version)
