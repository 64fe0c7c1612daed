"""Grade one notebook: run it in the sandbox, run the checks in this process, report.

This is what ``python -m autograder grade`` and ``check`` call.  It never raises for a bad
submission: an unreadable notebook, a crashing cell or a hanging call each becomes a clear
message and zero points on what it breaks, and grading goes on.
"""

from __future__ import annotations

import time
from pathlib import Path

from autograder.course import Course, GradingSettings, load_release
from autograder.grading.run_checks import run_checks
from autograder.grading.sandbox_settings import sandbox_config, start_sandbox_early
from autograder.notebooks import NotebookError, assignment_id_of, cells_to_run, manual_cells, read_notebook
from autograder.records import GradeReport
from autograder.sandbox.worker_process import WorkerError
from autograder.submission.namespace import Namespace, SubmissionCrashed
from autograder.submission.sandboxed import SandboxNamespace


class GradingError(Exception):
    """Grading itself could not run (a broken reference, a broken installation): not the student's fault."""


class BrokenSubmission(Namespace):
    """Stands in for a submission that cannot run: every check fails with the same reason.

    It answers what the grading run asks of a :class:`SandboxNamespace` (no cells, no output, no
    protections), so a broken notebook goes through the same run as any other.
    """

    def __init__(self, reason: str):
        super().__init__(label="your notebook", calls=[], _hung=set())
        self.reason = reason
        self.outcomes: list = []
        self.flags: list[str] = []
        self.unavailable = ""
        self.protections: dict = {}
        self.output_log = ""

    def _roundtrip(self, request, blobs, timeout, max_reply=None):
        raise SubmissionCrashed(self.reason)

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


def grade_notebook(path: Path | str, *, assignment_id: str | None = None, course: Course | None = None,
                   hidden: bool = True, threads: int | None = None, config_overrides: dict | None = None,
                   settings: GradingSettings | None = None) -> GradeReport:
    """Grade one submitted notebook; hidden checks (and the reference) only when ``hidden``."""
    start = time.monotonic()
    path = Path(path)
    course = course or Course()
    report = GradeReport(submission=str(path), assignment=assignment_id)
    nb, problem = None, None
    try:
        nb = read_notebook(path)
    except NotebookError as exc:
        problem = str(exc)
    try:
        assignment = course.get(assignment_id) if assignment_id else course.identify(path, nb)
    except (KeyError, NotebookError) as exc:
        if assignment_id:
            raise GradingError(str(exc).strip("'\"")) from None
        raise GradingError(str(exc)) from None
    report.assignment = assignment.id
    if nb is not None:
        own = assignment_id_of(nb)
        if own and own != assignment.id:
            problem = f"{path}: this notebook belongs to assignment {own}, not {assignment.id}"
    release = load_release(assignment)
    report.manual = manual_cells(release)
    settings = settings or assignment.settings

    config = None
    if problem is None:
        # A self-check runs the public checks only, on the student's own code and machine: weaker isolation is fine.
        overrides = {**(config_overrides or {}), **({} if hidden else {"allow_weak": True})}
        config = sandbox_config(assignment, threads, **overrides)
        start_sandbox_early(config)   # the zygote's imports run while the reference loads (no-op once it runs)
    ref = None
    if hidden:
        from autograder.grading.reference import ReferenceError, load_reference

        try:
            ref = load_reference(assignment)
        except (ReferenceError, NotebookError) as exc:
            raise GradingError(f"the reference solution could not be loaded: {exc}") from None

    files = [assignment.public_checks] + ([assignment.hidden_checks] if hidden else [])
    sub: BrokenSubmission | SandboxNamespace
    if problem is not None:
        report.errors.append(problem)
        sub = BrokenSubmission(f"your notebook could not be graded: {problem}")
    else:
        cells, notes = cells_to_run(nb, release)
        report.notes.extend(notes)
        sub = SandboxNamespace(config=config, cells=cells,
                               cell_timeout=settings.cell_timeout, max_restarts=settings.max_restarts,
                               default_timeout=settings.call_timeout,
                               deadline=time.monotonic() + settings.total_timeout,
                               files_from=assignment.release_notebook.parent)
    try:
        try:
            sub.start()
        except WorkerError as exc:
            raise GradingError(f"the sandbox could not start: {exc}") from None
        report.cells = sub.outcomes
        results, problems = run_checks(files, sub, ref, hidden_files={assignment.hidden_checks})
        report.results = results
        # A check that broke is the grader's problem: listed for the instructor (``grade`` exits 3).
        report.grader_problems = [r.grader_problem for r in results if r.status == "error"] + problems
        if sub.unavailable:
            report.grader_problems.append(f"the sandbox could not be restarted with full protections; "
                                          f"the remaining checks did not run: {sub.unavailable}")
        report.flags = list(sub.flags)
    finally:
        sub.close()
        report.protections = sub.protections
        report.student_output = sub.output_log[-20000:]
    if hidden and sub.protections.get("weak_isolation_accepted"):
        report.weak_isolation = sub.protections.get("machine") or "no bubblewrap sandbox"
    report.execution_time = time.monotonic() - start
    return report
