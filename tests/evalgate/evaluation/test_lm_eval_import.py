"""lm-evaluation-harness output imported as evaluation runs and gated, on SQLite and PostgreSQL.

lm-eval really runs (once per module, in a subprocess, offline): the tiny model and the tiny model with a
random LoRA adapter on two local tasks (``tests/support/lm_eval_run.py``), saved by lm-eval's own
``EvaluationTracker``. ``evalgate import lm-eval`` is run as a user runs it; bad input is checked to
name the file, line and key, and to store nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetNotFoundError, DatasetStore
from evalgate.db.models import EvaluationRun, RowScore
from evalgate.db.session import session_scope
from evalgate.evaluation.lm_eval_import import LmEvalImportError, import_lm_eval
from evalgate.gate.policy import GatePolicy
from evalgate.gate.service import decide_candidate
from evalgate.sweep.external import CandidateRegistration, register_candidate
from tests.support.lm_eval_run import MC_DOCS, QA_DOCS

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]
OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
DATASET = "bench@v1"


@pytest.fixture(scope="module")
def lm_eval_work(tiny_lm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lm-eval's output folders of the base model and the candidate (``out/base``, ``out/candidate``),
    the adapter (``adapter``) and the tasks (``tasks``). Without lm-eval installed (the ``lm-eval``
    extra) these tests are skipped, and fail under CI."""
    if importlib.util.find_spec("lm_eval") is None:
        reason = "lm-eval is not installed: pip install -e '.[lm-eval]'"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("lm-eval")
    env = {
        **os.environ,
        **OFFLINE,
        "HF_DATASETS_CACHE": str(work / "datasets-cache"),
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.lm_eval_run", str(tiny_lm_dir), str(work)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return work


def _evalgate(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "EVALGATE_HOME": str(settings.home),
        "EVALGATE_DATABASE_URL": settings.resolved_database_url,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "evalgate", *args], env=env, capture_output=True, text=True, timeout=300
    )


def _dataset(store: DatasetStore, write_jsonl: Any) -> str:
    path = write_jsonl("bench.jsonl", [{"id": "q1", "question": "What is the capital of France?"}])
    return store.add("bench", [path]).version.label


def _candidate(settings: Settings, store: DatasetStore, work: Path, tiny_lm_dir: Path) -> int:
    allowed = settings.model_copy(update={"adapter_roots": [str(work)]})
    registration = CandidateRegistration(
        name="random-lora", base_model=str(tiny_lm_dir), adapter_uri=str(work / "adapter")
    )
    return register_candidate(store.sessions, allowed, registration)


def _model_folder(output: Path) -> Path:
    """lm-eval's ``<output_path>/<model name>/`` folder."""
    (folder,) = [sub for sub in output.iterdir() if sub.is_dir()]
    return folder


def _lm_eval_results(output: Path) -> dict[str, Any]:
    (path,) = _model_folder(output).glob("results_*.json")
    return dict(json.loads(path.read_text()))


def _samples(output: Path, task: str) -> list[dict[str, Any]]:
    (path,) = _model_folder(output).glob(f"samples_{task}_*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def _runs(store: DatasetStore) -> int:
    with session_scope(store.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(EvaluationRun)) or 0)


def _row_scores(store: DatasetStore, run_id: int, evaluator: str) -> dict[str, float]:
    with session_scope(store.sessions) as session:
        found = session.execute(
            select(RowScore.row_id, RowScore.score).where(
                RowScore.evaluation_run_id == run_id, RowScore.evaluator == evaluator
            )
        ).all()
    return {row_id: float(score) for row_id, score in found}


