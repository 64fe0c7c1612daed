"""Shared helpers of the export tests: the exports themselves and the course's secrets, found independently."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from autograder.course import REPO_ROOT, Course

#: Environment variables that would point the grader somewhere other than the folder under test.
COURSE_VARIABLES = ("CNN_COURSE_ROOT", "CNN_COURSE_CHECKS", "CNN_AUTOGRADER_CACHE", "PYTHONPATH")


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in COURSE_VARIABLES}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path = REPO_ROOT, env: dict | None = None, timeout: float = 600):
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, env=env or clean_env(),
                          capture_output=True, text=True, timeout=timeout)


def _sources(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in nb["cells"]]


def _norm(line: str) -> str:
    return " ".join(line.split())


def _telling(line: str) -> bool:
    return len(re.findall(r"\w+", line)) >= 4


def course_secrets(root: Path = REPO_ROOT) -> dict[str, str]:
    """Lines students must never get: solution blocks and hidden-test blocks the releases lack, hidden.py.

    Written here, apart from autograder/integrations/export/leaks.py, so that a bug there cannot hide a leak.
    Lines with fewer than four names or numbers (``return out``, ``self.remove()``) say nothing and are left out.
    """
    public = set()
    for nb in root.glob("assignments/*/*.ipynb"):
        for source in _sources(nb):
            public.update(_norm(line) for line in source.splitlines())
    for path in root.glob("autograder/checks/*/*.py"):
        if path.name != "hidden.py":
            public.update(_norm(line) for line in path.read_text().splitlines())
    corpus = "\n".join(sorted(public))   # a line students see inside a longer one is no secret either
    secrets = {}

    def telling(line: str) -> bool:
        return _telling(line) and _norm(line) not in public and _norm(line) not in corpus

    for nb in root.glob("solutions/*/*.ipynb"):
        for source in _sources(nb):
            inside = False
            for line in source.splitlines():
                if line.strip().startswith(("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS")):
                    inside = True
                elif line.strip().startswith(("### END SOLUTION", "### END HIDDEN TESTS")):
                    inside = False
                elif inside and telling(line):
                    secrets[_norm(line)] = str(nb.relative_to(root))
    for path in root.glob("autograder/checks/*/hidden.py"):
        for line in path.read_text().splitlines():
            if telling(line):
                secrets[_norm(line)] = str(path.relative_to(root))
    return secrets


def reference_notebook(aid: str, course: Course | None = None) -> nbformat.NotebookNode:
    """The release with every answer cell filled from the solution notebook (a full-marks submission)."""
    from autograder.authoring.notebook_builder import fill_answers, solution_sources

    course = course or Course.at(REPO_ROOT)
    a = course.get(aid)
    release = nbformat.read(a.release_notebook, as_version=4)
    return fill_answers(release, solution_sources(nbformat.read(a.solution_notebook, as_version=4)))


@pytest.fixture(scope="session")
def open_tmp():
    """Make folders that the grader's sandbox user can traverse (pytest's own are 0700, as a home folder is).

    The exported package is what the sandboxed worker imports, so it must be readable to that user,
    as it is in a student's checkout or in Gradescope's /autograder/source.
    """
    made = []

    def make(prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"cnn-export-{prefix}-"))
        path.chmod(0o755)
        made.append(path)
        return path

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def student_repo(open_tmp) -> Path:
    """``python -m autograder export student DIR`` of the whole course, run as an instructor would."""
    target = open_tmp("student") / "student-repo"
    proc = run_cli("export", "student", str(target))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "student repository written to" in proc.stdout
    return target
