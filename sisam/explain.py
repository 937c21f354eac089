"""Explanations an officer reads: sentences and reasoning rows from the exact attribution.

brief.md: the same 90 % can call for opposite actions, so the explanation matters as much
as the number. Every explanation here is built from ``sisam.attribution``'s exact terms
(hpb.md, "Why explanations come for free") in two steps:

1. **Values.** ``ItemEvidence.values`` picks, for one item and error type, what to say:
   the probability and the base rate, the (at most two) inspected patterns that push the
   probability up hardest, the one that pushes it down hardest (the reassuring side), and
   whether the item's finest combination was never inspected. A pattern is named in the
   item's own terms (``PatternPart`` -> a "part": this importer, heading 8481, origin CN)
   and comes with its counts: inspected n times, error found k times, rate k / n, against
   the rate its coarser patterns led to expect. The values are plain JSON-ready data; the
   reasoning log stores them verbatim (``sisam.reasoning_log``), and the templates get
   nothing else, so every number in a sentence is in the log.
2. **Words.** jinja2 templates in ``explanations/<lang>/`` turn values into sentences
   (``error.txt.j2``, one sentence a line), patterns into phrases (``patterns.txt.j2``),
   and a whole item into a text (``item.txt.j2``) or an HTML fragment (``item.html.j2``).
   Grammar lives in the templates (``phrases.j2``: "this broker at this customs office",
   "esta unidade aduaneira"), so a translator edits templates, not code. Numbers,
   percentages and dates go through the filters ``number``, ``count``, ``percent``,
   ``signed`` and ``date``, which format for the template's ``lang`` (``sisam.formatting``).

One strict environment configuration renders everything (style.md, item 10;
``template_environment``): ``StrictUndefined`` (a misspelt value is an error, never an
empty gap in a sentence), autoescaping for ``.html`` templates, and a
``jinja2.sandbox.SandboxedEnvironment`` as soon as the user passes templates of their own
(``--templates``), which then cannot reach Python internals. A user folder overrides the
shipped templates file by file. Rendering failures raise ``TemplateError`` naming the
template and the cause.

Public API: ``explain_items`` (the worklist calls it) returns ``ItemExplanation`` objects;
``render_item`` turns one into the text ``sisam explain`` prints.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import numpy as np
import pandas as pd
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from sisam.attribution import (
    Attribution,
    ErrorAttribution,
    PatternPart,
    band_bounds,
    iter_attributions,
)
from sisam.contract import KEY
from sisam.engine.network import logistic
from sisam.errors import SisamError
from sisam.formatting import LANGUAGES, format_count, format_date, format_number, format_percent
from sisam.knowledge import ANY_LABEL, EVIDENCE_PREFIX, Knowledge
from sisam.resources import data_dir

if TYPE_CHECKING:
    from sisam.model import Scorer


#: Contributions (nats of log-odds) below this size are not worth a sentence: 0.05 moves
#: the odds by 5 %. The reasoning rows still list every pattern.
MIN_EVIDENCE = 0.05
#: Inspected patterns named as pushing up / down; the rest are in the reasoning rows.
MAX_FOR = 2
MAX_AGAINST = 1
#: Columns naming a party or a place the officer knows by the declaration itself: named
#: "this importer", "this customs office", never by their code.
PARTY_COLUMNS = frozenset({"importer_id", "exporter_id", "manufacturer_id", "broker_id"})
PLACE_COLUMNS = frozenset({"customs_office"})
#: "At least one error" is no entry of the error catalog; its name per language.
ANY_NAME = {"en": "At least one error", "pt-BR": "Pelo menos um erro"}

TEMPLATE_SUFFIX = ".j2"


class TemplateError(SisamError):
    """An explanation template is missing, refers to an undefined value, or tried to reach
    what the sandbox forbids."""


# --------------------------------------------------------------------------- templates


def _language(ctx: jinja2.runtime.Context) -> str:
    lang = ctx.resolve_or_missing("lang")
    if lang not in LANGUAGES:
        raise TemplateError(f"templates need `lang`, one of {', '.join(LANGUAGES)}; got {lang!r}")
    return lang


@jinja2.pass_context
def _number(ctx: jinja2.runtime.Context, x: float, decimals: int = 0) -> str:
    return format_number(x, _language(ctx), decimals)


@jinja2.pass_context
def _count(ctx: jinja2.runtime.Context, x: float) -> str:
    return format_count(x, _language(ctx))


@jinja2.pass_context
def _percent(ctx: jinja2.runtime.Context, p: float) -> str:
    return format_percent(p, _language(ctx))


@jinja2.pass_context
def _signed(ctx: jinja2.runtime.Context, x: float, decimals: int = 3) -> str:
    text = format_number(x, _language(ctx), decimals)
    return text if text.startswith("-") else "+" + text


@jinja2.pass_context
def _date(ctx: jinja2.runtime.Context, value: str) -> str:
    return format_date(value, _language(ctx))


def _upper_first(text: str) -> str:
    """First character upper-cased, the rest kept ("origin CN" -> "Origin CN"; jinja's
    ``capitalize`` would lower "CN")."""
    return text[:1].upper() + text[1:]


def _pad(text: Any, width: int, right: bool = False) -> str:
    text = str(text)
    return text.rjust(width) if right else text.ljust(width)


def template_environment(lang: str, user_templates: Path | None = None) -> jinja2.Environment:
    """The environment every explanation is rendered with (see the module docstring).

    Strict (``StrictUndefined``), autoescaping ``.html`` templates, and sandboxed as soon
    as ``user_templates`` is given: a folder laid out like ``explanations/``
    (``en/error.txt.j2``, ...) whose files take precedence over the shipped ones. The
    shipped templates alone run unsandboxed, twice as fast (the sandbox checks every
    attribute access and call), because they are part of sisam's reviewed source.

    ``lang`` is a global of the environment, not a render argument, so that the phrase
    macros every template imports (``phrases.j2``, imported without context and hence
    compiled once) format numbers for the right language."""
    if lang not in LANGUAGES:
        raise TemplateError(f"unknown language {lang!r}; expected one of {', '.join(LANGUAGES)}")
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(data_dir("explanations"))]
    environment_class: type[jinja2.Environment] = jinja2.Environment
    if user_templates is not None:
        if not Path(user_templates).is_dir():
            raise TemplateError(
                f"{user_templates}: templates folder not found; expected a folder laid out like "
                "explanations/ (en/error.txt.j2, pt-BR/error.txt.j2, ...)"
            )
        loaders.insert(0, jinja2.FileSystemLoader(user_templates))
        environment_class = SandboxedEnvironment
    env = environment_class(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(
        number=_number, count=_count, percent=_percent, signed=_signed, date=_date,
        upper_first=_upper_first, pad=_pad,
    )  # fmt: skip
    env.globals["lang"] = lang
    return env


class Renderer:
    """Renders the explanation templates of one language.

    Pattern phrases are cached by pattern (the same heading or country recurs across items
    and error types) and the missing ones rendered in one batch (``patterns.txt``): a
    render call costs more than the phrase itself."""

    def __init__(self, knowledge: Knowledge, lang: str = "en", user_templates: Path | None = None):
        self.knowledge = knowledge
        self.lang = lang
        self.env = template_environment(lang, user_templates)
        self._phrases: dict[tuple[PatternPart, ...], str] = {}

    def render(self, template_id: str, values: Mapping[str, Any]) -> str:
        """Render ``<lang>/<template_id>.j2`` (``template_id`` e.g. "error.txt") with
        ``values``."""
        name = f"{self.lang}/{template_id}{TEMPLATE_SUFFIX}"
        try:
            return self.env.get_template(name).render(values)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"explanation template {exc.name!r} not found (looked for {name})") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(
                f"explanation template {name}: {exc.message}; the values it may use: {', '.join(sorted(values))}"
            ) from None
        except SecurityError as exc:
            raise TemplateError(f"explanation template {name} tried something the sandbox forbids: {exc}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"explanation template {exc.filename or name}, line {exc.lineno}: {exc.message}") from None

    def sentences(self, values: Mapping[str, Any]) -> list[str]:
        """The sentences of one error type's explanation (``error.txt``: one a line)."""
        return [line.strip() for line in self.render("error.txt", values).splitlines() if line.strip()]

    def lines(self, template_id: str, values: Mapping[str, Any]) -> list[str]:
        """The non-empty lines of a template, stripped (one sentence a line)."""
        return [line.strip() for line in self.render(template_id, values).splitlines() if line.strip()]

    def phrases(self, patterns: Iterable[tuple[PatternPart, ...]]) -> dict[tuple[PatternPart, ...], str]:
        """Each pattern's phrase ("this importer with heading 8481")."""
        wanted = list(dict.fromkeys(patterns))
        missing = [p for p in wanted if p not in self._phrases]
        if missing:
            data = [parts_values(parts, self.knowledge, self.lang) for parts in missing]
            lines = self.render("patterns.txt", {"patterns": data}).split("\n")
            if len(lines) < len(missing):
                raise TemplateError(
                    f"explanation template {self.lang}/patterns.txt{TEMPLATE_SUFFIX} must write one "
                    f"line per pattern; it wrote {len(lines)} lines for {len(missing)} patterns"
                )
            self._phrases.update(zip(missing, (line.strip() for line in lines), strict=False))
        return {p: self._phrases[p] for p in wanted}


