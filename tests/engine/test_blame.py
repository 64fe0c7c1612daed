"""Blame: a wrong answer or the student's own exception is the student's; a check that breaks is the grader's.

A tiny check package, written here into a copy of the fixture course, has one check of each kind;
the fixture's submission is graded end to end (grade_notebook, ``grade``'s exit code, grade-class)
and every check must land on its side: ``failed`` (the student's, points lost) or ``error`` (the
grader's: listed in ``grader_problems``, ``grade`` exits 3, grade-class marks the submission for the
instructor and keeps the student's other points, the feedback says the check itself failed).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import textwrap
from pathlib import Path

import pytest
from hypothesis.errors import FlakyFailure

from autograder.authoring.compare import CheckFailure
from autograder.course import Course
from autograder.exit_codes import EXIT_GRADER
from autograder.grading.reference import ReferenceFault
from autograder.grading.run_checks import blame
from autograder.records import GRADER_ERROR
from autograder.submission.namespace import GraderFault, StudentError, SubmissionTimeout
from tests.engine.conftest import FIXTURE, by_name

CHECKS_ROOT = Path(__file__).resolve().parents[2] / "autograder" / "checks"

#: The submission: double is wrong, smooth raises AssertionError itself, count is right.
ANSWERS = {
    "double": "def double(x):\n    return x * 3",
    "smooth": "def smooth(x, k):\n    assert len(k) < 0, 'my own assertion'\n    return x",
    "count": "def count(n):\n    if n == 7:\n        raise ValueError('seven is unlucky')\n    return n",
}

BLAME_CHECKS = '''
"""Checks of every kind of failure (tests/engine/test_blame.py)."""

import pytest
import torch

from autograder.authoring.api import CheckFailure, check, expect_equal, expect_tensor


@check(cell="test_count", points=1, kind="behaviour")
def test_count_passes(sub):
    expect_equal(sub.count(3), 3, what="count(3)")


@check(cell="test_double", points=1, kind="numerical")
def test_double_wrong_answer(sub, ref):  # (d) a CheckFailure: the student's
    x = torch.tensor([1.0, 2.0])
    expect_tensor(sub.double(x), ref.double(x), what="double([1., 2.])")


@check(cell="test_count", points=1, kind="error")
def test_count_student_exception(sub):  # (e) the student's code raised: the student's
    sub.count(7)


@check(cell="test_smooth", points=1, kind="numerical")
def test_smooth_student_assertion(sub):  # the student's own AssertionError, inside sub.call: the student's
    sub.smooth(torch.randn(5), torch.randn(2))


@check(cell="test_count", points=1, kind="behaviour")
def test_count_bare_assert_in_check(sub):  # (a) an AssertionError in the check: the grader's
    raise AssertionError("the check's own sanity test failed")


@check(cell="test_double", points=1, kind="numerical")
def test_double_missing_reference_name(sub, ref):  # (b) a typo in a reference name: the grader's
    x = torch.tensor([1.0])
    expect_tensor(sub.double(x), ref.doubel(x), what="double([1.])")


@check(cell="test_smooth", points=1, kind="numerical")
def test_smooth_reference_raises(sub, ref):  # (c) the reference raised: the grader's
    x, k = torch.randn(2), torch.randn(5)
    expected = ref.smooth(x, k)  # k longer than x: torch.stack([]) raises
    expect_tensor(sub.call("smooth", x, k), expected, what="smooth(x (2,), k (5,))")


@check(cell="test_count", points=1, kind="behaviour")
def test_count_name_error_in_check(sub):  # a NameError in the check's own code: the grader's
    expect_equal(sub.count(2), helper_that_does_not_exist(2))  # noqa: F821


@check(cell="test_count", points=1, kind="behaviour")
def test_count_pytest_fail_in_check(sub):
    pytest.fail("a check must fail students with CheckFailure, not pytest.fail")


@check(cell="test_count", points=1, kind="behaviour")
def test_count_reference_raising_as_expected(sub, ref):  # a check may expect the reference to raise
    from autograder.authoring.api import StudentError

    try:
        ref.smooth(torch.randn(2), torch.randn(5))
    except StudentError:
        expect_equal(sub.count(4), 4, what="count(4)")
    else:
        raise CheckFailure("unreachable: the reference raises here")
'''

HIDDEN = '''
"""Hidden checks that pass on the submission."""

import torch

from autograder.authoring.api import check, expect_equal


@check(cell="test_count", points=2, kind="behaviour")
def test_count_hidden_passes(sub):
    expect_equal(sub.count(5), 5, what="count(5)")


@check(cell="test_double", points=1, kind="shape")
def test_double_keeps_the_shape(sub):
    expect_equal(tuple(sub.double(torch.ones(2, 3)).shape), (2, 3), what="double(x (2, 3)).shape")
'''

STUDENT_SIDE = {"test_double_wrong_answer", "test_count_student_exception", "test_smooth_student_assertion"}
GRADER_SIDE = {"test_count_bare_assert_in_check", "test_double_missing_reference_name",
               "test_smooth_reference_raises", "test_count_name_error_in_check", "test_count_pytest_fail_in_check"}
PASSING = {"test_count_passes", "test_count_reference_raising_as_expected", "test_count_hidden_passes",
           "test_double_keeps_the_shape"}
EARNED = 1 + 1 + 2 + 1  # the passing checks' points


@pytest.fixture(scope="module")
def blame_course(tmp_path_factory) -> Course:
    root = tmp_path_factory.mktemp("blame") / "course"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns(".autograder_cache", "__pycache__"))
    package = root / "checks" / "a00_fixture"
    (package / "public.py").write_text(textwrap.dedent(BLAME_CHECKS).lstrip())
    (package / "hidden.py").write_text(textwrap.dedent(HIDDEN).lstrip())
    return Course.at(root, root / "checks")


@pytest.fixture(scope="module")
def submission(blame_course, tmp_path_factory) -> Path:
    import nbformat

    from autograder.authoring.notebook_builder import fill_answers

    release = nbformat.read(blame_course.get("00_fixture").release_notebook, as_version=4)
    path = tmp_path_factory.mktemp("submission") / "00_fixture.ipynb"
    nbformat.write(fill_answers(release, ANSWERS), path)
    return path


@pytest.fixture(scope="module")
def report(blame_course, submission):
    from autograder.grading.grade_notebook import grade_notebook

    return grade_notebook(submission, course=blame_course, threads=1)


@pytest.fixture
def course_env(blame_course, monkeypatch):
    monkeypatch.setenv("CNN_COURSE_ROOT", str(blame_course.root))
    monkeypatch.setenv("CNN_COURSE_CHECKS", str(blame_course.checks_root))


def test_each_failure_lands_on_the_right_side(report):
    results = by_name(report)
    assert set(results) == STUDENT_SIDE | GRADER_SIDE | PASSING, sorted(results)
    assert {n for n, r in results.items() if r.status == "failed"} == STUDENT_SIDE, report.summary()
    assert {n for n, r in results.items() if r.status == "error"} == GRADER_SIDE, report.summary()
    assert {n for n, r in results.items() if r.passed} == PASSING, report.summary()
    # The student's messages are about the student's code, the grader's say the check itself failed.
    assert "my own assertion" in results["test_smooth_student_assertion"].message
    assert "seven is unlucky" in results["test_count_student_exception"].message
    for name in GRADER_SIDE:
        assert results[name].message.startswith(GRADER_ERROR), results[name].message
        assert results[name].points == 0 and not results[name].hint
    assert "has no doubel()" in results["test_double_missing_reference_name"].message
    assert "Did you run the cell" not in results["test_double_missing_reference_name"].message
    assert "reference solution's smooth() raised RuntimeError" in results["test_smooth_reference_raises"].message
    assert "NameError" in results["test_count_name_error_in_check"].message
    # The instructor gets the traceback of the check.
    assert "helper_that_does_not_exist" in results["test_count_name_error_in_check"].detail


def test_grader_problems_list_the_broken_checks_and_the_other_points_stand(report):
    listed = [p for p in report.grader_problems if "itself failed" in p]
    assert len(listed) == len(GRADER_SIDE) == len(report.grader_problems), report.grader_problems
    for name in GRADER_SIDE:
        assert any(f"the check {name} itself failed" in p for p in listed), (name, listed)
    assert report.score == EARNED  # the passing checks' points, whatever broke elsewhere
    markdown = report.to_markdown()
    assert "⚠️ test\\_count\\_bare\\_assert\\_in\\_check" in markdown
    assert "❌ test\\_double\\_wrong\\_answer" in markdown
    assert "not in your work" in markdown
    assert "not your fault" in report.summary()


def test_grade_exits_3_and_still_writes_the_results(course_env, submission, tmp_path, capsys):
    from autograder import cli

    out, feedback = tmp_path / "results.json", tmp_path / "feedback.md"
    code = cli.main(["grade", str(submission), "--results", str(out), "--feedback", str(feedback), "--threads", "1"])
    assert code == EXIT_GRADER
    results = json.loads(out.read_text())
    assert results["score"] == EARNED
    assert len(results["extra_data"]["grader_problems"]) == len(GRADER_SIDE)
    tests = {t["name"].split(": ", 1)[1]: t for t in results["tests"]}
    assert tests["test_count_bare_assert_in_check"]["output"].startswith(GRADER_ERROR)
    assert "This check itself failed" in feedback.read_text()
    assert "some checks" in capsys.readouterr().err


@pytest.mark.slow
def test_grade_class_marks_the_submission_for_the_instructor(course_env, blame_course, submission, tmp_path):
    from autograder.grading.grade_class import CSV_NAME, grade_class

    folder = tmp_path / "submissions" / "zoe"
    folder.mkdir(parents=True)
    shutil.copy(submission, folder / submission.name)
    out = tmp_path / "graded"
    code = grade_class(folder.parent, out=out, course=blame_course, progress=False, assignment="00_fixture")
    assert code == EXIT_GRADER
    (row,) = csv.DictReader((out / CSV_NAME).open())
    assert row["status"] == "grader_problem" and row["score"] == f"{EARNED:g}", row
    results = json.loads((out / "zoe" / "00_fixture.json").read_text())
    assert results["extra_data"]["class_status"] == "grader_problem"
    assert len(results["extra_data"]["grader_problems"]) == len(GRADER_SIDE)


def test_nbgrader_zeroes_only_the_test_cells_whose_check_broke(report):
    """The plugin's GRADER PROBLEM path, per test cell: the other cells keep what the student earned."""
    import dataclasses

    import nbformat

    from autograder.integrations.nbgrader_autograde import fill_notebook

    # Only test_count's checks broke in this copy of the report (and grader_problems says so).
    results = [r for r in report.results if r.status != "error" or r.cell == "test_count"]
    broken = dataclasses.replace(report, results=results,
                                 grader_problems=[r.grader_problem for r in results if r.status == "error"])
    nb = nbformat.read(FIXTURE / "solutions" / "00_fixture" / "00_fixture.ipynb", as_version=4)
    filled = fill_notebook(nb, broken)
    outputs = {c.metadata["nbgrader"]["grade_id"]: c.outputs for c in filled.cells
               if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}
    text = {gid: "".join(o.get("text", "") for o in outs) for gid, outs in outputs.items()}
    value = {gid: outs[-1]["data"]["text/plain"] for gid, outs in outputs.items()}
    assert "GRADER PROBLEM" in text["test_count"] and "test_count_bare_assert_in_check" in text["test_count"]
    assert value["test_count"] == "0.0"
    assert "GRADER PROBLEM" not in text["test_double"] + text["test_smooth"], text
    assert value["test_double"] == "1.0" and value["test_smooth"] == "0.0"  # what the student earned, no more


