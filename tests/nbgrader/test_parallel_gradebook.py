"""``grade-class --nbgrader --jobs 2`` fills one nbgrader gradebook on a real PostgreSQL server.

A throwaway PostgreSQL cluster is started for this module (``initdb``/``pg_ctl`` as an
unprivileged user, in a temporary folder it owns, on 127.0.0.1 at a free port, with a password;
stopped at the end even when a test fails).  A small class (the reference and the blank release
of 01 and 02, two partly answered notebooks, and a student whose notebook is corrupted) is
autograded by nbgrader itself through the course's sandboxed plugin, two worker processes at
once, into that one gradebook.  Every test cell's score in the gradebook must equal
the engine's (``grade_notebook``, what ``python -m autograder grade`` runs) and the gradebook must
be consistent: one row per student, one submission per (student, assignment), one grade per
test cell, totals that add up.  The corrupted notebook is reported and costs only its student.

Without PostgreSQL's binaries the module is skipped, except in CI (``CNN_COURSE_REQUIRE_POSTGRES=1``,
set by ``.ci/run``, which installs Debian's ``postgresql``), where it fails.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from autograder.authoring.notebook_builder import fill_answers, solution_sources
from autograder.course import Course
from autograder.notebooks import grade_id, is_test_cell, nbgrader_meta
from tests.nbgrader.conftest import make_course, nbgrader_env, submit

AIDS = ("01_apply_kernel", "02_conv_arithmetic")
#: student -> the assignments they submit (two students submit both: a worker grades a student's whole shard)
CLASS = {"reference": AIDS, "blank": AIDS, "partial_a": AIDS[:1], "partial_b": AIDS[1:]}
STUDENTS = tuple(CLASS)
PAIRS = [(student, aid) for student, aids in CLASS.items() for aid in aids]
BROKEN = "corrupted"   # submits a notebook that is not JSON: nbgrader cannot read it
REQUIRE_ENV = "CNN_COURSE_REQUIRE_POSTGRES"
UNPRIVILEGED = "nobody"


# -- a throwaway PostgreSQL cluster ------------------------------------------------------------------

def postgres_bindir() -> Path | None:
    """The folder of initdb/pg_ctl/postgres: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def _skip_or_fail(why: str):
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{why} ({REQUIRE_ENV} is set: CI must test the PostgreSQL gradebook)")
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A PostgreSQL cluster in ``base`` run by ``user`` (when this process is root) on 127.0.0.1."""

    def __init__(self, bindir: Path, base: Path):
        import pwd

        self.bindir, self.base = bindir, base
        self.data, self.log = base / "data", base / "server.log"
        self.port = _free_port()
        self.password = secrets.token_hex(16)
        self.as_user = {}
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            pw = pwd.getpwnam(UNPRIVILEGED)
            os.chown(base, pw.pw_uid, pw.pw_gid)
            self.as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _run(self, *cmd: str, timeout: float = 120) -> str:
        proc = subprocess.run([str(self.bindir / cmd[0]), *cmd[1:]], cwd=self.base, capture_output=True, text=True,
                              timeout=timeout, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"}, **self.as_user)
        assert proc.returncode == 0, f"{cmd[0]} failed:\n{proc.stdout}\n{proc.stderr}\n{self._log()}"
        return proc.stdout

    def _log(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def start(self) -> None:
        pwfile = self.base / "pw"
        pwfile.write_text(self.password + "\n")
        if self.as_user:
            os.chown(pwfile, self.as_user["user"], self.as_user["group"])
        self._run("initdb", "-D", str(self.data), "-U", "grader", "--pwfile", str(pwfile), "--auth=scram-sha-256",
                  "-E", "UTF8", "--no-locale", "--no-sync")
        pwfile.unlink()
        options = f"-h 127.0.0.1 -p {self.port} -k {self.base} -c max_connections=200 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
            except (AssertionError, subprocess.TimeoutExpired):
                pid = int((self.data / "postmaster.pid").read_text().split()[0])
                os.kill(pid, 9)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://grader:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="grader", password=self.password,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def query(self, database: str, sql: str) -> list[tuple]:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="grader", password=self.password,
                             dbname=database) as conn:
            return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def postgres():
    bindir = postgres_bindir()
    if bindir is None:
        _skip_or_fail("PostgreSQL's server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _skip_or_fail("the PostgreSQL driver is not installed: pip install -e '.[postgres]'")
    base = Path(tempfile.mkdtemp(prefix="cnn-course-postgres-"))   # under /tmp: the server's user can reach it
    cluster = Cluster(bindir, base)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


# -- the class ---------------------------------------------------------------------------------------

def class_notebooks(course: Course, aid: str) -> dict[str, nbformat.NotebookNode]:
    release = nbformat.read(course.get(aid).release_notebook, as_version=4)
    answers = list(solution_sources(nbformat.read(course.get(aid).solution_notebook, as_version=4)).items())
    return {"reference": fill_answers(release, dict(answers)),
            "blank": release,
            "partial_a": fill_answers(release, dict(answers[::2])),            # every other answer
            "partial_b": fill_answers(release, dict(answers[len(answers) // 2:]))}  # the second half only


def _autograde_class(root: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {**nbgrader_env(), "CNN_COURSE_ROOT": str(Course().root)}   # the engine's course: the repository's
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade-class", str(root), "--nbgrader", *args],
                          cwd=Course().root, env=env, capture_output=True, text=True, timeout=900)
    return proc, time.monotonic() - start


@pytest.fixture(scope="module")
def graded(postgres, tmp_path_factory):
    """The class autograded with --jobs 2 into a fresh PostgreSQL database, and the engine's grades of it."""
    from autograder.grading.grade_notebook import grade_notebook
    from autograder.integrations.nbgrader_api import nbgrader_api

    course = Course()
    root = make_course(tmp_path_factory.mktemp("parallel") / "course", AIDS)
    url = postgres.create_database("parallel")
    api = nbgrader_api(root, engine_root=course.root)
    api.coursedir.db_url = url
    for aid in AIDS:   # what `make release` does: record each assignment in the gradebook
        assert api.generate_assignment(aid, force=True, create=True)["success"]
        for student, nb in class_notebooks(course, aid).items():
            if aid in CLASS[student]:
                submit(root, aid, student, nb)
    submit(root, AIDS[1], BROKEN, b'{"cells": [ this is not a notebook')

    proc, seconds = _autograde_class(root, "--jobs", "2", "--db-url", url)
    print(f"\ngrade-class --nbgrader --jobs 2: {seconds:.1f} s for {len(PAIRS) + 1} submissions\n{proc.stderr[-5000:]}")

    engine = {}
    for student, aid in PAIRS:
        report = grade_notebook(root / "submitted" / student / aid / f"{aid}.ipynb", assignment_id=aid)
        engine[(student, aid)] = {cell: got for cell, (got, _) in report.cell_scores().items()}
    return {"root": root, "url": url, "proc": proc, "engine": engine, "course": course}


