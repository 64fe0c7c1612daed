"""01_apply_kernel: wrong implementations lose points on the intended checks, other correct
implementations get full marks, the solution notebook runs within its budget, and a whole
submission is graded end to end by ``python -m autograder grade``.

Running the checks costs a pytest session each time, so the wrong implementations are graded in
batches: batch ``i`` holds the ``i``-th wrong version of every function at once. That is sound
because every check of this assignment calls only the function of its own cell.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import nbformat
import pytest

from autograder.authoring.notebook_builder import fill_answers, solution_sources
from autograder.course import Course
from autograder.grading.from_source import check_code
from autograder.notebooks import grade_id, is_test_cell
from tests.conftest import failed_closed, run_solution_notebook

AID = "01_apply_kernel"
NOTEBOOK_BUDGET_S = 60
CELLS = {
    "edge_kernels": "test_edge_kernels",
    "apply_kernel": "test_apply_kernel",
    "conv2d_loops": "test_conv2d_loops",
    "conv1d_loops": "test_conv1d_loops",
    "edge_features": "test_edge_features",
}


@dataclass(frozen=True)
class Variant:
    label: str
    source: str
    fails: tuple[str, ...] = ()     # checks that must fail
    passes: tuple[str, ...] = ()    # checks that must still pass (one behaviour per check)


def _replace(base: str, *pairs: tuple[str, str]) -> str:
    out = base
    for old, new in pairs:
        assert old in out, f"test bug: {old!r} not in the base implementation"
        out = out.replace(old, new)
    return out


# ------------------------------------------------------------------------------------------------
# edge kernels
# ------------------------------------------------------------------------------------------------

KERNELS_OK = """
top_edge = torch.tensor([[-1., -1, -1], [0, 0, 0], [1, 1, 1]])
left_edge = torch.tensor([[-1., 1, 0], [-1, 1, 0], [-1, 1, 0]])
diag1_edge = torch.tensor([[0., -1, 1], [-1, 1, 0], [1, 0, 0]])
diag2_edge = torch.tensor([[1., -1, 0], [0, 1, -1], [0, 0, 1]])
"""
ALL_KERNEL_CHECKS = ("test_top_edge_values", "test_left_edge_values", "test_diag1_edge_values",
                     "test_diag2_edge_values")

WRONG_KERNELS = [
    Variant("integer dtype (no dtype, whole numbers)", KERNELS_OK.replace("1.", "1").replace("0.", "0"),
            fails=ALL_KERNEL_CHECKS),
    Variant("left_edge typed as top_edge transposed",
            _replace(KERNELS_OK, ("left_edge = torch.tensor([[-1., 1, 0], [-1, 1, 0], [-1, 1, 0]])",
                                  "left_edge = top_edge.T.contiguous()")),
            fails=("test_left_edge_values",),
            passes=("test_top_edge_values", "test_diag1_edge_values", "test_diag2_edge_values")),
    Variant("the two diagonal kernels swapped",
            _replace(KERNELS_OK, ("diag1_edge =", "_tmp ="), ("diag2_edge =", "diag1_edge ="),
                     ("_tmp =", "diag2_edge =")),
            fails=("test_diag1_edge_values", "test_diag2_edge_values"),
            passes=("test_top_edge_values", "test_left_edge_values")),
    Variant("nested Python lists instead of tensors", KERNELS_OK.replace("torch.tensor(", "list(("
                                                                         ).replace("]])", "]]))"),
            fails=ALL_KERNEL_CHECKS),
    Variant("float64 tensors", KERNELS_OK.replace("]])", "]], dtype=torch.float64)"), fails=ALL_KERNEL_CHECKS),
]

ALT_KERNELS = """
top_edge = torch.zeros(3, 3)
top_edge[0] = -1
top_edge[2] = 1
left_edge = torch.tensor([-1.0, 1.0, 0.0]).repeat(3, 1)
diag1_edge = torch.FloatTensor([[0, -1, 1], [-1, 1, 0], [1, 0, 0]])
diag2_edge = torch.tensor([[1, -1, 0], [0, 1, -1], [0, 0, 1]]).float()
"""

# ------------------------------------------------------------------------------------------------
# apply_kernel
# ------------------------------------------------------------------------------------------------

APPLY_OK = """
def apply_kernel(img, row, col, kernel):
    if img.ndim != 2:
        raise ValueError("img must be 2-D")
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError("kernel must be square")
    k = kernel.shape[0]
    if k % 2 == 0:
        raise ValueError("kernel size must be odd")
    r = k // 2
    if row - r < 0 or col - r < 0 or row + r >= img.shape[0] or col + r >= img.shape[1]:
        raise ValueError("the patch leaves the image")
    patch = img[row - r:row + r + 1, col - r:col + r + 1]
    return (patch * kernel).sum()
