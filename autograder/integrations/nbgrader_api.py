"""Driving nbgrader from Python: its API configured from the course's ``nbgrader_config.py``.

Used by the demo course and by the tests that compare nbgrader's grades with the engine's.
"""

from __future__ import annotations

import logging
from pathlib import Path

from autograder.cli import environment_on_path


def nbgrader_api(root: Path, exchange: Path | None = None, timeout: float = 600, *,
                 engine_root: Path | None = None, checks_root: Path | None = None, threads: int = 0):
    """An ``NbGraderAPI`` for the course at ``root`` (its nbgrader_config.py, plus overrides).

    ``engine_root``/``checks_root``: the course and checks the sandboxed engine grades against
    (default: what the config says, i.e. ``root``, with the repository's checks when ``root`` has
    none); ``threads``: threads for the student's code (0: the assignment's setting).
    ``timeout`` only matters if the configuration puts nbgrader's ``Execute`` back.
    """
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    environment_on_path()
    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    extra = Config()
    extra.CourseDirectory.root = str(root)
    if exchange is not None:
        extra.Exchange.root = str(exchange)
    extra.Execute.timeout = int(timeout)
    if engine_root is not None:
        extra.SandboxedExecute.course_root = str(engine_root)
    if checks_root is not None:
        extra.SandboxedExecute.checks_root = str(checks_root)
    if threads:
        extra.SandboxedExecute.threads = int(threads)
    extra.NbGraderAPI.log_level = logging.ERROR
    config.merge(extra)
    return NbGraderAPI(config=config)


def cell_scores(api, assignment_id: str, student: str) -> dict[str, float]:
    """nbgrader's autograded score of every test cell of one submission, from the gradebook."""
    from nbgrader.api import Gradebook

    environment_on_path()
    out = {}
    with Gradebook(api.coursedir.db_url) as gb:
        submission = gb.find_submission(assignment_id, student)
        for nb in submission.notebooks:
            for grade in nb.grades:
                if grade.cell.cell_type == "code" and not grade.cell.name.startswith("q_"):
                    out[grade.name] = float(grade.score or 0.0)
    return out
