"""A submission running in the sandbox, seen by the checks as a :class:`Namespace`.

It executes the notebook's cells in the worker (recording each cell's outcome), then
forwards the checks' requests.  When the worker dies or is killed on a timeout, the next
request starts a fresh worker and replays the cells that ran cleanly (skipping the one
that killed it), so one bad cell or one hanging call costs only what it breaks.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .namespace import Namespace, SubmissionCrashed, SubmissionTimeout
from .notebooks import CellToRun
from .sandbox.launcher import SandboxConfig, Worker, WorkerDied, WorkerError, WorkerTimeout, make_scratch


@dataclass
class CellOutcome:
    label: str
    origin: str
    status: str          # "ok", "error", "timeout", "crashed", "skipped"
    message: str = ""
    seconds: float = 0.0


@dataclass
class SandboxNamespace(Namespace):
    config: SandboxConfig = field(default_factory=SandboxConfig)
    cells: list[CellToRun] = field(default_factory=list)
    cell_timeout: float = 120.0
    max_restarts: int = 2
    deadline: float | None = None     # monotonic time after which nothing more runs
    files_from: Path | None = None    # a folder whose files are copied into the scratch folder

    def __post_init__(self):
        self.label = "your notebook"
        self.outcomes: list[CellOutcome] = []
        self._skip: set[int] = set()
        self._ok_cells: list[int] = []
        self._worker: Worker | None = None
        self._generation = 0
        self._restarts = 0
        self._scratch: Path | None = None
        self.protections: dict = {}
        self.startup_seconds = 0.0
        self.output_log = ""

    @property
    def generation(self) -> int:
        return self._generation

    # -- lifecycle ---------------------------------------------------------------------
    def _new_worker(self) -> Worker:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        self._scratch = make_scratch()
        if self.files_from is not None and self.files_from.is_dir():
            for item in self.files_from.iterdir():
                if item.suffix != ".ipynb" and item.is_file():
                    shutil.copy2(item, self._scratch / item.name)
        start = time.monotonic()
        worker = Worker(self.config, self._scratch)
        self.startup_seconds += time.monotonic() - start
        self.protections = worker.protections
        self._generation += 1
        return worker

    def start(self) -> None:
        """Start the worker and run every cell, recording outcomes."""
        self._worker = self._new_worker()
        for cell in self.cells:
            self._run_cell(cell, record=True)

    def _run_cell(self, cell: CellToRun, record: bool) -> None:
        if self._time_left() <= 0:
            if record:
                self.outcomes.append(CellOutcome(cell.label, cell.origin, "skipped", "the grading time limit was reached"))
            return
        if self._worker is None:  # the process crashed and may not be restarted again
            if record:
                self.outcomes.append(CellOutcome(cell.label, cell.origin, "skipped",
                                                 "not run: the notebook's process crashed too often"))
            return
        timeout = min(self.cell_timeout, self._time_left())
        start = time.monotonic()
        try:
            response, _ = self._worker.request({"op": "run_cell", "source": cell.source, "label": cell.label}, [], timeout)
        except WorkerTimeout:
            self._skip.add(cell.index)
            self._capture_output()
            if record:
                self.outcomes.append(CellOutcome(cell.label, cell.origin, "timeout",
                                                 f"did not finish within {timeout:g} s and was stopped",
                                                 time.monotonic() - start))
            self._restart_after(cell)
            return
        except WorkerDied as exc:
            self._skip.add(cell.index)
            self._capture_output()
            if record:
                self.outcomes.append(CellOutcome(cell.label, cell.origin, "crashed", f"the notebook's process {exc}",
                                                 time.monotonic() - start))
            self._restart_after(cell)
            return
        seconds = time.monotonic() - start
        if response.get("ok"):
            self._ok_cells.append(cell.index)
            if record:
                self.outcomes.append(CellOutcome(cell.label, cell.origin, "ok", "", seconds))
        else:
            err = response.get("error", {})
            self._ok_cells.append(cell.index)  # replay it: its earlier lines may define names
            if record:
                self.outcomes.append(CellOutcome(cell.label, cell.origin, "error",
                                                 f"{err.get('type', 'Error')}: {err.get('message', '')}"[:500], seconds))

    def _restart_after(self, bad_cell: CellToRun) -> None:
        """Replace the dead worker and replay the cells that ran before the bad one."""
        self._worker = None
        if self._restarts >= self.max_restarts or self._time_left() <= 0:
            return
        self._restarts += 1
        try:
            self._worker = self._new_worker()
        except WorkerError:
            self._worker = None
            return
        for cell in self.cells:
            if cell.index >= bad_cell.index:
                break
            if cell.index in self._ok_cells and cell.index not in self._skip:
                self._run_cell(cell, record=False)
                if self._worker is None:
                    return

    def _ensure_worker(self) -> Worker:
        if self._worker is not None and self._worker.alive():
            return self._worker
        if self._restarts >= self.max_restarts:
            raise SubmissionCrashed("the notebook's process crashed too often; the remaining checks could not run")
        self._restarts += 1
        self._worker = self._new_worker()
        for cell in self.cells:
            if cell.index in self._ok_cells and cell.index not in self._skip:
                self._run_cell(cell, record=False)
                if self._worker is None or not self._worker.alive():
                    raise SubmissionCrashed("the notebook's process could not be restarted")
        return self._worker

    def _time_left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def _capture_output(self) -> None:
        if self._worker is not None:
            self.output_log += self._worker.output()

    def close(self) -> None:
        if self._worker is not None:
            self._capture_output()
            self._worker.close()
            self._worker = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    # -- Namespace transport ------------------------------------------------------------
    def _roundtrip(self, request, blobs, timeout):
        if self._time_left() <= 0:
            raise SubmissionTimeout("the grading time limit for this submission was reached")
        worker = self._ensure_worker()
        timeout = min(timeout, self._time_left())
        try:
            return worker.request(request, blobs, timeout)
        except WorkerTimeout as exc:
            self._capture_output()
            self._worker = None
            raise SubmissionTimeout(f"the call {exc}") from None
        except WorkerDied as exc:
            self._capture_output()
            self._worker = None
            raise SubmissionCrashed(f"the notebook's process {exc} during this check") from None
