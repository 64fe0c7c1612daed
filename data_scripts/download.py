"""Fetching one published file: from a mirror folder or its URLs, verified, atomically, only when needed.

urllib from the standard library does the HTTP, so fetching data needs no extra dependency. There is
no retry loop: each URL is tried once with a short timeout, so an offline machine fails in seconds.
Bytes are hashed while they are written, so a large file is not read back to be verified.
"""

from __future__ import annotations

import hashlib
import http.client
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from data_scripts.atomic import atomic_target
from data_scripts.checksums import CHUNK_BYTES, verify
from data_scripts.errors import ChecksumError, MirrorError, SourceUnavailableError
from data_scripts.paths import MIRROR_ENV
from data_scripts.sources import RemoteFile

DEFAULT_TIMEOUT_S = 15.0
USER_AGENT = "cnn-course-data-scripts/0.1 (+python-urllib)"


class Status(StrEnum):
    """What fetch_file did; the values are the words shown to the user."""

    VERIFIED = "verified"
    MIRROR = "fetched from mirror"
    DOWNLOADED = "downloaded"


@dataclass(frozen=True)
class FetchResult:
    path: Path
    status: Status
    origin: str | None = None  # the mirror file or URL it came from; None when already present
    recompressed: bool = False  # accepted on its uncompressed contents (see checksums.verify)
    repaired: bool = False  # an existing corrupted file was replaced


class _SourceReadError(Exception):
    """Reading from the mirror file or URL failed (as opposed to writing our own file)."""


def _notice_to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def fetch_file(
    remote: RemoteFile,
    dest_dir: Path,
    *,
    mirror: Path | None = None,
    mirror_subfolders: tuple[str, ...] = (),
    timeout: float = DEFAULT_TIMEOUT_S,
    progress: bool | None = None,
    notice: Callable[[str], None] = _notice_to_stderr,
) -> FetchResult:
    """Make ``dest_dir/remote.name`` a verified copy of *remote*, fetching it only if needed.

    Order: an existing verified file wins; else the mirror folder when one is given (a copy there
    must verify: we never fall back to the network past a bad mirror copy); else the URLs in order.
    *progress*: True shows a tqdm bar on stderr, False hides it, None shows it on a TTY only.
    *notice* receives one-line remarks such as "existing file corrupted, fetching it again".
    Raises a FetchError subclass, with a one-sentence message, when no good copy can be had.
    """
    dest = dest_dir / remote.name
    repaired = False
    if dest.exists() or dest.is_symlink():
        verdict = verify(dest, remote)
        if verdict.ok:
            return FetchResult(dest, Status.VERIFIED, recompressed=verdict.recompressed)
        notice(f"corrupted            {dest}: {verdict.problem}; fetching it again")
        dest.unlink()  # known bad: never leave it under the final name, even if the refetch fails
        repaired = True

    mirror_file = find_in_mirror(remote.name, mirror, mirror_subfolders) if mirror is not None else None
    if mirror_file is not None:
        recompressed = _copy_from_mirror(mirror_file, dest, remote, progress)
        return FetchResult(dest, Status.MIRROR, str(mirror_file), recompressed, repaired)

    failures: list[str] = []
    bad_copies: list[ChecksumError] = []
    for url in remote.urls:
        try:
            recompressed = _download(url, dest, remote, timeout, progress)
        except _SourceReadError as exc:
            failures.append(f"{url}: {exc}")
            continue
        except ChecksumError as exc:  # a damaged copy on one server: the next URL may have a good one
            bad_copies.append(exc)
            continue
        return FetchResult(dest, Status.DOWNLOADED, url, recompressed, repaired)
    if bad_copies:
        raise bad_copies[0]
    raise SourceUnavailableError(_unavailable_message(remote, mirror, mirror_subfolders, failures))


def find_in_mirror(name: str, mirror: Path, subfolders: tuple[str, ...]) -> Path | None:
    """The mirror's copy of *name*: directly in the mirror folder or in one of *subfolders*, else None."""
    if not mirror.is_dir():
        raise MirrorError(
            f"The mirror folder {mirror} (from --mirror or {MIRROR_ENV}) does not exist or is not a folder."
        )
    for candidate in (mirror / name, *(mirror / sub / name for sub in subfolders)):
        if candidate.is_file():
            return candidate
    return None


