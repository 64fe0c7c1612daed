"""What a graded function can reach, read from the submitted source in the grader's process.

The worker's own interception of forbidden APIs (``sandbox/forbid.py``) runs where the student's
code runs, so in principle it can be dismantled.  This check cannot: it parses the notebook's
cells here (nothing is executed), follows the graded function to every top-level definition it
refers to (helpers, classes, aliases, imports), and reports

* **forbidden uses**: names or attributes of a forbidden group (``F.conv2d``, ``nn.Conv2d``,
  ``from torch.nn.functional import conv2d``, ``getattr(F, "conv2d")``, ``torch.__dict__["conv2d"]``),
  the escape hatches that reach the dispatcher or switch interception off (``torch.ops``,
  ``torch._C``, ``DisableTorchFunction``), and threads or processes started by the function;
* **hidden calls** (flagged for the instructor, not failed): ``exec``/``eval``/``compile``,
  ``getattr`` on a computed name, ``globals()``/``builtins``/``sys.modules``, names that no
  cell defines, and IPython hooks that could rewrite later cells.

It is exact for what it can see and says so when it cannot see (a cell it cannot parse).
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable
from dataclasses import dataclass, field

from autograder.sandbox.forbid import FORBIDDEN_GROUPS

#: Names that only the static check knows per group (modules, classes, numpy/scipy equivalents).
EXTRA_NAMES: dict[str, tuple[str, ...]] = {
    "conv": ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "LazyConv1d",
             "LazyConv2d", "LazyConv3d", "LazyConvTranspose1d", "LazyConvTranspose2d", "LazyConvTranspose3d",
             "convolve", "correlate", "convolve2d", "correlate2d", "fftconvolve", "oaconvolve"),
    "unfold": ("Unfold",),
    "max_pool": ("MaxPool1d", "MaxPool2d", "MaxPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
                 "AdaptiveMaxPool3d", "FractionalMaxPool2d", "FractionalMaxPool3d", "maximum_filter"),
    "windows": ("as_strided", "sliding_window_view", "stride_tricks"),
}
#: Reaching the dispatcher directly, or switching the interception off: forbidden with any group.
ESCAPES = ("ops", "_C", "DisableTorchFunction", "DisableTorchFunctionSubclass", "_disabled_torch_function_impl",
           "_dispatch", "_ops", "library", "TorchFunctionMode", "TorchDispatchMode", "_python_dispatch",
           "autograder")
#: Starting threads or processes inside a graded function (the interception is per thread).
CONCURRENCY = ("threading", "_thread", "Thread", "start_new_thread", "concurrent", "ThreadPoolExecutor",
               "ProcessPoolExecutor", "multiprocessing", "subprocess", "fork", "Popen", "system")
#: Touching the grader's worker (to switch its interception off) anywhere in the notebook.
TAMPER = ("sandbox", "executor", "forbid", "forbidden", "Executor", "_ForbidMode", "_dispatcher_guard")
#: Code that hides what it calls: reported to the instructor.
DYNAMIC = ("exec", "eval", "compile", "__import__", "importlib", "globals", "vars", "builtins", "__builtins__",
           "get_ipython", "input_transformers_cleanup", "input_transformers_post", "ast_transformers",
           "register_magic_function", "__getattribute__", "__dict__")
#: Of those, the ones that count as attributes too (``obj.__dict__``, ``shell.input_transformers_cleanup``).
DYNAMIC_ATTRIBUTES = ("__dict__", "__getattribute__", "input_transformers_cleanup", "input_transformers_post",
                      "ast_transformers", "register_magic_function")
ATTR_FUNCTIONS = ("getattr", "setattr", "hasattr", "delattr", "attrgetter", "methodcaller")
KNOWN_GLOBALS = set(dir(builtins)) | {"get_ipython", "In", "Out", "display", "exit", "quit", "__name__", "__file__",
                                      "_", "__", "___"}


def group_names(group: str) -> set[str]:
    torch_names, aten_names, _ = FORBIDDEN_GROUPS.get(group, ((), (), ""))
    return set(torch_names) | set(aten_names) | set(EXTRA_NAMES.get(group, ()))


@dataclass
class Findings:
    forbidden: list[tuple[str, str]] = field(default_factory=list)   # (group, where)
    hidden: list[str] = field(default_factory=list)                  # what hides a call, for the instructor
    call_sites: dict[str, int] = field(default_factory=dict)         # group -> number of call sites
    in_loop: dict[str, bool] = field(default_factory=dict)           # group -> a call site inside a loop
    unparsed: list[str] = field(default_factory=list)                # cells that could not be read


def _parse(source: str) -> ast.Module | None:
    if any(mark in source for mark in ("%", "!", "?")):  # IPython syntax (magics, shell, help): made Python first
        try:
            from IPython.core.inputtransformer2 import TransformerManager

            source = TransformerManager().transform_cell(source)
        except Exception:  # noqa: BLE001 - fall back to the raw source
            pass
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _bound_names(node: ast.AST) -> set[str]:
    """Names a top-level statement binds (defs, classes, assignments, imports, loop and with targets)."""
    names: set[str] = set()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        names.add(node.name)
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        for alias in node.names:
            names.add((alias.asname or alias.name).split(".")[0])
    else:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                names.add(sub.id)
            elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(sub.name)
    return names


def _local_names(fn: ast.AST) -> set[str]:
    names: set[str] = set()
    for sub in ast.walk(fn):
        if isinstance(sub, ast.arg):
            names.add(sub.arg)
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            names.add(sub.id)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and sub is not fn:
            names.add(sub.name)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in sub.names)
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            names.add(sub.name)
    return names


def _module_tampering(tree: ast.AST):
    """Reaching torch's internals, or rebinding attributes of imported modules (``torch.helper = F.conv2d``)."""
    modules = {(a.asname or a.name).split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for a in node.names}
    modules |= {"torch", "F", "nn", "np", "numpy", "builtins"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("_C", "ops", "library", "_dispatch", "_python_dispatch") \
                and getattr(node.value, "id", "") == "torch":
            yield f"'torch.{node.attr}'"
        elif isinstance(node, ast.Name) and node.id in ("DisableTorchFunction", "DisableTorchFunctionSubclass"):
            yield f"'{node.id}'"
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store) \
                            and getattr(sub.value, "id", "") in modules:
                        yield f"an assignment to '{sub.value.id}.{sub.attr}'"
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setattr" and node.args \
                and getattr(node.args[0], "id", "") in modules:
            yield f"setattr on '{node.args[0].id}'"


