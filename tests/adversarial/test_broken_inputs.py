"""Broken submissions: a clear message naming the file and the problem, zero points, no exception."""

from __future__ import annotations

import json
import time
from pathlib import Path
from unittest import mock

import nbformat
import pytest

from autograder.grading.reports import write_atomic

from .conftest import CORRECT, FULL_SCORE, by_name

pytestmark = pytest.mark.slow


def _place(tmp_path, name: str, content: bytes | None = None):
    path = tmp_path / name / "00_fixture.ipynb"
    path.parent.mkdir()
    if content is not None:
        path.write_bytes(content)
    return path


def _assert_rejected(report, path, *words):
    assert report.max_score == FULL_SCORE
    assert report.score == 0, report.summary()
    assert report.errors, report.summary()
    message = report.errors[0]
    assert str(path) in message, message
    for word in words:
        assert word.lower() in message.lower(), (word, message)
    assert all("could not be graded" in r.message for r in report.results)
    assert report.cells == []  # nothing ran


def _refuse(huge):
    real_read_text = Path.read_text

    def guarded(self, *a, **k):
        assert Path(self) != huge, "the huge file was read"
        return real_read_text(self, *a, **k)

    return guarded


def _release_json(release_nb) -> dict:
    return json.loads(nbformat.writes(release_nb))


CASES = {
    "not_json": (b"this is not json at all", ("not valid JSON",)),
    "truncated": (None, ("not valid JSON",)),
    "nbformat3": (json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {},
                              "worksheets": [{"cells": []}]}).encode(), ("format 3",)),
    "non_utf8": (None, ("UTF-8",)),
    "binary": (bytes(range(256)) * 64, ("binary",)),
    "json_not_notebook": (b'[1, 2, 3]', ("not a Jupyter notebook",)),
    "bad_cells": (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                              "cells": [{"cell_type": "code", "source": 42}]}).encode(), ("not a valid notebook",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_unreadable_notebooks_are_rejected_with_a_clear_message(case, tmp_path, grade, make_submission):
    content, words = CASES[case]
    if case == "truncated":
        full = make_submission().read_bytes()
        content = full[: len(full) // 2]
    if case == "non_utf8":
        full = make_submission().read_bytes()
        content = full.replace(b"Fixture assignment", b"Fixture assignm\xe9nt")
        assert content != full
    path = _place(tmp_path, case, content)
    _assert_rejected(grade(path), path, *words)


def test_a_200_mb_notebook_is_rejected_fast_without_being_loaded(tmp_path, grade):
    path = _place(tmp_path, "huge")
    with open(path, "wb") as f:  # sparse: no 200 MB of disk or time
        f.write(b'{"cells": [')
        f.truncate(200 * 2**20)
    real_read_bytes = Path.read_bytes

    def guarded(self):
        assert Path(self) != path, "the huge file was read"
        return real_read_bytes(self)

    with mock.patch.object(Path, "read_bytes", guarded), mock.patch.object(Path, "read_text", _refuse(path)):
        start = time.monotonic()
        report = grade(path)
        elapsed = time.monotonic() - start
    _assert_rejected(report, path, "200 MB", "limit")
    assert elapsed < 30


def test_the_wrong_assignments_notebook_is_rejected(tmp_path, grade, release_nb, fixture_course):
    from autograder.authoring.notebook_builder import fill_answers

    nb = fill_answers(release_nb, CORRECT)  # correct code: it must still not be graded as 00_fixture
    nb.metadata["cnn_course"] = {"assignment": "01_other"}
    path = _place(tmp_path, "other")
    nbformat.write(nb, path)
    report = grade(path)
    _assert_rejected(report, path, "01_other", "00_fixture")


def test_an_empty_notebook_runs_the_release_stubs_and_scores_zero(tmp_path, grade, release_nb):
    data = _release_json(release_nb)
    data["cells"] = []
    path = _place(tmp_path, "empty", json.dumps(data).encode())
    report = grade(path)
    assert report.max_score == FULL_SCORE and report.score == 0, report.summary()
    assert not report.errors
    for gid in ("setup", "double", "smooth", "count"):
        assert any(f"'{gid}' is missing" in n for n in report.notes), report.notes
    assert all(not r.passed for r in report.results)


@pytest.mark.filterwarnings("ignore:Non-unique cell id")
def test_cells_stripped_of_metadata_and_duplicated_ids(tmp_path, grade, make_submission):
    # Without nbgrader metadata every cell is the student's own: the test cells run (harmlessly) in the
    # sandbox and the answers are still found by name; duplicated ids are renumbered, not an error.
    data = json.loads(make_submission({"count": "def count(n):\n    return n + 1"}).read_text())
    for cell in data["cells"]:
        cell["metadata"] = {}
        cell["id"] = "same-id"
    path = _place(tmp_path, "stripped", json.dumps(data).encode())
    report = grade(path)
    assert not report.errors, report.summary()
    # The grader says that the release's cells were not found (so the locked ones were put back).
    assert any("'setup' is missing" in n for n in report.notes), report.notes
    results = by_name(report)
    assert not results["test_count_returns_its_argument"].passed
    assert report.score <= FULL_SCORE - 1  # the honest twin: the same answers with metadata (count wrong)
    assert report.score == FULL_SCORE - 1, report.summary()


def test_results_json_is_written_atomically(tmp_path):
    target = tmp_path / "results.json"
    write_atomic(target, json.dumps({"score": 5}))

    class Boom(Exception):
        pass

    with mock.patch("autograder.files.os.fsync", side_effect=Boom("disk full")), pytest.raises(Boom):
        write_atomic(target, json.dumps({"score": 1000}) * 1000)
    assert json.loads(target.read_text()) == {"score": 5}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left behind

    with mock.patch("autograder.files.os.replace", side_effect=Boom("crash before rename")), pytest.raises(Boom):
        write_atomic(target, "{half")
    assert json.loads(target.read_text()) == {"score": 5}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]

    write_atomic(target, json.dumps({"score": 6}))
    assert json.loads(target.read_text()) == {"score": 6}
