"""06_transfer_learning, whole notebooks: the solution runs offline on the stand-in weights with full
marks within its budget, the release runs and scores zero, and a submission is graded end to end by
``python -m autograder grade`` (wrong normalisation, unfrozen backbone, head in the wrong place and
grey images not repeated each lose points).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest

from autograder.authoring.notebook_builder import fill_answers, solution_sources
from autograder.course import Course
from autograder.notebooks import grade_id, is_test_cell
from tests.conftest import cell_values, failed_closed, run_solution_notebook

AID = "06_transfer_learning"
NOTEBOOK_BUDGET_S = 150
POINTS = {"test_load_alexnet": 5, "test_to_nchw": 6, "test_preprocess": 7, "test_extract_features": 7,
          "test_freeze_features": 5, "test_replace_classifier": 7, "test_train_head": 7,
          "test_penultimate_features": 7, "test_finetuned": 4}



def stderr_of_test_cells(nb) -> dict[str, str]:
    return {grade_id(c): o.text for c in nb.cells if is_test_cell(c)
            for o in c.get("outputs", []) if o.output_type == "stream" and o.name == "stderr"}


def all_text(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.output_type == "stream":
                out.append(o.text)
    return "\n".join(out)


WRITTEN = {"q_normalisation": 2, "q_freezing": 2, "q_random_features": 2, "q_feature_size": 1, "q_permute": 1,
           "q_frozen_optimiser": 1}


def test_notebook_layout_and_points():
    from autograder.notebooks import is_locked, is_solution_cell, nbgrader_meta

    nb = nbformat.read(Course().get(AID).solution_notebook, as_version=4)
    assert {grade_id(c): nbgrader_meta(c)["points"] for c in nb.cells if is_test_cell(c)} == POINTS
    written = {grade_id(c): nbgrader_meta(c)["points"] for c in nb.cells
               if c.cell_type == "markdown" and is_solution_cell(c)}
    assert written == WRITTEN
    cells = {grade_id(c): c for c in nb.cells if grade_id(c)}
    # The recipe of the whole model is locked and defines the reference (the grader calls it); the training run
    # is locked too, but a demo cell: the reference namespace does not train when it loads.
    assert is_locked(cells["head_recipe"]) and "demo" not in cells["head_recipe"].metadata.get("tags", [])
    assert "def train_new_head(" in cells["head_recipe"].source
    assert is_locked(cells["finetune"]) and "demo" in cells["finetune"].metadata.get("tags", [])
    assert "finetuned = train_new_head()" in cells["finetune"].source
    order = [grade_id(c) for c in nb.cells if grade_id(c)]
    assert order.index("penultimate_features") < order.index("head_recipe") < order.index("finetune") \
        < order.index("test_finetuned")
    # The docstrings give the contract, not the code (issue 15).
    assert "F.interpolate(" not in cells["preprocess"].source.split("### BEGIN SOLUTION")[0]


@pytest.mark.slow
def test_solution_notebook_runs_offline_and_passes_its_public_checks_within_budget(standin_torch_home,
                                                                                   fashion_mnist_root):
    # Every public check passes and no other cell fails; the hidden blocks fail closed in a kernel (full marks
    # for the reference come from the engine: test_06_transfer_learning.py and the agreement tests).
    nb, seconds = run_solution_notebook(Course().get(AID).solution_notebook, timeout=600,
                                        env={"TORCH_HOME": str(standin_torch_home)})
    assert failed_closed(nb) == set(POINTS)
    assert not stderr_of_test_cells(nb)
    text = all_text(nb)
    assert "STAND-IN WEIGHTS" in text, "the setup cell must announce the stand-in weights loudly"
    assert "held-out accuracy, linear head on AlexNet features (STAND-IN" in text
    assert "held-out accuracy, whole model (frozen AlexNet + trained classifier[6], STAND-IN" in text
    assert seconds < NOTEBOOK_BUDGET_S, f"the notebook took {seconds:.0f} s (budget {NOTEBOOK_BUDGET_S} s)"


@pytest.mark.slow
def test_release_runs_and_scores_zero(standin_torch_home, fashion_mnist_root, tmp_path):
    from nbclient import NotebookClient

    release = Course().get(AID).release_notebook
    nb = nbformat.read(release, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert "### BEGIN SOLUTION" not in text and "hidden=True" not in text
    assert "torchvision.models.alexnet(weights=weights)" not in text      # no reference code
    stubs = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]
    assert len(stubs) == 8 and all("raise NotImplementedError()" in c.source and '"""' in c.source for c in stubs)
    os.environ.setdefault("MPLBACKEND", "Agg")
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(release.parent)}})
    client.execute()
    assert cell_values(nb) == dict.fromkeys(POINTS, 0.0)
    assert "STAND-IN WEIGHTS" in all_text(nb)


