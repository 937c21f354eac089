"""The benchmark report: ``bench.json``, ``bench.md`` and a self-contained ``bench.html``.

Each suite adds its part (its results and the command, machine, versions and seeds that
made them) to ``OUT/bench.json``; the reports are then rewritten from the whole JSON, so
suites run apart still make one report. Plots are SVG written by hand (no plotting
library): inline in the HTML, as files under ``OUT/svg/`` for the Markdown.

Every table puts sisam first and says in words where a peer beats it; the closing note
(``--notes``, kept in the JSON) is the analyst's reading of why.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ORACLE = "world prior p_ (oracle)"
REFERENCE_PEERS = {ORACLE}
PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#ff7f0e", "#393b79", "#637939", "#8c6d31", "#843c39")  # fmt: skip


def _clean(value):
    """JSON without NaN (not JSON): NaN and infinities become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def write_part(out: Path, suite: str | None, result: dict | None, notes: Path | None) -> str:
    """Add ``result`` as ``suite``'s part of ``out/bench.json`` (if given), keep ``notes``,
    rewrite the reports; returns a line naming what was written."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    if suite is not None:
        doc[suite] = _clean(result)
    if notes is not None:
        doc["notes"] = notes.read_text(encoding="utf-8")
    path.write_text(json.dumps(doc, indent=1) + "\n")
    report = build(doc)
    (out / "svg").mkdir(exist_ok=True)
    for name, svg in report.svgs.items():
        (out / "svg" / f"{name}.svg").write_text(svg)
    (out / "bench.md").write_text(report.markdown())
    (out / "bench.html").write_text(report.html())
    return f"wrote {path}, {out / 'bench.md'}, {out / 'bench.html'}"


# ------------------------------------------------------------------ document model


@dataclass
class Report:
    blocks: list[tuple[str, object]] = field(default_factory=list)
    svgs: dict[str, str] = field(default_factory=dict)

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def text(self, markdown: str) -> None:
        self.blocks.append(("p", markdown))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", (header, rows)))

    def plot(self, name: str, svg: str, caption: str) -> None:
        self.svgs[name] = svg
        self.blocks.append(("svg", (name, caption)))

    def markdown(self) -> str:
        out = []
        for kind, body in self.blocks:
            if kind == "h":
                out.append("#" * body[0] + " " + body[1])
            elif kind == "p":
                out.append(body)
            elif kind == "table":
                header, rows = body
                out.append("| " + " | ".join(header) + " |")
                out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
                out.extend("| " + " | ".join(r) + " |" for r in rows)
            else:
                out.append(f"![{body[1]}](svg/{body[0]}.svg)")
            out.append("")
        return "\n".join(out)

    def html(self) -> str:
        parts = []
        for kind, body in self.blocks:
            if kind == "h":
                parts.append(f"<h{body[0]}>{html.escape(body[1])}</h{body[0]}>")
            elif kind == "p":
                parts.append(_md_inline(body))
            elif kind == "table":
                header, rows = body
                head = "".join(f"<th>{_md_cell(h)}</th>" for h in header)
                cells = "".join("<tr>" + "".join(f"<td>{_md_cell(c)}</td>" for c in r) + "</tr>" for r in rows)
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
            else:
                parts.append(f"<figure>{self.svgs[body[0]]}<figcaption>{html.escape(body[1])}</figcaption></figure>")
        style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
                 "table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;"
                 "text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}"
                 "figure{margin:1em 0}figcaption{font-size:13px;color:#555}code{background:#f3f3f3;padding:0 3px}")  # fmt: skip
        return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>sisam benchmarks</title>"
                f"<style>{style}</style></head><body>" + "\n".join(parts) + "</body></html>\n")  # fmt: skip


def _md_cell(text: str) -> str:
    escaped = html.escape(text)
    if escaped.startswith("**") and escaped.endswith("**"):
        return f"<b>{escaped[2:-2]}</b>"
    return escaped


def _md_inline(markdown: str) -> str:
    """Paragraphs and "- " lists of the report's own Markdown (code spans, bold)."""
    import re

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
        return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)

    out, items = [], []
    for para in markdown.split("\n\n"):
        lines = para.splitlines()
        if lines and all(line.startswith("- ") or line.startswith("  ") for line in lines):
            for line in lines:
                if line.startswith("- "):
                    items.append(line[2:])
                else:
                    items[-1] += " " + line.strip()
            out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
            items = []
        elif para.startswith("#"):
            level = len(para) - len(para.lstrip("#"))
            out.append(f"<h{level}>{inline(para.lstrip('#').strip())}</h{level}>")
        else:
            out.append(f"<p>{inline(' '.join(lines))}</p>")
    return "\n".join(out)


