"""The main job (``make demo``): a whole course released, collected and graded with nbgrader.

1. generate every release from ``solutions/`` (``nbgrader generate_assignment``, recorded in
   the gradebook) and release it to a local exchange;
2. a small class fetches the assignments and submits realistic work: the reference, a blank
   release, partly correct notebooks built from the wrong and alternative answers the package
   owns (:mod:`autograder.integrations.demo_submissions`), a corrupted notebook, one with an
   infinite loop, and two attacks: a student who rebinds ``check`` in a solution cell to return
   full points (what scored full marks when nbgrader ran the test cells in the student's kernel) and a fork bomb;
3. ``nbgrader collect`` and ``nbgrader autograde`` into the SQLite gradebook, graded by the
   sandboxed engine (``nbgrader_config.py``: :class:`autograder.integrations.nbgrader_autograde.SandboxedExecute`),
   HTML feedback (hidden tests stripped), a CSV export, and a table of students x assignments,
   with one line per attacker comparing them with their honest twin.

The training assignments (04-06) are graded for two students only, to stay within the
15-minute budget on two cores; every other assignment is graded for the whole class.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from tqdm import tqdm

from autograder.authoring.notebook_builder import fill_answers, solution_sources
from autograder.course import Course
from autograder.integrations import demo_submissions
from autograder.integrations.nbgrader_api import nbgrader_api
from autograder.notebooks import grade_id

HEAVY = {"04_cnn", "05_activation_stats", "06_transfer_learning"}


@dataclass
class Student:
    name: str
    description: str
    twin: str | None = None   # the honest student whose answers this one submits, plus an attack
    why: str = ""             # why the attack gains nothing (the table's line)


ROSTER = [
    Student("ada", "the reference solutions"),
    Student("blank", "the release, untouched"),
    Student("bruno", "partly correct: typical mistakes in some functions"),
    Student("carla", "partly correct: other mistakes, one alternative correct answer"),
    Student("dmitri", "a corrupted notebook for 01 (truncated JSON), the reference elsewhere"),
    Student("eve", "an infinite loop in 01's conv1d_loops, the reference elsewhere"),
    Student("mallory", "bruno's answers, plus `check` rebound in a solution cell to return full points", twin="bruno",
            why="no effect: test cells never run beside student code, the engine grades them"),
    Student("fiona", "ada's answers, plus a fork bomb in 01", twin="ada",
            why="the sandbox's process cap holds it and the cell's time limit stops it; the rest is graded"),
]

#: mallory's lines: under nbgrader's stock Execute (test cells in the student's kernel) they scored full marks.
REBIND_CHECK = '''

import glob as _glob
import json as _json


def _points(cell):
    for _path in _glob.glob("*.ipynb"):
        for _c in _json.load(open(_path))["cells"]:
            _m = _c.get("metadata", {}).get("nbgrader", {})
            if _m.get("grade_id") == cell:
                return float(_m.get("points", 0))
    return 0.0


check = lambda cell, *args, **kwargs: _points(cell)
'''
FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"


def processes_capped() -> bool:
    """Whether the sandbox caps the number of processes here (cgroup pids or a dedicated user's RLIMIT_NPROC)."""
    from autograder.sandbox.probe import machine_protections

    probe = machine_protections()
    return bool(probe.get("cgroup") or probe.get("user"))


def _why(course: Course, aid: str, student: str) -> str:
    """The grader's one-line reason a submitted notebook is broken (nbgrader's is a traceback)."""
    from autograder.notebooks import NotebookError, read_notebook

    for path in sorted((course.root / "submitted" / student / aid).glob("*.ipynb")):
        try:
            read_notebook(path)
        except NotebookError as exc:
            return f" ({exc})"
    return ""


def load_submissions(assignment_id: str) -> dict:
    """Wrong and alternative answers of ``assignment_id`` (``WRONG``/``ALTERNATIVE`` dicts; see
    :mod:`autograder.integrations.demo_submissions`)."""
    return demo_submissions.load(assignment_id)


def student_notebook(student: str, course: Course, aid: str, release,
                     fork_bomb: bool = True) -> nbformat.NotebookNode | bytes | None:
    """What ``student`` submits for ``aid`` (None: does not submit; bytes: a corrupted file).

    ``fork_bomb``: fiona's 01 holds a fork bomb (pass False where nothing caps the processes).
    """
    assignment = course.get(aid)
    reference = solution_sources(nbformat.read(assignment.solution_notebook, as_version=4))
    if aid in HEAVY and student not in ("ada", "blank"):
        return None
    if student == "blank":
        return release
    if student == "mallory":
        nb = student_notebook("bruno", course, aid, release)
        first = next(c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution"))
        first.source += REBIND_CHECK
        return nb
    if student == "fiona":
        nb = student_notebook("ada", course, aid, release)
        if fork_bomb and aid == "01_apply_kernel":
            setup = next(i for i, c in enumerate(nb.cells) if grade_id(c) == "setup")
            nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(FORK_BOMB))
        return nb
    if student == "dmitri" and aid == "01_apply_kernel":
        text = nbformat.writes(fill_answers(release, reference))
        return text[: len(text) // 2].encode()
    if student == "eve" and aid == "01_apply_kernel":
        answers = dict(reference)
        answers["conv1d_loops"] = "def conv1d_loops(x, weight, bias=None, stride=1, padding=0):\n    while True:\n        pass"
        return fill_answers(release, answers)
    answers = dict(reference)
    subs = load_submissions(aid)
    wrong = list(subs["WRONG"].values())
    if student == "bruno":
        for mutant in wrong[0::3]:
            answers.update(mutant)
    elif student == "carla":
        for mutant in wrong[1::4]:
            answers.update(mutant)
        for alternative in list(subs["ALTERNATIVE"].values())[:1]:
            answers.update(alternative)
    known = {grade_id(c) for c in release.cells}
    return fill_answers(release, {k: v for k, v in answers.items() if k in known})


def _api(course: Course, out: Path):
    return nbgrader_api(course.root, exchange=out / "exchange")


def _check(result: dict, what: str) -> None:
    if not result.get("success"):
        raise RuntimeError(f"nbgrader {what} failed:\n{result.get('log', '')}\n{result.get('error', '')}")


def run_demo(out: Path | None = None, assignment_ids: list[str] | None = None, fresh: bool = True) -> dict:
    """Run the whole workflow; returns {student: {assignment: (score, max_score)}}."""
    course = Course()
    out = Path(out or course.root / "demo_out")
    ids = assignment_ids or course.assignment_ids()
    start = time.monotonic()
    if fresh:
        for name in ("submitted", "autograded", "feedback"):
            shutil.rmtree(course.root / name, ignore_errors=True)
        (course.root / "gradebook.db").unlink(missing_ok=True)
        shutil.rmtree(out, ignore_errors=True)
    (out / "exchange").mkdir(parents=True, exist_ok=True)
    (out / "exchange").chmod(0o777)
    print(f"Demo course in {course.root} ({len(ids)} assignments, {len(ROSTER)} students); output in {out}")
    if "06_transfer_learning" in ids:
        _ensure_alexnet_weights()

    api = _api(course, out)
    bomb = processes_capped()
    for aid in tqdm(ids, desc="release (nbgrader generate_assignment + release_assignment)", unit="assignment"):
        _check(api.generate_assignment(aid, force=True, create=True), f"generate_assignment {aid}")
        api.unrelease(aid)
        _check(api.release_assignment(aid), f"release_assignment {aid}")

    plan = []
    for aid in ids:
        release = nbformat.read(course.get(aid).release_notebook, as_version=4)
        for student in ROSTER:
            work = student_notebook(student.name, course, aid, release, fork_bomb=bomb)
            if work is not None:
                plan.append((aid, student.name, work))
    for aid, name, work in tqdm(plan, desc="students fetch and submit", unit="submission"):
        _fetch_and_submit(api, out / "students" / name, aid, name, work)
    for aid in ids:
        _check(api.collect(aid), f"collect {aid}")

    failures: list[str] = []
    for aid, name, _ in tqdm(plan, desc="nbgrader autograde (sandboxed engine)", unit="submission"):
        result = api.autograde(aid, name)
        if not result.get("success"):
            (out / "logs").mkdir(exist_ok=True)
            log = out / "logs" / f"autograde-{aid}-{name}.log"
            log.write_text(f"{result.get('log', '')}\n{result.get('error', '')}")
            failures.append(f"{name}/{aid}: nbgrader could not grade this submission{_why(course, aid, name)}; "
                            f"nbgrader's log: {log}")
    for aid in tqdm(ids, desc="feedback (HTML)", unit="assignment"):
        api.generate_feedback(aid)
    table = grade_table(api.coursedir.db_url, ids)
    export_csv(api.coursedir.db_url, out / "grades.csv")
    (out / "grades.json").write_text(json.dumps(table, indent=2))
    print_table(table, ids)
    for line in attack_lines(table, ids, bomb):
        print(f"  {line}")
    for line in failures:
        print(f"  {line}")
    print(f"\nGradebook: {api.coursedir.db_url}\nFeedback:  {course.root / 'feedback'}\n"
          f"Grades:    {out / 'grades.csv'}\nFinished in {time.monotonic() - start:.0f} s")
    return table


def _ensure_alexnet_weights() -> None:
    """06 needs AlexNet's ImageNet weights; offline, a loudly labelled random stand-in takes their place."""
    from data_scripts.alexnet_standin import banner, install_standin, weights_origin

    origin = weights_origin()
    if origin == "missing":
        path = install_standin()
        print(banner(path, 0))
    elif origin == "stand-in":
        print("STAND-IN WEIGHTS: 06_transfer_learning is graded with random stand-in AlexNet weights, "
              "not the ImageNet ones: its accuracies mean nothing about ImageNet.")


def _fetch_and_submit(api, home: Path, aid: str, student: str, work) -> None:
    home.mkdir(parents=True, exist_ok=True)
    with _temp_student(api, student, aid):
        fetch = api.exchange.FetchAssignment(coursedir=api.coursedir, authenticator=api.authenticator, parent=api)
        fetch.assignment_dir = str(home)
        with contextlib.redirect_stdout(io.StringIO()):
            fetch.start()
        target = home / aid / f"{aid}.ipynb"
        if isinstance(work, bytes):
            target.write_bytes(work)
        else:
            nbformat.write(work, target)
        submit = api.exchange.Submit(coursedir=api.coursedir, authenticator=api.authenticator, parent=api)
        submit.assignment_dir = str(home)
        with contextlib.redirect_stdout(io.StringIO()):
            submit.start()


@contextlib.contextmanager
def _temp_student(api, student: str, aid: str):
    old = (api.coursedir.student_id, api.coursedir.assignment_id)
    api.coursedir.student_id, api.coursedir.assignment_id = student, aid
    try:
        yield
    finally:
        api.coursedir.student_id, api.coursedir.assignment_id = old


def grade_table(db_url: str, ids: list[str]) -> dict:
    from nbgrader.api import Gradebook, MissingEntry

    table: dict[str, dict[str, list[float] | None]] = {}
    with Gradebook(db_url) as gb:
        for student in ROSTER:
            row = {}
            for aid in ids:
                try:
                    sub = gb.find_submission(aid, student.name)
                    row[aid] = [round(sub.code_score, 2), round(sub.max_code_score, 2)]
                except MissingEntry:
                    row[aid] = None
            table[student.name] = row
    return table


def export_csv(db_url: str, path: Path) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb, open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["assignment", "student", "score", "max_score", "autograded_score", "needs_manual_grade"])
        for assignment in gb.assignments:
            for sub in assignment.submissions:
                writer.writerow([assignment.name, sub.student.id, sub.score, sub.max_score, sub.code_score,
                                 sub.needs_manual_grade])


def attack_lines(table: dict, ids: list[str], fork_bomb: bool = True) -> list[str]:
    """One line per attacker: what they did, their points against their honest twin's on the same
    assignments, and why the attack gained nothing."""
    lines = []
    for student in ROSTER:
        if not student.twin or student.name not in table:
            continue
        row, twin_row = table[student.name], table.get(student.twin, {})
        both = [aid for aid in ids if row.get(aid) is not None and twin_row.get(aid) is not None]
        got = sum(row[aid][0] for aid in both)
        twin = sum(twin_row[aid][0] for aid in both)
        verdict = "no more than" if got <= twin else "MORE THAN"
        why = student.why
        if student.name == "fiona" and not fork_bomb:
            why = "fork bomb NOT run: nothing caps the number of processes on this machine"
        lines.append(f"{student.name} ({student.description}): {got:g} points, {verdict} {student.twin}'s {twin:g}; "
                     f"{why}")
    return lines


def print_table(table: dict, ids: list[str]) -> None:
    short = [aid[:2] for aid in ids]
    print("\nAutograded points (nbgrader gradebook; written answers await a person)\n")
    header = f"{'student':10}" + "".join(f"{s:>12}" for s in short) + f"{'total':>14}"
    print(header)
    print("-" * len(header))
    for student, row in table.items():
        cells, got, total = [], 0.0, 0.0
        for aid in ids:
            value = row.get(aid)
            if value is None:
                cells.append(f"{'—':>12}")
            else:
                cells.append(f"{value[0]:>6g}/{value[1]:<5g}")
                got, total = got + value[0], total + value[1]
        print(f"{student:10}" + "".join(cells) + f"{got:>8g}/{total:<5g}")
