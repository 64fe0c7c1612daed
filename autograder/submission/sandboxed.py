"""A submission running in the sandbox, seen by the checks as a :class:`Namespace`.

It executes the notebook's cells in the worker (recording each cell's outcome and output),
then forwards the checks' requests.  Recovery converges and costs only what broke:

* a cell that kills the worker is recorded as crashed and never run again; a cell that ran
  cleanly but kills a *replacement* worker while it is replayed is skipped from then on;
* a call that kills the worker costs only the check that made it: the next check gets a fresh
  worker (the cells replayed), with the full memory and process budget, because the old
  worker's processes are all gone before the new one starts;
* restarts are limited per culprit (each cell, each check) and by the submission's time
  limit, never by a count that a few bad cells could use up for everyone else;
* every replacement has at least the protections the first worker had, or none is started
  and the remaining checks become the grader's error (:class:`SandboxUnavailable`).

Every reply is validated here; a malformed one (wrong types, nesting, sizes) counts as a crash
of that call, never as an exception in the grader.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from autograder.notebooks import CellToRun
from autograder.records import CellOutcome
from autograder.sandbox.probe import layers_of
from autograder.sandbox.worker_process import (
    SandboxConfig,
    SandboxUnavailable,
    Worker,
    WorkerDied,
    WorkerError,
    WorkerTimeout,
    make_scratch,
)
from autograder.submission import static_check
from autograder.submission.namespace import GraderFault, Namespace, SubmissionCrashed, SubmissionTimeout

#: Restarts one check may cause before its later calls fail at once.
RESTARTS_PER_CHECK = 2
#: A backstop on restarts of one submission (the time limit normally ends them first).
MAX_RESTARTS = 200
OUTPUT_KEEP = 32 * 1024


def _text(value, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def cell_reply(response: dict) -> tuple[bool, str, str, float]:
    """(ok, error text, output, seconds) of a ``run_cell`` reply, or ValueError if it is malformed."""
    ok = response.get("ok")
    if type(ok) is not bool:
        raise ValueError("a cell reply without a boolean 'ok'")
    error = response.get("error", {})
    if not isinstance(error, dict):
        raise ValueError("a cell reply whose 'error' is not a mapping")
    seconds = response.get("seconds", 0.0)
    seconds = float(seconds) if type(seconds) in (int, float) else 0.0
    message = ""
    if not ok:
        message = f"{_text(error.get('type'), 200) or 'Error'}: {_text(error.get('message'), 500)}"[:500]
    return ok, message, _text(response.get("output", ""), OUTPUT_KEEP + 100), seconds


@dataclass
class SandboxNamespace(Namespace):
    config: SandboxConfig = field(default_factory=SandboxConfig)
    cells: list[CellToRun] = field(default_factory=list)
    cell_timeout: float = 120.0
    max_restarts: int = RESTARTS_PER_CHECK   # per culprit (a cell or a check)
    deadline: float | None = None     # monotonic time after which nothing more runs
    files_from: Path | None = None    # a folder whose files are copied into the scratch folder
    #: one worker process serves this one submission: checks may share results of expensive calls in it
    shares_results: ClassVar[bool] = True

    def __post_init__(self):
        self.label = "your notebook"
        self.outcomes: list[CellOutcome] = []
        self._outcome_of: dict[int, CellOutcome] = {}
        self._skip: set[int] = set()       # cells that killed a worker: never run again
        self._ran: list[int] = []          # cells that ran to the end (cleanly or with an exception)
        self._worker: Worker | None = None
        self._required: dict | None = None  # the first worker's layers: no replacement may have fewer
        self._generation = 0
        self._restarts = 0
        self._check: str | None = None
        self._check_restarts: dict[str, int] = {}
        self._scratch: Path | None = None
        self.protections: dict = {}
        self.startup_seconds = 0.0
        self.output_log = ""
        self.unavailable: str | None = None  # why no protected worker could be started any more
        self.flags: list[str] = []           # code that hides what it calls: for the instructor
        self._static: dict[tuple, list[tuple[str, str]]] = {}
        self._index: static_check.Index | None = None

    @property
    def generation(self) -> int:
        return self._generation

    def begin_check(self, name: str | None) -> None:
        """Called by the runner before each check: restarts are counted against the check that needs them."""
        self._check = name

    # -- lifecycle ---------------------------------------------------------------------
    def _new_worker(self) -> Worker:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        self._scratch = make_scratch()
        if self.files_from is not None and self.files_from.is_dir():
            for item in self.files_from.iterdir():
                if item.suffix != ".ipynb" and item.is_file() and not item.is_symlink():
                    shutil.copy2(item, self._scratch / item.name)
        start = time.monotonic()
        worker = Worker(self.config, self._scratch, require=self._required)
        self.startup_seconds += time.monotonic() - start
        self.protections = worker.protections
        if self._required is None:
            self._required = layers_of(worker.protections)
        self._generation += 1
        return worker

    def start(self) -> None:
        """Start the worker and run every cell, recording outcomes (raises WorkerError if none can start)."""
        self._worker = self._new_worker()
        for cell in self.cells:
            self._run_cell(cell)

    def _record(self, cell: CellToRun, outcome: CellOutcome) -> None:
        self.outcomes.append(outcome)
        self._outcome_of[cell.index] = outcome

    def _run_cell(self, cell: CellToRun, replay: bool = False) -> None:
        """Run one cell; on a crash, record it, skip it from now on, and bring back a worker."""
        if self._time_left() <= 0 or self._worker is None:
            if not replay:
                why = self.unavailable or ("the grading time limit was reached" if self._time_left() <= 0
                                           else "not run: no worker could be started")
                self._record(cell, CellOutcome(cell.label, cell.origin, "skipped", why))
            return
        timeout = min(self.cell_timeout, self._time_left())
        start = time.monotonic()
        status = message = ""
        try:
            response, _ = self._worker.request({"op": "run_cell", "source": cell.source, "label": cell.label}, [],
                                               timeout, max_reply=OUTPUT_KEEP * 8 + 65536)
            ok, message, output, _ = cell_reply(response)
        except WorkerTimeout:
            status, message = "timeout", f"did not finish within {timeout:g} s and was stopped"
        except WorkerDied as exc:
            status, message = "crashed", f"the notebook's process {exc}"
        except ValueError as exc:  # a malformed reply: the worker is not to be trusted any more
            self._worker.kill()
            status, message = "crashed", f"the notebook's process sent a malformed reply ({exc}) and was stopped"
        seconds = time.monotonic() - start
        if status:
            self._skip.add(cell.index)
            self._capture_output()
            self._worker = None
            if replay:  # it ran cleanly before: it is skipped from now on, and says so
                previous = self._outcome_of.get(cell.index)
                if previous is not None:
                    previous.status = status
                    previous.message = f"{message} (when it was run again after a restart; skipped since)"
            else:
                self._record(cell, CellOutcome(cell.label, cell.origin, status, message, seconds))
            self._restart(upto=cell.index)
            return
        if not replay:
            self._ran.append(cell.index)
            self._record(cell, CellOutcome(cell.label, cell.origin, "ok" if ok else "error", message, seconds,
                                           output))

    def _restart(self, upto: int | None = None) -> None:
        """A fresh worker with the cells that ran before replayed (those before ``upto`` only, when given)."""
        self._worker = None
        if self._time_left() <= 0 or self._restarts >= MAX_RESTARTS:
            return
        self._restarts += 1
        try:
            self._worker = self._new_worker()
        except SandboxUnavailable as exc:
            self.unavailable = f"not run: {exc}"
            return
        except WorkerError:
            return
        for index in list(self._ran):
            if upto is not None and index >= upto:
                break
            if index in self._skip:
                continue
            cell = self.cells[index]
            self._run_cell(cell, replay=True)
            if self._worker is None:  # that replay crashed: _run_cell restarted (or gave up) already
                return

    def _ensure_worker(self) -> Worker:
        if self._worker is not None and self._worker.alive():
            return self._worker
        if self.unavailable:
            raise GraderFault(self.unavailable)
        key = self._check or ""
        if self._check_restarts.get(key, 0) >= self.max_restarts:
            raise SubmissionCrashed("the notebook's process crashed too often during this check")
        self._check_restarts[key] = self._check_restarts.get(key, 0) + 1
        self._restart()
        if self.unavailable:
            raise GraderFault(self.unavailable)
        if self._worker is None:
            if self._time_left() <= 0:
                raise SubmissionTimeout("the grading time limit for this submission was reached")
            raise SubmissionCrashed("the notebook's process could not be restarted")
        return self._worker

    def _time_left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def _capture_output(self) -> None:
        if self._worker is not None:
            self.output_log = (self.output_log + self._worker.output())[-200_000:]

    def close(self) -> None:
        if self._worker is not None:
            self._capture_output()
            self._worker.close()
            self._worker = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    # -- Namespace transport ------------------------------------------------------------
    def _roundtrip(self, request, blobs, timeout, max_reply=None):
        if self._time_left() <= 0:
            raise SubmissionTimeout("the grading time limit for this submission was reached")
        worker = self._ensure_worker()
        timeout = min(timeout, self._time_left())
        try:
            if max_reply is None:
                return worker.request(request, blobs, timeout)
            return worker.request(request, blobs, timeout, max_reply=max_reply)
        except WorkerTimeout as exc:
            self._capture_output()
            self._worker = None
            raise SubmissionTimeout(f"the call {exc}") from None
        except WorkerDied as exc:
            self._capture_output()
            self._worker = None
            raise SubmissionCrashed(f"the notebook's process {exc} during this check") from None

    def _holds_worker(self) -> bool:
        return self._worker is not None and self._worker.alive()

    # -- the grader's reading of the source -----------------------------------------------
    def _sources(self) -> static_check.Index:
        if self._index is None:
            self._index = static_check.build_index((cell.label, cell.source) for cell in self.cells)
        return self._index

    def _static_forbidden(self, name: str, groups: list[str]) -> list[tuple[str, str]]:
        key = (name, tuple(groups))
        if key not in self._static:
            found = static_check.analyse(self._sources(), name, groups)
            self._static[key] = found.forbidden
            for why in found.hidden:
                flag = f"{name}(): {why}"
                if flag not in self.flags:
                    self.flags.append(flag)
        return self._static[key]

    def source_call_sites(self, name: str, callees: set[str]) -> tuple[int, bool] | None:
        return static_check.call_sites(self._sources(), name, callees)

    def _protocol_failure(self, why: str) -> None:
        """The worker's reply was malformed: stop that worker; the call counts as a crash."""
        if self._worker is not None:
            self._capture_output()
            self._worker.kill()
            self._worker = None
        raise SubmissionCrashed(f"the notebook's process sent a reply the grader cannot use ({why}) and was stopped")