# ------------------------------------------------------------------------------ values


def pseudonym(value: str) -> str:
    """sha256 (hex) of a value's UTF-8 text: what the reasoning log writes instead of a
    value when asked to pseudonymise. Anyone holding the original value can check it; nobody
    can read it back from the log without guessing it."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _unit(column: str) -> str:
    """The unit a numeric column's bands are in, from the contract's naming."""
    for suffix, unit in (("_usd", "USD"), ("_kg", "kg")):
        if column.endswith(suffix):
            return unit
    return ""


def part_values(part: PatternPart, knowledge: Knowledge, lang: str, pseudonymise: bool = False) -> dict[str, Any]:
    """One pattern part as template data: ``role`` tells the phrase how to name it.

    Roles: ``party`` (named "this importer", value withheld), ``place`` (likewise, "this
    customs office", which phrases attach with "at"), ``hs`` (a tariff code or its
    prefix: ``digits``), ``band`` (``low`` <= x < ``high`` in ``unit``), ``evidence`` (an
    evidence model's band: ``surprise`` 0-4 and ``support`` 0-3 or None), ``text_fit`` (the
    description model's band, ``sisam.evidence.description_code``: ``fit`` 0-4 and
    ``support`` 0-3 or None), ``position`` (a
    quantity model's band: ``position`` 0-4, None when undefined, and ``support`` 0-2 or
    None), ``empty`` (declared
    blank: "no preferential claim"), ``missing``, ``hashed`` (pseudonymised) and ``value``.
    """
    attribute = knowledge.attributes[part.attribute]
    out: dict[str, Any] = {"attribute": part.attribute, "level": part.level, "noun": attribute.noun[lang]}
    # a phrase is one line: runs of white space in a declared value are shown as one space
    part = part if part.value is None else PatternPart(part.attribute, part.level, " ".join(part.value.split()) if part.value.strip() else part.value, part.band)
    if attribute.column.startswith(EVIDENCE_PREFIX) and part.value is not None and _kind(knowledge, attribute.column) == "quantity":
        # a band "q<position>n<support>", "q<position>" at a coarser level, or "qm" (undefined)
        position, _, support = part.value[1:].partition("n")
        if position == "m":
            return {**out, "role": "position", "position": None, "support": None}
        return {**out, "role": "position", "position": int(position), "support": int(support) if support else None}
    if attribute.column.startswith(EVIDENCE_PREFIX) and part.value is not None:
        # a band "s<surprise>n<support>", or "s<surprise>" at a coarser level
        surprise, _, support = part.value[1:].partition("n")
        spec = knowledge.evidence.get(attribute.column[len(EVIDENCE_PREFIX):])
        if spec is not None and spec.kind == "description_vs_code":
            # the same shape, read as where the description's words point (fit 0-4)
            # and what stands behind it (support 0-3)
            return {**out, "role": "text_fit", "fit": int(surprise), "support": int(support) if support else None}
        return {**out, "role": "evidence", "surprise": int(surprise), "support": int(support) if support else None}
    if attribute.column in PARTY_COLUMNS:
        return {**out, "role": "party"}
    if attribute.column in PLACE_COLUMNS:
        return {**out, "role": "place"}
    if part.value is None:
        return {**out, "role": "missing"}
    if part.value == "":
        return {**out, "role": "empty"}
    if pseudonymise:
        return {**out, "role": "hashed", "value": pseudonym(part.value)}
    if attribute.column == "hs_code":
        kind, _, width = part.level.partition(":")
        return {**out, "role": "hs", "value": part.value, "digits": int(width) if kind == "prefix" else len(part.value)}
    if part.band is not None:
        low, high = band_bounds(part.band, part.level)
        return {**out, "role": "band", "value": part.value, "low": low, "high": high, "unit": _unit(attribute.column)}
    return {**out, "role": "value", "value": part.value}


def _kind(knowledge: Knowledge, column: str) -> str | None:
    """The kind of the evidence model whose band ``column`` holds."""
    spec = knowledge.evidence.get(column.removeprefix(EVIDENCE_PREFIX))
    return spec.kind if spec is not None else None


_ROLE_ORDER = {"party": 0, "place": 1}


def parts_values(
    parts: Sequence[PatternPart], knowledge: Knowledge, lang: str, pseudonymise: bool = False
) -> list[dict[str, Any]]:
    """A pattern's parts as template data, parties first, then places, then the rest (in
    the factor's attribute order): who, where, what. The templates only choose the words
    between them ("this importer at this customs office with heading 8481")."""
    values = [part_values(p, knowledge, lang, pseudonymise) for p in parts]
    return sorted(values, key=lambda v: _ROLE_ORDER.get(v["role"], 2))


def hide_facts(facts: Mapping[str, Any], knowledge: Knowledge, lang: str, pseudonymise: bool) -> dict[str, Any]:
    """An evidence model's facts as template data: the field's noun, the contexts as
    pattern parts (parties named "this exporter"), values hashed when pseudonymising."""
    def hide(value: Any) -> Any:
        return pseudonym(value) if pseudonymise and isinstance(value, str) else value

    def parts(context: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        found = [PatternPart(c["attribute"], c["level"], c["value"], None) for c in context]
        return parts_values(found, knowledge, lang, pseudonymise)

    out = dict(facts)
    if facts["kind"] == "description_vs_code":
        # codes are hashed like every declared value, and words too: they can name a
        # brand or a model
        for key in ("declared", "declared_at", "usual"):
            out[key] = hide(facts[key])
        out["judged"] = [{**j, "declared": hide(j["declared"])} for j in facts["judged"]]
        out["words"] = [{**w, "word": hide(w["word"])} for w in facts["words"]]
        return out
    if facts["kind"] == "novelty":
        # the pairs seen for the first time, each named by its companion's noun
        out["new"] = [{"noun": knowledge.attributes[c["attribute"]].noun[lang], "value": hide(c["value"])}
                      for c in facts["companions"] if c["first_time"]]
        return out
    if facts["kind"] == "quantity":
        return _quantity_facts(out, knowledge, lang, pseudonymise)
    field = knowledge.attributes[facts["field"]]
    out["noun"] = field.noun[lang]
    if facts["numeric"]:
        # rates are no one's identity: never hashed, written as the language writes
        # numbers, with a % sign since the contract declares them in percent
        sign = format_percent(0.0, lang).removeprefix(format_number(0.0, lang, 1)) if field.column.endswith("_rate") else ""
        for key in ("declared", "usual"):
            if facts[key] is not None:
                x = float(facts[key])
                out[key] = format_number(x, lang, 2 if round(x, 2) == x else 6) + sign
    else:
        out["declared"], out["usual"] = hide(facts["declared"]), hide(facts["usual"])
    out["context"], out["used_context"] = parts(facts["context"]), parts(facts["used_context"])
    return out


def _quantity_facts(facts: dict[str, Any], knowledge: Knowledge, lang: str, pseudonymise: bool) -> dict[str, Any]:
    """A quantity model's facts as template data: the figures written as the language
    writes numbers (two significant digits below 1, cents above), the contexts as parts."""
    def parts(context: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        found = [PatternPart(c["attribute"], c["level"], c["value"], None) for c in context]
        return parts_values(found, knowledge, lang, pseudonymise)

    facts["context"] = parts(facts["context"])
    if facts.get("declared") is not None:
        facts["declared"] = _figure(facts["declared"], lang)
    usual = facts.get("usual")
    if usual is not None:
        sign = format_percent(0.0, lang).removeprefix(format_number(0.0, lang, 1))
        facts["usual"] = {**usual, "context": parts(usual["context"]), "low": _figure(usual["low"], lang),
                          "high": _figure(usual["high"], lang), "share": format_number(100.0 * usual["share"], lang) + sign}
    return facts


def _figure(x: float, lang: str) -> str:
    """A unit value or weight: cents from 1 up, two significant digits below."""
    decimals = 2 if x >= 1.0 else min(12, 1 - int(np.floor(np.log10(x))))
    return format_number(x, lang, decimals)


def error_name(knowledge: Knowledge, label: str, lang: str) -> str:
    return ANY_NAME[lang] if label == ANY_LABEL else knowledge.error(label).name[lang]


class ItemEvidence:
    """What the explanations of one item say, for any of its labels (``values``).

    Built once per item and shared by its labels, because what is costly is shared: the
    patterns in the item's terms, and the ranking of evidence, done for all labels at once.
    The item's patterns of every factor are stacked, then grouped by the group of items
    they stand for (``FactorEvidence.identities``): two factors can hold the same group
    (the importer alone is in four factors, ``hs_code`` and ``hs_heading`` at
    ``prefix:4`` are one heading), with the same counts, and an explanation names it once,
    with the sum of its contributions."""

    def __init__(self, attribution: Attribution, item: int, knowledge: Knowledge, lang: str = "en", pseudonymise: bool = False):
        self.attribution = attribution
        self.item = item
        self.knowledge = knowledge
        self.lang = lang
        self.pseudonymise = pseudonymise
        factors = attribution.factors
        self.names = [f.name for f in factors]
        sizes = [f.lattice.n_shapes for f in factors]
        self.factor_of = np.repeat(np.arange(len(factors)), sizes)
        self.shape_of = np.concatenate([np.arange(size) for size in sizes])
        self.n = np.concatenate([f.trace.n[item] for f in factors])
        self.k = np.concatenate([f.trace.k[item] for f in factors])
        self.c = np.concatenate([f.contributions[item] for f in factors])
        # Evidence is an inspected pattern other than the root (which every item matches
        # and which contributes nothing); a factor outside a label's network adds 0.
        eligible = (self.n > 0.0) & (self.shape_of > 0)
        self.masked = np.where(eligible[:, None], self.c, 0.0)
        ids = np.concatenate([f.identities[item] for f in factors])
        _, first, group = np.unique(ids, return_index=True, return_inverse=True)
        # groups numbered by first appearance: ties rank in the catalog's factor order
        rank = np.empty(first.size, dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(first.size)
        self.group = rank[group.reshape(-1)]
        self.first = np.sort(first)
        self.merged = np.zeros((first.size, self.c.shape[1]))
        np.add.at(self.merged, self.group, self.masked)
        self.up = np.argsort(-self.merged, axis=0, kind="stable")[:MAX_FOR]
        self.down = np.argsort(self.merged, axis=0, kind="stable")[:MAX_AGAINST]
        self._parts: dict[int, list[dict[str, Any]]] = {}

    def _pattern(self, row: int) -> list[dict[str, Any]]:
        """Template data of stacked pattern ``row`` (memoised: shared by every label)."""
        parts = self._parts.get(row)
        if parts is None:
            found = self.attribution.pattern(self.item, int(self.factor_of[row]), int(self.shape_of[row]))
            parts = self._parts[row] = parts_values(found, self.knowledge, self.lang, self.pseudonymise)
        return parts

    def _entry(self, e: int, contribution: float, rows: Sequence[int], expected_at: int) -> dict[str, Any]:
        """An evidence entry: the pattern, its counts, and ``expected``, the prior it
        inherited from its coarser patterns in the factor ``expected_at`` (a row of
        ``rows``). P(W) - prior(W) = (k - n prior(W)) / (n + S), so the rate k / n lies
        above ``expected`` exactly when the pattern raises the probability: the sentence
        can say "12.5%, against 8.0% expected" and never contradict its verb."""
        row = rows[0]
        n, k = float(self.n[row]), float(self.k[row, e])
        f, s = int(self.factor_of[expected_at]), int(self.shape_of[expected_at])
        prior = self.attribution.factors[f].trace.lo_prior[self.item, s, e]
        return {
            "parts": self._pattern(row),
            "n": n,
            "k": k,
            "rate": k / n,
            "expected": float(logistic(prior)),
            "expected_at": [self.names[f], s],
            "contribution": contribution,
            "patterns": [[self.names[int(self.factor_of[r])], int(self.shape_of[r])] for r in rows],
        }

    def _evidence(self, e: int, order: np.ndarray, sign: float) -> list[dict[str, Any]]:
        """The groups of ``order[:, e]`` whose summed contribution, times ``sign``, is at
        least ``MIN_EVIDENCE``; ``patterns`` lists where each is in the network (in
        stacked order, the order of the sum), ``expected`` comes from the factor where
        the pattern pushed hardest in the sum's direction."""
        out = []
        for g in order[:, e].tolist():
            contribution = float(self.merged[g, e])
            if sign * contribution < MIN_EVIDENCE:
                break
            rows = [r for r in np.flatnonzero(self.group == g).tolist() if self.masked[r, e] != 0.0]
            strongest = max(rows, key=lambda r: sign * self.masked[r, e])
            out.append(self._entry(e, contribution, rows, strongest))
        return out

    def _novelty(self, e: int, first: int) -> dict[str, Any] | None:
        """The network's first factor's full pattern (its finest combination, e.g. this
        code x importer x origin x office), when it was never inspected: the officer should
        know the estimate comes from coarser patterns, and which two of that factor weigh
        most."""
        rows = np.flatnonzero(self.factor_of == first)
        full = int(rows[-1])
        if self.n[full] > 0.0:
            return None
        weight = np.abs(self.masked[rows, e])
        sources = [int(rows[j]) for j in np.argsort(-weight, kind="stable")[:2].tolist() if weight[j] > 0.0]
        return {
            "parts": self._pattern(full),
            "patterns": [[self.names[first], int(self.shape_of[full])]],
            "sources": [self._entry(e, float(self.c[row, e]), [row], row) for row in sources],
        }

    def values(self, label: str) -> dict[str, Any]:
        """What the explanation of ``label`` says, as JSON-ready data (the values of
        ``error.txt``; stored verbatim in the reasoning log).

        Keys: ``error`` {id, name}; ``probability``; ``base_rate`` (p_e); ``lift``
        (lo(P_e) - lo(p_e), before the "any" clip); ``clip`` (null, or {bound: "lower" |
        "upper"} when the "any" label was moved into its bounds); ``up`` and ``down``: the
        evidence pushing the probability up (at most ``MAX_FOR``) and down (at most
        ``MAX_AGAINST``), entries {parts, n, k, rate = k / n, expected (the prior the
        pattern inherited), expected_at [factor, shape], contribution (summed over the
        factors holding the pattern), patterns: [[factor, shape], ...]}; ``novel``: null
        or {parts, patterns, sources: [entries]}; ``consistency``: the facts of the evidence
        models serving the label (``hide_facts``: band, declared value, probability, the
        context and the coarser context the figure rests on as parts, its declarations
        and those declaring the value, the usual value, rank, fallback).
        """
        a, i = self.attribution, self.item
        e = a.label_index(label)
        network = self.knowledge.networks[label].factors
        network_lo = float(a.network[i, e])
        final_lo = float(a.log_odds[i, e])
        return {
            "error": {"id": label, "name": error_name(self.knowledge, label, self.lang)},
            "probability": float(a.probability[i, e]),
            "base_rate": float(logistic(a.base[e])),
            "lift": network_lo - float(a.base[e]),
            "clip": None if final_lo == network_lo else {"bound": "lower" if final_lo > network_lo else "upper"},
            "up": self._evidence(e, self.up, 1.0),
            "down": self._evidence(e, self.down, -1.0),
            "novel": self._novelty(e, self.names.index(network[0])) if network else None,
            "consistency": self._consistency(label),
        }

    def _consistency(self, label: str) -> list[dict[str, Any]]:
        """The facts of the evidence models serving ``label`` (``EvidenceModel.facts``),
        context values named in the item's terms and hidden when pseudonymising."""
        facts = self.attribution.evidence[self.item] if self.attribution.evidence else []
        return [hide_facts(f, self.knowledge, self.lang, self.pseudonymise) for f in facts if label in f["serves"]]


