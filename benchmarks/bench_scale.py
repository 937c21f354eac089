"""Scale benchmark: learning (local and Spark local mode), knowledge-base size and scoring at
millions of items, and an extrapolation to SISAM's 150 million items / 8.5 billion patterns.

Histories: N one-million-item worlds laid end to end, built by ``sisam.bench.histories``
(which says why and how; ``sisam bench scale`` builds and reuses the same ones).

Steps (each writes into ``--work``; ``all`` runs them in order):

    make     the histories of every size in --sizes (millions), and their test items
    learn    `sisam learn` per size and engine, in a fresh process each, timing it and
             sampling the resident memory of its whole process tree (Spark's JVM and
             Python workers included) every 0.2 s
    score    `sisam score` with the knowledge base loaded and with --stream-kb
    report   benchmarks/results/scale.json and scale.md, with the extrapolation

Usage: ``PYTHONPATH=. python benchmarks/bench_scale.py all --sizes 1 5 20 --work /work/scale``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pty
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from sisam.bench.histories import build_histories, history_dir

RESULTS = Path(__file__).parent / "results"
#: Spark settings of the local-mode runs (see the README, "Running on a cluster").
SPARK_CONF = {
    "spark.driver.memory": "6g",
    "spark.sql.shuffle.partitions": "64",
    "spark.sql.files.maxPartitionBytes": "32m",
    "spark.sql.autoBroadcastJoinThreshold": "256m",
}


#: How `score` runs `sisam score`: the counts loaded whole, then streamed in batches of a
#: million items (the default) and of a quarter of that (less held, more passes).
STREAM_MODES = (("loaded", []), ("streamed", ["--stream-kb", "--kb-memory", "2GB"]),
                ("streamed-250k", ["--stream-kb", "--kb-memory", "2GB", "--stream-batch-rows", "250000"]))


def make(work: Path, sizes: list[int]) -> None:
    build_histories(work, sizes, say=lambda line: print(line, flush=True))


#: The machine is shared: a run is stopped (its whole process group) when the memory the
#: kernel still has available falls below this, rather than let the machine run out.
MEMORY_GUARD_BYTES = 3 * 2**30


def available_memory() -> int:
    return _meminfo("MemAvailable")


def machine_memory_in_use() -> int:
    """Bytes the machine cannot give to a new process (total less available): unlike the
    summed RSS of a process tree, it counts pages shared by forked workers once."""
    return _meminfo("MemTotal") - _meminfo("MemAvailable")


def _meminfo(field: str) -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise OSError(f"/proc/meminfo has no {field}")


def run(command: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``command``: wall seconds, CPU seconds and peak summed RSS of its process tree,
    the last line it printed, and the seconds at which each progress line (stderr)
    appeared with the tree's resident bytes then. Stopped, and reported as failed, if the
    machine's available memory falls below :data:`MEMORY_GUARD_BYTES`."""
    start, load_at_start = time.perf_counter(), os.getloadavg()[0]
    # CPU time of every process of the tree that was reaped (Spark's JVM and workers too):
    # on a machine shared with others, wall time alone overstates the work.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # sisam prints progress only to a terminal: give stderr a pseudo-terminal.
    master, slave = pty.openpty()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=slave, text=True,
                               env={**os.environ, **(env or {})}, start_new_session=True)
    os.close(slave)
    peak = [0, 0.0]
    in_use = [machine_memory_in_use()] * 2  # at the start, and the most since
    stopped: list[str] = []
    lines: list[tuple[float, str, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            now = tree_rss(process.pid)
            if now > peak[0]:
                peak[:] = [now, round(time.perf_counter() - start, 1)]
            in_use[1] = max(in_use[1], machine_memory_in_use())
            if not stopped and available_memory() < MEMORY_GUARD_BYTES:
                stopped.append(f"stopped at {time.perf_counter() - start:.0f} s: the machine had less than "
                               f"{MEMORY_GUARD_BYTES / 2**30:.0f} GiB available, the run held {now / 2**30:.2f} GiB")
                os.killpg(process.pid, signal.SIGKILL)
            done.wait(0.2)

    def read_progress() -> None:
        with open(master, errors="replace") as stream:
            try:
                for line in stream:
                    lines.append((round(time.perf_counter() - start, 1), line.rstrip(), tree_rss(process.pid)))
            except OSError:  # the terminal closes when the command ends
                pass

    threads = [threading.Thread(target=sample, daemon=True), threading.Thread(target=read_progress, daemon=True)]
    for thread in threads:
        thread.start()
    out = process.stdout.read()
    process.wait()
    done.set()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if process.returncode:
        tail = "\n".join(line for _, line, _ in lines[-40:])
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}){'; ' + stopped[0] if stopped else ''}:\n{tail}")
    progress = [(t, line.strip()) for t, line, _ in lines if line.startswith("  ")]
    return {"command": " ".join(command), "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
            "peak_rss_bytes": peak[0], "peak_at_seconds": peak[1],
            "machine_in_use_bytes": {"start": in_use[0], "peak": in_use[1]},
            "progress_rss_bytes": [rss for _, line, rss in lines if line.startswith("  ")],
            "load_average_1m": [load_at_start, os.getloadavg()[0]],
            "stdout": out.strip().splitlines()[-1] if out.strip() else "", "progress": progress}


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * page
        except (OSError, ValueError, IndexError):
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def learn_command(work: Path, size: int, engine: str) -> list[str]:
    h = history_dir(work, size)
    command = [sys.executable, "-m", "sisam", "learn", "--declarations", str(h / "history.parquet"),
               "--rectified", str(h / "rectified.parquet"), "--kb", str(h / f"kb-{engine}"), "--overwrite",
               "--engine", engine]
    if engine == "spark":
        command += ["--spark-master", "local[2]"]
        for key, value in SPARK_CONF.items():
            command += ["--spark-conf", f"{key}={value}"]
    return command