def _points(course: Course, aid: str) -> dict[str, float]:
    nb = nbformat.read(course.get(aid).solution_notebook, as_version=4)
    return {grade_id(c): float(nbgrader_meta(c)["points"]) for c in nb.cells if is_test_cell(c)}


# -- the tests ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_run_reports_the_corrupted_notebook_and_grades_everyone_else(graded):
    proc = graded["proc"]
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out[-4000:]   # one submission needs the instructor
    assert "with 2 worker processes" in out
    assert postgres_password_not_in(out, graded["url"]) and "grader:***@127.0.0.1" in out
    assert f"{BROKEN}/{AIDS[1]}: 0 / 0" in out
    assert "ERROR: nbgrader could not autograde it: NotJSONError: Notebook does not appear to be JSON" in out
    assert f"1 of {len(PAIRS) + 1} submissions need the instructor" in out
    for student, aid in PAIRS:
        assert f"{student}/{aid}: " in out and f"{student}/{aid}: 0 / 0 (ERROR" not in out


def postgres_password_not_in(text: str, url: str) -> bool:
    from sqlalchemy.engine import make_url

    return make_url(url).password not in text


@pytest.mark.slow
@pytest.mark.parametrize("student,aid", PAIRS, ids=[f"{s}-{a[:2]}" for s, a in PAIRS])
def test_every_grade_in_the_gradebook_equals_the_engines(graded, student, aid):
    from nbgrader.api import Gradebook

    with Gradebook(graded["url"], "cnn-course") as gb:
        submission = gb.find_submission(aid, student)
        cells = {g.name: float(g.score or 0.0) for nb in submission.notebooks for g in nb.grades
                 if g.cell.cell_type == "code"}
        total = float(submission.score)
    assert cells == pytest.approx(graded["engine"][(student, aid)])
    assert total == pytest.approx(sum(cells.values()))
    points = _points(graded["course"], aid)
    expected_total = {"reference": sum(points.values()), "blank": 0.0}.get(student)
    if expected_total is not None:
        assert total == pytest.approx(expected_total)
    else:
        assert 0 < total < sum(points.values())