def error_values(
    attribution: Attribution, item: int, label: str, knowledge: Knowledge, lang: str = "en", pseudonymise: bool = False
) -> dict[str, Any]:
    """The explanation values of one (item, label): ``ItemEvidence(...).values(label)``."""
    return ItemEvidence(attribution, item, knowledge, lang, pseudonymise).values(label)


def item_values(
    attribution: Attribution, item: int, row: Mapping[str, Any], kb_facts: Mapping[str, Any], lang: str
) -> dict[str, Any]:
    """The header of an item's explanation (values of ``item.txt`` besides ``errors``):
    declaration, item, date, office, probability of any error, knowledge-base version."""
    date = row.get("date")
    return {
        "declaration_id": str(row["declaration_id"]),
        "item_no": int(row["item_no"]),
        "date": None if date is None or pd.isna(date) else pd.Timestamp(date).date().isoformat(),
        "office": str(row["customs_office"]),
        "p_any": float(attribution.probability[item, attribution.label_index(ANY_LABEL)]),
        "kb": dict(kb_facts),
    }


def kb_facts(scorer: Scorer) -> dict[str, Any]:
    """Which knowledge answered: version, content hash, and the last day of data it holds."""
    date_to = scorer.version.provenance.date_to
    return {
        "version": scorer.version.version,
        "content_hash": scorer.version.content_hash,
        "date_to": None if date_to is None else date_to.isoformat(),
    }