def test_blame_of_exceptions():
    info = {"type": "ValueError", "mro": ["ValueError", "Exception"], "message": "x"}
    assert blame(CheckFailure("wrong")) == "failed"
    assert blame(StudentError(info, "f()")) == "failed"
    assert blame(SubmissionTimeout("f() did not finish")) == "failed"
    assert blame(AssertionError("in the check")) == "error"
    assert blame(NameError("helper")) == "error"
    assert blame(ReferenceFault(info, "f()")) == "error"
    assert blame(GraderFault("no sandbox")) == "error"
    assert blame(CheckFailure("wrong"), when="setup") == "error"  # a fixture is the grader's code
    # hypothesis groups a flaky failure: the student's when every inner exception is.
    assert blame(FlakyFailure("flaky", [CheckFailure("a"), StudentError(info)])) == "failed"
    assert blame(FlakyFailure("flaky", [CheckFailure("a"), KeyError("b")])) == "error"


def test_no_check_raises_a_bare_assertion_error():
    """Checks report wrong answers with CheckFailure (expect_* helpers); a bare AssertionError is the grader's bug."""
    offenders = [f"{path.relative_to(CHECKS_ROOT)}:{number}"
                 for path in sorted(CHECKS_ROOT.rglob("*.py"))
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(r"\braise\s+AssertionError\b", line)]
    assert not offenders, offenders
