"""One worker process: started inside the sandbox, talked to over two pipes, killed for good.

:class:`Worker` applies the layers :mod:`.probe` found (the sandbox user, bubblewrap's allowlist
root from :mod:`.bwrap`, a cgroup from :mod:`.cgroups`, rlimits), reads the worker's hello under a
deadline, forwards requests with request ids, and on a timeout or a broken channel SIGKILLs the
process group and everything in its cgroup (and every process of the sandbox user).
"""

from __future__ import annotations

import atexit
import os
import pwd
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import bwrap, users, zygote
from .cgroups import Cgroup
from .probe import bwrap_path, layers_of, machine_protections, python_trees, strong_isolation, weaker_than
from .protocol import MAX_REPLY, ChannelClosed, ChannelTimeout, ProtocolError, read_message, write_message

OUTPUT_KEEP = 64 * 1024
#: Set (to 1) by an instructor who accepts grading with weaker isolation on a machine without the sandbox.
ALLOW_WEAK_ENV = "CNN_ALLOW_WEAK_SANDBOX"


@dataclass
class SandboxConfig:
    memory_mb: int = 6144
    threads: int = 1
    max_processes: int = 64
    file_size_mb: int = 256
    address_space_gb: int = 64   # a backstop only: torch maps a lot of virtual memory
    readonly: list[Path] = field(default_factory=list)  # shown read-only (besides the system and Python)
    hidden: list[Path] = field(default_factory=list)    # inside a shown tree, covered again
    extra_env: dict[str, str] = field(default_factory=dict)
    readable: list[Path] = field(default_factory=list)  # what the sandbox user must be able to read (data)
    allow_weak: bool = field(default_factory=lambda: os.environ.get(ALLOW_WEAK_ENV, "") not in ("", "0"))


class WorkerError(Exception):
    pass


class WorkerTimeout(WorkerError):
    pass


class WorkerDied(WorkerError):
    pass


class SandboxUnavailable(WorkerError):
    """A worker cannot be started with the protections required: the grader's problem, never the student's."""


