"""Optional dependencies of some tests: skipped where they are missing, except under CI
(``CI=true``), where ``.ci/run`` installs them and a missing one is a failure, so that a
test of the benchmark suites can never pass in CI by being skipped."""

from __future__ import annotations

import importlib
import os

import pytest


def unavailable(reason: str) -> None:
    """Skip the test, or fail it under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}, and CI=true: .ci/run must install it")
    pytest.skip(reason, allow_module_level=True)


def require(module: str, install: str = "pip install '.[test]'"):
    """The imported ``module``, or ``unavailable`` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        unavailable(f"{module} is not installed ({install})")
