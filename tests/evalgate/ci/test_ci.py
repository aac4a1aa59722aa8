"""`evalgate ci`: config validation, and the real command's exit codes: 2 on errors (subprocess and
in-process), 0 and 1 end to end with the tiny model, standalone (SQLite) and through a server (PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from evalgate.ci.config import CiConfig, CiConfigError
from evalgate.cli import ci as cli_ci
from evalgate.client import Client
from evalgate.core.paths import REPO_ROOT
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.models import Candidate, EvaluationRun
from evalgate.db.session import session_scope
from tests.api.service import EVALUATION, ServerPort, Service, sweep_config, write_rows

LENIENT = {"checks": [{"evaluator": "perplexity", "cohort": "target", "relative_margin": 0.05}]}
"""Passes every candidate trained on the tiny dataset: its target eval rows are training rows too, so
training lowers their perplexity (and a candidate against itself has no delta at all)."""
STRICT = {"checks": [{"evaluator": "exact_match", "cohort": "target", "floor": 0.5}, *LENIENT["checks"]]}
"""Blocks every model on the tiny dataset: answers get 8 new tokens (``EVALUATION``), and no JSON text
equal to a target reference fits in fewer than 11 tokens of the tiny model, so exact_match is 0."""


def _files(folder: Path) -> Path:
    """A sweep YAML and a policy YAML in ``folder``; returns the folder."""
    (folder / "sweep.yaml").write_text("name: w\ndataset: other\nbase_model: m\nlearning_rates: [1.0e-3]\n")
    (folder / "policy.yaml").write_text("checks: [{evaluator: exact_match, cohort: target, margin: 0.05}]\n")
    return folder


def _config(folder: Path, **changes: Any) -> CiConfig:
    data: dict[str, Any] = {"dataset": "suite@v1", "sweep": "sweep.yaml", "policy": "policy.yaml"}
    data.update(changes)
    return CiConfig.from_dict({k: v for k, v in data.items() if v is not None}, _files(folder))


def test_a_config_reads_its_sweep_and_policy_relative_to_its_folder(tmp_path: Path) -> None:
    config = _config(tmp_path, dataset="suite@3", evaluation={"evaluators": ["exact_match"], "batch_size": 2})

    assert config.dataset == "suite@v3" and config.sweep is not None and config.sweep.dataset == "suite@v3"
    assert config.sweep.name == "w" and config.policy.checks[0].label == "exact_match/target"
    assert config.evaluation.to_dict()["evaluators"] == ["exact_match"] and config.evaluation.batch_size == 2
    assert (config.promote, config.outputs, config.model) == (False, Path("ci-report"), "m")


def test_registered_candidates_resolve_relative_adapters_against_the_config_folder(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        sweep=None,
        base_model="base",
        candidates=[{"name": "run-1", "adapter": "adapters/run-1", "learning_rate": 3.0e-4}],
    )

    (candidate,) = config.candidates
    assert candidate.adapter == str((tmp_path / "adapters" / "run-1").resolve())
    assert (config.model, config.sweep, config.title) == ("base", None, "candidates on suite@v1")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dataset": "suite"}, "dataset: 'suite' must be pinned to a version (NAME@vN)"),
        ({"dataset": "suite@latest"}, "must be pinned"),
        ({"dataset": "suite@v0"}, "expected NAME@vN with N >= 1"),
        ({"dataset": None}, "dataset: is required"),
        ({"promot": True}, "unknown key(s) promot"),
        ({"candidates": [{"name": "a", "adapter": "/a"}]}, "give exactly one of sweep"),
        ({"sweep": None}, "give exactly one of sweep"),
        ({"sweep": {"learning_rates": [-1.0]}}, "sweep.learning_rates[0]: must be > 0"),
        ({"sweep": {"lr": [1.0]}}, "unknown key(s) sweep.lr"),
        ({"sweep": "missing.yaml"}, "missing.yaml: cannot read YAML"),
        ({"base_model": "m"}, "base_model: set it in the sweep config"),
        ({"policy": None}, "policy: is required"),
        ({"policy": {"checks": []}}, "policy.checks: give at least one check"),
        (
            {"policy": {"checks": [{"evaluator": "exact_match", "cohort": "t", "margin": -1}]}},
            "policy.checks[0].margin: must be >= 0",
        ),
        (
            {"evaluation": {"evaluators": ["perplexity"]}},
            "policy.checks[0].evaluator: 'exact_match' (exact_match/target) is not run by the evaluation",
        ),
        ({"evaluation": {"evaluators": ["nope"]}}, "evaluation.evaluators: unknown evaluator 'nope'"),
        ({"evaluation": {"batch_size": 0}}, "evaluation.batch_size: must be >= 1, got 0"),
        ({"evaluation": {"batch_size": 2.0}}, "evaluation.batch_size: must be an integer, got 2.0"),
        ({"evaluation": {"device": "tpu"}}, "evaluation.device: 'tpu' is not one of"),
        ({"evaluation": {"precision": "int8"}}, "evaluation.precision"),
        ({"evaluation": {"beams": 2}}, "unknown key(s) evaluation.beams"),
        ({"evaluation": {"cohort_max_new_tokens": {"ood": 0}}}, "evaluation.cohort_max_new_tokens.ood"),
        ({"evaluation": {"cohort_max_new_tokens": [24]}}, "evaluation.cohort_max_new_tokens: must be"),
        ({"promote": "yes"}, "promote: must be true or false"),
        ({"outputs": ""}, "outputs: must be a folder path"),
        ({"mlflow": {"experiment": "x"}}, "mlflow.tracking_uri: is required"),
        ({"mlflow": {"tracking_uri": "http://m:5000", "run": 1}}, "unknown key(s) mlflow.run"),
    ],
)
def test_bad_values_are_errors_that_name_the_key(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(CiConfigError) as error:
        _config(tmp_path, **changes)

    assert message in str(error.value)


def test_the_configs_mlflow_section_is_used_over_the_settings(tmp_path: Path) -> None:
    from evalgate.ci.local import tracking_settings
    from evalgate.core.settings import Settings

    settings = Settings(home=tmp_path, mlflow_tracking_uri="http://env:5000")
    config = _config(tmp_path, mlflow={"tracking_uri": "http://job:5000", "experiment": "weekly"})

    tracked = tracking_settings(config, settings)

    assert (tracked.mlflow_tracking_uri, tracked.mlflow_experiment) == ("http://job:5000", "weekly")
    assert tracking_settings(_config(tmp_path), settings) is settings


@pytest.mark.parametrize(
    ("candidates", "message"),
    [
        ([{"name": "a"}], "candidates[0].adapter: is required"),
        ([{"name": "a", "adapter": "/a", "learning_rate": -1}], "candidates[0].learning_rate: must be > 0"),
        ([{"name": "a", "adapter": "/a"}, {"name": "a", "adapter": "/b"}], "two candidates share a name"),
        ([{"name": "a", "adapter": "/a", "rate": 1}], "unknown key(s) candidates[0].rate"),
    ],
)
def test_bad_candidates_are_errors_that_name_the_entry(
    tmp_path: Path, candidates: list[Any], message: str
) -> None:
    with pytest.raises(CiConfigError) as error:
        _config(tmp_path, sweep=None, candidates=candidates)

    assert message in str(error.value)


def test_the_examples_are_valid() -> None:
    config = CiConfig.from_yaml(REPO_ROOT / "examples" / "ci.yaml")
    workflow = yaml.safe_load((REPO_ROOT / "examples" / "weekly-retrain.yml").read_text())

    assert config.dataset == "evalgate-suite@v1" and config.sweep is not None
    assert config.sweep.dataset == "evalgate-suite@v1" and len(config.sweep.learning_rates) == 4
    assert config.policy.name == "main" and config.outputs == Path("ci-report")
    assert workflow[True]["schedule"][0]["cron"].endswith("* * 1")  # YAML 1.1 reads `on:` as True
    steps = "\n".join(str(step) for step in workflow["jobs"]["retrain"]["steps"])
    for needle in (
        "'uses': './'",  # the evalgate action (action.yml), tested in test_github_action.py
        "'config': 'examples/ci.yaml'",
        "evalgate-suite datasets/suite/*.jsonl",
        "upload-artifact",
        "ci-report/junit.xml",
    ):
        assert needle in steps


# ------------------------------------------------------------------------------------ exit code 2


def _evalgate_ci(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evalgate", "ci", *args, "--no-progress"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _env(home: Path, database_url: str) -> dict[str, str]:
    return {**os.environ, "EVALGATE_HOME": str(home), "EVALGATE_DATABASE_URL": database_url, "COLUMNS": "200"}


def _write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_an_unpinned_dataset_exits_2_with_one_line_and_error_outputs(tmp_path: Path) -> None:
    config = _write_config(tmp_path / "ci.yaml", {"dataset": "tiny", "sweep": {}, "policy": LENIENT})

    done = _evalgate_ci(_env(tmp_path / "home", f"sqlite:///{tmp_path / 'db.sqlite'}"), tmp_path, str(config))

    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: {config}: dataset: 'tiny' must be pinned to a version (NAME@vN): weekly runs must compare "
        "like with like, and NAME or NAME@latest would silently move to the newest version"
    ]
    result = json.loads((tmp_path / "ci-report" / "result.json").read_text())
    assert result["exit_code"] == 2 and "must be pinned" in result["error"]


def test_an_unknown_dataset_exits_2(tmp_path: Path, database_url: str) -> None:
    config = _write_config(
        tmp_path / "ci.yaml",
        {"dataset": "tiny-ci@v1", "sweep": {"base_model": "m"}, "policy": LENIENT, "outputs": "out"},
    )

    done = _evalgate_ci(_env(tmp_path / "home", database_url), tmp_path, str(config))

    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == "error: no dataset named 'tiny-ci'"
    assert json.loads((tmp_path / "out" / "result.json").read_text())["exit_code"] == 2


def test_an_unreachable_server_or_a_missing_token_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalgate.cli.main import typer_app

    monkeypatch.setattr(cli_ci, "SERVER_RETRIES", 0)
    monkeypatch.delenv("EVALGATE_TOKEN", raising=False)
    config = _write_config(
        tmp_path / "ci.yaml",
        {"dataset": "tiny@v1", "sweep": {}, "policy": LENIENT, "outputs": str(tmp_path / "out")},
    )
    with ServerPort() as refusing:  # held, never listening: every connection is refused
        url = refusing.url
        unreachable = CliRunner().invoke(typer_app, ["ci", str(config), "--server", url, "--token", "t"])
        no_token = CliRunner().invoke(typer_app, ["ci", str(config), "--server", url])

    assert unreachable.exit_code == 2 and f"cannot reach the evalgate server at {url}" in unreachable.output
    assert no_token.exit_code == 2 and "--server needs a token" in no_token.output


# ------------------------------------------------------------------------------ end to end: 0 and 1


def _tiny_ci(tiny_lm_dir: Path, policy: dict[str, Any], rates: int = 1, **extra: Any) -> dict[str, Any]:
    """A CI config on the tiny model: a sweep of ``rates`` rates of 4 steps, exact_match and perplexity."""
    sweep = {k: v for k, v in sweep_config(tiny_lm_dir, 4).items() if k != "dataset"}
    sweep["learning_rates"] = [1.0e-3, 1.0e-2][:rates]
    return {"dataset": "tiny-e2e@v1", "sweep": sweep, "policy": policy, "evaluation": EVALUATION, **extra}


def _junit(folder: Path) -> ET.Element:
    return ET.parse(folder / "junit.xml").getroot()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_standalone_passes_and_promotes_then_blocks_registered_adapters_on_a_new_version(
    tmp_path: Path, settings: Settings, tiny_lm_dir: Path
) -> None:
    store = DatasetStore.from_settings(settings)
    store.add("tiny-e2e", [str(write_rows(tmp_path / "rows.jsonl"))])
    extra = {"id": "e-new", "question": "Extract the order.", "context": "Order 99.", "reference": "{}"}
    store.add("tiny-e2e", [str(write_rows(tmp_path / "rows.jsonl")), str(_write_jsonl(tmp_path, [extra]))])
    env = _env(settings.home, settings.resolved_database_url)
    config = _tiny_ci(tiny_lm_dir, LENIENT, rates=2, promote=True, outputs="ok")

    passed = _evalgate_ci(env, tmp_path, str(_write_config(tmp_path / "lenient.yaml", config)))
    first = json.loads((tmp_path / "ok" / "result.json").read_text())
    promoted_id = first["recommended_candidate_id"]
    with session_scope(store.sessions) as session:
        adapter = session.scalars(select(Candidate.adapter_uri).where(Candidate.id == promoted_id)).one()
    external = {
        "dataset": "tiny-e2e@v2",
        "candidates": [{"name": "external", "adapter": adapter}],
        "base_model": str(tiny_lm_dir),
        "policy": STRICT,
        "evaluation": EVALUATION,
        "outputs": "blocked",
    }
    blocked = _evalgate_ci(env, tmp_path, str(_write_config(tmp_path / "strict.yaml", external)))
    second = json.loads((tmp_path / "blocked" / "result.json").read_text())

    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert (
        first["recommended"] in ("lr=0.001", "lr=0.01") and first["promoted"]["promoted_by"] == "evalgate ci"
    )
    assert [c["verdict"] for c in first["candidates"]] == ["pass", "pass"]
    root = _junit(tmp_path / "ok")
    assert (len(root.findall("testsuite")), root.get("tests"), root.get("failures")) == (2, "2", "0")
    assert "<html" in (tmp_path / "ok" / "report.html").read_text().lower()
    assert f"**Recommended: `{first['recommended']}`**" in (tmp_path / "ok" / "summary.md").read_text()

    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert second["baseline"].startswith(f"promoted candidate {first['recommended']}")
    assert [c["verdict"] for c in second["candidates"]] == ["block"] and second["recommended"] is None
    with session_scope(store.sessions) as session:  # the promoted baseline was evaluated on v2 first
        baseline = session.get_one(EvaluationRun, second["candidates"][0]["baseline_run_id"])
        assert baseline.candidate_id == promoted_id and baseline.summary["dataset"] == "tiny-e2e@v2"
    failure = _junit(tmp_path / "blocked").find("testsuite/testcase/failure")
    assert failure is not None and failure.get("type") == "below_floor"
    assert "reports sweeps" in (tmp_path / "blocked" / "summary.md").read_text()
    assert not (tmp_path / "blocked" / "report.html").exists()


def _write_jsonl(folder: Path, rows: list[dict[str, Any]]) -> Path:
    path = folder / "extra.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[tuple[Service, str, str]]:
    """`evalgate serve` and `evalgate worker` on the database; (service, URL, write token)."""
    running = Service(settings, tmp_path)
    _, url = running.serve("api")
    running.start("worker", "worker", "--name", "w1")
    token = running.cli("tokens", "create", "ci", "--scope", "write")
    try:
        with Client(url, token, retries=8) as client:
            client.upload_dataset("tiny-e2e", write_rows(tmp_path / "rows.jsonl"))
        yield running, url, token
    finally:
        running.stop()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_through_a_server_passes_then_blocks_against_the_promoted_baseline(
    server: tuple[Service, str, str], tmp_path: Path, tiny_lm_dir: Path
) -> None:
    running, url, token = server
    lenient = _write_config(
        tmp_path / "lenient.yaml", _tiny_ci(tiny_lm_dir, LENIENT, promote=True, outputs="ok")
    )
    strict = _write_config(tmp_path / "strict.yaml", _tiny_ci(tiny_lm_dir, STRICT, outputs="blocked"))
    elsewhere = _env(tmp_path / "ci-home", f"sqlite:///{tmp_path / 'ci-home' / 'none.db'}")

    passed = _evalgate_ci(running.env, tmp_path, str(lenient), "--server", url, "--token", token)
    blocked = _evalgate_ci({**elsewhere, "EVALGATE_TOKEN": token}, tmp_path, str(strict), "--server", url)
    first = json.loads((tmp_path / "ok" / "result.json").read_text())
    second = json.loads((tmp_path / "blocked" / "result.json").read_text())

    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert (
        first["mode"] == "server" and first["promoted"]["candidate_id"] == first["recommended_candidate_id"]
    )
    assert (tmp_path / "ok" / "report.html").is_file()  # this process reaches the server's database
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert second["sweep_id"] == first["sweep_id"] and second["baseline"].startswith("promoted candidate")
    root = _junit(tmp_path / "blocked")
    assert (root.get("tests"), root.get("failures")) == ("2", "1")
    summary = (tmp_path / "blocked" / "summary.md").read_text()
    assert (
        f"served by the dashboard at {url}/sweeps/{first['sweep_id']}" in summary
        and not (tmp_path / "blocked" / "report.html").exists()
    )
