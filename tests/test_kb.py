"""Knowledge base: bit-identical round trips, decay, integrity checks and crash safety.

The crash tests run real processes: a child calls ``update`` on a knowledge base and is
killed with SIGKILL at random moments; whatever the moment, the knowledge base must still
open, at the previous or the new version, with its content hash verified.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sisam import kb
from sisam.engine.counts import PatternCounts, merge
from sisam.errors import KnowledgeBaseError

REPO = Path(__file__).resolve().parents[1]
LABELS = (*(f"error_{i}" for i in range(30)), "any")
E = len(LABELS)
CATALOG = "catalog-hash-a"
FACTORS = {
    "importer_hs": kb.FactorMeta("importer_hs", ("importer", "hs_code"), (1, 4), 11),
    "origin_office": kb.FactorMeta("origin_office", ("origin", "office"), (1, 1), 2**64 - 5),
}


def random_counts(rng: np.random.Generator, n_patterns: int,
                  integer: bool = True) -> PatternCounts:
    """Counts shaped like real ones: most patterns seen once or twice, few inspected, errors
    on a few of those, each error with the "any" label too."""
    keys = np.unique(rng.integers(0, 2**64, n_patterns, dtype=np.uint64))
    p = keys.size
    N = rng.geometric(0.4, p).astype(np.float64)
    n = rng.binomial(N.astype(np.int64), 0.2).astype(np.float64)
    per_pattern = np.where(n > 0, rng.integers(0, 3, p), 0)
    err_ptr = np.zeros(p + 1, np.int64)
    np.cumsum(per_pattern, out=err_ptr[1:])
    # A pattern with errors has "any" last, and one specific error before it when m == 2.
    err_label = np.full(err_ptr[-1], E - 1, dtype=np.int16)
    two = per_pattern == 2
    err_label[err_ptr[:-1][two]] = rng.integers(0, E - 1, two.sum())
    err_k = rng.integers(1, 4, err_label.size).astype(np.float64)
    if not integer:
        n, N, err_k = n * 0.37, N * 0.37, err_k * 0.37
    return PatternCounts(keys, n, N, err_ptr, err_label, err_k)


def random_coefficients(rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    return {f: {"S": rng.choice([0.25, 5.0, 1000.0], E), "d": rng.choice([0.5, 2.0], E),
                "loo_loglik": -rng.random(E)} for f in FACTORS}


def network(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"dnet": rng.random(E)}


def provenance(name: str) -> kb.Provenance:
    return kb.Provenance((name,), dt.date(2024, 1, 1), dt.date(2024, 1, 31), 1000, 80)


def make_kb(path: Path, seed: int = 0, n_patterns: int = 3000, **options) -> dict:
    rng = np.random.default_rng(seed)
    world = {"counts": {f: random_counts(rng, n_patterns) for f in FACTORS},
             "coefficients": random_coefficients(rng), "network": network(rng)}
    kb.create(path, FACTORS, world["counts"], world["coefficients"], world["network"], LABELS,
              provenance("history.csv"), CATALOG, **options)
    return world


def assert_counts_identical(a: PatternCounts, b: PatternCounts) -> None:
    for field in PatternCounts._fields:
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype, field
        assert x.tobytes() == y.tobytes(), field


def writable(path: Path) -> Path:
    """Version files are published read-only (0444); tests that damage them undo that."""
    os.chmod(path, 0o644)
    return path


# --- round trip, update, decay -------------------------------------------------------------


def test_round_trip_is_bit_identical(tmp_path):
    rng = np.random.default_rng(1)
    counts = {"importer_hs": random_counts(rng, 2000, integer=False),
              "origin_office": PatternCounts.empty()}
    coefficients = random_coefficients(rng)
    # Values a careless store would normalise: -0.0, NaN, infinities, a subnormal.
    coefficients["importer_hs"]["loo_loglik"][:5] = [-0.0, np.nan, np.inf, -np.inf, 5e-324]
    nets = {"dnet": rng.random(E), "loo_loglik": rng.random(E)}
    number = kb.create(tmp_path / "kb", FACTORS, counts, coefficients, nets, LABELS,
                       provenance("a.csv"), CATALOG)
    loaded = kb.open_version(tmp_path / "kb", expected_catalog_hash=CATALOG)

    assert number == loaded.version == 1
    assert loaded.factors == FACTORS
    assert loaded.label_ids == LABELS
    for factor in FACTORS:
        assert_counts_identical(loaded.counts[factor], counts[factor])
        assert list(loaded.coefficients[factor]) == ["S", "d", "loo_loglik"]
        for name, values in coefficients[factor].items():
            assert loaded.coefficients[factor][name].tobytes() == values.tobytes()
    assert {k: v.tobytes() for k, v in loaded.network_coefficients.items()} == {
        k: v.tobytes() for k, v in nets.items()}
    record = loaded.record
    assert (record.parent_version, record.decay_factor, record.catalog_hash) == (None, 1.0, CATALOG)
    assert record.provenance == provenance("a.csv")
    assert record.n_patterns == counts["importer_hs"].n_patterns
    assert json.loads((tmp_path / "kb" / "CURRENT").read_text())["content_hash"] == \
        loaded.content_hash == record.content_hash


def test_extra_tables_round_trip_carry_over_and_amend(tmp_path):
    pairs = {"context": np.array(["8517", "85"], dtype=object),
             "code": np.array(["85176299", "85171300"], dtype=object),
             "k": np.array([3.0, 0.5]), "level": np.array([2, 3], dtype=np.int64),
             "key": np.array([2**64 - 1, 7], dtype=np.uint64)}
    plain = make_kb(tmp_path / "plain", seed=4)
    make_kb(tmp_path / "kb", seed=4, tables={"pairs": pairs})
    loaded = kb.open_version(tmp_path / "kb", expected_catalog_hash=CATALOG)
    assert list(loaded.tables) == ["pairs"] and list(loaded.tables["pairs"]) == list(pairs)
    for column, values in pairs.items():
        assert loaded.tables["pairs"][column].tolist() == values.tolist()
        assert loaded.tables["pairs"][column].dtype == values.dtype
    without = kb.open_version(tmp_path / "plain")
    assert without.tables == {} and without.content_hash != loaded.content_hash
    assert plain["counts"].keys() == loaded.counts.keys()
    # an update without tables carries them over; amend adds one and keeps the counts
    kb.update(tmp_path / "kb", {}, plain["coefficients"], plain["network"],
              provenance("day.csv"), CATALOG, half_life_days=None, days_elapsed=1)
    assert kb.open_version(tmp_path / "kb").tables["pairs"]["k"].tolist() == [3.0, 0.5]
    corr = {"old_code": np.array(["85171200"], dtype=object), "share": np.array([1.0])}
    number = kb.amend(tmp_path / "kb", {"correlation": corr}, provenance("corr.csv"), CATALOG)
    amended = kb.open_version(tmp_path / "kb", expected_catalog_hash=CATALOG)
    assert number == amended.version == 3 and sorted(amended.tables) == ["correlation", "pairs"]
    assert amended.record.provenance.input_files == ("corr.csv",)
    assert amended.record.parent_version == 2
    for factor in FACTORS:
        assert_counts_identical(amended.counts[factor], kb.open_version(tmp_path / "kb", 2).counts[factor])
    assert kb.info(tmp_path / "kb", verify=True)["extra_tables"] == {"correlation": 1, "pairs": 2}
    assert sorted(p.name for p in kb.export_parquet(tmp_path / "kb", tmp_path / "out").values())[:2] == [
        "coefficients.parquet", "errors.parquet"]
    assert (tmp_path / "out" / "extra_correlation.parquet").exists()
    with pytest.raises(ValueError, match="column 'bad'"):
        kb.amend(tmp_path / "kb", {"t": {"bad": np.zeros((2, 2))}}, provenance("x"), CATALOG)


def test_update_equals_create_from_merged_counts(tmp_path):
    world = make_kb(tmp_path / "a", seed=2)
    rng = np.random.default_rng(3)
    batch = {"importer_hs": random_counts(rng, 1500)}
    coefficients, nets = random_coefficients(rng), network(rng)
    factor = 0.5 ** (12 / 30)
    number = kb.update(tmp_path / "a", batch, coefficients, nets, provenance("day.csv"),
                       CATALOG, half_life_days=30, days_elapsed=12)
    merged = {"importer_hs": merge(world["counts"]["importer_hs"].scaled(factor),
                                   batch["importer_hs"]),
              "origin_office": world["counts"]["origin_office"].scaled(factor)}
    kb.create(tmp_path / "b", FACTORS, merged, coefficients, nets, LABELS,
              provenance("all.csv"), CATALOG)

    updated, rebuilt = kb.open_version(tmp_path / "a"), kb.open_version(tmp_path / "b")
    assert number == updated.version == 2
    for f in FACTORS:
        assert_counts_identical(updated.counts[f], rebuilt.counts[f])
    assert updated.content_hash == rebuilt.content_hash
    assert [r.version for r in updated.history] == [1, 2]
    assert updated.record.parent_version == 1
    assert updated.record.decay_factor == factor
    assert updated.record.provenance.input_files == ("day.csv",)
    # Coefficients fitted on version 1 must not be published on top of version 2.
    with pytest.raises(KnowledgeBaseError, match="is at version 2, expected 1"):
        kb.update(tmp_path / "a", batch, coefficients, nets, provenance("day.csv"), CATALOG,
                  half_life_days=30, days_elapsed=12, expected_version=1)


def test_decay_scales_old_counts_by_half_life(tmp_path):
    world = make_kb(tmp_path / "kb", seed=4)
    empty: dict[str, PatternCounts] = {}
    kb.update(tmp_path / "kb", empty, world["coefficients"], world["network"],
              provenance("none.csv"), CATALOG, half_life_days=10, days_elapsed=20)
    quarter = kb.open_version(tmp_path / "kb")
    kb.update(tmp_path / "kb", empty, world["coefficients"], world["network"],
              provenance("none.csv"), CATALOG, half_life_days=None, days_elapsed=20)
    undecayed = kb.open_version(tmp_path / "kb")
    for f in FACTORS:
        old = world["counts"][f]
        for field in ("n", "N", "err_k"):
            np.testing.assert_array_equal(getattr(quarter.counts[f], field),
                                          getattr(old, field) * 0.25)
        assert_counts_identical(undecayed.counts[f], quarter.counts[f])
    assert [r.decay_factor for r in undecayed.history] == [1.0, 0.25, 1.0]


# --- integrity -----------------------------------------------------------------------------


def test_flipped_bytes_are_detected(tmp_path):
    make_kb(tmp_path / "kb", seed=5, n_patterns=20000)
    path = writable(tmp_path / "kb" / "versions" / "000001.duckdb")
    pristine = path.read_bytes()
    size = len(pristine)
    for position in np.linspace(0, size - 1, 9).astype(int):
        damaged = bytearray(pristine)
        damaged[position] ^= 0x40
        path.write_bytes(bytes(damaged))
        with pytest.raises(KnowledgeBaseError) as caught:
            kb.open_version(tmp_path / "kb")
        message = str(caught.value)
        assert str(path) in message and "sisam learn" in message, message


def test_truncated_file_is_detected_and_an_earlier_version_restores(tmp_path):
    world = make_kb(tmp_path / "kb", seed=6)
    for _ in range(2):
        kb.update(tmp_path / "kb", {}, world["coefficients"], world["network"],
                  provenance("empty.csv"), CATALOG, half_life_days=None, days_elapsed=1)
    versions = tmp_path / "kb" / "versions"
    current = writable(versions / "000003.duckdb")
    size = current.stat().st_size
    os.truncate(current, size // 2)
    with pytest.raises(KnowledgeBaseError, match=rf"{size // 2} bytes, expected {size}.*"
                       r"set_current\(KB_DIR, N\) \(on disk: \[1, 2\]\)"):
        kb.open_version(tmp_path / "kb")
    # An older version has no published size to compare with: DuckDB itself refuses it.
    oldest = writable(versions / "000001.duckdb")
    os.truncate(oldest, oldest.stat().st_size - 4096)
    with pytest.raises(KnowledgeBaseError, match=r"000001.duckdb: DuckDB cannot read"):
        kb.open_version(tmp_path / "kb", version=1)
    kb.set_current(tmp_path / "kb", 2)
    assert kb.open_version(tmp_path / "kb").version == 2


def test_content_hash_detects_edited_contents(tmp_path):
    make_kb(tmp_path / "kb", seed=7)
    path = writable(tmp_path / "kb" / "versions" / "000001.duckdb")
    expected = kb.open_version(tmp_path / "kb").content_hash
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE patterns SET n_declared = n_declared + 1 "
                    "WHERE key = (SELECT min(key) FROM patterns)")
    # Pretend the size still matches, as it would for an edit of the same length.
    pointer = json.loads((tmp_path / "kb" / "CURRENT").read_text())
    pointer["file_bytes"] = path.stat().st_size
    (tmp_path / "kb" / "CURRENT").write_text(json.dumps(pointer))
    with pytest.raises(KnowledgeBaseError,
                       match=rf"content hash recomputed is [0-9a-f]{{64}}, expected {expected}"):
        kb.open_version(tmp_path / "kb")
    assert kb.open_version(tmp_path / "kb", verify=False).content_hash == expected


def test_catalog_mismatch_is_detected(tmp_path):
    world = make_kb(tmp_path / "kb", seed=8)
    with pytest.raises(KnowledgeBaseError,
                       match=f"catalog {CATALOG}, expected catalog-hash-b"):
        kb.open_version(tmp_path / "kb", expected_catalog_hash="catalog-hash-b")
    with pytest.raises(KnowledgeBaseError, match="catalog-hash-b"):
        kb.update(tmp_path / "kb", {}, world["coefficients"], world["network"],
                  provenance("x.csv"), "catalog-hash-b", half_life_days=None, days_elapsed=0)
    assert kb.open_version(tmp_path / "kb").version == 1


def test_missing_knowledge_base_and_version_are_reported(tmp_path):
    with pytest.raises(KnowledgeBaseError, match="no knowledge base"):
        kb.open_version(tmp_path)
    with pytest.raises(KnowledgeBaseError, match="no knowledge base"):
        kb.update(tmp_path / "nowhere", {}, {}, {}, provenance("x"), CATALOG,
                  half_life_days=None, days_elapsed=0)
    assert not (tmp_path / "nowhere").exists()
    make_kb(tmp_path / "kb")
    with pytest.raises(KnowledgeBaseError, match=r"version 7 is not on disk.*\[1\]"):
        kb.open_version(tmp_path / "kb", version=7)


def test_invalid_counts_are_refused(tmp_path):
    rng = np.random.default_rng(9)
    good = random_counts(rng, 100)
    unsorted = good._replace(keys=good.keys[::-1].copy())
    counts = {"importer_hs": unsorted, "origin_office": good}
    with pytest.raises(ValueError, match="'importer_hs': keys are not sorted"):
        kb.create(tmp_path / "kb", FACTORS, counts, random_coefficients(rng), network(rng),
                  LABELS, provenance("x"), CATALOG)
    with pytest.raises(ValueError, match="missing \\['dnet'\\]"):
        kb.create(tmp_path / "kb", FACTORS, {f: good for f in FACTORS},
                  random_coefficients(rng), {"net": rng.random(E)}, LABELS,
                  provenance("x"), CATALOG)


# --- publishing, pruning, overwriting ------------------------------------------------------


def test_create_refuses_an_existing_or_foreign_directory(tmp_path):
    make_kb(tmp_path / "kb")
    with pytest.raises(KnowledgeBaseError, match=r"already holds a knowledge base \(version 1\)"):
        make_kb(tmp_path / "kb")
    make_kb(tmp_path / "kb", seed=1, overwrite=True)
    replaced = kb.open_version(tmp_path / "kb")
    assert replaced.version == 2 and len(replaced.history) == 1
    assert kb.open_version(tmp_path / "kb", version=1).version == 1
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("mine")
    with pytest.raises(KnowledgeBaseError, match=r"holds other files \(notes.txt\)"):
        make_kb(tmp_path / "home")


def test_old_versions_are_pruned_and_a_reader_holding_one_keeps_working(tmp_path):
    world = make_kb(tmp_path / "kb", seed=10)
    v1 = kb.open_version(tmp_path / "kb")
    auditor = duckdb.connect(str(v1.path), read_only=True)
    for _ in range(3):
        kb.update(tmp_path / "kb", {}, world["coefficients"], world["network"],
                  provenance("empty.csv"), CATALOG, half_life_days=None, days_elapsed=1,
                  keep_versions=2)
    assert sorted(p.name for p in (tmp_path / "kb" / "versions").iterdir()) == [
        "000003.duckdb", "000004.duckdb"]
    # The pruned file is gone from the directory, not from whoever had it open.
    assert auditor.execute("SELECT count(*) FROM patterns").fetchone()[0] == sum(
        c.n_patterns for c in world["counts"].values())
    auditor.close()
    assert_counts_identical(v1.counts["importer_hs"], world["counts"]["importer_hs"])
    with pytest.raises(KnowledgeBaseError, match=r"version 1 is not on disk.*\[3, 4\]"):
        kb.open_version(tmp_path / "kb", version=1)


def test_leftovers_are_removed_and_unpublished_numbers_are_not_reused(tmp_path):
    world = make_kb(tmp_path / "kb", seed=11)
    versions = tmp_path / "kb" / "versions"
    # What a writer killed at various points leaves: a temporary file with its log and
    # spill folder, a temporary pointer, and a complete but unpublished version 2.
    (versions / ".tmp-000002-999.duckdb").write_bytes(b"half written")
    (versions / ".tmp-000002-999.duckdb.wal").write_bytes(b"log")
    (versions / ".tmp-000002-999.duckdb.tmp").mkdir()
    (tmp_path / "kb" / ".tmp-CURRENT-999").write_text("{")
    shutil.copy(versions / "000001.duckdb", versions / "000002.duckdb")
    assert kb.open_version(tmp_path / "kb").version == 1
    number = kb.update(tmp_path / "kb", {}, world["coefficients"], world["network"],
                       provenance("empty.csv"), CATALOG, half_life_days=None, days_elapsed=1)
    assert number == 3
    assert sorted(p.name for p in versions.iterdir()) == [
        "000001.duckdb", "000002.duckdb", "000003.duckdb"]
    assert not [p for p in (tmp_path / "kb").iterdir() if p.name.startswith(".tmp-")]
    assert kb.open_version(tmp_path / "kb").record.parent_version == 1


def test_failed_write_leaves_the_previous_version_current(tmp_path, monkeypatch):
    world = make_kb(tmp_path / "kb", seed=17)

    def disk_full(path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(kb, "_fsync", disk_full)
    with pytest.raises(KnowledgeBaseError, match=r"No space left.*previous version is intact"):
        kb.update(tmp_path / "kb", {}, world["coefficients"], world["network"],
                  provenance("x.csv"), CATALOG, half_life_days=None, days_elapsed=0)
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "kb" / "versions").iterdir()) == ["000001.duckdb"]
    assert kb.open_version(tmp_path / "kb").version == 1


def test_info_and_parquet_export(tmp_path):
    world = make_kb(tmp_path / "kb", seed=12)
    total = sum(c.n_patterns for c in world["counts"].values())
    entries = sum(c.err_label.size for c in world["counts"].values())
    facts = kb.info(tmp_path / "kb", verify=True)
    assert (facts["version"], facts["n_patterns"], facts["n_error_entries"]) == (1, total, entries)
    assert facts["bytes_per_pattern"] == facts["file_bytes"] / total
    assert facts["tables"]["errors"]["rows"] == entries
    assert {f: v["n_patterns"] for f, v in facts["factors"].items()} == {
        f: c.n_patterns for f, c in world["counts"].items()}
    assert facts["coefficients"]["importer_hs"]["S"]["max"] == \
        world["coefficients"]["importer_hs"]["S"].max()
    assert facts["history"][0]["input_files"] == ["history.csv"]
    json.dumps(facts)  # JSON-ready, for `sisam kb info --json`

    written = kb.export_parquet(tmp_path / "kb", tmp_path / "out")
    patterns = pq.read_table(written["patterns"])
    assert patterns.num_rows == total and str(patterns.schema.field("key").type) == "uint64"
    first = sorted(FACTORS)[0]
    exported_keys = patterns.filter(pc.equal(patterns["factor"], first))["key"].to_numpy()
    np.testing.assert_array_equal(exported_keys, world["counts"][first].keys)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["content_hash"] == facts["content_hash"]

    kb.update(tmp_path / "kb", {}, world["coefficients"], world["network"],
              provenance("empty.csv"), CATALOG, half_life_days=None, days_elapsed=1)
    older = kb.info(tmp_path / "kb", version=1)
    assert (older["version"], older["current_version"], older["versions_on_disk"]) == (1, 2, [1, 2])


def test_compare_finds_identical_contents_and_every_kind_of_difference(tmp_path):
    pairs = {"code": np.array(["85176299", "85171300"], dtype=object), "k": np.array([3.0, 0.5])}
    world = make_kb(tmp_path / "a", seed=5, tables={"pairs": pairs})
    make_kb(tmp_path / "b", seed=5, tables={"pairs": pairs})  # same contents, other provenance time
    same = kb.compare(tmp_path / "a", tmp_path / "b")
    assert same["identical"] and same["same_rows"] and same["a"]["content_hash"] == same["b"]["content_hash"]
    assert same["tables"]["patterns"] == {"rows": [6000, 6000], "only_a": 0, "only_b": 0, "differing": 0,
                                          "max_abs_difference": {"n_labelled": None, "n_declared": None}}
    assert same["tables"]["extra_pairs"] == {"rows": [2, 2], "only_a": 0, "only_b": 0}

    # c: one coefficient a last bit away, one pattern's N changed, one pattern dropped (with
    # its error entries), one extra row changed
    counts = dict(world["counts"])
    c = counts["importer_hs"]
    n_declared = c.N.copy()
    n_declared[0] += 1.0
    dropped = c.n_patterns - 1
    entries = c.err_ptr[-1] - c.err_ptr[dropped]
    counts["importer_hs"] = PatternCounts(c.keys[:dropped], c.n[:dropped], n_declared[:dropped],
                                          c.err_ptr[:-1], c.err_label[:c.err_ptr[dropped]], c.err_k[:c.err_ptr[dropped]])
    coefficients = {f: {k: v.copy() for k, v in cs.items()} for f, cs in world["coefficients"].items()}
    coefficients["origin_office"]["d"][3] = np.nextafter(coefficients["origin_office"]["d"][3], np.inf)
    kb.create(tmp_path / "c", FACTORS, counts, coefficients, world["network"], LABELS, provenance("h.csv"),
              CATALOG, tables={"pairs": {**pairs, "k": np.array([3.0, 0.25])}})
    found = kb.compare(tmp_path / "a", tmp_path / "c")
    assert not found["identical"] and found["a"]["content_hash"] != found["b"]["content_hash"]
    patterns = found["tables"]["patterns"]
    assert (patterns["only_a"], patterns["only_b"], patterns["differing"]) == (1, 0, 1)
    assert patterns["max_abs_difference"] == {"n_labelled": None, "n_declared": 1.0}
    assert (found["tables"]["errors"]["only_a"], found["tables"]["errors"]["differing"]) == (entries, 0)
    d = found["tables"]["coefficients"]
    assert d["differing"] == 1 and 0 < d["max_abs_difference"]["d"] < 1e-15 and d["max_abs_difference"]["S"] is None
    assert found["tables"]["extra_pairs"] == {"rows": [2, 2], "only_a": 1, "only_b": 1}
    assert found["tables"]["labels"]["differing"] == 0
    json.dumps(found)  # JSON-ready, for `sisam kb diff --json`

    # what rows do not show: another catalog, the same rows in another order, a zero's sign
    kb.create(tmp_path / "d", FACTORS, world["counts"], world["coefficients"], world["network"], LABELS,
              provenance("h.csv"), "catalog-hash-b", tables={"pairs": {c: v[::-1] for c, v in pairs.items()}})
    reordered = kb.compare(tmp_path / "a", tmp_path / "d")
    assert reordered["same_rows"] and not reordered["identical"]
    assert reordered["b"]["catalog_hash"] == "catalog-hash-b"
    # two empty extra tables with other columns differ; so do a column's types
    kb.amend(tmp_path / "b", {"empty": {"x": np.zeros(0)}}, provenance("x.csv"), CATALOG)
    kb.amend(tmp_path / "d", {"empty": {"y": np.zeros(0)}}, provenance("x.csv"), "catalog-hash-b")
    columns = kb.compare(tmp_path / "b", tmp_path / "d")["tables"]["extra_empty"]
    assert columns["columns"] == [["x DOUBLE"], ["y DOUBLE"]]
    assert not kb.compare(tmp_path / "b", tmp_path / "d")["same_rows"]

    # equal infinities are no difference, and the JSON stays valid JSON
    for name in ("e", "f"):
        infinite = {f: {k: v.copy() for k, v in cs.items()} for f, cs in world["coefficients"].items()}
        infinite["importer_hs"]["S"][0] = np.inf
        kb.create(tmp_path / name, FACTORS, world["counts"], infinite, world["network"], LABELS, provenance("h.csv"), CATALOG)
    both_infinite = kb.compare(tmp_path / "e", tmp_path / "f")
    assert both_infinite["identical"] and both_infinite["tables"]["coefficients"]["max_abs_difference"]["S"] is None
    json.dumps(both_infinite, allow_nan=False)

    # versions of one knowledge base; a table in one version only
    kb.amend(tmp_path / "a", {"extra": {"x": np.array([1.0])}}, provenance("x.csv"), CATALOG)
    amended = kb.compare(tmp_path / "a", tmp_path / "a", version_a=1)
    assert amended["tables"]["extra_extra"] == {"only_in": "b"} and not amended["identical"]
    assert amended["tables"]["patterns"]["differing"] == 0


def test_kb_diff_command_exit_status(tmp_path):
    from click.testing import CliRunner

    from sisam.cli import cli

    make_kb(tmp_path / "a", seed=6)
    make_kb(tmp_path / "b", seed=6)
    make_kb(tmp_path / "c", seed=7)
    runner = CliRunner()
    same = runner.invoke(cli, ["kb", "diff", str(tmp_path / "a"), str(tmp_path / "b")])
    assert same.exit_code == 0 and "identical contents" in same.output
    other = runner.invoke(cli, ["kb", "diff", str(tmp_path / "a"), str(tmp_path / "c"), "--json"])
    assert other.exit_code == 1 and json.loads(other.output)["identical"] is False
    missing = runner.invoke(cli, ["kb", "diff", str(tmp_path / "a"), str(tmp_path / "a"), "--version-b", "9"])
    assert missing.exit_code == 2 and "version 9 is not on disk" in missing.output  # could not compare: not 1
    (tmp_path / "empty").mkdir()
    assert runner.invoke(cli, ["kb", "diff", str(tmp_path / "a"), str(tmp_path / "empty")]).exit_code == 2


# --- concurrency and crashes, with real processes --------------------------------------------

CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, {repo!r})
    sys.path.insert(0, {tests!r})
    from test_kb import CATALOG, provenance, random_coefficients, random_counts, network
    from sisam import kb
    rng = np.random.default_rng(int(sys.argv[2]))
    batch = {{"importer_hs": random_counts(rng, {n_patterns}, integer=False)}}
    coefficients, nets = random_coefficients(rng), network(rng)
    print("ready", flush=True)
    kb.update(sys.argv[1], batch, coefficients, nets, provenance("batch.csv"), CATALOG,
              half_life_days=30.0, days_elapsed=1.0)
    print("done", flush=True)
""")