# ------------------------------------------------------------------ plots


def line_plot(series: dict[str, list[tuple[float, float]]], *, title: str, xlabel: str, ylabel: str,
              log_x: bool = False, log_y: bool = False, xticks: list[float] | None = None,
              y_range: tuple[float, float] | None = None, width: int = 560, height: int = 340,
              tick_format=lambda v: f"{v:g}", legend: bool = True) -> str:  # fmt: skip
    """A self-contained SVG line chart of ``series`` (name -> [(x, y)]), names in order."""
    pts = [(x, y) for s in series.values() for x, y in s if y is not None and (not log_y or y > 0)]
    if not pts:
        return f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='40'><text x='4' y='20'>{html.escape(title)}: no data</text></svg>"
    fx = (lambda v: math.log10(v)) if log_x else (lambda v: v)
    fy = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    xs = [fx(x) for x, _ in pts]
    x0, x1 = min(xs), max(xs)
    if y_range:
        y0, y1 = fy(y_range[0]), fy(y_range[1])
    else:
        ys = [fy(y) for _, y in pts]
        y0, y1 = min(ys), max(ys)
        pad = (y1 - y0) * 0.08 or 0.5
        y0, y1 = y0 - pad, y1 + pad
    x1 = x1 if x1 > x0 else x0 + 1
    legend_w = 190 if legend else 0
    left, right, top, bottom = 52, 12 + legend_w, 26, 40
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (fx(x) - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + ph - (fy(y) - y0) / (y1 - y0) * ph

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif' font-size='11'>",
           f"<text x='{left}' y='16' font-size='13' font-weight='bold'>{html.escape(title)}</text>",
           f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' fill='none' stroke='#999'/>"]  # fmt: skip
    for t in xticks or sorted({x for x, _ in pts}):
        out.append(f"<line x1='{px(t):.1f}' y1='{top}' x2='{px(t):.1f}' y2='{top + ph}' stroke='#eee'/>")
        out.append(f"<text x='{px(t):.1f}' y='{top + ph + 14}' text-anchor='middle'>{html.escape(tick_format(t))}</text>")
    for k in range(6):
        v = y0 + (y1 - y0) * k / 5
        value = 10**v if log_y else v
        out.append(f"<line x1='{left}' y1='{py(value):.1f}' x2='{left + pw}' y2='{py(value):.1f}' stroke='#eee'/>")
        label = f"{value:.0%}" if y_range == (0.0, 1.0) else f"{value:,.3g}"
        out.append(f"<text x='{left - 4}' y='{py(value) + 4:.1f}' text-anchor='end'>{label}</text>")
    out.append(f"<text x='{left + pw / 2}' y='{height - 6}' text-anchor='middle'>{html.escape(xlabel)}</text>")
    out.append(f"<text transform='translate(12,{top + ph / 2}) rotate(-90)' text-anchor='middle'>{html.escape(ylabel)}</text>")
    for i, (name, s) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        good = [(x, y) for x, y in s if y is not None and (not log_y or y > 0)]
        dash = " stroke-dasharray='5,3'" if name in REFERENCE_PEERS else ""
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in good)
        out.append(f"<polyline points='{path}' fill='none' stroke='{color}' stroke-width='{2.5 if i == 0 else 1.5}'{dash}/>")
        out.extend(f"<circle cx='{px(x):.1f}' cy='{py(y):.1f}' r='2.2' fill='{color}'/>" for x, y in good)
        if legend:
            ly = top + 6 + 15 * i
            out.append(f"<line x1='{left + pw + 10}' y1='{ly}' x2='{left + pw + 30}' y2='{ly}' stroke='{color}' stroke-width='2'{dash}/>")
            out.append(f"<text x='{left + pw + 34}' y='{ly + 4}'>{html.escape(name)}</text>")
    out.append("</svg>")
    return "".join(out)


