"""Writing a file so that its final name only ever holds a complete, checked file.

One implementation for the whole repository: :mod:`autograder.files` (the standard library only;
importing it loads nothing else of the autograder).  A fetch writes under a temporary name beside
the destination and moves it onto the final name only when the block finishes without an
exception, so an interrupted or failed fetch leaves neither a half file nor a stray temporary one.
"""

from autograder.files import TEMP_SUFFIX, atomic_target

__all__ = ["TEMP_SUFFIX", "atomic_target"]
