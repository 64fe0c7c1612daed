"""``python -m autograder export gradescope FILE.zip [--assignment ID]``: a Gradescope autograder bundle.

Gradescope's contract: the zip holds ``setup.sh`` and ``run_autograder`` at its top level; its
content is unpacked into ``/autograder/source``; ``setup.sh`` runs once, as root, when Gradescope
builds the image (Ubuntu); ``run_autograder`` (copied to ``/autograder/run_autograder``) runs for
every submission, with the student's files in ``/autograder/submission``, and writes
``/autograder/results/results.json``.

The bundle carries the course (releases, solutions, every check: Gradescope's source is private),
the grading package and the data scripts.  ``setup.sh`` installs bubblewrap and acl, Python 3.11,
the pinned CPU wheels of torch and torchvision and the rest of what grading needs into
``source/.venv``, fetches the data with checksums and grades each reference once (a warm cache
and a smoke test).  ``run_autograder`` honours ``AUTOGRADER_ROOT`` (default ``/autograder``), puts
``source/.venv`` first on PATH when setup.sh made it, and runs the ``python3`` first on PATH.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from autograder.course import REPO_ROOT, Course
from autograder.integrations.export import (
    EXIT_USAGE,
    INTERACTIVE_ONLY,
    ExportError,
    data_needs,
    requirement_name,
    runtime_dependencies,
    selected_ids,
    torch_pins,
)

SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".hypothesis"}
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"

SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu 22.04 or 24.04).
# It installs what grading needs; nothing here runs student code.
set -euo pipefail
SOURCE="${AUTOGRADER_ROOT:-/autograder}/source"
[ -d "$SOURCE/autograder" ] || SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$SOURCE"
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

# The grader's sandbox: bubblewrap (an allowlist root for student code) and acl (it grants its
# unprivileged user access to the environment).
apt-get update -qq
apt-get install -y -qq --no-install-recommends bubblewrap acl ca-certificates

# Python 3.11 (the course's version): Ubuntu's own package where it has one, else deadsnakes.
if ! apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv; then
  apt-get install -y -qq --no-install-recommends software-properties-common gpg-agent
  add-apt-repository -y ppa:deadsnakes/ppa
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv
fi
python3.11 -m venv "$SOURCE/.venv"
PY="$SOURCE/.venv/bin/python3"
"$PY" -m pip install --quiet --upgrade pip
# PyTorch's CPU wheels, pinned (no CUDA download), then the rest of what grading needs.
"$PY" -m pip install --quiet --index-url %(torch_index)s %(torch_pins)s
"$PY" -m pip install --quiet -r "$SOURCE/requirements.txt"

# The data, verified against its published checksums, where run_autograder points the grader.
"$PY" -m data_scripts.fetch %(data)s --root "$SOURCE/data" --torch-home "$SOURCE/torch_home"

# Everything the sandboxed worker needs is readable; what only the grader may read is not.
chmod -R a+rX "$SOURCE"
chmod 700 "$SOURCE/solutions"
chmod 600 "$SOURCE"/autograder/checks/*/hidden.py

# Grade each reference once: caches the expensive reference values in the image and checks that
# the reference gets full marks here (the instructor's own code: weaker isolation is fine for it).
export PATH="$SOURCE/.venv/bin:$PATH" PYTHONPATH="$SOURCE" CNN_COURSE_ROOT="$SOURCE"
export CNN_COURSE_CHECKS="$SOURCE/autograder/checks" CNN_COURSE_DATA="$SOURCE/data" TORCH_HOME="$SOURCE/torch_home"
if ! CNN_ALLOW_WEAK_SANDBOX=1 "$PY" -m autograder.integrations.export.gradescope_runtime warm --source "$SOURCE"; then
  echo "WARNING: a reference did not get full marks in this image: read the warm-up log above" >&2
fi
mkdir -p "$SOURCE/.autograder_cache"
chmod 700 "$SOURCE/.autograder_cache"
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this for every submission: it grades every notebook in $AUTOGRADER_ROOT/submission
# with the course's sandboxed grader and writes $AUTOGRADER_ROOT/results/results.json.
# AUTOGRADER_ROOT defaults to /autograder (Gradescope's layout: source/, submission/, results/).
set -uo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
# setup.sh's environment, when there is one; otherwise the python3 first on PATH.
if [ -x "$SOURCE/.venv/bin/python3" ]; then
  PATH="$SOURCE/.venv/bin:$PATH"
fi
export PATH
export PYTHONPATH="$SOURCE${PYTHONPATH:+:$PYTHONPATH}"
export CNN_COURSE_ROOT="$SOURCE" CNN_COURSE_CHECKS="$SOURCE/autograder/checks"
export CNN_COURSE_DATA="${CNN_COURSE_DATA:-$SOURCE/data}" TORCH_HOME="${TORCH_HOME:-$SOURCE/torch_home}"
export CNN_AUTOGRADER_CACHE="${CNN_AUTOGRADER_CACHE:-$SOURCE/.autograder_cache}"
# !!! Only if Gradescope's container cannot run bubblewrap (every result then says "the sandbox could
# !!! not start"), uncomment the next line -- and read README.md first: student code then runs
# !!! WITHOUT the sandbox's allowlist root and may be able to read what the grader can read.
# export CNN_ALLOW_WEAK_SANDBOX=1
mkdir -p "$ROOT/results"
cd "$SOURCE"
exec python3 -m autograder.integrations.export.gradescope_runtime run --root "$ROOT"%(assignment_arg)s
"""

