"""Hostile submissions are graded against the engine's fixture course: reuse its fixtures."""

from __future__ import annotations

import dataclasses

import pytest

from tests.engine.conftest import (  # noqa: F401 - re-exported fixtures
    CORRECT,
    FIXTURE,
    by_name,
    fixture_course,
    grade,
    make_submission,
    release_nb,
)

#: Wrong answers (every check fails): the honest twin of attacks that try to pass with them.
WRONG = {
    "double": "def double(x):\n    return x * 3",
    "smooth": "def smooth(x, k):\n    return torch.zeros(len(x) - len(k) + 1)",
    "count": "def count(n):\n    return n + 1",
}

#: Score of CORRECT on the fixture (all autograded points).
FULL_SCORE = 7


@pytest.fixture
def fast_settings(fixture_course):  # noqa: F811 - the re-exported fixture
    """The fixture's limits, with short timeouts so that hanging attacks cost seconds."""

    def make(**kw):
        base = fixture_course.get("00_fixture").settings
        return dataclasses.replace(base, **{"cell_timeout": 4, "call_timeout": 3, **kw})

    return make
