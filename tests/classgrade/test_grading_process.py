"""grade-class's jobs are long-lived grading processes: reused, restarted when one dies, the reference loaded once."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from autograder.course import Course
from autograder.grading import grade_class as gc
from tests.engine.conftest import FIXTURE

HANDLER = "tests.classgrade.handlers:act"


def task(student: str, timeout: float = 60) -> dict:
    return {"student": student, "assignment": "00_fixture", "path": f"/nowhere/{student}.ipynb", "sha256": "0" * 64,
            "threads": 1, "timeout": timeout, "problem": None, "env": {}}


def test_one_process_grades_many_and_a_dead_or_hung_one_costs_only_its_submission():
    gp = gc.GradingProcess(HANDLER)
    try:
        first, second = gp.grade(task("ann")), gp.grade(task("ben"))
        assert first["extra_data"]["pid"] == second["extra_data"]["pid"]          # the same process, reused
        assert [first["extra_data"]["graded_here"], second["extra_data"]["graded_here"]] == [1, 2]

        raised = gp.grade(task("raise"))                                           # a grader bug: the process lives
        assert raised["score"] == 0 and "ValueError: a bug in the grader" in raised["output"]
        assert raised["extra_data"]["grading_error_kind"] == "grader"
        assert gp.grade(task("cat"))["extra_data"]["graded_here"] == 3

        for crash, why in (("exit", "exited with code 7"), ("kill", "killed by SIGKILL")):
            died = gp.grade(task(crash))
            assert why in died["output"] and died["extra_data"]["grading_error_kind"] == "grader"
            again = gp.grade(task("dan"))                                          # a fresh process takes over
            assert again["extra_data"]["graded_here"] == 1 and again["extra_data"]["pid"] != first["extra_data"]["pid"]

        hung = gp.grade(task("hang", timeout=2))
        assert "did not finish within 2 s" in hung["output"]
        assert gp.grade(task("eve"))["extra_data"]["graded_here"] == 1
        assert gp.starts == 4
    finally:
        gp.close()
    assert gp.proc is None


def test_jobs_keep_their_process_across_submissions(monkeypatch):
    monkeypatch.setattr(gc, "SERVE_HANDLER", HANDLER)
    jobs = [gc.Job(s, "00_fixture", Path(f"/nowhere/{s}.ipynb"), "0" * 64) for s in
            ("a", "b", "c", "exit", "d", "e", "f")]
    got = {job.student: results for job, results in gc._run_local([(j, task(j.student)) for j in jobs], 2)}
    assert set(got) == {j.student for j in jobs}
    assert got["exit"]["extra_data"]["class_status"] == "error"
    pids = {r["extra_data"]["pid"] for r in got.values() if "pid" in r["extra_data"]}
    assert len(pids) <= 3                                           # two jobs, one restart after the crash
    assert sum(r["extra_data"]["graded_here"] == 1 for r in got.values() if "pid" in r["extra_data"]) == len(pids)
    assert not gc._PROCESSES                                        # all closed at the end


@pytest.fixture
def course(tmp_path) -> Course:
    root = tmp_path / "fixture_course"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns(".autograder_cache", "__pycache__"))
    return Course.at(root, root / "checks")


def test_the_reference_is_loaded_once_and_again_when_edited(course, monkeypatch, tmp_path):
    from autograder.grading import reference

    monkeypatch.setenv("CNN_AUTOGRADER_CACHE", str(tmp_path / "cache"))
    assignment = course.get("00_fixture")
    before = reference.LOADS["00_fixture"]
    ref = reference.load_reference(assignment)
    assert reference.load_reference(course.get("00_fixture")) is ref
    assert reference.LOADS["00_fixture"] == before + 1

    nb = nbformat.read(assignment.solution_notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("EDITED = 1"))
    nbformat.write(nb, assignment.solution_notebook)
    edited = reference.load_reference(assignment)
    assert edited is not ref and reference.LOADS["00_fixture"] == before + 2
    assert edited.executor.namespace["EDITED"] == 1
    assert reference.load_reference(assignment) is edited
