"""Checking a file against the checksums in the sources table.

A file is accepted when its bytes match the published digest, or, for a .gz file, when it is a
complete gzip file whose uncompressed bytes match the published content digest (a re-compressed
copy of the same data, such as Debian's; see data_scripts/sources.py).
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

from data_scripts.sources import Digest, RemoteFile

CHUNK_BYTES = 1 << 20
# What reading a truncated or damaged gzip file raises (gzip.BadGzipFile is an OSError).
GZIP_ERRORS = (OSError, EOFError, zlib.error)


def hash_file(path: Path, algorithm: str) -> str:
    """Hex digest of a file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def hash_gzip_contents(path: Path, algorithm: str) -> str:
    """Hex digest of a gzip file's uncompressed bytes; raises one of GZIP_ERRORS if it is damaged."""
    digest = hashlib.new(algorithm)
    with gzip.open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check; *problem* says in a few words why a file was refused."""

    ok: bool
    hexdigest: str = ""  # of the file's bytes, with the algorithm of the digest checked
    recompressed: bool = False
    problem: str = ""


def check_digest(path: Path, digest: Digest, hexdigest: str | None = None) -> Verdict:
    """Compare a file's bytes with one digest (*hexdigest*: their hash if already computed while writing)."""
    actual = hexdigest if hexdigest is not None else hash_file(path, digest.algorithm)
    if digest.matches(actual):
        return Verdict(True, actual)
    return Verdict(False, actual, problem=digest.mismatch(actual))


def verify(path: Path, remote: RemoteFile, hexdigest: str | None = None) -> Verdict:
    """Check *path* (which holds, or should hold, *remote*) against the published checksums.

    *hexdigest*: the hash of the file's bytes (algorithm of remote.digest) when the caller computed
    it while writing them, which saves reading the file again.
    """
    if not path.is_file():
        return Verdict(False, problem="it is not a regular file")
    if path.stat().st_size == 0:
        return Verdict(False, problem="it is empty")
    exact = check_digest(path, remote.digest, hexdigest)
    if exact.ok or remote.content_digest is None:
        return exact
    try:
        contents = hash_gzip_contents(path, remote.content_digest.algorithm)
    except GZIP_ERRORS as exc:
        return Verdict(
            False, exact.hexdigest, problem=f"{exact.problem}, and it is not a complete gzip file ({exc})"
        )
    if remote.content_digest.matches(contents):
        return Verdict(True, exact.hexdigest, recompressed=True)
    return Verdict(
        False, exact.hexdigest, problem=f"{exact.problem}, and its uncompressed contents do not match either"
    )
