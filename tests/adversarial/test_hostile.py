"""Hostile submissions: each must be graded to completion and score no more than its honest twin.

Attacks that cannot interfere share one notebook (each in its own function or cell) so the
folder stays fast; every test checks the per-check results, not only the total.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from autograder.course import REPO_ROOT
from autograder.grading.grade_notebook import grade_notebook
from autograder.sandbox.probe import machine_protections, strong_isolation

from .conftest import CORRECT, FULL_SCORE, WRONG, by_name

pytestmark = pytest.mark.slow

BWRAP, NO_BWRAP_REASON = strong_isolation()
PROCESS_CAP = bool(machine_protections()["cgroup"] or machine_protections()["user"])
needs_bwrap = pytest.mark.skipif(not BWRAP, reason=f"no bubblewrap sandbox on this machine: {NO_BWRAP_REASON}")

DAEMON = 'import os, time\nif os.fork():\n    os._exit(0)\nos.setsid()\ntime.sleep(3)\n'

DOUBLE_CHECKS = ("test_double_small_example", "test_double_matches_reference", "test_double_keeps_int_dtype")


@pytest.fixture(scope="module")
def wrong_twin_score(fixture_course, tmp_path_factory, release_nb):
    """The honest twin of the attacks that patch comparisons: the same wrong answers, no attack."""
    from autograder.authoring.notebook_builder import fill_answers

    path = tmp_path_factory.mktemp("twin") / "00_fixture.ipynb"
    nbformat.write(fill_answers(release_nb, WRONG), path)
    report = grade_notebook(path, course=fixture_course, threads=1)
    assert report.max_score == FULL_SCORE and not report.errors
    return report.score


def _cells_after(release_nb, grade_id: str) -> int:
    """The position just after the release cell with this grade id (to insert attack cells there)."""
    for i, cell in enumerate(release_nb.cells):
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return i + 1
    raise KeyError(grade_id)


def _assert_failed(report, *names):
    results = by_name(report)
    for name in names:
        assert not results[name].passed, (name, results[name].message)
        assert results[name].points == 0


def _host_processes_with(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            pids.append(int(entry.name))
    return pids


# -- patched comparisons, fake tensors ------------------------------------------------------------

def test_patched_comparisons_tensor_subclass_and_always_equal_objects(make_submission, grade, wrong_twin_score):
    patches = new_code_cell(
        "import torch, numpy, numpy.testing\n"
        "torch.allclose = lambda *a, **k: True\n"
        "torch.equal = lambda *a, **k: True\n"
        "torch.isclose = lambda a, b, *r, **k: torch.ones_like(a, dtype=torch.bool)\n"
        "torch.testing.assert_close = lambda *a, **k: None\n"
        "torch.Tensor.__eq__ = lambda self, other: True\n"
        "torch.Tensor.allclose = lambda *a, **k: True\n"
        "numpy.allclose = lambda *a, **k: True\n"
        "numpy.array_equal = lambda *a, **k: True\n"
        "numpy.testing.assert_allclose = lambda *a, **k: None\n")
    smooth = (  # a tensor subclass with wrong values that claims to equal everything
        "class Sneaky(torch.Tensor):\n"
        "    def __eq__(self, other):\n        return True\n"
        "    @classmethod\n"
        "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
        "        if func in (torch.allclose, torch.equal, torch.Tensor.allclose, torch.Tensor.equal):\n"
        "            return True\n"
        "        return super().__torch_function__(func, types, args, kwargs or {})\n"
        "def smooth(x, k):\n"
        "    return torch.zeros(len(x) - len(k) + 1).as_subclass(Sneaky)\n")
    count = (  # an object that equals everything and pretends to be an int
        "class Liar(int):\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __ne__(self, other):\n        return False\n"
        "    __hash__ = int.__hash__\n"
        "class Liar2:\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __int__(self):\n        return 3\n"
        "def count(n):\n"
        "    return Liar(n + 1) if n == 3 else Liar2()\n")
    path = make_submission({"double": WRONG["double"], "smooth": smooth, "count": count},
                           extra_cells=[(2, patches)])
    report = grade(path)
    assert report.max_score == FULL_SCORE
    _assert_failed(report, *DOUBLE_CHECKS, "test_smooth_matches_reference_without_conv",
                   "test_count_returns_its_argument", "test_count_answers_quickly")
    assert report.score <= wrong_twin_score == 0


def test_patched_builtins(make_submission, grade, wrong_twin_score):
    attack = new_code_cell(
        "import builtins\n"
        "_real_isinstance, _real_len = builtins.isinstance, builtins.len\n"
        "builtins.isinstance = lambda obj, cls: True\n"
        "builtins.len = lambda obj: 2\n"
        "builtins.type = lambda *a: int\n"
        "builtins.abs = lambda x: 0\n"
        "builtins.max = lambda *a, **k: 0\n"
        "builtins.round = lambda *a, **k: 0\n")
    report = grade(make_submission(WRONG, extra_cells=[(2, attack)]))
    assert report.max_score == FULL_SCORE
    assert report.score <= wrong_twin_score == 0, report.summary()


# -- exits ---------------------------------------------------------------------------------------

def test_exits_in_cells_cost_only_those_cells(make_submission, grade):
    cells = [(2, new_code_cell("import sys\nsys.exit(0)")),
             (2, new_code_cell("raise SystemExit(0)")),
             (2, new_code_cell("exit()")),
             (2, new_code_cell("import os\nos._exit(0)"))]
    report = grade(make_submission(extra_cells=cells))
    added = [c for c in report.cells if c.origin == "submission" and c.label.startswith("cell")][:4]
    assert any(c.status == "crashed" for c in added), report.summary()
    assert report.score <= FULL_SCORE  # the honest twin (no exits) gets every point
    assert report.score == FULL_SCORE, report.summary()


def test_exits_inside_graded_functions_fail_their_checks(make_submission, grade):
    answers = {
        "double": "import sys\ndef double(x):\n    sys.exit(0)\n    return x + x",
        "smooth": "import os\n" + CORRECT["smooth"].replace("    n = ", "    os._exit(0)\n    n = "),
        "count": "def count(n):\n    raise SystemExit(0)\n    return n",
    }
    report = grade(make_submission(answers))
    _assert_failed(report, *DOUBLE_CHECKS, "test_smooth_matches_reference_without_conv",
                   "test_count_returns_its_argument")
    assert report.score < FULL_SCORE  # the honest twin: the same functions without the exit
    assert report.score == 0, report.summary()


def test_many_crashing_cells_cost_only_themselves(make_submission, grade, fast_settings):
    # Regression: the restart budget was shared, so two crashing cells left the answers unrun (score 0).
    cells = [(2, new_code_cell("import os\nos._exit(0)")), (2, new_code_cell("import os\nos._exit(3)")),
             (2, new_code_cell("import os\nos._exit(5)"))]
    report = grade(make_submission(extra_cells=cells), settings=fast_settings(max_restarts=1))
    assert report.max_score == FULL_SCORE
    crashed = [c for c in report.cells if c.status == "crashed"]
    assert len(crashed) == 3, report.summary()
    assert all("exit code" in c.message for c in crashed)
    assert report.score == FULL_SCORE, report.summary()


# -- resources: hangs, memory, processes -----------------------------------------------------------

def test_hangs_memory_and_fork_bomb_are_stopped(make_submission, grade, fast_settings):
    cells = [
        new_code_cell("import signal\nfor s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM, signal.SIGHUP):\n"
                      "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass"),
        new_code_cell("import time\ntime.sleep(10**9)"),
        new_code_cell("import torch\nhog = torch.ones(50 * 2**30, dtype=torch.uint8)"),
        new_code_cell("import torch\nhogs = [torch.ones(2**30, dtype=torch.uint8) for _ in range(50)]"),
    ]
    if PROCESS_CAP:  # never run a fork bomb where nothing caps the number of processes
        cells.append(new_code_cell("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"))
    count = "import time\ndef count(n):\n    if n == 3:\n        time.sleep(10**9)\n    return n"
    start = time.monotonic()
    report = grade(make_submission({"count": count}, extra_cells=[(2, c) for c in cells]),
                   settings=fast_settings(max_restarts=7))
    elapsed = time.monotonic() - start
    statuses = [c.status for c in report.cells if c.label.startswith("cell") and c.origin == "submission"][:len(cells)]
    assert len(statuses) == len(cells)
    assert all(s in ("timeout", "crashed", "error") for s in statuses), report.summary()
    results = by_name(report)
    assert not results["test_count_returns_its_argument"].passed
    assert "within" in results["test_count_returns_its_argument"].message
    assert results["test_double_matches_reference"].passed, report.summary()
    assert report.score <= FULL_SCORE  # the honest twin: no extra cells, no sleep in count
    assert report.score == FULL_SCORE - 1, report.summary()
    assert elapsed < 100


# -- output, files, background processes -----------------------------------------------------------

def test_fake_output_files_outside_the_scratch_folder_and_background_processes(make_submission, grade, tmp_path):
    token = f"adv-{uuid.uuid4().hex[:12]}"
    targets = [Path("/tmp") / token, REPO_ROOT / token, Path("/root") / token, tmp_path / token,
               REPO_ROOT / "tests" / "adversarial" / token, Path("/var/tmp") / token]
    late = Path("/tmp") / f"{token}-late"
    late_repo = REPO_ROOT / f"{token}-late"
    sub_dir = tmp_path / "sub"
    sub_dir.mkdir()
    writes = new_code_cell(
        "import json, os, subprocess, sys\n"
        "print('Score: 7 / 7')\nprint('00_fixture: 1000 / 7 points')\nprint(json.dumps({'score': 1000}))\n"
        "open('results.json', 'w').write(json.dumps({'score': 1000, 'tests': []}))\n"
        f"for p in {[str(t) for t in targets] + [str(sub_dir / 'results.json')]!r}:\n"
        "    try:\n"
        "        open(p, 'w').write('escaped')\n"
        "    except OSError:\n"
        "        pass\n"
        f"for p in [{str(late)!r}, {str(late_repo)!r}]:\n"
        f"    subprocess.Popen(['sh', '-c', 'sleep 3; echo late > ' + p + ' # {token}'], start_new_session=True,\n"
        "                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        f"daemon = {DAEMON!r} + 'open(' + {repr(str(late) + '2')!r} + ', \"w\").write(\"x\")\\n'\n"
        f"subprocess.Popen([sys.executable, '-c', daemon, {token!r}], start_new_session=True)\n"
        "print('background processes started')\n")
    flood = new_code_cell("import sys\nsys.stdout.write('x' * 100_000_000)\nprint()\nprint('Score: 7 / 7')")
    path = make_submission(WRONG | {"double": CORRECT["double"]}, name="00_fixture.ipynb",
                           extra_cells=[(2, writes), (3, flood)])
    path = path.rename(sub_dir / path.name)
    report = grade(path)
    assert report.max_score == FULL_SCORE
    assert report.score <= 4  # the honest twin: correct double (4 points), wrong smooth and count
    assert report.score == 4, report.summary()
    assert len(report.student_output) <= 20000
    added = [c for c in report.cells if c.origin == "submission" and c.label.startswith("cell")]
    assert [c.status for c in added[:2]] == ["ok", "ok"], report.summary()  # the attacks did run
    assert not (sub_dir / "results.json").exists()
    deadline = time.monotonic() + 5  # longer than the background processes sleep
    while time.monotonic() < deadline and not _host_processes_with(token):
        time.sleep(0.5)
        if time.monotonic() > deadline - 1:
            break
    time.sleep(max(0.0, deadline - time.monotonic()))
    assert _host_processes_with(token) == []
    for p in [*targets, late, late_repo, Path(str(late) + "2")]:
        assert not p.exists(), f"the submission wrote {p} on the host"


# -- secrets and network ----------------------------------------------------------------------------

@needs_bwrap
def test_reading_solutions_checks_and_the_network_gains_nothing(make_submission, grade, fixture_course):
    solution = fixture_course.root / "solutions" / "00_fixture" / "00_fixture.ipynb"
    hidden = fixture_course.checks_root / "a00_fixture" / "hidden.py"
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    double = (
        "import json, torch\n"
        "def double(x):\n"
        f"    for p in [{str(solution)!r}, {str(REPO_ROOT / 'solutions')!r}]:\n"
        "        try:\n"
        "            nb = json.load(open(p))\n"
        "            src = [''.join(c['source']) for c in nb['cells'] if 'def double' in ''.join(c['source'])]\n"
        "            ns = {'torch': torch}\n"
        "            exec(src[0], ns)\n"
        "            return ns['double'](x)\n"
        "        except Exception:\n"
        "            pass\n"
        "    return x * 3\n")
    smooth = (
        "import os\n"
        "def smooth(x, k):\n"
        f"    for p in [{str(hidden)!r}, {str(REPO_ROOT / 'autograder' / 'checks')!r}]:\n"
        "        if os.path.isfile(p) and open(p).read().strip() or os.path.isdir(p) and os.listdir(p):\n"
        "            return torch.stack([(x[i:i + len(k)] * k).sum() for i in range(len(x) - len(k) + 1)])\n"
        "    return torch.zeros(len(x) - len(k) + 1)\n")
    count = (
        "import socket\n"
        "def count(n):\n"
        f"    for addr in [('127.0.0.1', {port}), ('1.1.1.1', 53), ('8.8.8.8', 443)]:\n"
        "        try:\n"
        "            s = socket.create_connection(addr, timeout=0.5)\n"
        "            s.sendall(b'leak')\n"
        "            return n\n"
        "        except OSError:\n"
        "            pass\n"
        "    return n + 1\n")
    try:
        report = grade(make_submission({"double": double, "smooth": smooth, "count": count}))
        try:
            conn, _ = listener.accept()
            conn.close()
            connected = True
        except OSError:
            connected = False
    finally:
        listener.close()
    assert not connected, "the submission reached a socket on the host"
    _assert_failed(report, *DOUBLE_CHECKS, "test_smooth_matches_reference_without_conv",
                   "test_count_returns_its_argument")
    assert report.score <= 0, report.summary()  # the honest twin: the fallbacks (all wrong)


# -- memorising the public example, renaming --------------------------------------------------------

def test_memorised_public_examples_and_a_renamed_function(make_submission, grade):
    answers = {
        "double": "_seen = {}\ndef double(x):\n    return torch.tensor([2.0, 4.0])",
        "smooth": CORRECT["smooth"].replace("def smooth", "def smoothing"),
        "count": "def count(n):\n    return 3",
    }
    report = grade(make_submission(answers))
    results = by_name(report)
    _assert_failed(report, "test_double_matches_reference", "test_double_keeps_int_dtype",
                   "test_smooth_matches_reference_without_conv", "test_count_answers_quickly")
    assert "smooth" in results["test_smooth_matches_reference_without_conv"].message
    # Only the public checks' points: memorising never reaches what the honest twin (correct code) gets.
    assert report.score == 2 < FULL_SCORE, report.summary()


# -- edited / deleted / retagged cells --------------------------------------------------------------

def test_edited_deleted_and_retagged_test_and_locked_cells(make_submission, grade):
    path = make_submission({"smooth": WRONG["smooth"], "count": WRONG["count"]})
    nb = nbformat.read(path, as_version=4)

    def gid(cell):
        return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")

    cells = []
    for cell in nb.cells:
        g = gid(cell)
        if g == "setup":
            continue  # deleted
        if g == "test_count":
            continue  # deleted
        if g == "test_double":
            cell.source = "1e9"
            cell.metadata["nbgrader"]["points"] = 1000
        if g == "test_smooth":
            cell.source = "print('test_smooth: 2 / 2 points')\n1e9"
            cell.metadata.setdefault("tags", []).extend(["skip-execution", "raises-exception"])
        if g in ("double", "smooth", "count"):
            cell.metadata.setdefault("tags", []).append("skip-execution")
            cell.metadata["nbgrader"].update({"locked": True, "solution": False, "grade": True, "points": 1000})
        cells.append(cell)
    bonus = new_code_cell("check = lambda *a, **k: print('all tests passed')\n1e9",
                          metadata={"nbgrader": {"grade": True, "solution": False, "locked": True,
                                                 "grade_id": "test_bonus", "points": 1000,
                                                 "schema_version": 3}, "tags": ["skip-execution"]})
    cells.insert(2, bonus)
    nb.cells = cells
    nbformat.write(nb, path)
    report = grade(path)
    assert report.max_score == FULL_SCORE
    assert any("setup" in n and "missing" in n for n in report.notes), report.notes
    _assert_failed(report, "test_smooth_matches_reference_without_conv", "test_count_returns_its_argument")
    assert report.score <= 4  # the honest twin: correct double, wrong smooth and count, cells untouched
    assert report.score == 4, report.summary()
