"""The package's layers import downwards only: sandbox <- base <- submission <- authoring <- grading <- cli/integrations.

Every ``import`` counts, including the lazy ones inside functions: a layer that reaches upwards
even once makes the layers below impossible to read, test or ship (the student export, the
sandboxed worker) on their own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "autograder"

#: rank of each layer; a module may import modules of its own rank or lower.
LAYERS = {
    "sandbox": 0,
    "base": 1,          # course, notebooks, records, textsafe, files, exit codes: the standard library only
    "submission": 2,
    "authoring": 3,
    "checks": 3,        # written with the authoring API, run by the grading pipeline
    "grading": 4,
    "integrations": 5,
    "cli": 5,
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == "autograder", module
    if len(parts) == 1:
        return "base"
    head = parts[1]
    if head in LAYERS:
        return head
    if head in ("__main__", "incell"):  # the entry point and the notebooks' import line
        return "cli"
    return "base"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    mod = module_name(path)
    package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
    return [(line, t) for line, t in found if t == "autograder" or t.startswith("autograder.")]


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_has_a_layer():
    assert MODULES
    for path in MODULES:
        assert layer_of(module_name(path)) in LAYERS


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    mine = layer_of(module_name(path))
    upward = [f"line {line}: {target} ({layer_of(target)})" for line, target in imports_of(path)
              if LAYERS[layer_of(target)] > LAYERS[mine]]
    assert not upward, f"{path.relative_to(PACKAGE)} ({mine}) imports upwards: " + "; ".join(upward)


def test_the_sandbox_imports_only_itself_and_the_standard_library():
    for path in (PACKAGE / "sandbox").rglob("*.py"):
        outside = [t for _, t in imports_of(path) if not t.startswith("autograder.sandbox")]
        assert not outside, f"{path.name} imports {outside}"


def test_the_package_never_imports_the_tests():
    for path in MODULES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n == "tests" or n.startswith("tests.")], path
        assert "tests/submissions" not in path.read_text(encoding="utf-8"), path


def test_base_modules_use_the_standard_library_only():
    """What every layer imports (course, notebooks, records, ...) must not pull in torch or pytest."""
    heavy = ("torch", "numpy", "pytest", "hypothesis", "nbgrader")
    for path in MODULES:
        name = module_name(path)
        if layer_of(name) != "base" or name == "autograder":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        tops = [a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names]
        tops += [(n.module or "").split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and not n.level]
        assert not set(tops) & set(heavy), f"{name} imports {set(tops) & set(heavy)} at module level"
