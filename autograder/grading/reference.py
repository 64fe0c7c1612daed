"""The reference solution, taken from the solution notebook itself.

There is no second copy of reference code: the grader executes the solution notebook's
code cells in a fresh namespace of its own (trusted) process.  Test cells and cells tagged
``demo`` (experiments, plots, timings, training runs) are skipped; expensive derived values
(a trained model's accuracy, say) go through :meth:`ReferenceNamespace.memo`, cached on
disk under a key that includes the content hash of the notebook and of the checks.

What the reference raises is the grader's problem, never the student's: its errors arrive as
:class:`ReferenceFault` (a :class:`StudentError`, so a check that expects the reference to raise
still catches it), which the check runner reports as the check's own failure.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import nbformat

from autograder.course import Assignment
from autograder.files import write_atomic
from autograder.notebooks import is_test_cell, read_notebook
from autograder.sandbox.codec import Decoder, Encoder
from autograder.submission.namespace import (
    ForbiddenAPIUsed,
    InProcessNamespace,
    StudentError,
    SubmissionCrashed,
)

SKIP_TAG = "demo"
_LOADED: dict[tuple[str, str], ReferenceNamespace] = {}
#: How many times this process executed each assignment's solution notebook (grade-class reports it).
LOADS: Counter[str] = Counter()


def reference_sources(nb: nbformat.NotebookNode) -> list[str]:
    """Code of the cells that define the reference (no tests, no ``demo`` cells)."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code" or is_test_cell(cell):
            continue
        if SKIP_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        out.append(cell.source)
    return out


def content_hash(assignment: Assignment) -> str:
    """Hash of the solution notebook and every file of the assignment's checks."""
    h = hashlib.sha256()
    paths = [assignment.solution_notebook]
    if assignment.checks_dir.is_dir():
        paths += sorted(p for p in assignment.checks_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def cache_root(assignment: Assignment) -> Path:
    base = os.environ.get("CNN_AUTOGRADER_CACHE")
    return Path(base) if base else assignment.course.root / ".autograder_cache"


class ReferenceFault(StudentError):
    """The reference solution raised, or lacks a name a check asked for: a problem of the check, not the student's.

    A :class:`StudentError` so that a check expecting the reference to raise (``except StudentError``)
    keeps working; uncaught, the runner reports the check as the grader's error.
    """

    def describe(self) -> str:
        what = self.what or "code"
        if self.type_name == "NameError" and "is not defined" in self.message:
            return f"the reference solution has no {what}: {self.message} (a mistake in the check?)"
        return f"the reference solution's {what} raised {self.type_name}: {self.message}"


class ReferenceNamespace(InProcessNamespace):
    """The reference, in-process, with an on-disk memo for expensive values; its errors are :class:`ReferenceFault`."""

    def __init__(self, namespace: dict, cache_dir: Path):
        super().__init__(namespace, label="reference")
        self.cache_dir = cache_dir

    def _request(self, op: str, what: str, timeout: float | None = None, max_reply: int | None = None, **fields):
        try:
            return super()._request(op, what, timeout, max_reply, **fields)
        except ReferenceFault:
            raise
        except StudentError as err:
            raise ReferenceFault({"type": err.type_name, "mro": err.mro, "message": err.message,
                                  "traceback": err.traceback}, err.what) from None
        except (ForbiddenAPIUsed, SubmissionCrashed) as err:
            name = type(err).__name__
            raise ReferenceFault({"type": name, "mro": [name], "message": str(err)}, what) from None

    def memo(self, key: str, compute):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
        meta_path = self.cache_dir / f"{safe}.json"
        blob_path = self.cache_dir / f"{safe}.bin"
        if meta_path.exists() and blob_path.exists():
            meta = json.loads(meta_path.read_text())
            raw = blob_path.read_bytes()
            blobs, offset = [], 0
            for size in meta["sizes"]:
                blobs.append(raw[offset:offset + size])
                offset += size
            return Decoder(blobs).decode(meta["tree"])
        value = compute()

        def no_handles(obj):
            raise TypeError(f"memo() can only cache plain data, not {type(obj).__name__}")

        enc = Encoder(no_handles)
        tree = enc.encode(value)
        # The blob first: a reader only trusts a value whose meta file exists (and it is written last).
        write_atomic(blob_path, b"".join(enc.blobs))
        write_atomic(meta_path, json.dumps({"tree": tree, "sizes": [len(b) for b in enc.blobs]}))
        return Decoder(enc.blobs).decode(tree)


class ReferenceError(RuntimeError):
    """The solution notebook itself failed: an instructor's problem, reported as such."""


def load_reference(assignment: Assignment) -> ReferenceNamespace:
    """Execute the solution notebook's defining cells once per process (and content hash).

    A long-lived grading process (a ``grade-class`` job, a dask worker) grades every submission with
    the same reference; an edit to the solution notebook or to the checks changes the hash, so the
    next submission loads the new one (and the old one is dropped).
    """
    digest = content_hash(assignment)
    key = (str(assignment.solution_notebook), digest)
    if key in _LOADED:
        return _LOADED[key]
    for stale in [k for k in _LOADED if k[0] == key[0]]:
        del _LOADED[stale]
    started = time.monotonic()
    nb = read_notebook(assignment.solution_notebook)
    namespace: dict = {"__name__": "__reference__"}
    os.environ.setdefault("MPLBACKEND", "Agg")
    old_cwd = os.getcwd()
    out = io.StringIO()
    try:
        os.chdir(assignment.solution_notebook.parent)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            for i, source in enumerate(reference_sources(nb)):
                if any(line.lstrip().startswith(("%", "!")) for line in source.splitlines()):
                    raise ReferenceError(f"{assignment.solution_notebook}: a cell with IPython magics must be "
                                         f"tagged '{SKIP_TAG}' (it cannot define the reference):\n{source[:200]}")
                try:
                    exec(compile(source, f"<reference {assignment.id} cell {i}>", "exec"), namespace)  # noqa: S102
                except Exception as exc:
                    raise ReferenceError(f"{assignment.solution_notebook}: reference cell {i} failed: "
                                         f"{type(exc).__name__}: {exc}") from exc
    finally:
        os.chdir(old_cwd)
    gc.freeze()  # the reference stays for the whole run: keep it out of every later collection
    ref = ReferenceNamespace(namespace, cache_root(assignment) / assignment.id / digest[:16])
    _LOADED[key] = ref
    LOADS[assignment.id] += 1
    print(f"reference for {assignment.id} loaded in {time.monotonic() - started:.1f} s "
          f"(load {LOADS[assignment.id]} in process {os.getpid()})", file=sys.stderr)
    return ref
