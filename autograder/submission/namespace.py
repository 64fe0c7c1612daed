"""What a check sees of a notebook: a namespace it can call into, but never touch.

``sub`` (the student's submission) and ``ref`` (the reference solution) are both
:class:`Namespace` objects with one API:

* ``sub.apply_kernel(img, 1, 1, k)`` or ``sub.call("apply_kernel", ..., forbid=["conv"])``
  calls a function defined in the notebook; arguments and results cross as plain data
  (tensors, numbers, strings, lists, tuples, dicts), anything else comes back as a
  :class:`Handle`.
* ``sub.eval(expr, **bindings)`` / ``sub.exec(code, **bindings)`` run the *grader's* code
  next to the notebook's names (to build a model or a data loader there, say).
* ``sub.describe(handle)`` returns plain data about a module (layers, parameters, hooks).
* ``sub.shared_result("get_dataloaders", 64)`` is a private copy of one shared result of an expensive
  call, for checks that only read it (see :meth:`Namespace.shared_result`).

Exceptions raised by the notebook's code arrive as :class:`StudentError` (a name and a
message, never the object).
"""

from __future__ import annotations

import itertools
import keyword
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from autograder.sandbox.codec import DecodeError, Decoder, Encoder, HandleRef
from autograder.sandbox.executor import Executor
from autograder.sandbox.forbid import FORBIDDEN_GROUPS, describe_group


class StudentError(Exception):
    """The notebook's code raised an exception (carried as text, never as the object)."""

    def __init__(self, info: dict, what: str = ""):
        info = info if isinstance(info, dict) else {}
        self.type_name = _short(info.get("type"), 200) or "Exception"
        mro = info.get("mro")
        self.mro = [_short(x, 200) for x in mro[:30]] if isinstance(mro, list) else [self.type_name]
        self.message = _short(info.get("message"), 2000)
        self.traceback = _short(info.get("traceback"), 8000)
        self.what = what
        super().__init__(self.describe())

    def is_a(self, *names: str) -> bool:
        return any(n in self.mro for n in names)

    def describe(self) -> str:
        where = f"{self.what} " if self.what else ""
        if self.type_name == "NotImplementedError":
            return f"{where}raised NotImplementedError: it is not implemented yet."
        if self.type_name == "NameError" and "is not defined" in self.message:
            return (f"{where}could not run: {self.message}. Did you run the cell that defines it, "
                    f"and keep the name the exercise asks for?")
        return f"{where}raised {self.type_name}: {self.message}"


def _short(value, limit: int) -> str:
    """A string the worker sent, capped (anything that is not a string becomes empty)."""
    if not isinstance(value, str):
        return ""
    return value if len(value) <= limit else value[:limit] + "..."


class GraderFault(Exception):
    """The grader could not do its part (no protected worker could be started): never the student's fault."""


class ForbiddenAPIUsed(Exception):
    """The call used an API the exercise forbids (recorded even if the code caught the error)."""

    def __init__(self, groups: list[str], what: str = "", where: str = ""):
        self.groups = groups
        apis = "; ".join(describe_group(g) for g in groups)
        at = f" ({where})" if where else ""
        super().__init__(f"{what} uses {apis}{at}, which this exercise does not allow: write it yourself.")


class SubmissionCrashed(Exception):
    """The process running the submission died (exit, signal, memory cap) or stopped answering."""


class SubmissionTimeout(SubmissionCrashed):
    """A call or cell ran past its wall-clock limit and its process was killed."""


@dataclass
class CallRecord:
    """One request and how long it took (for feedback and benchmarks)."""

    op: str
    what: str
    seconds: float
    ok: bool


_SCOPES = itertools.count(1)


