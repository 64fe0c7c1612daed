"""Public checks of 03_unfold: convolution as matrix multiplication.

Oracles are PyTorch's own F.unfold and F.conv2d (run here, in the grader) or literal values.
"""

import torch
import torch.nn.functional as F

from autograder.api import (
    CheckFailure,
    StudentError,
    check,
    expect,
    expect_equal,
    expect_raises,
    expect_tensor,
    fmt_call,
)

from .common import OP_COUNTER_SOURCE, expect_im2col

# ---------------------------------------------------------------------------------------------
# col2im_shape


@check(cell="test_col2im_shape", points=1, kind="shape",
       hint="h_out = (h + 2*padding - kh) // stride + 1 (integer division), the same for w_out; "
            "return a tuple of two ints.")
def test_col2im_shape_square_examples(sub):
    cases = [
        ((28, 28, 3), {}, (26, 26)),
        ((28, 28, 3), {"padding": 1}, (28, 28)),
        ((28, 28, 3), {"padding": 1, "stride": 2}, (14, 14)),
        ((7, 7, 2), {"stride": 2}, (3, 3)),      # the leftover row and column are dropped
        ((5, 5, 5), {}, (1, 1)),                # the kernel covers the whole image
    ]
    for args, kwargs, expected in cases:
        expect_equal(sub.col2im_shape(*args, **kwargs), expected, what=fmt_call("col2im_shape", *args, **kwargs))


@check(cell="test_col2im_shape", points=1, kind="shape",
       hint="Height uses h and kh, width uses w and kw; kernel_size may be an int or a pair (kh, kw).")
def test_col2im_shape_non_square(sub):
    cases = [
        ((5, 7, (2, 3)), {}, (4, 5)),
        ((11, 6, (3, 1)), {"padding": 2, "stride": 3}, (5, 4)),
        ((6, 10, (1, 4)), {"stride": 2}, (3, 4)),
    ]
    for args, kwargs, expected in cases:
        expect_equal(sub.col2im_shape(*args, **kwargs), expected, what=fmt_call("col2im_shape", *args, **kwargs))


@check(cell="test_col2im_shape", points=1, kind="error",
       hint="Raise ValueError for a kernel that does not fit in the padded image, padding < 0, stride < 1 "
            "or a kernel side < 1.")
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
       hint="Column l is the patch of output position (l // w_out, l % w_out), flattened row by row. "
            "F.unfold, nn.Unfold and Tensor.unfold are not allowed: use slicing.")
def test_im2col_single_channel(sub):
    x = torch.arange(1.0, 21.0).reshape(1, 1, 4, 5)
    _im2col_case(sub, x, 3, show_values=True)


@check(cell="test_im2col", points=2, kind="numerical",
       hint="Rows go channel first, then kernel row, then kernel column (row = c*kh*kw + a*kw + b); "
            "every image of the batch is unfolded separately.")
def test_im2col_channels_batch_and_rectangular_kernel(sub):
    _im2col_case(sub, torch.randn(2, 3, 5, 6), (2, 3))
    _im2col_case(sub, torch.randn(3, 2, 4, 4), 3)


@check(cell="test_im2col", points=2, kind="numerical",
       hint="Pad with zeros on all four sides first (F.pad(x, (p, p, p, p))), then take every stride-th "
            "patch: x_padded[:, :, a : a + stride*h_out : stride, b : b + stride*w_out : stride].")
def test_im2col_padding_and_stride(sub):
    _im2col_case(sub, torch.randn(2, 2, 7, 6), 3, padding=1, stride=2)
    _im2col_case(sub, torch.randn(1, 3, 8, 5), (3, 2), padding=2, stride=3)
    _im2col_case(sub, torch.randn(2, 1, 6, 9), (2, 4), padding=0, stride=2)


@check(cell="test_im2col", points=1, kind="error",
       hint="Check x.dim() == 4 first and raise ValueError with a message saying the shape you expected.")
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
    expect_tensor(got, F.conv2d(x, weight, bias, stride=stride, padding=padding), what=what, atol=1e-4)


@check(cell="test_conv2d_unfold", points=1, kind="numerical",
       hint="cols = F.unfold(x, (kh, kw)); out = weight.reshape(F, -1) @ cols; then reshape to (N, F, h_out, w_out).")
def test_conv2d_unfold_one_filter(sub):
    top_edge = torch.tensor([[-1.0, -1.0, -1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    _conv_case(sub, torch.rand(1, 1, 6, 6), top_edge.reshape(1, 1, 3, 3))


@check(cell="test_conv2d_unfold", points=2, kind="numerical",
       hint="weight.reshape(F, -1) flattens each filter as (C, kh, kw), the order of F.unfold's rows; "
            "add the bias once per filter: bias.reshape(1, F, 1) on the (N, F, L) product.")
def test_conv2d_unfold_channels_filters_and_bias(sub):
    _conv_case(sub, torch.randn(3, 4, 7, 9), torch.randn(5, 4, 3, 2), torch.randn(5))
    _conv_case(sub, torch.randn(2, 3, 6, 8), torch.randn(4, 3, 2, 2), torch.randn(4))


@check(cell="test_conv2d_unfold", points=2, kind="numerical",
       hint="Pass padding and stride to F.unfold by name, and compute (h_out, w_out) with the same padding "
            "and stride (col2im_shape). Mind the argument order: (x, weight, bias, padding, stride).")
def test_conv2d_unfold_padding_and_stride(sub):
    _conv_case(sub, torch.randn(2, 3, 9, 7), torch.randn(4, 3, 3, 2), None, padding=1, stride=2)
    _conv_case(sub, torch.randn(1, 2, 10, 11), torch.randn(3, 2, 3, 3), torch.randn(3), padding=2, stride=3)


@check(cell="test_conv2d_unfold", points=2, kind="behaviour",
       hint="No Python loop over images, positions or filters: one F.unfold of the whole batch and one "
            "batched product (weight.reshape(F, -1) @ cols) handle everything at once.")
def test_conv2d_unfold_is_vectorised(sub):
    sub.exec(OP_COUNTER_SOURCE)
    counts = []
    configs = [((2, 2, 6, 7), 3), ((8, 2, 12, 10), 9)]
    for (n, c, h, w), n_filters in configs:
        x, weight, bias = torch.randn(n, c, h, w), torch.randn(n_filters, c, 3, 2), torch.randn(n_filters)
        what = fmt_call("conv2d_unfold", x, weight, bias, padding=1, stride=1)
        try:
            counts.append(sub.eval("_grader_count_ops03(conv2d_unfold, x, weight, bias, padding=1, stride=1)",
                                   x=x, weight=weight, bias=bias))
        except StudentError as err:
            raise CheckFailure(f"{what} {err.describe()[len(err.what):].strip()}") from None
    small, large = counts
    expect(abs(large - small) <= 4,
           f"conv2d_unfold ran {small} tensor operations for 2 images of 6x7 and 3 filters, but {large} "
           f"for 8 images of 12x10 and 9 filters: the number of operations should not grow with the batch "
           f"size, the image size or the number of filters (is there a Python loop over them?)")


@check(cell="test_conv2d_unfold", points=1, kind="error",
       hint="Compare weight.shape[1] with x.shape[1], and bias.shape with (F,), before computing anything.")
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
