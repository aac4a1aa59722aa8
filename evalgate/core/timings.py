"""Wall-clock time of a job by stage: what ``evalgate ci`` and ``evalgate demo`` print at the end.

    with stage("training"):
        ...
    print(format_timings(TIMINGS.snapshot()))

One process-wide recorder (``TIMINGS``), as ``logging`` has one root logger: the stages sit deep in
the sweep and evaluation code, and threading a recorder through every call would widen a dozen
signatures for a printout. A stage entered twice adds up; stages may nest (the outer one includes the
inner), and each is printed under its own name in the order it was first entered.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager


class Timings:
    """Seconds by stage name, in the order stages were first entered."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the block's wall-clock seconds to ``name`` (also when it raises)."""
        started = time.perf_counter()
        self.seconds.setdefault(name, 0.0)
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started

    def reset(self) -> None:
        self.seconds.clear()

    def snapshot(self) -> dict[str, float]:
        return dict(self.seconds)


TIMINGS = Timings()


def stage(name: str) -> AbstractContextManager[None]:
    """``TIMINGS.stage(name)``."""
    return TIMINGS.stage(name)


def format_timings(seconds: dict[str, float]) -> list[str]:
    """One line per stage: ``  training ........  3 min 54 s``; nested stages are indented by their
    name's ``": "`` parts (``"scoring: faithfulness"`` under ``"scoring"``)."""
    lines = []
    for name, value in seconds.items():
        depth = name.count(": ")
        label = ("  " * depth) + name.rsplit(": ", 1)[-1]
        lines.append(f"  {label:<36} {_duration(value):>10}")
    return lines


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:2d} s" if minutes else f"{seconds:.1f} s"
