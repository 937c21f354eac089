"""The officer's worklist: one self-contained HTML page of ranked, explained items.

What the officer gets (brief.md, "What the people around such systems ask for"): the items of
the day in the order to inspect them, each with its most probable error types, their
probabilities and the sentences that explain them, and behind a native ``<details>`` the full
reasoning an auditor replays: every pattern of the item's lattice with its counts, the prior
it inherited, the posterior its counts gave and its contribution in log-odds (hpb.md, "Why
explanations come for free"). The officer decides; the page only ranks and explains.

Ranking. An item whose entry carries an expected value (the tax and administrative return of
inspecting it, brief.md "SISAM") is ranked by that value: an item worth 600 goes before one
worth 300 whatever their probabilities. Items without one follow, by the probability of at
least one error (``p_any``). Ties fall back to ``p_any``, then to the declaration number and
item number, so the same scores always give the same page.

The page is one file that works offline from a ``file://`` URL: CSS and JavaScript inline,
no font, image, script or framework fetched from anywhere. Filters (error type, customs
office, declaration number) are plain JavaScript that hides non-matching items; their state
lives in the URL's fragment, e.g. ``worklist.html#error=hs_code&office=0817600&q=2401``, so a
filtered view can be bookmarked or sent to a colleague, and the page applies it on load.
Without JavaScript every item is shown, in rank order.

Safety. Descriptions, ids and sentences come from declarations, i.e. from traders: the
template is rendered by a sandboxed jinja2 environment with autoescaping on (every ``<``,
``&`` and quote in the data becomes an entity) and ``StrictUndefined`` (a misspelt field is
an error, not an empty cell). The little data the script needs is embedded as JSON with
``<``, ``>``, ``&`` and ``'`` written as ``\\u`` escapes, so no value can close the
``<script>`` element. As a second wall the page declares a Content-Security-Policy that
allows no network access at all and runs only the one inline script whose SHA-256 it names:
a value that slipped through escaping still could not run code or phone home.

The entries are plain dataclasses (:class:`WorklistEntry`, :class:`WorklistError`,
:class:`ReasoningRow`), so the page can be built from any source;
:func:`entries_from_explanations` maps the explainer's ``ItemExplanation`` objects onto
them by attribute name, so wiring the two together is one call.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import logging
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from sisam import __version__
from sisam.resources import data_dir

log = logging.getLogger("sisam.worklist")

TEMPLATE = "worklist.html.j2"

# Every string the page shows that is not data, per language. Keys are the same in every
# language (a test checks it); the JavaScript receives the ones it needs through JSON.
_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "lede": "Items in the order to inspect them: by expected value where it is known, "
        "otherwise by the probability of at least one error. sisam ranks and explains; "
        "the officer decides.",
        "generated": "Generated",
        "source": "Scores",
        "items_one": "1 item",
        "items_other": "{n} items",
        "filters": "Filters",
        "filter_error": "Error type",
        "filter_office": "Customs office",
        "filter_search": "Declaration",
        "search_placeholder": "Declaration number",
        "all_errors": "All error types",
        "all_offices": "All offices",
        "clear": "Clear filters",
        "expand_all": "Open all reasoning",
        "collapse_all": "Close all",
        "showing": "Showing {shown} of {total}",
        "rank": "Rank",
        "declaration": "Declaration",
        "item": "item",
        "office": "Office",
        "not_declared": "(not declared)",
        "p_any": "Any error",
        "expected_value": "Expected value",
        "top_errors": "Most probable errors",
        "no_errors": "No error type stands out for this item.",
        "reasoning": "Full reasoning",
        "patterns_one": "1 pattern",
        "patterns_other": "{n} patterns",
        "col_pattern": "Pattern",
        "col_n": "Inspected (n)",
        "col_k": "With this error (k)",
        "col_prior": "Prior",
        "col_posterior": "Posterior",
        "col_contribution": "Contribution",
        "table_note": "n: inspected items that match the pattern; k: how many of them had this "
        "error. Prior: the probability the pattern inherits from its generalisations; "
        "posterior: after its own counts. Contribution: how far the pattern moved the item's "
        "log-odds (positive raises the probability).",
        "empty": "Nothing to inspect: the worklist is empty.",
        "no_match": "No item matches these filters.",
        "footer": "Probabilities are sisam's estimates learned from past inspections. They "
        "rank items for inspection; they are not findings.",
    },
    "pt-BR": {
        "lede": "Itens na ordem em que convém inspecioná-los: pelo valor esperado, quando "
        "conhecido; senão, pela probabilidade de conterem ao menos um erro. O sisam ordena e "
        "explica; quem decide é a fiscalização.",
        "generated": "Gerado em",
        "source": "Escores",
        "items_one": "1 item",
        "items_other": "{n} itens",
        "filters": "Filtros",
        "filter_error": "Tipo de erro",
        "filter_office": "Unidade aduaneira",
        "filter_search": "Declaração",
        "search_placeholder": "Número da declaração",
        "all_errors": "Todos os tipos de erro",
        "all_offices": "Todas as unidades",
        "clear": "Limpar filtros",
        "expand_all": "Abrir todos os raciocínios",
        "collapse_all": "Fechar todos",
        "showing": "Exibindo {shown} de {total}",
        "rank": "Posição",
        "declaration": "Declaração",
        "item": "item",
        "office": "Unidade",
        "not_declared": "(não declarada)",
        "p_any": "Algum erro",
        "expected_value": "Valor esperado",
        "top_errors": "Erros mais prováveis",
        "no_errors": "Nenhum tipo de erro se destaca neste item.",
        "reasoning": "Raciocínio completo",
        "patterns_one": "1 padrão",
        "patterns_other": "{n} padrões",
        "col_pattern": "Padrão",
        "col_n": "Inspecionados (n)",
        "col_k": "Com este erro (k)",
        "col_prior": "A priori",
        "col_posterior": "A posteriori",
        "col_contribution": "Contribuição",
        "table_note": "n: itens inspecionados que casam com o padrão; k: quantos deles tinham "
        "este erro. A priori: a probabilidade que o padrão herda das suas generalizações; a "
        "posteriori: depois das suas próprias contagens. Contribuição: quanto o padrão "
        "deslocou o log-odds do item (positiva aumenta a probabilidade).",
        "empty": "Nada a inspecionar: a lista de trabalho está vazia.",
        "no_match": "Nenhum item atende a estes filtros.",
        "footer": "As probabilidades são estimativas do sisam aprendidas com inspeções "
        "passadas. Servem para ordenar itens para inspeção; não são constatações.",
    },
}

#: Languages the page can be written in (the same as the error catalog's, knowledge.LANGUAGES).
LANGUAGES: tuple[str, ...] = tuple(_LABELS)

# Labels the script needs (the rest are rendered into the HTML).
_JS_LABELS = ("showing", "filter_error", "filter_office", "filter_search", "not_declared")


def _probability(value: float, what: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise ValueError(f"{what} must be a probability in [0, 1]; got {value!r}")
    return value


@dataclass(frozen=True)
class ReasoningRow:
    """One pattern of the item's lattice and what its counts did (hpb.md, Eq. 4-5 and
    "Why explanations come for free").

    ``n`` inspected items matched the pattern, ``k`` of them had the error (floats: counts
    may be decayed). ``prior`` is the probability the pattern inherits from its
    generalisations, ``posterior`` the smoothed estimate after its own counts,
    ``contribution`` its weighted shift of the item's log-odds (natural log); over all the
    item's patterns the contributions add up to lo(P) - lo(p_e).
    """

    pattern: str
    n: float
    k: float
    prior: float
    posterior: float
    contribution: float

    def __post_init__(self) -> None:
        _probability(self.prior, f"prior of pattern {self.pattern!r}")
        _probability(self.posterior, f"posterior of pattern {self.pattern!r}")
        if not math.isfinite(self.contribution):
            raise ValueError(f"contribution of pattern {self.pattern!r} must be finite; got {self.contribution!r}")


@dataclass(frozen=True)
class WorklistError:
    """One of an item's most probable error types: its catalog id and name (in the page's
    language), its probability, the sentences that explain it, and the full reasoning."""

    id: str
    name: str
    probability: float
    sentences: tuple[str, ...] = ()
    reasoning: tuple[ReasoningRow, ...] = ()

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError(f"an error type needs an id; got {self.id!r} (named {self.name!r})")
        _probability(self.probability, f"probability of error {self.id!r}")


@dataclass(frozen=True)
class WorklistEntry:
    """One declaration item on the worklist.

    ``errors`` are its top error types, most probable first as the explainer chose them (the
    page keeps their order). ``expected_value``, when known, is the expected tax and
    administrative return of inspecting the item; entries that have one rank before those
    that do not (see the module docstring).
    """

    declaration_id: str
    item_no: int
    office: str
    p_any: float
    errors: tuple[WorklistError, ...] = ()
    expected_value: float | None = None

    def __post_init__(self) -> None:
        _probability(self.p_any, f"p_any of declaration {self.declaration_id!r} item {self.item_no}")
        if self.expected_value is not None and not math.isfinite(self.expected_value):
            raise ValueError(
                f"expected_value of declaration {self.declaration_id!r} item {self.item_no} "
                f"must be finite or None; got {self.expected_value!r}"
            )


def rank(entries: Iterable[WorklistEntry]) -> list[WorklistEntry]:
    """Entries in inspection order: expected value first where known, then ``p_any``."""

    def key(e: WorklistEntry) -> tuple[int, float, float, str, int]:
        has_value = e.expected_value is not None
        value = e.expected_value if e.expected_value is not None else 0.0
        return (0 if has_value else 1, -value, -e.p_any, e.declaration_id, e.item_no)

    return sorted(entries, key=key)


# ---------------------------------------------------------------------------------------
# Adapter from the explainer's objects.

# Attribute (or mapping key) names read from the explainer's objects, first match wins. The
# alternatives absorb naming that was still settling when both sides were written in
# parallel; a missing field names every alternative tried.
_ITEM_FIELDS = {
    "declaration_id": ("declaration_id",),
    "item_no": ("item_no",),
    "office": ("office", "customs_office"),
    "p_any": ("p_any",),
    "errors": ("errors", "top_errors", "top"),
}
_ERROR_FIELDS = {
    "id": ("id", "error_id"),
    "name": ("name",),
    "probability": ("probability",),
    "sentences": ("sentences",),
    "reasoning": ("reasoning", "rows"),
}
_ROW_FIELDS = {
    "pattern": ("pattern", "description", "pattern_description"),
    "n": ("n",),
    "k": ("k",),
    "prior": ("prior",),
    "posterior": ("posterior",),
    "contribution": ("contribution",),
}
_MISSING = object()


def _read(obj: Any, names: tuple[str, ...], what: str) -> Any:
    for name in names:
        value = obj.get(name, _MISSING) if isinstance(obj, Mapping) else getattr(obj, name, _MISSING)
        if value is not _MISSING:
            return value
    raise TypeError(
        f"cannot build the worklist: {what} ({type(obj).__name__}) has none of the fields "
        f"{', '.join(names)}"
    )


def _fields(obj: Any, spec: Mapping[str, tuple[str, ...]], what: str) -> dict[str, Any]:
    return {key: _read(obj, names, what) for key, names in spec.items()}


def entries_from_explanations(items: Iterable[Any]) -> list[WorklistEntry]:
    """Map explanation objects (``ItemExplanation`` of the attribution step, or mappings with
    the same keys, e.g. read back from a JSON reasoning log) onto :class:`WorklistEntry`.

    Fields are read by name, duck-typed: per item ``declaration_id, item_no, office, p_any,
    errors`` and optionally ``expected_value``; per error ``id, name, probability,
    sentences, reasoning``; per reasoning row ``pattern, n, k, prior, posterior,
    contribution``. ``pattern`` may be a string or an object with a ``description``. A
    missing field raises ``TypeError`` naming the object and the names tried.
    """
    entries = []
    for item in items:
        f = _fields(item, _ITEM_FIELDS, "an explained item")
        value = item.get("expected_value") if isinstance(item, Mapping) else getattr(item, "expected_value", None)
        errors = []
        for error in f["errors"]:
            e = _fields(error, _ERROR_FIELDS, f"an error of declaration {f['declaration_id']!r}")
            rows = []
            for row in e["reasoning"]:
                r = _fields(row, _ROW_FIELDS, f"a reasoning row of error {e['id']!r}")
                pattern = r.pop("pattern")
                if not isinstance(pattern, str):
                    pattern = _read(pattern, ("description",), "a pattern")
                rows.append(ReasoningRow(pattern=str(pattern), **{k: float(v) for k, v in r.items()}))
            errors.append(WorklistError(
                id=str(e["id"]),
                name=str(e["name"]),
                probability=float(e["probability"]),
                sentences=tuple(str(s) for s in e["sentences"]),
                reasoning=tuple(rows),
            ))
        entries.append(WorklistEntry(
            declaration_id=str(f["declaration_id"]),
            item_no=int(f["item_no"]),
            office=str(f["office"]),
            p_any=float(f["p_any"]),
            errors=tuple(errors),
            expected_value=None if value is None else float(value),
        ))
    return entries


# ---------------------------------------------------------------------------------------
# Rendering.

def _number(x: float, digits: int, lang: str) -> str:
    """``1234.5`` -> "1,234.50" (en) or "1.234,50" (pt-BR)."""
    text = f"{x:,.{digits}f}"
    if lang == "pt-BR":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def _percent(p: float, lang: str) -> str:
    """A probability as a percentage an officer reads at a glance: one decimal from 1 % up,
    two significant digits below (priors of rare errors are often a fraction of a percent)."""
    if p == 0.0:
        return "0%"
    if p >= 0.01:
        return _number(100 * p, 1, lang) + "%"
    text = f"{100 * p:.2g}"
    if "e" in text:  # below 0.0001 %: the scientific form would puzzle a reader
        text = f"{100 * p:.6f}".rstrip("0")
    return (text.replace(".", ",") if lang == "pt-BR" else text) + "%"


def _count(x: float, lang: str) -> str:
    """Counts are whole unless decayed; show a decimal only when there is one."""
    return _number(x, 0 if float(x).is_integer() else 1, lang)


def _signed(x: float, lang: str) -> str:
    return ("+" if x > 0 else "−" if x < 0 else "") + _number(abs(x), 2, lang)


def _plural(labels: Mapping[str, str], key: str, n: int) -> str:
    return labels[key + "_one"] if n == 1 else labels[key + "_other"].format(n=n)


def _csp_sha256(script: str) -> str:
    """The CSP source that allows exactly this inline script (CSP Level 2 hash source)."""
    digest = hashlib.sha256(str(script).encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


@functools.lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(data_dir("explanations")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["csp_sha256"] = _csp_sha256
    return env


@dataclass(frozen=True)
class _Option:
    value: str
    label: str
    count: int


@dataclass
class _View:
    """What the template shows of one entry: the entry and its strings in the page's language."""

    rank: int
    entry: WorklistEntry
    p_any: str
    expected_value: str | None
    errors: list[dict[str, Any]] = field(default_factory=list)


