"""The engine's tests grade a tiny fixture course (tests/engine/fixture_course), not the real one."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from autograder.authoring.notebook_builder import fill_answers
from autograder.course import Course

FIXTURE = Path(__file__).with_name("fixture_course")

CORRECT = {
    "double": "def double(x):\n    return x + x",
    "smooth": "def smooth(x, k):\n    n = len(x) - len(k) + 1\n    return torch.stack([(x[i:i + len(k)] * k).sum() for i in range(n)])",
    "count": "def count(n):\n    return n",
}


@pytest.fixture(scope="session")
def fixture_course() -> Course:
    return Course.at(FIXTURE, FIXTURE / "checks")


@pytest.fixture(scope="session")
def release_nb(fixture_course):
    return nbformat.read(fixture_course.get("00_fixture").release_notebook, as_version=4)


@pytest.fixture
def make_submission(tmp_path, release_nb):
    """Write a submission notebook with the given answer cells (others: the correct answers)."""

    def make(answers: dict[str, str] | None = None, name: str = "00_fixture.ipynb", extra_cells=()):
        nb = fill_answers(release_nb, {**CORRECT, **(answers or {})})
        for position, cell in extra_cells:
            nb.cells.insert(position, cell)
        path = tmp_path / name
        nbformat.write(nb, path)
        return path

    return make


@pytest.fixture
def grade(fixture_course):
    from autograder.grading.grade_notebook import grade_notebook

    def run(path, **kw):
        return grade_notebook(path, course=fixture_course, threads=1, **kw)

    return run


def by_name(report):
    return {r.name: r for r in report.results}