# ----------------------------------------------------------------- public dataclasses


@dataclass(frozen=True)
class ReasoningRow:
    """One pattern of the item's lattice, what its counts say and what they did.

    ``pattern`` names it in the item's terms in the explanation's language ("this importer
    with heading 8481"); ``factor`` and ``shape`` locate it in the model and ``parts`` give
    its attributes, levels and the item's values. ``n`` inspected items matched it, ``k``
    of them had the error (floats: decayed counts may be fractional). ``prior`` is the
    probability the pattern inherited from its generalisations, ``posterior`` the one its
    own counts gave (hpb.md, Eq. 3-5); ``contribution`` its term of the item's log-odds
    lift over the base rate (natural log: +0.69 doubles the odds; network calibration
    included). Over all rows of an error type, the contributions add up to lo(P) - lo(p_e).
    """

    pattern: str
    n: float
    k: float
    prior: float
    posterior: float
    contribution: float
    factor: str
    shape: int
    parts: tuple[PatternPart, ...]


@dataclass(frozen=True)
class ErrorExplanation:
    """One error type of an item: catalog ``id`` and ``name`` (in the explanation's
    language), ``probability`` (the score), the ``sentences`` an officer reads, the
    template ``values`` they were rendered from (what the reasoning log stores), and the
    full ``reasoning``: every pattern of every factor of the error type's network, largest
    contribution (in absolute value) first."""

    id: str
    name: str
    probability: float
    sentences: list[str]
    reasoning: list[ReasoningRow]
    values: Mapping[str, Any]


