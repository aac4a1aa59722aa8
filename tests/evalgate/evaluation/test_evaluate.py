"""Evaluation runs with the tiny model: cached generations, stored scores, summaries, perplexity, ood_kl."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from peft import PeftModel
from sqlalchemy import func, select

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.models import EvaluationRun, Generation, RowScore
from evalgate.db.session import session_scope
from evalgate.evaluation.aggregate import scores_by_group
from evalgate.evaluation.forgetting import ood_kl, ood_kl_all
from evalgate.evaluation.options import EvaluationOptions
from evalgate.evaluation.records import run_records
from evalgate.evaluation.run import EvaluationHooks, evaluate_sweep
from evalgate.modeling import generation as generate
from evalgate.modeling.loading import load_model, model_fingerprint
from evalgate.sweep.config import SweepConfig
from evalgate.sweep.records import claim_candidate, finish_candidate, open_sweep
from evalgate.sweep.training.peft_trainer import attach_adapter, tokenize_rows, train_candidate
from evalgate.sweep.trials import Point, make_trial
from evaluators.base import Evaluator, ScoredRow
from evaluators.base import RowScore as Verdict

ANSWERS = ['{"name": "Ann", "quantity": 3}', '{"name": "Bob", "quantity": 1}']
RATES = (1e-3, 5e-2)


def _rows() -> list[dict[str, Any]]:
    train = [
        {
            "id": f"t{i}",
            "question": "Extract the order.",
            "context": f"Order {i}.",
            "reference": ANSWERS[i % 2],
            "split": "train",
        }
        for i in range(16)
    ]
    target = [
        {
            "id": f"e{i}",
            "question": "Extract the order.",
            "context": f"Order {i}.",
            "reference": ANSWERS[i % 2],
            "split": "eval",
        }
        for i in range(4)
    ]
    ood = [
        {
            "id": f"o{i}",
            "question": f"What is the capital of {country}?",
            "reference": f"{city}.",
            "cohort": "ood",
            "split": "eval",
        }
        for i, (country, city) in enumerate([("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome")])
    ]
    return train + target + ood


def _config(tiny_lm_dir: Path) -> SweepConfig:
    return SweepConfig.from_dict({
        "dataset": "tiny-eval", "base_model": str(tiny_lm_dir), "learning_rates": list(RATES),
        "max_steps": 12, "batch_size": 4, "max_seq_length": 96, "precision": "fp32", "device": "cpu",
        "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
    })  # fmt: skip


@pytest.fixture(scope="module")
def adapters(tiny_lm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[float, Path]:
    """One adapter per rate, trained once for the module on the train rows."""
    root = tmp_path_factory.mktemp("adapters")
    config = _config(tiny_lm_dir)
    base, tokenizer = load_model(str(tiny_lm_dir), tiny_lm_dir, dtype=torch.float32)
    tokenizer.padding_side = "right"
    examples = tokenize_rows(tokenizer, [r for r in _rows() if r["split"] == "train"], 96)
    found = {}
    for rate in RATES:
        model = attach_adapter(base, config)
        found[rate] = train_candidate(
            model, tokenizer, examples, config, rate, root / f"lr-{rate:g}", device="cpu", dtype=torch.float32
        ).adapter_dir
        base = model.unload()
    return found


@pytest.fixture
def sweep_id(tiny_lm_dir: Path, store: DatasetStore, write_jsonl, adapters: dict[float, Path]) -> int:
    """A sweep recorded as ``run_sweep`` records one, pointing at the module's adapters."""
    version = store.add("tiny-eval", [write_jsonl("rows.jsonl", _rows())]).version
    config = _config(tiny_lm_dir)
    sweep, _ = open_sweep(store.sessions, config, version)
    for rate, adapter_dir in adapters.items():
        candidate, _ = claim_candidate(
            store.sessions, sweep, make_trial(config, Point(rate)), config.base_model
        )
        finish_candidate(store.sessions, candidate, status="trained", adapter_uri=str(adapter_dir),
                         adapter_hash=model_fingerprint(str(adapter_dir)))  # fmt: skip
    return sweep


