"""04_cnn: does the reference reach the accuracy targets for every seed?

    python -m benchmarks.seeds_04_cnn [--seeds 10] [--jobs 2]

Trains the reference ``simple_cnn`` with the notebook's own budget (``train_simple_cnn(seed)``
from the solution notebook: batch size, optimiser, learning-rate schedule) once per seed, and
prints for each seed the final validation accuracy (all 10,000 test images, as the notebook
reports it) and the accuracy on the checks' public (2,000) and hidden (6,000) held-out images,
evaluated as the checks do.  Exits with status 1 unless every seed reaches 0.88 on the
validation set (the notebook's target) and 0.85 on the public held-out images (the visible
check).  The hidden check's margin (0.03 below the reference) is compared with the spread
across seeds, since a correct student's run behaves like another seed.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

TARGET_VALID, TARGET_PUBLIC, TOLERANCE = 0.88, 0.85, 0.03


def _common():
    from autograder.course import Course

    path = Course().get("04_cnn").checks_dir / "common.py"
    spec = importlib.util.spec_from_file_location("_a04_cnn_common", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_seed(seed: int, threads: int) -> dict:
    import torch

    from autograder.course import Course
    from autograder.grading.reference import load_reference

    torch.set_num_threads(threads)
    C = _common()
    ref = load_reference(Course().get("04_cnn"))
    start = time.perf_counter()
    ref.exec(f"_seed_model, _seed_history = train_simple_cnn({seed})")
    seconds = time.perf_counter() - start
    history = ref.eval("_seed_history")
    row = {"seed": seed, "seconds": seconds, "valid": float(history[-1]["valid_acc"])}
    for which in ("public", "hidden"):
        x, y = C.heldout(which)
        row[which] = C.accuracy_of(C.predict(ref, "_seed_model", x), y)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel (1 thread each when > 1)")
    args = parser.parse_args(argv)
    seeds = list(range(args.first, args.first + args.seeds))
    threads = 1 if args.jobs > 1 else 0
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(run_seed, seeds, [threads] * len(seeds)))
    else:
        import torch

        rows = [run_seed(s, torch.get_num_threads()) for s in seeds]

    print(f"{'seed':>5} {'valid (10,000)':>15} {'public (2,000)':>15} {'hidden (6,000)':>15} {'train s':>8}")
    for r in rows:
        print(f"{r['seed']:>5} {r['valid']:>15.4f} {r['public']:>15.4f} {r['hidden']:>15.4f} {r['seconds']:>8.0f}")
    ok_valid = sum(r["valid"] >= TARGET_VALID for r in rows)
    ok_public = sum(r["public"] >= TARGET_PUBLIC for r in rows)
    hidden = [r["hidden"] for r in rows]
    spread = max(hidden) - min(hidden)
    print(f"validation >= {TARGET_VALID}: {ok_valid} of {len(rows)} seeds (min {min(r['valid'] for r in rows):.4f}, "
          f"mean {statistics.mean(r['valid'] for r in rows):.4f})")
    print(f"public held-out >= {TARGET_PUBLIC}: {ok_public} of {len(rows)} seeds "
          f"(min {min(r['public'] for r in rows):.4f})")
    print(f"hidden held-out: min {min(hidden):.4f}, max {max(hidden):.4f}, spread {spread:.4f} "
          f"(the hidden check allows {TOLERANCE} below the reference; every seed is within "
          f"{spread:.4f} of every other)")
    return 0 if ok_valid == ok_public == len(rows) and spread < TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
