"""Faithful attribution: every probability split exactly into its patterns' contributions.

hpb.md ("Why explanations come for free") shows that one factor's answer is an exact sum
over the patterns W of the item's lattice,

    lo(P_f,e(item)) - lo(p_e) = sum_W  w_W,e * delta_W,e,
    delta_W,e = lo(P_e(W)) - lo(prior_e(W)),

with w_W,e the path weights (``hpb.path_weights``; w = 1 at the full pattern, 0 < w <= 1
elsewhere) and lo(p) = ln(p / (1 - p)). The network combines its m_e factors with the same
calibrated rule (``engine.network``):

    lo(P_e) - lo(p_e) = c_e * sum_f [lo(P_f,e) - lo(p_e)],   c_e = min(1, dnet_e / m_e),

so, substituting, the network's lift over the base rate is a sum over every pattern of
every factor of e's network:

    lo(P_e) - lo(p_e) = sum_f sum_W  c_e * w_W,e * delta_W,e   (+ sum_f c_e * root_f,e)

where root_f,e = lo(root of factor f) - lo(p_e) is zero whenever every factor's root
counted the same labelled items (always, for a knowledge base learnt by sisam; it is kept
so that the identity holds exactly even for counts assembled by hand). Nothing is
approximated: a contribution is a term of the very sum the scorer evaluates, and the terms
add up to the lift within rounding (tests hold them to 1e-9).

Each term is backed by counts the officer can read: the pattern (``PatternPart``s in the
item's own terms: ``hs_code`` at ``prefix:4`` = "8481"), n inspected items that matched
it, k of them with the error, the prior it inherited from its generalisations and the
posterior its counts gave. A pattern never inspected (n = 0) keeps its prior, delta = 0: it
contributes nothing and says so ("never inspected before; the estimate comes from the
coarser patterns").

"Any error" is then clipped into the Fréchet bounds of the other labels
(``network.coherent_any``); the decomposition is of the network's own log-odds, before
the clip, and ``ErrorAttribution.clip`` records the clip when it moved the value.

Cost. The numbers come from the scoring kernel's own trace (``hpb.trace_factor``, the
same arithmetic bit for bit, minus its cache) and a few vectorised numpy products: cheap
enough to attribute every scored item. ``attribute`` checks that its probabilities are
the scorer's (``Scorer.probabilities``) bit for bit in the tests, so an explanation never
describes another number than the one in the score table.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sisam.encoding import Encoder
from sisam.engine.hpb import FactorTrace, path_weights, trace_factor
from sisam.engine.lattice import Lattice
from sisam.engine.levels import mix64
from sisam.engine.network import coherent_any, combine, logistic, probabilities
from sisam.knowledge import Attribute

if TYPE_CHECKING:
    from sisam.model import Scorer


#: Items traced at once: the trace holds n * S * E floats per factor (about 40 MB per
#: array for 1,024 items over the shipped catalog's 164 shapes and 31 labels).
TRACE_CHUNK = 1024


def network_calibration(membership: np.ndarray, dnet: np.ndarray) -> np.ndarray:
    """float64[E]: c_e = min(1, dnet_e / m_e), 0 for a label with an empty network; the
    calibration ``network.combine`` applies (same expression, so the same bits)."""
    n_members = membership.sum(axis=0)
    calibration = np.minimum(1.0, dnet / np.maximum(n_members, 1))
    calibration[n_members == 0] = 0.0
    return calibration


def pattern_contributions(
    calibration: np.ndarray | float, weights: np.ndarray, lo_prior: np.ndarray, lo_post: np.ndarray
) -> np.ndarray:
    """c_e * w_W,e * (lo(P_e(W)) - lo(prior_e(W))), broadcasting: ``calibration`` [E] (or a
    scalar), ``weights`` [S, E], ``lo_prior`` and ``lo_post`` [n, S, E].

    The one place the product is written, so that attribution and replay (which
    recomputes it from a reasoning log, ``sisam.replay``) group the factors alike and
    agree to the last bit."""
    return (calibration * weights) * (lo_post - lo_prior)


# ------------------------------------------------------------------ the item's own terms


@dataclass(frozen=True)
class PatternPart:
    """One non-wildcard attribute of a pattern: the item's ``value`` at ``level``.

    ``value`` is text: a code as declared ("84818099"), a prefix ("8481" at
    ``prefix:4``), a number's band (``[8192, 16384)`` at ``log2band:1``: 2**13 <= x <
    2**14), a month ("2024-04"); ``None`` where the item has no value. ``band`` is the band
    number for ``log2band`` levels (the bounds are 2**(band W) and 2**((band + 1) W)),
    else None.
    """

    attribute: str
    level: str
    value: str | None
    band: int | None = None


class ItemValues:
    """Every item's value at every level of every attribute, as text, for describing
    patterns (``PatternPart``); computed per attribute on first use and reused by all the
    factors that share it, over the distinct values only."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self._levels: dict[str, list[tuple[np.ndarray, np.ndarray | None]]] = {}

    def levels(self, attribute: Attribute) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Per level: (object array of text or None, int64 band array or None)."""
        found = self._levels.get(attribute.name)
        if found is None:
            found = _level_values(self.frame[attribute.column], attribute)
            self._levels[attribute.name] = found
        return found


def _level_values(column: pd.Series, attribute: Attribute) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """The text of each item's value at each level, mirroring ``engine.levels`` (the
    codes the counts were keyed with) so that a description names the very group of items
    the counts are about."""
    out: list[tuple[np.ndarray, np.ndarray | None]] = []
    if attribute.type in ("nominal", "text"):
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        stripped = [u.strip() if isinstance(u, str) else str(u).strip() for u in uniques]
        for level in attribute.levels:
            kind, _, param = level.partition(":")
            texts = [s[: int(param)] for s in stripped] if kind == "prefix" else stripped
            table = np.array([*texts, None], dtype=object)
            out.append((table[codes], None))  # code -1 (missing) picks the trailing None
        return out
    if attribute.type == "numeric":
        x = np.asarray(column, dtype=np.float64) + 0.0
        for level in attribute.levels:
            kind, _, param = level.partition(":")
            if kind == "value":
                out.append((np.array([None if np.isnan(v) else repr(v) for v in x.tolist()], dtype=object), None))
            else:
                out.append(_band_values(x, float(param)))
        return out
    days = pd.to_datetime(column, errors="coerce")
    for level in attribute.levels:
        fmt = {"value": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}[level]
        text = days.dt.strftime(fmt)
        out.append((np.array([None if pd.isna(t) else t for t in text], dtype=object), None))
    return out


def _band_values(x: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Band text and number of ``log2band:width``, as ``levels._log2band`` computes the band
    (frexp for whole widths: band edges independent of the platform's log2)."""
    positive = (x > 0) & np.isfinite(x)
    band = np.zeros(x.shape, dtype=np.int64)
    if width == int(width):
        _, exponent = np.frexp(x[positive])
        band[positive] = np.floor_divide(exponent.astype(np.int64) - 1, int(width))
    else:
        band[positive] = np.floor(np.log2(x[positive]) / width).astype(np.int64)
    texts = np.empty(x.shape, dtype=object)
    for b in np.unique(band[positive]).tolist():
        texts[positive & (band == b)] = f"[{_power(b * width)}, {_power((b + 1) * width)})"
    texts[x == 0] = "0"
    texts[x < 0] = "negative"
    texts[x == np.inf] = "infinite"
    texts[np.isnan(x)] = None
    return texts, band


