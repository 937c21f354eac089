"""End-to-end CLI behaviour on small generated worlds: exit codes, messages, outputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from sisam.cli import cli


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "world"
    run("generate", "--items", 20000, "--days", 120, "--test-days", 20, "--seed", 3, "--out", out)
    return out


def test_every_subcommand_has_help():
    for command in ("generate", "validate", "learn", "score", "kb", "demo"):
        result = run(command, "--help")
        assert "Usage:" in result.output


def test_validate_accepts_a_generated_world_and_its_labels_match_the_truth(world: Path):
    result = run(
        "validate",
        "--declarations", world / "history.parquet",
        "--rectified", world / "rectified.parquet",
        "--truth", world / "truth.parquet",
    )  # fmt: skip
    assert "contract OK" in result.output
    rows = [line.split() for line in result.output.splitlines() if line.split() and line.split()[0] == "hs_code"]
    assert rows and rows[0][-1] == "0"  # no disagreement with the truth


def test_validate_reports_file_row_and_column_and_exits_1(world: Path, tmp_path: Path):
    frame = pd.read_parquet(world / "history.parquet").head(50)
    frame.loc[4, "hs_code"] = frame.loc[4, "hs_code"][1:]  # a lost leading digit
    frame.loc[9, "date"] = "2024-02-30"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    result = run("validate", "--declarations", bad, ok=False)
    assert result.exit_code == 1
    assert f"{bad}, row 5, column 'hs_code'" in result.output
    assert f"{bad}, row 10, column 'date'" in result.output


def test_unknown_table_format_is_a_usage_problem(tmp_path: Path):
    target = tmp_path / "x.xlsx"
    target.write_text("nothing")
    result = run("validate", "--declarations", target, ok=False)
    assert result.exit_code == 1
    assert ".xlsx" in result.output
