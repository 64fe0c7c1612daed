"""Answers the grader's requests against a namespace of (possibly untrusted) code.

It runs where that code lives: inside the sandboxed worker for a student's submission,
or in-process for the trusted reference and for in-notebook self-checks.  Requests and
answers are plain data (see :mod:`autograder.sandbox.codec`), so both transports behave
the same way.
"""

from __future__ import annotations

import builtins
import keyword
import os
import traceback
from typing import Any

from .codec import Decoder, Encoder, HandleRef
from .describe import describe
from .forbid import forbidden

_MAX_REPR = 300
_MAX_TRACEBACK = 4000


def _safe_repr(obj) -> str:
    try:
        text = repr(obj)
    except BaseException:  # noqa: BLE001 - a student's __repr__ may raise anything
        text = f"<{type(obj).__name__} object>"
    return text if len(text) <= _MAX_REPR else text[:_MAX_REPR] + "..."


_OWN_DIR = os.path.dirname(os.path.abspath(__file__))


def error_info(exc: BaseException) -> dict:
    """Plain-data description of an exception (type, MRO names, message, short traceback).

    The traceback leaves out the sandbox's own frames: the student sees only their code.
    """
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename.startswith(_OWN_DIR):
        tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb)
    text = "".join(lines)
    if len(text) > _MAX_TRACEBACK:
        text = "...\n" + text[-_MAX_TRACEBACK:]
    text = text[:2 * _MAX_TRACEBACK]
    try:
        message = str(exc)
        message = message if isinstance(message, str) else "<unprintable message>"
    except BaseException:  # noqa: BLE001
        message = "<unprintable message>"
    return {
        "type": _cap(type(exc).__name__, 200),
        "mro": [_cap(c.__name__, 200) for c in type(exc).__mro__][:30],
        "message": _cap(message, 2000),
        "traceback": text,
    }


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class Executor:
    """Dispatches requests (``has``, ``call``, ``eval``, ``exec``, ``describe``, ``release``)."""

    def __init__(self, namespace: dict):
        self.namespace = namespace
        self.handles: dict[int, Any] = {}
        self._next_handle = 1
        self._grader_ns: dict | None = None
        self._scope: str | None = None  # the check whose grader names _grader_ns holds
        self._kept: dict = {}  # grader names kept across scopes (an expensive model built once)
        self._forbidden = forbidden  # bound now, before any student code runs (patching the module is no use)

    # -- handles ---------------------------------------------------------------------
    def _new_handle(self, obj) -> HandleRef:
        hid = self._next_handle
        self._next_handle += 1
        self.handles[hid] = obj
        return HandleRef(hid, type(obj).__name__, _safe_repr(obj))

    def _resolve(self, node) -> Any:
        hid = node["__handle__"]
        if hid not in self.handles:
            raise LookupError(f"unknown handle {hid}")
        return self.handles[hid]

    # -- requests --------------------------------------------------------------------
    def grader_namespace(self) -> dict:
        """Where grader-supplied code runs: a copy of the submission's names plus the grader's own.

        The grader's own names are those its earlier ``exec`` requests of the same scope (one check)
        defined: they never enter the submission's namespace, and a new scope starts without them, so
        one check's helper names cannot clash with the notebook's names or reach the next check.
        Functions the grader defines see the submission's names as they were when they were defined.
        Names an ``exec`` request lists in ``keep`` are seen by every later scope too.
        """
        ns = dict(self.namespace)
        ns.update(self._kept)
        ns.update(self._grader_ns or {})  # the grader's own helpers win over same-named notebook globals
        ns.setdefault("__builtins__", builtins)
        return ns

    def handle(self, request: dict, blobs: list[bytes]) -> tuple[dict, list[bytes]]:
        op = request.get("op")
        used: list[str] = []
        try:
            decoder = Decoder(blobs, resolve_handle=self._resolve)
            encoder = Encoder(self._new_handle)
            if op == "call":
                fn = self._target(request["target"])
                args = decoder.decode(request.get("args", []))
                kwargs = decoder.decode(request.get("kwargs", {"__dict__": []}))
                # The reply is encoded inside the forbidding scope too: a lazy tensor subclass that
                # computes when it is read cannot run a forbidden call after the call "returned".
                with self._forbidden(request.get("forbid")) as used:
                    tree = encoder.encode(fn(*args, **kwargs))
            else:
                tree = encoder.encode(self._dispatch(op, request, decoder))
        except BaseException as exc:  # noqa: BLE001 - everything the code raised is reported
            if isinstance(exc, KeyboardInterrupt):
                raise
            return {"ok": False, "error": error_info(exc), "forbidden": list(used)}, []
        return {"ok": True, "value": tree, "forbidden": list(used)}, encoder.blobs

    def _dispatch(self, op, request, decoder):
        if op == "has":
            name = request["name"]
            return name in self.namespace
        if op in ("eval", "exec"):
            scope = request.get("scope")
            if scope != self._scope:
                self._scope, self._grader_ns = scope, None
            bindings = decoder.decode(request.get("bindings", {"__dict__": []}))
            ns = self.grader_namespace()
            ns.update(bindings)
            if op == "eval":
                return eval(compile(request["source"], "<grader>", "eval"), ns)  # noqa: S307 - grader's own code
            exec(compile(request["source"], "<grader>", "exec"), ns)  # noqa: S102 - grader's own code
            defined = {k: v for k, v in ns.items()
                       if k not in bindings and (k not in self.namespace or self.namespace[k] is not v)}
            self._grader_ns = {**(self._grader_ns or {}), **defined}
            for name in request.get("keep") or ():
                if isinstance(name, str) and name in ns:
                    self._kept[name] = ns[name]
            return None
        if op == "describe":
            return describe(self._resolve(request["handle"]))
        if op == "release":
            self.handles.pop(request["handle"]["__handle__"], None)
            return None
        raise ValueError(f"unknown request {op!r}")

    def _target(self, target: dict):
        if "name" in target:
            name = target["name"]
            if not name.isidentifier() or keyword.iskeyword(name):
                raise ValueError(f"bad name {name!r}")
            if name not in self.namespace:
                raise NameError(f"name '{name}' is not defined")
            obj = self.namespace[name]
        else:
            obj = self._resolve(target)
        method = target.get("method")
        if method is not None:
            if not method.isidentifier():
                raise ValueError(f"bad method name {method!r}")
            obj = getattr(obj, method)
        return obj

