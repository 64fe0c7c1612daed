"""``python -m autograder grade-class``: parallel, isolated, resumable, and the same on a dask cluster."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.engine.conftest import FIXTURE

from .conftest import FLOAT_DOUBLE, HANG, WRONG_DOUBLE, write_submission

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> dict:
    """A copy of the fixture course with a short cell limit, so the hanging cell costs seconds, not 20."""
    root = tmp_path_factory.mktemp("course") / "fixture_course"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns(".autograder_cache", "__pycache__"))
    settings_path = root / "checks" / "a00_fixture" / "grading.json"
    settings = json.loads(settings_path.read_text())
    settings.update(cell_timeout=6, total_timeout=90)
    settings_path.write_text(json.dumps(settings))
    return {**os.environ, "CNN_COURSE_ROOT": str(root), "CNN_COURSE_CHECKS": str(root / "checks")}


@pytest.fixture(scope="module")
def klass(tmp_path_factory) -> Path:
    """Eight students: right, wrong, partly right, corrupted, hanging, nbgrader's layout, crashing, unnamed."""
    folder = tmp_path_factory.mktemp("class") / "submissions"
    write_submission(folder, "alice")
    write_submission(folder, "bob", WRONG_DOUBLE)
    write_submission(folder, "carol", FLOAT_DOUBLE)
    write_submission(folder, "dave", raw=b'{"cells": [{"cell_type": "code", "sou')
    write_submission(folder, "erin", extra_cells=[(-1, HANG)])
    write_submission(folder, "frank", nbgrader=True)
    write_submission(folder, "grace", extra_cells=[(2, "import os\nos._exit(1)")])
    (folder / "heidi").mkdir()
    (folder / "heidi" / "homework.ipynb").write_bytes(b"not a notebook")
    return folder


def grade_class(folder: Path, out: Path, env: dict, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "grade-class", str(folder), "--out", str(out), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)


def table(out: Path) -> dict[str, tuple[str, str, str, str]]:
    with open(out / "grades.csv", newline="") as f:
        return {r["student"]: (r["assignment"], r["score"], r["max_score"], r["status"]) for r in csv.DictReader(f)}


def results_files(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*/*.json") if not p.name.startswith("."))


@pytest.fixture(scope="module")
def jobs1(klass, course, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("jobs1")
    start = time.monotonic()
    proc = grade_class(klass, out, course, "--jobs", "1")
    TIMES["jobs 1"] = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    # One job: one grading process for the seven gradable submissions, and the reference loaded once.
    assert "1 grading processes started for 1 jobs; reference loads: 00_fixture 1" in proc.stderr
    return out


def test_a_class_graded_with_two_jobs_scores_like_one_job(klass, course, jobs1, tmp_path):
    start = time.monotonic()
    proc = grade_class(klass, tmp_path, course, "--jobs", "2")
    TIMES["jobs 2"] = time.monotonic() - start
    print(f"\nwall time for 8 submissions: jobs 1 {TIMES['jobs 1']:.1f} s, jobs 2 {TIMES['jobs 2']:.1f} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    loads = re.search(r"(\d+) grading processes started for 2 jobs; reference loads: 00_fixture (\d+)", proc.stderr)
    assert loads and int(loads[1]) <= 2 and int(loads[2]) == int(loads[1]), proc.stderr[-3000:]
    one, two = table(jobs1), table(tmp_path)
    assert one == two
    assert one["alice"] == ("00_fixture", "7", "7", "graded")
    assert one["frank"] == ("00_fixture", "7", "7", "graded")          # nbgrader's layout
    assert one["bob"][1:] == ("3", "7", "graded")
    assert one["carol"][1:] == ("6", "7", "graded")
    assert one["dave"][1:] == ("0", "7", "graded")                      # corrupted: zero, graded anyway
    assert one["erin"][1:] == ("7", "7", "graded")                      # the hanging cell costs only itself
    assert one["grace"][1:] == ("7", "7", "graded")                     # so does the crashing one
    assert one["heidi"] == ("homework", "0", "0", "error")
    heidi = json.loads((tmp_path / "heidi" / "homework.json").read_text())
    assert "cannot tell which assignment" in heidi["output"] and heidi["score"] == 0
    dave = json.loads((tmp_path / "dave" / "00_fixture.json").read_text())
    assert "ERROR" in dave["output"] and all(t["score"] == 0 for t in dave["tests"])
    erin = json.loads((tmp_path / "erin" / "00_fixture.json").read_text())
    assert [c["status"] for c in erin["extra_data"]["cell_outcomes"] if c["status"] != "ok"] == ["timeout"]
    assert len(erin["extra_data"]["content_sha256"]) == 64


def test_a_killed_run_resumes_without_regrading_what_was_done(course, tmp_path):
    folder, out = tmp_path / "submissions", tmp_path / "graded"
    for student in ("ann", "ben", "cat", "dan"):
        write_submission(folder, student, WRONG_DOUBLE if student == "ben" else None)
    proc = subprocess.Popen([sys.executable, "-m", "autograder", "grade-class", str(folder), "--out", str(out),
                             "--jobs", "1"], env=course, cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while len(results_files(out)) < 2:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no results after 240 s"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "grades.csv").exists()
    done = {p: p.stat().st_mtime_ns for p in results_files(out)}
    assert 2 <= len(done) < 4

    again = grade_class(folder, out, course, "--jobs", "1")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{len(done)} up to date, {4 - len(done)} to grade" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in done} == done             # not rewritten
    grades = table(out)
    assert {s: g[1] for s, g in grades.items()} == {"ann": "7", "ben": "3", "cat": "7", "dan": "7"}

    # A changed notebook is regraded.
    write_submission(folder, "ann", WRONG_DOUBLE)
    third = grade_class(folder, out, course)
    assert "3 up to date, 1 to grade" in third.stderr and table(out)["ann"][1] == "3"


def test_bad_usage_exits_2(course, tmp_path):
    assert grade_class(tmp_path / "missing", tmp_path / "out", course).returncode == 2
    (tmp_path / "empty").mkdir()
    assert grade_class(tmp_path / "empty", tmp_path / "out", course).returncode == 2
    assert grade_class(tmp_path / "empty", tmp_path / "out", course, "--assignment", "99_nope").returncode == 2


def test_a_dask_cluster_scores_like_local_grading(klass, course, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    folder = tmp_path / "three"
    for student in ("alice", "bob", "dave"):
        shutil.copytree(klass / student, folder / student)
    for key in ("CNN_COURSE_ROOT", "CNN_COURSE_CHECKS"):   # the workers inherit the course's location
        monkeypatch.setenv(key, course[key])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        proc = grade_class(folder, tmp_path / "out", course, "--scheduler", cluster.scheduler_address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    local = grade_class(folder, tmp_path / "local", course, "--jobs", "2")
    assert local.returncode == 0, local.stderr[-3000:]
    assert table(tmp_path / "out") == table(tmp_path / "local")
    assert {s: g[1] for s, g in table(tmp_path / "out").items()} == {"alice": "7", "bob": "3", "dave": "0"}
    alice = json.loads((tmp_path / "out" / "alice" / "00_fixture.json").read_text())
    assert alice["extra_data"]["submission"] == str(folder / "alice" / "00_fixture.ipynb")

