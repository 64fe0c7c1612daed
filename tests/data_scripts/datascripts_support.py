"""Helpers shared by the data_scripts tests: tiny fake datasets, a local HTTP server, table patching.

Plain functions and context managers rather than a conftest.py, so that this folder cannot clash
with conftest files elsewhere in the suite. Nothing here touches the network beyond 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from data_scripts import sources
from data_scripts.atomic import TEMP_SUFFIX

IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
FAKE_COUNTS = {"train": 7, "t10k": 5}


def isolate_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point every location at tmp_path and drop proxies, so no test touches data/, ~/.cache or the network."""
    monkeypatch.setenv("CNN_COURSE_DATA", str(tmp_path / "env-data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "env-torch-home"))
    monkeypatch.delenv("CNN_COURSE_MIRROR", raising=False)
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def idx_bytes(kind: str, count: int, seed: int) -> bytes:
    """A valid uncompressed IDX file: *count* 28x28 uint8 images, or *count* labels in 0..9."""
    values = bytes((seed * 31 + i * 7) % 256 for i in range(count * 28 * 28 if kind == "images" else count))
    if kind == "images":
        return struct.pack(">IIII", 0x00000803, count, 28, 28) + values
    return struct.pack(">II", 0x00000801, count) + bytes(v % 10 for v in values)


def write_fake_idx_files(folder: Path) -> dict[str, tuple[str, str]]:
    """Write the four gzipped IDX files of a tiny MNIST-style dataset; return name -> (gz md5, content md5)."""
    folder.mkdir(parents=True, exist_ok=True)
    digests = {}
    for seed, name in enumerate(IDX_NAMES):
        split, kind = name.split("-")[0], "images" if "images" in name else "labels"
        raw = idx_bytes(kind, FAKE_COUNTS[split], seed)
        packed = gzip.compress(raw, mtime=0)
        (folder / name).write_bytes(packed)
        digests[name] = (hashlib.md5(packed).hexdigest(), hashlib.md5(raw).hexdigest())
    return digests


def patch_dataset(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    digests: dict[str, tuple[str, str]],
    base_urls: tuple[str, ...],
) -> sources.Source:
    """Replace SOURCES[name]'s files with fakes: their checksums *digests*, fetched from *base_urls*."""
    files = tuple(
        sources.RemoteFile(
            name=file_name,
            urls=tuple(base + file_name for base in base_urls),
            digest=sources.Digest("md5", gz_md5),
            content_digest=sources.Digest("md5", content_md5),
        )
        for file_name, (gz_md5, content_md5) in digests.items()
    )
    patched = dataclasses.replace(sources.SOURCES[name], files=files)
    monkeypatch.setitem(sources.SOURCES, name, patched)
    return patched


def patch_alexnet(
    monkeypatch: pytest.MonkeyPatch, *, sha256_prefix: str | None, urls: tuple[str, ...]
) -> None:
    """Point SOURCES['alexnet'] at *urls*, optionally accepting a different SHA-256 prefix."""
    (original,) = sources.SOURCES["alexnet"].files
    digest = sources.Digest("sha256", sha256_prefix) if sha256_prefix else original.digest
    remote = dataclasses.replace(original, urls=urls, digest=digest)
    monkeypatch.setitem(
        sources.SOURCES, "alexnet", dataclasses.replace(sources.SOURCES["alexnet"], files=(remote,))
    )


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        """Keep pytest's output clean: no access log."""


@contextmanager
def serve_directory(folder: Path) -> Iterator[str]:
    """Serve *folder* over HTTP on 127.0.0.1 (ephemeral port, background thread); yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def temp_leftovers(folder: Path) -> list[Path]:
    """Temporary files our atomic writes might have left anywhere under *folder*."""
    return [p for p in folder.rglob("*") if p.name.endswith(TEMP_SUFFIX)] if folder.exists() else []


def all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
