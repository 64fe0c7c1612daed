"""A student's session in JupyterLab, in a real browser (Playwright driving Debian's chromium).

JupyterLab runs from the project's environment on 127.0.0.1 with a one-off token, in a folder
holding a copy of the release notebook (as a student's laptop would).  The test runs all cells,
sees the stubs' NotImplementedError, types a solution into the first exercise through the
editor, re-runs its visible test cell and sees it pass, then presses nbgrader's Validate button
and reads the verdict.  Screenshots of each step are saved under ``OUT/`` (the pytest temporary
folder, or ``$CNN_COURSE_ARTIFACTS`` when set) as test artifacts.
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
from pathlib import Path

import pytest

from autograder.assignments import Course

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("CNN_COURSE_CHROMIUM", "/usr/bin/chromium")
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


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory, fashion_mnist_root):
    """JupyterLab on 127.0.0.1 serving a student's folder with the release notebook; yields (url, folder)."""
    folder = tmp_path_factory.mktemp("student")
    shutil.copy(Course().get(AID).release_notebook, folder / f"{AID}.ipynb")
    home = tmp_path_factory.mktemp("home")
    token, port = secrets.token_hex(16), _free_port()
    env = {**os.environ, "HOME": str(home), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
           "CNN_COURSE_DATA": str(fashion_mnist_root)}
    env.pop("MPLBACKEND", None)  # other tests set Agg for their kernels; a student's JupyterLab draws inline
    log = open(home / "jupyterlab.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
         "--ServerApp.open_browser=False", "--allow-root", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate"],
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
    yield f"{url}/lab/tree/{AID}.ipynb?token={token}", folder
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


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
