"""Describe an object as plain data, so the grader can inspect it without touching it.

Runs where the object lives (the worker for student objects).  Only built-in types go
into the description.
"""

from __future__ import annotations

import torch
from torch import nn

_LAYER_ATTRS = (
    "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
    "in_features", "out_features", "num_features", "eps", "momentum", "affine", "p", "inplace",
    "start_dim", "end_dim", "output_size",
)


def _plain(v):
    if isinstance(v, bool | int | float | str) or v is None:
        return v
    if isinstance(v, tuple | list | torch.Size):
        return tuple(_plain(x) for x in v)
    return repr(v)[:100]


def describe(obj) -> dict:
    """A dict of plain data: type names (the real MRO), and for modules their layers and parameters."""
    cls = type(obj)
    out = {
        "type": cls.__name__,
        "qualname": f"{cls.__module__}.{cls.__qualname__}",
        "mro": [f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__],
        "is_module": isinstance(obj, nn.Module),
    }
    if isinstance(obj, nn.Module):
        out.update(_describe_module(obj))
    elif isinstance(obj, torch.optim.Optimizer):
        out["param_groups"] = [
            {"n_params": len(g["params"]), "param_ids": [id(p) for p in g["params"]],
             "lr": float(g.get("lr", float("nan")))}
            for g in obj.param_groups
        ]
    return out


def _describe_module(m: nn.Module) -> dict:
    attrs = {a: _plain(getattr(m, a)) for a in _LAYER_ATTRS if hasattr(m, a)}
    if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
        attrs["bias"] = m.bias is not None
    return {
        "training": bool(m.training),
        "attrs": attrs,
        "children": [[name, _describe_module_child(child)] for name, child in m.named_children()],
        "parameters": [
            {"name": name, "shape": tuple(p.shape), "requires_grad": bool(p.requires_grad), "id": id(p)}
            for name, p in m.named_parameters()
        ],
        "n_parameters": int(sum(p.numel() for p in m.parameters())),
        "n_trainable": int(sum(p.numel() for p in m.parameters() if p.requires_grad)),
        "n_forward_hooks": int(sum(len(x._forward_hooks) for x in m.modules())),
        "n_forward_pre_hooks": int(sum(len(x._forward_pre_hooks) for x in m.modules())),
    }


def _describe_module_child(m):
    return describe(m)
