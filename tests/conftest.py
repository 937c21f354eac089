import shutil
from pathlib import Path

import pytest

from sisam.resources import data_dir


@pytest.fixture
def knowledge_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped knowledge folder, for tests that break it."""
    target = tmp_path / "knowledge"
    shutil.copytree(data_dir("knowledge"), target)
    return target
