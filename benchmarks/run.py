"""Grading benchmarks: notebook alone vs the engine vs nbgrader, per assignment.

    python -m benchmarks.run [--ids 01_apply_kernel ...] [--repeats 3] [--no-nbgrader]
    python -m benchmarks.run --nbgrader-rows [--ids 01_apply_kernel 02_conv_arithmetic 03_unfold]

Prints a table and writes benchmarks/RESULTS.md with the machine's cores, memory and
library versions.  Medians over repeated runs; every ratio is measured in the same run.
The floor for grading is the notebook's own computation (executed with nbclient, no
grading); everything above it is grader overhead.  ``nbgrader autograde`` runs with the
course's ``nbgrader_config.py``, i.e. on the sandboxed engine (SandboxedExecute), so its
time minus the engine's is nbgrader's own overhead.  ``--nbgrader-rows`` measures only that
comparison (engine alone vs nbgrader autograde, default 01-03) and rewrites only its
section of RESULTS.md.
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

RESULTS = Path(__file__).with_name("RESULTS.md")


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


def time_nbgrader(course: Course, aid: str, path: Path) -> float:
    """``nbgrader autograde`` of one submission with the course's config (the sandboxed engine), in a fresh course."""
    from autograder.integrations.nbgrader_api import nbgrader_api

    root = Path(tempfile.mkdtemp(prefix="bench-nbgrader-"))
    try:
        for sub in ("solutions", "assignments"):
            shutil.copytree(course.root / sub / aid, root / sub / aid)
        shutil.copy(course.root / "nbgrader_config.py", root / "nbgrader_config.py")
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
        return elapsed
    finally:
        shutil.rmtree(root, ignore_errors=True)


def class_throughput(course: Course, aid: str, n: int, work: Path) -> dict:
    """``grade-class`` on ``n`` submissions of ``aid`` with --jobs 1 and --jobs 2 (same scores, speed-up)."""
    import csv
    import subprocess
    import sys

    from autograder.integrations.demo import load_submissions

    a = course.get(aid)
    release = nbformat.read(a.release_notebook, as_version=4)
    reference = solution_sources(nbformat.read(a.solution_notebook, as_version=4))
    wrong = list(load_submissions(aid)["WRONG"].values())
    folder = work / "class"
    for i in range(n):
        answers = dict(reference)
        for mistake in wrong[i - 1::max(1, n - 1)] if i else []:  # student 0 is the reference
            answers.update(mistake)
        path = folder / f"student{i:02d}" / f"{aid}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(fill_answers(release, answers), path)
    out = {}
    for jobs in (1, 2):
        dest = work / f"graded-jobs{jobs}"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "autograder", "grade-class", str(folder), "--jobs", str(jobs),
                               "--out", str(dest), "--force"], capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        with open(dest / "grades.csv") as f:
            scores = sorted((row["student"], row["score"]) for row in csv.DictReader(f))
        out[jobs] = (seconds, scores)
    return {"n": n, "assignment": aid, "jobs1": out[1][0], "jobs2": out[2][0],
            "same_scores": out[1][1] == out[2][1]}


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


NBGRADER_SECTION = "## nbgrader autograde (sandboxed engine) vs the engine alone"


def nbgrader_section(rows: list[tuple[str, float, float, int]], note: str = "") -> list[str]:
    """RESULTS.md's section comparing ``nbgrader autograde`` (with the course's config) and the engine alone."""
    lines = [NBGRADER_SECTION, "",
             "`nbgrader autograde` with `nbgrader_config.py` grades with the sandboxed engine "
             "(`autograder.integrations.nbgrader_autograde.SandboxedExecute`); the difference is nbgrader's own work "
             "(sanitising, restoring cells, the gradebook). Reference submissions, medians, same run.", ""]
    if note:
        lines += [note, ""]
    lines += ["| assignment | runs | engine alone (s) | nbgrader autograde, sandboxed (s) | nbgrader / engine |",
              "|---|---|---|---|---|"]
    for aid, engine, nbg, repeats in rows:
        lines.append(f"| {aid} | {repeats} | {engine:.1f} | {nbg:.1f} | {nbg / engine:.2f}x |")
    return lines + [""]


