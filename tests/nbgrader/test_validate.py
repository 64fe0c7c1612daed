"""`nbgrader validate` (what students' Validate button runs) passes a correct notebook and names a failing test."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from autograder.authoring.notebook_builder import fill_answers, solution_sources
from autograder.course import Course

pytestmark = pytest.mark.slow
AID = "02_conv_arithmetic"


def _validate(path):
    from nbgrader.validator import Validator

    return Validator().validate(str(path))


def test_validate_passes_a_correct_release_and_reports_a_wrong_one(tmp_path):
    course = Course()
    release = nbformat.read(course.get(AID).release_notebook, as_version=4)
    reference = solution_sources(nbformat.read(course.get(AID).solution_notebook, as_version=4))
    for cell in release.cells:  # the written answers too, or Validate asks for them
        if cell.cell_type == "markdown" and cell.metadata.get("nbgrader", {}).get("solution"):
            reference[cell.metadata["nbgrader"]["grade_id"]] = "A thoughtful answer."
    good = tmp_path / "good" / f"{AID}.ipynb"
    bad = tmp_path / "bad" / f"{AID}.ipynb"
    wrong = "def same_padding(kernel_size, dilation=1):\n    return kernel_size // 2 + 1"
    for path, nb in ((good, fill_answers(release, reference)), (bad, fill_answers(release, {**reference, "same_padding": wrong}))):
        path.parent.mkdir()
        nbformat.write(nb, path)
    assert _validate(good) == {}
    failed = _validate(bad)
    assert "failed" in failed
    assert any("test_same_padding" in cell.get("source", "") for cell in failed["failed"]), failed


def test_release_notebook_runs_and_its_public_checks_score_zero(tmp_path):
    course = Course()
    nb = nbformat.read(course.get(AID).release_notebook, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(course.get(AID).release_notebook.parent)}}).execute()
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code":
            results = [o for o in cell.outputs if o.output_type == "execute_result"]
            assert results and float(results[0].data["text/plain"]) == 0.0
