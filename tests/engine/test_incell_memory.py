"""Public checks run in the student's kernel leave nothing alive there.

A notebook kernel lives on after a test cell: whatever the checks built in it (handles to models,
the grader's own names) must go when the cell ends, or a student who runs every test cell of 06
holds one AlexNet per handle (the kernel reached 4.2 GiB; 2.5 GiB with this).
"""

import gc
import weakref

from autograder.grading.run_checks import run_checks
from autograder.submission.namespace import InProcessNamespace

CHECKS = '''
from autograder.authoring.api import check, expect


@check(cell="test_thing", points=1, kind="behaviour")
def test_builds_things(sub):
    sub.exec("grader_kept = Thing()", keep=("grader_kept",))    # seen by every later check
    handle = sub.eval("Thing()")                                 # a handle: the object stays in the namespace
    expect(handle is not None, "a handle")
'''

NOTEBOOK = '''
import weakref

made = []


class Thing:
    def __init__(self):
        made.append(weakref.ref(self))
'''


def _notebook() -> dict:
    namespace: dict = {"__name__": "__main__"}
    exec(NOTEBOOK, namespace)  # noqa: S102 - the test's own notebook
    return namespace


def test_closing_the_namespace_frees_what_the_checks_built(tmp_path):
    path = tmp_path / "public.py"
    path.write_text(CHECKS)
    namespace = _notebook()
    sub = InProcessNamespace(namespace, label="your notebook")
    results, problems = run_checks([path], sub, None)
    assert [r.passed for r in results] == [True] and not problems
    gc.collect()
    assert len([r for r in namespace["made"] if r() is not None]) == 2  # alive until the cell ends
    sub.close()
    gc.collect()
    assert [r() for r in namespace["made"]] == [None, None]
    assert not any(k.startswith("grader_") for k in namespace)  # never in the student's names


def test_the_check_run_does_not_keep_the_namespace_alive(tmp_path):
    path = tmp_path / "public.py"
    path.write_text(CHECKS)
    sub = InProcessNamespace(_notebook(), label="your notebook")
    run_checks([path], sub, None)
    alive = weakref.ref(sub)
    del sub
    gc.collect()
    assert alive() is None
