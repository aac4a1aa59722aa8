"""``evalgate evaluate --output-path``: a run written as lm-eval output, read back by ``evalgate import
lm-eval`` with the same numbers, on SQLite and PostgreSQL (the tiny model, run as a user runs it)."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.models import EvaluationRun, RowScore
from evalgate.db.session import session_scope

pytestmark = pytest.mark.slow
ROWS = [
    {"id": "t1", "question": "Extract the order.", "context": "Ann bought 3 apples.",
     "reference": '{"name": "Ann", "quantity": 3}', "cohort": "target"},
    {"id": "t2", "question": "Extract the order.", "context": "Bob bought 1 book.",
     "reference": '{"name": "Bob", "quantity": 1}', "cohort": "target"},
    {"id": "t3", "question": "Extract the order.", "context": "Eve bought 2 cups.",
     "reference": '{"name": "Eve", "quantity": 2}', "cohort": "target"},
    {"id": "o1", "question": "What is the capital of France?", "reference": "Paris", "cohort": "ood"},
    {"id": "o2", "question": "What is the capital of Spain?", "reference": "Madrid", "cohort": "ood"},
    {"id": "o3", "question": "What is the capital of Italy?", "reference": "Rome", "cohort": "ood"},
]  # fmt: skip
EVALUATORS = ("json_validation", "token_f1", "perplexity")


def _evalgate(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "EVALGATE_HOME": str(settings.home),
        "EVALGATE_DATABASE_URL": settings.resolved_database_url,
        "COLUMNS": "200",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "evalgate", *args], env=env, capture_output=True, text=True, timeout=300
    )


def _runs(store: DatasetStore) -> dict[str, tuple[int, dict[str, Any]]]:
    """``{"evaluate" | "lm-eval": (run id, summary)}``."""
    with session_scope(store.sessions) as session:
        runs = session.scalars(select(EvaluationRun).order_by(EvaluationRun.id)).all()
        return {run.summary.get("source", "evaluate"): (run.id, dict(run.summary)) for run in runs}


def _scores(store: DatasetStore, run_id: int) -> dict[tuple[str, str], list[float]]:
    with session_scope(store.sessions) as session:
        found = session.execute(
            select(RowScore.evaluator, RowScore.cohort, RowScore.score).where(
                RowScore.evaluation_run_id == run_id, RowScore.score.is_not(None)
            )
        ).all()
    grouped: dict[tuple[str, str], list[float]] = {}
    for evaluator, cohort, score in found:
        grouped.setdefault((evaluator, cohort), []).append(float(score))
    return grouped


def test_output_path_round_trips_through_the_lm_eval_import(
    settings: Settings, store: DatasetStore, write_jsonl: Any, tiny_lm_dir: Path, tmp_path: Path
) -> None:
    label = store.add("round-trip", [write_jsonl("rows.jsonl", ROWS)]).version.label
    out = tmp_path / "lm-eval-out"
    flags = [f"--evaluator={name}" for name in EVALUATORS]
    evaluated = _evalgate(
        settings, "evaluate", "--dataset", label, "--base-model", str(tiny_lm_dir), *flags,
        "--max-new-tokens", "6", "--device", "cpu", "--precision", "fp32", "--no-progress",
        "--output-path", str(out),
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    (results_path,) = (out / "base").glob("results_*.json")
    assert sorted(p.name.split("_")[1] for p in (out / "base").glob("samples_*.jsonl")) == ["ood", "target"]

    imported = _evalgate(
        settings, "import", "lm-eval", str(out / "base"), "--model", "base", "--dataset", label
    )
    assert imported.returncode == 0, imported.stderr

    runs = _runs(store)
    (run_id, stored), (import_id, back) = runs["evaluate"], runs["lm-eval"]
    results = json.loads(results_path.read_text())
    scores = _scores(store, run_id)
    compared = 0
    for evaluator, by_cohort in stored["aggregates"].items():
        for cohort, entry in by_cohort.items():
            if not entry["n"]:
                continue
            again = back["aggregates"][evaluator][f"lmeval_{cohort}"]
            assert (again["n"], again["mean"]) == (entry["n"], pytest.approx(entry["mean"]))
            assert results["results"][cohort][f"{evaluator},none"] == entry["mean"]
            values = scores[(evaluator, cohort)]
            stderr = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else "N/A"
            assert results["results"][cohort][f"{evaluator}_stderr,none"] == pytest.approx(stderr)
            compared += 1
    scored = {
        name for name, by_cohort in stored["aggregates"].items() if any(e["n"] for e in by_cohort.values())
    }
    assert "perplexity" in scored and set(back["aggregates"]) == scored
    assert compared == sum(len(back["aggregates"][name]) for name in scored)
    assert back["evaluators"]["perplexity"]["higher_is_better"] is False
    assert back["evaluators"]["token_f1"]["higher_is_better"] is True
    assert back["lm_eval"]["tasks"]["target"]["docs"] == sum(row["cohort"] == "target" for row in ROWS)
    assert import_id != run_id
