"""The knowledge base: versioned, crash-safe, auditable storage of what sisam has learnt.

What sisam learns is counts (hpb.md, "Counts") plus the coefficients chosen by leave-one-out
(hpb.md, "Choosing the coefficients"); probabilities are recomputed from them at scoring
time. This module stores exactly that, in DuckDB files that an auditor can query with any
DuckDB client, and it is the only module of sisam that imports ``duckdb``.

Layout of a knowledge base directory ``KB_DIR``::

    KB_DIR/CURRENT                 JSON pointer: {"version", "file", "content_hash", ...}
    KB_DIR/LOCK                    held (fcntl) by the one process allowed to write
    KB_DIR/versions/000001.duckdb  one complete, immutable DuckDB file per version
    KB_DIR/versions/000002.duckdb

Why one file per version. DuckDB lets one process write a file or many processes read it,
never both: a scorer could not open a file that ``sisam learn`` is writing. So a version is
never modified once published. A writer builds the next version under a temporary name
(``versions/.tmp-...``), checkpoints and fsyncs it, renames it to its final name, and only
then replaces ``CURRENT`` with ``os.replace`` (atomic on POSIX). Consequences, step by step:

* killed while writing the temporary file: ``CURRENT`` still names the previous version; the
  temporary file is ignored by readers and deleted by the next writer;
* killed after the rename but before ``CURRENT`` moved: the new file is complete but
  unpublished; readers keep using the previous version; the next writer numbers its version
  after it (numbers are never reused) and pruning removes it in due course;
* killed after ``CURRENT`` moved: the new version is published; pruning of old versions is
  finished by the next writer.

Readers never take a lock: a scorer started during an update reads the previous ``CURRENT``
and opens that file read-only. A reader that already opened a version keeps it: files are
immutable, ``open_version`` loads everything into memory, and on POSIX a pruned file stays
readable by whoever had it open. Only the last ``keep_versions`` files are kept (default
:data:`DEFAULT_KEEP_VERSIONS`), pruned after ``CURRENT`` moved. Two writers are refused: the
second finds ``LOCK`` taken and raises :class:`~sisam.errors.KnowledgeBaseError`.

Version files are also made read-only on disk (mode 0444), so that an auditor (other than
root) who forgets ``-readonly`` gets an error instead of locking the file against scorers.

Schema of a version file (query it with ``duckdb -readonly KB_DIR/versions/000007.duckdb``):

``labels(label SMALLINT, id VARCHAR)``
    label index -> error id; the catalog's error types in contract order, then ``any``.
``factors(factor VARCHAR, attributes VARCHAR[], level_counts SMALLINT[], salt UBIGINT,
n_patterns BIGINT, n_error_entries BIGINT)``
    one row per HPB factor: its attributes, their numbers of generalisation levels (the
    lattice, see ``sisam.engine.lattice``) and the salt mixed into its pattern keys.
``patterns(factor VARCHAR, key UBIGINT, n_labelled DOUBLE, n_declared DOUBLE)``
    one row per pattern, ordered by factor then key: ``n_labelled`` is the n of hpb.md
    (inspected items matching the pattern), ``n_declared`` its N (all declarations).
    (DuckDB identifiers ignore case, so the columns cannot be called ``n`` and ``N``.)
    Counts are doubles because decay scales them; fresh counts are whole numbers.
``errors(factor VARCHAR, key UBIGINT, label SMALLINT, k DOUBLE)``
    sparse error counts, ordered by factor, key, label: only the (pattern, label) pairs
    with k > 0 are stored, most patterns have none. Join on (factor, key).
``coefficients(factor VARCHAR, label SMALLINT, "S" DOUBLE, "d" DOUBLE, ...)``
    per factor and label the smoothing coefficients S_e and d_e (hpb.md, Eq. 3-5), plus
    any further per-label figures the learner stores (e.g. ``loo_loglik``).
``network_coefficients(label SMALLINT, dnet DOUBLE, ...)``
    per label the calibration of the combination of factors (architecture notes, "HPB").
``extra_<name>(...)``
    tables that other learners keep beside the counts (pair counts of suggested codes,
    recovered amounts, the code correlation, ...), one DuckDB table each, with the columns
    they were given (DOUBLE, BIGINT, UBIGINT or VARCHAR) in the order given; see
    :data:`Tables`. What they mean is their owner's business; this module stores, hashes,
    carries them from version to version and exports them.
``versions(version, created_at, parent_version, catalog_hash, content_hash, format,
sisam_version, duckdb_version, input_files, date_from, date_to, n_items, n_labelled,
half_life_days, days_elapsed, decay_factor, n_patterns)``
    the history of the knowledge base up to and including this file's version (the last
    row): what each version was learnt from and how old knowledge was decayed. Times UTC.

For example, the patterns where an error type was caught most often::

    SELECT p.factor, p.key, p.n_labelled, e.k, e.k / p.n_labelled AS rate
    FROM patterns p JOIN errors e USING (factor, key) JOIN labels l USING (label)
    WHERE l.id = 'hs_code' ORDER BY e.k DESC LIMIT 20;

Storage cost, measured by ``benchmarks/bench_kb.py`` on ten million patterns: 9.9 bytes per
pattern with whole-number counts, 15.9 once decay made them fractional. Sorted keys of
well-mixed 64-bit hashes bit-pack to about 46 bits (5.8 bytes); whole counts compress to
about a byte each (ALP), decayed ones to up to 5.7; the repeated factor name and the
sparse error table add under half a byte.

The content hash is a sha256 over a canonical serialisation (see :func:`_content_hash`) of
the catalog hash, the labels, the factors, the counts in factor then key order, all the
coefficients and the extra tables; not of the history, which holds it. It is written in ``versions`` and in
``CURRENT`` and recomputed on load, so a version whose contents changed after publication
(edited, swapped, or damaged in a way DuckDB's own block checksums miss) is refused with
the expected and found hashes. Two versions with equal contents have equal hashes whatever
DuckDB's physical layout, so an update can be compared with a rebuild.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import hashlib
import itertools
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import duckdb
import numpy as np
import pyarrow as pa

from sisam import __version__
from sisam.engine.counts import PatternCounts, merge
from sisam.errors import KnowledgeBaseError

log = logging.getLogger("sisam.kb")

#: Layout of the tables and of the content hash; a reader refuses files of another format.
FORMAT = 1
#: Items per batch of ``sisam score --stream-kb``: each batch reads the version file once,
#: so batches are large; ``sisam kb info`` reports the memory a batch needs.
STREAM_BATCH_ROWS = 1_000_000
#: Versions kept on disk by default: the current one and the two before it.
DEFAULT_KEEP_VERSIONS = 3

_CURRENT = "CURRENT"
_LOCK = "LOCK"
_VERSIONS = "versions"
# Everything a writer creates before publishing starts with this prefix, so that readers
# never mistake it for a version and the next writer can delete it.
_TMP = ".tmp-"
_VERSION_NAME = re.compile(r"^(\d{6,})\.duckdb$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REQUIRED_COEFFICIENTS = ("S", "d")
_REQUIRED_NETWORK = ("dnet",)
_EXTRA = "extra_"
_EXTRA_TYPES = {"f8": "DOUBLE", "i8": "BIGINT", "u8": "UBIGINT", "str": "VARCHAR"}

#: Extra tables of a version: table name -> column name -> 1-d array (float64, int64,
#: uint64, or Python strings as an object or unicode array), all columns of a table of the
#: same length. Names are SQL identifiers; columns keep the order given.
Tables = Mapping[str, Mapping[str, np.ndarray]]

# A reader that finds the file CURRENT named already pruned (two updates published while it
# was starting) reads CURRENT again; more than this many misses means something else is wrong.
_OPEN_ATTEMPTS = 3


@dataclass(frozen=True)
class FactorMeta:
    """What a factor's pattern keys mean: its attributes, their numbers of generalisation
    levels before the wildcard (``Lattice.level_counts``) and the salt of its keys."""

    name: str
    attributes: tuple[str, ...]
    level_counts: tuple[int, ...]
    salt: int


@dataclass(frozen=True)
class Provenance:
    """What one learning run read: input files, the declaration dates they cover and how
    many items (all, and labelled, i.e. inspected) it counted."""

    input_files: tuple[str, ...] = ()
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    n_items: int = 0
    n_labelled: int = 0


@dataclass(frozen=True)
class VersionRecord:
    """One row of the ``versions`` table: how a version came to be.

    ``decay_factor`` is what the parent's counts were multiplied by before the batch was
    added: ``0.5 ** (days_elapsed / half_life_days)``, 1.0 without decay or for a creation.
    """

    version: int
    created_at: dt.datetime
    parent_version: int | None
    catalog_hash: str
    content_hash: str
    format: int
    sisam_version: str
    duckdb_version: str
    provenance: Provenance
    half_life_days: float | None
    days_elapsed: float | None
    decay_factor: float
    n_patterns: int

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready values (ISO dates), for ``sisam kb info``."""
        p = self.provenance
        return {
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "parent_version": self.parent_version,
            "catalog_hash": self.catalog_hash,
            "content_hash": self.content_hash,
            "format": self.format,
            "sisam_version": self.sisam_version,
            "duckdb_version": self.duckdb_version,
            "input_files": list(p.input_files),
            "date_from": p.date_from.isoformat() if p.date_from else None,
            "date_to": p.date_to.isoformat() if p.date_to else None,
            "n_items": p.n_items,
            "n_labelled": p.n_labelled,
            "half_life_days": self.half_life_days,
            "days_elapsed": self.days_elapsed,
            "decay_factor": self.decay_factor,
            "n_patterns": self.n_patterns,
        }


