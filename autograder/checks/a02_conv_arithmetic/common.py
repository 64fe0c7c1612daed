"""Shared, non-secret helpers of 02_conv_arithmetic's checks: property settings, oracles, test models.

The oracles only use PyTorch itself (a real ``nn.Conv2d``, PyTorch's FLOP counter, autograd),
so the public checks can use them: students see exactly what they are compared with.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from hypothesis import strategies as st
from torch import nn

from autograder.authoring.api import CheckFailure, StudentError, describe_value, fmt_call
from autograder.authoring.grader_code import built_here, built_in
from autograder.authoring.properties import property_settings


def prop(max_examples: int = 40):
    """Settings of every property-based check (``autograder.authoring.properties``): at most 50 examples."""
    return property_settings(max_examples)


# -- answers -------------------------------------------------------------------------------------------

def call(namespace, name: str, *args, what: str | None = None, **kwargs):
    """Call the notebook's ``name``; an exception it raises fails the check with the exact call in the message."""
    try:
        return namespace.call(name, *args, **kwargs)
    except StudentError as err:
        call_text = what or fmt_call(name, *args, **kwargs)
        if err.type_name == "NotImplementedError":
            raise CheckFailure(f"{call_text} raised NotImplementedError: it is not implemented yet") from None
        raise CheckFailure(f"{call_text} raised {err.type_name}: {err.message}") from None


def as_number(value) -> float | None:
    """A number-like answer as a float: a Python or numpy number, or a one-element tensor or array.

    None for anything else (a bool, a string, a list, a handle). The *type* an exercise asks for
    (a Python int) has its own check; the value checks accept any number-like, so that a correct
    count returned as a 0-d tensor loses the type check's points only.
    """
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype.is_complex \
            and value.dtype != torch.bool:
        return float(value.reshape(-1)[0].item())
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf":
        return float(value.reshape(-1)[0])
    return None


def expect_value(got, expected: int, what: str) -> None:
    """``got`` must be the number ``expected`` (any number-like: the type is checked by its own check)."""
    value = as_number(got)
    if value is None:
        raise CheckFailure(f"{what}: expected a number, got {describe_value(got)}")
    if not (math.isfinite(value) and value == expected):
        raise CheckFailure(f"{what}: expected {expected}, got {describe_value(got)}")


def whole_number(got, what: str) -> int:
    """A number-like that is a whole number, as an int (a padding, a count), or the check fails."""
    value = as_number(got)
    if value is None or not math.isfinite(value) or value != int(value):
        raise CheckFailure(f"{what}: expected a whole number, got {describe_value(got)}")
    return int(value)


def expect_int(got, what: str) -> None:
    """``got`` must be a plain Python int (not a float, not a tensor, not a bool)."""
    if type(got) is not int:
        raise CheckFailure(f"{what}: expected a Python int, got {type(got).__name__} {describe_value(got)}; "
                           "use integer arithmetic (// instead of /, int(...) around a tensor or float)")


# -- oracles: what PyTorch itself does -----------------------------------------------------------------

@contextlib.contextmanager
def single_thread():
    """The oracles' tensors are tiny: one thread avoids thread start-up and contention (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def conv2d_out_hw(h: int, w: int, kernel_size, stride=1, padding=0, dilation=1):
    """(H_out, W_out) of a real ``nn.Conv2d`` applied to a zero ``(1, 1, h, w)`` image; None if PyTorch refuses."""
    conv = nn.Conv2d(1, 1, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=False)
    with single_thread(), torch.no_grad():
        try:
            y = conv(torch.zeros(1, 1, h, w))
        except RuntimeError:
            return None
    return int(y.shape[2]), int(y.shape[3])


def conv2d_param_count(in_channels: int, out_channels: int, kernel_size, bias=True, groups=1) -> int:
    """Number of trainable parameters of a real ``nn.Conv2d`` (built on the meta device: no memory)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias, groups=groups, device="meta")
    return int(sum(p.numel() for p in conv.parameters() if p.requires_grad))


def conv2d_mults_and_out(in_channels: int, out_channels: int, kernel_size, h: int, w: int, stride=1):
    """(multiplications, H_out, W_out) of one image through a real ``nn.Conv2d``, measured.

    With every weight and every input pixel equal to 1 (no padding, no bias), each multiplication the
    layer does contributes exactly 1 to its output, so the sum of the output counts them.
    """
    with single_thread():
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, bias=False, dtype=torch.float64)
        nn.init.ones_(conv.weight)
        with torch.no_grad():
            y = conv(torch.ones(1, in_channels, h, w, dtype=torch.float64))
    return int(y.sum()), int(y.shape[2]), int(y.shape[3])


def measured_receptive_field(layers) -> int:
    """Receptive field of one output unit, measured with autograd on a stack of all-ones convolutions.

    The stack is ``nn.Conv2d(1, 1, k, stride=s, bias=False)`` with every weight 1 (no padding).  The
    input pixels with a nonzero gradient of the output unit (0, 0) are exactly the pixels that unit
    sees (all weights and inputs are positive, so nothing cancels); the receptive field is the side
    of the smallest square that holds them.
    """
    if not layers:
        return 1
    # Big enough: no stack of these layers sees more than 1 + sum((k - 1) * product of all strides).
    n = 1 + sum(k - 1 for k, _ in layers) * math.prod(s for _, s in layers) + max(k for k, _ in layers)
    convs = []
    for k, s in layers:
        conv = nn.Conv2d(1, 1, k, stride=s, bias=False)
        nn.init.ones_(conv.weight)
        convs.append(conv)
    x = torch.ones(1, 1, n, n, requires_grad=True)
    with single_thread():
        y = nn.Sequential(*convs)(x)
        y[0, 0, 0, 0].backward()
    rows = (x.grad[0, 0] != 0).any(dim=1).nonzero().flatten()
    cols = (x.grad[0, 0] != 0).any(dim=0).nonzero().flatten()
    height, width = int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1
    assert height == width and int(rows.max()) < n - 1, (layers, height, width, n)
    return height


