"""Run an assignment's checks (pytest tests) against a submission and collect the results.

pytest runs in this (trusted) process with a small plugin that provides the ``sub`` and
``ref`` fixtures, seeds every check, keeps only the chosen cells and visibility, and turns
each test's outcome into a :class:`CheckResult`.

Blame: a :class:`CheckFailure` (a wrong answer) and what the student's code raised
(:class:`StudentError`, :class:`ForbiddenAPIUsed`, a crash or a timeout of a call) are the
student's: status ``failed``.  Anything else raised while a check runs is the grader's: an
``AssertionError`` or a ``NameError`` in the check's own code, an error of the reference
(:class:`ReferenceFault`: it raised, or lacks a name), a fixture, ``pytest.fail``/``skip``, a
sandbox that could not run (:class:`GraderFault`).  Those get status ``error``, a message that
says the check itself failed, and the traceback in ``detail`` for the instructor.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from autograder.authoring.api import CheckSpec
from autograder.authoring.compare import CheckFailure
from autograder.authoring.hints import is_stub_failure
from autograder.authoring.properties import load_profile
from autograder.course import forget_other_checks
from autograder.grading.reference import ReferenceFault
from autograder.records import GRADER_ERROR, CheckResult
from autograder.submission.namespace import (
    ForbiddenAPIUsed,
    GraderFault,
    Namespace,
    StudentError,
    SubmissionCrashed,
)

INI = Path(__file__).with_name("checks.ini")
load_profile()  # property-based checks give the same verdict every time (authoring/properties.py)

MAX_MESSAGE = 4000
#: The student's failures: a wrong answer, or the student's code raised, used a forbidden API, crashed or hung.
#: (A plain AssertionError is not here: a check reports a wrong answer with CheckFailure, so a bare one is a bug.)
STUDENT_FAILURES = (CheckFailure, StudentError, ForbiddenAPIUsed, SubmissionCrashed)
#: Never the student's, even where they subclass a student failure (ReferenceFault is a StudentError).
GRADER_FAULTS = (GraderFault, ReferenceFault)


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside exception groups (hypothesis raises one for a flaky failure), or ``exc`` itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def blame(exc: BaseException, when: str = "call") -> str:
    """``"failed"`` (the student's) or ``"error"`` (the grader's) for what a check raised during ``when``."""
    leaves = _leaves(exc)
    if when != "call" or any(isinstance(e, GRADER_FAULTS) for e in leaves):
        return "error"
    return "failed" if all(isinstance(e, STUDENT_FAILURES) for e in leaves) else "error"


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit] + "..."


class _Plugin:
    def __init__(self, sub: Namespace, ref: Namespace | None, cells, seed: int):
        self._sub = sub
        self._ref = ref
        self.cells = set(cells) if cells is not None else None
        self.seed = seed
        self.results: list[CheckResult] = []
        self.collect_errors: list[str] = []
        self._started: dict[str, float] = {}
        self._failure: dict[str, tuple[str, str, str]] = {}  # nodeid: (status, message, detail)
        self._stubs: set[str] = set()  # checks that failed on a stub: no hint (docs/AUTHORING.md)

    def pytest_configure(self, config):
        config.addinivalue_line("markers", "check(spec): a graded check")

    @pytest.fixture(scope="session")
    def sub(self):
        return self._sub

    @pytest.fixture(scope="session")
    def ref(self):
        if self._ref is None:
            pytest.fail("this check needs the reference solution, which is only available to instructors")
        return self._ref

    @pytest.fixture(autouse=True)
    def _seed_everything(self, request):
        digest = hashlib.sha256(request.node.nodeid.split("::")[-1].encode()).digest()
        seed = (self.seed + int.from_bytes(digest[:4], "little")) % 2**31
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        spec = _spec(request.node)
        begin = getattr(type(self._sub), "begin_check", None)  # a class attribute: sub.x is a notebook name
        if begin is not None:
            begin(self._sub, request.node.nodeid)
        for ns in (self._sub, self._ref):  # each check's grader names in a scope of their own
            if ns is not None:
                ns.begin_scope(request.node.nodeid)
        base = self._sub.default_timeout
        if spec is not None and spec.timeout:
            self._sub.default_timeout = spec.timeout
        yield
        self._sub.default_timeout = base

    def pytest_collection_modifyitems(self, session, config, items):
        keep = []
        for item in items:
            spec = _spec(item)
            if spec is None:
                self.collect_errors.append(f"{item.nodeid}: test function without @check(...)")
                continue
            if self.cells is None or spec.cell in self.cells:
                keep.append(item)
        items[:] = keep

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors.append(f"{report.nodeid}: {report.longreprtext[-2000:]}")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if call.excinfo is not None and report.failed:
            exc = call.excinfo.value
            if blame(exc, call.when) == "failed":
                student = _leaves(exc)[0]
                self._failure[item.nodeid] = ("failed", (str(student).strip() or type(student).__name__)[:MAX_MESSAGE],
                                              "")
                if is_stub_failure(student):
                    self._stubs.add(item.nodeid)
            elif isinstance(exc, GraderFault):
                self._failure[item.nodeid] = ("error", f"the grader could not run this check (not your fault): {exc}",
                                              f"GraderFault: {exc}")
            else:
                what = f"{type(exc).__name__}: {_first_line(str(exc))}".rstrip(": ")
                where = "" if call.when == "call" else f" (in its {call.when})"
                self._failure[item.nodeid] = ("error", f"{GRADER_ERROR}\n(The check{where} raised {what})",
                                              f"{what}\n{report.longreprtext[-3000:]}")

    def pytest_runtest_logstart(self, nodeid, location):
        self._started[nodeid] = time.perf_counter()

    def pytest_runtest_logreport(self, report):
        # One result per check: from "setup" if that failed, else from "call".
        if report.when == "teardown" or (report.when == "setup" and report.passed):
            return
        spec: CheckSpec | None = getattr(report, "_check_spec", None)
        if spec is None:
            return
        status, message, detail = "passed", "", ""
        if report.failed:
            status, message, detail = self._failure.get(
                report.nodeid, ("error", GRADER_ERROR, report.longreprtext[-2000:]))
        elif report.skipped:
            status, message, detail = "error", GRADER_ERROR, f"the check was skipped: {report.longrepr}"
        self.results.append(CheckResult(
            name=report.nodeid.split("::")[-1], cell=spec.cell,
            points=spec.points if status == "passed" else 0.0, max_points=spec.points,
            kind=spec.kind, visibility=getattr(report, "_visibility", "public"), status=status, message=message,
            hint="" if report.nodeid in self._stubs else spec.hint, detail=detail,
            seconds=time.perf_counter() - self._started.get(report.nodeid, time.perf_counter())))


def _spec(item) -> CheckSpec | None:
    marker = item.get_closest_marker("check")
    if marker is None or not marker.args or not isinstance(marker.args[0], CheckSpec):
        return None
    return marker.args[0]


class _Annotate:
    """Copies each item's check spec and visibility onto its reports (reports carry no item)."""

    def __init__(self, visibility_of):
        self.visibility_of = visibility_of

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        report._check_spec = _spec(item)
        report._visibility = self.visibility_of(Path(str(item.fspath)))


