"""Where the course keeps its data and model weights.

Every location can be moved with an environment variable, so CI, students and tests never
edit code: CNN_COURSE_DATA (datasets), CNN_COURSE_MIRROR (a local folder of downloaded files)
and torch's own TORCH_HOME / XDG_CACHE_HOME (model checkpoints). The variables are read at each
call, not at import, so a test or a notebook can change them at run time.
"""

from __future__ import annotations

import os
from pathlib import Path

from data_scripts.sources import ALEXNET_FILENAME

DATA_ENV = "CNN_COURSE_DATA"
MIRROR_ENV = "CNN_COURSE_MIRROR"


def _env_path(name: str) -> Path | None:
    """The path in environment variable *name*, or None when it is unset or empty."""
    value = os.environ.get(name, "")
    return Path(value).expanduser() if value else None


def repo_root() -> Path:
    """The repository checkout: the parent of the data_scripts folder."""
    return Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Root folder of the datasets: $CNN_COURSE_DATA, else <repo>/data."""
    return _env_path(DATA_ENV) or repo_root() / "data"


def torch_home() -> Path:
    """torch's cache folder, resolved as torch.hub does: $TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch.

    (A torch.hub.set_dir() call inside some other process cannot be seen from here.)
    """
    explicit = _env_path("TORCH_HOME")
    if explicit is not None:
        return explicit
    cache = _env_path("XDG_CACHE_HOME") or Path("~/.cache").expanduser()
    return cache / "torch"


def checkpoints_dir(torch_home_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder where torch.hub.load_state_dict_from_url looks for cached checkpoints."""
    base = Path(torch_home_dir).expanduser() if torch_home_dir is not None else torch_home()
    return base / "hub" / "checkpoints"


def alexnet_checkpoint_path(torch_home_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where torchvision's AlexNet_Weights.IMAGENET1K_V1 finds its cached checkpoint."""
    return checkpoints_dir(torch_home_dir) / ALEXNET_FILENAME


def mirror_dir() -> Path | None:
    """A local folder holding already-downloaded files ($CNN_COURSE_MIRROR), or None."""
    return _env_path(MIRROR_ENV)
