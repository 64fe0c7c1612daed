"""Grading benchmarks: notebook alone vs the engine vs nbgrader, per assignment.

    python -m benchmarks.run [--ids 01_apply_kernel ...] [--repeats 3] [--no-nbgrader] [--class-size 8]

Prints a table and writes benchmarks/RESULTS.md with the machine's cores, memory and
library versions.  Medians over repeated runs; every ratio is measured in the same run.
The floor for grading is the notebook's own computation (executed with nbclient, no
grading); everything above it is grader overhead.  ``nbgrader autograde`` runs twice: with
the course's ``nbgrader_config.py``, i.e. on the sandboxed engine (SandboxedExecute), and with
nbgrader's stock ``Execute`` for comparison.  ``grade-class`` runs with --jobs 1, --jobs 2 and
on a 2-worker dask ``LocalCluster``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat

from autograder.authoring.notebook_builder import fill_answers, solution_sources
from autograder.course import Course
from benchmarks.memory import PeakWatcher

RESULTS = Path(__file__).with_name("RESULTS.md")
#: Peak memory per kind of process; its ``phase`` names the measurement running.
WATCH = PeakWatcher()


def reference_submission(course: Course, aid: str, folder: Path) -> Path:
    """The release with the reference answers filled in: what a perfect student submits."""
    a = course.get(aid)
    release = nbformat.read(a.release_notebook, as_version=4)
    answers = solution_sources(nbformat.read(a.solution_notebook, as_version=4))
    path = folder / aid / f"{aid}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(fill_answers(release, answers), path)
    return path


# Run after the notebook (not timed): the accuracy the notebook's own training reached, where it trains.
ACCURACY_PROBE = """
import json as _json
_acc = {}
if "history" in globals() and isinstance(history, list) and history and "valid_acc" in history[-1]:
    _acc["simple_cnn, validation"] = history[-1]["valid_acc"]
if "RESULTS" in globals() and isinstance(RESULTS, dict):
    _acc.update({f"{k}, validation": v["valid_acc"] for k, v in RESULTS.items() if "valid_acc" in v})
if "feat_acc" in globals():
    _acc["new head on AlexNet features, held out"] = feat_acc
print("BENCHMARK-ACCURACY " + _json.dumps(_acc))
"""


def time_notebook_alone(course: Course, aid: str) -> tuple[float, dict[str, float]]:
    """The solution notebook without its test cells, in a fresh kernel: the computation's own cost.

    Also returns the accuracies the notebook reached (for the training assignments).
    """
    from nbclient import NotebookClient

    a = course.get(aid)
    nb = nbformat.read(a.solution_notebook, as_version=4)
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
                                           and not c.metadata.get("nbgrader", {}).get("solution"))]
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(a.solution_notebook.parent)}})
    client.reset_execution_trackers()
    with client.setup_kernel():
        start = time.perf_counter()
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        seconds = time.perf_counter() - start
        probe = nbformat.v4.new_code_cell(ACCURACY_PROBE)
        nb.cells.append(probe)
        client.execute_cell(probe, len(nb.cells) - 1)
    text = "".join(o.get("text", "") for o in probe.get("outputs", []) if o.get("output_type") == "stream")
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCHMARK-ACCURACY ")), "BENCHMARK-ACCURACY {}")
    return seconds, json.loads(line.split(" ", 1)[1])


def time_engine(path: Path, aid: str) -> tuple[float, float, float]:
    from autograder.grading.grade_notebook import grade_notebook

    start = time.perf_counter()
    report = grade_notebook(path, assignment_id=aid)
    return time.perf_counter() - start, report.score, report.max_score


#: Appended to the temporary course's nbgrader_config.py for the stock comparison: nbgrader's own
#: autograde preprocessors (``Execute``: the notebook and its test cells in one Jupyter kernel).
STOCK_EXECUTE = """
from nbgrader.converters import Autograde as _Autograde
c.Autograde.autograde_preprocessors = _Autograde.class_traits()["autograde_preprocessors"].default()
"""


def time_nbgrader(course: Course, aid: str, path: Path, stock: bool = False) -> tuple[float, float]:
    """``nbgrader autograde`` of one submission in a fresh course: (seconds, score).

    With the course's config nbgrader grades on the sandboxed engine; ``stock`` puts nbgrader's own
    ``Execute`` back (the test cells run in the student's kernel, where the hidden blocks refuse to run:
    stock does less checking than the engine, so the comparison favours it).
    """
    from autograder.integrations.nbgrader_api import cell_scores, nbgrader_api

    root = Path(tempfile.mkdtemp(prefix="bench-nbgrader-"))
    try:
        for sub in ("solutions", "assignments"):
            shutil.copytree(course.root / sub / aid, root / sub / aid)
        config = (course.root / "nbgrader_config.py").read_text()
        (root / "nbgrader_config.py").write_text(config + (STOCK_EXECUTE if stock else ""))
        # The engine grades against the course itself (its reference cache too), as `time_engine` does.
        api = nbgrader_api(root, engine_root=course.root)
        api.generate_assignment(aid, force=True, create=True)
        target = root / "submitted" / "bench" / aid / f"{aid}.ipynb"
        target.parent.mkdir(parents=True)
        shutil.copy(path, target)
        start = time.perf_counter()
        result = api.autograde(aid, "bench")
        elapsed = time.perf_counter() - start
        if not result.get("success"):
            raise RuntimeError(result.get("log"))
        return elapsed, sum(cell_scores(api, aid, "bench").values())
    finally:
        shutil.rmtree(root, ignore_errors=True)


def class_folder(course: Course, aid: str, n: int, work: Path) -> Path:
    """``n`` submissions of ``aid``: student 0 the reference, the others with some of the demo's mistakes."""
    from autograder.integrations.demo import load_submissions

    a = course.get(aid)
    release = nbformat.read(a.release_notebook, as_version=4)
    reference = solution_sources(nbformat.read(a.solution_notebook, as_version=4))
    wrong = list(load_submissions(aid)["WRONG"].values())
    folder = work / f"class-{aid}"
    for i in range(n):
        answers = dict(reference)
        for mistake in wrong[i - 1::max(1, n - 1)] if i else []:
            answers.update(mistake)
        path = folder / f"student{i:02d}" / f"{aid}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(fill_answers(release, answers), path)
    return folder


