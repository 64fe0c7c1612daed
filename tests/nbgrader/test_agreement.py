"""`nbgrader autograde` with the course's configuration and `python -m autograder grade` give the same points.

With ``nbgrader_config.py``, nbgrader's autograde grades with the sandboxed engine
(:class:`autograder.integrations.nbgrader_autograde.SandboxedExecute`), so the two must agree exactly, per test
cell.  One temporary nbgrader course holds every assignment; the reference, the blank release
and wrong submissions of each (several for 01-03, one for 04-06) are autograded once by nbgrader
into its gradebook and once by the engine (02's by the ``grade-class`` command line; the others by
``grade_notebook``, what ``grade`` calls, in a process of its own), both sides at once, and every
assertion below reads those runs:

- per cell, the gradebook's scores equal the engine's, for every submission;
- the reference gets every point of every test cell, the blank release none, each wrong one less;
- a student who rebinds ``check`` in a solution cell (the attack that scored full marks when the
  test cells ran in the student's kernel) scores exactly what the same answers score without it;
- ``nbgrader export`` gives the engine's totals (those of ``grade-class``'s ``grades.csv`` for 02);
- ``nbgrader generate_feedback`` shows the engine's messages, hidden checks by name and message
  but never their code, the written answers as the student wrote them, and the totals.
"""

from __future__ import annotations

import csv
import html as html_module
import json
import re
import subprocess
import sys
import time

import nbformat
import pytest

from autograder.authoring.notebook_builder import fill_answers, solution_sources
from autograder.course import Course
from autograder.integrations.demo import REBIND_CHECK, load_submissions
from autograder.integrations.nbgrader_api import cell_scores, nbgrader_api
from autograder.notebooks import grade_id, is_test_cell, nbgrader_meta
from tests.nbgrader.conftest import NOISE, make_course, run_nbgrader, submit

pytestmark = pytest.mark.slow

LIGHT = ("01_apply_kernel", "02_conv_arithmetic", "03_unfold")
HEAVY = ("04_cnn", "05_activation_stats", "06_transfer_learning")
CLI_AID = "02_conv_arithmetic"  # graded with the `grade-class` command line (the others with the engine in-process)
#: A written answer, kept verbatim in the feedback.
WRITTEN = "My own words on this question, kept as I wrote them."
#: The in-kernel attack of the issue (`check` rebound to return each test cell's points): the demo's mallory.


def _release(course, aid):
    return nbformat.read(course.get(aid).release_notebook, as_version=4)


def _stub(release, gid):
    return next(c.source for c in release.cells if grade_id(c) == gid)


def submissions(course: Course, aid: str) -> dict[str, nbformat.NotebookNode]:
    """student -> notebook: the reference, the blank release and wrong answers of ``aid``."""
    release = _release(course, aid)
    reference = solution_sources(nbformat.read(course.get(aid).solution_notebook, as_version=4))
    for cell in release.cells:  # a written answer, which the feedback must keep as it is
        if cell.cell_type == "markdown" and nbgrader_meta(cell).get("solution"):
            reference[grade_id(cell)] = WRITTEN
            break
    out = {"reference": fill_answers(release, reference), "blank": release}
    if aid in LIGHT:
        subs = load_submissions(aid)
        wrong = list(subs["WRONG"].values())
        plans = {"wrong_a": wrong[0::3], "wrong_b": wrong[1::4] + list(subs["ALTERNATIVE"].values())[:1],
                 "wrong_c": wrong[2:3]}
        for student, mutants in plans.items():
            answers = dict(reference)
            for mutant in mutants:
                answers.update(mutant)
            out[student] = fill_answers(release, answers)
        if aid == "02_conv_arithmetic":
            answers = dict(reference)
            for mutant in plans["wrong_a"]:
                answers.update(mutant)
            first = next(gid for gid in solution_sources(release))
            answers[first] = answers[first] + REBIND_CHECK
            out["rebinds_check"] = fill_answers(release, answers)
    elif aid == "04_cnn":  # fit left as the stub (the training cell fails), accuracy returns a tensor
        wrong_accuracy = ("def accuracy(logits, targets):\n"
                          "    return (logits.argmax(dim=1) == targets).float().mean()")
        out["wrong_a"] = fill_answers(release, {**reference, "fit": _stub(release, "fit"), "accuracy": wrong_accuracy})
    elif aid == "05_activation_stats":  # no 1cycle training; BatchNorm blocks that keep the conv's bias
        wrong_bn = ("from torch import nn\n\n\ndef conv_bn(ni, nf, ks=3, stride=2, act=True):\n"
                    "    layers = [nn.Conv2d(ni, nf, ks, stride, padding=ks // 2), nn.BatchNorm2d(nf)]\n"
                    "    if act:\n        layers.append(nn.ReLU())\n    return nn.Sequential(*layers)")
        out["wrong_a"] = fill_answers(release, {**reference, "fit_one_cycle": _stub(release, "fit_one_cycle"),
                                                "conv_bn": wrong_bn})
    elif aid == "06_transfer_learning":  # no feature extraction; the new head in the wrong place
        wrong_head = ("from torch import nn\n\n\ndef replace_classifier(model, num_classes):\n"
                      "    model.classifier[1] = nn.Linear(4096, num_classes)\n    return model")
        out["wrong_a"] = fill_answers(release, {**reference, "extract_features": _stub(release, "extract_features"),
                                                "replace_classifier": wrong_head})
    return out


