"""Shared test helpers: executing notebooks, data and stand-in weights."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]


def run_notebook(path: Path | str, timeout: int = 600, env: dict | None = None,
                 allow_errors: bool = False) -> tuple[nbformat.NotebookNode, float]:
    """Execute a notebook top to bottom in a fresh kernel (cwd = its folder); returns it and the seconds taken.

    Raises nbclient's CellExecutionError on the first failing cell, unless ``allow_errors``.
    """
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
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


def run_solution_notebook(path: Path | str, timeout: int = 600,
                          env: dict | None = None) -> tuple[nbformat.NotebookNode, float]:
    """Execute a *solution* notebook whole, as nbgrader's stock Execute would (the hidden blocks included).

    Grading never happens in a kernel: each test cell's hidden block fails closed
    (``HiddenChecksNotRunHere``). Asserts that this is the only error anywhere, and that every
    test cell's public checks passed (they print no failure and give the cell no value). Full
    marks for the reference come from the engine (tests/nbgrader/test_agreement.py).
    """
    from autograder.notebooks import grade_id, is_test_cell

    nb, seconds = run_notebook(path, timeout=timeout, env=env, allow_errors=True)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        errors = [o for o in outputs if o.get("output_type") == "error"]
        if is_test_cell(cell):
            assert [e["ename"] for e in errors] == ["HiddenChecksNotRunHere"], (grade_id(cell), errors)
            assert not [o for o in outputs if o.get("output_type") == "execute_result"], grade_id(cell)
            text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
            assert "✗" not in text, f"{grade_id(cell)}: a public check failed on the reference:\n{text}"
        else:
            assert not errors, (grade_id(cell) or cell.source[:80], [e["ename"] for e in errors])
    return nb, seconds


def failed_closed(nb) -> set[str]:
    """Grade ids of the test cells whose hidden block failed closed in the kernel (see run_solution_notebook)."""
    from autograder.notebooks import grade_id, is_test_cell

    return {grade_id(c) for c in nb.cells if c.cell_type == "code" and is_test_cell(c)
            and any(o.get("ename") == "HiddenChecksNotRunHere" for o in c.get("outputs", []))}


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
