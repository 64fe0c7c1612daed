"""Checks run from inside a notebook: the student's own test cells.

A test cell in the notebooks reads::

    check("test_apply_kernel")            # public checks: prints what was tested
    ### BEGIN HIDDEN TESTS
    check("test_apply_kernel", hidden=True)   # only in the solutions; nbgrader's autograde keeps it
    ### END HIDDEN TESTS

The public call runs the public checks in the student's own kernel: that is the student's
feedback and what nbgrader's Validate reads.  Its value is the public points earned when a
public check failed, and nothing when all passed, so Validate agrees with the student's view.
Nothing is written to stderr (nbgrader scores any stderr output as a failure).

Grading never happens here.  Under ``nbgrader autograde`` with the repository's
``nbgrader_config.py``, :class:`autograder.integrations.nbgrader_autograde.SandboxedExecute` grades the notebook
with the sandboxed engine and no test cell runs in a kernel at all.  The hidden block only
executes when something runs the test cells in the student's kernel (nbgrader's stock
``Execute``, a solution notebook run by hand): there it fails closed, with a one-line error
telling the instructor to autograde with the repository's configuration, so the cell scores 0
instead of trusting a kernel the student's code controls.
"""

from __future__ import annotations

import sys

# Imports of the grading machinery happen on first use: the setup cell that creates the
# Checker must stay cheap (it also runs inside the sandbox, where checks never run).


class CellScore(float):
    """Points earned in one test cell; displays as the bare number nbgrader reads."""

    def __repr__(self) -> str:
        return repr(float(self))


class HiddenChecksNotRunHere(RuntimeError):
    """The hidden block of a test cell ran in a notebook kernel, where grading must not happen."""

    MESSAGE = ("hidden checks never run in the notebook's kernel: autograde with the repository's "
               "nbgrader_config.py (it grades in the sandbox with autograder.integrations.nbgrader_autograde.SandboxedExecute); "
               "this cell scores 0")

    def __init__(self, cell: str = ""):
        super().__init__(f"{cell}: {self.MESSAGE}" if cell else self.MESSAGE)

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: one line for the instructor.
        return [f"{type(self).__name__}: {self}"]


def format_result(r, details: bool = True) -> str:
    error = getattr(r, "status", "") == "error"  # the check itself broke: the grader's problem, said in the message
    mark = "✓" if r.passed else "!" if error else "✗"
    pts = f"{r.max_points:g} pt" + ("" if r.max_points == 1 else "s")
    hidden = "hidden, " if getattr(r, "visibility", "public") == "hidden" else ""
    line = f"  {mark} {r.name} [{hidden}{r.kind}, {pts}]"
    if not r.passed and details:
        for msg_line in r.message.splitlines()[:12]:
            line += f"\n      {msg_line}"
        if r.hint and not error:
            line += f"\n      Hint: {r.hint}"
    return line


class Checker:
    """``check = Checker("01_apply_kernel")`` in a notebook's setup cell."""

    def __init__(self, assignment_id: str, course=None):
        self.assignment_id = assignment_id
        self.course = course

    def __call__(self, cell: str, namespace: dict | None = None, *, hidden: bool = False) -> CellScore | None:
        if hidden:
            # Fail closed: never grade in a kernel that the student's code controls (see the module's doc).
            raise HiddenChecksNotRunHere(cell)
        from autograder.course import Course
        from autograder.grading.run_checks import run_checks
        from autograder.submission.namespace import InProcessNamespace

        if namespace is None:
            namespace = sys._getframe(1).f_globals
        self.course = self.course or Course()
        assignment = self.course.get(self.assignment_id)
        sub = InProcessNamespace(namespace, label="your notebook", enforce_timeout=True,
                                 default_timeout=assignment.settings.call_timeout)
        try:
            results, problems = run_checks([assignment.public_checks], sub, None, cells=[cell])
        finally:
            sub.close()  # the kernel lives on: free what the checks built in it
        self._report(cell, results, problems, "public checks")
        earned = sum(r.points for r in results)
        total = sum(r.max_points for r in results)
        if results:
            verdict = "all passed" if earned == total else "some failed; read the messages above"
            print(f"Public checks: {earned:g} of {total:g} points ({verdict}). "
                  f"More checks run when your work is graded.")
        if earned == total and not problems:
            # No value: nbgrader's Validate reads a cell without a number as passed. (The points
            # the public checks are worth are only part of the cell's, so a number would read
            # as partial credit even when everything the student can run passed.)
            return None
        return CellScore(earned)

    @staticmethod
    def _report(cell, results, problems, title):
        print(f"{cell} — {title}")
        for r in results:
            print(format_result(r))
        for p in problems:
            print(f"  (problem with the checks: {p.splitlines()[0]})")
