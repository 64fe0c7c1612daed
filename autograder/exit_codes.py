"""The exit codes of every command (``grade``, ``check``, ``grade-class``, ``export``), defined once.

CI scripts and Gradescope's ``run_autograder`` read them: a grade (whatever the score) is 0, a
self-check with failing checks 1, bad usage 2, and 3 when grading itself could not run or a
check or the reference failed (the grader's problem, for the instructor).
"""

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    FAILED_CHECKS = 1
    USAGE = 2
    GRADER = 3


EXIT_OK, EXIT_FAILED_CHECKS, EXIT_USAGE, EXIT_GRADER = Exit.OK, Exit.FAILED_CHECKS, Exit.USAGE, Exit.GRADER
