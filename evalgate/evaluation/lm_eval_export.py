"""An evaluation run written the way lm-evaluation-harness writes ``--output_path --log_samples``.

    evalgate evaluate --dataset suite@v1 --output-path out      # out/base/results_<date>.json, ...
    write_lm_eval_output(store, run_id, out / "base", date)

Each cohort is a task. ``results_<date>.json`` holds, per cohort, ``<evaluator>,none``: the run's stored
mean (``summary.aggregates``) and ``<evaluator>_stderr,none``: the standard error of that mean,
``sd / sqrt(n)`` with the sample standard deviation (``ddof = 1``) of the n scored rows ("N/A" below two
rows), as lm-eval computes it; plus ``versions``, ``configs`` (minimal), ``higher_is_better``,
``n-shot`` (0) and ``n-samples``. ``samples_<cohort>_<date>.jsonl`` holds one record per eval row of
the cohort, in row id order: ``doc_id`` (its index), ``doc`` (the row), ``target`` (its reference),
``arguments`` (the prompt: the user turn), ``resps`` / ``filtered_resps`` (the model's answer),
``filter`` ``none``, ``metrics`` (the evaluators that scored the row) and each of those scores.
``evalgate import lm-eval`` reads the folder back (cohort ``lmeval_<cohort>``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from evalgate.data.store import DatasetStore
from evalgate.db.models import EvaluationRun, Generation, RowScore
from evalgate.db.session import session_scope
from evalgate.modeling.prompting import user_message

NO_FILTER = "none"


def output_date(now: datetime | None = None) -> str:
    """lm-eval's file date: the ISO time with ``-`` for ``:`` (``2026-01-31T12-00-00.123456``)."""
    return (now or datetime.now()).isoformat().replace(":", "-")


def write_lm_eval_output(store: DatasetStore, run_id: int, folder: Path, date: str) -> list[Path]:
    """Write run ``run_id`` into ``folder`` as lm-eval output dated ``date``; the files written
    (the results file first). Raises ``ValueError`` for a run that is missing or not finished."""
    run, scores, answers = _load(store, run_id)
    rows = _eval_rows(store, str(run["summary"]["dataset"]))
    by_cohort = _rows_by_cohort(rows, scores)
    folder.mkdir(parents=True, exist_ok=True)
    results_path = folder / f"results_{date}.json"
    written = [results_path]
    for cohort, cohort_rows in by_cohort.items():
        path = folder / f"samples_{cohort}_{date}.jsonl"
        budget = _budget(run["decoding"], cohort)
        lines = (
            json.dumps(_sample(i, row, scores, answers, budget), ensure_ascii=False)
            for i, row in enumerate(cohort_rows)
        )
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        written.append(path)
    results = _results(run, scores, by_cohort, date)
    results_path.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    return written


def _load(
    store: DatasetStore, run_id: int
) -> tuple[dict[str, Any], dict[str, dict[str, float]], dict[str, str]]:
    """The run's fields, its scores ``{row id: {evaluator: score}}`` and its answers by row id."""
    with session_scope(store.sessions) as session:
        stored = session.get(EvaluationRun, run_id)
        if stored is None or stored.status != "finished":
            raise ValueError(f"evaluation run {run_id} is missing or not finished")
        run: dict[str, Any] = {
            "id": stored.id,
            "candidate_id": stored.candidate_id,
            "model_fingerprint": stored.model_fingerprint,
            "decoding": dict(stored.decoding),
            "summary": dict(stored.summary),
        }
        found = session.execute(
            select(RowScore.row_id, RowScore.evaluator, RowScore.score).where(
                RowScore.evaluation_run_id == run_id, RowScore.score.is_not(None)
            )
        ).all()
        key = stored.summary.get("generation_key")
        generated = (
            session.execute(
                select(Generation.row_id, Generation.output).where(Generation.cache_key == key)
            ).all()
            if key
            else []
        )
    scores: dict[str, dict[str, float]] = defaultdict(dict)
    for row_id, evaluator, value in found:
        if value is not None:
            scores[row_id][evaluator] = float(value)
    return run, dict(scores), {row_id: output for row_id, output in generated}


def _eval_rows(store: DatasetStore, label: str) -> list[dict[str, Any]]:
    splits = store.load(label)
    return [dict(row) for row in splits["eval"]] if "eval" in splits else []


