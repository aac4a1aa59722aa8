"""Sweep and candidate rows: open (or resume) a sweep, claim and finish its candidates."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from evalgate.core.settings import Settings
from evalgate.data.store import VersionInfo
from evalgate.db.base import utcnow
from evalgate.db.models import Candidate, DatasetVersion, Sweep
from evalgate.db.session import session_scope
from evalgate.sweep.config import SweepConfig
from evalgate.sweep.diagnosis import compare_within_sweep
from evalgate.sweep.trials import Trial

DONE_STATUSES = ("trained", "diverged", "stopped")
"""A candidate in one of these states is not trained again when its sweep is re-run."""


def sweep_root(settings: Settings, sweep_id: int) -> Path:
    """Local folder of a sweep's candidates and results files (training writes checkpoints, so it must
    be local); ``ValueError`` naming the artifact root when it is not."""
    root = settings.resolved_artifact_root
    if "://" in root and not root.startswith("file://"):
        raise ValueError(f"training needs a local artifact root, got {root}")
    return Path(root.removeprefix("file://")) / "sweeps" / str(sweep_id)


def config_hash(config: SweepConfig, version: VersionInfo) -> str:
    """sha256 of the config and the exact dataset content: equal hashes mean the same sweep.

    The dataset is identified by its content hash, not by how the config names it (``suite`` and
    ``suite@v1`` are the same sweep while v1 is the latest).
    """
    settings = {key: value for key, value in config.to_dict().items() if key != "dataset"}
    payload = {"config": settings, "dataset": version.content_hash}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def open_sweep(
    sessions: sessionmaker[Session], config: SweepConfig, version: VersionInfo
) -> tuple[int, bool]:
    """The id of the unfinished or finished sweep with this exact config, else of a new one.

    Returns ``(sweep_id, resumed)``.
    """
    digest = config_hash(config, version)
    with session_scope(sessions) as session:
        found = session.scalars(
            select(Sweep)
            .where(Sweep.name == config.name, Sweep.config_hash == digest)
            .order_by(Sweep.id.desc())
        ).first()
        if found is not None:
            found.status = "running"
            return found.id, True
        version_id = session.scalars(
            select(DatasetVersion.id).where(DatasetVersion.content_hash == version.content_hash)
        ).first()
        assert version_id is not None, f"dataset version {version.label} vanished"
        sweep = Sweep(
            name=config.name,
            dataset_version_id=version_id,
            base_model=config.base_model,
            config=config.to_dict(),
            config_hash=digest,
            status="running",
        )
        session.add(sweep)
        session.flush()
        return sweep.id, False


def claim_candidate(
    sessions: sessionmaker[Session], sweep_id: int, trial: Trial, base_model: str
) -> tuple[int, str]:
    """The candidate row of ``trial`` (by its label; created when missing); returns ``(id, status
    before the claim)``. A finished candidate keeps its status; any other is marked ``training``."""
    with session_scope(sessions) as session:
        candidate = session.scalars(
            select(Candidate).where(Candidate.sweep_id == sweep_id, Candidate.name == trial.label)
        ).first()
        if candidate is None:
            candidate = Candidate(
                sweep_id=sweep_id,
                name=trial.label,
                base_model=base_model,
                learning_rate=trial.learning_rate,
                hyperparameters=trial.hyperparameters(),
                status="pending",
            )
            session.add(candidate)
            session.flush()
        previous = candidate.status
        if previous not in DONE_STATUSES:
            candidate.status, candidate.error = "training", None
        return candidate.id, previous


def finish_candidate(sessions: sessionmaker[Session], candidate_id: int, **values: Any) -> None:
    """Store a candidate's outcome (status, diagnosis, adapter, curves or error)."""
    with session_scope(sessions) as session:
        candidate = session.get_one(Candidate, candidate_id)
        for key, value in values.items():
            setattr(candidate, key, value)


def claim_pending(
    sessions: sessionmaker[Session], sweep_id: int, trials: Sequence[Trial], base_model: str
) -> dict[Trial, int]:
    """Claim each trial's candidate (``claim_candidate``); the candidate ids of those still to train, in
    trial order (a candidate done, in ``DONE_STATUSES``, is left alone)."""
    pending = {}
    for trial in trials:
        candidate_id, previous = claim_candidate(sessions, sweep_id, trial, base_model)
        if previous not in DONE_STATUSES:
            pending[trial] = candidate_id
    return pending


def finish_sweep(sessions: sessionmaker[Session], sweep_id: int, status: str) -> None:
    """Mark the sweep finished, failed or interrupted."""
    with session_scope(sessions) as session:
        sweep = session.get_one(Sweep, sweep_id)
        sweep.status = status
        sweep.finished_at = utcnow() if status == "finished" else None


def relabel_within_sweep(sessions: sessionmaker[Session], sweep_id: int) -> None:
    """Apply ``compare_within_sweep`` to the sweep's candidates that trained to the end (trained or
    diverged; not those successive halving stopped) and store the new labels."""
    with session_scope(sessions) as session:
        candidates = session.scalars(
            select(Candidate).where(
                Candidate.sweep_id == sweep_id, Candidate.status.in_(("trained", "diverged"))
            )
        ).all()
        changes = compare_within_sweep(
            {c.name: (c.diagnosis or "", list(c.training.get("loss", []))) for c in candidates},
            {
                c.name: (c.learning_rate, _other_settings(c))
                for c in candidates
                if c.learning_rate is not None
            },
        )
        for candidate in candidates:
            if candidate.name in changes:
                verdict = changes[candidate.name]
                candidate.diagnosis = verdict.label
                candidate.training = {**candidate.training, "diagnosis_reason": verdict.reason}


def _other_settings(candidate: Candidate) -> str:
    """A key of the candidate's hyperparameters other than its learning rate."""
    others = {k: v for k, v in candidate.hyperparameters.items() if k != "learning_rate"}
    return json.dumps(others, sort_keys=True, default=str)


def candidate_rows(sessions: sessionmaker[Session], sweep_id: int) -> list[dict[str, Any]]:
    """The sweep's candidates as plain dicts, ordered by rate, then name."""
    with session_scope(sessions) as session:
        candidates = session.scalars(
            select(Candidate)
            .where(Candidate.sweep_id == sweep_id)
            .order_by(Candidate.learning_rate, Candidate.name)
        ).all()
        return [
            {
                "id": c.id,
                "name": c.name,
                "rate": c.learning_rate,
                "hyperparameters": c.hyperparameters,
                "status": c.status,
                "diagnosis": c.diagnosis,
                "adapter_uri": c.adapter_uri,
                "training": c.training,
                "error": c.error,
            }
            for c in candidates
        ]
