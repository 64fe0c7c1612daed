"""``python -m autograder export gradescope``: the bundle follows Gradescope's contract and grades as the engine does.

The zip is unpacked as Gradescope does it (``ROOT/source``; ``run_autograder`` also copied to
``ROOT``), a submission goes to ``ROOT/submission`` and ``run_autograder`` runs with
``AUTOGRADER_ROOT=ROOT`` and this project's environment first on PATH (its ``python3``).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.course import REPO_ROOT, Course

from .conftest import clean_env, reference_notebook, run_cli

AID = "03_unfold"
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gradescope") / f"gradescope-{AID}.zip"
    proc = run_cli("export", "gradescope", str(path), "--assignment", AID)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return path


@pytest.fixture(scope="module")
def gradescope_root(open_tmp, bundle) -> Path:
    """ROOT/source as Gradescope unpacks the zip, with run_autograder copied to ROOT (shared by the gradings)."""
    root = open_tmp("gradescope")
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(root / "source")
        for info in zf.infolist():
            if info.external_attr >> 16 & 0o111:
                os.chmod(root / "source" / info.filename, 0o755)
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    return root


def run_autograder(root: Path, notebooks: dict[str, nbformat.NotebookNode], data: Path | None = None) -> dict:
    """Put ``notebooks`` in ROOT/submission (replacing what was there), run run_autograder, read results.json."""
    for sub in ("submission", "results"):
        shutil.rmtree(root / sub, ignore_errors=True)
        (root / sub).mkdir()
    for name, nb in notebooks.items():
        nbformat.write(nb, root / "submission" / name)
    env = clean_env(AUTOGRADER_ROOT=str(root))
    if data is not None:
        env["CNN_COURSE_DATA"] = str(data)
    assert shutil.which("python3", path=env["PATH"]) == str(Path(sys.executable).parent / "python3")
    proc = subprocess.run([str(root / "run_autograder")], cwd="/", env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((root / "results" / "results.json").read_text())
    check_gradescope_format(results)
    return results


def check_gradescope_format(results: dict) -> None:
    """Gradescope's results.json: a numeric score, tests with the documented fields and visibilities."""
    assert isinstance(results["score"], int | float)
    assert isinstance(results.get("output", ""), str)
    assert results.get("stdout_visibility") == "hidden"   # the student's own output: instructors only
    for test in results["tests"]:
        assert isinstance(test["name"], str) and test["name"]
        assert isinstance(test["score"], int | float) and isinstance(test["max_score"], int | float)
        assert test.get("status", "passed") in ("passed", "failed")
        assert test.get("visibility", "visible") in VISIBILITY
        assert isinstance(test.get("output", ""), str)
    json.dumps(results)


def test_the_bundle_follows_gradescopes_contract(bundle):
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
        setup = zf.read("setup.sh").decode()
        run = zf.read("run_autograder").decode()
        requirements = zf.read("requirements.txt").decode()
        readme = zf.read("README.md").decode()
        meta = json.loads(zf.read("bundle.json"))
    for script in ("setup.sh", "run_autograder"):
        assert script in names and modes[script] & stat.S_IXUSR, script   # at the top level, executable
    # The course it grades, and only that assignment.
    assert {f"solutions/{AID}/{AID}.ipynb", f"assignments/{AID}/{AID}.ipynb", f"autograder/checks/a{AID}/hidden.py",
            f"autograder/checks/a{AID}/public.py", "data_scripts/fetch.py", "autograder/cli.py"} <= names
    others = [a for a in Course.at(REPO_ROOT).assignment_ids() if a != AID]
    assert not [n for n in names if any(o in n for o in others)]
    assert not [n for n in names if ".autograder_cache" in n or "__pycache__" in n or n.endswith(".pyc")]
    assert meta["assignment"] == AID and meta["assignments"] == [AID]
    # setup.sh: pinned CPU wheels, the sandbox's packages, the data with checksums.
    assert "torch==2.14.1 torchvision==0.29.1" in setup and "--index-url https://download.pytorch.org/whl/cpu" in setup
    assert "apt-get install" in setup and "bubblewrap acl" in setup
    assert "python3.11 -m venv" in setup and 'pip install --quiet -r "$SOURCE/requirements.txt"' in setup
    assert "-m data_scripts.fetch fashion_mnist" in setup
    lines = [ln for ln in requirements.splitlines() if ln and not ln.startswith("#")]
    assert {"pytest", "hypothesis", "nbformat", "numpy"} <= {ln.split(">")[0].split("=")[0].split("<")[0] for ln in lines}
    assert not [ln for ln in lines if ln.startswith(("torch", "nbgrader", "jupyterlab"))]
    # run_autograder: AUTOGRADER_ROOT, python3 from PATH, the weak-sandbox flag off unless an instructor opts in.
    assert 'ROOT="${AUTOGRADER_ROOT:-/autograder}"' in run and "exec python3 -m autograder" in run
    assert "\n# export CNN_ALLOW_WEAK_SANDBOX=1" in run and "--allow-weak-sandbox" not in run
    assert "CNN_ALLOW_WEAK_SANDBOX=1" in readme and "WARNING" in readme
    for script in ("setup.sh", "run_autograder"):
        check = subprocess.run(["bash", "-n"], input=(setup if script == "setup.sh" else run), text=True,
                               capture_output=True)
        assert check.returncode == 0, (script, check.stderr)


