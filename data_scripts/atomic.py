"""Writing a file so that its final name only ever holds a complete, checked file.

The new file is written under a temporary name in the destination folder (os.replace is only
atomic within one file system, so not in /tmp), and moved onto the final name only when the
writing block finishes without an exception; otherwise the temporary file is removed. An
interrupted or failed fetch therefore leaves neither a half file nor a stray temporary one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".part"


@contextmanager
def atomic_target(dest: Path) -> Iterator[Path]:
    """Yield an empty temporary path beside *dest*; on success move it onto *dest*, on failure delete it.

    The block may raise (for instance after a checksum mismatch) to discard what it wrote; folders
    created for *dest* are then removed again if still empty, so a failed fetch leaves nothing behind.
    """
    created = _make_folders(dest.parent)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=TEMP_SUFFIX, dir=dest.parent)
    except BaseException:
        _remove_empty(created)
        raise
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp creates the file as 0600; data files should be readable like any other.
        os.chmod(tmp, 0o644)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        _remove_empty(created)
        raise
    _fsync_folder(dest.parent)


def _make_folders(folder: Path) -> list[Path]:
    """mkdir -p *folder*; return the folders this call created, deepest first."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """After a failure, remove the folders we created if nothing else was put in them meanwhile."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX only: other systems cannot open a folder)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
