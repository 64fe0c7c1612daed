"""The course's autograder.

Student code runs in a sandboxed worker process (:mod:`autograder.sandbox`); checks
(:mod:`autograder.checks`, written as pytest tests) run in the trusted grader process and
only ever see plain data decoded from the worker, never student objects.

This module stays import-light: the sandboxed worker imports parts of this package.
"""

__version__ = "0.1.0"
