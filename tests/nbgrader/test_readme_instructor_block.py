"""The README's nbgrader block, run verbatim in a temporary copy of the repository, as a new instructor would.

`make release` records the assignments in the gradebook, so `nbgrader autograde` finds them; the
feedback and the export come out; nothing prints SQLAlchemy's SAWarning or ipykernel's TCP warning.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from autograder.course import Course
from tests.nbgrader.conftest import NOISE

pytestmark = pytest.mark.slow

#: Not copied: the environment (linked instead), data, caches and the instructor's working folders.
IGNORE = shutil.ignore_patterns(".git", ".venv", "data", "torch_home", ".autograder_cache", "submitted", "autograded",
                                "feedback", "gradebook.db*", "demo_out", "graded", "__pycache__", ".pytest_cache",
                                ".ruff_cache", ".hypothesis", "*.egg-info", "grades.csv", "results.json", "junit.xml")


def readme_block(readme: str) -> str:
    """The first ```bash block of the README's "With nbgrader" section."""
    section = readme.split("### With nbgrader", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "the README's nbgrader section has no bash block"
    return match.group(1)


def copy_repository(dest: Path) -> Path:
    """A copy of the repository whose .venv stands for the project's environment (links, a fresh stamp)."""
    repo = Course().root
    shutil.copytree(repo, dest, ignore=IGNORE, symlinks=True)
    venv_src = Path(sys.prefix)
    venv = dest / ".venv"
    venv.mkdir()
    for item in venv_src.iterdir():
        if item.name != ".installed-stamp":
            (venv / item.name).symlink_to(item.resolve() if item.is_symlink() else item)
    (venv / ".installed-stamp").touch()  # newer than the copied pyproject.toml: make installs nothing
    (dest / "data").symlink_to((repo / "data").resolve())
    return dest


@pytest.fixture
def clone_dir():
    """A folder for the copy that the sandbox's user can traverse, as a clone's folder is (pytest's are 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="readme-block-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_readme_nbgrader_block_runs_verbatim(clone_dir, fashion_mnist_root):
    repo = Course().root
    block = readme_block((repo / "README.md").read_text())
    for step in ("make release", "nbgrader autograde 01_apply_kernel", "nbgrader generate_feedback 01_apply_kernel",
                 "nbgrader export"):
        assert step in block, step
    untouched = {p: p.stat().st_mtime_ns for p in (repo / "gradebook.db", repo / "submitted" / "alice") if p.exists()}
    root = copy_repository(clone_dir / "clone")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNN_COURSE_ROOT", "CNN_COURSE_CHECKS",
                                                                        "CNN_GRADEBOOK_URL", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(Path(sys.prefix))))  # the block activates it itself
    # The shared environment's editable install points at this repository; a clone's own would point at the
    # clone: every process (nbgrader, make, the sandboxed worker) imports the copy's autograder package.
    env["PYTHONPATH"] = str(root)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=root, env=env, capture_output=True, text=True,
                          timeout=1200)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    noise = [line for line in out.splitlines() if any(n in line for n in NOISE)]
    assert not noise, noise
    assert "No assignment with ID" not in out, out[-3000:]

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        assert sorted(a.name for a in gb.assignments) == Course.at(root).assignment_ids()
        sub = gb.find_submission("01_apply_kernel", "alice")
        assert sub.max_code_score > 0 and sub.code_score == 0  # the untouched release earns nothing
        grades = [g for nb in sub.notebooks for g in nb.grades if g.cell.cell_type == "code"]
        assert grades and all(g.auto_score == 0 and not g.needs_manual_grade for g in grades)
    feedback = root / "feedback" / "alice" / "01_apply_kernel" / "01_apply_kernel.html"
    assert feedback.exists()
    html = feedback.read_text()
    assert "GRADER PROBLEM" not in html, "the sandbox could not grade in the copy"
    assert "graded in the sandbox" in html
    with open(root / "grades.csv") as f:
        rows = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(f)}
    assert float(rows[("01_apply_kernel", "alice")]["score"]) == 0
    assert float(rows[("01_apply_kernel", "alice")]["max_score"]) > 0
    # The block ran in the copy: the repository's own gradebook and submissions are untouched.
    assert {p: p.stat().st_mtime_ns for p in (repo / "gradebook.db", repo / "submitted" / "alice")
            if p.exists()} == untouched
