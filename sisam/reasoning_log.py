"""Reasoning logs: every figure sisam scores, with everything needed to recompute it.

brief.md: SISAM "writes logs of its full reasoning, so that every figure is auditable".
``sisam score --log FILE.jsonl`` writes one such log; ``sisam replay FILE.jsonl``
(``sisam.replay``) recomputes every probability from it and checks it bit for bit.

Format: JSON Lines, UTF-8, one record a line, each record a JSON object in canonical form
(``canonical_bytes``: keys sorted, no spaces, floats as Python's ``repr``, which reads back
to the very same double). Records, in order:

``header`` (line 1)
    format and version, sisam's version, creation time, language of the explanations,
    whether values are pseudonymised; the knowledge catalog's hash and the model's
    structure (labels, factors with their attributes, columns and levels, each label's
    network); the knowledge base read (folder, version, content hash, dates it covers);
    ``base_factor``, the factor whose root gives every label's base rate.
``item`` (one per scored item)
    the item's key, ``read``: the values of every column the model reads (or their sha256
    when pseudonymised, ``explain.pseudonym``), and per factor, every pattern of its
    lattice in shape order: its 64-bit ``keys`` (hex; the knowledge base's ``patterns``
    table is keyed by them), ``n`` (inspected items counted at it) and ``patterns``, each
    the item's non-wildcard attributes with their level and the item's value there
    (``{"hs_code": ["prefix:4", "8481"], "importer": ["value", "IMP00012"]}``); ``evidence``:
    the facts behind every evidence band (``sisam.evidence``: the band, the declared and
    usual values, the contexts and their declaration counts; the bands themselves are the
    values of the evidence attributes' patterns). Plus the item-level explanation
    (template ``item.txt`` and its values).
``error`` (31 per item, label order: the 30 error types, then "any")
    the knowledge base version and content hash; the coefficients (S and d of each factor
    of the label's network, dnet, the calibration c); the base rate (the base factor's root
    counts and lo(p_e)); per factor of the network, aligned with the item record's
    patterns: ``k`` (errors found among the n), ``lo_prior`` and ``lo_posterior`` (log-odds
    of prior(W) and P(W)), ``weight`` (c w_W) and ``contribution`` (c w_W delta_W), with
    the factor's ``log_odds`` and ``root_offset``; the network's log-odds, the "any" clip
    when it applies, the final log-odds and probability, the ``lift`` the contributions add
    up to; and the explanation (template ``error.txt`` and its values, the only data the
    template receives: every number of a sentence is here).
``end`` (last line)
    how many items and records the log holds.

Why items and errors are separate records: a pattern's key, its description and its n are
the same for the 31 labels; written once per label they would make the log about three
times larger. Error records refer to their item record by its line number (``item``).

Chain. Every record but the header carries ``prev``, the sha256 of the previous record's
canonical bytes (so the first item record carries the header's hash), and ``seq``, its own
line number. Editing a record changes its hash and breaks the next record's ``prev``;
deleting or swapping records breaks ``seq`` and ``prev``; cutting the tail loses the
``end`` record. A chain detects accidents and tampering by anyone who does not also
rewrite every later hash: keep the last record's hash (``last_hash``, printed by ``sisam
score``) apart from the log to close that gap.

The log is written to a temporary file beside its destination and renamed into place when
scoring succeeded, like every table sisam writes: a reader never sees half a log.

Pseudonymising (``--pseudonymise``) replaces every value the item record's ``read`` and
pattern descriptions hold, and the values the explanations quote, by its sha256; parties
and places are named "this importer" anyway. Keys and counts stay: they are what replay
needs. A sha256 of a short identifier can be found by trying candidates: this keeps
values out of casual sight, it does not anonymise.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sisam import __version__
from sisam.attribution import Attribution, FactorEvidence, iter_attributions, network_calibration
from sisam.contract import COLUMNS, KEY, SCORE_PREFIX
from sisam.engine.hpb import path_weights
from sisam.errors import SisamError
from sisam.explain import ItemEvidence, hide_facts, item_values, kb_facts, pseudonym
from sisam.formatting import LANGUAGES
from sisam.knowledge import Knowledge

if TYPE_CHECKING:
    from sisam.model import Scorer

log = logging.getLogger("sisam.reasoning_log")

FORMAT = "sisam-reasoning-log"
FORMAT_VERSION = 1
ITEM_TEMPLATE = "item.txt"
ERROR_TEMPLATE = "error.txt"
#: Items attributed at once while logging (bounds the trace's memory, see attribution).
LOG_CHUNK = 512
#: A log named ``*.gz`` is gzip-compressed, at the fastest level: logs of floats shrink
#: about three times at level 1, hardly more at 9, which costs several times the time.
GZIP_LEVEL = 1


class ReasoningLogError(SisamError):
    """A reasoning log cannot be read: not JSON Lines, not a sisam log, or of a format
    version this sisam does not know."""


# check_circular off: records are trees built here (shared leaves are no cycles), and the
# check costs a tenth of the encoding time
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
)


def canonical_bytes(record: Mapping[str, Any]) -> bytes:
    """The bytes a record is written and hashed as: JSON with sorted keys, no spaces,
    UTF-8, floats by ``repr`` (exact round trip), NaN and infinities refused."""
    return _CANONICAL.encode(record).encode("utf-8")


def record_hash(record: Mapping[str, Any]) -> str:
    """sha256 (hex) of a record's canonical bytes: what the next record's ``prev`` holds."""
    return hashlib.sha256(canonical_bytes(record)).hexdigest()


def _gzipped(path: Path) -> bool:
    return Path(path).suffix == ".gz"


@dataclass(frozen=True)
class LogLine:
    """One line of a log: its number, its bytes (newline removed), and the record it holds
    (None, with ``problem`` saying why, when it holds none)."""

    number: int
    raw: bytes
    record: dict[str, Any] | None
    problem: str = ""

    def hash(self) -> str:
        """The record's hash (``record_hash``). A line sisam wrote is already canonical, so
        its bytes are hashed as they are; other lines are put in canonical form first."""
        if self.record is None:
            return ""
        return record_hash(self.record)

    def raw_hash(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def read_records(path: Path) -> Iterator[LogLine]:
    """Every line of a log (plain or gzip), parsed."""
    with (gzip.open(path, "rb") if _gzipped(path) else Path(path).open("rb")) as f:
        for number, line in enumerate(f, start=1):
            raw = line.rstrip(b"\n")
            try:
                record = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                yield LogLine(number, raw, None, f"not valid JSON: {exc}")
                continue
            if not isinstance(record, dict):
                yield LogLine(number, raw, None, f"expected a JSON object, got {type(record).__name__}")
                continue
            yield LogLine(number, raw, record)


def _value(value: Any) -> Any:
    """A frame cell as JSON: text as is, numbers as floats (NaN -> null), dates ISO."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | dt.date):
        return value.isoformat()[:10]
    if isinstance(value, np.integer | int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value)
    if pd.isna(value):
        return None
    return str(value)