@dataclass
class Namespace:
    """Base class: subclasses provide :meth:`_roundtrip` (in-process or over the sandbox pipe)."""

    label: str = "submission"
    default_timeout: float = 60.0
    calls: list[CallRecord] = field(default_factory=list)
    #: functions that ran past their time limit once: later calls fail at once instead of waiting again.
    _hung: set[str] = field(default_factory=set)
    #: the grader's scope (one per check): names its exec() defines are seen by eval/exec of that scope only.
    _scope: str | None = None
    #: whether :meth:`shared_result` shares one result between checks (only a worker that serves one submission)
    shares_results: ClassVar[bool] = False
    #: handles to the copies of shared results this scope's check got: released when the next scope begins
    _copies: list = field(default_factory=list)

    # -- transport -------------------------------------------------------------------
    def _roundtrip(self, request: dict, blobs: list[bytes], timeout: float,
                   max_reply: int | None = None) -> tuple[dict, list[bytes]]:
        raise NotImplementedError

    @property
    def generation(self) -> int:
        """Changes whenever the process behind the namespace is replaced (handles die with it)."""
        return 0

    # -- plumbing --------------------------------------------------------------------
    def _encode(self, value) -> tuple[Any, list[bytes]]:
        def handle_ref(obj):
            if isinstance(obj, Handle):
                if obj.namespace is not self:
                    raise TypeError("a handle can only be sent back to the namespace it came from")
                if obj.generation != self.generation:
                    raise SubmissionCrashed("this object was lost when the submission's process was restarted")
                return obj.ref
            raise TypeError(f"cannot send a {type(obj).__name__} into the {self.label}; build it there with exec()")

        enc = Encoder(handle_ref)
        return enc.encode(value), enc.blobs

    def _request(self, op: str, what: str, timeout: float | None = None, max_reply: int | None = None,
                 **fields) -> Any:
        blobs: list[bytes] = []
        request = {"op": op}
        # the notebook function this request runs ("runs" for grader code that calls it): a hung one is not run again
        target = fields.pop("runs", None) or (fields.get("target", {}).get("name") if op == "call" else None)
        for key, value in fields.items():
            if key in ("args", "kwargs", "bindings"):
                tree, extra = self._encode(value)
                # blob indices are per message: shift this field's indices past earlier blobs.
                request[key] = _shift_blobs(tree, len(blobs))
                blobs.extend(extra)
            else:
                request[key] = value
        if target is not None and target in self._hung:
            raise SubmissionTimeout(f"{what} was not run: an earlier call to {target}() did not finish in time")
        if target is not None and fields.get("forbid"):
            static = self._static_forbidden(target, list(fields["forbid"]))
            if static:
                raise ForbiddenAPIUsed(sorted({g for g, _ in static}), what, "; ".join(w for _, w in static[:3]))
        start = time.perf_counter()
        ok = False
        try:
            response, rblobs = self._roundtrip(request, blobs, timeout or self.default_timeout,
                                               max_reply=max_reply)
            ok = response.get("ok") is True
        except SubmissionTimeout:
            if target is not None:
                self._hung.add(target)
            raise
        finally:
            self.calls.append(CallRecord(op, what, time.perf_counter() - start, ok))
        error = response.get("error", {})
        forbidden_used = response.get("forbidden", [])
        if type(response.get("ok")) is not bool or not isinstance(error, dict) or not isinstance(forbidden_used, list):
            self._protocol_failure("a reply of the wrong shape")
        error_type = error.get("type") if not ok else None
        if error_type == "CallTimeout" and target is not None:
            self._hung.add(target)
        forbidden_used = [g for g in forbidden_used if isinstance(g, str) and g in FORBIDDEN_GROUPS]
        if forbidden_used:
            raise ForbiddenAPIUsed(forbidden_used, what)
        if not ok:
            raise StudentError(error, what)
        generation = self.generation
        decoder = Decoder(rblobs, resolve_handle=lambda node: Handle(
            self, HandleRef(node["__handle__"], _short(node.get("type"), 200) or "?", _short(node.get("repr"), 500)),
            generation))
        try:
            return decoder.decode(response.get("value"))
        except (DecodeError, RecursionError, MemoryError, TypeError, ValueError, KeyError) as exc:
            self._protocol_failure(f"{type(exc).__name__}: {str(exc)[:200]}")

    def _static_forbidden(self, name: str, groups: list[str]) -> list[tuple[str, str]]:
        """(group, where) of forbidden uses the grader sees in the source of ``name`` (none in-process)."""
        return []

    def source_call_sites(self, name: str, callees: set[str]) -> tuple[int, bool] | None:
        """(call sites of ``callees`` reachable from ``name``, one inside a loop?) read from the submitted
        source by the grader, or None where there is no source to read (in-process namespaces)."""
        return None

    def _protocol_failure(self, why: str):
        raise SubmissionCrashed(f"the notebook's code sent a reply the grader cannot use ({why})")

    # -- the API checks use ---------------------------------------------------------
    def has(self, name: str) -> bool:
        """Whether the notebook defines ``name``."""
        return bool(self._request("has", name, name=name))

    def call(self, name: str, *args, forbid=(), timeout: float | None = None, max_reply_mb: float | None = None,
             **kwargs):
        """Call the notebook's function ``name``; ``forbid`` names API groups it may not use.

        ``max_reply_mb`` raises the cap on the reply's size (256 MB by default) for a check that expects more.
        """
        return self._request("call", f"{name}()", timeout=timeout, target={"name": name},
                             max_reply=int(max_reply_mb * 2**20) if max_reply_mb else None,
                             args=list(args), kwargs=dict(kwargs), forbid=list(forbid))

    def shared_result(self, name: str, *args, timeout: float | None = None, **kwargs):
        """``name(*args, **kwargs)`` for a check that only reads the result: its own copy of one shared result.

        In the sandboxed worker the function runs once per worker process for these arguments (numbers,
        strings, booleans or None: they make the key), and every check gets a deep copy of that result
        (the first check the result itself), so no check sees another's changes; a result that cannot be
        copied is computed again for each check, and a new worker (after a crash) computes it again.
        The check's copy is freed when the next check begins: never keep its handle beyond the check.
        Elsewhere (the reference, a notebook kernel) the function is simply called.  A check that tests
        the function's own behaviour (a new object per call, defaults, what changes between calls, a
        forbidden API) calls it itself.  docs/AUTHORING.md, "Shared results", says when to use it.
        """
        if not self.shares_results:
            return self.call(name, *args, timeout=timeout, **kwargs)
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"bad function name {name!r}")
        if not all(v is None or type(v) in (bool, int, float, str) for v in (*args, *kwargs.values())):
            raise TypeError("shared_result() takes numbers, strings, booleans and None as arguments (its key)")
        source = (f"__import__('autograder.sandbox.shared_results', fromlist=['_'])"
                  f".shared_result(grader_key, {name}, grader_args, grader_kwargs)")
        key = repr((name, args, sorted(kwargs.items())))
        value = self._request("eval", f"{name}()", timeout=timeout, runs=name, source=source, scope=self._scope,
                              bindings={"grader_key": key, "grader_args": list(args), "grader_kwargs": kwargs})
        self._copies.extend(_handles_in(value))
        return value

    def _release_copies(self) -> None:
        """Free the last check's copies of shared results in the worker (its handles would keep them forever)."""
        copies, self._copies = self._copies, []
        for handle in copies:
            if handle.generation != self.generation or not self._holds_worker():
                return
            try:
                self._request("release", "release a copy", timeout=10, handle=self._encode(handle)[0])
            except (StudentError, SubmissionCrashed):  # a __del__ of the notebook's: the next request copes
                return

    def _holds_worker(self) -> bool:
        """Whether requests reach a running process without starting one (release requests only go there)."""
        return True

    def begin_scope(self, name: str | None) -> None:
        """Start the grader's scope ``name`` (the runner starts one per check, on both sides).

        Names the grader's :meth:`exec` defines stay in its scope: later :meth:`eval`/:meth:`exec` of the
        same scope see them (they win over the notebook's names of the same spelling), the notebook
        never does, and the next scope starts without them.
        """
        if self._copies:
            self._release_copies()
        self._scope = f"{name}#{next(_SCOPES)}"  # a new scope even when the same check runs again

    def eval(self, source: str, *, timeout: float | None = None, **bindings):
        """Evaluate the grader's expression next to the notebook's names (and the scope's own)."""
        return self._request("eval", "grader expression", timeout=timeout, source=source, bindings=bindings,
                             scope=self._scope)

    def exec(self, source: str, *, timeout: float | None = None, keep: tuple[str, ...] = (), **bindings) -> None:
        """Run the grader's statements next to the notebook's names; their new names persist in this scope.

        ``keep``: names of this code that every later scope sees too (an expensive object built once).
        """
        self._request("exec", "grader code", timeout=timeout, source=source, bindings=bindings, scope=self._scope,
                      keep=list(keep))

    def describe(self, handle: Handle) -> dict:
        return self._request("describe", f"describe {handle.type_name}", handle=self._encode(handle)[0])

    def __getattr__(self, name: str) -> Function:
        if name.startswith("_"):
            raise AttributeError(name)
        return Function(self, name)

    def memo(self, key: str, compute):
        """Cache an expensive derived value (only the reference caches; see ReferenceNamespace)."""
        return compute()


