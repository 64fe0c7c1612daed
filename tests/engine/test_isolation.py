"""What student code can and cannot reach from inside the sandbox."""

from __future__ import annotations

import pytest

from autograder.sandbox.launcher import machine_protections

from .conftest import by_name

pytestmark = pytest.mark.slow


def _probe_answer(body: str) -> str:
    return "def count(n):\n" + "".join(f"    {line}\n" for line in body.splitlines())


def test_results_say_which_protections_were_in_force(make_submission, grade):
    report = grade(make_submission())
    protections = report.protections
    assert protections["process"].startswith("separate process")
    probe = machine_protections()
    assert protections["bubblewrap"] == (probe["bwrap"] and (probe["user"] is not None or not probe["root"]))


@pytest.mark.skipif(not machine_protections()["bwrap"], reason="bubblewrap is not available here")
def test_network_solutions_and_hidden_checks_are_out_of_reach(make_submission, grade, fixture_course):
    from autograder.assignments import REPO_ROOT

    targets = [str(REPO_ROOT / "solutions"), str(REPO_ROOT / "autograder" / "checks"),
               str(fixture_course.checks_root / "a00_fixture" / "hidden.py"),
               str(fixture_course.root / "solutions" / "00_fixture" / "00_fixture.ipynb")]
    body = (
        "import os, socket\n"
        "seen = []\n"
        f"for p in {targets!r}:\n"
        "    if os.path.exists(p) and (os.path.isfile(p) or os.listdir(p)):\n"
        "        seen.append(p)\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
        "    seen.append('network')\n"
        "except OSError:\n"
        "    pass\n"
        "try:\n"
        "    open('/etc/cnn-escape', 'w').write('x')\n"
        "    seen.append('wrote /etc')\n"
        "except OSError:\n"
        "    pass\n"
        "return n if not seen else -len(seen)"
    )
    report = grade(make_submission({"count": _probe_answer(body)}))
    assert by_name(report)["test_count_returns_its_argument"].passed, by_name(report)["test_count_returns_its_argument"].message
