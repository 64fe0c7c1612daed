"""``python -m autograder export student DIR``: what a student repository holds, and that it leaks nothing."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
import yaml

from autograder.course import REPO_ROOT, Course

from .conftest import clean_env, course_secrets, reference_notebook, run_cli

IDS = Course.at(REPO_ROOT).assignment_ids()


def test_it_holds_every_release_and_what_students_need(student_repo):
    for aid in IDS:
        exported = student_repo / "assignments" / aid / f"{aid}.ipynb"
        assert exported.read_bytes() == (REPO_ROOT / "assignments" / aid / f"{aid}.ipynb").read_bytes(), aid
        assert (student_repo / "autograder" / "checks" / f"a{aid}" / "public.py").is_file(), aid
    for name in ("README.md", "Makefile", "pyproject.toml", "environment.yml", ".gitignore",
                 ".github/workflows/classroom.yml", ".jupyter/jupyter_server_config.json",
                 ".jupyter/labconfig/page_config.json", "data_scripts/fetch.py", "autograder/cli.py"):
        assert (student_repo / name).is_file(), name
    readme = (student_repo / "README.md").read_text()
    for words in ("make venv", "make data", "make lab", "make check", "python -m autograder check", "Validate",
                  "GitHub Classroom", "Gradescope", "Submit"):
        assert words in readme, words
    makefile = (student_repo / "Makefile").read_text()
    for target in ("venv:", "data:", "check:", "lab:"):
        assert f"\n{target}" in makefile, target
    assert 'JUPYTER_CONFIG_DIR="$(CURDIR)/.jupyter"' in makefile


def test_nothing_hidden_leaves_the_instructor_repository(student_repo):
    """Scan every file of the export for the solutions' code and the hidden checks' text."""
    secrets = course_secrets()
    assert len(secrets) > 200, "the scan found too few secrets to mean anything"
    leaks = []
    for path in sorted(student_repo.rglob("*")):
        rel = path.relative_to(student_repo)
        if {"solutions", ".autograder_cache", "submitted", "autograded", "feedback"} & set(rel.parts):
            leaks.append(f"{rel}: an instructor-only folder")
        if path.name in ("hidden.py", "gradebook.db", "nbgrader_config.py") or path.suffix == ".db":
            leaks.append(f"{rel}: an instructor-only file")
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        if path.suffix == ".ipynb":
            nb = json.loads(text)
            text = "\n".join("".join(c["source"]) for c in nb["cells"])
            assert not any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), rel
        for marker in ("BEGIN HIDDEN TESTS", "BEGIN SOLUTION", "hidden=True"):
            if marker in text:
                leaks.append(f"{rel}: contains {marker!r}")
        lines = [" ".join(line.split()) for line in text.splitlines()]
        whole = set(lines) | {line.strip("#'\", ") for line in lines}
        flat = "\n".join(lines)
        leaks += [f"{rel}: a line of {origin}: {secret[:100]}" for secret, origin in secrets.items()
                  if secret in whole or (len(secret) > 30 and secret in flat)]
    assert not leaks, "\n".join(leaks[:40])
    # Nothing of the instructor's side beyond the package either.
    for name in ("docs", "benchmarks", "tests", "ci_templates", ".ci", "solutions", "nbgrader_config.py"):
        assert not (student_repo / name).exists(), name
    for module in ("demo.py", "release.py", "nbgrader_plugin.py", "authoring.py", "testing.py"):
        assert not (student_repo / "autograder" / module).exists(), module


def test_the_scan_would_see_a_leak(tmp_path, student_repo):
    """The leak scan is not vacuous: a single hidden line planted in a copy is found."""
    from autograder.integrations.export import leaks

    copy = tmp_path / "copy"
    shutil.copytree(student_repo, copy)
    hidden = max((line for line, origin in leaks.secret_lines(REPO_ROOT).items() if origin.endswith("hidden.py")), key=len)
    with open(copy / "autograder" / "grading" / "grade_notebook.py", "a") as f:
        f.write(f"\n# {hidden}\n")
    found = leaks.scan(copy, leaks.secret_lines(REPO_ROOT))
    assert [str(x) for x in found if x.path == "autograder/grading/grade_notebook.py"], found
    assert " ".join(hidden.split()) in course_secrets()


def test_an_export_that_would_leak_is_refused_and_leaves_nothing(tmp_path):
    """A course whose engine carries a line of a solution: the export stops, with exit code 3."""
    course_dir = tmp_path / "course"
    for name in ("assignments/01_apply_kernel", "solutions/01_apply_kernel", "data_scripts"):
        shutil.copytree(REPO_ROOT / name, course_dir / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO_ROOT / "autograder", course_dir / "autograder",
                    ignore=shutil.ignore_patterns("__pycache__", "a0[2-6]_*"))
    shutil.copy(REPO_ROOT / "pyproject.toml", course_dir)
    solution_line = max((line for line, origin in course_secrets(course_dir).items() if origin.startswith("solutions")),
                        key=len)
    with open(course_dir / "autograder" / "notebooks.py", "a") as f:
        f.write(f"\n# {solution_line}\n")
    target = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", "import sys; from autograder.cli import main; sys.exit(main())",
                           "export", "student", str(target)], cwd=course_dir, env=clean_env(PYTHONPATH=str(course_dir)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "leak" in proc.stderr and "notebooks.py" in proc.stderr
    assert not target.exists() and [p.name for p in tmp_path.iterdir()] == ["course"]


def test_an_existing_folder_is_not_overwritten(tmp_path):
    (tmp_path / "there").mkdir()
    (tmp_path / "there" / "mine.txt").write_text("keep")
    proc = run_cli("export", "student", str(tmp_path / "there"))
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert (tmp_path / "there" / "mine.txt").read_text() == "keep"


def test_grading_says_it_needs_the_instructor_repository(student_repo):
    env = clean_env(PYTHONPATH=str(student_repo))
    notebook = f"assignments/{IDS[0]}/{IDS[0]}.ipynb"
    for args in (("grade", notebook), ("grade-class", "assignments"), ("export", "student", "x")):
        proc = run_cli(*args, cwd=student_repo, env=env, timeout=120)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "needs the instructor's repository" in lines[0], (args, proc.stderr)
        assert "python -m autograder check" in lines[0]
    assert not (student_repo / "x").exists()


def test_pip_install_of_the_export_installs_only_the_exported_package(tmp_path, student_repo):
    """`pip install -e .` in the export: `autograder` is the export's, without hidden checks or a solutions folder."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # The project's dependencies (torch, ...) without its own package: only its site-packages folder.
    deps = next(Path(p) for p in sys.path if p.endswith("site-packages") and (Path(p) / "torch").is_dir())
    (site / "_course_dependencies.pth").write_text(f"{deps}\n")
    repo = tmp_path / "repo"
    shutil.copytree(student_repo, repo)
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                           "--no-deps", "--no-build-isolation", "--no-index", "-e", str(repo)],
                          capture_output=True, text=True, env=clean_env(), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    probe = ("import autograder, data_scripts, importlib.util as u\n"
             "from autograder.course import Course\n"
             "c = Course()\n"
             "print(autograder.__file__, data_scripts.__file__, c.root, c.assignment_ids(),\n"
             "      u.find_spec('autograder.checks.a01_apply_kernel.public') is not None,\n"
             "      u.find_spec('autograder.checks.a01_apply_kernel.hidden') is None,\n"
             "      u.find_spec('autograder.integrations.demo') is None, sep='\\n')\n")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         env=clean_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == str(repo / "autograder" / "__init__.py")
    assert lines[1] == str(repo / "data_scripts" / "__init__.py")
    assert lines[2] == str(repo) and lines[3] == str(IDS)
    assert lines[4:] == ["True", "True", "True"]


