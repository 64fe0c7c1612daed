"""A graded submission's reports, written to files: Gradescope ``results.json``, JUnit XML, Markdown feedback.

The records themselves (:class:`GradeReport`, :class:`CheckResult`, :class:`CellOutcome`) and
their renderings live in :mod:`autograder.records` (the standard library only); this module
writes them, each file atomically (:func:`autograder.files.write_atomic`), and combines the
reports of a folder of notebooks into one.
"""

from __future__ import annotations

import json
from pathlib import Path

from autograder.files import write_atomic
from autograder.records import MAX_CELLS_LISTED, VISIBILITY, CellOutcome, CheckResult, GradeReport

__all__ = ["MAX_CELLS_LISTED", "VISIBILITY", "CellOutcome", "CheckResult", "GradeReport", "combine",
           "write_atomic", "write_reports"]


def write_reports(report: GradeReport, results: Path | None = None, junit: Path | None = None,
                  feedback: Path | None = None) -> None:
    if results:
        write_atomic(results, json.dumps(report.to_gradescope(), indent=2) + "\n")
    if junit:
        write_atomic(junit, report.to_junit())
    if feedback:
        write_atomic(feedback, report.to_markdown())


def combine(reports: list[GradeReport], name: str) -> GradeReport:
    """One report for a folder of notebooks (several assignments): checks prefixed by assignment."""
    out = GradeReport(submission=name, assignment="+".join(r.assignment or "?" for r in reports))
    for rep in reports:
        for r in rep.results:
            out.results.append(CheckResult(**{**r.__dict__, "cell": f"{rep.assignment}/{r.cell}"}))
        out.manual += [(f"{rep.assignment}/{g}", p, t) for g, p, t in rep.manual]
        out.cells += rep.cells
        out.notes += [f"{rep.assignment}: {n}" for n in rep.notes]
        out.errors += [f"{rep.assignment}: {e}" for e in rep.errors]
        out.grader_problems += rep.grader_problems
        out.execution_time += rep.execution_time
        out.protections = rep.protections or out.protections
    return out
