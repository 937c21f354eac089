"""Declarative domain knowledge: the error catalog, the attributes and the model structures.

``knowledge/`` holds three TOML files, read with ``tomllib`` and validated here so that a
typo fails at load time with the file, the entry and the key, never later inside a kernel:

- ``errors.toml``: the 30 error types of the contract, their fields, rules and wording;
- ``attributes.toml``: parent attributes, their types and generalisation chains;
- ``networks.toml``: the HPB factors (attribute groups) and each error type's network;
- ``evidence.toml`` (optional): evidence models (``sisam.evidence``), learnt from every
  declaration, each turning an item into a band string in the derived column
  ``evidence.<name>`` that attributes read like any contract column.

A user changes a model's structure by editing (a copy of) these files and passing the folder
with ``--knowledge``; the folder's hash is stored in every knowledge base so that counts are
never scored under a catalog they were not learned with.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from sisam.contract import COLUMNS, ERROR_IDS
from sisam.engine.keys import SHAPE_BITS
from sisam.engine.lattice import MAX_SHAPES
from sisam.engine.levels import CODE_VERSION, parse_level
from sisam.errors import KnowledgeError
from sisam.resources import data_dir

LANGUAGES = ("en", "pt-BR")
ANY_LABEL = "any"
MAX_FACTOR_ATTRIBUTES = 6
KNOWLEDGE_FILES = ("errors.toml", "attributes.toml", "networks.toml")
#: Optional: a folder without it has no evidence models (and hashes as before).
EVIDENCE_FILE = "evidence.toml"
#: Attributes read an evidence model's band through a column named with this prefix.
EVIDENCE_PREFIX = "evidence."

#: rule -> (column types it applies to, extra keys it requires)
RULES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "changed": (frozenset({"string", "number"}), frozenset()),
    "prefix_changed": (frozenset({"string"}), frozenset({"prefix"})),
    "increased": (frozenset({"number"}), frozenset()),
    "increased_beyond": (frozenset({"number"}), frozenset({"tolerance"})),
    "decreased_beyond": (frozenset({"number"}), frozenset({"tolerance"})),
    "differs_beyond": (frozenset({"number"}), frozenset({"tolerance"})),
}
ATTRIBUTE_TYPES = ("nominal", "numeric", "text", "date")
@dataclass(frozen=True)
class ErrorType:
    id: str
    field: str
    rule: str
    tolerance: float
    prefix: int
    name: dict[str, str]
    description: dict[str, str]


@dataclass(frozen=True)
class Attribute:
    name: str
    column: str
    type: str
    levels: tuple[str, ...]
    noun: dict[str, str]


@dataclass(frozen=True)
class Factor:
    name: str
    attributes: tuple[str, ...]


@dataclass(frozen=True)
class Network:
    error_id: str
    factors: tuple[str, ...]


@dataclass(frozen=True)
class EvidenceSpec:
    """One ``[evidence.<name>]`` entry: its kind (a class of ``sisam.evidence``), the error
    types it serves (for documentation, explanations and checks) and every other key of
    the entry, validated by the kind (``EvidenceModel.check_options``)."""

    name: str
    kind: str
    serves: tuple[str, ...]
    options: dict[str, Any]

    @property
    def column(self) -> str:
        """The derived column holding each item's band."""
        return EVIDENCE_PREFIX + self.name


@dataclass(frozen=True)
class Knowledge:
    errors: tuple[ErrorType, ...]
    attributes: dict[str, Attribute]
    factors: dict[str, Factor]
    networks: dict[str, Network]
    hash: str
    source: str
    evidence: dict[str, EvidenceSpec] = field(default_factory=dict)

    @cached_property
    def label_ids(self) -> tuple[str, ...]:
        """Label order of every count table and score file: the errors, then "any"."""
        return (*(e.id for e in self.errors), ANY_LABEL)

    def factor_level_counts(self, factor: str) -> tuple[int, ...]:
        return tuple(len(self.attributes[a].levels) for a in self.factors[factor].attributes)

    def error(self, error_id: str) -> ErrorType:
        for e in self.errors:
            if e.id == error_id:
                return e
        raise KeyError(f"unknown error type {error_id!r}; known: {', '.join(self.label_ids)}")


