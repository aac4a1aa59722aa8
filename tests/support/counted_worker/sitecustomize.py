"""Counts a worker process's optimizer steps in a file, and slows them as ``tests/slow_worker`` does.

Python imports this module at start-up when its folder is on ``PYTHONPATH``. It first runs
``tests/slow_worker/sitecustomize.py`` (each optimizer step and ``generate`` call sleeps
``EVALGATE_TEST_SECONDS_PER_STEP`` seconds first), then, with ``EVALGATE_TEST_STEP_LOG`` set, appends
the process id to that file after every finished ``torch.optim.AdamW`` step (the step both trainers
take). Two workers that share a job thus leave a count of the steps each one trained, read off by
the test: a resumed job trains only the steps the first worker's checkpoint did not hold.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Any

SLOW_WORKER = Path(__file__).resolve().parents[2] / "slow_worker" / "sitecustomize.py"
STEP_LOG = os.environ.get("EVALGATE_TEST_STEP_LOG", "")

_spec = importlib.util.spec_from_file_location("evalgate_test_slow_worker", SLOW_WORKER)
assert _spec is not None and _spec.loader is not None
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))

if STEP_LOG:
    import torch

    _step = torch.optim.AdamW.step

    @functools.wraps(_step)
    def _counted(*args: Any, **kwargs: Any) -> Any:
        result = _step(*args, **kwargs)
        with open(STEP_LOG, "a") as log:
            log.write(f"{os.getpid()}\n")
        return result

    torch.optim.AdamW.step = _counted  # type: ignore[method-assign]
