"""Shared, non-secret helpers of the 03_unfold checks: comparisons that explain the usual mistakes."""

from __future__ import annotations

import math

import numpy as np
import torch

from autograder.authoring.api import CheckFailure, describe_value, expect_tensor


def pair(kernel_size) -> tuple[int, int]:
    return (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)


def out_hw(h: int, w: int, kernel_size, padding: int = 0, stride: int = 1) -> tuple[int, int]:
    kh, kw = pair(kernel_size)
    return (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1


def _whole_number(value) -> int | None:
    """A number-like (Python or numpy number, one-element tensor) that is a whole number, else None."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype.is_complex \
            and value.dtype != torch.bool:
        value = value.reshape(-1)[0].item()
    if isinstance(value, int | float | np.integer | np.floating) and math.isfinite(value) and value == int(value):
        return int(value)
    return None


def expect_shape_pair(got, expected: tuple[int, int], *, what: str) -> None:
    """(h_out, w_out) with the right values: a pair of whole number-likes, as a tuple or a list.

    One behaviour per check: that the answer is a tuple of two Python ints has its own check.
    """
    values = [_whole_number(v) for v in got] if isinstance(got, tuple | list) and len(got) == 2 else None
    if values is None or None in values:
        raise CheckFailure(f"{what}: expected a pair (h_out, w_out) = {expected}, got {describe_value(got)}")
    if tuple(values) != tuple(expected):
        raise CheckFailure(f"{what}: expected {expected}, got {describe_value(got)}")


def _im2col_diagnosis(got, expected: torch.Tensor, x_shape, kernel_size, padding, stride) -> str:
    """A sentence naming the mistake when ``got`` is ``expected`` with rows or columns in another order."""
    if type(got) is not torch.Tensor or got.shape != expected.shape or got.dtype != expected.dtype:
        if type(got) is torch.Tensor and got.dim() == 3 and got.shape[:2] == expected.shape[:2]:
            oh, ow = out_hw(x_shape[2], x_shape[3], kernel_size, padding, stride)
            return (f"Your number of columns is {got.shape[2]}, expected h_out * w_out = {oh} * {ow} = {oh * ow} "
                    f"(section 3's formula, once for the height and once for the width).")
        return ""
    n, rows, length = expected.shape
    c = x_shape[1]
    kh, kw = pair(kernel_size)
    oh, ow = out_hw(x_shape[2], x_shape[3], kernel_size, padding, stride)
    e = expected.reshape(n, c, kh, kw, length)
    variants = [
        (e.permute(0, 2, 3, 1, 4).reshape(n, rows, length),
         "Your rows hold the right numbers in the wrong order: (kernel row, kernel column, channel). "
         "F.unfold puts the channel first: row = c*kh*kw + a*kw + b, the order in which a (F, C, kh, kw) "
         "weight tensor flattens (section 2)."),
        (e.permute(0, 1, 3, 2, 4).reshape(n, rows, length),
         "Within each channel your rows run down the kernel's columns first; F.unfold reads the kernel "
         "row by row: row = c*kh*kw + a*kw + b."),
        (expected.reshape(n, rows, oh, ow).transpose(2, 3).reshape(n, rows, length),
         "Your columns run down the output columns first (H and W swapped?); F.unfold numbers the patches "
         "row by row: column = i*w_out + j."),
    ]
    for variant, message in variants:
        if not torch.equal(variant, expected) and torch.allclose(got, variant, atol=1e-5, rtol=1e-4):
            return message
    return ""


def expect_im2col(got, expected: torch.Tensor, *, what: str, x_shape, kernel_size, padding=0, stride=1,
                  show_values: bool = False, check_dtype: bool = False) -> None:
    """expect_tensor, plus a diagnosis of a wrong row or column order or a wrong number of columns.

    The dtype is compared only where a check is about it (``check_dtype``): one behaviour per check.
    """
    try:
        expect_tensor(got, expected, what=what, show_values=show_values, check_dtype=check_dtype)
    except CheckFailure as exc:
        diagnosis = _im2col_diagnosis(got, expected, tuple(x_shape), kernel_size, padding, stride)
        if diagnosis:
            raise CheckFailure(f"{exc}\n{diagnosis}") from None
        raise
