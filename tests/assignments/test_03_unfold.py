"""03_unfold: realistic wrong implementations lose points on the intended checks; other correct ones don't.

Written with the shared helper ``tests/variants.py`` (graded in batches on top of the reference
notebook's namespace). No variant below calls another function of its batch (the one that uses
``im2col`` is in a batch of correct versions). The reference's full marks, the points per cell and
the release's zero are the course's contract (``tests/contract/``).
"""

from __future__ import annotations

import textwrap

import pytest

from tests.variants import VariantGrader, assert_grades, correct, wrong

AID = "03_unfold"
CELL = {"col2im_shape": "test_col2im_shape", "im2col": "test_im2col", "conv2d_unfold": "test_conv2d_unfold"}


# ---------------------------------------------------------------------------------------------
# col2im_shape

def col2im(body: str, validate: bool = True) -> str:
    check = ("    if kh < 1 or kw < 1 or padding < 0 or stride < 1 or kh > h + 2 * padding or kw > w + 2 * padding:\n"
             "        raise ValueError('bad arguments')\n") if validate else ""
    return ("def col2im_shape(h, w, kernel_size, padding=0, stride=1):\n"
            "    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size\n"
            + check + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    "))


SQUARE, NON_SQUARE = "test_col2im_shape_square_examples", "test_col2im_shape_non_square"
SHAPE_REF, SHAPE_ERR = "test_col2im_shape_matches_reference", "test_col2im_shape_rejects_bad_arguments"
SHAPE_TYPE = "test_col2im_shape_returns_tuple_of_ints"
FORMULA = "((h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1)"

COL2IM_VARIANTS = [
    wrong("col2im_shape", "missing_plus_one",
          col2im("return ((h + 2 * padding - kh) // stride, (w + 2 * padding - kw) // stride)"),
          {SQUARE, NON_SQUARE, SHAPE_REF}),
    wrong("col2im_shape", "true_division_floats",
          col2im("return ((h + 2 * padding - kh) / stride + 1, (w + 2 * padding - kw) / stride + 1)"),
          {SQUARE, NON_SQUARE, SHAPE_REF, SHAPE_TYPE}),
    wrong("col2im_shape", "padding_counted_once",
          col2im("return ((h + padding - kh) // stride + 1, (w + padding - kw) // stride + 1)"),
          {SQUARE, SHAPE_REF}),
    wrong("col2im_shape", "kh_used_for_width",
          col2im("return ((h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kh) // stride + 1)"),
          {NON_SQUARE, SHAPE_REF}),
    # The right numbers in the wrong container: only the type check is lost (one behaviour per check).
    wrong("col2im_shape", "returns_list", col2im(f"return list({FORMULA})"), {SHAPE_TYPE}, only=True),
    wrong("col2im_shape", "returns_tensors", col2im(f"return tuple(torch.tensor({FORMULA}))"), {SHAPE_TYPE},
          only=True),
    wrong("col2im_shape", "no_validation", col2im(f"return {FORMULA}", validate=False), {SHAPE_ERR}, only=True),
]
COL2IM_CORRECT = [
    # Count the valid patch starts instead of using the formula.
    correct("col2im_shape", "count_patch_starts_with_range",
            col2im("return (len(range(0, h + 2 * padding - kh + 1, stride)), "
                   "len(range(0, w + 2 * padding - kw + 1, stride)))")),
    correct("col2im_shape", "math_floor", "import math\n" + col2im(
        "return (int(math.floor((h + 2 * padding - kh) / stride)) + 1, "
        "int(math.floor((w + 2 * padding - kw) / stride)) + 1)")),
    # numpy arithmetic: numpy integers (which arrive as Python ints), validation by a helper.
    correct("col2im_shape", "numpy_integers", """
        import numpy as np

        def col2im_shape(h, w, kernel_size, padding=0, stride=1):
            k = np.broadcast_to(np.asarray(kernel_size), 2)
            size = np.array([h, w]) + 2 * padding
            if (k < 1).any() or padding < 0 or stride < 1 or (k > size).any():
                raise ValueError(f"no {tuple(k)} patch fits in {tuple(size)} with stride {stride}")
            h_out, w_out = (size - k) // stride + 1
            return h_out, w_out
        """),
]

# ---------------------------------------------------------------------------------------------
# im2col

IM2COL_HEAD = """\
def im2col(x, kernel_size, padding=0, stride=1):
    if x.dim() != 4:
        raise ValueError("x must be 4-D")
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    n, c, h, w = x.shape
    if kh > h + 2 * padding or kw > w + 2 * padding:
        raise ValueError("kernel too large")
"""
OUT_SIZE = "    h_out, w_out = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1\n"
OFFSETS_LOOP = """
xp = F.pad(x, (padding, padding, padding, padding))
cols = x.new_empty(n, c, kh, kw, h_out, w_out)
for a in range(kh):
    for b in range(kw):
        cols[:, :, a, b] = xp[:, :, a:a + stride * h_out:stride, b:b + stride * w_out:stride]
return cols.reshape(n, c * kh * kw, h_out * w_out)
"""


def im2col(body: str, out_size: str = OUT_SIZE, head: str = IM2COL_HEAD) -> str:
    return head + out_size + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")


SINGLE, CHANNELS = "test_im2col_single_channel", "test_im2col_channels_batch_and_rectangular_kernel"
PAD_STRIDE, NOT_4D = "test_im2col_padding_and_stride", "test_im2col_rejects_non_4d_input"
COLS_REF, COLS_EDGE = "test_im2col_matches_reference_on_random_shapes", "test_im2col_edge_cases"
TOO_LARGE = "test_im2col_rejects_kernel_larger_than_image"
IM2COL_VALUE_CHECKS = {SINGLE, CHANNELS, PAD_STRIDE, COLS_REF, COLS_EDGE}

IM2COL_VARIANTS = [
    # Stacking the kernel offsets first: rows come out (kh, kw, C) instead of (C, kh, kw).
    wrong("im2col", "channel_last_rows", im2col("""
        xp = F.pad(x, (padding, padding, padding, padding))
        slices = [xp[:, :, a:a + stride * h_out:stride, b:b + stride * w_out:stride]
                  for a in range(kh) for b in range(kw)]
        return torch.stack(slices, dim=1).reshape(n, kh * kw * c, h_out * w_out)
        """), {CHANNELS, PAD_STRIDE, COLS_REF}, explains=(CHANNELS, "row = c*kh*kw + a*kw + b")),
    wrong("im2col", "forgets_padding", im2col("""
        cols = x.new_empty(n, c, kh, kw, h_out, w_out)
        for a in range(kh):
            for b in range(kw):
                cols[:, :, a, b] = x[:, :, a:a + stride * h_out:stride, b:b + stride * w_out:stride]
        return cols.reshape(n, c * kh * kw, h_out * w_out)
        """), {PAD_STRIDE, COLS_REF}),
    wrong("im2col", "ignores_stride", im2col("""
        xp = F.pad(x, (padding, padding, padding, padding))
        cols = x.new_empty(n, c, kh, kw, h_out, w_out)
        for a in range(kh):
            for b in range(kw):
                cols[:, :, a, b] = xp[:, :, a:a + h_out, b:b + w_out]
        return cols.reshape(n, c * kh * kw, h_out * w_out)
        """, out_size="    h_out, w_out = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1\n"),
        {PAD_STRIDE, COLS_REF, COLS_EDGE}, explains=(PAD_STRIDE, "h_out * w_out")),
    # Patches numbered column by column: H and W swapped in the column order.
    wrong("im2col", "columns_h_w_swapped", im2col("""
        xp = F.pad(x, (padding, padding, padding, padding))
        cols = x.new_empty(n, c, kh, kw, w_out, h_out)
        for a in range(kh):
            for b in range(kw):
                cols[:, :, a, b] = xp[:, :, a:a + stride * h_out:stride, b:b + stride * w_out:stride].mT
        return cols.reshape(n, c * kh * kw, h_out * w_out)
        """), {SINGLE, CHANNELS, PAD_STRIDE, COLS_REF}, explains=(SINGLE, "H and W swapped")),
    # The kernel flattened column by column within each channel.
    wrong("im2col", "kernel_flattened_column_major", im2col("""
        xp = F.pad(x, (padding, padding, padding, padding))
        cols = x.new_empty(n, c, kw, kh, h_out, w_out)
        for a in range(kh):
            for b in range(kw):
                cols[:, :, b, a] = xp[:, :, a:a + stride * h_out:stride, b:b + stride * w_out:stride]
        return cols.reshape(n, c * kh * kw, h_out * w_out)
        """), {SINGLE, CHANNELS, PAD_STRIDE, COLS_REF}, explains=(SINGLE, "row by row")),
    wrong("im2col", "off_by_one_output_size", im2col(OFFSETS_LOOP, out_size=(
        "    h_out, w_out = (h + 2 * padding - kh) // stride, (w + 2 * padding - kw) // stride\n")),
        {SINGLE, CHANNELS, PAD_STRIDE, COLS_REF, COLS_EDGE}, explains=(SINGLE, "h_out * w_out")),
    wrong("im2col", "creates_float32", im2col(OFFSETS_LOOP.replace("x.new_empty(", "torch.zeros(")),
          {COLS_EDGE}, only=True),
    wrong("im2col", "uses_F_unfold", im2col("return F.unfold(x, (kh, kw), padding=padding, stride=stride)"),
          IM2COL_VALUE_CHECKS, only=True, explains=(SINGLE, "not allow")),
    wrong("im2col", "uses_nn_Unfold", im2col("return torch.nn.Unfold((kh, kw), padding=padding, stride=stride)(x)"),
          IM2COL_VALUE_CHECKS, only=True, explains=(SINGLE, "Tensor.unfold")),
    # Tensor.unfold twice: (N, C, h_out, w_out, kh, kw), then rows (C, kh, kw).
    wrong("im2col", "uses_Tensor_unfold", im2col("""
        patches = F.pad(x, (padding,) * 4).unfold(2, kh, stride).unfold(3, kw, stride)
        return patches.permute(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, h_out * w_out)
        """), IM2COL_VALUE_CHECKS, only=True, explains=(SINGLE, "not allow")),
    # No input validation: a 3-D input is treated as one image, a too-large kernel crashes in torch.
    wrong("im2col", "no_validation", im2col("x = x.reshape(n, c, h, w)\n" + OFFSETS_LOOP, head=(
        "def im2col(x, kernel_size, padding=0, stride=1):\n"
        "    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)\n"
        "    n, c, h, w = x.shape if x.dim() == 4 else (1, 1, *x.shape[-2:])\n")),
        {NOT_4D, TOO_LARGE}, only=True),
]
IM2COL_CORRECT = [
    correct("im2col", "loop_over_kernel_offsets", im2col(OFFSETS_LOOP)),
    # One patch at a time: slow, but the exercise allows loops.
    correct("im2col", "loop_over_output_positions", im2col("""
        xp = F.pad(x, (padding, padding, padding, padding))
        columns = []
        for i in range(h_out):
            for j in range(w_out):
                patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                columns.append(patch.reshape(n, c * kh * kw))
        return torch.stack(columns, dim=2)
        """)),
    # Advanced indexing with broadcast index tensors, no Python loop at all.
    correct("im2col", "gather_with_index_tensors", im2col("""
        xp = F.pad(x, (padding, padding, padding, padding))
        rows = (torch.arange(h_out) * stride)[:, None] + torch.arange(kh)[None, :]   # (h_out, kh)
        cols = (torch.arange(w_out) * stride)[:, None] + torch.arange(kw)[None, :]   # (w_out, kw)
        patches = xp[:, :, rows[:, None, :, None], cols[None, :, None, :]]            # (n, c, h_out, w_out, kh, kw)
        return patches.permute(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, h_out * w_out)
        """)),
    # A strided view of the padded batch (as_strided is not unfold), copied into the right order.
    correct("im2col", "as_strided_view", im2col("""
        xp = F.pad(x, (padding, padding, padding, padding)).contiguous()
        sn, sc, sh, sw = xp.stride()
        view = xp.as_strided((n, c, kh, kw, h_out, w_out), (sn, sc, sh, sw, sh * stride, sw * stride))
        return view.reshape(n, c * kh * kw, h_out * w_out)
        """)),
    # numpy inside: fancy indexing on a padded numpy array, back to a tensor of x's dtype.
    correct("im2col", "numpy_fancy_indexing", im2col("""
        import numpy as np
        xp = np.pad(x.numpy(), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        a, b = np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij")              # (kh, kw) offsets
        i, j = np.meshgrid(np.arange(h_out) * stride, np.arange(w_out) * stride, indexing="ij")
        rows = a.reshape(-1, 1) + i.reshape(1, -1)                                   # (kh*kw, L)
        cols = b.reshape(-1, 1) + j.reshape(1, -1)
        return torch.from_numpy(xp[:, :, rows, cols].reshape(n, c * kh * kw, h_out * w_out).copy())
        """)),
]

# ---------------------------------------------------------------------------------------------
# conv2d_unfold

CONV_HEAD = """\
def conv2d_unfold(x, weight, bias=None, padding=0, stride=1):
    if x.dim() != 4 or weight.dim() != 4:
        raise ValueError("x and weight must be 4-D")
    n, c, h, w = x.shape
    nf, cw, kh, kw = weight.shape
    if cw != c:
        raise ValueError("channel mismatch")
    if bias is not None and tuple(bias.shape) != (nf,):
        raise ValueError("bias shape")
    h_out, w_out = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
"""


def conv(body: str, head: str = CONV_HEAD) -> str:
    return head + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")


ONE, BIAS = "test_conv2d_unfold_one_filter", "test_conv2d_unfold_channels_filters_and_bias"
CONV_PAD = "test_conv2d_unfold_padding_and_stride"
VECTORISED, SHAPES = "test_conv2d_unfold_is_vectorised", "test_conv2d_unfold_rejects_mismatched_shapes"
CONV_REF, PER_FILTER = "test_conv2d_unfold_matches_reference", "test_conv2d_unfold_bias_is_per_filter"
FLOAT64 = "test_conv2d_unfold_float64"
CONV_VALUE_CHECKS = {ONE, BIAS, CONV_PAD, CONV_REF, PER_FILTER, FLOAT64}

CONV_VARIANTS = [
    wrong("conv2d_unfold", "missing_bias", conv("""
        out = weight.reshape(nf, -1) @ F.unfold(x, (kh, kw), padding=padding, stride=stride)
        return out.reshape(n, nf, h_out, w_out)
        """), {BIAS, CONV_PAD, CONV_REF, PER_FILTER, FLOAT64}),
    # The bias broadcasts along the output width: a crash unless w_out == F, then silently wrong.
    wrong("conv2d_unfold", "bias_added_per_position", conv("""
        out = weight.reshape(nf, -1) @ F.unfold(x, (kh, kw), padding=padding, stride=stride)
        out = out.reshape(n, nf, h_out, w_out)
        return out if bias is None else out + bias
        """), {BIAS, PER_FILTER}),
    # Filters flattened as (kh, kw, C): rows no longer line up with F.unfold's (C, kh, kw).
    wrong("conv2d_unfold", "weight_flattened_channel_last", conv("""
        out = weight.permute(0, 2, 3, 1).reshape(nf, -1) @ F.unfold(x, (kh, kw), padding=padding, stride=stride)
        if bias is not None:
            out = out + bias.reshape(1, nf, 1)
        return out.reshape(n, nf, h_out, w_out)
        """), {BIAS, CONV_PAD, CONV_REF, PER_FILTER, FLOAT64}),
    wrong("conv2d_unfold", "output_h_w_swapped", conv("""
        out = weight.reshape(nf, -1) @ F.unfold(x, (kh, kw), padding=padding, stride=stride)
        if bias is not None:
            out = out + bias.reshape(1, nf, 1)
        return out.reshape(n, nf, w_out, h_out)
        """), {BIAS, CONV_PAD, CONV_REF, FLOAT64}),
    # Stride and padding passed positionally, as for F.conv2d: F.unfold reads them as dilation, padding.
    wrong("conv2d_unfold", "stride_and_padding_positional", conv("""
        out = weight.reshape(nf, -1) @ F.unfold(x, (kh, kw), stride, padding)
        if bias is not None:
            out = out + bias.reshape(1, nf, 1)
        return out.reshape(n, nf, h_out, w_out)
        """), {CONV_PAD, CONV_REF, FLOAT64}),
    wrong("conv2d_unfold", "uses_F_conv2d", conv("return F.conv2d(x, weight, bias, stride=stride, padding=padding)"),
          CONV_VALUE_CHECKS, explains=(ONE, "F.conv2d")),
    wrong("conv2d_unfold", "uses_nn_Conv2d", conv("""
        layer = torch.nn.Conv2d(c, nf, (kh, kw), stride=stride, padding=padding, bias=bias is not None)
        layer = layer.to(x.dtype)
        with torch.no_grad():
            layer.weight.copy_(weight)
            if bias is not None:
                layer.bias.copy_(bias)
            return layer(x)
        """), CONV_VALUE_CHECKS, explains=(ONE, "not allow")),
    wrong("conv2d_unfold", "loop_over_images", conv("""
        outs = []
        for i in range(n):
            out = weight.reshape(nf, -1) @ F.unfold(x[i:i + 1], (kh, kw), padding=padding, stride=stride)[0]
            if bias is not None:
                out = out + bias.reshape(nf, 1)
            outs.append(out.reshape(nf, h_out, w_out))
        return torch.stack(outs)
        """), {VECTORISED}, only=True, explains=(VECTORISED, "Python loop")),
    wrong("conv2d_unfold", "loop_over_positions", conv("""
        xp = F.pad(x, (padding,) * 4)
        out = x.new_zeros(n, nf, h_out, w_out)
        w_mat = weight.reshape(nf, -1)
        for i in range(h_out):
            for j in range(w_out):
                patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw].reshape(n, -1)
                out[:, :, i, j] = patch @ w_mat.T
        return out if bias is None else out + bias.reshape(1, nf, 1, 1)
        """), {VECTORISED}, only=True),
    wrong("conv2d_unfold", "loop_over_filters", conv("""
        cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)
        maps = [weight[f].reshape(1, -1) @ cols for f in range(nf)]
        out = torch.cat(maps, dim=1)
        if bias is not None:
            out = out + bias.reshape(1, nf, 1)
        return out.reshape(n, nf, h_out, w_out)
        """), {VECTORISED}, only=True),
    wrong("conv2d_unfold", "no_validation", conv("""
        out = weight.reshape(nf, -1) @ F.unfold(x, (kh, kw), padding=padding, stride=stride)
        if bias is not None:
            out = out + bias.reshape(1, -1, 1)
        return out.reshape(n, nf, h_out, w_out)
        """, head=("def conv2d_unfold(x, weight, bias=None, padding=0, stride=1):\n"
                   "    n, c, h, w = x.shape[-4:] if x.dim() == 4 else (1, *x.shape)\n"
                   "    nf, _, kh, kw = weight.shape\n"
                   "    h_out, w_out = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1\n")),
        {SHAPES}, only=True),
]
CONV_CORRECT = [
    correct("conv2d_unfold", "matmul", conv("""
        out = weight.reshape(nf, -1) @ F.unfold(x, (kh, kw), padding=padding, stride=stride)
        if bias is not None:
            out = out + bias.reshape(1, nf, 1)
        return out.reshape(n, nf, h_out, w_out)
        """)),
    correct("conv2d_unfold", "einsum", conv("""
        cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)
        out = torch.einsum("fk,nkl->nfl", weight.flatten(1), cols).reshape(n, nf, h_out, w_out)
        return out if bias is None else out + bias[None, :, None, None]
        """)),
    # The patches as rows (L x CKK) times the transposed filters, with the student's own im2col.
    correct("conv2d_unfold", "own_im2col_transposed_product", conv("""
        cols = im2col(x, (kh, kw), padding=padding, stride=stride)     # (n, CKK, L)
        out = cols.transpose(1, 2) @ weight.reshape(nf, -1).T           # (n, L, nf)
        if bias is not None:
            out = out + bias
        return out.transpose(1, 2).reshape(n, nf, h_out, w_out)
        """)),
    # tensordot over the patch axis: (F, N, L), then the batch axis moved to the front.
    correct("conv2d_unfold", "tensordot", conv("""
        cols = F.unfold(x, weight.shape[-2:], padding=padding, stride=stride)
        out = torch.tensordot(weight.flatten(start_dim=1), cols, dims=([1], [1])).permute(1, 0, 2)
        if bias is not None:
            out = out + bias.view(1, -1, 1)
        return out.reshape(n, nf, h_out, w_out)
        """)),
]

WRONG = COL2IM_VARIANTS + IM2COL_VARIANTS + CONV_VARIANTS
CORRECT = COL2IM_CORRECT + IM2COL_CORRECT + CONV_CORRECT


WRONG_GRADER, CORRECT_GRADER = VariantGrader(AID, CELL, WRONG), VariantGrader(AID, CELL, CORRECT)


@pytest.mark.parametrize("variant", WRONG, ids=lambda v: v.id)
def test_wrong_implementation_loses_the_intended_points(variant):
    assert_grades(WRONG_GRADER.results(variant), variant)


@pytest.mark.parametrize("variant", CORRECT, ids=lambda v: v.id)
def test_alternative_correct_implementation_gets_full_marks(variant):
    assert_grades(CORRECT_GRADER.results(variant), variant)


def test_every_function_has_three_wrong_and_one_alternative_version():
    for function in CELL:
        assert sum(v.function == function for v in WRONG) >= 3
        assert sum(v.function == function for v in CORRECT) >= 1
