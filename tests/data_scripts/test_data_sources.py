"""The sources table agrees with torchvision, and the path helpers honour their environment variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.hub
import torchvision
from datascripts_support import isolate_environment

from data_scripts import paths, sources
from data_scripts.paths import alexnet_checkpoint_path, data_dir, mirror_dir, repo_root, torch_home


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_environment(monkeypatch, tmp_path)


@pytest.mark.parametrize(
    ("name", "dataset_class"),
    [("fashion_mnist", torchvision.datasets.FashionMNIST), ("mnist", torchvision.datasets.MNIST)],
)
def test_table_matches_torchvision(name: str, dataset_class: type) -> None:
    # Drift detector: reads torchvision's private attributes here, in a test, so the tool never has to.
    source = sources.SOURCES[name]
    assert source.folder == dataset_class.__name__
    assert [(f.name, f.digest.expected) for f in source.files] == list(dataset_class.resources)
    for remote in source.files:
        assert list(remote.urls) == [mirror + remote.name for mirror in dataset_class.mirrors]
        assert remote.digest.algorithm == "md5"
        assert remote.content_digest is not None and len(remote.content_digest.expected) == 32


def test_alexnet_entry_matches_torchvision() -> None:
    (remote,) = sources.SOURCES["alexnet"].files
    assert remote.urls == (torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url,)
    assert remote.name == Path(remote.urls[0]).name == sources.ALEXNET_FILENAME
    assert remote.digest == sources.Digest("sha256", "7be5be79")
    assert f"-{remote.digest.expected}." in remote.name  # torch.hub's convention for the hash prefix


def test_fashion_mnist_urls_are_the_official_site() -> None:
    for remote in sources.SOURCES["fashion_mnist"].files:
        assert remote.urls == (f"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{remote.name}",)
    first, second = sources.SOURCES["mnist"].files[0].urls
    assert first.startswith("https://ossci-datasets.s3.amazonaws.com/mnist/")
    assert second.startswith("http://yann.lecun.com/exdb/mnist/")


@pytest.mark.parametrize("expected", ["", "7be5be7", "7BE5BE79", "xyz12345", "0" * 65])
def test_digest_rejects_malformed_values(expected: str) -> None:
    with pytest.raises(ValueError, match="sources.py"):
        sources.Digest("sha256", expected)


def test_gz_file_requires_a_content_digest() -> None:
    with pytest.raises(ValueError, match="content_digest"):
        sources.RemoteFile("a.gz", (), sources.Digest("md5", "0" * 32))


def test_digest_prefix_matching() -> None:
    digest = sources.Digest("sha256", "7be5be79")
    assert digest.matches("7be5be79" + "0" * 56)
    assert not digest.matches("7be5be78" + "0" * 56)
    assert "starts with 00000000, expected 7be5be79" in digest.mismatch("0" * 64)


def test_data_dir_and_mirror_dir_follow_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert data_dir() == tmp_path / "env-data"
    monkeypatch.delenv("CNN_COURSE_DATA")
    assert data_dir() == repo_root() / "data"
    assert (repo_root() / "data_scripts" / "paths.py").is_file()
    assert mirror_dir() is None
    monkeypatch.setenv("CNN_COURSE_MIRROR", str(tmp_path / "mirror"))
    assert mirror_dir() == tmp_path / "mirror"
    monkeypatch.setenv("CNN_COURSE_MIRROR", "")
    assert mirror_dir() is None


def test_torch_home_resolves_like_torch_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert torch_home() == tmp_path / "env-torch-home"
    assert Path(torch.hub.get_dir()) == torch_home() / "hub"
    assert alexnet_checkpoint_path() == tmp_path / "env-torch-home/hub/checkpoints/alexnet-owt-7be5be79.pth"
    assert (
        alexnet_checkpoint_path(tmp_path / "other")
        == tmp_path / "other/hub/checkpoints/alexnet-owt-7be5be79.pth"
    )

    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert torch_home() == tmp_path / "xdg" / "torch"
    assert Path(torch.hub.get_dir()) == torch_home() / "hub"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert torch_home() == Path.home() / ".cache" / "torch"


def test_package_import_is_light_and_exports_data_dir(tmp_path: Path) -> None:
    code = "import sys, data_scripts; print(data_scripts.DATA_DIR); print('torch' in sys.modules)"
    env = {**os.environ, "CNN_COURSE_DATA": str(tmp_path / "somewhere")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=paths.repo_root(),
    )
    assert done.stdout.splitlines() == [str(tmp_path / "somewhere"), "False"]