def _power(exponent: float) -> str:
    value = 2.0**exponent
    return str(int(value)) if value == int(value) and abs(value) < 2**53 else repr(value)


def band_bounds(band: int, level: str) -> tuple[float, float]:
    """[low, high) of band ``band`` at level ``log2band:W``."""
    width = float(level.partition(":")[2])
    return 2.0 ** (band * width), 2.0 ** ((band + 1) * width)


# ------------------------------------------------------------------------- the numbers


@dataclass(frozen=True)
class FactorEvidence:
    """One factor's trace over a batch of items, and each pattern's share of every label.

    ``keys`` uint64[n, S] the items' pattern keys; ``trace`` the recursion's
    intermediates (``hpb.FactorTrace``: counts rows, n, k, lo_prior, lo_post); ``weights``
    float64[S, E] the path weights w_W,e; ``contributions`` float64[n, S, E] the terms
    c_e w_W,e delta_W,e (zero for labels whose network does not use the factor);
    ``root_offset`` float64[n, E] the term c_e (lo(root_f) - lo(p_e)), zero in practice;
    ``identities`` uint64[n, S] name the group of items each pattern stands for, equal
    across factors for the same group (``pattern_identities``).
    """

    name: str
    attributes: tuple[Attribute, ...]
    lattice: Lattice
    keys: np.ndarray
    identities: np.ndarray
    trace: FactorTrace
    weights: np.ndarray
    contributions: np.ndarray
    root_offset: np.ndarray