def replace_section(text: str, title: str, lines: list[str]) -> str:
    """``text`` (a Markdown file) with the section ``title`` replaced by ``lines`` (appended if absent)."""
    out, skipping, done = [], False, False
    for line in text.splitlines():
        if line == title:
            out += lines
            skipping, done = True, True
            continue
        if skipping and line.startswith("## "):
            skipping = False
        if not skipping:
            out.append(line)
    if not done:
        out += [""] + lines
    return "\n".join(out).rstrip("\n") + "\n"


def nbgrader_rows_only(course: Course, ids: list[str], repeats: int) -> int:
    """Measure only the engine alone vs nbgrader autograde (sandboxed) and rewrite that section of RESULTS.md."""
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    rows = []
    try:
        for aid in ids:
            path = reference_submission(course, aid, work)
            time_engine(path, aid)  # warm: the reference loaded once per process, for both
            engine = statistics.median(time_engine(path, aid)[0] for _ in range(repeats))
            nbg = statistics.median(time_nbgrader(course, aid, path) for _ in range(repeats))
            rows.append((aid, engine, nbg, repeats))
            print(f"{aid}: engine {engine:.1f} s, nbgrader autograde (sandboxed) {nbg:.1f} s ({nbg / engine:.2f}x)",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    note = (f"Measured on its own (`python -m benchmarks.run --nbgrader-rows`, {time.strftime('%Y-%m-%d')}; "
            f"{machine()}), not in the full run that produced the tables above; the engine was warmed first "
            "(reference loaded) so that both columns pay the same.")
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    RESULTS.write_text(replace_section(text, NBGRADER_SECTION, nbgrader_section(rows, note)))
    print("\n".join(nbgrader_section(rows, note)))
    return 0


def _target(ok: bool, text: str) -> str:
    return f"- [{'x' if ok else ' '}] {text}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", nargs="*")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--heavy-repeats", type=int, default=1, help="runs for 04-06, which train for minutes")
    parser.add_argument("--no-nbgrader", action="store_true")
    parser.add_argument("--class-size", type=int, default=8, help="submissions for the --jobs 1/2 comparison (0: skip)")
    parser.add_argument("--class-assignment", default="03_unfold")
    parser.add_argument("--nbgrader-rows", action="store_true",
                        help="only the engine vs nbgrader autograde (sandboxed) rows (default ids: 01-03)")
    args = parser.parse_args(argv)
    course = Course()
    if args.nbgrader_rows:
        return nbgrader_rows_only(course, args.ids or ["01_apply_kernel", "02_conv_arithmetic", "03_unfold"],
                                  args.repeats)
    ids = args.ids or course.assignment_ids()
    weights = _weights_note() if "06_transfer_learning" in ids else ""
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    rows, accuracies = [], {}
    for aid in ids:
        repeats = args.heavy_repeats if aid[:2] in ("04", "05", "06") else args.repeats
        path = reference_submission(course, aid, work)
        alone_runs = [time_notebook_alone(course, aid) for _ in range(repeats)]
        alone = statistics.median(t for t, _ in alone_runs)
        accuracies.update({f"{aid}: {k}": v for k, v in alone_runs[0][1].items()})
        engine_runs = [time_engine(path, aid) for _ in range(repeats)]
        engine = statistics.median(t for t, _, _ in engine_runs)
        score, max_score = engine_runs[0][1], engine_runs[0][2]
        nbg = None if args.no_nbgrader else statistics.median(time_nbgrader(course, aid, path) for _ in range(repeats))
        rows.append((aid, alone, engine, nbg, score, max_score, repeats))
        print(f"{aid}: notebook {alone:.1f} s, engine {engine:.1f} s ({engine / alone:.2f}x), "
              f"nbgrader {'-' if nbg is None else f'{nbg:.1f} s'}, score {score:g}/{max_score:g}", flush=True)
    klass = class_throughput(course, args.class_assignment, args.class_size, work) if args.class_size else None
    if klass:
        print(f"grade-class, {klass['n']} submissions: jobs 1 {klass['jobs1']:.0f} s, jobs 2 {klass['jobs2']:.0f} s", flush=True)
    conv = conv_benchmark()
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    lines = ["# Benchmark results", "", f"Machine: {machine()}", "",
             f"Medians of {args.repeats} runs ({args.heavy_repeats} for 04-06, which train); ratios from the same run. "
             "`python -m benchmarks.run` regenerates this file.", ""]
    if weights:
        lines += [weights, ""]
    lines += ["| assignment | runs | notebook alone (s) | engine grade (s) | engine / notebook | nbgrader autograde, sandboxed (s) | engine / nbgrader | reference score |",
              "|---|---|---|---|---|---|---|---|"]
    for aid, alone, engine, nbg, score, max_score, repeats in rows:
        vs = "-" if nbg is None else f"{engine / nbg:.2f}x"
        lines.append(f"| {aid} | {repeats} | {alone:.1f} | {engine:.1f} | {engine / alone:.2f}x | "
                     f"{'-' if nbg is None else f'{nbg:.1f}'} | {vs} | {score:g}/{max_score:g} |")
    total_alone = sum(r[1] for r in rows)
    lines += ["", f"All reference notebooks alone: {total_alone:.0f} s ({total_alone / 60:.1f} min).", ""]
    if accuracies:
        lines += ["## Accuracy the solution notebooks reach", "", "| notebook: model | accuracy |", "|---|---|"]
        lines += [f"| {name} | {acc:.4f} |" for name, acc in accuracies.items()]
        lines += [""]
    if klass:
        speedup = klass["jobs1"] / klass["jobs2"]
        lines += ["## Class throughput (`python -m autograder grade-class`)", "",
                  f"{klass['n']} submissions of {klass['assignment']} (the reference and partly wrong ones), graded from scratch:", "",
                  "| jobs | seconds | submissions per minute |", "|---|---|---|",
                  f"| 1 | {klass['jobs1']:.0f} | {klass['n'] * 60 / klass['jobs1']:.1f} |",
                  f"| 2 | {klass['jobs2']:.0f} | {klass['n'] * 60 / klass['jobs2']:.1f} |", "",
                  f"Speed-up {speedup:.2f}x; the two runs gave {'the same' if klass['same_scores'] else 'DIFFERENT'} scores.", ""]
    nb_rows = [(aid, engine, nbg, repeats) for aid, _, engine, nbg, _, _, repeats in rows if nbg is not None]
    if nb_rows:
        lines += nbgrader_section(nb_rows)
    lines += ["## Convolution implementations (ms per batch of 64 Fashion-MNIST images)", "",
              "| implementation | ms |", "|---|---|"]
    lines += [f"| {name} | {ms:.2f} |" for name, ms in conv]
    lines += ["", "## Peak memory", "",
              f"Grader process (engine and reference in-process): {peak_self:.0f} MiB; largest child process "
              f"(sandboxed worker, kernel, grade-class job): {peak_children:.0f} MiB.", ""]
    lines += ["## Targets", ""]
    for aid, alone, engine, nbg, *_ in rows:
        lines.append(_target(engine <= 1.25 * alone, f"{aid}: grading overhead {engine / alone:.2f}x (target at most 1.25x)"))
        if nbg is not None:
            lines.append(_target(nbg <= 1.25 * engine, f"{aid}: nbgrader autograde (sandboxed) {nbg:.1f} s vs engine "
                                                       f"{engine:.1f} s (nbgrader's overhead at most 1.25x)"))
    if len(rows) == len(course.assignment_ids()):
        lines.append(_target(total_alone <= 480, f"all six notebooks in {total_alone:.0f} s (target at most 480 s)"))
    if klass:
        lines.append(_target(speedup >= 1.6, f"--jobs 2 speed-up {speedup:.3f}x (target at least 1.6x)"))
    lines.append(_target(max(peak_self, peak_children) < 4096,
                         f"peak memory {max(peak_self, peak_children):.0f} MiB (target under 4096 MiB)"))
    lines.append("")
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