def grid(svgs: list[str], columns: int, cell_w: int, cell_h: int) -> str:
    """Small multiples: several SVGs in one."""
    rows = math.ceil(len(svgs) / columns)
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{columns * cell_w}' height='{rows * cell_h}'>"]
    for i, svg in enumerate(svgs):
        out.append(f"<g transform='translate({(i % columns) * cell_w},{(i // columns) * cell_h})'>{svg}</g>")
    out.append("</svg>")
    return "".join(out)


# ------------------------------------------------------------------ formatting


def pct(x, digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}%"


def pct_ci(x, ci) -> str:
    if x is None:
        return "n/a"
    if not ci or ci[0] is None:
        return pct(x)
    return f"{pct(x)} ({100 * ci[0]:.1f}-{100 * ci[1]:.1f})"


def num(x, fmt: str = "{:.4f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def rate_index(table: dict, rate: float) -> int:
    return [round(r, 6) for r in table["rates"]].index(round(rate, 6))


def _meta_lines(part: dict) -> str:
    meta = part.get("meta", {})
    machine = meta.get("machine", {})
    versions = ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items() if v)
    return (f"Command: `{meta.get('command', '?')}` (started {meta.get('started_utc', '?')}); "
            f"{machine.get('platform', '?')}, {machine.get('cpus', '?')} CPUs shared with other users "
            f"(load {machine.get('load_average_1m', '?')} at the start), {machine.get('memory_gib', '?')} GiB, "
            f"Python {machine.get('python', '?')}, numba threads {machine.get('numba_threads', '?')}. "
            f"Versions: {versions}.")  # fmt: skip


def _beats(table: dict, outcome: str | None, sisam: str, rates: tuple[float, ...], skip: set[str]) -> list[str]:
    """Sentences naming each peer whose recall beats sisam's at each rate."""
    def recall(peer: str, i: int) -> float:
        d = table["peers"][peer]["pooled"] if outcome is None else table["peers"][peer]["outcomes"][outcome]
        return d["recall"][i] if d["recall"][i] is not None else float("nan")

    lines = []
    for rate in rates:
        i = rate_index(table, rate)
        mine = recall(sisam, i)
        better = [(p, recall(p, i)) for p in table["peers"] if p != sisam and p not in skip and recall(p, i) > mine]
        if better:
            names = ", ".join(f"{p} ({pct(r)})" for p, r in sorted(better, key=lambda t: -t[1]))
            lines.append(f"- at {pct(rate, 0)}: **{names} beat sisam ({pct(mine)})**")
        else:
            lines.append(f"- at {pct(rate, 0)}: no peer beats sisam ({pct(mine)})")
    return lines


# ------------------------------------------------------------------ sections


def build(doc: dict) -> Report:
    r = Report()
    r.heading(1, "sisam benchmarks")
    r.text("Recall against selection rate, sisam beside its peers, measured in the same run on the same "
           "items; speed and memory against size. Made by `sisam bench` (sisam/bench/). Figures: expected "
           "recall (tied scores split in expectation, so no ranking earns credit from input order), "
           "precision, normalised recall (recall over the best any ranking reaches at that rate), value "
           "captured; brackets are 95 % paired bootstrap intervals over test items.")  # fmt: skip
    if "synthetic" in doc:
        _synthetic(r, doc["synthetic"])
    if "real" in doc:
        _real(r, doc["real"])
    if "scale" in doc:
        _scale(r, doc["scale"])
    if doc.get("notes"):
        r.heading(2, "Closing note")
        r.text(doc["notes"].strip())
    return r