"""
APPLY_VALUES = ("test_apply_kernel_3x3_patches", "test_apply_kernel_5x5_kernel",
                "test_apply_kernel_matches_reference_everywhere")
APPLY_ERRORS = ("test_apply_kernel_rejects_even_kernel", "test_apply_kernel_rejects_patch_outside_image",
                "test_apply_kernel_rejects_non_square_kernel", "test_apply_kernel_rejects_non_2d_image",
                "test_apply_kernel_rejects_patch_leaving_bottom_right_or_negative")

WRONG_APPLY = [
    Variant("flipped kernel (true convolution)",
            _replace(APPLY_OK, ("(patch * kernel)", "(patch * torch.flip(kernel, dims=(0, 1)))")),
            fails=APPLY_VALUES + ("test_apply_kernel_accepts_patches_touching_the_border",),
            passes=APPLY_ERRORS + ("test_apply_kernel_returns_0d_tensor",)),
    Variant("patch with (row, col) as its top-left corner", """
def apply_kernel(img, row, col, kernel):
    if img.ndim != 2 or kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
        raise ValueError("bad input")
    k = kernel.shape[0]
    if row < 0 or col < 0 or row + k > img.shape[0] or col + k > img.shape[1]:
        raise ValueError("the patch leaves the image")
    return (img[row:row + k, col:col + k] * kernel).sum()
""", fails=APPLY_VALUES + ("test_apply_kernel_rejects_patch_outside_image",)),
    Variant("no validation at all", """
def apply_kernel(img, row, col, kernel):
    r = kernel.shape[0] // 2
    return (img[row - r:row + r + 1, col - r:col + r + 1] * kernel).sum()
""", fails=APPLY_ERRORS, passes=APPLY_VALUES),
    Variant("negative positions not rejected (Python wraps them around)",
            _replace(APPLY_OK, ("row - r < 0 or col - r < 0 or ", "")),
            fails=("test_apply_kernel_rejects_patch_leaving_bottom_right_or_negative",),
            passes=APPLY_VALUES),
    Variant("off by one: rejects patches that touch the border",
            _replace(APPLY_OK, ("row - r < 0 or col - r < 0 or row + r >= img.shape[0] or col + r >= img.shape[1]",
                                "row - r <= 0 or col - r <= 0 or row + r >= img.shape[0] - 1 "
                                "or col + r >= img.shape[1] - 1")),
            fails=("test_apply_kernel_accepts_patches_touching_the_border",)),
    Variant("returns a Python float (.item())",
            _replace(APPLY_OK, ("return (patch * kernel).sum()", "return (patch * kernel).sum().item()")),
            fails=("test_apply_kernel_returns_0d_tensor",), passes=APPLY_VALUES + APPLY_ERRORS),
    Variant("only the kernel's height is checked",
            _replace(APPLY_OK, ("kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]", "kernel.ndim != 2")),
            fails=("test_apply_kernel_rejects_non_square_kernel",), passes=APPLY_VALUES),
]

ALT_APPLY = """
def apply_kernel(img, row, col, kernel):
    if img.dim() != 2:
        raise ValueError(f"expected a 2-D image, got {img.dim()} dimensions")
    kh, kw = kernel.shape if kernel.dim() == 2 else (0, 1)
    if kh != kw or kh % 2 != 1:
        raise ValueError("the kernel must be square with an odd size")
    half = kh // 2
    if row not in range(half, img.shape[0] - half) or col not in range(half, img.shape[1] - half):
        raise ValueError("the patch does not fit in the image")
    total = torch.zeros((), dtype=img.dtype)
    for a in range(kh):
        for b in range(kw):
            total = total + kernel[a, b] * img[row - half + a, col - half + b]
    return total
