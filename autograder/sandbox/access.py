"""What the sandbox user may read: ACL grants to the sandbox group, nothing else of the machine changes.

A checkout or environment made under a strict umask (077) is unreadable to other users; the
sandbox users (:mod:`.users`) share one group, and only that group is named in the grants.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .users import GROUP


def grant_access(trees: list[Path], package_root: Path, packages: tuple[str, ...],
                 never: tuple[Path, ...] = ()) -> None:
    """Let the sandbox group traverse to, and read, what the worker needs, with ACLs (nothing else changes).

    A checkout or environment made under a strict umask (077) is unreadable to other users; the
    ACL names only the sandbox group, whose users have no other rights on this machine.  In the
    repository itself only the packages the worker imports are granted, and never the folders in
    ``never`` (the checks: the worker does not import them).
    """
    if not shutil.which("setfacl"):
        return
    who = f"g:{GROUP}"
    parents = {parent for tree in trees for parent in tree.parents}
    for parent in sorted(parents):
        if parent.is_dir() and not (parent.stat().st_mode & 0o001):
            subprocess.run(["setfacl", "-m", f"{who}:x", str(parent)], capture_output=True)
    for tree in trees:
        if tree == package_root:
            subprocess.run(["setfacl", "-m", f"{who}:x", str(tree)], capture_output=True)
            for name in packages:
                if (tree / name).exists():
                    subprocess.run(["setfacl", "-R", "-m", f"{who}:rX", str(tree / name)], capture_output=True)
            continue
        subprocess.run(["setfacl", "-R", "-m", f"{who}:rX", str(tree)], capture_output=True)
    for folder in never:
        if folder.exists():
            subprocess.run(["setfacl", "-R", "-x", who, str(folder)], capture_output=True)
