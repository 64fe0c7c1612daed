"""AlexNet checkpoints: the stand-in loads through torchvision, and fetch never mistakes it for ImageNet."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import torchvision
from datascripts_support import (
    closed_port_url,
    isolate_environment,
    patch_alexnet,
    serve_directory,
    temp_leftovers,
)

from data_scripts import alexnet_standin
from data_scripts.alexnet_standin import install_standin, make_standin_state_dict, weights_origin
from data_scripts.fetch import main
from data_scripts.paths import alexnet_checkpoint_path
from data_scripts.sources import ALEXNET_FILENAME


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_environment(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One installed stand-in checkpoint (233 MB) shared by this module's tests; read-only for them."""
    return install_standin(tmp_path_factory.mktemp("standin-torch-home"))


@pytest.fixture(scope="module")
def standin_sha256(standin: Path) -> str:
    with open(standin, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def test_standin_has_alexnets_exact_keys_and_shapes(standin: Path) -> None:
    with torch.device("meta"):  # same keys and shapes as a real alexnet(), without its costly init
        reference = torchvision.models.alexnet().state_dict()
    saved = torch.load(standin, weights_only=True, mmap=True)
    assert list(saved) == list(reference)
    assert {key: (t.shape, t.dtype) for key, t in saved.items()} == {
        key: (t.shape, t.dtype) for key, t in reference.items()
    }
    # He/Kaiming scale: std = sqrt(2 / fan_in); zero biases.
    assert saved["features.0.weight"].std().item() == pytest.approx((2 / (3 * 11 * 11)) ** 0.5, rel=0.05)
    assert saved["classifier.1.weight"].std().item() == pytest.approx((2 / (256 * 6 * 6)) ** 0.5, rel=0.05)
    assert not saved["features.0.bias"].any()


def test_standin_values_are_seeded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small shapes keep this fast; the generation code is the same as for the full network.
    shapes = {"conv.weight": torch.Size([64, 3, 11, 11]), "conv.bias": torch.Size([64])}
    monkeypatch.setattr(alexnet_standin, "alexnet_shapes", lambda: shapes)
    first, again, other = (make_standin_state_dict(seed=s) for s in (0, 0, 1))
    assert torch.equal(first["conv.weight"], again["conv.weight"])
    assert not torch.equal(first["conv.weight"], other["conv.weight"])
    assert {key: t.shape for key, t in first.items()} == shapes


def test_torchvision_loads_the_installed_standin(standin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(standin.parents[2]))
    assert standin == alexnet_checkpoint_path()
    model = torchvision.models.alexnet(weights=torchvision.models.AlexNet_Weights.IMAGENET1K_V1).eval()
    saved = torch.load(standin, weights_only=True, mmap=True)
    assert torch.equal(model.classifier[6].weight, saved["classifier.6.weight"])

    with torch.no_grad():
        logits = model(torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)))
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()
    assert logits.std() > 0.1 and not torch.allclose(logits[0], logits[1])  # activations not degenerate
    assert weights_origin() == "stand-in"
    assert standin.stat().st_mode & 0o777 == 0o644


def test_weights_origin(
    standin: Path, standin_sha256: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert weights_origin(tmp_path / "absent.pth") == "missing"
    assert weights_origin(standin) == "stand-in"
    monkeypatch.setattr(
        alexnet_standin, "ALEXNET_SHA256_PREFIX", standin_sha256[:8]
    )  # pretend it were ImageNet's
    assert weights_origin(standin) == "imagenet"

    calls = []
    original = hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda *a: calls.append(a) or original(*a))
    small = tmp_path / "small.pth"
    small.write_bytes(b"x")
    weights_origin(small)
    weights_origin(small)
    assert len(calls) == 1  # cached by (path, size, mtime)
    small.write_bytes(b"yy")
    weights_origin(small)
    assert len(calls) == 2  # a changed file is hashed again


def test_install_refuses_to_replace_the_real_weights(
    standin: Path, standin_sha256: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alexnet_standin, "ALEXNET_SHA256_PREFIX", standin_sha256[:8])
    before = standin.stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="real ImageNet AlexNet weights"):
        install_standin(standin.parents[2])
    assert standin.stat().st_mtime_ns == before


def test_fetch_rejects_the_standin_from_a_mirror(
    standin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    patch_alexnet(monkeypatch, sha256_prefix=None, urls=(closed_port_url(),))  # real prefix, no network
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / ALEXNET_FILENAME).symlink_to(standin)  # no 233 MB copy
    torch_home = tmp_path / "torch-home"

    assert main(["alexnet", "--mirror", str(mirror), "--torch-home", str(torch_home)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "does not match its published checksum" in err and "expected 7be5be79" in err and "SHA-256" in err
    assert not torch_home.exists()


def test_fetch_rejects_a_wrong_checkpoint_over_http(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A small file under the real name: serving the 233 MB stand-in would only make this slower.
    served = tmp_path / "served"
    served.mkdir()
    (served / ALEXNET_FILENAME).write_bytes(b"not the ImageNet weights" * 100)
    torch_home = tmp_path / "torch-home"
    with serve_directory(served) as base:
        patch_alexnet(monkeypatch, sha256_prefix=None, urls=(base + ALEXNET_FILENAME,))
        assert main(["alexnet", "--torch-home", str(torch_home)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "expected 7be5be79" in err and f"downloaded from {base}" in err
    assert not torch_home.exists()


def test_fetch_accepts_a_file_whose_prefix_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    fake = b"not really alexnet" * 1000
    (served / ALEXNET_FILENAME).write_bytes(fake)
    with serve_directory(served) as base:
        patch_alexnet(
            monkeypatch, sha256_prefix=hashlib.sha256(fake).hexdigest()[:8], urls=(base + ALEXNET_FILENAME,)
        )
        assert main(["alexnet"]) == 0  # --torch-home defaults to $TORCH_HOME
        first = capsys.readouterr().out
        assert main(["alexnet"]) == 0
        second = capsys.readouterr().out
    assert alexnet_checkpoint_path().read_bytes() == fake
    assert first.startswith(f"downloaded           {alexnet_checkpoint_path()}")
    assert second.startswith(f"verified             {alexnet_checkpoint_path()}")
    assert temp_leftovers(alexnet_checkpoint_path().parent) == []


def test_standin_cli_prints_a_loud_banner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A tiny state dict keeps this test fast; the real one is covered above.
    monkeypatch.setattr(alexnet_standin, "make_standin_state_dict", lambda seed=0: {"w": torch.zeros(1)})
    torch_home = tmp_path / "cli-torch-home"
    assert alexnet_standin.main(["--torch-home", str(torch_home), "--seed", "3"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines and all(line.startswith("STAND-IN WEIGHTS:") for line in lines)
    assert "NOT the ImageNet weights" in out and "means NOTHING about ImageNet" in out
    assert str(alexnet_checkpoint_path(torch_home)) in out and "seed 3" in out
    assert weights_origin(alexnet_checkpoint_path(torch_home)) == "stand-in"