@dataclass(frozen=True)
class ItemExplanation:
    """An item's explanation: its key (``declaration_id``, ``item_no``), ``office``,
    ``p_any`` (probability of at least one error) and its most probable error types,
    most probable first (``errors``). ``values`` are the header's template values."""

    declaration_id: str
    item_no: int
    office: str
    p_any: float
    errors: list[ErrorExplanation]
    values: Mapping[str, Any]


def reasoning_rows(
    decomposition: ErrorAttribution, phrases: Mapping[tuple[PatternPart, ...], str]
) -> list[ReasoningRow]:
    """Every pattern of an error type's network, largest |contribution| first; ties (the
    never-inspected patterns, all 0) keep the catalog's factor and shape order."""
    rows = [
        ReasoningRow(
            pattern=phrases[c.pattern], n=c.n, k=c.k, prior=c.prior, posterior=c.posterior,
            contribution=c.contribution, factor=c.factor, shape=c.shape, parts=c.pattern,
        )
        for c in decomposition.contributions
    ]
    return sorted(rows, key=lambda r: -abs(r.contribution))


def explain_items(
    scorer: Scorer,
    frame: pd.DataFrame,
    lang: str = "en",
    top: int = 3,
    *,
    templates: Path | None = None,
    labels: Sequence[str] | None = None,
) -> list[ItemExplanation]:
    """Explain every item of ``frame``: its ``top`` most probable error types (all 30 with
    ``top=30``), each with sentences in ``lang`` ("en" or "pt-BR") and its full reasoning.

    ``labels`` restricts the error types considered (default: the 30 of the catalog).
    ``templates`` is a user folder of templates overriding the shipped ones (sandboxed).
    The probabilities are the scorer's, bit for bit.
    """
    knowledge = scorer.knowledge
    renderer = Renderer(knowledge, lang, templates)
    facts = kb_facts(scorer)
    candidates = [e.id for e in knowledge.errors] if labels is None else list(labels)
    out = []
    records = frame.reset_index(drop=True)
    for start, attribution in iter_attributions(scorer, records):
        columns = [attribution.label_index(label) for label in candidates]
        stake = _stake(scorer, records.iloc[start : start + attribution.n_items], attribution)
        for i in range(attribution.n_items):
            order = np.argsort(-attribution.probability[i, columns], kind="stable")[: max(0, top)]
            chosen = [candidates[j] for j in order.tolist()]
            memo: dict[tuple[int, int], tuple[PatternPart, ...]] = {}
            decompositions = [attribution.error(i, label, memo) for label in chosen]
            phrases = renderer.phrases(memo.values())
            errors = []
            evidence = ItemEvidence(attribution, i, knowledge, lang)
            for label, decomposition in zip(chosen, decompositions, strict=True):
                values = evidence.values(label)
                sentences = renderer.sentences(values)
                if label in SUGGESTION_LABELS and stake.suggestions is not None:
                    values = {**values, "suggestions": stake.suggestions[i]}
                    sentences += renderer.lines(STAKE_TEMPLATE, values)
                errors.append(
                    ErrorExplanation(
                        id=label,
                        name=values["error"]["name"],
                        probability=values["probability"],
                        sentences=sentences,
                        reasoning=reasoning_rows(decomposition, phrases),
                        values=values,
                    )
                )
            header = item_values(attribution, i, records.iloc[start + i], facts, lang)
            if stake.recovery is not None:
                header["expected_recovery_usd"] = float(stake.recovery[i])
            out.append(
                ItemExplanation(
                    declaration_id=header["declaration_id"],
                    item_no=header["item_no"],
                    office=header["office"],
                    p_any=header["p_any"],
                    errors=errors,
                    values=header,
                )
            )
    return out


