"""Start the worker inside the strongest isolation this machine offers, and say which.

Layers, each used when available (the grader reports which were in force):

* a dedicated unprivileged user (``cnn-sandbox``) when the grader runs as root: bubblewrap
  started as root is escapable, so privileges are dropped *before* bwrap runs;
* bubblewrap: no network (only loopback), a read-only view of the system, the course folder
  hidden except the Python environment, the (check-free) autograder package and the data,
  a private /tmp and a writable scratch folder; ``--die-with-parent`` and a PID namespace so
  nothing outlives the worker;
* cgroups (v1 or v2, when writable): a memory cap and a process-count cap;
* rlimits always: a generous address-space backstop, file size, core dumps, process count;
* a fixed number of threads, and a wall-clock limit enforced from outside by SIGKILL of
  the whole process group (a cell that ignores SIGINT/SIGALRM still dies).
"""

from __future__ import annotations

import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .protocol import ChannelClosed, ChannelTimeout, ProtocolError, read_message, write_message

SANDBOX_USER = os.environ.get("AUTOGRADER_SANDBOX_USER", "cnn-sandbox")
OUTPUT_KEEP = 64 * 1024


@dataclass
class SandboxConfig:
    memory_mb: int = 6144
    threads: int = 1
    max_processes: int = 64
    file_size_mb: int = 256
    address_space_gb: int = 64   # a backstop only: torch maps a lot of virtual memory
    use_bwrap: bool = True
    use_user: bool = True
    course_root: Path | None = None
    hide_roots: list[Path] = field(default_factory=list)  # folders replaced by an empty tmpfs
    visible: list[Path] = field(default_factory=list)   # inside course_root, shown read-only
    hidden: list[Path] = field(default_factory=list)    # inside a visible path, hidden again
    extra_env: dict[str, str] = field(default_factory=dict)
    readable: list[Path] = field(default_factory=list)  # what the sandbox user must be able to read (data)


class WorkerError(Exception):
    pass


class WorkerTimeout(WorkerError):
    pass


class WorkerDied(WorkerError):
    pass


# -- what the machine offers ------------------------------------------------------------

def _bwrap() -> str | None:
    return shutil.which("bwrap")


def _sandbox_user() -> pwd.struct_passwd | None:
    """The dedicated user (created when we are root and it is missing)."""
    try:
        return pwd.getpwnam(SANDBOX_USER)
    except KeyError:
        pass
    if os.geteuid() != 0 or not shutil.which("useradd"):
        return None
    subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                    "--shell", "/usr/sbin/nologin", SANDBOX_USER], capture_output=True)
    try:
        return pwd.getpwnam(SANDBOX_USER)
    except KeyError:
        return None


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


def _needed_trees(readable: tuple[str, ...]) -> list[Path]:
    """Everything the worker reads: the interpreter, the environment, the grader's package, the data."""
    package = Path(__file__).resolve().parents[1]
    trees = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), package,
             Path(sys.executable).resolve().parent}
    trees.update(Path(p).resolve() for p in readable)
    for entry in sys.path:  # an editable install puts the repository on sys.path
        if entry and Path(entry).is_dir() and (Path(entry) / "autograder").is_dir():
            trees.add(Path(entry).resolve())
    return sorted(t for t in trees if t.exists())


def _grant_access(user: pwd.struct_passwd, readable: tuple[str, ...]) -> None:
    """Let the sandbox user traverse to, and read, what the worker needs, with ACLs (nothing else changes).

    A checkout or environment made under a strict umask (077) is unreadable to other users; the
    ACL names only the sandbox user, which has no other rights on this machine.
    """
    if not shutil.which("setfacl"):
        return
    trees = _needed_trees(readable)
    parents = {parent for tree in trees for parent in tree.parents}
    for parent in sorted(parents):
        if parent.is_dir() and not (parent.stat().st_mode & 0o001):
            subprocess.run(["setfacl", "-m", f"u:{user.pw_name}:x", str(parent)], capture_output=True)
    package_root = Path(__file__).resolve().parents[2]
    for tree in trees:
        if tree == package_root:  # the repository itself: only the packages the worker imports
            subprocess.run(["setfacl", "-m", f"u:{user.pw_name}:x", str(tree)], capture_output=True)
            for name in ("autograder", "data_scripts"):
                if (tree / name).exists():
                    subprocess.run(["setfacl", "-R", "-m", f"u:{user.pw_name}:rX", str(tree / name)],
                                   capture_output=True)
            continue
        subprocess.run(["setfacl", "-R", "-m", f"u:{user.pw_name}:rX", str(tree)], capture_output=True)


