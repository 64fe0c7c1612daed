"""The sandbox fails closed, recovers cleanly, and the grader trusts nothing the worker or the files say.

Each attack is graded with the engine on the fixture course and compared with its honest twin:
the same notebook without the attack (or with the attacked function a stub).  No attack may
score above its twin; a crash must keep the twin's points exactly.
"""

from __future__ import annotations

import json
import shutil
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from autograder.grading.grade_notebook import grade_notebook
from autograder.sandbox import worker_process
from autograder.sandbox.probe import machine_protections, strong_isolation

from .conftest import CORRECT, FULL_SCORE, WRONG, by_name

pytestmark = pytest.mark.slow

STRONG, WHY = strong_isolation()
needs_sandbox = pytest.mark.skipif(not STRONG, reason=f"no bubblewrap sandbox on this machine: {WHY}")
PROCESS_CAP = bool(machine_protections()["cgroup"] or machine_protections()["user"])

STUB = {name: f"def {name}(*args, **kwargs):\n    raise NotImplementedError()" for name in CORRECT}


@pytest.fixture(scope="module")
def stub_double_twin(fixture_course, release_nb, tmp_path_factory):
    """The honest twin of every attack on ``double``: the same notebook with ``double`` still a stub."""
    from autograder.authoring.notebook_builder import fill_answers

    path = tmp_path_factory.mktemp("twin") / "00_fixture.ipynb"
    nbformat.write(fill_answers(release_nb, {**CORRECT, "double": STUB["double"]}), path)
    score = grade_notebook(path, course=fixture_course, threads=1).score
    assert score == FULL_SCORE - 4
    return score


# -- fail closed ---------------------------------------------------------------------------------

@needs_sandbox
def test_student_code_cannot_create_user_namespaces(make_submission, grade):
    probe = ("import ctypes\n"
             "def count(n):\n"
             "    libc = ctypes.CDLL(None, use_errno=True)\n"
             "    made = sum(libc.unshare(0x10000000) == 0 for _ in range(200))  # CLONE_NEWUSER\n"
             "    return n if made == 0 else -made\n")
    report = grade(make_submission({"count": probe}))
    assert by_name(report)["test_count_returns_its_argument"].passed, report.summary()
    assert report.protections["user_namespaces"] == "disabled inside the sandbox"


@needs_sandbox
def test_a_replacement_worker_is_never_weaker_than_the_first(make_submission, fixture_course, monkeypatch):
    """The first worker starts with every layer; after a crash no replacement can: the rest is the grader's error."""
    launched = []
    real_launch = worker_process.Worker._launch

    def launch(self, probe, user, use_bwrap, require):
        launched.append((user is not None, use_bwrap))
        if len(launched) > 1:
            probe = {**probe, "cgroup": None}   # the replacement would lose its memory and process caps
            user, use_bwrap = None, False        # ... and the sandbox user and bubblewrap
        return real_launch(self, probe, user, use_bwrap, require)

    monkeypatch.setattr(worker_process.Worker, "_launch", launch)
    crash = new_code_cell("import os\nos._exit(1)")
    report = grade_notebook(make_submission(extra_cells=[(2, crash)]), course=fixture_course, threads=1)
    assert launched[0][1] is True
    assert len(launched) >= 2  # a replacement was attempted ...
    assert report.protections["bubblewrap"] is True  # ... and none ran without bubblewrap
    assert report.grader_problems and "full protections" in report.grader_problems[-1]
    assert all(c.status != "ok" for c in report.cells[1:]), report.summary()
    assert not any(r.passed for r in report.results)
    assert all(r.status == "error" for r in report.results), [r.message for r in report.results]


def test_grade_exits_3_when_the_sandbox_cannot_restart(tmp_path, make_submission, monkeypatch):
    """The CLI: the remaining checks are the grader's error (exit 3), and the results are still written."""
    from autograder import cli
    from autograder.grading.reports import GradeReport

    report = GradeReport(submission="x.ipynb", assignment="00_fixture",
                         grader_problems=["the sandbox could not be restarted with full protections"])
    monkeypatch.setattr("autograder.grading.grade_notebook.grade_notebook", lambda *a, **k: report)
    out = tmp_path / "results.json"
    assert cli.main(["grade", str(make_submission()), "--results", str(out)]) == cli.EXIT_GRADER
    assert json.loads(out.read_text())["extra_data"]["grader_problems"]


