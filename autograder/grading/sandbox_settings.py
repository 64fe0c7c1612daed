"""The sandbox a submission of an assignment runs in, and starting its zygote ahead of the grading.

Light on purpose (no torch): a grading process asks for the zygote first, so that the zygote's own
imports (torch, torchvision: ~4 s) run on the other core while this process imports torch and loads
the reference (~2 s) instead of after it.
"""

from __future__ import annotations

import os
from pathlib import Path

from autograder.course import REPO_ROOT, Assignment, Course
from autograder.sandbox.worker_process import SandboxConfig, start_early


def default_threads(jobs: int = 1) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def sandbox_config(assignment: Assignment, threads: int | None = None, **overrides) -> SandboxConfig:
    """Limits from the assignment's settings; what the worker may see (an allowlist, see sandbox/bwrap.py)."""
    from data_scripts.paths import data_dir, torch_home

    settings = assignment.settings
    readonly = [REPO_ROOT / "autograder", REPO_ROOT / "data_scripts", Path(data_dir()), Path(torch_home())]
    hidden = [REPO_ROOT / "autograder" / "checks", assignment.course.checks_root, assignment.course.root / "solutions"]
    config = SandboxConfig(memory_mb=settings.memory_mb,
                           threads=threads or settings.threads or default_threads(),
                           readonly=[p for p in readonly if p.exists()], hidden=hidden,
                           extra_env={"CNN_COURSE_DATA": str(data_dir()), "TORCH_HOME": str(torch_home())},
                           readable=[p for p in (data_dir(), torch_home()) if Path(p).exists()])
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def start_sandbox_early(config: SandboxConfig) -> str:
    """Start the zygote that the first worker of ``config`` will fork from; '' or why none was started.

    Never raises and never waits: whatever goes wrong here, the worker's own start reports it.
    """
    try:
        return start_early(config)
    except Exception as exc:  # noqa: BLE001 - only a head start: grading reports any real problem itself
        return f"{type(exc).__name__}: {exc}"


def start_sandbox_early_for(notebook: Path | str, assignment_id: str | None = None, threads: int | None = None,
                            course: Course | None = None) -> str:
    """:func:`start_sandbox_early` for a submitted notebook whose assignment may have to be told from the file."""
    from autograder.notebooks import read_notebook

    try:
        course = course or Course()
        path = Path(notebook)
        assignment = course.get(assignment_id) if assignment_id else course.identify(path, read_notebook(path))
    except Exception as exc:  # noqa: BLE001 - an unreadable notebook is graded (as zero, with the reason) later
        return f"{type(exc).__name__}: {exc}"
    return start_sandbox_early(sandbox_config(assignment, threads))
