"""Grade a whole class: ``python -m autograder grade-class SUBMISSIONS_DIR --jobs N``.

One folder per student (``SUBMISSIONS_DIR/<student>/**/*.ipynb``); nbgrader's
``submitted/<student>/<assignment>/*.ipynb`` layout is accepted too (pass ``submitted/``
or the course folder that holds it).  Each of the N jobs is one long-lived grading process
(:class:`GradingProcess`, fed one submission at a time through a pipe) that grades many
submissions in-process with :func:`grade_notebook`: it loads each assignment's reference once
and keeps its sandbox zygote warm (a worker forked in a fraction of a second instead of a fresh
interpreter importing torch).  The student's code runs in the sandbox, so a crash, a hang or a
corrupted notebook in one submission never stops the others: a submission whose grading fails
gets a results entry with a clear message and zero points; if the grading process itself dies
or outlives the hard limit, that one submission is reported as the grader's error and the job
starts a fresh process for the next.  Each job gets ``cpu_count // jobs`` threads (its sandbox
worker and its own tensor work never run at once: the grader waits while the worker computes).

Results go to ``OUT/<student>/<assignment>.json`` (Gradescope's format, written atomically,
with the sha256 of the notebook's bytes in ``extra_data.content_sha256``) and one class table
``OUT/grades.csv``.  A second run skips every submission whose results exist and whose notebook
is unchanged (``--force`` regrades everything; failed gradings are always retried).

``--scheduler ADDRESS`` sends the submissions to a ``dask.distributed`` cluster instead:
each task is :func:`grade_submission`, which receives the notebook's bytes (no shared
filesystem needed for submissions; the workers need the course and this package).  Each dask
worker thread keeps its own grading process across tasks, so the reference stays loaded there too.

A submission some of whose checks broke (the grader's problem: ``grade`` exits 3 and lists them in
``grader_problems``) keeps its results, the student's other points included, with the status
``grader_problem`` in the table: the instructor fixes the check and runs again (it is regraded).

Exit codes: 0 grading completed (whatever the scores, failed submissions included as zero),
2 bad usage, 3 grading itself could not run (the cluster cannot be reached, or the grader
reported that it could not run for some submission: broken reference, sandbox would not start)
or some checks broke for some submission.
"""

from __future__ import annotations

import atexit
import csv
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from autograder.course import REPO_ROOT, Course, GradingSettings
from autograder.exit_codes import EXIT_GRADER, EXIT_OK, EXIT_USAGE
from autograder.files import write_atomic
from autograder.textsafe import csv_cell, one_line, safe_text

CSV_NAME = "grades.csv"
CSV_FIELDS = ["student", "assignment", "score", "max_score", "status"]
# Beyond the assignment's own total limit, time for the grader's start, the reference and the reports.
HARD_LIMIT_MARGIN = 300.0


@dataclass
class Job:
    student: str
    assignment: str
    path: Path
    sha256: str
    problem: str | None = None    # known before grading (the assignment cannot be identified)

    @property
    def key(self) -> str:
        return f"{self.student}/{self.assignment}"


# -- one submission (runs locally in a thread, or on a dask worker) ---------------------

