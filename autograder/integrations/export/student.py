"""``python -m autograder export student DIR``: the repository students get.

What goes in (everything else stays in the instructor's repository):

- ``assignments/<id>/``: the release notebooks, as nbgrader generated them;
- ``autograder/``: the grading package without its instructor-only modules, with the public checks
  only (``public.py``, its helpers, ``grading.json``; never ``hidden.py``), and a stub
  ``autograder/integrations/export`` that makes every command but ``check`` say that it needs the instructor's
  repository;
- ``data_scripts/``: fetching the data with checksums;
- generated here: ``pyproject.toml`` and ``environment.yml`` (the instructor repository's runtime
  requirements), a ``Makefile`` (``make venv``, ``make data``, ``make check``, ``make lab``), a
  README for students, ``.github/workflows/classroom.yml`` (the public checks, for GitHub
  Classroom), ``.gitignore`` and ``.jupyter/`` (JupyterLab as students use it: nbgrader's
  assignment list and Validate only, no news prompt; ``make lab`` points JUPYTER_CONFIG_DIR there).

The repository is built in a temporary folder beside DIR, scanned for leaks (:mod:`.leaks`) and
only then renamed to DIR, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import ast
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from autograder.course import REPO_ROOT, Course
from autograder.integrations.export import (
    EXIT_USAGE,
    ExportError,
    data_needs,
    leaks,
    project_metadata,
    runtime_dependencies,
    selected_ids,
    torch_pins,
)

#: Modules of the grading package that only instructors use (they are not copied).
INSTRUCTOR_MODULES = {"authoring/notebook_builder.py", "integrations/demo.py", "integrations/demo_submissions",
                      "integrations/release.py", "integrations/nbgrader_autograde.py",
                      "integrations/nbgrader_api.py", "integrations/nbgrader_class.py", "integrations/scaffold.py",
                      "integrations/templates", "grading/from_source.py"}
#: Files of an assignment's checks folder that students get (plus what public.py imports from beside it).
PUBLIC_CHECK_FILES = {"__init__.py", "public.py", "common.py", "grading.json"}
SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".hypothesis"}
#: Module docstrings replaced in the export: they describe the instructor's side.
STUDENT_DOCSTRINGS = {
    "integrations/incell.py": '''Checks run from inside a notebook: your own test cells.

A test cell reads ``check("test_apply_kernel")``: it runs that exercise's public checks in the
notebook's kernel and prints what was tested and, when a check fails, what was expected against
what your code returned, with a hint.  Its value is the public points earned when a check failed,
and nothing when all passed (what nbgrader's Validate reads).  More checks run when your work is
graded, by the course's grader, never in your kernel.
''',
}
#: Which commands work in the student repository (every other one says it needs the instructor's).
STUDENT_COMMANDS = ("check",)

EXPORT_STUB = '''"""This is a student repository: it runs the course's public checks and nothing else.