"""

# ------------------------------------------------------------------------------------------------
# conv2d_loops
# ------------------------------------------------------------------------------------------------

CONV2D_OK = """
def conv2d_loops(img, kernel, padding=0, stride=1):
    h, w = img.shape
    kh, kw = kernel.shape
    if kh > h + 2 * padding or kw > w + 2 * padding:
        raise ValueError("the kernel is larger than the padded image")
    padded = torch.zeros(h + 2 * padding, w + 2 * padding)
    padded[padding:padding + h, padding:padding + w] = img
    out_h = (h + 2 * padding - kh) // stride + 1
    out_w = (w + 2 * padding - kw) // stride + 1
    out = torch.zeros(out_h, out_w)
    for i in range(out_h):
        for j in range(out_w):
            out[i, j] = (padded[i * stride:i * stride + kh, j * stride:j * stride + kw] * kernel).sum()
    return out
"""
CONV2D_ALL = ("test_conv2d_loops_matches_conv2d", "test_conv2d_loops_non_square_kernel",
              "test_conv2d_loops_padding", "test_conv2d_loops_stride", "test_conv2d_loops_output_shape",
              "test_conv2d_loops_rejects_kernel_larger_than_image",
              "test_conv2d_loops_padding_stride_combinations", "test_conv2d_loops_kernel_as_large_as_padded_image",
              "test_conv2d_loops_stride_larger_than_kernel",
              "test_conv2d_loops_rejects_kernel_too_large_in_one_direction",
              "test_conv2d_loops_edge_kernels_on_a_rectangle")

WRONG_CONV2D = [
    Variant("flipped kernel (true convolution)",
            _replace(CONV2D_OK, ("* kernel).sum()", "* kernel.flip(0, 1)).sum()")),
            fails=("test_conv2d_loops_matches_conv2d", "test_conv2d_loops_padding_stride_combinations",
                   "test_conv2d_loops_edge_kernels_on_a_rectangle"),
            passes=("test_conv2d_loops_output_shape", "test_conv2d_loops_rejects_kernel_larger_than_image")),
    Variant("output size without the + 1",
            _replace(CONV2D_OK, ("- kh) // stride + 1", "- kh) // stride"), ("- kw) // stride + 1", "- kw) // stride")),
            fails=("test_conv2d_loops_output_shape", "test_conv2d_loops_matches_conv2d",
                   "test_conv2d_loops_padding_stride_combinations")),
    Variant("padding on the top and left only",
            _replace(CONV2D_OK,
                     ("padded = torch.zeros(h + 2 * padding, w + 2 * padding)\n"
                      "    padded[padding:padding + h, padding:padding + w] = img",
                      "padded = F.pad(img, (padding, 0, padding, 0))"),
                     ("(h + 2 * padding - kh)", "(h + padding - kh)"), ("(w + 2 * padding - kw)", "(w + padding - kw)")),
            fails=("test_conv2d_loops_padding", "test_conv2d_loops_output_shape",
                   "test_conv2d_loops_padding_stride_combinations"),
            passes=("test_conv2d_loops_matches_conv2d", "test_conv2d_loops_stride")),
    Variant("stride ignored",
            _replace(CONV2D_OK, ("// stride + 1", "+ 1"), ("i * stride", "i"), ("j * stride", "j")),
            fails=("test_conv2d_loops_stride", "test_conv2d_loops_output_shape",
                   "test_conv2d_loops_padding_stride_combinations", "test_conv2d_loops_stride_larger_than_kernel"),
            passes=("test_conv2d_loops_matches_conv2d", "test_conv2d_loops_padding")),
    Variant("height and width of the kernel swapped",
            _replace(CONV2D_OK, ("kh, kw = kernel.shape", "kw, kh = kernel.shape")),
            fails=("test_conv2d_loops_non_square_kernel", "test_conv2d_loops_padding_stride_combinations"),
            passes=("test_conv2d_loops_matches_conv2d", "test_conv2d_loops_rejects_kernel_larger_than_image")),
    Variant("uses F.conv2d (forbidden)", """
def conv2d_loops(img, kernel, padding=0, stride=1):
    return F.conv2d(img[None, None], kernel[None, None], padding=padding, stride=stride)[0, 0]
""", fails=CONV2D_ALL),
    Variant("uses Tensor.unfold (forbidden)", """
def conv2d_loops(img, kernel, padding=0, stride=1):
    kh, kw = kernel.shape
    if kh > img.shape[0] + 2 * padding or kw > img.shape[1] + 2 * padding:
        raise ValueError("the kernel is larger than the padded image")
    windows = F.pad(img, (padding,) * 4).unfold(0, kh, stride).unfold(1, kw, stride)
    return (windows * kernel).sum(dim=(-2, -1))