#: Error types whose explanation also names the likeliest correct codes (``sisam.suggest``).
SUGGESTION_LABELS = ("hs_code", "hs_chapter")
#: Sentences about what an inspection may correct: ``stake.txt`` (values: the error's, plus
#: ``suggestions`` {declared, codes [{code, probability}], level, context, corrections}).
STAKE_TEMPLATE = "stake.txt"


@dataclass(frozen=True)
class _Stake:
    """Per item of a chunk: suggested codes' explanation values and expected recovery."""

    suggestions: list[dict[str, Any]] | None
    recovery: np.ndarray | None


def _stake(scorer: Scorer, chunk: pd.DataFrame, attribution: Attribution) -> _Stake:
    suggestions = recovery = None
    if scorer.suggester is not None:
        codes = chunk["hs_code"].astype(str).to_numpy()
        importers = chunk["importer_id"].astype(str).to_numpy()
        found = scorer.suggester.suggest_all(codes, importers)
        suggestions = [scorer.suggester.explanation_values(c, i, s) for c, i, s in zip(codes, importers, found, strict=True)]
    if scorer.recovery is not None:
        by_label = {label: attribution.probability[:, attribution.label_index(label)] for label in scorer.knowledge.label_ids}
        recovery = scorer.recovery.expected(chunk, by_label)
    return _Stake(suggestions, recovery)