@dataclass(frozen=True, eq=False)
class KnowledgeBaseVersion:
    """One version of a knowledge base, loaded in memory.

    ``counts[factor]`` are the factor's pattern counts; ``coefficients[factor][name]`` and
    ``network_coefficients[name]`` are float64 arrays indexed by label (``label_ids``);
    ``history`` is the provenance of every version up to this one, this one last;
    ``tables`` the extra tables (:data:`Tables`), strings as object arrays.
    """

    version: int
    path: Path
    factors: dict[str, FactorMeta]
    counts: dict[str, PatternCounts]
    coefficients: dict[str, dict[str, np.ndarray]]
    network_coefficients: dict[str, np.ndarray]
    label_ids: tuple[str, ...]
    history: tuple[VersionRecord, ...]
    content_hash: str
    catalog_hash: str
    tables: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)

    @property
    def record(self) -> VersionRecord:
        """This version's own row of the history."""
        return self.history[-1]

    @property
    def provenance(self) -> Provenance:
        return self.record.provenance


# --------------------------------------------------------------------------------------
# Public API


def create(
    kb_dir: str | os.PathLike[str],
    factors: Mapping[str, FactorMeta],
    counts: Mapping[str, PatternCounts],
    coefficients: Mapping[str, Mapping[str, np.ndarray]],
    network_coefficients: Mapping[str, np.ndarray],
    label_ids: Sequence[str],
    provenance: Provenance,
    catalog_hash: str,
    *,
    overwrite: bool = False,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
    tables: Tables | None = None,
) -> int:
    """Publish a new knowledge base in ``kb_dir`` and return its version number.

    Refuses a directory that already holds a knowledge base unless ``overwrite``; even
    then the new contents are published as a new version (numbers continue, the history
    starts afresh), so scorers running on the old one are not disturbed. Refuses a
    non-empty directory that is not a knowledge base, so that a mistyped path cannot
    scatter files in it. ``coefficients[factor]`` must hold ``S`` and ``d`` and
    ``network_coefficients`` must hold ``dnet``, each with one value per label; further
    float arrays of the same length are stored alongside (named like SQL identifiers).
    ``tables`` are extra tables stored with the counts (:data:`Tables`).
    """
    kb = Path(kb_dir)
    content = _Content.validated(catalog_hash, label_ids, factors, counts, coefficients,
                                 network_coefficients, tables or {})
    _check_keep(keep_versions)
    if kb.exists() and not (kb / _CURRENT).exists() and not (kb / _VERSIONS).exists():
        strangers = sorted(p.name for p in kb.iterdir() if p.name != _LOCK)
        if strangers:
            raise KnowledgeBaseError(
                f"{kb}: cannot create a knowledge base in a directory that holds other "
                f"files ({', '.join(strangers[:5])}{', ...' if len(strangers) > 5 else ''}); "
                "expected an empty or new directory: choose another --kb path"
            )
    with _writer_lock(kb):
        current = _read_current(kb)
        if current is not None and not overwrite:
            raise KnowledgeBaseError(
                f"{kb}: already holds a knowledge base (version {current['version']}); "
                "expected a new directory: update it with a new batch instead, or pass "
                "overwrite=True to replace its contents with a new version"
            )
        return _publish(kb, content, history=(), parent=None, provenance=provenance,
                        half_life_days=None, days_elapsed=None, decay_factor=1.0,
                        keep_versions=keep_versions)


def update(
    kb_dir: str | os.PathLike[str],
    batch_counts: Mapping[str, PatternCounts],
    coefficients: Mapping[str, Mapping[str, np.ndarray]],
    network_coefficients: Mapping[str, np.ndarray],
    provenance: Provenance,
    catalog_hash: str,
    *,
    half_life_days: float | None,
    days_elapsed: float,
    expected_version: int | None = None,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
    tables: Tables | None = None,
) -> int:
    """Add a batch of counts to the current version and publish the sum as a new version.

    Old knowledge decays first (hpb.md, "Counts"): the current counts are multiplied by
    ``0.5 ** (days_elapsed / half_life_days)`` (not at all when ``half_life_days`` is None),
    then merged with ``batch_counts`` (factors absent from the batch only decay). The
    coefficients are the caller's, chosen on the merged counts; this module only stores
    them. The batch must come from the same knowledge catalog (``catalog_hash``) as the
    knowledge base, else its keys would mean other patterns. A caller that fitted the
    coefficients on a version it opened earlier passes its number as ``expected_version``:
    if another update published meanwhile, the coefficients belong to stale counts and the
    update is refused. ``tables`` replace the extra tables of the same names (merging
    them is their owner's business, it knows what they mean); the others carry over
    unchanged. Returns the new version.
    """
    kb = Path(kb_dir)
    _check_keep(keep_versions)
    if half_life_days is not None and not half_life_days > 0:
        raise ValueError(f"half_life_days must be > 0 or None, got {half_life_days}")
    if not days_elapsed >= 0:
        raise ValueError(f"days_elapsed must be >= 0, got {days_elapsed}")
    decay = 1.0 if half_life_days is None else 0.5 ** (days_elapsed / half_life_days)
    _require_kb(kb)
    with _writer_lock(kb):
        old = _open(kb, None, catalog_hash, verify=True)
        if expected_version is not None and old.version != expected_version:
            raise KnowledgeBaseError(
                f"{kb}: is at version {old.version}, expected {expected_version}, the version "
                "this batch's coefficients were fitted on: another update published "
                "meanwhile. Remedy: run the update again on the current version."
            )
        unknown = sorted(set(batch_counts) - set(old.factors))
        if unknown:
            raise ValueError(
                f"batch counts for factors {unknown} that the knowledge base does not have; "
                f"its factors are {sorted(old.factors)}"
            )
        for name, batch in batch_counts.items():
            problem = _counts_problem(batch, len(old.label_ids))
            if problem:
                raise ValueError(f"batch counts of factor {name!r}: {problem}")
        merged = {
            name: merge(old.counts[name].scaled(decay),
                        batch_counts.get(name, PatternCounts.empty()))
            for name in old.factors
        }
        content = _Content.validated(catalog_hash, old.label_ids, old.factors, merged,
                                     coefficients, network_coefficients,
                                     {**old.tables, **(tables or {})})
        return _publish(kb, content, history=old.history, parent=old.version,
                        provenance=provenance, half_life_days=half_life_days,
                        days_elapsed=days_elapsed, decay_factor=decay,
                        keep_versions=keep_versions)


def amend(
    kb_dir: str | os.PathLike[str],
    tables: Tables,
    provenance: Provenance,
    catalog_hash: str,
    *,
    expected_version: int | None = None,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
) -> int:
    """Publish a new version with the current counts and coefficients and ``tables``
    replacing the extra tables of the same names: knowledge added without counting
    anything (a code correlation table, say). ``provenance`` names what was added (its
    files; no items). Crash safety, locking and ``expected_version`` as for
    :func:`update`. Returns the new version.
    """
    kb = Path(kb_dir)
    _check_keep(keep_versions)
    _require_kb(kb)
    with _writer_lock(kb):
        old = _open(kb, None, catalog_hash, verify=True)
        if expected_version is not None and old.version != expected_version:
            raise KnowledgeBaseError(
                f"{kb}: is at version {old.version}, expected {expected_version}: another "
                "update published meanwhile. Remedy: run the command again."
            )
        content = _Content.validated(catalog_hash, old.label_ids, old.factors, old.counts,
                                     old.coefficients, old.network_coefficients,
                                     {**old.tables, **tables})
        return _publish(kb, content, history=old.history, parent=old.version,
                        provenance=provenance, half_life_days=None, days_elapsed=0.0,
                        decay_factor=1.0, keep_versions=keep_versions)


def open_version(
    kb_dir: str | os.PathLike[str],
    version: int | None = None,
    expected_catalog_hash: str | None = None,
    verify: bool = True,
) -> KnowledgeBaseVersion:
    """Load a version (the current one by default) into memory.

    Raises :class:`~sisam.errors.KnowledgeBaseError` when the knowledge base is missing,
    the version is unknown or pruned, the file cannot be read (truncated, damaged, locked
    by a read-write session), it was built with another knowledge catalog than
    ``expected_catalog_hash``, or (with ``verify``, the default) its recomputed content
    hash differs from the one recorded at publication. Structure (sorted keys, error
    entries pointing at stored patterns) is always checked; ``verify=False`` only skips the
    hash, about 40 % of the load time (0.78 s against 0.47 s for ten million patterns).
    """
    return _open(Path(kb_dir), version, expected_catalog_hash, verify)


