"""What student code can and cannot reach from inside the sandbox."""

from __future__ import annotations

import pytest

from autograder.sandbox.probe import strong_isolation

from .conftest import by_name

pytestmark = pytest.mark.slow


def _probe_answer(body: str) -> str:
    return "def count(n):\n" + "".join(f"    {line}\n" for line in body.splitlines())


def test_results_say_which_protections_were_in_force(make_submission, grade):
    report = grade(make_submission())
    protections = report.protections
    assert protections["process"].startswith("separate process")
    strong, why = strong_isolation()
    assert protections["bubblewrap"] == strong, protections
    if not strong:
        assert protections.get("machine") or protections.get("note"), "weaker isolation must say why"


def test_network_solutions_and_hidden_checks_are_out_of_reach(make_submission, grade, fixture_course):
    from autograder.course import REPO_ROOT

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
    if not report.protections["bubblewrap"]:
        pytest.skip(f"no bubblewrap sandbox on this machine: {strong_isolation()[1]}")
    assert by_name(report)["test_count_returns_its_argument"].passed, by_name(report)["test_count_returns_its_argument"].message


def test_a_sandbox_that_cannot_start_fails_closed_unless_weaker_isolation_is_accepted(
        make_submission, grade, monkeypatch, capfd):
    """A machine whose bubblewrap breaks grades nobody without the sandbox, unless the instructor opts in."""
    from autograder.grading.grade_notebook import GradingError
    from autograder.sandbox import probe, worker_process

    if not strong_isolation()[0]:
        pytest.skip("this machine has no bubblewrap sandbox to break")
    monkeypatch.setattr(probe, "_PROBED", {})  # a private probe, so other tests keep the real one
    real_args = worker_process.sandbox_bwrap_args
    monkeypatch.setattr(worker_process, "sandbox_bwrap_args",   # breaks the zygote's start and a cold one's
                        lambda *args, **kwargs: real_args(*args, **kwargs) + ["--no-such-option"])
    monkeypatch.delenv(worker_process.ALLOW_WEAK_ENV, raising=False)
    with pytest.raises(GradingError, match="could not start"):
        grade(make_submission())

    monkeypatch.setenv(worker_process.ALLOW_WEAK_ENV, "1")
    report = grade(make_submission())
    assert report.score == report.max_score > 0
    assert report.protections["bubblewrap"] is False
    assert "could not start under bubblewrap" in report.protections["machine"]
    assert "weaker isolation" in capfd.readouterr().err
    assert report.weak_isolation and "weaker isolation" in report.summary()
    assert "weaker isolation" in report.to_markdown()


def test_weights_in_a_private_folder_are_made_readable_to_the_sandbox(make_submission, grade, tmp_path,
                                                                      monkeypatch):
    """A TORCH_HOME under a 0700 folder (pytest's own temporary folders are) must not weaken the sandbox."""
    from autograder.sandbox import probe

    if not strong_isolation()[0]:
        pytest.skip("this machine has no bubblewrap sandbox")
    private = tmp_path / "private"
    (private / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    private.chmod(0o700)
    weights = private / "torch" / "hub" / "checkpoints" / "weights.pth"
    weights.write_bytes(b"x")
    weights.chmod(0o600)
    monkeypatch.setenv("TORCH_HOME", str(private / "torch"))
    monkeypatch.setattr(probe, "_PROBED", {})  # a private probe, so other tests keep the real one
    report = grade(make_submission())
    assert report.protections["bubblewrap"] is True, report.protections
    assert "machine" not in report.protections, report.protections