def _words_of(tree: ast.AST):
    for sub in ast.walk(tree):
        if isinstance(sub, ast.Name):
            yield sub.id
        elif isinstance(sub, ast.Attribute):
            yield sub.attr
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            for alias in sub.names:
                yield from alias.name.split(".")
            if isinstance(sub, ast.ImportFrom) and sub.module:
                yield from sub.module.split(".")


def _aliases(nodes: list[tuple[str, ast.AST]], groups: dict[str, set[str]]) -> dict[str, set[str]]:
    """Top-level names that stand for a group's function (``from F import conv2d as c``; ``c2 = F.conv2d``)."""
    out: dict[str, set[str]] = {g: set() for g in groups}
    changed = True
    while changed:
        changed = False
        for _, stmt in nodes:
            pairs: list[tuple[str, str]] = []
            if isinstance(stmt, ast.ImportFrom):
                pairs = [(a.asname or a.name, a.name) for a in stmt.names]
            elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                value = stmt.value
                word = value.attr if isinstance(value, ast.Attribute) else getattr(value, "id", None)
                if word:
                    pairs = [(stmt.targets[0].id, word)]
            for new, old in pairs:
                for group, names in groups.items():
                    if (old in names or old in out[group]) and new not in out[group] and new not in names:
                        out[group].add(new)
                        changed = True
    return out


def _loops_of(tree: ast.AST) -> set[int]:
    """ids of nodes that lie inside a loop or a comprehension."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp,
                             ast.GeneratorExp)):
            for sub in ast.walk(node):
                if sub is not node:
                    inside.add(id(sub))
    return inside


@dataclass
class Index:
    """The notebook's top-level definitions, parsed once (a notebook may have 200,000 cells)."""

    definitions: dict[str, list[tuple[str, ast.AST]]] = field(default_factory=dict)
    tamper: list[str] = field(default_factory=list)   # where a cell touches the grader's worker
    unparsed: list[str] = field(default_factory=list)


def build_index(sources: Iterable[tuple[str, str]]) -> Index:
    index = Index()
    for label, source in sources:
        tree = _parse(source)
        if tree is None:
            index.unparsed.append(label)
            continue
        index.tamper += [f"'{word}' in {label}" for word in _words_of(tree) if word in TAMPER]
        index.tamper += [f"{what} in {label}" for what in _module_tampering(tree)]
        for stmt in tree.body:
            for bound in _bound_names(stmt):
                index.definitions.setdefault(bound, []).append((label, stmt))
    return index


