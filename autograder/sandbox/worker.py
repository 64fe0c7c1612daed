"""The sandboxed worker: runs a submission's cells, then answers the grader's requests.

Started by :mod:`autograder.sandbox.worker_process` inside whatever isolation the machine offers.
It talks to the grader only over two inherited pipe file descriptors (given in
``AUTOGRADER_FDS``); the notebook's own prints go to stdout/stderr, which the grader reads
separately and truncates.  It never imports the checks or the reference.
"""

from __future__ import annotations

import os
import sys
import time


def _threads() -> int:
    try:
        return max(1, int(os.environ.get("AUTOGRADER_THREADS", "1")))
    except ValueError:
        return 1


CELL_OUTPUT_KEEP = 32 * 1024


class _Tee:
    """Writes through to the real stream and keeps the first bytes of a cell's output for the grader."""

    def __init__(self, stream, kept: list[str]):
        self._stream = stream
        self._kept = kept

    def write(self, text):
        if isinstance(text, str) and sum(map(len, self._kept)) < CELL_OUTPUT_KEEP:
            self._kept.append(text[:CELL_OUTPUT_KEEP])
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _kept_text(kept: list[str]) -> str:
    text = "".join(kept)
    return text if len(text) <= CELL_OUTPUT_KEEP else text[:CELL_OUTPUT_KEEP] + "\n[... output cut]"


def main() -> int:
    return serve(time.perf_counter())


def serve(start: float, forked: bool = False) -> int:
    """Answer the grader on the two pipes named in ``AUTOGRADER_FDS`` until it says shutdown.

    ``forked``: this process was forked from the zygote (:mod:`.zygote_server`), which imported
    torch without running any of its operations; the thread pools are sized here, as in a fresh one.
    """
    fd_in, fd_out = (int(x) for x in os.environ["AUTOGRADER_FDS"].split(","))
    for fd in (fd_in, fd_out):
        os.set_inheritable(fd, False)  # a process the student spawns does not get the channel
    os.environ.pop("AUTOGRADER_FDS", None)
    os.environ.setdefault("MPLBACKEND", "Agg")

    import torch

    from .protocol import ChannelClosed, read_message, write_message

    torch.set_num_threads(_threads())
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    from IPython.core.interactiveshell import InteractiveShell

    from .executor import Executor, error_info

    shell = InteractiveShell.instance(colors="NoColor")
    shell.user_ns["__name__"] = "__main__"
    executor = Executor(shell.user_ns)
    write_message(fd_out, {"ready": True, "pid": os.getpid(), "uid": os.getuid(),
                           "startup_seconds": time.perf_counter() - start,
                           "threads": torch.get_num_threads(), "python": sys.version.split()[0],
                           "torch": torch.__version__, "forked": forked})
    while True:
        try:
            request, blobs = read_message(fd_in, max_total=2**40)  # the grader's own requests
        except ChannelClosed:
            return 0
        op = request.get("op")
        rid = request.pop("rid", None)  # echoed: the grader matches every reply to its request
        if op == "shutdown":
            write_message(fd_out, {"ok": True, "value": None, "rid": rid})
            return 0
        if op == "run_cell":
            t0 = time.perf_counter()
            sys.stdout.write(f"\n--- cell {request.get('label', '')} ---\n")
            sys.stdout.flush()
            kept: list[str] = []
            real = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = _Tee(real[0], kept), _Tee(real[1], kept)
            try:
                result = shell.run_cell(request["source"], store_history=False, silent=False)
                err = result.error_before_exec or result.error_in_exec
            except BaseException as exc:  # noqa: BLE001 - the cell may raise anything, even BaseException
                err = exc
            finally:
                sys.stdout, sys.stderr = real
            sys.stdout.flush()
            sys.stderr.flush()
            response = {"ok": err is None, "seconds": time.perf_counter() - t0, "output": _kept_text(kept)}
            if err is not None:
                response["error"] = error_info(err)
            write_message(fd_out, {**response, "rid": rid})
            continue
        response, out_blobs = executor.handle(request, blobs)
        sys.stdout.flush()
        write_message(fd_out, {**response, "rid": rid}, out_blobs)


if __name__ == "__main__":
    sys.exit(main())
