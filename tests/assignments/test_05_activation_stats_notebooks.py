"""05_activation_stats as whole notebooks: layout, the solution (full marks within the time budget),
the release (zero points, no crash), the robustness of the BatchNorm check, and grading end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest
import torch

from autograder.authoring.notebook_builder import fill_answers, solution_sources
from autograder.notebooks import grade_id, is_solution_cell, is_test_cell, nbgrader_meta
from tests.conftest import REPO, failed_closed, run_solution_notebook

AID = "05_activation_stats"
SOLUTION = REPO / "solutions" / AID / f"{AID}.ipynb"
RELEASE = REPO / "assignments" / AID / f"{AID}.ipynb"
POINTS = {"test_ActivationStats": 11, "test_dead_fraction": 5, "test_color_dim": 5, "test_conv_bn": 8,
          "test_fit_one_cycle": 7}
WRITTEN = {"q_dead_units": 2, "q_batch_size": 2, "q_batchnorm": 2, "q_hook_return": 1, "q_one_cycle": 1,
           "q_first_bin": 1}
FUNCTIONS = ("ActivationStats", "dead_fraction", "color_dim", "conv_bn", "fit_one_cycle")
BUDGET_S = 120



def test_notebook_layout_and_points():
    nb = nbformat.read(SOLUTION, as_version=4)
    assert nb.metadata["cnn_course"]["assignment"] == AID
    assert {grade_id(c): nbgrader_meta(c)["points"] for c in nb.cells if is_test_cell(c)} == POINTS
    written = {grade_id(c): nbgrader_meta(c)["points"] for c in nb.cells
               if c.cell_type == "markdown" and is_solution_cell(c)}
    assert written == WRITTEN
    assert sum(p > 1 for p in written.values()) == 3            # three questions that ask for an explanation
    assert 3 <= sum(p == 1 for p in written.values()) <= 4      # and short recall questions, one point each
    assert set(FUNCTIONS) <= set(solution_sources(nb))
    # The experiments (four trainings, each plotted) are demo cells: the grader's reference skips them.
    demo = "\n".join(c.source for c in nb.cells if "demo" in c.metadata.get("tags", []))
    assert demo.count("run_experiment(") >= 4 and "color_dim(" in demo and "plot_layer_stats(" in demo
    # Magics only in demo cells.
    for c in nb.cells:
        if c.cell_type == "code" and "demo" not in c.metadata.get("tags", []):
            assert not any(line.lstrip().startswith(("%", "!")) for line in c.source.splitlines())


def test_release_has_stubs_and_no_solutions_or_hidden_tests():
    nb = nbformat.read(RELEASE, as_version=4)
    text = nbformat.writes(nb)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "hidden=True", "register_forward_hook(make_hook",
                   "OneCycleLR(opt, max_lr=max_lr, total_steps", "bias=False), nn.BatchNorm2d(nf)]"):
        assert marker not in text, marker
    sources = solution_sources(nb)
    for name in FUNCTIONS:
        src = sources[name]
        assert '"""' in src and "raise NotImplementedError()" in src, name
    # Every method of the class is a stub, and the class still defines (so the notebook runs on).
    assert sources["ActivationStats"].count("raise NotImplementedError()") == 4
    namespace: dict = {}
    exec(compile(sources["ActivationStats"], "<release>", "exec"), namespace)  # noqa: S102 - our own release
    with pytest.raises(NotImplementedError):
        namespace["ActivationStats"]([])


@pytest.mark.slow
def test_solution_notebook_passes_its_public_checks_within_budget(fashion_mnist_root):
    # Every public check passes and no other cell fails; the hidden blocks fail closed in a kernel (full marks
    # for the reference come from the engine: test_05_activation_stats.py and the agreement tests).
    nb, seconds = run_solution_notebook(SOLUTION, timeout=600)
    assert failed_closed(nb) == set(POINTS)
    for cell in nb.cells:
        if cell.cell_type == "code" and is_test_cell(cell):
            assert not [o for o in cell.outputs if o.get("output_type") == "stream" and o.get("name") == "stderr"]
    assert seconds < BUDGET_S, f"the solution notebook took {seconds:.0f} s (budget {BUDGET_S} s)"


