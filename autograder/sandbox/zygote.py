"""Warm workers: one zygote per grading process (and set of limits) forks a fresh worker per start.

The zygote (:mod:`.zygote_server`) is started exactly as a cold worker is, by the same code in
:mod:`.worker_process`: the sandbox user, bubblewrap's allowlist root (showing the process's scratch
parent, whose only entries are the 0700 scratch folders of the workers, one at a time), the
namespaces, a cgroup of its own and the rlimits.  It has imported torch, torchvision, numpy, pyplot,
IPython and the worker side, and never runs student code.  Each worker it forks:

* inherits the zygote's rlimits (per process, the same values as a cold worker's) and its
  no_new_privs and empty capability sets;
* is moved by the grader into a cgroup of its own, with the same memory and process caps as a
  cold worker, *before* the grader sends it anything (so before any student code runs);
* starts from the clean zygote: nothing of an earlier worker's memory; the earlier worker and all
  its processes are gone before the fork (the zygote refuses while one lives, and the grader
  reaps every process of the sandbox user but the zygote's own), its scratch folder is deleted,
  and the zygote empties the shared tmpfs folders and System V IPC before forking;
* is killed like a cold one: SIGKILL to its process group, to everything in its cgroup and to
  every process of the sandbox user except the zygote's.

Any failure (the zygote cannot start, is busy, dies, or a fork fails) falls back to a cold worker,
and the worker's protections say which start it had (``start``).
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from . import users

#: Set to 0 to start every worker cold (a fresh interpreter).
WARM_ENV = "CNN_WARM_WORKERS"
ZYGOTE_START_TIMEOUT = 180.0
FORK_TIMEOUT = 10.0


def warm_enabled() -> bool:
    return os.environ.get(WARM_ENV, "1") not in ("0", "", "no", "false")


def _status(pid: int) -> dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (read from /proc): its children, theirs, and so on."""
    parent: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                parent[int(entry.name)] = int(_status(int(entry.name))["PPid"])
            except (OSError, KeyError, ValueError):
                continue
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, pp in parent.items() if pp == pid]
        found += kids
        frontier += kids
    return found


def _ns_pid(pid: int) -> int | None:
    try:
        return int(_status(pid)["NSpid"].split()[-1])
    except (OSError, KeyError, ValueError, IndexError):
        return None