@dataclass(frozen=True)
class PatternContribution:
    """One pattern's term of the weight-of-evidence sum, for one item and error type.

    ``factor`` and ``shape`` locate the pattern in the model (``shape`` indexes the
    factor's lattice, 0 the root, the last the full pattern); ``pattern`` is it in the
    item's terms (empty at the root: every item); ``key`` its 64-bit key in the knowledge
    base; ``n`` the inspected items that matched it and ``k`` those with the error;
    ``lo_prior`` and ``lo_posterior`` the log-odds of prior_e(W) and P_e(W), ``prior`` and
    ``posterior`` the same as probabilities; ``weight`` w_W (path weight times the network
    calibration c_e); ``contribution`` = ``weight`` * (``lo_posterior`` - ``lo_prior``), in
    nats of log-odds: +0.69 doubles the odds.
    """

    factor: str
    shape: int
    pattern: tuple[PatternPart, ...]
    key: int
    n: float
    k: float
    lo_prior: float
    lo_posterior: float
    prior: float
    posterior: float
    weight: float
    contribution: float

    @property
    def inspected(self) -> bool:
        return self.n > 0.0


@dataclass(frozen=True)
class Clip:
    """The "any" label moved into the Fréchet bounds of the other labels
    (``network.coherent_any``): from the network's own log-odds to the bound's."""

    network_log_odds: float
    log_odds: float

    @property
    def bound(self) -> str:
        """"lower" (raised to the largest single error) or "upper" (lowered to the sum)."""
        return "lower" if self.log_odds > self.network_log_odds else "upper"


@dataclass(frozen=True)
class ErrorAttribution:
    """One item's probability of one label, decomposed.

    ``base_log_odds`` lo(p_e); ``calibration`` c_e; ``network_log_odds`` lo(P_e) as the
    network combined it; ``log_odds`` after the "any" clip (equal for the 30 error types);
    ``probability`` the score. ``contributions`` are every pattern of every factor of the
    label's network (factor order of the catalog, shapes in lattice order); with
    ``root_offset`` they sum to ``lift``."""

    item: int
    label: str
    base_log_odds: float
    calibration: float
    network_log_odds: float
    log_odds: float
    probability: float
    root_offset: float
    contributions: tuple[PatternContribution, ...] = field(repr=False)
    clip: Clip | None = None

    @property
    def lift(self) -> float:
        """lo(P_e) - lo(p_e) before the clip: what the contributions add up to."""
        return self.network_log_odds - self.base_log_odds

    @property
    def base_rate(self) -> float:
        return float(logistic(self.base_log_odds))


