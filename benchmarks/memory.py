"""Peak memory per kind of process during a benchmark run, so a peak names the process that reached it.

``ru_maxrss`` of the children only says how much the largest child ever held, not which one.  A
thread samples the peak resident size (``VmHWM``) of every descendant of this process (Jupyter
kernels, sandboxed workers and their zygote, grade-class jobs, dask workers) a few times a second
and keeps the largest per role, with the measurement that was running.
"""

from __future__ import annotations

import os
import threading

from autograder.sandbox.zygote import descendants

ROLES = (  # (what the command line contains, the role)
    ("ipykernel", "Jupyter kernel (notebook alone, or nbgrader's stock Execute)"),
    ("autograder.sandbox.zygote_server", "sandboxed worker (forked from the zygote) or the zygote"),
    ("autograder.sandbox.worker", "sandboxed worker (a fresh interpreter)"),
    ("grade_class import serve", "grade-class job (the grader's side)"),
    ("distributed", "dask worker (the grader's side)"),
    ("autograder grade-class", "grade-class (the class grader's parent)"),
)


def _role(cmdline: str) -> str | None:
    return next((role for key, role in ROLES if key in cmdline), None)


def _peak_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class PeakWatcher:
    """``with PeakWatcher() as w: ... w.phase = "06 engine"``; then ``w.peaks``: role -> (MiB, phase)."""

    def __init__(self, interval: float = 0.25):
        self.interval = interval
        self.phase = ""
        self.peaks: dict[str, tuple[float, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        for pid in descendants(os.getpid()):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    role = _role(f.read().replace(b"\0", b" ").decode(errors="replace"))
                if role is None:
                    continue
                mib = _peak_kib(pid) / 1024
            except OSError:  # it ended, or is not ours to read
                continue
            if mib > self.peaks.get(role, (0.0, ""))[0]:
                self.peaks[role] = (mib, self.phase)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()
