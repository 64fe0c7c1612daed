"""Command line: fetch the course's datasets and weights into the places torchvision looks for them.

    python -m data_scripts.fetch NAME [NAME ...] [--root DIR] [--mirror DIR] [--torch-home DIR]

Datasets go to ROOT/<TorchvisionClass>/raw/ (the .gz files and their extracted copies), so that
``torchvision.datasets.FashionMNIST(ROOT, download=False)`` and ``MNIST(ROOT, ...)`` load them.
AlexNet weights go to TORCH_HOME/hub/checkpoints/, where ``torchvision.models.alexnet(weights=
AlexNet_Weights.IMAGENET1K_V1)`` finds them without downloading. Running it again only verifies.
Exit codes: 0 success, 1 a file could not be fetched or verified, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from data_scripts import paths, sources
from data_scripts.download import DEFAULT_TIMEOUT_S, FetchResult, Status, fetch_file
from data_scripts.errors import FetchError, MirrorError
from data_scripts.extract import ExtractResult, ExtractStatus, extract_gzip
from data_scripts.sources import Source

_STATUS_WIDTH = 20


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_scripts.fetch",
        description="Fetch datasets and model weights, verify their published checksums, and lay them out "
        "where torchvision finds them. Existing verified files are left alone.",
    )
    parser.add_argument(
        "names",
        nargs="+",
        metavar="NAME",
        choices=sorted(sources.SOURCES),
        help=f"what to fetch: {', '.join(sorted(sources.SOURCES))}",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"dataset root folder (default: ${paths.DATA_ENV}, else <repo>/data)",
    )
    parser.add_argument(
        "--mirror",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"local folder holding already-downloaded files, tried before the network "
        f"(default: ${paths.MIRROR_ENV})",
    )
    parser.add_argument(
        "--torch-home",
        type=Path,
        default=None,
        metavar="DIR",
        help="torch cache folder for model weights (default: $TORCH_HOME, else ~/.cache/torch)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="seconds to wait for a server before giving up on it (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of exiting (argparse's own exits included)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or bad usage (2)
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 2
    if args.timeout <= 0:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: --timeout must be positive", file=sys.stderr)
        return 2

    root = args.root if args.root is not None else paths.data_dir()
    mirror = args.mirror if args.mirror is not None else paths.mirror_dir()
    names = list(dict.fromkeys(args.names))  # keep order, drop repeats
    name = names[0]
    try:
        if mirror is not None and not mirror.is_dir():
            raise MirrorError(
                f"The mirror folder {mirror} (from --mirror or {paths.MIRROR_ENV}) does not exist or is not a folder."
            )
        for name in names:
            fetch_source(
                sources.SOURCES[name],
                root=root,
                torch_home_dir=args.torch_home,
                mirror=mirror,
                timeout=args.timeout,
                out=sys.stdout,
            )
    except FetchError as exc:
        print(f"error ({name}): {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # our own folders or files: permissions, disk full, ...
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error ({name}): cannot write{where}: {exc.strerror or exc}.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: no partial file was kept.", file=sys.stderr)
        return 130
    print(f"Done: {', '.join(names)} ready.", file=sys.stdout)
    return 0


def fetch_source(
    source: Source,
    *,
    root: Path,
    torch_home_dir: Path | None,
    mirror: Path | None,
    timeout: float = DEFAULT_TIMEOUT_S,
    progress: bool | None = None,
    out: TextIO,
) -> Counter[str]:
    """Fetch (and extract) every file of *source*; print one line per file and a summary line."""
    dest_dir = (
        root / source.folder / "raw" if source.kind == "dataset" else paths.checkpoints_dir(torch_home_dir)
    )
    counts: Counter[str] = Counter()

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    for remote in source.files:
        result = fetch_file(
            remote,
            dest_dir,
            mirror=mirror,
            mirror_subfolders=source.mirror_subfolders,
            timeout=timeout,
            progress=progress,
            notice=say,
        )
        counts[result.status] += 1
        say(_fetch_line(result))
        if remote.extracted_name is not None:
            extracted = extract_gzip(result.path, remote)
            counts[extracted.status] += 1
            say(_extract_line(extracted))

    say(
        f"{source.name}: {source.title} ready in {dest_dir} ("
        f"{counts[Status.VERIFIED]} verified, {counts[Status.MIRROR]} fetched from mirror, "
        f"{counts[Status.DOWNLOADED]} downloaded, {counts[ExtractStatus.EXTRACTED]} extracted)"
    )
    return counts


def _fetch_line(result: FetchResult) -> str:
    notes = []
    if result.origin is not None:
        notes.append(f"from {result.origin}")
    if result.recompressed:
        notes.append("re-compressed copy; its contents match the published checksum")
    suffix = f"  ({'; '.join(notes)})" if notes else ""
    return f"{result.status:<{_STATUS_WIDTH}} {result.path}{suffix}"


def _extract_line(result: ExtractResult) -> str:
    suffix = f"  (replaced a bad copy: {result.problem})" if result.problem else ""
    return f"{result.status:<{_STATUS_WIDTH}} {result.path}{suffix}"


if __name__ == "__main__":
    raise SystemExit(main())
