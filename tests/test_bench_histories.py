"""Histories of many worlds laid end to end (sisam.bench.histories): each world's ids and
actors prefixed with its number, files concatenated in world order, existing ones reused."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from sisam.bench.histories import build_histories, history_dir, world_dir


def _world(work, w: int) -> None:
    folder = world_dir(work, w)
    folder.mkdir(parents=True)
    for name in ("history", "rectified", "test"):
        pq.write_table(pa.table({"declaration_id": [f"D{name[0]}1", f"D{name[0]}2"], "item_no": [1, 1],
                                 "importer_id": ["I1", "I2"], "hs_code": ["84818010", "85171200"]}), folder / f"{name}.parquet")


def test_worlds_are_laid_end_to_end_with_their_traders_kept_apart(tmp_path):
    for w in (1, 2):
        _world(tmp_path, w)
    folders = build_histories(tmp_path, [1, 2], say=lambda _: None)
    assert folders == {1: history_dir(tmp_path, 1), 2: history_dir(tmp_path, 2)}
    two = pq.read_table(folders[2] / "history.parquet").to_pydict()
    assert two["declaration_id"] == ["01Dh1", "01Dh2", "02Dh1", "02Dh2"]
    assert two["importer_id"] == ["01I1", "01I2", "02I1", "02I2"]
    assert two["hs_code"] == ["84818010", "85171200"] * 2  # shared by every world
    assert pq.read_table(folders[1] / "test.parquet").column("declaration_id").to_pylist() == ["01Dt1", "01Dt2"]
    # an existing history is reused, not rebuilt
    stamp = (folders[2] / "history.parquet").stat().st_mtime_ns
    build_histories(tmp_path, [2], say=lambda _: None)
    assert (folders[2] / "history.parquet").stat().st_mtime_ns == stamp
