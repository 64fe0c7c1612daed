"""`SandboxedExecute`: nbgrader's autograde on the sandboxed engine, and the hidden blocks failing closed elsewhere.

The quick tests write a made-up engine report into a notebook and score it with nbgrader's own
``determine_grade`` (what ``SaveAutoGrades`` records); the slow ones run ``nbgrader autograde`` on
the engine's tiny fixture course: hostile submissions score no more than their honest twins, those
that only crash or hang keep the twin's points, and under nbgrader's stock ``Execute`` every
hidden block fails closed with a one-line reason.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder.authoring.notebook_builder import fill_answers
from autograder.course import Course
from autograder.grading.reports import GradeReport
from autograder.grading.run_checks import CheckResult
from autograder.integrations.incell import Checker, HiddenChecksNotRunHere
from autograder.integrations.nbgrader_autograde import SandboxedExecute, fill_notebook
from autograder.submission.sandboxed import CellOutcome
from tests.nbgrader.conftest import make_course, submit

FIXTURE = Path(__file__).resolve().parents[1] / "engine" / "fixture_course"
AID = "00_fixture"


# -- the configuration -----------------------------------------------------------------------------

def test_the_config_puts_sandboxed_execute_in_executes_place_and_keeps_the_rest():
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(Course().root)).load_config()
    default = Autograde.class_traits()["autograde_preprocessors"].default()
    assert [p.__name__ for p in default][0] == "Execute"
    assert list(config.Autograde.autograde_preprocessors) == [SandboxedExecute if p is Execute else p for p in default]
    assert "sanitize_preprocessors" not in config.Autograde  # nbgrader's sanitising (OverwriteCells, ...) stays
    assert config.OverwriteCells.add_missing_cells is True


def test_every_option_of_sandboxed_execute_says_what_it_does():
    traits = SandboxedExecute.class_traits(config=True)
    assert {"course_root", "checks_root", "threads", "student_output", "enabled"} <= set(traits)
    for name, trait in traits.items():
        assert trait.help and len(trait.help) > 20, name


# -- writing a report into the notebook ------------------------------------------------------------

def _meta(gid, **kw):
    return {"nbgrader": {"grade_id": gid, "schema_version": 3, "locked": False, "solution": False, "grade": False, **kw}}


def _notebook():
    cells = [new_code_cell("import torch\ncheck = Checker('x')", metadata=_meta("setup", locked=True)),
             new_code_cell("def f(x):\n    print('in f')\n    return x", metadata=_meta("f", solution=True)),
             new_code_cell('check("test_f")\n### BEGIN HIDDEN TESTS\ncheck("test_f", hidden=True)\n### END HIDDEN TESTS',
                           metadata=_meta("test_f", grade=True, locked=True, points=3)),
             new_code_cell("def g(x):\n    while True:\n        pass", metadata=_meta("g", solution=True)),
             new_code_cell('check("test_g")', metadata=_meta("test_g", grade=True, locked=True, points=2)),
             new_markdown_cell("My answer.", metadata=_meta("q_why", grade=True, solution=True, points=2)),
             new_code_cell("print('my own cell')")]
    for i, c in enumerate(cells):
        c["id"] = f"c{i}"
    return new_notebook(cells=cells)


def _result(name, cell, points, max_points, visibility="public", status=None, message=""):
    status = status or ("passed" if points == max_points else "failed")
    return CheckResult(name=name, cell=cell, points=points, max_points=max_points, kind="numerical",
                       visibility=visibility, status=status, message=message, hint="", seconds=0.0)


def _outcome(label, origin, status="ok", message="", output=""):
    outcome = CellOutcome(label, origin, status, message)
    outcome.output = output  # the field the engine is getting; set either way
    return outcome


def _report(**kw):
    report = GradeReport(submission="x.ipynb", assignment="00_x")
    report.results = [_result("test_f_public", "test_f", 1, 1),
                      _result("test_f_hidden", "test_f", 0, 2, "hidden", message="f(3): wrong values (largest difference 0.5)"),
                      _result("test_g_runs", "test_g", 0, 2, message="g(1) did not finish within 5 s")]
    report.cells = [_outcome("setup", "release"), _outcome("f", "submission", output="in f\n"),
                    _outcome("g", "submission"), _outcome("cell 7", "submission", "crashed",
                                                          "the notebook's process was killed", output="my own cell\n")]
    for key, value in kw.items():
        setattr(report, key, value)
    return report


def _grades(nb) -> dict[str, float]:
    from nbgrader import utils

    return {c.metadata["nbgrader"]["grade_id"]: utils.determine_grade(c)[0] for c in nb.cells
            if utils.is_grade(c) and c.cell_type == "code"}


def _text(cell, name="stdout"):
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == name)


def test_test_cells_get_their_check_lines_then_the_engines_points():
    nb = fill_notebook(_notebook(), _report())
    assert _grades(nb) == {"test_f": 1.0, "test_g": 0.0}
    test_f = nb.cells[2]
    assert [o.output_type for o in test_f.outputs] == ["stream", "execute_result"]
    text = _text(test_f)
    assert "test_f: 1 of 3 points" in text and "✓ test_f_public" in text
    # A hidden check by name and message; nothing else of it.
    assert "✗ test_f_hidden [hidden, numerical, 2 pts]" in text and "largest difference 0.5" in text
    assert "check(" not in text and "BEGIN HIDDEN" not in text
    assert nb.cells[4].outputs[-1].data["text/plain"] == "0.0"


def test_students_cells_show_what_they_printed_and_a_crash_in_red_without_costing_points():
    nb = fill_notebook(_notebook(), _report())
    assert _text(nb.cells[1]) == "in f\n"
    assert _text(nb.cells[6]) == "my own cell\n"
    assert _text(nb.cells[6], "stderr") == "[grader] this cell crashed: the notebook's process was killed\n"
    assert nb.cells[5].get("outputs") is None  # the written answer is left alone
    assert _grades(nb)["test_f"] == 1.0
    assert not fill_notebook(_notebook(), _report(), student_output=False).cells[1].outputs


def test_grader_failures_score_zero_say_why_and_log_an_error(caplog):
    log = logging.getLogger("test-sandboxed-execute")
    with caplog.at_level(logging.ERROR, logger=log.name):
        nb = fill_notebook(_notebook(), None, failure="grading could not run: the sandbox could not start",
                           log=log, regrade={"assignment": "00_x", "student": "ann"})
    assert _grades(nb) == {"test_f": 0.0, "test_g": 0.0}
    assert "GRADER PROBLEM" in _text(nb.cells[2]) and "the sandbox could not start" in _text(nb.cells[2])
    assert "nbgrader autograde 00_x --student ann --force" in _text(nb.cells[2])

    caplog.clear()
    with caplog.at_level(logging.ERROR, logger=log.name):
        nb = fill_notebook(_notebook(), _report(grader_problems=["hidden.py: ImportError: no module named x"]), log=log)
    assert _grades(nb) == {"test_f": 0.0, "test_g": 0.0}  # not the public points alone: they would look like a grade
    assert "ImportError" in caplog.text

    caplog.clear()
    broken = _report()
    broken.results[0] = _result("test_f_public", "test_f", 0, 1, status="error", message="the check itself failed: KeyError")
    broken.results.append(_result("test_g_more", "test_g", 2, 2))
    with caplog.at_level(logging.ERROR, logger=log.name):
        nb = fill_notebook(_notebook(), broken, log=log)
    assert _grades(nb) == {"test_f": 0.0, "test_g": 2.0}  # only the cell whose check broke
    assert "test_f" in caplog.text and "itself failed" in caplog.text


def test_a_test_cell_without_checks_scores_zero():
    report = _report()
    report.results = [r for r in report.results if r.cell != "test_g"]
    nb = fill_notebook(_notebook(), report)
    assert _grades(nb) == {"test_f": 1.0, "test_g": 0.0}
    assert "no check of the grader belongs" in _text(nb.cells[4])


def test_the_hidden_block_fails_closed_in_a_kernel_with_one_line():
    check = Checker("02_conv_arithmetic")
    with pytest.raises(HiddenChecksNotRunHere) as info:
        check("test_conv_out_size", hidden=True)
    (line,) = info.value._render_traceback_()
    assert "\n" not in line and "nbgrader_config.py" in line and "SandboxedExecute" in line and "scores 0" in line


# -- nbgrader autograde on the fixture course ------------------------------------------------------

REBIND = ('\nimport glob, json\n'
          'def _points(cell):\n'
          '    for p in glob.glob("*.ipynb"):\n'
          '        for c in json.load(open(p))["cells"]:\n'
          '            m = c.get("metadata", {}).get("nbgrader", {})\n'
          '            if m.get("grade_id") == cell:\n'
          '                return float(m["points"])\n'
          '    return 0.0\n'
          'check = lambda cell, *a, **k: _points(cell)\n')
PATCH_CHECKER = ('\nimport autograder.integrations.incell as _incell\n'
                 '_incell.Checker.__call__ = lambda self, cell, *a, **k: 4.0\n'
                 'check = _incell.Checker("00_fixture")\n')


@pytest.fixture(scope="module")
def fixture_graded(tmp_path_factory):
    """The fixture course's submissions, autograded by nbgrader with the course's config (and by the engine)."""
    from autograder.grading.grade_notebook import grade_notebook
    from autograder.integrations.nbgrader_api import cell_scores, nbgrader_api
    from autograder.sandbox.probe import machine_protections
    from tests.adversarial.conftest import WRONG
    from tests.engine.conftest import CORRECT

    fixture = Course.at(FIXTURE, FIXTURE / "checks")
    root = make_course(tmp_path_factory.mktemp("fixture") / "course", [AID], source=fixture)
    api = nbgrader_api(root, engine_root=fixture.root, checks_root=fixture.checks_root)
    assert api.generate_assignment(AID, force=True, create=True)["success"]
    release = nbformat.read(fixture.get(AID).release_notebook, as_version=4)
    probe = machine_protections()
    extra = {"exits": "import os\nos._exit(0)", "hangs": "while True:\n    pass"}
    if probe["cgroup"] or probe["user"]:  # never fork-bomb a machine where nothing caps the processes
        extra["fork_bomb"] = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    plan = {"correct": fill_answers(release, CORRECT), "wrong": fill_answers(release, WRONG),
            "rebinds_check": fill_answers(release, {**WRONG, "double": WRONG["double"] + REBIND}),
            "patches_checker": fill_answers(release, {**WRONG, "double": WRONG["double"] + PATCH_CHECKER}),
            "prints": fill_answers(release, {**CORRECT, "double": CORRECT["double"] + "\nprint('hello from double')"})}
    for name, source in extra.items():
        nb = fill_answers(release, CORRECT)
        nb.cells.insert(4, new_code_cell(source))
        plan[name] = nb
    for student, nb in plan.items():
        submit(root, AID, student, nb)
    out = {"root": root, "nbgrader": {}, "engine": {}, "notebooks": {}, "students": list(plan)}
    seconds = {}
    for student in plan:
        start = time.monotonic()
        result = api.autograde(AID, student)
        assert result["success"], result.get("log")
        seconds[student] = round(time.monotonic() - start, 1)
        out["nbgrader"][student] = cell_scores(api, AID, student)
        out["notebooks"][student] = nbformat.read(root / "autograded" / student / AID / f"{AID}.ipynb", as_version=4)
        if student not in extra:  # those only crash or hang: compared with their twin, not graded twice
            report = grade_notebook(root / "submitted" / student / AID / f"{AID}.ipynb", course=fixture)
            out["engine"][student] = {cell: got for cell, (got, _) in report.cell_scores().items()}
    print(f"\nnbgrader autograde seconds per submission: {seconds}")
    return out


@pytest.mark.slow
def test_nbgrader_scores_equal_the_engines_on_the_fixture(fixture_graded):
    for student, by_engine in fixture_graded["engine"].items():
        assert fixture_graded["nbgrader"][student] == by_engine, student
    assert fixture_graded["nbgrader"]["correct"] == {"test_double": 4.0, "test_smooth": 2.0, "test_count": 1.0}


@pytest.mark.slow
@pytest.mark.parametrize("student", ["rebinds_check", "patches_checker"])
def test_in_kernel_attacks_on_check_score_what_their_honest_twin_scores(fixture_graded, student):
    scores, twin = fixture_graded["nbgrader"][student], fixture_graded["nbgrader"]["wrong"]
    assert all(scores[c] <= twin[c] for c in twin) and scores == twin
    assert sum(twin.values()) == 0


@pytest.mark.slow
@pytest.mark.parametrize("student", ["exits", "hangs", "fork_bomb"])
def test_a_submission_that_only_crashes_or_hangs_keeps_its_twins_points(fixture_graded, student):
    if student not in fixture_graded["students"]:
        pytest.skip("no process cap on this machine: the fork bomb is not run")
    assert fixture_graded["nbgrader"][student] == fixture_graded["nbgrader"]["correct"]
    nb = fixture_graded["notebooks"][student]
    bad = nb.cells[4]
    assert not bad.metadata.get("nbgrader") and "[grader] this cell" in _text(bad, "stderr")


@pytest.mark.slow
def test_autograded_notebook_shows_check_lines_and_the_students_output(fixture_graded):
    from autograder.submission.sandboxed import CellOutcome

    nb = fixture_graded["notebooks"]["prints"]
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells if c.cell_type == "code"}
    assert "✓ test_double_matches_reference [hidden, numerical, 2 pts]" in _text(cells["test_double"])
    assert cells["test_double"].outputs[-1].data["text/plain"] == "4.0"
    if "output" in CellOutcome.__dataclass_fields__:
        assert "hello from double" in _text(cells["double"])


@pytest.mark.slow
def test_under_stock_execute_every_hidden_block_fails_closed(tmp_path, monkeypatch):
    """Without the course's config (nbgrader's own Execute) no test cell trusts the kernel: each scores 0."""
    from autograder.integrations.nbgrader_api import cell_scores, nbgrader_api
    from tests.engine.conftest import CORRECT

    fixture = Course.at(FIXTURE, FIXTURE / "checks")
    monkeypatch.setenv("CNN_COURSE_ROOT", str(FIXTURE))  # the kernel's public checks find the fixture course
    monkeypatch.setenv("CNN_COURSE_CHECKS", str(FIXTURE / "checks"))
    root = make_course(tmp_path / "course", [AID], source=fixture)
    with open(root / "nbgrader_config.py", "a") as f:  # an instructor who puts nbgrader's own Execute back
        f.write("\nfrom nbgrader.converters import Autograde as _A\n"
                "c.Autograde.autograde_preprocessors = _A.class_traits()['autograde_preprocessors'].default()\n")
    api = nbgrader_api(root, timeout=120)
    assert api.generate_assignment(AID, force=True, create=True)["success"]
    release = nbformat.read(fixture.get(AID).release_notebook, as_version=4)
    submit(root, AID, "ann", fill_answers(release, CORRECT))
    assert api.autograde(AID, "ann")["success"]
    assert cell_scores(api, AID, "ann") == {"test_double": 0.0, "test_smooth": 0.0, "test_count": 0.0}
    nb = nbformat.read(root / "autograded" / "ann" / AID / f"{AID}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code":
            (error,) = [o for o in cell.outputs if o.output_type == "error"]
            assert error.ename == "HiddenChecksNotRunHere"
            (line,) = error.traceback
            assert "nbgrader_config.py" in line and "SandboxedExecute" in line
