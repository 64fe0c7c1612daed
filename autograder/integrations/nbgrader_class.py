"""Parallel ``nbgrader autograde`` into one gradebook: ``python -m autograder grade-class COURSE --nbgrader``.

nbgrader grades one submission at a time (it has no parallel autograde, its issue #174).  Here the
submissions of nbgrader's ``submitted/<student>/<assignment>/`` are autograded by nbgrader itself
(its ``Autograde`` converter with the course's ``nbgrader_config.py``, so the sandboxed engine
grades, and scores, feedback and the formgrader stay nbgrader's), sharded by student over
``--jobs N`` worker processes, each with its own nbgrader application, all writing into one
gradebook (``--db-url``, default: the course's ``db_url``).  ``--scheduler ADDRESS`` sends the
students to a ``dask.distributed`` cluster instead (each worker process keeps its own nbgrader
application and grades one student at a time; the workers need the course folder at the same path).

Why this is safe:

* every row that two workers could both create is created once, up front, by this (parent)
  process: the gradebook's schema and course row (``Gradebook()``), and every student.  A worker
  then writes only its own students' submissions (rows keyed by (assignment, student)), so no two
  workers ever insert the same key;
* the database must take several writers: SQLite does not (one writer at a time, "database is
  locked" under load, no row locking), so with a SQLite gradebook only ``--jobs 1`` is accepted
  (exit 2 otherwise): use PostgreSQL (``postgresql+psycopg://...``, the ``postgres`` extra) to grade
  in parallel;
* one submission's failure (a notebook nbgrader cannot read, a crashed worker) is reported for
  that submission only; the others are graded and stay in the gradebook.

Submissions nbgrader finished are skipped (``--force`` regrades them); one interrupted halfway
(its ``autograded/`` folder without the autograded notebook, which nbgrader writes last) is graded
again, where nbgrader's own autograde would skip it.

Exit codes: 0 every submission autograded; 2 bad usage (no course, no submissions, SQLite with
several writers); 3 the gradebook cannot be opened, or some submissions could not be autograded
(each is listed; the others are in the gradebook).
"""

from __future__ import annotations

import gc
import os
import re
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from autograder.exit_codes import EXIT_GRADER, EXIT_OK, EXIT_USAGE
from autograder.grading.grade_class import dask_client, die_with_parent, worker_threads
from autograder.textsafe import one_line, safe_text

#: How a gradebook URL that may hold a password is shown.
_HIDDEN = "***"


@dataclass
class Shard:
    """One student's submissions: graded in one worker process, one after the other."""

    student: str
    assignments: list[str] = field(default_factory=list)


# -- the gradebook ---------------------------------------------------------------------------------

def shown_url(url: str) -> str:
    """``url`` without its password, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy can parse: show only its scheme
        return url.split("://", 1)[0] + "://" + _HIDDEN


def is_sqlite(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0].lower() == "sqlite"


def _driver_hint(url: str, exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError) and url.lower().startswith("postgresql"):
        return " (the PostgreSQL driver is missing: pip install -e '.[postgres]')"
    return ""


def prepare_gradebook(db_url: str, course_id: str, students: list[str]) -> list[str]:
    """Open the gradebook once (creating its schema and course row if new), add every student.

    Returns the assignments the gradebook knows.  Run in the parent process only: nbgrader creates
    these rows on demand, and several workers creating the same row at once collide.
    """
    from nbgrader.api import Gradebook

    with Gradebook(db_url, course_id) as gb:
        for student in students:
            gb.update_or_create_student(student)
        return [a.name for a in gb.assignments]


# -- the worker side (a local worker process, or a dask worker) -------------------------------------

_APIS: dict[tuple, object] = {}
_ONE_AT_A_TIME = threading.Lock()   # nbgrader chdirs into the course: one autograde per process at a time


def _api(spec: dict):
    """This process's nbgrader application for ``spec`` (built once per process)."""
    key = tuple(sorted((k, str(v)) for k, v in spec.items()))
    api = _APIS.get(key)
    if api is None:
        from autograder.integrations.nbgrader_api import nbgrader_api

        engine_root = Path(spec["engine_root"]) if spec.get("engine_root") else None
        api = nbgrader_api(Path(spec["root"]), engine_root=engine_root, threads=int(spec.get("threads") or 0))
        api.coursedir.db_url = spec["db_url"]
        _APIS[key] = api
    return api


