"""Helpers for the nbgrader tests: a temporary nbgrader course, submissions, sandbox-visible weights."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.course import REPO_ROOT, Course

NBGRADER = Path(sys.executable).with_name("nbgrader")
TIMESTAMP = "2026-11-23 10:00:00.000000 UTC"
#: Lines that must never appear in what nbgrader prints with the course's configuration.
NOISE = ("SAWarning", "TCP without encryption")


def nbgrader_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = str(NBGRADER.parent) + os.pathsep + env.get("PATH", "")  # nbgrader runs alembic by name
    return env


def make_course(root: Path, ids, source: Course | None = None) -> Path:
    """An nbgrader course folder at ``root`` holding the given assignments and the repository's config."""
    source = source or Course()
    for aid in ids:
        for sub in ("solutions", "assignments"):
            shutil.copytree(source.root / sub / aid, root / sub / aid)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    return root


def submit(root: Path, aid: str, student: str, nb, name: str | None = None) -> Path:
    """Put ``nb`` (a notebook, or bytes) where ``nbgrader collect`` would: submitted/<student>/<aid>/."""
    path = root / "submitted" / student / aid / f"{name or aid}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(nb, bytes):
        path.write_bytes(nb)
    else:
        nbformat.write(nb, path)
    (path.parent / "timestamp.txt").write_text(TIMESTAMP)
    return path


def run_nbgrader(root: Path, *args: str, timeout: float = 900) -> str:
    """Run the nbgrader command line in ``root``; returns its output (stdout and stderr), asserting success."""
    proc = subprocess.run([str(NBGRADER), *args], cwd=root, env=nbgrader_env(), capture_output=True, text=True,
                          timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{out[-4000:]}"
    return out


@pytest.fixture(scope="module")
def sandbox_visible_torch_home():
    """Stand-in AlexNet weights where the grading sandbox can see them (the git-ignored torch_home/), as TORCH_HOME.

    The sandbox has a private /tmp, so weights under pytest's temporary folder would be invisible there.
    """
    from data_scripts.alexnet_standin import install_standin

    # One folder per test process: two runs at once in one checkout never share or delete each other's weights.
    home = Course().root / "torch_home" / f"stand-in-for-nbgrader-tests-{os.getpid()}"
    install_standin(torch_home=home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        try:
            yield home
        finally:
            shutil.rmtree(home, ignore_errors=True)
