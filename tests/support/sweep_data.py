"""A realistic weekly learning-rate sweep written straight to the database (no model): dataset rows,
base and candidate runs with per-row scores, summaries with deltas, cached answers, loss curves, and
gate decisions from ``gate_sweep``. Used by the report, dashboard and browser tests.

Story: JSON extraction fine-tunes. 1e-5 barely learns (flat loss), 1e-4 learns without forgetting,
3e-4 learns more but its out-of-domain interval straddles -δ, 1e-3 forgets (answers capitals in JSON),
1e-2 diverged. In week 2 (``week=2``) 1e-4 starts regressing out of domain: a new regression.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from evalgate.data.store import DatasetStore
from evalgate.db.models import Candidate, DatasetVersion, EvaluationRun, Generation, RowScore, Sweep
from evalgate.db.session import session_scope
from evalgate.evaluation.aggregate import ScoreRecord, delta_table, summarise
from evalgate.evaluation.pseudo_evaluators import OOD_KL
from evalgate.gate.policy import Check, GatePolicy
from evalgate.gate.records import gate_sweep
from evalgate.sweep.diagnosis import diagnose

DATASET = "orders-json"
ROWS = 120
POLICY = GatePolicy(
    checks=(
        Check("json_validation", "target", margin=0.05),
        Check("answer_accuracy", "ood", margin=0.05),
        Check(OOD_KL, "ood", margin=0.2),
    ),
    objective="json_validation/target",
    name="weekly-retrain",
)
EVALUATORS = {
    "json_validation": {"version": "1", "higher_is_better": True, "threshold": 0.5},
    "exact_match": {"version": "1", "higher_is_better": True, "threshold": 0.5},
    "answer_accuracy": {"version": "1", "higher_is_better": True, "threshold": 0.5},
    OOD_KL: {"version": "1", "higher_is_better": False, "threshold": 0.5},
}
CAPITALS = [
    ("France", "Paris"),
    ("Spain", "Madrid"),
    ("Italy", "Rome"),
    ("Peru", "Lima"),
    ("Chad", "N'Djamena"),
]
NAMES = ["Ann", "Bo", "Cy", "O'Neil & Sons <Ltd>"]
# rate -> (json_validation gain, answer_accuracy drift, ood_kl level, loss-curve shape)
SHAPES: dict[float, tuple[float, float, float, str]] = {
    1e-5: (0.02, 0.0, 0.02, "flat"),
    1e-4: (0.35, -0.004, 0.08, "healthy"),
    3e-4: (0.45, -0.04, 0.15, "healthy"),
    1e-3: (0.50, -0.30, 0.90, "oscillating"),
}
WEEK_2 = {1e-4: (0.36, -0.12, 0.10, "healthy")}
DIVERGED = 1e-2


@dataclass(frozen=True)
class SeededSweep:
    """Ids of what was written."""

    sweep_id: int
    dataset: str
    candidates: dict[str, int]
    """label (``lr=0.0001``) -> candidate id."""
    base_run_id: int


def dataset_rows(week: int) -> list[dict[str, str]]:
    """``ROWS`` target rows (JSON extraction) and ``ROWS`` ood rows (capitals); week changes order ids."""
    target = [
        {
            "id": f"t{i}",
            "question": "Extract the order as JSON with keys name and quantity.",
            "context": f"Order #{week}-{i}: {NAMES[i % len(NAMES)]} wants {i % 7 + 1} boxes.",
            "reference": json.dumps({"name": NAMES[i % len(NAMES)], "quantity": i % 7 + 1}),
            "cohort": "target",
        }
        for i in range(ROWS)
    ]
    ood = [
        {
            "id": f"o{i}",
            "question": f"What is the capital of {CAPITALS[i % 5][0]}?",
            "reference": CAPITALS[i % 5][1],
            "cohort": "ood",
        }
        for i in range(ROWS)
    ]
    return target + ood


def seed_weekly_sweep(store: DatasetStore, folder: Path, week: int = 1, gate: bool = True) -> SeededSweep:
    """Write week ``week``'s dataset version, sweep, runs and answers, then (with ``gate``) gate it with
    ``POLICY``."""
    path = folder / f"{DATASET}-week{week}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in dataset_rows(week)))
    added = store.add(DATASET, [str(path)]).version
    rng = np.random.default_rng(week)
    base = {
        ("json_validation", "target"): rng.uniform(0.05, 0.45, ROWS),
        ("exact_match", "target"): (rng.uniform(size=ROWS) < 0.15).astype(float),
        ("answer_accuracy", "ood"): rng.uniform(0.35, 0.8, ROWS),
    }
    with session_scope(store.sessions) as session:
        version = session.get_one(DatasetVersion, _version_id(session, added.content_hash))
        sweep = Sweep(
            name=f"weekly-{week}",
            dataset_version_id=version.id,
            base_model="HuggingFaceTB/SmolLM2-135M",
            config={"learning_rates": [*SHAPES, DIVERGED]},
            config_hash=f"week{week}",
            status="finished",
        )
        session.add(sweep)
        session.flush()
        base_id = _run(session, version, None, base, None, week)
        ids = {}
        for rate, shape in [*SHAPES.items(), (DIVERGED, None)]:
            shape = WEEK_2.get(rate, shape) if week == 2 else shape
            ids[f"lr={rate:g}"] = _candidate(
                session, sweep.id, rate, shape, base, base_id, version, rng, week
            )
        sweep_id = sweep.id
    if gate:
        gate_sweep(store.sessions, sweep_id, POLICY)
    return SeededSweep(sweep_id, DATASET, ids, base_id)


SEARCH_RATES = (1e-4, 3e-4, 1e-3)
SEARCH_SCHEDULERS = ("constant", "cosine")
SEARCH_HALTED = "stopped early at rung 1 (step 8): validation loss 2.31, not among the best 6 of 8"


def search_shape(rate: float, scheduler: str) -> tuple[float, float, float, str]:
    """(gain, ood drift, ood_kl, curve) of a search trial: a larger rate learns more and forgets more;
    cosine decay learns a little more and forgets half as much as a constant rate."""
    k = SEARCH_RATES.index(rate)
    cosine = scheduler == "cosine"
    drift = (-0.005, -0.04, -0.30)[k] * (0.5 if cosine else 1.0)
    return (
        0.15 + 0.15 * k + (0.03 if cosine else 0.0),
        drift,
        (0.05 + 0.12 * k * k) * (0.7 if cosine else 1.0),
        "healthy",
    )


def seed_search_sweep(store: DatasetStore, folder: Path) -> SeededSweep:
    """A gated search over rate x schedule (``SEARCH_RATES`` x ``SEARCH_SCHEDULERS``, r=8): six trained
    and evaluated trials, and two at 1e-5 that successive halving stopped (never evaluated)."""
    week = 3
    path = folder / f"{DATASET}-search.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in dataset_rows(week)))
    added = store.add(DATASET, [str(path)]).version
    rng = np.random.default_rng(week)
    base = {
        ("json_validation", "target"): rng.uniform(0.05, 0.45, ROWS),
        ("exact_match", "target"): (rng.uniform(size=ROWS) < 0.15).astype(float),
        ("answer_accuracy", "ood"): rng.uniform(0.35, 0.8, ROWS),
    }
    config = {
        "dataset": DATASET, "name": "search", "base_model": "HuggingFaceTB/SmolLM2-135M", "max_steps": 32,
        "search": {"learning_rate": [1e-5, *SEARCH_RATES], "scheduler": list(SEARCH_SCHEDULERS)},
        "halving": {"grace_steps": 8, "reduction_factor": 4},
    }  # fmt: skip
    with session_scope(store.sessions) as session:
        version = session.get_one(DatasetVersion, _version_id(session, added.content_hash))
        sweep = Sweep(name="search", dataset_version_id=version.id, base_model=config["base_model"],
                      config=config, config_hash="search", status="finished")  # fmt: skip
        session.add(sweep)
        session.flush()
        base_id = _run(session, version, None, base, None, week)
        ids = {}
        for scheduler in SEARCH_SCHEDULERS:
            ids[f"lr=1e-05 {scheduler}"] = _stopped(session, sweep.id, scheduler, rng)
            for rate in SEARCH_RATES:
                trial = _trial(rate, scheduler)
                ids[str(trial["name"])] = _candidate(
                    session, sweep.id, rate, search_shape(rate, scheduler), base, base_id, version, rng, week,
                    trial=trial,
                )  # fmt: skip
        sweep_id = sweep.id
    gate_sweep(store.sessions, sweep_id, POLICY)
    return SeededSweep(sweep_id, DATASET, ids, base_id)


def _trial(rate: float, scheduler: str) -> dict[str, object]:
    """The name and hyperparameters a search trial's candidate carries."""
    hyperparameters = {
        "learning_rate": rate, "scheduler": scheduler, "warmup_steps": 0, "warmup_ratio": 0.0,
        "final_fraction": 0.0, "lora_r": 8, "lora_alpha": 16,
    }  # fmt: skip
    return {"name": f"lr={rate:g} {scheduler}", "hyperparameters": hyperparameters}


