"""Forbid PyTorch APIs during a call, so that an exercise's lesson cannot be skipped.

Interception uses a ``TorchFunctionMode``, which PyTorch consults inside every torch
function and tensor method, so ``F.conv2d``, ``torch.conv2d``, ``nn.Conv2d``, ``x.unfold`` and
a reference captured at import time are all seen.  (A ``TorchDispatchMode`` would also see
direct ``torch.ops.aten`` calls, but its first use imports torch._dynamo: about 3-6 s per
worker, measured here; calling ``torch.ops.aten`` directly is a documented known limit.)
A use is recorded even if the student's code catches the error, so
``try: F.conv2d(...) except: ...`` does not help.
"""

from __future__ import annotations

import contextlib

from torch.overrides import TorchFunctionMode

#: group name -> (torch function names, what the student would have called).
FORBIDDEN_GROUPS: dict[str, tuple[tuple[str, ...], str]] = {
    "conv": (
        ("convolution", "_convolution", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
         "conv_transpose3d", "conv_tbc", "cudnn_convolution", "mkldnn_convolution"),
        "a built-in convolution (F.conv1d/F.conv2d, torch.conv2d, nn.Conv1d/nn.Conv2d)",
    ),
    "unfold": (
        ("unfold", "im2col"),
        "a built-in unfold (F.unfold, nn.Unfold or Tensor.unfold)",
    ),
}


class ForbiddenAPIError(RuntimeError):
    """Raised inside student code when it calls a forbidden API."""


class _ForbidMode(TorchFunctionMode):
    def __init__(self, groups: list[str]):
        super().__init__()
        unknown = [g for g in groups if g not in FORBIDDEN_GROUPS]
        if unknown:
            raise ValueError(f"unknown forbidden API group(s): {unknown}")
        self.by_name = {name: group for group in groups for name in FORBIDDEN_GROUPS[group][0]}
        self.used: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        group = self.by_name.get(getattr(func, "__name__", ""))
        if group is not None:
            if group not in self.used:
                self.used.append(group)
            raise ForbiddenAPIError(f"this exercise may not use {FORBIDDEN_GROUPS[group][1]}")
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def forbidden(groups):
    """Context manager: yields a list that ends up holding the groups that were used."""
    groups = list(groups or ())
    if not groups:
        yield []
        return
    mode = _ForbidMode(groups)
    with mode:
        yield mode.used


def describe_group(group: str) -> str:
    return FORBIDDEN_GROUPS[group][1]
