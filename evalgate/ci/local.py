"""The CI job in-process ("standalone"), on the configured database (embedded SQLite by default).

    result = run_standalone(config, settings, console=console)

1. check that the pinned dataset version exists;
2. run (or resume) the sweep, or register the external candidates;
3. evaluate the base model and every trained candidate on the pinned version (``evaluate_sweep`` /
   ``evaluate_candidate``), and the promoted baseline too when it has no finished run there yet;
4. decide each evaluated candidate against the current baseline (``gate_service.decide_candidate``,
   baseline ``auto``: the candidate last promoted for the base model, else the base model);
5. recommend (``selection.recommend``) and, with ``promote: true``, promote the recommended candidate;
6. rewrite the sweep's results.csv and best.yaml with the gate's columns (``evalgate.report.results``);
7. with ``EVALGATE_MLFLOW_TRACKING_URI`` set, mirror the sweep (or the registered candidates), the
   decisions and the promotion into MLflow (``evalgate.tracking``; a tracking failure is a warning).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import asdict, replace
from typing import Any

from rich.console import Console
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from evalgate.ci.config import CandidateSpec, CiConfig
from evalgate.ci.result import (
    DECIDED_BY,
    SELF_NOTE,
    CandidateResult,
    CiResult,
    covers_policy,
    recommendation_for,
)
from evalgate.core.settings import Settings
from evalgate.core.timings import stage
from evalgate.data.store import DatasetStore, VersionInfo
from evalgate.db.models import Candidate
from evalgate.db.queries import latest_finished_run
from evalgate.db.session import session_scope
from evalgate.evaluation.progress import task_bars
from evalgate.report.results import write_gated_analysis
from evalgate.sweep.external import CandidateRegistration, register_candidate
from evalgate.sweep.records import sweep_root
from evalgate.tracking.target import sync_if_configured


def run_standalone(
    config: CiConfig, settings: Settings, *, console: Console, progress: bool = True
) -> CiResult:
    """Train or register, evaluate, decide, recommend and (optionally) promote, all in this process."""
    store = DatasetStore.from_settings(settings)
    version = store.get(config.dataset)  # before importing torch: an unknown version fails fast
    console.print(f"dataset {version.label} (sha256 {version.content_hash[:16]})")
    from evalgate.evaluation.run import evaluate_candidate, evaluate_sweep

    sweep_id, sweep = None, config.sweep
    if sweep is not None:
        from evalgate.sweep.run import run_sweep  # torch + transformers: imported only when training

        with stage("sweep"):
            swept = run_sweep(sweep, settings, console=console, show_progress=progress)
        sweep_id = swept.sweep_id
        console.print(f"sweep {sweep_id} ({'resumed' if swept.resumed else 'new'}) on {swept.dataset}")
        candidates = sweep_candidates(store.sessions, sweep_id)
    else:
        candidates = [
            register(store.sessions, settings, config.base_model, spec) for spec in config.candidates
        ]
    options = config.evaluation
    trained = [c.candidate_id for c in candidates if c.status == "trained"]
    with stage("evaluation"), task_bars(console, progress) as bars:
        if sweep_id is None:
            for candidate_id in trained:
                evaluate_candidate(candidate_id, version.label, settings, options, progress=bars)
        elif trained:
            evaluate_sweep(sweep_id, settings, options, progress=bars)
        promoted_id = ready_baseline(
            store.sessions,
            config,
            version,
            trained,
            lambda candidate_id: evaluate_candidate(
                candidate_id, version.label, settings, options, progress=bars
            ),
            console,
        )
    baseline = describe_baseline(store.sessions, config.model, promoted_id)
    with stage("gate"):
        result = decide_all(store.sessions, config, version.content_hash, candidates, baseline, sweep_id)
    if sweep_id is not None:
        files = write_gated_analysis(store.sessions, sweep_id, sweep_root(settings, sweep_id))
        written = [path.name for path in (files.results, files.best, files.figure) if path is not None]
        folder = files.results.parent
        console.print(f"results of sweep {sweep_id}: {', '.join(written)} in {folder}", overflow="fold")
    tracked = sync_if_configured(
        tracking_settings(config, settings),
        sweep_id=sweep_id,
        candidate_ids=[c.candidate_id for c in candidates],
        sessions=store.sessions,
    )
    if tracked is not None:
        console.print(tracked.describe(), overflow="fold")
    return result


def tracking_settings(config: CiConfig, settings: Settings) -> Settings:
    """``settings`` with the config's ``mlflow:`` tracking URI and experiment over them, when it has one."""
    if config.mlflow is None:
        return settings
    update = {
        "mlflow_tracking_uri": config.mlflow.tracking_uri,
        "mlflow_experiment": config.mlflow.experiment,
    }
    return settings.model_copy(update=update)