def run_checks(files: list[Path], sub: Namespace, ref: Namespace | None = None, *, cells=None,
               seed: int = 0, hidden_files: set[Path] | None = None) -> tuple[list[CheckResult], list[str]]:
    """Run the checks in ``files`` (only those of ``cells`` when given).

    Returns the results in file order, and problems with the check files themselves.
    """
    hidden_files = {p.resolve() for p in (hidden_files or set())}
    plugin = _Plugin(sub, ref, cells, seed)
    annotate = _Annotate(lambda p: "hidden" if p.resolve() in hidden_files else "public")
    existing = [str(p) for p in files if p.exists()]
    if not existing:
        return [], [f"no check files found among {[str(p) for p in files]}"]
    try:
        code, output = _pytest(existing, [plugin, annotate])
    finally:
        # pytest's config (which keeps its plugins) can outlive the run: never let it keep the namespaces alive.
        plugin._sub = plugin._ref = None
    problems = list(plugin.collect_errors)
    if code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
        problems.append(f"pytest could not run the checks (exit {int(code)}):\n{output[-3000:]}")
    return plugin.results, problems


class _Collect:
    """Keeps each collected item's node id and check spec, and the files that failed to import."""

    def __init__(self):
        self.checks: list[tuple[str, CheckSpec]] = []
        self.errors: list[str] = []

    def pytest_collection_modifyitems(self, session, config, items):
        self.checks = [(item.nodeid, spec) for item in items if (spec := _spec(item)) is not None]

    def pytest_collectreport(self, report):
        if report.failed:
            self.errors.append(f"{report.nodeid}: {report.longreprtext[-2000:]}")


def collect_checks(files: list[Path]) -> list[tuple[str, CheckSpec]]:
    """(node id, spec) of every check in ``files``, collected exactly as :func:`run_checks` collects them
    (factories and loops that make checks included), without running any; raises if a file cannot be imported."""
    existing = [str(p) for p in files if p.exists()]
    if not existing:
        return []
    collect = _Collect()
    code, output = _pytest([*existing, "--collect-only"], [collect])
    if collect.errors or code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        raise RuntimeError(f"could not collect the checks of {existing}: {collect.errors or output[-3000:]}")
    return collect.checks


def _pytest(args: list[str], plugins: list) -> tuple[int, str]:
    """pytest in this process over check files (the first ``args``), quiet, with the grader's settings."""
    files = [a for a in args if not a.startswith("-")]
    forget_other_checks(files)
    args = [*args, "-c", str(INI), "--rootdir", str(Path(files[0]).parent), "-q", "--no-header",
            "-p", "no:cacheprovider", "-p", "no:randomly", "--import-mode=importlib", "--capture=sys",
            "-W", "ignore", "--noconftest", "-o", "console_output_style=classic",
            # These plugins run gc.collect() around every test: ~1 s per run on a heap holding torch (measured).
            "-p", "no:unraisableexception", "-p", "no:threadexception", "-p", "no:faulthandler"]
    buf = io.StringIO()
    old_env = os.environ.get("PYTEST_ADDOPTS")
    os.environ.pop("PYTEST_ADDOPTS", None)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            warnings.simplefilter("ignore")
            code = pytest.main(args, plugins=plugins)
    finally:
        if old_env is not None:
            os.environ["PYTEST_ADDOPTS"] = old_env
    return code, buf.getvalue()