def analyse(sources: Iterable[tuple[str, str]] | Index, name: str, groups: list[str],
            names: dict[str, set[str]] | None = None) -> Findings:
    """Findings for function ``name`` given the notebook's cells as (label, source) in run order.

    ``names`` gives the name sets of the groups explicitly (to count call sites of any functions);
    by default a group's names are those of :data:`FORBIDDEN_GROUPS` and :data:`EXTRA_NAMES`.
    """
    index = sources if isinstance(sources, Index) else build_index(sources)
    found = Findings(unparsed=list(index.unparsed))
    definitions = index.definitions
    if groups:
        found.forbidden += [(groups[0], f"{where}, which tampers with the grader's worker") for where in index.tamper]
    if name not in definitions:
        return found
    star_import = "*" in definitions  # names from `from x import *` cannot be told apart from undefined ones
    forbidden = names if names is not None else {g: group_names(g) for g in groups}
    todo = [name]
    seen: set[str] = set()
    nodes: list[tuple[str, ast.AST]] = []
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for label, stmt in definitions.get(current, []):
            nodes.append((label, stmt))
            local = _local_names(stmt) if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                             ast.ClassDef)) else set()
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and sub.id not in seen \
                        and sub.id not in local:
                    if sub.id in definitions:
                        todo.append(sub.id)
                    elif sub.id not in KNOWN_GLOBALS and not star_import:
                        found.hidden.append(f"'{current}' uses the name '{sub.id}', which no cell defines")
    aliases = _aliases(nodes, forbidden)
    for label, stmt in nodes:
        loops = _loops_of(stmt)
        for sub in ast.walk(stmt):
            words: list[str] = []
            dynamic = False
            if isinstance(sub, ast.Name):
                words, dynamic = [sub.id], True
            elif isinstance(sub, ast.Attribute):
                words, dynamic = [sub.attr], sub.attr in DYNAMIC_ATTRIBUTES
            elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                words = [part for a in sub.names for part in a.name.split(".")]
                words += (sub.module or "").split(".") if isinstance(sub, ast.ImportFrom) else []
                dynamic = True
            elif isinstance(sub, ast.Constant) and isinstance(sub.value, str) and len(sub.value) < 60:
                words = [sub.value]
            for word in words:
                where = f"'{word}' in {label}"
                for group, names in forbidden.items():
                    if word in names:
                        found.forbidden.append((group, where))
                if word in ESCAPES and groups:
                    found.forbidden.append((groups[0], f"{where}, which reaches past the grader's interception"))
                if word in CONCURRENCY and groups:
                    found.forbidden.append((groups[0], f"{where}: a graded function here may not start threads "
                                                       f"or processes"))
                if word in DYNAMIC and dynamic:
                    found.hidden.append(f"{where} can hide what the code calls")
            if isinstance(sub, ast.Call):
                callee = sub.func.attr if isinstance(sub.func, ast.Attribute) else getattr(sub.func, "id", "")
                for group, names in forbidden.items():
                    if callee in names or callee in aliases.get(group, ()):
                        found.call_sites[group] = found.call_sites.get(group, 0) + 1
                        found.in_loop[group] = found.in_loop.get(group, False) or id(sub) in loops
                if callee in ATTR_FUNCTIONS and len(sub.args) >= 2 and not (
                        isinstance(sub.args[1], ast.Constant) and isinstance(sub.args[1].value, str)):
                    found.hidden.append(f"'{callee}' with a computed name in {label} can hide what the code calls")
            if isinstance(sub, ast.Attribute) and sub.attr == "modules" and getattr(sub.value, "id", "") == "sys":
                found.hidden.append(f"'sys.modules' in {label} can hide what the code calls")
            if isinstance(sub, ast.Subscript) and isinstance(sub.value, ast.Attribute) and sub.value.attr == "__dict__":
                found.hidden.append(f"'__dict__[...]' in {label} can hide what the code calls")
    found.hidden = list(dict.fromkeys(found.hidden))[:20]
    found.forbidden = list(dict.fromkeys(found.forbidden))
    return found


def call_sites(sources: Iterable[tuple[str, str]] | Index, name: str, callees: set[str]) -> tuple[int, bool]:
    """(call sites of any of ``callees`` reachable from ``name``, whether one lies inside a loop)."""
    found = analyse(sources, name, [], names={"calls": set(callees)})
    return found.call_sites.get("calls", 0), found.in_loop.get("calls", False)
