"""Turning a test module's wrong and alternative variants into students' answer cells.

Shared by the per-assignment registries in this folder (which the demo course loads by path).
"""

from __future__ import annotations

import ast
import re
import textwrap
from itertools import zip_longest

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


def defined_function(source: str) -> str:
    """The name of the (only) function an answer cell defines: the cell's grade id."""
    names = [node.name for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)]
    assert len(names) == 1, f"expected one function, got {names}"
    return names[0]


def interleaved(by_function: dict[str, list]) -> list[tuple[str, object]]:
    """(function, variant): the first variant of every function, then the second of every function, ...

    The demo takes every 3rd or 4th entry, so each of its students gets mistakes in several cells.
    """
    rounds = zip_longest(*[[(fn, v) for v in vs] for fn, vs in by_function.items()])
    return [pair for pairs in rounds for pair in pairs if pair is not None]
