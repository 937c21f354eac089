"""The ``sisam`` command line: a thin layer over the library.

Subcommands only parse options and call the library; heavy modules (numba kernels, pandas,
duckdb, pgmpy) are imported inside the commands so that ``sisam --help`` is instant.
Domain errors (``SisamError``) exit with code 1 and a message; bad usage exits with 2.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path

import click

from sisam import __version__
from sisam.errors import SisamError

log = logging.getLogger("sisam.cli")

_TABLE_PATH = click.Path(dir_okay=False, path_type=Path)


def _domain_errors(command):
    """Turn ``SisamError`` into ``ClickException`` (exit code 1, message on stderr)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SisamError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sisam")
@click.option("-v", "--verbose", count=True, help="Log progress to stderr (-vv for debug).")
def cli(verbose: int) -> None:
    """sisam: which items of an import declaration are probably wrong, how probably, and why.

    Learn from declarations and their rectified versions, score new items for 30 error
    types, and explain every figure. Start with `sisam demo`.
    """
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
        )


@cli.command()
@click.option("--items", default=200_000, show_default=True, type=click.IntRange(min=100), help="Items in history and test together.")
@click.option("--days", default=365, show_default=True, type=click.IntRange(min=1), help="Days of history.")
@click.option("--test-days", default=30, show_default=True, type=click.IntRange(min=1), help="Days of the later test period.")
@click.option("--seed", default=7, show_default=True, type=int, help="Random seed: same seed, same bytes.")
@click.option("--format", "file_format", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True)
@click.option("--drift-day", type=click.IntRange(min=1), help="Day (from the start) on which half of the importers switch schemes.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write history, rectified, test and truth into.")
@_domain_errors
def generate(items: int, days: int, test_days: int, seed: int, file_format: str, drift_day: int | None, out: Path) -> None:
    """Generate a synthetic customs world: history, rectified, test and truth tables."""
    from sisam.synth import generate_world

    summary = generate_world(items, days, seed, out, test_days=test_days, file_format=file_format, drift_day=drift_day)
    click.echo(str(summary))


@cli.command()
@click.option("--declarations", required=True, type=_TABLE_PATH, help="Declarations table (.csv or .parquet).")
@click.option("--rectified", type=_TABLE_PATH, help="Rectified table of the inspected items.")
@click.option("--truth", type=_TABLE_PATH, help="A synthetic world's truth table: compare the derived labels with it.")
@click.option("--knowledge", type=click.Path(file_okay=False, exists=True, path_type=Path), help="Knowledge folder (default: the shipped one).")
@_domain_errors
def validate(declarations: Path, rectified: Path | None, truth: Path | None, knowledge: Path | None) -> None:
    """Check tables against the contract and derive the error labels of inspected items.

    Every problem is reported with file, row and column; exit code 1 if there is any.
    """
    from sisam.validation import validate_tables

    report = validate_tables(declarations, rectified, truth, knowledge)
    click.echo(report.render())
    if not report.ok:
        raise click.ClickException(report.failure)


def _progress(quiet: bool):
    """Progress lines on stderr when it is a terminal and not --quiet; silent otherwise."""
    import sys

    if quiet or not sys.stderr.isatty():
        return lambda message: None
    return lambda message: click.echo(f"  {message}", err=True)


_KNOWLEDGE_OPTION = click.option(
    "--knowledge",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Knowledge folder (default: the one shipped with sisam).",
)
_QUIET_OPTION = click.option("--quiet", is_flag=True, help="No progress on stderr.")


