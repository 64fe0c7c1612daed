"""Distributing the course: ``python -m autograder export {student,gradescope} ...``.

- ``export student DIR``: a student repository (a GitHub Classroom template): the releases, the
  grading package with the public checks only, the data scripts, an environment, a README for
  students, JupyterLab configured for students and a Classroom workflow (:mod:`.student`).
- ``export gradescope FILE.zip [--assignment ID]``: a Gradescope autograder bundle, with
  ``setup.sh`` and ``run_autograder`` at its top level (:mod:`.gradescope`).

docs/DISTRIBUTING.md says which to use when.  Exit codes: 0 written, 2 bad usage (the target
exists, an unknown assignment), 3 the export could not be made safely (a leak was found in it,
the course is incomplete); nothing is left behind then.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

from autograder.exit_codes import EXIT_GRADER as EXIT_FAILED
from autograder.exit_codes import EXIT_OK, EXIT_USAGE

#: Packages only the interactive (student, instructor) environment needs, not a grading machine.
INTERACTIVE_ONLY = {"nbgrader", "jupyterlab", "ipykernel", "nbclient"}


class ExportError(Exception):
    """The export cannot be made: the message says why (exit code ``code``)."""

    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


def project_metadata(repo: Path) -> dict:
    return tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def runtime_dependencies(repo: Path) -> list[str]:
    """The instructor repository's runtime requirements (pyproject's ``dependencies``), as written there."""
    return list(project_metadata(repo)["dependencies"])


def requirement_name(req: str) -> str:
    return re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower()


def data_needs(release_notebook: Path) -> list[str]:
    """What ``python -m data_scripts.fetch`` must fetch for an assignment: read from its release."""
    text = release_notebook.read_text(encoding="utf-8")
    names = ["fashion_mnist"]
    if re.search(r"(?<![A-Za-z])MNIST\(", text):  # torchvision's MNIST, not FashionMNIST
        names.append("mnist")
    if "AlexNet_Weights.IMAGENET1K" in text or "alexnet_checkpoint_path" in text:  # pretrained weights
        names.append("alexnet")
    return names


def torch_pins(repo: Path) -> list[str]:
    """The ``torch==X`` and ``torchvision==Y`` pins of the instructor repository (exact pins are required)."""
    pins = [r.replace(" ", "") for r in runtime_dependencies(repo) if requirement_name(r) in ("torch", "torchvision")]
    if len(pins) != 2 or not all("==" in p for p in pins):
        raise ExportError(f"pyproject.toml must pin torch and torchvision exactly (==), not {pins}")
    return pins


def selected_ids(course, ids: list[str] | None) -> list[str]:
    known = course.assignment_ids()
    if not known:
        raise ExportError(f"{course.root}: no release notebooks under assignments/", EXIT_USAGE)
    if not ids:
        return known
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ExportError(f"unknown assignment {', '.join(unknown)} (known: {', '.join(known)})", EXIT_USAGE)
    return [i for i in known if i in ids]


def cmd_student(args) -> int:
    from autograder.integrations.export.student import export_student

    return _run(lambda: export_student(args.dir, ids=args.ids, private_grader=args.private_grader))


def cmd_gradescope(args) -> int:
    from autograder.integrations.export.gradescope import export_gradescope

    return _run(lambda: export_gradescope(args.zip, assignment_id=args.assignment))


def _run(build) -> int:
    try:
        for line in build():
            print(line)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    return EXIT_OK


def add_parser(sub) -> None:
    """The ``export`` command of ``python -m autograder``."""
    e = sub.add_parser("export", help="build a student repository or a Gradescope autograder bundle",
                       description="Distribute the course: see docs/DISTRIBUTING.md.")
    kinds = e.add_subparsers(dest="kind", required=True)
    s = kinds.add_parser("student", help="a student repository (GitHub Classroom template): releases and public "
                                         "checks only")
    s.add_argument("dir", type=Path, help="where to write it (must not exist, or be empty)")
    s.add_argument("--assignment", action="append", dest="ids", metavar="ID",
                   help="only this assignment (repeatable; default: every release)")
    s.add_argument("--private-grader", action="store_true",
                   help="also add .github/workflows/grade.yml (ci_templates/github/grade-private.yml): grading "
                        "with a private grading repository on every push")
    s.set_defaults(func=cmd_student)
    g = kinds.add_parser("gradescope", help="a Gradescope autograder zip (setup.sh, run_autograder)",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("zip", type=Path, help="the zip to write (e.g. gradescope-03_unfold.zip)")
    g.add_argument("--assignment", metavar="ID",
                   help="the assignment this Gradescope assignment grades (default: every assignment, "
                        "each notebook by its metadata or name)")
    g.set_defaults(func=cmd_gradescope)
