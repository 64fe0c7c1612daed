"""``Namespace.shared_result``: one result of an expensive call per worker, a private copy for every check."""

from __future__ import annotations

import pytest

from autograder.course import REPO_ROOT
from autograder.notebooks import CellToRun
from autograder.sandbox import zygote
from autograder.sandbox.probe import machine_protections, strong_isolation
from autograder.sandbox.worker_process import SandboxConfig
from autograder.submission.namespace import Handle, InProcessNamespace, StudentError, SubmissionCrashed
from autograder.submission.sandboxed import SandboxNamespace

pytestmark = pytest.mark.slow

NOTEBOOK = """
calls = {"n": 0}

class Data:  # an object that stays in the worker: the checks get handles to it
    def __init__(self, size):
        calls["n"] += 1
        self.rows = [[0] * size for _ in range(size)]
        self.made_by_call = calls["n"]

def load(size=3):
    return Data(size)

class Uncopyable:
    def __init__(self):
        self.items = [1, 2, 3]
    def __deepcopy__(self, memo):
        raise TypeError("cannot copy me")

def load_uncopyable():
    calls["n"] += 1
    return Uncopyable()

def boom():
    calls["n"] += 1
    raise ValueError("no data")
"""


def _config() -> SandboxConfig:
    return SandboxConfig(memory_mb=2048, threads=1, max_processes=32, allow_weak=True,
                         readonly=[REPO_ROOT / "autograder"], hidden=[REPO_ROOT / "autograder" / "checks"])


@pytest.fixture
def sub():
    ns = SandboxNamespace(config=_config(), cells=[CellToRun(0, "cell 0", NOTEBOOK, "submission")])
    ns.start()
    assert [o.status for o in ns.outcomes] == ["ok"], ns.outcomes
    yield ns
    ns.close()


def _calls(ns) -> int:
    return ns.eval("calls['n']")


def test_computed_once_per_worker_and_every_check_gets_its_own_copy(sub):
    sub.begin_scope("check_one")
    first = sub.shared_result("load", 3)
    assert isinstance(first, Handle) and sub.eval("x.made_by_call", x=first) == 1
    sub.exec("x.rows[0][0] = 99\nx.extra = True", x=first)      # the first check changes its result
    sub.begin_scope("check_two")
    second = sub.shared_result("load", 3)
    assert sub.eval("(x.rows, x.made_by_call, hasattr(x, 'extra'))", x=second) == ([[0] * 3] * 3, 1, False), \
        "a check saw another's change"
    sub.exec("x.rows.clear()", x=second)
    sub.begin_scope("check_three")
    assert sub.eval("x.rows[2]", x=sub.shared_result("load", 3)) == [0, 0, 0]
    assert _calls(sub) == 1, "the function ran more than once for the same arguments"
    assert sub.eval("x.made_by_call", x=sub.shared_result("load", size=4)) == 2, "other arguments, another key"
    assert sub.eval("x.made_by_call", x=sub.call("load", 3)) == 3, "a direct call still runs the function"
    assert sub.eval("__import__('autograder.sandbox.shared_results', fromlist=['_']).computed()") == sorted([
        "('load', (3,), [])", "('load', (), [('size', 4)])"])


def test_a_checks_copy_is_freed_when_the_next_check_begins(sub):
    sub.begin_scope("one")
    first = sub.shared_result("load", 3)
    sub.begin_scope("two")
    with pytest.raises(StudentError, match="unknown handle"):
        sub.eval("x", x=first)
    assert sub.eval("x.made_by_call", x=sub.shared_result("load", 3)) == 1


def test_a_result_that_cannot_be_copied_is_computed_again_for_each_check(sub):
    for scope in ("one", "two", "three"):
        sub.begin_scope(scope)
        obj = sub.shared_result("load_uncopyable")
        sub.exec("x.items.append(4)", x=obj)
        assert sub.eval("x.items", x=obj) == [1, 2, 3, 4]
    assert _calls(sub) == 3


def test_errors_are_the_students_and_are_not_kept(sub):
    for _ in range(2):
        with pytest.raises(StudentError) as err:
            sub.shared_result("boom")
        assert err.value.describe() == "boom() raised ValueError: no data"
    assert _calls(sub) == 2
    with pytest.raises(StudentError, match="not defined"):
        sub.shared_result("missing")
    with pytest.raises(TypeError):
        sub.shared_result("load", [3])


def test_a_new_worker_computes_the_result_again(sub):
    sub.begin_scope("one")
    sub.shared_result("load", 3)
    with pytest.raises(SubmissionCrashed):
        sub.exec("import os\nos._exit(3)")
    sub.begin_scope("two")
    assert sub.eval("x.made_by_call", x=sub.shared_result("load", 3)) == 1, "the old worker's result came back"
    assert _calls(sub) == 1


def test_a_forked_worker_starts_without_an_earlier_submissions_results(monkeypatch):
    """Two submissions in a row (forked from the zygote where it runs): the second never gets the first's result."""
    monkeypatch.setenv(zygote.WARM_ENV, "1")
    seen = []
    for value in ("first", "second"):
        source = f"def load(size=3):\n    return {value!r}\n"
        ns = SandboxNamespace(config=_config(), cells=[CellToRun(0, "cell 0", source, "submission")])
        try:
            ns.start()
            seen.append((ns.shared_result("load", 3), ns.protections.get("start", "")))
        finally:
            ns.close()
    assert [v for v, _ in seen] == ["first", "second"], seen
    strong, _ = strong_isolation()
    if strong and machine_protections()["user"]:
        assert seen[1][1].startswith("forked from a clean zygote"), seen


def test_in_process_namespaces_simply_call_the_function():
    """The reference and a notebook kernel share nothing: the kernel's student may change the function at any time."""
    notebook: dict = {}
    exec(NOTEBOOK, notebook)  # noqa: S102 - the test's own code
    ns = InProcessNamespace(notebook, label="submission")
    ns.shared_result("load", 3)
    ns.shared_result("load", 3)
    assert notebook["calls"]["n"] == 2
