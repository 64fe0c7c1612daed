"""Wrong and alternative answers for 03_unfold, for the demo course (``autograder/demo.py``).

Built from the ``WRONG`` and ``CORRECT`` variants of ``tests/assignments/test_03_unfold.py`` (not copied):

- ``WRONG``: "<grade id>/<mistake>" -> {grade id of the answer cell: the cell's source}, the functions
  taking turns (the demo picks every 3rd / 4th entry);
- ``ALTERNATIVE``: "<grade id>/<approach>" -> {grade id: source}, other correct answers.

Every source is a whole answer cell, with the imports it uses.  One alternative conv2d_unfold calls the
student's own ``im2col``, as a student may: it needs a working im2col in the notebook.
"""

from __future__ import annotations

import ast
import re
import sys
import textwrap
from itertools import zip_longest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the demo loads this file by path
    sys.path.insert(0, str(ROOT))

from tests.assignments import test_03_unfold as t03  # noqa: E402

IMPORTS = {"torch": "import torch", "F": "import torch.nn.functional as F", "nn": "from torch import nn",
           "math": "import math"}


def answer_cell(source: str) -> str:
    """``source`` as a student's answer cell: dedented, with imports of the modules it uses but does not import."""
    code = re.sub(r"(\bdef [^\n]*:\n)(?:[ \t]*\n)+", r"\1", textwrap.dedent(source).strip("\n"))
    tree = ast.parse(code)
    imported = {alias.asname or alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import | ast.ImportFrom) for alias in node.names}
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    header = [line for name, line in IMPORTS.items() if name in used - imported]
    return "\n".join(header) + "\n\n" + code if header else code


def _interleaved(variants: list) -> list:
    """The first variant of every function, then the second of every function, ..."""
    by_function: dict[str, list] = {}
    for v in variants:
        by_function.setdefault(v.function, []).append(v)
    return [v for round_ in zip_longest(*by_function.values()) for v in round_ if v is not None]


WRONG: dict[str, dict[str, str]] = {f"{v.function}/{v.label}": {v.function: answer_cell(v.source)}
                                    for v in _interleaved(t03.WRONG)}
ALTERNATIVE: dict[str, dict[str, str]] = {f"{v.function}/{v.label}": {v.function: answer_cell(v.source)}
                                          for v in t03.CORRECT}
