"""The course's autograder.

Student code runs in a sandboxed worker process (:mod:`autograder.sandbox`); checks
(:mod:`autograder.checks`, written as pytest tests) run in the trusted grader process and
only ever see plain data decoded from the worker, never student objects.

This module stays import-light: the sandboxed worker imports parts of this package.
"""

import sys

__version__ = "0.1.0"

# nbformat validates with jsonschema, whose format checkers import ``rfc3987_syntax`` when it is
# installed (JupyterLab's dependencies install it); that import compiles about 35 Lark parsers:
# 0.9-1.9 s in every process that reads a notebook (measured here; jsonschema issue #1428). No schema
# the grader validates uses the "iri" formats it serves, so the grader's processes mark it absent
# (jsonschema then skips those two checkers) unless something imported it already.
sys.modules.setdefault("rfc3987_syntax", None)
