"""The reliability suite's counters: each test records what it injected, sent or generated.

    EVALGATE_FIGURES_FILE=/tmp/figures.jsonl pytest tests/reliability   # then: python bench/reliability.py

``record`` appends one JSON line to ``$EVALGATE_FIGURES_FILE`` when it is set (and does nothing
otherwise), so the same tests that CI runs are the ones whose counts ``bench/reliability.py`` prints.
Kinds and their counters:

- ``fault``: ``injected`` faults and how many the system ``survived`` (the test's checks all held);
- ``load``: ``requests`` accepted under load and how many of their records were ``lost``;
- ``bad_input``: generated ``cases`` and how many got a ``server_errors`` (5xx) answer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FIGURES_ENV = "EVALGATE_FIGURES_FILE"
KINDS = {
    "fault": ("injected", "survived"),
    "load": ("requests", "lost"),
    "bad_input": ("cases", "server_errors"),
}


def record(kind: str, name: str, **counts: int) -> None:
    """Append ``{"kind", "name", **counts}`` to the figures file, if one is set."""
    expected = KINDS[kind]
    if sorted(counts) != sorted(expected):
        raise ValueError(f"figures of kind {kind!r} take {expected}, got {sorted(counts)}")
    target = os.environ.get(FIGURES_ENV)
    if not target:
        return
    with Path(target).open("a") as handle:
        handle.write(json.dumps({"kind": kind, "name": name, **counts}) + "\n")
