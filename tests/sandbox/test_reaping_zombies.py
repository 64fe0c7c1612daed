"""Reaping counts a zombie as gone, but never a process whose leader exited while its other threads run."""

import subprocess
import sys
import time

from autograder.sandbox.users import _dead

LEADER_EXITS = """
import ctypes, threading, time
threading.Thread(target=time.sleep, args=(30,)).start()
ctypes.CDLL(None).pthread_exit(None)   # the main thread (the leader) ends; the other thread runs on
"""


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_zombie_is_dead():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        _wait_for(lambda: _state(proc.pid) == "Z")  # exited, not yet collected by its parent (us)
        assert _dead(proc.pid)
    finally:
        proc.wait()


def test_a_process_whose_leader_exited_but_whose_threads_run_is_alive():
    proc = subprocess.Popen([sys.executable, "-c", LEADER_EXITS])
    try:
        _wait_for(lambda: _state(proc.pid) == "Z")  # the leader shows as a zombie ...
        assert not _dead(proc.pid)                 # ... but its process is not gone
    finally:
        proc.kill()
        proc.wait()


def test_a_running_process_is_alive():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not _dead(proc.pid)
    finally:
        proc.kill()
        proc.wait()
