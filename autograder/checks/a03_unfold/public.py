"""Public checks of 03_unfold: convolution as matrix multiplication.

Oracles are PyTorch's own F.unfold and F.conv2d (run here, in the grader) or literal values.
"""

import torch
import torch.nn.functional as F

from autograder.authoring.api import CheckFailure, StudentError, check, describe_value
from autograder.authoring.compare import expect, expect_raises, expect_tensor, fmt_call
from autograder.authoring.counting import COUNTING_SOURCE

from .common import expect_im2col, expect_shape_pair

# ---------------------------------------------------------------------------------------------
# col2im_shape


@check(cell="test_col2im_shape", points=1, kind="shape",
       hint="Section 3's formula, with a division that rounds down, once for the height and once for the width; "
            "redo the failing call above by hand.")
def test_col2im_shape_square_examples(sub):
    cases = [
        ((28, 28, 3), {}, (26, 26)),
        ((28, 28, 3), {"padding": 1}, (28, 28)),
        ((28, 28, 3), {"padding": 1, "stride": 2}, (14, 14)),
        ((7, 7, 2), {"stride": 2}, (3, 3)),      # the leftover row and column are dropped
        ((5, 5, 5), {}, (1, 1)),                # the kernel covers the whole image
    ]
    for args, kwargs, expected in cases:
        expect_shape_pair(sub.col2im_shape(*args, **kwargs), expected, what=fmt_call("col2im_shape", *args, **kwargs))


@check(cell="test_col2im_shape", points=1, kind="shape",
       hint="The height goes with h and the kernel's height, the width with w and the kernel's width; kernel_size "
            "may be an int or a pair (the docstring's Args).")
def test_col2im_shape_non_square(sub):
    cases = [
        ((5, 7, (2, 3)), {}, (4, 5)),
        ((11, 6, (3, 1)), {"padding": 2, "stride": 3}, (5, 4)),
        ((6, 10, (1, 4)), {"stride": 2}, (3, 4)),
    ]
    for args, kwargs, expected in cases:
        expect_shape_pair(sub.col2im_shape(*args, **kwargs), expected, what=fmt_call("col2im_shape", *args, **kwargs))


@check(cell="test_col2im_shape", points=0.5, kind="behaviour",
       hint="The docstring's Returns asks for a tuple of two Python ints: not a list, not floats, not tensors.")
def test_col2im_shape_returns_tuple_of_ints(sub):
    for args, kwargs in (((28, 28, 3), {}), ((5, 7, (2, 3)), {"stride": 2}), ((11, 6, (3, 1)), {"padding": 2})):
        got = sub.col2im_shape(*args, **kwargs)
        what = fmt_call("col2im_shape", *args, **kwargs)
        expect(type(got) is tuple and len(got) == 2 and all(type(v) is int for v in got),
               f"{what}: expected a tuple of two Python ints, got {describe_value(got)}"
               + (f" ({', '.join(type(v).__name__ for v in got)})" if isinstance(got, tuple | list) else ""))


@check(cell="test_col2im_shape", points=1, kind="error",
       hint="The docstring's Raises lists the arguments that make no sense; the failing call above is one of them.")
def test_col2im_shape_rejects_bad_arguments(sub):
    bad = [
        ((3, 3, 5), {}),                        # 5x5 kernel, 3x3 image, no padding
        ((8, 3, (2, 4)), {}),                   # kernel wider than the image
        ((8, 8, 3), {"stride": 0}),
        ((8, 8, 3), {"padding": -1}),
        ((8, 8, 0), {}),
    ]
    for args, kwargs in bad:
        expect_raises(lambda args=args, kwargs=kwargs: sub.col2im_shape(*args, **kwargs), "ValueError",
                      what=fmt_call("col2im_shape", *args, **kwargs))


# ---------------------------------------------------------------------------------------------
# im2col (F.unfold is forbidden inside it)


def _im2col_case(sub, x, kernel_size, padding=0, stride=1, show_values=False):
    what = fmt_call("im2col", x, kernel_size, padding=padding, stride=stride)
    got = sub.call("im2col", x, kernel_size, padding=padding, stride=stride, forbid=["unfold"])
    expect_im2col(got, F.unfold(x, kernel_size, padding=padding, stride=stride), what=what, x_shape=x.shape,
                  kernel_size=kernel_size, padding=padding, stride=stride, show_values=show_values)


@check(cell="test_im2col", points=1, kind="numerical",
       hint="Compare with the pictures of section 1: each column is one patch, read row by row, and the patches "
            "are numbered row by row too. F.unfold, nn.Unfold and Tensor.unfold are not allowed here.")
def test_im2col_single_channel(sub):
    x = torch.arange(1.0, 21.0).reshape(1, 1, 4, 5)
    _im2col_case(sub, x, 3, show_values=True)


@check(cell="test_im2col", points=2, kind="numerical",
       hint="Rows go channel first, then kernel row, then kernel column (section 2's formula), and every image of "
            "the batch has its own patches.")
def test_im2col_channels_batch_and_rectangular_kernel(sub):
    _im2col_case(sub, torch.randn(2, 3, 5, 6), (2, 3))
    _im2col_case(sub, torch.randn(3, 2, 4, 4), 3)


@check(cell="test_im2col", points=2, kind="numerical",
       hint="Zeros go around every image on all four sides before the patches are cut, and neighbouring patches "
            "start `stride` pixels apart: compare with the nine patches pictured in section 3.")
