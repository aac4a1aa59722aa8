"""Mirror what the database holds into MLflow (``evalgate[mlflow]``); the database stays the source of truth.

    report = sync_sweep(sessions, MlflowTarget("http://mlflow:5000"), sweep_id=3)

What goes where, in one experiment:

- a sweep is a parent run named after the sweep: params ``base_model``, ``dataset`` (``NAME@vN``) and the
  config flattened (``lora.r``; lists as JSON), the whole config as ``sweep_config.json``, the status as
  the run's status and tag ``evalgate.status``, and the base model's evaluation aggregates as
  ``base.<evaluator>.<cohort>.<stat>``;
- each candidate is a child run (``mlflow.parentRunId``) named after the candidate: its rate and
  hyperparameters as params; per training step ``train.loss`` and ``train.learning_rate`` (step 1 is the
  first optimiser step; a loss that was not a number is NaN), ``train.validation_loss`` at its steps,
  ``train.steps``, ``train.wall_seconds`` and ``train.tokens_per_second``; status, diagnosis, adapter and
  error as ``evalgate.*`` tags;
- each finished evaluation run of a candidate adds, at step = the evaluation run's id,
  ``<evaluator>.<cohort>.<stat>`` (mean, ci_low, ci_high, fail_rate, n) and the paired delta vs the base
  run ``delta.<evaluator>.<cohort>`` (the mean of candidate - base per row, a zero-baseline signal such
  as ``ood_kl`` against 0; higher is better exactly when the evaluator's higher_is_better) with its
  ``.ci_low`` and ``.ci_high``;
- each gate decision is ``gate/decision-<id>.json`` (policy, evidence); the newest one's verdict, policy
  hash and ids are ``evalgate.gate.*`` tags;
- a promoted candidate's adapter folder is logged as ``adapter/`` and registered as a version of
  ``MlflowTarget.registered_model(base model)``; the alias (``champion``) follows the newest promotion of
  each base model.

Idempotent: runs are found by their tags (``evalgate.sweep_id`` with ``evalgate.sweep_created``, or
``evalgate.candidate_id`` with ``evalgate.candidate_created``, so two databases sharing an experiment do
not mix), model versions by their run id, and what was logged once (training curves, each evaluation
run, each decision, the adapter) is recorded in ``evalgate.synced.*`` tags, set only after it was logged.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import httpx
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.orm import Session, sessionmaker

from evalgate.tracking.snapshot import (
    CandidateSnapshot,
    EvaluationSnapshot,
    SweepSnapshot,
    load_candidates,
    load_sweep,
)
from evalgate.tracking.target import MlflowTarget, SyncReport

logger = logging.getLogger("evalgate.tracking")

KIND = "evalgate.kind"
SWEEP_ID = "evalgate.sweep_id"
SWEEP_CREATED = "evalgate.sweep_created"
CANDIDATE_ID = "evalgate.candidate_id"
CANDIDATE_CREATED = "evalgate.candidate_created"
PARENT = "mlflow.parentRunId"
SYNCED_TRAINING = "evalgate.synced.training"
SYNCED_EVALUATIONS = "evalgate.synced.evaluations"
SYNCED_DECISIONS = "evalgate.synced.decisions"
SYNCED_CONFIG = "evalgate.synced.config"
SYNCED_ADAPTER = "evalgate.synced.adapter"
ADAPTER_ARTIFACT = "adapter"
CONFIG_ARTIFACT = "sweep_config.json"
AGGREGATE_STATS = ("mean", "ci_low", "ci_high", "fail_rate", "n")
DELTA_STATS = ("ci_low", "ci_high")
TERMINAL = {"trained": "FINISHED", "diverged": "FINISHED", "stopped": "FINISHED", "failed": "FAILED"}
"""Candidate status -> MLflow run status; any other status leaves the run RUNNING."""
SWEEP_TERMINAL = {"finished": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
MAX_PARAM_CHARS = 6000
"""Longest param value MLflow stores; a longer config value is in ``sweep_config.json`` only."""
MAX_TAG_CHARS = 5000
"""Tags are cut to this many characters (MLflow refuses values over 8000)."""
PAGE = 1000
PROBE_TIMEOUT_SECONDS = 5.0
SYNC_ENVIRONMENT = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
"""MLflow settings during a sync, unless the environment sets its own: a server that goes away mid-sync
costs seconds, not MLflow's default minutes of back-off; no "View run" line per finished run (the
command prints one line of its own)."""


class TrackingUnavailable(RuntimeError):
    """The tracking server does not answer, or the experiment cannot be used."""


@dataclass
class _Sync:
    """One sync in progress: the client, the experiment, and what was done so far."""

    client: MlflowClient
    target: MlflowTarget
    experiment_id: str
    created: int = 0
    candidate_runs: dict[int, str] = field(default_factory=dict)
    versions: list[tuple[str, str]] = field(default_factory=list)

    def report(self, parent_run_id: str | None) -> SyncReport:
        return SyncReport(
            tracking_uri=self.target.display_uri,
            experiment_id=self.experiment_id,
            parent_run_id=parent_run_id,
            candidate_runs=dict(self.candidate_runs),
            created=self.created,
            model_versions=tuple(self.versions),
        )


def sync_sweep(sessions: sessionmaker[Session], target: MlflowTarget, sweep_id: int) -> SyncReport:
    """Mirror the sweep, its candidates, their evaluations, decisions and promotions; returns what was done.
    Raises on failure (``TrackingUnavailable``, ``MlflowException``): ``sync_if_configured`` turns that into
    a warning."""
    sweep = load_sweep(sessions, sweep_id)
    with _connected(target) as sync:
        found = _runs(sync, f"tags.`{SWEEP_ID}` = '{sweep.id}'")
        mine = [run for run in found if run.data.tags.get(SWEEP_CREATED) == sweep.created_at]
        parent = _sweep_run(sync, sweep, _one(run for run in mine if run.data.tags.get(KIND) == "sweep"))
        children = {
            int(run.data.tags[CANDIDATE_ID]): run for run in mine if run.data.tags.get(KIND) == "candidate"
        }
        sweep_tags = {SWEEP_ID: str(sweep.id), SWEEP_CREATED: sweep.created_at}
        for candidate in sweep.candidates:
            _candidate_run(sync, candidate, children.get(candidate.id), parent.info.run_id, sweep_tags)
        _terminate(sync, parent, SWEEP_TERMINAL.get(sweep.status), sweep.finished_ms)
        return sync.report(parent.info.run_id)


def sync_candidates(
    sessions: sessionmaker[Session], target: MlflowTarget, candidate_ids: Collection[int]
) -> SyncReport:
    """Mirror candidates registered without a sweep, each as a run of its own (no parent)."""
    candidates = load_candidates(sessions, candidate_ids)
    with _connected(target) as sync:
        for candidate in candidates:
            found = _runs(sync, f"tags.`{CANDIDATE_ID}` = '{candidate.id}'")
            existing = _one(r for r in found if r.data.tags.get(CANDIDATE_CREATED) == candidate.created_at)
            _candidate_run(sync, candidate, existing, None, {})
        return sync.report(None)


@contextmanager
def _connected(target: MlflowTarget) -> Iterator[_Sync]:
    """A client on ``target`` with its experiment (created when missing), after checking that an HTTP
    server answers at all; with ``SYNC_ENVIRONMENT`` for the duration."""
    _probe(target)
    with _sync_environment():
        client = MlflowClient(tracking_uri=target.tracking_uri, registry_uri=target.tracking_uri)
        yield _Sync(client, target, _experiment_id(client, target.experiment))


def _probe(target: MlflowTarget) -> None:
    """For an ``http(s)`` URI: any HTTP answer within ``PROBE_TIMEOUT_SECONDS`` will do (even 401/404);
    a refused connection or a timeout is ``TrackingUnavailable``."""
    if not target.tracking_uri.lower().startswith(("http://", "https://")):
        return
    try:
        httpx.get(target.tracking_uri, timeout=PROBE_TIMEOUT_SECONDS)
    except httpx.HTTPError as error:
        raise TrackingUnavailable(
            f"the MLflow tracking server at {target.display_uri} does not answer ({type(error).__name__}: "
            f"{error})"
        ) from None


@contextmanager
def _sync_environment() -> Iterator[None]:
    """Set each of ``SYNC_ENVIRONMENT`` the environment leaves unset, for the duration only."""
    added = [name for name in SYNC_ENVIRONMENT if name not in os.environ]
    for name in added:
        os.environ[name] = SYNC_ENVIRONMENT[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _experiment_id(client: MlflowClient, name: str) -> str:
    """The experiment's id, created when missing; ``TrackingUnavailable`` when it is deleted."""
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return str(client.create_experiment(name))
        except MlflowException:  # created meanwhile by another sync
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage != "active":
        raise TrackingUnavailable(
            f"MLflow experiment {name!r} is deleted: restore it, or set EVALGATE_MLFLOW_EXPERIMENT to another"
        )
    return str(found.experiment_id)


