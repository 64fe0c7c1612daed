"""The demo's class (``make demo``): its two attackers submit their honest twin's answers plus the attack,
and the table's line for each compares them with the twin and says why in one line."""

from __future__ import annotations

import nbformat

from autograder.course import Course
from autograder.integrations.demo import FORK_BOMB, REBIND_CHECK, ROSTER, attack_lines, student_notebook
from autograder.notebooks import grade_id

AID = "02_conv_arithmetic"


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def test_mallory_is_bruno_plus_a_rebound_check():
    course = Course()
    release = nbformat.read(course.get(AID).release_notebook, as_version=4)
    mallory, bruno = (student_notebook(s, course, AID, release) for s in ("mallory", "bruno"))
    changed = [(a, b) for a, b in zip(_code(mallory), _code(bruno), strict=True) if a != b]
    assert len(changed) == 1 and changed[0][0] == changed[0][1] + REBIND_CHECK
    assert "check = lambda" in REBIND_CHECK and "nbgrader" in REBIND_CHECK  # points read from the metadata


def test_fiona_is_ada_plus_a_fork_bomb_in_01_only_where_processes_are_capped():
    course = Course()
    aid = "01_apply_kernel"
    release = nbformat.read(course.get(aid).release_notebook, as_version=4)
    fiona, ada = (student_notebook(s, course, aid, release) for s in ("fiona", "ada"))
    assert len(fiona.cells) == len(ada.cells) + 1
    (bomb,) = [c for c in fiona.cells if c.source == FORK_BOMB]
    assert grade_id(bomb) is None and "os.fork()" in FORK_BOMB
    assert _code(student_notebook("fiona", course, aid, release, fork_bomb=False)) == _code(ada)
    other = nbformat.read(course.get(AID).release_notebook, as_version=4)
    assert _code(student_notebook("fiona", course, AID, other)) == _code(student_notebook("ada", course, AID, other))
    assert student_notebook("fiona", course, "04_cnn", None) is None  # 04-06: ada and blank only


def test_the_table_explains_each_attacker_in_one_line_against_its_twin():
    ids = ["01_apply_kernel", "02_conv_arithmetic"]
    ids = [*ids, "04_cnn"]
    table = {s.name: {aid: [10.0, 20.0] for aid in ids} for s in ROSTER}
    table["mallory"] = {"01_apply_kernel": [10.0, 20.0], "02_conv_arithmetic": [12.0, 20.0], "04_cnn": None}
    table["fiona"]["04_cnn"] = None  # compared on the assignments both submitted
    lines = attack_lines(table, ids)
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    mallory, fiona = lines
    assert mallory.startswith("mallory (") and ": 22 points, MORE THAN bruno's 20;" in mallory
    assert ": 20 points, no more than ada's 20;" in fiona and "process cap" in fiona
    assert "NOT run" in attack_lines(table, ids, fork_bomb=False)[1]
