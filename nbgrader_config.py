"""nbgrader configuration: the repository is the course directory.

solutions/<id>/    nbgrader's source folder (reference solutions with hidden tests)
assignments/<id>/  nbgrader's release folder (what students get; committed)
submitted/, autograded/, feedback/ and gradebook.db are created by the instructor's
workflow and git-ignored.  Set CNN_GRADEBOOK_URL to any SQLAlchemy URL (PostgreSQL, say)
to keep the gradebook elsewhere.
"""

import os

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

_root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.root = _root
c.CourseDirectory.course_id = "cnn-course"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.db_url = os.environ.get("CNN_GRADEBOOK_URL", "sqlite:///" + os.path.join(_root, "gradebook.db"))
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".autograder_cache"]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Grading: a test cell's value is its partial credit (see autograder/incell.py).
c.Execute.timeout = 600
c.Execute.interrupt_on_timeout = True
# A student-added tag must not skip a locked test cell (nbgrader's default tag is public knowledge).
c.Execute.skip_cells_with_tag = "grader-skip-" + os.environ.get("CNN_SKIP_TAG_SECRET", "6f1d0c2e")
# A deleted test cell is restored rather than left for manual grading.
c.OverwriteCells.add_missing_cells = True

# Feedback goes to students: leave the hidden tests' code out of it (their summary line stays).
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import ClearHiddenTests, GetGrades  # noqa: E402

c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
