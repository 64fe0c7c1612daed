"""The demo's submissions, the data the package owns (``autograder/integrations/demo_submissions/<id>.json``):
every WRONG answer loses points, every ALTERNATIVE gets full marks, each is a whole answer cell of its
assignment, and the data is what ``tests/submissions/a<id>.py`` builds from the tests' variants.

A pytest session per ``check_code`` call is the main cost, so the answers are graded in batches:
batch ``i`` holds the ``i``-th answer of every cell at once. That is sound because each check calls
only the function (or reads only the names) of its own cell, as the assignments' own tests rely on.
"""

from __future__ import annotations

import builtins
import dis
import functools
import gc
import types

import nbformat
import pytest

from autograder.course import Course
from autograder.grading.from_source import check_code
from autograder.grading.reference import load_reference
from autograder.integrations import demo_submissions
from autograder.integrations.demo import load_submissions
from tests.submissions import build

KINDS = ("WRONG", "ALTERNATIVE")
# What the demo submits: the package's data, not the test modules it is built from.
MODULES = {aid: types.SimpleNamespace(**load_submissions(aid)) for aid in build.MODULES}


@pytest.fixture(scope="module", autouse=True)
def _frozen_heap():
    """One thread (the tensors are tiny); load every reference once, then freeze the heap, so that pytest's
    gc.collect() calls in every check run (one per check_code call) skip the long-lived objects: ~3x faster."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for aid in MODULES:
        load_reference(Course().get(aid))
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
    torch.set_num_threads(threads)


@functools.cache
def answer_cells(aid: str) -> frozenset[str]:
    """Grade ids of the answer (solution) code cells of the release notebook."""
    nb = nbformat.read(Course().get(aid).release_notebook, as_version=4)
    return frozenset(c.metadata["nbgrader"]["grade_id"] for c in nb.cells
                     if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution"))


def entries(kind: str) -> list[tuple[str, str]]:
    return [(aid, name) for aid, module in MODULES.items() for name in getattr(module, kind)]


def batches(aid: str, kind: str) -> list[dict[str, str]]:
    """Batch i: {entry name: grade id} of the i-th entry of every cell."""
    by_cell: dict[str, list[str]] = {}
    for name, answers in getattr(MODULES[aid], kind).items():
        (gid,) = answers
        by_cell.setdefault(gid, []).append(name)
    size = max(len(names) for names in by_cell.values())
    return [{names[i]: gid for gid, names in by_cell.items() if i < len(names)} for i in range(size)]


@functools.cache
def graded_batch(aid: str, kind: str, index: int) -> dict:
    answers = getattr(MODULES[aid], kind)
    batch = batches(aid, kind)[index]
    return check_code(aid, {gid: answers[name][gid] for name, gid in batch.items()},
                      cells=[f"test_{gid}" for gid in batch.values()])


def results_of(aid: str, kind: str, name: str) -> dict:
    """The results of the checks of ``name``'s cell, graded together with its batch."""
    (gid,) = getattr(MODULES[aid], kind)[name]
    index = next(i for i, batch in enumerate(batches(aid, kind)) if name in batch)
    results = {n: r for n, r in graded_batch(aid, kind, index).items() if r.cell == f"test_{gid}"}
    assert results, f"no checks ran for the cell {gid}"
    return results


@pytest.mark.parametrize("aid,name", entries("WRONG"), ids=lambda x: x)
def test_wrong_answer_loses_points(aid, name):
    results = results_of(aid, "WRONG", name)
    assert sum(r.points for r in results.values()) < sum(r.max_points for r in results.values()), \
        f"{name} gets full marks"
    failed = [r for r in results.values() if not r.passed]
    assert failed and all(r.message for r in failed)


@pytest.mark.parametrize("aid,name", entries("ALTERNATIVE"), ids=lambda x: x)
def test_alternative_answer_gets_full_marks(aid, name):
    results = results_of(aid, "ALTERNATIVE", name)
    lost = {n: r.message for n, r in results.items() if not r.passed or r.points != r.max_points}
    assert not lost, lost


def _globals_read(code: types.CodeType) -> set[str]:
    names = {i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _globals_read(const)
    return names


@pytest.mark.parametrize("aid", MODULES)
def test_entries_are_whole_answer_cells(aid):
    """One answer cell per entry, of the assignment, and self-contained: every name it reads is its own,
    a builtin, or another answer cell's function (a student may call their own im2col)."""
    module = MODULES[aid]
    cells = answer_cells(aid)
    for kind in KINDS:
        for name, answers in getattr(module, kind).items():
            (gid, source), = answers.items()
            assert gid in cells and name.startswith(f"{gid}/"), (kind, name, gid)
            namespace: dict = {}
            exec(compile(source, name, "exec"), namespace)  # noqa: S102 - defines, calls nothing
            missing = _globals_read(compile(source, name, "exec")) - set(namespace) - set(dir(builtins)) - cells
            assert not missing, f"{name} reads {sorted(missing)} without defining or importing them"


@pytest.mark.parametrize("aid", MODULES)
def test_every_function_has_three_mistakes_taking_turns(aid):
    module = MODULES[aid]
    gids = [next(iter(answers)) for answers in module.WRONG.values()]
    functions = sorted(answer_cells(aid))
    assert all(gids.count(gid) >= 3 for gid in functions), {gid: gids.count(gid) for gid in functions}
    assert set(gids[:len(functions)]) == set(functions), "the first entries should cover every cell"
    assert all(a != b for a, b in zip(gids, gids[1:len(functions) * 3])), "entries of a cell should alternate"
    assert module.ALTERNATIVE


@pytest.mark.parametrize("aid", MODULES)
def test_the_demo_data_is_built_from_the_tests_variants(aid):
    """No hand-edited copy: the package's file is exactly what the tests' variants give
    (``python -m tests.submissions.build`` rewrites it)."""
    assert demo_submissions.path_of(aid).read_text(encoding="utf-8") == build.text(aid), \
        "run: python -m tests.submissions.build"
    assert MODULES[aid].WRONG and MODULES[aid].ALTERNATIVE