def learn(work: Path, sizes: list[int], engines: list[str], results: dict) -> None:
    for size in sizes:
        for engine in engines:
            key = f"{size}m/{engine}"
            if key in results["learn"]:
                continue
            print(f"learning {key}", flush=True)
            figures = run(learn_command(work, size, engine))
            kb_dir = history_dir(work, size) / f"kb-{engine}"
            info = json.loads(subprocess.run([sys.executable, "-m", "sisam", "kb", "info", str(kb_dir), "--json"],
                                             check=True, capture_output=True, text=True).stdout)
            figures.update(items=info["history"][-1]["n_items"], inspected=info["history"][-1]["n_labelled"],
                           patterns=info["n_patterns"], error_entries=info["n_error_entries"],
                           kb_file_bytes=info["file_bytes"], content_hash=info["content_hash"],
                           scoring_memory_bytes=info["scoring_memory_bytes"])
            results["learn"][key] = figures
            save(results)
            print(f"  {figures['seconds']} s, peak {figures['peak_rss_bytes'] / 2**30:.2f} GiB, "
                  f"{figures['patterns']:,} patterns", flush=True)


def score(work: Path, sizes: list[int], results: dict, knowledge: Path | None = None, items: int | None = None,
          kb_engine: str = "local") -> None:
    """Score each size's test items (the first ``items`` of them, if given: throughput per
    item does not need them all) with the knowledge base ``kb_engine`` learnt, loaded and
    streamed. Both engines' knowledge bases hold the same counts (their content hashes are
    in the learning rows), so either serves."""
    for size in sizes:
        h = history_dir(work, size)
        test = h / "test.parquet"
        if items is not None and items < pq.ParquetFile(test).metadata.num_rows:
            test = h / f"test-first-{items}.parquet"
            if not test.exists():
                pq.write_table(pq.read_table(h / "test.parquet").slice(0, items), test, compression="zstd")
        n_test = pq.ParquetFile(test).metadata.num_rows
        for mode, extra in STREAM_MODES:
            key = f"{size}m/{mode}"
            if key in results["score"]:
                continue
            print(f"scoring {key}", flush=True)
            figures = run([sys.executable, "-m", "sisam", "score", "--declarations", str(test),
                           "--kb", str(h / f"kb-{kb_engine}"), "--out", str(h / f"scores-{mode}.parquet"), "--quiet", *extra,
                           *(["--knowledge", str(knowledge)] if knowledge else [])])
            figures.update(items=n_test, items_per_second=round(n_test / figures["seconds"]), knowledge_base=kb_engine)
            results["score"][key] = figures
            save(results)
            print(f"  {figures['seconds']} s, {figures['items_per_second']:,} items/s, "
                  f"peak {figures['peak_rss_bytes'] / 2**30:.2f} GiB", flush=True)
        for mode, _ in STREAM_MODES[1:]:
            results["score"][f"{size}m/{mode}"].update(compare_scores(h / "scores-loaded.parquet", h / f"scores-{mode}.parquet"))
        save(results)


