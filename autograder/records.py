"""What grading produces, as plain records (the standard library only): every layer may import them.

* :class:`CellOutcome`: how one of the notebook's cells ran in the sandbox;
* :class:`CheckResult`: one check's verdict.  ``failed`` is the student's (a wrong answer, an
  exception raised by the student's code, a forbidden API, a crash or a hang of a call);
  ``error`` is the grader's (a check that broke, a reference that raised or lacks a name, a
  sandbox that could not run): it costs the check's points only until the instructor regrades,
  says so in the feedback, and is listed in :attr:`GradeReport.grader_problems`;
* :class:`GradeReport`: one graded submission, with its Gradescope ``results.json``, JUnit XML
  and Markdown renderings (:mod:`autograder.grading.reports` writes them to files).

Scores are sums of check points; manually graded answers appear as zero-point entries that
say a person will grade them.  Hidden checks keep their messages short (shapes, the largest
difference) and are marked ``after_published`` for Gradescope.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field

from autograder.textsafe import clean, md_block, md_inline, xml_text

#: What a check that broke says to the student (its first line), before what broke.
GRADER_ERROR = ("This check itself failed: a problem in the grader, not in your work. "
                "Your instructor has been told and will regrade it.")


@dataclass
class CellOutcome:
    label: str
    origin: str
    status: str          # "ok", "error", "timeout", "crashed", "skipped"
    message: str = ""
    seconds: float = 0.0
    output: str = ""     # what the cell printed (stdout and stderr, cut at 32 KB)


@dataclass
class CheckResult:
    name: str
    cell: str
    points: float
    max_points: float
    kind: str
    visibility: str  # "public" or "hidden"
    status: str      # "passed", "failed" (the student's) or "error" (the grader's: the check itself broke)
    message: str     # shown to the student
    hint: str
    seconds: float
    detail: str = ""  # for the instructor when status is "error": what broke, with the check's traceback

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def grader_problem(self) -> str:
        """The entry of ``grader_problems`` for a check that broke ("" for any other result)."""
        if self.status != "error":
            return ""
        return f"{self.cell}: the check {self.name} itself failed: {self.detail or self.message}"


#: Cells listed one by one in results.json and the feedback (a notebook may have 200,000).
MAX_CELLS_LISTED = 200

VISIBILITY = {"public": "visible", "hidden": "after_published"}


@dataclass
class GradeReport:
    submission: str
    assignment: str | None
    results: list[CheckResult] = field(default_factory=list)
    manual: list[tuple[str, float, str]] = field(default_factory=list)
    cells: list[CellOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)     # problems that zeroed the whole submission
    grader_problems: list[str] = field(default_factory=list)
    protections: dict = field(default_factory=dict)
    execution_time: float = 0.0
    student_output: str = ""
    flags: list[str] = field(default_factory=list)      # code that hides what it calls: for the instructor
    weak_isolation: str = ""                             # set when the instructor accepted weaker isolation

    @property
    def score(self) -> float:
        return round(sum(r.points for r in self.results), 6)

    @property
    def max_score(self) -> float:
        return round(sum(r.max_points for r in self.results), 6)

    def cell_scores(self) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        for r in self.results:
            got, total = out.get(r.cell, (0.0, 0.0))
            out[r.cell] = (got + r.points, total + r.max_points)
        return out

    def bad_cells(self) -> list[CellOutcome]:
        return [c for c in self.cells if c.status != "ok"]

    def summary(self) -> str:
        """For the terminal: student text has no control characters (no escape sequences)."""
        lines = [f"{self.assignment or '?'}: {self.score:g} / {self.max_score:g} points"]
        if self.weak_isolation:
            lines.append(f"WARNING: graded with weaker isolation, accepted by the instructor: {self.weak_isolation}")
        lines += [f"ERROR: {e}" for e in self.errors]
        lines += [f"Note: {n}" for n in self.notes]
        bad = self.bad_cells()
        for c in bad[:MAX_CELLS_LISTED]:
            lines.append(f"Cell '{c.label}' ({c.origin}): {c.status}: {c.message}")
        if len(bad) > MAX_CELLS_LISTED:
            lines.append(f"... and {len(bad) - MAX_CELLS_LISTED} more cells that did not run cleanly")
        if self.grader_problems:
            lines.append("The grader had a problem with some checks (not your fault; your instructor has been told):")
            lines += [f"  {p.splitlines()[0] if p else ''}" for p in self.grader_problems]
        if self.flags:
            lines.append("Flagged for the instructor (code that hides what it calls):")
            lines += [f"  {f}" for f in self.flags[:20]]
        return "\n".join(clean(line, 2000) for line in lines)

    # -- Gradescope ------------------------------------------------------------------
    def to_gradescope(self) -> dict:
        tests = []
        for i, r in enumerate(self.results, 1):
            output = clean(r.message, 4000)
            if r.status == "failed" and r.hint:
                output += f"\nHint: {r.hint}"
            tests.append({"name": f"{r.cell}: {r.name}", "number": str(i), "score": r.points,
                          "max_score": r.max_points, "status": "passed" if r.passed else "failed",
                          "output": output, "visibility": VISIBILITY.get(r.visibility, "after_published"),
                          "tags": [r.kind, r.cell, r.visibility]})
        for gid, points, first_line in self.manual:
            tests.append({"name": f"{gid}: written answer", "score": 0.0, "max_score": 0.0, "status": "passed",
                          "output": f"This answer ({points:g} points) is graded by a person; "
                                    f"its points are not included yet. {first_line}".strip(),
                          "visibility": "visible", "tags": ["manual", gid]})
        return {
            "score": self.score,
            "max_score": self.max_score,
            "execution_time": round(self.execution_time, 3),
            "output": clean(self.summary(), 20000),
            "stdout_visibility": "hidden",
            "tests": tests,
            "extra_data": {
                "assignment": self.assignment,
                "submission": self.submission,
                "cells": {k: {"score": v[0], "max_score": v[1]} for k, v in self.cell_scores().items()},
                "manual_points_pending": sum(p for _, p, _ in self.manual),
                "cell_outcomes": [{k: v for k, v in asdict(c).items() if k != "output"}
                                  for c in self.bad_cells()[:MAX_CELLS_LISTED]],
                "cells_run": len(self.cells),
                "cells_not_ok": len(self.bad_cells()),
                "protections": self.protections,
                "grader_problems": [clean(p, 4000) for p in self.grader_problems],
                "flags": [clean(f, 500) for f in self.flags[:50]],
                "weak_isolation": self.weak_isolation,
            },
        }

    # -- JUnit -----------------------------------------------------------------------
    def to_junit(self) -> str:
        suite = ET.Element("testsuite", name=self.assignment or "submission", tests=str(len(self.results)),
                           failures=str(sum(r.status == "failed" for r in self.results)),
                           errors=str(sum(r.status == "error" for r in self.results)),
                           time=f"{self.execution_time:.3f}")
        for r in self.results:
            case = ET.SubElement(suite, "testcase", classname=f"{self.assignment}.{r.cell}", name=r.name,
                                 time=f"{r.seconds:.3f}")
            ET.SubElement(case, "properties").extend([
                ET.Element("property", name="points", value=f"{r.points:g}"),
                ET.Element("property", name="max_points", value=f"{r.max_points:g}"),
                ET.Element("property", name="visibility", value=r.visibility),
            ])
            if r.status == "failed":
                ET.SubElement(case, "failure", message=r.message.splitlines()[0][:300] if r.message else "failed").text = r.message
            elif r.status == "error":
                ET.SubElement(case, "error", message="the check itself failed").text = r.message
        if self.errors:
            ET.SubElement(suite, "system-err").text = "\n".join(self.errors)
        for element in suite.iter():  # student text: only characters XML 1.0 accepts, capped
            element.text = xml_text(element.text, 4000) if element.text is not None else None
            for key, value in element.attrib.items():
                element.attrib[key] = xml_text(value, 300)
        return ET.tostring(suite, encoding="unicode")

    # -- Markdown feedback -----------------------------------------------------------
    def to_markdown(self) -> str:
        """Feedback in Markdown: student text is escaped (one line) or fenced (messages), never rendered."""
        lines = [f"# Feedback: {md_inline(self.assignment or self.submission)}", "",
                 f"**Score: {self.score:g} / {self.max_score:g}** (autograded)", ""]
        if self.weak_isolation:
            lines += [f"> **Warning:** graded with weaker isolation: {md_inline(self.weak_isolation)}", ""]
        if self.manual:
            lines += [f"Written answers worth {sum(p for _, p, _ in self.manual):g} more points are graded by a person.", ""]
        for e in self.errors:
            lines += [f"> **Problem:** {md_inline(e, 1000)}", ""]
        for n in self.notes:
            lines += [f"> Note: {md_inline(n, 1000)}", ""]
        bad_cells = self.bad_cells()
        if bad_cells:
            lines += ["## Cells that did not run cleanly", ""]
            lines += [f"- {md_inline(c.label, 80)} ({md_inline(c.origin, 20)}): **{md_inline(c.status, 20)}** — "
                      f"{md_inline(c.message, 500)}" for c in bad_cells[:MAX_CELLS_LISTED]]
            if len(bad_cells) > MAX_CELLS_LISTED:
                lines.append(f"- ... and {len(bad_cells) - MAX_CELLS_LISTED} more")
            lines.append("")
        lines += ["## Points per exercise", "", "| test cell | points |", "|---|---|"]
        lines += [f"| {md_inline(cell, 80)} | {got:g} / {total:g} |" for cell, (got, total) in self.cell_scores().items()]
        lines += ["", "## Checks", ""]
        for r in self.results:
            mark = "✅" if r.passed else "⚠️" if r.status == "error" else "❌"
            tag = " (hidden check)" if r.visibility == "hidden" else ""
            lines.append(f"- {mark} {md_inline(r.name, 120)}{tag} — {r.points:g}/{r.max_points:g} [{md_inline(r.kind, 30)}]")
            if not r.passed:
                lines += md_block("\n".join(r.message.splitlines()[:10]), 3000, indent="    ")
                if r.hint and r.status == "failed":
                    lines.append(f"    Hint: {md_inline(r.hint, 500)}")
        return "\n".join(lines) + "\n"
