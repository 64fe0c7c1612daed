"""Hidden checks of 01_apply_kernel: compare with the reference notebook's own functions."""

import torch

from autograder.authoring.api import (
    as_float,
    check,
    expect,
    expect_close,
    expect_raises,
    fmt_call,
)
from autograder.authoring.counting import COUNTING_SOURCE

from .common import (
    CONV1D_CASES,
    CONV2D_CASES,
    CONV_FUNCTIONS,
    expect_values,
    kernel_tensor,
)

# ---------------------------------------------------------------------------------------------
# apply_kernel
# ---------------------------------------------------------------------------------------------


def _expect_apply(sub, ref, img, row, col, kernel):
    what = fmt_call("apply_kernel", img, row, col, kernel) + f" at (row={row}, col={col})"
    expect_close(sub.apply_kernel(img, row, col, kernel), as_float(ref.apply_kernel(img, row, col, kernel)),
                 what=what, atol=1e-5, rtol=1e-5)


@check(cell="test_apply_kernel", points=2, kind="numerical",
       hint="The patch is centred at (row, col) for every odd size, 1 x 1 and 5 x 5 included, and the kernel is "
            "not flipped: redo the failing position above by hand.")
def test_apply_kernel_matches_reference_everywhere(sub, ref):
    img = torch.randn(7, 10)
    for k in (1, 3, 5):
        kernel = torch.randn(k, k)
        r = k // 2
        for row in range(r, 7 - r):
            for col in range(r, 10 - r, 2 if k == 1 else 1):
                _expect_apply(sub, ref, img, row, col, kernel)


@check(cell="test_apply_kernel", points=1, kind="behaviour",
       hint="A patch that touches the border of the image is still inside it: check whether your comparisons "
            "at the edges should be strict.")
def test_apply_kernel_accepts_patches_touching_the_border(sub, ref):
    img = torch.randn(6, 9)
    for k in (3, 5):
        kernel = torch.randn(k, k)
        r = k // 2
        for row, col in [(r, r), (6 - 1 - r, 9 - 1 - r), (r, 9 - 1 - r), (6 - 1 - r, r)]:
            _expect_apply(sub, ref, img, row, col, kernel)


def _expect_rejected(sub, img, row, col, kernel):
    """apply_kernel(img, row, col, kernel) must raise ValueError (the docstring's Raises)."""
    expect_raises(lambda: sub.apply_kernel(img, row, col, kernel), "ValueError",
                  what=fmt_call("apply_kernel", img, row, col, kernel))


@check(cell="test_apply_kernel", points=1, kind="error",
       hint="A kernel with more rows than columns (or fewer) has no single size k: the docstring's Raises lists it.")
def test_apply_kernel_rejects_non_square_kernel(sub, ref):
    img = torch.rand(9, 9)
    for shape in [(3, 5), (5, 3), (3, 1)]:
        _expect_rejected(sub, img, 4, 4, torch.ones(shape))


@check(cell="test_apply_kernel", points=1, kind="error",
       hint="The image must be exactly 2-D, (H, W): a (1, H, W) or an (H,) tensor is an error (the docstring's "
            "Raises).")
def test_apply_kernel_rejects_non_2d_image(sub, ref):
    kernel = kernel_tensor("top_edge")
    for img in (torch.rand(1, 6, 6), torch.rand(6), torch.rand(2, 1, 6, 6)):
        _expect_rejected(sub, img, 3, 3, kernel)


@check(cell="test_apply_kernel", points=1, kind="error",
       hint="Check all four sides of the patch: the bottom and the right too, and a negative position, which "
            "Python's negative indices would silently wrap around.")
def test_apply_kernel_rejects_patch_leaving_bottom_right_or_negative(sub, ref):
    img = torch.rand(6, 8)
    kernel = torch.randn(3, 3)
    for row, col in [(5, 3), (3, 7), (5, 7), (-1, 3), (3, -2), (6, 3), (2, 9)]:
        _expect_rejected(sub, img, row, col, kernel)
    big = torch.randn(5, 5)
    for row, col in [(1, 4), (4, 2), (2, 6)]:
        _expect_rejected(sub, img, row, col, big)


