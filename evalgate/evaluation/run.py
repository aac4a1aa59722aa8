"""Evaluation runs: generate (cached) answers, score every eval row, aggregate, store.

    evalgate evaluate --sweep 3          # base model + every trained candidate of sweep 3
    evaluate_sweep(3, settings)          # the same from Python

Reads top to bottom: resolve the dataset version's eval rows; take every model's answers (the base,
then each candidate) from the generation cache or generate the missing ones (all models in one call of
the ``AdapterGenerate`` strategy); per model, run every applicable evaluator and, for candidates, the
``ood_kl`` forgetting signal (``evalgate.evaluation.scoring``); store the run whole in one transaction:
per-row scores and the aggregates (with paired deltas vs the base run for candidates). The model is
loaded only when something needs it: missing answers, perplexity, or ood_kl.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.progress import Progress

from evalgate.core.settings import Settings
from evalgate.core.timings import stage
from evalgate.data.store import DatasetStore, VersionInfo
from evalgate.evaluation.aggregate import DEFAULT_RESAMPLES, ScoreRecord, delta_table, summarise
from evalgate.evaluation.options import EvaluationOptions
from evalgate.evaluation.pseudo_evaluators import OOD_KL
from evalgate.evaluation.records import (
    CandidateInfo,
    RunKey,
    cached_generations,
    candidate_info,
    dataset_version_id,
    finished_base_run,
    resumed_run,
    run_records,
    store_generations,
    store_run,
    sweep_candidates,
)
from evalgate.evaluation.scoring import EvaluatorFactory, Scorer, default_factory
from evalgate.modeling.generation import (
    AdapterGenerate,
    Answer,
    DecodingSettings,
    ModelPool,
    cache_key,
    generate_per_adapter,
)
from evalgate.modeling.stacked_generation import generate_mixed_adapters


@dataclass(frozen=True)
class EvaluationHooks:
    """In-process replacements for how answers are generated and evaluators built (tests, benchmarks)."""

    generator: AdapterGenerate | None = None
    """How answers of several adapters are generated; None: as ``EvaluationOptions.mixed_adapters`` says."""
    factory: EvaluatorFactory | None = None
    """Builds an evaluator by name; None: ``evalgate.evaluation.factory.build_evaluator`` or the registry."""


@dataclass(frozen=True)
class RunResult:
    """One finished evaluation run."""

    run_id: int
    candidate_id: int | None
    label: str
    generated_rows: int
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Context:
    """What every run of one evaluation call shares."""

    store: DatasetStore
    version: VersionInfo
    version_id: int
    rows: list[dict[str, Any]]
    pool: ModelPool
    options: EvaluationOptions
    hooks: EvaluationHooks
    factory: EvaluatorFactory
    progress: Progress | None
    resume_key: str | None = None
    """Names this evaluation across attempts (a job's id): a retry takes up the runs stored before."""

    def decoding(self) -> DecodingSettings:
        return DecodingSettings(
            max_new_tokens=self.options.max_new_tokens,
            cohort_max_new_tokens=dict(self.options.cohort_max_new_tokens),
            batch_size=self.options.batch_size,
            dtype=str(self.pool.dtype).removeprefix("torch."),
            products=self.pool.products,
            device=self.pool.device.split(":", 1)[0],
            mixed_adapters=self.options.mixed_adapters,
        )

    def generator(self) -> AdapterGenerate:
        if self.hooks.generator is not None:
            return self.hooks.generator
        return generate_mixed_adapters if self.options.mixed_adapters else generate_per_adapter


def evaluate_model(
    base_model: str,
    dataset: str,
    settings: Settings,
    options: EvaluationOptions | None = None,
    progress: Progress | None = None,
    hooks: EvaluationHooks | None = None,
) -> RunResult:
    """Evaluate the base model on ``dataset``'s eval split (``NAME@vN``); returns the run."""
    context = _context(base_model, dataset, settings, options, progress, hooks=hooks)
    return _evaluate_all(context, [])[0]


def evaluate_candidate(
    candidate_id: int,
    dataset: str,
    settings: Settings,
    options: EvaluationOptions | None = None,
    progress: Progress | None = None,
    resume_key: str | None = None,
    hooks: EvaluationHooks | None = None,
) -> list[RunResult]:
    """Evaluate the base model then the candidate on ``dataset``; returns [base run, candidate run].

    With ``resume_key`` (the same on every attempt, e.g. a job's id), runs an earlier attempt stored
    are taken up instead of stored again."""
    store = DatasetStore.from_settings(settings)
    candidate = candidate_info(store.sessions, candidate_id)
    context = _context(candidate.base_model, dataset, settings, options, progress, resume_key, hooks)
    return _evaluate_all(context, [candidate])


def evaluate_sweep(
    sweep_id: int,
    settings: Settings,
    options: EvaluationOptions | None = None,
    progress: Progress | None = None,
    resume_key: str | None = None,
    hooks: EvaluationHooks | None = None,
) -> list[RunResult]:
    """Evaluate the base model and every trained candidate of a sweep on the sweep's dataset version
    (``resume_key`` as in ``evaluate_candidate``)."""
    store = DatasetStore.from_settings(settings)
    label, base_model, ids = sweep_candidates(store.sessions, sweep_id)
    candidates = [candidate_info(store.sessions, candidate_id) for candidate_id in ids]
    context = _context(base_model, label, settings, options, progress, resume_key, hooks)
    return _evaluate_all(context, candidates)


def _context(
    base_model: str,
    dataset: str,
    settings: Settings,
    options: EvaluationOptions | None,
    progress: Progress | None,
    resume_key: str | None = None,
    hooks: EvaluationHooks | None = None,
) -> _Context:
    options = options or EvaluationOptions()
    hooks = hooks or EvaluationHooks()
    store = DatasetStore.from_settings(settings)
    version = store.get(dataset)
    splits = store.load(version.label)
    if "eval" not in splits or len(splits["eval"]) == 0:
        raise ValueError(f"{version.label} has no eval rows to evaluate on")
    return _Context(
        store=store,
        version=version,
        version_id=dataset_version_id(store.sessions, version.name, version.number),
        rows=[dict(row) for row in splits["eval"]],
        pool=ModelPool(base_model, settings.home, device=options.device, precision=options.precision),
        options=options,
        hooks=hooks,
        factory=hooks.factory or default_factory(settings),
        progress=progress,
        resume_key=resume_key,
    )


def _evaluate_all(context: _Context, candidates: Sequence[CandidateInfo]) -> list[RunResult]:
    """The base run, then one run per candidate (answers of all models generated up front)."""
    targets: list[CandidateInfo | None] = [None, *candidates]
    answers, generated = _answers(context, targets)
    scorer = Scorer(context.rows, context.pool, context.factory, candidates)
    base = (
        _resumed(context, None)
        or _stored_base_run(context, generated[None])
        or _run(context, None, answers[None], generated[None], answers[None], None, scorer)
    )
    results = [base]
    for candidate in candidates:
        key = candidate.id
        results.append(
            _resumed(context, candidate)
            or _run(context, candidate, answers[key], generated[key], answers[None], base.run_id, scorer)
        )
    return results


def _resumed(context: _Context, target: CandidateInfo | None) -> RunResult | None:
    """The run an earlier attempt of this evaluation (same ``resume_key``) stored for ``target``."""
    if context.resume_key is None:
        return None
    found = resumed_run(context.store.sessions, _run_key(context, target), context.resume_key)
    if found is None:
        return None
    run_id, summary = found
    return RunResult(run_id, _id(target), _label(target), int(summary.get("generated_rows", 0)), summary)


def _stored_base_run(context: _Context, generated: int) -> RunResult | None:
    """The base model's finished run of an earlier evaluation, when this one would store the same:
    same model, dataset version, decoding, and evaluators at the same versions (default evaluators
    only, and only when no base answer had to be generated)."""
    if context.hooks.factory is not None or generated:
        return None
    from evaluators import registry

    names = _names(context, None)
    found = finished_base_run(
        context.store.sessions,
        version_id=context.version_id,
        fingerprint=context.pool.fingerprint(None),
        decoding=context.decoding().to_dict(),
        evaluator_versions={name: registry.get(name).version for name in names},
    )
    if found is None:
        return None
    run_id, summary = found
    return RunResult(run_id, None, "base", 0, summary)


def _answers(
    context: _Context, targets: Sequence[CandidateInfo | None]
) -> tuple[dict[int | None, dict[str, Answer]], dict[int | None, int]]:
    """Every target's answers by row id: from the cache, the missing ones generated and cached."""
    decoding = context.decoding()
    answers: dict[int | None, dict[str, Answer]] = {}
    missing: dict[int | None, list[str]] = {}
    for target in targets:
        key = _key(context, target, decoding)
        answers[_id(target)] = cached_generations(context.store.sessions, key)
        missing[_id(target)] = [r["id"] for r in context.rows if r["id"] not in answers[_id(target)]]
    todo = [t for t in targets if missing[_id(t)]]
    if todo:
        wanted = {row_id for t in todo for row_id in missing[_id(t)]}
        rows = [row for row in context.rows if row["id"] in wanted]
        adapters = [context.pool.adapter(t) for t in todo]
        model, tokenizer = context.pool.load()
        advance = _task(context.progress, "generate", len(rows) * len(todo))
        with stage("evaluation: generation"):
            fresh = context.generator()(model, tokenizer, rows, adapters, decoding, advance)
        for target, adapter in zip(todo, adapters, strict=True):
            new = {
                r["id"]: a
                for r, a in zip(rows, fresh[adapter], strict=True)
                if r["id"] in missing[_id(target)]
            }
            store_generations(context.store.sessions, _key(context, target, decoding), new)
            answers[_id(target)].update(new)
    return answers, {_id(t): len(missing[_id(t)]) for t in targets}


def _run(
    context: _Context,
    candidate: CandidateInfo | None,
    answers: dict[str, Answer],
    generated: int,
    base_answers: dict[str, Answer],
    base_run_id: int | None,
    scorer: Scorer,
) -> RunResult:
    """One evaluation run: score, then store the run whole (``store_run``); on any error a failed run
    is stored with the reason and the error re-raised."""
    sessions = context.store.sessions
    key, label = _run_key(context, candidate), _label(candidate)
    try:
        names = _names(context, candidate)
        advance = _task(context.progress, f"score {label}", len(names))
        with stage("evaluation: scoring"):
            scores, evaluators = scorer.score(candidate, answers, base_answers, names, advance)
    except BaseException as error:
        failure = {"error": f"{type(error).__name__}: {error}"}
        store_run(sessions, key, "failed", [], lambda *_: failure)
        raise
    base_records = run_records(sessions, base_run_id) if base_run_id is not None else None

    def summarize(run_id: int, records: list[ScoreRecord]) -> dict[str, Any]:
        summary = _summary(context, records, base_run_id, base_records, evaluators, generated)
        summary["generation_key"] = _key(context, candidate, context.decoding())
        if context.resume_key is not None:
            summary["resume_key"] = context.resume_key
        return summary

    run_id, summary = store_run(sessions, key, "finished", scores, summarize)
    return RunResult(run_id, _id(candidate), label, generated, summary)


def _summary(
    context: _Context,
    records: list[ScoreRecord],
    base_run_id: int | None,
    base_records: list[ScoreRecord] | None,
    evaluators: dict[str, dict[str, Any]],
    generated: int,
) -> dict[str, Any]:
    """Aggregates of the run's ``records`` (and paired deltas vs the base run's), JSON-ready."""
    seed, resamples = context.options.seed, DEFAULT_RESAMPLES
    summary: dict[str, Any] = {
        "dataset": context.version.label,
        "dataset_hash": context.version.content_hash,
        "seed": seed,
        "resamples": resamples,
        "confidence": 0.95,
        "rows": len(context.rows),
        "generated_rows": generated,
        "evaluators": evaluators,
        "aggregates": summarise(records, seed=seed, resamples=resamples),
    }
    if base_run_id is not None and base_records is not None:
        deltas = delta_table(records, base_records, seed=seed, resamples=resamples, zero_baseline=[OOD_KL])
        summary["baseline_run_id"] = base_run_id
        summary["deltas"] = deltas
        summary["ood_delta"] = {
            name: by_cohort["ood"] for name, by_cohort in deltas.items() if "ood" in by_cohort
        }
    return summary


def _run_key(context: _Context, target: CandidateInfo | None) -> RunKey:
    return RunKey(
        _id(target), context.version_id, context.pool.fingerprint(target), context.decoding().to_dict()
    )


def _label(target: CandidateInfo | None) -> str:
    return "base" if target is None else target.name


def _names(context: _Context, candidate: CandidateInfo | None) -> list[str]:
    """The evaluators to run: the requested ones, or every registered one plus ood_kl for candidates."""
    if context.options.evaluators is not None:
        names = list(context.options.evaluators)
    else:
        from evaluators import registry

        names = [*registry.names(), OOD_KL]
    return [name for name in names if name != OOD_KL or candidate is not None]


def _key(context: _Context, target: CandidateInfo | None, decoding: DecodingSettings) -> str:
    return cache_key(context.pool.fingerprint(target), context.version.content_hash, decoding)


def _id(target: CandidateInfo | None) -> int | None:
    return None if target is None else target.id


def _task(progress: Progress | None, description: str, total: int) -> Callable[[int], None] | None:
    """A progress task advanced by the returned callable (None without a progress display)."""
    if progress is None:
        return None
    task = progress.add_task(description, total=total)
    return lambda done: progress.advance(task, done)
