"""Regenerate release notebooks from the solutions with ``nbgrader generate_assignment``.

The releases in ``assignments/`` are committed so students can fetch them; a test
regenerates them into a temporary folder and fails when they differ, so the two never drift.
``make release`` (:func:`regenerate`) also records every assignment in the course's gradebook
(``gradebook.db``, or ``CNN_GRADEBOOK_URL``), as ``nbgrader autograde`` needs; the check into a
temporary folder (:func:`generate_to_temp`) touches no gradebook.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from autograder.course import Course

NBGRADER = Path(sys.executable).with_name("nbgrader")


def nbgrader_generate(course_root: Path, assignment_id: str, release_dir: str = "assignments", *,
                      db: bool = False) -> None:
    """Run nbgrader's generate_assignment for one assignment.

    ``db``: also record the assignment (its notebooks, test cells and points) in the gradebook of
    ``course_root``'s ``nbgrader_config.py``; otherwise no gradebook is touched.
    """
    cmd = [str(NBGRADER) if NBGRADER.exists() else "nbgrader", "generate_assignment", assignment_id,
           "--force", *([] if db else ["--no-db"]), "--log-level=WARN",
           f"--CourseDirectory.root={course_root}",
           "--CourseDirectory.source_directory=solutions",
           f"--CourseDirectory.release_directory={release_dir}"]
    env = dict(os.environ)
    env["PATH"] = str(NBGRADER.parent) + os.pathsep + env.get("PATH", "")  # nbgrader runs alembic by name
    proc = subprocess.run(cmd, cwd=course_root, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment {assignment_id} failed:\n{proc.stdout}\n{proc.stderr}")


def solution_ids(course: Course) -> list[str]:
    base = course.root / "solutions"
    return sorted(p.name for p in base.iterdir() if p.is_dir() and (p / f"{p.name}.ipynb").exists())


def regenerate(course: Course | None = None, ids: list[str] | None = None) -> list[Path]:
    """Regenerate ``assignments/<id>/`` for every (or the given) assignment and record it in the gradebook."""
    course = course or Course()
    done = []
    for aid in ids or solution_ids(course):
        nbgrader_generate(course.root, aid, db=True)
        done.append(course.root / "assignments" / aid / f"{aid}.ipynb")
    return done


def generate_to_temp(course: Course, assignment_id: str) -> Path:
    """Generate one release into a temporary copy of the course; returns the notebook's path."""
    tmp = Path(tempfile.mkdtemp(prefix="release-check-"))
    shutil.copytree(course.root / "solutions" / assignment_id, tmp / "solutions" / assignment_id)
    nbgrader_generate(tmp, assignment_id)
    return tmp / "assignments" / assignment_id / f"{assignment_id}.ipynb"