def _view(rank_: int, entry: WorklistEntry, lang: str) -> _View:
    view = _View(
        rank=rank_,
        entry=entry,
        p_any=_percent(entry.p_any, lang),
        expected_value=None if entry.expected_value is None else _number(entry.expected_value, 2, lang),
    )
    for error in entry.errors:
        # Bars in the reasoning table are scaled to the largest contribution of that table,
        # so the pattern that moved the belief most is visible at a glance.
        scale = max((abs(r.contribution) for r in error.reasoning), default=0.0) or 1.0
        view.errors.append({
            "error": error,
            "probability": _percent(error.probability, lang),
            "bar": round(100 * error.probability, 1),
            "rows": [
                {
                    "row": r,
                    "n": _count(r.n, lang),
                    "k": _count(r.k, lang),
                    "prior": _percent(r.prior, lang),
                    "posterior": _percent(r.posterior, lang),
                    "contribution": _signed(r.contribution, lang),
                    "direction": "up" if r.contribution > 0 else "down" if r.contribution < 0 else "flat",
                    "bar": round(100 * abs(r.contribution) / scale, 1),
                }
                for r in error.reasoning
            ],
        })
    return view


def render_worklist(
    entries: Sequence[WorklistEntry],
    *,
    title: str,
    lang: str = "en",
    generated_at: str,
    source: str,
) -> str:
    """The worklist page as one self-contained HTML document.

    ``entries`` in any order (they are ranked here, see the module docstring); ``title``,
    ``generated_at`` (e.g. an ISO timestamp) and ``source`` (e.g. the scores file's name) are
    shown as given, escaped. ``lang`` is one of :data:`LANGUAGES`; data (error names,
    sentences) is shown as given, so pass it in the same language.

    >>> page = render_worklist([], title="Today", generated_at="2024-05-02", source="s.csv")
    >>> "the worklist is empty" in page
    True
    """
    if lang not in _LABELS:
        raise ValueError(f"unknown worklist language; expected one of {', '.join(LANGUAGES)}; got {lang!r}")
    labels = _LABELS[lang]
    ranked = rank(entries)

    error_names: dict[str, str] = {}
    error_counts: Counter[str] = Counter()
    for entry in ranked:
        for error in entry.errors:
            error_names.setdefault(error.id, error.name)
        # An item counts once per error type even if an explainer listed a type twice.
        error_counts.update({error.id for error in entry.errors})
    office_counts = Counter(entry.office for entry in ranked)

    context = {
        "lang": lang,
        # A namespace, not the dict: jinja's ``t.clear`` would find dict.clear before the key.
        "t": SimpleNamespace(**labels),
        "title": title,
        "generated_at": generated_at,
        "source": source,
        "version": __version__,
        "n_items": _plural(labels, "items", len(ranked)),
        "items": [_view(i, entry, lang) for i, entry in enumerate(ranked, start=1)],
        "error_options": sorted(
            (_Option(id_, name, error_counts[id_]) for id_, name in error_names.items()),
            key=lambda o: (o.label.casefold(), o.value),
        ),
        "office_options": [
            _Option(office, office or labels["not_declared"], count)
            for office, count in sorted(office_counts.items())
        ],
        "patterns": {n: _plural(labels, "patterns", n) for n in
                     {len(e.reasoning) for entry in ranked for e in entry.errors}},
        "script_data": {
            "lang": lang,
            "labels": {key: labels[key] for key in _JS_LABELS},
            "errorNames": error_names,
        },
    }
    return _environment().get_template(TEMPLATE).render(context)


def write_worklist(entries: Sequence[WorklistEntry], out: Path, **kw: Any) -> Path:
    """Render the worklist (``kw`` as for :func:`render_worklist`) and write it to ``out``
    atomically: a synced temporary file beside ``out`` renamed over it with ``os.replace``,
    so a reader (a browser reloading the page) never sees half a page. Missing folders are
    created; the written path is returned.
    """
    out = Path(out)
    page = render_worklist(entries, **kw)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(page)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); a report is meant to be read like any file.
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temp, 0o666 & ~mask)
        os.replace(temp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    log.info("wrote worklist %s (%d items)", out, len(entries))
    return out
