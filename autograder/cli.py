"""Command line: ``python -m autograder {grade,check,release,demo,grade-class} ...``.

Exit codes of ``grade``: 0 grading completed (whatever the score), 2 bad usage,
3 grading itself could not run (broken reference, sandbox would not start) or a check itself
broke (its results are still written; the check is listed under ``grader_problems``).
``check`` exits 0 when every public check passed and 1 otherwise.
``grade-class`` (autograder/grading/grade_class.py) exits 0 when grading completed, 2 on bad usage, 3 when
grading itself could not run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autograder.exit_codes import EXIT_FAILED_CHECKS, EXIT_GRADER, EXIT_OK, EXIT_USAGE


def _submissions(path: Path) -> list[Path]:
    if path.is_dir():
        from autograder.course import Course

        found = Course().find_notebooks(path)
        if not found:
            raise SystemExit(_usage_error(f"{path}: no .ipynb notebooks in this folder"))
        return found
    if not path.exists():
        raise SystemExit(_usage_error(f"{path}: no such file or folder"))
    return [path]


def _usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def cmd_grade(args) -> int:
    from autograder.grading.sandbox_settings import start_sandbox_early_for

    _allow_weak(args)
    submissions = _submissions(Path(args.submission))
    if submissions:  # the sandbox's zygote imports torch while this process does (two cores, half the wait)
        start_sandbox_early_for(submissions[0], args.assignment, args.threads)

    from autograder.grading.grade_notebook import GradingError, grade_notebook
    from autograder.grading.reports import combine, write_reports
    from autograder.textsafe import safe_text

    reports = []
    for nb in submissions:
        try:
            report = grade_notebook(nb, assignment_id=args.assignment, threads=args.threads)
        except GradingError as exc:
            print(f"error: grading could not run for {safe_text(nb)}: {safe_text(exc, 2000)}", file=sys.stderr)
            return EXIT_GRADER
        reports.append(report)
        print(report.summary())
    report = reports[0] if len(reports) == 1 else combine(reports, str(args.submission))
    write_reports(report, results=args.results, junit=args.junit, feedback=args.feedback)
    if len(reports) > 1:
        print(f"Total: {report.score:g} / {report.max_score:g}")
    if report.grader_problems:
        print("error: the grader had problems with some checks (see grader_problems in the results)", file=sys.stderr)
        return EXIT_GRADER
    return EXIT_OK


def _allow_weak(args) -> None:
    """--allow-weak-sandbox: the instructor accepts grading without the full sandbox (said on every report)."""
    import os

    from autograder.sandbox.worker_process import ALLOW_WEAK_ENV

    if getattr(args, "allow_weak_sandbox", False):
        os.environ[ALLOW_WEAK_ENV] = "1"  # also reaches grade-class's grading processes


def cmd_check(args) -> int:
    from autograder.grading.sandbox_settings import start_sandbox_early_for

    start_sandbox_early_for(args.notebook, args.assignment, args.threads)   # as `grade` does: ~2 s sooner

    from autograder.grading.grade_notebook import GradingError, grade_notebook
    from autograder.integrations.incell import format_result

    try:
        report = grade_notebook(Path(args.notebook), assignment_id=args.assignment, hidden=False, threads=args.threads)
    except GradingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_GRADER
    print(f"Self-check of {args.notebook} ({report.assignment}): public checks only.")
    for e in report.errors:
        print(f"Problem: {e}")
    for n in report.notes:
        print(f"Note: {n}")
    for c in report.cells:
        if c.status != "ok":
            print(f"Cell '{c.label}': {c.status}: {c.message}")
    cell = None
    for r in report.results:
        if r.cell != cell:
            cell = r.cell
            print(f"\n{cell}")
        print(format_result(r))
    passed = sum(r.passed for r in report.results)
    print(f"\n{passed} of {len(report.results)} public checks passed "
          f"({report.score:g} of {report.max_score:g} points). Hidden checks run when your work is graded.")
    return EXIT_OK if passed == len(report.results) and not report.errors else EXIT_FAILED_CHECKS


def cmd_grade_class(args) -> int:
    from autograder.grading.grade_class import grade_class

    _allow_weak(args)
    if args.nbgrader:  # nbgrader's autograde into its gradebook (autograder/integrations/nbgrader_class.py)
        from autograder.integrations.nbgrader_class import grade_class_nbgrader

        return grade_class_nbgrader(Path(args.submissions), jobs=args.jobs, db_url=args.db_url, force=args.force,
                                    assignment=args.assignment, scheduler=args.scheduler)
    if args.db_url:
        return _usage_error("--db-url goes with --nbgrader")
    return grade_class(Path(args.submissions), jobs=args.jobs, out=args.out, force=args.force,
                       assignment=args.assignment, scheduler=args.scheduler)


def cmd_release(args) -> int:
    from autograder.integrations.release import regenerate

    for path in regenerate(ids=args.ids or None):
        print(f"released {path}")
    return EXIT_OK


def cmd_demo(args) -> int:
    from autograder.integrations.demo import run_demo

    run_demo(out=args.out, assignment_ids=args.ids or None)
    return EXIT_OK


def cmd_new_assignment(args) -> int:
    from autograder.course import Course
    from autograder.integrations.scaffold import ScaffoldError, create, next_steps

    course = Course.at(args.course) if args.course else Course()
    try:
        created = create(args.id, course, release=not args.no_release)
    except ScaffoldError as exc:
        return _usage_error(str(exc))
    print(next_steps(created, args.id))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description="Grade the CNN course's notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade a notebook or a folder of notebooks (public + hidden checks)")
    g.add_argument("submission", help="a notebook, or a folder of assignment notebooks")
    g.add_argument("--assignment", help="assignment id (default: from the notebook's metadata or name)")
    g.add_argument("--results", type=Path, help="write Gradescope-style results.json here")
    g.add_argument("--junit", type=Path, help="write JUnit XML here")
    g.add_argument("--feedback", type=Path, help="write Markdown feedback here")
    g.add_argument("--threads", type=int, help="threads for the notebook's code (default: all cores)")
    g.add_argument("--allow-weak-sandbox", action="store_true",
                   help="grade even where the sandbox (bubblewrap and an unprivileged user) is not available; "
                        "every report says so")
    g.set_defaults(func=cmd_grade)

    c = sub.add_parser("check", help="self-check: run the public checks on your notebook")
    c.add_argument("notebook")
    c.add_argument("--assignment")
    c.add_argument("--threads", type=int)
    c.set_defaults(func=cmd_check)

    r = sub.add_parser("release", help="regenerate assignments/ from solutions/ with nbgrader")
    r.add_argument("ids", nargs="*")
    r.set_defaults(func=cmd_release)
    d = sub.add_parser("demo", help="the main job: release, collect and autograde a small class with nbgrader")
    d.add_argument("ids", nargs="*", help="assignments (default: all)")
    d.add_argument("--out", type=Path, help="output folder (default: demo_out/)")
    d.set_defaults(func=cmd_demo)
    na = sub.add_parser("new-assignment", help="scaffold a new assignment: solution, checks, release and tests")
    na.add_argument("id", help="NN_name, e.g. 07_max_pooling")
    na.add_argument("--course", type=Path, help="the course folder (default: the repository or CNN_COURSE_ROOT)")
    na.add_argument("--no-release", action="store_true", help="skip nbgrader's release (run `make release` later)")
    na.set_defaults(func=cmd_new_assignment)

    gc = sub.add_parser("grade-class", help="grade a folder of student folders, in parallel; resumable")
    gc.add_argument("submissions", help="one folder per student (or nbgrader's submitted/ or course folder)")
    gc.add_argument("--jobs", "-j", type=int, default=1, help="submissions graded at once (default: 1)")
    gc.add_argument("--out", type=Path, default=Path("graded"), help="results folder (default: graded/)")
    gc.add_argument("--force", action="store_true",
                    help="regrade even the submissions whose results are up to date")
    gc.add_argument("--assignment", help="grade only this assignment (and grade unnamed notebooks as it)")
    gc.add_argument("--scheduler", help="address of a dask.distributed scheduler to send the submissions to")
    gc.add_argument("--allow-weak-sandbox", action="store_true",
                    help="grade even where the sandbox is not available (every report says so)")
    gc.add_argument("--nbgrader", action="store_true",
                    help="autograde nbgrader's submitted/ with nbgrader (the course's sandboxed plugin) into its "
                         "gradebook, sharded by student over --jobs processes (or --scheduler)")
    gc.add_argument("--db-url", help="with --nbgrader: the gradebook's SQLAlchemy URL (default: the course's "
                                     "nbgrader_config.py); several --jobs need PostgreSQL, not SQLite")
    gc.set_defaults(func=cmd_grade_class)

    from autograder.integrations.export import (
        add_parser as add_export,  # registered last (a student repository's stub relies on it)
    )

    add_export(sub)
    return parser


def environment_on_path() -> None:
    """nbgrader runs helper programs (``alembic``) by name: find them in this environment."""
    import os

    bin_dir = os.path.dirname(sys.executable)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def main(argv=None) -> int:
    environment_on_path()
    args = build_parser().parse_args(argv)
    return args.func(args)