def test_imported_lm_eval_runs_are_paired_and_gated_on_the_benchmark_cohort(
    settings: Settings, store: DatasetStore, write_jsonl: Any, lm_eval_work: Path, tiny_lm_dir: Path
) -> None:
    label = _dataset(store, write_jsonl)
    candidate_id = _candidate(settings, store, lm_eval_work, tiny_lm_dir)
    out = lm_eval_work / "out"

    base = _evalgate(settings, "import", "lm-eval", str(out / "base"), "--model", "base", "--dataset", label)
    assert base.returncode == 0, base.stderr
    cand = _evalgate(
        settings,
        "import",
        "lm-eval",
        str(out / "candidate"),
        "--model",
        str(candidate_id),
        "--dataset",
        label,
    )
    assert cand.returncode == 0, cand.stderr
    assert "paired with base run" in cand.stdout

    with session_scope(store.sessions) as session:
        runs = {
            run.candidate_id: (run.id, dict(run.summary)) for run in session.scalars(select(EvaluationRun))
        }
    (base_run, base_summary), (cand_run, cand_summary) = runs[None], runs[candidate_id]
    assert cand_summary["baseline_run_id"] == base_run and "baseline_run_id" not in base_summary

    for output, run_id, summary in (
        (out / "base", base_run, base_summary),
        (out / "candidate", cand_run, cand_summary),
    ):
        lm_results = _lm_eval_results(output)["results"]
        for task, metric, docs in (("tiny_mc", "acc", MC_DOCS), ("tiny_mc", "acc_norm", MC_DOCS),
                                   ("tiny_qa", "exact_match", QA_DOCS)):  # fmt: skip
            stored = summary["aggregates"][metric][f"lmeval_{task}"]
            assert stored["n"] == docs
            assert stored["mean"] == pytest.approx(lm_results[task][f"{metric},none"])
            per_row = {f"{task}:{s['doc_id']}": float(s[metric]) for s in _samples(output, task)}
            assert {
                k: v for k, v in _row_scores(store, run_id, metric).items() if k.startswith(task)
            } == per_row

    base_acc = _row_scores(store, base_run, "acc")
    cand_acc = _row_scores(store, cand_run, "acc")
    expected_delta = sum(cand_acc[row] - base_acc[row] for row in base_acc) / len(base_acc)
    assert cand_summary["deltas"]["acc"]["lmeval_tiny_mc"]["mean"] == pytest.approx(expected_delta)
    assert cand_summary["deltas"]["acc"]["lmeval_tiny_mc"]["n"] == MC_DOCS

    policy = GatePolicy.from_dict(
        {"checks": [{"evaluator": "acc", "cohort": "lmeval_tiny_mc", "margin": 0.1},
                    {"evaluator": "exact_match", "cohort": "lmeval_tiny_qa", "margin": 0.1}]}
    )  # fmt: skip
    decision = decide_candidate(store.sessions, candidate_id, policy)
    assert (decision.candidate_run_id, decision.baseline_run_id) == (cand_run, base_run)
    checks = {check["check"]: check for check in decision.evidence["checks"]}
    acc = checks["acc/lmeval_tiny_mc"]
    assert acc["n"] == MC_DOCS and acc["unpaired_rows"] == 0 and acc["higher_is_better"] is True
    assert acc["baseline_mean"] == pytest.approx(
        _lm_eval_results(out / "base")["results"]["tiny_mc"]["acc,none"]
    )
    assert acc["candidate_mean"] == pytest.approx(
        _lm_eval_results(out / "candidate")["results"]["tiny_mc"]["acc,none"]
    )
    assert checks["exact_match/lmeval_tiny_qa"]["n"] == QA_DOCS
    assert decision.verdict in ("pass", "block")


# ----------------------------------------------------------------------------------------- bad input


def _copy(lm_eval_work: Path, tmp_path: Path, which: str = "base") -> Path:
    """A copy of one lm-eval output's model folder, to spoil."""
    target = tmp_path / f"copy-{which}"
    shutil.copytree(_model_folder(lm_eval_work / "out" / which), target)
    return target


def _spoil_line(folder: Path, task: str, line: int, change: Any) -> Path:
    (path,) = folder.glob(f"samples_{task}_*.jsonl")
    lines = path.read_text().splitlines()
    lines[line - 1] = change(lines[line - 1])
    path.write_text("\n".join(lines) + "\n")
    return path


def _refused(settings: Settings, store: DatasetStore, folder: Path, match: str, **options: Any) -> None:
    """The import raises ``LmEvalImportError`` matching ``match`` and stores no run."""
    before = _runs(store)
    with pytest.raises(LmEvalImportError, match=match):
        import_lm_eval(folder, settings=settings, **{"model": "base", "dataset": DATASET, **options})
    assert _runs(store) == before


def test_a_missing_folder_is_named(
    settings: Settings, store: DatasetStore, write_jsonl: Any, tmp_path: Path
) -> None:
    _dataset(store, write_jsonl)
    _refused(settings, store, tmp_path / "nowhere", r"nowhere: no such folder")


def test_a_folder_without_samples_files_says_to_log_samples(
    settings: Settings, store: DatasetStore, write_jsonl: Any, lm_eval_work: Path, tmp_path: Path
) -> None:
    _dataset(store, write_jsonl)
    folder = _copy(lm_eval_work, tmp_path)
    for path in folder.glob("samples_*.jsonl"):
        path.unlink()
    _refused(settings, store, folder, r"no samples_<task>_.*\.jsonl beside results_.*--log_samples")
    for path in folder.glob("results_*.json"):
        path.unlink()
    _refused(settings, store, folder, r"no lm-eval results_\*\.json and no samples_\*\.jsonl")


