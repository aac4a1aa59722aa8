"""``--json`` on the read commands, run as a user runs them (a subprocess) on SQLite and PostgreSQL: stdout
is one JSON document valid against the command's published JSON Schema and nothing else, it says what
the database holds, and the exit codes are those without ``--json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from evalgate.cli.json_output import COMMAND_SHAPES, cli_json_schemas
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.gate.policy import Check, GatePolicy

SCHEMAS = cli_json_schemas()


def _evalgate(home: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVALGATE_HOME": str(home), "EVALGATE_DATABASE_URL": database_url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "evalgate", *args], env=env, capture_output=True, text=True, timeout=300
    )


def _document(command: str, result: subprocess.CompletedProcess[str]) -> Any:
    """The one JSON document on stdout, checked against ``command``'s schema."""
    document = json.loads(result.stdout)  # fails on anything printed beside the document
    jsonschema.validate(document, SCHEMAS[command], cls=jsonschema.Draft202012Validator)
    return document


def test_every_schema_is_a_valid_draft_2020_12_schema_that_refuses_unknown_fields() -> None:
    assert set(SCHEMAS) == set(COMMAND_SHAPES)
    for command, schema in SCHEMAS.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"unexpected": 1}, schema, cls=jsonschema.Draft202012Validator)
        assert schema["title"] == command


def test_the_schemas_are_printed_by_the_module(capsys: pytest.CaptureFixture[str]) -> None:
    from evalgate.cli.json_output import main

    assert main(["gate"]) == 0
    assert json.loads(capsys.readouterr().out) == SCHEMAS["gate"]
    assert main(["nothing"]) == 2
    assert "no --json shape for 'nothing'" in capsys.readouterr().err


def test_the_shapes_name_the_fields_the_rest_api_names() -> None:
    from api.schemas import DiffOut, JobOut, TokenOut, VersionOut
    from evalgate.cli.json_output import DatasetDiffJson, DatasetVersionJson, JobJson, TokenJson

    assert set(DatasetVersionJson.model_fields) == set(VersionOut.model_fields) - {"created"}
    assert set(DatasetDiffJson.model_fields) == set(DiffOut.model_fields)
    assert set(JobJson.model_fields) == set(JobOut.model_fields)
    assert set(TokenJson.model_fields) == set(TokenOut.model_fields)


def test_datasets_list_show_and_diff(
    tmp_path: Path, settings: Settings, store: DatasetStore, write_jsonl
) -> None:
    v1 = store.add(
        "orders", [write_jsonl("v1.jsonl", [{"id": "a", "question": "one"}, {"id": "b", "question": "two"}])]
    )
    rows = [{"id": "a", "question": "one!"}, {"id": "c", "question": "three", "cohort": "ood"}]
    v2 = store.add("orders", [write_jsonl("v2.jsonl", rows)])
    home, url = settings.home, settings.resolved_database_url

    listed = _document("datasets list", _evalgate(home, url, "datasets", "list", "--json"))
    shown = _document("datasets show", _evalgate(home, url, "datasets", "show", "orders@v2", "--json"))
    diff = _document(
        "datasets diff", _evalgate(home, url, "datasets", "diff", "orders@v1", "orders@v2", "--json")
    )

    by_label = {version["label"]: version for version in listed["versions"]}
    assert set(by_label) == {"orders@v1", "orders@v2"}
    assert by_label["orders@v1"]["content_hash"] == v1.version.content_hash
    assert by_label["orders@v1"]["counts"] == {"target": {"eval": 2}}
    assert shown["content_hash"] == v2.version.content_hash and shown["row_count"] == 2
    assert shown["counts"] == {"target": {"eval": 1}, "ood": {"eval": 1}}
    assert shown["storage_uri"] == v2.version.storage_uri
    assert shown["sources"] == [{"name": str(tmp_path / "v2.jsonl"), "rows": 2}]
    assert diff == {
        "old": "orders@v1",
        "new": "orders@v2",
        "added": ["c"],
        "removed": ["b"],
        "changed": {"a": ["question"]},
        "unchanged": 0,
    }


