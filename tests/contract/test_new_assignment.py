"""``python -m autograder new-assignment NN_name`` in a temporary course: it refuses bad or taken names, and
the assignment it makes passes the course's contract as soon as its reference is filled in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.cli import main
from autograder.course import Course
from autograder.exit_codes import EXIT_USAGE
from autograder.grading.from_source import check_code
from autograder.grading.grade_notebook import grade_notebook
from autograder.integrations.scaffold import FUNCTION, fill_reference, solution_notebook
from tests.contract.course_contract import (
    assert_reference_full_marks,
    assert_release_scores_zero,
    check_layout,
    check_points_from_metadata,
)

FIXTURE = Path(__file__).resolve().parents[1] / "engine" / "fixture_course"
REPO = Path(__file__).resolve().parents[2]
AID = "07_rectifier"


def minimal_course(root: Path) -> Course:
    """A course folder with one assignment (the engine's fixture), laid out as the repository is."""
    for folder in ("solutions", "assignments"):
        shutil.copytree(FIXTURE / folder, root / folder)
    shutil.copytree(FIXTURE / "checks", root / "autograder" / "checks")
    return Course.at(root)


def test_the_notebook_is_built_for_its_assignment():
    nb = solution_notebook(AID)
    assert nb.metadata["cnn_course"]["assignment"] == AID
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    assert ids[:6] == [None, "setup", None, FUNCTION, f"test_{FUNCTION}", None] and ids[6].startswith("q_")
    assert "from autograder.incell import Checker" in nb.cells[1].source
    assert "Args:" in nb.cells[3].source and "Returns:" in nb.cells[3].source


@pytest.mark.parametrize("name,why", [("7_rectifier", "not an assignment name"), ("07-Rectifier", "not an assignment"),
                                      ("00_fixture", "exists already"), ("00_another", "number 00 is taken")])
def test_refuses_a_malformed_or_taken_name(tmp_path, capsys, name, why):
    course = minimal_course(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["new-assignment", name, "--course", str(course.root)]) == EXIT_USAGE
    assert why in capsys.readouterr().err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, "nothing is written"


@pytest.mark.slow
def test_a_new_assignment_passes_the_contract_once_its_reference_is_filled(tmp_path):
    course = minimal_course(tmp_path / "course")
    done = subprocess.run([sys.executable, "-m", "autograder", "new-assignment", AID, "--course", str(course.root)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "docs/AUTHORING.md" in done.stdout
    a = course.get(AID)
    for path in (a.solution_notebook, a.release_notebook, *(a.checks_dir / f for f in
                 ("__init__.py", "common.py", "public.py", "hidden.py")),
                 course.root / "tests" / "assignments" / f"test_{AID}.py"):
        assert path.is_file(), path
    assert "from .common import" in a.hidden_checks.read_text()
    check_layout(course, AID)
    check_points_from_metadata(course, AID)
    assert not all(r.passed for r in check_code(AID, {}, course=course).values()), "passes before the reference"

    fill_reference(a.solution_notebook)
    assert_reference_full_marks(check_code(AID, {}, course=course), course, AID)
    assert_release_scores_zero(grade_notebook(a.release_notebook, course=course, threads=1), course, AID)
    solution = grade_notebook(a.solution_notebook, course=course, threads=1)
    assert not solution.grader_problems and solution.score == solution.max_score == 2, solution.summary()
    nbformat.validate(nbformat.read(a.release_notebook, as_version=4))

    # The test file it wrote runs with the shared helper and passes (its wrong variant loses points).
    env = {**os.environ, "CNN_COURSE_ROOT": str(course.root), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("CNN_COURSE_CHECKS", None)
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "--rootdir", str(REPO),
                            "-c", str(REPO / "pyproject.toml"), str(course.root / "tests" / "assignments")],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert tests.returncode == 0 and "2 passed" in tests.stdout, tests.stdout[-3000:] + tests.stderr[-2000:]
