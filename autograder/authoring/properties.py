"""Settings of property-based checks (hypothesis), in one place.

A property-based check must give the same verdict every time it runs: derandomized (the examples
depend only on the check), no example database, no deadline (a loaded grading machine is slow),
and one clean failure (the smallest example found), not an exception group.  The grader loads
:data:`PROFILE` before it runs any check (``grading/run_checks.py``); a check that wants fewer or
more examples decorates its property with :func:`property_settings`::

    @given(n=st.integers(1, 64))
    @property_settings(40)
    def prop(n): ...
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

PROFILE = "autograder"
MAX_EXAMPLES = 50  # a property never tries more than this many examples (checks have a time budget)

settings.register_profile(PROFILE, derandomize=True, database=None, deadline=None, print_blob=False,
                          report_multiple_bugs=False,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def load_profile() -> None:
    """Make :data:`PROFILE` the default of every property run in this process."""
    settings.load_profile(PROFILE)


def property_settings(max_examples: int = 40, **overrides) -> settings:
    """The grader's profile with ``max_examples`` (at most :data:`MAX_EXAMPLES`) and no health checks.

    Health checks are off: a property over a submission may filter many examples or be slow, and
    that is never the student's fault nor a reason to stop grading.
    """
    return settings(settings.get_profile(PROFILE), max_examples=min(max_examples, MAX_EXAMPLES),
                    suppress_health_check=list(HealthCheck), **overrides)