@pytest.mark.slow
def test_the_gradebook_is_consistent(graded, postgres):
    q = lambda sql: postgres.query("parallel", sql)  # noqa: E731
    assert sorted(r[0] for r in q("SELECT id FROM student")) == sorted((*STUDENTS, BROKEN))
    # one submission per (student, assignment), none for the corrupted notebook's beyond nbgrader's own row
    subs = q("SELECT s.student_id, a.name, count(*) FROM submitted_assignment s JOIN assignment a "
             "ON a.id = s.assignment_id GROUP BY s.student_id, a.name")
    assert all(n == 1 for _, _, n in subs), subs
    assert {(s, a) for s, a, _ in subs} - {(BROKEN, AIDS[1])} == set(PAIRS)
    # every graded submission: one notebook, one grade per grade cell of the assignment, scores within bounds
    for aid in AIDS:
        cells = len(_points(graded["course"], aid))
        rows = q(f"""SELECT sa.student_id, count(g.id), sum(CASE WHEN g.auto_score IS NULL THEN 1 ELSE 0 END)
                     FROM submitted_assignment sa JOIN assignment a ON a.id = sa.assignment_id
                     JOIN submitted_notebook sn ON sn.assignment_id = sa.id
                     JOIN grade g ON g.notebook_id = sn.id JOIN grade_cells gc ON gc.id = g.cell_id
                     WHERE a.name = '{aid}' AND gc.cell_type = 'code' GROUP BY sa.student_id""")
        by_student = {s: (n, missing) for s, n, missing in rows if s != BROKEN}
        assert by_student == {s: (cells, 0) for s, a in PAIRS if a == aid}, (aid, by_student)
    # the corrupted notebook earned nothing (nbgrader may keep its submission row, without points)
    assert q(f"""SELECT coalesce(sum(g.auto_score), 0) FROM grade g JOIN submitted_notebook sn ON sn.id = g.notebook_id
                  JOIN submitted_assignment sa ON sa.id = sn.assignment_id WHERE sa.student_id = '{BROKEN}'""") == [(0,)]
    over = q("""SELECT count(*) FROM grade g JOIN grade_cells gc ON gc.id = g.cell_id
                 WHERE g.auto_score > gc.max_score OR g.auto_score < 0""")
    assert over == [(0,)]
    # nbgrader's own view (what `nbgrader export` and the formgrader read) sums to the same totals
    from nbgrader.api import Gradebook

    with Gradebook(graded["url"], "cnn-course") as gb:
        for student, aid in PAIRS:
            total = sum(graded["engine"][(student, aid)].values())
            assert gb.find_submission(aid, student).score == pytest.approx(total)