def compare_scores(loaded: Path, streamed: Path) -> dict:
    """Whether every column is the same (the probabilities compared as bits), and the
    largest difference of the number columns other than the probabilities."""
    a, b = pq.read_table(loaded), pq.read_table(streamed)
    same, other = True, 0.0
    for name in a.column_names:
        x, y = a.column(name).to_numpy(zero_copy_only=False), b.column(name).to_numpy(zero_copy_only=False)
        if x.dtype == np.float64:
            same &= bool((x.view(np.uint64) == y.view(np.uint64)).all())
            if not name.startswith("p_"):
                other = max(other, float(np.nanmax(np.abs(x - y), initial=0.0)))
        else:
            same &= bool((x == y).all())
    return {"identical_to_loaded": same, "other_columns_max_abs_difference": other}


def _fit_line(x: list[float], y: list[float]) -> tuple[float, float]:
    """Least-squares intercept and slope of y against x."""
    slope, intercept = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(intercept), float(slope)


def _points(entries: dict, engine: str) -> list[dict]:
    return sorted((v for k, v in entries.items() if k.endswith(f"/{engine}")), key=lambda v: v["items"])


def extrapolate(results: dict, items: float, patterns: float) -> dict:
    """What ``items`` items (and, for SISAM's figure, ``patterns`` patterns) need, from the
    measured points: patterns ~ c * items**b (log-log fit), time linear in items, memory
    and disk linear in patterns. Local learning from this session's runs (one code and
    catalog); Spark's cluster and driver phases from the runs that measured them (the
    previous session's, if this one has fewer than two)."""
    local = _points(results["learn"], "local")
    out: dict = {"items": items, "sisam_patterns": patterns}
    if len(local) < 2:
        return out
    log_c, b = _fit_line([np.log(v["items"]) for v in local], [np.log(v["patterns"]) for v in local])
    ours = float(np.exp(log_c) * items**b)
    largest = local[-1]
    kb_per_pattern = largest["kb_file_bytes"] / largest["patterns"]
    memory_per_pattern = largest["scoring_memory_bytes"]["load_all"] / largest["patterns"]
    out["patterns_growth_exponent"] = round(b, 3)
    out["our_world_patterns"] = round(ours)
    for name, n in (("our_world", ours), ("sisam", patterns)):
        out[f"{name}_kb_disk_bytes"] = round(kb_per_pattern * n)
        out[f"{name}_scoring_load_all_bytes"] = round(memory_per_pattern * n)
    a0, a1 = _fit_line([v["items"] for v in local], [v["cpu_seconds"] for v in local])
    r0, r1 = _fit_line([v["patterns"] for v in local], [v["peak_rss_bytes"] for v in local])
    out["local"] = {"points": [f"{v['items']:,}" for v in local],
                    "cpu_seconds_per_million_items": round(a1 * 1e6, 1),
                    "cpu_hours_at_items": round((a0 + a1 * items) / 3600, 1),
                    "peak_rss_bytes_per_pattern": round(r1, 1),
                    "peak_rss_at_our_world_bytes": round(r0 + r1 * ours),
                    "peak_rss_at_sisam_patterns_bytes": round(r0 + r1 * patterns)}
    spark = _points(results["learn"], "spark")
    if len(spark) < 2:
        spark = _points(results.get("previous", {}).get("learn", {}), "spark")
    if len(spark) >= 2:
        counted = [next(t for t, line in v["progress"] if line.startswith("counted on Spark")) for v in spark]
        _, c1 = _fit_line([v["items"] for v in spark], counted)
        per_core = 1.0 / (c1 * 2)  # items per second per core, local[2]
        out["spark"] = {
            "points": [f"{v['items']:,}" for v in spark],
            "cluster_phase_seconds_per_million_items": round(c1 * 1e6, 1),
            "items_per_second_per_core": round(per_core),
            "hours_on_executors": {str(n): round(items / (per_core * 4 * n) / 3600, 2) for n in (10, 50, 200)},
        }
    return out