class Worker:
    """One running worker: send requests, read answers under a deadline, kill it for good.

    ``require``: the layers an earlier worker of the same submission had.  Once student code has
    run, a replacement with fewer layers is never started (:class:`SandboxUnavailable` instead).
    """

    def __init__(self, config: SandboxConfig, scratch: Path, require: dict | None = None):
        self.config = config
        self.scratch = scratch
        self.protections: dict = {}
        self._output = bytearray()
        self._output_dropped = 0
        self.cgroup: Cgroup | None = None
        self.user: pwd.struct_passwd | None = None
        self._forked = False
        self._rid = 0
        self._start(require)

    # -- start -------------------------------------------------------------------------
    def _start(self, require: dict | None) -> None:
        cfg = self.config
        probe = machine_protections(tuple(str(p) for p in cfg.readable))
        user = pwd.getpwnam(probe["user"]) if probe["user"] else None
        use_bwrap = probe["bwrap"] and (user is not None or os.geteuid() != 0)
        strong, why = strong_isolation(tuple(str(p) for p in cfg.readable))
        if not strong and not cfg.allow_weak and require is None:
            raise SandboxUnavailable(f"the sandbox is not available on this machine ({why}); install bubblewrap "
                                     f"(and run as root or as an unprivileged user), or accept weaker isolation "
                                     f"explicitly with --allow-weak-sandbox ({ALLOW_WEAK_ENV}=1)")
        try:
            self._launch(probe, user, use_bwrap, require)
        except WorkerDied as exc:
            if require is not None or not cfg.allow_weak or not (user or use_bwrap):
                raise SandboxUnavailable(f"the sandboxed worker could not start: {exc}") from None
            # Nothing of the student's has run yet and the instructor accepted weaker isolation.
            failed = f"the worker could not start under {'bubblewrap' if use_bwrap else 'the sandbox user'} ({exc})"
            print(f"autograder: warning: {failed}; grading goes on with weaker isolation (--allow-weak-sandbox)",
                  file=sys.stderr)
            self._output = bytearray()
            self._launch(probe, None, False, None)
            self.protections["machine"] = failed[:500]
        if probe["problems"]:
            self.protections["machine"] = "; ".join([*probe["problems"], self.protections.get("machine", "")]).strip("; ")
        if not strong or not self.protections["bubblewrap"]:
            self.protections["weak_isolation_accepted"] = True

    def _launch(self, probe: dict, user: pwd.struct_passwd | None, use_bwrap: bool, require: dict | None) -> None:
        cfg = self.config
        self.cgroup = Cgroup(probe["cgroup"], cfg.memory_mb, cfg.max_processes) if probe["cgroup"] else None
        if self.cgroup is not None and not self.cgroup.ok:
            self.cgroup = None
        self.protections = {
            "process": "separate process, own process group, killed with SIGKILL on timeout",
            "dedicated_user": user.pw_name if user else None,
            "bubblewrap": bool(use_bwrap),
            "network": "none (loopback only)" if use_bwrap else "not blocked",
            "hidden_paths": "allowlist root: only the system, Python, the worker's package and the data are visible"
            if use_bwrap else "not hidden (no bubblewrap)",
            "user_namespaces": "disabled inside the sandbox" if use_bwrap else "not restricted",
            "memory_cap_mb": cfg.memory_mb if self.cgroup else None,
            "process_cap": cfg.max_processes if (self.cgroup or user) else None,
            "address_space_backstop_gb": cfg.address_space_gb,
            "threads": cfg.threads,
            "start": "a fresh interpreter" + ("" if use_bwrap and user else
                                              " (warm workers need bubblewrap and a sandbox user)"),
        }
        if require is not None:
            missing = weaker_than(layers_of(self.protections), require)
            if missing:
                if self.cgroup is not None:
                    self.cgroup.remove()
                raise SandboxUnavailable("a replacement worker would lack " + ", ".join(missing) +
                                         " that the first worker had; it was not started")
        if user is not None:
            # The slot's uid belongs to this grading process alone: anything left of an earlier worker
            # (a fork bomb's children still being torn down) must be gone before the next one starts.
            zygote.settle(user.pw_uid)  # a zygote started early is spared only once it is ready
            if not users.reap_user_processes(user.pw_uid):
                raise SandboxUnavailable(f"processes of the sandbox user {user.pw_name} could not be stopped")
            os.chown(self.scratch, user.pw_uid, user.pw_gid)
        self.user = user
        self._forked = False
        if use_bwrap and user is not None and self._start_warm(probe, user):
            return

        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        env = self._env(req_r, resp_w)
        cmd = [sys.executable, "-m", "autograder.sandbox.worker"]
        if use_bwrap:
            cmd = self._bwrap_args() + cmd
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     cwd=self.scratch, env=env, pass_fds=(req_r, resp_w),
                                     preexec_fn=sandbox_preexec(cfg, self.cgroup, user), close_fds=True)
        os.close(req_r)
        os.close(resp_w)
        self.fd_w, self.fd_r = req_w, resp_r
        self.bwrap = use_bwrap
        self._reader = threading.Thread(target=self._drain_output, daemon=True)
        self._reader.start()
        if not use_bwrap and os.geteuid() == 0 and probe["bwrap"] and user is None:
            self.protections["note"] = "bubblewrap not used: no unprivileged sandbox user (bwrap as root is escapable)"
        try:
            hello, _ = read_message(self.fd_r, time.monotonic() + 120, max_total=1024)
        except (ChannelClosed, ChannelTimeout, ProtocolError) as exc:
            self.kill()
            if self.cgroup is not None:
                self.cgroup.remove()
            raise WorkerDied(f"the sandboxed worker did not start ({type(exc).__name__}); "
                             f"its output:\n{self.output()[-2000:]}") from None
        self.hello = hello

    def _env(self, req_r: int, resp_w: int) -> dict:
        return worker_env(self.config, self.scratch, req_r, resp_w)

    def _bwrap_args(self) -> list[str]:
        return sandbox_bwrap_args(self.config, self.scratch)

    # -- warm start: fork from the zygote (see .zygote) ------------------------------------
    def _start_warm(self, probe: dict, user: pwd.struct_passwd) -> bool:
        """Fork this worker from the zygote; False (and why, in ``protections["start"]``) to start it cold."""
        cold = "a fresh interpreter under bubblewrap"
        if not zygote.warm_enabled():
            self.protections["start"] = f"{cold} (warm workers are off: {zygote.WARM_ENV}=0)"
            return False
        parent = scratch_parent()
        if self.scratch.parent != parent:
            self.protections["start"] = f"{cold} (the scratch folder is not the zygote's)"
            return False
        key, start = _zygote_plan(self.config, probe, user)
        found, why = zygote.zygote_for(key, start)
        if found is None:
            self.protections["start"] = f"{cold} (the warm zygote is not available: {why})"
            return False
        self.started = time.monotonic()
        try:
            proc = found.fork({k: v for k, v in self._env(-1, -1).items() if k != "AUTOGRADER_FDS"}, self.scratch)
        except OSError as exc:
            self.protections["start"] = f"{cold} (the zygote could not fork: {exc})"
            return False
        self.proc, self._forked, self.bwrap = proc, True, True
        self.fd_w, self.fd_r = proc.fds
        self._reader = threading.Thread(target=self._drain_output, daemon=True)
        self._reader.start()
        try:
            hello, _ = read_message(self.fd_r, time.monotonic() + 60, max_total=1024)
            if self.cgroup is not None:
                # Its own memory and process caps, before the grader sends it anything (no student code yet).
                self.cgroup.add(proc.pid)
                if proc.pid not in self.cgroup.members():
                    raise OSError("the forked worker is not in its cgroup")
        except (ChannelClosed, ChannelTimeout, ProtocolError, OSError) as exc:
            self.kill(keep_cgroup=True)
            zygote.forget(key, f"a forked worker failed to start ({type(exc).__name__})")
            self._output = bytearray()
            self._forked = False
            self.protections["start"] = f"{cold} (a forked worker failed to start: {type(exc).__name__})"
            return False
        self.hello = hello
        self.protections["start"] = ("forked from a clean zygote (same user, namespaces, allowlist root and "
                                     "rlimits; its own cgroup)" if self.cgroup is not None else
                                     "forked from a clean zygote (same user, namespaces, allowlist root and rlimits)")
        return True

    def _drain_output(self) -> None:
        stream = self.proc.stdout
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                return
            room = OUTPUT_KEEP - len(self._output)
            if room > 0:
                self._output += chunk[:room]
            self._output_dropped += max(0, len(chunk) - max(room, 0))

    def output(self) -> str:
        text = self._output.decode("utf-8", errors="replace")
        if self._output_dropped:
            text += f"\n[... {self._output_dropped} more bytes of output not kept]"
        return text

    # -- requests ------------------------------------------------------------------------
    def request(self, header: dict, blobs: list[bytes], timeout: float,
                max_reply: int = MAX_REPLY) -> tuple[dict, list[bytes]]:
        if self.proc.poll() is not None:
            raise WorkerDied(self.death_reason())
        self._rid += 1
        try:
            write_message(self.fd_w, {**header, "rid": self._rid}, blobs)
            reply, reply_blobs = read_message(self.fd_r, time.monotonic() + timeout, max_total=max_reply)
            # A reply the student's code wrote into the pipe itself (it can reach it through /proc/self/fd)
            # does not carry the number of this request: the worker is out of step and is not trusted any more.
            if reply.get("rid") != self._rid:
                raise ProtocolError("a reply that does not answer this request")
            return reply, reply_blobs
        except ChannelTimeout:
            self.kill()
            raise WorkerTimeout(f"did not finish within {timeout:g} s and was stopped") from None
        except (ChannelClosed, ProtocolError) as exc:
            reason = self.death_reason(exc)  # read the exit status before killing the rest
            self.kill()
            raise WorkerDied(reason) from None

    def death_reason(self, exc: Exception | None = None) -> str:
        """The observed cause, from the cgroup's events and the exit status."""
        if isinstance(exc, ProtocolError):
            return f"sent something the grader cannot read ({str(exc)[:200]}) and was stopped"
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        if self.cgroup is not None and self.cgroup.oom_killed():
            return f"ran out of memory (the limit is {self.config.memory_mb} MB) and was stopped"
        if self.cgroup is not None and self.cgroup.hit_process_cap():
            return (f"started too many processes or threads (the limit is {self.config.max_processes}) "
                    f"and was stopped")
        if code is None:
            return "stopped answering"
        if self.bwrap and not self._forked and code > 128:  # bubblewrap reports a child killed by signal N as 128 + N
            code = -(code - 128)
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            if name == "SIGKILL":
                return "was killed by SIGKILL (possibly the memory limit)"
            if name == "SIGSEGV":
                return "crashed with a segmentation fault (SIGSEGV)"
            return f"was killed by signal {name}"
        return f"exited (exit code {code}); a notebook must not call exit(), sys.exit() or os._exit()"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, keep_cgroup: bool = False) -> None:
        """SIGKILL the whole process group and everything in the cgroup, and wait until all are gone.

        The emptied cgroup is removed too, unless ``keep_cgroup`` (a cold start follows in it).
        """
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.cgroup is not None:
            self.cgroup.kill_all()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self.user is not None:
            users.reap_user_processes(self.user.pw_uid)
        if self._forked:
            self.proc.close()
        for fd in (self.fd_w, self.fd_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.fd_w = self.fd_r = -1
        if self.cgroup is not None and not keep_cgroup and not self.cgroup.members():
            self.cgroup.remove()  # a dead worker is dropped without close(): its cgroups must not pile up

    def close(self) -> None:
        if self.alive():
            try:
                write_message(self.fd_w, {"op": "shutdown"})
                read_message(self.fd_r, time.monotonic() + 5, max_total=1024)
            except Exception:  # noqa: BLE001 - it is going away anyway
                pass
        self.kill()
        if self.cgroup is not None:
            self.cgroup.remove()


_SCRATCH_PARENT: Path | None = None



def worker_env(cfg: SandboxConfig, scratch: Path, req_r: int, resp_w: int) -> dict:
    """The environment a worker (or the zygote) starts with: nothing of the grader's but what it needs."""
    keep = ("PATH", "LANG", "LC_ALL", "TORCH_HOME", "CNN_COURSE_DATA", "PYTHONPATH", "VIRTUAL_ENV")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.setdefault("TORCH_HOME", str(Path.home() / ".cache" / "torch"))
    env.update({
        "HOME": str(scratch), "TMPDIR": str(scratch), "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(scratch / ".matplotlib"), "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(cfg.threads), "MKL_NUM_THREADS": str(cfg.threads),
        "AUTOGRADER_THREADS": str(cfg.threads), "AUTOGRADER_FDS": f"{req_r},{resp_w}",
        "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore",
    })
    env.update(cfg.extra_env)
    return env


def sandbox_bwrap_args(cfg: SandboxConfig, scratch: Path) -> list[str]:
    """bubblewrap's arguments: the allowlist root of ``cfg`` with ``scratch`` as the only writable folder."""
    return bwrap.bwrap_args(bwrap_path(), readonly=[*python_trees(), *(Path(p) for p in cfg.readonly)],
                            hidden=list(cfg.hidden), scratch=scratch)


def _start_zygote(cfg: SandboxConfig, probe: dict, user: pwd.struct_passwd, args: list[str],
                  env: dict) -> zygote.Zygote:
    """Start the zygote's process under bubblewrap as ``user`` (its imports go on: see :meth:`Zygote.ready`)."""
    group = Cgroup(probe["cgroup"], cfg.memory_mb, cfg.max_processes) if probe["cgroup"] else None
    if group is not None and not group.ok:
        raise OSError("no cgroup for the zygote")
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = {**env, "HOME": str(scratch_parent()), "TMPDIR": "/tmp", "AUTOGRADER_ZYGOTE_FD": str(child.fileno())}
    proc = None
    try:
        proc = subprocess.Popen([*args, sys.executable, "-m", "autograder.sandbox.zygote_server"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                cwd=scratch_parent(), env=env, pass_fds=(child.fileno(),),
                                preexec_fn=sandbox_preexec(cfg, group, user), close_fds=True)
        child.close()
        return zygote.Zygote(proc, parent, user.pw_uid, scratch_parent(), group)
    except (OSError, ValueError) as exc:
        child.close()
        parent.close()
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.wait()
        if group is not None:
            group.kill_all()
            group.remove()
        raise OSError(str(exc)) from None


def _zygote_plan(cfg: SandboxConfig, probe: dict, user: pwd.struct_passwd):
    """(key, start): the zygote a worker of ``cfg`` forks from, named by every limit and setting it runs under."""
    args = sandbox_bwrap_args(cfg, scratch_parent())
    env = worker_env(cfg, scratch_parent(), -1, -1)
    for name in ("AUTOGRADER_FDS", "HOME", "TMPDIR", "MPLCONFIGDIR"):
        env.pop(name, None)
    key = (user.pw_uid, probe["cgroup"], cfg.memory_mb, cfg.threads, cfg.max_processes, cfg.file_size_mb,
           cfg.address_space_gb, tuple(args), tuple(sorted(env.items())))
    return key, lambda: _start_zygote(cfg, probe, user, args, env)


def start_early(cfg: SandboxConfig) -> str:
    """Start the zygote that the first worker of ``cfg`` will fork from, and return without waiting for it.

    A grading process calls this before it imports torch and loads the reference, so that the zygote's
    imports (as long again) run on the other core meanwhile.  The zygote is the one a worker would start
    (same key, same user, namespaces, cgroup and rlimits), and the worker waits for it before reaping.
    Returns why no zygote was started ('' when one runs): the worker's own start then reports it.
    """
    try:
        if not zygote.warm_enabled():
            return "warm workers are off"
        probe = machine_protections(tuple(str(p) for p in cfg.readable))
        user = pwd.getpwnam(probe["user"]) if probe["user"] else None
        if not probe["bwrap"] or user is None:
            return "warm workers need bubblewrap and a sandbox user"
        key, start = _zygote_plan(cfg, probe, user)
        if zygote.running(key):
            return ""
        zygote.settle(user.pw_uid)
        if not users.reap_user_processes(user.pw_uid):   # as before any worker: nothing of an earlier one left
            return f"processes of the sandbox user {user.pw_name} could not be stopped"
        return zygote.zygote_for(key, start, wait=False)[1]
    except (OSError, KeyError, ValueError) as exc:  # the worker's own start says what is wrong, in its words
        return f"{type(exc).__name__}: {exc}"


def scratch_parent() -> Path:
    """This process's folder of scratch folders (mode 0711: the sandbox user can enter, never list it)."""
    global _SCRATCH_PARENT
    if _SCRATCH_PARENT is None or not _SCRATCH_PARENT.is_dir():
        _SCRATCH_PARENT = Path(tempfile.mkdtemp(prefix="autograder-scratch-"))
        _SCRATCH_PARENT.chmod(0o711)
        atexit.register(shutil.rmtree, _SCRATCH_PARENT, ignore_errors=True)
    return _SCRATCH_PARENT


def make_scratch(prefix: str = "autograder-") -> Path:
    """A new 0700 scratch folder with an unguessable name, in :func:`scratch_parent`."""
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{secrets.token_hex(12)}-", dir=scratch_parent()))
    path.chmod(0o700)
    return path


def sandbox_preexec(cfg: SandboxConfig, cgroup: Cgroup | None, user: pwd.struct_passwd | None):
    """What runs in the child before exec (of a cold worker or the zygote); as root until the drop at the end."""

    def preexec():
        os.setsid()
        if cgroup is not None:
            cgroup.enter()
        gb = 2**30
        resource.setrlimit(resource.RLIMIT_AS, (cfg.address_space_gb * gb, cfg.address_space_gb * gb))
        resource.setrlimit(resource.RLIMIT_FSIZE, (cfg.file_size_mb * 2**20, cfg.file_size_mb * 2**20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_MSGQUEUE, (0, 0))  # no POSIX message queue outlives a worker
        if user is not None:
            # RLIMIT_NPROC counts threads per real uid and is ignored for root: set it after the drop's uid.
            resource.setrlimit(resource.RLIMIT_NPROC, (cfg.max_processes * 8, cfg.max_processes * 8))
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return preexec
