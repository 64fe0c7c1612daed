"""Grader code that builds the same object beside the notebook and in the grader's own process.

Checks often need one seeded model (or data) on three sides: the submission (``sub``), the
reference (``ref``) and, for public checks, an oracle in the grader itself.  The code is written
once, as a source string, and run on each side:

* :func:`built_in` runs it with ``ns.exec`` in the check's scope and returns a handle to ``name``;
* :func:`run_here` runs it in a fresh dict of the grader's own and returns that dict
  (:func:`built_here` returns ``name`` from it).

Names the source defines stay in the check's scope (``Namespace.begin_scope``): they need no prefix.
"""

from __future__ import annotations


def built_in(ns, source: str, name: str, **bindings):
    """A handle to ``name`` after running the grader's ``source`` next to the notebook's names in ``ns``."""
    ns.exec(source, **bindings)
    return ns.eval(name)


def run_here(source: str, filename: str = "<grader>") -> dict:
    """The names ``source`` defines when run in the grader's own process (an oracle for public checks)."""
    scope: dict = {}
    exec(compile(source, filename, "exec"), scope)  # noqa: S102 - the checks' own code
    return scope


def built_here(source: str, name: str, filename: str = "<grader>"):
    """``name`` after running the same ``source`` in the grader's own process."""
    return run_here(source, filename)[name]
