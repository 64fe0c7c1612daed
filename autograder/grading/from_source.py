"""Run an assignment's checks on code given as source text, without a notebook.

The repository's tests use it to show that realistic wrong implementations lose points on
the intended check and that alternative correct ones get full marks, quickly and in-process.
The code runs on top of the reference notebook's namespace, so helper names the notebook
defines (constants, imports) are there too.
"""

from __future__ import annotations

from autograder.course import Course
from autograder.grading.reference import load_reference
from autograder.grading.run_checks import run_checks
from autograder.records import CheckResult
from autograder.submission.namespace import InProcessNamespace


def namespace_with(assignment_id: str, sources: dict[str, str] | str, course: Course | None = None) -> dict:
    """A copy of the reference namespace with ``sources`` (code defining the replaced names) executed in it."""
    course = course or Course()
    ref = load_reference(course.get(assignment_id))
    ns = dict(ref.executor.namespace)
    ns["__name__"] = "__submission__"
    for source in ([sources] if isinstance(sources, str) else list(sources.values())):
        exec(compile(source, "<submission>", "exec"), ns)  # noqa: S102 - test code
    return ns


def check_code(assignment_id: str, sources: dict[str, str] | str, *, cells=None, hidden: bool = True,
               course: Course | None = None) -> dict[str, CheckResult]:
    """Results by check name of running the public (and hidden) checks on the given code."""
    course = course or Course()
    assignment = course.get(assignment_id)
    sub = InProcessNamespace(namespace_with(assignment_id, sources, course), label="submission")
    files = [assignment.public_checks] + ([assignment.hidden_checks] if hidden else [])
    results, problems = run_checks(files, sub, load_reference(assignment), cells=cells,
                                   hidden_files={assignment.hidden_checks})
    if problems:
        raise RuntimeError("problems with the checks:\n" + "\n".join(problems))
    return {r.name: r for r in results}
