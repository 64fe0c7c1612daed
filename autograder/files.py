"""Writing a file so that its final name only ever holds a complete file (the standard library only).

The new content is written under a temporary name in the destination folder (``os.replace`` is
only atomic within one file system, so not in /tmp), flushed to disk, and moved onto the final
name only when the writing finished without an exception; otherwise the temporary file is
removed.  Readers (Gradescope, a resumed ``grade-class``, a second grader sharing a cache) see
the old file or the new one, never half of one, and an interrupted write leaves no stray file.

Every writer of the package and of ``data_scripts`` goes through here: :func:`write_atomic` for
content in memory, :func:`atomic_target` for content streamed to a path (a download).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".part"


@contextmanager
def atomic_target(dest: Path | str, mode: int = 0o644) -> Iterator[Path]:
    """Yield an empty temporary path beside *dest*; on success move it onto *dest*, on failure delete it.

    The block may raise (for instance after a checksum mismatch) to discard what it wrote; folders
    created for *dest* are then removed again if still empty, so a failed write leaves nothing behind.
    """
    dest = Path(dest)
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
        os.chmod(tmp, mode)  # mkstemp creates the file as 0600: make it readable like any other
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        _remove_empty(created)
        raise
    _fsync_folder(dest.parent)


def write_atomic(path: Path | str, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8, or bytes) to ``path``: readers see the old or the new content, never half."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    with atomic_target(path) as tmp:
        tmp.write_bytes(raw)


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