def _rows_by_cohort(
    rows: Sequence[Mapping[str, Any]], scores: Mapping[str, Mapping[str, float]]
) -> dict[str, list[Mapping[str, Any]]]:
    """Eval rows by cohort (cohorts with at least one score), each in row id order."""
    grouped: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: str(r["id"])):
        grouped[str(row["cohort"])].append(row)
    return {
        cohort: members
        for cohort, members in sorted(grouped.items())
        if any(scores.get(str(row["id"])) for row in members)
    }


def _budget(decoding: Mapping[str, Any], cohort: str) -> dict[str, Any]:
    """The generation arguments of a cohort's answers: its token budget, when the run recorded one."""
    budget = (decoding.get("cohort_max_new_tokens") or {}).get(cohort, decoding.get("max_new_tokens"))
    return {} if budget is None else {"max_new_tokens": budget}


def _sample(
    index: int,
    row: Mapping[str, Any],
    scores: Mapping[str, Mapping[str, float]],
    answers: Mapping[str, str],
    generation: Mapping[str, Any],
) -> dict[str, Any]:
    """One lm-eval sample record of ``row``."""
    row_id = str(row["id"])
    prompt = user_message(row)
    doc = {key: row.get(key) for key in ("id", "cohort", "question", "context", "reference")}
    target = str(row.get("reference") or "")
    answer = answers.get(row_id, "")
    values = dict(sorted(scores.get(row_id, {}).items()))
    return {
        "doc_id": index,
        "doc": doc,
        "target": target,
        "arguments": {"gen_args_0": {"arg_0": prompt, "arg_1": dict(generation)}},
        "resps": [[answer]],
        "filtered_resps": [answer],
        "filter": NO_FILTER,
        "metrics": list(values),
        "doc_hash": _sha(json.dumps(doc, indent=2, ensure_ascii=False)),
        "prompt_hash": _sha(prompt),
        "target_hash": _sha(target),
        **values,
    }


def _results(
    run: Mapping[str, Any],
    scores: Mapping[str, Mapping[str, float]],
    by_cohort: Mapping[str, Sequence[Mapping[str, Any]]],
    date: str,
) -> dict[str, Any]:
    """The results file: per cohort the stored means and their standard errors, and the run's facts."""
    summary = run["summary"]
    evaluators: Mapping[str, Mapping[str, Any]] = summary.get("evaluators", {})
    results: dict[str, dict[str, Any]] = {}
    configs: dict[str, dict[str, Any]] = {}
    versions: dict[str, str] = {}
    directions: dict[str, dict[str, bool]] = {}
    for cohort, rows in by_cohort.items():
        names = sorted({name for row in rows for name in scores.get(str(row["id"]), {})})
        entry: dict[str, Any] = {"alias": cohort}
        for name in names:
            values = [scores[str(r["id"])][name] for r in rows if name in scores.get(str(r["id"]), {})]
            entry[f"{name},{NO_FILTER}"] = summary["aggregates"][name][cohort]["mean"]
            entry[f"{name}_stderr,{NO_FILTER}"] = _stderr(values)
        results[cohort] = entry
        directions[cohort] = {
            name: bool(evaluators.get(name, {}).get("higher_is_better", True)) for name in names
        }
        versions[cohort] = ";".join(f"{name}={evaluators.get(name, {}).get('version', '')}" for name in names)
        configs[cohort] = {
            "task": cohort,
            "dataset_path": "evalgate",
            "dataset_name": summary.get("dataset"),
            "output_type": "generate_until",
            "metric_list": [
                {"metric": name, "aggregation": "mean", "higher_is_better": directions[cohort][name]}
                for name in names
            ],
            "metadata": {"version": versions[cohort]},
        }
    return {
        "results": results,
        "group_subtasks": {cohort: [] for cohort in results},
        "configs": configs,
        "versions": versions,
        "n-shot": dict.fromkeys(results, 0),
        "higher_is_better": directions,
        "n-samples": {
            cohort: {"original": len(rows), "effective": len(rows)} for cohort, rows in by_cohort.items()
        },
        "config": {
            "model": "evalgate",
            "model_args": {"run_id": run["id"], "candidate_id": run["candidate_id"]},
            "limit": None,
            "decoding": run["decoding"],
        },
        "evalgate": {
            "run_id": run["id"],
            "dataset": summary.get("dataset"),
            "dataset_hash": summary.get("dataset_hash"),
            "model_fingerprint": run["model_fingerprint"],
            "baseline_run_id": summary.get("baseline_run_id"),
        },
        "date": date,
    }


def _stderr(values: Sequence[float]) -> float | str:
    """``sd / sqrt(n)``, sd the sample standard deviation (``ddof = 1``); "N/A" below two values."""
    n = len(values)
    if n < 2:
        return "N/A"
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
