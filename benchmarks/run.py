"""Grading benchmarks: notebook alone vs the engine vs nbgrader, per assignment.

    python -m benchmarks.run [--ids 01_apply_kernel ...] [--repeats 3] [--no-nbgrader]

Prints a table and writes benchmarks/RESULTS.md with the machine's cores, memory and
library versions.  Medians over repeated runs; every ratio is measured in the same run.
The floor for grading is the notebook's own computation (executed with nbclient, no
grading); everything above it is grader overhead.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat

from autograder.assignments import Course
from autograder.authoring import fill_answers, solution_sources

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


def time_notebook_alone(course: Course, aid: str) -> float:
    """The solution notebook without its test cells, in a fresh kernel: the computation's own cost."""
    from nbclient import NotebookClient

    a = course.get(aid)
    nb = nbformat.read(a.solution_notebook, as_version=4)
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
                                           and not c.metadata.get("nbgrader", {}).get("solution"))]
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(a.solution_notebook.parent)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def time_engine(path: Path, aid: str) -> tuple[float, float, float]:
    from autograder.engine import grade_notebook

    start = time.perf_counter()
    report = grade_notebook(path, assignment_id=aid)
    return time.perf_counter() - start, report.score, report.max_score


def time_nbgrader(course: Course, aid: str, path: Path) -> float:
    from autograder.nbgrader_tools import nbgrader_api

    root = Path(tempfile.mkdtemp(prefix="bench-nbgrader-"))
    try:
        for sub in ("solutions", "assignments"):
            shutil.copytree(course.root / sub / aid, root / sub / aid)
        shutil.copy(course.root / "nbgrader_config.py", root / "nbgrader_config.py")
        api = nbgrader_api(root, timeout=course.get(aid).settings.cell_timeout)
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", nargs="*")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-nbgrader", action="store_true")
    args = parser.parse_args(argv)
    course = Course()
    ids = args.ids or course.assignment_ids()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    rows = []
    for aid in ids:
        path = reference_submission(course, aid, work)
        alone = statistics.median(time_notebook_alone(course, aid) for _ in range(args.repeats))
        engine_runs = [time_engine(path, aid) for _ in range(args.repeats)]
        engine = statistics.median(t for t, _, _ in engine_runs)
        score, max_score = engine_runs[0][1], engine_runs[0][2]
        nbg = None if args.no_nbgrader else statistics.median(time_nbgrader(course, aid, path) for _ in range(args.repeats))
        rows.append((aid, alone, engine, nbg, score, max_score))
        print(f"{aid}: notebook {alone:.1f} s, engine {engine:.1f} s ({engine / alone:.2f}x), "
              f"nbgrader {'-' if nbg is None else f'{nbg:.1f} s'}, score {score:g}/{max_score:g}", flush=True)
    conv = conv_benchmark()
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = ["# Benchmark results", "", f"Machine: {machine()}", "",
             f"Medians of {args.repeats} runs; ratios from the same run. `python -m benchmarks.run` regenerates this file.", "",
             "| assignment | notebook alone (s) | engine grade (s) | engine / notebook | nbgrader autograde (s) | engine vs nbgrader | reference score |",
             "|---|---|---|---|---|---|---|"]
    for aid, alone, engine, nbg, score, max_score in rows:
        vs = "-" if nbg is None else f"{engine / nbg:.2f}x"
        lines.append(f"| {aid} | {alone:.1f} | {engine:.1f} | {engine / alone:.2f}x | {'-' if nbg is None else f'{nbg:.1f}'} | {vs} | {score:g}/{max_score:g} |")
    lines += ["", f"All reference notebooks alone: {sum(r[1] for r in rows):.0f} s.", "",
              "## Convolution implementations (ms per batch of 64 Fashion-MNIST images)", "",
              "| implementation | ms |", "|---|---|"]
    lines += [f"| {name} | {ms:.2f} |" for name, ms in conv]
    lines += ["", "## Peak memory", "", f"Grader process: {peak_self:.0f} MiB; largest child (worker, kernel): {peak_children:.0f} MiB.", ""]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
