"""Shared, non-secret helpers of 01_apply_kernel's checks: literal kernels and input generators."""

from __future__ import annotations

import torch

from autograder.authoring.api import expect_tensor
from autograder.sandbox.forbid import FORBIDDEN_GROUPS

#: fastbook's four edge kernels, exactly as the notebook's text gives them.
FASTBOOK_KERNELS: dict[str, list[list[float]]] = {
    "top_edge": [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
    "left_edge": [[-1, 1, 0], [-1, 1, 0], [-1, 1, 0]],
    "diag1_edge": [[0, -1, 1], [-1, 1, 0], [1, 0, 0]],
    "diag2_edge": [[1, -1, 0], [0, 1, -1], [0, 0, 1]],
}

#: The "sentence" of the notebook's 1-D section, one sentiment score per word.
SENTENCE_WORDS = "the soup was cold and bland but the dessert was simply wonderful".split()
SENTENCE_SCORES = [0.0, 0.0, 0.0, -1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]


def kernel_tensor(name: str) -> torch.Tensor:
    return torch.tensor(FASTBOOK_KERNELS[name], dtype=torch.float32)


def expect_values(got, expected: torch.Tensor, *, what: str, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """A tensor of the expected shape and values, whatever its floating dtype.

    One behaviour per check: the dtype the docstrings ask for (the input's) has its own check, so a
    float64 result loses that point only. The tolerance is relative to the values' size, as a different
    (honest) order of summation changes the last bits.
    """
    expect_tensor(got, expected, what=what, atol=atol, rtol=rtol, check_dtype=False)


def out_size(n: int, k: int, padding: int = 0, stride: int = 1) -> int:
    """Output length along one axis: (n + 2p - k) // s + 1."""
    return (n + 2 * padding - k) // stride + 1


# Images, kernels and (padding, stride) settings: non-square, odd and even, 1x1 included.
# Every kernel fits the padded image of every size it is paired with.
CONV2D_CASES = [  # (H, W), (kh, kw), padding, stride
    ((6, 8), (3, 3), 0, 1), ((7, 5), (2, 4), 0, 1), ((5, 9), (3, 3), 1, 1), ((8, 6), (5, 2), 2, 1),
    ((9, 7), (3, 3), 0, 2), ((7, 10), (2, 3), 1, 2), ((10, 7), (4, 3), 2, 3), ((6, 6), (1, 1), 0, 2),
    ((5, 8), (3, 5), 1, 3), ((11, 4), (3, 2), 0, 3), ((4, 9), (1, 4), 2, 2), ((8, 8), (5, 5), 2, 1),
]

# (L, k, stride, padding) for conv1d.
CONV1D_CASES = [
    (12, 3, 1, 0),
    (9, 1, 1, 0),
    (10, 2, 1, 1),
    (11, 4, 2, 1),
    (13, 5, 3, 2),
    (7, 3, 2, 0),
    (8, 5, 1, 2),
    (6, 6, 1, 0),
]

#: Torch functions that run a convolution (F.conv2d is torch.conv2d; nn.Conv2d calls it): the list the
#: sandbox forbids in the loop exercises, so that counting and forbidding agree.
CONV_FUNCTIONS = FORBIDDEN_GROUPS["conv"][0]