def test_environment_files_match_the_instructor_requirements(student_repo):
    import tomllib

    ours = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    theirs = tomllib.loads((student_repo / "pyproject.toml").read_text())
    assert theirs["project"]["dependencies"] == ours["dependencies"]
    assert theirs["project"]["requires-python"] == ours["requires-python"]
    assert theirs["tool"]["setuptools"]["packages"]["find"]["include"] == ["autograder*", "data_scripts*"]
    env = yaml.safe_load((student_repo / "environment.yml").read_text())
    pip = next(d for d in env["dependencies"] if isinstance(d, dict))["pip"]
    assert pip == [*ours["dependencies"], "-e ."]


def test_the_classroom_workflow_runs_the_public_checks_of_each_assignment(student_repo):
    from tests.ci.test_templates import check_classroom_workflow

    wf = yaml.safe_load((student_repo / ".github" / "workflows" / "classroom.yml").read_text())
    check_classroom_workflow(wf, IDS, exact=True)


def test_jupyter_configuration_keeps_only_the_student_tools(student_repo):
    """The names in .jupyter/ are those of the installed nbgrader, and Jupyter reads them that way."""
    server = json.loads((student_repo / ".jupyter" / "jupyter_server_config.json").read_text())
    extensions = server["ServerApp"]["jpserver_extensions"]
    installed = json.loads((Path(sys.prefix) / "etc/jupyter/jupyter_server_config.d/nbgrader.json").read_text())
    assert set(extensions) == set(installed["ServerApp"]["jpserver_extensions"])
    assert {k for k, on in extensions.items() if on} == {"nbgrader.server_extensions.assignment_list",
                                                         "nbgrader.server_extensions.validate_assignment"}
    assert server["LabApp"]["news_url"] is None
    disabled = json.loads((student_repo / ".jupyter" / "labconfig" / "page_config.json").read_text())
    import nbgrader

    bundle = "".join(p.read_text(errors="replace") for p in
                     (Path(nbgrader.__file__).parent / "labextension" / "static").glob("*.js"))
    for plugin in disabled["disabledExtensions"]:
        assert f'"{plugin}"' in bundle, f"{plugin} is not a plugin of the installed nbgrader"
    assert set(disabled["disabledExtensions"]) == {"@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:menu",
                                                    "@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:course-list"}
    settings = student_repo / ".jupyter" / "lab" / "user-settings" / "@jupyterlab"
    assert json.loads((settings / "apputils-extension" / "notification.jupyterlab-settings").read_text())[
        "fetchNews"] == "false"
    # nbgrader's menu is replaced by one holding only the assignment list (a command the installed nbgrader has).
    (menu,) = json.loads((settings / "mainmenu-extension" / "plugin.jupyterlab-settings").read_text())["menus"]
    assert [item["command"] for item in menu["items"]] == ["nbgrader:open-assignment-list"]
    assert '"nbgrader:open-assignment-list"' in bundle
    # Jupyter itself, pointed at the folder as `make lab` does, reads them so.
    jupyter = Path(sys.executable).with_name("jupyter")
    env = clean_env(JUPYTER_CONFIG_DIR=str(student_repo / ".jupyter"))
    out = subprocess.run([str(jupyter), "server", "extension", "list"], capture_output=True, text=True, env=env,
                         timeout=120)
    listing = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    ours = listing.split(f"Config dir: {student_repo / '.jupyter'}")[1].split("Config dir:")[0]
    states = dict(line.split() for line in ours.strip().splitlines()
                  if line.strip().startswith("nbgrader.") and line.split()[-1] in ("enabled", "disabled"))
    assert states == {name: "enabled" if on else "disabled" for name, on in extensions.items()}, listing
    labs = subprocess.run([str(jupyter), "labextension", "list"], capture_output=True, text=True, env=env, timeout=120)
    assert "Disabled extensions:" in labs.stdout + labs.stderr
    assert set(disabled["disabledExtensions"]) <= set((labs.stdout + labs.stderr).split())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_jupyterlab_started_as_make_lab_does_serves_the_student_tools_only(tmp_path, student_repo):
    """The server the student's browser talks to: no formgrader, nbgrader's student handlers, no news feed."""
    token, port = secrets.token_hex(8), _free_port()
    env = clean_env(JUPYTER_CONFIG_DIR=str(student_repo / ".jupyter"), HOME=str(tmp_path),
                    JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    jupyter = Path(sys.executable).with_name("jupyter")
    with open(tmp_path / "lab.log", "w") as log:
        server = subprocess.Popen([str(jupyter), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                                   f"--IdentityProvider.token={token}", "--allow-root"],
                                  cwd=student_repo, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def status(path: str) -> tuple[int, str]:
        sep = "&" if "?" in path else "?"
        try:
            with urllib.request.urlopen(f"{base}{path}{sep}token={token}", timeout=10) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if status("/api/status")[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "lab.log").read_text()[-3000:]
            time.sleep(0.5)
        assert status("/formgrader")[0] == 404 and status("/formgraders")[0] == 404
        assert status("/nbgrader_version?version=0.9.6")[0] == 200          # the student handlers are there
        assert status("/assignments?course_id=cnn-course")[0] != 404
        code, page = status("/lab")
        assert code == 200
        config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                      page, re.S).group(1))
        assert set(config["disabledExtensions"]) >= {"@jupyter/nbgrader:create-assignment",
                                                     "@jupyter/nbgrader:formgrader"}
        assert config["news"] == {"disabled": True}
        assert "@jupyter/nbgrader:validate-assignment" not in config["disabledExtensions"]
        assert "@jupyter/nbgrader:assignment-list" not in config["disabledExtensions"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.mark.slow
def test_the_self_check_inside_the_export_passes_a_correct_notebook_and_fails_a_blank_one(tmp_path, student_repo,
                                                                                           fashion_mnist_root):
    aid = "01_apply_kernel"
    good = tmp_path / f"{aid}.ipynb"
    nbformat.write(reference_notebook(aid), good)
    env = clean_env(PYTHONPATH=str(student_repo), CNN_COURSE_DATA=str(fashion_mnist_root))
    passed = run_cli("check", str(good), "--threads", "1", cwd=student_repo, env=env)
    assert passed.returncode == 0, passed.stdout[-3000:] + passed.stderr[-3000:]
    assert "public checks passed" in passed.stdout
    hidden_names = re.findall(r"^def (test_\w+)", (REPO_ROOT / "autograder/checks/a01_apply_kernel/hidden.py").read_text(), re.M)
    assert hidden_names and not [n for n in hidden_names if n in passed.stdout]
    blank = run_cli("check", f"assignments/{aid}/{aid}.ipynb", "--threads", "1", cwd=student_repo, env=env)
    assert blank.returncode == 1, blank.stdout[-3000:] + blank.stderr[-3000:]
    assert re.search(r"^0 of \d+ public checks passed", blank.stdout, re.M), blank.stdout[-2000:]
    assert "weaker isolation" not in passed.stderr + blank.stderr   # the worker ran the export's own package


def test_one_assignment_with_the_private_grader_workflow(open_tmp):
    """A template for one Classroom assignment: its notebook and checks only, and the private-grader workflow."""
    target = open_tmp("one") / "repo"
    proc = run_cli("export", "student", str(target), "--assignment", "02_conv_arithmetic", "--private-grader")
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (target / "assignments").iterdir()] == ["02_conv_arithmetic"]
    assert sorted(p.name for p in (target / "autograder" / "checks").iterdir() if p.is_dir()) == ["a02_conv_arithmetic"]
    assert (target / ".github/workflows/grade.yml").read_text() == \
        (REPO_ROOT / "ci_templates/github/grade-private.yml").read_text()
    from tests.ci.test_templates import check_classroom_workflow

    check_classroom_workflow(yaml.safe_load((target / ".github/workflows/classroom.yml").read_text()),
                             ["02_conv_arithmetic"], exact=True)
    assert "05_activation_stats" not in proc.stdout   # the release-order note is for exports that hold 05