README = """\
# Gradescope autograder: %(what)s

Built by `python -m autograder export gradescope` from the course's instructor repository.
**This zip contains the reference solutions and the hidden checks: upload it to Gradescope
only, never share it.**

## Use it

1. Gradescope: create a *Programming Assignment*, open *Configure Autograder*, choose
   *Zip file upload*, base image **Ubuntu 22.04** (24.04 works too), and upload this zip.
   Building the image runs `setup.sh` (it installs Python 3.11, torch %(torch)s CPU, the data,
   and grades each reference once: its log ends with `warm-up ...: the reference scores X / X`).
2. Set the autograder timeout to at least **%(minutes)d minutes** and give the container as much
   memory as your plan allows (the grader caps student code at %(memory)s MB).
3. Students upload their notebook (`ID.ipynb`). Each notebook is graded by the same engine as
   `python -m autograder grade`; one notebook per assignment is graded (the one named like the
   release wins). Hidden checks' results are shown after you publish the grades
   (`after_published`); the output of the student's code is shown to instructors only.
   Written answers appear as zero-point entries: grade them by hand.

## The sandbox, and the fallback flag (read this)

Student code runs in the grader's sandbox: a separate process as an unprivileged user, under
bubblewrap with an allowlist root, so the solutions and hidden checks in this folder are not
there for it. `setup.sh` installs `bubblewrap` and `acl`; Gradescope's containers run as root,
and the grader creates its own unprivileged user (`cnn-sandbox`).

If bubblewrap cannot start in Gradescope's container (some hosts forbid the user namespaces it
needs), the grader **refuses to grade**: every result says the sandbox could not start, and no
student gets a wrong grade. Only then, and knowingly, uncomment

    export CNN_ALLOW_WEAK_SANDBOX=1

in `run_autograder` (or add `--allow-weak-sandbox`; the same flag as `python -m autograder grade`).

> **WARNING: WITH THIS FLAG STUDENT CODE RUNS WITHOUT THE SANDBOX'S ALLOWLIST ROOT.** It still
> runs in a separate process, as the unprivileged user when that works, with time, memory and
> process limits, and comparisons still happen in the grader; but it sees the machine's files.
> `setup.sh` makes `solutions/`, the `hidden.py` files and the reference cache readable by root
> only, which keeps them from the unprivileged user (it leaves everything else world-readable, so
> that the grader never needs to grant that user access with ACLs); if even that user cannot be
> used, student code runs as root and can read the solutions and hidden checks, and print them
> into a failure message that students see. Every results.json says which protections were in force
> (`extra_data.protections`, `extra_data.weak_isolation`).

## Try it before uploading

    mkdir -p /tmp/gs/source /tmp/gs/submission && unzip -q THIS.zip -d /tmp/gs/source
    cp my_notebook.ipynb /tmp/gs/submission/
    AUTOGRADER_ROOT=/tmp/gs bash /tmp/gs/source/run_autograder && cat /tmp/gs/results/results.json

(with the course's environment first on PATH, or after running `setup.sh` on a disposable machine).

## Contents

| path | what |
|---|---|
| `setup.sh`, `run_autograder` | Gradescope's two entry points |
| `requirements.txt` | what grading needs besides torch and torchvision (pinned in setup.sh) |
| `assignments/`, `solutions/` | the releases and the reference solutions of %(ids)s |
| `autograder/` | the grading engine and every check (public and hidden) |
| `data_scripts/` | fetching the data with checksums |
| `bundle.json` | what this bundle grades, and the pins |
"""


def _pins(repo: Path) -> tuple[list[str], list[str]]:
    """(torch and torchvision pins, the other requirements of grading)."""
    rest = [r for r in runtime_dependencies(repo)
            if requirement_name(r) not in INTERACTIVE_ONLY | {"torch", "torchvision"}]
    return torch_pins(repo), rest


