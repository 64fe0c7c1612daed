"""The grading pipeline: grade one notebook, run the checks, load the reference, write reports, grade a
class.  Imports the check authors' API and the submission side; the CLI and integrations import it."""
