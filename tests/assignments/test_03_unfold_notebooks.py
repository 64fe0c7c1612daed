"""03_unfold as whole notebooks: the solution (full marks, time budget), the release, and grading end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from autograder.authoring.notebook_builder import fill_answers, solution_sources
from autograder.notebooks import grade_id, is_solution_cell, is_test_cell, nbgrader_meta
from tests.conftest import REPO, failed_closed, run_solution_notebook

AID = "03_unfold"
SOLUTION = REPO / "solutions" / AID / f"{AID}.ipynb"
RELEASE = REPO / "assignments" / AID / f"{AID}.ipynb"
POINTS = {"test_col2im_shape": 5, "test_im2col": 10, "test_conv2d_unfold": 12}
BUDGET_S = 60
FUNCTIONS = ("col2im_shape", "im2col", "conv2d_unfold")



def test_notebook_layout_and_points():
    nb = nbformat.read(SOLUTION, as_version=4)
    assert nb.metadata["cnn_course"]["assignment"] == AID
    tests = {grade_id(c): nbgrader_meta(c)["points"] for c in nb.cells if is_test_cell(c)}
    assert tests == POINTS
    written = {grade_id(c): nbgrader_meta(c)["points"] for c in nb.cells
               if c.cell_type == "markdown" and is_solution_cell(c)}
    assert all(p > 0 for p in written.values())
    assert sum(p > 1 for p in written.values()) == 3            # three questions that ask for an explanation
    assert 3 <= sum(p == 1 for p in written.values()) <= 4      # and short recall questions, one point each
    assert set(FUNCTIONS) <= set(solution_sources(nb))
    demo = [c for c in nb.cells if "demo" in c.metadata.get("tags", [])]
    assert any("perf_counter" in c.source and "set_yscale(\"log\")" in c.source for c in demo)


def test_release_has_stubs_and_no_solutions_or_hidden_tests():
    nb = nbformat.read(RELEASE, as_version=4)
    text = nbformat.writes(nb)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "hidden=True", "new_empty"):
        assert marker not in text, marker
    sources = solution_sources(nb)
    for name in FUNCTIONS:
        src = sources[name]
        assert f"def {name}(" in src and '"""' in src and "raise NotImplementedError()" in src
        assert "Raises:" in src and "Returns:" in src


@pytest.mark.slow
def test_solution_notebook_passes_its_public_checks_within_budget(fashion_mnist_root):
    nb, seconds = run_solution_notebook(SOLUTION, timeout=300)
    # Every public check passes and no other cell fails; the hidden blocks fail closed in a kernel (full marks
    # for the reference come from the engine: the end-to-end tests here and tests/nbgrader/test_agreement.py).
    assert failed_closed(nb) == set(POINTS)
    assert seconds < BUDGET_S, f"the solution notebook took {seconds:.0f} s (budget {BUDGET_S} s)"


CORRECT = {
    "col2im_shape": '''
def col2im_shape(h, w, kernel_size, padding=0, stride=1):
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    if kh < 1 or kw < 1 or padding < 0 or stride < 1 or kh > h + 2 * padding or kw > w + 2 * padding:
        raise ValueError("bad arguments")
    return (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
''',
    "conv2d_unfold": '''
def conv2d_unfold(x, weight, bias=None, padding=0, stride=1):
    if x.dim() != 4 or weight.dim() != 4 or weight.shape[1] != x.shape[1]:
        raise ValueError("bad shapes")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError("bad bias")
    n, f = x.shape[0], weight.shape[0]
    h_out, w_out = col2im_shape(x.shape[2], x.shape[3], tuple(weight.shape[2:]), padding, stride)
    cols = F.unfold(x, tuple(weight.shape[2:]), padding=padding, stride=stride)
    out = torch.einsum("fk,nkl->nfl", weight.reshape(f, -1), cols)
    if bias is not None:
        out = out + bias[None, :, None]
    return out.reshape(n, f, h_out, w_out)
''',
}

# Rows stacked as (kernel row, kernel column, channel): right for one channel, wrong for more.
WRONG_IM2COL = '''
def im2col(x, kernel_size, padding=0, stride=1):
    if x.dim() != 4:
        raise ValueError("x must be (N, C, H, W)")
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    n, c, h, w = x.shape
    h_out, w_out = col2im_shape(h, w, (kh, kw), padding, stride)
    xp = F.pad(x, (padding,) * 4)
    slices = [xp[:, :, a:a + stride * h_out:stride, b:b + stride * w_out:stride] for a in range(kh) for b in range(kw)]
    return torch.stack(slices, dim=1).reshape(n, kh * kw * c, h_out * w_out)
'''


@pytest.mark.slow
def test_grade_cli_end_to_end(fashion_mnist_root, tmp_path):
    release = nbformat.read(RELEASE, as_version=4)
    submission = fill_answers(release, {**CORRECT, "im2col": WRONG_IM2COL})
    path = tmp_path / f"{AID}.ipynb"
    nbformat.write(submission, path)
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(path), "--results", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.exists(), f"no results.json (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    results = json.loads(out.read_text())

    tests = {t["name"]: t for t in results["tests"]}
    graded = {name: t for name, t in tests.items() if t["max_score"] > 0}
    assert sum(t["max_score"] for t in graded.values()) == sum(POINTS.values())
    assert results["max_score"] == sum(POINTS.values())

    def entry(check: str) -> dict:
        (t,) = [t for name, t in graded.items() if name.endswith(check)]
        return t

    lost = {"test_im2col_channels_batch_and_rectangular_kernel": ("visible", 2),
            "test_im2col_padding_and_stride": ("visible", 2),
            "test_im2col_matches_reference_on_random_shapes": ("after_published", 2),
            "test_im2col_edge_cases": ("after_published", 1)}
    for check, (visibility, points) in lost.items():
        t = entry(check)
        assert (t["status"], t["score"], t["max_score"], t["visibility"]) == ("failed", 0, points, visibility)
    assert "channel first" in entry("test_im2col_channels_batch_and_rectangular_kernel")["output"]
    for name, t in graded.items():
        if not any(name.endswith(check) for check in lost):
            assert (t["status"], t["score"]) == ("passed", t["max_score"]), (name, t.get("output"))
    assert entry("test_col2im_shape_matches_reference")["visibility"] == "after_published"
    assert entry("test_conv2d_unfold_is_vectorised")["visibility"] == "visible"
    assert results["score"] == sum(POINTS.values()) - sum(points for _, points in lost.values())
    assert {t["visibility"] for t in graded.values()} == {"visible", "after_published"}
