"""A student's session in JupyterLab, in a real browser (Playwright driving Debian's chromium).

JupyterLab runs from the project's environment on 127.0.0.1 with a one-off token, in a folder
holding a copy of the release notebook (as a student's laptop would).  The test runs all cells,
sees the stubs' NotImplementedError, types a solution into the first exercise through the
editor, re-runs its visible test cell and sees it pass, then presses nbgrader's Validate button
and reads the verdict.  Screenshots of each step are saved under ``OUT/`` (the pytest temporary
folder, or ``$CNN_COURSE_ARTIFACTS`` when set) as test artifacts.

The student repository (``python -m autograder export student``) is checked too: JupyterLab started
as its ``make lab`` starts it (``JUPYTER_CONFIG_DIR`` = its ``.jupyter/``, no command-line flags)
shows nbgrader's assignment list and Validate, and neither the instructor's tools (Create
Assignment, the formgrader) nor Jupyter's news prompt.  With ``CNN_COURSE_BROWSER_TARGET=export``
the student's session above also runs in that repository instead of a copy of the release.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from autograder.course import Course

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("CNN_COURSE_CHROMIUM", "/usr/bin/chromium")
#: "repo": a copy of the release served from this repository's environment; "export": the student repository.
TARGET = os.environ.get("CNN_COURSE_BROWSER_TARGET", "repo")
AID = "01_apply_kernel"
FIRST_EXERCISE = """\
top_edge = torch.tensor([[-1., -1., -1.], [0., 0., 0.], [1., 1., 1.]])
left_edge = torch.tensor([[-1., 1., 0.], [-1., 1., 0.], [-1., 1., 0.]])
diag1_edge = torch.tensor([[0., -1., 1.], [-1., 1., 0.], [1., 0., 0.]])
diag2_edge = torch.tensor([[1., -1., 0.], [0., 1., -1.], [0., 0., 1.]])
"""
# Chromium as root in a container, with no calls home (this machine's network is closed).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def playwright_chromium():
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (`.ci/run` does)"
        if os.environ.get("CNN_COURSE_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@contextmanager
def _serve(folder: Path, home: Path, env_extra: dict, args: list[str]):
    """JupyterLab on 127.0.0.1 serving ``folder``; yields (base URL, token)."""
    token, port = secrets.token_hex(16), _free_port()
    env = {**os.environ, "HOME": str(home), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""), **env_extra}
    env.pop("MPLBACKEND", None)  # other tests set Agg for their kernels; a student's JupyterLab draws inline
    log = open(home / "jupyterlab.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--ServerApp.open_browser=False",
         "--allow-root", *args],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                log.close()
                pytest.fail("JupyterLab did not start:\n" + (home / "jupyterlab.log").read_text()[-3000:])
            time.sleep(0.5)
    try:
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def student_export(tmp_path_factory) -> Path:
    """The student repository, as `python -m autograder export student DIR` writes it."""
    target = tmp_path_factory.mktemp("export") / "student-repo"
    env = {k: v for k, v in os.environ.items() if k not in ("CNN_COURSE_ROOT", "CNN_COURSE_CHECKS", "PYTHONPATH")}
    proc = subprocess.run([sys.executable, "-m", "autograder", "export", "student", str(target)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


@contextmanager
def _serve_export(export: Path, home: Path, data: Path):
    """The student repository served as its `make lab` does: its .jupyter/ config, no flags; its own package."""
    env = {"JUPYTER_CONFIG_DIR": str(export / ".jupyter"), "PYTHONPATH": str(export), "CNN_COURSE_DATA": str(data)}
    with _serve(export, home, env, []) as (url, token):
        yield f"{url}/lab/tree/assignments/{AID}/{AID}.ipynb?token={token}", export / "assignments" / AID


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory, fashion_mnist_root, request):
    """JupyterLab serving a student's folder with the release notebook; yields (url, folder)."""
    home = tmp_path_factory.mktemp("home")
    if TARGET == "export":
        with _serve_export(request.getfixturevalue("student_export"), home, fashion_mnist_root) as served:
            yield served
        return
    folder = tmp_path_factory.mktemp("student")
    shutil.copy(Course().get(AID).release_notebook, folder / f"{AID}.ipynb")
    args = ["--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with _serve(folder, home, {"CNN_COURSE_DATA": str(fashion_mnist_root)}, args) as (url, token):
        yield f"{url}/lab/tree/{AID}.ipynb?token={token}", folder


@pytest.fixture(scope="module")
def export_lab(tmp_path_factory, fashion_mnist_root, request):
    """JupyterLab in the student repository (the same server as `jupyterlab` when that one serves it)."""
    if TARGET == "export":
        yield request.getfixturevalue("jupyterlab")
        return
    home = tmp_path_factory.mktemp("export-home")
    with _serve_export(request.getfixturevalue("student_export"), home, fashion_mnist_root) as served:
        yield served


@pytest.fixture
def artifacts(tmp_path) -> Path:
    out = Path(os.environ.get("CNN_COURSE_ARTIFACTS", tmp_path)) / "browser"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _wait_idle(page, timeout_s: float = 300) -> None:
    """Wait until the kernel has run everything queued (no cell shows [*] and the kernel is idle)."""
    page.wait_for_function(
        """() => {
            const busy = [...document.querySelectorAll('.jp-InputArea-prompt')]
                .some(p => p.textContent.includes('*'));
            const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
            const idle = !status || status.getAttribute('data-status') !== 'busy';
            return !busy && idle;
        }""", timeout=timeout_s * 1000, polling=500)


def _wait_kernel_ready(page) -> None:
    """Wait for the notebook's kernel to be idle (answering JupyterLab's kernel dialog if it asks)."""
    status = page.locator(".jp-StatusBar-TextItem", has_text="| Idle")
    select = page.locator(".jp-Dialog-button", has_text="Select")
    deadline = time.monotonic() + 120
    while not status.count():
        assert time.monotonic() < deadline, "the kernel did not start"
        if select.count():
            try:
                select.first.click(timeout=2000)
            except Exception:  # noqa: BLE001 - the dialog moved or closed meanwhile; look again
                pass
        page.wait_for_timeout(250)


def _run_menu(page, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def test_a_student_runs_fixes_self_checks_and_validates(playwright_chromium, jupyterlab, artifacts):
    url, folder = jupyterlab
    page = playwright_chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(url)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    _wait_kernel_ready(page)
    page.screenshot(path=artifacts / "1-opened.png")

    # 1. Run everything: the stubs raise NotImplementedError, the demos draw their plots inline.
    _run_menu(page, "Run", "Run All Cells")
    _wait_idle(page)
    page.screenshot(path=artifacts / "2-run-all.png", full_page=False)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                          has_text="NotImplementedError")
    assert errors.count() > 0, "running the release should show the stubs' NotImplementedError"
    assert page.locator(".jp-OutputArea-output img").count() > 0, "the demos' plots should render inline"

    # 2. Type a solution into the first exercise cell, through the editor, and run it and its test.
    exercise = page.locator(".jp-CodeCell", has_text="raise NotImplementedError()").first
    exercise.scroll_into_view_if_needed()
    exercise.locator(".cm-content").click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(FIRST_EXERCISE)
    page.keyboard.press("Shift+Enter")   # runs the exercise and moves to its visible test cell
    page.keyboard.press("Shift+Enter")   # runs the test cell
    _wait_idle(page)
    test_cell = page.locator(".jp-CodeCell", has_text='check("test_edge_kernels")').first
    test_cell.scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "3-first-exercise-passes.png")
    output = test_cell.locator(".jp-OutputArea").inner_text()
    assert "Public checks:" in output and "all passed" in output, output

    # 3. Save, then nbgrader's Validate: the first exercise passes, the rest are still to do.
    page.keyboard.press("ControlOrMeta+s")
    page.locator(".jp-mod-dirty").first.wait_for(state="detached", timeout=30_000)
    page.locator(".jp-Toolbar-item button, .jp-Toolbar-item jp-button", has_text="Validate").first.click()
    dialog = page.locator(".jp-Dialog-content")
    dialog.wait_for(timeout=300_000)
    page.wait_for_function("() => !document.querySelector('.jp-Dialog-content')?.innerText.includes('Validating')",
                           timeout=300_000)
    page.screenshot(path=artifacts / "4-validate.png")
    verdict = dialog.inner_text()
    assert "NotImplementedError" in verdict or "failed" in verdict.lower(), verdict
    assert "test_edge_kernels" not in verdict, "the exercise the student solved should not be reported as failing"
    page.close()


