"""Safe value encoding between the sandboxed worker and the grader.

The grader must never unpickle or otherwise run anything the worker produced (an object
whose ``__eq__`` is always true is the classic exploit).  So values cross as JSON plus raw
tensor bytes: tensors, numbers, strings, lists, tuples and string-keyed dicts.  Everything
else stays in the worker and is represented by an opaque :class:`HandleRef`.

The grader-side decoder checks every declared dtype, shape and byte count before it
builds a tensor from the bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

#: dtypes that may cross the boundary, by wire name.
TORCH_DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in TORCH_DTYPES.items()}
NUMPY_DTYPES = {"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"}

MAX_DEPTH = 32
MAX_ITEMS = 100_000
MAX_DIMS = 8


class DecodeError(ValueError):
    """The worker sent something that is not a well-formed value."""


@dataclass(frozen=True)
class HandleRef:
    """An object that stayed in the worker: only its id, type name and a short repr cross."""

    id: int
    type_name: str
    repr: str


class Encoder:
    """Turns a value into (json-able tree, list of byte blobs).

    ``make_handle(obj) -> HandleRef`` is called for anything that is not plain data.
    """

    def __init__(self, make_handle):
        self.make_handle = make_handle
        self.blobs: list[bytes] = []

    def encode(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError("value nested too deeply to send")
        if value is None or type(value) is bool or type(value) is str:
            return value
        if type(value) is int:
            return value if abs(value) < 2**63 else {"__bigint__": str(value)}
        if type(value) is float:
            return value if math.isfinite(value) else {"__float__": repr(value)}
        # Plain tensors only: a subclass could compute (or lie) while it is being read; it stays a handle.
        if type(value) in (torch.Tensor, torch.nn.Parameter) and DTYPE_NAMES.get(value.dtype) \
                and value.layout == torch.strided:
            return self._tensor(value)
        if type(value) is np.ndarray and value.dtype.name in NUMPY_DTYPES:
            return self._ndarray(value)
        if isinstance(value, np.generic) and value.dtype.name in NUMPY_DTYPES:
            return self.encode(value.item(), depth + 1)
        if isinstance(value, torch.Size):
            return {"__tuple__": [int(v) for v in value]}
        if isinstance(value, torch.dtype):
            return {"__dtype__": str(value).removeprefix("torch.")}
        if type(value) in (list, tuple) and len(value) <= MAX_ITEMS:
            items = [self.encode(v, depth + 1) for v in value]
            return items if type(value) is list else {"__tuple__": items}
        if type(value) is dict and len(value) <= MAX_ITEMS and all(type(k) is str for k in value):
            return {"__dict__": [[k, self.encode(v, depth + 1)] for k, v in value.items()]}
        ref = self.make_handle(value)
        return {"__handle__": ref.id, "type": ref.type_name, "repr": ref.repr}

    def _tensor(self, t: torch.Tensor) -> dict:
        t = torch.Tensor.contiguous(torch.Tensor.cpu(torch.Tensor.detach(t)))
        if t.dtype == torch.bfloat16:
            raw = torch.Tensor.numpy(t.view(torch.int16)).tobytes()
        else:
            raw = torch.Tensor.numpy(t).tobytes()
        self.blobs.append(raw)
        return {"__tensor__": len(self.blobs) - 1, "dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape)}

    def _ndarray(self, a: np.ndarray) -> dict:
        a = np.ascontiguousarray(a)
        self.blobs.append(a.tobytes())
        return {"__ndarray__": len(self.blobs) - 1, "dtype": a.dtype.name, "shape": list(a.shape)}


def _itemsize(dtype: str) -> int:
    return torch.empty((), dtype=TORCH_DTYPES[dtype]).element_size()


def _checked_shape(node: dict) -> tuple[int, ...]:
    shape = node.get("shape")
    if type(shape) is not list or len(shape) > MAX_DIMS or not all(type(s) is int and 0 <= s < 2**40 for s in shape):
        raise DecodeError(f"bad tensor shape {shape!r}")
    return tuple(shape)


class Decoder:
    """Builds plain values from a json tree and blobs, validating every field."""

    def __init__(self, blobs: list[bytes], resolve_handle=None):
        self.blobs = blobs
        self.resolve_handle = resolve_handle or (lambda node: HandleRef(node["__handle__"], str(node.get("type", "?"))[:200], str(node.get("repr", ""))[:500]))
        self.items = 0

    def decode(self, node: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise DecodeError("value nested too deeply")
        self.items += 1
        if self.items > 10 * MAX_ITEMS:
            raise DecodeError("value has too many items")
        if node is None or type(node) in (bool, int, float, str):
            return node
        if type(node) is list:
            return [self.decode(v, depth + 1) for v in node]
        if type(node) is not dict or len(node) == 0:
            raise DecodeError(f"unexpected node {type(node).__name__}")
        if "__tuple__" in node:
            return tuple(self.decode(v, depth + 1) for v in self._list(node["__tuple__"]))
        if "__dict__" in node:
            out = {}
            for pair in self._list(node["__dict__"]):
                if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str:
                    raise DecodeError("bad dict entry")
                out[pair[0]] = self.decode(pair[1], depth + 1)
            return out
        if "__tensor__" in node:
            return self._tensor(node)
        if "__ndarray__" in node:
            return self._ndarray(node)
        if "__float__" in node:
            text = node["__float__"]
            if text not in ("nan", "inf", "-inf"):
                raise DecodeError("bad float")
            return float(text)
        if "__bigint__" in node:
            text = node["__bigint__"]
            if type(text) is not str or len(text) > 4000:
                raise DecodeError("bad integer")
            return int(text)
        if "__dtype__" in node:
            if node["__dtype__"] not in TORCH_DTYPES and node["__dtype__"] not in {"complex64", "complex128"}:
                return str(node["__dtype__"])[:40]
            return TORCH_DTYPES.get(node["__dtype__"], node["__dtype__"])
        if "__handle__" in node:
            if type(node["__handle__"]) is not int:
                raise DecodeError("bad handle")
            return self.resolve_handle(node)
        raise DecodeError("unknown node")

    @staticmethod
    def _list(v):
        if type(v) is not list:
            raise DecodeError("expected a list")
        return v

    def _blob(self, node: dict, key: str, dtype: str, shape: tuple[int, ...], itemsize: int) -> bytes:
        idx = node[key]
        if type(idx) is not int or not 0 <= idx < len(self.blobs):
            raise DecodeError("bad blob index")
        raw = self.blobs[idx]
        expected = math.prod(shape) * itemsize
        if len(raw) != expected:
            raise DecodeError(f"tensor of shape {shape} and dtype {dtype} needs {expected} bytes, got {len(raw)}")
        return raw

    def _tensor(self, node: dict) -> torch.Tensor:
        dtype = node.get("dtype")
        if dtype not in TORCH_DTYPES:
            raise DecodeError(f"dtype {dtype!r} not allowed")
        shape = _checked_shape(node)
        raw = self._blob(node, "__tensor__", dtype, shape, _itemsize(dtype))
        if dtype == "bfloat16":
            arr = _array(raw, np.int16)
            return torch.from_numpy(arr).view(torch.bfloat16).reshape(shape)
        arr = _array(raw, np.dtype(dtype if dtype != "bool" else np.bool_))
        return torch.from_numpy(arr).reshape(shape)

    def _ndarray(self, node: dict) -> np.ndarray:
        dtype = node.get("dtype")
        if dtype not in NUMPY_DTYPES:
            raise DecodeError(f"dtype {dtype!r} not allowed")
        shape = _checked_shape(node)
        raw = self._blob(node, "__ndarray__", dtype, shape, np.dtype(dtype).itemsize)
        return _array(raw, np.dtype(dtype)).reshape(shape)


def _array(raw, dtype) -> np.ndarray:
    """An array over the received bytes: a bytearray is ours and writable (no copy), bytes are copied."""
    arr = np.frombuffer(raw, dtype=dtype)
    return arr if isinstance(raw, bytearray) else arr.copy()