""", fails=tuple(c for c in CONV2D_ALL if "rejects" not in c)),
    Variant("no check that the kernel fits",
            _replace(CONV2D_OK, ('raise ValueError("the kernel is larger than the padded image")', "pass")),
            fails=("test_conv2d_loops_rejects_kernel_larger_than_image",
                   "test_conv2d_loops_rejects_kernel_too_large_in_one_direction"),
            passes=("test_conv2d_loops_matches_conv2d", "test_conv2d_loops_padding_stride_combinations")),
    Variant("the size check ignores the padding",
            _replace(CONV2D_OK, ("if kh > h + 2 * padding or kw > w + 2 * padding:", "if kh > h or kw > w:")),
            fails=("test_conv2d_loops_kernel_as_large_as_padded_image",),
            passes=("test_conv2d_loops_matches_conv2d", "test_conv2d_loops_padding")),
]

ALT_CONV2D = """
def conv2d_loops(img, kernel, padding=0, stride=1):
    # Loop over the kernel's offsets instead of the output positions: kh*kw strided slices.
    kh, kw = kernel.shape
    P = F.pad(img, (padding, padding, padding, padding))
    H, W = P.shape
    if kh > H or kw > W:
        raise ValueError(f"a {kh}x{kw} kernel does not fit in the padded {H}x{W} image")
    oh, ow = (H - kh) // stride + 1, (W - kw) // stride + 1
    out = torch.zeros(oh, ow, dtype=img.dtype)
    for a in range(kh):
        for b in range(kw):
            out += kernel[a, b] * P[a:a + stride * (oh - 1) + 1:stride, b:b + stride * (ow - 1) + 1:stride]
    return out
"""

# ------------------------------------------------------------------------------------------------
# conv1d_loops
# ------------------------------------------------------------------------------------------------

CONV1D_OK = """
def conv1d_loops(x, weight, bias=None, stride=1, padding=0):
    length, k = x.shape[0], weight.shape[0]
    if k > length + 2 * padding:
        raise ValueError("the kernel is longer than the padded input")
    xp = torch.cat([torch.zeros(padding), x, torch.zeros(padding)])
    n_out = (length + 2 * padding - k) // stride + 1
    out = torch.stack([(xp[i * stride:i * stride + k] * weight).sum() for i in range(n_out)])
    if bias is not None:
        out = out + bias
    return out
"""

WRONG_CONV1D = [
    Variant("bias ignored", _replace(CONV1D_OK, ("out = out + bias", "pass")),
            fails=("test_conv1d_loops_matches_conv1d_with_bias", "test_conv1d_loops_matches_reference",
                   "test_conv1d_loops_bias_as_number_or_0d_tensor"),
            passes=("test_conv1d_loops_sentence", "test_conv1d_loops_stride_and_padding")),
    Variant("flipped kernel (true convolution)", _replace(CONV1D_OK, ("* weight)", "* weight.flip(0))")),
            fails=("test_conv1d_loops_sentence", "test_conv1d_loops_matches_conv1d_with_bias",
                   "test_conv1d_loops_matches_reference")),
    Variant("stride ignored", _replace(CONV1D_OK, ("// stride + 1", "+ 1"), ("i * stride", "i")),
            fails=("test_conv1d_loops_stride_and_padding", "test_conv1d_loops_matches_reference"),
            passes=("test_conv1d_loops_sentence", "test_conv1d_loops_matches_conv1d_with_bias")),
    Variant("padding ignored",
            _replace(CONV1D_OK, ("xp = torch.cat([torch.zeros(padding), x, torch.zeros(padding)])", "xp = x"),
                     ("(length + 2 * padding - k)", "(length - k)")),
            fails=("test_conv1d_loops_stride_and_padding", "test_conv1d_loops_matches_reference"),
            passes=("test_conv1d_loops_sentence", "test_conv1d_loops_matches_conv1d_with_bias")),
    Variant("output length without the + 1", _replace(CONV1D_OK, ("// stride + 1", "// stride")),
            fails=("test_conv1d_loops_sentence", "test_conv1d_loops_matches_reference")),
    Variant("uses F.conv1d (forbidden)", """
def conv1d_loops(x, weight, bias=None, stride=1, padding=0):
    b = None if bias is None else torch.as_tensor(bias, dtype=x.dtype).reshape(1)
    return F.conv1d(x[None, None], weight[None, None], b, stride=stride, padding=padding)[0, 0]