def _cgroup_usable(kind: str | None) -> bool:
    """Create a tiny cgroup and start a process in it; some containers allow the first but not the second."""
    if kind is None:
        return False
    group = _Cgroup(kind, 256, 8)
    if not group.ok:
        return False
    try:
        subprocess.run(["true"], preexec_fn=group.enter, capture_output=True, check=True)
        return True
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        group.remove()


_PROBED: dict[tuple[str, ...], dict] = {}


def machine_protections(readable: tuple[str, ...] = ()) -> dict:
    """What isolation can be used here (probed once per process and set of data folders)."""
    readable = tuple(sorted(str(p) for p in readable))
    if readable in _PROBED:
        return _PROBED[readable]
    info: dict = {"root": os.geteuid() == 0, "bwrap": bool(_bwrap()), "user": None, "problems": []}
    kind = _cgroup_kind()
    info["cgroup"] = kind if _cgroup_usable(kind) else None
    if kind and not info["cgroup"]:
        info["problems"].append(f"cgroup {kind} is present but a process cannot be placed in a new group")
    if info["root"]:
        user = _sandbox_user()
        if user is not None:
            why = _worker_can_start_as(user, readable)
            if why:
                _grant_access(user, readable)
                why = _worker_can_start_as(user, readable)
            if why:
                info["problems"].append(f"the sandbox user {user.pw_name} cannot start the worker: {why}")
            else:
                info["user"] = user.pw_name
        else:
            info["problems"].append(f"no sandbox user {SANDBOX_USER} (useradd failed or is missing)")
    if info["bwrap"]:
        uid = pwd.getpwnam(info["user"]).pw_uid if info["user"] else None
        probe = subprocess.run([_bwrap(), "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
                                "--proc", "/proc", "--dev", "/dev", "true"], capture_output=True,
                               user=uid, group=pwd.getpwnam(info["user"]).pw_gid if uid is not None else None,
                               extra_groups=[] if uid is not None else None)
        info["bwrap"] = probe.returncode == 0
        info["bwrap_error"] = probe.stderr.decode(errors="replace").strip()[:200] if probe.returncode else ""
        if probe.returncode:
            info["problems"].append(f"bubblewrap cannot start here: {info['bwrap_error']}")
    _PROBED[readable] = info
    return info


def strong_isolation(readable: tuple[str, ...] = ()) -> tuple[bool, str]:
    """Whether workers start under bubblewrap (as an unprivileged user), and if not, why not."""
    info = machine_protections(readable)
    strong = info["bwrap"] and (info["user"] is not None or not info["root"])
    if strong:
        return True, ""
    reasons = info["problems"] or ([] if _bwrap() else ["bubblewrap (bwrap) is not installed"])
    return False, "; ".join(reasons) or "no unprivileged user to run bubblewrap as"


# -- cgroups ------------------------------------------------------------------------------

_CG1 = Path("/sys/fs/cgroup")


def _cgroup_kind() -> str | None:
    if os.geteuid() != 0:
        return None
    if (_CG1 / "memory").is_dir() and os.access(_CG1 / "memory", os.W_OK) and (_CG1 / "pids").is_dir():
        return "v1"
    if (_CG1 / "cgroup.controllers").exists() and os.access(_CG1, os.W_OK):
        return "v2"
    return None


class _Cgroup:
    """A memory- and process-capped cgroup for one worker (removed afterwards)."""

    def __init__(self, kind: str, memory_mb: int, max_processes: int):
        name = f"cnn-autograder-{os.getpid()}-{time.monotonic_ns()}"
        self.kind = kind
        self.paths: list[Path] = []
        try:
            if kind == "v1":
                mem, pids = _CG1 / "memory" / name, _CG1 / "pids" / name
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
                path = _CG1 / name
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
        pid = str(os.getpid())
        for path in self.paths:
            (path / "cgroup.procs").write_text(pid)

    def oom_killed(self) -> bool:
        for path in self.paths:
            for name in ("memory.oom_control", "memory.events"):
                f = path / name
                if f.exists():
                    text = f.read_text()
                    for line in text.splitlines():
                        key, _, value = line.partition(" ")
                        if key in ("oom_kill", "oom") and value.strip().isdigit() and int(value) > 0:
                            return True
            failcnt = path / "memory.failcnt"
            if failcnt.exists() and failcnt.read_text().strip() not in ("", "0"):
                return True
        return False

    def kill_all(self) -> None:
        for path in self.paths:
            procs = path / "cgroup.procs"
            if procs.exists():
                for line in procs.read_text().split():
                    try:
                        os.kill(int(line), signal.SIGKILL)
                    except (ProcessLookupError, ValueError, PermissionError):
                        pass

    def remove(self) -> None:
        for path in self.paths:
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except OSError:
                    time.sleep(0.02)
        self.paths = []


