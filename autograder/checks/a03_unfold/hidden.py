"""Hidden checks of 03_unfold: compared with the reference notebook's own functions."""

import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from autograder.authoring.api import check, expect_raises, expect_tensor, fmt_call

from .common import expect_im2col, expect_shape_pair

# ---------------------------------------------------------------------------------------------
# col2im_shape


@check(cell="test_col2im_shape", points=1.5, kind="shape",
       hint="Edge cases: a kernel that exactly fits the padded image, a stride larger than the kernel, a 1 x 1 "
            "image, ImageNet-sized layers. Redo the failing case with section 3's formula.")
def test_col2im_shape_matches_reference(sub, ref):
    cases = [
        (28, 28, 3, 0, 1), (28, 28, (3, 5), 2, 1), (32, 17, (5, 2), 1, 2), (9, 13, (4, 6), 0, 3),
        (3, 3, 5, 1, 1),           # the kernel exactly fits the padded image
        (10, 10, 2, 0, 4),         # stride larger than the kernel
        (1, 1, 1, 0, 1), (1, 9, (1, 3), 0, 2), (224, 224, 11, 2, 4), (224, 224, 7, 3, 2),
    ]
    for h, w, k, p, s in cases:
        expect_shape_pair(sub.col2im_shape(h, w, k, padding=p, stride=s),
                          ref.col2im_shape(h, w, k, padding=p, stride=s),
                          what=fmt_call("col2im_shape", h, w, k, padding=p, stride=s))


# ---------------------------------------------------------------------------------------------
# im2col


def _compare_im2col(sub, ref, x, k, p, s, check_dtype=False):
    what = fmt_call("im2col", x, k, padding=p, stride=s)
    got = sub.call("im2col", x, k, padding=p, stride=s, forbid=["unfold"])
    expect_im2col(got, ref.im2col(x, k, padding=p, stride=s), what=what, x_shape=x.shape, kernel_size=k,
                  padding=p, stride=s, check_dtype=check_dtype)


@check(cell="test_im2col", points=2, kind="numerical",
       hint="Test your im2col against F.unfold on many shapes: batch and channel counts, rectangular "
            "images and kernels, every combination of padding and stride.")
# No shrinking: the examples are small already, and a wrong submission should not cost hundreds of calls.
@settings(max_examples=30, report_multiple_bugs=False, phases=[Phase.explicit, Phase.generate])
@given(n=st.integers(1, 3), c=st.integers(1, 3), kh=st.integers(1, 4), kw=st.integers(1, 4),
       p=st.integers(0, 2), s=st.integers(1, 3), dh=st.integers(0, 6), dw=st.integers(0, 6),
       as_pair=st.booleans())
def test_im2col_matches_reference_on_random_shapes(sub, ref, n, c, kh, kw, p, s, dh, dw, as_pair):
    h, w = max(1, kh - 2 * p + dh), max(1, kw - 2 * p + dw)
    k = (kh, kw) if as_pair or kh != kw else kh
    _compare_im2col(sub, ref, torch.randn(n, c, h, w), k, p, s)


@check(cell="test_im2col", points=1, kind="numerical",
       hint="Edge cases: a kernel as large as the padded image (one column), a 1x1 kernel, a stride larger "
            "than the kernel, and float64 input, whose dtype the result keeps (a tensor you create is float32 "
            "unless you say otherwise).")
def test_im2col_edge_cases(sub, ref):
    _compare_im2col(sub, ref, torch.randn(2, 2, 3, 4), (5, 6), 1, 1, check_dtype=True)   # one patch covers everything
    _compare_im2col(sub, ref, torch.randn(1, 4, 5, 6), 1, 0, 2, check_dtype=True)        # 1x1 kernel, stride 2
    _compare_im2col(sub, ref, torch.randn(2, 1, 9, 9), 2, 0, 4, check_dtype=True)        # stride > kernel
    _compare_im2col(sub, ref, torch.randn(2, 3, 5, 4, dtype=torch.float64), (2, 3), 1, 2, check_dtype=True)


@check(cell="test_im2col", points=1, kind="error",
       hint="A kernel that does not fit in the padded image has no patch at all: the docstring's Raises.")
def test_im2col_rejects_kernel_larger_than_image(sub, ref):
    for shape, k, p in [((1, 1, 4, 4), 5, 0), ((2, 3, 6, 3), (3, 6), 1)]:
        x = torch.randn(shape)
        expect_raises(lambda x=x, k=k, p=p: sub.call("im2col", x, k, padding=p, forbid=["unfold"]),
                      "ValueError", what=fmt_call("im2col", x, k, padding=p))


# ---------------------------------------------------------------------------------------------
# conv2d_unfold


def _compare_conv(sub, ref, x, weight, bias, p, s, atol=1e-4, check_dtype=False):
    what = fmt_call("conv2d_unfold", x, weight, bias, padding=p, stride=s)
    got = sub.call("conv2d_unfold", x, weight, bias, padding=p, stride=s, forbid=["conv"])
    expect_tensor(got, ref.conv2d_unfold(x, weight, bias, padding=p, stride=s), what=what, atol=atol,
                  check_dtype=check_dtype)


@check(cell="test_conv2d_unfold", points=2, kind="numerical",
       hint="Test against F.conv2d(x, weight, bias, stride=stride, padding=padding) with several channel and "
            "filter counts, rectangular kernels, padding and stride.")
def test_conv2d_unfold_matches_reference(sub, ref):
    configs = [  # (N, C, H, W), (F, kh, kw), bias?, padding, stride
        ((4, 1, 28, 28), (8, 3, 3), True, 1, 1),
        ((2, 3, 11, 8), (6, 4, 2), True, 0, 2),
        ((3, 5, 7, 10), (2, 1, 1), False, 0, 1),
        ((1, 2, 9, 9), (7, 5, 3), True, 2, 3),
        ((5, 4, 6, 13), (3, 3, 5), False, 1, 2),
    ]
    for (n, c, h, w), (f, kh, kw), has_bias, p, s in configs:
        bias = torch.randn(f) if has_bias else None
        _compare_conv(sub, ref, torch.randn(n, c, h, w), torch.randn(f, c, kh, kw), bias, p, s)


@check(cell="test_conv2d_unfold", points=1, kind="numerical",
       hint="The bias has one value per filter: it must broadcast over the images and the positions, never along "
            "the width (here every dimension of the output is 3, so a wrong broadcast raises no error).")
def test_conv2d_unfold_bias_is_per_filter(sub, ref):
    # Every dimension of the output is 3, so a bias broadcast along the wrong axis raises no error.
    _compare_conv(sub, ref, torch.randn(3, 2, 5, 5), torch.randn(3, 2, 3, 3), torch.tensor([1.0, -2.0, 5.0]), 0, 1)


@check(cell="test_conv2d_unfold", points=1, kind="numerical",
       hint="The result keeps the input's dtype: a tensor you create yourself is float32 unless you say otherwise.")
def test_conv2d_unfold_float64(sub, ref):
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    weight = torch.randn(4, 3, 3, 2, dtype=torch.float64)
    _compare_conv(sub, ref, x, weight, torch.randn(4, dtype=torch.float64), 1, 2, atol=1e-10, check_dtype=True)
