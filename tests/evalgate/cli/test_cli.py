"""The ``evalgate`` command, run as a user runs it (a subprocess), on SQLite and PostgreSQL; the sweep's
printed table and analysis lines on hand-made candidates."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from evalgate.cli.sweep import candidate_line, print_analysis, print_candidates
from evalgate.sweep.analysis import write_analysis

HALTED = (
    "stopped early at rung 1 (step 8): validation loss 2.5000, not among the best 2 of 4 "
    "(the 2th best had 2.0000)"
)


def _evalgate(home: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVALGATE_HOME": str(home), "EVALGATE_DATABASE_URL": database_url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "evalgate", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_datasets_commands_round_trip(tmp_path: Path, database_url: str, write_jsonl) -> None:
    home = tmp_path / "home"
    v1 = write_jsonl("v1.jsonl", [{"id": "a", "question": "one"}, {"id": "b", "question": "two"}])
    v2 = write_jsonl("v2.jsonl", [{"id": "a", "question": "one!"}, {"id": "c", "question": "three"}])

    first = _evalgate(home, database_url, "datasets", "add", "cli-set", v1)
    assert first.returncode == 0, first.stderr
    assert "added cli-set@v1 (2 rows)" in first.stdout
    assert "unchanged" in _evalgate(home, database_url, "datasets", "add", "cli-set", v1).stdout
    assert "added cli-set@v2" in _evalgate(home, database_url, "datasets", "add", "cli-set", v2).stdout

    listed = _evalgate(home, database_url, "datasets", "list").stdout
    assert "cli-set@v1" in listed and "cli-set@v2" in listed
    assert "sha256" in _evalgate(home, database_url, "datasets", "show", "cli-set@v1").stdout
    diff = _evalgate(home, database_url, "datasets", "diff", "cli-set@v1", "cli-set@v2").stdout
    assert "1 added, 1 removed, 1 changed" in diff

    out = tmp_path / "export.jsonl"
    exported = _evalgate(home, database_url, "datasets", "export", "cli-set@v2", "--output", str(out))
    assert exported.returncode == 0, exported.stderr
    assert {json.loads(line)["id"] for line in out.read_text().splitlines()} == {"a", "c"}


def test_bad_input_exits_2_with_one_clear_line(tmp_path: Path, database_url: str, write_jsonl) -> None:
    path = write_jsonl("bad.jsonl", [{"id": "a", "question": "q"}, '{"id": '])

    result = _evalgate(tmp_path / "home", database_url, "datasets", "add", "x", path)

    assert result.returncode == 2
    assert f"error: {path}: line 2: malformed JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_version_exits_2(tmp_path: Path, database_url: str) -> None:
    result = _evalgate(tmp_path / "home", database_url, "datasets", "show", "nothing@v3")

    assert result.returncode == 2 and "no dataset named 'nothing'" in result.stderr


def test_evaluate_options_are_checked_as_the_ci_job_and_the_api_check_them(
    tmp_path: Path, database_url: str
) -> None:
    home = tmp_path / "home"
    evaluate = ("evaluate", "--dataset", "x@v1")
    bad = _evalgate(home, database_url, *evaluate, "--batch-size", "0", "--device", "tpu")
    unknown = _evalgate(home, database_url, *evaluate, "-e", "nope")

    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: batch_size: must be >= 1, got 0; device: 'tpu' is not one of auto, cpu, cuda, cuda:N, mps"
    )
    assert unknown.returncode == 2
    assert "error: evaluators: unknown evaluator 'nope'; known: " in unknown.stderr


def test_datasets_verify_names_a_tampered_file_and_exits_1(
    tmp_path: Path, database_url: str, write_jsonl
) -> None:
    home = tmp_path / "home"
    _evalgate(
        home, database_url, "datasets", "add", "kept", write_jsonl("a.jsonl", [{"id": "a", "question": "q"}])
    )
    assert _evalgate(home, database_url, "datasets", "verify").returncode == 0

    stored = next(home.rglob("*.parquet"))
    stored.write_bytes(stored.read_bytes() + b"x")
    result = _evalgate(home, database_url, "datasets", "verify", "kept")

    assert result.returncode == 1
    assert "kept@v1 eval" in result.stdout and "modified after it was stored" in result.stdout


def test_db_current_reports_the_revision_and_exits_1_when_behind(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    from evalgate.db.migrate import head_revision, upgrade

    upgrade(url, "base")
    behind = _evalgate(tmp_path / "home", url, "db", "current")
    assert behind.returncode == 1 and "not at head" in behind.stderr

    upgrade(url)
    current = _evalgate(tmp_path / "home", url, "db", "current")
    assert current.returncode == 0 and f"revision {head_revision(url)}" in current.stdout


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_demo_runs_the_main_job_and_imports_the_bundled_suite_once(
    tmp_path: Path, database_url: str, tiny_lm_dir: Path
) -> None:
    home = tmp_path / "home"
    config = tmp_path / "main.yaml"
    # Both rates pass, known from the data: in 4 new tokens no model writes one of the suite's JSON
    # answers, so base and candidates score 0 on all 100 target rows, and 100 unchanged rows show
    # non-inferiority at the usual margin of 0.05 (Tango's bound at 95%: about -0.037).
    config.write_text(
        "dataset: ignored@v1\n"
        f"sweep: {{name: main, dataset: ignored, base_model: {tiny_lm_dir}, learning_rates: [1e-3, 1e-2],\n"
        "        max_steps: 2, batch_size: 2, max_seq_length: 128, precision: fp32}\n"
        "policy: {checks: [{evaluator: exact_match, cohort: target, margin: 0.05}]}\n"
        "evaluation: {evaluators: [exact_match, perplexity], max_new_tokens: 4, batch_size: 32,\n"
        "             precision: fp32}\n"
    )
    url = f"sqlite:///{home / 'fresh.db'}"

    first = _evalgate(home, url, "demo", "--config", str(config), "--no-progress")
    again = _evalgate(home, url, "demo", "--config", str(config), "--no-progress")

    assert first.returncode == 0, first.stderr
    assert "imported evalgate-suite@v1" in first.stdout
    assert "already stored as evalgate-suite@v1" in again.stdout
    assert "recommended: lr=" in first.stdout and "0.001" in first.stdout and "0.01" in first.stdout
    report = home / "reports" / "main"
    assert (report / "report.html").is_file() and (report / "junit.xml").is_file()
    assert "http://127.0.0.1:8000/" in first.stdout
    timing = first.stdout[first.stdout.index("time by stage") :]
    for stage in ("sweep", "training", "evaluation", "generation", "perplexity", "gate", "report"):
        assert f"  {stage} " in timing, stage


def _tiny_sweep_yaml(path: Path, tiny_lm_dir: Path, **extra: object) -> Path:
    lines = [
        "name: cli",
        "dataset: tiny",
        f"base_model: {tiny_lm_dir}",
        "learning_rates: [1e-2]",
        "batch_size: 2",
        "max_seq_length: 96",
        "precision: fp32",
        "device: cpu",
        *[f"{key}: {value}" for key, value in extra.items()],
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _tiny_rows(write_jsonl) -> str:
    rows = [
        {"id": f"t{i}", "question": f"q {i}", "reference": f"answer {i % 3}", "split": "train"}
        for i in range(16)
    ]
    return write_jsonl("tiny.jsonl", rows)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ctrl_c_saves_a_checkpoint_and_the_rerun_resumes(
    tmp_path: Path, database_url: str, tiny_lm_dir: Path, write_jsonl
) -> None:
    import signal
    import time

    home = tmp_path / "home"
    assert _evalgate(home, database_url, "datasets", "add", "tiny", _tiny_rows(write_jsonl)).returncode == 0
    config = _tiny_sweep_yaml(tmp_path / "sweep.yaml", tiny_lm_dir, max_steps=100, checkpoint_every=5)
    env = {**os.environ, "EVALGATE_HOME": str(home), "EVALGATE_DATABASE_URL": database_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "evalgate", "sweep", str(config), "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Ctrl-C only saves a checkpoint once training runs: before that (imports, model load, which take
    # minutes on a loaded 2-core machine) it is click's plain abort, exit code 1. So wait for the first
    # checkpoint, however long loading takes, and fail plainly if the sweep ended or never got there.
    deadline = time.monotonic() + 600
    while not list(home.glob("artifacts/sweeps/*/fused-checkpoint.pt")):
        if process.poll() is not None:
            pytest.fail(f"the sweep ended before its first checkpoint: {process.communicate()[1]}")
        assert time.monotonic() < deadline, "no checkpoint within 600 s"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert "interrupted at step" in stderr and "run the same command again to resume" in stderr
    resumed = _evalgate(home, database_url, "sweep", str(config), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "(resumed)" in resumed.stdout and "trained" in resumed.stdout and "100" in resumed.stdout
    (results,) = home.glob("artifacts/sweeps/*/results.csv")
    assert (
        f"results: {results}" in resumed.stdout and f"best: {results.parent / 'best.yaml'}" in resumed.stdout
    )
    assert "figure: none (one candidate" in resumed.stdout and results.read_text().startswith("name,status,")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_lr_find_proposes_a_grid_and_saves_the_plot(
    tmp_path: Path, database_url: str, tiny_lm_dir: Path, write_jsonl
) -> None:
    home = tmp_path / "home"
    _evalgate(home, database_url, "datasets", "add", "tiny", _tiny_rows(write_jsonl))
    config = _tiny_sweep_yaml(tmp_path / "sweep.yaml", tiny_lm_dir)
    plot = tmp_path / "lr.png"

    result = _evalgate(home, database_url, "lr-find", str(config), "--plot", str(plot), "--steps", "12")

    assert result.returncode == 0, result.stderr
    assert "proposed learning_rates: [" in result.stdout
    assert plot.read_bytes()[:4] == b"\x89PNG"


def _candidate(name: str, status: str, losses: list[float | None], **training: Any) -> dict[str, Any]:
    """A candidate row as ``candidate_rows`` returns it."""
    return {
        "id": 1, "name": name, "rate": float(name.split()[0].removeprefix("lr=")), "hyperparameters": {},
        "status": status, "diagnosis": "diverged" if status == "diverged" else "healthy",
        "adapter_uri": f"/artifacts/sweeps/3/{name.replace(' ', '_')}/adapter", "error": None,
        "training": {"steps": len(losses), "loss": losses, "tokens_per_second": 812.5, "wall_seconds": 41.0,
                     **training},
    }  # fmt: skip


def _sweep_candidates() -> list[dict[str, Any]]:
    return [
        _candidate("lr=0.001 cosine lrf=0.1 r=8", "trained", [2.0, 1.3],
                   validation_loss=[[8, 1.9], [16, 1.31]]),
        _candidate("lr=0.0001 constant warmup=0.1 r=8 alpha=32", "stopped", [2.0, 1.9],
                   validation_loss=[[8, 2.5]], halted=HALTED),
        _candidate("lr=0.01 cosine lrf=0.1 r=4", "diverged", [2.0, None]),
    ]  # fmt: skip


def test_the_sweep_table_names_each_candidate_and_fits_80_columns_with_the_rung_reason() -> None:
    console = Console(width=80, file=io.StringIO(), record=True)

    print_candidates(_sweep_candidates(), console)
    lines = [line.rstrip() for line in console.export_text().splitlines()]

    assert max(len(line) for line in lines if "/artifacts/" not in line) <= 80  # paths stay whole
    rows = {line.split()[0]: line.split() for line in lines if "→" in line}  # the table's first lines
    assert rows["lr=0.001"][-5:] == ["trained", "healthy", "2", "2.000→1.300", "1.310"]
    assert rows["lr=0.0001"][-5:] == ["stopped", "healthy", "2", "2.000→1.900", "2.500"]
    assert rows["lr=0.01"][-5:] == ["diverged", "diverged", "2", "2.000→nan", "-"]
    assert "lr=0.0001 constant warmup=0.1 r=8 alpha=32:" in lines  # too long for the reason beside it
    reason = next(line for line in lines if "rung 1" in line)
    assert reason.startswith("  rung 1 (step 8): validation loss 2.5000, not among the best 2 of 4")
    assert reason.endswith("(the 2th …")  # whole words only, within the 80 columns checked above
    assert "speed: 812.5 tok/s, 41 s wall" in lines
    assert "lr=0.01 cosine lrf=0.1 r=4: /artifacts/sweeps/3/lr=0.01_cosine_lrf=0.1_r=4/adapter" in lines


def test_a_short_names_stopped_reason_stays_beside_it() -> None:
    (stopped,) = [c for c in _sweep_candidates() if c["status"] == "stopped"]

    line = candidate_line({**stopped, "name": "lr=0.1 r=2"})

    assert line == "lr=0.1 r=2: rung 1 (step 8): validation loss 2.5000, not among the best 2 of 4 …"


def test_the_sweep_prints_where_the_results_best_trial_and_figure_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    print_analysis(write_analysis(_sweep_candidates(), tmp_path))
    printed = capsys.readouterr().out

    assert f"results: {tmp_path / 'results.csv'}\n" in printed
    assert f"best: {tmp_path / 'best.yaml'}\n" in printed
    assert "best trial: lr=0.001 cosine lrf=0.1 r=8: lowest final validation loss (1.3100)" in printed
    assert f"figure: {tmp_path / 'hyperparameters.png'}\n" in printed


def test_gate_decides_a_search_and_rewrites_its_results_with_the_gates_columns(
    tmp_path: Path, database_url: str
) -> None:
    import csv

    import yaml

    from evalgate.core.settings import Settings
    from evalgate.data.store import DatasetStore
    from evalgate.sweep.records import sweep_root
    from tests.support.sweep_data import POLICY, seed_search_sweep

    settings = Settings(home=tmp_path / "home", database_url=database_url)
    search = seed_search_sweep(DatasetStore.from_settings(settings), tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY.to_dict()))

    gated = _evalgate(
        settings.home, database_url, "gate", "--sweep", str(search.sweep_id), "--policy", str(policy)
    )

    assert gated.returncode == 0, gated.stderr
    folder = sweep_root(settings, search.sweep_id)
    assert f"results: {folder / 'results.csv'}\nbest trial: {folder / 'best.yaml'}\n" in gated.stdout
    with (folder / "results.csv").open(newline="") as handle:
        verdicts = {row["name"]: row["verdict"] for row in csv.DictReader(handle)}
    recommended = gated.stdout.split("recommended: ")[1].strip()
    assert verdicts[recommended] == "pass" and verdicts["lr=1e-05 cosine"] == ""
    assert yaml.safe_load((folder / "best.yaml").read_text())["name"] == "search-best"
