"""The wire format: plain data crosses, anything else stays behind a handle, lies are rejected."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from autograder.sandbox.codec import DecodeError, Decoder, Encoder, HandleRef


def roundtrip(value):
    handles = []

    def make_handle(obj):
        handles.append(obj)
        return HandleRef(len(handles), type(obj).__name__, "r")

    enc = Encoder(make_handle)
    tree = enc.encode(value)
    return Decoder(enc.blobs).decode(tree), handles


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64,
                                   torch.int32, torch.uint8, torch.bool])
def test_tensors_keep_dtype_shape_and_values(dtype):
    t = (torch.randn(3, 4, 2) * 10).to(dtype)
    out, _ = roundtrip(t)
    assert type(out) is torch.Tensor and out.dtype == dtype and out.shape == t.shape
    assert torch.equal(out, t)


def test_non_contiguous_and_zero_dim_tensors():
    t = torch.arange(12.0).reshape(3, 4).T
    out, _ = roundtrip([t, torch.tensor(2.5), torch.empty(0, 3)])
    assert torch.equal(out[0], t) and out[1].shape == () and out[2].shape == (0, 3)


def test_containers_and_scalars():
    value = {"a": (1, 2.5, None, True), "b": [float("nan"), float("inf"), "x"], "c": torch.Size([2, 3]),
             "d": np.float32(1.5), "e": 2**70, "f": torch.float32}
    out, handles = roundtrip(value)
    assert out["a"] == (1, 2.5, None, True) and math.isnan(out["b"][0]) and out["b"][1] == math.inf
    assert out["c"] == (2, 3) and out["d"] == 1.5 and out["e"] == 2**70 and out["f"] is torch.float32
    assert handles == []


def test_tensor_subclasses_stay_opaque_handles():
    """Only plain tensors cross: a subclass could compute (or lie) while it is being read."""
    class Sneaky(torch.Tensor):
        def __eq__(self, other):
            return True

    t = torch.randn(3).as_subclass(Sneaky)
    out, handles = roundtrip(t)
    assert type(out) is HandleRef and out.type_name == "Sneaky" and handles
    param, _ = roundtrip(torch.nn.Parameter(torch.ones(2)))
    assert type(param) is torch.Tensor and param.tolist() == [1.0, 1.0]


def test_objects_and_subclassed_builtins_become_handles():
    class Liar(int):
        def __eq__(self, other):
            return True

    out, handles = roundtrip([object(), Liar(3), torch.nn.Linear(2, 2)])
    assert all(isinstance(h, HandleRef) for h in out) and len(handles) == 3


@pytest.mark.parametrize("node,blobs", [
    ({"__tensor__": 0, "dtype": "float32", "shape": [2, 2]}, [b"\x00" * 15]),          # too few bytes
    ({"__tensor__": 0, "dtype": "float32", "shape": [2, 2]}, [b"\x00" * 17]),          # too many bytes
    ({"__tensor__": 0, "dtype": "object", "shape": [1]}, [b"\x00" * 8]),               # dtype not allowed
    ({"__tensor__": 3, "dtype": "float32", "shape": [1]}, [b"\x00" * 4]),              # no such blob
    ({"__tensor__": 0, "dtype": "float32", "shape": [-1]}, [b""]),                     # negative size
    ({"__ndarray__": 0, "dtype": "O", "shape": [1]}, [b"\x00" * 8]),                   # pickled objects
    ({"__float__": "__import__('os')"}, []),
    ({"__reduce__": "os.system"}, []),
])
def test_decoder_rejects_malformed_values(node, blobs):
    with pytest.raises(DecodeError):
        Decoder(blobs).decode(node)


def test_decoder_rejects_deep_nesting():
    node = []
    for _ in range(100):
        node = [node]
    with pytest.raises(DecodeError):
        Decoder([]).decode(node)
