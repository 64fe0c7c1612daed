"""Random stand-in AlexNet weights, for machines that cannot download the ImageNet checkpoint.

The course's CI cannot reach download.pytorch.org, yet notebooks call
``torchvision.models.alexnet(weights=AlexNet_Weights.IMAGENET1K_V1)``. A checkpoint with exactly
the real keys and shapes, installed under the real file name, lets that code run unchanged: torch.hub
checks the SHA-256 prefix only when it downloads, never for a file already in its cache.
The values are random, so anything computed from them says NOTHING about ImageNet; weights_origin()
tells the two apart by that SHA-256 prefix, and the CLI says so loudly.

    python -m data_scripts.alexnet_standin [--torch-home DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torchvision

from data_scripts.atomic import atomic_target
from data_scripts.paths import alexnet_checkpoint_path
from data_scripts.sources import ALEXNET_SHA256_PREFIX

BANNER = "STAND-IN WEIGHTS:"
Origin = Literal["imagenet", "stand-in", "missing"]

# (resolved path, size, mtime_ns) -> SHA-256 hex digest: hashing the 233 MB file takes a noticeable moment.
_sha256_cache: dict[tuple[str, int, int], str] = {}


def alexnet_shapes() -> dict[str, torch.Size]:
    """Keys and shapes of torchvision's AlexNet state_dict (built on the meta device: no memory, no init cost)."""
    with torch.device("meta"):
        model = torchvision.models.alexnet()
    return {key: tensor.shape for key, tensor in model.state_dict().items()}


def make_standin_state_dict(seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    """A seeded random AlexNet state_dict with exactly the real keys and shapes.

    Weights are drawn He/Kaiming-normal (std = sqrt(2 / fan_in)) so that activations keep a sensible
    scale through the ReLU layers instead of vanishing or exploding; biases are zero.
    """
    generator = torch.Generator().manual_seed(seed)
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, shape in alexnet_shapes().items():
        if key.endswith(".weight"):
            fan_in = math.prod(shape[1:])
            state[key] = torch.randn(shape, generator=generator) * math.sqrt(2.0 / fan_in)
        else:
            state[key] = torch.zeros(shape)
    return state


def install_standin(
    torch_home: str | os.PathLike[str] | None = None, *, seed: int = 0, replace_imagenet: bool = False
) -> Path:
    """Write stand-in weights (atomically) where torchvision looks for the ImageNet AlexNet checkpoint.

    Refuses to overwrite the real ImageNet checkpoint unless *replace_imagenet* is true.
    """
    path = alexnet_checkpoint_path(torch_home)
    if not replace_imagenet and weights_origin(path) == "imagenet":
        raise FileExistsError(
            f"{path} holds the real ImageNet AlexNet weights; refusing to replace them with random stand-in weights"
        )
    with atomic_target(path) as tmp:
        torch.save(make_standin_state_dict(seed), tmp)
    return path


def weights_origin(path: str | os.PathLike[str] | None = None) -> Origin:
    """ "imagenet" if the checkpoint's SHA-256 starts with the published prefix, "stand-in" if not, "missing" if absent."""
    checkpoint = Path(path) if path is not None else alexnet_checkpoint_path()
    if not checkpoint.is_file():
        return "missing"
    return "imagenet" if _sha256(checkpoint).startswith(ALEXNET_SHA256_PREFIX) else "stand-in"


def _sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _sha256_cache:
        with open(path, "rb") as handle:
            _sha256_cache[key] = hashlib.file_digest(handle, "sha256").hexdigest()
    return _sha256_cache[key]


def banner(path: Path, seed: int) -> str:
    """The loud notice printed after installing stand-in weights."""
    lines = [
        f"random AlexNet weights (seed {seed}) written to {path}",
        "these are NOT the ImageNet weights, only a stand-in with the same keys and shapes;",
        "torchvision.models.alexnet(weights=AlexNet_Weights.IMAGENET1K_V1) will load them without complaint,",
        "but every prediction, accuracy or feature map computed from them means NOTHING about ImageNet.",
        "Fetch the real weights with `python -m data_scripts.fetch alexnet` (add --mirror DIR offline).",
    ]
    return "\n".join(f"{BANNER} {line}" for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_scripts.alexnet_standin",
        description="Install RANDOM stand-in AlexNet weights under the ImageNet checkpoint's name "
        "(for machines that cannot download the real ones).",
    )
    parser.add_argument(
        "--torch-home",
        type=Path,
        default=None,
        metavar="DIR",
        help="torch cache folder (default: $TORCH_HOME, else ~/.cache/torch)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 2
    try:
        path = install_standin(args.torch_home, seed=args.seed)
    except FileExistsError as exc:
        print(f"error: {exc}.", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot write{where}: {exc.strerror or exc}.", file=sys.stderr)
        return 1
    print(banner(path, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
