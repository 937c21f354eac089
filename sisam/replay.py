"""Replay a reasoning log: recompute every probability and check it bit for bit.

``sisam replay FILE.jsonl [--kb KB]`` reads a log written by ``sisam score --log``
(``sisam.reasoning_log``) and reports, each with its record (line) number and field:

1. **The chain.** Every record's ``seq`` is its line number and its ``prev`` the sha256 of
   the previous record's canonical bytes; the header comes first and the ``end`` record
   last, counting the records. An edited record breaks the next ``prev``, a removed or
   moved record breaks ``seq``, a cut log loses its ``end``.
2. **The log alone.** From each error record's counts (the item record's n, its own k),
   coefficients (S, d, dnet) and the model's structure in the header, the HPB recursion
   is run again through the scoring kernel itself (``hpb.trace_factor``, on counts
   rebuilt from the log under stand-in keys), then the network combination, the "any"
   clip and the logistic, exactly as the scorer composes them
   (``attribution.decompose``'s formulas). Every logged prior, posterior, contribution,
   factor log-odds, root offset, base rate, calibration, weight, network log-odds, final
   log-odds and probability must come out with the very same bits; and every number of the
   explanation's values must be one the record holds (n, k, rate = k / n, contributions
   summed as the explainer sums them), so that no sentence quotes a figure from nowhere.
3. **The knowledge base** (``--kb``): the log names a version and its content hash; that
   version is opened (refused, with ``ReplayError``, if the folder does not hold it or
   holds different content under that number), the item's keys are scored against it as
   ``sisam score`` does, and every count, coefficient and probability must equal the
   logged one.

Recomputing the kernel's arithmetic, not a formula on paper, is what makes bit-for-bit
equality the right test: the kernels use their own exp and log (``engine.hpb``), results
do not depend on batch or thread count, and a stand-in key finds the same counts a real
key found. The log is read in batches of items, so memory stays bounded however long it is.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sisam.attribution import network_calibration, pattern_contributions
from sisam.engine.counts import PatternCounts
from sisam.engine.hashtable import build_index
from sisam.engine.hpb import path_weights, trace_factor
from sisam.engine.lattice import Lattice, build_lattice
from sisam.engine.levels import mix64
from sisam.engine.network import coherent_any, combine, logistic, probabilities
from sisam.errors import SisamError
from sisam.reasoning_log import (
    ERROR_TEMPLATE,
    FORMAT,
    FORMAT_VERSION,
    ITEM_TEMPLATE,
    LogLine,
    read_records,
)

log = logging.getLogger("sisam.replay")

#: Items replayed together: one kernel call per (factor, S, d) serves the whole batch.
REPLAY_BATCH = 256
#: Findings listed in full; beyond, only counted (a log replayed against the wrong data
#: could otherwise print millions of lines).
MAX_FINDINGS = 1000


class ReplayError(SisamError):
    """The log cannot be replayed at all: unreadable header, unknown format, or a
    knowledge base other than the one the log names."""


@dataclass(frozen=True)
class Finding:
    """One problem: the record (its line number in the log), the field (a path such as
    ``factors.classification.lo_posterior[12]``) and what was found."""

    record: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"record {self.record}: {self.field}: {self.message}"


@dataclass
class ReplayReport:
    """What a replay checked and found. ``ok`` when nothing was found."""

    path: Path
    records: int = 0
    items: int = 0
    probabilities: int = 0
    kb: str | None = None
    findings: list[Finding] = field(default_factory=list)
    more_findings: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, record: int, field_name: str, message: str) -> None:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(Finding(record, field_name, message))
        else:
            self.more_findings += 1

    def render(self) -> str:
        lines = [str(f) for f in self.findings]
        if self.more_findings:
            lines.append(f"... and {self.more_findings:,} more finding(s)")
        against = f" and against knowledge base {self.kb}" if self.kb else ""
        verdict = (
            f"{self.path}: {self.records:,} records, {self.items:,} items, {self.probabilities:,} probabilities "
            f"recomputed from the log{against}: "
        )
        total = len(self.findings) + self.more_findings
        lines.append(verdict + ("all identical, chain intact" if self.ok else f"{total:,} problem(s)"))
        return "\n".join(lines)


def _float_text(x: Any) -> str:
    return repr(float(x)) if isinstance(x, int | float) and not isinstance(x, bool) else repr(x)


# ------------------------------------------------------------------- the model, rebuilt


@dataclass(frozen=True)
class _Model:
    """The header's model structure: factors in catalog order, lattices, networks."""

    labels: tuple[str, ...]
    factors: tuple[str, ...]
    lattices: dict[str, Lattice]
    networks: dict[str, tuple[str, ...]]
    base_factor: str
    weights: dict[str, list[list[float]]]
    kb: dict[str, Any]
    lang: str
    _weights: dict[tuple[str, float], np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_header(cls, header: Mapping[str, Any]) -> _Model:
        try:
            knowledge = header["knowledge"]
            factors = tuple(f["name"] for f in knowledge["factors"])
            lattices = {f["name"]: build_lattice([len(levels) for levels in f["levels"]]) for f in knowledge["factors"]}
            networks = {label: tuple(names) for label, names in knowledge["networks"].items()}
            return cls(
                labels=tuple(knowledge["labels"]),
                factors=factors,
                lattices=lattices,
                networks=networks,
                base_factor=header["base_factor"],
                weights=header["weights"],
                kb=header["kb"],
                lang=header["lang"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReplayError(f"header (record 1): the model's structure is incomplete or malformed: {exc!r}") from None

    def path_weights(self, factor: str, d: float) -> np.ndarray:
        """float64[S, 1] ``hpb.path_weights`` of a factor for one d, computed once."""
        weights = self._weights.get((factor, d))
        if weights is None:
            weights = self._weights[factor, d] = path_weights(self.lattices[factor], np.array([d]))
        return weights

    def members(self, label: str) -> tuple[str, ...]:
        """The label's factors in catalog order: the order the network adds them in."""
        return tuple(f for f in self.factors if f in self.networks[label])


# ------------------------------------------------------------------------ reading


@dataclass
class _Item:
    line: int
    record: dict[str, Any]
    errors: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def _check_header(line: LogLine, path: Path) -> dict[str, Any]:
    record = line.record
    if record is None:
        raise ReplayError(f"{path}: record 1: {line.problem}; expected the header of a sisam reasoning log")
    if record.get("kind") != "header" or record.get("format") != FORMAT:
        raise ReplayError(f"{path}: record 1 is not a sisam reasoning-log header (format {record.get('format')!r}, kind {record.get('kind')!r})")
    if record.get("format_version") != FORMAT_VERSION:
        raise ReplayError(
            f"{path}: log format version {record.get('format_version')!r}; this sisam reads version {FORMAT_VERSION}"
        )
    return record


def _batches(path: Path, report: ReplayReport) -> Iterator[tuple[dict[str, Any], list[_Item]]]:
    """Verify the chain while streaming; yield (header, batch of items with their error
    records). Error records are attached to the item record they name."""
    lines = read_records(path)
    try:
        first = next(lines)
    except StopIteration:
        raise ReplayError(f"{path}: empty file; expected a sisam reasoning log") from None
    header = _check_header(first, path)
    report.records = 1
    previous = first
    previous_seq = 1
    items: dict[int, _Item] = {}  # by the seq they were written with: error records refer to it
    batch: list[_Item] = []
    ended = None
    n_items = 0
    for line in lines:
        number, record = line.number, line.record
        report.records = number
        if record is None:
            report.add(number, "record", line.problem)
            previous, previous_seq = line, previous_seq + 1
            continue
        if ended is not None:
            report.add(number, "kind", f"record after the end record (record {ended})")
        seq = record.get("seq")
        # seq follows the previous record's, not the line number: after one removal, only
        # the record at the gap is flagged, not every record after it
        if seq != previous_seq + 1:
            report.add(
                number, "seq",
                f"is {seq!r}, expected {previous_seq + 1} (the record after {previous_seq}): records are "
                "missing here, or out of order",
            )  # fmt: skip
        previous_seq = seq if isinstance(seq, int) else previous_seq + 1
        # the fast path hashes the previous line's bytes as they are (sisam writes them
        # canonical); only a line in another form is put in canonical form first
        prev = record.get("prev")
        if prev != previous.raw_hash() and prev != previous.hash():
            report.add(
                number, "prev",
                f"does not match the sha256 of the record before it (line {number - 1}): that record "
                "was edited, or records were removed or reordered",
            )  # fmt: skip
        previous = line
        kind = record.get("kind")
        if kind == "item":
            if len(batch) >= REPLAY_BATCH:
                yield header, batch
                batch = []
                items = {}
            n_items += 1
            item = _Item(number, record)
            items[previous_seq] = item
            batch.append(item)
        elif kind == "error":
            target = items.get(record.get("item")) if isinstance(record.get("item"), int) else None
            if target is None:
                report.add(number, "item", f"refers to record {record.get('item')!r}, which is not an item record of this part of the log")
            else:
                target.errors.append((number, record))
        elif kind == "end":
            ended = number
            if record.get("records") != number:
                report.add(number, "records", f"says {record.get('records')!r} records, the file has {number}")
            if record.get("items") != n_items:
                report.add(number, "items", f"says {record.get('items')!r} items, the file has {n_items}")
        else:
            report.add(number, "kind", f"unknown record kind {kind!r}")
    if ended is None:
        report.add(report.records, "end", "the log has no end record: it was cut short or is still being written")
    if batch:
        yield header, batch


# ------------------------------------------------------------------- recomputation


def _array(report: ReplayReport, number: int, name: str, value: Any, size: int) -> np.ndarray | None:
    """A logged list of ``size`` finite numbers as float64, or a finding."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        report.add(number, name, f"expected a list of {size} numbers, got {str(value)[:80]}")
        return None
    if array.shape != (size,) or not np.isfinite(array).all():
        report.add(number, name, f"expected {size} finite numbers, got shape {array.shape}")
        return None
    return array


def _compare(report: ReplayReport, number: int, name: str, logged: Any, recomputed: np.ndarray | float, source: str = "") -> None:
    """Bit-for-bit comparison of logged numbers with recomputed ones (float64 equality;
    the log's ``repr`` floats read back to the same doubles)."""
    # the common cases first, without numpy's cost per call
    if isinstance(recomputed, float):
        if type(logged) is float and logged == recomputed:
            return
    elif isinstance(logged, list) and isinstance(recomputed, np.ndarray) and logged == recomputed.tolist():
        return
    recomputed = np.asarray(recomputed, dtype=np.float64)
    try:
        logged_array = np.asarray(logged, dtype=np.float64)
    except (TypeError, ValueError):
        report.add(number, name, f"is {str(logged)[:80]}, expected a number")
        return
    if logged_array.shape != recomputed.shape:
        report.add(number, name, f"has shape {logged_array.shape}, expected {recomputed.shape}")
        return
    differ = ~((logged_array == recomputed) | (np.isnan(logged_array) & np.isnan(recomputed)))
    if not differ.any():
        return
    suffix = f" (recomputed {source})" if source else ""
    if recomputed.ndim == 0:
        report.add(number, name, f"logged {_float_text(logged_array.item())}, recomputed {_float_text(recomputed.item())}{suffix}")
        return
    where = np.flatnonzero(differ)
    first = int(where[0])
    more = f"; {where.size - 1} more entries differ" if where.size > 1 else ""
    report.add(
        number, f"{name}[{first}]",
        f"logged {_float_text(logged_array[first])}, recomputed {_float_text(recomputed[first])}{suffix}{more}",
    )  # fmt: skip


def _stand_in_counts(n: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, PatternCounts]:
    """Counts rebuilt from logged (n, k) rows: row j's pattern at shape s gets a stand-in
    key of its own (splitmix64 of a counter: distinct, well mixed), so the kernel finds
    exactly the logged counts where the scorer found the real ones. Returns the keys
    uint64[m, S] and the ``PatternCounts`` (one label)."""
    m, n_shapes = n.shape
    keys = mix64(np.arange(1, m * n_shapes + 1, dtype=np.uint64)).reshape(m, n_shapes)
    order = np.argsort(keys, axis=None)
    flat_n, flat_k = n.reshape(-1)[order], k.reshape(-1)[order]
    has_error = flat_k != 0.0
    err_ptr = np.zeros(flat_n.size + 1, dtype=np.int64)
    np.cumsum(has_error, out=err_ptr[1:])
    counts = PatternCounts(
        keys.reshape(-1)[order],
        flat_n,
        flat_n.copy(),
        err_ptr,
        np.zeros(int(has_error.sum()), dtype=np.int16),
        flat_k[has_error],
    )
    return keys, counts


def _trace(lattice: Lattice, n: np.ndarray, k: np.ndarray, s: float, d: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """lo_prior, lo_post float64[m, S] of m logged count rows under one (S, d), and the
    factor's answer float64[m] (computed as the scoring kernel computes it)."""
    keys, counts = _stand_in_counts(n, k)
    trace = trace_factor(keys, lattice, counts, build_index(counts.keys), np.array([s]), np.array([d]))
    return trace.lo_prior[:, :, 0], trace.lo_post[:, :, 0], trace.full[:, 0]


@dataclass
class _Job:
    number: int
    record: dict[str, Any]
    item: _Item
    label: str
    members: tuple[str, ...]
    lo_prior: dict[str, np.ndarray] = field(default_factory=dict)
    lo_post: dict[str, np.ndarray] = field(default_factory=dict)
    full: dict[str, float] = field(default_factory=dict)
    base: float | None = None
    network: float | None = None
    valid: bool = True


def _replay_batch(model: _Model, batch: list[_Item], report: ReplayReport) -> None:
    jobs: list[_Job] = []
    groups: dict[tuple[str, float, float], list[tuple[_Job, np.ndarray, np.ndarray]]] = defaultdict(list)
    bases: list[tuple[_Job, float, float]] = []
    for item in batch:
        for number, record in item.errors:
            job = _prepare(model, number, record, item, report)
            if job is None:
                continue
            jobs.append(job)
            for name in job.members:
                entry = record["factors"][name]
                coefficients = record["coefficients"]["factors"][name]
                size = model.lattices[name].n_shapes
                n = _array(report, item.line, f"factors.{name}.n", item.record["factors"][name].get("n"), size)
                k = _array(report, number, f"factors.{name}.k", entry.get("k"), size)
                if n is None or k is None:
                    job.valid = False
                    break
                groups[name, float(coefficients["S"]), float(coefficients["d"])].append((job, n, k))
            base = record["base"]
            bases.append((job, float(base["n"]), float(base["k"])))
    for (name, s, d), members in groups.items():
        n = np.stack([m[1] for m in members])
        k = np.stack([m[2] for m in members])
        lo_prior, lo_post, full = _trace(model.lattices[name], n, k, s, d)
        for j, (job, _, _) in enumerate(members):
            job.lo_prior[name], job.lo_post[name], job.full[name] = lo_prior[j], lo_post[j], full[j]
    if bases:
        lattice = model.lattices[model.base_factor]
        n = np.zeros((len(bases), lattice.n_shapes))
        k = np.zeros((len(bases), lattice.n_shapes))
        n[:, 0] = [b[1] for b in bases]
        k[:, 0] = [b[2] for b in bases]
        # the root's posterior does not depend on S or d (hpb.md: p_e = (k + 1/2) / (n + 1))
        _, lo_post, _ = _trace(lattice, n, k, 1.0, 1.0)
        for j, (job, _, _) in enumerate(bases):
            job.base = float(lo_post[j, 0])
    for job in jobs:
        if job.valid:
            _check_record(model, job, report)
    _check_items(model, batch, jobs, report)


def _prepare(model: _Model, number: int, record: dict[str, Any], item: _Item, report: ReplayReport) -> _Job | None:
    label = record.get("error")
    if label not in model.labels:
        report.add(number, "error", f"unknown label {label!r}")
        return None
    members = model.members(label)
    try:
        present = set(record["factors"])
        missing = [name for name in members if name not in present or name not in record["coefficients"]["factors"]]
        float(record["base"]["n"]), float(record["base"]["k"])
        float(record["coefficients"]["dnet"])
    except (KeyError, TypeError, ValueError) as exc:
        report.add(number, "record", f"incomplete error record: {exc!r}")
        return None
    if missing or present - set(members):
        report.add(number, "factors", f"expected the factors of {label!r}'s network {list(members)}, got {sorted(present)}")
        return None
    if record.get("declaration_id") != item.record.get("declaration_id") or record.get("item_no") != item.record.get("item_no"):
        report.add(number, "declaration_id", f"names another item than its item record {item.line}")
    return _Job(number, record, item, label, members)


def _check_record(model: _Model, job: _Job, report: ReplayReport) -> None:
    """Everything of one error record that depends on that record alone."""
    record, number, label = job.record, job.number, job.label
    e = model.labels.index(label)
    dnet = float(record["coefficients"]["dnet"])
    m = len(job.members)
    calibration = network_calibration(np.ones((m, 1), dtype=bool), np.array([dnet]))
    _compare(report, number, "coefficients.calibration", record["coefficients"]["calibration"], calibration[0])
    _compare(report, number, "base.log_odds", record["base"]["log_odds"], job.base)
    base = np.array([job.base])
    full = []
    for name in job.members:
        entry = record["factors"][name]
        d = float(record["coefficients"]["factors"][name]["d"])
        weights = model.path_weights(name, d)
        lo_prior, lo_post = job.lo_prior[name], job.lo_post[name]
        _compare(report, number, f"factors.{name}.lo_prior", entry.get("lo_prior"), lo_prior)
        _compare(report, number, f"factors.{name}.lo_posterior", entry.get("lo_posterior"), lo_post)
        contribution = pattern_contributions(calibration, weights, lo_prior[None, :, None], lo_post[None, :, None])[0, :, 0]
        _compare(report, number, f"factors.{name}.contribution", entry.get("contribution"), contribution)
        _compare(report, number, f"factors.{name}.log_odds", entry.get("log_odds"), job.full[name])
        _compare(report, number, f"factors.{name}.root_offset", entry.get("root_offset"), calibration[0] * (lo_post[0] - job.base))
        header_weights = model.weights.get(name)
        if header_weights is not None and len(header_weights) > e:
            recomputed = (calibration[None, :] * weights)[:, 0]
            _compare(report, number, f"weights.{name}", header_weights[e], recomputed, "from this record's d and dnet, against the header's")
        full.append(np.array([[job.full[name]]]))
    network = combine(full, base, np.ones((m, 1), dtype=bool), np.array([dnet]))[0, 0] if m else job.base
    job.network = float(network)
    _compare(report, number, "network_log_odds", record.get("network_log_odds"), job.network)
    _compare(report, number, "lift", record.get("lift"), job.network - job.base)
    _check_explanation(job, report)


def _check_items(model: _Model, batch: list[_Item], jobs: list[_Job], report: ReplayReport) -> None:
    """The "any" clip needs every label of the item: final log-odds and probabilities are
    checked per item, as ``coherent_any`` and ``probabilities`` compute them."""
    by_item: dict[int, dict[str, _Job]] = defaultdict(dict)
    for job in jobs:
        if job.network is not None:
            by_item[job.item.line][job.label] = job
    for item in batch:
        report.items += 1
        found = by_item.get(item.line, {})
        complete = len(found) == len(model.labels)
        lo = np.array([[found[label].network if label in found else np.nan for label in model.labels]])
        final = coherent_any(lo) if complete else lo
        p = probabilities(final)
        for j, label in enumerate(model.labels):
            job = found.get(label)
            if job is None:
                continue
            if j == len(model.labels) - 1 and not complete:
                missing = [lbl for lbl in model.labels if lbl not in found]
                report.add(job.number, "log_odds", f"cannot be recomputed: the item's records for {missing} are missing or unreadable")
                continue
            if label == model.labels[-1]:
                _check_item_explanation(item, p[0, j], report)
            _compare(report, job.number, "log_odds", job.record.get("log_odds"), final[0, j])
            _compare(report, job.number, "probability", job.record.get("probability"), p[0, j])
            clip = job.record.get("clip")
            if (clip is None) != (final[0, j] == lo[0, j]):
                report.add(job.number, "clip", f"is {clip!r}, but the recomputed clip {'does not apply' if final[0, j] == lo[0, j] else 'applies'}")
            report.probabilities += 1


def _check_item_explanation(item: _Item, p_any: float, report: ReplayReport) -> None:
    explanation = item.record.get("explanation")
    if not isinstance(explanation, dict) or explanation.get("template") != ITEM_TEMPLATE:
        report.add(item.line, "explanation.template", f"expected {ITEM_TEMPLATE!r}")
        return
    values = explanation.get("values") or {}
    _compare(report, item.line, "explanation.values.p_any", values.get("p_any"), p_any)


def _check_explanation(job: _Job, report: ReplayReport) -> None:
    """Every number the explanation's values hold is one of the record's."""
    record, number = job.record, job.number
    explanation = record.get("explanation")
    if not isinstance(explanation, dict) or explanation.get("template") != ERROR_TEMPLATE:
        report.add(number, "explanation.template", f"expected {ERROR_TEMPLATE!r}")
        return
    values = explanation.get("values")
    if not isinstance(values, dict):
        report.add(number, "explanation.values", "missing")
        return
    _compare(report, number, "explanation.values.probability", values.get("probability"), np.float64(record.get("probability", np.nan)))
    _compare(report, number, "explanation.values.base_rate", values.get("base_rate"), logistic(np.float64(job.base)))
    _compare(report, number, "explanation.values.lift", values.get("lift"), np.float64(job.network - job.base))
    entries = [("up", i, v) for i, v in enumerate(values.get("up") or [])]
    entries += [("down", i, v) for i, v in enumerate(values.get("down") or [])]
    novel = values.get("novel")
    if novel:
        entries += [("novel.sources", i, v) for i, v in enumerate(novel.get("sources") or [])]
    # an evidence figure quoted for the error must be the item record's, verbatim
    logged = {f.get("model"): f for f in job.item.record.get("evidence") or [] if isinstance(f, dict)}
    for i, facts in enumerate(values.get("consistency") or []):
        if not isinstance(facts, dict) or logged.get(facts.get("model")) != facts:
            report.add(number, f"explanation.values.consistency[{i}]", "differs from the item record's evidence facts")
    for where, i, entry in entries:
        name = f"explanation.values.{where}[{i}]"
        try:
            patterns = [(str(f), int(s)) for f, s in entry["patterns"]]
            contributions = [record["factors"][f]["contribution"][s] for f, s in patterns]
            f0, s0 = patterns[0]
            n = job.item.record["factors"][f0]["n"][s0]
            k = record["factors"][f0]["k"][s0]
        except (KeyError, IndexError, TypeError, ValueError):
            report.add(number, f"{name}.patterns", "does not name patterns of this record")
            continue
        _compare(report, number, f"{name}.n", entry.get("n"), np.float64(n))
        _compare(report, number, f"{name}.k", entry.get("k"), np.float64(k))
        _compare(report, number, f"{name}.rate", entry.get("rate"), np.float64(k) / np.float64(n) if n else np.nan)
        try:
            f, s = str(entry["expected_at"][0]), int(entry["expected_at"][1])
            prior = record["factors"][f]["lo_prior"][s]
        except (KeyError, IndexError, TypeError, ValueError):
            report.add(number, f"{name}.expected_at", "does not name a pattern of this record")
        else:
            _compare(report, number, f"{name}.expected", entry.get("expected"), logistic(np.float64(prior)))
        _compare(report, number, f"{name}.contribution", entry.get("contribution"), np.float64(sum(contributions)))


# -------------------------------------------------------------- the knowledge base


def _check_kb(model: _Model, batch: list[_Item], version: Any, report: ReplayReport, indexes: dict[str, Any]) -> None:
    """Score the batch's items from their logged keys against the knowledge base, as
    ``sisam score`` does, and compare counts, coefficients and probabilities."""
    labels = model.labels
    if tuple(version.label_ids) != labels:
        raise ReplayError(f"the knowledge base's labels {version.label_ids} differ from the log's {labels}")
    items = [item for item in batch if all(name in item.record.get("factors", {}) for name in model.factors)]
    if not items:
        return
    traces = {}
    for name in model.factors:
        lattice = model.lattices[name]
        try:
            keys = np.array([[int(key, 16) for key in item.record["factors"][name]["keys"]] for item in items], dtype=np.uint64)
        except (KeyError, TypeError, ValueError):
            report.add(items[0].line, f"factors.{name}.keys", "expected one hexadecimal key per shape")
            return
        if keys.shape != (len(items), lattice.n_shapes):
            report.add(items[0].line, f"factors.{name}.keys", f"expected {lattice.n_shapes} keys per item")
            return
        coefficients = version.coefficients[name]
        traces[name] = trace_factor(keys, lattice, version.counts[name], indexes[name], coefficients["S"], coefficients["d"])
        for i, item in enumerate(items):
            _compare(report, item.line, f"factors.{name}.n", item.record["factors"][name].get("n"), traces[name].n[i], "from the knowledge base")
    membership = np.array([[name in model.networks[label] for label in labels] for name in model.factors])
    dnet = version.network_coefficients["dnet"]
    base = traces[model.base_factor].lo_post[0, 0, :]
    lo = coherent_any(combine([traces[name].full for name in model.factors], base, membership, dnet))
    p = probabilities(lo)
    for i, item in enumerate(items):
        for number, record in item.errors:
            label = record.get("error")
            if label not in labels:
                continue
            e = labels.index(label)
            if record.get("kb") != {"version": version.version, "content_hash": version.content_hash}:
                report.add(number, "kb", f"is {record.get('kb')!r}, the log's knowledge base is version {version.version}, content {version.content_hash}")
            _compare(report, number, "coefficients.dnet", record.get("coefficients", {}).get("dnet"), dnet[e], "from the knowledge base")
            for name, entry in (record.get("factors") or {}).items():
                if name not in traces:
                    continue
                coefficients = record.get("coefficients", {}).get("factors", {}).get(name, {})
                for key in ("S", "d"):
                    _compare(report, number, f"coefficients.factors.{name}.{key}", coefficients.get(key), version.coefficients[name][key][e], "from the knowledge base")
                _compare(report, number, f"factors.{name}.k", entry.get("k"), traces[name].k[i, :, e], "from the knowledge base")
            _compare(report, number, "probability", record.get("probability"), p[i, e], "from the knowledge base")


def _open_kb(model: _Model, kb_dir: Path) -> Any:
    from sisam import kb

    wanted = model.kb
    try:
        version = kb.open_version(kb_dir, version=int(wanted["version"]), expected_catalog_hash=wanted.get("catalog_hash"))
    except SisamError as exc:
        raise ReplayError(
            f"{kb_dir}: cannot replay against this knowledge base: the log was written with version "
            f"{wanted['version']} (content {wanted['content_hash']}): {exc}"
        ) from None
    if version.content_hash != wanted["content_hash"]:
        raise ReplayError(
            f"{kb_dir}: version {version.version} has content hash {version.content_hash}, the log was "
            f"written with content {wanted['content_hash']}: a different knowledge base; expected the "
            "knowledge base the log names"
        )
    if set(version.factors) != set(model.factors):
        raise ReplayError(f"{kb_dir}: factors {sorted(version.factors)} differ from the log's {sorted(model.factors)}")
    return version


def replay(path: Path, kb_dir: Path | None = None) -> ReplayReport:
    """Verify a reasoning log's chain and recompute every probability from it (and, with
    ``kb_dir``, from the knowledge base it names). Raises ``ReplayError`` when the log
    cannot be replayed at all; problems found along the way are ``findings``."""
    path = Path(path)
    if not path.is_file():
        raise ReplayError(f"{path}: no such reasoning log")
    report = ReplayReport(path, kb=None if kb_dir is None else str(kb_dir))
    model = None
    version = None
    indexes: dict[str, Any] = {}
    for header, batch in _batches(path, report):
        if model is None:
            model = _Model.from_header(header)
            if kb_dir is not None:
                version = _open_kb(model, kb_dir)
                indexes = {name: build_index(version.counts[name].keys) for name in model.factors}
        _replay_batch(model, batch, report)
        if version is not None:
            _check_kb(model, batch, version, report, indexes)
    if model is None and kb_dir is not None:
        # a log of no items: the knowledge base it names must still be the one given
        _open_kb(_Model.from_header(_check_header(next(read_records(path)), path)), kb_dir)
    log.info("%s", report.render().splitlines()[-1])
    return report