def _runs(sync: _Sync, filter_string: str) -> list[Run]:
    """Every active run of the experiment matching ``filter_string`` (all pages)."""
    runs: list[Run] = []
    token = None
    while True:
        page = sync.client.search_runs(
            [sync.experiment_id], filter_string, max_results=PAGE, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _one(runs: Iterable[Run]) -> Run | None:
    """The oldest of ``runs`` (a run made by a sync that raced this one stays unused), or None."""
    return min(runs, key=lambda run: (run.info.start_time or 0, run.info.run_id), default=None)


def _open_run(
    sync: _Sync, existing: Run | None, name: str, start_ms: int, tags: Mapping[str, str], parent: str | None
) -> Run:
    """``existing``, or a new run with ``tags`` (and its parent) from the start."""
    if existing is not None:
        return existing
    sync.created += 1
    first = {**tags, **({PARENT: parent} if parent else {})}
    return sync.client.create_run(sync.experiment_id, start_time=start_ms, tags=first, run_name=name)


def _sweep_run(sync: _Sync, sweep: SweepSnapshot, existing: Run | None) -> Run:
    """The sweep's parent run: params, tags, base-model aggregates and the config artifact."""
    tags = {
        KIND: "sweep",
        SWEEP_ID: str(sweep.id),
        SWEEP_CREATED: sweep.created_at,
        "evalgate.status": sweep.status,
        "evalgate.dataset": sweep.dataset,
        "evalgate.base_model": sweep.base_model,
        "evalgate.config_hash": sweep.config_hash,
    }
    run = _open_run(sync, existing, sweep.name, sweep.created_ms, tags, None)
    run_id = run.info.run_id
    synced = _synced_ids(run, SYNCED_EVALUATIONS)
    fresh = [e for e in sweep.base_evaluations if e.id not in synced]
    metrics = [m for evaluation in fresh for m in evaluation_metrics(evaluation, prefix="base")]
    params = {**flat_params(sweep.config), "base_model": sweep.base_model, "dataset": sweep.dataset}
    _log(sync, run_id, params, tags, metrics)
    markers = {}
    if fresh:
        markers[SYNCED_EVALUATIONS] = _ids(synced | {e.id for e in fresh})
    if run.data.tags.get(SYNCED_CONFIG) != "1":
        sync.client.log_dict(run_id, sweep.config, CONFIG_ARTIFACT)
        markers[SYNCED_CONFIG] = "1"
    _log(sync, run_id, {}, markers, [])
    return run


def _candidate_run(
    sync: _Sync,
    candidate: CandidateSnapshot,
    existing: Run | None,
    parent: str | None,
    sweep_tags: Mapping[str, str],
) -> None:
    """The candidate's run: params, tags, training curves, new evaluation runs, new decisions, and the
    registered model version when it was promoted."""
    tags = {
        **sweep_tags,
        **candidate_tags(candidate),
        **(decision_tags(candidate) if candidate.decisions else {}),
    }
    run = _open_run(sync, existing, candidate.name, candidate.created_ms, tags, parent)
    run_id = run.info.run_id
    sync.candidate_runs[candidate.id] = run_id
    markers: dict[str, str] = {}
    metrics: list[Metric] = []
    if candidate.status in TERMINAL and run.data.tags.get(SYNCED_TRAINING) != "1":
        metrics += training_metrics(candidate)
        markers[SYNCED_TRAINING] = "1"
    evaluated = _synced_ids(run, SYNCED_EVALUATIONS)
    fresh = [e for e in candidate.evaluations if e.id not in evaluated]
    metrics += [m for evaluation in fresh for m in evaluation_metrics(evaluation)]
    if fresh:
        markers[SYNCED_EVALUATIONS] = _ids(evaluated | {e.id for e in fresh})
    _log(sync, run_id, candidate_params(candidate), tags, metrics)
    decided = _synced_ids(run, SYNCED_DECISIONS)
    for decision in candidate.decisions:
        if decision.id not in decided:
            sync.client.log_dict(run_id, decision.document(), f"gate/decision-{decision.id}.json")
            decided.add(decision.id)
            markers[SYNCED_DECISIONS] = _ids(decided)
    _log(sync, run_id, {}, markers, [])
    if candidate.promotions:
        _register(sync, candidate, run)
    wall = candidate.training.get("wall_seconds")
    end = candidate.created_ms + round(float(wall) * 1000) if _is_number(wall) else None
    _terminate(sync, run, TERMINAL.get(candidate.status), end)


def _terminate(sync: _Sync, run: Run, status: str | None, end_ms: int | None) -> None:
    """Set the run's final status and end time (None: now) unless it has that status already; a run whose
    evalgate status is not final stays RUNNING."""
    if status is not None and run.info.status != status:
        sync.client.set_terminated(run.info.run_id, status=status, end_time=end_ms)


def _log(
    sync: _Sync, run_id: str, params: Mapping[str, str], tags: Mapping[str, str], metrics: list[Metric]
) -> None:
    """One ``log_batch`` (MLflow's client splits it into requests within the server's limits)."""
    if not (params or tags or metrics):
        return
    sync.client.log_batch(
        run_id,
        metrics=metrics,
        params=[Param(key, value) for key, value in params.items()],
        tags=[RunTag(key, value) for key, value in tags.items()],
    )


def _register(sync: _Sync, candidate: CandidateSnapshot, run: Run) -> None:
    """The promoted candidate's adapter as a version of its registered model (once, found by run id);
    the alias moves to it when its promotion is the newest of its base model."""
    name = sync.target.registered_model(candidate.base_model)
    version = _version_of_run(sync, name, run.info.run_id)
    if version is None:
        source = _adapter_source(sync, candidate, run)
        if source is None:
            return
        _ensure_registered_model(sync, name, candidate.base_model)
        latest = candidate.promotions[-1]
        version = sync.client.create_model_version(
            name,
            source,
            run_id=run.info.run_id,
            tags={
                CANDIDATE_ID: str(candidate.id),
                "evalgate.candidate": candidate.name,
                "evalgate.promotion_id": str(latest.id),
                "evalgate.decision_id": str(latest.decision_id),
                "evalgate.promoted_by": latest.promoted_by,
                "evalgate.adapter_hash": candidate.adapter_hash or "",
            },
            description=f"LoRA adapter {candidate.name} (evalgate candidate {candidate.id}) of "
            f"{candidate.base_model}",
        )
    if candidate.promotions[-1].current:
        sync.client.set_registered_model_alias(name, sync.target.alias, version.version)
    sync.versions.append((name, str(version.version)))


def _version_of_run(sync: _Sync, name: str, run_id: str) -> ModelVersion | None:
    """The version of ``name`` registered from ``run_id`` before (the oldest), or None."""
    versions = [v for v in sync.client.search_model_versions(f"run_id = '{run_id}'") if v.name == name]
    return min(versions, key=lambda v: int(v.version), default=None)


def _ensure_registered_model(sync: _Sync, name: str, base_model: str) -> None:
    """Create the registered model unless it exists."""
    try:
        sync.client.get_registered_model(name)
    except MlflowException:
        try:
            sync.client.create_registered_model(
                name,
                tags={"evalgate.base_model": base_model},
                description=f"LoRA adapters of {base_model} promoted by the evalgate gate",
            )
        except MlflowException:  # created meanwhile by another sync
            sync.client.get_registered_model(name)


def _adapter_source(sync: _Sync, candidate: CandidateSnapshot, run: Run) -> str | None:
    """Where the model version points: a local adapter folder is logged as the run's ``adapter/``
    artifact (once) and that artifact is the source; a remote URL (``s3://``) is the source itself.
    None, with a warning, when there is no adapter to register."""
    uri = candidate.adapter_uri
    if not uri:
        logger.warning("candidate %s (id %s) was promoted but has no adapter", candidate.name, candidate.id)
        return None
    if "://" in uri and not uri.startswith("file://"):
        return uri
    folder = Path(uri.removeprefix("file://"))
    if run.data.tags.get(SYNCED_ADAPTER) != "1":
        if not folder.is_dir():
            logger.warning(
                "candidate %s (id %s) was promoted but its adapter folder %s is missing: not registered",
                candidate.name,
                candidate.id,
                folder,
            )
            return None
        sync.client.log_artifacts(run.info.run_id, str(folder), ADAPTER_ARTIFACT)
        _log(sync, run.info.run_id, {}, {SYNCED_ADAPTER: "1"}, [])
    return f"{run.info.artifact_uri.rstrip('/')}/{ADAPTER_ARTIFACT}"


def candidate_params(candidate: CandidateSnapshot) -> dict[str, str]:
    """``base_model``, ``learning_rate`` (when known) and every hyperparameter, as text."""
    params = {"base_model": candidate.base_model}
    if candidate.learning_rate is not None:
        params["learning_rate"] = _text(candidate.learning_rate)
    params.update(flat_params(candidate.hyperparameters))
    return params


def candidate_tags(candidate: CandidateSnapshot) -> dict[str, str]:
    """Identity, status, diagnosis (and its reason), why halving stopped it, adapter and error."""
    training = candidate.training
    values: dict[str, Any] = {
        KIND: "candidate",
        CANDIDATE_ID: str(candidate.id),
        CANDIDATE_CREATED: candidate.created_at,
        "evalgate.status": candidate.status,
        "evalgate.diagnosis": candidate.diagnosis,
        "evalgate.diagnosis_reason": training.get("diagnosis_reason"),
        "evalgate.halted": training.get("halted"),
        "evalgate.adapter_uri": candidate.adapter_uri,
        "evalgate.adapter_hash": candidate.adapter_hash,
        "evalgate.error": candidate.error,
    }
    return {key: str(value)[:MAX_TAG_CHARS] for key, value in values.items() if value not in (None, "")}


def decision_tags(candidate: CandidateSnapshot) -> dict[str, str]:
    """The newest decision: verdict, policy hash and name, its id and the runs it compared."""
    decision = candidate.decisions[-1]
    tags = {
        "evalgate.gate.verdict": decision.verdict,
        "evalgate.gate.policy_hash": decision.policy_hash,
        "evalgate.gate.decision_id": str(decision.id),
        "evalgate.gate.candidate_run_id": str(decision.candidate_run_id),
        "evalgate.gate.baseline_run_id": str(decision.baseline_run_id),
        "evalgate.gate.decisions": str(len(candidate.decisions)),
    }
    if decision.policy.get("name"):
        tags["evalgate.gate.policy"] = str(decision.policy["name"])[:MAX_TAG_CHARS]
    return tags


def training_metrics(candidate: CandidateSnapshot) -> list[Metric]:
    """The training curves at their steps (loss and rate: value i of the list at step i + 1), and the
    totals at step 0; all stamped with the candidate's creation time."""
    training, stamp = candidate.training, candidate.created_ms
    metrics = [
        Metric(f"train.{curve}", _number(value), stamp, step)
        for curve in ("loss", "learning_rate")
        for step, value in enumerate(training.get(curve) or [], start=1)
    ]
    metrics += [
        Metric("train.validation_loss", _number(value), stamp, int(step))
        for step, value in training.get("validation_loss") or []
    ]
    metrics += [
        Metric(f"train.{total}", float(training[total]), stamp, 0)
        for total in ("steps", "wall_seconds", "tokens_per_second")
        if _is_number(training.get(total))
    ]
    return metrics


def evaluation_metrics(evaluation: EvaluationSnapshot, prefix: str = "") -> list[Metric]:
    """``[prefix.]<evaluator>.<cohort>.<stat>`` for each aggregate and ``[prefix.]delta.<evaluator>.<cohort>``
    (mean paired delta, candidate - base) with ``.ci_low``/``.ci_high``, at step = the evaluation run's id
    and its finish time; statistics without a value (no scored row) are left out."""
    head = [prefix] if prefix else []
    found = [
        (metric_key(*head, evaluator, cohort, stat), entry.get(stat))
        for evaluator, cohorts in sorted(evaluation.aggregates.items())
        for cohort, entry in sorted(cohorts.items())
        for stat in AGGREGATE_STATS
    ]
    for evaluator, cohorts in sorted(evaluation.deltas.items()):
        for cohort, entry in sorted(cohorts.items()):
            found.append((metric_key(*head, "delta", evaluator, cohort), entry.get("mean")))
            found += [(metric_key(*head, "delta", evaluator, cohort, s), entry.get(s)) for s in DELTA_STATS]
    return [
        Metric(key, float(value), evaluation.finished_ms, evaluation.id)
        for key, value in found
        if _is_number(value)
    ]


def metric_key(*parts: str) -> str:
    """Parts joined by ``.``, each with characters MLflow refuses in a key, and ``.``, made ``_``."""
    return ".".join(re.sub(r"[^\w\- /]", "_", part) for part in parts)


def flat_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings flattened to dotted keys (``lora.r``; each part as ``metric_key`` makes it); lists
    as JSON, None as ``None``; values too long for a param are left out."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = prefix + metric_key(str(key))
        if isinstance(value, Mapping):
            flat.update(flat_params(value, f"{name}."))
            continue
        text = _text(value)
        if len(text) <= MAX_PARAM_CHARS:
            flat[name] = text
    return flat


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    return str(value)


def _number(value: Any) -> float:
    """A stored curve value as a float; None (a loss that was not a number) as NaN."""
    return float(value) if _is_number(value) else math.nan


def _is_number(value: Any) -> TypeGuard[int | float]:
    """True for an int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _synced_ids(run: Run, tag: str) -> set[int]:
    """The ids a ``evalgate.synced.*`` tag lists (comma-separated)."""
    return {int(part) for part in run.data.tags.get(tag, "").split(",") if part.strip().isdigit()}


def _ids(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in sorted(ids))
