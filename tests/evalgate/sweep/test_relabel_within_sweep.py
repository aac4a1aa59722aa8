"""The sweep's stored candidates judged against each other: rates and other settings come from the rows."""

from __future__ import annotations

import math

import numpy as np
from sqlalchemy import select

from evalgate.data.store import DatasetStore
from evalgate.db.models import Candidate, DatasetVersion, Sweep
from evalgate.db.session import session_scope
from evalgate.sweep.diagnosis import diagnose
from evalgate.sweep.records import relabel_within_sweep


def _curve(end: float, batches: np.ndarray) -> list[float]:
    return [float(v) for v in (end + (1.0 - end) * np.exp(-5 * np.arange(32) / 32)) * np.exp(batches)]


def test_a_small_rate_is_not_called_oscillating_when_a_larger_rate_with_the_same_settings_was_stable(
    store: DatasetStore, write_jsonl
) -> None:
    store.add("suite", [write_jsonl("rows.jsonl", [{"id": "a", "question": "q"}])])
    batches = np.random.default_rng(1).normal(0.0, 0.04, 32)
    batches[20:23] += 0.25  # a run of hard batches every rate sees
    small, large = _curve(0.84, batches), _curve(0.3, batches)
    swinging = [1.2 + 0.6 * math.cos(2 * math.pi * i / 16) - 0.02 * i for i in range(32)]
    trials = {  # name: (rate, lora_r, losses)
        "lr=3e-05": (3e-5, 8, small),
        "lr=0.0003": (3e-4, 8, large),
        "r16 lr=3e-05": (3e-5, 16, swinging),  # no larger rate with r=16 was stable
    }
    with session_scope(store.sessions) as session:
        version = session.scalars(select(DatasetVersion)).one()
        sweep = Sweep(name="s", dataset_version_id=version.id, base_model="m", config={}, config_hash="h")
        session.add(sweep)
        session.flush()
        for name, (rate, rank, losses) in trials.items():
            session.add(
                Candidate(
                    sweep_id=sweep.id, name=name, base_model="m", learning_rate=rate, status="trained",
                    hyperparameters={"learning_rate": rate, "lora_r": rank},
                    diagnosis=diagnose(losses).label, training={"loss": losses},
                )
            )  # fmt: skip
        sweep_id = sweep.id

    relabel_within_sweep(store.sessions, sweep_id)

    with session_scope(store.sessions) as session:
        labels = {c.name: c.diagnosis for c in session.scalars(select(Candidate))}
    assert diagnose(small).label == "oscillating"
    assert labels == {"lr=3e-05": "flat", "lr=0.0003": "healthy", "r16 lr=3e-05": "oscillating"}