def test_the_student_repository_shows_the_student_tools_only(playwright_chromium, export_lab, artifacts):
    """In the exported repository: the assignment list and Validate; no Create Assignment, formgrader or news prompt."""
    url, _ = export_lab
    page = playwright_chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(url)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    _wait_kernel_ready(page)
    page.wait_for_timeout(5000)  # where it is enabled, the news prompt appears within a second or two
    page.screenshot(path=artifacts / "export-1-opened.png")
    assert page.get_by_text("official Jupyter news").count() == 0, "Jupyter's news prompt should be silenced"
    assert page.locator("#nbgrader-create_assignemnt, [title*='Create Assignment']").count() == 0, \
        "nbgrader's Create Assignment sidebar is the instructor's"
    assert page.locator(".jp-Toolbar-item button, .jp-Toolbar-item jp-button", has_text="Validate").count() >= 1
    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").first.click()
    items = [m.inner_text().strip() for m in page.locator(".lm-Menu-itemLabel").all()]
    assert items == ["Assignment List"], items        # no Formgrader, Course List or Create assignment
    page.locator(".lm-Menu-itemLabel", has_text="Assignment List").first.click()
    page.locator("#nbgrader-assignment-list").wait_for()
    page.screenshot(path=artifacts / "export-2-assignment-list.png")
    base = url.split("/lab/")[0]
    token = url.split("token=")[1]
    assert page.request.get(f"{base}/formgrader?token={token}").status == 404
    page.close()