@pytest.mark.slow
def test_batchnorm_check_holds_for_the_reference_on_ten_seeds(fashion_mnist_root):
    """The hidden 'BatchNorm beats plain' check must not fail a correct submission by bad luck."""
    from autograder.checks.a05_activation_stats.common import batchnorm_experiment
    from autograder.course import Course
    from autograder.grading.reference import load_reference

    ref = load_reference(Course().get(AID))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = [(seed, batchnorm_experiment(ref, seed)) for seed in range(10)]
    finally:
        torch.set_num_threads(before)
    print("\nseed  plain acc  BN acc  margin | plain dead  BN dead  margin")
    for seed, r in rows:
        print(f"{seed:4d}  {r['plain_acc']:9.3f}  {r['batchnorm_acc']:6.3f}  {r['batchnorm_acc'] - r['plain_acc']:6.3f} | "
              f"{r['plain_dead']:10.3f}  {r['batchnorm_dead']:7.3f}  {r['plain_dead'] - r['batchnorm_dead']:6.3f}")
    acc_margins = [r["batchnorm_acc"] - r["plain_acc"] for _, r in rows]
    dead_margins = [r["plain_dead"] - r["batchnorm_dead"] for _, r in rows]
    # 10 of 10, with room to spare (measured: accuracy margins >= 0.11, dead-fraction margins >= 0.19).
    assert min(acc_margins) > 0.05, acc_margins
    assert min(dead_margins) > 0.08, dead_margins


WRONG_COLOR_DIM = "def color_dim(stats, i):\n    return torch.stack(stats.hists[i]).float().t()\n"
CONV_BN_WITH_BIAS = '''
def conv_bn(ni, nf, ks=3, stride=2, act=True):
    layers = [nn.Conv2d(ni, nf, ks, stride, padding=ks // 2), nn.BatchNorm2d(nf)]
    if act:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)
'''


@pytest.mark.slow
def test_graded_end_to_end_with_the_cli(fashion_mnist_root, tmp_path):
    release = nbformat.read(RELEASE, as_version=4)
    answers = solution_sources(nbformat.read(SOLUTION, as_version=4))
    answers.pop("fit_one_cycle")            # left as the release's stub
    answers["color_dim"] = WRONG_COLOR_DIM  # forgets log1p
    answers["conv_bn"] = CONV_BN_WITH_BIAS  # keeps the convolution's bias
    submission = tmp_path / f"{AID}.ipynb"
    nbformat.write(fill_answers(release, answers), submission)
    results_path = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(submission), "--results", str(results_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(results_path.read_text())
    tests = {t["name"]: t for t in results["tests"]}
    for t in results["tests"]:
        assert {"name", "score", "max_score", "status", "visibility"} <= set(t)

    def cell_score(cell):
        return sum(t["score"] for t in results["tests"] if t["name"].startswith(f"{cell}: "))

    assert results["max_score"] == sum(POINTS.values())
    assert cell_score("test_ActivationStats") == 11
    assert cell_score("test_dead_fraction") == 5
    assert cell_score("test_color_dim") == 1          # only the shape check
    assert cell_score("test_conv_bn") == 1            # only the output shape; the BN experiment needs fit_one_cycle
    assert cell_score("test_fit_one_cycle") == 0
    assert results["score"] == 18

    hooks = tests["test_ActivationStats: test_ActivationStats_with_block_exception"]
    assert hooks["status"] == "passed" and hooks["visibility"] == "visible"
    hidden = tests["test_color_dim: test_color_dim_matches_reference_on_recorded_stats"]
    assert hidden["status"] == "failed" and hidden["visibility"] == "after_published" and hidden["score"] == 0
    bias = tests["test_conv_bn: test_conv_bn_layers"]
    assert bias["status"] == "failed" and "bias" in bias["output"]
    trace = tests["test_fit_one_cycle: test_fit_one_cycle_steps_lr_every_batch"]
    assert trace["status"] == "failed" and "NotImplementedError" in trace["output"]
    manual = [t for t in results["tests"] if t["name"].endswith("written answer")]
    assert len(manual) == len(WRITTEN)
