"""The CI templates in ci_templates/github: their structure, and the grading command run for real."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autograder.course import Course

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


def check_classroom_workflow(wf: dict, ids: list[str], exact: bool = False) -> None:
    """A GitHub Classroom workflow: one command-grader step per assignment (its public checks), then the reporter.

    Also used for the workflow of the student repository (tests/export): there ``exact`` (no other step).
    """
    (job,) = wf["jobs"].values()
    steps = job["steps"]
    graders = steps_using(steps, "education/autograding-command-grader")
    names = [s["with"]["test-name"] for s in graders]
    # Every released assignment has its step, in course order (the template may already list one
    # whose release has not landed yet).
    assert [n for n in names if n in ids] == ids
    if exact:
        assert names == ids
    assert names == sorted(names)
    for step in graders:
        w = step["with"]
        aid = w["test-name"]
        assert set(w) >= {"test-name", "setup-command", "command", "timeout", "max-score"}
        assert w["command"] == f"python -m autograder check assignments/{aid}/{aid}.ipynb"
        assert w["setup-command"].startswith("python -m data_scripts.fetch fashion_mnist")
        assert 0 < int(w["timeout"]) <= 60 and int(w["max-score"]) > 0
    reporter = steps_using(steps, "education/autograding-grading-reporter")
    assert len(reporter) == 1 and steps[-1] is reporter[0]
    runners = reporter[0]["with"]["runners"].split(",")
    assert runners == [s["id"] for s in graders]
    for rid in runners:
        assert reporter[0]["env"][f"{rid.upper()}_RESULTS"] == f"${{{{ steps.{rid}.outputs.result }}}}"
    assert "python -m pip install -e ." in [s.get("run") for s in steps]


def test_classroom_workflow_has_one_grader_step_per_assignment():
    check_classroom_workflow(load("classroom.yml"), Course.at(REPO).assignment_ids())


# -- grading against a private grading repository -------------------------------------------------
PRIVATE = "grade-private.yml"


def test_private_grader_workflow_checks_out_the_grader_with_a_read_token():
    wf = load(PRIVATE)
    assert "push" in triggers(wf) and wf["permissions"] == {"contents": "read"}
    steps = wf["jobs"]["grade"]["steps"]
    checkouts = steps_using(steps, "actions/checkout")
    assert len(checkouts) == 2
    student, grader = checkouts
    assert "repository" not in student.get("with", {})
    w = grader["with"]
    assert w["repository"] == "${{ vars.COURSE_GRADER_REPOSITORY }}"
    assert w["token"] == "${{ secrets.COURSE_GRADER_TOKEN }}"
    assert w["path"] == ".grader"
    assert w["persist-credentials"] is False          # the token is not left in .grader/.git/config
    # The token appears in that step only.
    assert [s for s in steps if "secrets." in json.dumps(s)] == [grader]
    # The grader is installed from its own checkout; the student's package is never installed or imported.
    runs = [s.get("run", "") for s in steps]
    assert any("pip install -e ./.grader" in r for r in runs)
    assert not any(re.search(r"pip install (-e )?\.(\s|$)", r) for r in runs)
    grade = grade_step(wf)
    assert grade["working-directory"] == ".grader"    # `python -m autograder` is the grader's, not the student's
    assert grade["env"]["SUBMISSION"] == "${{ github.workspace }}/assignments"
    assert "continue-on-error" not in grade
    assert grade["run"].startswith('python -m autograder grade "$SUBMISSION"')
    for flag in ('--results "$RUNNER_TEMP/results.json"', '--feedback "$RUNNER_TEMP/feedback.md"'):
        assert flag in grade["run"]


def test_private_grader_workflow_publishes_feedback_only_and_commits_nothing():
    wf = load(PRIVATE)
    steps = wf["jobs"]["grade"]["steps"]
    text = (TEMPLATES / PRIVATE).read_text()
    assert "git push" not in text and "git commit" not in text and "contents: write" not in text
    uploads = steps_using(steps, "actions/upload-artifact")
    assert len(uploads) == 1
    assert uploads[0]["with"]["path"].strip() == "${{ runner.temp }}/feedback.md"
    assert uploads[0]["if"] == "always()"
    summary = next(s for s in steps if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
    assert 'cat "$RUNNER_TEMP/feedback.md" >> "$GITHUB_STEP_SUMMARY"' in summary["run"] and summary["if"] == "always()"
    score = next(s for s in steps if s.get("id") == "score")
    assert "GITHUB_OUTPUT" in score["run"] and "::notice" in score["run"]
    # The grader's checkout is removed before anything else can pick it up.
    cleanup = steps[-1]
    assert cleanup["if"] == "always()" and "rm -rf .grader" in cleanup["run"]
    # Everything that reads the grader's files runs after the student's checkout, never before.
    assert steps.index(steps_using(steps, "actions/checkout")[0]) == 0


@pytest.mark.slow
def test_the_private_grader_workflow_grades_verbatim(tmp_path):
    """The Grade and Score steps' exact `run:` lines on a blank release, with this repository as the grader."""
    wf = load(PRIVATE)
    steps = wf["jobs"]["grade"]["steps"]
    workspace, runner_temp = tmp_path / "student", tmp_path / "runner_temp"
    aid = Course.at(REPO).assignment_ids()[0]
    (workspace / "assignments" / aid).mkdir(parents=True)
    runner_temp.mkdir()
    shutil.copy(REPO / "assignments" / aid / f"{aid}.ipynb", workspace / "assignments" / aid)
    output = tmp_path / "github_output"
    env = {k: v for k, v in os.environ.items() if k not in ("CNN_COURSE_ROOT", "CNN_COURSE_CHECKS", "PYTHONPATH")}
    env.update({"RUNNER_TEMP": str(runner_temp), "GITHUB_OUTPUT": str(output),
                "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")})
    grade = grade_step(wf)
    step_env = {**env, **{k: v.replace("${{ github.workspace }}", str(workspace)) for k, v in grade["env"].items()}}
    # working-directory: .grader, the grading repository's checkout; here, this repository.
    proc = subprocess.run(grade["run"], shell=True, cwd=REPO, env=step_env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((runner_temp / "results.json").read_text())
    assert results["score"] == 0 and results["max_score"] > 0
    assert "Score: 0 /" in (runner_temp / "feedback.md").read_text()
    assert not list(workspace.rglob("*.json")) and not list(workspace.rglob("*.md"))  # nothing lands beside the work
    score = next(s for s in steps if s.get("id") == "score")
    proc = subprocess.run(score["run"], shell=True, cwd=workspace, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"::notice title=Score::0 / {results['max_score']:g}" in proc.stdout
    assert f"score=0/{results['max_score']:g}" in output.read_text()


@pytest.mark.slow
def test_the_workflow_grading_command_runs_verbatim_on_a_submission(tmp_path):
    """Run the Grade step's exact `run:` line (shell) on a submission of the fixture course."""
    import nbformat

    from autograder.authoring.notebook_builder import fill_answers
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
