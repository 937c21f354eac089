"""Histories of many millions of items, built from one-million-item worlds laid end to end.

``sisam generate`` builds a world in memory (2.7 GB per million items), so a world of
several million items does not fit a modest machine in one piece (5 million: about 13.5
GB). A history of N million items is therefore N one-million-item worlds (``sisam generate
--items 1000000 --seed 100+w`` for w = 1..N) laid end to end, each world's declaration ids
and actor ids (importer, exporter, manufacturer, broker) prefixed with its two-digit number
so that worlds are distinct regions: the codes, countries, offices and rates are shared,
the traders are not. Patterns then grow about linearly with items, the pessimistic case for
an extrapolation (one larger world would repeat its traders' patterns more). The test items
are the worlds' test periods, likewise concatenated.

Layout under ``work``: ``worlds/wNN/`` (one world each, its ``truth.parquet`` removed: the
histories do not carry it) and ``hNm/{history,rectified,test}.parquet``. Worlds and
histories already there are reused, so that several benchmarks share them
(``benchmarks/bench_scale.py``, ``sisam bench scale``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: Items of each world a history is made of.
WORLD_ITEMS = 1_000_000
#: Columns whose values are prefixed with the world's number.
PREFIXED = ("declaration_id", "importer_id", "exporter_id", "manufacturer_id", "broker_id")
#: The files of a history, each the concatenation of the worlds' files of that name.
FILES = ("history", "rectified", "test")


def world_seed(w: int) -> int:
    """The ``sisam generate`` seed of world ``w`` (1-based)."""
    return 100 + w


def world_dir(work: Path, w: int) -> Path:
    return work / "worlds" / f"w{w:02d}"


def history_dir(work: Path, millions: int) -> Path:
    return work / f"h{millions}m"


def _prefixed(table: pa.Table, w: int) -> pa.Table:
    for name in PREFIXED:
        if name in table.column_names:
            column = pc.binary_join_element_wise(f"{w:02d}", table.column(name), "")
            table = table.set_column(table.column_names.index(name), name, column)
    return table


def _generate(out: Path, w: int) -> None:
    """One world, in a fresh process (its memory goes back when it ends)."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    command = [sys.executable, "-m", "sisam", "generate", "--items", str(WORLD_ITEMS), "--seed", str(world_seed(w)),
               "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"`{' '.join(command)}` failed ({done.returncode}): {done.stderr[-2000:]}")
    (out / "truth.parquet").unlink()


def build_histories(work: Path, sizes: list[int], say: Callable[[str], None] = print) -> dict[int, Path]:
    """The history folder of every size in ``sizes`` (millions of items), built under
    ``work`` from the worlds it lacks (module docstring); existing ones are kept."""
    for w in range(1, max(sizes, default=0) + 1):
        out = world_dir(work, w)
        if not (out / "history.parquet").exists():
            say(f"generating world {w} (seed {world_seed(w)}) in {out}")
            _generate(out, w)
    folders = {}
    for size in sizes:
        target = history_dir(work, size)
        folders[size] = target
        if (target / f"{FILES[-1]}.parquet").exists():
            continue
        target.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            writer = None
            for w in range(1, size + 1):
                table = _prefixed(pq.read_table(world_dir(work, w) / f"{name}.parquet"), w)
                if writer is None:
                    writer = pq.ParquetWriter(target / f"{name}.parquet.tmp", table.schema, compression="zstd")
                writer.write_table(table, row_group_size=131_072)
            writer.close()
            os.replace(target / f"{name}.parquet.tmp", target / f"{name}.parquet")
        say(f"history of {size} one-million-item worlds in {target}")
    return folders