class AnswerLength(Evaluator):
    """A stub evaluator: answer length in characters, passes at 5 or more; target rows only."""

    name = "answer_length"
    version = "test"
    higher_is_better = True
    threshold = 5.0
    cohorts = ("target",)

    def score(self, rows: Sequence[ScoredRow]) -> list[Verdict]:
        return [self.verdict(float(len(row.answer))) for row in rows]


def _options(*names: str) -> EvaluationOptions:
    return EvaluationOptions(
        evaluators=names or ("answer_length",), max_new_tokens=8, batch_size=4, device="cpu", precision="fp32"
    )


STUB = EvaluationHooks(factory=lambda name: AnswerLength())
"""Every evaluator name builds the stub."""


def test_sweep_run_stores_per_row_scores_and_correct_summaries(settings: Settings, sweep_id: int) -> None:
    base, *candidates = evaluate_sweep(
        sweep_id, settings, _options("answer_length", "perplexity", "ood_kl"), hooks=STUB
    )
    sessions = DatasetStore.from_settings(settings).sessions

    assert [c.label for c in candidates] == [f"lr={rate:g}" for rate in RATES]
    with session_scope(sessions) as session:
        runs = session.scalars(select(EvaluationRun).order_by(EvaluationRun.id)).all()
        assert [run.status for run in runs] == ["finished"] * 3
        assert runs[0].candidate_id is None and runs[0].decoding["max_new_tokens"] == 8
        assert runs[1].model_fingerprint != runs[0].model_fingerprint != runs[2].model_fingerprint
        count = session.scalar(
            select(func.count()).select_from(RowScore).where(RowScore.evaluation_run_id == base.run_id)
        )
    assert count == 4 + 7  # answer_length on target rows, perplexity on all; no ood_kl for the base
    records = run_records(sessions, candidates[1].run_id)
    assert {(r.evaluator, r.cohort) for r in records} == {
        ("answer_length", "target"),
        ("perplexity", "target"),
        ("perplexity", "ood"),
        ("ood_kl", "ood"),
    }
    summary = candidates[1].summary
    for (evaluator, cohort), scores in scores_by_group(records).items():
        entry = summary["aggregates"][evaluator][cohort]
        assert entry["n"] == len(scores) and entry["mean"] == pytest.approx(np.mean(list(scores.values())))
    candidate_ood = {r.row_id: r.score for r in records if (r.evaluator, r.cohort) == ("perplexity", "ood")}
    base_ood = {
        r.row_id: r.score
        for r in run_records(sessions, base.run_id)
        if (r.evaluator, r.cohort) == ("perplexity", "ood")
    }
    differences = [candidate_ood[row] - base_ood[row] for row in ("o0", "o1", "o2")]  # type: ignore[operator]
    delta = summary["deltas"]["perplexity"]["ood"]
    assert sorted(candidate_ood) == sorted(base_ood) == ["o0", "o1", "o2"]
    assert delta["n"] == 3 and delta["unpaired"] == 0
    assert delta["mean"] == pytest.approx(sum(differences) / 3)
    half = 4.302652729749462 * statistics.stdev(differences) / 3**0.5  # Student's t(0.975, 2 df) x se
    assert delta["ci_low"] <= delta["mean"] - half + 1e-9 and delta["ci_high"] >= delta["mean"] + half - 1e-9
    assert summary["ood_delta"]["perplexity"] == delta
    assert summary["baseline_run_id"] == base.run_id and summary["seed"] == 0


def test_base_is_generated_once_for_two_candidates_and_reruns_hit_the_cache(
    settings: Settings, sweep_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str | None]] = []
    loads: list[str] = []

    def spy(model: Any, tokenizer: Any, rows: Any, adapters: Any, *args: Any) -> Any:
        calls.append(list(adapters))
        return generate.generate_per_adapter(model, tokenizer, rows, adapters, *args)

    real_load = generate.load_model
    monkeypatch.setattr(generate, "load_model", lambda *a, **k: loads.append("load") or real_load(*a, **k))

    hooks = EvaluationHooks(generator=spy, factory=STUB.factory)
    first = evaluate_sweep(sweep_id, settings, _options(), hooks=hooks)
    second = evaluate_sweep(sweep_id, settings, _options(), hooks=hooks)

    assert calls == [[None, "candidate_1", "candidate_2"]]
    assert loads == ["load"]  # the cached re-run with a model-free evaluator loads no weights
    assert [r.generated_rows for r in first] == [7, 7, 7] and [r.generated_rows for r in second] == [0, 0, 0]
    assert [r.summary["aggregates"] for r in first] == [r.summary["aggregates"] for r in second]
    with session_scope(DatasetStore.from_settings(settings).sessions) as session:
        assert session.scalar(select(func.count()).select_from(Generation)) == 3 * 7


