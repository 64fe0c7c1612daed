"""The demo course's report on submissions nbgrader cannot grade (the demo itself is `make demo`)."""

from __future__ import annotations

from autograder.course import Course
from autograder.integrations.demo import _why


def test_a_broken_submission_is_explained_in_one_line(tmp_path):
    folder = tmp_path / "submitted" / "dmitri" / "01_apply_kernel"
    folder.mkdir(parents=True)
    (folder / "01_apply_kernel.ipynb").write_text('{"cells": [{"cell_type": "code", "source": "x = ')
    course = Course.at(tmp_path, tmp_path / "checks")
    reason = _why(course, "01_apply_kernel", "dmitri")
    assert "01_apply_kernel.ipynb" in reason and "not valid JSON" in reason and "\n" not in reason


def test_a_readable_submission_needs_no_explanation(tmp_path):
    folder = tmp_path / "submitted" / "ada" / "01_apply_kernel"
    folder.mkdir(parents=True)
    (folder / "01_apply_kernel.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    assert _why(Course.at(tmp_path, tmp_path / "checks"), "01_apply_kernel", "ada") == ""
