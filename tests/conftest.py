"""Shared test helpers: executing notebooks, data and stand-in weights."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]


def run_notebook(path: Path | str, timeout: int = 600, env: dict | None = None) -> tuple[nbformat.NotebookNode, float]:
    """Execute a notebook top to bottom in a fresh kernel (cwd = its folder); returns it and the seconds taken.

    Raises nbclient's CellExecutionError on the first failing cell.
    """
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        start = time.perf_counter()
        client.execute()
        return nb, time.perf_counter() - start
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def cell_values(nb) -> dict[str, float | None]:
    """grade id -> the number each executed test cell displayed (its points; None when it showed none)."""
    from autograder.notebooks import grade_id, is_test_cell

    values = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and is_test_cell(cell):
            results = [o for o in cell.get("outputs", []) if o.get("output_type") == "execute_result"]
            values[grade_id(cell)] = float(results[-1]["data"]["text/plain"]) if results else None
    return values


@pytest.fixture(scope="session")
def fashion_mnist_root() -> Path:
    """The data folder holding Fashion-MNIST (``make data`` fetches it)."""
    from data_scripts.paths import data_dir

    root = data_dir()
    if not (root / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").exists():
        pytest.fail(f"Fashion-MNIST is missing under {root}: run `make data` "
                    "(with CNN_COURSE_MIRROR=/usr/share/datasets/fashion-mnist offline)")
    return root


@pytest.fixture(scope="session")
def standin_torch_home(tmp_path_factory) -> Path:
    """A temporary TORCH_HOME holding a STAND-IN AlexNet checkpoint (random weights, real keys and shapes).

    Sets TORCH_HOME for the rest of the session, so the real torchvision loading path runs.
    """
    from data_scripts.alexnet_standin import install_standin

    home = tmp_path_factory.mktemp("torch_home")
    install_standin(torch_home=home)
    os.environ["TORCH_HOME"] = str(home)
    return home