def open_patterns(
    kb_dir: str | os.PathLike[str],
    keys: Mapping[str, np.ndarray],
    version: int | None = None,
    expected_catalog_hash: str | None = None,
    memory_limit: str | None = None,
    extra_tables: bool = True,
) -> KnowledgeBaseVersion:
    """A version with only the patterns of ``keys[factor]`` (uint64, any order, repeats
    allowed) loaded, and the extra tables whole (none with ``extra_tables=False``, for a
    caller that holds them already): scoring a batch of items with a
    knowledge base larger than memory
    (``sisam score --stream-kb``) needs the counts of the batch's patterns and of nothing
    else, and a pattern's counts do not depend on the others. DuckDB semi-joins the file's
    tables with the wanted keys, streaming them from disk within ``memory_limit`` (a
    DuckDB size such as ``"2GB"``; default DuckDB's, 80 % of the RAM).

    Its ``content_hash`` is the version's as recorded (not recomputed: that reads every
    count, see :func:`open_version`'s ``verify`` and ``sisam kb info --verify``)."""
    kb = Path(kb_dir)

    def load(path: Path, number: int, pointer: dict[str, Any] | None) -> KnowledgeBaseVersion:
        with _read_only(path) as con:
            if memory_limit is not None:
                con.execute(f"SET memory_limit = '{memory_limit}'")
            meta = _read_metadata(con, path, number)
            own = meta.history[-1]
            if expected_catalog_hash is not None and own.catalog_hash != expected_catalog_hash:
                raise KnowledgeBaseError(
                    f"{path}: built with the knowledge catalog {own.catalog_hash}, expected "
                    f"{expected_catalog_hash} (the catalog in use): its pattern keys mean "
                    "other things. Remedy: run `sisam learn` with the current catalog."
                )
            counts = {}
            for factor in meta.factors:
                wanted = np.unique(np.asarray(keys.get(factor, np.zeros(0, np.uint64)), dtype=np.uint64))
                con.register("sisam_wanted", pa.table({"key": pa.array(wanted, pa.uint64())}))
                try:
                    counts[factor] = _read_wanted(con, path, factor, len(meta.label_ids))
                finally:
                    con.unregister("sisam_wanted")
            tables = _read_extra(con) if extra_tables else {}
        return KnowledgeBaseVersion(number, path, meta.factors, counts, meta.coefficients,
                                    meta.network, meta.label_ids, meta.history,
                                    own.content_hash, own.catalog_hash, tables)

    return _with_version(kb, version, load)


def _read_wanted(con: duckdb.DuckDBPyConnection, path: Path, factor: str, n_labels: int) -> PatternCounts:
    """The counts of the factor's patterns whose keys are in the view ``sisam_wanted``."""
    semi = "factor = $f AND key IN (SELECT key FROM sisam_wanted)"
    p = con.sql(f"SELECT key, n_labelled, n_declared FROM patterns WHERE {semi}",
                params={"f": factor}).fetchnumpy()
    e = con.sql(f"SELECT key, label, k FROM errors WHERE {semi}", params={"f": factor}).fetchnumpy()
    keys = _column(p, "key", np.uint64)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    error_keys, labels = _column(e, "key", np.uint64), _column(e, "label", np.int16)
    e_order = np.lexsort((labels, error_keys))
    error_keys = error_keys[e_order]
    rows = np.searchsorted(keys, error_keys)
    if rows.size and (rows.max() >= keys.size or np.any(keys[rows] != error_keys)):
        raise KnowledgeBaseError(f"{path}: factor {factor!r} has error counts for patterns it "
                                 f"does not store; the file is damaged. {_remedy(path)}")
    err_ptr = np.zeros(keys.size + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=keys.size), out=err_ptr[1:])
    counts = PatternCounts(keys, _column(p, "n_labelled", np.float64)[order],
                           _column(p, "n_declared", np.float64)[order], err_ptr,
                           labels[e_order], _column(e, "k", np.float64)[e_order])
    problem = _counts_problem(counts, n_labels)
    if problem:
        raise KnowledgeBaseError(f"{path}: counts of factor {factor!r}: {problem}; the file is "
                                 f"damaged. {_remedy(path)}")
    return counts


def scoring_memory(factors: Sequence[tuple[int, int, int]], batch_rows: int) -> dict[str, int]:
    """Bytes of the counts scoring holds, for ``sisam kb info``; ``factors`` gives each
    factor's (patterns, error entries, shapes). By the arrays' sizes: a pattern takes a
    uint64 key, float64 n and N and an int64 pointer, an error entry an int16 label and a
    float64 k, and each factor's hash index (``engine.hashtable``) a uint64 key and an
    int64 row per slot.

    ``load_all``: the whole version, as ``sisam score`` loads it. ``stream_per_batch``: at
    most what ``sisam score --stream-kb`` holds for a batch of ``batch_rows`` items (an item
    matches one pattern per shape; error entries as frequent per pattern as in the whole
    factor), plus the batch's pattern keys of one factor at a time. ``info`` adds
    ``tables_whole``: the extra tables (evidence, suggestions, recovery), which scoring holds
    whole in either mode. Scoring's own working memory (per item and label, the same
    either way, and what the evidence models prepare from their tables) comes on top."""
    from sisam.engine.hashtable import capacity_for

    def held(patterns: int, entries: float) -> int:
        return 32 * patterns + int(10 * entries) + 16 * capacity_for(patterns)

    load_all = streamed = widest = 0
    for patterns, entries, shapes in factors:
        load_all += held(patterns, entries)
        wanted = min(patterns, shapes * batch_rows)
        streamed += held(wanted, entries * wanted / patterns if patterns else 0.0)
        widest = max(widest, shapes)
    return {"load_all": load_all, "stream_batch_rows": batch_rows,
            "stream_per_batch": streamed + 8 * widest * batch_rows}


def set_current(
    kb_dir: str | os.PathLike[str],
    version: int,
    expected_catalog_hash: str | None = None,
) -> None:
    """Point ``CURRENT`` at an earlier (or unpublished) version still on disk, after
    checking it is intact: the remedy when the current version is damaged. The next
    update builds on it; later version files stay until pruned."""
    kb = Path(kb_dir)
    _require_kb(kb)
    with _writer_lock(kb):
        target = _open(kb, version, expected_catalog_hash, verify=True)
        _write_current(kb, target.version, target.path, target.content_hash,
                       target.catalog_hash)
        log.info("%s: CURRENT now points at version %d", kb, target.version)