def _threads_here(spec: dict) -> int:
    """Threads for the student's code: the job's share, or the cores shared by this dask worker's task slots."""
    return int(spec["threads"]) if spec.get("threads") else worker_threads()


def _problem_lines(log: str) -> list[str]:
    """The errors nbgrader (or the sandboxed grader inside it) logged."""
    return [line for line in (log or "").splitlines() if line.startswith(("[ERROR]", "[CRITICAL]"))]


_EXCEPTION_LINE = re.compile(r"^\s*(?:[\w]+\.)*(\w*(?:Error|Exception|Exit|Interrupt)\w*): (.*)$")


def failure_reason(result: dict) -> str:
    """Why nbgrader could not autograde a submission: the exception its log shows, else its first error."""
    log = result.get("log") or ""
    for line in reversed(log.splitlines()):
        match = _EXCEPTION_LINE.match(line)
        if match and match.group(1) != "NbGraderException":
            return f"{match.group(1)}: {match.group(2)}"
    problems = _problem_lines(log)
    if problems:
        return problems[0].split("] ", 1)[-1]
    lines = (result.get("error") or "").strip().splitlines()
    return lines[-1] if lines else "no reason given"


def autograde_one(api, student: str, assignment: str, *, force: bool) -> dict:
    """nbgrader's autograde of one submission, then its total read back from the gradebook; never raises."""
    from nbgrader.api import Gradebook

    start = time.monotonic()
    row = {"student": student, "assignment": assignment, "status": "graded", "score": 0.0, "max_score": 0.0,
           "message": "", "seconds": 0.0}
    try:
        result = api.autograde(assignment, student, force=force, create=False)
        if not result.get("success"):
            row.update(status="error", message=f"nbgrader could not autograde it: {failure_reason(result)}")
        else:
            with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
                submission = gb.find_submission(assignment, student)
                row.update(score=float(submission.score or 0.0), max_score=float(submission.max_score or 0.0))
            problems = [line for line in _problem_lines(result.get("log", "")) if "SandboxedExecute" in line]
            if problems:  # the grader failed for some cells: they scored 0 and say so; the instructor must act
                row.update(status="grader-problem", message=problems[0])
    except Exception as exc:  # noqa: BLE001 - one submission never stops the others
        row.update(status="error", message=f"{type(exc).__name__}: {exc}")
    finally:
        gc.collect()  # nbgrader opens a database engine per Gradebook: give their connections back now
    row["seconds"] = round(time.monotonic() - start, 3)
    return row


def grade_shard(spec: dict, shard: Shard) -> list[dict]:
    """Autograde one student's submissions in this process (a local worker or a dask worker)."""
    with _ONE_AT_A_TIME:
        spec = {**spec, "threads": _threads_here(spec)}
        try:
            api = _api(spec)
        except Exception as exc:  # noqa: BLE001 - report it for each of this student's submissions
            return [{"student": shard.student, "assignment": aid, "status": "error", "score": 0.0, "max_score": 0.0,
                     "message": f"nbgrader could not start: {type(exc).__name__}: {exc}", "seconds": 0.0}
                    for aid in shard.assignments]
        # The parent sends only what must be (re)graded, so nbgrader must not skip a half-written autograded/ folder.
        return [autograde_one(api, shard.student, aid, force=True) for aid in shard.assignments]


# -- running the shards -----------------------------------------------------------------------------

def _crashed(shard: Shard, why: str) -> list[dict]:
    return [{"student": shard.student, "assignment": aid, "status": "error", "score": 0.0, "max_score": 0.0,
             "message": why, "seconds": 0.0} for aid in shard.assignments]


def _pool(jobs: int) -> ProcessPoolExecutor:
    import multiprocessing

    # spawn: a fresh interpreter (no copy of this process's threads, locks or database connections)
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=die_with_parent)


