"""Forbid PyTorch APIs during a call, so that an exercise's lesson cannot be skipped.

This is the *second* layer, inside the worker; the first is the grader's static check of the
submitted source (:mod:`autograder.submission.static_check`), which the student's process cannot reach.
Two interceptions are active for the duration of the call:

* a ``TorchFunctionMode`` (every torch function and tensor method, whatever alias was used);
* kernels registered at the dispatcher for every overload of the forbidden ATen operators
  (``torch.ops.aten.conv2d.default``, ``torch._C._nn.thnn_conv2d``, ``torch._convolution_mode``,
  ``DisableTorchFunction`` and calls from other threads all end up there).  They replace the
  CPU (and CUDA) kernels only while the call runs and are removed afterwards.

A use is recorded even if the student's code catches the error, so
``try: F.conv2d(...) except: ...`` does not help.
"""

from __future__ import annotations

import contextlib
import threading
import warnings

import torch
from torch.overrides import TorchFunctionMode

#: group name -> (torch function names, ATen operator names, what the student would have called).
FORBIDDEN_GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "conv": (
        ("convolution", "_convolution", "_convolution_mode", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
         "conv_transpose2d", "conv_transpose3d", "conv_tbc", "cudnn_convolution", "mkldnn_convolution",
         "thnn_conv2d"),
        ("convolution", "_convolution", "_convolution_mode", "conv1d", "conv2d", "conv3d", "conv_tbc",
         "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "thnn_conv2d", "_slow_conv2d_forward",
         "slow_conv3d", "slow_conv3d_forward", "slow_conv_dilated2d", "slow_conv_dilated3d", "_conv_depthwise2d",
         "conv_depthwise3d", "mkldnn_convolution", "slow_conv_transpose2d", "slow_conv_transpose3d",
         "_nnpack_spatial_convolution", "convolution_overrideable", "cudnn_convolution", "miopen_convolution"),
        "a built-in convolution (F.conv1d/F.conv2d, torch.conv2d, nn.Conv1d/nn.Conv2d)",
    ),
    "unfold": (
        ("unfold", "im2col"),
        ("unfold", "unfold_copy", "im2col"),
        "a built-in unfold (F.unfold, nn.Unfold or Tensor.unfold)",
    ),
    "max_pool": (
        ("max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
         "max_pool3d_with_indices", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
         "fractional_max_pool2d"),
        ("max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
         "max_pool3d_with_indices", "mkldnn_max_pool2d", "quantized_max_pool2d", "adaptive_max_pool2d",
         "adaptive_max_pool3d", "fractional_max_pool2d", "fractional_max_pool3d", "_mps_max_pool2d"),
        "a built-in max pooling (F.max_pool2d, nn.MaxPool2d, torch.max_pool2d)",
    ),
    # Strided window views do what unfold does; the grader's static check knows numpy's as well.
    "windows": (
        ("as_strided",),
        (),
        "a strided window view (Tensor.as_strided, numpy's sliding_window_view or as_strided)",
    ),
}


class ForbiddenAPIError(RuntimeError):
    """Raised inside student code when it calls a forbidden API."""


def _record(used: list[str], group: str) -> None:
    if group not in used:
        used.append(group)
    raise ForbiddenAPIError(f"this exercise may not use {FORBIDDEN_GROUPS[group][2]}")


class _ForbidMode(TorchFunctionMode):
    def __init__(self, groups: list[str], used: list[str]):
        super().__init__()
        self.by_name = {name: group for group in groups for name in FORBIDDEN_GROUPS[group][0]}
        self.used = used

    def __torch_function__(self, func, types, args=(), kwargs=None):
        group = self.by_name.get(getattr(func, "__name__", ""))
        if group is not None:
            _record(self.used, group)
        return func(*args, **(kwargs or {}))


_ALL_OPS: list[str] | None = None
_LOCK = threading.Lock()


def _overloads(names: tuple[str, ...]) -> list[str]:
    """Every registered overload (``name`` or ``name.overload``) of these ATen operators."""
    global _ALL_OPS
    if _ALL_OPS is None:
        _ALL_OPS = [op.removeprefix("aten::") for op in torch._C._dispatch_get_all_op_names() if op.startswith("aten::")]
    wanted = set(names)
    return [op for op in _ALL_OPS if op.split(".", 1)[0] in wanted]


def _dispatch_keys() -> list[str]:
    keys = ["CPU"]
    try:
        if torch.cuda.is_available():
            keys.append("CUDA")
    except Exception:  # noqa: BLE001 - a broken CUDA setup: the CPU is what runs
        pass
    return keys


@contextlib.contextmanager
def _dispatcher_guard(groups: list[str], used: list[str]):
    lib = None
    with _LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib = torch.library.Library("aten", "IMPL")
        for group in groups:
            def kernel(*args, _group=group, **kwargs):
                _record(used, _group)
            for op in _overloads(FORBIDDEN_GROUPS[group][1]):
                for key in _dispatch_keys():
                    try:
                        lib.impl(op, kernel, key)
                    except (RuntimeError, ValueError):
                        pass  # an overload without a kernel for this key: nothing to replace
    try:
        yield
    finally:
        with _LOCK:
            lib._destroy()


@contextlib.contextmanager
def forbidden(groups):
    """Context manager: yields a list that ends up holding the groups that were used."""
    groups = list(groups or ())
    if not groups:
        yield []
        return
    unknown = [g for g in groups if g not in FORBIDDEN_GROUPS]
    if unknown:
        raise ValueError(f"unknown forbidden API group(s): {unknown}")
    used: list[str] = []
    with _dispatcher_guard(groups, used), _ForbidMode(groups, used):
        yield used


def describe_group(group: str) -> str:
    return FORBIDDEN_GROUPS[group][2]