def _recall_series(table: dict, outcome: str | None) -> dict[str, list[tuple[float, float]]]:
    out = {}
    for peer, d in table["peers"].items():
        figures = d["pooled"] if outcome is None else d["outcomes"][outcome]
        out[peer] = list(zip(table["rates"], figures["recall"], strict=True))
    return out


RATE_TICKS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.75]


def _synthetic(r: Report, part: dict) -> None:
    table = part["table"]
    world = part["world"]
    variants = list(part["variants"])
    r.heading(2, "Synthetic world")
    r.text(f"A world of {world['items']:,} items (seed {world['seed']}): {world['history_items']:,} history items over "
           f"{world['days']} days ({world['inspected_history_items']:,} inspected: what peers learn from), "
           f"{world['test_items']:,} test items over the next {world['test_days']} days, every one of whose errors the "
           f"world knows. Each method ranks the test items once per error type; value captured weighs a caught "
           f"error by {world['value']}. The world's prior risk `p_` is the oracle no model can beat on average. "
           + _meta_lines(part))  # fmt: skip
    if part.get("peers_missing"):
        r.text(f"Peers left out: {part['peers_missing']}.")
    r.heading(3, "Pooled over the 30 error types")
    header = ["method", *[f"recall @{pct(x, 0)}" for x in table["rates"]], "precision @1%", "normalised @1%",
              "value @1%", "value @5%", "mean AUC", "mean log loss"]  # fmt: skip
    rows = []
    i1, i5 = rate_index(table, 0.01), rate_index(table, 0.05)
    for peer, d in table["peers"].items():
        p = d["pooled"]
        aucs = [o["auc"] for o in d["outcomes"].values() if o["auc"] is not None]
        losses = [o["log_loss"] for o in d["outcomes"].values() if o["log_loss"] is not None]
        value = p.get("value_captured") or [None] * len(table["rates"])
        rows.append([f"**{peer}**" if peer in variants else peer,
                     *[pct_ci(x, ci) for x, ci in zip(p["recall"], p["recall_ci"], strict=True)],
                     pct(p["precision"][i1]), pct(p["normalised_recall"][i1]), pct(value[i1]), pct(value[i5]),
                     num(float(np.mean(aucs)) if aucs else None, "{:.3f}"),
                     num(float(np.mean(losses)) if losses else None, "{:.4f}")])  # fmt: skip
    r.table(header, rows)
    skip = set(variants) | REFERENCE_PEERS
    r.text("Where a peer beats sisam (pooled recall, the oracle aside):\n\n" + "\n".join(
        _beats(table, None, "sisam", (0.01, 0.02, 0.05, 0.10, 0.20), skip)))  # fmt: skip
    r.plot("synthetic-pooled", line_plot(_recall_series(table, None), title="Pooled recall, 30 error types",
                                         xlabel="selection rate (log scale)", ylabel="recall", log_x=True,
                                         xticks=RATE_TICKS, y_range=(0.0, 1.0), tick_format=lambda v: f"{v:.0%}"),
           "Pooled recall against selection rate, every method (dashed: the oracle).")  # fmt: skip
    if len(variants) > 1:
        r.heading(3, "Ablation: knowledge variants on the same world")
        r.text("Each variant is sisam learnt under another knowledge catalog, on the same world, scored on the same "
               "test items. " + "; ".join(f"`{v}`: {m['how']} ({m['patterns']:,} patterns)" for v, m in part["variants"].items()) + ".")  # fmt: skip
        base = table["peers"]["sisam"]["pooled"]["recall"]
        rows = []
        for v in variants:
            rec = table["peers"][v]["pooled"]["recall"]
            rows.append([v, *[f"{pct(x)} ({'+' if x - b >= 0 else ''}{100 * (x - b):.1f})" for x, b in zip(rec, base, strict=True)]])
        r.table(["variant", *[f"recall @{pct(x, 0)} (vs sisam, points)" for x in table["rates"]]], rows)
    for rate in (0.01, 0.05):
        i = rate_index(table, rate)
        r.heading(3, f"Recall per error type at {pct(rate, 0)}")
        peers = list(table["peers"])
        rows = []
        wins = dict.fromkeys(peers, 0)
        for e, facts in table["outcomes"].items():
            values = {p: table["peers"][p]["outcomes"][e]["recall"][i] for p in peers}
            contenders = [p for p in peers if p not in REFERENCE_PEERS and values[p] is not None]
            top = max(values[p] for p in contenders) if contenders else None
            for p in contenders:
                if values[p] == top:
                    wins[p] += 1
            rows.append([e, f"{facts['positives']:,}", *[f"**{pct(values[p])}**" if values[p] == top and p in contenders else pct(values[p]) for p in peers]])
        r.table(["error type", "errors", *peers], rows)
        r.text(f"Best (bold, oracle aside; ties all bold) per error type at {pct(rate, 0)}: "
               + ", ".join(f"{p} {n}" for p, n in sorted(wins.items(), key=lambda t: -t[1]) if n) + ".")  # fmt: skip
    plots = [line_plot(_recall_series(table, e), title=f"{e} ({f['positives']:,} errors)", xlabel="selection rate",
                       ylabel="recall", log_x=True, xticks=[0.01, 0.05, 0.2, 0.75], y_range=(0.0, 1.0),
                       tick_format=lambda v: f"{v:.0%}", width=300, height=220, legend=False)
             for e, f in table["outcomes"].items()]  # fmt: skip
    legend = _legend(list(table["peers"]), 300, 220)
    r.plot("synthetic-by-error", grid([legend, *plots], 4, 300, 220),
           "Recall against selection rate per error type, every method, same colours as the pooled plot.")
    timings = part.get("timings", {})
    if timings:
        r.heading(3, "Time")
        r.table(["method", "learn s", "score s", "learn and score s (30 error types)"],
                [[p, num(t.get("learn_s"), "{:.1f}"), num(t.get("score_s"), "{:.1f}"), num(t.get("learn_and_score_s"), "{:.1f}")]
                 for p, t in timings.items()])  # fmt: skip


