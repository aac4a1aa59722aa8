"""Holding a running job at a chosen training step or generation batch, and waiting on conditions.

    gate = HeldCall(hold_at=5)
    monkeypatch.setattr(torch.optim.AdamW, "step", gate.wrap(torch.optim.AdamW.step))
    ...                                   # start a worker; gate.held is set when step 5 begins
    wait_until(lambda: ..., "the worker saw the cancel")
    gate.release()                        # step 5 runs; gate.calls counts every call begun

A job's handler is real (real model, real training or generation); only the moment at which the
chosen call proceeds is the test's. So a test can say exactly which step was in flight when the worker
learned it must stop, and count the calls that began afterwards, instead of guessing from wall time.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

Function = TypeVar("Function", bound=Callable[..., Any])

HOLD_TIMEOUT_SECONDS = 300.0
"""A held call gives up (raises) after this long, so a failed test never leaves a thread blocked."""


class HeldCall:
    """Counts the calls of a wrapped callable (in any thread) and holds call number ``hold_at``
    before it runs, until ``release``; later calls pass straight through."""

    def __init__(self, hold_at: int) -> None:
        self.hold_at = hold_at
        self.calls = 0
        """Calls begun so far, the held one included."""
        self.held = threading.Event()
        """Set when call number ``hold_at`` has begun and is waiting."""
        self._released = threading.Event()
        self._lock = threading.Lock()

    def wrap(self, function: Function) -> Function:
        """``function`` counted, and held at call ``hold_at``."""

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls += 1
                number = self.calls
            if number == self.hold_at:
                self.held.set()
                if not self._released.wait(HOLD_TIMEOUT_SECONDS):
                    raise TimeoutError(f"call {number} was held for {HOLD_TIMEOUT_SECONDS:.0f} s")
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def release(self) -> None:
        """Let the held call (and every later one) run."""
        self._released.set()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 120.0, poll: float = 0.05) -> None:
    """Poll ``condition`` until it holds; ``TimeoutError`` naming ``what`` after ``timeout`` seconds
    (generous: the deadline is for a loaded 2-core machine, the wait usually ends in well under a second)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(poll)
