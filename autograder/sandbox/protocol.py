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

MAX_HEADER = 8 * 1024 * 1024
#: Default cap of one reply (header and blobs together); a check expecting more passes its own.
MAX_REPLY = 256 * 1024 * 1024
MAX_BLOBS = 10_000


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


def _read_exact(fd: int, n: int, deadline: float | None) -> bytearray:
    """Read exactly ``n`` bytes into one buffer (no chunk list, no second copy)."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelTimeout()
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise ChannelTimeout()
        k = os.readv(fd, [view[got:got + (1 << 22)]])
        if not k:
            raise ChannelClosed("the other side closed the channel")
        got += k
    return buf


def read_message(fd: int, deadline: float | None = None, max_total: int = MAX_REPLY) -> tuple[dict, list[bytearray]]:
    """One message, or ProtocolError for anything malformed (sizes, nesting, types) — never another exception."""
    (length,) = struct.unpack("<Q", bytes(_read_exact(fd, 8, deadline)))
    if length > min(MAX_HEADER, max_total):
        raise ProtocolError(f"header of {length} bytes is over the limit")
    try:
        head = json.loads(_read_exact(fd, length, deadline))
        sizes = head["sizes"]
        header = head["h"]
    except (ValueError, KeyError, TypeError, RecursionError, MemoryError) as exc:
        raise ProtocolError(f"bad header: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(header, dict) or not isinstance(sizes, list) or len(sizes) > MAX_BLOBS \
            or not all(type(s) is int and s >= 0 for s in sizes):
        raise ProtocolError("bad header fields")
    if length + sum(sizes) > max_total:
        raise ProtocolError(f"message of {length + sum(sizes)} bytes is over the {max_total}-byte limit")
    return header, [_read_exact(fd, s, deadline) for s in sizes]