# -- the worker process --------------------------------------------------------------------

class Worker:
    """One running worker: send requests, read answers under a deadline, kill it for good."""

    def __init__(self, config: SandboxConfig, scratch: Path):
        self.config = config
        self.scratch = scratch
        self.protections: dict = {}
        self._output = bytearray()
        self._output_dropped = 0
        self._start()

    # -- start -------------------------------------------------------------------------
    def _start(self) -> None:
        cfg = self.config
        probe = machine_protections(tuple(str(p) for p in cfg.readable))
        user = pwd.getpwnam(probe["user"]) if (cfg.use_user and probe["user"]) else None
        use_bwrap = cfg.use_bwrap and probe["bwrap"] and (user is not None or os.geteuid() != 0)
        failed = ""
        try:
            self._launch(probe, user, use_bwrap)
        except WorkerDied as exc:
            # Nothing of the student's has run yet: a worker that dies at start is the machine's problem.
            # Say so once, and go on with the layers that work rather than losing every grade.
            if not (user or use_bwrap) or self._start_timed_out:
                raise
            self._reader.join(timeout=5)
            if self.cgroup is not None:
                self.cgroup.remove()
            failed = (f"the worker could not start under {'bubblewrap' if use_bwrap else 'the sandbox user'}"
                      f" ({exc})")
            for info in _PROBED.values():  # later workers in this process start without those layers
                info["user"] = None
                info["bwrap"] = False
                info["problems"].append(failed[:500])
            print(f"autograder: warning: {failed}; grading goes on with weaker isolation", file=sys.stderr)
            self._output = bytearray()
            self._launch(probe, None, False)
        if probe["problems"]:
            self.protections["machine"] = "; ".join(probe["problems"])

    def _launch(self, probe: dict, user: pwd.struct_passwd | None, use_bwrap: bool) -> None:
        cfg = self.config
        self.cgroup = _Cgroup(probe["cgroup"], cfg.memory_mb, cfg.max_processes) if probe["cgroup"] else None
        if self.cgroup is not None and not self.cgroup.ok:
            self.cgroup = None
        if user is not None:
            os.chown(self.scratch, user.pw_uid, user.pw_gid)

        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        env = self._env(req_r, resp_w)
        cmd = [sys.executable, "-m", "autograder.sandbox.worker"]
        if use_bwrap:
            cmd = self._bwrap_args() + cmd
        cgroup = self.cgroup

        def preexec():  # runs in the child, before exec; as root until the privilege drop at the end
            os.setsid()
            if cgroup is not None:
                cgroup.enter()
            gb = 2**30
            resource.setrlimit(resource.RLIMIT_AS, (cfg.address_space_gb * gb, cfg.address_space_gb * gb))
            resource.setrlimit(resource.RLIMIT_FSIZE, (cfg.file_size_mb * 2**20, cfg.file_size_mb * 2**20))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if user is not None:
                # RLIMIT_NPROC counts threads per real uid and is ignored for root: set it after the drop's uid.
                resource.setrlimit(resource.RLIMIT_NPROC, (cfg.max_processes * 8, cfg.max_processes * 8))
                os.setgroups([])
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     cwd=self.scratch, env=env, pass_fds=(req_r, resp_w), preexec_fn=preexec,
                                     close_fds=True)
        os.close(req_r)
        os.close(resp_w)
        self.fd_w, self.fd_r = req_w, resp_r
        self._reader = threading.Thread(target=self._drain_output, daemon=True)
        self._reader.start()
        self.protections = {
            "process": "separate process, own process group, killed with SIGKILL on timeout",
            "dedicated_user": user.pw_name if user else None,
            "bubblewrap": bool(use_bwrap),
            "network": "none (loopback only)" if use_bwrap else "not blocked",
            "hidden_paths": "course folder hidden except the environment, data and the grader's sandbox code"
            if use_bwrap else "not hidden (no bubblewrap)",
            "memory_cap_mb": cfg.memory_mb if self.cgroup else None,
            "process_cap": cfg.max_processes if (self.cgroup or user) else None,
            "address_space_backstop_gb": cfg.address_space_gb,
            "threads": cfg.threads,
        }
        if not use_bwrap and os.geteuid() == 0 and probe["bwrap"] and user is None:
            self.protections["note"] = "bubblewrap not used: no unprivileged sandbox user (bwrap as root is escapable)"
        try:
            hello, _ = read_message(self.fd_r, time.monotonic() + 120)
        except (ChannelClosed, ChannelTimeout, ProtocolError) as exc:
            self._start_timed_out = isinstance(exc, ChannelTimeout)
            self.kill()
            raise WorkerDied(f"the sandboxed worker did not start ({type(exc).__name__}); "
                             f"its output:\n{self.output()[-2000:]}") from None
        self.hello = hello

    def _env(self, req_r: int, resp_w: int) -> dict:
        cfg = self.config
        keep = ("PATH", "LANG", "LC_ALL", "TORCH_HOME", "CNN_COURSE_DATA", "PYTHONPATH", "VIRTUAL_ENV")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env.setdefault("TORCH_HOME", str(Path.home() / ".cache" / "torch"))
        env.update({
            "HOME": str(self.scratch), "TMPDIR": str(self.scratch), "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(self.scratch / ".matplotlib"), "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(cfg.threads), "MKL_NUM_THREADS": str(cfg.threads),
            "AUTOGRADER_THREADS": str(cfg.threads), "AUTOGRADER_FDS": f"{req_r},{resp_w}",
            "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore",
        })
        env.update(cfg.extra_env)
        return env

    def _bwrap_args(self) -> list[str]:
        cfg = self.config
        args = [_bwrap(), "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                "--tmpfs", "/var/tmp", "--tmpfs", "/dev/shm"]
        roots = list(cfg.hide_roots) + ([cfg.course_root] if cfg.course_root else [])
        if roots:
            for root in roots:
                args += ["--tmpfs", str(root)]
            for path in cfg.visible:
                if path.exists():
                    args += ["--ro-bind", str(path), str(path)]
            for path in cfg.hidden:
                if path.exists():
                    args += ["--tmpfs", str(path)] if path.is_dir() else ["--ro-bind", "/dev/null", str(path)]
        args += ["--bind", str(self.scratch), str(self.scratch), "--chdir", str(self.scratch)]
        return args

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
    def request(self, header: dict, blobs: list[bytes], timeout: float) -> tuple[dict, list[bytes]]:
        if self.proc.poll() is not None:
            raise WorkerDied(self.death_reason())
        try:
            write_message(self.fd_w, header, blobs)
            return read_message(self.fd_r, time.monotonic() + timeout)
        except ChannelTimeout:
            self.kill()
            raise WorkerTimeout(f"did not finish within {timeout:g} s and was stopped") from None
        except (ChannelClosed, ProtocolError) as exc:
            reason = self.death_reason(exc)  # read the exit status before killing the rest
            self.kill()
            raise WorkerDied(reason) from None

    def death_reason(self, exc: Exception | None = None) -> str:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        if self.cgroup is not None and self.cgroup.oom_killed():
            return f"ran out of memory (the limit is {self.config.memory_mb} MB) and was stopped"
        if isinstance(exc, ProtocolError):
            return f"sent something the grader cannot read ({exc}) and was stopped"
        if code is None:
            return "stopped answering"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            return f"was killed by signal {name}" + (" (possibly the memory limit)" if name == "SIGKILL" else "")
        return f"exited (exit code {code}); a notebook must not call exit(), sys.exit() or os._exit()"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (and everything in the cgroup), then reap."""
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
        for fd in (self.fd_w, self.fd_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.fd_w = self.fd_r = -1

    def close(self) -> None:
        if self.alive():
            try:
                write_message(self.fd_w, {"op": "shutdown"})
                read_message(self.fd_r, time.monotonic() + 5)
            except Exception:  # noqa: BLE001 - it is going away anyway
                pass
        self.kill()
        if self.cgroup is not None:
            self.cgroup.remove()


def make_scratch(prefix: str = "autograder-") -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o700)
    return path
