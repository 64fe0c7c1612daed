"""nbgrader's gradebook survives what happens on a real grading day.

Two instructors (or two terminals) autograde at the same time; a grader is killed halfway
(a closed laptop, an out-of-memory kill).  The SQLite gradebook must stay whole, hold every
grade that was finished, and a rerun must complete.  nbgrader is driven through its own
command line, as instructors use it.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from autograder.authoring.notebook_builder import fill_answers, solution_sources
from autograder.course import Course

pytestmark = pytest.mark.slow
AID = "02_conv_arithmetic"
NBGRADER = Path(sys.executable).with_name("nbgrader")


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = str(NBGRADER.parent) + os.pathsep + env.get("PATH", "")  # nbgrader runs alembic by name
    return env


def _nbgrader(root: Path, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([str(NBGRADER), *args, "--Execute.timeout=300"], cwd=root, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **kw)


def _finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.fixture
def course(tmp_path) -> Path:
    """A course folder holding assignment 02, generated (so it is in the gradebook) and ready to collect."""
    real = Course()
    root = tmp_path / "course"
    for sub in ("solutions", "assignments"):
        shutil.copytree(real.root / sub / AID, root / sub / AID)
    shutil.copy(real.root / "nbgrader_config.py", root / "nbgrader_config.py")
    _finish(_nbgrader(root, "generate_assignment", AID, "--force"))
    return root


def _submit(root: Path, student: str, correct: bool) -> None:
    real = Course().get(AID)
    release = nbformat.read(real.release_notebook, as_version=4)
    nb = fill_answers(release, solution_sources(nbformat.read(real.solution_notebook, as_version=4))) \
        if correct else release
    path = root / "submitted" / student / AID / f"{AID}.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    (path.parent / "timestamp.txt").write_text("2026-11-23 10:00:00.000000 UTC")


def _integrity(root: Path) -> str:
    with sqlite3.connect(root / "gradebook.db") as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def _autograded(root: Path, student: str) -> tuple[float, float]:
    """(score, max score) of the student's autograded test cells, read back through nbgrader's API."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        sub = gb.find_submission(AID, student)
        grades = [g for nb in sub.notebooks for g in nb.grades if g.cell.cell_type == "code"]
        return sum(float(g.auto_score or 0) for g in grades), sum(float(g.max_score) for g in grades)


def test_two_concurrent_autograde_runs_keep_the_gradebook_whole(course):
    _submit(course, "ann", correct=True)
    _submit(course, "ben", correct=False)
    runs = [_nbgrader(course, "autograde", AID, "--student", student) for student in ("ann", "ben")]
    for run in runs:
        _finish(run)
    assert _integrity(course) == "ok"
    score, top = _autograded(course, "ann")
    assert top > 0 and score == top
    assert _autograded(course, "ben") == (0, top)


def test_a_grader_killed_mid_run_leaves_a_consistent_gradebook_and_the_rerun_completes(course):
    _submit(course, "kim", correct=True)
    run = _nbgrader(course, "autograde", AID, "--student", "kim")
    # Kill it once it has recorded the submission and is executing the notebook (the timestamp is
    # copied into autograded/ first; the notebook is written there only when its execution ends).
    deadline = time.monotonic() + 300
    while not (course / "autograded" / "kim" / AID / "timestamp.txt").exists() and run.poll() is None:
        assert time.monotonic() < deadline, "nbgrader autograde never started"
        time.sleep(0.05)
    time.sleep(3)
    assert run.poll() is None, "the run finished before it could be killed; the test lost its race"
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert _integrity(course) == "ok"
    # nbgrader skips a submission whose autograded folder exists; a half-graded one needs --force.
    _finish(_nbgrader(course, "autograde", AID, "--student", "kim", "--force"))
    assert _integrity(course) == "ok"
    score, top = _autograded(course, "kim")
    assert top > 0 and score == top