#: Threads for the student's code and the grader's own tensor work, on each side: nbgrader's autograde (in this
#: process) and the engine (in a process of its own) grade at the same time, one core each, with the same setting.
THREADS = 1


def _engine_grade(path: str, aid: str) -> tuple[dict[str, float], float, float, float, str]:
    """``grade_notebook`` (what ``python -m autograder grade`` calls) on one submission, in the engine's process.

    That process grades every submission of the fixture in turn: it loads each reference once and keeps its
    sandbox zygote warm, as this process does for nbgrader's autograde.
    """
    import torch

    from autograder.grading.grade_notebook import grade_notebook

    torch.set_num_threads(THREADS)
    t0 = time.monotonic()
    report = grade_notebook(path, assignment_id=aid, threads=THREADS)
    cells = {cell: got for cell, (got, _) in report.cell_scores().items()}
    return cells, report.score, report.max_score, time.monotonic() - t0, report.protections.get("start", "")


@pytest.fixture(scope="module")
def graded(tmp_path_factory, sandbox_visible_torch_home, fashion_mnist_root):
    """Every submission autograded once by nbgrader (with the course's config) and once by the engine.

    The engine: ``grade-class`` for 02's submissions, ``grade_notebook`` (what ``grade`` calls) for the
    others, in one process that grades them in turn (each reference loaded once).  Both run while nbgrader
    autogrades in this process, so the two sides share the machine's cores instead of taking turns.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch

    course = Course()
    ids = LIGHT + HEAVY
    root = make_course(tmp_path_factory.mktemp("agreement") / "course", ids)
    # The engine's course: the repository, as `grade` uses; the student's code gets the same threads as the engine's.
    api = nbgrader_api(root, engine_root=course.root, threads=THREADS)
    plan = {aid: submissions(course, aid) for aid in ids}
    assert {aid: list(subs) for aid, subs in plan.items()} == {aid: students(aid) for aid in ids}
    for aid, subs in plan.items():
        assert api.generate_assignment(aid, force=True, create=True)["success"]
        for student, nb in subs.items():
            submit(root, aid, student, nb)
    by_nbgrader, by_engine, totals, timings, starts = {}, {}, {}, {}, {}
    t_all = time.monotonic()
    cli_log = root / "grade-class.log"
    with open(cli_log, "wb") as log:
        cli = subprocess.Popen([sys.executable, "-m", "autograder", "grade-class", str(root / "submitted"),
                                "--assignment", CLI_AID, "--jobs", "1", "--out", str(root / "graded")],
                               cwd=course.root, stdout=log, stderr=subprocess.STDOUT)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(THREADS)  # the checks of nbgrader's autograde run in this process
    engine = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {(aid, student): engine.submit(_engine_grade, str(root / "submitted" / student / aid / f"{aid}.ipynb"),
                                                 aid)
                   for aid, subs in plan.items() if aid != CLI_AID for student in subs}
        for aid, subs in plan.items():
            for student in subs:
                t0 = time.monotonic()
                result = api.autograde(aid, student)
                assert result["success"], result.get("log")
                timings[f"nbgrader {aid[:2]}/{student}"] = time.monotonic() - t0
                by_nbgrader[(aid, student)] = cell_scores(api, aid, student)
        for (aid, student), future in futures.items():
            cells, score, max_score, seconds, starts[(aid, student)] = future.result(timeout=1800)
            by_engine[(aid, student)] = cells
            totals[(aid, student)] = (score, max_score)
            timings[f"engine {aid[:2]}/{student}"] = seconds
        cli.wait(timeout=1800)
    finally:
        torch.set_num_threads(threads_before)
        engine.shutdown(wait=True, cancel_futures=True)
        cli.kill()
        cli.wait()
    assert cli.returncode == 0, cli_log.read_text()[-6000:]
    for student in plan[CLI_AID]:
        results = json.loads((root / "graded" / student / f"{CLI_AID}.json").read_text())
        by_engine[(CLI_AID, student)] = {cell: v["score"] for cell, v in results["extra_data"]["cells"].items()}
        totals[(CLI_AID, student)] = (results["score"], results["max_score"])
    print("\nseconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    print(f"nbgrader autograde (sandboxed) in all: {sum(v for k, v in timings.items() if k.startswith('nbgrader')):.0f} s;"
          f" both sides, at once: {time.monotonic() - t_all:.0f} s")
    print("engine worker starts: " + ", ".join(sorted({s.split(' (')[0] for s in starts.values()})))
    return {"root": root, "api": api, "plan": plan, "nbgrader": by_nbgrader, "engine": by_engine, "totals": totals,
            "course": course}


def _points(course, aid) -> dict[str, float]:
    nb = nbformat.read(course.get(aid).solution_notebook, as_version=4)
    return {grade_id(c): float(nbgrader_meta(c)["points"]) for c in nb.cells if is_test_cell(c)}


def students(aid: str) -> list[str]:
    """The students of :func:`submissions` (without building their notebooks)."""
    if aid in HEAVY:
        return ["reference", "blank", "wrong_a"]
    return ["reference", "blank", "wrong_a", "wrong_b", "wrong_c"] + (["rebinds_check"] if aid == "02_conv_arithmetic" else [])


PAIRS = [(aid, s) for aid in LIGHT + HEAVY for s in students(aid)]


@pytest.mark.parametrize("aid,student", PAIRS, ids=[f"{a[:2]}-{s}" for a, s in PAIRS])
def test_gradebook_equals_the_engine_per_cell(graded, aid, student):
    assert graded["nbgrader"][(aid, student)] == pytest.approx(graded["engine"][(aid, student)])


@pytest.mark.parametrize("aid", LIGHT + HEAVY)
def test_reference_gets_every_point_blank_none_wrong_less(graded, aid):
    points = _points(graded["course"], aid)
    scores = {s: v for (a, s), v in graded["nbgrader"].items() if a == aid}
    assert scores["reference"] == pytest.approx(points)
    assert scores["blank"] == dict.fromkeys(points, 0.0)
    for student in ("wrong_a", "wrong_b", "wrong_c"):
        if student in scores:
            assert 0 < sum(scores[student].values()) < sum(points.values()), student


def test_rebinding_check_in_a_solution_cell_gains_nothing(graded):
    aid = "02_conv_arithmetic"
    attack, twin = graded["nbgrader"][(aid, "rebinds_check")], graded["nbgrader"][(aid, "wrong_a")]
    assert attack == twin
    assert sum(twin.values()) < sum(_points(graded["course"], aid).values())


def test_export_gives_the_totals_of_grade_class(graded):
    root, course = graded["root"], graded["course"]
    out = run_nbgrader(root, "export", "--to", str(root / "export.csv"))
    assert not [line for line in out.splitlines() if any(n in line for n in NOISE)], out
    with open(root / "export.csv") as f:
        exported = {(row["assignment"], row["student_id"]): row for row in csv.DictReader(f)}
    for key, row in exported.items():  # nbgrader lists every student for every assignment: 0 where none submitted
        if key not in graded["totals"]:
            assert float(row["score"]) == 0, key
    for (aid, student), (score, max_score) in graded["totals"].items():
        row = exported[(aid, student)]
        written = sum(p for _, p, _ in _written(course, aid))
        assert float(row["score"]) == pytest.approx(score), (aid, student)
        # nbgrader's maximum also counts the written answers, which a person grades.
        assert float(row["max_score"]) == pytest.approx(max_score + written), (aid, student)
    with open(root / "graded" / "grades.csv") as f:
        by_grade_class = {(row["assignment"], row["student"]): row for row in csv.DictReader(f)}
    assert set(by_grade_class) == {k for k in graded["totals"] if k[0] == CLI_AID}
    for key, row in by_grade_class.items():
        assert row["status"] == "graded"
        assert float(exported[key]["score"]) == pytest.approx(float(row["score"])), key


def _written(course, aid):
    from autograder.notebooks import manual_cells

    return manual_cells(_release(course, aid))


def test_feedback_shows_the_engine_messages_written_answers_and_totals(graded):
    root, api, course = graded["root"], graded["api"], graded["course"]
    aid = "02_conv_arithmetic"
    assert api.generate_feedback(aid)["success"]
    html = (root / "feedback" / "wrong_a" / aid / f"{aid}.html").read_text()
    results = json.loads((root / "graded" / "wrong_a" / f"{aid}.json").read_text())  # grade-class's, for 02
    text = html_module.unescape(re.sub(r"<[^>]+>", "", html))
    for test in results["tests"]:
        if test["max_score"] > 0:
            assert test["name"].split(": ", 1)[1] in text, test["name"]
    failed_hidden = [t for t in results["tests"] if t["status"] == "failed" and t["visibility"] == "after_published"]
    assert failed_hidden, "the wrong submission should fail a hidden check"
    first_line = failed_hidden[0]["output"].splitlines()[0]
    assert first_line in text
    # Hidden checks by name and message only: neither the hidden block nor the checks' code.
    hidden_code = course.get(aid).hidden_checks.read_text()
    assert "hidden=True" not in html and "BEGIN HIDDEN TESTS" not in html
    for line in hidden_code.splitlines():
        if line.strip().startswith(("expect", "assert ", "ref.")):
            assert line.strip() not in text, line
    # The written answer as the student wrote it; the totals: autograded points, and the written answers' maximum.
    assert WRITTEN in text
    total = re.search(rf"{aid} \(Score: ([\d.]+) / ([\d.]+)\)", text)
    assert total, "the feedback shows no total"
    written = sum(p for _, p, _ in _written(course, aid))
    assert float(total.group(1)) == pytest.approx(sum(graded["nbgrader"][(aid, "wrong_a")].values()))
    assert float(total.group(2)) == pytest.approx(sum(_points(course, aid).values()) + written)