def run_local(spec: dict, shards: list[Shard], jobs: int, grade=grade_shard):
    """Yield each shard's rows (``grade(spec, shard)`` in a worker process) as its worker finishes.

    A worker process that dies breaks the whole pool; the shards it took down with it are then
    graded again, each alone in a fresh process, so that only the one that kills its process is lost.
    """
    retry: list[Shard] = []
    with _pool(jobs) as pool:
        futures = {pool.submit(grade, spec, shard): shard for shard in shards}
        for future in as_completed(futures):
            shard = futures[future]
            try:
                yield future.result()
            except BrokenProcessPool:
                retry.append(shard)
            except Exception as exc:  # noqa: BLE001 - grade_shard does not raise; never lose the class
                yield _crashed(shard, f"the worker failed: {type(exc).__name__}: {exc}")
    if not retry:
        return
    from concurrent.futures import ThreadPoolExecutor

    def alone(shard: Shard) -> list[dict]:
        with _pool(1) as single:
            try:
                return single.submit(grade, spec, shard).result()
            except BrokenProcessPool:
                return _crashed(shard, "the grading process died (killed, or out of memory)")

    with ThreadPoolExecutor(max_workers=jobs) as threads:
        yield from threads.map(alone, retry)


def run_dask(spec: dict, shards: list[Shard], client):
    from distributed import as_completed as dask_as_completed

    futures = {client.submit(grade_shard, spec, shard, key=f"nbgrader-autograde-{shard.student}", pure=False,
                             retries=0): shard for shard in shards}
    for future in dask_as_completed(list(futures)):
        shard = futures[future]
        try:
            yield future.result()
        except Exception as exc:  # noqa: BLE001 - a dead worker (KilledWorker) costs this student only
            yield _crashed(shard, f"the cluster could not grade it: {type(exc).__name__}: {exc}")


# -- the command ------------------------------------------------------------------------------------

def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def course_folder(path: Path) -> Path | None:
    """The nbgrader course folder: ``path`` itself or, for ``COURSE/submitted``, its parent."""
    for candidate in (path, path.parent):
        if (candidate / "nbgrader_config.py").is_file() and (candidate / "submitted").is_dir():
            return candidate
    return None


