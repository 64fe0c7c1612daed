"""One result of a notebook function, computed once per worker process and copied for each check that asks.

Reached only through :meth:`autograder.submission.namespace.Namespace.shared_result`, from grader
code that runs in the sandboxed worker.  The results live in this module of the worker process:
they die with it, so a replacement worker (after a crash) computes them again, and a worker forked
from the zygote starts without any (the zygote never runs a request, and each forked worker serves
one submission).

Every caller gets a result of its own: the first the function's own return value, the others a
``copy.deepcopy`` of a copy taken right after that call, before any check could change it.  Where
no copy can be made the function is simply called again.  An entry is used only while the name
still refers to the same function object.
"""

from __future__ import annotations

import copy

#: key (the function's name and arguments) -> (the function, a pristine copy of what it returned)
_RESULTS: dict[str, tuple[object, object]] = {}


def shared_result(key: str, fn, args: list, kwargs: dict):
    """``fn(*args, **kwargs)``, computed once per key (and function) in this process; each caller's own copy."""
    entry = _RESULTS.get(key)
    if entry is not None and entry[0] is fn:
        try:
            return copy.deepcopy(entry[1])
        except Exception:  # noqa: BLE001 - the object's own copying code failed: call the function again
            pass
    _RESULTS.pop(key, None)
    value = fn(*args, **kwargs)
    try:
        _RESULTS[key] = (fn, copy.deepcopy(value))
    except Exception:  # noqa: BLE001 - it cannot be copied: every caller calls the function itself
        pass
    return value


def computed() -> list[str]:
    """The keys this process holds a result for (for tests)."""
    return sorted(_RESULTS)