@contextmanager
def writer(kb_dir: Path, seed: int, n_patterns: int = 400_000) -> Iterator[subprocess.Popen]:
    """A child process updating ``kb_dir``, yielded once it is about to call update;
    killed on exit if still running."""
    code = CHILD.format(repo=str(REPO), tests=str(REPO / "tests"), n_patterns=n_patterns)
    with subprocess.Popen([sys.executable, "-c", code, str(kb_dir), str(seed)],
                          stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout.readline().strip() == "ready"
            yield child
        finally:
            if child.poll() is None:
                child.kill()


def test_reader_and_second_writer_during_an_update(tmp_path):
    world = make_kb(tmp_path / "kb", seed=13)
    with writer(tmp_path / "kb", seed=1) as child:
        started = time.monotonic()
        # A reader is never blocked: it gets the version published before the update.
        reader = kb.open_version(tmp_path / "kb")
        reader_seconds = time.monotonic() - started
        # A second writer is refused at once, naming the process that holds the lock.
        with pytest.raises(KnowledgeBaseError, match=rf"process {child.pid} holds .*LOCK"):
            kb.update(tmp_path / "kb", {}, world["coefficients"], world["network"],
                      provenance("x.csv"), CATALOG, half_life_days=None, days_elapsed=0)
        still_running = child.poll() is None
        assert child.wait(timeout=60) == 0
    assert still_running, "the update finished before the reader: enlarge the child's batch"
    assert reader.version == 1 and reader_seconds < 5
    assert kb.open_version(tmp_path / "kb").version == 2


def test_update_killed_at_any_moment_leaves_a_readable_knowledge_base(tmp_path):
    world = make_kb(tmp_path / "kb", seed=14)
    with writer(tmp_path / "kb", seed=2) as child:
        started = time.monotonic()
        assert child.wait(timeout=60) == 0
        duration = time.monotonic() - started
    rng = np.random.default_rng(15)
    published = 0
    # One kill in each sixth of [0, 1.2 x duration]: early, mid-write, around publication.
    for delay in (np.arange(6) + rng.uniform(size=6)) / 6 * 1.2 * duration:
        before = kb.open_version(tmp_path / "kb").version
        with writer(tmp_path / "kb", seed=int(rng.integers(1000))) as child:
            time.sleep(delay)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
        after = kb.open_version(tmp_path / "kb")  # verifies the content hash
        assert after.version in (before, before + 1), (delay, before, after.version)
        published += after.version == before + 1
    # Whatever was left behind, the next writer cleans it up and publishes.
    number = kb.update(tmp_path / "kb", {}, world["coefficients"], world["network"],
                       provenance("after.csv"), CATALOG, half_life_days=None, days_elapsed=0)
    assert kb.open_version(tmp_path / "kb").version == number
    leftovers = [p.name for d in (tmp_path / "kb", tmp_path / "kb" / "versions")
                 for p in d.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []
    print(f"update takes {duration:.2f} s; {published} of 6 killed updates had published")


def test_lock_held_by_another_process_refuses_writers(tmp_path):
    world = make_kb(tmp_path / "kb", seed=16)
    with subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
         str(tmp_path / "kb" / "LOCK")], stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout.readline().strip() == "held"
            with pytest.raises(KnowledgeBaseError, match="another update of this knowledge base"):
                kb.update(tmp_path / "kb", {}, world["coefficients"], world["network"],
                          provenance("x.csv"), CATALOG, half_life_days=None, days_elapsed=0)
        finally:
            holder.kill()
    # The kernel dropped the dead holder's lock.
    with open(tmp_path / "kb" / "LOCK") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_read_write_session_on_a_version_is_reported(tmp_path):
    make_kb(tmp_path / "kb", seed=18)
    path = writable(tmp_path / "kb" / "versions" / "000001.duckdb")
    with subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
         "print('open', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True) as auditor:
        try:
            assert auditor.stdout.readline().strip() == "open"
            with pytest.raises(KnowledgeBaseError, match=r"holds it read-write.*duckdb -readonly"):
                kb.open_version(tmp_path / "kb")
        finally:
            auditor.kill()