GRADES = """SELECT sa.student_id, a.name, bc.name, g.auto_score FROM grade g JOIN base_cell bc ON bc.id = g.cell_id
             JOIN submitted_notebook sn ON sn.id = g.notebook_id JOIN submitted_assignment sa ON sa.id = sn.assignment_id
             JOIN assignment a ON a.id = sa.assignment_id ORDER BY 1, 2, 3"""


@pytest.mark.slow
def test_a_second_run_skips_what_is_autograded_and_regrades_what_was_interrupted(graded, postgres):
    """Run after the checks above: it regrades one submission, which must end exactly as it was."""
    root, aid = graded["root"], AIDS[0]
    before = postgres.query("parallel", GRADES)
    # partial_a's autograde "was killed" before nbgrader wrote its notebook (its grades are in the gradebook already)
    (root / "autograded" / "partial_a" / aid / f"{aid}.ipynb").unlink()
    proc, _ = _autograde_class(root, "--jobs", "2", "--db-url", graded["url"], "--assignment", aid)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    done = sum(aid in aids for aids in CLASS.values()) - 1
    assert f"{done} already autograded, 1 to autograde (1 of them interrupted earlier)" in out
    assert "partial_a/01_apply_kernel: " in out and "reference/01_apply_kernel: " not in out
    assert (root / "autograded" / "partial_a" / aid / f"{aid}.ipynb").is_file()
    assert postgres.query("parallel", GRADES) == before
    assert postgres.query("parallel", "SELECT count(*) FROM submitted_assignment") == [(len(PAIRS) + 1,)]


def test_a_worker_process_that_dies_costs_only_its_student():
    from autograder.integrations.nbgrader_class import Shard, run_local
    from tests.nbgrader.crashing_worker import dies_for_bob

    shards = [Shard(name, list(AIDS)) for name in ("ann", "bob", "cat", "dan")]
    rows = [row for batch in run_local({}, shards, 2, grade=dies_for_bob) for row in batch]
    assert sorted((r["student"], r["assignment"]) for r in rows) == sorted((s.student, a) for s in shards for a in AIDS)
    for row in rows:
        if row["student"] == "bob":
            assert row["status"] == "error" and "the grading process died" in row["message"]
        else:
            assert row["status"] == "graded" and row["score"] == 1.0, row


def _sqlite_course(tmp_path) -> Path:
    course = Course()
    root = make_course(tmp_path / "course", AIDS[1:])
    release = nbformat.read(course.get(AIDS[1]).release_notebook, as_version=4)
    submit(root, AIDS[1], "ann", release)
    return root


@pytest.mark.slow
def test_sqlite_with_one_writer_is_the_default_and_works(tmp_path):
    from nbgrader.api import Gradebook

    from autograder.integrations.nbgrader_api import nbgrader_api

    root = _sqlite_course(tmp_path)
    assert nbgrader_api(root).generate_assignment(AIDS[1], force=True, create=True)["success"]
    proc, _ = _autograde_class(root)   # --jobs 1 is the default
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "with 1 worker process into sqlite:///" in proc.stderr
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "cnn-course") as gb:
        submission = gb.find_submission(AIDS[1], "ann")
        assert submission.score == 0 and submission.max_score > 0
        assert all(g.auto_score == 0 for nb in submission.notebooks for g in nb.grades if g.cell.cell_type == "code")


def test_sqlite_with_several_writers_is_refused(tmp_path):
    """The course's default gradebook is SQLite: --jobs 2 is refused before anything is graded or written."""
    root = _sqlite_course(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade-class", str(root), "--nbgrader", "--jobs", "2"],
                          cwd=Course().root, env=nbgrader_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "SQLite, which is not safe for several writers" in proc.stderr
    assert "PostgreSQL" in proc.stderr and "--jobs 1" in proc.stderr
    assert not (root / "gradebook.db").exists() and not (root / "autograded").exists()