def time_grade_class(folder: Path, dest: Path, *options: str) -> tuple[float, list, list[float]]:
    """One ``python -m autograder grade-class`` run from scratch.

    Returns (seconds, sorted (student, score), each submission's own wall time as its job measured it).
    """
    import csv
    import subprocess
    import sys

    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade-class", str(folder), *options,
                           "--out", str(dest), "--force"], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    walls = [json.loads(p.read_text())["extra_data"]["wall_seconds"] for p in sorted(dest.glob("*/*.json"))]
    with open(dest / "grades.csv") as f:
        return seconds, sorted((row["student"], row["score"]) for row in csv.DictReader(f)), walls


def steady_seconds(walls: list[float], jobs: int) -> float:
    """Seconds per submission in one job once it runs: the median without each job's first (the ``jobs``
    slowest, which pay the job's start: its imports, the zygote, the reference)."""
    return statistics.median(sorted(walls)[:-jobs] or walls)


def projected(seconds: float, walls: list[float], jobs: int, n: int = 300) -> float:
    """The run's time for ``n`` submissions: its start as measured, then ``jobs`` submissions at a time."""
    later = steady_seconds(walls, jobs)
    return seconds + (n - len(walls)) * later / jobs


def class_throughput(course: Course, ids: list[str], n: int, work: Path, dask: bool = True) -> list[dict]:
    """``grade-class`` on ``n`` submissions of each of ``ids``: --jobs 1, --jobs 2, and a 2-worker dask cluster."""
    rows = []
    cluster = None
    if dask:
        from dask.distributed import LocalCluster

        # One single-threaded worker process per core, as grade-class's own jobs (threads: see grade_class.py).
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        for aid in ids:
            folder = class_folder(course, aid, n, work)
            WATCH.phase = f"{aid}: grade-class --jobs 1"
            jobs1, scores1, walls1 = time_grade_class(folder, work / f"{aid}-jobs1", "--jobs", "1")
            WATCH.phase = f"{aid}: grade-class --jobs 2"
            jobs2, scores2, walls2 = time_grade_class(folder, work / f"{aid}-jobs2", "--jobs", "2")
            row = {"assignment": aid, "n": n, "jobs1": jobs1, "jobs2": jobs2, "dask2": None,
                   "same_scores": scores1 == scores2,
                   "steady1": steady_seconds(walls1, 1), "steady2": steady_seconds(walls2, 2),
                   "class1": projected(jobs1, walls1, 1), "class2": projected(jobs2, walls2, 2)}
            if cluster is not None:
                WATCH.phase = f"{aid}: grade-class on dask"
                row["dask2"], scores_dask, _ = time_grade_class(folder, work / f"{aid}-dask", "--scheduler",
                                                             cluster.scheduler_address)
                row["same_scores"] = row["same_scores"] and scores_dask == scores1
            rows.append(row)
            print(f"grade-class, {n} submissions of {aid}: jobs 1 {jobs1:.0f} s, jobs 2 {jobs2:.0f} s "
                  f"({jobs1 / jobs2:.2f}x)" + (f", dask 2 workers {row['dask2']:.0f} s ({jobs1 / row['dask2']:.2f}x)"
                                               if row["dask2"] else ""), flush=True)
    finally:
        if cluster is not None:
            cluster.close()
    return rows


