"""Message framing on the pipes between grader and worker.

A message is an 8-byte little-endian length, a JSON header ``{"h": ..., "sizes": [...]}``
and then the raw blobs.  The reader enforces size caps and a deadline, so a worker that
stalls, lies about sizes or floods the pipe cannot hang or exhaust the grader.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time

MAX_HEADER = 32 * 1024 * 1024
MAX_TOTAL = 2 * 1024**3


class ChannelClosed(EOFError):
    """The other side closed the pipe (the worker died)."""


class ChannelTimeout(TimeoutError):
    """No complete message before the deadline."""


class ProtocolError(ValueError):
    """The bytes on the pipe are not a valid message."""


def write_message(fd: int, header: dict, blobs: list[bytes] = ()) -> None:
    head = json.dumps({"h": header, "sizes": [len(b) for b in blobs]}, allow_nan=True).encode()
    _write_all(fd, struct.pack("<Q", len(head)) + head)
    for blob in blobs:
        _write_all(fd, blob)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BrokenPipeError as exc:
            raise ChannelClosed("the other side closed the channel") from exc
        view = view[n:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks = []
    remaining = n
    while remaining:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelTimeout()
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise ChannelTimeout()
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise ChannelClosed("the other side closed the channel")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int, deadline: float | None = None, max_total: int = MAX_TOTAL) -> tuple[dict, list[bytes]]:
    (length,) = struct.unpack("<Q", _read_exact(fd, 8, deadline))
    if length > MAX_HEADER:
        raise ProtocolError(f"header of {length} bytes is over the limit")
    try:
        head = json.loads(_read_exact(fd, length, deadline))
        sizes = head["sizes"]
        header = head["h"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"bad header: {exc}") from None
    if not isinstance(header, dict) or not isinstance(sizes, list) or not all(type(s) is int and s >= 0 for s in sizes):
        raise ProtocolError("bad header fields")
    if sum(sizes) > max_total:
        raise ProtocolError(f"message of {sum(sizes)} bytes is over the {max_total}-byte limit")
    return header, [_read_exact(fd, s, deadline) for s in sizes]