""", fails=("test_conv1d_loops_sentence", "test_conv1d_loops_matches_conv1d_with_bias",
            "test_conv1d_loops_stride_and_padding", "test_conv1d_loops_matches_reference",
            "test_conv1d_loops_bias_as_number_or_0d_tensor")),
    Variant("bias assumed to be a (1,) tensor", _replace(CONV1D_OK, ("out + bias", "out + bias[0]")),
            fails=("test_conv1d_loops_bias_as_number_or_0d_tensor",),
            passes=("test_conv1d_loops_matches_conv1d_with_bias", "test_conv1d_loops_matches_reference")),
    Variant("no check that the kernel fits",
            _replace(CONV1D_OK, ('raise ValueError("the kernel is longer than the padded input")', "pass")),
            fails=("test_conv1d_loops_rejects_kernel_longer_than_input",),
            passes=("test_conv1d_loops_sentence",)),
]

ALT_CONV1D = """
def conv1d_loops(x, weight, bias=None, stride=1, padding=0):
    k = len(weight)
    xp = F.pad(x, (padding, padding))
    if k > len(xp):
        raise ValueError(f"kernel of length {k} does not fit in {len(xp)} padded values")
    b = 0.0 if bias is None else float(bias)
    starts = range(0, len(xp) - k + 1, stride)
    return torch.stack([torch.dot(xp[s:s + k], weight) + b for s in starts])
"""

# ------------------------------------------------------------------------------------------------
# edge_features
# ------------------------------------------------------------------------------------------------

WRONG_EDGE_FEATURES = [
    Variant("loops over the kernels (one F.conv2d call per kernel)", """
def edge_features(xb, kernels):
    return torch.cat([F.conv2d(xb, k[None, None]) for k in kernels], dim=1)
""", fails=("test_edge_features_uses_one_conv_call",),
        passes=("test_edge_features_shape", "test_edge_features_matches_conv2d",
                "test_edge_features_matches_reference")),
    Variant("unsqueeze(0): weight (1, K, kh, kw)", """
def edge_features(xb, kernels):
    return F.conv2d(xb, kernels.unsqueeze(0))
""", fails=("test_edge_features_shape", "test_edge_features_matches_conv2d", "test_edge_features_matches_reference")),
    Variant("padding=1 to keep the image size", """
def edge_features(xb, kernels):
    return F.conv2d(xb, kernels.unsqueeze(1), padding=1)
""", fails=("test_edge_features_shape", "test_edge_features_matches_conv2d", "test_edge_features_matches_reference")),
    Variant("kernels flipped", """
def edge_features(xb, kernels):
    return F.conv2d(xb, kernels.flip(-2, -1).unsqueeze(1))
""", fails=("test_edge_features_matches_conv2d", "test_edge_features_matches_reference"),
        passes=("test_edge_features_shape",)),
    Variant("loops over the images", """
def edge_features(xb, kernels):
    return torch.cat([F.conv2d(x[None], kernels[:, None]) for x in xb])
""", fails=("test_edge_features_uses_one_conv_call",), passes=("test_edge_features_matches_reference",)),
]

ALT_EDGE_FEATURES = """
def edge_features(xb, kernels):
    k, kh, kw = kernels.shape
    conv = nn.Conv2d(1, k, (kh, kw), bias=False)
    with torch.no_grad():
        conv.weight.copy_(kernels.reshape(k, 1, kh, kw))
        return conv(xb)
"""

# Correct answers in styles the checks were not written against (issue 18): a tensor subclass, numpy inside,
# einsum, a different loop order, float64 accumulation, keyword arguments. Each set is graded in one batch.
MORE_ALTERNATIVES = {
    "edge_kernels": """
import numpy as np
top_edge = torch.nn.Parameter(torch.tensor([[-1., -1, -1], [0, 0, 0], [1, 1, 1]]), requires_grad=False)
left_edge = torch.from_numpy(np.array([[-1, 1, 0]] * 3, dtype=np.float32))
diag1_edge = torch.tensor([[0, -1, 1], [-1, 1, 0], [1, 0, 0]], dtype=torch.float).flip(0).flip(0)
diag2_edge = torch.eye(3) - torch.diag(torch.ones(2), 1)
""",
    "apply_kernel": """
import numpy as np