def decide_all(
    sessions: sessionmaker[Session],
    config: CiConfig,
    dataset_hash: str,
    candidates: list[CandidateResult],
    baseline: str,
    sweep_id: int | None = None,
) -> CiResult:
    """Decide every trained candidate (baseline ``auto``), recommend, and promote when configured."""
    from evalgate.gate.service import decide_candidate, promote  # torch, via the forgetting signal

    decided = [
        c.with_decision(
            _plain(asdict(decide_candidate(sessions, c.candidate_id, config.policy, decided_by=DECIDED_BY)))
        )
        if c.status == "trained"
        else c
        for c in candidates
    ]
    result = CiResult(config, dataset_hash, decided, recommendation_for(config, decided), baseline, sweep_id)
    chosen = result.recommended
    if config.promote and chosen is not None:
        promotion = promote(sessions, chosen.candidate_id, promoted_by=DECIDED_BY)
        result = replace(result, promoted=_plain(asdict(promotion)))
    return result


def sweep_candidates(sessions: sessionmaker[Session], sweep_id: int) -> list[CandidateResult]:
    """The sweep's candidates by rate, with their training outcome."""
    with session_scope(sessions) as session:
        rows = session.scalars(
            select(Candidate).where(Candidate.sweep_id == sweep_id).order_by(Candidate.learning_rate)
        ).all()
        return [CandidateResult(c.name, c.id, c.learning_rate, c.status, c.diagnosis, c.error) for c in rows]


def register(
    sessions: sessionmaker[Session], settings: Settings, base_model: str, spec: CandidateSpec
) -> CandidateResult:
    """Register an external adapter (a new candidate row on every run)."""
    registration = CandidateRegistration(spec.name, base_model, spec.adapter, spec.learning_rate)
    candidate_id = register_candidate(sessions, settings, registration)
    return CandidateResult(spec.name, candidate_id, spec.learning_rate, "trained")


def describe_baseline(sessions: sessionmaker[Session], base_model: str, promoted_id: int | None) -> str:
    """``base model M`` or ``promoted candidate NAME (id N) of M``."""
    if promoted_id is None:
        return f"base model {base_model}"
    with session_scope(sessions) as session:
        candidate = session.get_one(Candidate, promoted_id)
        return f"promoted candidate {candidate.name} (id {promoted_id}) of {base_model}{SELF_NOTE}"


def ready_baseline(
    sessions: sessionmaker[Session],
    config: CiConfig,
    version: VersionInfo,
    evaluated: Collection[int],
    evaluate: Callable[[int], object],
    console: Console,
) -> int | None:
    """The promoted baseline's candidate id (None: the base model), evaluated on ``version`` first when
    its latest run there is missing or lacks an evaluator the policy checks."""
    from evalgate.gate.service import current_baseline

    promoted = current_baseline(sessions, config.model)
    if promoted is None:
        return None
    if promoted.candidate_id not in evaluated and not _evaluated_on(
        sessions, config, version, promoted.candidate_id
    ):
        console.print(
            f"evaluating the promoted baseline (candidate {promoted.candidate_id}) on {version.label}"
        )
        evaluate(promoted.candidate_id)
    return promoted.candidate_id


def _evaluated_on(
    sessions: sessionmaker[Session], config: CiConfig, version: VersionInfo, candidate_id: int
) -> bool:
    """True when the candidate's latest finished run on ``version`` scored every evaluator the policy checks
    (the run ``decide_candidate`` compares promoted baselines with)."""
    from evalgate.evaluation.records import dataset_version_id

    version_id = dataset_version_id(sessions, version.name, version.number)
    with session_scope(sessions) as session:
        run = latest_finished_run(session, candidate_id, version_id)
        return run is not None and covers_policy(config, run.summary)


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready: datetimes as ISO text."""
    return {key: value.isoformat() if hasattr(value, "isoformat") else value for key, value in data.items()}
