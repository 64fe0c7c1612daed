"""Public checks of 01_apply_kernel: students run them in the notebook's test cells.

The oracles are literal values and PyTorch's own F.conv2d / F.conv1d.
"""

import torch
import torch.nn.functional as F

from autograder.authoring.api import (
    Handle,
    check,
    expect,
    expect_close,
    expect_raises,
    expect_tensor,
    fmt_call,
)
from autograder.authoring.hints import NotImplementedYet

from .common import (
    SENTENCE_SCORES,
    expect_values,
    kernel_tensor,
    out_size,
)

# ---------------------------------------------------------------------------------------------
# The four edge kernels
# ---------------------------------------------------------------------------------------------


def _kernel_check(name, hint):
    """A 1-point check that the notebook's ``name`` is the exercise's kernel: exact values, float32."""
    @check(cell="test_edge_kernels", points=1, kind="numerical", hint=hint)
    def kernel_values(sub):
        if not sub.has(name):
            raise NotImplementedYet(f"`{name}` is not defined yet: it is not implemented yet "
                                    f"(type it in the `edge_kernels` cell and run that cell)")
        got = sub.eval(name)
        # Named by type only: the student's values are the exercise's own, no need to print them back.
        kind = got.type_name if isinstance(got, Handle) else type(got).__name__
        expect(isinstance(got, torch.Tensor), f"{name}: expected a 3x3 torch.Tensor of dtype float32, got a {kind}")
        # The values are the exercise's own (section 2): exact, and float32 as the exercise asks.
        expect_tensor(got, kernel_tensor(name), what=name, atol=0, rtol=0)
    return kernel_values


_DIAGONALS = ("Section 2 describes `diag1_edge` as a \"/\" edge and `diag2_edge` as a \"\\\" edge: check which "
              "diagonal carries the +1s, and the dtype.")
test_top_edge_values = _kernel_check(
    "top_edge", "Compare your tensor entry by entry with the matrix of `top_edge` in section 2. Whole numbers "
                "alone make an integer tensor: reread the last paragraph of Exercise 1.")
test_left_edge_values = _kernel_check(
    "left_edge", "Reread the matrix of `left_edge` in section 2: it is fastbook's kernel, not `top_edge` turned on "
                 "its side.")
test_diag1_edge_values = _kernel_check("diag1_edge", _DIAGONALS)
test_diag2_edge_values = _kernel_check("diag2_edge", _DIAGONALS)


# ---------------------------------------------------------------------------------------------
# apply_kernel
# ---------------------------------------------------------------------------------------------


def _patch_sum(img, row, col, kernel):
    r = kernel.shape[0] // 2
    return float((img[row - r:row + r + 1, col - r:col + r + 1] * kernel).sum())


def _patches_check(points, hint, image_shape, k, centres):
    """A check of ``apply_kernel`` at each of ``centres`` of a random image, with a random k x k kernel
    (not symmetric: a flipped kernel gives different numbers), against the patch's sum."""
    @check(cell="test_apply_kernel", points=points, kind="numerical", hint=hint)
    def patches(sub):
        img, kernel = torch.randn(*image_shape), torch.randn(k, k)
        for row, col in centres:
            expect_close(sub.apply_kernel(img, row, col, kernel), _patch_sum(img, row, col, kernel),
                         what=fmt_call("apply_kernel", img, row, col, kernel), atol=1e-5, rtol=1e-5)
    return patches


test_apply_kernel_3x3_patches = _patches_check(
    2, "(row, col) is the centre of the patch, not its top-left corner, and the kernel is not flipped: "
       "reread the two traps of Exercise 2 and redo the failing case above by hand.",
    (6, 8), 3, [(1, 1), (2, 5), (4, 6), (3, 2)])
test_apply_kernel_5x5_kernel = _patches_check(
    1, "A k x k kernel reaches k // 2 pixels on each side of its centre: the failing case has k = 5, "
       "so the patch is 5 x 5.",
    (7, 9), 5, [(2, 2), (3, 5), (4, 6)])


@check(cell="test_apply_kernel", points=1, kind="shape",
       hint="The docstring's Returns asks for a tensor of shape () with the image's dtype, not a Python number "
            "and not a tensor of shape (1,) or (1, 1).")
def test_apply_kernel_returns_0d_tensor(sub):
    img, kernel = torch.rand(5, 5), kernel_tensor("top_edge")
    got = sub.apply_kernel(img, 2, 2, kernel)
    what = fmt_call("apply_kernel", img, 2, 2, kernel)
    expect(isinstance(got, torch.Tensor), f"{what}: expected a 0-d torch.Tensor, got {type(got).__name__}")
    expect(tuple(got.shape) == (), f"{what}: expected a 0-d tensor (shape ()), got shape {tuple(got.shape)}")
    expect(got.dtype == torch.float32, f"{what}: expected dtype float32 (the image's), got {got.dtype}")


