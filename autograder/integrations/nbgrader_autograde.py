"""nbgrader's ``autograde`` on the sandboxed engine: :class:`SandboxedExecute` takes ``Execute``'s place.

``nbgrader_config.py`` sets::

    c.Autograde.autograde_preprocessors = [SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor,
                                           LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]

nbgrader still sanitises the submission first (``OverwriteCells`` restores the locked and test
cells and the hidden tests from the gradebook).  This preprocessor then grades that notebook
with :func:`autograder.grading.grade_notebook.grade_notebook`, as ``python -m autograder grade`` does: the
student's cells run only in the sandboxed worker, the checks run in this (trusted) process, and
no kernel is started.  The engine's result is written into the notebook nbgrader saves:

* every test cell (an nbgrader grade cell of type code) gets the check lines as printed output,
  hidden checks by name and message only, then the points earned as its value, which
  ``SaveAutoGrades`` records as partial credit;
* every other code cell gets what the sandbox printed while running it, and a cell that raised,
  crashed or hung says so in red (stderr; such cells are not graded, so this costs nothing);
* when grading itself could not run (:class:`~autograder.grading.grade_notebook.GradingError`, problems with the
  check files, a check that broke), the affected test cells score 0 with a message that says
  the grader failed, and an error is logged for the instructor: a broken grader never gives
  points silently.  A ``nbgrader autograde ID --student NAME --force`` regrades once fixed.

Importing this module is cheap (the engine is imported when the first notebook is graded):
nbgrader loads ``nbgrader_config.py`` for every command, the students' Validate button included.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import traceback
from pathlib import Path
from textwrap import dedent

from nbformat.notebooknode import NotebookNode
from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Integer, Unicode

#: What a test cell says when the grader, not the student, failed.
GRADER_FAILED = ("GRADER PROBLEM (not a mistake in this notebook): {reason}\n"
                 "This cell scored 0 until the instructor fixes the grader and regrades "
                 "(nbgrader autograde {assignment} --student {student} --force).")
MAX_CELL_OUTPUT = 20_000


class SandboxedExecute(NbGraderPreprocessor):
    """Grade the sanitised notebook with the course's sandboxed engine instead of executing it in a kernel."""

    course_root = Unicode(
        "",
        help=dedent("""
            Folder of the course the engine grades against (solutions/, assignments/). Empty: the
            engine's default, $CNN_COURSE_ROOT or the repository that holds the autograder package,
            as for `python -m autograder grade`.
            """),
    ).tag(config=True)

    checks_root = Unicode(
        "",
        help=dedent("""
            Folder holding the checks (a<id>/public.py, hidden.py). Empty: $CNN_COURSE_CHECKS, else
            <course_root>/autograder/checks when it exists, else the checks beside the autograder package.
            """),
    ).tag(config=True)

    threads = Integer(
        0,
        help="Threads for the student's code in the sandbox; 0: the assignment's setting, else all cores.",
    ).tag(config=True)

    student_output = Bool(
        True,
        help="Write what the sandbox captured from each of the student's code cells into that cell's output.",
    ).tag(config=True)

    def _course(self):
        from autograder.course import Course, _default_checks_root

        if not self.course_root:
            course = Course()
            if not self.checks_root:
                return course
            root = course.root
        else:
            root = Path(self.course_root).expanduser().resolve()
        if self.checks_root:
            checks = Path(self.checks_root).expanduser().resolve()
        elif os.environ.get("CNN_COURSE_CHECKS"):
            checks = Path(os.environ["CNN_COURSE_CHECKS"]).resolve()
        elif (root / "autograder" / "checks").is_dir():
            checks = root / "autograder" / "checks"
        else:
            checks = _default_checks_root()
        return Course(root=root, checks_root=checks)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        info = resources.get("nbgrader", {})
        assignment = info.get("assignment") or ""
        notebook = info.get("notebook") or assignment
        student = info.get("student") or "?"
        where = f"{student}/{assignment}/{notebook}"
        report, failure = None, None
        try:
            report = self._grade(nb, assignment, notebook)
        except Exception as exc:  # noqa: BLE001 - a grader failure must never give points
            from autograder.grading.grade_notebook import GradingError

            if isinstance(exc, GradingError):
                failure = f"grading could not run: {exc}"
                self.log.error("SandboxedExecute: %s: %s", where, failure)
            else:
                failure = f"the grader failed ({type(exc).__name__}: {exc})"
                self.log.error("SandboxedExecute: %s: %s\n%s", where, failure, traceback.format_exc())
        fill_notebook(nb, report, failure=failure, log=self.log, where=where,
                      regrade={"assignment": assignment, "student": student},
                      student_output=self.student_output)
        if report is not None:
            self.log.info("SandboxedExecute: %s graded in the sandbox: %g / %g points in %.1f s",
                          where, report.score, report.max_score, report.execution_time)
            if getattr(report, "weak_isolation", ""):
                self.log.warning("SandboxedExecute: %s graded with weaker isolation (accepted): %s",
                                 where, report.weak_isolation)
            for flag in list(getattr(report, "flags", []))[:20]:
                self.log.warning("SandboxedExecute: %s: flagged: %s", where, flag)
        return nb, resources

    def _grade(self, nb: NotebookNode, assignment: str, notebook: str):
        import nbformat

        from autograder.grading.grade_notebook import grade_notebook

        course = self._course()
        aid = assignment if assignment in course.assignment_ids() else notebook
        tmp = Path(tempfile.mkdtemp(prefix="nbgrader-sandboxed-"))
        try:
            path = tmp / f"{notebook or aid}.ipynb"
            copy = nbformat.from_dict(nb)
            for cell in copy.cells:  # the engine never runs test cells; the hidden blocks stay out of its files
                if _is_test_cell(cell):
                    cell.source = ""
            nbformat.write(copy, path)
            return grade_notebook(path, assignment_id=aid, course=course, threads=self.threads or None)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# -- writing the engine's result into the notebook ------------------------------------------------