Grading (the hidden checks and the reference solutions), releasing and exporting the course need
the instructor's repository.  ``python -m autograder check NOTEBOOK`` runs the public checks.
"""

from __future__ import annotations

import argparse
import sys

STUDENT_COMMANDS = %(commands)r
MESSAGE = ("`python -m autograder {command}` needs the instructor's repository (the reference solutions and "
           "hidden checks are not in this student repository); check your work with: "
           "python -m autograder check NOTEBOOK")


def needs_instructor(args) -> int:
    print("error: " + MESSAGE.format(command=getattr(args, "command", None) or "export"), file=sys.stderr)
    return 2


def add_parser(sub) -> None:
    """Registered last by the command line: every command but the self-check refuses, in one line."""
    export = sub.add_parser("export", help="(the instructor's repository only)")
    export.add_argument("rest", nargs=argparse.REMAINDER)
    for name, parser in sub.choices.items():
        if name not in STUDENT_COMMANDS:
            parser.set_defaults(func=needs_instructor)
    for action in getattr(sub, "_choices_actions", []):  # what `--help` lists
        if action.dest not in STUDENT_COMMANDS:
            action.help = "(the instructor's repository only)"
'''

JUPYTER_SERVER_CONFIG = {
    "ServerApp": {"jpserver_extensions": {
        # Students use the assignment list (fetch, submit) and Validate; the formgrader and the
        # course list are the instructor's.
        "nbgrader.server_extensions.assignment_list": True,
        "nbgrader.server_extensions.validate_assignment": True,
        "nbgrader.server_extensions.formgrader": False,
        "nbgrader.server_extensions.course_list": False,
    }},
    # No news feed (and so no prompt asking about it), no update check: nothing calls home.
    "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate"},
}
#: JupyterLab plugins of nbgrader's lab extension that are the instructor's: the assignment list and
#: Validate stay.  nbgrader's own "Nbgrader" menu goes too (it would list the instructor's commands
#: as blank entries); a menu of the student's commands replaces it (STUDENT_MENU).
DISABLED_LAB_PLUGINS = ("@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader",
                        "@jupyter/nbgrader:course-list", "@jupyter/nbgrader:menu")
USER_SETTINGS = ".jupyter/lab/user-settings"
#: JupyterLab user settings shipped with the export: {plugin: settings}.
LAB_SETTINGS = {
    # No "Would you like to get notified about official Jupyter news?" prompt, no update check.
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/mainmenu-extension/plugin": {"menus": [
        {"id": "jp-mainmenu-nbgrader-student", "label": "Nbgrader", "rank": 1000,
         "items": [{"command": "nbgrader:open-assignment-list"}]}]},
}
NBGRADER_STUDENT_CONFIG = {"CourseDirectory": {"course_id": "cnn-course"}}

GITIGNORE = """\
# environments
.venv/
__pycache__/
*.egg-info/
.ipynb_checkpoints/
.pytest_cache/
.hypothesis/
# data and weights (make data fetches them)
data/
torch_home/
build/
# JupyterLab's own state (the settings in .jupyter/ are the course's)
.jupyter/lab/workspaces/
.jupyter/migrated
"""

MAKEFILE = """\
# make venv   the environment in .venv (PyTorch, JupyterLab, the self-check)
# make data   the datasets into data/ (checksums verified; CNN_COURSE_MIRROR=DIR uses a local copy)
# make check  the public checks of every notebook (NB=path/to/notebook.ipynb for one)
# make lab    JupyterLab with the course's settings (.jupyter/)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
NB     ?= $(wildcard assignments/*/*.ipynb)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv data check lab

help:
\t@echo "make venv    create the environment in $(VENV)"
\t@echo "make data    fetch the datasets (%(data)s)"
\t@echo "make check   run the public checks of every notebook (or NB=assignments/ID/ID.ipynb)"
\t@echo "make lab     start JupyterLab with the course's settings"

# TORCH_INDEX=https://download.pytorch.org/whl/cpu: PyTorch's CPU-only wheels (a much smaller download on Linux).
TORCH_INDEX ?=

$(STAMP): pyproject.toml
\t@test -x $(PY) || $(PYTHON) -m venv $(VENV)
\t$(PY) -m pip install --quiet --upgrade pip
\t$(if $(TORCH_INDEX),$(PY) -m pip install --quiet --index-url $(TORCH_INDEX) %(torch)s)
\t$(PY) -m pip install --quiet -e .
\t@touch $(STAMP)

venv: $(STAMP)

data: $(STAMP)
\t$(PY) -m data_scripts.fetch %(data)s

check: $(STAMP) data
\t@status=0; for nb in $(NB); do $(PY) -m autograder check "$$nb" || status=1; done; exit $$status

lab: $(STAMP) data
\tJUPYTER_CONFIG_DIR="$(CURDIR)/.jupyter" $(VENV)/bin/jupyter lab
"""

README = """\
# Convolutional neural networks in PyTorch: your assignments

%(table)s

Each assignment is a Jupyter notebook in `assignments/`. You write the functions it asks for;
the notebook's test cells and a self-check tell you, as you go, whether they behave as asked.

## Set up (once)

You need Python 3.11, `make` and `git`.

```bash
make venv   # creates .venv: PyTorch, JupyterLab and the self-check
make data   # downloads the datasets into data/ and verifies their checksums
```

A GPU is not needed. On Linux, `make venv TORCH_INDEX=https://download.pytorch.org/whl/cpu`
installs PyTorch's CPU-only build, a much smaller download.

With conda instead: `conda env create -f environment.yml && conda activate cnn-course`, then
`python -m data_scripts.fetch %(data)s`. Offline, with a copy of the dataset files in a folder:
`CNN_COURSE_MIRROR=/path/to/folder make data`.

## Work in JupyterLab

```bash
make lab
```

opens JupyterLab with the course's settings (they are in `.jupyter/`; with conda, run
`JUPYTER_CONFIG_DIR=.jupyter jupyter lab`). Open `assignments/01_apply_kernel/01_apply_kernel.ipynb`
(the kernel is *Python 3 (ipykernel)*) and run the cells from the top (*Run → Run All Cells*): the
exercises you have not done yet stop with `NotImplementedError`, and the pictures that use them
appear once they are done.

Each exercise is a function whose docstring says what to implement, with shapes. Replace
`raise NotImplementedError()` with your code and run the test cell below it: it runs the public
checks of that exercise and prints what was tested and, when a check fails, what was expected
against what your code returned, with a hint. nbgrader's **Validate** button (notebook toolbar)
checks the saved notebook and lists the test cells that still fail; the *Nbgrader → Assignment
List* menu is there for courses that hand out assignments through nbgrader.

## Check your work before you submit

```bash
make check                                                  # every notebook
make check NB=assignments/01_apply_kernel/01_apply_kernel.ipynb
.venv/bin/python -m autograder check assignments/01_apply_kernel/01_apply_kernel.ipynb
```

This runs your notebook the way the grader will, in a fresh process from top to bottom, and then
its public checks. Exit code 0 means every public check passed. When your work is graded, more
checks run (hidden ones, with other inputs), so passing the public checks is necessary, not
sufficient: read the docstrings' contract carefully. Grading itself is not possible from this
repository (`python -m autograder grade` says so): only your course's grader can do it.

## Submit

Do it the way your course says:

- **GitHub Classroom**: commit and push your notebooks
  (`git add assignments && git commit -m "Exercise 2" && git push`). Each push runs the public
  checks in the repository's *Actions* tab (workflow *Autograding Tests*) and shows their points.
- **Gradescope**: upload the notebook file itself (`assignments/ID/ID.ipynb`), keeping its name.
- **nbgrader** (on a JupyterHub): *Nbgrader → Assignment List*, then *Submit*.

Whatever the route:

- keep the names and arguments of the functions you are asked to write;
- do not edit or delete the locked cells and the test cells: they are restored from the original
  notebook when your work is graded, so changes to them do not count;
- save the notebook before you submit, and keep it under 50 MB (*Edit → Clear Outputs of All
  Cells* if plots made it large);
- cells that run for a very long time are stopped when grading: keep experiments short.

## What is in this repository

| path | what |
|---|---|
| `assignments/` | the notebooks you work in |
| `autograder/` | the self-check and the public checks (`python -m autograder check`) |
| `data_scripts/` | downloads the datasets (`python -m data_scripts.fetch`) |
| `.jupyter/` | JupyterLab's settings for the course (used by `make lab`) |
| `.github/workflows/classroom.yml` | the public checks, run by GitHub Classroom on every push |
"""


def _title(release: Path) -> str:
    nb = json.loads(release.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            src = cell.get("source", "")
            first = ("".join(src) if isinstance(src, list) else src).strip().splitlines()
            if first and first[0].startswith("#"):
                return first[0].lstrip("#").strip()
    return ""


def replace_module_docstring(source: str, docstring: str) -> str:
    """``source`` with its module docstring replaced (the code after it untouched)."""
    tree = ast.parse(source)
    first = tree.body[0] if tree.body else None
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        return f'"""{docstring}"""\n\n{source}'
    rest = source.splitlines(keepends=True)[first.end_lineno:]
    return f'"""{docstring}"""\n' + "".join(rest)


def _copy_tree(src: Path, dst: Path, *, skip=lambda p: False) -> None:
    for here, dirs, files in os.walk(src):
        here_path = Path(here)
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not skip(here_path / d))
        for name in sorted(files):
            path = here_path / name
            if path.is_symlink() or skip(path) or name.endswith((".pyc", ".pyo")):
                continue
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def _public_check_files(checks_dir: Path) -> list[Path]:
    """The files of one assignment's checks that students get: the public checks and what they import."""
    chosen = {name for name in PUBLIC_CHECK_FILES if (checks_dir / name).is_file()}
    queue = [name for name in sorted(chosen) if name.endswith(".py")]
    while queue:
        tree = ast.parse((checks_dir / queue.pop()).read_text(encoding="utf-8"))
        names = set()
        for node in ast.walk(tree):
            # A check package imports its own helpers relatively only (docs/AUTHORING.md):
            # ``from .common import x`` or ``from . import common``.
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    names.add(node.module.split(".")[0] + ".py")
                else:
                    names.update(alias.name + ".py" for alias in node.names)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(
                    (".py", ".json")) and "/" not in node.value:
                names.add(node.value)
        for name in sorted(names):
            if name not in chosen and not name.startswith("hidden") and (checks_dir / name).is_file():
                chosen.add(name)
                if name.endswith(".py"):
                    queue.append(name)
    return [checks_dir / name for name in sorted(chosen)]


def copy_package(repo: Path, dst: Path, ids: list[str]) -> None:
    """The grading package with the public checks of ``ids`` only, and the student stub of ``export``."""
    src = repo / "autograder"
    top_skip = {src / "integrations" / "export", src / "checks", *(src / name for name in INSTRUCTOR_MODULES)}
    _copy_tree(src, dst / "autograder", skip=lambda p: p in top_skip)
    for name, docstring in STUDENT_DOCSTRINGS.items():
        path = dst / "autograder" / name
        if path.exists():
            path.write_text(replace_module_docstring(path.read_text(encoding="utf-8"), docstring), encoding="utf-8")
    checks = dst / "autograder" / "checks"
    checks.mkdir(parents=True)
    shutil.copy2(src / "checks" / "__init__.py", checks / "__init__.py")
    for aid in ids:
        checks_dir = src / "checks" / f"a{aid}"
        if not (checks_dir / "public.py").is_file():
            raise ExportError(f"{checks_dir}: no public.py (every released assignment needs its public checks)")
        (checks / checks_dir.name).mkdir()
        for path in _public_check_files(checks_dir):
            shutil.copy2(path, checks / checks_dir.name / path.name)
    stub = dst / "autograder" / "integrations" / "export" / "__init__.py"
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text(EXPORT_STUB % {"commands": STUDENT_COMMANDS}, encoding="utf-8")


def _toml_list(items: list[str], indent: str = "    ") -> str:
    return "[\n" + "".join(f"{indent}{json.dumps(i)},\n" for i in items) + "]"


def pyproject(repo: Path) -> str:
    meta = project_metadata(repo)
    return f"""\
# The student environment: `make venv` (pip install -e .) or `conda env create -f environment.yml`.
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "cnn-course-student"
version = {json.dumps(meta.get("version", "0.1.0"))}
description = "Assignments of the CNN course in PyTorch, with their public self-checks."
readme = "README.md"
requires-python = {json.dumps(meta.get("requires-python", ">=3.11,<3.12"))}
dependencies = {_toml_list(runtime_dependencies(repo))}

[tool.setuptools.packages.find]
include = ["autograder*", "data_scripts*"]

[tool.setuptools.package-data]
"*" = ["*.ini", "*.json"]
"""


def environment_yml(repo: Path) -> str:
    deps = "".join(f"      - {d}\n" for d in runtime_dependencies(repo))
    return f"""\
# The same environment as pyproject.toml, for conda users:
#   conda env create -f environment.yml && conda activate cnn-course
name: cnn-course
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - pip:
{deps}      - -e .
"""


def classroom_workflow(course: Course, ids: list[str]) -> str:
    """GitHub Classroom autograding: one command-grader step per assignment (its public checks)."""
    steps, env, runners = [], [], []
    for aid in ids:
        a = course.get(aid)
        rid = "a" + aid.replace("_", "-")
        minutes = min(60, max(10, math.ceil(a.settings.total_timeout / 60)))
        steps.append(f"""\
      - name: {aid}
        id: {rid}
        uses: education/autograding-command-grader@v1
        with:
          test-name: {aid}
          setup-command: python -m data_scripts.fetch {' '.join(data_needs(a.release_notebook))}
          command: python -m autograder check assignments/{aid}/{aid}.ipynb
          timeout: {minutes}
          max-score: 10
""")
        env.append(f'          {rid.upper()}_RESULTS: "${{{{ steps.{rid}.outputs.result }}}}"\n')
        runners.append(rid)
    return f"""\
# GitHub Classroom autograding: on every push, the public checks of each notebook.
# A step earns its max-score when every public check of that notebook passes
# (`python -m autograder check` exits 0); the reporter sends the points to GitHub Classroom.
# The hidden checks run when the course grades the work, not here.
name: Autograding Tests

on:
  push:
  workflow_dispatch:
  repository_dispatch:

permissions:
  checks: write
  actions: read
  contents: read

jobs:
  run-autograding-tests:
    runs-on: ubuntu-latest
    if: github.actor != 'github-classroom[bot]'
    steps:
      - name: Check out the submission
        uses: actions/checkout@v4

      - name: Set up Python
        uses: actions/setup-python@v5
        with:
          python-version: "3.11"
          cache: pip
          cache-dependency-path: pyproject.toml

      - name: Install PyTorch (CPU wheels; no GPU is needed)
        run: python -m pip install --index-url https://download.pytorch.org/whl/cpu {' '.join(torch_pins(course.root))}

      - name: Install the course environment
        run: python -m pip install -e .

{chr(10).join(steps)}
      - name: Autograding Reporter
        uses: education/autograding-grading-reporter@v1
        env:
{''.join(env)}        with:
          runners: {','.join(runners)}
"""


def _readme(course: Course, ids: list[str], data: list[str]) -> str:
    rows = ["| assignment | notebook |", "|---|---|"]
    for aid in ids:
        title = _title(course.get(aid).release_notebook)
        rows.append(f"| `{aid}` | [{title or aid}](assignments/{aid}/{aid}.ipynb) |")
    return README % {"table": "\n".join(rows), "data": " ".join(data)}


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


PRIVATE_GRADER_TEMPLATE = Path("ci_templates") / "github" / "grade-private.yml"


def build(dst: Path, course: Course, ids: list[str], private_grader: bool = False) -> None:
    """Write the student repository into the (empty) folder ``dst``."""
    repo = course.root
    for aid in ids:
        _copy_tree(course.get(aid).release_notebook.parent, dst / "assignments" / aid)
    copy_package(repo, dst, ids)
    _copy_tree(repo / "data_scripts", dst / "data_scripts", skip=lambda p: p.is_file() and p.suffix != ".py")
    data = []
    for aid in ids:
        data += [n for n in data_needs(course.get(aid).release_notebook) if n not in data]
    _write(dst / "pyproject.toml", pyproject(repo))
    _write(dst / "environment.yml", environment_yml(repo))
    _write(dst / "Makefile", MAKEFILE % {"data": " ".join(data), "torch": " ".join(torch_pins(repo))})
    _write(dst / "README.md", _readme(course, ids, data))
    _write(dst / ".gitignore", GITIGNORE)
    _write(dst / ".github" / "workflows" / "classroom.yml", classroom_workflow(course, ids))
    if private_grader:
        template = repo / PRIVATE_GRADER_TEMPLATE
        if not template.is_file():
            raise ExportError(f"{template}: missing (--private-grader copies it)")
        _write(dst / ".github" / "workflows" / "grade.yml", template.read_text(encoding="utf-8"))
    _write(dst / ".jupyter" / "jupyter_server_config.json", json.dumps(JUPYTER_SERVER_CONFIG, indent=2) + "\n")
    _write(dst / ".jupyter" / "labconfig" / "page_config.json",
           json.dumps({"disabledExtensions": {p: True for p in DISABLED_LAB_PLUGINS}}, indent=2) + "\n")
    for plugin, settings in LAB_SETTINGS.items():
        _write(dst / USER_SETTINGS / f"{plugin}.jupyterlab-settings", json.dumps(settings, indent=2) + "\n")
    _write(dst / ".jupyter" / "nbgrader_config.json", json.dumps(NBGRADER_STUDENT_CONFIG, indent=2) + "\n")


def export_student(target: Path | str, ids: list[str] | None = None, course: Course | None = None,
                   private_grader: bool = False) -> Iterator[str]:
    """Build the student repository at ``target``; yields progress lines. Raises ExportError."""
    course = course or Course.at(REPO_ROOT)
    target = Path(target).resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ExportError(f"{target} already exists and is not an empty folder: choose a new one", EXIT_USAGE)
    ids = selected_ids(course, ids)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp, course, ids, private_grader=private_grader)
        found = leaks.scan(tmp, leaks.secret_lines(course.root))
        if found:
            listed = "\n  ".join(str(leak) for leak in found[:30])
            raise ExportError(f"the student repository would leak what only instructors may see; nothing was "
                              f"written:\n  {listed}")
        if target.exists():
            target.rmdir()
        os.chmod(tmp, 0o755)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    yield f"student repository written to {target}: {', '.join(ids)}"
    if "05_activation_stats" in ids:
        yield ("note: 05_activation_stats's locked setup cell holds 04_cnn's simple_cnn and fit (an answer to 04): "
               "publish 05 only after 04's deadline, or export without it (--assignment ...) and add it later")
    yield f"next: cd {target} && git init && git add -A && git commit -m 'Course assignments' (then push it " \
          "and mark it a template repository for GitHub Classroom)"
