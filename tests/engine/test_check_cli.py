"""The student's self-check: public checks only, readable expected-against-got output."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import FIXTURE

pytestmark = pytest.mark.slow


def run_check(path):
    env = {**os.environ, "CNN_COURSE_ROOT": str(FIXTURE), "CNN_COURSE_CHECKS": str(FIXTURE / "checks")}
    return subprocess.run([sys.executable, "-m", "autograder", "check", str(path), "--threads", "1"],
                          capture_output=True, text=True, env=env)


def test_self_check_runs_only_public_checks_and_explains_failures(make_submission):
    proc = run_check(make_submission({"double": "def double(x):\n    return x * 3"}))
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert "test_double_small_example" in out and "expected" in out and "got" in out
    assert "Hint: Multiply by two." in out
    assert "matches_reference" not in out  # hidden checks are not run, not even named
    assert "1 of 2 public checks passed" in out


def test_self_check_passes_a_correct_notebook(make_submission):
    proc = run_check(make_submission())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 of 2 public checks passed" in proc.stdout