def test_an_unknown_version_prints_nothing_on_stdout_and_exits_2(settings: Settings) -> None:
    result = _evalgate(
        settings.home, settings.resolved_database_url, "datasets", "show", "nothing@v3", "--json"
    )

    assert result.returncode == 2 and result.stdout == ""
    assert "no dataset named 'nothing'" in result.stderr


def test_tokens_list_never_shows_a_secret(settings: Settings, store: DatasetStore) -> None:
    from evalgate.service.api_tokens import create_token, revoke_token

    secret = create_token(store.sessions, "nightly", "write")
    create_token(store.sessions, "reader", "read")
    revoke_token(store.sessions, "reader")

    result = _evalgate(settings.home, settings.resolved_database_url, "tokens", "list", "--json")

    tokens = _document("tokens list", result)["tokens"]
    assert [(t["name"], t["scope"], t["revoked"]) for t in tokens] == [
        ("nightly", "write", False),
        ("reader", "read", True),
    ]
    assert secret not in result.stdout


def test_jobs_show_and_list(settings: Settings, store: DatasetStore) -> None:
    from evalgate.service.jobs import claim, enqueue, report

    first = enqueue(store.sessions, "sweep", {"config": {"name": "s"}})
    second = enqueue(store.sessions, "evaluation", {"sweep_id": 3}, max_attempts=1)
    running = claim(store.sessions, "host:1")
    assert running is not None and running.id == first
    report(store.sessions, running, {"step": 4, "steps": 10}, "loading the model\nstep 4/10\n")
    home, url = settings.home, settings.resolved_database_url

    shown = _document("jobs show", _evalgate(home, url, "jobs", "show", str(first), "--json"))
    listed = _document("jobs list", _evalgate(home, url, "jobs", "list", "--json"))
    queued = _document("jobs list", _evalgate(home, url, "jobs", "list", "--status", "queued", "--json"))
    missing = _evalgate(home, url, "jobs", "show", "999", "--json")

    assert shown["id"] == first and shown["kind"] == "sweep" and shown["status"] == "running"
    assert shown["progress"] == {"step": 4, "steps": 10} and shown["locked_by"] == "host:1"
    assert shown["log_tail"].endswith("step 4/10\n") and shown["attempts"] == 1
    assert [job["id"] for job in listed["jobs"]] == [second, first]
    assert [(job["id"], job["max_attempts"]) for job in queued["jobs"]] == [(second, 1)]
    assert missing.returncode == 2 and missing.stdout == "" and "job 999 not found" in missing.stderr


def test_jobs_list_refuses_an_unknown_status(settings: Settings) -> None:
    result = _evalgate(settings.home, settings.resolved_database_url, "jobs", "list", "--status", "done")

    assert result.returncode == 2 and "one of queued, running, succeeded, failed, cancelled" in result.stderr


def _policy_file(path: Path, policy: GatePolicy) -> Path:
    path.write_text(yaml.safe_dump(policy.to_dict()))
    return path


def test_gate_prints_the_decisions_and_the_recommendation(
    tmp_path: Path, settings: Settings, store: DatasetStore
) -> None:
    from evalgate.gate.records import gate_sweep
    from tests.support.sweep_data import POLICY, seed_weekly_sweep

    seeded = seed_weekly_sweep(store, tmp_path, gate=False)
    policy = _policy_file(tmp_path / "policy.yaml", POLICY)
    args = ("gate", "--sweep", str(seeded.sweep_id), "--policy", str(policy), "--json")

    result = _evalgate(settings.home, settings.resolved_database_url, *args)

    assert result.returncode == 0, result.stderr
    gated = _document("gate", result)
    expected = gate_sweep(store.sessions, seeded.sweep_id, POLICY)  # the same decisions, in-process
    recommended = expected.recommendation.recommended
    assert recommended is not None and gated["recommended"] == recommended
    assert gated["recommended_candidate_id"] == seeded.candidates[recommended] and gated["exit_code"] == 0
    assert gated["policy"] == {"name": POLICY.name, "sha256": POLICY.sha256, "inconclusive": "block"}
    assert gated["objective"] == "json_validation/target" and gated["best"].endswith("best.yaml")
    candidates = {candidate["label"]: candidate for candidate in gated["candidates"]}
    assert set(candidates) == set(seeded.candidates)
    for label, (candidate_id, decision) in expected.decisions.items():
        assert candidates[label]["candidate_id"] == candidate_id
        assert candidates[label]["verdict"] == (decision.verdict if decision else None)
        assert [c["verdict"] for c in candidates[label]["checks"]] == [
            c.verdict for c in (decision.checks if decision else [])
        ]
    diverged = candidates["lr=0.01"]
    assert diverged["checks"] == [] and diverged["verdict"] is None and diverged["why_not_recommended"]
    assert candidates["lr=0.001"]["verdict"] == "block"
    assert any(c["blocking"] and len(c["interval"]) == 2 for c in candidates["lr=0.001"]["checks"])


