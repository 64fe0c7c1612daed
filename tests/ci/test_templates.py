"""The CI templates in ci_templates/github: their structure, and the grading command run for real."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autograder.assignments import Course

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "ci_templates" / "github"
FIXTURE = REPO / "tests" / "engine" / "fixture_course"


def load(name: str) -> dict:
    return yaml.safe_load((TEMPLATES / name).read_text())


def triggers(workflow: dict) -> dict:
    # YAML 1.1 reads the key `on` as True.
    return workflow.get("on", workflow.get(True))


def steps_using(steps: list[dict], action: str) -> list[dict]:
    return [s for s in steps if s.get("uses", "").split("@")[0] == action]


def grade_step(workflow: dict) -> dict:
    steps = workflow["jobs"]["grade"]["steps"]
    return next(s for s in steps if s.get("id") == "grade")


def test_autograde_workflow_structure():
    wf = load("autograde.yml")
    assert "push" in triggers(wf)
    steps = wf["jobs"]["grade"]["steps"]
    assert steps_using(steps, "actions/checkout")
    setup = steps_using(steps, "actions/setup-python")[0]["with"]
    assert setup["cache"] == "pip" and str(setup["python-version"]) == "3.11"
    cache = steps_using(steps, "actions/cache")[0]["with"]
    assert cache["path"] == "data" and "hashFiles('data_scripts/" in cache["key"]
    runs = [s.get("run", "") for s in steps]
    fetch = next(i for i, r in enumerate(runs) if "python -m data_scripts.fetch fashion_mnist" in r)
    grade = grade_step(wf)
    assert steps.index(grade) > fetch > steps.index(steps_using(steps, "actions/cache")[0])
    for flag in ("--results results.json", "--junit junit.xml", "--feedback feedback.md"):
        assert flag in grade["run"]
    assert grade["env"]["SUBMISSION"] == "assignments"
    assert "continue-on-error" not in grade     # the job fails when grading itself fails
    upload = steps_using(steps, "actions/upload-artifact")[0]
    assert upload["if"] == "always()"
    assert {"results.json", "junit.xml"} <= set(upload["with"]["path"].split())
    summary = next(s for s in steps if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
    assert 'cat feedback.md >> "$GITHUB_STEP_SUMMARY"' in summary["run"] and summary["if"] == "always()"


def test_classroom_workflow_has_one_grader_step_per_assignment():
    wf = load("classroom.yml")
    (job,) = wf["jobs"].values()
    steps = job["steps"]
    graders = steps_using(steps, "education/autograding-command-grader")
    ids = Course.at(REPO).assignment_ids()
    names = [s["with"]["test-name"] for s in graders]
    # Every released assignment has its step, in course order (the template may already list one
    # whose release has not landed yet).
    assert [n for n in names if n in ids] == ids
    assert names == sorted(names)
    for step in graders:
        w = step["with"]
        aid = w["test-name"]
        assert set(w) >= {"test-name", "setup-command", "command", "timeout", "max-score"}
        assert w["command"] == f"python -m autograder check assignments/{aid}/{aid}.ipynb"
        assert 0 < int(w["timeout"]) <= 60 and int(w["max-score"]) > 0
    reporter = steps_using(steps, "education/autograding-grading-reporter")
    assert len(reporter) == 1 and steps[-1] is reporter[0]
    runners = reporter[0]["with"]["runners"].split(",")
    assert runners == [s["id"] for s in graders]
    for rid in runners:
        assert reporter[0]["env"][f"{rid.upper()}_RESULTS"] == f"${{{{ steps.{rid}.outputs.result }}}}"


@pytest.mark.slow
def test_the_workflow_grading_command_runs_verbatim_on_a_submission(tmp_path):
    """Run the Grade step's exact `run:` line (shell) on a submission of the fixture course."""
    import nbformat

    from autograder.authoring import fill_answers
    from tests.engine.conftest import CORRECT

    submission = tmp_path / "repo" / "assignments" / "00_fixture" / "00_fixture.ipynb"
    submission.parent.mkdir(parents=True)
    release = nbformat.read(FIXTURE / "assignments" / "00_fixture" / "00_fixture.ipynb", as_version=4)
    nbformat.write(fill_answers(release, {**CORRECT, "double": "def double(x):\n    return x * 3"}), submission)
    workdir = tmp_path / "repo"
    step = grade_step(load("autograde.yml"))
    env = {**os.environ, **step["env"], "SUBMISSION": str(workdir / "assignments"),
           "CNN_COURSE_ROOT": str(FIXTURE), "CNN_COURSE_CHECKS": str(FIXTURE / "checks"),
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    assert shutil.which("python", path=env["PATH"]) is not None
    proc = subprocess.run(step["run"], shell=True, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((workdir / "results.json").read_text())
    assert results["score"] == 3 and results["max_score"] == 7
    assert results["tests"] and all({"name", "score", "max_score"} <= set(t) for t in results["tests"])
    assert "<testsuite" in (workdir / "junit.xml").read_text()
    assert "Score: 3 / 7" in (workdir / "feedback.md").read_text()