def render_item(
    explanation: ItemExplanation, renderer: Renderer, *, html: bool = False
) -> str:
    """The whole explanation of one item (``item.txt.j2`` or ``item.html.j2``): header,
    then every error type of ``explanation.errors`` with its sentences and the reasoning
    rows of its inspected patterns (the others contribute nothing and are counted)."""
    errors = [
        {
            **error.values,
            "sentences": list(error.sentences),
            "reasoning": [
                {"pattern": r.pattern, "n": r.n, "k": r.k, "prior": r.prior, "posterior": r.posterior,
                 "contribution": r.contribution, "factor": r.factor}
                for r in error.reasoning
                if r.n > 0.0
            ],
            "never_inspected": sum(1 for r in error.reasoning if r.n == 0.0),
        }
        for error in explanation.errors
    ]
    return renderer.render("item.html" if html else "item.txt", {**explanation.values, "errors": errors})


def find_item(frame: pd.DataFrame, item: str) -> pd.DataFrame:
    """The row of ``frame`` named ``DECLARATION/ITEM`` (split at the last "/", so a
    declaration number may itself hold slashes)."""
    declaration, sep, number = item.rpartition("/")
    if not sep or not number.strip().isdigit():
        raise SisamError(f"--item {item!r}: expected DECLARATION/ITEM, e.g. 2400004038/1")
    match = frame[(frame[KEY[0]].astype(str) == declaration) & (frame[KEY[1]] == int(number))]
    if match.empty:
        raise SisamError(f"--item {item!r}: no item {number} of declaration {declaration!r} in the declarations")
    return match.iloc[:1]


def explain_one(
    scorer: Scorer, frame: pd.DataFrame, item: str, lang: str = "en", *, templates: Path | None = None, html: bool = False
) -> str:
    """``sisam explain``: the full explanation of one item, every error type ranked."""
    row = find_item(frame, item)
    (explanation,) = explain_items(scorer, row, lang, top=len(scorer.knowledge.errors), templates=templates)
    return render_item(explanation, Renderer(scorer.knowledge, lang, templates), html=html)
