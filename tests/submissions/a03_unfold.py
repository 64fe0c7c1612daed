"""Wrong and alternative answers for 03_unfold, from which the demo's data is built
(``autograder/integrations/demo_submissions/03_unfold.json``,
rewritten by ``python -m tests.submissions.build``).

Built from the ``WRONG`` and ``CORRECT`` variants of ``tests/assignments/test_03_unfold.py`` (not copied):

- ``WRONG``: "<grade id>/<mistake>" -> {grade id of the answer cell: the cell's source}, the functions
  taking turns (the demo picks every 3rd / 4th entry);
- ``ALTERNATIVE``: "<grade id>/<approach>" -> {grade id: source}, other correct answers.

Every source is a whole answer cell, with the imports it uses.  One alternative conv2d_unfold calls the
student's own ``im2col``, as a student may: it needs a working im2col in the notebook.
"""

from __future__ import annotations

from tests.assignments import test_03_unfold as t03
from tests.submissions.answers import answer_cell, interleaved

_BY_FUNCTION: dict[str, list] = {}
for _variant in t03.WRONG:
    _BY_FUNCTION.setdefault(_variant.function, []).append(_variant)

WRONG: dict[str, dict[str, str]] = {f"{fn}/{v.label}": {fn: answer_cell(v.source)}
                                    for fn, v in interleaved(_BY_FUNCTION)}
ALTERNATIVE: dict[str, dict[str, str]] = {f"{v.function}/{v.label}": {v.function: answer_cell(v.source)}
                                          for v in t03.CORRECT}