# ---------------------------------------------------------------------------------------------
# conv2d_loops
# ---------------------------------------------------------------------------------------------

NO_BUILTINS = ["conv", "unfold"]


def _expect_conv2d(sub, ref, img, kernel, padding, stride):
    what = fmt_call("conv2d_loops", img, kernel, padding=padding, stride=stride)
    got = sub.call("conv2d_loops", img, kernel, padding=padding, stride=stride, forbid=NO_BUILTINS)
    expect_values(got, ref.conv2d_loops(img, kernel, padding=padding, stride=stride), what=what)


def _expect_conv2d_cases(sub, ref, cases):
    """:func:`_expect_conv2d` on a random image and kernel of each ((H, W), (kh, kw), padding, stride)."""
    for (h, w), (kh, kw), p, s in cases:
        _expect_conv2d(sub, ref, torch.randn(h, w), torch.randn(kh, kw), p, s)


@check(cell="test_conv2d_loops", points=2, kind="numerical",
       hint="The failing case above combines padding, a stride and a kernel that may not be square: work out its "
            "output size and first window with section 6, then compare.")
def test_conv2d_loops_padding_stride_combinations(sub, ref):
    _expect_conv2d_cases(sub, ref, CONV2D_CASES)


@check(cell="test_conv2d_loops", points=1, kind="behaviour",
       hint="A kernel exactly as large as the padded image fits once, so the output is 1 x 1: compare the kernel "
            "with the padded image's size, not the image's.")
def test_conv2d_loops_kernel_as_large_as_padded_image(sub, ref):
    _expect_conv2d_cases(sub, ref, [((4, 6), (4, 6), 0, 1), ((4, 6), (6, 8), 1, 1), ((3, 5), (5, 4), 1, 2)])


@check(cell="test_conv2d_loops", points=1, kind="numerical",
       hint="A stride larger than the kernel skips pixels between windows; the output size still comes from the "
            "formula of section 6 (round down).")
def test_conv2d_loops_stride_larger_than_kernel(sub, ref):
    _expect_conv2d_cases(sub, ref, [((9, 11), (2, 2), 0, 4), ((5, 12), (3, 1), 1, 5)])


@check(cell="test_conv2d_loops", points=1, kind="error",
       hint="Height and width are checked separately: a kernel too tall or too wide for the padded image is an "
            "error, even when the other direction fits.")
def test_conv2d_loops_rejects_kernel_too_large_in_one_direction(sub, ref):
    for (h, w), (kh, kw), p in [((5, 6), (3, 9), 1), ((5, 6), (8, 3), 1), ((4, 9), (5, 3), 0), ((7, 3), (2, 4), 0)]:
        img, kernel = torch.randn(h, w), torch.randn(kh, kw)
        expect_raises(lambda img=img, kernel=kernel, p=p: sub.call("conv2d_loops", img, kernel, padding=p,
                                                                   forbid=NO_BUILTINS),
                      "ValueError", what=fmt_call("conv2d_loops", img, kernel, padding=p))


@check(cell="test_conv2d_loops", points=1, kind="numerical",
       hint="Slide the kernel as it is (not flipped) over the zero-padded image: with padding 1 the outputs at the "
            "border see the zeros around the picture.")
def test_conv2d_loops_edge_kernels_on_a_rectangle(sub, ref):
    img = torch.zeros(9, 12)
    img[2:7, 3:10] = 1.0
    for name in ("top_edge", "left_edge", "diag1_edge", "diag2_edge"):
        kernel = kernel_tensor(name)
        what = fmt_call("conv2d_loops", img, kernel, padding=1) + f" with {name}"
        got = sub.call("conv2d_loops", img, kernel, padding=1, forbid=NO_BUILTINS)
        expect_values(got, ref.conv2d_loops(img, kernel, padding=1), what=what)


# ---------------------------------------------------------------------------------------------
# conv1d_loops
# ---------------------------------------------------------------------------------------------


def _expect_conv1d(sub, ref, x, weight, bias, stride, padding):
    kwargs = {"bias": bias, "stride": stride, "padding": padding}
    got = sub.call("conv1d_loops", x, weight, forbid=["conv"], **kwargs)
    expect_values(got, ref.conv1d_loops(x, weight, **kwargs), what=fmt_call("conv1d_loops", x, weight, **kwargs))


