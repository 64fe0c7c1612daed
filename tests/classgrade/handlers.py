"""Stand-in graders for the grading-process tests: each task says what the "grader" does."""

from __future__ import annotations

import os
import signal
import time

GRADED = 0


def act(task: dict) -> dict:
    """Count the submissions this process graded; crash, hang or raise when the student's name says so."""
    global GRADED
    what = task["student"]
    if what == "exit":
        os._exit(7)
    if what == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if what == "hang":
        time.sleep(120)
    if what == "raise":
        raise ValueError("a bug in the grader")
    GRADED += 1
    return {"score": 1.0, "max_score": 1.0, "tests": [],
            "extra_data": {"pid": os.getpid(), "graded_here": GRADED}}
