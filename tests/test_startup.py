"""A grading process starts quickly: reading a notebook does not pay for rfc3987_syntax's parsers."""

import subprocess
import sys

PROBE = """
import sys, time
start = time.perf_counter()
import autograder.course, nbformat
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
nbformat.validate(nb)
print(sys.modules.get("rfc3987_syntax") is None, round(time.perf_counter() - start, 2))
"""


def test_reading_notebooks_skips_the_iri_grammar_compilation():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True", "rfc3987_syntax was imported: each grading process pays ~1-2 s for it"
