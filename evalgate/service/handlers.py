"""What a worker does for each job kind: train a sweep, evaluate a candidate or a sweep.

Each handler takes the job's context and payload and returns the JSON result stored on the job.
Progress is read off a rich ``Progress`` that the training and evaluation code already advance; a
cancelled job stops at the next training step (saving a checkpoint) or the next generation batch.
With ``EVALGATE_MLFLOW_TRACKING_URI`` set, a finished job mirrors its sweep or candidate into MLflow.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from rich.progress import Progress, TaskID

from evalgate.core.settings import Settings
from evalgate.service.worker import Handler, JobContext

SWEEP = "sweep"
EVALUATE = "evaluate"
JOB_KINDS = (SWEEP, EVALUATE)


class JobProgress(Progress):
    """A silent rich ``Progress`` whose tasks become the job's progress; with ``check``, it stops jobs.

    Every ``advance`` calls ``JobContext.check()``, so a cancelled evaluation stops at its next batch.
    """

    def __init__(self, context: JobContext, check: bool):
        super().__init__(disable=True)
        self.context = context
        self.checking = check
        context.progress_source = self.as_dict

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        if self.checking:
            self.context.check()

    def as_dict(self) -> dict[str, Any]:
        """``{"tasks": [{"name", "completed", "total", ...fields}]}``."""
        tasks = [
            {"name": task.description, "completed": task.completed, "total": task.total, **task.fields}
            for task in self.tasks
        ]
        return {"tasks": tasks}


def handlers(settings: Settings) -> dict[str, Handler]:
    """The handler of every job kind, bound to ``settings``."""
    return {
        SWEEP: lambda context, payload: run_sweep_job(settings, context, payload),
        EVALUATE: lambda context, payload: run_evaluation_job(settings, context, payload),
    }


def run_sweep_job(settings: Settings, context: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Payload ``{"config": {...sweep YAML as JSON...}}``: train (or resume) every rate."""
    from evalgate.sweep.config import SweepConfig
    from evalgate.sweep.run import run_sweep  # torch: only in workers

    config = SweepConfig.from_dict(payload["config"])
    context.log(f"sweep {config.name!r} on {config.dataset}: rates {list(config.learning_rates)}")
    result = run_sweep(
        config,
        settings,
        progress=JobProgress(context, check=False),
        should_stop=context.stop_requested,
    )
    context.log(f"sweep {result.sweep_id} finished")
    mirror_to_mlflow(settings, context, sweep_id=result.sweep_id)
    return {"sweep_id": result.sweep_id, "dataset": result.dataset, "candidates": result.candidates}


def run_evaluation_job(settings: Settings, context: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Payload ``{"candidate_id", "dataset"}`` or ``{"sweep_id"}`` plus optional evaluation options."""
    from evalgate.evaluation.options import EvaluationOptions
    from evalgate.evaluation.run import evaluate_candidate, evaluate_sweep

    options = EvaluationOptions.from_dict(payload.get("options", {}))
    progress = JobProgress(context, check=True)
    resume = f"job {context.job.id}"  # a retried attempt takes up the runs an earlier one stored
    if payload.get("sweep_id") is not None:
        context.log(f"evaluating sweep {payload['sweep_id']}")
        runs = evaluate_sweep(int(payload["sweep_id"]), settings, options, progress, resume)
    else:
        context.log(f"evaluating candidate {payload['candidate_id']} on {payload['dataset']}")
        runs = evaluate_candidate(
            int(payload["candidate_id"]), payload["dataset"], settings, options, progress, resume
        )
    for run in runs:
        context.log(f"run {run.run_id} ({run.label}): {run.generated_rows} answers generated")
    if payload.get("sweep_id") is not None:
        mirror_to_mlflow(settings, context, sweep_id=int(payload["sweep_id"]))
    else:
        mirror_to_mlflow(settings, context, candidate_ids={int(payload["candidate_id"])})
    return {"runs": [{"run_id": r.run_id, "candidate_id": r.candidate_id, "label": r.label} for r in runs]}


def mirror_to_mlflow(
    settings: Settings,
    context: JobContext,
    *,
    sweep_id: int | None = None,
    candidate_ids: Collection[int] = (),
) -> None:
    """With a tracking URI set, mirror what the job stored into MLflow and say so in the job's log; a
    tracking failure is a warning in the worker's log, never the job's failure (``sync_if_configured``)."""
    from evalgate.tracking.target import sync_if_configured

    report = sync_if_configured(settings, sweep_id=sweep_id, candidate_ids=candidate_ids)
    if report is not None:
        context.log(report.describe())
