"""The unprivileged users that sandboxed workers run as, one per concurrent grading process.

bubblewrap started as root is escapable, so a root grader drops to a dedicated user first.
Budgets that the kernel counts per user (``RLIMIT_NPROC``, ``user.max_user_namespaces``) would be
shared by every sandbox if all ran as one user: a fork bomb in one ``grade-class`` job could then
starve a classmate's worker.  So each grading process takes a *slot* (an exclusive ``flock``),
and the slot's user ``cnn-sandbox[-N]`` is used by that process only.  All slot users share the
group ``cnn-sandbox``, which is what the ACL grants name, so a new slot needs no new grants.

Because a slot's user belongs to one grading process, "no process of that uid is left" is an
exact test that an old worker (and every child it forked) is gone before a new one starts.
"""

from __future__ import annotations

import fcntl
import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

BASE_USER = os.environ.get("AUTOGRADER_SANDBOX_USER", "cnn-sandbox")
GROUP = os.environ.get("AUTOGRADER_SANDBOX_GROUP", "cnn-sandbox")
SLOTS = int(os.environ.get("AUTOGRADER_SANDBOX_SLOTS", "16"))

_slot: tuple[pwd.struct_passwd, int] | None = None   # (user, the open lock file) of this process


def _lock_dir() -> Path:
    for base in (Path("/run"), Path(tempfile.gettempdir())):
        folder = base / "cnn-autograder-slots"
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            if folder.is_dir() and not folder.is_symlink() and folder.stat().st_uid == os.geteuid():
                return folder
        except OSError:
            continue
    raise OSError("no folder for the sandbox slot locks")


def _ensure_group() -> int | None:
    try:
        return grp.getgrnam(GROUP).gr_gid
    except KeyError:
        pass
    if shutil.which("groupadd"):
        subprocess.run(["groupadd", "--system", GROUP], capture_output=True)
    try:
        return grp.getgrnam(GROUP).gr_gid
    except KeyError:
        return None


def _ensure_user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    if not shutil.which("useradd") or _ensure_group() is None:
        return None
    subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
                    "/usr/sbin/nologin", "--gid", GROUP, name], capture_output=True)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def slot_user() -> pwd.struct_passwd | None:
    """This process's sandbox user (created if missing; only as root), or None when there can be none."""
    global _slot
    if _slot is not None:
        return _slot[0]
    if os.geteuid() != 0:
        return None
    try:
        folder = _lock_dir()
    except OSError:
        return None
    order = list(range(SLOTS))
    start = os.getpid() % SLOTS  # spread concurrent processes over the slots
    order = order[start:] + order[:start]
    fd = -1
    chosen = None
    for blocking in (False, True):
        for slot in order:
            fd = os.open(folder / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                continue
            chosen = slot
            break
        if chosen is not None:
            break
    name = BASE_USER if chosen == 0 else f"{BASE_USER}-{chosen}"
    user = _ensure_user(name)
    if user is None:
        os.close(fd)
        return None
    _slot = (user, fd)
    # A grader that died before (SIGKILL) may have left processes of this slot behind.
    reap_user_processes(user.pw_uid, timeout=10)
    return user


def group_name() -> str:
    return GROUP


_kept: dict[int, int] = {}   # pid -> start time: the zygote and its bubblewrap, spared by reaping


def keep_process(pid: int, start_time: int) -> None:
    """Spare ``pid`` from :func:`reap_user_processes` while it is this very process (same start time)."""
    _kept[pid] = start_time


def release_process(pid: int) -> None:
    _kept.pop(pid, None)


def _is_kept(pid: int) -> bool:
    if pid not in _kept:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19]) == _kept[pid]
    except (OSError, ValueError, IndexError):
        return False


def processes_of(uid: int) -> list[int]:
    """Living pids whose real uid is ``uid`` (read from /proc; a slot's uid belongs to this process alone).

    The zygote's processes (:mod:`.zygote`), registered with :func:`keep_process`, are left out.
    """
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        if _kept and _is_kept(int(entry.name)):
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"Uid:"):
                        if int(line.split()[1]) == uid and not _dead(int(entry.name)):
                            pids.append(int(entry.name))
                        break
        except (OSError, ValueError, IndexError):
            continue
    return pids


def _dead(pid: int) -> bool:
    """Whether every thread of ``pid`` has exited (a zombie waiting for its parent to collect it).

    A zombie holds no memory, no files and runs nothing, so it cannot reach the next worker; waiting
    for it would only wait for its parent: bubblewrap's processes are re-parented to the machine's
    init, which may collect them seconds later (1.2-2 s measured here).  A zombie *leader* whose
    other threads still run is alive: every thread is looked at.
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        for tid in tasks:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X"):
                    return False
    except (OSError, IndexError):
        return False  # unreadable: count it as alive (it is killed and looked at again)
    return bool(tasks)


def kill_until_gone(members, timeout: float) -> bool:
    """SIGKILL the pids ``members()`` lists until it lists none (a dying 3 GB process takes a while).

    False if some outlived ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        pids = members()
        if not pids:
            return True
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def reap_user_processes(uid: int, timeout: float = 30.0) -> bool:
    """SIGKILL every process of ``uid`` until none is left; False if some outlived ``timeout``."""
    if uid == 0 or uid == os.geteuid():
        return True  # never: only ever a sandbox user's processes
    return kill_until_gone(lambda: processes_of(uid), timeout)
