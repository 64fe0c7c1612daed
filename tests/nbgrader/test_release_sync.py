"""Committed releases are exactly what `nbgrader generate_assignment` makes from the solutions."""

from __future__ import annotations

import json

import nbformat
import pytest

from autograder.course import Course
from autograder.integrations.release import generate_to_temp, solution_ids
from tests.contract.course_contract import declared_check_points

IDS = solution_ids(Course())


def _canonical(path) -> str:
    nb = nbformat.read(path, as_version=4)
    return json.dumps(nb, sort_keys=True, indent=1)


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", IDS)
def test_committed_release_matches_a_fresh_nbgrader_release(assignment_id):
    course = Course()
    fresh = generate_to_temp(course, assignment_id)
    committed = course.root / "assignments" / assignment_id / f"{assignment_id}.ipynb"
    assert committed.exists(), f"{committed} is missing: run `make release`"
    assert _canonical(committed) == _canonical(fresh), (
        f"{committed} differs from what nbgrader generates from solutions/{assignment_id}: run `make release`")


@pytest.mark.parametrize("assignment_id", IDS)
def test_release_has_no_solutions_or_hidden_tests(assignment_id):
    text = (Course().root / "assignments" / assignment_id / f"{assignment_id}.ipynb").read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "hidden=True"):
        assert marker not in text, f"{assignment_id}'s release contains {marker!r}"
    assert "raise NotImplementedError" in text


@pytest.mark.parametrize("assignment_id", IDS)
def test_test_cell_points_equal_the_sum_of_their_checks(assignment_id):
    course = Course()
    points = declared_check_points(course, assignment_id)  # the checks as the grader collects them
    nb = nbformat.read(course.get(assignment_id).solution_notebook, as_version=4)
    declared = {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"]["points"]) for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"}
    assert declared == pytest.approx(points), "nbgrader points per test cell must equal the sum of its checks' points"