# -- the allowlist root ------------------------------------------------------------------------------

@needs_sandbox
def test_a_course_folder_and_secrets_outside_tmp_are_invisible(make_submission, fixture_course, tmp_path):
    token = uuid.uuid4().hex[:10]
    course_dir = Path("/srv") / f"cnn-course-{token}"
    secret = Path("/srv") / f"cnn-secret-{token}.txt"
    try:
        shutil.copytree(fixture_course.root, course_dir)
        secret.write_text("the answers")
        from autograder.course import Course

        course = Course.at(course_dir, course_dir / "checks")
        from autograder.course import REPO_ROOT

        targets = [str(course_dir), str(secret), str(course_dir / "solutions"), str(REPO_ROOT / "solutions"),
                   str(REPO_ROOT / "tests"), str(REPO_ROOT / "autograder" / "checks"), "/home", "/srv",
                   "/etc/shadow", "/etc/hostname"]
        body = ("import os\ndef count(n):\n    seen = [p for p in " + repr(targets) +
                " if os.path.exists(p) and (not os.path.isdir(p) or os.listdir(p))]\n"
                "    print('SEEN', seen)\n    return n if not seen else -len(seen)\n")
        sub = tmp_path / "00_fixture.ipynb"
        nb = nbformat.read(course.get("00_fixture").release_notebook, as_version=4)
        from autograder.authoring.notebook_builder import fill_answers

        nbformat.write(fill_answers(nb, {**CORRECT, "count": body}), sub)
        report = grade_notebook(sub, course=course, threads=1)
        result = by_name(report)["test_count_returns_its_argument"]
        assert result.passed, (result.message, report.student_output[-500:])
        assert report.score == FULL_SCORE
    finally:
        shutil.rmtree(course_dir, ignore_errors=True)
        secret.unlink(missing_ok=True)


def test_bwrap_arguments_are_an_allowlist(tmp_path):
    """A pure function: no `/` bind, the listed trees read-only, the hidden ones covered, userns disabled."""
    from autograder.sandbox.bwrap import bwrap_args

    shown = tmp_path / "env"
    (shown / "secret").mkdir(parents=True)
    args = bwrap_args("bwrap", readonly=[shown], hidden=[shown / "secret", tmp_path / "not-shown"],
                      scratch=tmp_path / "scratch", system=["--ro-bind", "/usr", "/usr"])
    pairs = list(zip(args, args[1:]))
    assert ("--ro-bind", "/") not in pairs and "--disable-userns" in args and "--unshare-user" in args
    assert ("--ro-bind", str(shown)) in pairs
    assert ("--tmpfs", str(shown / "secret")) in pairs
    assert str(tmp_path / "not-shown") not in args  # outside every shown tree: there is nothing to hide
    assert args[-2:] == ["--remount-ro", "/"]


# -- files ---------------------------------------------------------------------------------------------

def test_a_symlinked_submission_is_refused(tmp_path, grade, fixture_course):
    solution = fixture_course.root / "solutions" / "00_fixture" / "00_fixture.ipynb"
    link = tmp_path / "00_fixture.ipynb"
    link.symlink_to(solution)
    report = grade(link)
    assert report.score == 0 and report.errors and "symbolic link" in report.errors[0]


def test_grade_class_never_follows_symlinks_and_survives_a_deeply_nested_notebook(
        tmp_path, make_submission, fixture_course, monkeypatch):
    from autograder.grading.grade_class import grade_class

    subs = tmp_path / "submitted"
    (subs / "alice").mkdir(parents=True)
    (subs / "mallory").mkdir()
    (subs / "deep").mkdir()
    shutil.copy(make_submission(WRONG), subs / "alice" / "00_fixture.ipynb")
    (subs / "mallory" / "00_fixture.ipynb").symlink_to(fixture_course.root / "solutions" / "00_fixture" / "00_fixture.ipynb")
    (subs / "eve").symlink_to(fixture_course.root / "solutions")  # a "student folder" that is a link
    nested = '{"a":' * 100_000 + "1" + "}" * 100_000
    (subs / "deep" / "00_fixture.ipynb").write_text('{"cells": [], "nbformat": 4, "nbformat_minor": 5, '
                                                    f'"metadata": {nested}}}')
    out = tmp_path / "graded"
    _course_env(monkeypatch, fixture_course)
    code = grade_class(subs, out=out, course=fixture_course, progress=False, assignment="00_fixture")
    assert code == 0
    rows = {r["student"]: r for r in __import__("csv").DictReader((out / "grades.csv").open())}
    assert set(rows) == {"alice", "mallory", "deep"}
    assert rows["mallory"]["score"] == "0" and rows["mallory"]["status"] == "error"
    assert "symbolic link" in json.loads((out / "mallory" / "00_fixture.json").read_text())["output"]
    assert rows["deep"]["score"] == "0"
    assert rows["alice"]["score"] == "0" and rows["alice"]["status"] == "graded"


