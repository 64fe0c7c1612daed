"""A stand-in for a worker's grading in ``test_parallel_gradebook`` (light to import: spawned workers load it)."""

from __future__ import annotations

import os
import time


def dies_for_bob(spec: dict, shard) -> list[dict]:
    """bob's grading kills its process (as an out-of-memory kill would); the others get 1 point each."""
    if shard.student == "bob":
        os._exit(9)
    time.sleep(0.5)
    return [{"student": shard.student, "assignment": aid, "status": "graded", "score": 1.0, "max_score": 1.0,
             "message": "", "seconds": 0.5} for aid in shard.assignments]
