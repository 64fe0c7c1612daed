"""The hint policy of docs/AUTHORING.md ("Hints and messages"): when a failing check shows its hint.

A check's ``hint`` is shown with a failure only when the student has written something: while
the exercise is still a stub, the message ("... raised NotImplementedError: it is not implemented
yet") says all there is to say, and a hint would only be a first look at the answer.

A failure counts as "not implemented yet" when the student's code raised ``NotImplementedError``
anywhere in the failure's exception chain (checks that turn a :class:`StudentError` into a
:class:`CheckFailure` keep it as the context, also with ``raise ... from None``), or when a check
raises :class:`NotImplementedYet` itself (for an exercise whose answer is a name the notebook does
not define yet, such as a constant whose cell still raises).
"""

from __future__ import annotations

from autograder.authoring.compare import CheckFailure
from autograder.submission.namespace import StudentError

#: How every "not implemented yet" message ends (StudentError.describe, expect_raises, the checks).
NOT_IMPLEMENTED = "it is not implemented yet"


class NotImplementedYet(CheckFailure):
    """A check found that the exercise has not been attempted yet: the failure is shown without a hint."""


def is_stub_failure(exc: BaseException | None) -> bool:
    """Whether a check failed because the exercise is still a stub (see the module docstring)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, NotImplementedYet):
            return True
        if isinstance(exc, StudentError) and exc.is_a("NotImplementedError"):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def hint_for(exc: BaseException | None, hint: str) -> str:
    """The hint to attach to a failure caused by ``exc``: none while the exercise is a stub."""
    return "" if is_stub_failure(exc) else hint