def test_reading_a_deeply_nested_notebook_is_a_notebook_error(tmp_path):
    from autograder.notebooks import NotebookError, read_notebook

    path = tmp_path / "deep.ipynb"
    path.write_text('{"cells": [], "nbformat": 4, "metadata": ' + '[' * 100_000 + ']' * 100_000 + '}')
    with pytest.raises(NotebookError, match="deep.ipynb"):
        read_notebook(path)


# -- the channel -----------------------------------------------------------------------------------

_FIND_REPLY_FD = (
    "import os, fcntl, struct, json, time\n"
    "def _reply_fds():\n"
    "    for fd in range(3, 64):\n"
    "        try:\n"
    "            if os.readlink(f'/proc/self/fd/{fd}').startswith('pipe:') and "
    "fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:\n"
    "                yield fd\n"
    "        except OSError:\n"
    "            pass\n"
    "def _send(head, blobs=()):\n"
    "    for fd in _reply_fds():\n"
    "        os.write(fd, struct.pack('<Q', len(head)) + head)\n"
    "        for b in blobs:\n"
    "            os.write(fd, b)\n"
    "    time.sleep(30)\n"
)


@pytest.mark.parametrize("payload", [
    "_send(b'[' * 200000 + b']' * 200000)",                                       # nested 200,000 deep
    "_send(json.dumps({'h': {'ok': False, 'error': 'x' * 100}, 'sizes': []}).encode())",  # error is a string
    "_send(json.dumps({'h': {'ok': True, 'value': 1}, 'sizes': [1500 * 2**20]}).encode())",  # 1.5 GB announced
    "_send(json.dumps({'h': {'ok': 'yes', 'value': {'__tensor__': 7}}, 'sizes': []}).encode())",  # bad shapes
    "_send(json.dumps({'h': {'ok': True, 'value': {'__tensor__': 0, 'dtype': 'float32', 'shape': [9]}}, "
    "'sizes': [4]}).encode(), [b'1234'])",                                         # bytes do not match
], ids=["nested", "error-string", "huge", "bad-shape", "short-tensor"])
def test_malformed_replies_cost_only_that_call(payload, make_submission, grade, stub_double_twin):
    double = _FIND_REPLY_FD + "def double(x):\n    " + payload + "\n"
    report = grade(make_submission({"double": double}))
    assert report.score == stub_double_twin, report.summary()
    assert by_name(report)["test_smooth_matches_reference_without_conv"].passed
    assert len(json.dumps(report.to_gradescope())) < 200_000


def test_an_exception_with_an_8_mb_name_keeps_the_results_small(make_submission, grade, stub_double_twin):
    double = ("def double(x):\n    E = type('E' * 8_000_000, (Exception,), {})\n    raise E('m' * 8_000_000)\n")
    report = grade(make_submission({"double": double}))
    assert report.score == stub_double_twin
    assert len(json.dumps(report.to_gradescope())) < 200_000
    assert len(report.to_markdown()) < 100_000 and len(report.to_junit()) < 200_000


# -- reports ------------------------------------------------------------------------------------------

def test_student_text_is_escaped_in_every_report(make_submission, grade, tmp_path):
    evil = "\\x1b[31mred\\x1b[0m\\n**Score: 43 / 43**\\n<img src=x onerror=alert(1)>]]>\\x00\\x07 & ``` `"
    double = f"def double(x):\n    raise ValueError('{evil}')\n"
    report = grade(make_submission({"double": double}))
    md = report.to_markdown()
    assert "\x1b" not in md and "\x07" not in md
    outside = _outside_fences(md)  # student text is only ever inside fenced blocks (shown as text) or escaped
    assert outside.count("**Score:") == 1 and "<img" not in outside
    ET.fromstring(report.to_junit())  # well-formed
    assert "\x1b" not in report.summary() and "\x07" not in report.to_junit()
    assert "\x1b" not in json.dumps(report.to_gradescope(), ensure_ascii=False)