def die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the class grader dies (even by SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: the process group still gets the signals
        pass


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def error_results(task: dict, message: str, *, kind: str = "submission") -> dict:
    """A Gradescope results entry for a submission whose grading failed: zero, and why."""
    return {
        "score": 0.0,
        "max_score": 0.0,
        "execution_time": 0.0,
        "output": f"Grading failed: {message}",
        "stdout_visibility": "hidden",
        "tests": [],
        "extra_data": {"assignment": task["assignment"], "submission": task["path"], "errors": [message],
                       "grading_error": message, "grading_error_kind": kind},
    }


def worker_threads() -> int:
    """Threads for one submission on a dask worker: its cores shared by its task slots."""
    try:
        from distributed import get_worker

        slots = get_worker().state.nthreads
    except Exception:  # noqa: BLE001 - not on a dask worker
        slots = 1
    return max(1, (os.cpu_count() or 1) // max(1, slots))


def grade_submission(task: dict) -> dict:
    """Grade one submission in this thread's long-lived grading process; never raises.

    ``task``: student, assignment, path, sha256, threads (None: decide here), timeout (seconds),
    problem (grade nothing, record it), env (extra environment, e.g. the course's location) and
    optionally content (the notebook's bytes, written to a scratch folder: for remote workers).
    Returns the Gradescope results dict, with student, content_sha256 and class_status added to
    ``extra_data``: "graded", "grader_problem" (graded, but some checks broke: the student's other
    points stand and the instructor must look, see ``grader_problems``) or "error" (not graded).
    """
    start = time.monotonic()
    if task.get("problem"):
        results = error_results(task, task["problem"])
    else:
        results = _grading_process().grade(task)
    extra = results.setdefault("extra_data", {})
    extra["student"] = task["student"]
    extra["submission"] = task["path"]
    extra["content_sha256"] = task["sha256"]
    extra["class_status"] = ("error" if "grading_error" in extra
                             else "grader_problem" if extra.get("grader_problems") else "graded")
    extra["wall_seconds"] = round(time.monotonic() - start, 3)
    return results


# -- the grading processes: one per job, each grading many submissions --------------------
#
# A job is one long-lived ``serve()`` process, fed one task at a time through a pipe: it loads each
# assignment's reference once (grading/reference.py caches it per process, keyed by content hash) and
# keeps its sandbox zygote warm, so a submission pays neither a fresh interpreter, nor torch's import,
# nor the reference, nor a cold worker.  The process runs the grader only (the student's code is in
# the sandbox), and a thread of the caller owns it: if it dies or outlives the hard limit while
# grading, that one submission is reported as the grader's error and the next one gets a fresh process.

SERVE_HANDLER = "autograder.grading.grade_class:grade_in_process"
_LOCAL = threading.local()
_PROCESSES: list[GradingProcess] = []
_PROCESSES_LOCK = threading.Lock()


class GradingProcess:
    """A grading process owned by one thread: ``grade(task)`` sends it a task and waits for the results."""

    def __init__(self, handler: str | None = None):
        self.handler = handler or SERVE_HANDLER
        self.proc: subprocess.Popen | None = None
        self.env: dict | None = None
        self.tasks = self.replies = None
        self.scratch = Path(tempfile.mkdtemp(prefix="classgrade-job-"))
        self.log = self.scratch / "grader.log"
        self.closed = False
        self.starts = 0
        self.loads: dict[int, dict[str, int]] = {}   # per process id: its reference loads per assignment

    def _start(self, env: dict) -> None:
        from multiprocessing.connection import Connection

        self.stop()
        task_r, task_w = os.pipe()
        reply_r, reply_w = os.pipe()
        try:
            with open(self.log, "ab") as log_file:
                self.proc = subprocess.Popen(
                    [sys.executable, "-c", "from autograder.grading.grade_class import serve; serve()",
                     str(task_r), str(reply_w), self.handler],
                    stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env,
                    pass_fds=(task_r, reply_w), preexec_fn=die_with_parent)
        except BaseException:
            for fd in (task_w, reply_r):
                os.close(fd)
            raise
        finally:
            os.close(task_r)
            os.close(reply_w)
        self.tasks, self.replies = Connection(task_w, readable=False), Connection(reply_r, writable=False)
        self.env = env
        self.starts += 1

    def grade(self, task: dict) -> dict:
        try:
            env = {**os.environ, **(task.get("env") or {})}
            if self.proc is None or self.proc.poll() is not None or env != self.env:
                self._start(env)
            os.truncate(self.log, 0)  # the log of this submission only (the process appends)
            self.tasks.send(task)
            if not self.replies.poll(task.get("timeout")):
                self.stop(kill=True)
                return error_results(task, f"grading did not finish within {task['timeout']:g} s and was stopped",
                                     kind="grader")
            results, stats = self.replies.recv()
            self.loads[stats["pid"]] = stats["reference_loads"]
            return results
        except (EOFError, OSError) as exc:  # the process died while grading (a broken pipe, or no reply)
            why = self._death() if self.proc is not None else f"the grading process could not start: {exc}"
            return error_results(task, why, kind="grader")
        except Exception as exc:  # noqa: BLE001 - one submission must never stop the class
            self.stop(kill=True)
            return error_results(task, f"grading failed: {type(exc).__name__}: {exc}", kind="grader")

    def _death(self) -> str:
        rc = None
        if self.proc is not None:
            try:
                rc = self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        log = _tail(self.log)
        self.stop()
        if rc is not None and rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = str(-rc)
            return f"the grading process was killed by {name} (it is restarted for the next submission)\n{log}"
        return f"the grading process exited with code {rc} (it is restarted for the next submission)\n{log}"

    def stop(self, kill: bool = False) -> None:
        """End the process: it finishes cleanly when its pipe closes (stopping its zygote), else it is killed."""
        for conn in (self.tasks, self.replies):
            if conn is not None:
                conn.close()
        self.tasks = self.replies = None
        if self.proc is not None:
            if kill:
                self.proc.kill()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def close(self) -> None:
        self.closed = True
        self.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)


def _grading_process() -> GradingProcess:
    """This thread's grading process (a local job's, or a dask worker thread's): made once, then reused."""
    gp = getattr(_LOCAL, "process", None)
    if gp is None or gp.closed:
        gp = _LOCAL.process = GradingProcess()
        with _PROCESSES_LOCK:
            _PROCESSES.append(gp)
    return gp


def reference_loads() -> dict[str, int]:
    """How many times the grading processes of this process loaded each assignment's reference."""
    total: dict[str, int] = {}
    with _PROCESSES_LOCK:
        for gp in _PROCESSES:
            for counts in gp.loads.values():
                for aid, n in counts.items():
                    total[aid] = total.get(aid, 0) + n
    return total


@atexit.register
def close_grading_processes() -> None:
    with _PROCESSES_LOCK:
        processes = list(_PROCESSES)
        _PROCESSES.clear()
    for gp in processes:
        gp.close()


def serve(argv: list[str] | None = None) -> None:
    """A grading process's loop: a task from the pipe, its results (and the reference loads) back, until EOF."""
    import importlib
    from multiprocessing.connection import Connection

    task_fd, reply_fd, handler = (argv or sys.argv[1:])[:3]
    tasks, replies = Connection(int(task_fd), writable=False), Connection(int(reply_fd), readable=False)
    module, _, name = handler.partition(":")
    grade = getattr(importlib.import_module(module), name)
    while True:
        try:
            task = tasks.recv()
        except EOFError:
            return
        try:
            results = grade(task)
        except Exception as exc:  # noqa: BLE001 - the grader's own failure, for this submission only
            results = error_results(task, f"grading failed: {type(exc).__name__}: {exc}", kind="grader")
        reference = sys.modules.get("autograder.grading.reference")
        replies.send((results, {"pid": os.getpid(),
                                "reference_loads": dict(reference.LOADS) if reference is not None else {}}))


def grade_in_process(task: dict) -> dict:
    """Grade one submission in this (grading) process: what ``python -m autograder grade`` would write."""
    from autograder.grading.sandbox_settings import start_sandbox_early_for

    scratch = Path(tempfile.mkdtemp(prefix="classgrade-"))
    try:
        notebook = Path(task["path"])
        if task.get("content") is not None:
            notebook = scratch / "submission" / Path(task["path"]).name
            notebook.parent.mkdir()
            notebook.write_bytes(task["content"])
        threads = task.get("threads") or worker_threads()
        # The job's first submission: its zygote imports torch while this process does (no-op afterwards).
        start_sandbox_early_for(notebook, task["assignment"], threads)
        from autograder.grading.grade_notebook import GradingError, grade_notebook

        _set_torch_threads(threads)
        try:
            report = grade_notebook(notebook, assignment_id=task["assignment"], course=Course(), threads=threads)
        except GradingError as exc:
            return error_results(task, "grading itself could not run (not the student's fault)\n"
                                       f"error: grading could not run for {safe_text(notebook)}: "
                                       f"{safe_text(exc, 2000)}", kind="grader")
        # Graded; checks that broke are listed in grader_problems (kept, and marked for the instructor).
        return json.loads(json.dumps(report.to_gradescope()))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _set_torch_threads(threads: int) -> None:
    """The grader's own tensor work (the reference, the checks) gets the job's share of the cores too."""
    try:
        import torch

        torch.set_num_threads(threads)
    except Exception:  # noqa: BLE001 - no torch: nothing to share
        pass


def _read_results(path: Path) -> dict:
    results = json.loads(path.read_text())
    if not isinstance(results, dict) or "score" not in results:
        raise ValueError("no score in the results")
    return results


# -- finding the submissions --------------------------------------------------------------

def submissions_root(folder: Path) -> Path:
    """``folder`` itself, or its ``submitted/`` (nbgrader's course folder)."""
    nbgrader = folder / "submitted"
    return nbgrader if nbgrader.is_dir() else folder


def find_jobs(folder: Path, course: Course, assignment: str | None = None) -> tuple[list[Job], list[str]]:
    """One job per (student, assignment); also the warnings about what was left out."""
    from autograder.notebooks import NotebookError, read_bytes, read_notebook

    root = submissions_root(folder)
    jobs: dict[tuple[str, str], Job] = {}
    warnings: list[str] = []
    for loose in sorted(root.glob("*.ipynb")):
        warnings.append(f"{loose}: not in a student's folder, left out")
    students = []
    for p in sorted(root.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_symlink():
            warnings.append(f"{safe_text(p)}: a symbolic link, not a student's folder, left out")
        elif p.is_dir():
            students.append(p)
    for student_dir in students:
        for nb_path in course.find_notebooks(student_dir):
            problem = None
            nb = None
            try:
                data = read_bytes(nb_path)
                digest = hashlib.sha256(data).hexdigest()
                nb = read_notebook(nb_path)
            except NotebookError as exc:
                # Graded anyway: the engine turns it into a clear zero (a symlink is refused before grading).
                digest = hashlib.sha256(str(nb_path).encode()).hexdigest()
                if nb_path.is_symlink():
                    problem = str(exc)
            except Exception as exc:  # noqa: BLE001 - one notebook never stops the class
                digest, problem = hashlib.sha256(str(nb_path).encode()).hexdigest(), f"{nb_path}: {exc}"
            try:
                aid = course.identify(nb_path, nb).id
            except NotebookError as exc:
                if assignment is None:
                    aid, problem = nb_path.stem, problem or str(exc)
                else:
                    aid = assignment
            if assignment is not None and aid != assignment:
                continue
            key = (student_dir.name, aid)
            if key in jobs:
                warnings.append(f"{nb_path}: a second notebook for {aid} of {student_dir.name}, left out "
                                f"(grading {jobs[key].path})")
                continue
            jobs[key] = Job(student_dir.name, aid, nb_path, digest, problem)
    return list(jobs.values()), warnings


def results_path(out: Path, job: Job) -> Path:
    return out / job.student / f"{job.assignment}.json"


def _existing(out: Path, job: Job) -> dict | None:
    """The results of an earlier run, if they are for this very notebook and grading succeeded."""
    try:
        results = json.loads(results_path(out, job).read_text())
        extra = results["extra_data"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if extra.get("content_sha256") != job.sha256 or extra.get("class_status") != "graded":
        return None
    return results


def _row(job: Job, results: dict) -> dict:
    extra = results.get("extra_data") or {}
    return {"student": job.student, "assignment": job.assignment, "score": f"{_number(results.get('score')):g}",
            "max_score": f"{_number(results.get('max_score')):g}",
            "status": extra.get("class_status") if extra.get("class_status") in ("error", "grader_problem")
            else "graded"}


def _number(value) -> float:
    return float(value) if type(value) in (int, float) else 0.0


def write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    # Student and assignment names come from folder and file names: never let a spreadsheet run them.
    safe = [{**r, "student": csv_cell(r["student"]), "assignment": csv_cell(r["assignment"])} for r in rows]
    writer.writerows(sorted(safe, key=lambda r: (r["student"], r["assignment"])))
    write_atomic(path, buf.getvalue())


# -- the run ------------------------------------------------------------------------------

def _task(job: Job, course: Course, threads: int | None, with_content: bool) -> dict:
    try:
        limit = course.get(job.assignment).settings.total_timeout + HARD_LIMIT_MARGIN
    except KeyError:
        limit = GradingSettings().total_timeout + HARD_LIMIT_MARGIN
    env = {k: os.environ[k] for k in ("CNN_COURSE_ROOT", "CNN_COURSE_CHECKS") if os.environ.get(k)}
    task = {"student": job.student, "assignment": job.assignment, "path": str(job.path), "sha256": job.sha256,
            "threads": threads, "timeout": limit, "problem": job.problem, "env": env}
    if with_content and not job.problem:
        from autograder.notebooks import NotebookError, read_bytes

        try:
            task["content"] = read_bytes(job.path)
        except NotebookError as exc:
            task["problem"] = str(exc)
    return task


def _failed(job: Job, message: str) -> dict:
    results = grade_submission({"student": job.student, "assignment": job.assignment, "path": str(job.path),
                                "sha256": job.sha256, "problem": message})
    results["extra_data"]["grading_error_kind"] = "grader"
    return results


def _run_local(tasks: list[tuple[Job, dict]], jobs: int, stats: dict | None = None):
    """``jobs`` threads, each owning one long-lived grading process (see :class:`GradingProcess`).

    ``stats`` receives ``processes`` (how many were started) and ``reference_loads`` (per assignment).
    """
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="grade-job") as pool:
        try:
            futures = {pool.submit(grade_submission, task): job for job, task in tasks}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    yield job, future.result()
                except Exception as exc:  # noqa: BLE001 - grade_submission should not raise; never lose the class
                    yield job, _failed(job, f"grading failed: {type(exc).__name__}: {exc}")
            if stats is not None:
                with _PROCESSES_LOCK:
                    stats["processes"] = sum(gp.starts for gp in _PROCESSES)
                stats["reference_loads"] = reference_loads()
        finally:
            # Before the pool's threads end (each process dies with the thread that started it): a clean exit.
            close_grading_processes()


def _run_dask(tasks: list[tuple[Job, dict]], client):
    from distributed import as_completed as dask_as_completed

    futures = {}
    for job, task in tasks:
        future = client.submit(grade_submission, task, key=f"grade-{job.student}-{job.assignment}-{job.sha256[:12]}",
                               pure=False, retries=0)
        futures[future] = job
    for future in dask_as_completed(list(futures)):
        job = futures[future]
        try:
            results = future.result()
        except Exception as exc:  # noqa: BLE001 - a dead worker (KilledWorker) costs one submission
            results = _failed(job, f"the cluster could not grade it: {type(exc).__name__}: {exc}")
        yield job, results


def dask_client(scheduler: str):
    """A ``distributed.Client`` for ``scheduler``, or None after saying on stderr why there is none."""
    try:
        from distributed import Client
    except ImportError:
        print("error: --scheduler needs dask.distributed: pip install 'cnn-course[dask]'", file=sys.stderr)
        return None
    try:
        return Client(scheduler, timeout="30s")
    except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ... from the connection
        print(f"error: cannot reach the dask scheduler at {scheduler}: {exc}", file=sys.stderr)
        return None


def grade_class(folder: Path, *, jobs: int = 1, out: Path = Path("graded"), force: bool = False,
                assignment: str | None = None, scheduler: str | None = None, course: Course | None = None,
                progress: bool = True) -> int:
    from tqdm.auto import tqdm

    course = course or Course()
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        print(f"error: {folder}: no such folder", file=sys.stderr)
        return EXIT_USAGE
    if assignment is not None and assignment not in course.assignment_ids():
        print(f"error: unknown assignment {assignment!r} (known: {', '.join(course.assignment_ids())})", file=sys.stderr)
        return EXIT_USAGE
    if jobs < 1:
        print("error: --jobs must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    found, warnings = find_jobs(folder, course, assignment)
    for w in warnings:
        print(f"warning: {one_line(w, 500)}", file=sys.stderr)
    if not found:
        print(f"error: {folder}: no submissions (expected one folder per student holding .ipynb notebooks)",
              file=sys.stderr)
        return EXIT_USAGE

    rows: dict[str, dict] = {}
    todo: list[Job] = []
    for job in found:
        previous = None if force else _existing(out, job)
        if previous is not None:
            rows[job.key] = _row(job, previous)
        else:
            todo.append(job)
    print(f"{len(found)} submissions from {len({j.student for j in found})} students: "
          f"{len(found) - len(todo)} up to date, {len(todo)} to grade", file=sys.stderr)

    client = None
    if scheduler and todo:
        client = dask_client(scheduler)
        if client is None:
            return EXIT_GRADER
    threads = None if client is not None else max(1, (os.cpu_count() or 1) // jobs)
    tasks = [(job, _task(job, course, threads, with_content=client is not None)) for job in todo]

    grader_failures = 0
    start = time.monotonic()
    stats: dict = {}
    stream = _run_dask(tasks, client) if client is not None else _run_local(tasks, jobs, stats)
    try:
        with tqdm(total=len(todo), unit="submission", desc="grading", disable=not progress or not todo,
                  file=sys.stderr, dynamic_ncols=True) as bar:
            for job, results in stream:
                write_atomic(results_path(out, job), json.dumps(results, indent=2) + "\n")
                rows[job.key] = _row(job, results)
                extra = results.get("extra_data") or {}
                if extra.get("grading_error_kind") == "grader" or extra.get("class_status") == "grader_problem":
                    grader_failures += 1
                line = f"{job.key}: {rows[job.key]['score']} / {rows[job.key]['max_score']}"
                if rows[job.key]["status"] == "error":
                    line += f" (ERROR: {str(extra.get('grading_error', '')).splitlines()[0]})"
                elif rows[job.key]["status"] == "grader_problem":
                    problems = extra.get("grader_problems") or [""]
                    line += f" (GRADER PROBLEM, for the instructor: {str(problems[0]).splitlines()[0]})"
                bar.write(one_line(line, 500), file=sys.stderr)
                bar.set_postfix_str(job.key, refresh=False)
                bar.update(1)
    finally:
        if client is not None:
            client.close()
    if stats:
        loads = stats["reference_loads"]
        print(f"{stats['processes']} grading processes started for {jobs} jobs; reference loads: "
              f"{', '.join(f'{a} {n}' for a, n in sorted(loads.items())) or 'none'}", file=sys.stderr)
    write_csv(out / CSV_NAME, list(rows.values()))
    errors = sum(r["status"] == "error" for r in rows.values())
    print(f"graded {len(todo)} in {time.monotonic() - start:.1f} s; {errors} with errors; "
          f"table: {out / CSV_NAME}", file=sys.stderr)
    if grader_failures:
        print(f"error: grading itself could not run, or some checks broke, for {grader_failures} submissions "
              f"(status error or grader_problem in {CSV_NAME}; see their results)", file=sys.stderr)
        return EXIT_GRADER
    return EXIT_OK