@check(cell="test_apply_kernel", points=1, kind="error",
       hint="An even kernel (2x2, 4x4) has no centre pixel: the docstring's Raises lists this case.")
def test_apply_kernel_rejects_even_kernel(sub):
    img = torch.rand(8, 8)
    for k in (2, 4):
        kernel = torch.ones(k, k)
        expect_raises(lambda kernel=kernel: sub.apply_kernel(img, 4, 4, kernel), "ValueError",
                      what=fmt_call("apply_kernel", img, 4, 4, kernel))


@check(cell="test_apply_kernel", points=1, kind="error",
       hint="A 3x3 patch centred at (0, 0) would need row -1 and column -1, which Python's negative indices "
            "accept silently: reread the second trap of Exercise 2.")
def test_apply_kernel_rejects_patch_outside_image(sub):
    img = torch.rand(6, 7)
    kernel = kernel_tensor("top_edge")
    for row, col in [(0, 0), (0, 3), (3, 0)]:
        expect_raises(lambda row=row, col=col: sub.apply_kernel(img, row, col, kernel), "ValueError",
                      what=fmt_call("apply_kernel", img, row, col, kernel))


# ---------------------------------------------------------------------------------------------
# conv2d_loops
# ---------------------------------------------------------------------------------------------

NO_BUILTINS = ["conv", "unfold", "windows"]


def _conv2d_builtin(img, kernel, padding=0, stride=1):
    return F.conv2d(img[None, None], kernel[None, None], padding=padding, stride=stride)[0, 0]


def _expect_conv2d(sub, img, kernel, padding=0, stride=1):
    kwargs = {}
    if padding:
        kwargs["padding"] = padding
    if stride != 1:
        kwargs["stride"] = stride
    what = fmt_call("conv2d_loops", img, kernel, **kwargs)
    got = sub.call("conv2d_loops", img, kernel, forbid=NO_BUILTINS, **kwargs)
    expect_values(got, _conv2d_builtin(img, kernel, padding, stride), what=what)


def _conv2d_cases_check(points, hint, cases):
    """A check of ``conv2d_loops`` against F.conv2d on a random image and kernel of each case
    ((H, W), (kh, kw), padding, stride)."""
    @check(cell="test_conv2d_loops", points=points, kind="numerical", hint=hint)
    def conv2d_cases(sub):
        for (h, w), (kh, kw), p, s in cases:
            _expect_conv2d(sub, torch.randn(h, w), torch.randn(kh, kw), p, s)
    return conv2d_cases


test_conv2d_loops_matches_conv2d = _conv2d_cases_check(
    2, "Redo one output position of the failing case by hand: a window of the image as large as the kernel, "
       "multiplied element-wise with it (not flipped) and summed; compare with F.conv2d's number.",
    [((6, 8), (3, 3), 0, 1)])
test_conv2d_loops_non_square_kernel = _conv2d_cases_check(
    1, "With a non-square kernel, the kernel's rows go along the image's height and its columns along the "
       "width: check that the two are not swapped somewhere.",
    [((7, 6), (2, 4), 0, 1), ((5, 9), (4, 1), 0, 1)])
test_conv2d_loops_padding = _conv2d_cases_check(
    1, "Padding surrounds the image with zeros on all four sides, `padding` rows or columns on each: "
       "see the picture of section 6.",
    [((5, 7), (3, 3), 1, 1), ((6, 4), (3, 2), 2, 1)])
test_conv2d_loops_stride = _conv2d_cases_check(
    1, "With a stride s, neighbouring output positions are s pixels apart in the image, in both "
       "directions (section 6).",
    [((9, 8), (3, 3), 0, 2), ((10, 11), (2, 3), 0, 3)])


@check(cell="test_conv2d_loops", points=1, kind="shape",
       hint="Count the window starts along each axis as section 6 does (round down, then the + 1), for the height "
            "and for the width separately; the result keeps the image's dtype (the docstring's Returns).")
def test_conv2d_loops_output_shape(sub):
    for (h, w), (kh, kw), p, s in [((6, 8), (3, 3), 0, 1), ((7, 5), (2, 4), 1, 1), ((9, 6), (3, 2), 1, 2)]:
        img, kernel = torch.randn(h, w), torch.randn(kh, kw)
        got = sub.call("conv2d_loops", img, kernel, padding=p, stride=s, forbid=NO_BUILTINS)
        what = fmt_call("conv2d_loops", img, kernel, padding=p, stride=s)
        expect(isinstance(got, torch.Tensor), f"{what}: expected a torch.Tensor, got {type(got).__name__}")
        expected = (out_size(h, kh, p, s), out_size(w, kw, p, s))
        expect(tuple(got.shape) == expected, f"{what}: expected shape {expected}, got {tuple(got.shape)}")
        expect(got.dtype == img.dtype, f"{what}: expected dtype {img.dtype} (the image's), got {got.dtype}")