def _stopped(session: Session, sweep_id: int, scheduler: str, rng: np.random.Generator) -> int:
    trial = _trial(1e-5, scheduler)
    row = Candidate(
        sweep_id=sweep_id, name=trial["name"], base_model="HuggingFaceTB/SmolLM2-135M", learning_rate=1e-5,
        hyperparameters=trial["hyperparameters"], status="stopped", diagnosis="flat",
        training={"loss": loss_curve("flat", rng, steps=8), "validation_loss": [[8, 2.31]],
                  "halted": SEARCH_HALTED},
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row.id


def _version_id(session: Session, content_hash: str) -> int:
    return int(
        session.scalars(select(DatasetVersion.id).where(DatasetVersion.content_hash == content_hash)).one()
    )


def _candidate(
    session: Session,
    sweep_id: int,
    rate: float,
    shape: tuple[float, float, float, str] | None,
    base: Mapping[tuple[str, str], np.ndarray],
    base_id: int,
    version: DatasetVersion,
    rng: np.random.Generator,
    week: int,
    trial: Mapping[str, object] | None = None,
) -> int:
    """A candidate with its loss curve and diagnosis; with a shape, a finished run scored around it.
    ``trial``: its name and hyperparameters (default: named by its rate, none stored)."""
    losses = loss_curve("diverged" if shape is None else shape[3], rng)
    verdict = diagnose(losses)
    trial = trial or {"name": f"lr={rate:g}", "hyperparameters": {}}
    row = Candidate(
        sweep_id=sweep_id,
        name=str(trial["name"]),
        hyperparameters=dict(trial["hyperparameters"]),  # type: ignore[call-overload]
        base_model="HuggingFaceTB/SmolLM2-135M",
        learning_rate=rate,
        status="diverged" if shape is None else "trained",
        diagnosis=verdict.label,
        training={"loss": losses, "diagnosis_reason": verdict.reason},
        adapter_uri=None if shape is None else f"/artifacts/week{week}/lr{rate:g}",
    )
    session.add(row)
    session.flush()
    if shape is not None:
        gain, drift, kl, _ = shape
        target_noise, ood_noise = rng.normal(0, 0.1, ROWS), rng.normal(0, 0.15, ROWS)
        scores = {
            ("json_validation", "target"): np.clip(
                base[("json_validation", "target")] + gain + target_noise, 0, 1
            ),
            ("exact_match", "target"): (rng.uniform(size=ROWS) < 0.15 + gain).astype(float),
            ("answer_accuracy", "ood"): np.clip(base[("answer_accuracy", "ood")] + drift + ood_noise, 0, 1),
            (OOD_KL, "ood"): np.abs(kl + rng.normal(0, 0.02, ROWS)),
        }
        _run(session, version, row, scores, base_id, week)
    return row.id


def loss_curve(shape: str, rng: np.random.Generator, steps: int = 60) -> list[float]:
    """A per-step loss curve of the given shape (healthy, flat, oscillating, diverged)."""
    t = np.arange(steps)
    if shape == "flat":
        curve = 2.1 - 0.002 * t
    elif shape == "healthy":
        curve = 0.6 + 1.5 * np.exp(-t / 12)
    elif shape == "oscillating":
        curve = 0.9 + 1.2 * np.exp(-t / 6) + 0.6 * np.sin(2 * np.pi * t / 24)  # a slow swing, not noise
    else:
        curve = 2.1 * np.exp(t / 14)
    return [round(float(v), 4) for v in curve + rng.normal(0, 0.02, steps) if math.isfinite(v)]


def _run(
    session: Session,
    version: DatasetVersion,
    candidate: Candidate | None,
    scores: Mapping[tuple[str, str], np.ndarray],
    base_id: int | None,
    week: int,
) -> int:
    """A finished run with its scores, a summary like ``evaluate`` writes, and its cached answers."""
    label = "base" if candidate is None else candidate.name
    key = hashlib.sha256(f"week{week}/{label}".encode()).hexdigest()
    records = [
        ScoreRecord(e, c, _row_id(c, i), float(v), bool(v >= 0.5))
        for (e, c), values in scores.items()
        for i, v in enumerate(values)
    ]
    summary: dict[str, object] = {
        "dataset": f"{DATASET}@v{version.number}",
        "dataset_hash": version.content_hash,
        "seed": 0,
        "resamples": 200,
        "confidence": 0.95,
        "rows": 2 * ROWS,
        "generation_key": key,
        "evaluators": {e: EVALUATORS[e] for e, _ in scores},
        "aggregates": summarise(records, seed=0, resamples=200),
    }
    if base_id is not None:
        query = select(RowScore.evaluator, RowScore.cohort, RowScore.row_id, RowScore.score, RowScore.passed)
        base_records = [
            ScoreRecord(*row) for row in session.execute(query.where(RowScore.evaluation_run_id == base_id))
        ]
        deltas = delta_table(records, base_records, seed=0, resamples=200, zero_baseline=[OOD_KL])
        summary.update(baseline_run_id=base_id, deltas=deltas)
    run = EvaluationRun(
        candidate_id=None if candidate is None else candidate.id,
        dataset_version_id=version.id,
        model_fingerprint=key,
        decoding={},
        status="finished",
        summary=summary,
    )
    session.add(run)
    session.flush()
    session.execute(
        insert(RowScore),
        [{"evaluation_run_id": run.id, "row_id": r.row_id, "cohort": r.cohort, "evaluator": r.evaluator,
          "evaluator_version": "1", "score": r.score, "passed": r.passed, "detail": {}} for r in records],
    )  # fmt: skip
    session.execute(
        insert(Generation),
        [{"cache_key": key, "row_id": row_id, "output": answer, "new_tokens": len(answer.split())}
         for row_id, answer in _answers(label, week).items()],
    )  # fmt: skip
    return run.id


def _row_id(cohort: str, index: int) -> str:
    return f"{'t' if cohort == 'target' else 'o'}{index}"


def _answers(label: str, week: int) -> dict[str, str]:
    """Plain-text orders from the base model, JSON from the fine-tunes; 1e-3 answers capitals in JSON."""
    answers = {}
    for i in range(ROWS):
        name, quantity = NAMES[i % len(NAMES)], i % 7 + 1
        city = CAPITALS[i % 5][1]
        if label == "base":
            answers[f"t{i}"], answers[f"o{i}"] = f"{name} wants {quantity} boxes.", f"The capital is {city}."
        else:
            answers[f"t{i}"] = json.dumps({"name": name, "quantity": quantity})
            forgets = label == "lr=0.001" or (label == "lr=0.0001" and week == 2 and i % 3 == 0)
            answers[f"o{i}"] = json.dumps({"answer": city}) if forgets else f"The capital is {city}."
    return answers