def _host_pid(ns_pid: int, parent: int) -> int | None:
    """The pid (as this process sees it) of ``parent``'s child whose pid in its own namespace is ``ns_pid``."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = _status(int(entry.name))
            if int(status["PPid"]) == parent and int(status["NSpid"].split()[-1]) == ns_pid:
                return int(entry.name)
        except (OSError, KeyError, ValueError, IndexError):
            continue
    return None


class ForkedProcess:
    """A worker forked by the zygote, with the part of :class:`subprocess.Popen` the Worker uses."""

    def __init__(self, pid: int, out_r: int, status_r: int):
        self.pid = pid
        self.stdout = open(out_r, "rb")
        self._status_r = status_r
        self._status = b""
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and self._status_r >= 0:
            ready, _, _ = select.select([self._status_r], [], [], 0)
            if ready:
                self._read_status()
        return self.returncode

    def _read_status(self) -> None:
        chunk = os.read(self._status_r, 64)
        if chunk:
            self._status += chunk
            return
        os.close(self._status_r)
        self._status_r = -1
        try:
            status = int(self._status)
            self.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        except ValueError:  # the zygote died first: its PID namespace, this worker included, is gone
            self.returncode = -signal.SIGKILL

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(f"forked worker {self.pid}", timeout)
            select.select([self._status_r], [], [], 0.2 if left is None else min(left, 0.2))
        return self.returncode

    def close(self) -> None:
        if self._status_r >= 0:
            os.close(self._status_r)
            self._status_r = -1


class Zygote:
    """A running zygote; ``fork`` gives a :class:`ForkedProcess`, or raises OSError (start a cold one then)."""

    def __init__(self, proc: subprocess.Popen, ctl: socket.socket, uid: int | None, scratch_parent: Path,
                 cgroup=None):
        self.proc = proc
        self.ctl = ctl
        self.cgroup = cgroup
        self.owner = os.getpid()  # a process forked from this one must start its own zygote
        self.uid = uid
        self.scratch_parent = scratch_parent
        self.pid: int | None = None        # the zygote's pid here, once it said it is ready
        self.hello: dict | None = None
        self._output = bytearray()
        self._kept: list[int] = []
        threading.Thread(target=self._drain, daemon=True).start()

    @property
    def pending(self) -> bool:
        """Started, but its imports may still be running (nothing of it is spared by reaping yet)."""
        return self.hello is None

    def ready(self) -> None:
        """Wait until the zygote has imported its libraries (OSError if it never does); then spare it from reaping.

        Starting and waiting are apart so that a grading process can start the zygote first and import
        torch and load the reference of its own while the zygote imports (:func:`start_early`).
        """
        if self.hello is not None:
            return
        hello = self._receive(ZYGOTE_START_TIMEOUT)
        if "error" in hello or not hello.get("ready"):
            raise OSError(f"the zygote did not start: {hello.get('error', hello)}")
        ns_pid = int(hello["pid"])
        tree = descendants(self.proc.pid)
        self.pid = next((p for p in tree if _ns_pid(p) == ns_pid), None)
        if self.pid is None:
            raise OSError("the zygote's process was not found")
        # bubblewrap's own processes and the zygote run as the sandbox user: reaping must spare them.
        for pid in [self.proc.pid, *tree]:
            started = _start_time(pid)
            if started is not None:
                users.keep_process(pid, started)
                self._kept.append(pid)
        self.hello = hello

    def _drain(self) -> None:
        while True:
            chunk = self.proc.stdout.read1(65536)
            if not chunk:
                return
            self._output = (self._output + chunk)[-16384:]

    def output(self) -> str:
        return self._output.decode(errors="replace")

    def _receive(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.ctl], [], [], timeout)
        if not ready:
            raise OSError("the zygote did not answer in time")
        data = self.ctl.recv(65536)
        if not data:
            raise OSError(f"the zygote exited: {self.output()[-500:]}")
        return json.loads(data)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def fork(self, env: dict, cwd: Path) -> ForkedProcess:
        if not self.alive():
            raise OSError("the zygote is not running")
        self.ready()
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        out_r, out_w = os.pipe()
        status_r, status_w = os.pipe()
        ours, theirs = [req_w, resp_r, out_r, status_r], [req_r, resp_w, out_w, status_w]
        try:
            socket.send_fds(self.ctl, [json.dumps({"op": "fork", "env": env, "cwd": str(cwd)}).encode()], theirs)
            answer = self._receive(FORK_TIMEOUT)
        except (OSError, ValueError) as exc:
            for fd in ours:
                os.close(fd)
            self.stop()
            raise OSError(f"the zygote failed: {exc}") from None
        finally:
            for fd in theirs:
                os.close(fd)
        if "error" in answer:
            for fd in ours:
                os.close(fd)
            raise OSError(answer["error"])
        pid = _host_pid(int(answer["pid"]), self.pid)
        if pid is None:
            for fd in ours:
                os.close(fd)
            raise OSError("the forked worker's process was not found")
        process = ForkedProcess(pid, out_r, status_r)
        process.fds = (req_w, resp_r)
        return process

    def stop(self) -> None:
        try:
            self.ctl.close()
        except OSError:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.cgroup is not None:
            self.cgroup.kill_all()
        for pid in self._kept:
            users.release_process(pid)
        self._kept = []
        if self.uid is not None:
            users.reap_user_processes(self.uid)
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None


_ZYGOTES: dict[tuple, Zygote | str] = {}   # per set of limits: the zygote, or why there is none
_STARTS: dict[tuple, int] = {}
#: A zygote that died (a worker can kill it: same user) is started again once; after that, cold workers.
MAX_STARTS = 2
#: Zygotes alive at once in one process (one per set of limits; a grading run normally needs one).
MAX_ZYGOTES = 2


def _ready(key: tuple, zygote: Zygote) -> tuple[Zygote | None, str]:
    """``zygote`` once it is ready; if it never gets there, it is stopped and not started again (cold workers)."""
    try:
        zygote.ready()
    except OSError as exc:
        zygote.stop()
        _ZYGOTES[key] = str(exc)[:300]
        _STARTS[key] = MAX_STARTS
        return None, _ZYGOTES[key]
    return zygote, ""


def zygote_for(key: tuple, start, wait: bool = True) -> tuple[Zygote | None, str]:
    """The running zygote for ``key`` (started by ``start()`` when there is none), or None and why not.

    ``wait=False`` returns as soon as the zygote's process runs (its imports may still be going on):
    :func:`settle` or the first fork waits for it.
    """
    if any(isinstance(z, Zygote) and z.owner != os.getpid() for z in _ZYGOTES.values()):
        _ZYGOTES.clear()  # inherited through fork: the parent's zygotes are not this process's to use
        _STARTS.clear()
    found = _ZYGOTES.get(key)
    if isinstance(found, Zygote):
        if found.alive():
            _ZYGOTES[key] = _ZYGOTES.pop(key)  # the most recently used last
            return _ready(key, found) if wait else (found, "")
        found.stop()
        _ZYGOTES[key] = found = "the zygote died"
    if _STARTS.get(key, 0) >= MAX_STARTS or (isinstance(found, str) and key not in _STARTS):
        return None, found or "the zygote could not start"
    live = [k for k, z in _ZYGOTES.items() if isinstance(z, Zygote)]
    while len(live) >= MAX_ZYGOTES:  # each holds torch's memory: the least recently used one goes
        oldest = live.pop(0)
        _ZYGOTES.pop(oldest).stop()
        _STARTS.pop(oldest, None)
    _STARTS[key] = _STARTS.get(key, 0) + 1
    try:
        zygote = start()
    except OSError as exc:
        _ZYGOTES[key] = str(exc)[:300]
        _STARTS[key] = MAX_STARTS  # a start that failed is not tried again in this process
        return None, _ZYGOTES[key]
    _ZYGOTES[key] = zygote
    return _ready(key, zygote) if wait else (zygote, "")


def running(key: tuple) -> bool:
    """Whether this process has a zygote for ``key`` that runs (ready or still starting)."""
    found = _ZYGOTES.get(key)
    return isinstance(found, Zygote) and found.owner == os.getpid() and found.alive()


def settle(uid: int) -> None:
    """Wait for this process's zygotes of sandbox user ``uid`` that are still starting.

    Called before the user's processes are reaped: a zygote still importing is not spared yet.
    """
    for key, found in list(_ZYGOTES.items()):
        if isinstance(found, Zygote) and found.owner == os.getpid() and found.uid == uid and found.pending:
            if found.alive():
                _ready(key, found)
            else:
                found.stop()
                _ZYGOTES[key] = "the zygote died while it started"


def forget(key: tuple, why: str) -> None:
    """Stop using the zygote of ``key`` (it misbehaved): cold workers from now on."""
    found = _ZYGOTES.get(key)
    if isinstance(found, Zygote):
        found.stop()
    _ZYGOTES[key] = why[:300]
    _STARTS[key] = MAX_STARTS


@atexit.register
def stop_all() -> None:
    for key, found in list(_ZYGOTES.items()):
        if isinstance(found, Zygote) and found.owner == os.getpid():
            found.stop()
        _ZYGOTES.pop(key, None)
