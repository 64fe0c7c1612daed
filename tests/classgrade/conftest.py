"""A class of submissions to the engine tests' fixture course (tests/engine/fixture_course)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from autograder.authoring.notebook_builder import fill_answers
from tests.engine.conftest import CORRECT, FIXTURE

RELEASE = FIXTURE / "assignments" / "00_fixture" / "00_fixture.ipynb"
COURSE_ENV = {"CNN_COURSE_ROOT": str(FIXTURE), "CNN_COURSE_CHECKS": str(FIXTURE / "checks")}

WRONG_DOUBLE = {"double": "def double(x):\n    return x * 3"}
FLOAT_DOUBLE = {"double": "def double(x):\n    return x * 2.0"}
HANG = "while True:\n    pass"


def write_submission(folder: Path, student: str, answers: dict | None = None, *, raw: bytes | None = None,
                     extra_cells=(), nbgrader: bool = False) -> Path:
    """``folder/<student>/00_fixture.ipynb`` (``folder/<student>/00_fixture/00_fixture.ipynb`` for nbgrader)."""
    target = folder / student / ("00_fixture" if nbgrader else "") / "00_fixture.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        target.write_bytes(raw)
        return target
    nb = fill_answers(nbformat.read(RELEASE, as_version=4), {**CORRECT, **(answers or {})})
    for position, source in extra_cells:
        nb.cells.insert(position if position >= 0 else len(nb.cells), new_code_cell(source))
    nbformat.write(nb, target)
    return target


@pytest.fixture
def course_env(monkeypatch):
    """Point the grader (and every process it starts) at the fixture course."""
    for key, value in COURSE_ENV.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **COURSE_ENV}
