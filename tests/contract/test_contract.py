"""The course's contract, for every assignment (found in the course, not listed here): the layout, points
per test cell from the notebook's metadata only, full marks for the reference, zero for the release, and
``python -m autograder grade`` end to end.

The per-assignment files (``tests/assignments/``) hold only each assignment's own variants and notebooks.
"""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from autograder.course import Course
from autograder.grading.from_source import check_code
from autograder.notebooks import grade_id
from tests.conftest import cell_values
from tests.contract.course_contract import (
    assert_reference_full_marks,
    cell_points,
    check_layout,
    check_points_from_metadata,
    declared_check_points,
    training_cells,
)

REPO = Course().root
IDS = Course().assignment_ids()
#: Assignments whose reference reads the data (04-06) or AlexNet's weights (06).
NEEDS_DATA = {"04_cnn", "05_activation_stats", "06_transfer_learning"}


@pytest.fixture
def course_data(request, aid):
    """The data (and, for 06, stand-in AlexNet weights) an assignment's reference needs."""
    if aid in NEEDS_DATA:
        request.getfixturevalue("fashion_mnist_root")
    if aid == "06_transfer_learning":
        request.getfixturevalue("standin_torch_home")


def test_the_course_has_its_assignments():
    assert len(IDS) >= 6 and IDS == sorted(IDS)


@pytest.mark.parametrize("aid", IDS)
def test_layout(aid):
    check_layout(Course(), aid)


@pytest.mark.parametrize("aid", IDS)
def test_points_per_cell_come_from_the_notebook_metadata(aid):
    check_points_from_metadata(Course(), aid)


@pytest.mark.parametrize("aid", IDS)
def test_reference_gets_full_marks(aid, course_data):
    """On the reference notebook's namespace, in this process; cells with an accuracy check need a trained
    model and are left to the assignment's own slow tests (04: ``test_04_cnn_model.py``)."""
    course = Course()
    skip = training_cells(course, aid)
    cells = [c for c in declared_check_points(course, aid) if c not in skip]
    assert_reference_full_marks(check_code(aid, {}, cells=cells), course, aid, cells=cells)


@pytest.mark.slow
@pytest.mark.parametrize("aid", IDS)
def test_release_runs_and_scores_zero(aid, course_data, monkeypatch):
    """The untouched release, run top to bottom in a kernel as a student would: the setup cell runs and every
    test cell scores 0 (the demos that use a stub fail as they may; which errors is each assignment's business)."""
    from nbclient import NotebookClient

    monkeypatch.setenv("MPLBACKEND", "Agg")
    release = Course().get(aid).release_notebook
    nb = nbformat.read(release, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(release.parent)}}).execute()
    assert cell_values(nb) == dict.fromkeys(cell_points(nb), 0.0)
    (setup,) = [c for c in nb.cells if grade_id(c) == "setup"]
    assert not [o for o in setup.get("outputs", []) if o.get("output_type") == "error"], setup.outputs


@pytest.mark.slow
def test_grade_cli_end_to_end_on_a_solution(tmp_path):
    """``python -m autograder grade`` on one assignment's solution notebook: exit 0 and full marks."""
    aid = "02_conv_arithmetic"
    results = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(Course().get(aid).solution_notebook),
                           "--results", str(results)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(results.read_text())
    graded = [t for t in report["tests"] if not t["name"].endswith("written answer")]
    assert graded and all(t["status"] == "passed" for t in graded), [t["name"] for t in graded if t["status"] != "passed"]
    expected = sum(cell_points(nbformat.read(Course().get(aid).solution_notebook, as_version=4)).values())
    assert report["score"] == report["max_score"] == expected
