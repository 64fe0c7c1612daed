"""Fetching and locating the course's datasets and model weights.

Kept import-light (no torch) so that ``from data_scripts import DATA_DIR`` is instant in a notebook.
"""

from data_scripts.paths import data_dir

# Resolved once, at import; call data_scripts.paths.data_dir() to see a later change of CNN_COURSE_DATA.
DATA_DIR = data_dir()

__all__ = ["DATA_DIR"]