def test_gate_exits_1_with_its_document_when_every_candidate_is_blocked(
    tmp_path: Path, settings: Settings, store: DatasetStore
) -> None:
    from tests.support.sweep_data import seed_weekly_sweep

    seeded = seed_weekly_sweep(store, tmp_path, gate=False)
    unreachable = GatePolicy(
        checks=(Check("json_validation", "target", margin=0.05, floor=1.0),), name="strict"
    )
    policy = _policy_file(tmp_path / "strict.yaml", unreachable)
    args = ("gate", "--sweep", str(seeded.sweep_id), "--policy", str(policy), "--json")

    result = _evalgate(settings.home, settings.resolved_database_url, *args)

    assert result.returncode == 1, result.stderr
    gated = _document("gate", result)
    assert gated["exit_code"] == 1 and gated["recommended"] is None and gated["best"] is None
    evaluated = [c for c in gated["candidates"] if c["verdict"] is not None]
    assert len(evaluated) == 4 and {c["verdict"] for c in evaluated} == {"block"}
    assert {check["verdict"] for c in evaluated for check in c["checks"]} == {"below_floor"}


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_evaluate_prints_each_run_and_keeps_the_progress_off_stdout(
    tmp_path: Path, settings: Settings, store: DatasetStore, tiny_lm_dir: Path, write_jsonl
) -> None:
    from sqlalchemy import select

    from evalgate.db.models import EvaluationRun
    from evalgate.db.session import session_scope

    rows = [{"id": f"r{i}", "question": f"q {i}", "reference": f"answer {i % 3}"} for i in range(6)]
    rows += [{"id": f"o{i}", "question": f"o {i}", "reference": "x", "cohort": "ood"} for i in range(4)]
    store.add("tiny", [write_jsonl("tiny.jsonl", rows)])
    args = (
        "evaluate",
        "--dataset",
        "tiny@v1",
        "--base-model",
        str(tiny_lm_dir),
        "-e",
        "exact_match",
        "--max-new-tokens",
        "3",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--json",
    )

    first = _evalgate(settings.home, settings.resolved_database_url, *args)
    again = _evalgate(settings.home, settings.resolved_database_url, *args)

    assert first.returncode == 0, first.stderr
    (run,) = _document("evaluate", first)["runs"]
    (cached,) = _document("evaluate", again)["runs"]
    with session_scope(store.sessions) as session:
        stored = session.scalars(select(EvaluationRun)).one()
        stored_id, summary = stored.id, dict(stored.summary)
    assert run["run_id"] == stored_id and run["label"] == "base" and run["candidate_id"] is None
    assert run["dataset"] == "tiny@v1" and run["rows"] == 10
    assert (run["generated_rows"], run["cached_rows"]) == (10, 0)
    assert (cached["run_id"], cached["generated_rows"], cached["cached_rows"]) == (stored_id, 0, 10)
    assert run["aggregates"] == summary["aggregates"] and run["deltas"] == {}
    assert set(run["aggregates"]["exact_match"]) == {"target", "ood"}
    assert run["aggregates"]["exact_match"]["ood"]["rows"] == 4