def test_a_sample_line_that_is_not_json_is_named_by_file_and_line(
    settings: Settings, store: DatasetStore, write_jsonl: Any, lm_eval_work: Path, tmp_path: Path
) -> None:
    _dataset(store, write_jsonl)
    folder = _copy(lm_eval_work, tmp_path)
    path = _spoil_line(folder, "tiny_mc", 3, lambda text: text[: len(text) // 2])
    _refused(settings, store, folder, rf"{path.name}, line 3: not JSON")


def test_a_metric_that_is_not_a_number_is_named_by_file_line_and_key(
    settings: Settings, store: DatasetStore, write_jsonl: Any, lm_eval_work: Path, tmp_path: Path
) -> None:
    _dataset(store, write_jsonl)
    folder = _copy(lm_eval_work, tmp_path)

    def spoil(text: str) -> str:
        record = json.loads(text)
        record["exact_match"] = "high"
        return json.dumps(record)

    path = _spoil_line(folder, "tiny_qa", 5, spoil)
    _refused(
        settings,
        store,
        folder,
        rf"{path.name}, line 5: metric 'exact_match' is \"high\", not a finite number",
    )


def test_a_truncated_samples_file_disagrees_with_the_results_file(
    settings: Settings, store: DatasetStore, write_jsonl: Any, lm_eval_work: Path, tmp_path: Path
) -> None:
    _dataset(store, write_jsonl)
    folder = _copy(lm_eval_work, tmp_path)
    (path,) = folder.glob("samples_tiny_mc_*.jsonl")
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    _refused(
        settings, store, folder, rf"{MC_DOCS - 1} documents, but .* scored {MC_DOCS} .*'n-samples.effective'"
    )


def test_an_unknown_candidate_or_dataset_version_is_refused(
    settings: Settings, store: DatasetStore, write_jsonl: Any, lm_eval_work: Path
) -> None:
    _dataset(store, write_jsonl)
    folder = lm_eval_work / "out" / "candidate"
    _refused(settings, store, folder, r"--model 999: no candidate with id 999", model="999")
    _refused(settings, store, folder, r"--model 'latest': give 'base' or a candidate id", model="latest")
    with pytest.raises(DatasetNotFoundError, match="bench has no version v9"):
        import_lm_eval(lm_eval_work / "out" / "base", model="base", dataset="bench@v9", settings=settings)
    assert _runs(store) == 0


def test_a_candidate_needs_a_base_model_import_to_pair_with(
    settings: Settings, store: DatasetStore, write_jsonl: Any, lm_eval_work: Path, tiny_lm_dir: Path
) -> None:
    _dataset(store, write_jsonl)
    candidate_id = _candidate(settings, store, lm_eval_work, tiny_lm_dir)
    out = lm_eval_work / "out"
    _refused(settings, store, out / "candidate", r"no base-model lm-eval import of tasks tiny_mc, tiny_qa",
             model=str(candidate_id))  # fmt: skip
    _refused(settings, store, out / "candidate", r"peft=.*import it with --model <candidate id>")

    base = import_lm_eval(out / "base", model="base", dataset=DATASET, settings=settings)
    _refused(settings, store, out / "candidate", rf"--baseline-run {base.run_id + 1}: no such evaluation run",
             model=str(candidate_id), baseline_run_id=base.run_id + 1)  # fmt: skip
    paired = import_lm_eval(
        out / "candidate",
        model=str(candidate_id),
        dataset=DATASET,
        settings=settings,
        baseline_run_id=base.run_id,
    )
    assert paired.summary["baseline_run_id"] == base.run_id


def test_the_cli_prints_one_clear_line_and_exits_2(
    settings: Settings, store: DatasetStore, write_jsonl: Any, lm_eval_work: Path, tmp_path: Path
) -> None:
    label = _dataset(store, write_jsonl)
    folder = _copy(lm_eval_work, tmp_path)
    path = _spoil_line(folder, "tiny_mc", 2, lambda text: "{not json")

    result = _evalgate(settings, "import", "lm-eval", str(folder), "--model", "base", "--dataset", label)

    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{path.name}, line 2: not JSON" in result.stderr
    assert "Traceback" not in result.stderr
    assert _runs(store) == 0


def test_importing_lm_eval_output_loads_no_model_library() -> None:
    modules = ["evalgate.evaluation.lm_eval_import", "evalgate.cli.imports"]
    heavy = ["torch", "transformers", "peft", "lm_eval"]
    loaded = f"[m for m in {heavy!r} if m in sys.modules]"
    script = f"import json, sys, {', '.join(modules)}; print(json.dumps({loaded}))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
