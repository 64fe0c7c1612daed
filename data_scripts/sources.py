"""Where each dataset and checkpoint comes from, and the checksums it must match.

This is our own table rather than torchvision's ``resources``/``mirrors`` class attributes
(private API that an upgrade could change), so the fetch tool never depends on them. The
``.gz`` MD5s are exactly those of torchvision 0.29's ``MNIST.resources`` and
``FashionMNIST.resources``; tests/data_scripts/test_data_sources.py checks that they still agree.

Each ``.gz`` file also has the MD5 of its *uncompressed* contents, the checksum widely recorded for
the original releases. It serves two purposes: it verifies the extracted copy that torchvision
actually reads, and it lets us accept a re-compressed copy of the same data. Debian's
``dataset-fashion-mnist`` package is one: its packaging normalised the gzip headers (file name
dropped, time stamp changed), so the ``.gz`` MD5s differ while not one byte of the data does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

_HEX = frozenset("0123456789abcdef")
_ALGORITHM_NAMES = {"md5": "MD5", "sha256": "SHA-256"}

ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
ALEXNET_FILENAME = "alexnet-owt-7be5be79.pth"
# torch.hub names checkpoints "<name>-<first 8+ hex digits of their SHA-256>.<ext>" and checks
# only that prefix; it is the only checksum PyTorch publishes for these weights.
ALEXNET_SHA256_PREFIX = "7be5be79"


@dataclass(frozen=True)
class Digest:
    """An expected checksum: a full hex digest, or (torch.hub style) a prefix of at least 8 digits."""

    algorithm: Literal["md5", "sha256"]
    expected: str

    def __post_init__(self) -> None:
        if self.algorithm not in _ALGORITHM_NAMES:
            raise ValueError(f"data_scripts/sources.py: unsupported checksum algorithm {self.algorithm!r}")
        full_length = hashlib.new(self.algorithm).digest_size * 2
        if not 8 <= len(self.expected) <= full_length or not set(self.expected) <= _HEX:
            raise ValueError(
                f"data_scripts/sources.py: {self.expected!r} is not a lowercase hex {self.algorithm} digest "
                f"or a prefix of at least 8 digits"
            )

    @property
    def label(self) -> str:
        """Human name of the algorithm, for messages."""
        return _ALGORITHM_NAMES[self.algorithm]

    def matches(self, hexdigest: str) -> bool:
        return hexdigest.lower().startswith(self.expected)

    def mismatch(self, hexdigest: str) -> str:
        """Explain a failed match in a few words (the shown part is as long as the expected one)."""
        if len(self.expected) < len(hexdigest):
            return f"its {self.label} starts with {hexdigest[: len(self.expected)]}, expected {self.expected}"
        return f"its {self.label} is {hexdigest}, expected {self.expected}"


@dataclass(frozen=True)
class RemoteFile:
    """One published file: its original name, the URLs to try in order, and its checksums."""

    name: str
    urls: tuple[str, ...]
    digest: Digest
    content_digest: Digest | None = None  # of the uncompressed bytes; required for .gz files

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or "\\" in self.name or self.name in (".", ".."):
            raise ValueError(f"data_scripts/sources.py: {self.name!r} must be a plain file name")
        if self.name.endswith(".gz") and self.content_digest is None:
            raise ValueError(
                f"data_scripts/sources.py: {self.name} needs a content_digest so that its extracted copy "
                f"can be verified"
            )

    @property
    def extracted_name(self) -> str | None:
        """Name of the un-gzipped copy that torchvision reads, or None if this is not a .gz file."""
        return self.name.removesuffix(".gz") if self.name.endswith(".gz") else None


@dataclass(frozen=True)
class Source:
    """Everything the fetch tool needs to know about one name on its command line."""

    name: str  # the command-line name
    title: str
    kind: Literal["dataset", "weights"]
    # For datasets, the torchvision class name: files go to <root>/<folder>/raw/.
    folder: str
    # Subfolders of a mirror folder that may hold the files, besides the mirror folder itself.
    mirror_subfolders: tuple[str, ...]
    files: tuple[RemoteFile, ...]


def _idx_files(
    base_urls: tuple[str, ...], entries: tuple[tuple[str, str, str], ...]
) -> tuple[RemoteFile, ...]:
    """Build the four gzipped IDX files of an MNIST-style dataset from (name, gz md5, content md5)."""
    return tuple(
        RemoteFile(
            name=name,
            urls=tuple(base + name for base in base_urls),
            digest=Digest("md5", gz_md5),
            content_digest=Digest("md5", content_md5),
        )
        for name, gz_md5, content_md5 in entries
    )


FASHION_MNIST_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
# torchvision's order: its S3 copy first, then the original site.
MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")

SOURCES: dict[str, Source] = {
    "fashion_mnist": Source(
        name="fashion_mnist",
        title="Fashion-MNIST",
        kind="dataset",
        folder="FashionMNIST",
        mirror_subfolders=("fashion_mnist", "fashion-mnist", "FashionMNIST"),
        files=_idx_files(
            FASHION_MNIST_URLS,
            (
                (
                    "train-images-idx3-ubyte.gz",
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                ),
                (
                    "train-labels-idx1-ubyte.gz",
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "9018921c3c673c538a1fc5bad174d6f9",
                ),
                (
                    "t10k-images-idx3-ubyte.gz",
                    "bef4ecab320f06d8554ea6380940ec79",
                    "8181f5470baa50b63fa0f6fddb340f0a",
                ),
                (
                    "t10k-labels-idx1-ubyte.gz",
                    "bb300cfdad3c16e7a12a480ee83cd310",
                    "15d484375f8d13e6eb1aabb0c3f46965",
                ),
            ),
        ),
    ),
    "mnist": Source(
        name="mnist",
        title="MNIST",
        kind="dataset",
        folder="MNIST",
        mirror_subfolders=("mnist", "MNIST"),
        files=_idx_files(
            MNIST_URLS,
            (
                (
                    "train-images-idx3-ubyte.gz",
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "6bbc9ace898e44ae57da46a324031adb",
                ),
                (
                    "train-labels-idx1-ubyte.gz",
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    "a25bea736e30d166cdddb491f175f624",
                ),
                (
                    "t10k-images-idx3-ubyte.gz",
                    "9fb629c4189551a2d022fa330f9573f3",
                    "2646ac647ad5339dbf082846283269ea",
                ),
                (
                    "t10k-labels-idx1-ubyte.gz",
                    "ec29112dd5afa0611ce80d1b7f02629c",
                    "27ae3e4e09519cfbb04c329615203637",
                ),
            ),
        ),
    ),
    "alexnet": Source(
        name="alexnet",
        title="AlexNet ImageNet weights",
        kind="weights",
        folder="",
        mirror_subfolders=("alexnet", "checkpoints"),
        files=(RemoteFile(ALEXNET_FILENAME, (ALEXNET_URL,), Digest("sha256", ALEXNET_SHA256_PREFIX)),),
    ),
}
