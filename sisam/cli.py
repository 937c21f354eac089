"""The ``sisam`` command line: a thin layer over the library.

Subcommands only parse options and call the library; heavy modules (numba kernels, pandas,
duckdb, pgmpy) are imported inside the commands so that ``sisam --help`` is instant.
Domain errors (``SisamError``) exit with code 1 and a message; bad usage exits with 2.
"""

from __future__ import annotations

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
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write history, rectified, test and truth into.")
@_domain_errors
def generate(items: int, days: int, test_days: int, seed: int, file_format: str, out: Path) -> None:
    """Generate a synthetic customs world: history, rectified, test and truth tables."""
    from sisam.synth import generate_world

    summary = generate_world(items, days, seed, out, test_days=test_days, file_format=file_format)
    click.echo(str(summary))


def main() -> None:
    cli(prog_name="sisam")
