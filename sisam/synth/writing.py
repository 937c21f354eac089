"""From coded columns to the contract's tables, and onto disk all at once.

Strings are built once per distinct value (a dictionary per column) and gathered with
``pyarrow.compute.take``, so a million rows cost a few dictionary lookups, not a million
f-strings. Identifiers keep fixed widths with leading zeros (``declaration_id`` "24" +
8 digits, ``hs_code`` 8 digits).

The four tables are written into a temporary folder beside the output folder and renamed
into place only when all of them are complete, so a reader never sees a half-written table
(``os.replace`` is atomic per file on one file system). CSV follows ``sisam.tables``:
strings quoted, floats in their shortest round-trip form, dates as YYYY-MM-DD.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from sisam.synth.actors import INCOTERMS, Actors
from sisam.synth.geography import CURRENCIES, MODES, Geography
from sisam.synth.nomenclature import UNITS, Tariff
from sisam.synth.trade import (
    EPOCH_DAY,
    EX_TARIFFS,
    FX,
    PREFERENCES,
    REGIMES,
    RELATED,
    VALUATION,
    Trade,
)

PARQUET_ROW_GROUP_ROWS = 128 * 1024
_SYLLABLES = ("KO", "RA", "VEX", "TRON", "NA", "LI", "MAX", "ZEN", "DU", "SO", "PRI", "TEK", "VO",
              "LUX", "AR", "EL", "QUA", "MI", "TA", "GEN")


def _ids(prefix: str, n: int, width: int) -> pa.Array:
    numbers = pc.cast(pa.array(np.arange(n, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, width, "0"), "")


def _brand(i: int) -> str:
    k = len(_SYLLABLES)
    word = _SYLLABLES[i % k] + _SYLLABLES[(i // k) % k] + ("" if i < k * k else _SYLLABLES[(i // (k * k)) % k])
    return word.capitalize()


class Dictionaries:
    """The strings of every coded column (index = code)."""

    def __init__(self, tariff: Tariff, actors: Actors, geo: Geography):
        n_man = len(actors.man_country)
        self.n_manufacturers = n_man
        self.tariff = tariff
        self.columns: dict[str, pa.Array] = {
            "importer": _ids("IMP", actors.n_importers, 6),
            "exporter": _ids("EXP", actors.n_exporters, 6),
            "manufacturer": pa.concat_arrays([_ids("MFR", n_man, 6), _ids("EXP", actors.n_exporters, 6)]),
            "broker": _ids("BRK", len(actors.broker_weight), 4),
            "office": pa.array(actors.office_code.tolist(), pa.string()),
            "line": pa.array(tariff.code.tolist(), pa.string()),
            "origin": pa.array(geo.codes, pa.string()),
            "acquisition": pa.array(geo.codes, pa.string()),
            "related": pa.array(RELATED, pa.string()),
            "regime": pa.array(REGIMES, pa.string()),
            "pref": pa.array(PREFERENCES, pa.string()),
            "ex": pa.array(EX_TARIFFS, pa.string()),
            "unit": pa.array(UNITS, pa.string()),
            "incoterm": pa.array(INCOTERMS, pa.string()),
            "currency": pa.array(CURRENCIES, pa.string()),
            "mode": pa.array(MODES, pa.string()),
            "fx": pa.array(FX, pa.string()),
            "valuation": pa.array(VALUATION, pa.string()),
        }
        self.desc_keys = np.zeros(0, dtype=np.int64)
        self.desc_canonical = np.zeros(0, dtype=np.int64)

    def set_descriptions(self, keys: np.ndarray) -> None:
        """Write the strings of the description keys in use and canonicalise them.

        Two keys can print alike (the HS repeats a few subheading texts); the canonical
        code of a key is the index of its string among the distinct strings, so codes are
        equal exactly when the written strings are.
        """
        keys = np.unique(keys)
        n_man = self.n_manufacturers
        t = self.tariff
        block = n_man + 1
        texts = []
        for key in keys.tolist():
            if key >= t.n_lines * block:
                texts.append(t.heading_text[key - t.n_lines * block])
            else:
                line, man = divmod(key, block)
                model = f"{chr(65 + (line * 7 + man) % 26)}{chr(65 + (line + man * 3) % 26)}-{100 + (line * 31 + man * 17) % 900}"
                texts.append(f"{t.description[line]} - {_brand(man)} model {model}")
        encoded = pc.dictionary_encode(pa.array(texts, pa.string()))
        self.desc_keys = keys
        self.desc_canonical = encoded.indices.to_numpy().astype(np.int64)
        self.columns["desc"] = encoded.dictionary

    def canonical_descriptions(self, keys: np.ndarray) -> np.ndarray:
        return self.desc_canonical[np.searchsorted(self.desc_keys, keys)]

    def licences(self, numbers: np.ndarray) -> pa.Array:
        text = pc.binary_join_element_wise("LI", pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), 10, "0"), "")
        return pc.if_else(pa.array(numbers > 0), text, "")


def declaration_ids(trade: Trade) -> pa.Array:
    """"YY" of the registration year + an 8-digit sequence, one per declaration."""
    first = trade.decl_start[:-1]
    years = (EPOCH_DAY + trade.day[first]).astype("datetime64[Y]").astype(np.int64) + 1970
    yy = pc.cast(pa.array(years % 100), pa.string())
    seq = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, trade.n_declarations + 1)), pa.string()), 8, "0")
    return pc.binary_join_element_wise(pc.utf8_lpad(yy, 2, "0"), seq, "")


def contract_table(trade: Trade, rows: np.ndarray, values: dict[str, np.ndarray], dicts: Dictionaries,
                   decl_ids: pa.Array) -> pa.Table:
    """The contract's columns, in contract order, for ``rows`` of the trade with ``values``.

    ``values`` holds the coded fields of those rows (already restricted to ``rows``), with
    descriptions as canonical codes.
    """
    from sisam.contract import COLUMNS
    from sisam.synth.rules import FIELD_COLUMN

    idx = pa.array(rows)

    def take(column: str, codes: np.ndarray) -> pa.Array:
        return pc.take(dicts.columns[column], pa.array(codes))

    out: dict[str, pa.Array] = {
        "declaration_id": pc.take(decl_ids, pa.array(trade.decl[rows])),
        "item_no": pc.take(pa.array(trade.item_no), idx),
        "date": pa.array((trade.day[rows]).astype(np.int32) + int(EPOCH_DAY.astype(np.int64)), pa.int32()).cast(pa.date32()),
        "importer_id": take("importer", trade.importer[rows]),
        "broker_id": take("broker", trade.broker[rows]),
        "customs_office": take("office", trade.office[rows]),
    }
    for field, column in FIELD_COLUMN.items():
        if field == "licence":
            out[column] = dicts.licences(values[field])
        elif values[field].dtype == np.float64:
            out[column] = pa.array(values[field], pa.float64())
        else:
            out[column] = take(field, values[field])
    return pa.table({name: out[name] for name in COLUMNS})


def rates_table(tariff: Tariff) -> pa.Table:
    """The tariff's rates as legislation (``knowledge/legislation/rates.csv``'s columns,
    ``sisam.legislation.read_rates``): every line's duty (before any preference or
    ex-tariff), IPI, PIS and COFINS from the world's first day, and each dated change."""
    start = str(EPOCH_DAY.astype("datetime64[D]"))
    codes, names, values, dates = [], [], [], []
    for name, change in (("import_duty_rate", tariff.duty), ("ipi_rate", tariff.ipi), ("pis_rate", tariff.pis),
                         ("cofins_rate", tariff.cofins)):
        changed = np.flatnonzero(change.changed)
        on = str((EPOCH_DAY + change.day).astype("datetime64[D]"))
        codes += [*tariff.code.tolist(), *tariff.code[changed].tolist()]
        names += [name] * (tariff.n_lines + len(changed))
        values += [*change.before.tolist(), *change.after[changed].tolist()]
        dates += [start] * tariff.n_lines + [on] * len(changed)
    return pa.table({"hs_code": pa.array(codes, pa.string()), "rate": pa.array(names, pa.string()),
                     "value": pa.array(values, pa.float64()), "effective_date": pa.array(dates, pa.string())})


def write_world(tables: dict[str, pa.Table], out_dir: Path, file_format: str) -> list[Path]:
    """Write ``tables`` (name -> table) as ``out_dir/<name>.<format>``, all or nothing."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        staged = []
        for name, table in tables.items():
            path = temp / f"{name}.{file_format}"
            with open(path, "wb") as f:
                if file_format == "csv":
                    pa_csv.write_csv(table, f)
                else:
                    pq.write_table(table, f, row_group_size=PARQUET_ROW_GROUP_ROWS)
                f.flush()
                os.fsync(f.fileno())
            staged.append(path)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for path in staged:
            target = out_dir / path.name
            os.replace(path, target)
            written.append(target)
        if hasattr(os, "O_DIRECTORY"):
            fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return written
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(temp)
