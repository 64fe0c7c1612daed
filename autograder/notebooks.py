"""Reading notebooks safely and deciding which of a submission's cells run.

A submission is untrusted input: every problem (not JSON, wrong nbformat, not a notebook,
too large, wrong encoding) becomes a :class:`NotebookError` whose message names the file and
the problem.  The cells that run are rebuilt from the *release* notebook, as nbgrader does:
locked cells come from the release whatever the student did to them, test cells are left
to the grader, and only solution cells and cells the student added come from the submission.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import nbformat

MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024


class NotebookError(Exception):
    """A notebook cannot be used; the message names the file and the problem."""

    def __init__(self, path: Path | str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def read_notebook(path: Path | str, max_bytes: int = MAX_NOTEBOOK_BYTES) -> nbformat.NotebookNode:
    """Read and validate a notebook, or raise NotebookError with a clear reason (never anything else)."""
    path = Path(path)
    try:
        return _read_notebook(path, max_bytes)
    except NotebookError:
        raise
    except RecursionError:
        raise NotebookError(path, "is nested too deeply to be a notebook") from None
    except MemoryError:
        raise NotebookError(path, "is too large to be read") from None
    except Exception as exc:  # noqa: BLE001 - any other problem of one file stays that file's problem
        raise NotebookError(path, f"could not be read ({type(exc).__name__}: {str(exc)[:200]})") from None


def read_bytes(path: Path, max_bytes: int = MAX_NOTEBOOK_BYTES) -> bytes:
    """The file's bytes, refusing symbolic links (O_NOFOLLOW) and anything that is not a regular file."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise NotebookError(path, f"cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISLNK(info.st_mode):
        raise NotebookError(path, "is a symbolic link, not a notebook: submit the notebook file itself")
    if not stat.S_ISREG(info.st_mode):
        raise NotebookError(path, "is not a file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise NotebookError(path, f"cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise NotebookError(path, "is not a file")
        size = info.st_size
        if size == 0:
            raise NotebookError(path, "is empty (0 bytes): save the notebook in Jupyter and submit it again")
        if size > max_bytes:
            raise NotebookError(path, f"is {size / 2**20:.0f} MB, over the {max_bytes / 2**20:.0f} MB limit: "
                                      "clear the outputs (Edit > Clear Outputs of All Cells) and save again")
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise NotebookError(path, f"is over the {max_bytes / 2**20:.0f} MB limit")
    return raw


def _read_notebook(path: Path, max_bytes: int) -> nbformat.NotebookNode:
    raw = read_bytes(path, max_bytes)
    if b"\x00" in raw[:8192]:
        raise NotebookError(path, "is a binary file, not a Jupyter notebook")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotebookError(path, f"is not UTF-8 text (bad byte at position {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (the file looks cut off)" if exc.pos >= len(text.rstrip()) - 1 else ""
        raise NotebookError(path, f"is not valid JSON{hint}: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise NotebookError(path, "is JSON but not a Jupyter notebook (no cells)")
    major = data.get("nbformat")
    if major != 4:
        raise NotebookError(path, f"uses notebook format {str(major)[:20]}; open it in JupyterLab and save it to convert it to format 4")
    try:
        nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
        nbformat.validate(nb, relax_add_props=True)
    except (nbformat.ValidationError, KeyError, TypeError, ValueError) as exc:
        raise NotebookError(path, f"is not a valid notebook: {str(exc).splitlines()[0][:300]}") from None
    ids = [c.get("id") for c in nb.cells if c.get("id")]
    if len(ids) != len(set(ids)):
        # Duplicated ids break cell matching in nbformat>=4.5 tools; renumber rather than refuse.
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"cell-{i}"
    return nb


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def grade_id(cell) -> str | None:
    gid = nbgrader_meta(cell).get("grade_id")
    return gid if isinstance(gid, str) else None


def is_test_cell(cell) -> bool:
    m = nbgrader_meta(cell)
    return cell.cell_type == "code" and bool(m.get("grade")) and not m.get("solution")


def is_solution_cell(cell) -> bool:
    return bool(nbgrader_meta(cell).get("solution"))


def is_locked(cell) -> bool:
    return bool(nbgrader_meta(cell).get("locked"))


def is_manual_cell(cell) -> bool:
    """Cells a person grades: answers to written questions (and nbgrader tasks)."""
    m = nbgrader_meta(cell)
    return (bool(m.get("grade")) and bool(m.get("solution")) and cell.cell_type == "markdown") or bool(m.get("task"))


def manual_cells(nb) -> list[tuple[str, float, str]]:
    """(grade id, points, first line) of every manually graded cell."""
    out = []
    for cell in nb.cells:
        if is_manual_cell(cell):
            m = nbgrader_meta(cell)
            out.append((grade_id(cell) or "?", float(m.get("points", 0) or 0), cell.source.strip().splitlines()[0][:80] if cell.source.strip() else ""))
    return out


def assignment_id_of(nb) -> str | None:
    """The assignment id recorded in a notebook's metadata by the course (``cnn_course.assignment``)."""
    meta = nb.get("metadata", {}).get("cnn_course", {})
    value = meta.get("assignment") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class CellToRun:
    index: int
    label: str      # grade id or "cell N"
    source: str
    origin: str     # "release" (restored), "submission" (student's answer) or "added" (student's own cell)


def cells_to_run(submission, release) -> tuple[list[CellToRun], list[str]]:
    """The code cells to execute, and notes about what was restored or missing.

    The submission's order is kept.  Cells with a release grade id: test cells are left to
    the grader, answer cells keep the student's code, every other graded or locked cell is
    restored from the release.  Plain cells (no nbgrader metadata) are the student's to
    edit and run as they are.  A release cell with a grade id that the submission lost is
    put back after the release cell that precedes it.
    """
    notes: list[str] = []
    release_cells = {grade_id(c): c for c in release.cells if grade_id(c)}
    planned: list[tuple[str, str, str]] = []   # (label, source, origin)
    position_of: dict[str, int] = {}           # grade id -> index in planned (after the cell)
    seen: set[str] = set()
    for i, cell in enumerate(submission.cells):
        if cell.cell_type != "code" and not grade_id(cell):
            continue
        gid = grade_id(cell)
        rcell = release_cells.get(gid) if gid else None
        if gid and gid in seen:
            notes.append(f"the cell '{gid}' appears twice; only the first copy was used")
            continue
        if rcell is None:
            if cell.cell_type == "code":
                planned.append((f"cell {i + 1}", cell.source, "submission"))
            continue
        seen.add(gid)
        if rcell.cell_type == "code" and not is_test_cell(rcell):
            if is_solution_cell(rcell):
                if cell.cell_type != "code":
                    notes.append(f"the answer cell '{gid}' was changed into a {cell.cell_type} cell; the empty stub was used")
                    planned.append((gid, rcell.source, "release"))
                else:
                    planned.append((gid, cell.source, "submission"))
            else:
                if cell.source != rcell.source:
                    notes.append(f"the locked cell '{gid}' was edited; the original was restored")
                planned.append((gid, rcell.source, "release"))
        position_of[gid] = len(planned)

    # Put back the release's graded/locked code cells that the submission lost.
    previous: str | None = None
    inserts: list[tuple[int, tuple[str, str, str]]] = []
    for rcell in release.cells:
        gid = grade_id(rcell)
        if not gid:
            continue
        if gid not in seen and rcell.cell_type == "code" and not is_test_cell(rcell):
            kind = "answer" if is_solution_cell(rcell) else "locked"
            notes.append(f"the {kind} cell '{gid}' is missing from your notebook; the release's version was used")
            at = position_of.get(previous, 0) if previous else 0
            inserts.append((at, (gid, rcell.source, "release")))
        if gid in seen:
            previous = gid
    for offset, (at, item) in enumerate(sorted(inserts, key=lambda x: x[0])):
        planned.insert(at + offset, item)
    out = [CellToRun(i, label, source, origin) for i, (label, source, origin) in enumerate(planned)]
    return out, notes