def _copy_from_mirror(source: Path, dest: Path, remote: RemoteFile, progress: bool | None) -> bool:
    """Check the mirror's copy in place, then copy it; returns whether it is a re-compressed copy.

    Checking first means a bad mirror copy is refused before anything is written. The copy is then
    verified by hashing it on the way: it must be byte-identical to the file just checked.
    """
    try:
        checked = verify(source, remote)
        size = source.stat().st_size
        reader = open(source, "rb")
    except OSError as exc:
        raise MirrorError(f"Cannot read the mirror file {source}: {exc.strerror or exc}.") from exc
    if not checked.ok:
        reader.close()
        raise ChecksumError(
            f"{remote.name} from the mirror file {source} does not match its published checksum "
            f"({checked.problem}), so it was not copied: replace the mirror's copy with a good one."
        )
    with reader, atomic_target(dest) as tmp, open(tmp, "wb") as out:
        try:
            copied = _copy_stream(
                reader, out, remote.digest.algorithm, total=size, label=remote.name, progress=progress
            )
        except _SourceReadError as exc:
            raise MirrorError(f"Cannot read the mirror file {source}: {exc}.") from exc
        if copied != checked.hexdigest:
            raise MirrorError(
                f"The mirror file {source} changed while it was being copied; run the command again."
            )
    return checked.recompressed


def _download(url: str, dest: Path, remote: RemoteFile, timeout: float, progress: bool | None) -> bool:
    """Download *url* into *dest* via a verified temporary file; returns whether it is a re-compressed copy."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise _SourceReadError(f"HTTP {exc.code} {exc.reason}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _SourceReadError(_describe_network_error(exc, timeout)) from exc
    with response, atomic_target(dest) as tmp:
        length = response.headers.get("Content-Length", "")
        total = int(length) if length.isdigit() else None
        with open(tmp, "wb") as out:
            try:
                written = _copy_stream(
                    response, out, remote.digest.algorithm, total=total, label=remote.name, progress=progress
                )
            except _SourceReadError as exc:
                raise _SourceReadError(f"the transfer broke off ({exc})") from exc
        verdict = verify(tmp, remote, hexdigest=written)
        if not verdict.ok:
            raise ChecksumError(
                f"{remote.name} downloaded from {url} does not match its published checksum ({verdict.problem}), "
                f"so it was not kept: try again later, or pass a folder holding a good copy with --mirror DIR "
                f"(or {MIRROR_ENV})."
            )
    return verdict.recompressed


def _copy_stream(
    reader: BinaryIO, out: BinaryIO, algorithm: str, *, total: int | None, label: str, progress: bool | None
) -> str:
    """Copy in chunks with a progress bar on stderr; return the hex digest of the bytes copied.

    Failures to read become _SourceReadError; failures to write stay OSError (our disk, not the source).
    """
    digest = hashlib.new(algorithm)
    disable = None if progress is None else not progress
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=label,
        file=sys.stderr,
        disable=disable,
    ) as bar:
        while True:
            try:
                chunk = reader.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as exc:
                raise _SourceReadError(str(exc) or type(exc).__name__) from exc
            if not chunk:
                return digest.hexdigest()
            out.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))


def _describe_network_error(exc: BaseException, timeout: float) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _unavailable_message(
    remote: RemoteFile, mirror: Path | None, subfolders: tuple[str, ...], failures: list[str]
) -> str:
    if mirror is None:
        where = "no mirror folder was given"
    else:
        inside = f" (nor in its subfolders {', '.join(subfolders)})" if subfolders else ""
        where = f"it is not in the mirror folder {mirror}{inside}"
    tried = "; ".join(failures) if failures else "no URL is known for it"
    return (
        f"Could not fetch {remote.name}: {where} and the network is unreachable or refused it ({tried}); "
        f"copy the file from a machine with internet access into a folder and pass it with --mirror DIR "
        f"(or set {MIRROR_ENV}=DIR)."
    )
