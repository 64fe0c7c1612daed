"""Hidden checks of the fixture assignment (the engine's own tests)."""

import torch

from autograder.authoring.api import check, expect_equal, expect_tensor


@check(cell="test_double", points=2, kind="numerical")
def test_double_matches_reference(sub, ref):
    for shape in [(3, 5), (2, 1, 4)]:
        x = torch.randn(shape)
        expect_tensor(sub.double(x), ref.double(x), what=f"double(x {shape})")


@check(cell="test_double", points=1, kind="shape")
def test_double_keeps_int_dtype(sub, ref):
    x = torch.arange(6).reshape(2, 3)
    expect_tensor(sub.double(x), ref.double(x), what="double(int64 tensor)")


@check(cell="test_smooth", points=2, kind="numerical", hint="Loop over output positions; no F.conv1d.")
def test_smooth_matches_reference_without_conv(sub, ref):
    x, k = torch.randn(9), torch.randn(3)
    expect_tensor(sub.call("smooth", x, k, forbid=["conv"]), ref.smooth(x, k), what="smooth(x (9,), k (3,))")


@check(cell="test_count", points=0, kind="behaviour", timeout=3)
def test_count_answers_quickly(sub, ref):
    expect_equal(sub.call("count", 5, timeout=3), ref.count(5), what="count(5)")
