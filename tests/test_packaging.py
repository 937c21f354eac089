"""The installed package carries its data: knowledge/ and explanations/ inside the wheel."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_knowledge_and_templates(tmp_path: Path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("sisam-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for toml in ("errors.toml", "attributes.toml", "networks.toml"):
        assert f"sisam/knowledge/{toml}" in names
    shipped = ROOT / "explanations"
    templates = sorted(p.relative_to(shipped).as_posix() for p in shipped.rglob("*.j2"))
    assert {"en/error.txt.j2", "pt-BR/error.txt.j2", "en/item.html.j2"} <= set(templates)
    for template in templates:
        assert f"sisam/explanations/{template}" in names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_cli_help_is_instant_and_lazy():
    """`sisam --help` must not import the numeric stack (numba, duckdb, pgmpy)."""
    code = (
        "import sys; from click.testing import CliRunner; from sisam.cli import cli; "
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output; "
        "heavy = [m for m in ('numba', 'duckdb', 'pgmpy', 'pandas') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_version_option():
    from click.testing import CliRunner

    from sisam import __version__
    from sisam.cli import cli

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"sisam, version {__version__}"