def _meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def _is_test_cell(cell) -> bool:
    m = _meta(cell)
    return cell.cell_type == "code" and bool(m.get("grade")) and not m.get("solution")


def _stream(text: str, name: str = "stdout") -> NotebookNode:
    from autograder.textsafe import clean

    text = clean(text)  # student text: no terminal escapes or bidirectional overrides that could fake a line
    if len(text) > MAX_CELL_OUTPUT:
        text = text[:MAX_CELL_OUTPUT] + f"\n[... {len(text) - MAX_CELL_OUTPUT} more characters not shown]\n"
    return new_output("stream", name=name, text=text if text.endswith("\n") else text + "\n")


def _value(points: float, count: int) -> NotebookNode:
    return new_output("execute_result", data={"text/plain": repr(float(points))}, execution_count=count)


def _points(value: float) -> str:
    return f"{value:g} point" + ("" if value == 1 else "s")


def _cell_problems(report, gid: str) -> list[str]:
    """Why a test cell's points cannot be trusted: no checks for it, or a check of it that broke."""
    problems = [f"the check {r.name} itself failed: {(r.detail or r.message or 'no message').splitlines()[0]}"
                for r in report.results if r.cell == gid and r.status == "error"]
    if not any(r.cell == gid for r in report.results):
        problems.append(f"no check of the grader belongs to the test cell {gid!r}")
    return problems


def test_cell_text(report, gid: str) -> str:
    """The check lines of one test cell, as the engine graded it (hidden checks: name and message only)."""
    from autograder.integrations.incell import format_result

    got, total = report.cell_scores().get(gid, (0.0, 0.0))
    lines = [f"{gid}: {got:g} of {_points(total)} (graded in the sandbox by the course's grader)"]
    lines += [format_result(r) for r in report.results if r.cell == gid]
    return "\n".join(lines)