def info(
    kb_dir: str | os.PathLike[str], version: int | None = None, verify: bool = False
) -> dict[str, Any]:
    """Facts about a version for ``sisam kb info``, as JSON-ready values.

    Sizes come from DuckDB's storage segments (``pragma_storage_info``): per table and
    column, and per factor (segments split by the rows of each factor they hold). They are
    estimates within a block's slack; ``file_bytes`` is exact. With ``verify`` the content
    hash is recomputed (reading every count) and a mismatch raises.
    """
    kb = Path(kb_dir)

    def describe(path: Path, number: int, pointer: dict[str, Any] | None) -> dict[str, Any]:
        with _read_only(path) as con:
            meta = _read_metadata(con, path, number)
            if verify:
                _verify_hash(path, meta.history[-1], pointer, _stream_hash(con, path, meta))
            storage = _storage_bytes(con, meta.factors, meta.sizes)
            extra = _extra_names(con)
            extra_rows = {t[len(_EXTRA):]: int(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in extra}
            extra_bytes = sum(_extra_memory(con, t) for t in extra)
        own, sizes, current = meta.history[-1], meta.sizes, _read_current(kb)
        n_patterns = sum(s[0] for s in sizes.values())
        file_bytes = path.stat().st_size
        return {
            "kb_dir": str(kb),
            "version": number,
            "current_version": current["version"] if current else None,
            "versions_on_disk": _version_numbers(kb),
            "file": str(path),
            "file_bytes": file_bytes,
            "content_hash": own.content_hash,
            "catalog_hash": own.catalog_hash,
            "verified": verify,
            "n_patterns": n_patterns,
            "n_error_entries": sum(s[1] for s in sizes.values()),
            "bytes_per_pattern": file_bytes / n_patterns if n_patterns else None,
            "labels": list(meta.label_ids),
            "scoring_memory_bytes": scoring_memory(
                [(*sizes[name], int(np.prod([m + 1 for m in factor.level_counts])))
                 for name, factor in meta.factors.items()], STREAM_BATCH_ROWS) | {"tables_whole": extra_bytes},
            "tables": storage["tables"],
            "factors": {
                name: {
                    "attributes": list(factor.attributes),
                    "level_counts": list(factor.level_counts),
                    "n_patterns": sizes[name][0],
                    "n_error_entries": sizes[name][1],
                    "bytes": storage["factors"][name],
                }
                for name, factor in meta.factors.items()
            },
            "coefficients": {f: _summary(c) for f, c in meta.coefficients.items()},
            "network_coefficients": _summary(meta.network),
            "extra_tables": extra_rows,
            "history": [r.to_json() for r in meta.history],
        }

    return _with_version(kb, version, describe)


#: The columns that identify a row of each table every version has: ``compare`` matches
#: rows on them. Extra tables, whose meaning is their owner's, are compared as multisets.
_ROW_KEYS = {"labels": ("label",), "factors": ("factor",), "patterns": ("factor", "key"),
             "errors": ("factor", "key", "label"), "coefficients": ("factor", "label"),
             "network_coefficients": ("label",)}


def compare(
    kb_a: str | os.PathLike[str],
    kb_b: str | os.PathLike[str],
    version_a: int | None = None,
    version_b: int | None = None,
) -> dict[str, Any]:
    """How two versions' contents differ, table by table, for ``sisam kb diff``: the
    check that two back-ends, or two runs, learnt the same thing.

    Every table but ``versions`` (provenance: dates, input paths) is compared. Rows of the
    tables in ``_ROW_KEYS`` are matched on their key columns: per table the rows found in
    one version only, the matched rows whose values differ (bit for bit; NaN equals NaN)
    and, per floating-point column, the largest absolute difference over matched rows (a
    difference in the last bits shows as about 1e-16 times the values; None when no pair
    of finite values differs). Extra tables are compared as multisets of rows.
    ``same_rows``: no table differs in its columns or rows. ``identical``: the same rows
    and the same content hash; the hash also covers what rows do not show (the catalog
    hash, the order of an extra table's rows, the sign of a zero)."""
    paths = [_with_version(Path(kb), version, lambda path, number, pointer: (path, number))
             for kb, version in ((kb_a, version_a), (kb_b, version_b))]
    con = duckdb.connect()
    try:
        for alias, (path, _) in zip("ab", paths, strict=True):
            con.execute(f"ATTACH '{_sql_text(str(path))}' AS {alias} (READ_ONLY)")
        names = [{row[0] for row in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = ?", [alias]).fetchall()}
            - {"versions"} for alias in "ab"]
        tables = {name: _compare_table(con, name) if name in names[0] and name in names[1]
                  else {"only_in": "a" if name in names[0] else "b"}
                  for name in sorted(names[0] | names[1])}
        hashes = [con.execute(f"SELECT content_hash, catalog_hash FROM {alias}.versions ORDER BY version DESC "
                              "LIMIT 1").fetchone() for alias in "ab"]
    except duckdb.Error as e:
        raise KnowledgeBaseError(f"{paths[0][0]} vs {paths[1][0]}: comparing failed ({e})") from e
    finally:
        con.close()
    same_rows = all("only_in" not in t and "columns" not in t and not (t["only_a"] or t["only_b"] or t.get("differing"))
                    for t in tables.values())
    return {
        **{side: {"file": str(path), "version": number, "content_hash": found[0], "catalog_hash": found[1]}
           for side, (path, number), found in zip("ab", paths, hashes, strict=True)},
        "same_rows": same_rows,
        "identical": same_rows and hashes[0][0] == hashes[1][0],
        "tables": tables,
    }


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


def _compare_table(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, Any]:
    columns = [[(row[0], row[1]) for row in con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = ? AND table_name = ? ORDER BY ordinal_position", [alias, name]).fetchall()]
        for alias in "ab"]
    rows = [int(con.execute(f'SELECT count(*) FROM {alias}."{name}"').fetchone()[0]) for alias in "ab"]
    out: dict[str, Any] = {"rows": rows}
    if columns[0] != columns[1]:
        out.update(columns=[[f"{c} {t}" for c, t in cols] for cols in columns], only_a=rows[0], only_b=rows[1])
        return out
    keys = _ROW_KEYS.get(name)
    if keys is None:
        only = [int(con.execute(f'SELECT count(*) FROM (SELECT * FROM {x}."{name}" EXCEPT ALL '
                                f'SELECT * FROM {y}."{name}")').fetchone()[0]) for x, y in ("ab", "ba")]
        out.update(only_a=only[0], only_b=only[1])
        return out
    values = [(c, t) for c, t in columns[0] if c not in keys]
    differs = " OR ".join(f'x."{c}" IS DISTINCT FROM y."{c}"' for c, _ in values) or "false"
    floats = [c for c, t in values if t == "DOUBLE"]
    on = " AND ".join(f'x."{k}" = y."{k}"' for k in keys)
    found = con.execute(
        "SELECT count(*) FILTER (WHERE y.present_ IS NULL), count(*) FILTER (WHERE x.present_ IS NULL), "
        f"count(*) FILTER (WHERE x.present_ AND y.present_ AND ({differs}))"
        + "".join(f', max(abs(x."{c}" - y."{c}")) FILTER (WHERE x."{c}" IS DISTINCT FROM y."{c}" '
                  f'AND isfinite(x."{c}") AND isfinite(y."{c}"))' for c in floats)
        + f' FROM (SELECT true AS present_, * FROM a."{name}") x '
        f'FULL JOIN (SELECT true AS present_, * FROM b."{name}") y ON {on}').fetchone()
    out.update(only_a=int(found[0]), only_b=int(found[1]), differing=int(found[2]),
               max_abs_difference={c: (None if v is None else float(v)) for c, v in zip(floats, found[3:], strict=True)})
    return out


def read_count_tables(
    directory: str | os.PathLike[str], factors: Sequence[str], n_labels: int
) -> dict[str, PatternCounts]:
    """Counts written as Parquet by another back-end (``sisam.spark``), ready for
    :func:`create` or :func:`update`: ``directory/patterns`` (``factor`` VARCHAR, ``key``
    BIGINT, ``n_labelled`` DOUBLE, ``n_declared`` DOUBLE) and ``directory/errors``
    (``factor``, ``key``, ``label`` SMALLINT, ``k`` DOUBLE), each a Parquet file or a folder
    of them, rows in any order, one row per pattern (per pattern and label). ``key`` holds
    the pattern key's 64 bits as a signed integer, as engines without unsigned integers
    write it. Factors without rows get empty counts; a row of an unknown factor, a repeated
    pattern or an error entry without its pattern raises."""
    import pyarrow.parquet as pq

    root = Path(directory)
    tables = {}
    for name in ("patterns", "errors"):
        path = root / name
        if not path.exists():
            raise KnowledgeBaseError(f"{path}: count table not found; expected the {name} "
                                     f"table a back-end writes under {root}")
        tables[name] = pq.read_table(path)
    patterns, errors = tables["patterns"], tables["errors"]
    index = {name: f for f, name in enumerate(factors)}

    def factor_numbers(table: pa.Table, which: str) -> np.ndarray:
        names = table.column("factor").combine_chunks().dictionary_encode()
        unknown = sorted(set(names.dictionary.to_pylist()) - set(index))
        if unknown:
            raise KnowledgeBaseError(f"{root / which}: counts of factors {unknown} that the "
                                     f"catalog does not have; its factors are {list(factors)}")
        lookup = np.array([index[n] for n in names.dictionary.to_pylist()], dtype=np.int64)
        return lookup[names.indices.to_numpy(zero_copy_only=False)]

    p_factor = factor_numbers(patterns, "patterns")
    p_key = patterns.column("key").to_numpy().view(np.uint64)
    order = np.lexsort((p_key, p_factor))
    p_factor, p_key = p_factor[order], p_key[order]
    n = patterns.column("n_labelled").to_numpy()[order]
    N = patterns.column("n_declared").to_numpy()[order]
    e_factor = factor_numbers(errors, "errors")
    e_key = errors.column("key").to_numpy().view(np.uint64)
    e_label = errors.column("label").to_numpy().astype(np.int16)
    e_order = np.lexsort((e_label, e_key, e_factor))
    e_factor, e_key, e_label = e_factor[e_order], e_key[e_order], e_label[e_order]
    k = errors.column("k").to_numpy()[e_order]
    out = {}
    for f, name in enumerate(factors):
        lo, hi = np.searchsorted(p_factor, [f, f + 1])
        elo, ehi = np.searchsorted(e_factor, [f, f + 1])
        keys = p_key[lo:hi]
        if keys.size > 1 and not (keys[1:] > keys[:-1]).all():
            raise KnowledgeBaseError(f"{root / 'patterns'}: factor {name!r} repeats a pattern key")
        rows = np.searchsorted(keys, e_key[elo:ehi])
        if ((rows >= keys.size) | (keys[np.minimum(rows, keys.size - 1)] != e_key[elo:ehi])).any():
            raise KnowledgeBaseError(f"{root / 'errors'}: factor {name!r} has error counts of "
                                     "a pattern absent from the patterns table")
        err_ptr = np.zeros(keys.size + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=keys.size), out=err_ptr[1:])
        out[name] = PatternCounts(keys.copy(), n[lo:hi].copy(), N[lo:hi].copy(), err_ptr,
                                  e_label[elo:ehi].copy(), k[elo:ehi].copy())
        problem = _counts_problem(out[name], n_labels)
        if problem:
            raise KnowledgeBaseError(f"{root}: counts of factor {name!r}: {problem}")
    return out


def export_parquet(
    kb_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    version: int | None = None,
) -> dict[str, Path]:
    """Write every table of a version as ``out_dir/<table>.parquet`` (zstd) plus a
    ``manifest.json`` naming the version and its hashes; return the paths by table.

    The content hash is verified first, so an export is never of a damaged version.
    Parquet keeps the column types (keys stay unsigned 64-bit integers) and row order.
    """
    kb, out = Path(kb_dir), Path(out_dir)

    def export(path: Path, number: int, pointer: dict[str, Any] | None) -> dict[str, Path]:
        with _read_only(path) as con:
            meta = _read_metadata(con, path, number)
            own = meta.history[-1]
            _verify_hash(path, own, pointer, _stream_hash(con, path, meta))
            out.mkdir(parents=True, exist_ok=True)
            written = {}
            for table in (*_TABLES, *_extra_names(con)):
                target = out / f"{table}.parquet"
                con.table(table).write_parquet(str(target), compression="zstd")
                written[table] = target
        manifest = {"version": number, "source": str(path),
                    "content_hash": own.content_hash, "catalog_hash": own.catalog_hash,
                    "files": {t: p.name for t, p in written.items()}}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return written

    return _with_version(kb, version, export)


# --------------------------------------------------------------------------------------
# Validated contents and the content hash


@dataclass(frozen=True)
class _Content:
    """Everything a version stores besides its history, validated and in canonical types."""

    catalog_hash: str
    label_ids: tuple[str, ...]
    factors: dict[str, FactorMeta]
    counts: dict[str, PatternCounts]
    coefficients: dict[str, dict[str, np.ndarray]]
    network: dict[str, np.ndarray]
    tables: dict[str, dict[str, np.ndarray]]

    @classmethod
    def validated(
        cls,
        catalog_hash: str,
        label_ids: Sequence[str],
        factors: Mapping[str, FactorMeta],
        counts: Mapping[str, PatternCounts],
        coefficients: Mapping[str, Mapping[str, np.ndarray]],
        network: Mapping[str, np.ndarray],
        tables: Tables,
    ) -> _Content:
        """Check what the engine hands over; mistakes here are bugs, hence ValueError."""
        labels = tuple(str(x) for x in label_ids)
        if not labels or len(set(labels)) != len(labels):
            raise ValueError(f"label_ids must be non-empty and unique, got {labels}")
        if not isinstance(catalog_hash, str) or not catalog_hash:
            raise ValueError(f"catalog_hash must be a non-empty string, got {catalog_hash!r}")
        names = sorted(factors)
        if not names:
            raise ValueError("a knowledge base needs at least one factor")
        for what, given in (("counts", counts), ("coefficients", coefficients)):
            if sorted(given) != names:
                raise ValueError(f"{what} are for factors {sorted(given)}, "
                                 f"expected the factors {names}")
        metas = {}
        for name in names:
            meta = factors[name]
            salt = int(meta.salt)
            if (meta.name != name or len(meta.attributes) != len(meta.level_counts)
                    or not 0 <= salt < 2**64 or min(meta.level_counts, default=0) < 1):
                raise ValueError(f"factor {name!r}: inconsistent metadata {meta}")
            metas[name] = FactorMeta(name, tuple(meta.attributes),
                                     tuple(int(m) for m in meta.level_counts), salt)
            problem = _counts_problem(counts[name], len(labels))
            if problem:
                raise ValueError(f"counts of factor {name!r}: {problem}")
        coefs = {f: _per_label(coefficients[f], len(labels), _REQUIRED_COEFFICIENTS,
                               f"coefficients of factor {f!r}") for f in names}
        columns = {tuple(c) for c in coefs.values()}
        if len(columns) > 1:
            raise ValueError(f"every factor needs the same coefficient names, got {columns}")
        return cls(catalog_hash, labels, metas, {f: counts[f] for f in names}, coefs,
                   _per_label(network, len(labels), _REQUIRED_NETWORK, "network_coefficients"),
                   {name: _extra_table(name, tables[name]) for name in sorted(tables)})

    def content_hash(self) -> str:
        return _content_hash(self.catalog_hash, self.label_ids, self.factors, self.network,
                             ((f, self.counts[f], self.coefficients[f]) for f in self.factors),
                             self.tables)


def _extra_kind(array: np.ndarray) -> str:
    """The storage kind of an extra column (a key of ``_EXTRA_TYPES``), or ''."""
    if array.dtype.kind in "OU":
        return "str"
    kind = array.dtype.str[1:]
    return kind if kind in _EXTRA_TYPES else ""


def _extra_table(name: str, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """An extra table checked and in canonical types (strings as object arrays)."""
    if not _IDENTIFIER.match(name) or not columns:
        raise ValueError(f"extra table {name!r}: expected an SQL identifier with columns, "
                         f"got columns {list(columns)}")
    out, lengths = {}, set()
    for column, values in columns.items():
        array = np.asarray(values)
        kind = _extra_kind(array)
        if not _IDENTIFIER.match(column) or array.ndim != 1 or not kind:
            raise ValueError(f"extra table {name!r}, column {column!r}: expected an SQL "
                             f"identifier naming a 1-d float64, int64, uint64 or string "
                             f"array, got {array.dtype} of shape {array.shape}")
        if kind == "str":
            array = np.array([str(v) for v in array], dtype=object)
        out[column] = array
        lengths.add(array.size)
    if len(lengths) > 1:
        raise ValueError(f"extra table {name!r}: columns of different lengths {sorted(lengths)}")
    return out


def _per_label(values: Mapping[str, np.ndarray], n_labels: int, required: tuple[str, ...],
               what: str) -> dict[str, np.ndarray]:
    """Named float64 arrays, one value per label, required names first, then the rest in
    name order (the table's column order)."""
    missing = [r for r in required if r not in values]
    if missing:
        raise ValueError(f"{what}: missing {missing}, got {sorted(values)}")
    lowered = [name.lower() for name in values]
    bad = [n for n in values
           if not _IDENTIFIER.match(n) or n.lower() in ("factor", "label")]
    if bad or len(set(lowered)) != len(lowered):
        raise ValueError(f"{what}: names must be SQL identifiers, distinct ignoring case and "
                         f"other than 'factor' and 'label', got {sorted(values)}")
    out = {}
    for name in (*required, *sorted(set(values) - set(required))):
        array = np.asarray(values[name], dtype=np.float64)
        if array.shape != (n_labels,):
            raise ValueError(f"{what}: {name!r} has shape {array.shape}, "
                             f"expected ({n_labels},), one value per label")
        out[name] = array
    return out


_DTYPES = {"keys": np.uint64, "n": np.float64, "N": np.float64, "err_ptr": np.int64,
           "err_label": np.int16, "err_k": np.float64}


def _counts_problem(c: PatternCounts, n_labels: int) -> str | None:
    """What breaks the invariants of ``PatternCounts``, or None. Used on both sides: on
    what the engine hands over, and on what a file gives back."""
    for field, dtype in _DTYPES.items():
        array = getattr(c, field)
        if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1:
            return f"{field} must be a 1-d {np.dtype(dtype)} array"
    p, nnz = c.keys.size, c.err_label.size
    if c.n.size != p or c.N.size != p or c.err_ptr.size != p + 1 or c.err_k.size != nnz:
        return "arrays of inconsistent lengths"
    if p and not np.all(c.keys[1:] > c.keys[:-1]):
        return "keys are not sorted and unique"
    if c.err_ptr[0] != 0 or c.err_ptr[-1] != nnz or np.any(np.diff(c.err_ptr) < 0):
        return "err_ptr is not a valid CSR pointer"
    if nnz:
        if c.err_label.min() < 0 or c.err_label.max() >= n_labels:
            return f"error labels outside 0..{n_labels - 1}"
        row = np.repeat(np.arange(p, dtype=np.int64), np.diff(c.err_ptr))
        pair = row * n_labels + c.err_label
        if not np.all(pair[1:] > pair[:-1]):
            return "error labels are not ascending and unique within a pattern"
        if not np.all(c.err_k > 0):
            return "error counts must be > 0 (zeros are not stored)"
    return None


def _content_hash(
    catalog_hash: str,
    label_ids: Sequence[str],
    factors: Mapping[str, FactorMeta],
    network: Mapping[str, np.ndarray],
    per_factor: Iterable[tuple[str, PatternCounts, Mapping[str, np.ndarray]]],
    tables: Mapping[str, Mapping[str, np.ndarray]],
) -> str:
    """sha256 of the canonical serialisation of a version's contents.

    Strings are UTF-8 and arrays little-endian, each preceded by its length as an 8-byte
    little-endian integer, in this order: the tag ``sisam-kb/<FORMAT>``, the catalog hash,
    the label ids, then the network coefficients and, per factor in name order, the name,
    the attributes, level counts (int64), salt (uint64), the counts' six arrays (keys,
    n, N, err_ptr, err_label, err_k, in ``PatternCounts`` dtypes) and its coefficients,
    each named array as its name then its float64 values, names in sorted order.
    ``per_factor`` yields (name, counts, coefficients) in name order, so that a large
    version can be hashed factor by factor without holding it all. Then, only if there
    are extra tables (so that versions without any keep the hash they always had), the tag
    ``extra-tables``, their number and per table in name order its name, its number of
    columns and per column in its order the name, the storage type and the values (numbers
    as arrays, strings each as a string after the count).
    """
    h = hashlib.sha256()

    def text(s: str) -> None:
        b = s.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)

    def array(a: np.ndarray, dtype: str) -> None:
        a = np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<"))
        h.update(a.size.to_bytes(8, "little"))
        h.update(a.data)

    def named(arrays: Mapping[str, np.ndarray]) -> None:
        h.update(len(arrays).to_bytes(8, "little"))
        for name in sorted(arrays):
            text(name)
            array(arrays[name], "f8")

    text(f"sisam-kb/{FORMAT}")
    text(catalog_hash)
    h.update(len(label_ids).to_bytes(8, "little"))
    for label in label_ids:
        text(label)
    named(network)
    seen = []
    for name, c, coefficients in per_factor:
        meta = factors[name]
        text(name)
        h.update(len(meta.attributes).to_bytes(8, "little"))
        for attribute in meta.attributes:
            text(attribute)
        array(np.array(meta.level_counts, dtype=np.int64), "i8")
        array(np.array([meta.salt], dtype=np.uint64), "u8")
        for field in ("keys", "n", "N", "err_ptr", "err_label", "err_k"):
            array(getattr(c, field), np.dtype(_DTYPES[field]).str[1:])
        named(coefficients)
        seen.append(name)
    if seen != sorted(factors):
        raise ValueError(f"hashed factors {seen}, expected all of {sorted(factors)} in order")
    if tables:
        text("extra-tables")
        h.update(len(tables).to_bytes(8, "little"))
        for name in sorted(tables):
            text(name)
            h.update(len(tables[name]).to_bytes(8, "little"))
            for column, values in tables[name].items():
                text(column)
                kind = _extra_kind(values)
                text(kind)
                if kind == "str":
                    h.update(len(values).to_bytes(8, "little"))
                    for v in values:
                        text(v)
                else:
                    array(values, kind)
    return h.hexdigest()


# --------------------------------------------------------------------------------------
# Writing and publishing

_TABLES = ("labels", "factors", "patterns", "errors", "coefficients",
           "network_coefficients", "versions")

_VERSION_COLUMNS = (
    "version INTEGER NOT NULL, created_at TIMESTAMP NOT NULL, parent_version INTEGER, "
    "catalog_hash VARCHAR NOT NULL, content_hash VARCHAR NOT NULL, format INTEGER NOT NULL, "
    "sisam_version VARCHAR NOT NULL, duckdb_version VARCHAR NOT NULL, "
    "input_files VARCHAR[] NOT NULL, date_from DATE, date_to DATE, n_items BIGINT NOT NULL, "
    "n_labelled BIGINT NOT NULL, half_life_days DOUBLE, days_elapsed DOUBLE, "
    "decay_factor DOUBLE NOT NULL, n_patterns BIGINT NOT NULL"
)
_VERSION_FIELDS = tuple(c.split()[0] for c in _VERSION_COLUMNS.split(", "))


def _schema(coefficient_names: Iterable[str], network_names: Iterable[str]) -> list[str]:
    coefficient_columns = "".join(f', "{n}" DOUBLE NOT NULL' for n in coefficient_names)
    network_columns = "".join(f', "{n}" DOUBLE NOT NULL' for n in network_names)
    return [
        "CREATE TABLE labels(label SMALLINT NOT NULL, id VARCHAR NOT NULL)",
        "CREATE TABLE factors(factor VARCHAR NOT NULL, attributes VARCHAR[] NOT NULL, "
        "level_counts SMALLINT[] NOT NULL, salt UBIGINT NOT NULL, n_patterns BIGINT NOT NULL, "
        "n_error_entries BIGINT NOT NULL)",
        "CREATE TABLE patterns(factor VARCHAR NOT NULL, key UBIGINT NOT NULL, "
        "n_labelled DOUBLE NOT NULL, n_declared DOUBLE NOT NULL)",
        "CREATE TABLE errors(factor VARCHAR NOT NULL, key UBIGINT NOT NULL, "
        "label SMALLINT NOT NULL, k DOUBLE NOT NULL)",
        "CREATE TABLE coefficients(factor VARCHAR NOT NULL, label SMALLINT NOT NULL"
        f"{coefficient_columns})",
        f"CREATE TABLE network_coefficients(label SMALLINT NOT NULL{network_columns})",
        f"CREATE TABLE versions({_VERSION_COLUMNS})",
    ]


def _insert_arrays(con: duckdb.DuckDBPyConnection, table: str, prefix: tuple[Any, ...],
                   arrays: Mapping[str, np.ndarray]) -> None:
    """Append rows to ``table``: constant leading values ``prefix`` (bound as parameters)
    then the columns ``arrays``, scanned zero-copy through Arrow in their order (DuckDB
    keeps insertion order, which is what makes the tables sorted by factor then key)."""
    con.register("_sisam_source", pa.table(dict(arrays)))
    try:
        params = ", ".join(f"${i + 1}" for i in range(len(prefix)))
        columns = ", ".join(f'"{name}"' for name in arrays)
        con.execute(f"INSERT INTO {table} SELECT {params}{', ' if params else ''}{columns} "
                    "FROM _sisam_source", list(prefix))
    finally:
        con.unregister("_sisam_source")


def _write_version_file(path: Path, content: _Content,
                        history: tuple[VersionRecord, ...]) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute("BEGIN TRANSACTION")
        for statement in _schema(next(iter(content.coefficients.values())), content.network):
            con.execute(statement)
        con.executemany("INSERT INTO labels VALUES (?, ?)", list(enumerate(content.label_ids)))
        label_index = np.arange(len(content.label_ids), dtype=np.int16)
        for name, meta in content.factors.items():
            c = content.counts[name]
            con.execute("INSERT INTO factors VALUES (?, ?, ?, ?, ?, ?)",
                        [name, list(meta.attributes), list(meta.level_counts), meta.salt,
                         c.n_patterns, int(c.err_label.size)])
            _insert_arrays(con, "patterns", (name,),
                           {"key": c.keys, "n_labelled": c.n, "n_declared": c.N})
            rows = np.repeat(np.arange(c.n_patterns), np.diff(c.err_ptr))
            _insert_arrays(con, "errors", (name,),
                           {"key": c.keys[rows], "label": c.err_label, "k": c.err_k})
            _insert_arrays(con, "coefficients", (name,),
                           {"label": label_index, **content.coefficients[name]})
        _insert_arrays(con, "network_coefficients", (),
                       {"label": label_index, **content.network})
        for name, columns in content.tables.items():
            definition = ", ".join(f'"{c}" {_EXTRA_TYPES[_extra_kind(v)]} NOT NULL'
                                   for c, v in columns.items())
            con.execute(f'CREATE TABLE "{_EXTRA}{name}"({definition})')
            _insert_arrays(con, f'"{_EXTRA}{name}"', (),
                           {c: (pa.array(v.tolist(), pa.string()) if v.dtype == object else v)
                            for c, v in columns.items()})
        placeholders = ", ".join("?" for _ in _VERSION_FIELDS)
        con.executemany(f"INSERT INTO versions VALUES ({placeholders})",
                        [_record_row(r) for r in history])
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    # A clean close checkpoints and deletes the write-ahead log; renaming the file without
    # its log would publish a version missing its last transaction.
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        raise KnowledgeBaseError(f"{path}: DuckDB left a write-ahead log {wal.name} after "
                                 "closing; the version was not published, try again")


def _record_row(r: VersionRecord) -> list[Any]:
    p = r.provenance
    return [r.version, r.created_at.astimezone(dt.UTC).replace(tzinfo=None), r.parent_version,
            r.catalog_hash, r.content_hash, r.format, r.sisam_version, r.duckdb_version,
            list(p.input_files), p.date_from, p.date_to, p.n_items, p.n_labelled,
            r.half_life_days, r.days_elapsed, r.decay_factor, r.n_patterns]


def _publish(kb: Path, content: _Content, *, history: tuple[VersionRecord, ...],
             parent: int | None, provenance: Provenance, half_life_days: float | None,
             days_elapsed: float | None, decay_factor: float, keep_versions: int) -> int:
    """Write, fsync, rename, then move CURRENT: the order every crash analysis in the
    module docstring relies on. Call with the writer lock held."""
    versions = kb / _VERSIONS
    versions.mkdir(exist_ok=True)
    _remove_leftovers(kb)
    current = _read_current(kb)
    # Numbers are never reused, not even an unpublished file's: whoever opened a number
    # must always get the same contents.
    number = max([0, *_version_numbers(kb), *([current["version"]] if current else [])]) + 1
    content_hash = content.content_hash()
    record = VersionRecord(
        version=number, created_at=dt.datetime.now(dt.UTC), parent_version=parent,
        catalog_hash=content.catalog_hash, content_hash=content_hash, format=FORMAT,
        sisam_version=__version__, duckdb_version=duckdb.__version__, provenance=provenance,
        half_life_days=half_life_days, days_elapsed=days_elapsed, decay_factor=decay_factor,
        n_patterns=sum(c.n_patterns for c in content.counts.values()),
    )
    tmp = versions / f"{_TMP}{number:06d}-{os.getpid()}.duckdb"
    final = _version_path(kb, number)
    try:
        _write_version_file(tmp, content, (*history, record))
        os.chmod(tmp, 0o444)
        _fsync(tmp)
        os.rename(tmp, final)
    except BaseException as e:
        # An error in this process (a kill never gets here): leave nothing half-written.
        _remove_leftovers(kb)
        if isinstance(e, duckdb.Error | OSError):
            raise KnowledgeBaseError(
                f"{final}: cannot write the new version ({e}); expected a writable "
                f"{versions} with free space. The previous version is intact and current."
            ) from e
        raise
    _fsync(versions)
    _write_current(kb, number, final, content_hash, content.catalog_hash)
    log.info("%s: published version %d (%d patterns, content hash %s)", kb, number,
             record.n_patterns, content_hash)
    _prune(kb, keep_versions)
    return number


def _write_current(kb: Path, number: int, path: Path, content_hash: str,
                   catalog_hash: str) -> None:
    pointer = {"format": FORMAT, "version": number,
               "file": str(path.relative_to(kb)), "file_bytes": path.stat().st_size,
               "content_hash": content_hash, "catalog_hash": catalog_hash}
    tmp = kb / f"{_TMP}{_CURRENT}-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(pointer, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, kb / _CURRENT)
    _fsync(kb)


def _prune(kb: Path, keep_versions: int) -> None:
    for number in _version_numbers(kb)[:-keep_versions]:
        _version_path(kb, number).unlink()
        log.info("%s: pruned version %d", kb, number)


def _remove_leftovers(kb: Path) -> None:
    """Delete what killed writers left: temporary version files, their DuckDB write-ahead
    logs and spill directories, and temporary pointers. Only under the writer lock."""
    for folder in (kb, kb / _VERSIONS):
        for entry in folder.iterdir():
            if entry.name.startswith(_TMP):
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                log.info("%s: removed %s left by an interrupted update", kb, entry.name)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _writer_lock(kb: Path) -> Iterator[None]:
    """Hold ``KB_DIR/LOCK`` exclusively; fail at once if another writer holds it. The
    kernel releases the lock when its holder dies, so a killed update never blocks the
    next one."""
    kb.mkdir(parents=True, exist_ok=True)
    fd = os.open(kb / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise KnowledgeBaseError(
                f"{kb}: another update of this knowledge base is running (process {holder} "
                f"holds {kb / _LOCK}); expected no other writer: wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)


def _require_kb(kb: Path) -> None:
    """Refuse before taking the lock, which would create ``kb`` and its LOCK file."""
    if not kb.is_dir() or _read_current(kb) is None:
        raise KnowledgeBaseError(
            f"{kb}: no knowledge base (no {_CURRENT} file); expected a directory made by "
            "`sisam learn --kb`: check the path or create the knowledge base first"
        )


def _check_keep(keep_versions: int) -> None:
    if keep_versions < 1:
        raise ValueError(f"keep_versions must be >= 1, got {keep_versions}")


# --------------------------------------------------------------------------------------
# Locating and reading


class _Vanished(Exception):
    """The file CURRENT named was pruned before we opened it: read CURRENT again."""


def _version_path(kb: Path, number: int) -> Path:
    return kb / _VERSIONS / f"{number:06d}.duckdb"


def _version_numbers(kb: Path) -> list[int]:
    folder = kb / _VERSIONS
    if not folder.is_dir():
        return []
    found = (_VERSION_NAME.match(p.name) for p in folder.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def _read_current(kb: Path) -> dict[str, Any] | None:
    path = kb / _CURRENT
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        pointer = json.loads(text)
        if not (isinstance(pointer["version"], int) and isinstance(pointer["file"], str)
                and isinstance(pointer["content_hash"], str)
                and isinstance(pointer["file_bytes"], int)):
            raise TypeError("wrong field types")
    except (ValueError, KeyError, TypeError) as e:
        raise KnowledgeBaseError(
            f"{path}: not a valid pointer ({e}); expected JSON with version, file, "
            f"file_bytes and content_hash, got {text[:80]!r}: repair it with "
            f"sisam.kb.set_current(KB_DIR, N) (versions on disk: {_version_numbers(kb)})"
        ) from e
    if pointer.get("format") != FORMAT:
        raise KnowledgeBaseError(
            f"{path}: knowledge base format {pointer.get('format')}, expected {FORMAT}: "
            "read it with the sisam release that wrote it, or learn it again"
        )
    return pointer


T = TypeVar("T")


def _with_version(kb: Path, version: int | None,
                  action: Callable[[Path, int, dict[str, Any] | None], T]) -> T:
    """Run ``action(path, number, pointer)`` on a version's file; ``pointer`` is CURRENT's
    contents when it names that version (its recorded hash and size then also apply)."""
    for _ in range(_OPEN_ATTEMPTS):
        pointer = _read_current(kb)
        if version is None and pointer is None:
            raise KnowledgeBaseError(
                f"{kb}: no knowledge base (no {_CURRENT} file); expected a directory made "
                "by `sisam learn --kb`: check the path or run `sisam learn`"
            )
        number = pointer["version"] if version is None else version
        own_pointer = pointer if pointer is not None and pointer["version"] == number else None
        path = _version_path(kb, number)
        try:
            if not path.exists():
                raise _Vanished
            if own_pointer is not None and path.stat().st_size != own_pointer["file_bytes"]:
                raise KnowledgeBaseError(
                    f"{path}: {path.stat().st_size} bytes, expected "
                    f"{own_pointer['file_bytes']} as published: the file is truncated or "
                    f"was altered. {_remedy(path)}"
                )
            return action(path, number, own_pointer)
        except _Vanished:
            if version is not None:
                raise KnowledgeBaseError(
                    f"{path}: version {number} is not on disk; expected one of "
                    f"{_version_numbers(kb)} (older versions are pruned)"
                ) from None
    raise KnowledgeBaseError(
        f"{kb}: the version named by {_CURRENT} disappeared {_OPEN_ATTEMPTS} times while "
        "opening it; expected updates to keep it for a while: raise keep_versions"
    )


def _remedy(path: Path) -> str:
    """How to recover from a damaged version file ``path``: rebuild, or roll back."""
    kb = path.parent.parent
    earlier = [n for n in _version_numbers(kb) if _version_path(kb, n) != path]
    back = (f" or point CURRENT to an earlier intact version with "
            f"sisam.kb.set_current(KB_DIR, N) (on disk: {earlier})" if earlier else "")
    return f"Remedy: run `sisam learn` again to rebuild the knowledge base{back}."


@contextmanager
def _read_only(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection; DuckDB failures become errors that name the file."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as e:
        if not path.exists():
            raise _Vanished from e
        raise _unreadable(path, e) from e
    try:
        yield con
    except duckdb.Error as e:
        raise _unreadable(path, e) from e
    finally:
        con.close()


def _unreadable(path: Path, e: duckdb.Error) -> KnowledgeBaseError:
    message = str(e).splitlines()[0] if str(e) else type(e).__name__
    if "could not set lock" in message.lower():
        return KnowledgeBaseError(
            f"{path}: cannot be opened, another process holds it read-write ({message}); "
            "expected only read-only sessions on published versions: close that session "
            "and reopen it with `duckdb -readonly`"
        )
    return KnowledgeBaseError(
        f"{path}: DuckDB cannot read this knowledge base version ({message}); expected a "
        f"complete version file: it is damaged or truncated. {_remedy(path)}"
    )


def _open(kb: Path, version: int | None, expected_catalog_hash: str | None,
          verify: bool) -> KnowledgeBaseVersion:
    def load(path: Path, number: int, pointer: dict[str, Any] | None) -> KnowledgeBaseVersion:
        with _read_only(path) as con:
            meta = _read_metadata(con, path, number)
            own = meta.history[-1]
            if expected_catalog_hash is not None and own.catalog_hash != expected_catalog_hash:
                raise KnowledgeBaseError(
                    f"{path}: built with the knowledge catalog {own.catalog_hash}, expected "
                    f"{expected_catalog_hash} (the catalog in use): its pattern keys and "
                    "labels mean other things. Remedy: run `sisam learn` with the current "
                    "catalog, or use the catalog this knowledge base was learnt with."
                )
            counts = {f: _read_counts(con, path, f, meta) for f in meta.factors}
            tables = _read_extra(con)
        found = None
        if verify:
            found = _content_hash(own.catalog_hash, meta.label_ids, meta.factors, meta.network,
                                  ((f, counts[f], meta.coefficients[f]) for f in meta.factors),
                                  tables)
        _verify_hash(path, own, pointer, found)
        return KnowledgeBaseVersion(number, path, meta.factors, counts, meta.coefficients,
                                    meta.network, meta.label_ids, meta.history,
                                    own.content_hash, own.catalog_hash, tables)

    return _with_version(kb, version, load)


def _verify_hash(path: Path, own: VersionRecord, pointer: dict[str, Any] | None,
                 found: str | None) -> None:
    """Compare the hash CURRENT published, the one the file records and, if computed, the
    one of what was read; any disagreement means the contents changed since publication."""
    expected = pointer["content_hash"] if pointer is not None else own.content_hash
    for what, got in (("recorded in the file", own.content_hash), ("recomputed", found)):
        if got is not None and got != expected:
            raise KnowledgeBaseError(
                f"{path}: content hash {what} is {got}, expected {expected} as published: "
                f"the knowledge base version was modified or damaged after it was written. "
                f"{_remedy(path)}"
            )


class _Metadata(NamedTuple):
    """Everything in a version file but the counts: small, read first."""

    history: tuple[VersionRecord, ...]
    label_ids: tuple[str, ...]
    factors: dict[str, FactorMeta]
    sizes: dict[str, tuple[int, int]]  # factor -> (patterns, error entries)
    coefficients: dict[str, dict[str, np.ndarray]]
    network: dict[str, np.ndarray]


def _read_metadata(con: duckdb.DuckDBPyConnection, path: Path, number: int) -> _Metadata:
    history = _read_history(con, path, number)
    label_ids = _read_labels(con)
    factors, sizes = _read_factors(con)
    names = _value_columns(con, "coefficients")
    coefficients = {f: _read_coefficients(con, f, names, len(label_ids), path)
                    for f in factors}
    return _Metadata(history, label_ids, factors, sizes, coefficients,
                     _read_network(con, len(label_ids), path))


def _read_history(con: duckdb.DuckDBPyConnection, path: Path,
                  number: int) -> tuple[VersionRecord, ...]:
    rows = con.execute(
        f"SELECT {', '.join(_VERSION_FIELDS)} FROM versions ORDER BY version").fetchall()
    history = tuple(_record_from_row(dict(zip(_VERSION_FIELDS, row, strict=True)))
                    for row in rows)
    if not history or history[-1].version != number:
        raise KnowledgeBaseError(
            f"{path}: holds version {history[-1].version if history else 'none'}, expected "
            f"{number} as its name says: version files must not be renamed or swapped"
        )
    if history[-1].format != FORMAT:
        raise KnowledgeBaseError(f"{path}: format {history[-1].format}, expected {FORMAT}: "
                                 "read it with the sisam release that wrote it")
    return history


def _record_from_row(row: dict[str, Any]) -> VersionRecord:
    return VersionRecord(
        version=row["version"], created_at=row["created_at"].replace(tzinfo=dt.UTC),
        parent_version=row["parent_version"], catalog_hash=row["catalog_hash"],
        content_hash=row["content_hash"], format=row["format"],
        sisam_version=row["sisam_version"], duckdb_version=row["duckdb_version"],
        provenance=Provenance(tuple(row["input_files"]), row["date_from"], row["date_to"],
                              row["n_items"], row["n_labelled"]),
        half_life_days=row["half_life_days"], days_elapsed=row["days_elapsed"],
        decay_factor=row["decay_factor"], n_patterns=row["n_patterns"],
    )


def _read_labels(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    return tuple(r[0] for r in con.execute("SELECT id FROM labels ORDER BY label").fetchall())


def _read_factors(
    con: duckdb.DuckDBPyConnection,
) -> tuple[dict[str, FactorMeta], dict[str, tuple[int, int]]]:
    """Factor metadata in name order, and each factor's (patterns, error entries)."""
    rows = con.execute("SELECT factor, attributes, level_counts, salt, n_patterns, "
                       "n_error_entries FROM factors ORDER BY factor").fetchall()
    metas = {r[0]: FactorMeta(r[0], tuple(r[1]), tuple(r[2]), int(r[3])) for r in rows}
    return metas, {r[0]: (r[4], r[5]) for r in rows}


def _value_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [c for c in con.table(table).columns if c not in ("factor", "label")]


def _column(result: dict[str, np.ndarray], name: str, dtype: type) -> np.ndarray:
    return np.ascontiguousarray(result[name], dtype=dtype)


def _read_counts(con: duckdb.DuckDBPyConnection, path: Path, factor: str,
                 meta: _Metadata) -> PatternCounts:
    """One factor's counts, rebuilt as CSR; no row loops: DuckDB hands numpy arrays over,
    and the pattern of each error entry is found by binary search in the sorted keys."""
    p = con.sql("SELECT key, n_labelled, n_declared FROM patterns WHERE factor = $f",
                params={"f": factor}).fetchnumpy()
    e = con.sql("SELECT key, label, k FROM errors WHERE factor = $f",
                params={"f": factor}).fetchnumpy()
    keys = _column(p, "key", np.uint64)
    error_keys = _column(e, "key", np.uint64)
    rows = np.searchsorted(keys, error_keys)
    if rows.size and (rows.max() >= keys.size or np.any(keys[rows] != error_keys)):
        raise KnowledgeBaseError(f"{path}: factor {factor!r} has error counts for patterns it "
                                 f"does not store; the file is damaged. "
                                 f"{_remedy(path)}")
    err_ptr = np.zeros(keys.size + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=keys.size), out=err_ptr[1:])
    counts = PatternCounts(keys, _column(p, "n_labelled", np.float64),
                           _column(p, "n_declared", np.float64), err_ptr,
                           _column(e, "label", np.int16), _column(e, "k", np.float64))
    problem = _counts_problem(counts, len(meta.label_ids))
    if (counts.n_patterns, counts.err_label.size) != meta.sizes[factor]:
        problem = (f"{counts.n_patterns} patterns and {counts.err_label.size} error entries "
                   f"stored, the factors table says {meta.sizes[factor]}")
    if problem:
        raise KnowledgeBaseError(f"{path}: counts of factor {factor!r}: {problem}; expected "
                                 f"the invariants of PatternCounts: the file is damaged. "
                                 f"{_remedy(path)}")
    return counts


def _read_coefficients(con: duckdb.DuckDBPyConnection, factor: str, names: list[str],
                       n_labels: int, path: Path) -> dict[str, np.ndarray]:
    columns = ", ".join(f'"{n}"' for n in ("label", *names))
    result = con.sql(f"SELECT {columns} FROM coefficients WHERE factor = $f ORDER BY label",
                     params={"f": factor}).fetchnumpy()
    return _per_label_from(result, names, n_labels, path, f"coefficients of {factor!r}")


def _read_network(con: duckdb.DuckDBPyConnection, n_labels: int,
                  path: Path) -> dict[str, np.ndarray]:
    names = _value_columns(con, "network_coefficients")
    columns = ", ".join(f'"{n}"' for n in ("label", *names))
    result = con.sql(f"SELECT {columns} FROM network_coefficients ORDER BY label").fetchnumpy()
    return _per_label_from(result, names, n_labels, path, "network coefficients")


def _per_label_from(result: dict[str, np.ndarray], names: list[str], n_labels: int,
                    path: Path, what: str) -> dict[str, np.ndarray]:
    if not np.array_equal(result["label"], np.arange(n_labels)):
        raise KnowledgeBaseError(f"{path}: {what} have labels {result['label'].tolist()}, "
                                 f"expected one row per label 0..{n_labels - 1}")
    return {n: _column(result, n, np.float64) for n in names}


def _stream_hash(con: duckdb.DuckDBPyConnection, path: Path, meta: _Metadata) -> str:
    """The content hash read factor by factor, holding one factor's counts at a time."""
    return _content_hash(meta.history[-1].catalog_hash, meta.label_ids, meta.factors,
                         meta.network,
                         ((f, _read_counts(con, path, f, meta), meta.coefficients[f])
                          for f in meta.factors), _read_extra(con))


def _extra_memory(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Bytes an extra table takes once loaded (``_read_extra``): 8 per number, and per
    string a pointer and a Python ``str``: 49 bytes and one per character if ASCII, else
    (accents: Portuguese descriptions) 74 and two per character (no emoji assumed)."""
    columns = con.execute("SELECT column_name, data_type FROM information_schema.columns "
                          "WHERE table_name = ? ORDER BY ordinal_position", [table]).fetchall()
    parts = [f'coalesce(sum(CASE WHEN strlen("{c}") = length("{c}") THEN 57 + strlen("{c}") '
             f'ELSE 82 + 2 * length("{c}") END), 0)' if t == "VARCHAR" else "8 * count(*)"
             for c, t in columns]
    return int(con.execute(f'SELECT {" + ".join(parts) or "0"} FROM "{table}"').fetchone()[0])


def _extra_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """DuckDB names of the extra tables, in name order."""
    rows = con.execute("SELECT table_name FROM duckdb_tables() ORDER BY table_name").fetchall()
    return [r[0] for r in rows if r[0].startswith(_EXTRA)]


def _read_extra(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, np.ndarray]]:
    tables = {}
    for table in _extra_names(con):
        relation = con.table(f'"{table}"')
        result = relation.fetchnumpy()
        tables[table[len(_EXTRA):]] = {
            c: (np.array([str(v) for v in result[c]], dtype=object)
                if result[c].dtype.kind in "OU" else np.ascontiguousarray(result[c]))
            for c in relation.columns}
    return tables


def _storage_bytes(con: duckdb.DuckDBPyConnection, factors: dict[str, FactorMeta],
                   sizes: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """Bytes per table, column and factor, estimated from DuckDB's storage segments.

    DuckDB reports where each segment starts (block, offset) but not its length. A segment
    followed by another in its block extends up to it; the last segment of a block is
    given its column's bytes per row measured on the other segments (or the rest of the
    block when there are none, as for tiny tables, which are overstated). Overflow blocks
    count whole. Segments are attributed to factors by the rows they hold: rows are stored
    in factor order, so each factor owns a contiguous row range of patterns and errors.
    """
    block = int(con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0])
    segments = []  # (table, row_group, column, is_data, start, count, block, offset, extra)
    for table in _TABLES:
        for row in con.execute(
            "SELECT row_group_id, column_name, segment_type != 'VALIDITY', start, count, "
            f"block_id, block_offset, len(additional_block_ids) "
            f"FROM pragma_storage_info('{table}')"
        ).fetchall():
            segments.append((table, *row))
    size = [0.0] * len(segments)
    last_in_block = []
    by_block: dict[int, list[int]] = {}
    for i, s in enumerate(segments):
        if s[6] >= 0:
            by_block.setdefault(s[6], []).append(i)
    for members in by_block.values():
        members.sort(key=lambda i: segments[i][7])
        for i, following in itertools.pairwise(members):
            size[i] = segments[following][7] - segments[i][7]
        last_in_block.append(members[-1])
    per_row: dict[tuple[str, str, bool], list[float]] = {}
    for i, s in enumerate(segments):
        if size[i] and s[5]:
            per_row.setdefault((s[0], s[2], s[3]), []).append(size[i] / s[5])
    for i in last_in_block:
        s = segments[i]
        measured = per_row.get((s[0], s[2], s[3]))
        rest = block - s[7]
        size[i] = min(rest, float(np.median(measured)) * s[5]) if measured else rest
    for i, s in enumerate(segments):
        size[i] += s[8] * block
    tables: dict[str, dict[str, Any]] = {}
    for table in _TABLES:
        rows = int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        tables[table] = {"rows": rows, "bytes": 0, "columns": {}}
    for s, nbytes in zip(segments, size, strict=True):
        t = tables[s[0]]
        t["bytes"] += round(nbytes)
        t["columns"][s[2]] = t["columns"].get(s[2], 0) + round(nbytes)
    per_factor = dict.fromkeys(factors, 0.0)
    for table, which in (("patterns", 0), ("errors", 1)):
        bounds = np.cumsum([0, *(sizes[f][which] for f in factors)])
        group_rows: dict[int, int] = {}
        for s in segments:
            if s[0] == table and s[2] == "key" and s[3]:
                group_rows[s[1]] = group_rows.get(s[1], 0) + s[5]
        ordered = sorted(group_rows)
        group_start = dict(zip(ordered, np.cumsum([0, *(group_rows[g] for g in ordered)]),
                               strict=False))
        for s, nbytes in zip(segments, size, strict=True):
            if s[0] != table or not s[5]:
                continue
            lo = group_start[s[1]] + s[4]
            hi = lo + s[5]
            for j, f in enumerate(factors):
                overlap = min(hi, bounds[j + 1]) - max(lo, bounds[j])
                if overlap > 0:
                    per_factor[f] += nbytes * overlap / s[5]
    return {"tables": tables, "factors": {f: round(b) for f, b in per_factor.items()}}


def _summary(arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    return {name: {"min": float(np.min(a)), "median": float(np.median(a)),
                   "max": float(np.max(a))} for name, a in arrays.items()}
