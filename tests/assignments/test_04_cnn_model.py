"""04_cnn's trained ``model``: the grader evaluates it itself, on held-out test images it loads.

Training costs tens of seconds, so these tests are marked slow.  The reference's accuracy
(trained in the grader with the notebook's budget) is cached on disk by ``ref.memo``.
"""

from __future__ import annotations

import pytest

from autograder.grading.from_source import check_code

AID = "04_cnn"
PUBLIC = "test_model_reaches_85_percent_on_heldout_images"
HIDDEN = "test_model_is_within_3_points_of_the_reference"
SMALL = "test_model_is_a_small_cnn"


def grade(source: str) -> dict:
    results = check_code(AID, {"model": source}, cells=["test_model"])
    assert {r.status for r in results.values()} <= {"passed", "failed"}, \
        {n: r.message for n, r in results.items() if r.status == "error"}
    return results


def failed(results) -> set[str]:
    return {n for n, r in results.items() if not r.passed}


@pytest.mark.slow
def test_reference_trained_with_the_budget_gets_full_marks_on_every_check(fashion_mnist_root):
    results = check_code(AID, {"model": "model, history = train_simple_cnn()"})
    assert {n: r.message for n, r in results.items() if not r.passed} == {}
    assert sum(r.points for r in results.values()) == 56


@pytest.mark.slow
def test_another_seed_is_within_the_tolerance(fashion_mnist_root):
    # A student's correct code follows a different trajectory than the reference: like another seed.
    assert failed(grade("model, history = train_simple_cnn(seed=7)")) == set()


@pytest.mark.slow
def test_untrained_model_fails_both_accuracy_checks(fashion_mnist_root):
    results = grade("model = simple_cnn()")   # e.g. a training cell run with 0 epochs
    assert failed(results) == {PUBLIC, HIDDEN}
    assert "it should reach at least 85%" in results[PUBLIC].message


@pytest.mark.slow
def test_model_trained_for_one_short_epoch_fails_the_hidden_check(fashion_mnist_root):
    # A fifth of an epoch at a tiny learning rate: far below the reference's budget.
    results = grade("""
torch.manual_seed(0)
_train_dl, _valid_dl = get_dataloaders(BATCH_SIZE)
model = simple_cnn()
_opt = torch.optim.SGD(model.parameters(), lr=0.01)
for _i, (_xb, _yb) in zip(range(90), _train_dl):
    F.cross_entropy(model(_xb), _yb).backward()
    _opt.step()
    _opt.zero_grad()
""")
    assert {PUBLIC, HIDDEN} <= failed(results)


@pytest.mark.slow
def test_missing_model_and_a_linear_model(fashion_mnist_root):
    results = grade("pass")
    assert failed(results) == {PUBLIC, HIDDEN, SMALL}
    assert "no variable named `model`" in results[PUBLIC].message
    results = grade("model = nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))")
    assert failed(results) == {PUBLIC, HIDDEN, SMALL}
    assert "no linear layer" in results[SMALL].message
    results = grade("model = {'weights': torch.zeros(3)}")
    assert failed(results) == {PUBLIC, HIDDEN, SMALL}
    assert "should be the trained network" in results[PUBLIC].message