def _text(value: Any) -> str:
    """The text a pseudonym hashes: strings as is, numbers by ``repr``, dates ISO."""
    return repr(value) if isinstance(value, float) else str(value)


def last_hash(path: Path) -> str:
    """The hash of a log's last record (its ``end`` record, for a complete log): keep it
    apart from the log, and a log rewritten with recomputed hashes is caught too."""
    if _gzipped(path):
        last = b""
        with gzip.open(path, "rb") as f:  # a gzip stream can only be read forwards
            for line in f:
                last = line
        return hashlib.sha256(last.rstrip(b"\n")).hexdigest()
    with Path(path).open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        window = 1 << 16
        while True:  # read backwards, doubling the window, until the last line is whole
            start = max(0, size - window)
            f.seek(start)
            tail = f.read(size - start).rstrip(b"\n")
            cut = tail.rfind(b"\n")
            if cut >= 0 or start == 0:
                return hashlib.sha256(tail[cut + 1 :]).hexdigest()
            window *= 2


@dataclass(frozen=True)
class LogSummary:
    path: Path
    n_items: int
    n_records: int
    last_hash: str

    def __str__(self) -> str:
        return (
            f"{self.path}: reasoning log of {self.n_items:,} items in {self.n_records:,} records; "
            f"last record sha256 {self.last_hash}"
        )


