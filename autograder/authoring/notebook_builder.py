"""Building nbgrader notebooks and submissions from Python.

Instructors use it to write solution notebooks with the right nbgrader metadata; the
tests use :func:`fill_answers` to turn a release into a submission (a correct one, a
wrong one, a hostile one) exactly as a student's saved notebook would look.
"""

from __future__ import annotations

import copy

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder.notebooks import grade_id

SCHEMA = 3


def _meta(grade_id: str, *, solution: bool, grade: bool, locked: bool, points: float | None = None) -> dict:
    m = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": SCHEMA, "solution": solution}
    if points is not None:
        m["points"] = points
    return {"nbgrader": m}


def markdown(source: str) -> nbformat.NotebookNode:
    return new_markdown_cell(source.strip("\n"))


def code(source: str, *, tags: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    cell = new_code_cell(source.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def locked(grade_id: str, source: str, *, tags: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    """Setup code the student may not change (restored from the release when grading)."""
    cell = code(source, tags=tags)
    cell.metadata.update(_meta(grade_id, solution=False, grade=False, locked=True))
    return cell


def solution(grade_id: str, source: str) -> nbformat.NotebookNode:
    """An answer cell: the reference goes between ``### BEGIN SOLUTION`` and ``### END SOLUTION``."""
    cell = code(source)
    cell.metadata.update(_meta(grade_id, solution=True, grade=False, locked=False))
    return cell


def test(grade_id: str, points: float, source: str) -> nbformat.NotebookNode:
    """An autograded test cell worth ``points`` (the sum of its checks' points)."""
    cell = code(source)
    cell.metadata.update(_meta(grade_id, solution=False, grade=True, locked=True, points=points))
    return cell


def written(grade_id: str, points: float, source: str = "YOUR ANSWER HERE") -> nbformat.NotebookNode:
    """A manually graded written answer (markdown)."""
    cell = markdown(source)
    cell.metadata.update(_meta(grade_id, solution=True, grade=True, locked=False, points=points))
    return cell


def notebook(cells, assignment_id: str) -> nbformat.NotebookNode:
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11"}
    nb.metadata["cnn_course"] = {"assignment": assignment_id}
    return nb


def fill_answers(release: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of ``release`` with the given answer cells' sources replaced (a student's notebook)."""
    nb = copy.deepcopy(release)
    unknown = set(answers) - {grade_id(c) for c in nb.cells}
    if unknown:
        raise KeyError(f"no cells with grade ids {sorted(unknown)}")
    for cell in nb.cells:
        gid = grade_id(cell)
        if gid in answers:
            cell.source = answers[gid]
    return nb


def solution_sources(nb: nbformat.NotebookNode) -> dict[str, str]:
    """grade id -> source of every answer (solution) code cell."""
    return {grade_id(c): c.source for c in nb.cells
            if c.cell_type == "code" and c.get("metadata", {}).get("nbgrader", {}).get("solution")}
