"""The engine end to end on the fixture course: scores, partial credit, failures, limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from .conftest import FIXTURE, by_name

pytestmark = pytest.mark.slow


def test_correct_submission_gets_every_autograded_point(make_submission, grade):
    report = grade(make_submission())
    assert report.max_score == 7
    assert report.score == report.max_score, report.summary()
    assert all(c.status == "ok" for c in report.cells)
    # The written answer is listed, worth nothing until a person grades it.
    assert [m[0] for m in report.manual] == ["q_double"]


def test_blank_release_scores_zero_and_the_cli_exits_0(fixture_course, tmp_path):
    release = fixture_course.get("00_fixture").release_notebook
    out = tmp_path / "results.json"
    env = {**os.environ, "CNN_COURSE_ROOT": str(FIXTURE), "CNN_COURSE_CHECKS": str(FIXTURE / "checks")}
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(release), "--results", str(out),
                           "--junit", str(tmp_path / "junit.xml"), "--feedback", str(tmp_path / "feedback.md"),
                           "--threads", "1"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    assert results["score"] == 0 and results["max_score"] == 7
    statuses = {t["name"]: t for t in results["tests"]}
    assert "NotImplementedError" in statuses["test_double: test_double_matches_reference"]["output"]
    assert statuses["test_double: test_double_matches_reference"]["visibility"] == "after_published"
    assert statuses["test_double: test_double_small_example"]["visibility"] == "visible"
    assert "<testsuite" in (tmp_path / "junit.xml").read_text()
    assert "Score: 0 / 7" in (tmp_path / "feedback.md").read_text()


def test_partial_credit_per_check(make_submission, grade):
    # Right for floats, wrong dtype for integers: keeps the checks that only look at floats.
    report = grade(make_submission({"double": "def double(x):\n    return x * 2.0"}))
    results = by_name(report)
    assert results["test_double_matches_reference"].passed
    assert not results["test_double_keeps_int_dtype"].passed
    assert "dtype" in results["test_double_keeps_int_dtype"].message
    assert report.score == 6


def test_exception_in_a_function_fails_only_its_checks(make_submission, grade):
    report = grade(make_submission({"double": "def double(x):\n    raise ValueError('oops')"}))
    results = by_name(report)
    assert not results["test_double_small_example"].passed
    assert "ValueError: oops" in results["test_double_small_example"].message
    assert results["test_smooth_matches_reference_without_conv"].passed
    assert report.score == 3


def test_forbidden_api_fails_the_check_even_if_the_error_is_caught(make_submission, grade):
    cheat = ("import torch.nn.functional as F\n"
             "def smooth(x, k):\n"
             "    try:\n"
             "        return F.conv1d(x[None, None], k[None, None])[0, 0]\n"
             "    except Exception:\n"
             "        return torch.stack([(x[i:i + len(k)] * k).sum() for i in range(len(x) - len(k) + 1)])")
    report = grade(make_submission({"smooth": cheat}))
    result = by_name(report)["test_smooth_matches_reference_without_conv"]
    assert not result.passed
    assert "does not allow" in result.message


def test_a_cell_that_hangs_and_ignores_signals_is_killed_and_grading_goes_on(make_submission, grade):
    hang = new_code_cell("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                         "signal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass")
    report = grade(make_submission(extra_cells=[(len(nbformat.read(FIXTURE / 'assignments/00_fixture/00_fixture.ipynb', 4).cells), hang)]))
    assert [c.status for c in report.cells if c.status != "ok"] == ["timeout"]
    assert report.score == report.max_score, report.summary()


def test_a_call_that_hangs_times_out_and_the_next_checks_still_run(make_submission, grade):
    report = grade(make_submission({"count": "def count(n):\n    if n == 5:\n        while True:\n            pass\n    return n"}))
    results = by_name(report)
    assert not results["test_count_answers_quickly"].passed
    assert "within" in results["test_count_answers_quickly"].message
    assert results["test_count_returns_its_argument"].passed
    assert report.score == 7  # the hanging check is worth 0 points in the fixture


def test_memory_hog_is_stopped_by_the_cap(make_submission, grade):
    hog = new_code_cell("blocks = []\nfor _ in range(64):\n    blocks.append(bytearray(256 * 2**20))")
    report = grade(make_submission(extra_cells=[(2, hog)]))
    added = [c for c in report.cells if c.status != "ok"]
    assert added and added[0].status in ("crashed", "error"), added
    assert report.score == report.max_score, report.summary()


def test_os_exit_in_a_cell_costs_only_that_cell(make_submission, grade):
    report = grade(make_submission(extra_cells=[(2, new_code_cell("import os\nos._exit(0)"))]))
    added = [c for c in report.cells if c.status != "ok"]
    assert added[0].status == "crashed"
    assert "exit" in added[0].message
    assert report.score == report.max_score


def test_malformed_notebooks_score_zero_with_a_clear_message(tmp_path, grade):
    cases = {"not_json": b"{this is not json", "truncated": b'{"cells": [{"cell_type": "code", "sou',
             "binary": bytes(range(256)) * 4, "empty": b""}
    for name, content in cases.items():
        path = tmp_path / name / "00_fixture.ipynb"
        path.parent.mkdir()
        path.write_bytes(content)
        report = grade(path)
        assert report.score == 0 and report.max_score == 7, name
        assert report.errors and str(path) in report.errors[0], (name, report.errors)
        assert all("could not be graded" in r.message for r in report.results)


def test_grading_twice_gives_identical_scores(make_submission, grade):
    path = make_submission({"double": "def double(x):\n    return x * 2.0"})
    first, second = grade(path), grade(path)
    assert [(r.name, r.points) for r in first.results] == [(r.name, r.points) for r in second.results]


def test_monkeypatching_comparisons_inside_the_submission_changes_nothing(make_submission, grade):
    attack = ("import torch, numpy\n"
              "torch.allclose = lambda *a, **k: True\n"
              "torch.testing.assert_close = lambda *a, **k: None\n"
              "torch.Tensor.__eq__ = lambda self, other: True\n"
              "numpy.allclose = lambda *a, **k: True\n"
              "def double(x):\n    return x * 3")
    report = grade(make_submission({"double": attack}))
    results = by_name(report)
    assert not results["test_double_matches_reference"].passed
    assert not results["test_double_small_example"].passed
    # count is still right; smooth (a no-conv exercise) fails too: rebinding attributes of torch is
    # tampering the grader's static check refuses in a notebook with forbidden-API calls.
    assert results["test_count_returns_its_argument"].passed
    assert not results["test_smooth_matches_reference_without_conv"].passed
    assert "tampers" in results["test_smooth_matches_reference_without_conv"].message
    assert report.score == 1


def test_an_object_with_always_true_eq_is_not_a_tensor(make_submission, grade):
    attack = ("class Liar:\n    def __eq__(self, other):\n        return True\n"
              "    shape = (2,)\n"
              "def double(x):\n    return Liar()")
    report = grade(make_submission({"double": attack}))
    result = by_name(report)["test_double_small_example"]
    assert not result.passed and "expected a torch.Tensor" in result.message