def find_shards(submitted: Path, assignment: str | None = None) -> list[Shard]:
    """nbgrader's ``submitted/<student>/<assignment>/``: one shard per student."""
    shards = []
    for student_dir in sorted(p for p in submitted.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if student_dir.is_symlink():
            continue
        aids = sorted(p.name for p in student_dir.iterdir()
                      if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
                      and (assignment is None or p.name == assignment))
        if aids:
            shards.append(Shard(student_dir.name, aids))
    return shards


def autograded(root: Path, student: str, assignment: str) -> bool | None:
    """Whether nbgrader finished this submission: True, False (never started), None (interrupted halfway).

    nbgrader writes each autograded notebook last, after its grades are in the gradebook; a run
    killed halfway leaves the folder without it (nbgrader itself would then skip the submission).
    """
    done = root / "autograded" / student / assignment
    if not done.is_dir():
        return False
    notebooks = [p.name for p in (root / "submitted" / student / assignment).glob("*.ipynb")]
    return True if notebooks and all((done / name).is_file() for name in notebooks) else None


def grade_class_nbgrader(folder: Path, *, jobs: int = 1, db_url: str | None = None, force: bool = False,
                         assignment: str | None = None, scheduler: str | None = None,
                         engine_root: Path | None = None, progress: bool = True) -> int:
    """Autograde every submission of the nbgrader course at ``folder`` into one gradebook; see the module."""
    from tqdm.auto import tqdm

    from autograder.integrations.nbgrader_api import environment_on_path, nbgrader_api

    folder = Path(folder).resolve()
    root = course_folder(folder)
    if root is None:
        return _usage(f"{folder}: not an nbgrader course folder (expected nbgrader_config.py and submitted/)")
    if jobs < 1:
        return _usage("--jobs must be at least 1")
    environment_on_path()
    parent_api = nbgrader_api(root)
    course_id = parent_api.coursedir.course_id
    db_url = db_url or parent_api.coursedir.db_url
    where = shown_url(db_url)
    if is_sqlite(db_url) and (jobs > 1 or scheduler):
        return _usage(f"the gradebook {where} is SQLite, which is not safe for several writers at once. "
                      "Grade in parallel into a PostgreSQL gradebook (--db-url postgresql+psycopg://USER@HOST/DB, "
                      "or CNN_GRADEBOOK_URL), or use --jobs 1 without --scheduler.")
    shards = find_shards(root / "submitted", assignment)
    if not shards:
        what = f"for {assignment} " if assignment else ""
        return _usage(f"{root / 'submitted'}: no submissions {what}(expected submitted/<student>/<assignment>/)")

    try:
        known = set(prepare_gradebook(db_url, course_id, [s.student for s in shards]))
    except Exception as exc:  # noqa: BLE001 - unreachable server, wrong password, missing driver, ...
        print(f"error: cannot open the gradebook {where}: {one_line(safe_text(exc), 400)}{_driver_hint(db_url, exc)}",
              file=sys.stderr)
        return EXIT_GRADER

    rows: list[dict] = []
    todo: list[Shard] = []
    up_to_date = interrupted = 0
    for shard in shards:
        keep = Shard(shard.student)
        for aid in shard.assignments:
            if aid not in known:
                rows.append({"student": shard.student, "assignment": aid, "status": "error", "score": 0.0,
                             "max_score": 0.0, "message": f"{aid} is not in the gradebook {where}: record it first "
                             f"(nbgrader generate_assignment {aid} --db URL, or make release with CNN_GRADEBOOK_URL)"})
            elif not force and (state := autograded(root, shard.student, aid)):
                up_to_date += 1   # --force regrades
            else:
                interrupted += not force and state is None
                keep.assignments.append(aid)
        if keep.assignments:
            todo.append(keep)
    if rows and not todo and not up_to_date:
        for row in rows:
            print(f"error: {one_line(row['message'], 500)}", file=sys.stderr)
        return EXIT_USAGE
    count = sum(len(s.assignments) for s in todo)
    mode = f"on the dask cluster at {scheduler}" if scheduler else f"with {jobs} worker process{'es' * (jobs > 1)}"
    again = f" ({interrupted} of them interrupted earlier)" if interrupted else ""
    print(f"{sum(len(s.assignments) for s in shards)} submissions from {len(shards)} students: {up_to_date} already "
          f"autograded, {count} to autograde{again} {mode} into {where}", file=sys.stderr)
    for row in rows:
        print(f"{row['student']}/{row['assignment']}: ERROR: {one_line(row['message'], 500)}", file=sys.stderr)

    client = None
    if scheduler and todo:

        client = dask_client(scheduler)
        if client is None:
            return EXIT_GRADER
    spec = {"root": str(root), "db_url": db_url,
            "engine_root": str(engine_root) if engine_root else "",
            "threads": 0 if client is not None else max(1, (os.cpu_count() or 1) // jobs)}
    start = time.monotonic()
    stream = run_dask(spec, todo, client) if client is not None else run_local(spec, todo, jobs)
    try:
        with tqdm(total=count, unit="submission", desc="autograding", disable=not progress or not count,
                  file=sys.stderr, dynamic_ncols=True) as bar:
            for shard_rows in stream:
                for row in shard_rows:
                    rows.append(row)
                    line = f"{row['student']}/{row['assignment']}: {row['score']:g} / {row['max_score']:g}" \
                           f" ({row['seconds']:.1f} s)"
                    if row["status"] != "graded":
                        line += f" ({'GRADER PROBLEM' if row['status'] == 'grader-problem' else 'ERROR'}: " \
                                f"{row['message']})"
                    bar.write(one_line(line, 600), file=sys.stderr)
                    bar.update(1)
    finally:
        if client is not None:
            client.close()
    failed = [r for r in rows if r["status"] != "graded"]
    done = sum(r["status"] != "error" for r in rows if "seconds" in r)
    print(f"autograded {done} of {count} in {time.monotonic() - start:.1f} s into {where} "
          "(nbgrader export writes the grade table)", file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} of {len(rows)} submissions need the instructor (listed above); every other "
              "one is in the gradebook", file=sys.stderr)
        return EXIT_GRADER
    return EXIT_OK