@dataclass(frozen=True)
class Attribution:
    """A batch of items attributed against one knowledge-base version.

    Arrays are indexed [item, label] with labels in ``label_ids`` order. ``factors`` are
    every factor of the catalog in catalog order (``membership[f, e]`` says whether factor
    f is in label e's network); ``base_factor`` is the factor whose root gave lo(p_e), as
    in ``Scorer.factor_log_odds``. ``probability`` equals ``Scorer.probabilities`` of the
    same frame bit for bit.
    """

    label_ids: tuple[str, ...]
    factors: tuple[FactorEvidence, ...]
    membership: np.ndarray
    dnet: np.ndarray
    calibration: np.ndarray
    base: np.ndarray
    base_factor: str
    network: np.ndarray
    log_odds: np.ndarray
    probability: np.ndarray
    values: ItemValues
    #: per item, the facts of every evidence model behind its bands (``sisam.evidence``)
    evidence: list[list[dict[str, Any]]] = field(default_factory=list)

    @property
    def n_items(self) -> int:
        return int(self.network.shape[0])

    @cached_property
    def _label_index(self) -> dict[str, int]:
        return {label: j for j, label in enumerate(self.label_ids)}

    def label_index(self, label: str) -> int:
        try:
            return self._label_index[label]
        except KeyError:
            raise KeyError(f"unknown label {label!r}; known: {', '.join(self.label_ids)}") from None

    def total(self) -> np.ndarray:
        """float64[n, E]: the sum of every contribution and root offset, per item and label:
        equals ``network - base`` up to rounding (the identity this module rests on)."""
        total = np.zeros_like(self.network)
        for f in self.factors:
            total = total + f.contributions.sum(axis=1) + f.root_offset
        return total

    def pattern(self, item: int, factor: int, shape: int) -> tuple[PatternPart, ...]:
        """Pattern ``shape`` of factor ``factor`` (index in ``factors``) in item ``item``'s
        terms: its non-wildcard attributes with their level and the item's value there."""
        evidence = self.factors[factor]
        parts = []
        for a, attribute in enumerate(evidence.attributes):
            level = int(evidence.lattice.levels[shape, a])
            if level < len(attribute.levels):
                texts, bands = self.values.levels(attribute)[level]
                band = None if bands is None or texts[item] is None or not texts[item].startswith("[") else int(bands[item])
                parts.append(PatternPart(attribute.name, attribute.levels[level], texts[item], band))
        return tuple(parts)

    def error(
        self, item: int, label: str, patterns: dict[tuple[int, int], tuple[PatternPart, ...]] | None = None
    ) -> ErrorAttribution:
        """Item ``item``'s decomposition for ``label``: every pattern of its network.

        ``patterns`` is an optional memo of ``pattern(item, f, s)`` by (f, s), for callers
        decomposing several labels of one item (the patterns are the same)."""
        e = self.label_index(label)
        patterns = {} if patterns is None else patterns
        rows = []
        root_offset = 0.0
        for f, evidence in enumerate(self.factors):
            if not self.membership[f, e]:
                continue
            root_offset += float(evidence.root_offset[item, e])
            trace = evidence.trace
            weights = (self.calibration[e] * evidence.weights[:, e]).tolist()
            n = trace.n[item].tolist()
            k = trace.k[item, :, e].tolist()
            lo_prior, lo_post = trace.lo_prior[item, :, e], trace.lo_post[item, :, e]
            prior, post = logistic(lo_prior).tolist(), logistic(lo_post).tolist()
            lo_prior, lo_post = lo_prior.tolist(), lo_post.tolist()
            contribution = evidence.contributions[item, :, e].tolist()
            keys = evidence.keys[item].tolist()
            for s in range(evidence.lattice.n_shapes):
                parts = patterns.get((f, s))
                if parts is None:
                    parts = patterns[f, s] = self.pattern(item, f, s)
                rows.append(
                    PatternContribution(
                        evidence.name, s, parts, keys[s], n[s], k[s], lo_prior[s], lo_post[s],
                        prior[s], post[s], weights[s], contribution[s],
                    )
                )
        network = float(self.network[item, e])
        final = float(self.log_odds[item, e])
        return ErrorAttribution(
            item=item,
            label=label,
            base_log_odds=float(self.base[e]),
            calibration=float(self.calibration[e]),
            network_log_odds=network,
            log_odds=final,
            probability=float(self.probability[item, e]),
            root_offset=root_offset,
            contributions=tuple(rows),
            clip=None if final == network else Clip(network, final),
        )


def _column_salt(column: str) -> np.uint64:
    digest = hashlib.blake2b(column.encode("utf-8"), digest_size=8, person=b"sisam.column")
    return np.uint64(int.from_bytes(digest.digest(), "little"))


def pattern_identities(attributes: Sequence[Attribute], codes: Sequence[np.ndarray], lattice: Lattice) -> np.ndarray:
    """uint64[n, S]: which group of items each pattern of a factor stands for.

    A pattern's key (``engine.keys``) is salted by its factor, so the same group of items
    (the importer alone; ``hs_code`` and ``hs_heading`` at ``prefix:4``) has one key per
    factor that holds it, and its counts are the same in each. The identity leaves the
    factor out: a sum, order-free, over the non-wildcard attributes of splitmix64(column
    salt ^ level code). Level codes carry their level's salt (``engine.levels``) and the
    column salt keeps two columns holding the same value apart. The root is 0."""
    n = codes[0].shape[0] if codes else 0
    out = np.zeros((n, lattice.n_shapes), dtype=np.uint64)
    mixed = [
        [mix64(_column_salt(attribute.column) ^ codes[a][:, level]) for level in range(len(attribute.levels))]
        for a, attribute in enumerate(attributes)
    ]
    for s in range(lattice.n_shapes):
        for a, attribute in enumerate(attributes):
            level = int(lattice.levels[s, a])
            if level < len(attribute.levels):
                out[:, s] += mixed[a][level]
    return out


