"""What a Gradescope autograder bundle runs (``run_autograder`` and ``setup.sh`` call this module).

``run``: grade the notebooks in ``ROOT/submission`` with the engine (``python -m autograder grade``,
one process per notebook, exactly as on an instructor's machine) and write Gradescope's
``ROOT/results/results.json``.  Every outcome leaves a valid results file: no notebook, a notebook
the grader cannot place, a grader that could not run (score 0, the reason for the student in one
line, the details in a test only instructors see).  One notebook per assignment is graded: when
a student uploads two copies, the one named like the release wins (then the one whose metadata
names the assignment, then the newest), and the output says which were left out.

``warm``: grade each bundled assignment's reference once at image build time, so that expensive
reference values (04's trained accuracy, 06's features) are cached in the image, and say loudly
if the reference does not get full marks there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.course import Course
from autograder.notebooks import NotebookError, read_notebook

STUDENT_GRADER_FAILED = ("The autograder could not grade this submission. This is a problem on the grader's side, "
                         "not with your work: your instructor can see the details and will regrade it.")


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".results.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def _result(output: str, *, details: str = "", score: float = 0.0) -> dict:
    tests = []
    if details:
        tests.append({"name": "grader log (instructors only)", "score": 0.0, "max_score": 0.0, "status": "failed",
                      "output": details[-20000:], "visibility": "hidden"})
    return {"score": score, "output": output, "stdout_visibility": "hidden", "tests": tests}


def _assignment_of(course: Course, path: Path) -> str | None:
    try:
        nb = read_notebook(path)
    except NotebookError:
        nb = None
    try:
        return course.identify(path, nb).id
    except NotebookError:
        return None


def choose(course: Course, notebooks: list[Path], assignment: str | None) -> tuple[dict[str, Path], list[str]]:
    """assignment id -> the notebook to grade, and notes for the student (notebooks left out)."""
    groups: dict[str, list[Path]] = {}
    notes = []
    for path in notebooks:
        aid = assignment or _assignment_of(course, path)
        if aid is None:
            notes.append(f"{path.name}: not graded, the grader cannot tell which assignment it is (name it like "
                         f"the original notebook: {', '.join(course.assignment_ids())})")
            continue
        groups.setdefault(aid, []).append(path)
    chosen = {}
    for aid, paths in groups.items():
        def rank(p: Path, aid=aid):
            try:
                own = read_notebook(p).get("metadata", {}).get("cnn_course", {}).get("assignment")
            except NotebookError:
                own = None
            return (p.name == f"{aid}.ipynb", own == aid, p.stat().st_mtime)

        best = max(paths, key=rank)
        chosen[aid] = best
        for other in paths:
            if other != best:
                notes.append(f"{other.name}: not graded, {best.name} was graded for {aid} "
                             "(submit one notebook per assignment)")
    return chosen, notes


def _merge(parts: list[dict]) -> dict:
    if len(parts) == 1:
        return parts[0]
    tests = []
    for part in parts:
        tests += part.get("tests", [])
    for i, t in enumerate(tests, 1):
        t["number"] = str(i)
    return {"score": round(sum(p.get("score", 0) for p in parts), 6),
            "max_score": round(sum(p.get("max_score", 0) for p in parts), 6),
            "execution_time": round(sum(p.get("execution_time", 0) for p in parts), 3),
            "output": "\n\n".join(p.get("output", "") for p in parts),
            "stdout_visibility": "hidden", "tests": tests,
            "extra_data": {"parts": [p.get("extra_data", {}) for p in parts]}}


def grade_one(source: Path, notebook: Path, aid: str, timeout: float) -> dict:
    """Grade one notebook with ``python -m autograder grade`` in its own process; a results dict."""
    with tempfile.TemporaryDirectory(prefix="gradescope-") as tmp:
        out = Path(tmp) / "results.json"
        cmd = [sys.executable, "-m", "autograder", "grade", str(notebook), "--assignment", aid, "--results", str(out)]
        env = {**os.environ, "CNN_COURSE_ROOT": str(source), "CNN_COURSE_CHECKS": str(source / "autograder" / "checks"),
               "PYTHONPATH": os.pathsep.join([str(source), *filter(None, [os.environ.get("PYTHONPATH")])])}
        try:
            proc = subprocess.run(cmd, cwd=source, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return _result(f"{aid}: {STUDENT_GRADER_FAILED}", details=f"grading took over {timeout:.0f} s and was stopped")
        # The grader's own log: on this script's stdout, which Gradescope shows to instructors only.
        print(proc.stdout[-20000:], end="")
        print(proc.stderr[-20000:], end="", file=sys.stderr)
        if out.exists():
            try:
                data = json.loads(out.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                return _result(f"{aid}: {STUDENT_GRADER_FAILED}", details=f"unreadable results.json: {exc}")
            if proc.returncode != 0:
                data.setdefault("tests", []).append(
                    {"name": "grader problems (instructors only)", "score": 0.0, "max_score": 0.0, "status": "failed",
                     "output": (proc.stderr or "")[-5000:], "visibility": "hidden"})
            return data
        reason = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return _result(f"{aid}: {STUDENT_GRADER_FAILED}",
                       details=f"exit code {proc.returncode}: {reason}\n{proc.stderr[-10000:]}")


def run(root: Path, assignment: str | None) -> int:
    source, submission, results = root / "source", root / "submission", root / "results" / "results.json"
    start = time.monotonic()
    course = Course.at(source)
    notebooks = course.find_notebooks(submission) if submission.is_dir() else []
    if not notebooks:
        want = f"{assignment}.ipynb" if assignment else "your assignment's .ipynb notebook"
        _write_json(results, _result(f"No notebook was found in your submission: upload {want} itself "
                                     "(not a zip, a link or a PDF)."))
        return 0
    chosen, notes = choose(course, notebooks, assignment)
    parts = []
    for aid, path in sorted(chosen.items()):
        timeout = course.get(aid).settings.total_timeout + 300
        parts.append(grade_one(source, path, aid, timeout))
    data = _merge(parts) if parts else _result("No notebook of this course's assignments was found in your "
                                               "submission.")
    if notes:
        data["output"] = "\n".join(notes) + "\n\n" + data.get("output", "")
    data.setdefault("stdout_visibility", "hidden")
    data.setdefault("execution_time", round(time.monotonic() - start, 3))
    _write_json(results, data)
    return 0


def warm(source: Path) -> int:
    """Grade each assignment's reference once (fills the reference cache); 1 if one is not full marks."""
    from autograder.authoring.notebook_builder import fill_answers, solution_sources

    course = Course.at(source)
    status = 0
    for aid in course.assignment_ids():
        a = course.get(aid)
        nb = fill_answers(read_notebook(a.release_notebook), solution_sources(read_notebook(a.solution_notebook)))
        with tempfile.TemporaryDirectory(prefix="warm-") as tmp:
            path = Path(tmp) / f"{aid}.ipynb"
            import nbformat

            nbformat.write(nb, path)
            os.chmod(tmp, 0o755)
            data = grade_one(source, path, aid, a.settings.total_timeout + 300)
        full = data.get("max_score") and data.get("score") == data.get("max_score")
        print(f"warm-up {aid}: the reference scores {data.get('score')} / {data.get('max_score')}"
              + ("" if full else "   <-- WARNING: NOT FULL MARKS, see the log above"))
        status |= 0 if full else 1
    return status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.integrations.export.gradescope_runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="grade ROOT/submission into ROOT/results/results.json")
    r.add_argument("--root", type=Path, default=Path(os.environ.get("AUTOGRADER_ROOT") or "/autograder"))
    r.add_argument("--assignment")
    w = sub.add_parser("warm", help="grade every bundled reference once (image build time)")
    w.add_argument("--source", type=Path, required=True, help="the bundle's folder (where setup.sh is)")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.root.resolve(), args.assignment)
    return warm(args.source.resolve())


if __name__ == "__main__":
    sys.exit(main())
