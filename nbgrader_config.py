"""nbgrader configuration: the repository is the course directory.

solutions/<id>/    nbgrader's source folder (reference solutions with hidden tests)
assignments/<id>/  nbgrader's release folder (what students get; committed)
submitted/, autograded/, feedback/ and gradebook.db are created by the instructor's
workflow and git-ignored.  Set CNN_GRADEBOOK_URL to any SQLAlchemy URL (PostgreSQL, say)
to keep the gradebook elsewhere.

`nbgrader autograde` grades with the course's sandboxed engine (autograder/integrations/nbgrader_autograde.py):
no student code runs in nbgrader's process or in a kernel that also runs checks, and the points
per test cell are those of `python -m autograder grade`.  nbgrader still does the rest: the
exchange (release, fetch, submit, collect), the gradebook, the formgrader and the feedback.

Release order: 01, 02, ... 06, each after the previous one's deadline.  In particular
05_activation_stats must be released only after 04_cnn's deadline: its locked setup cell
contains 04's simple_cnn and fit (a reference answer to 04).
"""

import os
import warnings

from sqlalchemy.exc import SAWarning

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

_root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.root = _root
c.CourseDirectory.course_id = "cnn-course"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.db_url = os.environ.get("CNN_GRADEBOOK_URL", "sqlite:///" + os.path.join(_root, "gradebook.db"))
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".autograder_cache"]

# nbgrader 0.9.6 with SQLAlchemy 2 warns "Object of type <SubmittedAssignment> not in session, add
# operation along ... will not proceed" on every autograde: harmless (the rows are added explicitly),
# and only that warning is silenced.
warnings.filterwarnings("ignore", message=r"Object of type <\w+> not in session", category=SAWarning)

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Grading: nbgrader's Execute (the student's notebook in a kernel, hidden tests included) is replaced
# by the sandboxed engine; nbgrader's other autograde steps stay.  A test cell's value is the points
# the engine gave it, which SaveAutoGrades records as partial credit.  Limits (time, memory) come
# from autograder/checks/a<id>/grading.json, as for `python -m autograder grade`.
from nbconvert.preprocessors import ClearMetadataPreprocessor  # noqa: E402
from nbgrader.preprocessors import (  # noqa: E402
    AssignLatePenalties,
    CheckCellMetadata,
    IgnorePattern,
    LimitOutput,
    SaveAutoGrades,
)

from autograder.integrations.nbgrader_autograde import SandboxedExecute  # noqa: E402

c.Autograde.autograde_preprocessors = [SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                       SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
# The course the engine grades against: this folder (or $CNN_COURSE_ROOT), as `python -m autograder grade`.
c.SandboxedExecute.course_root = os.environ.get("CNN_COURSE_ROOT") or _root
# Without this configuration (nbgrader's stock Execute) the hidden blocks of the test cells fail closed:
# each test cell raises a one-line error that points here, and scores 0.  If Execute is ever put back,
# a student-added tag must not skip a locked test cell (nbgrader's default tag is public knowledge).
c.Execute.skip_cells_with_tag = "grader-skip-" + os.environ.get("CNN_SKIP_TAG_SECRET", "6f1d0c2e")
# A deleted test cell is restored rather than left for manual grading.
c.OverwriteCells.add_missing_cells = True

# Feedback goes to students: leave the hidden tests' code out of it (their summary line stays).
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import ClearHiddenTests, GetGrades  # noqa: E402

c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
