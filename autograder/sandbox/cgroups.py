"""cgroups (v1 or v2, when the grader may write them): a memory cap and a process-count cap per worker.

Only a root grader on a machine whose cgroup tree is writable gets them; :func:`cgroup_kind` says
which hierarchy, :func:`cgroup_usable` tries one for real (some containers let a group be created
but no process be placed in it).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from . import users

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_kind() -> str | None:
    """"v1", "v2", or None when this process cannot make cgroups."""
    if os.geteuid() != 0:
        return None
    if (CGROUP_ROOT / "memory").is_dir() and os.access(CGROUP_ROOT / "memory", os.W_OK) \
            and (CGROUP_ROOT / "pids").is_dir():
        return "v1"
    if (CGROUP_ROOT / "cgroup.controllers").exists() and os.access(CGROUP_ROOT, os.W_OK):
        return "v2"
    return None


class Cgroup:
    """A memory- and process-capped cgroup for one worker (removed afterwards)."""

    def __init__(self, kind: str, memory_mb: int, max_processes: int):
        name = f"cnn-autograder-{os.getpid()}-{time.monotonic_ns()}"
        self.kind = kind
        self.paths: list[Path] = []
        try:
            if kind == "v1":
                mem, pids = CGROUP_ROOT / "memory" / name, CGROUP_ROOT / "pids" / name
                mem.mkdir()
                self.paths.append(mem)
                (mem / "memory.limit_in_bytes").write_text(str(memory_mb * 2**20))
                if (mem / "memory.memsw.limit_in_bytes").exists():
                    try:
                        (mem / "memory.memsw.limit_in_bytes").write_text(str(memory_mb * 2**20))
                    except OSError:
                        pass
                pids.mkdir()
                self.paths.append(pids)
                (pids / "pids.max").write_text(str(max_processes * 4))
            else:
                path = CGROUP_ROOT / name
                path.mkdir()
                self.paths.append(path)
                (path / "memory.max").write_text(str(memory_mb * 2**20))
                (path / "memory.swap.max").write_text("0")
                (path / "pids.max").write_text(str(max_processes * 4))
            self.ok = True
        except OSError:
            self.ok = False
            self.remove()

    def enter(self) -> None:
        """Called in the child before exec: join every cgroup."""
        self.add(os.getpid())

    def add(self, pid: int) -> None:
        """Move the process ``pid`` (a pid of this process's namespace) into every cgroup."""
        for path in self.paths:
            (path / "cgroup.procs").write_text(str(pid))

    def _events(self, name: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for path in self.paths:
            f = path / name
            try:
                text = f.read_text()
            except OSError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if value.strip().isdigit():
                    out[key] = out.get(key, 0) + int(value)
        return out

    def oom_killed(self) -> bool:
        for name in ("memory.oom_control", "memory.events"):
            events = self._events(name)
            if events.get("oom_kill", 0) > 0 or events.get("oom", 0) > 0:
                return True
        for path in self.paths:
            failcnt = path / "memory.failcnt"
            try:
                if failcnt.exists() and failcnt.read_text().strip() not in ("", "0"):
                    return True
            except OSError:
                pass
        return False

    def hit_process_cap(self) -> bool:
        return self._events("pids.events").get("max", 0) > 0

    def members(self) -> list[int]:
        pids: list[int] = []
        for path in self.paths:
            try:
                pids += [int(x) for x in (path / "cgroup.procs").read_text().split()]
            except (OSError, ValueError):
                pass
        return pids

    def kill_all(self, timeout: float = 30.0) -> bool:
        """SIGKILL every member until the group is empty; False if some outlived ``timeout``."""
        return users.kill_until_gone(self.members, timeout)

    def remove(self) -> None:
        for path in self.paths:
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except OSError:
                    time.sleep(0.02)
        self.paths = []


def cgroup_usable(kind: str | None) -> bool:
    """Create a tiny cgroup and start a process in it; some containers allow the first but not the second."""
    if kind is None:
        return False
    group = Cgroup(kind, 256, 8)
    if not group.ok:
        return False
    try:
        subprocess.run(["true"], preexec_fn=group.enter, capture_output=True, check=True)
        return True
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        group.remove()