def _handles_in(value) -> list[Handle]:
    """The handles in a decoded value (lists, tuples and dicts are searched)."""
    if isinstance(value, Handle):
        return [value]
    if isinstance(value, (list, tuple)):
        return [h for v in value for h in _handles_in(v)]
    if isinstance(value, dict):
        return [h for v in value.values() for h in _handles_in(v)]
    return []


def _shift_blobs(tree, offset: int):
    if offset == 0:
        return tree
    if isinstance(tree, list):
        return [_shift_blobs(v, offset) for v in tree]
    if isinstance(tree, dict):
        out = {k: _shift_blobs(v, offset) for k, v in tree.items()}
        for key in ("__tensor__", "__ndarray__"):
            if key in tree:
                out[key] = tree[key] + offset
        return out
    return tree


@dataclass
class Function:
    """A notebook function, called as ``sub.name(*args, **kwargs)``."""

    namespace: Namespace
    name: str

    def __call__(self, *args, **kwargs):
        return self.namespace.call(self.name, *args, **kwargs)


class Handle:
    """An object that lives with the notebook's code (a model, a data loader, ...)."""

    def __init__(self, namespace: Namespace, ref: HandleRef, generation: int = 0):
        self.namespace = namespace
        self.ref = ref
        self.generation = generation

    @property
    def type_name(self) -> str:
        return self.ref.type_name

    def __repr__(self) -> str:
        return f"<{self.namespace.label} object {self.ref.type_name}: {self.ref.repr[:80]}>"

    def __call__(self, *args, forbid=(), timeout=None, **kwargs):
        return self.namespace._request("call", f"{self.type_name}(...)", timeout=timeout,
                                       target={"__handle__": self.ref.id}, args=list(args), kwargs=dict(kwargs),
                                       forbid=list(forbid))

    def method(self, name: str, *args, forbid=(), timeout=None, **kwargs):
        return self.namespace._request("call", f"{self.type_name}.{name}()", timeout=timeout,
                                       target={"__handle__": self.ref.id, "method": name},
                                       args=list(args), kwargs=dict(kwargs), forbid=list(forbid))

    def attr(self, name: str):
        if not name.isidentifier():
            raise ValueError(f"bad attribute name {name!r}")
        return self.namespace.eval(f"__obj.{name}", __obj=self)

    def describe(self) -> dict:
        return self.namespace.describe(self)

    # Handles are opaque: comparing or hashing them by value would mean running the other side's code.
    def __eq__(self, other):
        return NotImplemented

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        return True