@cli.command()
@click.option("--declarations", required=True, type=_TABLE_PATH, help="History of declarations (.csv or .parquet).")
@click.option("--rectified", required=True, type=_TABLE_PATH, help="Rectified versions of the inspected items.")
@click.option("--kb", "kb_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Knowledge-base folder.")
@click.option("--update", is_flag=True, help="Add this batch to the current version instead of learning afresh.")
@click.option("--half-life", "half_life_days", type=click.FloatRange(min=0, min_open=True), help="With --update: old pattern counts halve every this many days (evidence tables add up undecayed; choosing it: docs/decay.md).")
@click.option("--overwrite", is_flag=True, help="Replace an existing knowledge base's contents (as a new version).")
@click.option("--fit-sample", default=20_000, show_default=True, type=click.IntRange(min=100), help="Inspected items scored by leave-one-out to fit the coefficients.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the fitting sample.")
@click.option("--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True, help="Count here, a chunk at a time, or on Spark (pip install 'sisam[spark]'; Parquet input).")
@click.option("--chunk-rows", default=1_000_000, show_default=True, type=click.IntRange(min=1), help="Local engine: items counted at once (memory is about 1.5 GB per million).")
@click.option("--spark-master", help="Spark master, e.g. local[2] or yarn (default: spark-submit's or spark-defaults.conf's).")
@click.option("--spark-conf", "spark_conf", multiple=True, metavar="KEY=VALUE", help="A Spark setting (repeatable).")
@click.option("--spark-counts", type=click.Path(file_okay=False, path_type=Path), help="Keep Spark's Parquet count tables in this folder (default: a temporary folder, removed).")
@click.option("--keep-coefficients", is_flag=True, help="With --update: add the counts, keep the current coefficients (a daily batch is too small to refit them).")
@_KNOWLEDGE_OPTION
@_QUIET_OPTION
@_domain_errors
def learn(declarations, rectified, kb_dir, update, half_life_days, overwrite, fit_sample, seed, engine, chunk_rows, spark_master, spark_conf, spark_counts, keep_coefficients, knowledge, quiet) -> None:
    """Learn pattern counts and coefficients into a knowledge base (or add a batch with --update)."""
    from sisam.knowledge import load_knowledge
    from sisam.model import learn as learn_kb

    if (half_life_days is not None or keep_coefficients) and not update:
        raise click.UsageError("--half-life and --keep-coefficients only apply with --update")
    summary = learn_kb(
        declarations, rectified, kb_dir,
        knowledge=load_knowledge(knowledge), update=update, half_life_days=half_life_days,
        overwrite=overwrite, fit_sample=fit_sample, seed=seed, engine=engine, chunk_rows=chunk_rows,
        spark_master=spark_master, spark_conf=dict(_pair(v, "--spark-conf") for v in spark_conf),
        spark_work_dir=spark_counts, progress=_progress(quiet),
        keep_coefficients=keep_coefficients,
    )  # fmt: skip
    click.echo(str(summary))


_LANG_OPTION = click.option("--lang", type=click.Choice(["en", "pt-BR"]), default="en", show_default=True, help="Language of the explanations.")


@cli.command()
@click.option("--declarations", required=True, type=_TABLE_PATH, help="Items to score (.csv or .parquet).")
@click.option("--kb", "kb_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path), help="Knowledge-base folder.")
@click.option("--out", required=True, type=_TABLE_PATH, help="Score table to write (.csv or .parquet).")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the reasoning log of every item and error type (JSON Lines; gzip if it ends in .gz).")
@_LANG_OPTION
@click.option("--pseudonymise", is_flag=True, help="In the log, write the sha256 of each value instead of the value.")
@click.option("--stream-kb", is_flag=True, help="Do not load the knowledge base: read, for each batch of a million items, the counts it needs from disk (a knowledge base larger than memory; `sisam kb info` says what each way needs).")
@click.option("--kb-memory", "kb_memory", metavar="SIZE", help="With --stream-kb: DuckDB's memory limit while reading, e.g. 2GB.")
@click.option("--stream-batch-rows", type=click.IntRange(min=1), help="With --stream-kb: items per batch (default a million); smaller batches hold fewer counts and read the file more often.")
@_KNOWLEDGE_OPTION
@_QUIET_OPTION
@_domain_errors
def score(declarations, kb_dir, out, log_path, lang, pseudonymise, stream_kb, kb_memory, stream_batch_rows, knowledge,
          quiet) -> None:
    """Probability of each of the 30 error types (and of any error) for every item."""
    from sisam.knowledge import load_knowledge
    from sisam.model import score as score_items

    if stream_batch_rows is not None and not stream_kb:
        raise click.UsageError("--stream-batch-rows sets the batches of --stream-kb: add --stream-kb")
    summary = score_items(
        declarations, kb_dir, out, knowledge=load_knowledge(knowledge), progress=_progress(quiet),
        log=log_path, lang=lang, pseudonymise=pseudonymise, stream_kb=stream_kb,
        stream_memory_limit=kb_memory, stream_batch_rows=stream_batch_rows,
    )  # fmt: skip
    click.echo(str(summary))
    if log_path is not None:
        from sisam.reasoning_log import last_hash

        click.echo(
            f"reasoning log: {log_path}, last record sha256 {last_hash(log_path)} (keep it apart "
            f"from the log; check the log with `sisam replay {log_path}`)"
        )


@cli.command()
@click.argument("log_path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--kb", "kb_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), help="Also recompute from the knowledge base the log names (refused if this folder holds another).")
@_domain_errors
def replay(log_path: Path, kb_dir: Path | None) -> None:
    """Recompute every probability of a reasoning log and check it bit for bit.

    Verifies the log's hash chain, recomputes every pattern's prior and posterior, every
    contribution and probability from the log alone (and, with --kb, from the knowledge
    base), and lists each mismatch with its record number and field. Exit code 1 if any.
    """
    from sisam.replay import replay as replay_log

    report = replay_log(log_path, kb_dir)
    click.echo(report.render())
    if not report.ok:
        raise click.ClickException(f"{log_path}: the replay found problems (listed above)")


@cli.command()
@click.option("--kb", "kb_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path), help="Knowledge-base folder.")
@click.option("--declarations", required=True, type=_TABLE_PATH, help="Declarations holding the item (.csv or .parquet).")
@click.option("--item", "item", required=True, help="The item, as DECLARATION/ITEM (e.g. 2400004038/1).")
@_LANG_OPTION
@click.option("--templates", type=click.Path(file_okay=False, exists=True, path_type=Path), help="Folder of explanation templates overriding the shipped ones (rendered in a sandbox).")
@click.option("--html", is_flag=True, help="An HTML fragment instead of text.")
@_KNOWLEDGE_OPTION
@_domain_errors
def explain(kb_dir, declarations, item, lang, templates, html, knowledge) -> None:
    """The full explanation of one item: every error type ranked, with its reasoning."""
    from sisam.declarations import read_declarations
    from sisam.explain import explain_one
    from sisam.knowledge import load_knowledge
    from sisam.model import Scorer

    scorer = Scorer.open(kb_dir, load_knowledge(knowledge))
    click.echo(explain_one(scorer, read_declarations(declarations), item, lang, templates=templates, html=html))


@cli.group("kb")
def kb_group() -> None:
    """Inspect and export knowledge bases."""


@cli.command()
@click.argument("scores", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The HTML page to write.")
@click.option("--declarations", type=_TABLE_PATH, help="The scored declarations (default: recorded in a Parquet score table).")
@click.option("--kb", "kb_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), help="The knowledge base used (default: recorded in a Parquet score table).")
@click.option("--top", type=click.IntRange(min=1), help="Items to list (default: the top 2 %, at least 20, at most 500).")
@click.option("--rank-by", "rank_by", type=click.Choice(["probability", "value"]), default="probability", show_default=True, help="Rank by the probability of any error, or by the expected tax recovered if inspected.")
@_LANG_OPTION
@_KNOWLEDGE_OPTION
@_domain_errors
def report(scores, out, declarations, kb_dir, top, rank_by, lang, knowledge) -> None:
    """The officer's worklist: a self-contained HTML page of the riskiest items, explained."""
    from sisam.knowledge import load_knowledge
    from sisam.report import build_report

    summary = build_report(scores, out, declarations=declarations, kb_dir=kb_dir, top=top, lang=lang, knowledge=load_knowledge(knowledge), rank_by=rank_by)
    click.echo(str(summary))


@kb_group.command("info")
@click.argument("kb_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--version", "version", type=int, help="A version still on disk (default: the current one).")
@click.option("--verify", is_flag=True, help="Recompute the content hash (reads every count).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_domain_errors
def kb_info(kb_dir: Path, version: int | None, verify: bool, as_json: bool) -> None:
    """Version, sizes, coefficients and provenance of a knowledge base."""
    import json

    from sisam import kb
    from sisam.kb_report import render_info

    facts = kb.info(kb_dir, version=version, verify=verify)
    click.echo(json.dumps(facts, indent=2, default=str) if as_json else render_info(facts))


@kb_group.command("diff")
@click.argument("kb_a", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("kb_b", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--version-a", type=int, help="A version of KB_A still on disk (default: the current one).")
@click.option("--version-b", type=int, help="A version of KB_B still on disk (default: the current one).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_domain_errors
def kb_diff(kb_a: Path, kb_b: Path, version_a: int | None, version_b: int | None, as_json: bool) -> None:
    """Compare two knowledge bases' contents table by table; exit status 1 if they differ,
    2 if they could not be compared."""
    import json

    from sisam import kb
    from sisam.kb_report import render_diff

    try:
        found = kb.compare(kb_a, kb_b, version_a=version_a, version_b=version_b)
    except SisamError as exc:  # "could not compare" must not read as "differ" (as diff(1))
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from exc
    click.echo(json.dumps(found, indent=2) if as_json else render_diff(found))
    if not found["identical"]:
        raise SystemExit(1)


@kb_group.command("export")
@click.argument("kb_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for the Parquet files.")
@click.option("--version", "version", type=int, help="A version still on disk (default: the current one).")
@_domain_errors
def kb_export(kb_dir: Path, out: Path, version: int | None) -> None:
    """Export a knowledge-base version's tables as Parquet files."""
    from sisam import kb

    kb.export_parquet(kb_dir, out, version=version)
    click.echo(f"exported {kb_dir} to {out}")


@kb_group.command("apply-correlation")
@click.option("--kb", "kb_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path), help="Knowledge-base folder.")
@click.option("--table", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Code correlation CSV: old_code,new_code,share,effective_date (default: the knowledge folder's legislation/code_correlation.csv).")
@_KNOWLEDGE_OPTION
@_domain_errors
def kb_apply_correlation(kb_dir: Path, table: Path | None, knowledge: Path | None) -> None:
    """Publish a new version in which new tariff lines inherit their predecessors' patterns."""
    from sisam.knowledge import load_knowledge
    from sisam.legislation import apply_correlation
    from sisam.resources import data_dir

    table = table or (knowledge or data_dir("knowledge")) / "legislation" / "code_correlation.csv"
    version = apply_correlation(kb_dir, table, load_knowledge(knowledge).hash)
    click.echo(f"{kb_dir}: version {version} holds the code correlation of {table}")


@cli.command()
@click.option("--out", default="sisam-demo", show_default=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for the world, the knowledge base, the scores and the reports.")
@click.option("--items", default=200_000, show_default=True, type=click.IntRange(min=1000), help="Items in the synthetic world.")
@click.option("--seed", default=7, show_default=True, type=int, help="Seed of the world.")
@_domain_errors
def demo(out: Path, items: int, seed: int) -> None:
    """Generate a synthetic customs world, learn, score and measure recall, all under --out."""
    from sisam.demo import run_demo

    run_demo(out, items, seed, say=click.echo)


@cli.group("bench")
def bench_group() -> None:
    """Benchmarks: recall against selection rate beside peers, on synthetic worlds and
    real public data, and speed against size. Each suite adds its part to OUT/bench.json
    and rewrites OUT/bench.md, OUT/bench.html and OUT/svg/ (see sisam/bench/)."""


_BENCH_OUT = click.option("--out", default=Path("benchmarks/results/bench"), show_default=True, type=click.Path(file_okay=False, path_type=Path), help="Folder of bench.json and the reports.")
_BENCH_SEED = click.option("--seed", default=7, show_default=True, type=int, help="Seed of worlds, splits, peers and the bootstrap.")
_BENCH_DRAWS = click.option("--draws", default=200, show_default=True, type=click.IntRange(min=0), help="Bootstrap draws for the intervals.")
_BENCH_NOTES = click.option("--notes", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Markdown closing note to add to the report.")
_BENCH_PEERS = click.option("--peers", "peer_keys", metavar="NAME[,NAME]", help="Run only these peers (default: every installed one): random, profile, naive_bayes, tan, lightgbm, logistic.")
_BENCH_SKIP_PEERS = click.option("--skip-peers", is_flag=True, help="Run no peer: sisam (and its variants), the flat table and, on synthetic worlds, the oracle.")


def _chosen_peers(peer_keys: str | None, skip_peers: bool):
    """The peers of a bench run: every installed one unless ``--peers`` or ``--skip-peers``."""
    from sisam.bench.peers import choose_peers, default_peers

    if peer_keys is not None and skip_peers:
        raise click.UsageError("--peers and --skip-peers exclude each other")
    if skip_peers:
        return choose_peers([])
    if peer_keys is None:
        return default_peers()
    keys = [k.strip() for k in peer_keys.split(",") if k.strip()]
    if not keys:
        raise click.BadParameter("name at least one peer (or use --skip-peers)", param_hint="--peers")
    return choose_peers(keys)


def _pair(value: str, option: str) -> tuple[str, str]:
    name, sep, rest = value.partition("=")
    if not sep or not name or not rest:
        raise click.BadParameter(f"expected NAME=VALUE, got {value!r}", param_hint=option)
    return name, rest


def _bench_command() -> list[str]:
    """The command as it would be typed to rerun it, every option's value spelt out."""
    ctx = click.get_current_context()
    words = ["sisam", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or value is False or value == () or param.name == "help":
            continue
        for v in value if isinstance(value, tuple) else (value,):
            words += [param.opts[0]] if v is True else [param.opts[0], str(v)]
    return words


@bench_group.command("synthetic")
@click.option("--items", default=1_000_000, show_default=True, type=click.IntRange(min=1000), help="Items of the synthetic world.")
@click.option("--variant", "variants", multiple=True, metavar="NAME=DIR", help="Also run sisam with this knowledge folder (repeatable).")
@click.option("--without", "withouts", multiple=True, metavar="NAME=FACTOR[,FACTOR]", help="Also run sisam with the shipped catalog less these factors (repeatable): an ablation.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), help="Folder for the world and knowledge bases (default: a temporary folder, removed).")
@click.option("--fit-sample", default=20_000, show_default=True, type=click.IntRange(min=100), help="As sisam learn's.")
@_BENCH_PEERS
@_BENCH_SKIP_PEERS
@_BENCH_SEED
@_BENCH_DRAWS
@_BENCH_OUT
@_BENCH_NOTES
@_domain_errors
def bench_synthetic(items, variants, withouts, work, fit_sample, peer_keys, skip_peers, seed, draws, out, notes) -> None:
    """sisam (and its knowledge variants) against every peer on a synthetic world."""
    from sisam.bench.report import write_part
    from sisam.bench.suites import resolve_variants, run_meta, synthetic_suite

    peers = _chosen_peers(peer_keys, skip_peers)
    with _work_folder(work) as folder:
        chosen = resolve_variants(
            [_pair(v, "--variant") for v in variants],
            [(n, f.split(",")) for n, f in (_pair(w, "--without") for w in withouts)],
            folder,
        )
        result = synthetic_suite(items=items, seed=seed, work=folder, variants=chosen, peers=peers, draws=draws,
                                 fit_sample=fit_sample, say=click.echo)  # fmt: skip
    click.echo(write_part(out, "synthetic", {**result, "meta": run_meta(_bench_command())}, notes))


@bench_group.command("real")
@click.option("--dataset", "datasets", multiple=True, help="A data set (repeatable; default: all): flights, adult, mushroom, splice, chess, car.")
@click.option("--sample", type=click.IntRange(min=50), help="Use at most this many rows of each file (for a quick run).")
@click.option("--fit-sample", default=20_000, show_default=True, type=click.IntRange(min=100), help="As sisam learn's.")
@_BENCH_PEERS
@_BENCH_SKIP_PEERS
@_BENCH_SEED
@_BENCH_DRAWS
@_BENCH_OUT
@_BENCH_NOTES
@_domain_errors
def bench_real(datasets, sample, fit_sample, peer_keys, skip_peers, seed, draws, out, notes) -> None:
    """sisam's HPB network against every peer on real public data shipped by packages."""
    from sisam.bench.datasets import LOADERS
    from sisam.bench.report import write_part
    from sisam.bench.suites import real_suite, run_meta

    peers = _chosen_peers(peer_keys, skip_peers)
    result = real_suite(list(datasets) or list(LOADERS), seed=seed, peers=peers, draws=draws, sample=sample,
                        fit_sample=fit_sample, say=click.echo)  # fmt: skip
    click.echo(write_part(out, "real", {**result, "meta": run_meta(_bench_command())}, notes))


@bench_group.command("scale")
@click.option("--sizes", default="100000,1000000,5000000", show_default=True, help="Comma-separated world sizes (items).")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), help="Folder for the worlds (default: a temporary folder, removed).")
@_BENCH_SEED
@_BENCH_OUT
@_BENCH_NOTES
@_domain_errors
def bench_scale(sizes, work, seed, out, notes) -> None:
    """Learning and scoring throughput, peak memory and bytes per pattern against size."""
    from sisam.bench.report import write_part
    from sisam.bench.suites import run_meta, scale_suite

    try:
        counts = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated whole numbers, got {sizes!r}", param_hint="--sizes") from None
    with _work_folder(work) as folder:
        result = scale_suite(counts, seed=seed, work=folder, say=click.echo)
    click.echo(write_part(out, "scale", {**result, "meta": run_meta(_bench_command())}, notes))


@bench_group.command("report")
@_BENCH_OUT
@_BENCH_NOTES
@_domain_errors
def bench_report(out, notes) -> None:
    """Rewrite the Markdown and HTML reports from OUT/bench.json."""
    from sisam.bench.report import write_part

    click.echo(write_part(out, None, None, notes))


@contextlib.contextmanager
def _work_folder(work: Path | None):
    """``work`` (created if need be), or a temporary folder removed afterwards."""
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
        yield work
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sisam-bench-") as name:
        yield Path(name)


def main() -> None:
    cli(prog_name="sisam")
