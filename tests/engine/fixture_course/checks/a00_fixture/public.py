"""Public checks of the fixture assignment (the engine's own tests)."""

import torch

from autograder.authoring.api import check, expect_equal, expect_tensor


@check(cell="test_double", points=1, kind="numerical", hint="Multiply by two.")
def test_double_small_example(sub):
    expect_tensor(sub.double(torch.tensor([1.0, 2.0])), torch.tensor([2.0, 4.0]), what="double([1., 2.])",
                  show_values=True)


@check(cell="test_count", points=1, kind="behaviour")
def test_count_returns_its_argument(sub):
    expect_equal(sub.count(3), 3, what="count(3)")
