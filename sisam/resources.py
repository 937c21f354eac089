"""Package data: the ``knowledge/`` and ``explanations/`` folders.

Both ship inside the wheel as ``sisam/knowledge`` and ``sisam/explanations`` (pyproject's
force-include) and are read only through ``importlib.resources``. A source checkout run
without installing (``python -m sisam`` from the repository) finds them at the top level.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def data_dir(name: str) -> Path:
    """Path of a shipped data folder, e.g. ``data_dir("knowledge")``."""
    packaged = resources.files("sisam") / name
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parent.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        f"sisam's {name}/ folder is missing from the installation ({packaged}); "
        "reinstall sisam with pip"
    )
