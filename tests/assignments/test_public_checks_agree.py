"""The release notebook's own test cells and `python -m autograder check` report the same public points."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from autograder.authoring.notebook_builder import fill_answers, solution_sources
from autograder.course import Course
from autograder.grading.grade_notebook import grade_notebook
from autograder.integrations.demo import load_submissions

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("assignment_id", ["01_apply_kernel", "02_conv_arithmetic", "03_unfold"])
def test_in_notebook_public_checks_match_the_self_check(assignment_id, tmp_path):
    course = Course()
    a = course.get(assignment_id)
    release = nbformat.read(a.release_notebook, as_version=4)
    answers = solution_sources(nbformat.read(a.solution_notebook, as_version=4))
    for mutant in list(load_submissions(assignment_id)["WRONG"].values())[::4]:
        answers.update(mutant)  # several functions wrong, the rest right
    path = tmp_path / f"{assignment_id}.ipynb"
    nb = fill_answers(release, answers)
    nbformat.write(nb, path)

    report = grade_notebook(path, assignment_id=assignment_id, hidden=False, threads=1)
    by_check = {cell: got for cell, (got, _) in report.cell_scores().items()}
    public_max = {cell: total for cell, (_, total) in report.cell_scores().items()}

    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(a.release_notebook.parent)}}).execute()
    in_notebook = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            values = [o for o in cell.outputs if o.output_type == "execute_result"]
            gid = meta["grade_id"]
            # No value means every public check passed (see autograder/integrations/incell.py).
            in_notebook[gid] = float(values[0].data["text/plain"]) if values else public_max.get(gid, 0.0)
    assert {k: v for k, v in in_notebook.items() if k in by_check} == pytest.approx(by_check)
    assert sum(by_check.values()) < sum(public_max.values())  # the mutants did lose points