def _files(course: Course, ids: list[str]) -> Iterator[tuple[Path, str]]:
    """(file on disk, path in the zip) of the bundled course and package."""
    root = course.root

    def walk(folder: Path, skip=lambda p: False):
        for here, dirs, files in os.walk(folder):
            here_path = Path(here)
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not skip(here_path / d))
            for name in sorted(files):
                path = here_path / name
                if not path.is_symlink() and not name.endswith((".pyc", ".pyo")):
                    yield path, path.relative_to(root).as_posix()

    for aid in ids:
        a = course.get(aid)
        if not a.solution_notebook.is_file():
            raise ExportError(f"{a.solution_notebook}: missing (the bundle grades against the reference)")
        yield from walk(a.release_notebook.parent)
        yield from walk(a.solution_notebook.parent)
    checks = course.checks_root
    keep = {f"a{aid}" for aid in ids}
    demo_answers = root / "autograder" / "integrations" / "demo_submissions"  # the demo course's, not graded here
    yield from walk(root / "autograder",
                    skip=lambda p: (p.parent == checks and p.name not in keep) or p == demo_answers)
    yield from walk(root / "data_scripts")
    yield root / "pyproject.toml", "pyproject.toml"


def _add(zf: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = ((0o755 if executable else 0o644) | 0o100000) << 16
    zf.writestr(info, data)


def export_gradescope(target: Path | str, assignment_id: str | None = None,
                      course: Course | None = None) -> Iterator[str]:
    """Write the Gradescope bundle to ``target`` (a .zip); yields progress lines. Raises ExportError."""
    course = course or Course.at(REPO_ROOT)
    if course.checks_root != course.root / "autograder" / "checks":
        raise ExportError("CNN_COURSE_CHECKS points outside the course: export from the instructor repository "
                          "itself", EXIT_USAGE)
    target = Path(target).resolve()
    if target.suffix != ".zip":
        raise ExportError(f"{target}: the bundle must be a .zip file", EXIT_USAGE)
    if target.is_dir():
        raise ExportError(f"{target} is a folder", EXIT_USAGE)
    ids = selected_ids(course, [assignment_id] if assignment_id else None)
    torch, rest = _pins(course.root)
    data = []
    for aid in ids:
        data += [n for n in data_needs(course.get(aid).release_notebook) if n not in data]
    settings = [course.get(aid).settings for aid in ids]
    minutes = math.ceil((sum(s.total_timeout for s in settings) + 300) / 60)
    memory = max(s.memory_mb for s in settings)
    bundle = {"assignment": assignment_id, "assignments": ids, "pins": torch, "torch_index": TORCH_INDEX,
              "data": data, "timeout_minutes": minutes}
    generated = {
        "setup.sh": (SETUP_SH % {"torch_index": TORCH_INDEX, "torch_pins": " ".join(torch), "data": " ".join(data)},
                     True),
        "run_autograder": (RUN_AUTOGRADER % {"assignment_arg": f" --assignment {assignment_id}" if assignment_id
                                             else ""}, True),
        "requirements.txt": ("# What grading needs besides torch and torchvision (setup.sh installs those, "
                             "pinned, from PyTorch's CPU index).\n" + "".join(f"{r}\n" for r in rest), False),
        "README.md": (README % {"what": assignment_id or "every assignment", "torch": torch[0].split("==")[1],
                                "minutes": minutes, "memory": memory, "ids": ", ".join(ids)}, False),
        "bundle.json": (json.dumps(bundle, indent=2) + "\n", False),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            for name, (text, executable) in generated.items():
                _add(zf, name, text.encode(), executable)
            for path, name in _files(course, ids):
                _add(zf, name, path.read_bytes())
        os.chmod(tmp, 0o600)  # it holds the solutions
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    yield f"Gradescope autograder written to {target}: {', '.join(ids)} (torch {torch[0].split('==')[1]} CPU)"
    yield f"upload it in Gradescope's Configure Autograder (Ubuntu 22.04); autograder timeout >= {minutes} min"
    yield "it holds the solutions and hidden checks: keep it private"


def unpack_like_gradescope(bundle: Path, root: Path) -> Path:
    """Unpack ``bundle`` as Gradescope does (``root/source``, with ``run_autograder`` copied to ``root``)."""
    source = root / "source"
    source.mkdir(parents=True)
    with zipfile.ZipFile(bundle) as zf:
        for info in zf.infolist():
            zf.extract(info, source)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(source / info.filename, mode)
    shutil.copy2(source / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir(exist_ok=True)
    (root / "results").mkdir(exist_ok=True)
    return source