def _answers_with_mistakes() -> dict[str, str]:
    answers = solution_sources(nbformat.read(Course().get(AID).solution_notebook, as_version=4))
    answers["preprocess"] = '''
def preprocess(x):
    """ImageNet statistics replaced by 0.5 and grey images left with one channel."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError("bad shape")
    x = F.interpolate(x.float(), size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
    return (x - 0.5) / 0.5
'''
    answers["freeze_features"] = '''
def freeze_features(model):
    for p in model.features.parameters():      # the classifier's hidden layers stay trainable
        p.requires_grad_(False)
    return model
'''
    answers["replace_classifier"] = '''
def replace_classifier(model, num_classes):
    model.classifier[1] = nn.Linear(4096, num_classes)     # the first linear layer, not the last
    return model
'''
    return answers


@pytest.fixture
def sandbox_visible_torch_home(standin_torch_home):
    """Stand-in weights in a TORCH_HOME the grading sandbox can see.

    The sandbox has a private /tmp, so the session's stand-in under pytest's temporary folder is
    invisible there; the engine shows torch_home() to the sandbox when it lies inside the
    repository, so this copy goes to the git-ignored torch_home/ folder and is removed afterwards.
    """
    import shutil

    from data_scripts.alexnet_standin import install_standin

    home = Course().root / "torch_home" / "stand-in-for-tests"
    install_standin(torch_home=home)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_graded_end_to_end_with_the_cli(sandbox_visible_torch_home, fashion_mnist_root, tmp_path):
    course = Course()
    release = nbformat.read(course.get(AID).release_notebook, as_version=4)
    submission = tmp_path / f"{AID}.ipynb"
    nbformat.write(fill_answers(release, _answers_with_mistakes()), submission)
    results_path = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(submission), "--results", str(results_path)],
                          capture_output=True, text=True, cwd=course.root, timeout=1800,
                          env={**os.environ, "TORCH_HOME": str(sandbox_visible_torch_home)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(results_path.read_text())
    tests = {t["name"]: t for t in results["tests"]}

    def cell_score(cell):
        return sum(t["score"] for t in results["tests"] if t["name"].startswith(f"{cell}: "))

    def status(cell, name):
        return tests[f"{cell}: {name}"]["status"]

    assert results["max_score"] == sum(POINTS.values()) == 55
    for cell in ("test_load_alexnet", "test_to_nchw", "test_extract_features", "test_train_head",
                 "test_penultimate_features"):
        assert cell_score(cell) == POINTS[cell], cell
    # Wrong normalisation and grey images not repeated: shape 1 + statistics 2 + grey 1 + reference 2 lost.
    assert cell_score("test_preprocess") == 1
    for name in ("test_preprocess_output_shape", "test_preprocess_normalises_with_imagenet_statistics",
                 "test_preprocess_repeats_grey_images"):
        assert status("test_preprocess", name) == "failed"
    hidden = tests["test_preprocess: test_preprocess_matches_reference"]
    assert hidden["status"] == "failed" and hidden["visibility"] == "after_published"
    # Backbone left partly unfrozen: every-parameter 2 and any-model 1 lost (the combined check is in the next cell).
    assert cell_score("test_freeze_features") == 2
    assert status("test_freeze_features", "test_freeze_features_freezes_every_parameter") == "failed"
    assert "classifier.1" in tests["test_freeze_features: test_freeze_features_freezes_every_parameter"]["output"]
    # Head in the wrong place: every check of the replace cell fails.
    assert cell_score("test_replace_classifier") == 0
    structure = tests["test_replace_classifier: test_replace_classifier_replaces_the_last_layer"]
    assert structure["status"] == "failed" and structure["visibility"] == "visible"
    # The whole model could not be built (the preprocessed images have one channel): its 4 points are lost.
    assert cell_score("test_finetuned") == 0
    assert results["score"] == 55 - 6 - 3 - 7 - 4
    probe = tests["test_train_head: test_train_head_accuracy_on_alexnet_features"]
    assert probe["status"] == "passed" and probe["visibility"] == "after_published"
    manual = [t for t in results["tests"] if t["name"].endswith("written answer")]
    assert len(manual) == 6