@check(cell="test_conv2d_loops", points=1, kind="error",
       hint="A kernel larger than the padded image has no position at all: the docstring's Raises says when to "
            "refuse, before any loop.")
def test_conv2d_loops_rejects_kernel_larger_than_image(sub):
    img, kernel = torch.randn(4, 4), torch.randn(5, 5)
    expect_raises(lambda: sub.call("conv2d_loops", img, kernel, forbid=NO_BUILTINS), "ValueError",
                  what=fmt_call("conv2d_loops", img, kernel))


# ---------------------------------------------------------------------------------------------
# conv1d_loops
# ---------------------------------------------------------------------------------------------


@check(cell="test_conv1d_loops", points=2, kind="numerical",
       hint="Slide the kernel along the sentence as it is, not flipped: section 7's formula gives each output of "
            "the case above. The result keeps x's dtype.")
def test_conv1d_loops_sentence(sub):
    x = torch.tensor(SENTENCE_SCORES)
    weight = torch.tensor([-1.0, 0.0, 1.0])
    expected = torch.tensor([0.0, -1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0])
    got = sub.call("conv1d_loops", x, weight, forbid=["conv"])
    expect_tensor(got, expected, what=fmt_call("conv1d_loops", x, weight), show_values=True)


@check(cell="test_conv1d_loops", points=1, kind="numerical",
       hint="The bias is one number added to every output (section 7's formula, the docstring's Args).")
def test_conv1d_loops_matches_conv1d_with_bias(sub):
    conv = torch.nn.Conv1d(1, 1, 3)
    x = torch.randn(10)
    weight, bias = conv.weight.detach()[0, 0].clone(), conv.bias.detach().clone()
    with torch.no_grad():
        expected = conv(x[None, None])[0, 0]
    got = sub.call("conv1d_loops", x, weight, bias, forbid=["conv"])
    expect_values(got, expected, what=fmt_call("conv1d_loops", x, weight, bias) + " against nn.Conv1d(1, 1, 3)")


@check(cell="test_conv1d_loops", points=1, kind="numerical",
       hint="Zeros go at both ends of the signal, and the window moves `stride` values at a time: compare your "
            "output's length with the formula of section 7.")
def test_conv1d_loops_stride_and_padding(sub):
    conv = torch.nn.Conv1d(1, 1, 4, stride=2, padding=1, bias=False)
    x = torch.randn(11)
    weight = conv.weight.detach()[0, 0].clone()
    with torch.no_grad():
        expected = conv(x[None, None])[0, 0]
    got = sub.call("conv1d_loops", x, weight, stride=2, padding=1, forbid=["conv"])
    expect_values(got, expected, what=fmt_call("conv1d_loops", x, weight, stride=2, padding=1)
                  + " against nn.Conv1d(1, 1, 4, stride=2, padding=1, bias=False)")


# ---------------------------------------------------------------------------------------------
# edge_features
# ---------------------------------------------------------------------------------------------


@check(cell="test_edge_features", points=1, kind="shape",
       hint="F.conv2d reads its weight as (out_channels, in_channels, kh, kw): the table of section 8 says which of "
            "these the K kernels are, and which axis your (K, kh, kw) stack is missing.")
def test_edge_features_shape(sub):
    xb, kernels = torch.rand(3, 1, 10, 12), torch.randn(4, 3, 3)
    got = sub.edge_features(xb, kernels)
    what = fmt_call("edge_features", xb, kernels)
    expect(isinstance(got, torch.Tensor), f"{what}: expected a torch.Tensor, got {type(got).__name__}")
    expect(tuple(got.shape) == (3, 4, 8, 10),
           f"{what}: expected shape (N, K, H-kh+1, W-kw+1) = (3, 4, 8, 10), got {tuple(got.shape)}")


@check(cell="test_edge_features", points=2, kind="numerical",
       hint="One F.conv2d call with no padding, stride 1 and the kernels as they are (not flipped); if the shape is "
            "right but the values are not, check where you inserted the missing axis (section 8).")
def test_edge_features_matches_conv2d(sub):
    xb, kernels = torch.rand(2, 1, 9, 7), torch.randn(3, 2, 4)
    expect_values(sub.edge_features(xb, kernels), F.conv2d(xb, kernels[:, None]),
                         what=fmt_call("edge_features", xb, kernels))

