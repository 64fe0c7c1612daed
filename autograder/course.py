"""Where a course's assignments, notebooks and checks live, and which assignment a file is.

The course is laid out as nbgrader expects (``solutions/<id>/<id>.ipynb`` is the source,
``assignments/<id>/<id>.ipynb`` the release) and the checks of assignment ``01_foo`` are in
``<checks_root>/a01_foo/{public,hidden}.py`` (a Python package name cannot start with a digit).
The engine's own tests use a small fixture course with the same layout.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from autograder.notebooks import NotebookError, assignment_id_of, read_notebook

REPO_ROOT = Path(__file__).resolve().parents[1]
ID_PATTERN = re.compile(r"^\d\d_[a-z0-9_]+$")


@dataclass(frozen=True)
class GradingSettings:
    """Limits for one assignment (``grading.json`` beside its checks overrides the defaults)."""

    cell_timeout: float = 120.0
    call_timeout: float = 30.0
    total_timeout: float = 900.0
    memory_mb: int = 6144
    threads: int = 0  # 0: the grader decides
    max_restarts: int = 2


@dataclass(frozen=True)
class Assignment:
    id: str
    course: Course

    @property
    def package(self) -> str:
        return "a" + self.id

    @property
    def solution_notebook(self) -> Path:
        return self.course.root / "solutions" / self.id / f"{self.id}.ipynb"

    @property
    def release_notebook(self) -> Path:
        return self.course.root / "assignments" / self.id / f"{self.id}.ipynb"

    @property
    def checks_dir(self) -> Path:
        return self.course.checks_root / self.package

    @property
    def public_checks(self) -> Path:
        return self.checks_dir / "public.py"

    @property
    def hidden_checks(self) -> Path:
        return self.checks_dir / "hidden.py"

    @property
    def settings(self) -> GradingSettings:
        path = self.checks_dir / "grading.json"
        if path.exists():
            return GradingSettings(**json.loads(path.read_text()))
        return GradingSettings()


def _default_root() -> Path:
    return Path(os.environ.get("CNN_COURSE_ROOT") or REPO_ROOT).resolve()


def _default_checks_root() -> Path:
    env = os.environ.get("CNN_COURSE_CHECKS")
    return Path(env).resolve() if env else _default_root() / "autograder" / "checks"


@dataclass(frozen=True)
class Course:
    """A course folder (the repository by default; ``CNN_COURSE_ROOT``/``CNN_COURSE_CHECKS`` override)."""

    root: Path = field(default_factory=_default_root)
    checks_root: Path = field(default_factory=_default_checks_root)

    @classmethod
    def at(cls, root: Path | str, checks_root: Path | str | None = None) -> Course:
        root = Path(root).resolve()
        return cls(root=root, checks_root=Path(checks_root).resolve() if checks_root else root / "autograder" / "checks")

    def assignment_ids(self) -> list[str]:
        base = self.root / "assignments"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and ID_PATTERN.match(p.name)
                      and (p / f"{p.name}.ipynb").exists())

    def get(self, assignment_id: str) -> Assignment:
        if assignment_id not in self.assignment_ids():
            known = ", ".join(self.assignment_ids()) or "none"
            raise KeyError(f"unknown assignment {assignment_id!r} (known: {known})")
        return Assignment(assignment_id, self)

    def identify(self, notebook: Path, nb=None) -> Assignment:
        """The assignment a submitted notebook belongs to: its metadata, else its file or folder name."""
        known = self.assignment_ids()
        candidates = []
        if nb is not None:
            candidates.append(assignment_id_of(nb))
        candidates += [notebook.stem, notebook.parent.name]
        for cand in candidates:
            if cand in known:
                return Assignment(cand, self)
        # A looser match: "01_apply_kernel-alice.ipynb", "01", "apply_kernel".
        for name in (notebook.stem, notebook.parent.name):
            for aid in known:
                if name.startswith(aid) or name == aid[:2] or name == aid[3:]:
                    return Assignment(aid, self)
        raise NotebookError(notebook, "cannot tell which assignment this notebook is: name it like "
                                      f"the release (one of {', '.join(known)}) or pass --assignment ID")

    def find_notebooks(self, folder: Path) -> list[Path]:
        """The notebooks under ``folder``, never following symbolic links to folders.

        A notebook that is itself a symbolic link is listed (reading it is refused with a reason).
        """
        found = []
        for here, dirs, files in os.walk(folder, followlinks=False):
            dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints" and not d.startswith("."))
            found += [Path(here) / f for f in files if f.endswith(".ipynb")]
        return sorted(found)


def load_release(assignment: Assignment):
    return read_notebook(assignment.release_notebook)