def apply_kernel(img, row, col, kernel):
    if len(img.shape) != 2 or len(kernel.shape) != 2:
        raise ValueError("img and kernel must be 2-D")
    k, k2 = kernel.shape
    if k != k2 or k % 2 == 0:
        raise ValueError("the kernel must be square with an odd size")
    h, w = img.shape
    r = k // 2
    if min(row, col) < r or row >= h - r or col >= w - r:
        raise ValueError("the patch leaves the image")
    patch = img.numpy()[row - r:row + r + 1, col - r:col + r + 1]
    return torch.tensor(np.einsum("ij,ij->", patch, kernel.numpy()), dtype=img.dtype)
""",
    "conv2d_loops": """
import numpy as np

def conv2d_loops(img, kernel, padding=0, stride=1):
    # numpy inside, columns in the outer loop, sums accumulated in float64.
    a, k = np.pad(img.numpy().astype(np.float64), padding), kernel.numpy().astype(np.float64)
    (H, W), (kh, kw) = a.shape, k.shape
    if kh > H or kw > W:
        raise ValueError("the kernel does not fit in the padded image")
    oh, ow = (H - kh) // stride + 1, (W - kw) // stride + 1
    out = np.empty((oh, ow))
    for j in range(ow):
        for i in range(oh):
            out[i, j] = np.einsum("ab,ab->", a[i * stride:i * stride + kh, j * stride:j * stride + kw], k)
    return torch.from_numpy(out).to(img.dtype)
""",
    "conv1d_loops": """
import numpy as np

def conv1d_loops(x, weight, bias=None, stride=1, padding=0):
    xp = np.concatenate([np.zeros(padding, dtype=np.float32), x.numpy(), np.zeros(padding, dtype=np.float32)])
    k = weight.shape[0]
    if k > xp.shape[0]:
        raise ValueError("the kernel is longer than the padded signal")
    w = weight.numpy()
    out = [float(np.dot(xp[s:s + k], w)) for s in range(0, xp.shape[0] - k + 1, stride)]
    shift = 0.0 if bias is None else torch.as_tensor(bias).reshape(-1)[0].item()
    return torch.tensor(out, dtype=x.dtype) + shift
""",
    "edge_features": """
def edge_features(xb, kernels):
    n_kernels, kh, kw = kernels.shape
    return torch.conv2d(input=xb, weight=kernels.view(n_kernels, 1, kh, kw), bias=None, stride=1, padding=0)
