"""Counting what a submission's function runs, from grader code executed beside it.

``sub.exec(COUNTING_SOURCE)`` defines two helpers in the check's own scope (see
:meth:`autograder.submission.namespace.Namespace.begin_scope`), which the check then calls with
``sub.eval``:

* ``count_torch_calls(names, fn, *args, **kwargs)`` -> ``(result, count)``: how many calls of the
  torch functions ``names`` (by ``__name__``, e.g. the convolutions of
  :data:`autograder.sandbox.forbid.FORBIDDEN_GROUPS`) ``fn`` made.  A ``TorchFunctionMode`` sees
  every torch function and tensor method, whatever alias was used.
* ``count_ops(fn, *args, **kwargs)`` -> the number of ATen operations ``fn`` dispatched (a
  ``TorchDispatchMode``): the same for any batch size when the code is vectorised.

The counts come from the submission's process, so they are a behaviour check (a loop, a second
convolution); what the sandbox forbids is enforced by :mod:`autograder.sandbox.forbid`.
"""

COUNTING_SOURCE = '''
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode


class CountTorchCalls(TorchFunctionMode):
    def __init__(self, names):
        super().__init__()
        self.names = frozenset(names)
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.names:
            self.count += 1
        return func(*args, **(kwargs or {}))


class CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def count_torch_calls(names, fn, *args, **kwargs):
    mode = CountTorchCalls(names)
    with mode:
        result = fn(*args, **kwargs)
    return result, mode.count


def count_ops(fn, *args, **kwargs):
    counter = CountOps()
    with counter:
        fn(*args, **kwargs)
    return counter.count
'''