def _legend(names: list[str], width: int, height: int) -> str:
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif' font-size='11'>"]
    for i, name in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        dash = " stroke-dasharray='5,3'" if name in REFERENCE_PEERS else ""
        out.append(f"<line x1='10' y1='{20 + 15 * i}' x2='34' y2='{20 + 15 * i}' stroke='{color}' stroke-width='2'{dash}/>")
        out.append(f"<text x='40' y='{24 + 15 * i}'>{html.escape(name)}</text>")
    out.append("</svg>")
    return "".join(out)


def _real(r: Report, part: dict) -> None:
    r.heading(2, "Real public data")
    first = next(iter(part["datasets"].values()), None)
    r.text("Data sets shipped inside registry packages (nothing is downloaded at run time): sisam's HPB network is "
           "learnt on each data set's categorical attributes with a catalog of factors "
           "(sisam/bench/catalogs/), by the engine's own counting, leave-one-out fit and scoring "
           "(sisam/bench/node.py); every peer sees the same attributes. "
           + (f"Rows sampled: at most {part['sample']:,} per file. " if part.get("sample") else "") + _meta_lines(part))  # fmt: skip
    if part.get("peers_missing"):
        r.text(f"Peers left out: {part['peers_missing']}.")
    if first is None:
        return
    names = list(part["datasets"])
    peers = list(first["table"]["peers"])
    r.heading(3, "Summary: AUC and recall at 5 %")
    rows = []
    for p in peers:
        row = [f"**{p}**" if p == "sisam" else p]
        for n in names:
            t = part["datasets"][n]["table"]
            o = next(iter(t["outcomes"]))
            f = t["peers"][p]["outcomes"][o]
            row.append(f"{num(f['auc'], '{:.3f}')} / {pct(f['recall'][rate_index(t, 0.05)])}")
        rows.append(row)
    r.table(["method", *[f"{n}: AUC / recall@5%" for n in names]], rows)
    plots = []
    for n in names:
        d = part["datasets"][n]
        t = d["table"]
        o = next(iter(t["outcomes"]))
        data = d["data"]
        r.heading(3, f"{n}: {data['outcome']}")
        r.text(f"{data['source']}; split: {data['split']}; {data['train_items']:,} learning items "
               f"({pct(data['train_positive_rate'])} positive), {data['test_items']:,} test items "
               f"({data['test_positives']:,} positive). Attributes (distinct values in the learning split): "
               + ", ".join(f"{a} {c:,}" for a, c in data["cardinality"].items())
               + f". sisam: {len(d['sisam_coefficients']['factors'])} factors, {d['sisam_coefficients']['patterns']:,} patterns, "
               f"dnet {d['sisam_coefficients']['dnet']:g}.")  # fmt: skip
        rows = []
        for p in peers:
            f = t["peers"][p]["outcomes"][o]
            tm = d["timings"].get(p, {})
            seconds = tm.get("learn_and_score_s") if "learn_and_score_s" in tm else (tm.get("learn_s") or 0) + (tm.get("score_s") or 0)
            rows.append([f"**{p}**" if p == "sisam" else p, num(f["auc"], "{:.4f}"), num(f["log_loss"], "{:.4f}"),
                         *[pct_ci(f["recall"][rate_index(t, x)], f["recall_ci"][rate_index(t, x)]) for x in (0.01, 0.05, 0.10)],
                         pct(f["precision"][rate_index(t, 0.01)]), pct(f["normalised_recall"][rate_index(t, 0.05)]),
                         num(seconds, "{:.1f}")])  # fmt: skip
        r.table(["method", "AUC", "log loss", "recall @1%", "recall @5%", "recall @10%", "precision @1%", "normalised @5%", "seconds"], rows)
        better_auc = [p for p in peers if p != "sisam" and (t["peers"][p]["outcomes"][o]["auc"] or 0) > (t["peers"]["sisam"]["outcomes"][o]["auc"] or 0)]
        r.text("Where a peer beats sisam:\n\n" + "\n".join(_beats(t, o, "sisam", (0.01, 0.05, 0.10), set()))
               + ("\n- AUC: **" + ", ".join(better_auc) + " beat sisam**" if better_auc else "\n- AUC: no peer beats sisam"))  # fmt: skip
        plots.append(line_plot(_recall_series(t, o), title=f"{n}: {data['outcome']}", xlabel="selection rate", ylabel="recall",
                               log_x=True, xticks=[0.01, 0.05, 0.2, 0.75], y_range=(0.0, 1.0),
                               tick_format=lambda v: f"{v:.0%}", width=300, height=220, legend=False))  # fmt: skip
    r.plot("real-recall", grid([_legend(peers, 300, 220), *plots], 4, 300, 220),
           "Recall against selection rate on each real data set, every method.")


