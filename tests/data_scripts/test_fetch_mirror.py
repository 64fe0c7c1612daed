"""Fetching from a mirror folder: the real Debian Fashion-MNIST files, and fake MNIST files in a subfolder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torchvision
from datascripts_support import (
    FAKE_COUNTS,
    all_files,
    closed_port_url,
    isolate_environment,
    patch_dataset,
    temp_leftovers,
    write_fake_idx_files,
)

from data_scripts.fetch import main

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_environment(monkeypatch, tmp_path)


def _lines_starting(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


@pytest.mark.skipif(
    not DEBIAN_FASHION_MNIST.is_dir(),
    reason=f"{DEBIAN_FASHION_MNIST} is absent (Debian package dataset-fashion-mnist not installed)",
)
def test_fashion_mnist_from_the_debian_mirror(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "data"
    argv = ["fashion_mnist", "--root", str(root), "--mirror", str(DEBIAN_FASHION_MNIST)]

    assert main(argv) == 0
    first = capsys.readouterr().out
    # Debian re-compressed the .gz files (gzip header normalised): accepted on their contents.
    assert len(_lines_starting(first, "fetched from mirror")) == 4
    assert len(_lines_starting(first, "extracted")) == 4
    assert "re-compressed copy" in first

    test_set = torchvision.datasets.FashionMNIST(root, train=False, download=False)
    assert len(test_set) == 10_000
    assert len(torchvision.datasets.FashionMNIST(root, train=True, download=False)) == 60_000
    assert test_set.targets.unique().tolist() == list(range(10))

    stamps = {p: p.stat().st_mtime_ns for p in all_files(root)}
    assert len(stamps) == 8
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert len(_lines_starting(second, "verified")) == 8
    assert not _lines_starting(second, "fetched") and not _lines_starting(second, "downloaded")
    assert not _lines_starting(second, "extracted")
    assert "(8 verified, 0 fetched from mirror, 0 downloaded, 0 extracted)" in second
    assert {p: p.stat().st_mtime_ns for p in all_files(root)} == stamps  # nothing rewritten
    assert temp_leftovers(root) == []


@pytest.mark.parametrize("subfolder", ["", "mnist", "MNIST"])
def test_mnist_layout_from_a_mirror_folder_or_subfolder(
    subfolder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mirror = tmp_path / "mirror"
    digests = write_fake_idx_files(mirror / subfolder)
    patch_dataset(monkeypatch, "mnist", digests, (closed_port_url(),))  # the network must not be needed
    root = tmp_path / "data"

    assert main(["mnist", "--root", str(root), "--mirror", str(mirror)]) == 0
    out = capsys.readouterr().out
    assert len(_lines_starting(out, "fetched from mirror")) == 4
    assert "re-compressed" not in out  # exact .gz checksums here

    train = torchvision.datasets.MNIST(root, train=True, download=False)
    test = torchvision.datasets.MNIST(root, train=False, download=False)
    assert (len(train), len(test)) == (FAKE_COUNTS["train"], FAKE_COUNTS["t10k"])
    assert tuple(train.data.shape[1:]) == (28, 28)
    image, label = test[0]
    assert image.size == (28, 28) and 0 <= label <= 9
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == sorted(
        [name for name in digests] + [name.removesuffix(".gz") for name in digests]
    )


def test_mirror_from_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mirror = tmp_path / "mirror"
    patch_dataset(
        monkeypatch, "fashion_mnist", write_fake_idx_files(mirror / "fashion-mnist"), (closed_port_url(),)
    )
    monkeypatch.setenv("CNN_COURSE_MIRROR", str(mirror))

    assert main(["fashion_mnist"]) == 0  # --root defaults to $CNN_COURSE_DATA
    assert len(_lines_starting(capsys.readouterr().out, "fetched from mirror")) == 4
    assert len(torchvision.datasets.FashionMNIST(tmp_path / "env-data", train=False)) == FAKE_COUNTS["t10k"]
