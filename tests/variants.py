"""The one way the per-assignment tests write their variants: realistic wrong implementations that must
lose points on the intended checks, and other correct ones that must get full marks.

    VARIANTS = [wrong("im2col", "creates_float32", SOURCE, {"test_im2col_keeps_dtype"}, only=True),
                correct("im2col", "strided_views", OTHER_SOURCE)]
    GRADER = VariantGrader("03_unfold", {"im2col": "test_im2col"}, VARIANTS)

    @pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
    def test_variant(variant):
        assert_grades(GRADER.results(variant), variant)

Every source runs on top of the reference notebook's namespace (``check_code``), so the notebook's
imports and other functions are there; only the named function is replaced. A pytest session per
``check_code`` call is the main cost, so the variants are graded in batches: batch ``i`` holds the
``i``-th variant of every function at once. That is sound because each check calls only the function
of its own cell; a variant that calls another function of the assignment belongs in a batch of
correct versions (give it its own grader).
"""

from __future__ import annotations

import functools
import textwrap
from dataclasses import dataclass

from autograder.course import Course
from autograder.grading.from_source import check_code


@dataclass(frozen=True)
class Variant:
    function: str
    label: str
    source: str
    fails: frozenset[str] = frozenset()   # checks that must fail (empty: a correct version)
    only: bool = False                    # ... and no other check of the cell
    explains: tuple[str, str] = ("", "")  # (check, text its message must contain)

    @property
    def id(self) -> str:
        return f"{self.function}-{self.label}"


def wrong(function, label, source, fails, *, only=False, explains=("", "")) -> Variant:
    """A wrong implementation: every check in ``fails`` must fail (``only``: and no other)."""
    return Variant(function, label, textwrap.dedent(source), frozenset(fails), only, explains)


def correct(function, label, source) -> Variant:
    """Another correct implementation: full marks on its cell."""
    return Variant(function, label, textwrap.dedent(source))


def batches(variants: list[Variant]) -> list[list[Variant]]:
    """Batch i: the i-th variant of every function."""
    by_function: dict[str, list[Variant]] = {}
    for v in variants:
        by_function.setdefault(v.function, []).append(v)
    size = max(len(vs) for vs in by_function.values())
    return [[vs[i] for vs in by_function.values() if i < len(vs)] for i in range(size)]


class VariantGrader:
    """Grades ``variants`` of assignment ``aid`` in batches, each batch once; ``cell``: function -> test cell."""

    def __init__(self, aid: str, cell: dict[str, str], variants: list[Variant], course: Course | None = None):
        self.aid, self.cell, self.variants, self.course = aid, cell, list(variants), course
        self.batches = batches(self.variants)
        self._graded = functools.cache(self._grade)

    def _grade(self, index: int) -> dict:
        batch = self.batches[index]
        return check_code(self.aid, {v.function: v.source for v in batch}, cells=[self.cell[v.function] for v in batch],
                          course=self.course)

    def results(self, variant: Variant) -> dict:
        """The results of the checks of ``variant``'s cell, graded together with its batch."""
        index = next(i for i, batch in enumerate(self.batches) if variant in batch)
        cell = self.cell[variant.function]
        results = {name: r for name, r in self._graded(index).items() if r.cell == cell}
        assert results, f"no checks ran for {variant.function} (cell {cell})"
        return results


def assert_grades(results: dict, variant: Variant) -> None:
    """A correct variant gets every point of its cell; a wrong one fails the intended checks as the student's
    failures (never the grader's errors), with a message, and loses points."""
    errors = {n: r.message for n, r in results.items() if r.status == "error"}
    assert not errors, f"checks broke on {variant.id}: {errors}"
    failed = {n for n, r in results.items() if not r.passed}
    if not variant.fails:
        assert not failed, {n: results[n].message for n in failed}
        assert sum(r.points for r in results.values()) == sum(r.max_points for r in results.values())
        return
    unknown = {name for name in variant.fails if name not in results}
    assert not unknown, f"unknown check names {sorted(unknown)}"
    assert variant.fails <= failed, f"expected {sorted(variant.fails)} to fail; failed: {sorted(failed)}"
    if variant.only:
        assert failed == variant.fails, f"only {sorted(variant.fails)} should fail; failed: {sorted(failed)}"
    assert all(results[n].message.strip() for n in failed), "a failed check without a message"
    assert sum(r.points for r in results.values()) < sum(r.max_points for r in results.values())
    check, text = variant.explains
    if check:
        assert text in results[check].message, results[check].message