def _scale(r: Report, part: dict) -> None:
    r.heading(2, "Speed and scale")
    r.text("Each size is a synthetic world made by `sisam generate`, learnt by `sisam learn` and its test period scored "
           "by `sisam score`, each in a fresh process: seconds are wall time including process start, imports and "
           "Parquet input/output; peak memory is the process's own maximum resident set (the kernel's count). Sizes "
           "above one million items are one-million-item worlds laid end to end, their traders kept apart "
           "(`sisam/bench/histories.py`): one world that large needs more memory to generate than a modest machine has. "
           "Each row says when it was measured and the machine's load then: rows measured in another sitting of the "
           "same command (kept in its work folder) are marked. " + _meta_lines(part))  # fmt: skip
    rows = []
    for p in part["points"]:
        rows.append([f"{p['items']:,}", f"{p['history_items']:,}", num(p["generate"]["seconds"], "{:.1f}"),
                     num(p["learn"]["seconds"], "{:.1f}"), num(p["learn"].get("cpu_seconds"), "{:.1f}"), f"{p['learn']['items_per_s']:,.0f}",
                     num(p["learn"]["peak_gib"], "{:.2f}"), f"{p['test_items']:,}", num(p["score"]["seconds"], "{:.1f}"),
                     num(p["score"].get("cpu_seconds"), "{:.1f}"), f"{p['score']['items_per_s']:,.0f}",
                     num(p["score"]["peak_gib"], "{:.2f}"), f"{p['kb']['patterns']:,}", num(p["kb"]["bytes_per_pattern"], "{:.1f}"),
                     f"{p.get('measured_utc', '?')}, load {num(p.get('load_average_1m'), '{:.1f}')}"
                     + (" (earlier sitting)" if p.get("measured_earlier") else "")])  # fmt: skip
    r.table(["world items", "history items", "generate s", "learn s", "learn CPU s", "learn items/s", "learn peak GiB", "test items",
             "score s", "score CPU s", "score items/s", "score peak GiB", "KB patterns", "KB bytes/pattern", "measured (UTC), load"], rows)  # fmt: skip
    if part["points"]:
        series = {
            "learn items/s": [(p["items"], p["learn"]["items_per_s"]) for p in part["points"]],
            "score items/s": [(p["items"], p["score"]["items_per_s"]) for p in part["points"]],
        }
        r.plot("scale-throughput", line_plot(series, title="Throughput against world size", xlabel="world items (log scale)",
                                             ylabel="items per second (log scale)", log_x=True, log_y=True,
                                             xticks=[p["items"] for p in part["points"]], tick_format=lambda v: f"{v:,.0f}"),
               "Learning and scoring throughput (end to end, one process each) against world size.")  # fmt: skip
        memory = {
            "learn peak GiB": [(p["items"], p["learn"]["peak_gib"]) for p in part["points"]],
            "score peak GiB": [(p["items"], p["score"]["peak_gib"]) for p in part["points"]],
            "generate peak GiB": [(p["items"], p["generate"]["peak_gib"]) for p in part["points"]],
        }
        r.plot("scale-memory", line_plot(memory, title="Peak memory against world size", xlabel="world items (log scale)",
                                         ylabel="GiB", log_x=True, xticks=[p["items"] for p in part["points"]],
                                         tick_format=lambda v: f"{v:,.0f}"), "Peak resident memory of each process.")  # fmt: skip
    g = part.get("pgmpy")
    if g:
        r.text(f"pgmpy, same network: `{g['label']}`'s network ({len(g['network_columns'])} parent columns) exported with "
               f"the values of {g['states_from_items']} test items as states ({g['cells']:,} table cells; pgmpy needs the "
               f"full table, so real cardinalities are out of its reach), its answers equal to sisam's within "
               f"{g['max_abs_deviation_from_sisam']:.1e}. pgmpy's exact inference: {g['pgmpy_s_per_query'] * 1e3:.2f} ms per "
               f"query for this one label; sisam: {g['sisam_s_per_item_test_period_all_labels'] * 1e6:.1f} µs per item for "
               f"all 31 labels over the {g['test_items']:,} test items ({g['sisam_s_per_item_same_items_all_labels'] * 1e3:.2f} ms "
               f"per item on the same {g['states_from_items']} items alone, where a call's fixed cost dominates): "
               f"**{g['ratio_pgmpy_one_label_vs_sisam_31_labels']:,.0f} times** faster per item, one label against 31.")  # fmt: skip