def test_a_bundle_of_the_whole_course_holds_every_assignment(tmp_path):
    path = tmp_path / "course.zip"
    proc = run_cli("export", "gradescope", str(path))
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        run = zf.read("run_autograder").decode()
    for aid in Course.at(REPO_ROOT).assignment_ids():
        assert f"solutions/{aid}/{aid}.ipynb" in names and f"autograder/checks/a{aid}/hidden.py" in names
    assert "--assignment" not in run
    assert run_cli("export", "gradescope", str(tmp_path / "x.zip"), "--assignment", "99_nope").returncode == 2


def test_a_submission_without_a_notebook_gets_a_valid_result(gradescope_root):
    for sub in ("submission", "results"):
        shutil.rmtree(gradescope_root / sub, ignore_errors=True)
        (gradescope_root / sub).mkdir()
    (gradescope_root / "submission" / "answers.pdf").write_bytes(b"%PDF-1.4")
    proc = subprocess.run([str(gradescope_root / "run_autograder")], env=clean_env(AUTOGRADER_ROOT=str(gradescope_root)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((gradescope_root / "results" / "results.json").read_text())
    check_gradescope_format(results)
    assert results["score"] == 0 and f"{AID}.ipynb" in results["output"]


@pytest.mark.slow
def test_the_unpacked_bundle_gives_full_marks_to_the_reference_and_zero_to_the_blank_release(gradescope_root,
                                                                                             fashion_mnist_root):
    course = Course.at(REPO_ROOT)
    reference = run_autograder(gradescope_root, {f"{AID}.ipynb": reference_notebook(AID, course)}, fashion_mnist_root)
    assert reference["max_score"] > 0 and reference["score"] == reference["max_score"], reference["output"]
    assert reference["extra_data"]["assignment"] == AID
    # Graded in the full sandbox (bubblewrap, a dedicated user), with no weaker isolation accepted.
    assert reference["extra_data"]["protections"]["bubblewrap"] is True and not reference["extra_data"]["weak_isolation"]
    hidden = [t for t in reference["tests"] if "hidden" in t.get("tags", [])]
    assert hidden and all(t["visibility"] == "after_published" for t in hidden)
    # The blank release, uploaded under another name: zero points out of the same total.
    blank = nbformat.read(course.get(AID).release_notebook, as_version=4)
    results = run_autograder(gradescope_root, {"my work.ipynb": blank}, fashion_mnist_root)
    assert results["score"] == 0 and results["max_score"] == reference["max_score"], results["output"]


def test_one_notebook_per_assignment_is_graded(tmp_path):
    """Two copies uploaded: the one named like the release is graded, and the student is told about the other."""
    from autograder.integrations.export.gradescope_runtime import choose

    course = Course.at(REPO_ROOT)
    release = nbformat.read(course.get(AID).release_notebook, as_version=4)
    paths = [tmp_path / "copy of mine.ipynb", tmp_path / f"{AID}.ipynb"]
    for p in paths:
        nbformat.write(release, p)
    chosen, notes = choose(course, paths, AID)
    assert chosen == {AID: paths[1]}
    assert len(notes) == 1 and "copy of mine.ipynb" in notes[0]
    stray = tmp_path / "untitled.ipynb"
    stray.write_text("{}")
    chosen, notes = choose(course, [stray], None)
    assert chosen == {} and "cannot tell which assignment" in notes[0]
