"""What every assignment of a course must satisfy, as functions of (course, assignment id).

``tests/contract/test_contract.py`` applies them to every assignment of the repository's course, and
``tests/contract/test_new_assignment.py`` to an assignment freshly made by ``new-assignment`` in a
temporary course. Points per test cell are read from the notebook's metadata only (nbgrader's ``points``);
no test restates them.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from autograder.course import Course, GradingSettings
from autograder.grading.run_checks import collect_checks
from autograder.notebooks import grade_id, is_solution_cell, is_test_cell, nbgrader_meta

MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "hidden=True")


def cell_points(nb) -> dict[str, float]:
    """grade id -> nbgrader's points, for every autograded test cell of ``nb``."""
    return {grade_id(c): float(nbgrader_meta(c)["points"]) for c in nb.cells if c.cell_type == "code" and is_test_cell(c)}


def declared_checks(path: Path) -> list[tuple[str, str, float, str]]:
    """(name, cell, points, kind) of every check in ``path``, collected as the grader collects them (not run)."""
    return [(nodeid.rsplit("::", 1)[-1], spec.cell, spec.points, spec.kind) for nodeid, spec in collect_checks([path])]


def declared_check_points(course: Course, aid: str) -> dict[str, float]:
    """cell -> sum of the points of its checks, public and hidden."""
    a = course.get(aid)
    totals: dict[str, float] = {}
    for path in (a.public_checks, a.hidden_checks):
        for _, cell, points, _ in declared_checks(path):
            totals[cell] = totals.get(cell, 0.0) + points
    return totals


def training_cells(course: Course, aid: str) -> set[str]:
    """Test cells with an ``accuracy`` check: their reference marks need a model trained (the assignment's
    own slow tests give them), so the quick contract leaves them out."""
    a = course.get(aid)
    return {cell for path in (a.public_checks, a.hidden_checks)
            for _, cell, _, kind in declared_checks(path) if kind == "accuracy"}


def check_layout(course: Course, aid: str) -> None:
    """The solution and the release, the checks package with public and hidden checks, a valid grading.json."""
    a = course.get(aid)
    assert a.solution_notebook.is_file(), f"{a.solution_notebook} is missing"
    assert a.release_notebook.is_file(), f"{a.release_notebook} is missing"
    for name in ("__init__.py", "public.py", "hidden.py"):
        assert (a.checks_dir / name).is_file(), f"{a.checks_dir / name} is missing"
    settings = a.checks_dir / "grading.json"
    if settings.exists():  # optional; only known keys
        GradingSettings(**json.loads(settings.read_text(encoding="utf-8")))
    solution = nbformat.read(a.solution_notebook, as_version=4)
    release = nbformat.read(a.release_notebook, as_version=4)
    for nb, what in ((solution, "solution"), (release, "release")):
        assert nb.metadata.get("cnn_course", {}).get("assignment") == aid, f"the {what}'s cnn_course.assignment"
    setup = [c for c in solution.cells if grade_id(c) == "setup"]
    assert setup and nbgrader_meta(setup[0]).get("locked"), "a locked setup cell (grade id 'setup')"
    assert f'Checker("{aid}")' in setup[0].source, "the setup cell makes the in-cell checker of this assignment"
    for c in solution.cells:
        if c.cell_type == "code" and is_test_cell(c):
            gid = grade_id(c)
            assert c.source == (f'check("{gid}")\n### BEGIN HIDDEN TESTS\n'
                                f'check("{gid}", hidden=True)\n### END HIDDEN TESTS'), f"test cell {gid}"
    text = nbformat.writes(release)
    assert not [m for m in MARKERS if m in text], "the release holds solutions or hidden tests"
    assert cell_points(release) == cell_points(solution)
    answers = [c for c in release.cells if c.cell_type == "code" and is_solution_cell(c)]
    assert answers and all("raise NotImplementedError()" in c.source for c in answers), "every answer cell a stub"


def check_points_from_metadata(course: Course, aid: str) -> None:
    """Each test cell's nbgrader points equal the sum of the points of its checks, public and hidden."""
    expected = cell_points(nbformat.read(course.get(aid).solution_notebook, as_version=4))
    assert declared_check_points(course, aid) == expected


def assert_reference_full_marks(results: dict, course: Course, aid: str, cells=None) -> None:
    """Every check (of ``cells``, default all) passes on the reference, and the cells' totals are the metadata's."""
    problems = {n: f"{r.status}: {r.message[:300]}" for n, r in results.items() if not r.passed}
    assert not problems, problems
    assert {r.visibility for r in results.values()} == {"public", "hidden"}
    totals: dict[str, float] = {}
    for r in results.values():
        totals[r.cell] = totals.get(r.cell, 0.0) + r.points
    expected = cell_points(nbformat.read(course.get(aid).solution_notebook, as_version=4))
    assert totals == {c: p for c, p in expected.items() if cells is None or c in cells}


def assert_release_scores_zero(report, course: Course, aid: str) -> None:
    """The untouched release, graded by the engine: zero on every check, as the student's (not the grader's)."""
    assert not report.grader_problems, report.grader_problems
    assert report.results and report.score == 0, {r.name: r.points for r in report.results if r.points}
    errors = {r.name: r.message[:200] for r in report.results if r.status == "error"}
    assert not errors, errors
    release = nbformat.read(course.get(aid).release_notebook, as_version=4)
    assert report.max_score == sum(cell_points(release).values())
