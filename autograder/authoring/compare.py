"""Comparisons that fail with messages a student can act on.

Every helper raises :class:`CheckFailure` with: what was called (shapes of the inputs),
what was expected and what came back (shape, dtype, the largest difference and where).
Full expected tensors are never printed unless a public check asks for it with
``show_values=True`` on small tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from autograder.submission.namespace import Handle, StudentError


class CheckFailure(AssertionError):
    """A check found a wrong answer; its message is shown to the student."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailure(message)


def describe_value(v: Any) -> str:
    """Short description of a value: tensors by shape and dtype, handles by type."""
    if type(v) is torch.Tensor:
        return f"tensor{tuple(v.shape)} {str(v.dtype).removeprefix('torch.')}"
    if isinstance(v, Handle):
        return f"a {v.type_name} object"
    if isinstance(v, tuple | list) and len(v) > 6:
        return f"{type(v).__name__} of {len(v)} items"
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def fmt_call(name: str, *args, **kwargs) -> str:
    """``conv2d_loops(tensor(7, 9) float32, tensor(3, 2) float32, padding=1)``"""
    parts = [describe_value(a) for a in args] + [f"{k}={describe_value(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _prefix(what: str) -> str:
    return f"{what}: " if what else ""


def expect_tensor(got: Any, expected: torch.Tensor, *, what: str = "", atol: float = 1e-5, rtol: float = 1e-4,
                  check_dtype: bool = True, show_values: bool = False) -> None:
    """Exact type, shape and dtype; values within ``atol + rtol * |expected|``."""
    p = _prefix(what)
    if type(got) is not torch.Tensor:
        raise CheckFailure(f"{p}expected a torch.Tensor, got {describe_value(got)}")
    if tuple(got.shape) != tuple(expected.shape):
        raise CheckFailure(f"{p}expected shape {tuple(expected.shape)}, got shape {tuple(got.shape)}")
    if check_dtype and got.dtype != expected.dtype:
        raise CheckFailure(f"{p}expected dtype {expected.dtype}, got {got.dtype}")
    if got.numel() == 0:
        return
    g = got.detach().to(torch.float64)
    e = expected.detach().to(torch.float64)
    if g.dtype.is_floating_point:
        nan_mismatch = torch.isnan(g) != torch.isnan(e)
        if bool(nan_mismatch.any()):
            idx = _unravel(int(nan_mismatch.flatten().nonzero()[0]), tuple(got.shape))
            raise CheckFailure(f"{p}NaN where none was expected (or the other way round) at index {idx}")
    diff = (g - e).abs().nan_to_num(0.0)
    allowed = atol + rtol * e.abs().nan_to_num(0.0)
    bad = diff > allowed
    if bool(bad.any()):
        flat = int((diff - allowed).flatten().argmax())
        idx = _unravel(flat, tuple(got.shape))
        n_bad = int(bad.sum())
        msg = (f"{p}values differ at {n_bad} of {got.numel()} positions; the largest difference is "
               f"{float(diff.flatten()[flat]):.4g} at index {idx} (expected {float(e.flatten()[flat]):.6g}, "
               f"got {float(g.flatten()[flat]):.6g}; tolerance atol={atol:g}, rtol={rtol:g})")
        if show_values and got.numel() <= 64:
            msg += f"\n  expected:\n{_indent(expected)}\n  got:\n{_indent(got)}"
        raise CheckFailure(msg)


def expect_tensor_of(got: Any, shape: tuple[int, ...], dtype: torch.dtype | None = None, *, what: str = "") -> None:
    """A tensor of exactly this shape (and dtype, unless None), whatever its values: shape checks with no oracle."""
    want = f"a {str(dtype).removeprefix('torch.') + ' ' if dtype else ''}tensor of shape {tuple(shape)}"
    if type(got) is not torch.Tensor or tuple(got.shape) != tuple(shape) or (dtype and got.dtype != dtype):
        raise CheckFailure(f"{_prefix(what)}expected {want}, got {describe_value(got)}")


def _indent(t: torch.Tensor) -> str:
    return "\n".join("    " + line for line in str(t).splitlines())


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    idx = []
    for size in reversed(shape):
        idx.append(flat % size)
        flat //= size
    return tuple(reversed(idx))


def as_float(value: Any, what: str = "") -> float:
    """A Python number or a one-element tensor as a float; anything else fails the check."""
    if type(value) in (int, float) and not isinstance(value, bool):
        return float(value)
    if type(value) is torch.Tensor and value.numel() == 1 and (value.dtype.is_floating_point or value.dtype == torch.int64):
        return float(value.reshape(()))
    raise CheckFailure(f"{_prefix(what)}expected a number, got {describe_value(value)}")


def expect_close(got: Any, expected: float, *, what: str = "", atol: float = 1e-6, rtol: float = 1e-5) -> None:
    value = as_float(got, what)
    if not (math.isfinite(value) and abs(value - expected) <= atol + rtol * abs(expected)):
        raise CheckFailure(f"{_prefix(what)}expected {expected:.6g}, got {value:.6g}")


def expect_equal(got: Any, expected: Any, *, what: str = "") -> None:
    """Exact equality of plain data, with the types compared too (``True`` is not ``1``)."""
    if not _same(got, expected):
        raise CheckFailure(f"{_prefix(what)}expected {describe_value(expected)}, got {describe_value(got)}")


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if type(a) is torch.Tensor:
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
    if type(a) in (int, float, str, bool, type(None)) or isinstance(a, torch.dtype):
        return a == b
    return False


def expect_raises(call: Callable[[], Any], *type_names: str, what: str = "", match: str | None = None) -> StudentError:
    """The call must raise one of ``type_names`` (e.g. ``"ValueError"``); subclasses count."""
    names = type_names or ("Exception",)
    try:
        result = call()
    except StudentError as err:
        if err.type_name == "NotImplementedError":
            raise CheckFailure(f"{_prefix(what)}raised NotImplementedError: it is not implemented yet") from None
        if not err.is_a(*names):
            raise CheckFailure(f"{_prefix(what)}expected {' or '.join(names)}, but it raised "
                               f"{err.type_name}: {err.message}") from None
        if match and match.lower() not in err.message.lower():
            raise CheckFailure(f"{_prefix(what)}the error message should mention {match!r}; it was: {err.message}") from None
        return err
    raise CheckFailure(f"{_prefix(what)}expected {' or '.join(names)}, but it returned {describe_value(result)}")
