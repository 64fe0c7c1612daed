"""bubblewrap's command line for one worker: an allowlist root, built by a pure function.

Nothing of the machine is visible unless it is listed: the system's programs and libraries
(``/usr`` and its merged-``/usr`` links), a few files of ``/etc`` that the dynamic linker and
Python read, ``/sys`` (CPU topology for the thread pools), the interpreter and its environment,
the grader's worker package, the data.  So a course folder, other submissions or a gradebook
anywhere on the machine (``/srv/course``, ``/root``, ``/home``) are simply not there; folders
inside a listed tree that must stay secret (the checks) are covered again with an empty tmpfs.
"""

from __future__ import annotations

from pathlib import Path

#: Top-level system folders shown read-only (links such as /bin -> usr/bin are recreated as links).
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
#: What of /etc the worker needs: the dynamic linker's cache, names of users and hosts, time zone, fonts.
ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf", "localtime",
               "hosts", "host.conf", "fonts", "alternatives", "mime.types", "ssl/certs")


def system_args(root: Path = Path("/")) -> list[str]:
    """Binds for the system part of the allowlist (read from ``root``, normally ``/``)."""
    args: list[str] = []
    for name in SYSTEM_DIRS:
        path = root / name
        if path.is_symlink():
            args += ["--symlink", str(path.readlink()), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    for name in ETC_ENTRIES:
        path = root / "etc" / name
        if path.exists():
            args += ["--ro-bind", str(path), f"/etc/{name}"]
    if (root / "sys").is_dir():
        args += ["--ro-bind", str(root / "sys"), "/sys"]
    return args


def _inside(path: Path, trees: list[Path]) -> bool:
    return any(path == t or path.is_relative_to(t) for t in trees)


def bwrap_args(bwrap: str, *, readonly: list[Path], hidden: list[Path], scratch: Path,
               system: list[str] | None = None) -> list[str]:
    """The whole bwrap prefix: namespaces, the allowlist root, the hidden folders, the scratch folder.

    ``readonly``: trees shown read-only (the environment, the worker's package, the data).
    ``hidden``: folders inside those trees covered again by an empty tmpfs (files: by /dev/null).
    ``scratch``: the only writable folder (also the working directory).
    """
    args = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL"]
    args += system_args() if system is None else system
    args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/var/tmp", "--tmpfs", "/dev/shm"]
    shown = sorted({Path(p) for p in readonly}, key=lambda p: (len(p.parts), str(p)))
    for path in shown:
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    for path in sorted({Path(p) for p in hidden}, key=lambda p: (len(p.parts), str(p))):
        if path.exists() and _inside(path, shown):
            args += ["--tmpfs", str(path)] if path.is_dir() else ["--ro-bind", "/dev/null", str(path)]
    args += ["--bind", str(scratch), str(scratch), "--chdir", str(scratch)]
    args += ["--remount-ro", "/"]  # the new root (a tmpfs holding the mount points) is read-only too
    return args
