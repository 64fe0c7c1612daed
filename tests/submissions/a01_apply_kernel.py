"""Wrong and alternative answers for 01_apply_kernel, for the demo course (``autograder/demo.py``).

Built from the variants of ``tests/assignments/test_01_apply_kernel.py`` (not copied):

- ``WRONG``: "<grade id>/<mistake>" -> {grade id of the answer cell: the cell's source}, the functions
  taking turns (the demo picks every 3rd / 4th entry, so that each student gets mistakes in several cells);
- ``ALTERNATIVE``: "<grade id>/alternative" -> {grade id: source}, other correct answers.

Every source is a whole answer cell, with the imports it uses.
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

from tests.assignments import test_01_apply_kernel as t01  # noqa: E402

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


def slug(label: str) -> str:
    """'flipped kernel (true convolution)' -> 'flipped_kernel' (a trailing remark in brackets dropped)."""
    label = re.sub(r"\s+\((?:[^()]|\([^()]*\))*\)$", "", label).replace("+", "plus").replace("'", "")
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def _interleaved(by_function: dict[str, list]) -> list[tuple[str, object]]:
    """(function, variant): the first variant of every function, then the second of every function, ..."""
    rounds = zip_longest(*[[(fn, v) for v in vs] for fn, vs in by_function.items()])
    return [pair for pairs in rounds for pair in pairs if pair is not None]


WRONG: dict[str, dict[str, str]] = {f"{fn}/{slug(v.label)}": {fn: answer_cell(v.source)}
                                    for fn, v in _interleaved(t01.WRONG)}
ALTERNATIVE: dict[str, dict[str, str]] = {f"{fn}/alternative": {fn: answer_cell(source)}
                                          for fn, source in t01.ALTERNATIVES.items()}

assert len(WRONG) == sum(len(vs) for vs in t01.WRONG.values()), "two wrong variants share a name"
