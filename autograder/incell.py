"""The import line of every released notebook (``from autograder.incell import Checker``).

Notebooks already in students' hands keep this path; the code lives in
:mod:`autograder.integrations.incell`.
"""

from autograder.integrations.incell import CellScore, Checker, HiddenChecksNotRunHere  # noqa: F401