def fill_notebook(nb: NotebookNode, report, *, failure: str | None = None, log=None, where: str = "",
                  regrade: dict | None = None, student_output: bool = True) -> NotebookNode:
    """Write the engine's ``report`` (a :class:`~autograder.grading.reports.GradeReport`) into ``nb``'s outputs.

    With ``failure`` (grading could not run) or grader problems, the affected test cells get 0
    and the reason; they never keep points the grader could not vouch for.
    """
    regrade = {"assignment": "ID", "student": "NAME", **(regrade or {})}
    # A check that broke costs only its own test cell (see _cell_problems); any other problem, every test cell.
    own_cell = {r.grader_problem for r in report.results if r.status == "error"} if report is not None else set()
    grader_problems = [p for p in report.grader_problems if p not in own_cell] if report is not None else []
    if report is not None and grader_problems and log is not None:
        log.error("SandboxedExecute: %s: the grader had problems with the checks; every test cell scores 0:\n%s",
                  where, "\n".join(grader_problems))
    outcomes: dict[str, object] = {}
    for outcome in (report.cells if report is not None else []):
        outcomes.setdefault(outcome.label, outcome)
    cell_scores = report.cell_scores() if report is not None else {}
    count = 0
    first_code = True
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        count += 1
        cell.outputs = []
        cell.execution_count = count
        gid = _meta(cell).get("grade_id") if isinstance(_meta(cell).get("grade_id"), str) else None
        if _is_test_cell(cell):
            max_points = float(_meta(cell).get("points", 0) or 0)
            reason = failure
            if reason is None and grader_problems:
                reason = "some checks could not run: " + grader_problems[0].splitlines()[0]
            if reason is None:
                problems = _cell_problems(report, gid)
                if problems:
                    reason = "; ".join(problems)
                    if log is not None:
                        log.error("SandboxedExecute: %s: test cell %s scores 0: %s", where, gid, reason)
            if reason is not None:
                cell.outputs = [_stream(GRADER_FAILED.format(reason=reason, **regrade)), _value(0.0, count)]
                continue
            got, total = cell_scores[gid]
            if total != max_points and log is not None:
                log.error("SandboxedExecute: %s: test cell %s is worth %g points in the gradebook but its checks "
                          "are worth %g; fix the notebook's points or the checks", where, gid, max_points, total)
            if got > max_points:
                got = max_points  # nbgrader refuses more than the cell's points; never more than it allows
            cell.outputs = [_stream(test_cell_text(report, gid)), _value(got, count)]
            continue
        if first_code and report is not None:
            first_code = False
            summary = _summary(report)
            if summary:
                cell.outputs.append(_stream(summary))
        if report is None:
            continue
        label = gid if gid and gid not in seen else f"cell {index + 1}"
        if gid:
            seen.add(gid)
        outcome = outcomes.get(label) or (outcomes.get(f"cell {index + 1}") if gid else None)
        if outcome is None:
            continue
        text = getattr(outcome, "output", "") or ""
        if student_output and text:
            cell.outputs.append(_stream(text))
        if outcome.status != "ok":
            cell.outputs.append(_stream(f"[grader] this cell {_status_words(outcome.status)}: {outcome.message}",
                                        name="stderr"))
    return nb


def _status_words(status: str) -> str:
    return {"error": "raised", "timeout": "timed out", "crashed": "crashed",
            "skipped": "was not run"}.get(status, status)


def _summary(report) -> str:
    """Notes for the first code cell: a submission the grader could not run at all, what it restored, what it flagged."""
    lines = []
    if getattr(report, "weak_isolation", ""):
        lines.append(f"[grader] WARNING: graded with weaker isolation, accepted by the instructor: {report.weak_isolation}")
    lines += [f"[grader] {e}" for e in report.errors]
    lines += [f"[grader] note: {n}" for n in report.notes]
    lines += [f"[grader] flagged for the instructor: {f}" for f in list(getattr(report, "flags", []))[:20]]
    return "\n".join(lines)