def test_the_base_run_is_reused_until_the_evaluators_change(settings: Settings, sweep_id: int) -> None:
    first = evaluate_sweep(sweep_id, settings, _options("json_validation"))
    second = evaluate_sweep(sweep_id, settings, _options("json_validation"))
    other = evaluate_sweep(sweep_id, settings, _options("json_validation", "answer_accuracy"))

    assert second[0].run_id == first[0].run_id and second[0].generated_rows == 0
    assert all(run.summary["baseline_run_id"] == first[0].run_id for run in second[1:])
    assert second[1].run_id != first[1].run_id  # candidates get runs of their own each time
    assert other[0].run_id not in (first[0].run_id, second[0].run_id)
    assert set(other[0].summary["evaluators"]) == {"json_validation", "answer_accuracy"}


def test_perplexity_is_lower_for_references_the_candidate_was_trained_on(
    settings: Settings, sweep_id: int
) -> None:
    base, _, trained = evaluate_sweep(sweep_id, settings, _options("perplexity"), hooks=STUB)

    def target_perplexity(summary: dict[str, Any]) -> float:
        return float(summary["aggregates"]["perplexity"]["target"]["mean"])

    assert target_perplexity(trained.summary) < 0.9 * target_perplexity(base.summary)
    assert trained.summary["deltas"]["perplexity"]["target"]["ci_high"] < 0


def test_a_failing_evaluator_marks_the_run_failed(settings: Settings, sweep_id: int) -> None:
    def broken(name: str) -> Evaluator:
        raise RuntimeError("scorer crashed")

    with pytest.raises(RuntimeError, match="scorer crashed"):
        evaluate_sweep(sweep_id, settings, _options(), hooks=EvaluationHooks(factory=broken))

    with session_scope(DatasetStore.from_settings(settings).sessions) as session:
        run = session.scalars(select(EvaluationRun)).one()
    assert run.status == "failed" and "scorer crashed" in run.summary["error"]


def test_ood_kl_is_zero_for_the_base_itself_and_positive_for_a_trained_adapter(
    tiny_lm_dir: Path, adapters: dict[float, Path]
) -> None:
    base, tokenizer = load_model(str(tiny_lm_dir), tiny_lm_dir, dtype=torch.float32)
    model = attach_adapter(base, _config(tiny_lm_dir))  # freshly initialised LoRA: B = 0, the base itself
    model.load_adapter(str(adapters[RATES[1]]), adapter_name="trained")
    assert isinstance(model, PeftModel)
    rows = [r for r in _rows() if r.get("cohort") == "ood"]
    answers = [str(r["reference"]) for r in rows]

    untouched = ood_kl(model, tokenizer, rows, answers, adapter="default")
    trained = ood_kl(model, tokenizer, rows, answers, adapter="trained")

    assert untouched == [0.0, 0.0, 0.0]
    assert all(value > 1e-4 for value in trained)


def test_ood_kl_of_stacked_adapters_matches_each_adapter_alone(
    tiny_lm_dir: Path, adapters: dict[float, Path]
) -> None:
    base, tokenizer = load_model(str(tiny_lm_dir), tiny_lm_dir, dtype=torch.float32)
    model = attach_adapter(base, _config(tiny_lm_dir))
    for number, rate in enumerate(RATES):
        model.load_adapter(str(adapters[rate]), adapter_name=f"rate_{number}")
    rows = [r for r in _rows() if r.get("cohort") == "ood"]
    answers = [str(r["reference"]) for r in rows]
    names = ["default", *(f"rate_{number}" for number in range(len(RATES)))]

    together = ood_kl_all(model, tokenizer, rows, answers, names, batch_size=2)

    for name in names:
        assert together[name] == pytest.approx(ood_kl(model, tokenizer, rows, answers, name), abs=1e-5)
    assert together["default"] == pytest.approx([0.0] * len(rows), abs=1e-6)
    assert all(value > 1e-4 for value in together[names[1]] + together[names[2]])