def _course_env(monkeypatch, course):
    """grade-class's grading processes find the fixture course through the environment."""
    monkeypatch.setenv("CNN_COURSE_ROOT", str(course.root))
    monkeypatch.setenv("CNN_COURSE_CHECKS", str(course.checks_root))


def _outside_fences(markdown: str) -> str:
    kept, fence = [], None
    for line in markdown.splitlines():
        stripped = line.strip()
        if fence is None and stripped.startswith("```"):
            fence = stripped[: len(stripped) - len(stripped.lstrip("`"))]
            continue
        if fence is not None:
            if stripped == fence:
                fence = None
            continue
        kept.append(line)
    return "\n".join(kept)


def test_grades_csv_neutralises_formulas_and_escape_bytes(tmp_path, make_submission, fixture_course, capfd,
                                                          monkeypatch):
    from autograder.grading.grade_class import grade_class

    _course_env(monkeypatch, fixture_course)
    subs = tmp_path / "submitted"
    names = ["=HYPERLINK(\"http://x\")", "@SUM(1)", "+1", "-1", "plain\x1b[2Jname"]
    for name in names:
        (subs / name).mkdir(parents=True)
        (subs / name / "00_fixture.ipynb").write_text("not json")
    out = tmp_path / "graded"
    assert grade_class(subs, out=out, course=fixture_course, progress=False, assignment="00_fixture") == 0
    text = (out / "grades.csv").read_text()
    for line in text.splitlines()[1:]:
        assert line[0] not in "=+-@", line
    assert "\x1b" not in text and "\x1b" not in capfd.readouterr().err


# -- forbidden APIs --------------------------------------------------------------------------------

SMOOTH_ATTACKS = {
    "aten": "import torch\ndef smooth(x, k):\n    return torch.ops.aten.conv1d.default(x[None, None], k[None, None])[0, 0]",
    "C": "import torch\ndef smooth(x, k):\n    return torch._C._nn.thnn_conv2d(x[None, None, None], k[None, None, None], "
         "[1, len(k)])[0, 0, 0]",
    "mode": "import torch\ndef smooth(x, k):\n    return torch._convolution_mode(x[None, None], k[None, None], None, [1], "
            "'valid', [1], 1)[0, 0]",
    "disable": "import torch, torch.nn.functional as F\ndef smooth(x, k):\n    with torch._C.DisableTorchFunction():\n"
               "        return F.conv1d(x[None, None], k[None, None])[0, 0]",
    "thread": "import threading, torch.nn.functional as F\ndef smooth(x, k):\n    out = {}\n"
              "    t = threading.Thread(target=lambda: out.update(r=F.conv1d(x[None, None], k[None, None])[0, 0]))\n"
              "    t.start(); t.join()\n    return out['r']",
    "hidden-builtin": "import builtins, torch.nn.functional as F\nbuiltins.helper = F.conv1d\n"
                      "def smooth(x, k):\n    return helper(x[None, None], k[None, None])[0, 0]",
    "patch-executor": "import contextlib\nimport autograder.sandbox.executor as ex\n"
                      "ex.forbidden = lambda groups: contextlib.nullcontext([])\n"
                      "import torch.nn.functional as F\n"
                      "def smooth(x, k):\n    return F.conv1d(x[None, None], k[None, None])[0, 0]",
    "module-attribute": "import torch, torch.nn.functional as F\ntorch.helper = F.conv1d\n"
                        "def smooth(x, k):\n    return torch.helper(x[None, None], k[None, None])[0, 0]",
    "getattr": "import torch.nn.functional as F\ndef smooth(x, k):\n    f = getattr(F, 'conv' + '1d')\n"
               "    return f(x[None, None], k[None, None])[0, 0]",
    "lazy-subclass": "import torch, torch.nn.functional as F\nclass Lazy(torch.Tensor):\n"
                     "    @classmethod\n    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
                     "        return super().__torch_function__(func, types, args, kwargs or {})\n"
                     "def smooth(x, k):\n    return (x[: len(x) - len(k) + 1] * 0).as_subclass(Lazy)",
}


