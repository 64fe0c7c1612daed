"""Every check package is written one way, and a private checks folder works like the installed one.

``autograder/checks/aNN_name/{__init__,common,public,hidden}.py`` with relative imports only, no
``raise AssertionError`` (a wrong answer is a ``CheckFailure``, a broken grader a ``RuntimeError``),
and a checks folder copied anywhere (``CNN_COURSE_CHECKS``) imports its own ``common.py``.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.course import REPO_ROOT

CHECKS = REPO_ROOT / "autograder" / "checks"
PACKAGES = sorted(p for p in CHECKS.iterdir() if p.is_dir() and p.name.startswith("a") and (p / "public.py").exists())


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_layout_and_relative_imports(package):
    assert (CHECKS / "__init__.py").is_file()
    for name in ("__init__.py", "common.py", "public.py", "hidden.py"):
        assert (package / name).is_file(), f"{package.name}/{name} is missing"
    for path in package.glob("*.py"):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert not (node.module or "").startswith("autograder.checks"), \
                    f"{path.name}:{node.lineno}: import the package's own helpers relatively (from .common import ...)"
            if isinstance(node, ast.Attribute) and node.attr in ("spec_from_file_location", "module_from_spec"):
                raise AssertionError(f"{path.name}:{node.lineno}: no file loaders in checks, import relatively")


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_no_raise_assertion_error(package):
    for path in package.glob("*.py"):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                assert not (isinstance(exc, ast.Name) and exc.id == "AssertionError"), \
                    f"{path.name}:{node.lineno}: raise CheckFailure (the student's) or RuntimeError (the grader's)"


SCRIPT = """
import json, sys
from pathlib import Path
from autograder.course import Course
from autograder.grading.from_source import check_code
out = {}
for checks in sys.argv[1:]:
    course = Course(checks_root=Path(checks).resolve())
    results = check_code("01_apply_kernel", {}, course=course, cells=["test_edge_kernels"])
    out[checks] = {name: r.status for name, r in results.items()}
print(json.dumps(out))
"""


def test_private_checks_folder_imports_its_own_common(tmp_path):
    """Two copies of the checks named alike, one with a broken kernel table in its common.py: each is
    graded with its own helpers (the installed package is never used in their place)."""
    good, bad = tmp_path / "one" / "checks", tmp_path / "two" / "checks"
    for dst in (good, bad):
        shutil.copytree(CHECKS, dst, ignore=shutil.ignore_patterns("__pycache__"))
    common = bad / "a01_apply_kernel" / "common.py"
    text = common.read_text(encoding="utf-8")
    assert '"top_edge": [[-1, -1, -1], [0, 0, 0], [1, 1, 1]]' in text, "test bug: the kernel table moved"
    common.write_text(text.replace('"top_edge": [[-1, -1, -1], [0, 0, 0], [1, 1, 1]]',
                                   '"top_edge": [[1, 1, 1], [0, 0, 0], [-1, -1, -1]]'), encoding="utf-8")
    env = {**os.environ, "CNN_COURSE_CHECKS": str(bad), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(good), str(bad)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out[str(good)]["test_top_edge_values"] == "passed"
    assert out[str(bad)]["test_top_edge_values"] == "failed"
    assert out[str(bad)]["test_left_edge_values"] == "passed"


def test_grader_names_live_in_one_check_scope():
    """exec'd grader names are seen by the same check only, never by the notebook; ``keep`` outlives the scope."""
    from autograder.submission.namespace import InProcessNamespace, StudentError

    notebook = {"model": "the student's model"}
    ns = InProcessNamespace(notebook, label="submission")
    ns.begin_scope("check_one")
    ns.exec("model = 'grader model'\ncache = 'built once'\ndef show():\n    return model", keep=("cache",))
    assert ns.eval("show()") == "grader model" and ns.eval("model") == "grader model"
    assert notebook == {"model": "the student's model"}, "grader code leaked into the notebook's namespace"
    ns.begin_scope("check_two")
    assert ns.eval("model") == "the student's model"
    assert ns.eval("cache") == "built once"
    with pytest.raises(StudentError):
        ns.eval("show()")
    ns.begin_scope("check_one")  # the same check run again starts a new scope too
    with pytest.raises(StudentError):
        ns.eval("show()")