def model_structure(knowledge: Knowledge) -> dict[str, Any]:
    """The header's ``knowledge``: what a pattern means, enough to rebuild every lattice.

    ``factors`` is a list, in the catalog's order: canonical JSON sorts object keys, and
    the network adds its factors in catalog order, which a replay must repeat to get the
    same bits (floating-point addition is not associative)."""
    return {
        "catalog_hash": knowledge.hash,
        "labels": list(knowledge.label_ids),
        "factors": [
            {
                "name": name,
                "attributes": list(factor.attributes),
                "columns": [knowledge.attributes[a].column for a in factor.attributes],
                "levels": [list(knowledge.attributes[a].levels) for a in factor.attributes],
            }
            for name, factor in knowledge.factors.items()
        ],
        "networks": {label: list(network.factors) for label, network in knowledge.networks.items()},
    }


class ReasoningLogWriter:
    """Scores frames and writes their reasoning log; a context manager that publishes the
    log on success and removes it on failure::

        with ReasoningLogWriter(path, scorer, lang="pt-BR") as writer:
            scores = writer.score_frame(frame)   # the contract's score table
        writer.summary                           # LogSummary, once closed
    """

    def __init__(self, path: Path, scorer: Scorer, *, lang: str = "en", pseudonymise: bool = False, source: Path | None = None):
        if lang not in LANGUAGES:
            raise SisamError(f"--lang {lang!r}: expected one of {', '.join(LANGUAGES)}")
        self.path = Path(path)
        self.scorer = scorer
        self.knowledge = scorer.knowledge
        self.lang = lang
        self.pseudonymise = pseudonymise
        self.source = source
        self.summary: LogSummary | None = None
        knowledge = self.knowledge
        columns = {knowledge.attributes[a].column for factor in knowledge.factors.values() for a in factor.attributes}
        if scorer.evidence is not None:  # the columns evidence bands are derived from
            columns |= {a.column for m in scorer.evidence.models.values() for a in m.sources}
        self.read_columns = [c for c in COLUMNS if c in columns]
        self._facts = kb_facts(scorer)
        self._pseudonyms: dict[str, str] = {}
        self._file: Any = None
        self._raw: Any = None
        self._tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._seq = 0
        self._prev = ""
        self._items = 0

    # ------------------------------------------------------------------ file handling

    def __enter__(self) -> ReasoningLogWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._raw = self._tmp.open("wb")
        # mtime=0: the same records give the same compressed bytes
        self._file = (
            gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
            if _gzipped(self.path)
            else self._raw
        )
        self._write(self._header())
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None:
            self._close()
        else:
            self._abort()

    def _write(self, record: dict[str, Any]) -> None:
        line = canonical_bytes(record)
        self._file.write(line + b"\n")
        self._prev = hashlib.sha256(line).hexdigest()

    def _next(self, record: dict[str, Any]) -> dict[str, Any]:
        """Number the record and chain it to the previous one."""
        self._seq += 1
        record["seq"] = self._seq
        record["prev"] = self._prev
        return record

    def _close(self) -> None:
        self._write(self._next({"kind": "end", "items": self._items, "records": self._seq + 1}))
        if self._file is not self._raw:
            self._file.close()  # writes the gzip trailer; leaves the raw file open
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        os.replace(self._tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.summary = LogSummary(self.path, self._items, self._seq, self._prev)
        log.info("%s", self.summary)

    def _abort(self) -> None:
        if self._file is not None:
            if self._file is not self._raw:
                self._file.close()
            self._raw.close()
        self._tmp.unlink(missing_ok=True)

    # ---------------------------------------------------------------------- records

    def _header(self) -> dict[str, Any]:
        version = self.scorer.version
        provenance = version.provenance
        self._seq = 1
        return {
            "kind": "header",
            "seq": 1,
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "sisam_version": __version__,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "lang": self.lang,
            "pseudonymised": self.pseudonymise,
            "source": None if self.source is None else str(self.source),
            "knowledge": model_structure(self.knowledge),
            "kb": {
                "path": str(version.path),
                "version": version.version,
                "content_hash": version.content_hash,
                "catalog_hash": version.catalog_hash,
                "date_from": None if provenance.date_from is None else provenance.date_from.isoformat(),
                "date_to": None if provenance.date_to is None else provenance.date_to.isoformat(),
            },
            "base_factor": next(iter(self.scorer.plans)),
            "coefficients": {
                "factors": {
                    name: {key: values.tolist() for key, values in version.coefficients[name].items() if key in ("S", "d")}
                    for name in self.scorer.plans
                },
                "dnet": version.network_coefficients["dnet"].tolist(),
            },
            "weights": self._weights(),
        }

    def _weights(self) -> dict[str, list[list[float]]]:
        """c_e w_W,e per factor, label and shape: the same for every item, so written once
        (``attribution.network_calibration``, ``hpb.path_weights``)."""
        version = self.scorer.version
        calibration = network_calibration(self.scorer.membership, version.network_coefficients["dnet"])
        return {
            name: (calibration[None, :] * path_weights(plan.lattice, version.coefficients[name]["d"])).T.tolist()
            for name, plan in self.scorer.plans.items()
        }

    def _hide(self, value: Any) -> Any:
        if not self.pseudonymise or value is None:
            return value
        text = _text(value)
        hidden = self._pseudonyms.get(text)
        if hidden is None:
            hidden = self._pseudonyms[text] = pseudonym(text)
        return hidden

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Score ``frame`` (the contract's score table, as ``Scorer.score_frame``) and log
        every item's reasoning."""
        if self._file is None:
            raise RuntimeError("ReasoningLogWriter.score_frame outside its `with` block")
        records = frame.reset_index(drop=True)
        parts = []
        for start, attribution in iter_attributions(self.scorer, records, LOG_CHUNK):
            self._log_chunk(attribution, records.iloc[start : start + attribution.n_items])
            parts.append(attribution.probability)
        n_labels = len(self.knowledge.label_ids)
        probabilities = np.concatenate(parts) if parts else np.zeros((0, n_labels))
        scores = records[list(KEY)].copy()
        for j, label in enumerate(self.knowledge.label_ids):
            scores[SCORE_PREFIX + label] = probabilities[:, j]
        for name, values in self.scorer.optional_columns(records, probabilities).items():
            scores[name] = values
        return scores

    def _log_chunk(self, a: Attribution, rows: pd.DataFrame) -> None:
        version = self.scorer.version
        kb = {"version": version.version, "content_hash": version.content_hash}
        labels = a.label_ids
        n_labels = len(labels)
        names = [f.name for f in a.factors]
        members = [[f for f in range(len(names)) if a.membership[f, e]] for e in range(n_labels)]
        coefficients = {
            name: {key: version.coefficients[name][key].tolist() for key in ("S", "d")} for name in names
        }
        shapes = [self._shape_specs(f) for f in a.factors]
        values = {attr.name: a.values.levels(attr) for f in a.factors for attr in f.attributes}
        dnet = a.dnet.tolist()
        calibration = a.calibration.tolist()
        base = a.base.tolist()
        network = a.network.tolist()
        final = a.log_odds.tolist()
        probability = a.probability.tolist()
        read = {c: rows[c].tolist() for c in self.read_columns}
        keys = {c: rows[c].tolist() for c in KEY}
        for i in range(a.n_items):
            item_seq = self._seq + 1
            item = {
                "kind": "item",
                "declaration_id": _value(keys[KEY[0]][i]),
                "item_no": _value(keys[KEY[1]][i]),
                "read": {c: self._hide(_value(v[i])) for c, v in read.items()},
                "factors": {
                    f.name: {
                        "keys": [f"{k:016x}" for k in f.keys[i].tolist()],
                        "n": f.trace.n[i].tolist(),
                        "patterns": [
                            {attr: [level, self._hide(values[attr][position][0][i])] for attr, position, level in spec}
                            for spec in shapes[fi]
                        ],
                    }
                    for fi, f in enumerate(a.factors)
                },
                "evidence": [hide_facts(f, self.knowledge, self.lang, self.pseudonymise) for f in a.evidence[i]]
                if a.evidence else [],
                "explanation": {"template": ITEM_TEMPLATE, "values": self._item_values(a, i, rows)},
            }
            self._write(self._next(item))
            traced = [
                (f.trace.k[i].T.tolist(), f.trace.lo_prior[i].T.tolist(), f.trace.lo_post[i].T.tolist(),
                 f.contributions[i].T.tolist(), f.root_offset[i].tolist(), f.trace.full[i].tolist())
                for f in a.factors
            ]  # fmt: skip
            base_k = a.factors[0].trace.k[i, 0].tolist()
            base_n = float(a.factors[0].trace.n[i, 0])
            evidence = ItemEvidence(a, i, self.knowledge, self.lang, self.pseudonymise)
            for e, label in enumerate(labels):
                factors = {}
                for f in members[e]:
                    k, prior, post, contribution, offset, full = traced[f]
                    factors[names[f]] = {
                        "k": k[e],
                        "lo_prior": prior[e],
                        "lo_posterior": post[e],
                        "contribution": contribution[e],
                        "log_odds": full[e],
                        "root_offset": offset[e],
                    }
                record = {
                    "kind": "error",
                    "item": item_seq,
                    "declaration_id": item["declaration_id"],
                    "item_no": item["item_no"],
                    "error": label,
                    "label": e,
                    "kb": kb,
                    "coefficients": {
                        "dnet": dnet[e],
                        "calibration": calibration[e],
                        "factors": {names[f]: {"S": coefficients[names[f]]["S"][e], "d": coefficients[names[f]]["d"][e]} for f in members[e]},
                    },
                    "base": {"factor": names[0], "n": base_n, "k": base_k[e], "log_odds": base[e]},
                    "factors": factors,
                    "network_log_odds": network[i][e],
                    "clip": None if final[i][e] == network[i][e] else {
                        "bound": "lower" if final[i][e] > network[i][e] else "upper",
                        "network_log_odds": network[i][e],
                        "log_odds": final[i][e],
                    },
                    "log_odds": final[i][e],
                    "probability": probability[i][e],
                    "lift": network[i][e] - base[e],
                    "explanation": {"template": ERROR_TEMPLATE, "values": evidence.values(label)},
                }
                self._write(self._next(record))
            self._items += 1

    def _item_values(self, a: Attribution, i: int, rows: pd.DataFrame) -> dict[str, Any]:
        values = item_values(a, i, rows.iloc[i], self._facts, self.lang)
        return {**values, "office": self._hide(values["office"])}

    @staticmethod
    def _shape_specs(f: FactorEvidence) -> list[list[tuple[str, int, str]]]:
        """Per shape of the factor: (attribute, level index, level name) of its
        non-wildcard attributes, in the factor's attribute order."""
        specs = []
        for s in range(f.lattice.n_shapes):
            spec = []
            for a, attribute in enumerate(f.attributes):
                level = int(f.lattice.levels[s, a])
                if level < len(attribute.levels):
                    spec.append((attribute.name, level, attribute.levels[level]))
            specs.append(spec)
        return specs
