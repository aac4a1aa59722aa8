"""Slows a worker process down so that a fault test's kill lands mid-task on any machine.

Python imports this module at start-up when its folder is on ``PYTHONPATH``: ``Service.start(...,
seconds_per_step=S)`` in ``tests/api/service.py`` puts it there for one process. Each optimizer step
(``torch.optim.AdamW``, which both the fused trainer and the transformers Trainer use), each
``generate`` call and each batch of evalgate's own decoding loop then sleeps
``EVALGATE_TEST_SECONDS_PER_STEP`` seconds first. Nothing else changes: the worker, its database
writes, heartbeats and checkpoints are the real ones. On a fast CPU the tiny test model otherwise trains
and answers within one heartbeat, before any progress is visible.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any

SECONDS = float(os.environ.get("EVALGATE_TEST_SECONDS_PER_STEP", "0") or 0)


def _slowed(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        time.sleep(SECONDS)
        return method(*args, **kwargs)

    return wrapper


if SECONDS > 0:
    import torch
    from transformers.generation.utils import GenerationMixin

    from evalgate.modeling import generation

    torch.optim.AdamW.step = _slowed(torch.optim.AdamW.step)  # type: ignore[method-assign]
    GenerationMixin.generate = _slowed(GenerationMixin.generate)  # type: ignore[method-assign]
    # evalgate decodes with its own loop, one ``generate_batch`` per batch (the stacked path imports it
    # from this module, so patching it here, before anything else imports it, reaches both paths).
    generation.generate_batch = _slowed(generation.generate_batch)
