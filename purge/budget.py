"""The run's time budget, visible to everything that could outlast it.

The service sets the deadline once per run; the registry client checks it per page and bounds
every request by it, and rule matching bounds each regex by it. A context variable rather than
a parameter threaded through every call: tasks and worker threads started by the run inherit
it, and a registry or rule built outside a run (tests, the CLI) simply has no budget.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("purge_run_deadline", default=None)


class BudgetSpent(Exception):
    """The run's time budget ran out: stop starting work; what is unfinished is kept."""


@contextmanager
def run_deadline(deadline: float | None) -> Iterator[None]:
    """Within this block, `deadline` (a time.monotonic() value, None: none) bounds the run."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left in the run's budget (<= 0 once spent); None when the run has no budget."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def spent() -> bool:
    left = remaining()
    return left is not None and left <= 0
