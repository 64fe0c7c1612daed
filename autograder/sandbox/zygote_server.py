"""The zygote: imports the worker's libraries once, inside the sandbox, and forks a fresh worker per request.

Started by :mod:`.zygote` exactly like a worker (same unprivileged user, bubblewrap allowlist root,
namespaces, cgroup and rlimits).  It never runs student code and never runs a torch operation (so
no intra-op thread pool exists to be broken by ``fork``); it is not dumpable, so the workers it
forks (same user, same PID namespace) can neither ptrace it nor read its memory or descriptors.

Before each fork it removes whatever an earlier worker left in the namespaces that workers share
with it: the files of ``/tmp``, ``/var/tmp`` and ``/dev/shm`` and the System V IPC objects
(POSIX message queues cannot be made: ``RLIMIT_MSGQUEUE`` is 0).  It refuses to fork while an
earlier worker is alive, or when that clean-up did not leave the namespaces empty: the grader then
starts a cold worker instead.

Control channel (a ``SOCK_SEQPACKET`` socket named in ``AUTOGRADER_ZYGOTE_FD``): each request is
one JSON message ``{"op": "fork", "env": {...}, "cwd": ...}`` carrying four descriptors (the
worker's request read end, response write end, output write end, and a status pipe on which the
zygote writes the worker's wait status when it has reaped it).
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import stat
import sys
import time

SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm")
PR_SET_DUMPABLE = 4
IPC_RMID = 0
_SYSV = (("shm", "shmctl"), ("sem", "semctl"), ("msg", "msgctl"))


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _skeleton() -> set[str]:
    """What bubblewrap made under the shared folders (mount points of the scratch folders): kept."""
    found: set[str] = set()
    for top in SHARED_TMP:
        for folder, dirs, files in os.walk(top):
            found.update(os.path.join(folder, name) for name in dirs + files)
            dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(folder, d))]
    return found


def _wipe(folder: str, keep: set[str]) -> None:
    """Remove everything inside ``folder`` but ``keep`` (a worker may have left things unreadable: its own)."""
    if os.path.ismount(folder) and folder not in SHARED_TMP:
        return  # a scratch mount: its folders are the grader's to remove
    try:
        names = os.listdir(folder)
    except PermissionError:
        os.chmod(folder, 0o700)
        names = os.listdir(folder)
    for name in names:
        path = os.path.join(folder, name)
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            if path not in keep:
                os.chmod(path, 0o700)
            _wipe(path, keep)
            if path not in keep:
                os.rmdir(path)
        elif path not in keep:
            os.unlink(path)


def _sysv_ids(kind: str) -> list[int]:
    try:
        with open(f"/proc/sysvipc/{kind}") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return []
    column = 1  # key, then the id
    return [int(line.split()[column]) for line in lines if line.split()]


def _left(keep: set[str]) -> list[str]:
    left = []
    for top in SHARED_TMP:
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(folder, d))]
            left += [os.path.join(folder, n) for n in dirs + files if os.path.join(folder, n) not in keep]
    return left


def clean_namespaces(keep: set[str]) -> str:
    """Empty what workers share with the zygote (all but bubblewrap's ``keep``); '' when clean, else what is left."""
    libc = _libc()
    for folder in SHARED_TMP:
        if os.path.isdir(folder):
            try:
                _wipe(folder, keep)
            except OSError as exc:
                return f"{folder} could not be emptied ({exc})"
    for kind, call in _SYSV:
        for ident in _sysv_ids(kind):
            if kind == "sem":
                getattr(libc, call)(ident, 0, IPC_RMID)
            else:
                getattr(libc, call)(ident, IPC_RMID, None)
    left = _left(keep)[:3]
    left += [f"System V {kind}" for kind, _ in _SYSV if _sysv_ids(kind)]
    return ", ".join(left)


def _child(fds: list[int], env: dict, cwd: str, keep_closed: list[int]) -> None:
    """In the forked worker: its own session, output, environment and folder; then serve the grader."""
    start = time.perf_counter()
    req_r, resp_w, out_w, status_w = fds
    try:
        os.setsid()
        for fd in [status_w, *keep_closed]:
            os.close(fd)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.close(out_w)
        _libc().prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # as a fresh worker: its own /proc entries are its own
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        had_pwd = "PWD" in os.environ  # set by bubblewrap's --chdir, as for a cold worker
        os.environ.clear()
        os.environ.update(env)
        if had_pwd:
            os.environ["PWD"] = cwd
        os.environ["AUTOGRADER_FDS"] = f"{req_r},{resp_w}"
        if sys.path and sys.path[0] == os.getcwd():
            sys.path[0] = cwd   # as `python -m` started in the scratch folder would have it
        os.chdir(cwd)
        import random
        import tempfile

        import numpy

        from . import worker

        sys.argv[0] = worker.__file__
        tempfile.tempdir = None  # found again from TMPDIR
        random.seed()           # fresh entropy, as a fresh interpreter would have
        numpy.random.seed()

        code = worker.serve(start, forked=True)
    except BaseException:  # noqa: BLE001 - the worker's own end: report and leave
        import traceback

        traceback.print_exc()
        code = 70
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _import_pyplot() -> None:
    """matplotlib.pyplot, which every notebook of the course imports (~0.5 s in each worker, mostly its font list).

    The font list is built in a folder of the zygote's own, removed (like anything else in ``/tmp``)
    before a worker is forked: a worker keeps the list in memory, as it would have built it.
    """
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="zygote-matplotlib-")
    os.environ["MPLCONFIGDIR"] = folder
    try:
        import matplotlib.pyplot  # noqa: F401
    except ImportError:
        pass
    finally:
        os.environ.pop("MPLCONFIGDIR", None)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    ctl = socket.socket(fileno=int(os.environ.pop("AUTOGRADER_ZYGOTE_FD")))
    _libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    t0 = time.perf_counter()
    os.environ.setdefault("MPLBACKEND", "Agg")
    import numpy  # noqa: F401 - imported once here, for every worker

    # OpenBLAS (numpy's) starts an idle pool at import when threads > 1; it stops and restarts that
    # pool around fork itself.  Nothing else may start a thread here: checked again before each fork.
    threads = _thread_count()
    skeleton = _skeleton()
    import torch  # noqa: F401 - no operation runs here: no thread pool starts before fork

    try:
        import torchvision  # noqa: F401
    except ImportError:
        pass
    _import_pyplot()
    from IPython.core.interactiveshell import InteractiveShell  # noqa: F401

    from . import executor, worker  # noqa: F401
    from .protocol import ChannelClosed, read_message, write_message  # noqa: F401

    if _thread_count() != threads:
        ctl.send(json.dumps({"error": f"importing the libraries started threads ({_thread_count()})"}).encode())
        return 1
    ctl.send(json.dumps({"ready": True, "pid": os.getpid(), "uid": os.getuid(),
                         "import_seconds": time.perf_counter() - t0}).encode())
    children: dict[int, int] = {}  # pid -> status pipe
    while True:
        ready, _, _ = select.select([ctl], [], [], 0.05)
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            fd = children.pop(pid, None)
            if fd is not None:
                try:
                    os.write(fd, str(status).encode())
                except OSError:
                    pass
                os.close(fd)
        if not ready:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(ctl, 65536, 8)
        except OSError:
            return 0
        if not data:
            return 0  # the grader went away
        request = json.loads(data)
        if request.get("op") != "fork" or len(fds) != 4:
            for fd in fds:
                os.close(fd)
            ctl.send(json.dumps({"error": "a request the zygote does not know"}).encode())
            continue
        why = "an earlier worker is still running" if children else clean_namespaces(skeleton)
        # More threads than after the imports would be a thread of the zygote's own (unsafe to fork);
        # fewer is OpenBLAS, whose fork handler stops its idle pool at the first fork for good.
        if not why and _thread_count() > threads:
            why = "the zygote started threads of its own"
        if why:
            for fd in fds:
                os.close(fd)
            ctl.send(json.dumps({"error": why}).encode())
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(fds, request["env"], request["cwd"], [ctl.fileno(), *children.values()])
        for fd in fds[:3]:
            os.close(fd)
        children[pid] = fds[3]
        ctl.send(json.dumps({"pid": pid}).encode())


def _thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


if __name__ == "__main__":
    sys.exit(main())
