"""Wrong and alternative answers for 02_conv_arithmetic, from which the demo's data is built
(``autograder/integrations/demo_submissions/02_conv_arithmetic.json``,
rewritten by ``python -m tests.submissions.build``).

Built from ``tests/assignments/test_02_conv_arithmetic.py`` (not copied): the wrong versions are its
``*_WRONG`` dicts (label -> (source, checks that must fail)); the alternatives are the sources it passes
to ``assert_full_marks`` in its tests, found by reading the module's syntax tree.

- ``WRONG``: "<grade id>/<mistake>" -> {grade id of the answer cell: the cell's source}, the functions
  taking turns (the demo picks every 3rd / 4th entry);
- ``ALTERNATIVE``: "<grade id>/<approach>" -> {grade id: source}, other correct answers.

Every source is a whole answer cell, with the imports it uses; the grade id is the name it defines.
"""

from __future__ import annotations

import ast
import inspect

from tests.assignments import test_02_conv_arithmetic as t02
from tests.submissions.answers import answer_cell, defined_function, interleaved


def _wrong_by_function() -> dict[str, list[tuple[str, str]]]:
    """grade id -> [(label, cell source)] from every ``*_WRONG`` dict of the test module, in its order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for name, variants in vars(t02).items():
        if name.endswith("_WRONG") and isinstance(variants, dict):
            for label, (source, _must_fail) in variants.items():
                cell = answer_cell(source)
                out.setdefault(defined_function(cell), []).append((label, cell))
    return out


def _alternatives() -> list[tuple[str, str]]:
    """(approach, cell source) of every ``assert_full_marks(cell, source)`` in the test module's tests."""
    out = []
    for test in ast.parse(inspect.getsource(t02)).body:
        if not (isinstance(test, ast.FunctionDef) and test.name.startswith("test_")):
            continue
        for node in ast.walk(test):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "assert_full_marks":
                cell = answer_cell(eval(compile(ast.Expression(node.args[1]), t02.__file__, "eval"), vars(t02)))
                function = defined_function(cell)
                approach = test.name.removeprefix(f"test_{function}_").removesuffix("_gets_full_marks")
                out.append((f"{function}/{approach}", cell))
    return out


WRONG: dict[str, dict[str, str]] = {f"{fn}/{label}": {fn: cell}
                                    for fn, (label, cell) in interleaved(_wrong_by_function())}
ALTERNATIVE: dict[str, dict[str, str]] = {name: {defined_function(cell): cell} for name, cell in _alternatives()}
