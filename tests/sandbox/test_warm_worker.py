"""A worker forked from the zygote has exactly the protections of a cold one, and nothing of the worker before it.

Both kinds are started by the grader's own :class:`Worker` with the same configuration; each reports
from inside what it sees (user, namespaces, mounts, rlimits, capabilities, no_new_privs, seccomp,
network, what is visible), and the grader reads its cgroup's caps from outside.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest

from autograder.course import REPO_ROOT
from autograder.sandbox import users, zygote
from autograder.sandbox.probe import layers_of, machine_protections, strong_isolation
from autograder.sandbox.worker_process import SandboxConfig, Worker, make_scratch

pytestmark = pytest.mark.slow

STRONG, WHY = strong_isolation()
needs_zygote = pytest.mark.skipif(not (STRONG and machine_protections()["user"]),
                                  reason=f"warm workers need bubblewrap and a sandbox user: {WHY}")

OBSERVE = r'''
import ctypes, json, os, resource, socket, sys, tempfile
cwd = os.getcwd()
scratch_parent = os.path.dirname(cwd)
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
mounts = []
for line in open("/proc/self/mountinfo"):
    f = line.split()
    point = "<scratch>" if f[4].startswith(scratch_parent) else f[4]
    mounts.append((point, f[f.index("-") + 1], f[5].split(",")[0]))
libc = ctypes.CDLL(None, use_errno=True)
obs = {
    "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups()],
    "uid_map": open("/proc/self/uid_map").read().split(),
    "status": {k: status.get(k, "").strip() for k in ("NoNewPrivs", "Seccomp", "CapInh", "CapPrm", "CapEff",
                                                       "CapBnd", "CapAmb")},
    "rlimits": {n: resource.getrlimit(getattr(resource, n)) for n in dir(resource) if n.startswith("RLIMIT_")},
    "mounts": sorted(mounts),
    "root": sorted(os.listdir("/")),
    "tmp": sorted(os.listdir("/tmp")) + sorted(os.listdir("/dev/shm")),
    "new_userns": libc.unshare(0x10000000) == 0,
    "interfaces": sorted(n for _, n in socket.if_nameindex()),
    "dumpable": libc.prctl(3, 0, 0, 0, 0),
    "env": sorted(os.environ),
    "home_is_scratch": os.environ["HOME"] == cwd and tempfile.gettempdir() == cwd and sys.path[0] == cwd,
    "checks_hidden": not os.listdir(CHECKS) if os.path.isdir(CHECKS) else True,
    "solutions": os.path.exists(SOLUTIONS),
    "sysv": [open("/proc/sysvipc/" + k).read().splitlines()[1:] for k in ("shm", "sem", "msg")],
    "threads": __import__("torch").get_num_threads(),
    "write_usr": os.access("/usr", os.W_OK),
}
print("OBS" + json.dumps(obs))
'''.replace("CHECKS", repr(str(REPO_ROOT / "autograder" / "checks"))).replace(
    "SOLUTIONS", repr(str(REPO_ROOT / "solutions")))


def _config() -> SandboxConfig:
    return SandboxConfig(memory_mb=2048, threads=1, max_processes=32,
                         readonly=[REPO_ROOT / "autograder", REPO_ROOT / "data_scripts"],
                         hidden=[REPO_ROOT / "autograder" / "checks"])


def _run(worker: Worker, source: str) -> str:
    reply, _ = worker.request({"op": "run_cell", "source": source, "label": "probe"}, [], 120)
    assert reply["ok"], reply
    return reply["output"]


def _observe(worker: Worker) -> dict:
    line = next(x for x in _run(worker, OBSERVE).splitlines() if x.startswith("OBS"))
    return json.loads(line[3:])


def _cgroup_caps(pid: int) -> dict:
    """The memory and process caps of the cgroups ``pid`` is in, read by the grader from outside."""
    caps = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name, file in (("memory", "memory.limit_in_bytes"), ("pids", "pids.max")):
            if name in controllers.split(","):
                caps[name] = ((Path("/sys/fs/cgroup") / name / path.lstrip("/") / file).read_text().strip(), path)
        if controllers == "" and path != "/":
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
            caps["memory"] = ((base / "memory.max").read_text().strip(), path)
            caps["pids"] = ((base / "pids.max").read_text().strip(), path)
    return caps


def _start(monkeypatch, warm: bool) -> tuple[Worker, float]:
    monkeypatch.setenv(zygote.WARM_ENV, "1" if warm else "0")
    start = time.monotonic()
    worker = Worker(_config(), make_scratch())
    return worker, time.monotonic() - start


@needs_zygote
def test_a_forked_worker_has_the_protections_of_a_cold_one(monkeypatch):
    cold, cold_seconds = _start(monkeypatch, warm=False)
    try:
        assert cold.protections["start"].startswith("a fresh interpreter")
        cold_seen, cold_caps = _observe(cold), _cgroup_caps(cold.proc.pid)
    finally:
        cold.close()
    first, _ = _start(monkeypatch, warm=True)   # starts the zygote if this process has none yet
    first.close()
    warm, warm_seconds = _start(monkeypatch, warm=True)
    try:
        assert warm.protections["start"].startswith("forked from a clean zygote"), warm.protections
        warm_seen, warm_caps = _observe(warm), _cgroup_caps(warm.proc.pid)
        assert warm.hello["forked"] is True
    finally:
        warm.close()
    print(f"worker ready: cold {cold_seconds:.2f} s, warm (after the first) {warm_seconds:.2f} s")

    def without_start(p):
        return {k: v for k, v in p.items() if k != "start"}

    assert without_start(warm.protections) == without_start(cold.protections)
    assert layers_of(warm.protections) == layers_of(cold.protections)
    assert all(layers_of(warm.protections).values()) or not machine_protections()["cgroup"]
    assert set(warm_seen["env"]) ^ set(cold_seen["env"]) == set()
    assert warm_seen == cold_seen
    assert cold_seen["ids"][0] != 0 and cold_seen["status"]["NoNewPrivs"] == "1"
    assert int(cold_seen["status"]["CapEff"], 16) == 0 and cold_seen["new_userns"] is False
    assert cold_seen["interfaces"] == ["lo"] and cold_seen["checks_hidden"] and not cold_seen["solutions"]
    assert cold_seen["home_is_scratch"] and not cold_seen["write_usr"]
    if machine_protections()["cgroup"]:
        config = _config()
        expected = {"memory": str(config.memory_mb * 2**20), "pids": str(config.max_processes * 4)}
        assert {k: v[0] for k, v in warm_caps.items()} == {k: v[0] for k, v in cold_caps.items()} == expected
        zygote_caps = _cgroup_caps(next(z for z in zygote._ZYGOTES.values() if isinstance(z, zygote.Zygote)).pid)
        assert warm_caps["memory"][1] != zygote_caps["memory"][1]  # its own group, not the zygote's
    assert warm_seconds < cold_seconds and warm_seconds < 1.5


@needs_zygote
def test_a_forked_worker_sees_nothing_of_the_one_before_and_dies_for_good(monkeypatch):
    monkeypatch.setenv(zygote.WARM_ENV, "1")
    first = Worker(_config(), make_scratch())
    assert first.protections["start"].startswith("forked"), first.protections
    uid = first.user.pw_uid
    _run(first, "import ctypes, os, signal, subprocess\n"
                "open('/tmp/left', 'w').write('x'); open('/dev/shm/left', 'w').write('x')\n"
                "os.makedirs('/var/tmp/d/e'); os.chmod('/var/tmp/d', 0)\n"
                "libc = ctypes.CDLL(None, use_errno=True)\n"
                "assert libc.shmget(4242, 4096, 0o1600) >= 0 and libc.semget(4243, 1, 0o1600) >= 0\n"
                "q = libc.mq_open(b'/left', 0o100 | 2, 0o600, None)\n"
                "assert q == -1, 'a POSIX message queue could be made'\n"
                "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
                "os.fork() or (signal.pause())\n")
    old_scratch = first.scratch
    groups = list(first.cgroup.paths) if first.cgroup is not None else []
    first.kill()  # what the grader does when a worker dies: it is dropped without close()
    assert groups == [] or not any(g.exists() for g in groups), "the dead worker's cgroups were left behind"
    first.close()
    shutil.rmtree(old_scratch)  # as SandboxNamespace does before it starts the next worker
    assert users.processes_of(uid) == [], "a process of the old worker survived"
    second = Worker(_config(), make_scratch())
    try:
        assert second.protections["start"].startswith("forked"), second.protections
        seen = json.loads(_run(second, (
            "import json, os\n"
            "procs = [p for p in os.listdir('/proc') if p.isdigit()]\n"
            "cmds = [open(f'/proc/{p}/cmdline', 'rb').read() for p in procs]\n"
            "def holds_mount(path):\n"
            "    if os.path.ismount(path):\n"
            "        return True\n"
            "    return any(os.path.ismount(os.path.join(f, d)) for f, ds, _ in os.walk(path) for d in ds)\n"
            "def denied(path):\n"
            "    try:\n"
            "        open(path, 'rb').read(1)\n"
            "        return False\n"
            "    except OSError:\n"
            "        return True\n"
            "print('SEEN' + json.dumps({\n"
            "    'tmp': os.listdir('/tmp') + os.listdir('/dev/shm') + os.listdir('/var/tmp'),\n"
            "    'skeleton': [e for t in ('/tmp', '/dev/shm', '/var/tmp') for e in os.listdir(t)\n"
            "                 if holds_mount(os.path.join(t, e))],\n"
            "    'sysv': [open('/proc/sysvipc/' + k).read().splitlines()[1:] for k in ('shm', 'sem', 'msg')],\n"
            "    'sleepers': sum(b'sleep' in c for c in cmds),\n"
            f"    'old_scratch': os.path.exists({str(old_scratch)!r}),\n"
            "    'parent_listable': os.access(os.path.dirname(os.getcwd()), os.R_OK),\n"
            "    'zygote_memory_denied': denied(f'/proc/{os.getppid()}/mem'),\n"
            "    'zygote_environ_denied': denied(f'/proc/{os.getppid()}/environ'),\n"
            "}))\n")).split("SEEN", 1)[1].splitlines()[0])
    finally:
        second.close()
    # Only the scratch parent and bubblewrap's mount points (e.g. a repository or venv under /tmp) remain.
    assert os.path.basename(str(old_scratch.parent)) in seen["tmp"], seen
    leftovers = set(seen["tmp"]) - {os.path.basename(str(old_scratch.parent))} - set(seen["skeleton"])
    assert not leftovers and not {"left", "d"} & set(seen["tmp"]), seen
    assert seen["sysv"] == [[], [], []] and seen["sleepers"] == 0 and not seen["old_scratch"]
    assert seen["zygote_memory_denied"] and seen["zygote_environ_denied"] and not seen["parent_listable"]


@needs_zygote
def test_every_worker_of_a_multithreaded_config_is_forked(monkeypatch):
    """With threads > 1, numpy's OpenBLAS starts an idle pool in the zygote and stops it at the first fork
    (its fork handler): the zygote must keep forking after that, not fall back to cold starts."""
    monkeypatch.setenv(zygote.WARM_ENV, "1")
    config = replace(_config(), threads=2)
    for i in range(3):
        worker = Worker(config, make_scratch())
        try:
            assert worker.protections["start"].startswith("forked"), (i, worker.protections["start"])
            assert _run(worker, "print(1 + 1)").strip() == "2"
        finally:
            scratch = worker.scratch
            worker.close()
            shutil.rmtree(scratch, ignore_errors=True)


@needs_zygote
def test_a_zygote_started_early_is_the_one_the_first_worker_forks_from(monkeypatch):
    """A grading process starts the zygote before it imports torch (``start_early``); the first worker waits for
    that zygote instead of reaping it while it imports, and forks from it: no second zygote is started."""
    from autograder.sandbox.worker_process import start_early

    monkeypatch.setenv(zygote.WARM_ENV, "1")
    config = replace(_config(), memory_mb=1536)     # limits of their own: a zygote no other test started
    assert start_early(config) == ""
    early = list(zygote._ZYGOTES.values())[-1]
    assert isinstance(early, zygote.Zygote) and early.pending   # its imports take seconds: not waited for
    assert start_early(config) == "" and list(zygote._ZYGOTES.values())[-1] is early   # asked again: the same
    worker = Worker(config, make_scratch())
    try:
        assert worker.protections["start"].startswith("forked from a clean zygote"), worker.protections
        assert not early.pending and early.alive()
        assert sum(z is early for z in zygote._ZYGOTES.values()) == 1
        key = next(k for k, z in zygote._ZYGOTES.items() if z is early)
        assert zygote._STARTS[key] == 1
        out = _run(worker, "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.savefig('plot.png')\n"
                           "import os\nprint(os.path.getsize('plot.png') > 0)")
        assert out.strip().endswith("True")   # pyplot, imported by the zygote, works in the worker
    finally:
        scratch = worker.scratch
        worker.close()
        shutil.rmtree(scratch, ignore_errors=True)