@check(cell="test_conv1d_loops", points=2, kind="numerical",
       hint="The failing case above has padding, a stride and perhaps a bias: work out its length and first output "
            "with section 7's formula, then compare.")
def test_conv1d_loops_matches_reference(sub, ref):
    for i, (length, k, s, p) in enumerate(CONV1D_CASES):
        bias = torch.randn(1) if i % 2 else None
        _expect_conv1d(sub, ref, torch.randn(length), torch.randn(k), bias, s, p)


@check(cell="test_conv1d_loops", points=1, kind="numerical",
       hint="The docstring's Args allow three forms of bias (a number, a 0-d tensor, a (1,) tensor): each is one "
            "number added to every output.")
def test_conv1d_loops_bias_as_number_or_0d_tensor(sub, ref):
    x, weight = torch.randn(9), torch.randn(3)
    for bias in (0.75, torch.tensor(-1.5)):
        _expect_conv1d(sub, ref, x, weight, bias, 1, 0)
        _expect_conv1d(sub, ref, x, weight, bias, 2, 1)


@check(cell="test_conv1d_loops", points=1, kind="error",
       hint="A kernel longer than the padded signal has no window at all: the docstring's Raises says what to do.")
def test_conv1d_loops_rejects_kernel_longer_than_input(sub, ref):
    for length, k, p in [(4, 5, 0), (3, 6, 1)]:
        x, weight = torch.randn(length), torch.randn(k)
        expect_raises(lambda x=x, weight=weight, p=p: sub.call("conv1d_loops", x, weight, padding=p,
                                                               forbid=["conv"]),
                      "ValueError", what=fmt_call("conv1d_loops", x, weight, padding=p))


# ---------------------------------------------------------------------------------------------
# edge_features
# ---------------------------------------------------------------------------------------------


@check(cell="test_edge_features", points=2, kind="numerical",
       hint="The K kernels are K output channels that each look at the image's single input channel (the table "
            "of section 8).")
def test_edge_features_matches_reference(sub, ref):
    for n, k, (kh, kw), (h, w) in [(1, 1, (3, 3), (8, 8)), (5, 3, (1, 4), (7, 9)), (2, 6, (5, 2), (10, 6)),
                                   (4, 4, (3, 3), (28, 28))]:
        xb, kernels = torch.rand(n, 1, h, w), torch.randn(k, kh, kw)
        expect_values(sub.edge_features(xb, kernels), ref.edge_features(xb, kernels),
                      what=fmt_call("edge_features", xb, kernels))


@check(cell="test_edge_features", points=1, kind="behaviour",
       hint="No Python loop over images or kernels: section 8 shows what a single F.conv2d call does with a whole "
            "batch and a stack of kernels.")
def test_edge_features_uses_one_conv_call(sub, ref):
    from autograder.submission.static_check import group_names

    xb, kernels = torch.rand(3, 1, 8, 9), torch.randn(4, 3, 3)
    sub.exec(COUNTING_SOURCE)
    out, n_conv = sub.eval("count_torch_calls(conv_names, edge_features, xb, kernels)",  # a stub stops here
                           conv_names=list(CONV_FUNCTIONS), xb=xb, kernels=kernels)
    # Counted in the grader from the submitted source (the worker cannot forge it): one call site, not in a loop.
    sites = sub.source_call_sites("edge_features", group_names("conv"))
    if sites is not None:
        count, in_loop = sites
        expect(count == 1 and not in_loop,
               f"edge_features has {count} convolution call{'s' if count != 1 else ''} in its code"
               f"{' inside a loop' if in_loop else ''}; expected exactly one F.conv2d call for the whole batch "
               "and all the kernels")
    expect(n_conv == 1, f"{fmt_call('edge_features', xb, kernels)} ran {n_conv} convolutions; "
                        "expected exactly one F.conv2d call for the whole batch and all the kernels")
    expect_values(out, ref.edge_features(xb, kernels),
                  what=fmt_call("edge_features", xb, kernels))
