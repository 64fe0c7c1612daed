"""Un-gzipping a fetched file next to itself, atomically and only when needed.

torchvision's MNIST-style datasets read the extracted IDX files (their _check_exists looks only
for those), so the extracted copy is what must be right: it is checked against the published MD5
of the uncompressed data, both when it already exists and right after writing it.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from data_scripts.atomic import atomic_target
from data_scripts.checksums import CHUNK_BYTES, GZIP_ERRORS, check_digest
from data_scripts.errors import ChecksumError
from data_scripts.sources import RemoteFile


class ExtractStatus(StrEnum):
    VERIFIED = "verified"
    EXTRACTED = "extracted"


@dataclass(frozen=True)
class ExtractResult:
    path: Path
    status: ExtractStatus
    problem: str = ""  # why an existing extracted copy was replaced, if it was


def extract_gzip(archive: Path, remote: RemoteFile) -> ExtractResult:
    """Make the un-gzipped copy of *archive* (a verified copy of *remote*) exist and verify."""
    if remote.extracted_name is None or remote.content_digest is None:
        raise ValueError(f"data_scripts/extract.py: {remote.name} is not a .gz file with a content checksum")
    dest = archive.with_name(remote.extracted_name)
    problem = ""
    if dest.exists() or dest.is_symlink():
        existing = check_digest(dest, remote.content_digest) if dest.is_file() else None
        if existing is not None and existing.ok:
            return ExtractResult(dest, ExtractStatus.VERIFIED)
        problem = existing.problem if existing is not None else "it is not a regular file"
        dest.unlink()

    with atomic_target(dest) as tmp:
        written = check_digest(
            tmp, remote.content_digest, _gunzip(archive, tmp, remote.content_digest.algorithm)
        )
        if not written.ok:
            raise ChecksumError(
                f"The uncompressed contents of {archive} do not match the published checksum "
                f"({written.problem}); delete it and fetch it again."
            )
    return ExtractResult(dest, ExtractStatus.EXTRACTED, problem)


def _gunzip(archive: Path, out_path: Path, algorithm: str) -> str:
    """Decompress *archive* into *out_path*, returning the hex digest of what was written.

    A damaged archive is a ChecksumError; a failed write stays an OSError (our disk, not the archive).
    """
    digest = hashlib.new(algorithm)
    with gzip.open(archive, "rb") as src, open(out_path, "wb") as out:
        while True:
            try:
                chunk = src.read(CHUNK_BYTES)
            except GZIP_ERRORS as exc:
                raise ChecksumError(
                    f"{archive} cannot be un-gzipped ({exc}); delete it and fetch it again."
                ) from exc
            if not chunk:
                return digest.hexdigest()
            out.write(chunk)
            digest.update(chunk)
