"""Where a course's assignments, notebooks and checks live, and which assignment a file is.

The course is laid out as nbgrader expects (``solutions/<id>/<id>.ipynb`` is the source,
``assignments/<id>/<id>.ipynb`` the release) and the checks of assignment ``01_foo`` are in
``<checks_root>/a01_foo/{public,hidden}.py`` (a Python package name cannot start with a digit).
Every check package is ``<checks_root>/aNN_name/{__init__,common,public,hidden}.py`` and imports its
helpers relatively (``from .common import ...``); the checks root has an ``__init__.py`` too, so
pytest imports ``public.py`` as ``<root's name>.aNN_name.public`` (``autograder.checks.a01_foo.public``
for the installed checks) and a private checks folder (``CNN_COURSE_CHECKS``) works exactly like
the installed one: see :func:`forget_other_checks`.
The engine's own tests use a small fixture course with the same layout.
"""

from __future__ import annotations

import json
import os
import re
import sys
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


def _package_name(path: Path) -> str | None:
    """The dotted module name pytest gives ``path`` (its folders with an ``__init__.py``, then its stem)."""
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts) if len(parts) > 1 else None


def forget_other_checks(files) -> None:
    """Let ``files`` be imported from where they are, even if a checks folder of the same name was imported.

    pytest (``--import-mode=importlib``) names a check file after its packages and reuses a module of
    that name already imported: two checks folders named alike (two private copies, a copy and the
    installed one) would share the first one's ``common.py``.  Modules of the same packages that come
    from another folder are dropped from ``sys.modules`` so that the next import reads these files.
    """
    for path in files:
        path = Path(path).resolve()
        name = _package_name(path)
        if name is None:  # a lone file: pytest names it after its stem (the rootdir is its folder)
            module = sys.modules.get(path.stem)
            where = getattr(module, "__file__", None)
            if where and Path(where).resolve() != path:
                del sys.modules[path.stem]
            continue
        top = name.split(".")[0]
        root = path.parents[name.count(".") - 1]  # the folder of package ``top``
        for mod_name, module in list(sys.modules.items()):
            if mod_name != top and not mod_name.startswith(top + "."):
                continue
            where = getattr(module, "__file__", None)
            if where and not Path(where).resolve().is_relative_to(root):
                del sys.modules[mod_name]


def load_release(assignment: Assignment):
    return read_notebook(assignment.release_notebook)
