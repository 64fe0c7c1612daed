"""Start the worker inside the sandbox, and fail closed when the sandbox is not there (the facade).

Layers (the grader reports which were in force):

* a dedicated unprivileged user per grading process (:mod:`.users`) when the grader runs as
  root: bubblewrap started as root is escapable, so privileges are dropped *before* bwrap runs;
* bubblewrap (:mod:`.bwrap`): an allowlist root (the system, Python, the worker's package and
  the data; nothing else of the machine), no network (only loopback), no new user namespaces,
  a private /tmp and a writable scratch folder; ``--die-with-parent`` and a PID namespace;
* cgroups (v1 or v2, when writable): a memory cap and a process-count cap;
* rlimits always: a generous address-space backstop, file size, core dumps, process count;
* a fixed number of threads, and a wall-clock limit enforced from outside by SIGKILL of
  the whole process group (a cell that ignores SIGINT/SIGALRM still dies).

Without bubblewrap (or an unprivileged user to run it as) no worker starts unless the
instructor opted in to weaker isolation (``--allow-weak-sandbox``); a replacement worker is
never weaker than the first one of its submission.

The pieces, one job each: :mod:`.probe` (what the machine offers, cached), :mod:`.users` (the
sandbox user of this process) and :mod:`.access` (ACL read grants), :mod:`.cgroups`,
:mod:`.bwrap` (the command line, a pure function), :mod:`.worker_process` (the :class:`Worker`) and
:mod:`.zygote` / :mod:`.zygote_server` (warm workers: forked from a zygote that imported torch once,
inside the same sandbox; a cold start whenever the zygote is not available, said in ``start``).
This module only re-exports them for the grader.
"""

from __future__ import annotations

from .cgroups import Cgroup, cgroup_kind, cgroup_usable
from .probe import (
    PACKAGE_ROOT,
    WORKER_PACKAGES,
    bwrap_path,
    layers_of,
    machine_protections,
    python_trees,
    strong_isolation,
    weaker_than,
)
from .worker_process import (
    ALLOW_WEAK_ENV,
    OUTPUT_KEEP,
    SandboxConfig,
    SandboxUnavailable,
    Worker,
    WorkerDied,
    WorkerError,
    WorkerTimeout,
    make_scratch,
)

__all__ = ["ALLOW_WEAK_ENV", "OUTPUT_KEEP", "PACKAGE_ROOT", "WORKER_PACKAGES", "Cgroup", "SandboxConfig",
           "SandboxUnavailable", "Worker", "WorkerDied", "WorkerError", "WorkerTimeout", "bwrap_path",
           "cgroup_kind", "cgroup_usable", "layers_of", "machine_protections", "make_scratch", "python_trees",
           "strong_isolation", "weaker_than"]