def _gib(n: float) -> str:
    return f"{n / 2**30:,.2f} GiB"


def _load(v: dict) -> str:
    load = v.get("load_average_1m")
    return f"{load[0]:.0f} -> {load[1]:.0f}" if load else "not recorded"


def _learn_lines(entries: dict) -> list[str]:
    lines = ["| history | engine | items | inspected | patterns | wall s | CPU s | load (start -> end) | peak RSS (process tree) | KB file | bytes/pattern |",
             "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for key, v in entries.items():
        size, engine = key.split("/")
        peak = _gib(v["peak_rss_bytes"]) + (f" at {v['peak_at_seconds']:,} s" if "peak_at_seconds" in v else "")
        lines.append(f"| {size} | {engine} | {v['items']:,} | {v['inspected']:,} | {v['patterns']:,} | {v['seconds']:,} | "
                     f"{v.get('cpu_seconds', 'not measured')} | {_load(v)} | {peak} | {v['kb_file_bytes'] / 2**20:,.0f} MiB | "
                     f"{v['kb_file_bytes'] / v['patterns']:.1f} |")
    lines.append("")
    for key, v in entries.items():
        rss = v.get("progress_rss_bytes")
        steps = [f"{line} at {t:,} s" + (f" ({_gib(rss[i])})" if rss else "") for i, (t, line) in enumerate(v["progress"])
                 if not line.startswith("require_")]
        if steps:
            lines.append(f"- {key}: " + "; ".join(steps) + f"; published at {v['seconds']:,} s.")
        if "machine_in_use_bytes" in v:
            use = v["machine_in_use_bytes"]
            lines.append(f"  Machine memory in use (total less available, shared pages counted once): "
                         f"{_gib(use['start'])} at the start, at most {_gib(use['peak'])} during the run.")
    return lines


def _score_lines(entries: dict) -> list[str]:
    if not entries:
        return ["None."]
    lines = ["| history | knowledge base | items scored | wall s | CPU s | load (start -> end) | items/s (wall) | peak RSS | machine memory in use (start -> peak) | same as loaded |",
             "|---|---|---:|---:|---:|---|---:|---:|---|---|"]
    for key, v in entries.items():
        size, mode = key.split("/")
        use = v.get("machine_in_use_bytes")
        in_use = f"{_gib(use['start'])} -> {_gib(use['peak'])}" if use else "not recorded"
        lines.append(f"| {size} | {mode}, learnt by {v.get('knowledge_base', 'local')} | {v['items']:,} | {v['seconds']} | {v.get('cpu_seconds', 'not measured')} | {_load(v)} | "
                     f"{v['items_per_second']:,} | {_gib(v['peak_rss_bytes'])} | {in_use} | {v.get('identical_to_loaded', '')} |")
    return lines


def _stopped_lines(run: dict | None) -> list[str]:
    """The 20m local learn that was stopped: memory per chunk, from 10-second samples of the
    process's resident memory and of the bytes it had read (each chunk reads the next
    ~0.03-0.07 GB of the history file)."""
    if not run:
        return []
    groups: list[list[dict]] = []
    for sample in run["samples"]:
        if sample["t"] < run["evidence_pass_seconds"]:
            continue
        if groups and abs(sample["rchar"] - groups[-1][0]["rchar"]) < 1e7:
            groups[-1].append(sample)
        else:
            groups.append([sample])
    lines = ["## 20m: local learning, stopped", "", f"Command: {run['command']}.", "",
             f"Evidence pass over the {run['history_items']:,} items: {run['evidence_pass_seconds']} s, ending at "
             f"{_gib(max(x['rss'] for x in run['samples'] if x['t'] < run['evidence_pass_seconds']))} at most. Then "
             "the counting pass, a million items a chunk (the first row also holds the end of the evidence pass and "
             "reading the rectified table):", "",
             "| chunk | from s | RSS at least | RSS at most | machine's available memory at least | load |",
             "|---:|---:|---:|---:|---:|---:|"]
    for i, g in enumerate(groups):
        lines.append(f"| {i} | {g[0]['t']:,} | {_gib(min(x['rss'] for x in g))} | {_gib(max(x['rss'] for x in g))} | "
                     f"{_gib(min(x['available'] for x in g))} | {sum(x['load'] for x in g) / len(g):.1f} |")
    lines += ["", f"Stopped at {run['stopped_at_seconds']:,} s, {run['items_counted_when_stopped']:,} items counted, "
              f"the process holding {_gib(run['stopped_with_tree_rss_bytes'])}: {run['stopped_because']}.", ""]
    return lines


def report(results: dict) -> str:
    sizes = sorted({k.split("/")[0] for k in results["learn"]}, key=lambda k: int(k.rstrip("m")))
    lines = [f"# Scale: {', '.join(sizes)} items (m: millions of one-million-item worlds)", "",
             f"Machine: {results['machine']['platform']}, {results['machine']['cpus']} cores shared with the team, "
             f"{_gib(results['machine']['memory_bytes'])}. Histories: N one-million-item worlds laid end to end "
             "(`sisam/bench/histories.py` says why and how). Commands are in `scale.json`.", "",
             "Reproduce: `PYTHONPATH=. python benchmarks/bench_scale.py all --sizes 1 5 20 --work /work/scale` "
             "(`--score-items N` scores the first N test items of each size).", "",
             "Every run shared the machine's two cores with other developers' tests and benchmarks: the load average "
             "(runnable processes, 2 cores) at each run's start and end is in the tables. Wall times overstate what an "
             "idle machine needs by roughly the load divided by two; CPU seconds (the whole process tree's) do not.", "",
             *([results["summary"], ""] if "summary" in results else []),
             *_stopped_lines(results.get("stopped_20m")),
             "## Learning", "", *_learn_lines(results["learn"]), "",
             *([results["learn_notes"], ""] if "learn_notes" in results else []),
             "## Scoring", "", *_score_lines(results["score"])]
    largest = max(_points(results["learn"], "local"), key=lambda v: v["items"], default=None)
    if largest:
        m = largest["scoring_memory_bytes"]
        lines += ["", f"`sisam kb info` at {largest['items']:,} items: {_gib(m['load_all'])} to load the counts whole, "
                  f"{_gib(m['stream_per_batch'])} per batch of {m['stream_batch_rows']:,} items with --stream-kb"
                  + (f"; either way {_gib(m['tables_whole'])} more for the extra tables (evidence, suggestions), held "
                     "whole. The peaks above add scoring's working memory and the evidence models' prepared tables."
                     if "tables_whole" in m else ".")]
    previous = results.get("previous")
    if previous:
        lines += ["", "## Spark and local at 1m and 5m, previous session", "", previous["note"], "",
                  *_learn_lines(previous["learn"]), "", *_score_lines(previous["score"])]
    sql = RESULTS / "scale_sql.json"
    if sql.exists():
        q = json.loads(sql.read_text())
        lines += ["", "## Counting on Spark: kernels or GROUPING SETS", "",
                  f"Factor `{q['factor']}` ({q['shapes']} shapes) over `{q['history']}`, local[2], best of {q['runs']}: "
                  f"sisam's kernels per partition {q['kernels']['seconds_best']} s (n, N and all 31 labels' k); "
                  f"Spark SQL GROUP BY GROUPING SETS {q['grouping_sets']['seconds_best']} s for N, n and one label's k "
                  "(`benchmarks/bench_scale_sql.py`). The back-end keeps the kernels."]
    x = results.get("extrapolation")
    if x and "local" in x:
        local = x["local"]
        lines += ["", "## Extrapolation to 150 million items and 8.5 billion patterns", "",
                  f"From this session's local runs at {', '.join(local['points'])} items. Patterns grew as "
                  f"items^{x['patterns_growth_exponent']}: 150 million items of these worlds would make "
                  f"{x['our_world_patterns']:,} patterns; SISAM's knowledge holds {x['sisam_patterns']:,.0f}. Disk and "
                  "memory scale with patterns, time with items:", "",
                  "| figure | 150M items of these worlds | 8.5 billion patterns |", "|---|---:|---:|",
                  f"| knowledge-base file | {_gib(x['our_world_kb_disk_bytes'])} | {_gib(x['sisam_kb_disk_bytes'])} |",
                  f"| scoring with the counts loaded | {_gib(x['our_world_scoring_load_all_bytes'])} | {_gib(x['sisam_scoring_load_all_bytes'])} |",
                  f"| local learning, peak memory ({local['peak_rss_bytes_per_pattern']:.0f} bytes per pattern) | "
                  f"{_gib(local['peak_rss_at_our_world_bytes'])} | {_gib(local['peak_rss_at_sisam_patterns_bytes'])} |",
                  f"| local learning, CPU hours ({local['cpu_seconds_per_million_items']:,} CPU s per million items) | "
                  f"{local['cpu_hours_at_items']} | |"]
        spark = x.get("spark")
        if spark:
            executors = ", ".join(f"{n} executors x 4 cores: {h} h" for n, h in spark["hours_on_executors"].items())
            lines += ["", f"Spark (runs at {', '.join(spark['points'])} items): the tasks counted "
                      f"{spark['items_per_second_per_core']:,} items per second per core; if that holds on a cluster "
                      f"(shuffle over a network costs more than here), counting 150 million items takes {executors}. "
                      "The driver then reads the count tables, fits and publishes with local learning's code: its time "
                      "and memory are local learning's after counting (the phases above)."]
    if "extrapolation_notes" in results:
        lines += ["", results["extrapolation_notes"]]
    return "\n".join(lines) + "\n"


def save(results: dict) -> None:
    """Write the results, keeping the entries another step (another process) saved."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "scale.json"
    on_disk = json.loads(path.read_text()) if path.exists() else {}
    for section in ("learn", "score"):
        results[section] = {**on_disk.get(section, {}), **results[section]}
    path.write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["make", "learn", "score", "report", "all"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 20], help="History sizes, millions of items.")
    parser.add_argument("--engines", nargs="+", default=["local", "spark"])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--knowledge", type=Path, help="Knowledge folder the knowledge bases were learnt with (default: the shipped one).")
    parser.add_argument("--score-items", type=int, help="Score only the first this many test items of each size.")
    parser.add_argument("--score-kb", choices=["local", "spark"], default="local",
                        help="Score with the knowledge base this engine learnt.")
    args = parser.parse_args()
    path = RESULTS / "scale.json"
    results = json.loads(path.read_text()) if path.exists() else {"learn": {}, "score": {}}
    results["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")}
    results["spark_conf"] = SPARK_CONF
    if args.step in ("make", "all"):
        make(args.work, args.sizes)
    if args.step in ("learn", "all"):
        learn(args.work, args.sizes, args.engines, results)
    if args.step in ("score", "all"):
        score(args.work, args.sizes, results, args.knowledge, args.score_items, args.score_kb)
    results["extrapolation"] = extrapolate(results, 150e6, 8.5e9)
    save(results)
    (RESULTS / "scale.md").write_text(report(results))
    print(report(results))


if __name__ == "__main__":
    main()
