import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from evalgate.cli import score as cli_score

app = typer.Typer()
app.command()(cli_score.score)
runner = CliRunner()

SCHEMA = {"type": "object", "required": ["quantity"], "properties": {"quantity": {"type": "integer"}}}


def write_rows(path: Path, *rows: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def run(*args: str):
    return runner.invoke(app, list(args))


def test_writes_each_row_with_score_passed_and_detail(tmp_path):
    source = write_rows(
        tmp_path / "rows.jsonl",
        {"question": "q", "context": "", "answer": '{"quantity": 3}', "json_schema": SCHEMA, "extra": 1},
        {"question": "q", "context": "", "answer": '{"quantity": "3"}', "json_schema": SCHEMA},
        {"question": "q", "context": "", "answer": "no schema here"},
    )
    result = run(
        "--evaluator", "json_validation", "--input", str(source), "--output", str(tmp_path / "o.jsonl")
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [(r["score"], r["passed"]) for r in rows] == [(1.0, True), (0.0, False), (None, None)]
    assert rows[0]["extra"] == 1 and rows[1]["detail"]["path"] == "$.quantity"
    assert "2 rows scored (1 not applicable), mean 0.500, pass rate 50.0%" in result.output


def test_bad_json_line_is_reported_with_file_and_line(tmp_path):
    source = write_rows(tmp_path / "rows.jsonl", {"question": "q", "answer": "a"}, "{not json")
    result = run("--evaluator", "exact_match", "--input", str(source), "--output", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2
    assert f"{source}: line 2: not valid JSON" in result.output.replace("\n", "")
    assert not (tmp_path / "o.jsonl").exists()


def test_missing_answer_is_reported_with_its_field(tmp_path):
    source = write_rows(tmp_path / "rows.jsonl", {"question": "q", "context": "c"})
    result = run("--evaluator", "exact_match", "--input", str(source), "--output", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2
    assert "line 1: field 'answer': required but missing" in result.output.replace("\n", "")


def test_unknown_evaluator_lists_the_known_ones(tmp_path):
    source = write_rows(tmp_path / "rows.jsonl", {"question": "q", "answer": "a"})
    result = run("--evaluator", "nope", "--input", str(source), "--output", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2 and "exact_match" in result.output


def test_perplexity_is_refused_with_a_clear_message(tmp_path):
    source = write_rows(tmp_path / "rows.jsonl", {"question": "q", "answer": "a"})
    result = run("--evaluator", "perplexity", "--input", str(source), "--output", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2 and "evaluation runner" in result.output.replace("\n", " ")


@pytest.mark.slow
def test_python_m_evalgate_score_scores_faithfulness_end_to_end(tmp_path):
    context = "The Oberoi Group is a hotel company with its head office in Delhi."
    source = write_rows(
        tmp_path / "rows.jsonl",
        {"id": "a", "question": "Where is the head office?", "context": context, "answer": "Delhi."},
        {"id": "b", "question": "Where is the head office?", "context": context, "answer": "Mumbai."},
    )
    output = tmp_path / "scored.jsonl"
    command = [sys.executable, "-m", "evalgate", "score", "--evaluator", "faithfulness"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "EVALGATE_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [*command, "--input", str(source), "--output", str(output)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["passed"] for r in rows] == [True, False]
    assert "faithfulness: 2 rows scored" in done.stdout