class _Where:
    """Builds messages that name the file and the entry, for every validation failure."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, entry: str, message: str) -> KnowledgeError:
        return KnowledgeError(f"{self.path}: {entry}: {message}")


def _closest(name: str, known: list[str] | tuple[str, ...]) -> str:
    import difflib

    match = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {match[0]!r}?)" if match else ""
    return f"{hint}; valid: {', '.join(sorted(known))}"


def _check_keys(where: _Where, entry: str, table: dict[str, Any], required: set[str], optional: set[str]) -> None:
    unknown = set(table) - required - optional
    for key in sorted(unknown):
        raise where.fail(entry, f"unknown key {key!r}" + _closest(key, sorted(required | optional)))
    for key in sorted(required - set(table)):
        raise where.fail(entry, f"missing key {key!r}")


def _languages(where: _Where, entry: str, key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise where.fail(entry, f"{key} must be a table of languages {LANGUAGES}, got {value!r}")
    for lang in LANGUAGES:
        text = value.get(lang)
        if not isinstance(text, str) or not text.strip():
            raise where.fail(entry, f"{key}.{lang} is missing or empty")
    for lang in value:
        if lang not in LANGUAGES:
            raise where.fail(entry, f"{key}.{lang}: unknown language" + _closest(lang, LANGUAGES))
    return {lang: value[lang] for lang in LANGUAGES}


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise KnowledgeError(f"{path}: file missing from the knowledge folder") from None
    except tomllib.TOMLDecodeError as exc:
        raise KnowledgeError(f"{path}: not valid TOML: {exc}") from None


def _parse_errors(path: Path, doc: dict[str, Any]) -> tuple[ErrorType, ...]:
    where = _Where(path)
    _check_keys(where, "top level", doc, {"error"}, set())
    entries = doc["error"]
    if not isinstance(entries, list) or not entries:
        raise where.fail("error", "expected a non-empty array of [[error]] tables")
    seen: dict[str, int] = {}
    errors = []
    for i, entry in enumerate(entries, start=1):
        label = f"[[error]] #{i}" + (f" ({entry['id']!r})" if isinstance(entry.get("id"), str) else "")
        _check_keys(where, label, entry, {"id", "field", "rule", "name", "description"}, {"tolerance", "prefix"})
        error_id = entry["id"]
        if not isinstance(error_id, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", error_id) or error_id == ANY_LABEL:
            raise where.fail(label, f"id must be a lower-case identifier other than {ANY_LABEL!r}, got {error_id!r}")
        if error_id in seen:
            raise where.fail(label, f"duplicate id {error_id!r} (first defined in [[error]] #{seen[error_id]})")
        seen[error_id] = i
        field = entry["field"]
        if field not in COLUMNS:
            raise where.fail(label, f"field {field!r} is not a contract column" + _closest(str(field), tuple(COLUMNS)))
        rule = entry["rule"]
        if rule not in RULES:
            raise where.fail(label, f"unknown rule {rule!r}" + _closest(str(rule), tuple(RULES)))
        column_types, needs = RULES[rule]
        if COLUMNS[field] not in column_types:
            raise where.fail(label, f"rule {rule!r} does not apply to {COLUMNS[field]} column {field!r}")
        for key in ("tolerance", "prefix"):
            if key in needs and key not in entry:
                raise where.fail(label, f"rule {rule!r} needs {key!r}")
            if key not in needs and key in entry:
                raise where.fail(label, f"rule {rule!r} takes no {key!r}")
        tolerance = entry.get("tolerance", 0.0)
        if not isinstance(tolerance, int | float) or isinstance(tolerance, bool) or not 0 <= tolerance < 1:
            raise where.fail(label, f"tolerance must be a number in [0, 1), got {tolerance!r}")
        prefix = entry.get("prefix", 0)
        if not isinstance(prefix, int) or isinstance(prefix, bool) or prefix < 0:
            raise where.fail(label, f"prefix must be a positive whole number, got {prefix!r}")
        errors.append(
            ErrorType(
                id=error_id,
                field=field,
                rule=rule,
                tolerance=float(tolerance),
                prefix=prefix,
                name=_languages(where, label, "name", entry["name"]),
                description=_languages(where, label, "description", entry["description"]),
            )
        )
    ids = tuple(e.id for e in errors)
    if ids != ERROR_IDS:
        missing = [e for e in ERROR_IDS if e not in ids]
        extra = [e for e in ids if e not in ERROR_IDS]
        detail = (f"missing {missing}; " if missing else "") + (f"not in the contract {extra}; " if extra else "")
        raise where.fail(
            "[[error]]",
            f"the catalog must list the contract's 30 error types in the contract's order "
            f"(score files depend on it): {detail or 'order differs; '}expected {list(ERROR_IDS)}",
        )
    return tuple(errors)


def _coarseness(level) -> tuple[int, float]:
    """Order of generalisation: the value itself, then shorter prefixes, wider bands,
    months before years."""
    rank = {"value": 0, "prefix": 1, "log2band": 1, "month": 1, "year": 2}[level.kind]
    if level.kind == "prefix":
        return rank, -level.param
    if level.kind == "log2band":
        return rank, level.param
    return rank, 0.0


def _parse_attributes(path: Path, doc: dict[str, Any]) -> dict[str, Attribute]:
    where = _Where(path)
    _check_keys(where, "top level", doc, {"attribute"}, set())
    attributes = {}
    for name, entry in doc["attribute"].items():
        label = f"[attribute.{name}]"
        _check_keys(where, label, entry, {"column", "type", "levels", "noun"}, set())
        # evidence columns are checked against evidence.toml once both are read
        if entry["column"] not in COLUMNS and not str(entry["column"]).startswith(EVIDENCE_PREFIX):
            raise where.fail(label, f"column {entry['column']!r} is not a contract column" + _closest(str(entry["column"]), tuple(COLUMNS)))
        if entry["type"] not in ATTRIBUTE_TYPES:
            raise where.fail(label, f"unknown type {entry['type']!r}" + _closest(str(entry["type"]), ATTRIBUTE_TYPES))
        levels = entry["levels"]
        if not isinstance(levels, list) or not levels:
            raise where.fail(label, "levels must be a non-empty list, finest first (the wildcard '*' is implicit)")
        parsed = []
        for level in levels:
            if not isinstance(level, str):
                raise where.fail(label, f"levels must be strings such as 'prefix:4', got {level!r}")
            try:
                parsed.append(parse_level(level, entry["type"]))
            except ValueError as exc:
                raise where.fail(label, str(exc)) from None
        if [_coarseness(p) for p in parsed] != sorted(_coarseness(p) for p in parsed):
            raise where.fail(label, f"levels must run from finest to coarsest, got {levels}")
        if len(set(levels)) != len(levels):
            raise where.fail(label, f"levels repeat: {levels}")
        attributes[name] = Attribute(
            name=name,
            column=entry["column"],
            type=entry["type"],
            levels=tuple(levels),
            noun=_languages(where, label, "noun", entry["noun"]),
        )
    return attributes


def _parse_networks(
    path: Path, doc: dict[str, Any], attributes: dict[str, Attribute], label_ids: tuple[str, ...]
) -> tuple[dict[str, Factor], dict[str, Network]]:
    where = _Where(path)
    _check_keys(where, "top level", doc, {"factor", "network"}, set())
    factors = {}
    for name, entry in doc["factor"].items():
        label = f"[factor.{name}]"
        _check_keys(where, label, entry, {"attributes"}, set())
        attrs = entry["attributes"]
        if not isinstance(attrs, list) or not 1 <= len(attrs) <= MAX_FACTOR_ATTRIBUTES:
            raise where.fail(label, f"attributes must list 1 to {MAX_FACTOR_ATTRIBUTES} attributes, got {attrs!r}")
        for a in attrs:
            if a not in attributes:
                raise where.fail(label, f"unknown attribute {a!r}" + _closest(str(a), tuple(attributes)))
        if len(set(attrs)) != len(attrs):
            raise where.fail(label, f"attributes repeat: {attrs}")
        n_shapes = 1
        for a in attrs:
            n_shapes *= len(attributes[a].levels) + 1
        if n_shapes > MAX_SHAPES:
            raise where.fail(label, f"lattice of {n_shapes} shapes exceeds {MAX_SHAPES}: use fewer attributes or shorter chains")
        factors[name] = Factor(name, tuple(attrs))
    networks = {}
    for error_id, entry in doc["network"].items():
        label = f"[network.{error_id}]"
        if error_id not in label_ids:
            raise where.fail(label, "unknown error type" + _closest(error_id, label_ids))
        _check_keys(where, label, entry, {"factors"}, set())
        names = entry["factors"]
        if not isinstance(names, list) or not names:
            raise where.fail(label, "factors must be a non-empty list")
        for f in names:
            if f not in factors:
                raise where.fail(label, f"unknown factor {f!r}" + _closest(str(f), tuple(factors)))
        if len(set(names)) != len(names):
            raise where.fail(label, f"factors repeat: {names}")
        networks[error_id] = Network(error_id, tuple(names))
    missing = [e for e in label_ids if e not in networks]
    if missing:
        raise where.fail("[network]", f"no network for error type(s) {', '.join(missing)}")
    unused = sorted(set(factors) - {f for n in networks.values() for f in n.factors})
    if unused:
        raise where.fail("[factor]", f"factor(s) {', '.join(unused)} used by no network")
    return factors, networks


def _parse_evidence(
    path: Path, doc: dict[str, Any], attributes: dict[str, Attribute], label_ids: tuple[str, ...]
) -> dict[str, EvidenceSpec]:
    from sisam.evidence import KINDS

    where = _Where(path)
    _check_keys(where, "top level", doc, {"evidence"}, set())
    specs = {}
    for name, entry in doc["evidence"].items():
        label = f"[evidence.{name}]"
        # "__" separates model and table in the knowledge base's table names
        if not re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", name):
            raise where.fail(label, "the name must be a lower-case identifier without '__'")
        if not isinstance(entry, dict):
            raise where.fail(label, f"expected a table, got {entry!r}")
        for key in ("kind", "serves"):
            if key not in entry:
                raise where.fail(label, f"missing key {key!r}")
        kind = entry["kind"]
        if kind not in KINDS:
            raise where.fail(label, f"unknown kind {kind!r}" + _closest(str(kind), tuple(KINDS)))
        serves = entry["serves"]
        if not isinstance(serves, list) or not serves:
            raise where.fail(label, f"serves must be a non-empty list of error ids, got {serves!r}")
        for error_id in serves:
            if error_id not in label_ids:
                raise where.fail(label, f"serves unknown error type {error_id!r}" + _closest(str(error_id), label_ids))
        options = {k: v for k, v in entry.items() if k not in ("kind", "serves")}
        spec = EvidenceSpec(name, kind, tuple(serves), options)
        problem = KINDS[kind].check_options(spec, attributes)
        if problem:
            raise where.fail(label, problem)
        specs[name] = spec
    return specs


def _check_evidence_columns(path: Path, attributes: dict[str, Attribute], evidence: dict[str, EvidenceSpec]) -> None:
    columns = {spec.column for spec in evidence.values()}
    for attribute in attributes.values():
        if attribute.column.startswith(EVIDENCE_PREFIX) and attribute.column not in columns:
            raise _Where(path).fail(
                f"[attribute.{attribute.name}]",
                f"column {attribute.column!r} names no evidence model of {EVIDENCE_FILE}"
                + _closest(attribute.column, tuple(sorted(columns)) or ("(none)",)),
            )


def load_knowledge(folder: str | Path | None = None) -> Knowledge:
    """Load and validate a knowledge folder (default: the one shipped with sisam)."""
    root = Path(folder) if folder is not None else data_dir("knowledge")
    if not root.is_dir():
        raise KnowledgeError(f"{root}: knowledge folder not found")
    # The hash names how patterns are keyed, not only what the catalog says: a change of
    # the level codes or of the key layout makes older knowledge bases unreadable as such.
    digest = hashlib.sha256(f"level-codes-v{CODE_VERSION};shape-bits-{SHAPE_BITS}\0".encode())
    docs = {}
    for name in KNOWLEDGE_FILES:
        path = root / name
        docs[name] = _load_toml(path)
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    evidence_path = root / EVIDENCE_FILE
    if evidence_path.exists():
        docs[EVIDENCE_FILE] = _load_toml(evidence_path)
        digest.update(EVIDENCE_FILE.encode() + b"\0" + evidence_path.read_bytes() + b"\0")
    errors = _parse_errors(root / "errors.toml", docs["errors.toml"])
    attributes = _parse_attributes(root / "attributes.toml", docs["attributes.toml"])
    label_ids = (*(e.id for e in errors), ANY_LABEL)
    factors, networks = _parse_networks(root / "networks.toml", docs["networks.toml"], attributes, label_ids)
    evidence = {}
    if EVIDENCE_FILE in docs:
        evidence = _parse_evidence(evidence_path, docs[EVIDENCE_FILE], attributes, label_ids)
    _check_evidence_columns(root / "attributes.toml", attributes, evidence)
    return Knowledge(
        errors=errors,
        attributes=attributes,
        factors=factors,
        networks=networks,
        hash=digest.hexdigest(),
        source=str(root),
        evidence=evidence,
    )