# -- strategies ----------------------------------------------------------------------------------------

@st.composite
def fitting_cases(draw, max_n=30, max_k=7, max_s=4, max_p=3, max_d=1):
    """(n, k, s, p, d) where the (dilated) kernel fits in the padded input: a valid convolution."""
    k = draw(st.integers(1, max_k))
    d = draw(st.integers(1, max_d)) if k > 1 else 1
    s = draw(st.integers(1, max_s))
    p = draw(st.integers(0, max_p))
    eff = d * (k - 1) + 1
    n = draw(st.integers(max(1, eff - 2 * p), max(max_n, eff)))
    return n, k, s, p, d


@st.composite
def too_small_cases(draw, max_k=9, max_s=4, max_d=3):
    """(n, k, s, p, d) where the (dilated) kernel is larger than the padded input: no output at all."""
    k = draw(st.integers(2, max_k))
    d = draw(st.integers(1, max_d))
    s = draw(st.integers(1, max_s))
    eff = d * (k - 1) + 1
    p = draw(st.integers(0, (eff - 2) // 2))
    n = draw(st.integers(1, eff - 2 * p - 1))
    return n, k, s, p, d


# -- models for feature_map_shapes (built with exec in the notebook's namespace and here) --------------

MODEL_SOURCES = {
    # A stride-2 CNN for 10 classes (not assignment 04's): three conv + ReLU blocks, a last conv,
    # global average pooling, Flatten.
    "stride2_cnn": """
import torch
from torch import nn
torch.manual_seed(0)
model = nn.Sequential(
    nn.Sequential(nn.Conv2d(1, 6, 3, stride=2, padding=1), nn.ReLU()),
    nn.Sequential(nn.Conv2d(6, 12, 3, stride=2, padding=1), nn.ReLU()),
    nn.Sequential(nn.Conv2d(12, 24, 3, stride=2, padding=1), nn.ReLU()),
    nn.Conv2d(24, 10, 3, stride=2, padding=1),
    nn.AdaptiveAvgPool2d(1),
    nn.Flatten(),
)
""",
    # Non-square kernels and input, BatchNorm, pooling, dilation, a head with Flatten and Linear.
    "mixed": """
import torch
from torch import nn
torch.manual_seed(1)
model = nn.Sequential(
    nn.Conv2d(3, 6, (3, 5), padding=(1, 2)),
    nn.BatchNorm2d(6),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(6, 12, 3, stride=2, dilation=2),
    nn.AdaptiveAvgPool2d((2, 3)),
    nn.Flatten(),
    nn.Linear(72, 5),
)
""",
    # A training-mode model whose state a careless forward pass would change (BatchNorm, Dropout).
    "bn_train": """
import torch
from torch import nn
torch.manual_seed(2)
model = nn.Sequential(
    nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
    nn.Dropout(0.5),
    nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
    nn.AdaptiveAvgPool2d(1),
    nn.Flatten(),
)
model.train()
""",
    # BatchNorm on a 1x1 map: a forward pass in training mode with a batch of one image fails.
    "bn_1x1": """
import torch
from torch import nn
torch.manual_seed(3)
model = nn.Sequential(
    nn.Conv2d(1, 4, 3, stride=2, padding=1),
    nn.BatchNorm2d(4),
    nn.ReLU(),
    nn.Conv2d(4, 8, 3, stride=2, padding=1),
    nn.BatchNorm2d(8),
    nn.Flatten(),
)
model.train()
""",
    # Too small an input makes the second conv fail (its 5x5 kernel meets a 2x2 map).
    "fails_small": """
import torch
from torch import nn
model = nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.Conv2d(4, 4, 5), nn.ReLU(), nn.Flatten())
""",
}


def build_here(name: str) -> nn.Module:
    """The model ``name`` built in the grader's own process (for the oracle)."""
    return built_here(MODEL_SOURCES[name], "model", f"<model {name}>")


def build_in(namespace, name: str):
    """The model ``name`` built next to the notebook's code (in the check's scope); returns its handle."""
    return built_in(namespace, MODEL_SOURCES[name], "model")


def shapes_layer_by_layer(model: nn.Module, input_shape) -> list[tuple]:
    """Oracle: run a dummy image through each top-level child in turn (eval mode, no gradients)."""
    model.eval()
    out = []
    with single_thread(), torch.no_grad():
        x = torch.zeros(1, *input_shape)
        for child in model.children():
            x = child(x)
            out.append(tuple(int(v) for v in x.shape[1:]))
    return out


def state_snapshot(namespace, model_handle) -> list:
    """Copies of every parameter and buffer of a model living next to the notebook's code."""
    return namespace.eval("[t.detach().clone() for t in __m.state_dict().values()]", __m=model_handle)


def training_flags(description: dict) -> list[bool]:
    """The training flag of a described module and of all its descendants, in order."""
    flags = [description["training"]]
    for _, child in description.get("children", []):
        flags += training_flags(child)
    return flags
