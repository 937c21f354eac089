"""Plain-text rendering of ``kb.info`` for ``sisam kb info``."""

from __future__ import annotations

from typing import Any


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def render_info(facts: dict[str, Any]) -> str:
    current = facts["current_version"]
    marker = " (current)" if facts["version"] == current else f" (current is {current})"
    per_pattern = facts["bytes_per_pattern"]
    memory = facts["scoring_memory_bytes"]
    lines = [
        f"knowledge base {facts['kb_dir']}",
        f"  version          {facts['version']}{marker}; on disk: {', '.join(map(str, facts['versions_on_disk']))}",
        f"  file             {facts['file']} ({_bytes(facts['file_bytes'])})",
        f"  content hash     {facts['content_hash']}" + ("  verified" if facts["verified"] else ""),
        f"  catalog hash     {facts['catalog_hash']}",
        f"  patterns         {facts['n_patterns']:,} ({facts['n_error_entries']:,} error entries)"
        + (f", {per_pattern:.1f} bytes per pattern" if per_pattern else ""),
        f"  scoring needs    {_bytes(memory['load_all'])} for the counts loaded whole (sisam score); "
        f"{_bytes(memory['stream_per_batch'])} per batch of {memory['stream_batch_rows']:,} items "
        "read from disk (sisam score --stream-kb); either way "
        f"{_bytes(memory['tables_whole'])} more for the evidence and suggestion tables, held whole",
        "",
        f"  {'factor':<18}{'attributes':<58}{'patterns':>12}{'errors':>11}{'size':>12}",
    ]
    for name, f in facts["factors"].items():
        attributes = " x ".join(f"{a}({m})" for a, m in zip(f["attributes"], f["level_counts"], strict=True))
        lines.append(f"  {name:<18}{attributes:<58}{f['n_patterns']:>12,}{f['n_error_entries']:>11,}{_bytes(f['bytes']):>12}")
    lines += ["", "  coefficients (min / median / max over labels)"]
    for name, summary in facts["coefficients"].items():
        parts = [f"{k} {v['min']:g} / {v['median']:g} / {v['max']:g}" for k, v in summary.items()]
        lines.append(f"  {name:<18}" + "; ".join(parts))
    network = [f"{k} {v['min']:g} / {v['median']:g} / {v['max']:g}" for k, v in facts["network_coefficients"].items()]
    lines.append(f"  {'network':<18}" + "; ".join(network))
    lines += ["", "  history"]
    for h in facts["history"]:
        decay = f", decayed x{h['decay_factor']:.4g}" if h["decay_factor"] != 1.0 else ""
        lines.append(
            f"  v{h['version']:<4} {h['created_at'][:19]}  {h['n_items']:,} items ({h['n_labelled']:,} inspected), "
            f"{h['date_from']} .. {h['date_to']}{decay}"
        )
        for path in h["input_files"]:
            lines.append(f"         {path}")
    return "\n".join(lines)


def render_diff(found: dict[str, Any]) -> str:
    """``kb.compare``'s result, one line per table."""
    lines = [f"{side}  {found[side]['file']} (version {found[side]['version']}, content hash "
             f"{found[side]['content_hash'][:16]}, catalog hash {found[side]['catalog_hash'][:16]})" for side in ("a", "b")]
    if found["identical"]:
        lines.append("identical contents")
    elif found["same_rows"]:
        lines.append("the same rows, but the content hashes differ: the catalog hash, the order of an extra "
                     "table's rows or the sign of a zero")
    else:
        lines.append("the contents differ")
    lines.append("")
    width = max(len("table"), *map(len, found["tables"])) + 2
    lines.append(f"  {'table':<{width}}{'rows in a':>14}{'rows in b':>14}{'only in a':>11}{'only in b':>11}{'differ':>9}")
    for name, t in found["tables"].items():
        if "only_in" in t:
            lines.append(f"  {name:<{width}}only in {t['only_in']}")
            continue
        differing = t.get("differing")
        lines.append(f"  {name:<{width}}{t['rows'][0]:>14,}{t['rows'][1]:>14,}{t['only_a']:>11,}{t['only_b']:>11,}"
                     f"{'' if differing is None else f'{differing:,}':>9}")
        if "columns" in t:
            lines.append(f"      columns differ: a {t['columns'][0]}, b {t['columns'][1]}")
        largest = {c: v for c, v in t.get("max_abs_difference", {}).items() if v}
        if largest:
            lines.append("      largest difference: " + ", ".join(f"{c} {v:.3g}" for c, v in largest.items()))
    return "\n".join(lines)