def attribute(scorer: Scorer, frame: pd.DataFrame) -> Attribution:
    """Score ``frame`` with ``scorer`` and decompose every (item, label) probability.

    Memory grows as items * shapes * labels: attribute a large frame in slices
    (``iter_attributions``)."""
    version = scorer.version
    frame = scorer.with_evidence(frame)
    encoder = Encoder(frame)
    names, attributes, lattices, keys, identities, traces, d_coefs = [], [], [], [], [], [], []
    for name, plan in scorer.plans.items():
        coefficients = version.coefficients[name]
        plan_keys = encoder.keys(plan)
        names.append(name)
        attributes.append(plan.attributes)
        lattices.append(plan.lattice)
        keys.append(plan_keys)
        identities.append(pattern_identities(plan.attributes, [encoder.codes(a) for a in plan.attributes], plan.lattice))
        d_coefs.append(np.asarray(coefficients["d"], dtype=np.float64))
        traces.append(
            trace_factor(
                plan_keys, plan.lattice, version.counts[name], scorer.indexes[name],
                coefficients["S"], coefficients["d"],
            )
        )
    attribution = decompose(
        version.label_ids, names, attributes, lattices, keys, identities, traces, d_coefs,
        scorer.membership, version.network_coefficients["dnet"], ItemValues(frame),
    )  # fmt: skip
    return dataclasses.replace(attribution, evidence=scorer.evidence_facts(frame))


def decompose(
    label_ids: Sequence[str],
    names: Sequence[str],
    attributes: Sequence[tuple[Attribute, ...]],
    lattices: Sequence[Lattice],
    keys: Sequence[np.ndarray],
    identities: Sequence[np.ndarray],
    traces: Sequence[FactorTrace],
    d_coefs: Sequence[np.ndarray],
    membership: np.ndarray,
    dnet: np.ndarray,
    values: ItemValues,
) -> Attribution:
    """The network combination of the factors' traces, and every pattern's term of it.

    The combination is ``network.combine`` itself, fed with the traces' full-pattern
    log-odds (bit for bit the scoring kernel's), and the base rate is the first factor's
    root, as ``Scorer.factor_log_odds`` takes it: the probabilities are the scorer's."""
    membership = np.asarray(membership, dtype=bool)
    dnet = np.asarray(dnet, dtype=np.float64)
    n_items = keys[0].shape[0] if keys else 0
    n_labels = len(label_ids)
    base = traces[0].lo_post[0, 0, :].copy() if n_items else np.zeros(n_labels)
    network = combine([t.full for t in traces], base, membership, dnet)
    network = np.broadcast_to(network, (n_items, n_labels)).copy()
    log_odds = coherent_any(network) if n_items else network
    calibration = network_calibration(membership, dnet)
    factors = []
    for f, name in enumerate(names):
        trace = traces[f]
        used = np.where(membership[f], calibration, 0.0)
        weights = path_weights(lattices[f], d_coefs[f])
        factors.append(
            FactorEvidence(
                name=name,
                attributes=attributes[f],
                lattice=lattices[f],
                keys=keys[f],
                identities=identities[f],
                trace=trace,
                weights=weights,
                contributions=pattern_contributions(used, weights, trace.lo_prior, trace.lo_post),
                root_offset=used * (trace.lo_post[:, 0, :] - base),
            )
        )
    return Attribution(
        label_ids=tuple(label_ids),
        factors=tuple(factors),
        membership=membership,
        dnet=dnet,
        calibration=calibration,
        base=base,
        base_factor=names[0],
        network=network,
        log_odds=log_odds,
        probability=probabilities(log_odds),
        values=values,
    )


def iter_attributions(
    scorer: Scorer, frame: pd.DataFrame, chunk: int = TRACE_CHUNK
) -> Iterator[tuple[int, Attribution]]:
    """(first row, ``attribute`` of rows first..first + chunk) over ``frame``: bounded memory."""
    for start in range(0, len(frame), chunk):
        yield start, attribute(scorer, frame.iloc[start : start + chunk])