def test_im2col_padding_and_stride(sub):
    _im2col_case(sub, torch.randn(2, 2, 7, 6), 3, padding=1, stride=2)
    _im2col_case(sub, torch.randn(1, 3, 8, 5), (3, 2), padding=2, stride=3)
    _im2col_case(sub, torch.randn(2, 1, 6, 9), (2, 4), padding=0, stride=2)


@check(cell="test_im2col", points=1, kind="error",
       hint="x must be a batch (N, C, H, W): the docstring's Raises says what to do with anything else.")
def test_im2col_rejects_non_4d_input(sub):
    for shape in [(3, 5, 5), (5, 5)]:
        x = torch.randn(shape)
        expect_raises(lambda x=x: sub.call("im2col", x, 3, forbid=["unfold"]), "ValueError",
                      what=fmt_call("im2col", x, 3))


# ---------------------------------------------------------------------------------------------
# conv2d_unfold (no built-in convolution)


def _conv_case(sub, x, weight, bias=None, padding=0, stride=1):
    what = fmt_call("conv2d_unfold", x, weight, bias, padding=padding, stride=stride)
    got = sub.call("conv2d_unfold", x, weight, bias, padding=padding, stride=stride, forbid=["conv"])
    expect_tensor(got, F.conv2d(x, weight, bias, stride=stride, padding=padding), what=what, atol=1e-4,
                  check_dtype=False)  # the dtype has its own (hidden) check


@check(cell="test_conv2d_unfold", points=1, kind="numerical",
       hint="Section 4 computes this very case (one filter, one channel) with one unfold and one product; then "
            "the (N, F, L) result goes back on a grid.")
def test_conv2d_unfold_one_filter(sub):
    top_edge = torch.tensor([[-1.0, -1.0, -1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    _conv_case(sub, torch.rand(1, 1, 6, 6), top_edge.reshape(1, 1, 3, 3))


@check(cell="test_conv2d_unfold", points=2, kind="numerical",
       hint="F.unfold's rows come in (C, kh, kw) order (section 2): each filter must be flattened in the same "
            "order, and the bias added once per filter, at every position of every image.")
def test_conv2d_unfold_channels_filters_and_bias(sub):
    _conv_case(sub, torch.randn(3, 4, 7, 9), torch.randn(5, 4, 3, 2), torch.randn(5))
    _conv_case(sub, torch.randn(2, 3, 6, 8), torch.randn(4, 3, 2, 2), torch.randn(4))


@check(cell="test_conv2d_unfold", points=2, kind="numerical",
       hint="The output grid depends on the padding and the stride as much as the columns do; mind the argument "
            "order of this function, (x, weight, bias, padding, stride), and of the ones it calls.")
def test_conv2d_unfold_padding_and_stride(sub):
    _conv_case(sub, torch.randn(2, 3, 9, 7), torch.randn(4, 3, 3, 2), None, padding=1, stride=2)
    _conv_case(sub, torch.randn(1, 2, 10, 11), torch.randn(3, 2, 3, 3), torch.randn(3), padding=2, stride=3)


@check(cell="test_conv2d_unfold", points=2, kind="behaviour",
       hint="No Python loop over images, positions or filters: one unfold of the whole batch and one batched "
            "matrix product handle everything at once (Exercise 3).")
def test_conv2d_unfold_is_vectorised(sub):
    sub.exec(COUNTING_SOURCE)
    counts = []
    configs = [((2, 2, 6, 7), 3), ((8, 2, 12, 10), 9)]
    for (n, c, h, w), n_filters in configs:
        x, weight, bias = torch.randn(n, c, h, w), torch.randn(n_filters, c, 3, 2), torch.randn(n_filters)
        what = fmt_call("conv2d_unfold", x, weight, bias, padding=1, stride=1)
        try:
            counts.append(sub.eval("count_ops(conv2d_unfold, x, weight, bias, padding=1, stride=1)",
                                   x=x, weight=weight, bias=bias))
        except StudentError as err:
            raise CheckFailure(f"{what} {err.describe()[len(err.what):].strip()}") from None
    small, large = counts
    expect(abs(large - small) <= 4,
           f"conv2d_unfold ran {small} tensor operations for 2 images of 6x7 and 3 filters, but {large} "
           f"for 8 images of 12x10 and 9 filters: the number of operations should not grow with the batch "
           f"size, the image size or the number of filters (is there a Python loop over them?)")


@check(cell="test_conv2d_unfold", points=1, kind="error",
       hint="The docstring's Raises lists the mismatches to refuse before computing anything: the failing case "
            "above says which one.")
def test_conv2d_unfold_rejects_mismatched_shapes(sub):
    x = torch.randn(2, 3, 6, 6)
    cases = [
        (x, torch.randn(4, 2, 3, 3), None, "weight with 2 channels for an input with 3"),
        (x, torch.randn(4, 3, 3, 3), torch.randn(5), "bias of shape (5,) for 4 filters"),
        (torch.randn(3, 6, 6), torch.randn(4, 3, 3, 3), None, "a 3-D input"),
    ]
    for xx, weight, bias, why in cases:
        expect_raises(lambda xx=xx, weight=weight, bias=bias: sub.call("conv2d_unfold", xx, weight, bias,
                                                                       forbid=["conv"]),
                      "ValueError", what=f"{fmt_call('conv2d_unfold', xx, weight, bias)} ({why})")
