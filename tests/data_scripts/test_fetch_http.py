"""Downloading over HTTP from a local server on 127.0.0.1 serving small fake files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torchvision
from datascripts_support import (
    FAKE_COUNTS,
    all_files,
    closed_port_url,
    isolate_environment,
    patch_dataset,
    serve_directory,
    temp_leftovers,
    write_fake_idx_files,
)

from data_scripts import sources
from data_scripts.download import Status, fetch_file
from data_scripts.fetch import main


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_environment(monkeypatch, tmp_path)


def test_mnist_downloaded_in_url_order_and_loadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served = tmp_path / "served"
    digests = write_fake_idx_files(served)
    root = tmp_path / "data"
    with serve_directory(served) as base:
        # A refused connection and an HTTP 404 come first: each URL is tried in order until one works.
        patch_dataset(monkeypatch, "mnist", digests, (closed_port_url(), base + "nowhere/", base))
        assert main(["mnist", "--root", str(root)]) == 0
        out = capsys.readouterr().out
        downloaded = [line for line in out.splitlines() if line.startswith("downloaded")]
        assert len(downloaded) == 4
        assert all(f"(from {base}t10k" in line or f"(from {base}train" in line for line in downloaded)

        assert len(torchvision.datasets.MNIST(root, train=True, download=False)) == FAKE_COUNTS["train"]
        assert len(torchvision.datasets.MNIST(root, train=False, download=False)) == FAKE_COUNTS["t10k"]

        stamps = {p: p.stat().st_mtime_ns for p in all_files(root)}
        assert main(["mnist", "--root", str(root)]) == 0
        again = capsys.readouterr().out
    assert "(8 verified, 0 fetched from mirror, 0 downloaded, 0 extracted)" in again
    assert {p: p.stat().st_mtime_ns for p in all_files(root)} == stamps
    assert temp_leftovers(root) == []


def test_progress_bar_runs_on_a_download(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    served = tmp_path / "served"
    served.mkdir()
    payload = bytes(range(256)) * 12_000  # ~3 MB: several chunks
    (served / "blob.bin").write_bytes(payload)
    digest = sources.Digest("sha256", hashlib.sha256(payload).hexdigest())
    with serve_directory(served) as base:
        remote = sources.RemoteFile("blob.bin", (base + "blob.bin",), digest)
        result = fetch_file(remote, tmp_path / "dest", progress=True)
    assert result.status is Status.DOWNLOADED
    assert (tmp_path / "dest" / "blob.bin").read_bytes() == payload
    assert "100%" in capsys.readouterr().err  # tqdm drew the bar, to stderr


def test_a_bad_download_is_refused_and_nothing_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served = tmp_path / "served"
    digests = write_fake_idx_files(served)
    (served / "t10k-labels-idx1-ubyte.gz").write_bytes(b"<html>captive portal</html>")
    root = tmp_path / "data"
    with serve_directory(served) as base:
        patch_dataset(monkeypatch, "mnist", digests, (base,))
        assert main(["mnist", "--root", str(root)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "t10k-labels-idx1-ubyte.gz" in err and "does not match its published checksum" in err
    assert not (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").exists()
    assert temp_leftovers(root) == []
