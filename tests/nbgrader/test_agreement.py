"""nbgrader autograde (in-kernel test cells) and the engine give the same points per test cell.

Both run the same check functions; this shows it on assignment 02 for the reference, the
blank release and several wrong submissions.
"""

from __future__ import annotations

import shutil

import nbformat
import pytest

from autograder.assignments import Course
from autograder.authoring import fill_answers, solution_sources
from autograder.engine import grade_notebook
from autograder.nbgrader_tools import cell_scores, nbgrader_api

pytestmark = pytest.mark.slow
AID = "02_conv_arithmetic"


def _submissions(course):
    release = nbformat.read(course.get(AID).release_notebook, as_version=4)
    reference = solution_sources(nbformat.read(course.get(AID).solution_notebook, as_version=4))
    wrong_size = "def conv_out_size(n, kernel_size, stride=1, padding=0, dilation=1):\n    return (n + 2 * padding - kernel_size) // stride"
    wrong_params = "def conv_params(in_channels, out_channels, kernel_size, bias=True, groups=1):\n    k = kernel_size if isinstance(kernel_size, int) else kernel_size[0]\n    return in_channels * out_channels * k * k"
    return {
        "reference": fill_answers(release, reference),
        "blank": release,
        "off_by_one": fill_answers(release, {**reference, "conv_out_size": wrong_size}),
        "no_bias_and_stub": fill_answers(release, {**reference, "conv_params": wrong_params,
                                                    "receptive_field": release_source(release, "receptive_field")}),
    }


def release_source(release, gid):
    return next(c.source for c in release.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def test_nbgrader_and_engine_agree_per_cell(tmp_path):
    course = Course()
    root = tmp_path / "course"
    for sub in ("solutions", "assignments"):
        shutil.copytree(course.root / sub / AID, root / sub / AID)
    shutil.copy(course.root / "nbgrader_config.py", root / "nbgrader_config.py")
    api = nbgrader_api(root, timeout=120)
    assert api.generate_assignment(AID, force=True, create=True)["success"]
    submissions = _submissions(course)
    for student, nb in submissions.items():
        path = root / "submitted" / student / AID / f"{AID}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)
        (path.parent / "timestamp.txt").write_text("2026-11-23 10:00:00.000000 UTC")
    for student in submissions:
        result = api.autograde(AID, student)
        assert result["success"], result.get("log")
        by_nbgrader = cell_scores(api, AID, student)
        report = grade_notebook(root / "submitted" / student / AID / f"{AID}.ipynb", assignment_id=AID, threads=1)
        by_engine = {cell: got for cell, (got, _) in report.cell_scores().items()}
        assert by_nbgrader == pytest.approx(by_engine), student
    assert sum(cell_scores(api, AID, "reference").values()) > 0
    assert sum(cell_scores(api, AID, "blank").values()) == 0
