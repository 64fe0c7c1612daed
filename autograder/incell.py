"""Checks run from inside a notebook: the student's self-check cells and nbgrader's test cells.

A test cell in the notebooks reads::

    check("test_apply_kernel")            # public checks: prints what was tested
    ### BEGIN HIDDEN TESTS
    check("test_apply_kernel", hidden=True)   # instructors only: adds the hidden checks
    ### END HIDDEN TESTS

With the hidden checks (instructors), the cell's value is the points earned, which nbgrader
records as partial credit, so nbgrader and ``python -m autograder grade`` give the same points
per cell.  Without them (the release), the value is the public points earned when a public
check failed, and nothing when all passed, so nbgrader's Validate agrees with the student's view.  Nothing is
written to stderr (nbgrader scores any stderr output as a failure).

This runs in the notebook's own kernel: student code could interfere with it.  The
sandboxed engine (``python -m autograder grade``) is the grader to trust; see the README.
"""

from __future__ import annotations

import sys

# Imports of the grading machinery happen on first use: the setup cell that creates the
# Checker must stay cheap (it also runs inside the sandbox, where checks never run).


class CellScore(float):
    """Points earned in one test cell; displays as the bare number nbgrader reads."""

    def __repr__(self) -> str:
        return repr(float(self))


def format_result(r, details: bool = True) -> str:
    mark = "✓" if r.passed else "✗"
    pts = f"{r.max_points:g} pt" + ("" if r.max_points == 1 else "s")
    line = f"  {mark} {r.name} [{r.kind}, {pts}]"
    if not r.passed and details:
        for msg_line in r.message.splitlines()[:12]:
            line += f"\n      {msg_line}"
        if r.hint:
            line += f"\n      Hint: {r.hint}"
    return line


class Checker:
    """``check = Checker("01_apply_kernel")`` in a notebook's setup cell."""

    def __init__(self, assignment_id: str, course=None):
        self.assignment_id = assignment_id
        self.course = course
        self._public: dict[str, list] = {}

    def __call__(self, cell: str, namespace: dict | None = None, *, hidden: bool = False) -> CellScore | None:
        from .assignments import Course
        from .namespace import InProcessNamespace
        from .runner import run_checks

        if namespace is None:
            namespace = sys._getframe(1).f_globals
        self.course = self.course or Course()
        assignment = self.course.get(self.assignment_id)
        sub = InProcessNamespace(namespace, label="your notebook", enforce_timeout=True,
                                 default_timeout=assignment.settings.call_timeout)
        if not hidden:
            results, problems = run_checks([assignment.public_checks], sub, None, cells=[cell])
            self._public[cell] = results
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
        from .reference import load_reference  # instructors only: needs solutions/

        ref = load_reference(assignment)
        public = self._public.get(cell)
        if public is None:
            public, _ = run_checks([assignment.public_checks], sub, None, cells=[cell])
        results, problems = run_checks([assignment.hidden_checks], sub, ref, cells=[cell],
                                       hidden_files={assignment.hidden_checks})
        passed = sum(r.passed for r in results)
        print(f"Hidden checks: {passed} of {len(results)} passed.")
        for p in problems:
            print(f"  (problem with the checks: {p.splitlines()[0]})")
        return CellScore(sum(r.points for r in public) + sum(r.points for r in results))

    @staticmethod
    def _report(cell, results, problems, title):
        print(f"{cell} — {title}")
        for r in results:
            print(format_result(r))
        for p in problems:
            print(f"  (problem with the checks: {p.splitlines()[0]})")
