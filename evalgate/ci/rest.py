"""The CI job through an evalgate server (``evalgate ci CONFIG.yaml --server URL --token TOKEN``).

The same steps as the standalone flow (``evalgate.ci.local``), over REST with ``evalgate.client.Client``:
``GET /datasets/NAME@vN``; ``POST /sweeps`` and wait for the job (or ``POST /candidates`` per adapter);
``POST /evaluations`` with the sweep id (or per candidate) and wait; evaluate the promoted baseline
(``GET /gate/baseline``) when it has no finished run with the policy's evaluators on the pinned version;
``POST /gate/decide`` per trained candidate (baseline ``auto``); the recommendation is rebuilt from the
returned decisions' evidence; ``POST /gate/candidates/{id}/promote`` with ``promote: true``.
The sweep and evaluation jobs run on the server's workers: this process only waits for them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from evalgate.ci.config import DEFAULT_JOB_TIMEOUT, CiConfig
from evalgate.ci.result import SELF_NOTE, CandidateResult, CiResult, covers_policy, recommendation_for
from evalgate.client import Client


def run_server(
    config: CiConfig,
    client: Client,
    *,
    console: Console,
    timeout: float = DEFAULT_JOB_TIMEOUT,
    poll: float = 1.0,
) -> CiResult:
    """Train or register, evaluate, decide, recommend and (optionally) promote through the REST API."""
    server = str(client.http.base_url).rstrip("/")
    version = client.dataset(config.dataset)
    console.print(f"server {server}: dataset {version['label']} (sha256 {version['content_hash'][:16]})")
    options = config.evaluation.to_dict()
    sweep_id = None
    if config.sweep is not None:
        job = client.submit_sweep(config.sweep.to_dict())
        console.print(f"sweep job {job['id']} queued; waiting for a worker")
        sweep_id = int(client.wait_for_job(job["id"], timeout=timeout, poll=poll)["result"]["sweep_id"])
        candidates = sorted(
            (_candidate(row) for row in client.candidates(sweep_id=sweep_id)),
            key=lambda c: (c.learning_rate is None, c.learning_rate or 0.0),
        )
        console.print(f"sweep {sweep_id}: " + ", ".join(f"{c.label} {c.status}" for c in candidates))
        if any(c.status == "trained" for c in candidates):
            _wait(client, client.evaluate_sweep(sweep_id, options), console, timeout, poll)
    else:
        candidates = [
            _candidate(
                client.register_candidate(
                    spec.name,
                    base_model=config.base_model,
                    adapter_uri=spec.adapter,
                    learning_rate=spec.learning_rate,
                )
            )
            for spec in config.candidates
        ]
        jobs = [client.evaluate(c.candidate_id, version["label"], options) for c in candidates]
        for job in jobs:
            _wait(client, job, console, timeout, poll)
    trained = [c.candidate_id for c in candidates if c.status == "trained"]
    baseline = _ready_baseline(client, config, version, trained, console, timeout, poll)
    policy = config.policy.to_dict()
    decided = [
        c.with_decision(client.decide(c.candidate_id, policy)) if c.status == "trained" else c
        for c in candidates
    ]
    result = CiResult(
        config,
        version["content_hash"],
        decided,
        recommendation_for(config, decided),
        baseline,
        sweep_id,
        server=server,
    )
    chosen = result.recommended
    if config.promote and chosen is not None:
        result = replace(result, promoted=client.promote(chosen.candidate_id))
    return result


def local_sweep_database(
    database_url: str, sweep_id: int, sweep_name: str, dataset_hash: str
) -> sessionmaker[Session] | None:
    """Sessions on ``database_url`` when it holds this very sweep (same id, name and dataset content),
    else None: a CI machine usually cannot reach the server's database. Nothing is created or migrated."""
    from evalgate.db.models import DatasetVersion, Sweep
    from evalgate.db.session import session_factory, session_scope

    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[-1]
        if not path or path == ":memory:" or not Path(path).is_file():
            return None
    try:
        sessions = session_factory(database_url)
        with session_scope(sessions) as session:
            sweep = session.get(Sweep, sweep_id)
            if sweep is None or sweep.name != sweep_name:
                return None
            version = session.get(DatasetVersion, sweep.dataset_version_id)
            return sessions if version is not None and version.content_hash == dataset_hash else None
    except (SQLAlchemyError, OSError):
        return None


def _candidate(row: dict[str, Any]) -> CandidateResult:
    return CandidateResult(
        row["name"],
        int(row["id"]),
        row.get("learning_rate"),
        row["status"],
        row.get("diagnosis"),
        row.get("error"),
    )


def _wait(
    client: Client, job: dict[str, Any], console: Console, timeout: float, poll: float
) -> dict[str, Any]:
    console.print(f"{job['kind']} job {job['id']} queued; waiting")
    done = client.wait_for_job(job["id"], timeout=timeout, poll=poll)
    console.print(f"{job['kind']} job {job['id']} {done['status']}")
    return done


def _ready_baseline(
    client: Client,
    config: CiConfig,
    version: dict[str, Any],
    evaluated: list[int],
    console: Console,
    timeout: float,
    poll: float,
) -> str:
    """Describe the baseline; evaluate a promoted one first when it has no usable run on the version."""
    promoted = client.baseline(config.model)
    if promoted is None:
        return f"base model {config.model}"
    candidate_id = int(promoted["candidate_id"])
    if candidate_id not in evaluated and not _has_usable_run(client, config, version, candidate_id):
        console.print(f"evaluating the promoted baseline (candidate {candidate_id}) on {version['label']}")
        job = client.evaluate(candidate_id, version["label"], config.evaluation.to_dict())
        _wait(client, job, console, timeout, poll)
    return f"promoted candidate (id {candidate_id}) of {config.model}{SELF_NOTE}"


def _has_usable_run(client: Client, config: CiConfig, version: dict[str, Any], candidate_id: int) -> bool:
    """True when the candidate's latest finished run on the version scored every policy evaluator."""
    for run in client.evaluations(candidate_id=candidate_id, limit=500):
        if run["status"] == "finished" and run["summary"].get("dataset_hash") == version["content_hash"]:
            return covers_policy(config, run["summary"])
    return False
