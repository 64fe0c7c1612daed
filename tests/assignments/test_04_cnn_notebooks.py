"""04_cnn as whole notebooks: layout, the solution (full marks within the time budget), the
release (zero points, no crash), and grading end to end with ``python -m autograder grade``."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from autograder.authoring.notebook_builder import fill_answers, solution_sources
from autograder.notebooks import grade_id, is_locked, is_solution_cell, is_test_cell, nbgrader_meta
from tests.conftest import REPO, failed_closed, run_solution_notebook

AID = "04_cnn"
SOLUTION = REPO / "solutions" / AID / f"{AID}.ipynb"
RELEASE = REPO / "assignments" / AID / f"{AID}.ipynb"
POINTS = {"test_get_dataloaders": 8, "test_conv": 6, "test_simple_cnn": 7, "test_accuracy": 4, "test_fit": 10,
          "test_model": 7, "test_max_pool2d": 8, "test_pool_cnn": 6}
WRITTEN = {"q_channels": 2, "q_normalisation": 2, "q_linear_vs_cnn": 2, "q_last_block": 1, "q_zero_grad": 1,
           "q_metric_vs_loss": 1, "q_pool_shape": 1}
FUNCTIONS = ("get_dataloaders", "conv", "simple_cnn", "accuracy", "fit", "max_pool2d", "pool_cnn")
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
    cells = {grade_id(c): c for c in nb.cells if grade_id(c)}
    # The budget is locked and defines the reference (the grader trains it); the training run is
    # locked too, but a demo cell: the reference namespace does not train when it loads.
    assert is_locked(cells["budget"]) and "demo" not in cells["budget"].metadata.get("tags", [])
    assert "def train_simple_cnn(" in cells["budget"].source
    assert is_locked(cells["train"]) and "demo" in cells["train"].metadata.get("tags", [])
    assert "model, history = train_simple_cnn()" in cells["train"].source
    order = [grade_id(c) for c in nb.cells if grade_id(c)]
    assert order.index("train") < order.index("test_model")
    demo = "\n".join(c.source for c in nb.cells if "demo" in c.metadata.get("tags", []))
    assert "valid_loss" in demo and "nn.Linear(28 * 28, 10)" in demo and "confusion" in demo
    # The pooling section: the pooling CNN is trained with the same fit and compared; the linear model's
    # weight templates are drawn as a 2 x 5 picture.
    assert "fit(pool_model" in demo and "plt.subplots(2, 5" in demo and "templates" in demo
    # No written answer shows nbgrader's placeholder next to its model answer.
    for c in nb.cells:
        if c.cell_type == "markdown" and is_solution_cell(c):
            assert "YOUR ANSWER HERE" not in c.source, grade_id(c)
    for c in nb.cells:
        if c.cell_type == "code" and "demo" not in c.metadata.get("tags", []):
            assert not any(line.lstrip().startswith(("%", "!")) for line in c.source.splitlines())


def test_release_has_stubs_and_no_solutions_or_hidden_tests():
    nb = nbformat.read(RELEASE, as_version=4)
    text = nbformat.writes(nb)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "hidden=True",
                   "TensorDataset(x.unsqueeze(1)", "reduction=\"sum\"", "conv(16, 32),                 # 4x4",
                   "unfold(3, kernel_size, stride)", "nn.MaxPool2d(2, 2),     # 14x14"):
        assert marker not in text, marker
    sources = solution_sources(nb)
    for name in FUNCTIONS:
        src = sources[name]
        assert f"def {name}(" in src and '"""' in src and "raise NotImplementedError()" in src
    assert "train_simple_cnn" in text


@pytest.mark.slow
def test_solution_notebook_passes_its_public_checks_within_budget(fashion_mnist_root):
    # Every public check passes and no other cell fails; the hidden blocks fail closed in a kernel (full marks
    # for the reference come from the engine: test_04_cnn.py, test_04_cnn_model.py and the agreement tests).
    nb, seconds = run_solution_notebook(SOLUTION, timeout=900)
    assert failed_closed(nb) == set(POINTS)
    assert seconds < BUDGET_S, f"the solution notebook took {seconds:.0f} s (budget {BUDGET_S} s)"


# fit that never switches to eval mode (loses one visible point) and accuracy returning a tensor
# (loses one visible point); everything else is correct and the model trains normally.
WRONG_FIT = '''
def fit(model, epochs, lr, train_dl, valid_dl, opt_func=torch.optim.SGD):
    opt = opt_func(model.parameters(), lr=lr)
    history = []
    for epoch in range(epochs):
        model.train()
        losses = []
        for xb, yb in train_dl:
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
        total, correct, n = 0.0, 0, 0
        with torch.no_grad():
            for xb, yb in valid_dl:
                out = model(xb)
                total += F.cross_entropy(out, yb, reduction="sum").item()
                correct += (out.argmax(dim=1) == yb).sum().item()
                n += len(yb)
        history.append({"epoch": epoch, "train_loss": sum(losses) / len(losses),
                        "valid_loss": total / n, "valid_acc": correct / n})
    return history
'''
WRONG_ACCURACY = '''
def accuracy(logits, targets):
    return (logits.argmax(dim=1) == targets).float().mean()
'''


@pytest.mark.slow
def test_grade_cli_end_to_end(fashion_mnist_root, tmp_path):
    release = nbformat.read(RELEASE, as_version=4)
    answers = solution_sources(nbformat.read(SOLUTION, as_version=4))
    answers = {gid: src for gid, src in answers.items() if gid in FUNCTIONS}
    submission = fill_answers(release, {**answers, "fit": WRONG_FIT, "accuracy": WRONG_ACCURACY})
    path = tmp_path / f"{AID}.ipynb"
    nbformat.write(submission, path)
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(path), "--results", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert out.exists(), f"no results.json (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    results = json.loads(out.read_text())

    tests = {t["name"]: t for t in results["tests"]}
    graded = {name: t for name, t in tests.items() if t["max_score"] > 0}
    assert sum(t["max_score"] for t in graded.values()) == sum(POINTS.values())
    assert results["max_score"] == sum(POINTS.values())

    def entry(check: str) -> dict:
        (t,) = [t for name, t in graded.items() if name.endswith(check)]
        return t

    lost = {"test_fit_evaluates_in_eval_mode": ("visible", 1),
            "test_accuracy_returns_a_python_float": ("visible", 1)}
    for check, (visibility, points) in lost.items():
        t = entry(check)
        assert (t["status"], t["score"], t["max_score"], t["visibility"]) == ("failed", 0, points, visibility)
    assert "model.eval()" in entry("test_fit_evaluates_in_eval_mode")["output"]
    for name, t in graded.items():
        if not any(name.endswith(check) for check in lost):
            assert (t["status"], t["score"]) == ("passed", t["max_score"]), (name, t.get("output"))
    # The trained model was evaluated by the grader, publicly and against the reference.
    assert entry("test_model_reaches_85_percent_on_heldout_images")["visibility"] == "visible"
    assert entry("test_model_is_within_3_points_of_the_reference")["visibility"] == "after_published"
    assert results["score"] == sum(POINTS.values()) - sum(points for _, points in lost.values())