class InProcessNamespace(Namespace):
    """A namespace in this process (the reference, or a notebook kernel's own globals).

    Values still go through the wire codec, so checks see exactly what they would see from
    the sandbox.  There is no isolation and no timeout: use it for trusted code only, or in
    nbgrader's in-kernel mode where that is the known limit.
    """

    def __init__(self, namespace: dict, label: str = "reference", default_timeout: float = 60.0,
                 enforce_timeout: bool = False):
        super().__init__(label=label, default_timeout=default_timeout, calls=[], _hung=set())
        self.executor = Executor(namespace)
        self.enforce_timeout = enforce_timeout

    def close(self) -> None:
        """Drop what the checks left here (handles, the grader's own names): in a notebook kernel they would
        otherwise stay alive with the kernel, a model per handle (a test cell of 06 kept four AlexNets)."""
        self.executor = Executor(self.executor.namespace)

    def _roundtrip(self, request, blobs, timeout, max_reply=None):
        if not (self.enforce_timeout and _can_use_alarm()):
            return self.executor.handle(request, blobs)
        # In a notebook kernel there is no process to kill: a SIGALRM stops a runaway call
        # (pure-Python loops included), unless the code itself blocks or replaces the signal.
        def on_alarm(signum, frame):
            raise CallTimeout(f"did not finish within {timeout:g} s")

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return self.executor.handle(request, blobs)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


class CallTimeout(Exception):
    """Raised inside an in-process call that ran past its limit."""


def _can_use_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
