"""What check authors import: the ``@check`` decorator and the comparison helpers.

A check is a pytest test function in ``autograder/checks/<package>/public.py`` (shown to
students, run by their self-check) or ``hidden.py`` (instructors only).  It takes the
fixtures ``sub`` (the submission) and, in hidden checks only, ``ref`` (the reference
solution), both :class:`autograder.submission.namespace.Namespace` objects::

    @check(cell="test_conv2d_loops", points=3, kind="numerical",
           hint="Remember the +1 in the output size.")
    def test_conv2d_loops_matches_reference(sub, ref):
        x = torch.randn(7, 9)
        expect_tensor(sub.conv2d_loops(x, k, padding=1), ref.conv2d_loops(x, k, padding=1),
                      what="conv2d_loops(x (7, 9), k (3, 2), padding=1)")

``cell`` is the nbgrader grade id of the notebook's test cell the check belongs to; a cell's
points are the sum of its checks' points, in the engine and in nbgrader alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from autograder.authoring.compare import (  # noqa: F401 - re-exported for check authors
    CheckFailure,
    as_float,
    describe_value,
    expect,
    expect_close,
    expect_equal,
    expect_raises,
    expect_tensor,
    fmt_call,
)
from autograder.submission.namespace import ForbiddenAPIUsed, Handle, StudentError, SubmissionCrashed  # noqa: F401

KINDS = ("shape", "numerical", "accuracy", "behaviour", "error")


@dataclass(frozen=True)
class CheckSpec:
    cell: str
    points: float
    kind: str
    hint: str = ""
    timeout: float | None = None


def check(*, cell: str, points: float, kind: str, hint: str = "", timeout: float | None = None):
    """Mark a pytest test function as a graded check worth ``points`` in test cell ``cell``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if points < 0:
        raise ValueError("points must be >= 0")

    def decorate(fn):
        spec = CheckSpec(cell=cell, points=float(points), kind=kind, hint=hint, timeout=timeout)
        fn.__check_spec__ = spec
        return pytest.mark.check(spec)(fn)

    return decorate