def conv_benchmark() -> list[tuple[str, float]]:
    """conv2d by loops and by unfold+matmul against F.conv2d on a Fashion-MNIST-sized batch (ms per batch)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    x, w, b = torch.randn(64, 1, 28, 28), torch.randn(8, 1, 3, 3), torch.randn(8)

    def unfold_conv():
        cols = F.unfold(x, 3)
        return (w.view(8, -1) @ cols).view(64, 8, 26, 26) + b.view(1, 8, 1, 1)

    def loops_one_image():
        img, k = x[0, 0], w[0, 0]
        out = torch.empty(26, 26)
        for i in range(26):
            for j in range(26):
                out[i, j] = (img[i:i + 3, j:j + 3] * k).sum()
        return out

    def timed(fn, repeats=5):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000

    return [("F.conv2d (64x1x28x28, 8 filters)", timed(lambda: F.conv2d(x, w, b))),
            ("unfold + matmul (same batch)", timed(unfold_conv)),
            ("Python loops, 1 image x 1 filter, scaled to the batch", timed(loops_one_image, 2) * 64 * 8)]


def machine() -> str:
    import torch
    import torchvision

    try:
        import nbgrader

        nbg = nbgrader.__version__
    except Exception:  # noqa: BLE001
        nbg = "?"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores, {mem:.0f} GiB memory, {platform.platform()}, Python {platform.python_version()}, "
            f"torch {torch.__version__}, torchvision {torchvision.__version__}, nbgrader {nbg}")


def _weights_note() -> str:
    """Use the ImageNet AlexNet weights when present; otherwise a stand-in in a temporary TORCH_HOME, said loudly."""
    from data_scripts.alexnet_standin import install_standin, weights_origin

    origin = weights_origin()
    if origin == "imagenet":
        return "06 ran with the real ImageNet AlexNet weights."
    if origin == "missing":
        os.environ["TORCH_HOME"] = tempfile.mkdtemp(prefix="bench-torch-home-")
        install_standin()
    return ("**STAND-IN WEIGHTS: 06 ran with random AlexNet weights of the right keys and shapes (the ImageNet "
            "weights cannot be downloaded on this machine); its timings are real, its accuracy means nothing "
            "about transfer learning.**")


def _target(ok: bool, text: str) -> str:
    return f"- [{'x' if ok else ' '}] {text}"


def measure(course: Course, aid: str, path: Path, repeats: int, nbgrader: bool) -> dict:
    """Every single-notebook figure of ``aid``'s reference submission, in this process.

    The measurements take turns (notebook, engine, nbgrader sandboxed, stock; then again), so that a
    machine that slows down for a minute (a shared host) weighs on every figure alike.
    """
    # The first grade of an assignment in a process starts its zygote (what a one-shot `grade` pays);
    # the later ones fork from it (what grade-class jobs and nbgrader's class autograde pay).
    WATCH.phase = f"{aid}: engine, first"
    engine_first = time_engine(path, aid)
    alone_runs, engine_runs, sandboxed_runs, stock_runs = [], [], [], []
    for _ in range(repeats):
        WATCH.phase = f"{aid}: notebook alone"
        alone_runs.append(time_notebook_alone(course, aid))
        WATCH.phase = f"{aid}: engine"
        engine_runs.append(time_engine(path, aid))
        if nbgrader:
            WATCH.phase = f"{aid}: nbgrader, sandboxed"
            sandboxed_runs.append(time_nbgrader(course, aid, path))
            WATCH.phase = f"{aid}: nbgrader, stock"
            stock_runs.append(time_nbgrader(course, aid, path, stock=True))
    row = {"aid": aid, "repeats": repeats, "accuracies": alone_runs[0][1],
           "alone": statistics.median(t for t, _ in alone_runs),
           "engine_first": engine_first[0], "engine": statistics.median(t for t, _, _ in engine_runs),
           "score": engine_first[1], "max_score": engine_first[2], "sandboxed": None, "stock": None}
    if nbgrader:
        row["sandboxed"] = statistics.median(t for t, _ in sandboxed_runs)
        row["sandboxed_score"] = sandboxed_runs[0][1]
        row["stock"] = statistics.median(t for t, _ in stock_runs)
        row["stock_score"] = stock_runs[0][1]
    return row


def _fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}"


def report(rows: list[dict], klass: list[dict], conv, peaks: tuple[float, float], weights: str, args,
           all_ids: bool) -> list[str]:
    """RESULTS.md: the tables of one run, the targets of issue 20 checked against them."""
    lines = ["# Benchmark results", "", f"Machine: {machine()}", f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"load average at the start {args.load_at_start:.1f}.", "",
             f"Medians of {args.repeats} runs ({args.heavy_repeats} for 04-06, which train); every figure from this one "
             "run, side by side. `make benchmark` (`python -m benchmarks.run`) regenerates this file.", ""]
    if weights:
        lines += [weights, ""]
    lines += ["## One reference submission per assignment", "",
              "- *notebook alone*: the solution notebook's cells (test cells left out) in a Jupyter kernel that is "
              "already started: the floor, since the grader must run the student's code once.",
              "- *engine*: `grade_notebook` (what `grade` and `grade-class` run), hidden checks and reference "
              "included; *engine, first*: the first grade of that assignment in a fresh process, which starts "
              "the sandbox's zygote (a one-shot `python -m autograder grade` pays this); *engine*: the median of "
              "the later ones, forked from the zygote (what each submission costs in `grade-class` and "
              "nbgrader's class autograde).",
              "- *nbgrader, sandboxed*: `nbgrader autograde` with the course's `nbgrader_config.py` (on the engine); "
              "*nbgrader, stock*: nbgrader's own `Execute` (the test cells in the student's kernel; the hidden "
              "blocks refuse to run there, so stock checks less than the engine does).", "",
              "| assignment | runs | notebook alone (s) | engine, first (s) | engine (s) | engine / notebook | "
              "nbgrader, sandboxed (s) | nbgrader, stock (s) | engine / stock | reference score |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        vs = "-" if r["stock"] is None else f"{r['engine'] / r['stock']:.2f}x"
        lines.append(f"| {r['aid']} | {r['repeats']} | {r['alone']:.1f} | {r['engine_first']:.1f} | {r['engine']:.1f} | "
                     f"{r['engine'] / r['alone']:.2f}x | {_fmt(r['sandboxed'])} | {_fmt(r['stock'])} | {vs} | "
                     f"{r['score']:g}/{r['max_score']:g} |")
    total_alone = sum(r["alone"] for r in rows)
    lines += ["", f"All reference notebooks alone: {total_alone:.0f} s ({total_alone / 60:.1f} min).", ""]
    accuracies = {f"{r['aid']}: {k}": v for r in rows for k, v in r["accuracies"].items()}
    if accuracies:
        lines += ["## Accuracy the solution notebooks reach", "", "| notebook: model | accuracy |", "|---|---|"]
        lines += [f"| {name} | {acc:.4f} |" for name, acc in accuracies.items()] + [""]
    if klass:
        n = klass[0]["n"]
        lines += ["## Class throughput (`python -m autograder grade-class`)", "",
                  f"{n} submissions per assignment (the reference and partly wrong ones), graded from scratch by a "
                  "fresh `grade-class` process each time: `--jobs 1`, `--jobs 2`, and `--scheduler` on a dask "
                  "`LocalCluster` of 2 single-threaded worker processes.", "",
                  "| assignment | jobs 1 (s) | jobs 2 (s) | speed-up | dask, 2 workers (s) | speed-up | same scores |",
                  "|---|---|---|---|---|---|---|"]
        for k in klass:
            dask = "-" if k["dask2"] is None else f"{k['dask2']:.0f} | {k['jobs1'] / k['dask2']:.2f}x"
            lines.append(f"| {k['assignment']} | {k['jobs1']:.0f} | {k['jobs2']:.0f} | {k['jobs1'] / k['jobs2']:.2f}x | "
                         f"{dask if k['dask2'] is not None else '- | -'} | {'yes' if k['same_scores'] else 'NO'} |")
        lines += ["", "Once the jobs run (each job's first submission left out: it pays the job's start, its "
                  "imports, its sandbox zygote and the reference), and what that means for a class of 300 "
                  "(projected: the measured run, then the other submissions at the steady rate):", "",
                  "| assignment | s per submission, jobs 1 | s per submission and job, jobs 2 | steady speed-up | "
                  "300 submissions, jobs 1 (min) | jobs 2 (min) | speed-up |", "|---|---|---|---|---|---|---|"]
        for k in klass:
            lines.append(f"| {k['assignment']} | {k['steady1']:.1f} | {k['steady2']:.1f} | "
                         f"{2 * k['steady1'] / k['steady2']:.2f}x | {k['class1'] / 60:.1f} | {k['class2'] / 60:.1f} | "
                         f"{k['class1'] / k['class2']:.2f}x |")
        lines += [""]
    lines += ["## Convolution implementations (ms per batch of 64 Fashion-MNIST images)", "",
              "| implementation | ms |", "|---|---|"]
    lines += [f"| {name} | {ms:.2f} |" for name, ms in conv]
    peak_self, peak_children = peaks
    lines += ["", "## Peak memory", "",
              f"This process (engine, reference, nbgrader in-process): {peak_self:.0f} MiB; largest child process "
              f"(`ru_maxrss` of all children): {peak_children:.0f} MiB. Per kind of process (sampled 4 times a "
              "second, `benchmarks/memory.py`):", "", "| process | peak (MiB) | during |", "|---|---|---|"]
    lines += [f"| {role} | {mib:.0f} | {phase} |" for role, (mib, phase) in
              sorted(WATCH.peaks.items(), key=lambda item: -item[1][0])] + [""]
    lines += ["## Targets (issue 20)", ""]
    for r in rows:
        lines.append(_target(r["engine"] <= 1.15 * r["alone"],
                             f"{r['aid']}: engine / notebook {r['engine'] / r['alone']:.2f}x (at most 1.15x)"))
        if r["stock"] is not None:
            lines.append(_target(r["engine"] < r["stock"], f"{r['aid']}: engine {r['engine']:.1f} s faster than "
                                                           f"stock nbgrader autograde {r['stock']:.1f} s"))
    for k in klass:
        lines.append(_target(k["jobs1"] / k["jobs2"] >= 1.8,
                             f"{k['assignment']}: --jobs 2 {k['jobs1'] / k['jobs2']:.2f}x --jobs 1 (at least 1.8x)"))
        if k["dask2"] is not None:
            lines.append(_target(k["jobs1"] / k["dask2"] >= 1.8, f"{k['assignment']}: dask on 2 workers "
                                                                 f"{k['jobs1'] / k['dask2']:.2f}x --jobs 1 (at least 1.8x)"))
    if all_ids:
        lines.append(_target(total_alone <= 480, f"all six notebooks in {total_alone:.0f} s (at most 480 s)"))
    highest = max([*peaks, *(mib for mib, _ in WATCH.peaks.values())])
    lines.append(_target(highest < 4096, f"peak memory of any process {highest:.0f} MiB (under 4096 MiB)"))
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", nargs="*")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--heavy-repeats", type=int, default=1, help="runs for 04-06, which train for minutes")
    parser.add_argument("--no-nbgrader", action="store_true")
    parser.add_argument("--class-size", type=int, default=8, help="submissions per assignment for the class "
                                                                    "throughput (0: skip)")
    parser.add_argument("--class-ids", nargs="*", default=["01_apply_kernel", "02_conv_arithmetic", "03_unfold"])
    parser.add_argument("--no-dask", action="store_true", help="skip the dask LocalCluster row")
    args = parser.parse_args(argv)
    args.load_at_start = os.getloadavg()[0]
    course = Course()
    ids = args.ids or course.assignment_ids()
    weights = _weights_note() if "06_transfer_learning" in ids else ""
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    rows = []
    with WATCH:
        try:
            for aid in ids:
                repeats = args.heavy_repeats if aid[:2] in ("04", "05", "06") else args.repeats
                row = measure(course, aid, reference_submission(course, aid, work), repeats, not args.no_nbgrader)
                rows.append(row)
                print(f"{aid}: notebook {row['alone']:.1f} s, engine first {row['engine_first']:.1f} s, engine "
                      f"{row['engine']:.1f} s ({row['engine'] / row['alone']:.2f}x), nbgrader sandboxed "
                      f"{_fmt(row['sandboxed'])} s, stock {_fmt(row['stock'])} s, score {row['score']:g}/{row['max_score']:g}",
                      flush=True)
            klass = (class_throughput(course, args.class_ids, args.class_size, work, dask=not args.no_dask)
                     if args.class_size else [])
            conv = conv_benchmark()
        finally:
            shutil.rmtree(work, ignore_errors=True)
    peaks = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
             resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    lines = report(rows, klass, conv, peaks, weights, args, all_ids=len(rows) == len(course.assignment_ids()))
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
