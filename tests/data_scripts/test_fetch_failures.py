"""Damaged files, missing sources and bad usage: detected, repaired or reported in one sentence."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torchvision
from datascripts_support import (
    all_files,
    closed_port_url,
    isolate_environment,
    patch_dataset,
    temp_leftovers,
    write_fake_idx_files,
)

from data_scripts.atomic import atomic_target
from data_scripts.fetch import main

TARGET = "t10k-images-idx3-ubyte.gz"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_environment(monkeypatch, tmp_path)


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A mirror folder of fake MNIST files, with the sources table patched to trust them (and no network)."""
    folder = tmp_path / "mirror"
    patch_dataset(monkeypatch, "mnist", write_fake_idx_files(folder), (closed_port_url(),))
    return folder


def _run(root: Path, mirror: Path | None = None) -> int:
    return main(["mnist", "--root", str(root)] + (["--mirror", str(mirror)] if mirror else []))


def _one_sentence(err: str) -> str:
    err = err.strip()
    assert err.count("\n") == 0, err
    assert "Traceback" not in err
    return err


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncated", "corrupted", "empty"])
def test_a_damaged_download_is_detected_and_fetched_again(
    damage: str, tmp_path: Path, mirror: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    assert _run(root, mirror) == 0
    capsys.readouterr()
    target = root / "MNIST" / "raw" / TARGET
    good = target.read_bytes()
    if damage == "truncated":
        target.write_bytes(good[: len(good) // 2])
    elif damage == "corrupted":
        _flip_byte(target, len(good) // 2)  # same size, different bytes
    else:
        target.write_bytes(b"")

    assert _run(root, mirror) == 0
    out = capsys.readouterr().out
    assert f"corrupted            {target}" in out
    assert f"fetched from mirror  {target}" in out
    assert "(7 verified, 1 fetched from mirror, 0 downloaded, 0 extracted)" in out
    assert target.read_bytes() == good
    assert temp_leftovers(root) == []


def test_a_damaged_extracted_file_is_extracted_again(
    tmp_path: Path, mirror: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    assert _run(root, mirror) == 0
    extracted = root / "MNIST" / "raw" / TARGET.removesuffix(".gz")
    good = extracted.read_bytes()
    extracted.write_bytes(good[:100])
    capsys.readouterr()

    assert _run(root, mirror) == 0
    out = capsys.readouterr().out
    assert f"extracted            {extracted}  (replaced a bad copy:" in out
    assert extracted.read_bytes() == good
    assert len(torchvision.datasets.MNIST(root, train=False)) == 5


def test_a_corrupted_mirror_file_is_refused_and_nothing_is_left(
    tmp_path: Path, mirror: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _flip_byte(mirror / "train-images-idx3-ubyte.gz", 40)  # the first file fetched
    root = tmp_path / "data"

    assert _run(root, mirror) == 1
    err = _one_sentence(capsys.readouterr().err)
    assert err.startswith("error (mnist): train-images-idx3-ubyte.gz from the mirror file")
    assert str(mirror / "train-images-idx3-ubyte.gz") in err
    assert "does not match its published checksum" in err
    assert not root.exists()  # not even an empty folder


def test_a_corrupted_file_whose_refetch_is_also_bad_fails_clearly(
    tmp_path: Path, mirror: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    assert _run(root, mirror) == 0
    target = root / "MNIST" / "raw" / TARGET
    _flip_byte(target, 30)
    _flip_byte(mirror / TARGET, 30)
    capsys.readouterr()

    assert _run(root, mirror) == 1
    captured = capsys.readouterr()
    assert f"corrupted            {target}" in captured.out
    assert "does not match its published checksum" in _one_sentence(captured.err)
    assert not target.exists()  # the known-bad copy is not left under the final name
    assert temp_leftovers(root) == []


def test_no_network_and_no_mirror_is_one_quick_sentence(tmp_path: Path, mirror: Path, capsys) -> None:
    root = tmp_path / "data"
    started = time.monotonic()
    assert _run(root) == 1
    assert time.monotonic() - started < 5
    err = _one_sentence(capsys.readouterr().err)
    assert "Could not fetch train-images-idx3-ubyte.gz" in err
    assert "--mirror DIR" in err and "CNN_COURSE_MIRROR" in err
    assert "Connection refused" in err
    assert not root.exists()


def test_a_mirror_without_the_file_falls_back_to_the_network_then_fails(
    tmp_path: Path, mirror: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty_mirror = tmp_path / "empty-mirror"
    empty_mirror.mkdir()
    root = tmp_path / "data"
    assert _run(root, empty_mirror) == 1
    err = _one_sentence(capsys.readouterr().err)
    assert f"it is not in the mirror folder {empty_mirror}" in err and "--mirror DIR" in err
    assert all_files(root) == []


def test_a_missing_mirror_folder_is_a_clear_error(
    tmp_path: Path, mirror: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tmp_path / "data", tmp_path / "no-such-folder") == 1
    err = _one_sentence(capsys.readouterr().err)
    assert "no-such-folder" in err and "does not exist" in err


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        ([], 2),
        (["imagenet"], 2),
        (["mnist", "--timeout", "0"], 2),
        (["mnist", "--bogus"], 2),
        (["--help"], 0),
    ],
)
def test_usage(argv: list[str], code: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == code
    captured = capsys.readouterr()
    assert "usage: python -m data_scripts.fetch" in (captured.out if code == 0 else captured.err)


def test_atomic_target_keeps_nothing_when_the_writer_fails(tmp_path: Path) -> None:
    dest = tmp_path / "new" / "deeper" / "file.bin"
    with pytest.raises(RuntimeError), atomic_target(dest) as tmp:
        tmp.write_bytes(b"half a fi")
        raise RuntimeError("interrupted")
    assert not (tmp_path / "new").exists()

    with atomic_target(dest) as tmp:
        assert tmp.parent == dest.parent and tmp != dest
        tmp.write_bytes(b"whole file")
    assert dest.read_bytes() == b"whole file"
    assert [p.name for p in dest.parent.iterdir()] == ["file.bin"]