@pytest.mark.parametrize("attack", sorted(SMOOTH_ATTACKS))
def test_forbidden_convolutions_are_caught_whatever_the_route(attack, make_submission, grade):
    report = grade(make_submission({"smooth": SMOOTH_ATTACKS[attack]}))
    result = by_name(report)["test_smooth_matches_reference_without_conv"]
    assert not result.passed, (attack, result.message)
    assert report.score <= FULL_SCORE - 2  # the honest twin: a wrong smooth
    if attack in ("hidden-builtin", "getattr"):
        assert report.flags, "code that hides what it calls is flagged for the instructor"


def test_the_static_check_sees_through_helpers_aliases_and_imports():
    from autograder.submission.static_check import analyse, call_sites

    cells = [("setup", "import torch\nimport torch.nn.functional as F"),
             ("a", "from torch.nn.functional import conv2d as c2\nconv = c2\ndef helper(x, w):\n    return conv(x, w)"),
             ("b", "def f(x, w):\n    return helper(x, w)"),
             ("c", "def g(x, w):\n    return torch.stack([F.conv2d(x, wi[None]) for wi in w])"),
             ("d", "def ok(x, w):\n    return (x * w).sum()")]
    assert analyse(cells, "f", ["conv"]).forbidden
    assert not analyse(cells, "ok", ["conv"]).forbidden
    assert call_sites(cells, "g", {"conv2d"}) == (1, True)
    assert call_sites(cells, "helper", {"conv2d"}) == (1, False)  # through two aliases


# -- recovery -----------------------------------------------------------------------------------------

MEMORY_BOMB = "import torch\n    hogs = [torch.ones(2**28, dtype=torch.uint8) for _ in range(100)]\n"
FORK_BOMB = "import os\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n"
SEGFAULT = "import ctypes\n    ctypes.string_at(0)\n"


def _bomb_in(name: str, bomb: str) -> str:
    return f"def {name}(*args, **kwargs):\n    {bomb}    return None\n"


BOMBS = {"segfault": SEGFAULT}
if machine_protections()["cgroup"]:  # never fill memory where nothing caps it
    BOMBS["memory"] = MEMORY_BOMB
if PROCESS_CAP:  # never run a fork bomb where nothing caps the number of processes
    BOMBS["fork"] = FORK_BOMB


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_a_bomb_in_a_function_costs_exactly_what_a_stub_costs(kind, make_submission, grade, fast_settings,
                                                               stub_double_twin):
    report = grade(make_submission({"double": _bomb_in("double", BOMBS[kind])}), settings=fast_settings())
    assert report.score == stub_double_twin, report.summary()
    messages = " ".join(by_name(report)[n].message for n in ("test_double_small_example",))
    if kind == "memory":  # the cap, or the call's time limit when filling memory is slow on a loaded machine
        assert "memory" in messages or "within" in messages
    if kind == "fork":
        assert "exit()" not in messages and ("processes" in messages or "memory" in messages or "within" in messages)
    if kind == "segfault":
        assert "SIGSEGV" in messages or "segmentation" in messages


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_a_bomb_in_a_top_level_cell_costs_only_that_cell(kind, make_submission, grade, fast_settings):
    cell = new_code_cell(BOMBS[kind].replace("\n    ", "\n"))
    report = grade(make_submission(extra_cells=[(4, cell)]), settings=fast_settings())
    assert report.score == FULL_SCORE, report.summary()
    assert any(c.status in ("crashed", "timeout") for c in report.cells)


def test_a_function_that_crashes_on_its_third_call_keeps_its_twins_points(make_submission, grade):
    counter = ("import os\n_calls = [0]\ndef double(x):\n    _calls[0] += 1\n    if _calls[0] == 3:\n"
               "        {action}\n    return x + x\n")
    report = grade(make_submission({"double": counter.format(action="os._exit(1)")}))
    twin = grade(make_submission({"double": counter.format(action="raise RuntimeError('third call')")})).score
    assert report.score == twin, report.summary()


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="sandbox users are created by a root grader")
def test_concurrent_grading_processes_get_their_own_sandbox_user():
    """Per-user kernel budgets (processes, user namespaces) are not shared between concurrent jobs."""
    import subprocess
    import sys

    from autograder.sandbox import users

    mine = users.slot_user()
    assert mine is not None
    other = subprocess.run([sys.executable, "-c", "from autograder.sandbox import users; "
                            "print(users.slot_user().pw_name)"], capture_output=True, text=True, check=True)
    assert other.stdout.strip() and other.stdout.strip() != mine.pw_name
    assert __import__("grp").getgrgid(mine.pw_gid).gr_name == users.GROUP
