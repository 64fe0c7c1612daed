"""What isolation this machine offers, probed once per process (and set of data folders), never rewritten.

The probe tries each layer for real: bubblewrap with the worker's namespaces, a cgroup with a
process in it, and the worker's imports run as the sandbox user (granting read access with ACLs
when a strict umask hid the environment).  A worker that later fails to start does not change
the cached answer: the failure is reported on that worker's protections instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from . import bwrap, users
from .access import grant_access
from .cgroups import cgroup_kind, cgroup_usable

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
WORKER_PACKAGES = ("autograder", "data_scripts")


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


_PROBE_SCRIPT = r"""
import os, sys
def _raise(error):
    raise error
for top in sys.argv[1:]:
    os.stat(top)  # raises when a folder on the way cannot be traversed
    if os.path.isdir(top):
        os.listdir(top)
    for folder, dirs, files in os.walk(top, onerror=_raise):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                f.read(1)
import importlib.util
import autograder.sandbox.worker
import numpy
torch = os.path.dirname(importlib.util.find_spec("torch").origin)  # importing it costs seconds: read it instead
for folder in (torch, os.path.join(torch, "lib")):
    for name in os.listdir(folder):
        if os.path.isfile(os.path.join(folder, name)):
            with open(os.path.join(folder, name), "rb") as f:
                f.read(1)
"""


def _worker_can_start_as(user: pwd.struct_passwd, readable: tuple[str, ...]) -> str:
    """Run the worker's imports (and read the data) as ``user``; '' when that works, else why not."""
    env = {k: os.environ[k] for k in ("PATH", "PYTHONPATH", "VIRTUAL_ENV", "LANG") if k in os.environ}
    env.update({"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"})
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE_SCRIPT, *readable], user=user.pw_uid,
                               group=user.pw_gid, extra_groups=[], capture_output=True, cwd="/", env=env,
                               timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if probe.returncode == 0:
        return ""
    lines = probe.stderr.decode(errors="replace").strip().splitlines()
    return lines[-1][:300] if lines else f"exit code {probe.returncode}"


def python_trees() -> list[Path]:
    """The interpreter and its environment (a venv and the Python it was made from)."""
    trees = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent}
    return sorted(t for t in trees if t.exists())


def _needed_trees(readable: tuple[str, ...]) -> list[Path]:
    """Everything the worker reads: the interpreter, the environment, the grader's package, the data."""
    trees = set(python_trees())
    trees.add(PACKAGE_ROOT)
    trees.update(Path(p).resolve() for p in readable)
    return sorted(t for t in trees if t.exists())


_PROBED: dict[tuple[str, ...], dict] = {}


def machine_protections(readable: tuple[str, ...] = ()) -> dict:
    """What isolation can be used here (probed once per process and set of data folders; never rewritten).

    Callers get a copy: nothing a caller (or a failed start) does to it reaches the shared cache.
    """
    readable = tuple(sorted(str(p) for p in readable))
    if readable not in _PROBED:
        _PROBED[readable] = _probe(readable)
    info = _PROBED[readable]
    return {**info, "problems": list(info["problems"])}


def _probe(readable: tuple[str, ...]) -> dict:
    info: dict = {"root": os.geteuid() == 0, "bwrap": bool(bwrap_path()), "user": None, "problems": []}
    kind = cgroup_kind()
    info["cgroup"] = kind if cgroup_usable(kind) else None
    if kind and not info["cgroup"]:
        info["problems"].append(f"cgroup {kind} is present but a process cannot be placed in a new group")
    user = None
    if info["root"]:
        user = users.slot_user()
        if user is not None:
            why = _worker_can_start_as(user, readable)
            if why:
                grant_access(_needed_trees(readable), PACKAGE_ROOT, WORKER_PACKAGES,
                             never=(PACKAGE_ROOT / "autograder" / "checks",))
                why = _worker_can_start_as(user, readable)
            if why:
                info["problems"].append(f"the sandbox user {user.pw_name} cannot start the worker: {why}")
                user = None
            else:
                info["user"] = user.pw_name
        else:
            info["problems"].append(f"no sandbox user {users.BASE_USER} (useradd failed or is missing)")
    if info["bwrap"]:
        probe = subprocess.run([bwrap_path(), "--unshare-all", "--unshare-user", "--disable-userns",
                                "--die-with-parent", *bwrap.system_args(), "--proc", "/proc", "--dev", "/dev",
                                "true"],
                               capture_output=True, user=user.pw_uid if user else None,
                               group=user.pw_gid if user else None, extra_groups=[] if user else None)
        info["bwrap"] = probe.returncode == 0
        info["bwrap_error"] = probe.stderr.decode(errors="replace").strip()[:200] if probe.returncode else ""
        if probe.returncode:
            info["problems"].append(f"bubblewrap cannot start here: {info['bwrap_error']}")
    return info


def strong_isolation(readable: tuple[str, ...] = ()) -> tuple[bool, str]:
    """Whether workers start under bubblewrap (as an unprivileged user), and if not, why not."""
    info = machine_protections(readable)
    strong = info["bwrap"] and (info["user"] is not None or not info["root"])
    if strong:
        return True, ""
    reasons = info["problems"] or ([] if bwrap_path() else ["bubblewrap (bwrap) is not installed"])
    return False, "; ".join(reasons) or "no unprivileged user to run bubblewrap as"


def layers_of(protections: dict) -> dict:
    """The isolation layers a worker had, to compare a replacement's with (more is never less)."""
    return {"dedicated_user": protections.get("dedicated_user") is not None,
            "bubblewrap": bool(protections.get("bubblewrap")),
            "memory_cap": protections.get("memory_cap_mb") is not None,
            "process_cap": protections.get("process_cap") is not None}


def weaker_than(layers: dict, required: dict) -> list[str]:
    return [name for name, on in required.items() if on and not layers.get(name)]
