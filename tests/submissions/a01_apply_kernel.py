"""Wrong and alternative answers for 01_apply_kernel, from which the demo's data is built
(``autograder/integrations/demo_submissions/01_apply_kernel.json``,
rewritten by ``python -m tests.submissions.build``).

Built from the variants of ``tests/assignments/test_01_apply_kernel.py`` (not copied):

- ``WRONG``: "<grade id>/<mistake>" -> {grade id of the answer cell: the cell's source}, the functions
  taking turns (the demo picks every 3rd / 4th entry, so that each student gets mistakes in several cells);
- ``ALTERNATIVE``: "<grade id>/alternative" -> {grade id: source}, other correct answers.

Every source is a whole answer cell, with the imports it uses.
"""

from __future__ import annotations

import re

from tests.assignments import test_01_apply_kernel as t01
from tests.submissions.answers import answer_cell, interleaved


def slug(label: str) -> str:
    """'flipped kernel (true convolution)' -> 'flipped_kernel' (a trailing remark in brackets dropped)."""
    label = re.sub(r"\s+\((?:[^()]|\([^()]*\))*\)$", "", label).replace("+", "plus").replace("'", "")
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


WRONG: dict[str, dict[str, str]] = {f"{fn}/{slug(v.label)}": {fn: answer_cell(v.source)}
                                    for fn, v in interleaved(t01.WRONG)}
ALTERNATIVE: dict[str, dict[str, str]] = {f"{fn}/alternative": {fn: answer_cell(source)}
                                          for fn, source in t01.ALTERNATIVES.items()}

assert len(WRONG) == sum(len(vs) for vs in t01.WRONG.values()), "two wrong variants share a name"
