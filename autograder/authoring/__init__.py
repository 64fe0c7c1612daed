"""For check authors: the ``@check`` API, comparisons with messages that teach, the hint policy, and
building nbgrader notebooks from Python.  Imports the submission side, never the grading pipeline."""