""",
}

WRONG = {"edge_kernels": WRONG_KERNELS, "apply_kernel": WRONG_APPLY, "conv2d_loops": WRONG_CONV2D,
         "conv1d_loops": WRONG_CONV1D, "edge_features": WRONG_EDGE_FEATURES}
ALTERNATIVES = {"edge_kernels": ALT_KERNELS, "apply_kernel": ALT_APPLY, "conv2d_loops": ALT_CONV2D,
                "conv1d_loops": ALT_CONV1D, "edge_features": ALT_EDGE_FEATURES}


def _by_cell(results, function):
    cell = CELLS[function]
    return {name: r for name, r in results.items() if r.cell == cell}


@pytest.fixture(scope="module")
def graded_variants():
    """(function, label) -> {check name: CheckResult} for every wrong variant, graded in batches."""
    out = {}
    for i in range(max(len(v) for v in WRONG.values())):
        batch = {fn: variants[i] for fn, variants in WRONG.items() if i < len(variants)}
        results = check_code(AID, {fn: v.source for fn, v in batch.items()})
        for fn, v in batch.items():
            out[(fn, v.label)] = _by_cell(results, fn)
    return out


@pytest.mark.parametrize("function,variant", [(fn, v) for fn, vs in WRONG.items() for v in vs],
                         ids=lambda x: x if isinstance(x, str) else x.label.replace(" ", "_"))
def test_wrong_implementation_loses_points(function, variant, graded_variants):
    results = graded_variants[(function, variant.label)]
    assert results, f"no checks ran for {function}"
    for name in variant.fails:
        assert name in results, f"unknown check {name}"
        assert not results[name].passed, f"{variant.label}: {name} should fail"
        assert results[name].status == "failed", f"{name} broke instead of failing: {results[name].message}"
        assert results[name].message, f"{name} failed without a message"
    for name in variant.passes:
        assert results[name].passed, f"{variant.label}: {name} should still pass: {results[name].message}"
    assert sum(r.points for r in results.values()) < sum(r.max_points for r in results.values())


def test_forbidden_builtin_is_named_in_the_message(graded_variants):
    results = graded_variants[("conv2d_loops", "uses F.conv2d (forbidden)")]
    assert sum(r.points for r in results.values()) == 0
    assert "convolution" in results["test_conv2d_loops_matches_conv2d"].message
    unfold = graded_variants[("conv2d_loops", "uses Tensor.unfold (forbidden)")]
    assert "unfold" in unfold["test_conv2d_loops_matches_conv2d"].message


def test_hidden_messages_do_not_print_reference_outputs(graded_variants):
    results = graded_variants[("conv2d_loops", "flipped kernel (true convolution)")]
    message = results["test_conv2d_loops_padding_stride_combinations"].message
    assert "largest difference" in message and "expected:" not in message and "[[" not in message


@pytest.mark.parametrize("alternatives", [ALTERNATIVES, MORE_ALTERNATIVES], ids=["alternatives", "other_styles"])
def test_alternative_correct_implementations_get_full_marks(alternatives):
    assert set(alternatives) == set(CELLS)
    results = check_code(AID, alternatives)
    bad = {name: r.message for name, r in results.items() if not r.passed}
    assert not bad, bad


# ------------------------------------------------------------------------------------------------
# Whole notebooks
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_solution_notebook_passes_its_public_checks_within_budget(fashion_mnist_root):
    path = Course().get(AID).solution_notebook
    nb, seconds = run_solution_notebook(path, timeout=300)
    # Every public check passes and no other cell fails; the hidden blocks fail closed in a kernel (full marks
    # for the reference come from the engine: the end-to-end tests here and tests/nbgrader/test_agreement.py).
    assert failed_closed(nb) == set(CELLS.values())
    for cell in nb.cells:
        if is_test_cell(cell):
            assert not [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"], grade_id(cell)
    assert seconds < NOTEBOOK_BUDGET_S, f"the notebook took {seconds:.0f} s (budget {NOTEBOOK_BUDGET_S} s)"


@pytest.mark.slow
def test_graded_end_to_end(tmp_path, fashion_mnist_root):
    course = Course()
    assignment = course.get(AID)
    release = nbformat.read(assignment.release_notebook, as_version=4)
    answers = solution_sources(nbformat.read(assignment.solution_notebook, as_version=4))
    # Right answers for three exercises, a flipped conv2d_loops and a per-kernel loop in edge_features;
    # conv1d_loops is left as the release's stub.
    answers.pop("conv1d_loops")
    answers["conv2d_loops"] = WRONG_CONV2D[0].source
    answers["edge_features"] = WRONG_EDGE_FEATURES[0].source
    path = tmp_path / f"{AID}.ipynb"
    nbformat.write(fill_answers(release, answers), path)
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(path), "--results", str(out)],
                          capture_output=True, text=True, cwd=course.root, env={**os.environ}, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    tests = {t["name"]: t for t in results["tests"]}

    def cell_score(cell):
        return sum(t["score"] for t in results["tests"] if t["name"].startswith(f"{cell}: "))

    assert results["max_score"] == 43
    assert cell_score("test_edge_kernels") == 4
    assert cell_score("test_apply_kernel") == 12
    assert cell_score("test_conv1d_loops") == 0
    assert cell_score("test_edge_features") == 5
    # The flipped kernel keeps the shape and error points only: 1 + 1 public, 1 hidden.
    assert cell_score("test_conv2d_loops") == 3
    assert results["score"] == 4 + 12 + 3 + 0 + 5
    one_call = tests["test_edge_features: test_edge_features_uses_one_conv_call"]
    assert one_call["status"] == "failed" and one_call["visibility"] == "after_published"
    # Counted in the grader from the source (a loop around F.conv2d), else by the worker (4 calls).
    assert "inside a loop" in one_call["output"] or "4 convolutions" in one_call["output"]
    sentence = tests["test_conv1d_loops: test_conv1d_loops_sentence"]
    assert sentence["status"] == "failed" and sentence["visibility"] == "visible"
    assert "NotImplementedError" in sentence["output"]
    shape = tests["test_conv2d_loops: test_conv2d_loops_output_shape"]
    assert shape["status"] == "passed" and shape["score"] == shape["max_score"] == 1
    manual = [t for t in results["tests"] if t["name"].endswith("written answer")]
    assert len(manual) == 7  # three questions and four quick-recall ones
